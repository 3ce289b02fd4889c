//! OpenStack Barbican as the host's key manager (`--key-manager barbican`), used as Octavia
//! uses it with its default `BarbicanACLAuth`: when a listener or pool names a secret, the host
//! asks Barbican *with the caller's token* to add the host's service user to the secret's read
//! ACL (only someone who may manage the secret can), then reads it *with its own token*; jobs
//! read it again the same way when they configure a device. A reference the caller cannot
//! grant or the host cannot read is a 400 naming it.
//!
//! References are Barbican's: `{barbican}/v1/secrets/{uuid}` (a PKCS#12 bundle, a PEM CA or
//! revocation list) and the legacy certificate containers `{barbican}/v1/containers/{uuid}`.
//! A reference is only ever a pair (kind, UUID) read out of the tenant's text: the host builds
//! every URL it calls from its own configured Barbican endpoint, so no tenant can make it send
//! a token anywhere else. The secrets a container lists are held to the same rule.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::key_manager::{ExternalKeys, HostIdentity, Unreadable};

/// The largest answer read from Barbican: its own payload limit is 20,000 bytes, and a
/// container or an ACL document is far smaller.
const MAX_ANSWER: u64 = 64 << 10;

/// What a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secret,
    Container,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Container => "containers",
        }
    }
}

/// A reference, read: what it names and its id. Nothing else of the tenant's text is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Located {
    kind: Kind,
    id: uuid::Uuid,
}

/// The Barbican client of one host.
pub struct Barbican {
    /// Barbican's endpoint, without `/v1` or a trailing slash (`http://barbican:9311`).
    base: url::Url,
    identity: Arc<dyn HostIdentity>,
    http: ureq::Agent,
}

impl std::fmt::Debug for Barbican {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barbican")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// Why the Barbican endpoint is not usable.
#[derive(Debug, thiserror::Error)]
#[error("the Barbican endpoint {url:?} is not usable: {reason}")]
pub struct EndpointError {
    url: String,
    reason: &'static str,
}

impl Barbican {
    /// A client for the Barbican at `url` (its endpoint as the catalog lists it, with or
    /// without `/v1`), reading as `identity` (the host's Keystone user).
    pub fn new(
        url: &str,
        identity: Arc<dyn HostIdentity>,
        timeout: Duration,
    ) -> Result<Self, EndpointError> {
        let fault = |reason| EndpointError {
            url: url.to_owned(),
            reason,
        };
        let mut base = url::Url::parse(url).map_err(|_| fault("not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(fault("not an http or https URL with a host"));
        }
        if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
            return Err(fault("a query, fragment or user name has no place in it"));
        }
        let path = base.path().trim_end_matches('/');
        let path = path.strip_suffix("/v1").unwrap_or(path).to_owned();
        base.set_path(&path);
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            // Barbican's answers are documents; a redirect would take the token elsewhere.
            .max_redirects(0)
            .build()
            .into();
        Ok(Self {
            base,
            identity,
            http,
        })
    }

    /// `{base}/v1/{kind}/{id}{rest}`: every URL the host calls.
    fn url(&self, at: Located, rest: &str) -> String {
        format!(
            "{}/v1/{}/{}{rest}",
            self.base.as_str().trim_end_matches('/'),
            at.kind.path(),
            at.id
        )
    }

    /// What `reference` names, if it is a reference to this Barbican: the same scheme, host
    /// and port, the endpoint's path, then `/v1/secrets/` or `/v1/containers/` and a UUID.
    fn locate(&self, reference: &str) -> Option<Located> {
        let given = url::Url::parse(reference).ok()?;
        if given.scheme() != self.base.scheme()
            || given.host() != self.base.host()
            || given.port_or_known_default() != self.base.port_or_known_default()
            || given.query().is_some()
            || given.fragment().is_some()
            || !given.username().is_empty()
            || given.password().is_some()
        {
            return None;
        }
        let rest = given
            .path()
            .strip_prefix(self.base.path().trim_end_matches('/'))?
            .strip_prefix("/v1/")?;
        let (kind, id) = rest.trim_end_matches('/').split_once('/')?;
        let kind = match kind {
            "secrets" => Kind::Secret,
            "containers" => Kind::Container,
            _ => return None,
        };
        let id = uuid::Uuid::try_parse(id).ok()?;
        Some(Located { kind, id })
    }

    /// One call to Barbican with `token`: its status and body (at most [`MAX_ANSWER`] bytes).
    fn call(
        &self,
        method: &str,
        url: &str,
        token: &str,
        accept: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), Unreadable> {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-auth-token", token)
            .header("accept", accept);
        let sent = match body {
            Some(body) => self.http.run(
                request
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .map_err(|e| unavailable(e.to_string()))?,
            ),
            None => self
                .http
                .run(request.body(()).map_err(|e| unavailable(e.to_string()))?),
        };
        let mut response = sent.map_err(|e| unavailable(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| unavailable(e.to_string()))?;
        Ok((status, Zeroizing::new(bytes)))
    }

    /// A call with the host's own token, issued again once if Barbican says it stopped working.
    fn call_as_host(
        &self,
        url: &str,
        accept: &str,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), Unreadable> {
        let token = self
            .identity
            .token(false)
            .map_err(Unreadable::Unavailable)?;
        let answer = self.call("GET", url, &token, accept, None)?;
        if answer.0 != 401 {
            return Ok(answer);
        }
        let token = self.identity.token(true).map_err(Unreadable::Unavailable)?;
        self.call("GET", url, &token, accept, None)
    }

    /// Adds the host's service user to the read ACL of what `at` names, with the caller's
    /// token: Barbican lets only those who may manage the secret change its ACL.
    fn grant(&self, caller_token: &str, at: Located) -> Result<(), Unreadable> {
        let user = self.identity.user_id().map_err(Unreadable::Unavailable)?;
        let url = self.url(at, "/acl");
        let (status, body) = self.call("GET", &url, caller_token, "application/json", None)?;
        refused(status, "its access list", at)?;
        let acl: Acl = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("Barbican's access list is unreadable: {e}")))?;
        let mut users = acl.read.users;
        if users.contains(&user) {
            return Ok(());
        }
        users.push(user);
        // PATCH changes the read users only; whether the project may read stays as it was.
        let change = json!({"read": {"users": users}});
        let (status, _) = self.call(
            "PATCH",
            &url,
            caller_token,
            "application/json",
            Some(&change),
        )?;
        refused(status, "a change to its access list", at)
    }

    /// A secret's payload, read as the host, in the content type it was stored with.
    fn secret(&self, at: Located) -> Result<Zeroizing<Vec<u8>>, Unreadable> {
        let (status, body) = self.call_as_host(&self.url(at, ""), "application/json")?;
        refused(status, "it", at)?;
        let meta: SecretMeta = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("Barbican's secret document is unreadable: {e}")))?;
        let accept = meta
            .content_types
            .and_then(|types| {
                types
                    .get("default")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .ok_or_else(|| Unreadable::Refused("the secret has no payload".into()))?;
        let (status, payload) = self.call_as_host(&self.url(at, "/payload"), &accept)?;
        refused(status, "its payload", at)?;
        Ok(payload)
    }

    /// The secrets a legacy certificate container lists, each located under this Barbican.
    fn container(&self, at: Located) -> Result<Vec<(String, Located)>, Unreadable> {
        let (status, body) = self.call_as_host(&self.url(at, ""), "application/json")?;
        refused(status, "it", at)?;
        let container: Container = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("Barbican's container is unreadable: {e}")))?;
        if container.kind != "certificate" {
            return Err(Unreadable::Refused(format!(
                "container {} is a {:?} container, not a certificate container",
                at.id, container.kind
            )));
        }
        container
            .secret_refs
            .into_iter()
            .map(|entry| {
                let located = self
                    .locate(&entry.secret_ref)
                    .filter(|l| l.kind == Kind::Secret);
                match located {
                    Some(located) => Ok((entry.name, located)),
                    None => Err(Unreadable::Refused(format!(
                        "container {} lists a secret outside this Barbican",
                        at.id
                    ))),
                }
            })
            .collect()
    }

    /// A legacy certificate container as one PEM bundle: certificate, intermediates, key.
    fn container_bundle(
        &self,
        parts: &[(String, Located)],
    ) -> Result<Zeroizing<Vec<u8>>, Unreadable> {
        if parts
            .iter()
            .any(|(name, _)| name == "private_key_passphrase")
        {
            return Err(Unreadable::Refused(
                "keys protected by a passphrase are not supported: store the key unencrypted \
                 or as a PKCS#12 bundle"
                    .into(),
            ));
        }
        let mut bundle = Zeroizing::new(Vec::new());
        for wanted in ["certificate", "intermediates", "private_key"] {
            for (_, at) in parts.iter().filter(|(name, _)| name == wanted) {
                let payload = self.secret(*at)?;
                bundle.extend_from_slice(&payload);
                if !payload.ends_with(b"\n") {
                    bundle.push(b'\n');
                }
            }
        }
        Ok(bundle)
    }

    fn located(&self, reference: &str) -> Result<Located, Unreadable> {
        self.locate(reference).ok_or(Unreadable::Foreign)
    }
}

impl ExternalKeys for Barbican {
    fn grant_and_read(
        &self,
        caller_token: &str,
        reference: &str,
    ) -> Result<Zeroizing<Vec<u8>>, Unreadable> {
        let at = self.located(reference)?;
        self.grant(caller_token, at)?;
        match at.kind {
            Kind::Secret => self.secret(at),
            Kind::Container => {
                let parts = self.container(at)?;
                for (_, part) in &parts {
                    self.grant(caller_token, *part)?;
                }
                self.container_bundle(&parts)
            }
        }
    }

    fn read(&self, reference: &str) -> Result<Zeroizing<Vec<u8>>, Unreadable> {
        let at = self.located(reference)?;
        match at.kind {
            Kind::Secret => self.secret(at),
            Kind::Container => self.container_bundle(&self.container(at)?),
        }
    }
}

/// Barbican's refusal of `what` as the reason a reference cannot be used; `Ok` on a 2xx.
fn refused(status: u16, what: &str, at: Located) -> Result<(), Unreadable> {
    let kind = match at.kind {
        Kind::Secret => "secret",
        Kind::Container => "container",
    };
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(Unreadable::Refused(format!(
            "Barbican does not let the caller manage {kind} {} ({what})",
            at.id
        ))),
        404 => Err(Unreadable::Refused(format!(
            "Barbican has no {kind} {}",
            at.id
        ))),
        status => Err(unavailable(format!(
            "Barbican answered {status} for {what} of {kind} {}",
            at.id
        ))),
    }
}

fn unavailable(reason: String) -> Unreadable {
    Unreadable::Unavailable(reason)
}

#[derive(Deserialize)]
struct Acl {
    #[serde(default)]
    read: AclOperation,
}

#[derive(Deserialize, Default)]
struct AclOperation {
    #[serde(default)]
    users: Vec<String>,
}

#[derive(Deserialize)]
struct SecretMeta {
    #[serde(default)]
    content_types: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    secret_refs: Vec<ContainerEntry>,
}

#[derive(Deserialize)]
struct ContainerEntry {
    name: String,
    secret_ref: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An identity never asked: these tests make no call.
    struct Nobody;

    impl HostIdentity for Nobody {
        fn token(&self, _renew: bool) -> Result<String, String> {
            Err("no identity".into())
        }

        fn user_id(&self) -> Result<String, String> {
            Err("no identity".into())
        }
    }

    fn barbican(url: &str) -> Barbican {
        Barbican::new(url, Arc::new(Nobody), Duration::from_secs(1)).expect("endpoint")
    }

    const ID: &str = "17699c51-8621-4227-9777-8da26586f5f5";

    #[test]
    fn only_references_to_the_configured_barbican_are_read() {
        for endpoint in ["http://b:9311", "http://b:9311/", "http://b:9311/v1"] {
            let b = barbican(endpoint);
            let secret = b.locate(&format!("http://b:9311/v1/secrets/{ID}"));
            assert_eq!(secret.map(|l| l.kind), Some(Kind::Secret), "{endpoint}");
            let container = b.locate(&format!("http://b:9311/v1/containers/{ID}/"));
            assert_eq!(container.map(|l| l.kind), Some(Kind::Container));
            assert_eq!(
                b.url(secret.expect("located"), "/payload"),
                format!("http://b:9311/v1/secrets/{ID}/payload")
            );
        }
        let b = barbican("http://b:9311");
        for foreign in [
            format!("http://evil:9311/v1/secrets/{ID}"),
            format!("http://b:9312/v1/secrets/{ID}"),
            format!("https://b:9311/v1/secrets/{ID}"),
            format!("http://user@b:9311/v1/secrets/{ID}"),
            format!("http://b:9311/v1/secrets/{ID}?x=1"),
            format!("http://b:9311/v1/orders/{ID}"),
            format!("http://b:9311/v1/secrets/{ID}/../../x"),
            "http://b:9311/v1/secrets/not-a-uuid".into(),
            format!("http://b:9311/v1/secrets/{ID}/payload"),
            ID.into(),
            "".into(),
        ] {
            assert_eq!(b.locate(&foreign), None, "{foreign}");
        }
        // Under a path prefix, references must carry it.
        let b = barbican("http://b/key-manager");
        assert!(
            b.locate(&format!("http://b/key-manager/v1/secrets/{ID}"))
                .is_some()
        );
        assert!(b.locate(&format!("http://b/v1/secrets/{ID}")).is_none());
    }

    #[test]
    fn endpoints_that_could_take_tokens_elsewhere_are_refused() {
        for bad in [
            "b:9311",
            "ftp://b/",
            "http://u:p@b/",
            "http://b/?x",
            "not a url",
        ] {
            assert!(
                Barbican::new(bad, Arc::new(Nobody), Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }
}

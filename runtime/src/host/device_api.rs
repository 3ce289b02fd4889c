//! The `device-api` import: HTTP to one of the calling driver's devices. The permission check
//! comes first; the host adds the credentials; every call is recorded in the audit log with the
//! SHA-256 of the body sent. A device's policy refusal (the agent's `lbaas-refusal` header)
//! fails the driver call whatever the driver makes of it.

use std::io::Read;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::bindings::device_api::{DeviceApiError, Host, Method, Request, Response};
use crate::bindings::legacy::Entry;
use crate::devices::Credentials;
use crate::permissions;
use lbaas_core::audit::Outcome;

use super::HostState;

impl Host for HostState {
    fn send(
        &mut self,
        device_id: String,
        request: Request,
    ) -> wasmtime::Result<Result<Response, DeviceApiError>> {
        self.count_import()?;
        let digest = hex::encode(Sha256::digest(&request.body));
        let granted = self
            .context
            .grant
            .permits(
                self.context.identity.name.as_str(),
                request.method,
                &request.path,
            )
            .map_err(|refusal| DeviceApiError::NotPermitted(refusal.to_string()));
        Ok(self.device_call(
            "device-api.send",
            &device_id,
            &request,
            &format!("body sha256 {digest}"),
            granted,
        ))
    }
}

impl HostState {
    /// `send-certificate` (contract 0.4.0): the file `handle` names, `PUT` whole to `path` on
    /// the device of the load balancer this call is for, at a path granted for certificates.
    /// The driver gets the status only; the audit log names the file by what it holds, never
    /// its bytes.
    pub(super) fn send_certificate(
        &mut self,
        device_id: String,
        handle: String,
        path: String,
    ) -> wasmtime::Result<Result<u16, DeviceApiError>> {
        self.count_import()?;
        let driver = self.context.identity.name.as_str();
        let scope = self
            .scope
            .as_ref()
            .filter(|scope| scope.device_id == device_id);
        let file = self.certificates.get(&handle);
        let request = Request {
            method: Method::Put,
            path,
            headers: vec![Entry {
                key: "content-type".into(),
                value: "application/x-pem-file".into(),
            }],
            body: file.map(|file| file.pem().to_vec()).unwrap_or_default(),
        };
        let described = file.map_or_else(
            || format!("no file `{}` in this call", super::audited_text(&handle)),
            |file| file.described().to_owned(),
        );
        let granted = match (scope, file) {
            (None, _) => Err(DeviceApiError::NotPermitted(format!(
                "certificates go only to the device of the load balancer this call is for \
                 (not {})",
                super::audited_text(&device_id)
            ))),
            (Some(_), None) => Err(DeviceApiError::NotPermitted(format!(
                "no certificate file `{}` in this call",
                super::audited_text(&handle)
            ))),
            (Some(scope), Some(_)) => self
                .context
                .grant
                .certificate_path(driver, &scope.loadbalancer, &request.path)
                .map_err(|refusal| DeviceApiError::NotPermitted(refusal.to_string())),
        };
        let answer = self.device_call(
            "device-api.send-certificate",
            &device_id,
            &request,
            &described,
            granted,
        );
        let mut body = request.body;
        zeroize::Zeroize::zeroize(&mut body);
        Ok(answer.map(|response| response.status))
    }

    /// One request to a device, once `granted` says the grant allows it: the operator's policy,
    /// the host's credentials and scope, the deadline, and the audit record (`event`, with
    /// `body` saying what was sent).
    fn device_call(
        &mut self,
        event: &'static str,
        device_id: &str,
        request: &Request,
        body: &str,
        granted: Result<(), DeviceApiError>,
    ) -> Result<Response, DeviceApiError> {
        let context = &self.context;
        let identity = &context.identity;
        let endpoint = context.devices.endpoint(device_id);
        let started = Instant::now();
        // A device call never outlives the driver call: min(what is left, the policy's cap).
        let timeout = self.remaining().min(context.policy.timeout);
        let target = format!(
            "{device_id} {} {}",
            crate::manifest::method_name(request.method),
            request.path
        );
        // The path is the driver's: traced as audited (printable, bounded).
        let span = tracing::info_span!(
            "device.call",
            device = %device_id,
            method = crate::manifest::method_name(request.method),
            path = %super::audited_text(&request.path),
            outcome = tracing::field::Empty,
        );
        let _entered = span.enter();
        let result = granted
            .and_then(|()| {
                permissions::check(
                    &context.policy,
                    &identity.name,
                    device_id,
                    endpoint,
                    request,
                )
            })
            .and_then(|permitted| {
                if timeout.is_zero() {
                    return Err(DeviceApiError::Unreachable(
                        "the driver call's deadline has passed".into(),
                    ));
                }
                // A call that changes a device is on disk before it is sent: if it brings the
                // host down, the record of it stays.
                if request.method != Method::Get {
                    context.audit.append_durable(vec![context.event(
                        "device-api.intent",
                        Some(super::audited_text(&target)),
                        request.body.len() as u64,
                        Outcome::Ok,
                        0,
                        Some(format!("about to send; {body}")),
                    )]);
                }
                // The host's word on what this load balancer may reach, to its device only.
                let scope = self
                    .scope
                    .as_ref()
                    .filter(|scope| scope.device_id == device_id)
                    .map(|scope| scope.header.as_str());
                // What the call's certificate files hold of their keys is scrubbed from the
                // answer as the host's credentials are.
                let keys: Vec<&str> = self.certificates.key_lines().collect();
                send(
                    &context.http,
                    context.policy.max_response_bytes,
                    timeout,
                    permitted,
                    request,
                    scope,
                    &keys,
                )
            });
        let (outcome, detail) = match &result {
            Ok(response) => match policy_refusal(response) {
                Some(refusal) => {
                    let detail = format!(
                        "status {}, refused by the device: {refusal}",
                        response.status
                    );
                    self.device_refused(refusal);
                    (Outcome::Denied, detail)
                }
                None => {
                    let applied = applied(response)
                        .map(|way| format!(", applied by {way}"))
                        .unwrap_or_default();
                    (Outcome::Ok, format!("status {}{applied}", response.status))
                }
            },
            Err(error @ (DeviceApiError::NotPermitted(_) | DeviceApiError::UnknownDevice(_))) => {
                (Outcome::Denied, format!("{error:?}"))
            }
            Err(error) => (Outcome::Failed, format!("{error:?}")),
        };
        span.record("outcome", tracing::field::debug(&outcome));
        self.audit(
            event,
            Some(target),
            request.body.len(),
            outcome,
            started,
            Some(format!("{detail}; {body}")),
        );
        result
    }
}

fn send(
    agent: &ureq::Agent,
    max_response: u64,
    timeout: std::time::Duration,
    permitted: permissions::Permitted,
    request: &Request,
    scope: Option<&str>,
    keys: &[&str],
) -> Result<Response, DeviceApiError> {
    let method = crate::manifest::method_name(request.method);
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(&permitted.url);
    for header in &request.headers {
        builder = builder.header(&header.key, &header.value);
    }
    if let Some(scope) = scope {
        builder = builder.header(crate::scope::SCOPE_HEADER, scope);
    }
    match &permitted.endpoint.credentials {
        Some(Credentials::Basic { username, password }) => {
            builder = builder.header("authorization", basic_auth(username, password));
        }
        Some(Credentials::Bearer { token }) => {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        None => {}
    }
    // The body is borrowed, not copied: for `send-certificate` it is key material, and the
    // one copy the host holds is wiped after the call.
    let http_request = builder
        .body(request.body.as_slice())
        .map_err(|e| DeviceApiError::NotPermitted(format!("malformed request: {e}")))?;
    let http_request = agent
        .configure_request(http_request)
        .timeout_global(Some(timeout))
        .build();
    // The key lines are searched for where they are: no copy of them is made.
    let credentials = secrets(permitted.endpoint.credentials.as_ref());
    let secrets: Vec<&str> = credentials
        .iter()
        .map(String::as_str)
        .chain(keys.iter().copied())
        .collect();
    let mut response = agent.run(http_request).map_err(|error| match error {
        ureq::Error::Timeout(_) => DeviceApiError::Unreachable(format!(
            "the device did not answer within {timeout:?} (what was left of the driver \
             call's deadline, at most the device timeout)"
        )),
        other => DeviceApiError::Unreachable(scrub_text(&other.to_string(), &secrets)),
    })?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some(Entry {
                key: name.as_str().to_owned(),
                value: scrub_text(value.to_str().ok()?, &secrets),
            })
        })
        .collect();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(max_response + 1)
        .read_to_end(&mut body)
        .map_err(|e| DeviceApiError::Unreachable(format!("reading the response: {e}")))?;
    if body.len() as u64 > max_response {
        return Err(DeviceApiError::NotPermitted(format!(
            "response larger than {max_response} bytes"
        )));
    }
    Ok(Response {
        status,
        headers,
        body: scrub(body, &secrets),
    })
}

/// What the host injected into a request that a device might echo back: the secrets
/// themselves and the header values built from them.
fn secrets(credentials: Option<&Credentials>) -> Vec<String> {
    let mut secrets = match credentials {
        Some(Credentials::Basic { username, password }) => {
            let header = basic_auth(username, password);
            let encoded = header.trim_start_matches("Basic ").to_owned();
            vec![header, encoded, password.clone()]
        }
        Some(Credentials::Bearer { token }) => vec![token.clone()],
        None => Vec::new(),
    };
    // Too short to search for without mangling ordinary answers; such a credential is weak
    // anyway.
    secrets.retain(|s| s.len() >= 4);
    secrets
}

const REDACTED: &[u8] = b"[redacted]";

/// `body` with every occurrence of a secret replaced: a device that echoes the request (or
/// its headers) does not hand the driver the credential the host added.
fn scrub<S: AsRef<str>>(mut body: Vec<u8>, secrets: &[S]) -> Vec<u8> {
    for secret in secrets {
        let secret = secret.as_ref().as_bytes();
        let find = |haystack: &[u8]| haystack.windows(secret.len()).position(|w| w == secret);
        // Most answers hold no secret: they are returned as they are, without a copy.
        let Some(mut at) = find(&body) else {
            continue;
        };
        let mut out = Vec::with_capacity(body.len());
        let mut rest = body.as_slice();
        loop {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(REDACTED);
            rest = &rest[at + secret.len()..];
            match find(rest) {
                Some(next) => at = next,
                None => break,
            }
        }
        out.extend_from_slice(rest);
        body = out;
    }
    body
}

fn scrub_text<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    String::from_utf8_lossy(&scrub(text.as_bytes().to_vec(), secrets)).into_owned()
}

/// The header by which a device says it refused a request by its policy (`lbaas-refusal:
/// policy`), whatever the driver then makes of it; `lbaas-agent` answers it.
pub const REFUSAL_HEADER: &str = "lbaas-refusal";

/// The header by which a device says how it applied a change: `runtime` (without a reload),
/// `reload`, `unchanged`; `lbaas-agent` answers it, and the audit records it with the call.
pub const APPLIED_HEADER: &str = "lbaas-applied";

/// How the device says it applied the call's change, when it names one of the ways
/// [`APPLIED_HEADER`] knows: a device's header is not trusted, so nothing else is recorded.
fn applied(response: &Response) -> Option<&'static str> {
    let value = response
        .headers
        .iter()
        .find(|entry| entry.key.eq_ignore_ascii_case(APPLIED_HEADER))?;
    ["runtime", "reload", "unchanged"]
        .into_iter()
        .find(|known| *known == value.value)
}

/// The message of a device's refusal by policy ([`REFUSAL_HEADER`] and `{"error": ...}`),
/// bounded: a device's answer is not trusted either.
fn policy_refusal(response: &Response) -> Option<String> {
    let refused = response
        .headers
        .iter()
        .any(|entry| entry.key.eq_ignore_ascii_case(REFUSAL_HEADER) && entry.value == "policy");
    if !refused {
        return None;
    }
    let message = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "no reason given".into());
    Some(crate::printable(&message, 512))
}

fn basic_auth(username: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_credentials_are_scrubbed() {
        let basic = Credentials::Basic {
            username: "admin".into(),
            password: "s3cret-pass".into(),
        };
        let secrets = secrets(Some(&basic));
        let echoed = format!(
            "{{\"headers\": {{\"authorization\": \"{}\"}}, \"again\": \"s3cret-pass s3cret-pass\"}}",
            basic_auth("admin", "s3cret-pass")
        );
        let scrubbed = String::from_utf8(scrub(echoed.into_bytes(), &secrets)).expect("text");
        assert!(!scrubbed.contains("s3cret"), "{scrubbed}");
        assert!(!scrubbed.contains("YWRtaW46czNjcmV0LXBhc3M="), "{scrubbed}");
        assert_eq!(scrubbed.matches("[redacted]").count(), 3, "{scrubbed}");
        let bearer = Credentials::Bearer {
            token: "abcdef0123456789".into(),
        };
        assert_eq!(
            scrub_text("Bearer abcdef0123456789!", &super::secrets(Some(&bearer))),
            "Bearer [redacted]!"
        );
        assert_eq!(
            scrub(b"nothing".to_vec(), &super::secrets(None)),
            b"nothing"
        );
    }

    #[test]
    fn basic_auth_matches_rfc7617() {
        assert_eq!(
            basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth("a", "b"), "Basic YTpi");
    }
}

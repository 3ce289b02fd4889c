//! Octavia's rules for the TLS fields of a listener (towards clients) and of a pool (towards its
//! members) that hold whatever the provider: which protocols take certificates, which field
//! needs which, TLS versions, ALPN protocols and HSTS. A provider's own support (its `501`) is
//! asked after these.

use serde_json::Value;

use super::certificates::TlsRefs;
use super::fields::Decided;
use crate::Error;
use crate::model::Protocol;

/// TLS versions Octavia names, oldest first.
pub const TLS_VERSIONS: [&str; 5] = ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];
/// ALPN protocols Octavia lets a listener offer.
pub const ALPN_PROTOCOLS: [&str; 3] = ["http/1.0", "http/1.1", "h2"];
/// Octavia's client authentication modes.
pub const CLIENT_AUTHENTICATION: [&str; 3] = ["NONE", "OPTIONAL", "MANDATORY"];

/// A listener's TLS fields as the request gives them.
pub struct ListenerTls<'a> {
    pub default_tls_container_ref: &'a Option<Value>,
    pub sni_container_refs: &'a Option<Value>,
    pub client_ca_tls_container_ref: &'a Option<Value>,
    pub client_authentication: &'a Option<Value>,
    pub client_crl_container_ref: &'a Option<Value>,
    pub tls_ciphers: &'a Option<Value>,
    pub tls_versions: &'a Option<Value>,
    pub alpn_protocols: &'a Option<Value>,
    pub hsts_max_age: &'a Option<Value>,
    pub hsts_include_subdomains: &'a Option<Value>,
    pub hsts_preload: &'a Option<Value>,
}

fn wrong_type(field: &'static str, expected: &str) -> Error {
    Error::field(
        field,
        format!("Invalid input for field/attribute {field}: {expected} is expected."),
    )
}

/// The longest reference Octavia takes.
const MAX_REFERENCE: usize = 255;

/// A reference field: text of at most 255 characters, or null.
fn reference(field: &'static str, value: &Option<Value>) -> Decided<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.is_empty() && text.chars().count() <= MAX_REFERENCE => {
            Ok(Some(text.clone()))
        }
        Some(_) => Err(wrong_type(
            field,
            "a reference (text of at most 255 characters)",
        )),
    }
}

/// A list of text, or null.
fn texts(field: &'static str, value: &Option<Value>) -> Decided<Option<Vec<String>>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong_type(field, "a list of text"))
            })
            .collect::<Decided<Vec<_>>>()
            .map(Some),
        Some(_) => Err(wrong_type(field, "a list of text")),
    }
}

fn flag(field: &'static str, value: &Option<Value>) -> Decided<bool> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(set)) => Ok(*set),
        Some(_) => Err(wrong_type(field, "true or false")),
    }
}

/// `true` when the value is given and not null.
fn given(value: &Option<Value>) -> bool {
    value.as_ref().is_some_and(|v| !v.is_null())
}

impl ListenerTls<'_> {
    /// Each field by its API name, for the provider's 501 naming the first one set.
    pub fn options(&self) -> [(&'static str, &Option<Value>); 11] {
        [
            ("default_tls_container_ref", self.default_tls_container_ref),
            ("sni_container_refs", self.sni_container_refs),
            (
                "client_ca_tls_container_ref",
                self.client_ca_tls_container_ref,
            ),
            ("client_authentication", self.client_authentication),
            ("client_crl_container_ref", self.client_crl_container_ref),
            ("tls_ciphers", self.tls_ciphers),
            ("tls_versions", self.tls_versions),
            ("alpn_protocols", self.alpn_protocols),
            ("hsts_max_age", self.hsts_max_age),
            ("hsts_include_subdomains", self.hsts_include_subdomains),
            ("hsts_preload", self.hsts_preload),
        ]
    }

    /// The references the request makes, for [`ControlPlane::resolve_tls`](crate::ControlPlane::resolve_tls).
    pub fn refs(&self) -> Decided<TlsRefs> {
        let mut certificates: Vec<String> =
            texts("sni_container_refs", self.sni_container_refs)?.unwrap_or_default();
        if certificates
            .iter()
            .any(|r| r.chars().count() > MAX_REFERENCE)
        {
            return Err(wrong_type(
                "sni_container_refs",
                "a list of references of at most 255 characters",
            ));
        }
        certificates.extend(reference(
            "default_tls_container_ref",
            self.default_tls_container_ref,
        )?);
        let ca = reference(
            "client_ca_tls_container_ref",
            self.client_ca_tls_container_ref,
        )?;
        let crl = reference("client_crl_container_ref", self.client_crl_container_ref)?;
        Ok(TlsRefs {
            certificates,
            // A revocation list without its CA is refused by the rules, not resolved.
            authorities: ca.map(|ca| (ca, crl)).into_iter().collect(),
        })
    }

    /// `client_authentication` as given (`None` when not), checked against Octavia's modes.
    fn authentication(&self) -> Decided<Option<String>> {
        match self.client_authentication {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(mode)) if CLIENT_AUTHENTICATION.contains(&mode.as_str()) => {
                Ok(Some(mode.clone()))
            }
            Some(other) => Err(Error::field(
                "client_authentication",
                format!(
                    "Invalid input for field/attribute client_authentication. Value: '{}'. \
                     Value should be one of: {}",
                    other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_owned),
                    CLIENT_AUTHENTICATION.join(", ")
                ),
            )),
        }
    }

    /// Octavia's rules for a change of a listener of `protocol` that holds no TLS settings yet
    /// (no listener here does: no provider terminates TLS), in Octavia's order.
    pub fn check_update(&self, protocol: Protocol, insert_headers: bool) -> Decided<()> {
        let refs = self.refs()?;
        let authentication = self.authentication()?;
        let container_refs = !refs.certificates.is_empty() || !refs.authorities.is_empty();
        if matches!(protocol, Protocol::Udp | Protocol::Sctp) && (container_refs || insert_headers)
        {
            return Err(Error::invalid(format!(
                "{} protocol listener does not support TLS or header insertion.",
                protocol.name()
            )));
        }
        let terminated = protocol == Protocol::TerminatedHttps;
        if !terminated && container_refs {
            return Err(Error::invalid(format!(
                "Certificate container references are not allowed on {} protocol listeners.",
                protocol.name()
            )));
        }
        let client_ca = given(self.client_ca_tls_container_ref);
        if let Some(mode) = authentication
            && mode != "NONE"
            && !client_ca
        {
            return Err(Error::invalid(format!(
                "Client authentication setting {mode} requires a client CA container reference."
            )));
        }
        if given(self.client_crl_container_ref) && !client_ca {
            return Err(Error::invalid(
                "A client authentication CA reference is required to specify a client \
                 authentication revocation list.",
            ));
        }
        versions_and_alpn(self.tls_versions, self.alpn_protocols)?;
        let include = flag("hsts_include_subdomains", self.hsts_include_subdomains)?;
        let preload = flag("hsts_preload", self.hsts_preload)?;
        if (include || preload) && !given(self.hsts_max_age) {
            return Err(Error::invalid(
                "Cannot enable hsts_include_subdomains or hsts_preload if hsts_max_age was not \
                 set as well.",
            ));
        }
        self.check_hsts(terminated)
    }

    /// Octavia's rules for a new listener of `protocol`, in Octavia's order; `insert_headers`
    /// says whether the request inserts any.
    pub fn check_create(&self, protocol: Protocol, insert_headers: bool) -> Decided<()> {
        let refs = self.refs()?;
        let client_ca = given(self.client_ca_tls_container_ref);
        let client_crl = given(self.client_crl_container_ref);
        let authentication = self.authentication()?.unwrap_or_else(|| "NONE".to_owned());
        let terminated = protocol == Protocol::TerminatedHttps;
        let served = !refs.certificates.is_empty();
        // Octavia's "container references": served certificates and the client CA.
        let container_refs = served || client_ca;
        if matches!(protocol, Protocol::Udp | Protocol::Sctp) && (container_refs || insert_headers)
        {
            return Err(Error::invalid(format!(
                "{} protocol listener does not support TLS.",
                protocol.name()
            )));
        }
        if !terminated && container_refs {
            return Err(Error::invalid(format!(
                "Certificate container references are not allowed on {} protocol listeners.",
                protocol.name()
            )));
        }
        if client_ca && !served {
            return Err(Error::invalid(
                "An SNI or default certificate container reference must be provided with a \
                 client CA container reference.",
            ));
        }
        if terminated && !served {
            return Err(Error::invalid(
                "An SNI or default certificate container reference must be provided for \
                 TERMINATED_HTTPS protocol listeners.",
            ));
        }
        if authentication != "NONE" && !client_ca {
            return Err(Error::invalid(format!(
                "Client authentication setting {authentication} requires a client CA container \
                 reference."
            )));
        }
        if client_crl && !client_ca {
            return Err(Error::invalid(
                "A client authentication CA reference is required to specify a client \
                 authentication revocation list.",
            ));
        }
        if let Some(value) = self.tls_ciphers
            && !value.is_null()
            && !value.is_string()
        {
            return Err(wrong_type("tls_ciphers", "an OpenSSL cipher string"));
        }
        // Octavia checks versions and ALPN protocols of TLS listeners only.
        if terminated {
            versions_and_alpn(self.tls_versions, self.alpn_protocols)?;
        }
        self.check_hsts(terminated)
    }

    fn check_hsts(&self, terminated: bool) -> Decided<()> {
        let max_age = match self.hsts_max_age {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= i32::MAX as u64) => {
                n.as_u64()
            }
            Some(_) => {
                return Err(wrong_type("hsts_max_age", "a number of seconds, 0 or more"));
            }
        };
        let include = flag("hsts_include_subdomains", self.hsts_include_subdomains)?;
        let preload = flag("hsts_preload", self.hsts_preload)?;
        if (include || preload) && max_age.is_none() {
            return Err(Error::invalid(
                "HSTS configuration options hsts_include_subdomains and hsts_preload only make \
                 sense if hsts_max_age is set as well.",
            ));
        }
        if max_age.is_some() && !terminated {
            return Err(Error::invalid(
                "The HSTS feature can only be used for listeners using the TERMINATED_HTTPS \
                 protocol.",
            ));
        }
        Ok(())
    }
}

/// A pool's TLS fields towards its members, as the request gives them.
pub struct PoolTls<'a> {
    /// `tls_enabled` as JSON, like every other field here.
    pub tls_enabled: Option<Value>,
    pub tls_container_ref: &'a Option<Value>,
    pub ca_tls_container_ref: &'a Option<Value>,
    pub crl_container_ref: &'a Option<Value>,
    pub tls_ciphers: &'a Option<Value>,
    pub tls_versions: &'a Option<Value>,
    pub alpn_protocols: &'a Option<Value>,
}

impl PoolTls<'_> {
    /// Each field by its API name, for the provider's 501 naming the first one set.
    pub fn options(&self) -> [(&'static str, &Option<Value>); 7] {
        [
            ("tls_enabled", &self.tls_enabled),
            ("tls_container_ref", self.tls_container_ref),
            ("ca_tls_container_ref", self.ca_tls_container_ref),
            ("crl_container_ref", self.crl_container_ref),
            ("tls_ciphers", self.tls_ciphers),
            ("tls_versions", self.tls_versions),
            ("alpn_protocols", self.alpn_protocols),
        ]
    }

    /// The references the pool makes: its client certificate towards members, the CA the
    /// members' certificates are checked against and its revocation list.
    pub fn refs(&self) -> Decided<TlsRefs> {
        let certificate = reference("tls_container_ref", self.tls_container_ref)?;
        let ca = reference("ca_tls_container_ref", self.ca_tls_container_ref)?;
        let crl = reference("crl_container_ref", self.crl_container_ref)?;
        Ok(TlsRefs {
            certificates: certificate.into_iter().collect(),
            authorities: ca.map(|ca| (ca, crl)).into_iter().collect(),
        })
    }

    /// Octavia's rules for a change of a pool that holds no TLS settings yet (no pool here
    /// does: no provider re-encrypts), in Octavia's order.
    pub fn check_update(&self) -> Decided<()> {
        self.refs()?;
        if given(self.crl_container_ref) && !given(self.ca_tls_container_ref) {
            return Err(Error::invalid(
                "A CA reference is required to specify a certificate revocation list.",
            ));
        }
        if let Some(value) = self.tls_ciphers
            && !value.is_null()
            && !value.is_string()
        {
            return Err(wrong_type("tls_ciphers", "an OpenSSL cipher string"));
        }
        versions_and_alpn(self.tls_versions, self.alpn_protocols)
    }

    /// Octavia's rules for a new pool, in Octavia's order.
    pub fn check_create(&self) -> Decided<()> {
        self.refs()?;
        if given(self.crl_container_ref) && !given(self.ca_tls_container_ref) {
            return Err(Error::invalid(
                "A CA certificate reference is required to specify a revocation list.",
            ));
        }
        if let Some(value) = self.tls_ciphers
            && !value.is_null()
            && !value.is_string()
        {
            return Err(wrong_type("tls_ciphers", "an OpenSSL cipher string"));
        }
        if self.tls_enabled == Some(Value::Bool(true)) {
            versions_and_alpn(self.tls_versions, self.alpn_protocols)?;
        }
        Ok(())
    }
}

/// Octavia's checks of a TLS version list and an ALPN protocol list.
fn versions_and_alpn(tls_versions: &Option<Value>, alpn_protocols: &Option<Value>) -> Decided<()> {
    if let Some(versions) = texts("tls_versions", tls_versions)? {
        if versions.is_empty() {
            return Err(Error::invalid(
                "Empty TLS version list. Either specify at least one TLS version or remove this \
                 parameter to use the default.",
            ));
        }
        let invalid: Vec<&str> = versions
            .iter()
            .map(String::as_str)
            .filter(|v| !TLS_VERSIONS.contains(v))
            .collect();
        if !invalid.is_empty() {
            return Err(Error::invalid(format!(
                "Invalid TLS versions: {}",
                invalid.join(", ")
            )));
        }
    }
    if let Some(protocols) = texts("alpn_protocols", alpn_protocols)? {
        if protocols.is_empty() {
            return Err(Error::invalid(
                "Empty ALPN protocol list. Either specify at least one ALPN protocol or remove \
                 this parameter to use the default.",
            ));
        }
        let invalid: Vec<&str> = protocols
            .iter()
            .map(String::as_str)
            .filter(|p| !ALPN_PROTOCOLS.contains(p))
            .collect();
        if !invalid.is_empty() {
            return Err(Error::invalid(format!(
                "Invalid ALPN protocol: {}",
                invalid.join(", ")
            )));
        }
    }
    Ok(())
}

//! Octavia's rules for the TLS fields of a listener (towards clients) and of a pool (towards its
//! members) that hold whatever the provider: which protocols take certificates, which field
//! needs which, TLS versions, ALPN protocols and HSTS. A provider's own support (its `501`) is
//! asked after these.

use serde_json::Value;

use super::certificates::TlsRefs;
use super::fields::Decided;
use crate::Error;
use crate::model::{self, ClientAuthentication, Protocol};

/// TLS versions Octavia names, oldest first.
pub const TLS_VERSIONS: [&str; 5] = ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];
/// ALPN protocols Octavia lets a listener offer.
pub const ALPN_PROTOCOLS: [&str; 3] = ["http/1.0", "http/1.1", "h2"];
/// Octavia's client authentication modes.
pub const CLIENT_AUTHENTICATION: [&str; 3] = ["NONE", "OPTIONAL", "MANDATORY"];

/// Octavia's default cipher string for TLS listeners and pools (`default_listener_ciphers`,
/// `default_pool_ciphers`: OWASP's suite B).
pub const DEFAULT_CIPHERS: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:\
TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:\
ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:\
DHE-RSA-CHACHA20-POLY1305";
/// Octavia's default TLS versions for listeners and pools.
pub const DEFAULT_VERSIONS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];
/// Octavia's default ALPN protocols for listeners and pools.
pub const DEFAULT_ALPN: [&str; 3] = ["h2", "http/1.1", "http/1.0"];

/// The longest cipher string Octavia takes.
const MAX_CIPHERS: usize = 2048;

fn defaults(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// A cipher string, or null.
fn ciphers(value: &Option<Value>) -> Decided<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text))
            if text.len() <= MAX_CIPHERS && text.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Ok(Some(text.clone()))
        }
        Some(_) => Err(wrong_type("tls_ciphers", "an OpenSSL cipher string")),
    }
}

/// `hsts_max_age`: a number of seconds up to 2^31 - 1, or null.
fn max_age(value: &Option<Value>) -> Decided<Option<u32>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= i32::MAX as u64) => {
            Ok(n.as_u64().and_then(|n| u32::try_from(n).ok()))
        }
        Some(_) => Err(wrong_type("hsts_max_age", "a number of seconds, 0 or more")),
    }
}

fn mode(name: &str) -> ClientAuthentication {
    match name {
        "OPTIONAL" => ClientAuthentication::Optional,
        "MANDATORY" => ClientAuthentication::Mandatory,
        _ => ClientAuthentication::None,
    }
}

/// The protocol settings a listener or pool keeps: ciphers, versions and ALPN protocols.
struct Protocols<'a> {
    ciphers: &'a mut Option<String>,
    versions: &'a mut Option<Vec<String>>,
    alpn: &'a mut Option<Vec<String>>,
}

impl Protocols<'_> {
    /// Takes each setting the request gives (`null` clears it), then, with TLS on, Octavia's
    /// default for each left unset.
    fn update(
        self,
        ciphers_given: &Option<Value>,
        versions_given: &Option<Value>,
        alpn_given: &Option<Value>,
        tls_on: bool,
    ) -> Decided<()> {
        if ciphers_given.is_some() {
            *self.ciphers = ciphers(ciphers_given)?;
        }
        if versions_given.is_some() {
            *self.versions = texts("tls_versions", versions_given)?;
        }
        if alpn_given.is_some() {
            *self.alpn = texts("alpn_protocols", alpn_given)?;
        }
        if tls_on {
            self.ciphers
                .get_or_insert_with(|| DEFAULT_CIPHERS.to_owned());
            self.versions
                .get_or_insert_with(|| defaults(&DEFAULT_VERSIONS));
            self.alpn.get_or_insert_with(|| defaults(&DEFAULT_ALPN));
        }
        Ok(())
    }
}

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

/// A CA or revocation-list field of an update: its name, what the request gives (if it gives
/// it), and what is stored.
type PairField<'a> = (&'static str, &'a Option<Value>, &'a Option<String>);

/// An update's client CA and revocation list as they will be, in `refs`: only when the request
/// changes either, with the stored one where it changes only one of the pair (Octavia checks
/// the pair as it will be).
fn authorities_after(refs: &mut TlsRefs, ca: PairField<'_>, crl: PairField<'_>) -> Decided<()> {
    refs.authorities.clear();
    if ca.1.is_none() && crl.1.is_none() {
        return Ok(());
    }
    let after = |(field, given, stored): PairField<'_>| match given {
        Some(_) => reference(field, given),
        None => Ok(stored.clone()),
    };
    let (ca_ref, crl_ref) = (after(ca)?, after(crl)?);
    refs.name(ca.0, ca_ref.as_ref());
    refs.name(crl.0, crl_ref.as_ref());
    refs.authorities.extend(ca_ref.map(|ca| (ca, crl_ref)));
    Ok(())
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
        let default = reference("default_tls_container_ref", self.default_tls_container_ref)?;
        let ca = reference(
            "client_ca_tls_container_ref",
            self.client_ca_tls_container_ref,
        )?;
        let crl = reference("client_crl_container_ref", self.client_crl_container_ref)?;
        let mut refs = TlsRefs::default();
        refs.name("default_tls_container_ref", default.as_ref());
        certificates.extend(default);
        for sni in &certificates {
            refs.name("sni_container_refs", Some(sni));
        }
        refs.name("client_ca_tls_container_ref", ca.as_ref());
        refs.name("client_crl_container_ref", crl.as_ref());
        refs.certificates = certificates;
        // A revocation list without its CA is refused by the rules, not resolved.
        refs.authorities = ca.map(|ca| (ca, crl)).into_iter().collect();
        Ok(refs)
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

    /// Octavia's rules for a change of a listener of `protocol` whose settings are `current`,
    /// in Octavia's order.
    pub fn check_update(
        &self,
        protocol: Protocol,
        insert_headers: bool,
        current: &model::ListenerTls,
    ) -> Decided<()> {
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
        let client_ca = given(self.client_ca_tls_container_ref)
            || current.client_ca_tls_container_ref.is_some();
        if let Some(mode) = authentication
            && mode != "NONE"
            && !client_ca
        {
            return Err(Error::invalid(format!(
                "Client authentication setting {mode} requires a client CA container reference."
            )));
        }
        let crl =
            given(self.client_crl_container_ref) || current.client_crl_container_ref.is_some();
        if crl && !client_ca {
            return Err(Error::invalid(
                "A client authentication CA reference is required to specify a client \
                 authentication revocation list.",
            ));
        }
        ciphers(self.tls_ciphers)?;
        versions_and_alpn(self.tls_versions, self.alpn_protocols)?;
        let include = flag("hsts_include_subdomains", self.hsts_include_subdomains)?;
        let preload = flag("hsts_preload", self.hsts_preload)?;
        let requested_age = max_age(self.hsts_max_age)?;
        if (include || preload) && requested_age.is_none() && current.hsts_max_age.is_none() {
            return Err(Error::invalid(
                "Cannot enable hsts_include_subdomains or hsts_preload if hsts_max_age was not \
                 set as well.",
            ));
        }
        if requested_age.is_some() && !terminated {
            return Err(Error::invalid(
                "The HSTS feature can only be used for listeners using the TERMINATED_HTTPS \
                 protocol.",
            ));
        }
        Ok(())
    }

    /// The references an update makes, with `current`'s client CA and revocation list where
    /// the request changes only one of the pair: Octavia checks the pair as it will be.
    pub fn update_refs(&self, current: &model::ListenerTls) -> Decided<TlsRefs> {
        let mut refs = self.refs()?;
        authorities_after(
            &mut refs,
            (
                "client_ca_tls_container_ref",
                self.client_ca_tls_container_ref,
                &current.client_ca_tls_container_ref,
            ),
            (
                "client_crl_container_ref",
                self.client_crl_container_ref,
                &current.client_crl_container_ref,
            ),
        )?;
        Ok(refs)
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
        ciphers(self.tls_ciphers)?;
        // Octavia checks versions and ALPN protocols of TLS listeners only.
        if terminated {
            versions_and_alpn(self.tls_versions, self.alpn_protocols)?;
        }
        self.check_hsts(terminated)
    }

    fn check_hsts(&self, terminated: bool) -> Decided<()> {
        let max_age = max_age(self.hsts_max_age)?;
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

    /// The settings a new listener of `protocol` stores, after [`Self::check_create`]: a
    /// `TERMINATED_HTTPS` listener gets Octavia's default ciphers, versions and ALPN
    /// protocols for those it does not set.
    pub fn stored(&self, protocol: Protocol) -> Decided<model::ListenerTls> {
        self.updated(&model::ListenerTls::default(), protocol)
    }

    /// `current` with the fields the request gives, after [`Self::check_update`]; a field
    /// given as null goes back to its default.
    pub fn updated(
        &self,
        current: &model::ListenerTls,
        protocol: Protocol,
    ) -> Decided<model::ListenerTls> {
        let terminated = protocol == Protocol::TerminatedHttps;
        let mut tls = current.clone();
        if self.default_tls_container_ref.is_some() {
            tls.default_tls_container_ref =
                reference("default_tls_container_ref", self.default_tls_container_ref)?;
        }
        if self.sni_container_refs.is_some() {
            tls.sni_container_refs =
                texts("sni_container_refs", self.sni_container_refs)?.unwrap_or_default();
        }
        if self.client_ca_tls_container_ref.is_some() {
            tls.client_ca_tls_container_ref = reference(
                "client_ca_tls_container_ref",
                self.client_ca_tls_container_ref,
            )?;
        }
        if self.client_authentication.is_some() {
            tls.client_authentication = self
                .authentication()?
                .as_deref()
                .map_or_else(ClientAuthentication::default, mode);
        }
        if self.client_crl_container_ref.is_some() {
            tls.client_crl_container_ref =
                reference("client_crl_container_ref", self.client_crl_container_ref)?;
        }
        Protocols {
            ciphers: &mut tls.tls_ciphers,
            versions: &mut tls.tls_versions,
            alpn: &mut tls.alpn_protocols,
        }
        .update(
            self.tls_ciphers,
            self.tls_versions,
            self.alpn_protocols,
            terminated,
        )?;
        if self.hsts_max_age.is_some() {
            tls.hsts_max_age = max_age(self.hsts_max_age)?;
        }
        if self.hsts_include_subdomains.is_some() {
            tls.hsts_include_subdomains =
                flag("hsts_include_subdomains", self.hsts_include_subdomains)?;
        }
        if self.hsts_preload.is_some() {
            tls.hsts_preload = flag("hsts_preload", self.hsts_preload)?;
        }
        Ok(tls)
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
        let mut refs = TlsRefs::default();
        refs.name("tls_container_ref", certificate.as_ref());
        refs.name("ca_tls_container_ref", ca.as_ref());
        refs.name("crl_container_ref", crl.as_ref());
        refs.certificates = certificate.into_iter().collect();
        refs.authorities = ca.map(|ca| (ca, crl)).into_iter().collect();
        Ok(refs)
    }

    /// Octavia's rules for a change of a pool whose settings are `current`, in Octavia's
    /// order.
    pub fn check_update(&self, current: &model::PoolTls) -> Decided<()> {
        self.refs()?;
        let crl = match self.crl_container_ref {
            None => current.crl_container_ref.is_some(),
            Some(_) => given(self.crl_container_ref),
        };
        let stored_ca = current.ca_tls_container_ref.is_some();
        match self.ca_tls_container_ref {
            Some(_) if !given(self.ca_tls_container_ref) && stored_ca && crl => {
                return Err(Error::invalid(
                    "A CA reference cannot be removed when a certificate revocation list is \
                     present.",
                ));
            }
            Some(_) if !given(self.ca_tls_container_ref) && crl => {
                return Err(Error::invalid(
                    "A CA reference is required to specify a certificate revocation list.",
                ));
            }
            None if crl && !stored_ca => {
                return Err(Error::invalid(
                    "A CA reference is required to specify a certificate revocation list.",
                ));
            }
            _ => {}
        }
        ciphers(self.tls_ciphers)?;
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
        ciphers(self.tls_ciphers)?;
        if self.tls_enabled == Some(Value::Bool(true)) {
            versions_and_alpn(self.tls_versions, self.alpn_protocols)?;
        }
        Ok(())
    }
}

impl PoolTls<'_> {
    /// The settings a new pool stores, after [`Self::check_create`]: with TLS enabled, Octavia's
    /// default ciphers, versions and ALPN protocols for those it does not set.
    pub fn stored(&self) -> Decided<model::PoolTls> {
        self.updated(&model::PoolTls::default())
    }

    /// `current` with the fields the request gives, after [`Self::check_update`]; a field
    /// given as null goes back to its default.
    pub fn updated(&self, current: &model::PoolTls) -> Decided<model::PoolTls> {
        let mut tls = current.clone();
        if self.tls_enabled.is_some() {
            tls.tls_enabled = flag("tls_enabled", &self.tls_enabled)?;
        }
        if self.tls_container_ref.is_some() {
            tls.tls_container_ref = reference("tls_container_ref", self.tls_container_ref)?;
        }
        if self.ca_tls_container_ref.is_some() {
            tls.ca_tls_container_ref =
                reference("ca_tls_container_ref", self.ca_tls_container_ref)?;
        }
        if self.crl_container_ref.is_some() {
            tls.crl_container_ref = reference("crl_container_ref", self.crl_container_ref)?;
        }
        Protocols {
            ciphers: &mut tls.tls_ciphers,
            versions: &mut tls.tls_versions,
            alpn: &mut tls.alpn_protocols,
        }
        .update(
            self.tls_ciphers,
            self.tls_versions,
            self.alpn_protocols,
            tls.tls_enabled,
        )?;
        Ok(tls)
    }

    /// The references an update makes, with `current`'s CA and revocation list where the
    /// request changes only one of the pair.
    pub fn update_refs(&self, current: &model::PoolTls) -> Decided<TlsRefs> {
        let mut refs = self.refs()?;
        authorities_after(
            &mut refs,
            (
                "ca_tls_container_ref",
                self.ca_tls_container_ref,
                &current.ca_tls_container_ref,
            ),
            (
                "crl_container_ref",
                self.crl_container_ref,
                &current.crl_container_ref,
            ),
        )?;
        Ok(refs)
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

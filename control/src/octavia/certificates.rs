//! Certificate references, as Octavia checks them when a listener names them: each must be a
//! secret of the host's key manager that the caller may read, holding what its field needs (a
//! certificate with its key; a client CA; a revocation list that CA signed). They are resolved
//! before the write lock is taken: reading a PKCS#12 bundle costs its key derivation, and no
//! other write waits on a tenant's bundle.

use std::collections::BTreeMap;
use std::sync::Arc;

use lbaas_keys::{Authority, Bundle, CertError, CertificateInfo};
use zeroize::Zeroizing;

use super::Caller;
use super::tree::Parents;
use crate::model::Secret;
use crate::store::StoreExt as _;
use crate::{ControlPlane, Error};

/// The references one request makes.
#[derive(Debug, Default, Clone)]
pub struct TlsRefs {
    /// Certificates served (the default one and SNI's), each with its key.
    pub certificates: Vec<String>,
    /// Client CAs (clients' certificates must be signed by one), each with the revocation
    /// list of that CA, if any.
    pub authorities: Vec<Authorities>,
    /// The field that named each reference, for faults: the first when several did.
    pub fields: BTreeMap<String, &'static str>,
}

/// A client CA's reference and its revocation list's.
pub type Authorities = (String, Option<String>);

impl TlsRefs {
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty() && self.authorities.is_empty()
    }

    /// Adds `other`'s references (a tree's objects' together).
    pub fn extend(&mut self, other: TlsRefs) {
        self.certificates.extend(other.certificates);
        self.authorities.extend(other.authorities);
        for (reference, field) in other.fields {
            self.fields.entry(reference).or_insert(field);
        }
    }

    /// Notes that `field` named `reference` (unless a field named it already).
    pub fn name(&mut self, field: &'static str, reference: Option<&String>) {
        if let Some(reference) = reference {
            self.fields.entry(reference.clone()).or_insert(field);
        }
    }

    /// `why` with the field that named `reference` in front.
    fn reason(&self, reference: &str, why: impl std::fmt::Display) -> String {
        match self.fields.get(reference) {
            Some(field) => format!("{field}: {why}"),
            None => why.to_string(),
        }
    }

    /// Every reference of `self` is in `resolved`: the caller resolved them before the write.
    /// Otherwise the host's own mistake (a path that skipped [`ControlPlane::resolve_tls`]).
    pub fn ensure_in(&self, resolved: &Resolved) -> Result<(), Error> {
        let served = self
            .certificates
            .iter()
            .all(|r| resolved.certificates.contains_key(r));
        let authorities = self
            .authorities
            .iter()
            .all(|pair| resolved.authorities.contains_key(pair));
        if served && authorities {
            Ok(())
        } else {
            Err(Error::Inconsistent(
                "certificate references were not resolved before the write".into(),
            ))
        }
    }
}

/// The answer when the settings an update's references were resolved against changed before
/// its write: the client tries again.
pub fn changed_meanwhile(what: &str) -> Error {
    Error::conflict(format!(
        "The {what} changed while its certificate references were checked; try again."
    ))
}

/// What the references hold, checked: safe to show, no key byte.
#[derive(Debug, Default, Clone)]
pub struct Resolved {
    /// Each served certificate's reference and what it is.
    pub certificates: BTreeMap<String, CertificateInfo>,
    /// Each client CA (with its revocation list) and what the CA is.
    pub authorities: BTreeMap<Authorities, CertificateInfo>,
}

/// Why a reference names nothing the caller may use.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Unretrievable {
    #[error("not a reference to a secret of this host's key manager")]
    NotAReference,
    #[error("no such secret for this project")]
    NoSuchSecret,
    #[error("the secret has expired")]
    Expired,
    /// The cloud's key manager refused (its reason, which names no key byte).
    #[error("{0}")]
    Refused(String),
    /// The caller holds no token to show the cloud's key manager (a host without Keystone).
    #[error("the key manager needs the caller's token, and this request carries none")]
    NoToken,
}

/// A payload from the cloud's key manager, or why not.
fn external(
    read: Result<Zeroizing<Vec<u8>>, crate::key_manager::Unreadable>,
) -> Result<Result<Zeroizing<Vec<u8>>, Unretrievable>, Error> {
    use crate::key_manager::Unreadable;
    match read {
        Ok(payload) => Ok(Ok(payload)),
        Err(Unreadable::Foreign) => Ok(Err(Unretrievable::NotAReference)),
        Err(Unreadable::Refused(why)) => Ok(Err(Unretrievable::Refused(why))),
        Err(Unreadable::Unavailable(why)) => Err(Error::KeyManagerUnavailable(why)),
    }
}

/// References whose expiry is remembered at most; past it, the memory starts over (jobs and
/// checks fill it again).
const MAX_EXPIRIES_SEEN: usize = 100_000;

/// Octavia's list of references in a fault: Python's list text.
fn listed(references: &[(String, String)]) -> String {
    let names: Vec<String> = references
        .iter()
        .map(|(reference, _)| format!("'{}'", reference.escape_debug()))
        .collect();
    let reasons: Vec<&str> = references.iter().map(|(_, why)| why.as_str()).collect();
    format!("[{}] ({})", names.join(", "), reasons.join("; "))
}

/// The secret id a reference names: `…/secrets/<id>`, as the key store's references are.
fn secret_id(reference: &str) -> Option<&str> {
    let (head, id) = reference.trim_end_matches('/').rsplit_once('/')?;
    (head.ends_with("/secrets") || head == "secrets").then_some(id)
}

/// When a TLS listener's certificates stop being valid: the first of its default and SNI
/// certificates to expire, from its secrets' records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub loadbalancer_id: String,
    pub listener_id: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

impl ControlPlane {
    /// The [`Expiry`] of every listener of `snapshot` that serves certificates whose records
    /// say when they expire.
    pub fn certificate_expiries(
        &self,
        snapshot: &crate::snapshot::Snapshot,
    ) -> Result<Vec<Expiry>, Error> {
        let mut expiries = Vec::new();
        for listener in snapshot.listeners.iter() {
            let tls = &listener.tls;
            let mut first: Option<i64> = None;
            for reference in tls
                .default_tls_container_ref
                .iter()
                .chain(&tls.sni_container_refs)
            {
                let recorded = match secret_id(reference) {
                    Some(id) => self.store.load::<Secret>(id)?.and_then(|s| s.not_after),
                    None => None,
                };
                let not_after = recorded.or_else(|| {
                    let seen = self.expiries_seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.get(reference).copied()
                });
                if let Some(not_after) = not_after {
                    first = Some(first.map_or(not_after, |f| f.min(not_after)));
                }
            }
            if let Some(not_after) = first {
                expiries.push(Expiry {
                    loadbalancer_id: listener.loadbalancer_id.clone(),
                    listener_id: listener.common.id.clone(),
                    not_after,
                });
            }
        }
        Ok(expiries)
    }

    /// Notes when the served certificate `reference` names expires (for references the
    /// host's records do not describe: the metrics read them back).
    pub(crate) fn saw_expiry(&self, reference: &str, not_after: i64) {
        if self.external_keys.is_none() {
            return;
        }
        let mut seen = self.expiries_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_EXPIRIES_SEEN && !seen.contains_key(reference) {
            seen.clear();
        }
        seen.insert(reference.to_owned(), not_after);
    }

    /// Resolves and checks what `refs` name, for `caller`, once the caller has shown it may
    /// change the `parents` the request names ([`super::tree::authorize_parents`]).
    pub async fn resolve_tls(
        self: &Arc<Self>,
        caller: impl Caller + Send + 'static,
        refs: TlsRefs,
        parents: Parents,
    ) -> Result<Resolved, Error> {
        if refs.is_empty() {
            return Ok(Resolved::default());
        }
        let plane = self.clone();
        crate::spawn_blocking(move || {
            super::tree::authorize_parents(&*plane.snapshot()?, &caller, &parents)?;
            plane.resolve_now(&caller, refs)
        })
        .await?
    }

    /// A reference's payload, opened, if the caller may read it; why not, otherwise. A
    /// payload that does not open under the host's key is the host's failure, not a 400. In
    /// the cloud's key manager, the caller lets the host read it (with the caller's token).
    fn payload(
        &self,
        caller: &impl Caller,
        reference: &str,
    ) -> Result<Result<Zeroizing<Vec<u8>>, Unretrievable>, Error> {
        match (&self.external_keys, caller.token()) {
            (Some(keys), Some(token)) => external(keys.grant_and_read(token, reference)),
            (Some(_), None) => Ok(Err(Unretrievable::NoToken)),
            (None, _) => self.secret_payload(reference, |project| caller.can_read(project)),
        }
    }

    /// A reference's payload as the host reads it for a job: the listener or pool that names
    /// it was checked with its caller's rights when it did.
    pub(crate) fn host_payload(
        &self,
        reference: &str,
    ) -> Result<Result<Zeroizing<Vec<u8>>, Unretrievable>, Error> {
        match &self.external_keys {
            Some(keys) => external(keys.read(reference)),
            None => self.secret_payload(reference, |_| true),
        }
    }

    /// A reference's payload, opened, if `may_read` the project that owns it.
    pub(crate) fn secret_payload(
        &self,
        reference: &str,
        may_read: impl FnOnce(&str) -> bool,
    ) -> Result<Result<Zeroizing<Vec<u8>>, Unretrievable>, Error> {
        let Some(id) = secret_id(reference) else {
            return Ok(Err(Unretrievable::NotAReference));
        };
        let secret = match self.store.load::<Secret>(id)? {
            Some(secret) if may_read(&secret.project_id) => secret,
            _ => return Ok(Err(Unretrievable::NoSuchSecret)),
        };
        if crate::secrets::expired(&secret) {
            return Ok(Err(Unretrievable::Expired));
        }
        self.open_secret(&secret).map(Ok)
    }

    fn resolve_now(&self, caller: &impl Caller, mut refs: TlsRefs) -> Result<Resolved, Error> {
        let mut resolved = Resolved::default();
        let mut bad = Vec::new();
        for reference in std::mem::take(&mut refs.certificates) {
            match self.payload(caller, &reference)? {
                Ok(payload) => match Bundle::parse(&payload) {
                    Ok(bundle) => {
                        self.saw_expiry(&reference, bundle.info().not_after);
                        resolved
                            .certificates
                            .insert(reference, bundle.info().clone());
                    }
                    // Octavia answers an unreadable PKCS#12 bundle with its own fault.
                    Err(error @ CertError::Pkcs12(_)) => {
                        return Err(Error::invalid(error.to_string()));
                    }
                    Err(error) => {
                        let why = refs.reason(&reference, error);
                        bad.push((reference, why));
                    }
                },
                Err(why) => {
                    let why = refs.reason(&reference, why);
                    bad.push((reference, why));
                }
            }
        }
        if !bad.is_empty() {
            return Err(Error::invalid(format!(
                "Could not retrieve certificate: {}",
                listed(&bad)
            )));
        }
        for (ca_ref, crl_ref) in std::mem::take(&mut refs.authorities) {
            let info = self.authority(caller, &refs, &ca_ref, crl_ref.as_deref())?;
            resolved.authorities.insert((ca_ref, crl_ref), info);
        }
        Ok(resolved)
    }

    /// Octavia's check of a client CA and its revocation list: both retrievable, the CA a PEM
    /// certificate, the list one that CA signed.
    fn authority(
        &self,
        caller: &impl Caller,
        refs: &TlsRefs,
        ca_ref: &str,
        crl_ref: Option<&str>,
    ) -> Result<CertificateInfo, Error> {
        let ca = self.payload(caller, ca_ref)?;
        let crl = match crl_ref {
            Some(crl_ref) => Some((crl_ref, self.payload(caller, crl_ref)?)),
            None => None,
        };
        let mut bad = Vec::new();
        if let Err(why) = &ca {
            bad.push((ca_ref.to_owned(), refs.reason(ca_ref, why)));
        }
        if let Some((crl_ref, Err(why))) = &crl {
            bad.push(((*crl_ref).to_owned(), refs.reason(crl_ref, why)));
        }
        let (Ok(ca), true) = (ca, bad.is_empty()) else {
            return Err(Error::invalid(format!(
                "Could not retrieve certificate: {}",
                listed(&bad)
            )));
        };
        let authority = Authority::from_pem(&ca).map_err(|e| Error::invalid(e.to_string()))?;
        if let Some((_, Ok(crl))) = crl {
            authority
                .check_crl(&crl)
                .map_err(|e| Error::invalid(e.to_string()))?;
        }
        Ok(authority.info().clone())
    }
}

//! One X.509 certificate, parsed: what the host checks a bundle with, and what may be shown of
//! it to anyone (its subject, names, validity and fingerprint; never a key).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::CertError;

/// What may be said of a certificate without its key: enough for a driver to render a TLS
/// configuration and for an operator to see what is about to expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// The subject's distinguished name, as RFC 4514 writes it.
    pub subject: String,
    /// The subject's common name, lower-cased as Octavia compares host names.
    pub common_name: Option<String>,
    /// The DNS names of the subject-alternative-name extension, in its order.
    pub dns_names: Vec<String>,
    /// Valid from (Unix seconds).
    pub not_before: i64,
    /// Valid until (Unix seconds).
    pub not_after: i64,
    /// SHA-256 of the certificate's DER encoding, lower-case hex.
    pub fingerprint: String,
}

/// A parsed certificate with the parts a bundle is checked with.
#[derive(Clone)]
pub(crate) struct Parsed {
    pub(crate) der: Vec<u8>,
    pub(crate) info: CertificateInfo,
    /// The DER of its subject public key info: compared with the private key's.
    pub(crate) public_key: Vec<u8>,
    /// Raw DER of the subject and issuer names: the chain is walked by these.
    pub(crate) subject: Vec<u8>,
    pub(crate) issuer: Vec<u8>,
}

impl Parsed {
    /// Parses one DER certificate; trailing bytes make it unreadable.
    pub(crate) fn from_der(der: Vec<u8>) -> Result<Self, CertError> {
        let (rest, cert) = X509Certificate::from_der(&der).map_err(|_| CertError::Unreadable)?;
        if !rest.is_empty() {
            return Err(CertError::Unreadable);
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_lowercase);
        let dns_names = match cert.subject_alternative_name() {
            Ok(Some(names)) => names
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(_) => return Err(CertError::Unreadable),
        };
        let info = CertificateInfo {
            subject: cert.subject().to_string(),
            common_name,
            dns_names,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            fingerprint: hex::encode(Sha256::digest(&der)),
        };
        let public_key = cert.public_key().raw.to_vec();
        let subject = cert.subject().as_raw().to_vec();
        let issuer = cert.issuer().as_raw().to_vec();
        Ok(Self {
            info,
            public_key,
            subject,
            issuer,
            der,
        })
    }
}

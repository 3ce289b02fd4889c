//! A client-authentication CA and its revocation list, checked as Octavia checks a listener's
//! `client_ca_tls_container_ref` and `client_crl_container_ref`: the CA is the first PEM
//! certificate of its secret, the CRL a PEM revocation list that CA signed.

use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::certificate::{CertificateInfo, Parsed};

/// Why a CA or CRL cannot be used. The messages are Octavia's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// Not a PEM X.509 certificate.
    #[error(
        "The client authentication CA certificate is invalid. It must be a valid x509 PEM format \
         certificate. Error: {0}"
    )]
    Ca(String),
    /// Not a PEM revocation list.
    #[error(
        "The client authentication certificate revocation list is invalid. It must be a valid \
         x509 PEM format certificate revocation list. Error: {0}"
    )]
    Crl(String),
    /// A revocation list another authority signed.
    #[error("The CRL specified is not valid for client certificate authority reference supplied.")]
    NotSignedByCa,
}

/// A client-authentication CA: the first certificate of a PEM secret.
#[derive(Clone)]
pub struct Authority {
    certificate: Parsed,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Authority")
            .field(&self.certificate.info)
            .finish()
    }
}

/// The first PEM block labelled `label`, decoded; `None` when the bytes are not PEM or hold
/// no such block.
fn first_block(bytes: &[u8], label: &str) -> Option<Vec<u8>> {
    pem::parse_many(bytes)
        .ok()?
        .into_iter()
        .find(|block| block.tag() == label)
        .map(pem::Pem::into_contents)
}

/// Every PEM block labelled `label` in `bytes` (`CERTIFICATE`, `X509 CRL`), encoded again: the
/// file a device gets holds those blocks and nothing else of the secret. `None` when there is
/// none.
pub fn pem_blocks(bytes: &[u8], label: &str) -> Option<String> {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let blocks: Vec<pem::Pem> = pem::parse_many(bytes)
        .ok()?
        .into_iter()
        .filter(|block| block.tag() == label)
        .collect();
    (!blocks.is_empty()).then(|| pem::encode_many_config(&blocks, config))
}

impl Authority {
    /// Reads the CA from a PEM secret.
    pub fn from_pem(bytes: &[u8]) -> Result<Self, AuthorityError> {
        let der = first_block(bytes, "CERTIFICATE")
            .ok_or_else(|| AuthorityError::Ca("no PEM CERTIFICATE block".into()))?;
        let certificate = Parsed::from_der(der).map_err(|e| AuthorityError::Ca(e.to_string()))?;
        Ok(Self { certificate })
    }

    /// What may be shown of it.
    pub fn info(&self) -> &CertificateInfo {
        &self.certificate.info
    }

    /// Checks that `bytes` is a PEM revocation list this CA signed.
    pub fn check_crl(&self, bytes: &[u8]) -> Result<(), AuthorityError> {
        let der = first_block(bytes, "X509 CRL")
            .ok_or_else(|| AuthorityError::Crl("no PEM X509 CRL block".into()))?;
        let (rest, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| AuthorityError::Crl(e.to_string()))?;
        if !rest.is_empty() {
            return Err(AuthorityError::Crl("trailing bytes".into()));
        }
        let (_, ca) = X509Certificate::from_der(&self.certificate.der)
            .map_err(|e| AuthorityError::Ca(e.to_string()))?;
        crl.verify_signature(ca.public_key())
            .map_err(|_| AuthorityError::NotSignedByCa)
    }
}

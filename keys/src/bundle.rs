//! A TLS certificate with its private key and intermediates, read as Octavia reads a
//! certificate reference: a PKCS#12 bundle without a pass phrase (what Octavia recommends
//! storing), or a PEM bundle of the certificate, its key and its intermediates in any order.
//! The certificate is the one the key belongs to; the others must form its chain, and come out
//! in chain order.

use std::fmt;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use zeroize::Zeroizing;

use crate::certificate::{CertificateInfo, Parsed};

/// Why a bundle cannot be used. The first four are Octavia's own faults, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// A PKCS#12 bundle that cannot be read without a pass phrase, or at all.
    #[error(
        "The PKCS12 bundle is unreadable. Please check the PKCS12 bundle validity. In addition, \
         make sure it does not require a pass phrase. Error: {0}"
    )]
    Pkcs12(String),
    /// A certificate that is not X.509 in PEM or DER.
    #[error("Could not read X509 from PEM")]
    Unreadable,
    /// An encrypted private key: the host is given no pass phrase.
    #[error("Passphrase needed to decrypt key but client did not provide one.")]
    NeedsPassphrase,
    /// No certificate of the bundle belongs to its key.
    #[error("Key and x509 certificate do not match")]
    MisMatchedKey,
    /// The bundle holds no certificate.
    #[error("The bundle holds no certificate.")]
    NoCertificate,
    /// The bundle holds no private key.
    #[error("The bundle holds no private key.")]
    NoKey,
    /// More than one private key: which certificate is served would be a guess.
    #[error("The bundle holds {0} private keys; a certificate bundle holds one.")]
    SeveralKeys(usize),
    /// A certificate that is not in the chain from the served certificate.
    #[error("Certificate '{0}' is not in the chain of the certificate its key belongs to.")]
    NotInChain(String),
    /// A key of a kind the host cannot check (or HAProxy serve).
    #[error("The private key cannot be used (RSA, ECDSA P-256 or P-384, or Ed25519 keys can): {0}")]
    UnsupportedKey(String),
    /// A PEM block that belongs in no certificate bundle.
    #[error("A PEM bundle holds CERTIFICATE and PRIVATE KEY blocks, not '{0}'.")]
    UnexpectedBlock(String),
}

/// A private key's DER in one of the encodings PEM bundles use; wiped when dropped.
struct Key {
    der: Zeroizing<Vec<u8>>,
    encoding: KeyEncoding,
}

#[derive(Clone, Copy)]
enum KeyEncoding {
    Pkcs8,
    Pkcs1,
    Sec1,
}

impl KeyEncoding {
    fn label(self) -> &'static str {
        match self {
            KeyEncoding::Pkcs8 => "PRIVATE KEY",
            KeyEncoding::Pkcs1 => "RSA PRIVATE KEY",
            KeyEncoding::Sec1 => "EC PRIVATE KEY",
        }
    }
}

impl Key {
    /// The DER of the key's subject public key info, as a certificate carries it.
    fn public_key(&self) -> Result<Vec<u8>, CertError> {
        // Borrowed: no second copy of the key outlives this call unwiped.
        let bytes = self.der.as_slice();
        let der = match self.encoding {
            KeyEncoding::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(bytes)),
            KeyEncoding::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(bytes)),
            KeyEncoding::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(bytes)),
        };
        let signing = rustls::crypto::ring::sign::any_supported_type(&der)
            .map_err(|e| CertError::UnsupportedKey(e.to_string()))?;
        signing
            .public_key()
            .map(|spki| spki.as_ref().to_vec())
            .ok_or_else(|| CertError::UnsupportedKey("its public key cannot be derived".into()))
    }
}

/// A certificate, its chain and its private key, checked: the key belongs to the certificate
/// and every other certificate is in its chain. Its `Debug` shows no key byte.
pub struct Bundle {
    certificate: Parsed,
    intermediates: Vec<Parsed>,
    key: Key,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("certificate", &self.certificate.info)
            .field("intermediates", &self.intermediates.len())
            .finish_non_exhaustive()
    }
}

/// The longest PEM label echoed in a fault.
const LABEL_SHOWN: usize = 64;

impl Bundle {
    /// Reads a PEM bundle (text with `-----BEGIN`) or else a PKCS#12 bundle.
    pub fn parse(bytes: &[u8]) -> Result<Self, CertError> {
        if bytes.windows(11).any(|window| window == b"-----BEGIN ") {
            Self::from_pem(bytes)
        } else {
            Self::from_pkcs12(bytes)
        }
    }

    /// Reads a PKCS#12 bundle protected by no pass phrase (or the empty one), as Octavia does.
    pub fn from_pkcs12(bytes: &[u8]) -> Result<Self, CertError> {
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(bytes, "")
            .map_err(|e| CertError::Pkcs12(e.to_string()))?;
        let keys = archive
            .keys
            .iter()
            .map(|bag| Key {
                der: Zeroizing::new(bag.key.as_der().to_vec()),
                encoding: KeyEncoding::Pkcs8,
            })
            .collect();
        let certificates = archive
            .certs
            .iter()
            .map(|bag| bag.cert.as_der().to_vec())
            .collect();
        Self::assemble(certificates, keys)
    }

    /// Reads a PEM bundle: `CERTIFICATE` blocks and one unencrypted private key.
    pub fn from_pem(bytes: &[u8]) -> Result<Self, CertError> {
        let blocks = pem::parse_many(bytes).map_err(|_| CertError::Unreadable)?;
        let mut certificates = Vec::new();
        let mut keys = Vec::new();
        for block in blocks {
            let encoding = match block.tag() {
                "CERTIFICATE" => {
                    certificates.push(block.into_contents());
                    continue;
                }
                "ENCRYPTED PRIVATE KEY" => return Err(CertError::NeedsPassphrase),
                // The traditional encrypted form says so in a header.
                _ if block.headers().get("Proc-Type").is_some() => {
                    return Err(CertError::NeedsPassphrase);
                }
                "PRIVATE KEY" => KeyEncoding::Pkcs8,
                "RSA PRIVATE KEY" => KeyEncoding::Pkcs1,
                "EC PRIVATE KEY" => KeyEncoding::Sec1,
                other => {
                    let shown: String = other.chars().take(LABEL_SHOWN).collect();
                    return Err(CertError::UnexpectedBlock(shown));
                }
            };
            keys.push(Key {
                der: Zeroizing::new(block.into_contents()),
                encoding,
            });
        }
        Self::assemble(certificates, keys)
    }

    /// Finds the certificate the key belongs to and puts the others in chain order from it.
    fn assemble(certificates: Vec<Vec<u8>>, mut keys: Vec<Key>) -> Result<Self, CertError> {
        let mut others = certificates
            .into_iter()
            .map(Parsed::from_der)
            .collect::<Result<Vec<_>, _>>()?;
        if others.is_empty() {
            return Err(CertError::NoCertificate);
        }
        let key = match keys.len() {
            0 => return Err(CertError::NoKey),
            1 => keys.remove(0),
            n => return Err(CertError::SeveralKeys(n)),
        };
        let public_key = key.public_key()?;
        let served = others
            .iter()
            .position(|cert| cert.public_key == public_key)
            .ok_or(CertError::MisMatchedKey)?;
        let certificate = others.remove(served);
        // The same certificate twice (PKCS#12 tools may add the leaf again) is one.
        others.retain(|cert| cert.der != certificate.der);
        let mut intermediates: Vec<Parsed> = Vec::new();
        loop {
            let last = intermediates.last().unwrap_or(&certificate);
            if last.issuer == last.subject {
                break;
            }
            let Some(next) = others.iter().position(|cert| cert.subject == last.issuer) else {
                break;
            };
            let next = others.remove(next);
            others.retain(|cert| cert.der != next.der);
            intermediates.push(next);
        }
        if let Some(stray) = others.first() {
            return Err(CertError::NotInChain(stray.info.subject.clone()));
        }
        Ok(Self {
            certificate,
            intermediates,
            key,
        })
    }

    /// What may be shown of the served certificate.
    pub fn info(&self) -> &CertificateInfo {
        &self.certificate.info
    }

    /// What may be shown of the intermediates, in chain order.
    pub fn intermediates(&self) -> impl Iterator<Item = &CertificateInfo> {
        self.intermediates.iter().map(|cert| &cert.info)
    }

    /// The certificate, its intermediates in chain order, then its key, in PEM: the file an
    /// HAProxy `crt` argument names. Wiped when dropped.
    pub fn pem(&self) -> Zeroizing<String> {
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        let mut out = Zeroizing::new(String::new());
        for cert in std::iter::once(&self.certificate).chain(&self.intermediates) {
            out.push_str(&pem::encode_config(
                &pem::Pem::new("CERTIFICATE", cert.der.clone()),
                config,
            ));
        }
        let key = Zeroizing::new(pem::encode_config(
            &pem::Pem::new(self.key.encoding.label(), self.key.der.to_vec()),
            config,
        ));
        out.push_str(&key);
        out
    }
}

//! Which driver components the host agrees to run: pinned by SHA-256, signed with ed25519 by
//! a vendor key the operator trusts.
//!
//! A signature is 64 bytes, hex-encoded, over the exact bytes of the `.wasm` (manifest
//! included), kept beside it as `<file>.wasm.sig`. Keys are 32-byte ed25519 public keys,
//! hex-encoded in a file; `lbaasd driver keygen` makes a pair and `lbaasd driver sign` signs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The operator's rules for driver components.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: Vec<(String, VerifyingKey)>,
    require_signatures: bool,
    /// When set, only components with one of these SHA-256 digests run.
    pins: Option<BTreeSet<String>>,
}

/// Why a component may not run, or the trust could not be set up: each refusal a variant, the
/// operator's words in its `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {reason}", path.display())]
    Unreadable {
        /// What the file was to hold (a key, a signature, a component).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why, in the system's words.
        reason: String,
    },
    /// A key or signature file does not hold hex.
    #[error("{what} {} is not hex", path.display())]
    NotHex {
        /// What the file was to hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A key or signature file holds the wrong number of bytes.
    #[error("{what} {} is not {len} bytes", path.display())]
    WrongLength {
        /// What the file was to hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The bytes it should hold.
        len: usize,
    },
    /// A public key file holds no ed25519 key.
    #[error("public key {} is not an ed25519 key: {reason}", path.display())]
    NotAKey {
        /// The file.
        path: PathBuf,
        /// Why, in ed25519's words.
        reason: String,
    },
    /// Signatures are required and no key is trusted.
    #[error("signatures are required but no key is trusted (--trusted-key FILE)")]
    NoTrustedKey,
    /// A pin is not a SHA-256 digest.
    #[error("pin `{0}` is not a SHA-256 digest (64 hex digits)")]
    BadPin(String),
    /// Pins are set and the component's digest is not among them.
    #[error("its SHA-256 {0} is not pinned")]
    NotPinned(String),
    /// The component has no signature and signatures are required.
    #[error("it is unsigned, and this host requires signatures")]
    Unsigned,
    /// The signature file is not a signature.
    #[error("its signature is not 64 hex-encoded bytes")]
    MalformedSignature,
    /// No trusted key verifies the signature.
    #[error("its signature does not verify with any trusted key ({trusted} trusted)")]
    BadSignature {
        /// How many keys were tried.
        trusted: usize,
    },
    /// The system gave no randomness for a new key.
    #[error("no randomness: {0}")]
    NoRandomness(String),
}

/// Why a component may run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Accepted {
    /// The component's SHA-256.
    pub sha256: String,
    /// The id of the trusted key that signed it.
    pub signed_by: Option<String>,
}

pub use lbaas_core::key_id;

fn read_hex<const N: usize>(path: &Path, what: &'static str) -> Result<[u8; N], TrustError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrustError::Unreadable {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let bytes = hex::decode(text.trim()).map_err(|_| TrustError::NotHex {
        what,
        path: path.to_owned(),
    })?;
    bytes.try_into().map_err(|_| TrustError::WrongLength {
        what,
        path: path.to_owned(),
        len: N,
    })
}

pub use lbaas_core::signature_path;

impl Trust {
    /// Trusts the public keys in `key_files`, requires signatures when asked, and pins
    /// `pins` (SHA-256 digests, hex) when any are given.
    pub fn new(
        key_files: &[PathBuf],
        require_signatures: bool,
        pins: &[String],
    ) -> Result<Self, TrustError> {
        let mut keys = Vec::new();
        for path in key_files {
            let key = public_key_file(path)?;
            keys.push((key_id(&key), key));
        }
        if require_signatures && keys.is_empty() {
            return Err(TrustError::NoTrustedKey);
        }
        let pins = if pins.is_empty() {
            None
        } else {
            let mut set = BTreeSet::new();
            for pin in pins {
                let pin = pin.trim().to_ascii_lowercase();
                if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(TrustError::BadPin(pin));
                }
                set.insert(pin);
            }
            Some(set)
        };
        Ok(Self {
            keys,
            require_signatures,
            pins,
        })
    }

    /// Checks `bytes` against the pins and, if it has one, its signature (hex text).
    pub fn check(&self, bytes: &[u8], signature: Option<&str>) -> Result<Accepted, TrustError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(pins) = &self.pins
            && !pins.contains(&sha256)
        {
            return Err(TrustError::NotPinned(sha256));
        }
        let signed_by = match signature {
            None if self.require_signatures => {
                return Err(TrustError::Unsigned);
            }
            None => None,
            // Trusting no key, the host has nothing to check a signature against.
            Some(_) if self.keys.is_empty() => None,
            Some(text) => {
                let bytes_sig: [u8; 64] = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or(TrustError::MalformedSignature)?;
                let signature = Signature::from_bytes(&bytes_sig);
                let signer = self
                    .keys
                    .iter()
                    .find(|(_, key)| key.verify_strict(bytes, &signature).is_ok());
                match signer {
                    Some((id, _)) => Some(id.clone()),
                    None => {
                        return Err(TrustError::BadSignature {
                            trusted: self.keys.len(),
                        });
                    }
                }
            }
        };
        Ok(Accepted { sha256, signed_by })
    }

    /// Reads `path` and its signature, if any, and checks them; returns the bytes.
    pub fn check_file(&self, path: &Path) -> Result<(Vec<u8>, Accepted), TrustError> {
        let bytes = std::fs::read(path).map_err(|e| TrustError::Unreadable {
            what: "component",
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let signature = std::fs::read_to_string(signature_path(path)).ok();
        let accepted = self.check(&bytes, signature.as_deref())?;
        Ok((bytes, accepted))
    }
}

/// A new key pair: the secret key's hex, the public key's hex.
pub fn keygen() -> Result<(String, String), TrustError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| TrustError::NoRandomness(e.to_string()))?;
    let key = SigningKey::from_bytes(&secret);
    Ok((
        hex::encode(secret),
        hex::encode(key.verifying_key().as_bytes()),
    ))
}

pub use lbaas_core::secret_file;

/// The ed25519 key whose secret is in `path` (as `driver keygen` writes it), created when
/// missing.
pub fn signing_key_file(path: &Path) -> std::io::Result<SigningKey> {
    secret_file(path).map(|secret| SigningKey::from_bytes(&secret))
}

/// The ed25519 public key in `path` (hex).
pub fn public_key_file(path: &Path) -> Result<VerifyingKey, TrustError> {
    let bytes = read_hex::<32>(path, "public key")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| TrustError::NotAKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Signs `bytes` with the secret key in `key_file`; the signature's hex.
pub fn sign(key_file: &Path, bytes: &[u8]) -> Result<String, TrustError> {
    let secret = read_hex::<32>(key_file, "secret key")?;
    let key = SigningKey::from_bytes(&secret);
    Ok(hex::encode(key.sign(bytes).to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (secret, public) = keygen().expect("keygen");
        let (s, p) = (dir.join(name), dir.join(format!("{name}.pub")));
        std::fs::write(&s, secret).expect("write");
        std::fs::write(&p, public).expect("write");
        (s, p)
    }

    #[test]
    fn signatures_pins_and_policy() {
        let dir = tempfile::tempdir().expect("dir");
        let (vendor, vendor_pub) = keys(dir.path(), "vendor");
        let (stranger, _) = keys(dir.path(), "stranger");
        let bytes = b"\0asm component bytes".to_vec();
        let good = sign(&vendor, &bytes).expect("sign");
        let forged = sign(&stranger, &bytes).expect("sign");

        let open = Trust::new(std::slice::from_ref(&vendor_pub), false, &[]).expect("trust");
        let accepted = open.check(&bytes, Some(&good)).expect("signed");
        assert!(accepted.signed_by.is_some());
        assert_eq!(
            open.check(&bytes, None)
                .expect("unsigned is fine")
                .signed_by,
            None
        );
        assert!(
            open.check(&bytes, Some(&forged))
                .is_err_and(|e| matches!(e, TrustError::BadSignature { trusted: 1 }))
        );
        let mut tampered = bytes.clone();
        tampered[5] ^= 1;
        assert!(
            open.check(&tampered, Some(&good))
                .is_err_and(|e| matches!(e, TrustError::BadSignature { .. }))
        );
        assert!(
            open.check(&bytes, Some("zz"))
                .is_err_and(|e| e == TrustError::MalformedSignature)
        );

        let strict = Trust::new(std::slice::from_ref(&vendor_pub), true, &[]).expect("trust");
        assert!(
            strict
                .check(&bytes, None)
                .is_err_and(|e| e == TrustError::Unsigned)
        );
        assert!(
            Trust::new(&[], true, &[]).is_err_and(|e| e == TrustError::NoTrustedKey),
            "requiring signatures needs a key"
        );

        let pinned = Trust::new(&[], false, std::slice::from_ref(&accepted.sha256)).expect("trust");
        assert!(pinned.check(&bytes, None).is_ok());
        assert!(
            pinned
                .check(&tampered, None)
                .is_err_and(|e| matches!(e, TrustError::NotPinned(_)))
        );
        assert!(
            Trust::new(&[], false, &["abc".into()])
                .is_err_and(|e| e == TrustError::BadPin("abc".into()))
        );
    }
}

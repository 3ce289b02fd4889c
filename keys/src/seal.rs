//! Secrets sealed at rest: XChaCha20-Poly1305 under a 32-byte key the host keeps in a file
//! outside its database, bound to the record they belong to. Whoever reads the database (a
//! backup, a PostgreSQL administrator) reads no secret; whoever can write it cannot move a
//! sealed secret to another record, or change one, without its opening failing.

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// The format of what [`Sealer::seal`] writes: this byte, the 24-byte nonce, the ciphertext.
const FORMAT: u8 = 1;
const NONCE: usize = 24;

/// Why a sealed secret cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Written in a format this host does not read.
    #[error("the secret was sealed in format {0}; this host reads format 1")]
    Format(u8),
    /// Shorter than a nonce and a tag.
    #[error("the sealed secret is truncated")]
    Truncated,
    /// Sealed under another key, for another record, or changed at rest.
    #[error(
        "the secret cannot be opened with this host's key (sealed under another key, for another \
         record, or changed at rest)"
    )]
    Opening,
}

/// Seals and opens secrets under one key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// A sealer under `key` (the host's, from [`lbaas_core::secret_file`] or its like).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Seals `secret` for the record `context` names (its kind and id, say): opening it under
    /// any other context fails.
    pub fn seal(&self, context: &str, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        // The operating system's generator; a host that cannot read it cannot run at all.
        getrandom::fill(&mut nonce).unwrap_or_else(|e| panic!("no random numbers: {e}"));
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 seals any length in memory"));
        let mut out = Vec::with_capacity(1 + NONCE + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`Sealer::seal`] sealed for `context`. Wiped when dropped.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (&format, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
        if format != FORMAT {
            return Err(SealError::Format(format));
        }
        if rest.len() < NONCE + 16 {
            return Err(SealError::Truncated);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Opening)
    }
}

//! Where the secrets listeners and pools name are kept: the host's own store (the embedded
//! default, [`crate::secrets`]) or a key manager of the cloud (Barbican), which the host reads
//! with its own identity once the caller let it ([`ExternalKeys`]).

use zeroize::Zeroizing;

/// A key manager outside the host. Both calls block (they are made off the async threads: a
/// reference check before the write, a job configuring a device).
pub trait ExternalKeys: Send + Sync + std::fmt::Debug {
    /// With the caller's token: lets the host read what `reference` names (as Octavia sets
    /// Barbican's ACL), then reads it as the host. Fails when the caller may not manage it.
    fn grant_and_read(
        &self,
        caller_token: &str,
        reference: &str,
    ) -> Result<Zeroizing<Vec<u8>>, Unreadable>;

    /// Reads what `reference` names as the host, for a job of a listener that named it.
    fn read(&self, reference: &str) -> Result<Zeroizing<Vec<u8>>, Unreadable>;
}

/// Who the host is to the cloud's services (its Keystone user), for calls it makes as itself.
/// Both calls block. Errors are the reason, in words.
pub trait HostIdentity: Send + Sync {
    /// The host's token; issued afresh when `renew` (another service said the last one
    /// stopped working).
    fn token(&self, renew: bool) -> Result<String, String>;
    /// The host's user id, as access lists name it.
    fn user_id(&self) -> Result<String, String>;
}

/// Why an external key manager gave nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unreadable {
    /// Not a reference to this key manager's secrets: nothing was asked of anyone.
    #[error("not a reference to a secret of this host's key manager")]
    Foreign,
    /// The key manager refused, or has no such secret.
    #[error("{0}")]
    Refused(String),
    /// The key manager could not be asked, or answered nonsense.
    #[error("the key manager is unavailable: {0}")]
    Unavailable(String),
}

//! The host's own 32-byte secrets, each kept in a file of its own outside the database (mode
//! 0600): the compiled-code cache's HMAC key, the audit checkpoints' signing key, the key the
//! local key manager seals secrets under.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// The 32-byte secret in `path` (hex), created at random with mode 0600 when missing.
pub fn secret_file(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let mut secret = [0u8; 32];
        return hex::decode_to_slice(text.trim(), &mut secret)
            .map(|()| secret)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)?
        .write_all(hex::encode(secret).as_bytes())?;
    Ok(secret)
}

//! A load balancer's certificate files on the device: what HAProxy's `crt`, `ca-file` and
//! `crl-file` arguments name, and the only files a configuration may name at all
//! ([`crate::policy`] checks every such argument against [`path`]). The host alone sends them,
//! during that load balancer's own job, with its scope; they hold key material, so each is mode
//! 0600 in a folder of the agent's own (mode 0700), written whole or not at all, and removed
//! with the load balancer.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use axum::http::StatusCode;

/// Largest certificate file (a certificate with a long chain and its key is a few KiB).
pub const MAX_BYTES: usize = 64 << 10;

/// Certificate files one load balancer keeps at most. Its listeners and pools name a few each,
/// and files its configuration no longer names are removed at each install ([`prune`]), so
/// only a sender that names files no configuration uses reaches it.
pub const MAX_FILES: usize = 1_024;

/// PEM blocks a certificate file may hold.
const LABELS: [&str; 5] = [
    "CERTIFICATE",
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "X509 CRL",
];

/// Why a certificate file was not stored.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("a certificate name is 1 to 64 letters, digits, `-` or `_`")]
    Name,
    #[error("a certificate file is at most {MAX_BYTES} bytes")]
    TooLarge,
    #[error("a certificate file is PEM: {0}")]
    NotPem(String),
    #[error(
        "a certificate file holds certificates, one private key and revocation lists, not `{0}`"
    )]
    Block(String),
    #[error("no certificate {0} is stored for this load balancer")]
    Missing(String),
    #[error("a load balancer keeps at most {MAX_FILES} certificate files")]
    TooMany,
    #[error("agent storage: {0}")]
    Storage(#[from] std::io::Error),
}

impl Refused {
    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        match self {
            Refused::Name | Refused::NotPem(_) | Refused::Block(_) => StatusCode::BAD_REQUEST,
            Refused::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refused::Missing(_) => StatusCode::NOT_FOUND,
            Refused::TooMany => StatusCode::INSUFFICIENT_STORAGE,
            Refused::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Where every load balancer's certificate folder is.
pub fn root(state_dir: &Path) -> PathBuf {
    state_dir.join("certs")
}

/// The file `name` of load balancer `id` (both plain tokens, checked by the caller).
pub fn path(root: &Path, id: &str, name: &str) -> PathBuf {
    root.join(id).join(format!("{name}.pem"))
}

/// A certificate name: it becomes a file name.
pub fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks `body` and stores it as certificate `name` of load balancer `id`.
/// Stores certificate `name` of load balancer `id`; answers whether its content changed.
pub fn store(state_dir: &Path, id: &str, name: &str, body: &[u8]) -> Result<bool, Refused> {
    if !name_ok(name) {
        return Err(Refused::Name);
    }
    if body.len() > MAX_BYTES {
        return Err(Refused::TooLarge);
    }
    let blocks = pem::parse_many(body).map_err(|e| Refused::NotPem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(Refused::NotPem("no PEM block".into()));
    }
    if let Some(other) = blocks.iter().find(|b| !LABELS.contains(&b.tag())) {
        return Err(Refused::Block(other.tag().chars().take(64).collect()));
    }
    let folder = root(state_dir).join(id);
    fs::create_dir_all(&folder)?;
    fs::set_permissions(root(state_dir), fs::Permissions::from_mode(0o700))?;
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o700))?;
    let target = path(&root(state_dir), id, name);
    match fs::read(&target) {
        Ok(stored) if stored == body => return Ok(false),
        Ok(_) => {}
        Err(_) if stored_names(&folder)?.len() >= MAX_FILES => return Err(Refused::TooMany),
        Err(_) => {}
    }
    let partial = folder.join(format!(".{name}.partial"));
    let _ = fs::remove_file(&partial);
    let mut file = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(body)?;
    file.sync_all()?;
    fs::rename(&partial, &target)?;
    Ok(true)
}

/// Removes certificate `name` of load balancer `id`.
pub fn remove(state_dir: &Path, id: &str, name: &str) -> Result<(), Refused> {
    if !name_ok(name) {
        return Err(Refused::Name);
    }
    match fs::remove_file(path(&root(state_dir), id, name)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Refused::Missing(name.into())),
        Err(e) => Err(e.into()),
    }
}

/// The names of the certificate files in `folder` (a load balancer's).
fn stored_names(folder: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(folder)? {
        let file = entry?.file_name();
        if let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".pem")) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Removes the certificate files of load balancer `id` that `config`, just installed, does not
/// name (as `<id>/<name>.pem`): a listener or pool that went takes its keys off the device, and
/// files sent for nothing do not stay. Answers how many went.
pub fn prune(state_dir: &Path, id: &str, config: &str) -> std::io::Result<usize> {
    let folder = root(state_dir).join(id);
    let names = match stored_names(&folder) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for name in names {
        if !config.contains(&format!("{id}/{name}.pem")) {
            fs::remove_file(folder.join(format!("{name}.pem")))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes every certificate of load balancer `id`.
pub fn remove_all(state_dir: &Path, id: &str) -> std::io::Result<()> {
    match fs::remove_dir_all(root(state_dir).join(id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &[u8] = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_load_balancer_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        for n in 0..MAX_FILES {
            assert!(store(dir.path(), "lb", &format!("f{n}"), PEM).expect("stored"));
        }
        assert!(matches!(
            store(dir.path(), "lb", "one-more", PEM),
            Err(Refused::TooMany)
        ));
        // A file it has may still change, and another load balancer is not counted with it.
        let changed = [PEM, PEM].concat();
        assert!(store(dir.path(), "lb", "f0", &changed).expect("replaced"));
        assert!(store(dir.path(), "other", "f0", PEM).expect("stored"));
    }

    #[test]
    fn files_the_configuration_does_not_name_are_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["l1-crt-0", "l1-ca", "gone-crt-0", "unused"] {
            store(dir.path(), "lb", name, PEM).expect("stored");
        }
        store(dir.path(), "lb2", "gone-crt-0", PEM).expect("stored");
        let config =
            "bind :443 ssl crt lb/l1-crt-0.pem ca-file /x/certs/lb/l1-ca.pem verify required";
        assert_eq!(prune(dir.path(), "lb", config).expect("pruned"), 2);
        let mut left = stored_names(&root(dir.path()).join("lb")).expect("names");
        left.sort();
        assert_eq!(left, ["l1-ca", "l1-crt-0"]);
        // Another load balancer's files are its own business.
        assert_eq!(
            stored_names(&root(dir.path()).join("lb2")).expect("names"),
            ["gone-crt-0"]
        );
        assert_eq!(prune(dir.path(), "none", config).expect("nothing"), 0);
    }
}

//! Compiled components cached on disk, keyed by the SHA-256 of the component and the engine's
//! compatibility hash, so a restart deserialises instead of recompiling.
//!
//! Deserialising runs native code the file describes, so a cached file is used only if its
//! bytes carry the tag written beside it (`<name>.cwasm.mac`): an HMAC-SHA-256 under a secret
//! key kept outside the cache folder (`<cache folder>.key`, mode 0600). Whoever can rewrite the
//! cache folder cannot forge a tag, so swapping both files for another compiled component is
//! caught like any other change: the entry is deleted, reported, and the component compiled
//! again.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
    /// The secret the tags are made with; never in the cache folder.
    secret: [u8; 32],
}

/// What the cache had for a component.
pub enum Lookup {
    Hit(Component),
    Miss,
    /// An entry was there but not trustworthy (its tag does not match, or it does not
    /// deserialise): deleted; the reason.
    Rejected(String),
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Compiled from the component's bytes.
    Compiled,
    /// Read from the on-disk cache.
    Cache,
}

impl ComponentCache {
    pub fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // Compiled code is executed: nobody but the host may read or replace it.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
            secret: crate::integrity::secret_file(&Self::key_path(dir))?,
        })
    }

    /// `<cache folder>.key`: beside the folder, not in it.
    fn key_path(dir: &Path) -> PathBuf {
        let mut name = dir.as_os_str().to_owned();
        name.push(".key");
        PathBuf::from(name)
    }

    /// The tag of `bytes` cached for `sha256`: it binds the compiled code to the component
    /// it was compiled from, under the secret.
    fn tag(&self, sha256: &str, bytes: &[u8]) -> Hmac<Sha256> {
        // Any key length is accepted by HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(sha256.as_bytes());
        mac.update(&[0]);
        mac.update(bytes);
        mac
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    fn tag_path(path: &Path) -> PathBuf {
        path.with_extension("cwasm.mac")
    }

    fn discard(path: &Path, why: &str) {
        tracing::warn!(path = %path.display(), why, "discarding a cached component; compiling again");
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(Self::tag_path(path));
    }

    /// The cached component for `sha256`, if there is a trustworthy one.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Lookup {
        let path = self.path(sha256);
        let Ok(bytes) = std::fs::read(&path) else {
            return Lookup::Miss;
        };
        let recorded = std::fs::read_to_string(Self::tag_path(&path)).unwrap_or_default();
        let mut tag = [0u8; 32];
        let verified = hex::decode_to_slice(recorded.trim(), &mut tag).is_ok()
            && self.tag(sha256, &bytes).verify_slice(&tag).is_ok();
        if !verified {
            let why = "its bytes do not carry the tag written with them (altered or swapped)";
            Self::discard(&path, why);
            return Lookup::Rejected(why.into());
        }
        // SAFETY: the bytes are exactly those `store` below wrote from `Component::serialize`
        // of this engine configuration for this component (the name carries the engine's
        // compatibility hash; the tag, under a secret kept outside the folder, binds the bytes
        // to the component's SHA-256); wasmtime also checks the header and version on load.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, &bytes) };
        match loaded {
            Ok(component) => Lookup::Hit(component),
            Err(error) => {
                let why = error.to_string();
                Self::discard(&path, &why);
                Lookup::Rejected(why)
            }
        }
    }

    /// Writes the compiled form of `component` atomically. Failure only costs a recompile.
    pub fn store(&self, sha256: &str, component: &Component) {
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| {
                let path = self.path(sha256);
                let partial = path.with_extension(format!("partial-{}", std::process::id()));
                // The tag first: a crash in between leaves a mismatch, never a file that is
                // trusted without one.
                std::fs::write(
                    Self::tag_path(&path),
                    hex::encode(self.tag(sha256, &bytes).finalize().into_bytes()),
                )?;
                std::fs::write(&partial, &bytes)?;
                std::fs::rename(&partial, &path)
            });
        if let Err(error) = result {
            tracing::warn!(%error, "cannot cache compiled component");
        }
    }
}

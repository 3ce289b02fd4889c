//! Compiled components cached on disk, keyed by the SHA-256 of the component and the engine's
//! compatibility hash, so a restart deserialises instead of recompiling.
//!
//! Deserialising runs native code the file describes, so a cached file is used only if its
//! bytes still have the SHA-256 recorded beside it (`<name>.cwasm.sha256`) when it was written;
//! a file that was altered, truncated or swapped is deleted and the component compiled again.
//! (Someone able to rewrite both files in the host's data folder can also rewrite the database;
//! the folder must be the host's alone.)

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Compiled,
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
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    fn digest_path(path: &Path) -> PathBuf {
        path.with_extension("cwasm.sha256")
    }

    fn discard(path: &Path, why: &str) {
        tracing::warn!(path = %path.display(), why, "discarding a cached component; compiling again");
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(Self::digest_path(path));
    }

    /// The cached component for `sha256`, or `None` when absent or unusable.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path).ok()?;
        let recorded = std::fs::read_to_string(Self::digest_path(&path)).unwrap_or_default();
        if hex::encode(Sha256::digest(&bytes)) != recorded.trim() {
            Self::discard(
                &path,
                "its bytes do not match the digest recorded when it was written",
            );
            return None;
        }
        // SAFETY: the bytes are exactly those `store` below wrote from `Component::serialize`
        // of this engine configuration (the name carries the engine's compatibility hash, the
        // digest file their SHA-256), in a folder owned by the host; wasmtime also checks the
        // header and version on load.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, &bytes) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                Self::discard(&path, &error.to_string());
                None
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
                // The digest first: a crash in between leaves a mismatch, never a file that
                // is trusted without one.
                std::fs::write(
                    Self::digest_path(&path),
                    hex::encode(Sha256::digest(&bytes)),
                )?;
                std::fs::write(&partial, &bytes)?;
                std::fs::rename(&partial, &path)
            });
        if let Err(error) = result {
            tracing::warn!(%error, "cannot cache compiled component");
        }
    }
}

//! Compiled components cached on disk, keyed by the SHA-256 of the component and the engine's
//! compatibility hash, so a restart deserialises instead of recompiling.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

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

    /// The cached component for `sha256`, or `None` when absent or unusable.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store` below from `Component::serialize` of this
        // engine configuration (the name carries the engine's compatibility hash), into a
        // directory owned by the host; wasmtime checks the header and version on load.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable cached component");
                let _ = std::fs::remove_file(&path);
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
                std::fs::write(&partial, bytes)?;
                std::fs::rename(&partial, &path)
            });
        if let Err(error) = result {
            tracing::warn!(%error, "cannot cache compiled component");
        }
    }
}

//! Directory mode: the driver folder an operator drops components into. Each new or changed
//! `*.wasm` file (a signature beside it as `FILE.wasm.sig`) is uploaded and activated through
//! the same lifecycle steps as the admin API's; a file already uploaded is activated only if
//! its driver has no active version. A file that fails any check is refused, audited and
//! logged, and the running version stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::lifecycle::{LifecycleError, Step};
use crate::error::Error;
use crate::integrity;
use crate::plane::ControlPlane;
use crate::tasks::Stop;

/// What happened to one file of the driver folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Uploaded and activated.
    Activated {
        name: String,
        version: String,
        sha256: String,
    },
    /// Already known; nothing to do.
    Known {
        sha256: String,
    },
    Refused {
        reason: String,
    },
}

impl ControlPlane {
    /// Uploads and activates each of `files` in turn; what each became is logged (and, when
    /// refused, audited).
    pub async fn sync_driver_files(self: &Arc<Self>, files: &[PathBuf]) -> Vec<FileOutcome> {
        let mut outcomes = Vec::with_capacity(files.len());
        for path in files {
            let outcome = self.sync_driver_file(path).await;
            match &outcome {
                Ok(FileOutcome::Activated {
                    name,
                    version,
                    sha256,
                }) => {
                    tracing::info!(file = %path.display(), driver = name, version, sha256, "driver file activated");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "driver file refused; the running version stays");
                }
            }
            outcomes.push(outcome.unwrap_or_else(|error| FileOutcome::Refused {
                reason: error.to_string(),
            }));
        }
        outcomes
    }

    async fn sync_driver_file(self: &Arc<Self>, path: &Path) -> Result<FileOutcome, Error> {
        if !self.drivers.is_managed() {
            return Err(LifecycleError::Unmanaged.into());
        }
        let (read, signature) = (path.to_owned(), integrity::signature_path(path));
        let (bytes, signature) = self
            .blocking(move || {
                (
                    std::fs::read(&read),
                    std::fs::read_to_string(signature).ok(),
                )
            })
            .await?;
        let bytes = bytes
            .map_err(|e| LifecycleError::Refused(format!("cannot read {}: {e}", path.display())))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let source = format!("directory {}", path.display());
        let (name, version) = match self.drivers.find_sha(&sha256) {
            Some((name, _)) if self.drivers.get(&name).is_some() => {
                return Ok(FileOutcome::Known { sha256 });
            }
            Some(known) => known,
            None => {
                let (record, version) = self.upload_driver(bytes, signature, &source).await?;
                (record.name, version.version)
            }
        };
        match self
            .driver_step(&name, Step::Activate(sha256.clone()), &source)
            .await
        {
            Ok(_) | Err(Error::Lifecycle(LifecycleError::AlreadyActive { .. })) => {
                Ok(FileOutcome::Activated {
                    name,
                    version,
                    sha256,
                })
            }
            Err(error) => Err(error),
        }
    }
}

/// The `.wasm` files of `dir`, oldest first (so the newest file of a driver ends active).
pub fn wasm_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, Fingerprint)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "wasm") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let fingerprint = Fingerprint {
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        files.push((path, fingerprint));
    }
    files.sort_by(|a, b| (a.1.modified, &a.0).cmp(&(b.1.modified, &b.0)));
    Ok(files)
}

/// What tells a changed file from an unchanged one without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

/// The driver folder and what was last seen in it.
pub struct FolderWatch {
    dir: PathBuf,
    seen: HashMap<PathBuf, Fingerprint>,
}

impl FolderWatch {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            seen: HashMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Uploads and activates every new or changed file. A file is retried only once it
    /// changes again.
    pub async fn scan(&mut self, plane: &Arc<ControlPlane>) -> Vec<FileOutcome> {
        let dir = self.dir.clone();
        let files = match plane.blocking(move || wasm_files(&dir)).await {
            Ok(Ok(files)) => files,
            Ok(Err(error)) => {
                tracing::error!(dir = %self.dir.display(), %error, "cannot read the driver folder");
                return Vec::new();
            }
            Err(error) => {
                tracing::error!(%error, "cannot look at the driver folder");
                return Vec::new();
            }
        };
        let changed: Vec<PathBuf> = files
            .iter()
            .filter(|(path, print)| self.seen.get(path) != Some(print))
            .map(|(path, _)| path.clone())
            .collect();
        self.seen = files.into_iter().collect();
        if changed.is_empty() {
            return Vec::new();
        }
        plane.sync_driver_files(&changed).await
    }
}

/// Looks at the driver folder every `interval` until `stop`.
pub async fn watch(
    plane: Arc<ControlPlane>,
    mut folder: FolderWatch,
    interval: std::time::Duration,
    mut stop: Stop,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.requested() => return,
            _ = ticks.tick() => {}
        }
        folder.scan(&plane).await;
    }
}

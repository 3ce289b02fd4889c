//! The driver lifecycle through the control plane: each step decided and admitted outside the
//! write lock, one step at a time, then committed through the one write path, the registry
//! following the commit before the lock is released.

use std::sync::Arc;

use super::Prepared;
use super::admission::Upload;
use super::lifecycle::{self, Facts, Step};
use crate::audit;
use crate::error::Error;
use crate::model::{DriverRecord, DriverVersion};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;
use crate::store::{Batch, Kind};

impl Prepared {
    /// Checks again, under the write lock, what the decision read outside it: an active
    /// version is deleted only while no load balancer of its driver exists.
    fn recheck(&self, snapshot: &Snapshot) -> Result<(), lifecycle::LifecycleError> {
        if self.transition.deletes_active() && in_use(snapshot, &self.name) {
            let sha = self.transition.deleted_blob().unwrap_or_default();
            return Err(lifecycle::in_use(&self.name, sha));
        }
        Ok(())
    }

    /// The change that commits the step: the record (or its deletion), the bytes stored or
    /// deleted, and, once committed, the registry following it and the audit record.
    fn into_change(self) -> Change<Option<DriverRecord>> {
        let Prepared {
            name,
            transition,
            driver,
            blob,
            by,
        } = self;
        let mut batch = Batch::new();
        match &transition.record {
            Some(record) => batch.put(record),
            None => batch.delete::<DriverRecord>(&name),
        };
        if let (Some(bytes), Some(version)) = (blob, &transition.version) {
            batch.put_raw(Kind::DriverBlob, &version.sha256, bytes);
        }
        if let Some(sha) = transition.deleted_blob() {
            batch.delete_raw(Kind::DriverBlob, sha);
        }
        let record = transition.record.clone();
        Change::new(batch, record).on_commit(move |plane| {
            plane.drivers.follow(&name, &transition, driver);
            if let Some(manager) = &plane.drivers.manager {
                manager.audit_event(
                    &name,
                    transition.version.as_ref(),
                    transition.event,
                    Some(by),
                    audit::Outcome::Ok,
                    transition.detail.clone(),
                );
            }
            if let Some(version) = &transition.version {
                tracing::info!(driver = %name, version = %version.version, sha256 = %version.sha256, step = transition.event, "driver lifecycle step taken");
            }
        })
    }
}

/// Whether load balancers of driver `name` exist.
fn in_use(snapshot: &Snapshot, name: &str) -> bool {
    snapshot.loadbalancers.iter().any(|lb| lb.provider == name)
}

/// The driver lifecycle through the control plane: each step decided and admitted outside the
/// write lock, one step at a time, then committed through the one write path.
impl ControlPlane {
    /// Takes `step` for driver `name`, on behalf of `by`. The record afterwards; `None` once
    /// the driver's last version is deleted.
    pub async fn driver_step(
        self: &Arc<Self>,
        name: &str,
        step: Step,
        by: &str,
    ) -> Result<Option<DriverRecord>, Error> {
        let _one_at_a_time = self.drivers.manager()?.steps.lock().await;
        let (name, by) = (name.to_owned(), by.to_owned());
        let prepared = self
            .read(move |plane, snapshot| {
                let facts = Facts {
                    now: crate::ids::now(),
                    in_use: in_use(snapshot, &name),
                };
                let profiles = snapshot.flavorprofiles.to_vec();
                Ok::<_, Error>(
                    plane
                        .drivers
                        .prepare(&name, &step, &facts, &by, &profiles)?,
                )
            })
            .await?;
        self.write(move |_, snapshot| {
            prepared.recheck(snapshot)?;
            Ok::<_, Error>(prepared.into_change())
        })
        .await
    }

    /// Validates a component and stores it as a new, inactive version of the driver it
    /// reports.
    pub async fn upload_driver(
        self: &Arc<Self>,
        bytes: Vec<u8>,
        signature: Option<String>,
        source: &str,
    ) -> Result<(DriverRecord, DriverVersion), Error> {
        let _one_at_a_time = self.drivers.manager()?.steps.lock().await;
        let source = source.to_owned();
        let prepared = self
            .read(move |plane, snapshot| {
                let upload = Upload {
                    bytes,
                    signature: signature.as_deref(),
                    source: &source,
                };
                let facts = Facts {
                    now: crate::ids::now(),
                    in_use: false,
                };
                let profiles = snapshot.flavorprofiles.to_vec();
                Ok::<_, Error>(plane.drivers.prepare_upload(upload, &facts, &profiles)?)
            })
            .await?;
        let version =
            prepared.transition.version.clone().ok_or_else(|| {
                Error::Inconsistent("an upload decided without its version".into())
            })?;
        let record = self
            .write(move |_, _| Ok::<_, Error>(prepared.into_change()))
            .await?
            .ok_or_else(|| Error::Inconsistent("an upload left no driver record".into()))?;
        Ok((record, version))
    }
}

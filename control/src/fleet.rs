//! What a host does for the fleet when it shares its store with other hosts: it follows their
//! commits as their revisions are announced, says it is alive and renews the leases of its
//! jobs, takes over the jobs of hosts that stopped, and shares the fleet's duties with the
//! hosts that are alive: each device is polled by one host, and only the host that spawned a
//! device adopts, revives or stops its processes. Without a shared store every duty is this
//! host's, as before.

use std::sync::Arc;
use std::time::Duration;

use lbaas_core::store::HostAbout;
use lbaas_core::views::HostView;

use crate::model::Device;
use crate::plane::ControlPlane;
use crate::tasks::Stop;

/// Jobs taken over from stopped hosts in one heartbeat, at most.
const TAKE_OVER: usize = 256;

impl ControlPlane {
    /// The hosts sharing the store, as the last heartbeat found them; without a shared store,
    /// this host alone, with the jobs it holds.
    pub fn hosts(&self) -> Vec<HostView> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if self.store.fleet().is_none() {
            let jobs = self
                .store
                .scan(crate::store::Kind::Job)
                .map_or(0, |jobs| jobs.len() as u64);
            for host in &mut hosts {
                host.heartbeat = crate::ids::now();
                host.jobs = jobs;
            }
        }
        hosts
    }

    /// Says who this host is, for [`ControlPlane::hosts`] on a store it owns alone.
    pub fn introduce(&self, about: &HostAbout) {
        if self.store.fleet().is_none() {
            *self.hosts.lock().unwrap_or_else(|e| e.into_inner()) = vec![HostView {
                id: "local".into(),
                name: about.name.clone(),
                version: about.version.clone(),
                address: about.address.clone(),
                started_at: crate::ids::now(),
                heartbeat: crate::ids::now(),
                alive: true,
                jobs: 0,
            }];
        }
    }

    /// This host's id on a shared store.
    pub fn host_id(&self) -> Option<&str> {
        self.store.fleet().map(|fleet| fleet.host())
    }

    /// Whether this host polls `device_id`'s status: the one alive host that ranks highest
    /// for the device (rendezvous hashing, so a host joining or leaving moves only its share).
    pub fn polls(&self, device_id: &str) -> bool {
        let Some(me) = self.host_id() else {
            return true;
        };
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let chosen = hosts
            .iter()
            .filter(|host| host.alive)
            .max_by_key(|host| rank(&host.id, device_id));
        // Before the first heartbeat is answered, this host stands in for everyone.
        chosen.is_none_or(|host| host.id == me)
    }

    /// Whether this host's provisioner runs `device`'s processes: the device was spawned
    /// here (or, without a shared store, by this host at all).
    pub fn owns(&self, device: &Device) -> bool {
        self.is_own(device.host.as_deref())
    }

    /// Whether something recorded as `host`'s (a spawned device's processes) is this host's.
    pub(crate) fn is_own(&self, host: Option<&str>) -> bool {
        match self.host_id() {
            None => true,
            Some(me) => host == Some(me),
        }
    }

    /// Claims the job of `lb_id` for this host; true when this host may run it. Without a
    /// shared store every job is this host's. An error when the store cannot say whose the job
    /// is now: the job waits (running it could run it beside its holder).
    pub async fn claim(self: &Arc<Self>, lb_id: &str) -> Result<bool, crate::error::Error> {
        if self.store.fleet().is_none() {
            return Ok(true);
        }
        let (plane, id) = (self.clone(), lb_id.to_owned());
        crate::spawn_blocking(move || {
            plane
                .store
                .fleet()
                .map_or(Ok(true), |fleet| fleet.claim(&id))
        })
        .await?
        .map_err(crate::error::Error::from)
    }
}

impl ControlPlane {
    /// The jobs this host is to run: those whose lease it holds on a shared store, every
    /// stored job on a store of its own. Empty when the store cannot say now.
    pub async fn own_jobs(self: &Arc<Self>) -> Vec<String> {
        let plane = self.clone();
        let listed = crate::spawn_blocking(move || match plane.store.fleet() {
            Some(fleet) => fleet.held(),
            None => plane
                .store
                .scan(crate::store::Kind::Job)
                .map(|jobs| jobs.into_iter().map(|(id, _)| id).collect()),
        })
        .await;
        match listed {
            Ok(Ok(jobs)) => jobs,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot list this host's jobs");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }
}

/// A stable rank of `host` for `device`.
fn rank(host: &str, device: &str) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(host.as_bytes());
    hasher.update([0]);
    hasher.update(device.as_bytes());
    hasher.finalize().into()
}

/// Runs the host's part in the fleet until `stop`: follows revisions, beats every third of
/// the lease, takes over expired jobs. Returns at once without a shared store.
pub async fn run(plane: Arc<ControlPlane>, about: HostAbout, mut stop: Stop) {
    let Some(fleet) = plane.store.fleet() else {
        return;
    };
    let heard = Arc::new(tokio::sync::Notify::new());
    {
        let (weak, heard) = (Arc::downgrade(&plane), heard.clone());
        fleet.watch(Box::new(move |revision| {
            if let (Some(plane), Some(revision)) = (weak.upgrade(), revision) {
                plane.learn(revision);
            }
            // A burst of revisions is one catch-up: the permit is stored once.
            heard.notify_one();
        }));
    }
    let mut beat = tokio::time::interval((fleet.lease() / 3).max(Duration::from_millis(100)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.requested() => break,
            () = heard.notified() => catch_up(&plane).await,
            _ = beat.tick() => heartbeat(&plane, &about).await,
        }
    }
}

/// Brings the cached snapshot (and the driver registry) up to the store's revision, and stops
/// the devices of this host's that another host retired meanwhile.
async fn catch_up(plane: &Arc<ControlPlane>) {
    let plane = plane.clone();
    let caught = crate::spawn_blocking(move || {
        if let Some(fleet) = plane.store.fleet()
            && let Ok(revision) = fleet.revision()
        {
            plane.learn(revision);
        }
        let caught = plane.snapshot().map(drop);
        stop_orphans(&plane);
        caught
    })
    .await;
    if let Ok(Err(error)) = caught {
        tracing::warn!(%error, "cannot catch up with the other hosts' commits");
    }
}

/// Has this host's provisioner stop the devices another host retired.
fn stop_orphans(plane: &ControlPlane) {
    let orphans = std::mem::take(&mut *plane.orphans.lock().unwrap_or_else(|e| e.into_inner()));
    let Some(provisioner) = &plane.provisioner else {
        return;
    };
    for handle in orphans {
        if let Err(error) = provisioner.release(&handle) {
            tracing::error!(%error, "cannot stop a device another host retired");
        }
    }
}

/// Says this host is alive (renewing its leases), reads the fleet, takes over the jobs of
/// hosts that stopped, and catches up in case an announcement was missed.
async fn heartbeat(plane: &Arc<ControlPlane>, about: &HostAbout) {
    let (plane, about) = (plane.clone(), about.clone());
    let beat = crate::spawn_blocking(move || {
        let fleet = plane.store.fleet()?;
        match fleet.beat(&about) {
            Ok(hosts) => *plane.hosts.lock().unwrap_or_else(|e| e.into_inner()) = hosts,
            Err(error) => tracing::warn!(%error, "heartbeat failed"),
        }
        match fleet.claim_expired(TAKE_OVER) {
            Ok(jobs) => {
                if !jobs.is_empty() {
                    tracing::info!(jobs = jobs.len(), "taking over the jobs of a stopped host");
                }
                for job in jobs {
                    plane.enqueue(job);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot take over expired jobs"),
        }
        if let Ok(revision) = fleet.revision() {
            plane.learn(revision);
        }
        let caught = plane.snapshot().ok().map(drop);
        stop_orphans(&plane);
        caught
    })
    .await;
    if beat.is_err() {
        tracing::warn!("the heartbeat stopped unexpectedly");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_device_has_one_poller_and_a_leaving_host_moves_only_its_share() {
        let devices: Vec<String> = (0..300).map(|i| format!("device-{i}")).collect();
        let winner = |hosts: &[&str], device: &str| {
            hosts
                .iter()
                .copied()
                .max_by_key(|h| rank(h, device))
                .unwrap_or_default()
                .to_owned()
        };
        let three = ["a", "b", "c"];
        let before: Vec<String> = devices.iter().map(|d| winner(&three, d)).collect();
        for host in three {
            let share = before.iter().filter(|w| *w == host).count();
            assert!(share > 60, "{host} polls {share} of 300: too uneven");
        }
        let after: Vec<String> = devices.iter().map(|d| winner(&["a", "b"], d)).collect();
        for (was, now) in before.iter().zip(&after) {
            if was != "c" {
                assert_eq!(was, now, "a device of a staying host moved");
            }
        }
    }
}

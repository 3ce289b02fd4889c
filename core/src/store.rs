//! The control plane's durable store: one keyspace per resource kind, atomic multi-kind
//! commits, explicit durability. Behind the [`Store`] trait: `lbaas-sled` holds the embedded
//! default, [`MemoryStore`] keeps everything in memory for tests and tools.
//!
//! Records are JSON in an envelope carrying [`SCHEMA_VERSION`], so a later version can tell
//! which shape it reads.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{
    Device, Flavor, FlavorProfile, HealthMonitor, Job, Listener, LoadBalancer, Member, Network,
    Placement, Pool, SCHEMA_VERSION,
};

/// The kinds of record, each in its own keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Load balancers.
    LoadBalancer,
    /// Listeners.
    Listener,
    /// Pools.
    Pool,
    /// Pool members.
    Member,
    /// Health monitors.
    HealthMonitor,
    /// Flavor profiles.
    FlavorProfile,
    /// Flavors.
    Flavor,
    /// Devices the drivers manage.
    Device,
    /// The operator's networks and subnets.
    Network,
    /// Jobs: a load balancer to bring to its stored state.
    Job,
    /// Each load balancer's last placement decision.
    Placement,
    /// A driver's versions and which one is active.
    Driver,
    /// A driver version's component bytes, by SHA-256 (raw bytes, no envelope).
    DriverBlob,
    /// A quarantined driver version, by SHA-256: kept so a restart does not lift it.
    Quarantine,
    /// A project's quotas, by project id.
    Quota,
    /// L7 policies.
    L7Policy,
    /// L7 rules.
    L7Rule,
    /// Availability-zone profiles.
    AvailabilityZoneProfile,
    /// Availability zones.
    AvailabilityZone,
    /// Secrets of the host's own key manager, their payloads sealed.
    Secret,
}

impl Kind {
    /// Every kind, in the order of [`Kind::index`].
    pub const ALL: [Kind; 20] = [
        Kind::LoadBalancer,
        Kind::Listener,
        Kind::Pool,
        Kind::Member,
        Kind::HealthMonitor,
        Kind::FlavorProfile,
        Kind::Flavor,
        Kind::Device,
        Kind::Network,
        Kind::Job,
        Kind::Placement,
        Kind::Driver,
        Kind::DriverBlob,
        Kind::Quarantine,
        Kind::Quota,
        Kind::L7Policy,
        Kind::L7Rule,
        Kind::AvailabilityZoneProfile,
        Kind::AvailabilityZone,
        Kind::Secret,
    ];

    /// The name of the kind's keyspace (a sled tree, a PostgreSQL `kind` value).
    pub fn tree(self) -> &'static str {
        match self {
            Kind::LoadBalancer => "loadbalancers",
            Kind::Listener => "listeners",
            Kind::Pool => "pools",
            Kind::Member => "members",
            Kind::HealthMonitor => "healthmonitors",
            Kind::FlavorProfile => "flavorprofiles",
            Kind::Flavor => "flavors",
            Kind::Device => "devices",
            Kind::Network => "networks",
            Kind::Job => "jobs",
            Kind::Placement => "placements",
            Kind::Driver => "drivers",
            Kind::DriverBlob => "driver_blobs",
            Kind::Quarantine => "quarantines",
            Kind::Quota => "quotas",
            Kind::L7Policy => "l7policies",
            Kind::L7Rule => "l7rules",
            Kind::AvailabilityZoneProfile => "availability_zone_profiles",
            Kind::AvailabilityZone => "availability_zones",
            Kind::Secret => "secrets",
        }
    }

    /// The kind whose keyspace is named `tree`.
    pub fn from_tree(tree: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.tree() == tree)
    }

    /// The kind's position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (its own words).
    #[error("storage: {0}")]
    Backend(String),
    /// The store cannot be reached now (its connections are down); trying again later may
    /// succeed, and nothing was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored record cannot be decoded.
    #[error("stored {kind} record `{id}` is unreadable: {reason}")]
    Corrupt {
        /// The record's kind.
        kind: &'static str,
        /// Its id.
        id: String,
        /// Why it cannot be decoded.
        reason: String,
    },
}

/// A store's answer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One write of a commit.
#[derive(Debug, Clone)]
pub enum Write {
    /// Stores `bytes` as record `id` of `kind`.
    Put {
        /// The record's kind.
        kind: Kind,
        /// Its id.
        id: String,
        /// Its encoded bytes.
        bytes: Vec<u8>,
    },
    /// Removes record `id` of `kind`.
    Delete {
        /// The record's kind.
        kind: Kind,
        /// Its id.
        id: String,
    },
}

/// Raw, kind-scoped storage. Implementations apply a commit atomically: all writes or none.
pub trait Store: Send + Sync {
    /// The bytes of record `id` of `kind`, if it exists.
    fn get(&self, kind: Kind, id: &str) -> Result<Option<Vec<u8>>>;
    /// Every record of a kind, in key order.
    fn scan(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>>;
    /// Applies every write of `writes`, or none.
    fn commit(&self, writes: &[Write]) -> Result<()>;
    /// Makes every committed write durable.
    fn flush(&self) -> Result<()>;
    /// How the hosts sharing this store coordinate; `None` for a store one host owns (sled,
    /// memory), whose writes the host's own lock orders.
    fn fleet(&self) -> Option<&dyn Fleet> {
        None
    }
}

/// What hosts sharing one store coordinate through it: one write lock, a revision every
/// commit bumps and every host learns, leased jobs and heartbeats.
pub trait Fleet: Send + Sync {
    /// This host's id.
    fn host(&self) -> &str;
    /// How long this host's heartbeat and job leases last.
    fn lease(&self) -> std::time::Duration;
    /// Takes the write lock every host shares, reading the revision at that moment; a commit
    /// through the guard is the next revision unless a commit made without the lock (a
    /// quarantine) came between. Released when the guard drops, or when the host dies.
    fn lock(&self) -> Result<Box<dyn Locked>>;
    /// The revision of the last commit, from any host.
    fn revision(&self) -> Result<u64>;
    /// Every record written after `revision`, as it is now (a `Delete` for one gone), and the
    /// revision that brings the reader to; `None` when those changes are no longer kept (read
    /// everything again).
    fn changes_since(&self, revision: u64) -> Result<Option<(u64, Vec<Write>)>>;
    /// Calls `notify` with each revision committed (by any host) as this host learns of it,
    /// and with `None` when it may have missed some (its connection was lost and is back).
    fn watch(&self, notify: Box<dyn Fn(Option<u64>) + Send + Sync>);
    /// Records this host alive and renews the leases of the jobs it holds; answers every host
    /// known, this one included.
    fn beat(&self, about: &HostAbout) -> Result<Vec<crate::views::HostView>>;
    /// Claims the job of load balancer `job` for this host: true when it is now this host's
    /// (it is stored, and it was unclaimed, this host held it, or its holder's lease ran out).
    /// A job that is not stored (it ended) is nobody's: false.
    fn claim(&self, job: &str) -> Result<bool>;
    /// Claims up to `limit` jobs whose lease ran out (their host stopped renewing).
    fn claim_expired(&self, limit: usize) -> Result<Vec<String>>;
    /// The jobs whose lease this host holds.
    fn held(&self) -> Result<Vec<String>>;
}

/// What a host says of itself in its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAbout {
    /// The host's name on its machine.
    pub name: String,
    /// `lbaasd`'s version.
    pub version: String,
    /// Where its API listens.
    pub address: String,
}

/// The write lock every host shares, held.
pub trait Locked: Send {
    /// The revision when the lock was taken.
    fn revision(&self) -> u64;
    /// Commits `writes` in one transaction; returns the revision it made.
    fn commit(&mut self, writes: &[Write]) -> Result<u64>;
}

/// A record type and its keyspace.
pub trait Record: Serialize + DeserializeOwned {
    /// The kind of record this type is.
    const KIND: Kind;
    /// Its id, its key in the kind's keyspace.
    fn id(&self) -> &str;
}

macro_rules! record {
    ($ty:ty, $kind:expr, |$r:ident| $id:expr) => {
        impl Record for $ty {
            const KIND: Kind = $kind;
            fn id(&self) -> &str {
                let $r = self;
                $id
            }
        }
    };
}

record!(LoadBalancer, Kind::LoadBalancer, |r| &r.common.id);
record!(Listener, Kind::Listener, |r| &r.common.id);
record!(Pool, Kind::Pool, |r| &r.common.id);
record!(Member, Kind::Member, |r| &r.common.id);
record!(HealthMonitor, Kind::HealthMonitor, |r| &r.common.id);
record!(FlavorProfile, Kind::FlavorProfile, |r| &r.id);
record!(Flavor, Kind::Flavor, |r| &r.id);
record!(Device, Kind::Device, |r| &r.id);
record!(Network, Kind::Network, |r| &r.id);
record!(Job, Kind::Job, |r| &r.id);
record!(Placement, Kind::Placement, |r| &r.loadbalancer_id);
record!(crate::model::DriverRecord, Kind::Driver, |r| &r.name);
record!(crate::model::Quarantine, Kind::Quarantine, |r| &r.sha256);
record!(crate::model::Quota, Kind::Quota, |r| &r.project_id);
record!(crate::model::L7Policy, Kind::L7Policy, |r| &r.common.id);
record!(crate::model::L7Rule, Kind::L7Rule, |r| &r.common.id);
record!(
    crate::model::AvailabilityZoneProfile,
    Kind::AvailabilityZoneProfile,
    |r| &r.id
);
record!(crate::model::Secret, Kind::Secret, |r| &r.id);
record!(
    crate::model::AvailabilityZone,
    Kind::AvailabilityZone,
    |r| &r.name
);

#[derive(Serialize, serde::Deserialize)]
struct Envelope<T> {
    v: u32,
    data: T,
}

/// Reads one stored record.
pub fn decode<R: Record>(id: &str, bytes: &[u8]) -> Result<R> {
    let corrupt = |reason: String| StoreError::Corrupt {
        kind: R::KIND.tree(),
        id: id.to_owned(),
        reason,
    };
    // The version first: a record of another schema is reported as such, not as garbage.
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if envelope.v != SCHEMA_VERSION {
        return Err(corrupt(format!(
            "schema version {} (this host reads {SCHEMA_VERSION})",
            envelope.v
        )));
    }
    serde_json::from_value(envelope.data).map_err(|e| corrupt(e.to_string()))
}

/// Typed reads over any [`Store`].
pub trait StoreExt {
    /// Record `id` of type `R`, decoded, if it exists.
    fn load<R: Record>(&self, id: &str) -> Result<Option<R>>;
    /// Every record of type `R`, decoded, in key order.
    fn all<R: Record>(&self) -> Result<Vec<R>>;
}

impl<S: Store + ?Sized> StoreExt for S {
    fn load<R: Record>(&self, id: &str) -> Result<Option<R>> {
        match self.get(R::KIND, id)? {
            Some(bytes) => decode(id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn all<R: Record>(&self) -> Result<Vec<R>> {
        self.scan(R::KIND)?
            .into_iter()
            .map(|(id, bytes)| decode(&id, &bytes))
            .collect()
    }
}

/// Writes gathered for one atomic commit.
#[derive(Debug, Default)]
pub struct Batch {
    writes: Vec<Write>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `record` (encoded in its envelope) when the batch is committed.
    pub fn put<R: Record>(&mut self, record: &R) -> &mut Self {
        let envelope = Envelope {
            v: SCHEMA_VERSION,
            data: record,
        };
        // Records are plain data; encoding them cannot fail.
        let bytes = serde_json::to_vec(&envelope).unwrap_or_default();
        self.writes.push(Write::Put {
            kind: R::KIND,
            id: record.id().to_owned(),
            bytes,
        });
        self
    }

    /// Stores `bytes` as they are (no envelope): a driver component's bytes by SHA-256.
    pub fn put_raw(&mut self, kind: Kind, id: &str, bytes: Vec<u8>) -> &mut Self {
        self.writes.push(Write::Put {
            kind,
            id: id.to_owned(),
            bytes,
        });
        self
    }

    /// Deletes `id` of `kind`, for a kind without a record type (driver blobs).
    pub fn delete_raw(&mut self, kind: Kind, id: &str) -> &mut Self {
        self.writes.push(Write::Delete {
            kind,
            id: id.to_owned(),
        });
        self
    }

    /// Removes record `id` of type `R` when the batch is committed.
    pub fn delete<R: Record>(&mut self, id: &str) -> &mut Self {
        self.writes.push(Write::Delete {
            kind: R::KIND,
            id: id.to_owned(),
        });
        self
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// Whether this batch writes the record `id` of `kind`.
    pub fn puts_id(&self, kind: Kind, id: &str) -> bool {
        self.writes
            .iter()
            .any(|w| matches!(w, Write::Put { kind: k, id: i, .. } if *k == kind && i == id))
    }

    /// Commits the batch to `store` in one atomic commit.
    pub fn commit(&self, store: &dyn Store) -> Result<()> {
        store.commit(&self.writes)
    }
}

/// Every record in memory: for tests and tools that need no disk. A commit applies its writes
/// under one lock, so it is atomic as the trait requires; `flush` has nothing to do.
#[derive(Debug)]
pub struct MemoryStore {
    kinds: std::sync::Mutex<[std::collections::BTreeMap<String, Vec<u8>>; Kind::ALL.len()]>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            kinds: std::sync::Mutex::new(std::array::from_fn(|_| Default::default())),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn kinds(
        &self,
    ) -> std::sync::MutexGuard<'_, [std::collections::BTreeMap<String, Vec<u8>>; Kind::ALL.len()]>
    {
        self.kinds.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, kind: Kind, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.kinds()[kind.index()].get(id).cloned())
    }

    fn scan(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self.kinds()[kind.index()]
            .iter()
            .map(|(id, bytes)| (id.clone(), bytes.clone()))
            .collect())
    }

    fn commit(&self, writes: &[Write]) -> Result<()> {
        let mut kinds = self.kinds();
        for write in writes {
            match write {
                Write::Put { kind, id, bytes } => {
                    kinds[kind.index()].insert(id.clone(), bytes.clone());
                }
                Write::Delete { kind, id } => {
                    kinds[kind.index()].remove(id);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// What every [`Store`] backend promises, as checks its tests run on an empty store: a batch
/// across kinds commits whole, typed reads and deletes see it, and a record written by a newer
/// schema is reported as such rather than misread. Panics at the first broken promise, naming
/// it.
pub fn check_contract(store: &dyn Store) {
    use crate::model::{Job, Network};
    let job = |id: &str| Job {
        id: id.into(),
        loadbalancer_id: "lb".into(),
        created_at: "now".into(),
        attempts: 0,
        traceparent: None,
        ticket: "t".into(),
    };
    let network = Network {
        id: "net".into(),
        name: String::new(),
        project_id: None,
        vlan: None,
        subnets: Vec::new(),
        created_at: "now".into(),
    };
    let mut batch = Batch::new();
    batch.put(&job("a")).put(&job("b")).put(&network);
    let committed = batch.commit(store);
    assert!(committed.is_ok(), "a batch commits: {committed:?}");
    let jobs = store.all::<Job>();
    assert!(
        matches!(&jobs, Ok(jobs) if jobs.len() == 2),
        "typed reads see every record of a kind: {jobs:?}"
    );
    assert!(
        matches!(store.load::<Network>("net"), Ok(Some(n)) if n == network),
        "a batch commits every kind it holds"
    );
    let mut batch = Batch::new();
    batch.delete::<Job>("a");
    let deleted = batch.commit(store);
    assert!(deleted.is_ok(), "a delete commits: {deleted:?}");
    assert!(
        matches!(store.load::<Job>("a"), Ok(None)),
        "a deleted record is gone"
    );
    assert!(
        matches!(store.load::<Job>("b"), Ok(Some(j)) if j == job("b")),
        "a delete leaves the others"
    );
    let newer = store.commit(&[Write::Put {
        kind: Kind::Job,
        id: "x".into(),
        bytes: b"{\"v\":99,\"data\":{}}".to_vec(),
    }]);
    assert!(newer.is_ok(), "raw bytes commit: {newer:?}");
    let read = store.load::<Job>("x");
    assert!(
        matches!(&read, Err(e) if e.to_string().contains("schema version 99")),
        "a record of a newer schema is reported, not misread: {read:?}"
    );
    assert!(store.flush().is_ok(), "flush succeeds");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_store_keeps_the_contract() {
        check_contract(&MemoryStore::new());
    }
}

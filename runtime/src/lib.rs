//! The driver runtime: loads driver components, and calls them inside a sandbox.
//!
//! One [`wasmtime::Engine`] serves every driver. Each loaded driver version keeps an
//! `InstancePre` (imports resolved once); every call gets a fresh store and instance from the
//! pooling allocator, a deadline (epoch interruption), a memory limit and a stack limit. A trap
//! never escapes: the instance is dropped and the caller gets an [`Error::Call`] naming the
//! driver, its version and the function.

#![warn(missing_docs)]

mod bindings;
mod cache;
mod capabilities;
mod certificates;
mod compat;
mod config;
pub mod conformance;
pub mod devices;
mod driver;
mod engine;
mod error;
mod host;
mod identity;
pub mod integrity;
pub mod manifest;
pub use lbaas_core::net;
pub mod permissions;
mod quarantine;
mod runtime;
pub mod scope;
pub mod state;

pub use bindings::types::{
    Algorithm, AvailabilityZone, Candidate, CertificateInfo, ClientAuthentication, Device,
    DeviceConfig, DeviceHint, DeviceKind, DriverCapabilities, DriverError, Entry, Features, Flavor,
    FlavorKey, HealthMonitor, HealthMonitorKind, Hints, Hsts, HttpVersion, L7Action, L7Compare,
    L7Policy, L7Rule, L7RuleKind, Limits, Listener, ListenerCounters, ListenerTls, LoadBalancer,
    LoadBalancerStatus, Member, MemberHealth, MemberStatus, Network, PersistenceKind,
    PlacementRequest, Pool, PoolTls, Protocol, SessionPersistence, SpawnSpec, TlsFeature, TlsFile,
    TlsVersion, Verdict,
};
pub use cache::Origin;
pub use certificates::CertificateFiles;
pub use config::RuntimeConfig;
pub use driver::LoadedDriver;
pub use error::{Error, Failure, Result, describe_driver_error, printable};
pub use host::{APPLIED_HEADER as DEVICE_APPLIED_HEADER, REFUSAL_HEADER as DEVICE_REFUSAL_HEADER};
pub use identity::LoadedIdentity;
pub use permissions::DevicePolicy;
pub use quarantine::QuarantineStore;
pub use runtime::Runtime;

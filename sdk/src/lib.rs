//! The vendor SDK for LBaaS drivers: implement [`Driver`] on a plain Rust type, export it with
//! [`export_driver!`], build for `wasm32-wasip2`, and the host can load the `.wasm` file.
//!
//! ```text
//! use lbaas_driver_sdk::prelude::*;
//!
//! struct MyDriver;
//!
//! impl Driver for MyDriver {
//!     fn capabilities() -> Capabilities { /* ... */ }
//!     fn translate(lb: &LoadBalancer, device: &Device) -> Result<DeviceConfig, DriverError> {
//!         /* ... */
//!     }
//! }
//!
//! export_driver!(MyDriver);
//! ```
//!
//! The bindings generated from the WIT contract stay private; the types a driver needs are
//! re-exported at the crate root, with a few conveniences on top ([`state`], [`device`],
//! [`log`]).

#![warn(missing_docs)]

// Generated from the contract; its items carry the WIT's own documentation where it has some.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "vendor-driver",
        path: "../wit/lbaas-driver@0.5.0",
        pub_export_macro: true,
        export_macro_name: "__export_driver_world",
        default_bindings_module: "lbaas_driver_sdk::__private",
    });
}

pub mod device;
mod display;
pub mod log;
pub mod state;

/// What a driver reports about itself (`driver-capabilities` in the WIT contract).
pub use bindings::lbaas::driver::types::DriverCapabilities as Capabilities;
pub use bindings::lbaas::driver::types::{
    Algorithm, AvailabilityZone, Candidate, CertificateInfo, ClientAuthentication, Device,
    DeviceConfig, DeviceHint, DeviceKind, DriverError, Entry, Features, Flavor, FlavorKey,
    HealthMonitor, HealthMonitorKind, Hints, Hsts, HttpVersion, L7Action, L7Compare, L7Policy,
    L7Rule, L7RuleKind, Limits, Listener, ListenerCounters, ListenerTls, LoadBalancer,
    LoadBalancerStatus, Member, MemberHealth, MemberStatus, Network, PersistenceKind,
    PlacementRequest, Pool, PoolTls, Protocol, SessionPersistence, SpawnSpec, TlsFeature, TlsFile,
    TlsVersion, Verdict,
};

/// Everything a driver usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Algorithm, AvailabilityZone, Candidate, Capabilities, CertificateInfo,
        ClientAuthentication, Device, DeviceConfig, DeviceHint, DeviceKind, Driver, DriverError,
        Entry, Features, Flavor, FlavorKey, HealthMonitor, HealthMonitorKind, Hints, Hsts,
        HttpVersion, L7Action, L7Compare, L7Policy, L7Rule, L7RuleKind, Limits, Listener,
        ListenerCounters, ListenerTls, LoadBalancer, LoadBalancerStatus, Member, MemberHealth,
        MemberStatus, Network, PersistenceKind, PlacementRequest, Pool, PoolTls, Protocol,
        SessionPersistence, SpawnSpec, TlsFeature, TlsFile, TlsVersion, Verdict, device,
        export_driver, log, state,
    };
}

/// A vendor driver. Only [`Driver::capabilities`] and [`Driver::translate`] are required; the
/// other methods have defaults that suit a simple driver.
pub trait Driver {
    /// What the driver and its devices support.
    fn capabilities() -> Capabilities;

    /// Checks a flavor's metadata. The default accepts exactly the keys named in
    /// [`Capabilities::flavor_keys`].
    fn validate_flavor(flavor: &Flavor) -> Result<(), DriverError> {
        let known = Self::capabilities().flavor_keys;
        match flavor
            .metadata
            .iter()
            .find(|entry| !known.iter().any(|key| key.name == entry.key))
        {
            Some(unknown) => Err(DriverError::InvalidInput(format!(
                "flavor key `{}` is not supported by this driver",
                unknown.key
            ))),
            None => Ok(()),
        }
    }

    /// Checks an availability zone profile's metadata. The default accepts exactly the keys
    /// named in [`Features::availability_zone_keys`].
    fn validate_availability_zone(zone: &AvailabilityZone) -> Result<(), DriverError> {
        let known = Self::capabilities().features.availability_zone_keys;
        match zone
            .metadata
            .iter()
            .find(|entry| !known.iter().any(|key| key.name == entry.key))
        {
            Some(unknown) => Err(DriverError::InvalidInput(format!(
                "availability zone key `{}` is not supported by this driver",
                unknown.key
            ))),
            None => Ok(()),
        }
    }

    /// Rejects or scores each candidate device, and may ask for a new one. The default accepts
    /// every candidate with the host's own score and never spawns.
    fn select(request: &PlacementRequest, candidates: &[Candidate]) -> Hints {
        let _ = request;
        Hints::accept_all(candidates)
    }

    /// Renders the device configuration for a load balancer. Must be pure: no state, no I/O.
    fn translate(lb: &LoadBalancer, device: &Device) -> Result<DeviceConfig, DriverError>;

    /// Pushes the configuration to the device. The default `PUT`s it to
    /// `/v1/loadbalancers/{id}/config` on the device's management endpoint.
    fn apply(lb: &LoadBalancer, device: &Device, config: &DeviceConfig) -> Result<(), DriverError> {
        let path = format!("/v1/loadbalancers/{}/config", lb.id);
        device::Request::put(&path)
            .header("content-type", &config.content_type)
            .body(config.body.as_bytes().to_vec())
            .send(&device.id)?
            .success()
            .map(drop)
    }

    /// Removes the load balancer from the device. The default `DELETE`s
    /// `/v1/loadbalancers/{id}/config`; a device that no longer knows it is fine.
    fn remove(lb: &LoadBalancer, device: &Device) -> Result<(), DriverError> {
        let path = format!("/v1/loadbalancers/{}/config", lb.id);
        let response = device::Request::delete(&path).send(&device.id)?;
        if response.status == 404 {
            return Ok(());
        }
        response.success().map(drop)
    }

    /// Converts the private state an earlier version of this driver left, before this version
    /// becomes active (`from_version` is that version, empty if none was active). The
    /// namespace carries over between versions; an error refuses the activation and the
    /// earlier version stays active. The default keeps the state as it is.
    fn migrate_state(from_version: &str) -> Result<(), DriverError> {
        let _ = from_version;
        Ok(())
    }

    /// Reads member health and listener counters from the device. The default reports nothing
    /// (`unsupported`), and the host leaves the load balancer's statuses as they are.
    fn status(lb: &LoadBalancer, device: &Device) -> Result<LoadBalancerStatus, DriverError> {
        let _ = (lb, device);
        Err(DriverError::Unsupported(
            "this driver does not report status".into(),
        ))
    }
}

impl Capabilities {
    /// A driver's identity with nothing declared yet: no device kinds, protocols, algorithms,
    /// flavor keys or [`Features`], no spawning, no limits. Fill in the rest with struct update syntax:
    /// `Capabilities { protocols: vec![Protocol::Tcp], ..Capabilities::new("x", "X Inc", "1.0") }`.
    pub fn new(name: &str, vendor: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            vendor: vendor.into(),
            version: version.into(),
            device_kinds: Vec::new(),
            protocols: Vec::new(),
            algorithms: Vec::new(),
            can_spawn: false,
            limits: Limits {
                max_vips_per_device: None,
                max_vlans_per_interface: None,
                overlapping_ips: true,
            },
            flavor_keys: Vec::new(),
            features: Features::none(),
        }
    }
}

impl Features {
    /// No L7 policies, no inserted headers, no availability zone keys, no TLS, and the health
    /// monitor types every device can run: `HTTP`, `HTTPS` and `TCP`.
    pub fn none() -> Self {
        Self {
            l7_actions: Vec::new(),
            l7_rule_kinds: Vec::new(),
            insert_headers: Vec::new(),
            availability_zone_keys: Vec::new(),
            tls: Vec::new(),
            health_monitor_kinds: vec![
                HealthMonitorKind::Http,
                HealthMonitorKind::Https,
                HealthMonitorKind::Tcp,
            ],
        }
    }

    /// Every L7 action and rule kind of the contract, and Octavia's three inserted headers
    /// (`X-Forwarded-For`, `-Port`, `-Proto`): for a driver whose device renders all of them.
    /// No availability zone keys, no TLS; the health monitor types of [`Features::none`].
    pub fn full_l7() -> Self {
        Self {
            l7_actions: vec![
                L7Action::Reject,
                L7Action::RedirectToUrl,
                L7Action::RedirectPrefix,
                L7Action::RedirectToPool,
            ],
            l7_rule_kinds: vec![
                L7RuleKind::HostName,
                L7RuleKind::Path,
                L7RuleKind::FileType,
                L7RuleKind::Header,
                L7RuleKind::Cookie,
            ],
            insert_headers: ["X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"]
                .map(str::to_owned)
                .to_vec(),
            ..Self::none()
        }
    }
}

impl TlsVersion {
    /// Octavia's name of the version (`TLSv1.2`).
    pub fn name(self) -> &'static str {
        match self {
            Self::SslV3 => "SSLv3",
            Self::TlsV1 => "TLSv1",
            Self::TlsV11 => "TLSv1.1",
            Self::TlsV12 => "TLSv1.2",
            Self::TlsV13 => "TLSv1.3",
        }
    }
}

impl Flavor {
    /// The value of a metadata key, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    }
}

impl AvailabilityZone {
    /// The value of a metadata key of the zone's profile, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    }
}

impl Device {
    /// The value of a metadata key, if present.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    }
}

impl Entry {
    /// An entry of `key` and `value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl FlavorKey {
    /// A flavor key named `name`, with `help` for operators.
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
        }
    }
}

impl Hints {
    /// Hints that accept every candidate with the host's own score.
    pub fn accept_all(candidates: &[Candidate]) -> Self {
        Self {
            devices: candidates
                .iter()
                .map(|candidate| DeviceHint {
                    device_id: candidate.device.id.clone(),
                    verdict: Verdict::Score(candidate.host_score),
                })
                .collect(),
            spawn: None,
        }
    }

    /// Hints that reject every candidate with the same reason.
    pub fn reject_all(candidates: &[Candidate], reason: &str) -> Self {
        Self {
            devices: candidates
                .iter()
                .map(|candidate| DeviceHint {
                    device_id: candidate.device.id.clone(),
                    verdict: Verdict::Reject(reason.to_owned()),
                })
                .collect(),
            spawn: None,
        }
    }
}

/// Exports a [`Driver`] implementation as the component's `driver` world.
///
/// Use it once per driver crate, at the crate root: `export_driver!(MyDriver);`.
#[macro_export]
macro_rules! export_driver {
    ($driver:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct LbaasDriverExport;

            impl $crate::__private::exports::lbaas::driver::driver::Guest for LbaasDriverExport {
                fn capabilities() -> $crate::Capabilities {
                    <$driver as $crate::Driver>::capabilities()
                }
                fn validate_flavor(flavor: $crate::Flavor) -> Result<(), $crate::DriverError> {
                    <$driver as $crate::Driver>::validate_flavor(&flavor)
                }
                fn validate_availability_zone(
                    zone: $crate::AvailabilityZone,
                ) -> Result<(), $crate::DriverError> {
                    <$driver as $crate::Driver>::validate_availability_zone(&zone)
                }
                fn select(
                    request: $crate::PlacementRequest,
                    candidates: Vec<$crate::Candidate>,
                ) -> $crate::Hints {
                    <$driver as $crate::Driver>::select(&request, &candidates)
                }
                fn translate(
                    lb: $crate::LoadBalancer,
                    device: $crate::Device,
                ) -> Result<$crate::DeviceConfig, $crate::DriverError> {
                    <$driver as $crate::Driver>::translate(&lb, &device)
                }
                fn apply(
                    lb: $crate::LoadBalancer,
                    device: $crate::Device,
                    config: $crate::DeviceConfig,
                ) -> Result<(), $crate::DriverError> {
                    <$driver as $crate::Driver>::apply(&lb, &device, &config)
                }
                fn remove(
                    lb: $crate::LoadBalancer,
                    device: $crate::Device,
                ) -> Result<(), $crate::DriverError> {
                    <$driver as $crate::Driver>::remove(&lb, &device)
                }
                fn status(
                    lb: $crate::LoadBalancer,
                    device: $crate::Device,
                ) -> Result<$crate::LoadBalancerStatus, $crate::DriverError> {
                    <$driver as $crate::Driver>::status(&lb, &device)
                }
                fn migrate_state(from_version: String) -> Result<(), $crate::DriverError> {
                    <$driver as $crate::Driver>::migrate_state(&from_version)
                }
            }

            $crate::__private::__export_driver_world!(
                LbaasDriverExport with_types_in $crate::__private
            );
        };
    };
}

/// Embeds the driver's manifest — what it asks the host for — in the component, as the
/// custom section `lbaas-manifest`, so it travels with (and is signed with) the `.wasm`:
///
/// ```ignore
/// lbaas_driver_sdk::manifest!(include_str!("../manifest.json"));
/// ```
///
/// The JSON: `name`, `version`, `wit` (the contract, e.g. `lbaas:driver@0.3.0`), and what the
/// driver requests — `device_api` (`{"methods": ["GET", …], "paths": ["/v1/", …]}`, or `null`
/// for none), `memory_bytes`, `state_bytes`, `deadlines_ms` (`select`, `device`, `other`).
/// The operator's policy caps each request; the host enforces what it grants.
#[macro_export]
macro_rules! manifest {
    ($json:expr) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            const MANIFEST: &str = $json;
            #[unsafe(link_section = "lbaas-manifest")]
            #[used]
            static LBAAS_MANIFEST: [u8; MANIFEST.len()] =
                $crate::__private::manifest_bytes::<{ MANIFEST.len() }>(MANIFEST);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::*;

    /// The bytes of `text` as an array, at compile time.
    pub const fn manifest_bytes<const N: usize>(text: &str) -> [u8; N] {
        let bytes = text.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }
}

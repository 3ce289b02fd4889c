//! Host-side bindings generated from the WIT contract, one module per released version the
//! host serves. Kept private to the runtime; the types callers need are re-exported from
//! [`crate`].
//!
//! Each version's `types` only adds to the one before, so every version's `types` is mapped to
//! the newest one's Rust types: the rest of the host sees one driver, whatever contract it was
//! built against. [`DriverPre`] / [`DriverInstance`] dispatch to the version a component
//! implements, and answer for exports an older contract lacks.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::host::HostState;

pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/lbaas-driver@0.1.0",
        world: "vendor-driver",
        imports: { default: trappable },
        with: { "lbaas:driver/types": super::v0_2::lbaas::driver::types },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/lbaas-driver@0.2.0",
        world: "vendor-driver",
        imports: { default: trappable },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub use v0_1::lbaas::driver::{device_api, log, state};
pub use v0_2::lbaas::driver::types;

use types::{
    Candidate, Device, DeviceConfig, DriverCapabilities, DriverError, Flavor, Hints, LoadBalancer,
    LoadBalancerStatus, PlacementRequest,
};

/// The contracts this host serves, oldest first.
pub const CONTRACTS: &[&str] = &["lbaas:driver@0.1.0", "lbaas:driver@0.2.0"];

/// Adds the imports of every contract version to `linker`.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_2::VendorDriver::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    // 0.1.0's `types` are 0.2.0's: its world would add them again under the new name.
    linker.allow_shadowing(true);
    v0_1::VendorDriver::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    linker.allow_shadowing(false);
    linker.instance("lbaas:driver/types@0.1.0")?;
    Ok(())
}

/// A component ready to instantiate, by the contract version it implements. Cloning shares
/// the compiled component.
#[derive(Clone)]
pub enum DriverPre {
    V0_1(v0_1::VendorDriverPre<HostState>),
    V0_2(v0_2::VendorDriverPre<HostState>),
}

impl DriverPre {
    /// Finds the newest contract version the component exports.
    pub fn new(pre: InstancePre<HostState>) -> wasmtime::Result<Self> {
        match v0_2::VendorDriverPre::new(pre.clone()) {
            Ok(pre) => Ok(Self::V0_2(pre)),
            Err(newest) => v0_1::VendorDriverPre::new(pre)
                .map(Self::V0_1)
                .map_err(|_| newest.context("it exports no `driver` interface this host serves")),
        }
    }

    /// The contract version, as manifests name it.
    pub fn contract(&self) -> &'static str {
        match self {
            Self::V0_1(_) => CONTRACTS[0],
            Self::V0_2(_) => CONTRACTS[1],
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            Self::V0_1(pre) => pre.engine(),
            Self::V0_2(pre) => pre.engine(),
        }
    }

    pub fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<DriverInstance> {
        Ok(match self {
            Self::V0_1(pre) => DriverInstance::V0_1(pre.instantiate(store)?),
            Self::V0_2(pre) => DriverInstance::V0_2(pre.instantiate(store)?),
        })
    }
}

/// One instance of a driver, whichever contract version it implements.
pub enum DriverInstance {
    V0_1(v0_1::VendorDriver),
    V0_2(v0_2::VendorDriver),
}

/// Calls the same export on either version (their signatures are the same Rust types).
macro_rules! each_version {
    ($instance:expr, |$driver:ident| $call:expr) => {
        match $instance {
            DriverInstance::V0_1(d) => {
                let $driver = d.lbaas_driver_driver();
                $call
            }
            DriverInstance::V0_2(d) => {
                let $driver = d.lbaas_driver_driver();
                $call
            }
        }
    };
}

type Call<T> = wasmtime::Result<T>;

impl DriverInstance {
    pub fn capabilities(&self, s: &mut Store<HostState>) -> Call<DriverCapabilities> {
        each_version!(self, |d| d.call_capabilities(s))
    }

    pub fn validate_flavor(
        &self,
        s: &mut Store<HostState>,
        flavor: &Flavor,
    ) -> Call<Result<(), DriverError>> {
        each_version!(self, |d| d.call_validate_flavor(&mut *s, flavor))
    }

    pub fn select(
        &self,
        s: &mut Store<HostState>,
        request: &PlacementRequest,
        candidates: &[Candidate],
    ) -> Call<Hints> {
        each_version!(self, |d| d.call_select(&mut *s, request, candidates))
    }

    pub fn translate(
        &self,
        s: &mut Store<HostState>,
        lb: &LoadBalancer,
        device: &Device,
    ) -> Call<Result<DeviceConfig, DriverError>> {
        each_version!(self, |d| d.call_translate(&mut *s, lb, device))
    }

    pub fn apply(
        &self,
        s: &mut Store<HostState>,
        lb: &LoadBalancer,
        device: &Device,
        config: &DeviceConfig,
    ) -> Call<Result<(), DriverError>> {
        each_version!(self, |d| d.call_apply(&mut *s, lb, device, config))
    }

    pub fn remove(
        &self,
        s: &mut Store<HostState>,
        lb: &LoadBalancer,
        device: &Device,
    ) -> Call<Result<(), DriverError>> {
        each_version!(self, |d| d.call_remove(&mut *s, lb, device))
    }

    /// `status`, which 0.1.0 drivers do not have: they report nothing (`unsupported`).
    pub fn status(
        &self,
        s: &mut Store<HostState>,
        lb: &LoadBalancer,
        device: &Device,
    ) -> Call<Result<LoadBalancerStatus, DriverError>> {
        match self {
            Self::V0_1(_) => Ok(Err(DriverError::Unsupported(
                "contract lbaas:driver@0.1.0 has no status export".into(),
            ))),
            Self::V0_2(d) => d.lbaas_driver_driver().call_status(s, lb, device),
        }
    }

    /// `migrate-state`, which 0.1.0 drivers do not have (`None`).
    pub fn migrate_state(
        &self,
        s: &mut Store<HostState>,
        from_version: &str,
    ) -> Call<Option<Result<(), DriverError>>> {
        match self {
            Self::V0_1(_) => Ok(None),
            Self::V0_2(d) => d
                .lbaas_driver_driver()
                .call_migrate_state(s, from_version)
                .map(Some),
        }
    }
}

//! Host-side bindings generated from the WIT contract, one module per released version the
//! host serves. Kept private to the runtime; the types callers need are re-exported from
//! [`crate`].
//!
//! The rest of the host sees one driver, in the current contract's types (0.5.0), whatever
//! contract it was built against. 0.1.0's `types` are 0.2.0's (0.2.0 only added functions);
//! 0.3.0, 0.4.0 and 0.5.0 changed records or enums, and [`crate::compat`] converts between
//! them.
//! [`DriverPre`] / [`DriverInstance`] dispatch to the version a component implements, and
//! answer for exports an older contract lacks.
//!
//! The generated items carry the WIT's own documentation where it has some.

#![allow(missing_docs)]

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::compat;
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

pub mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../wit/lbaas-driver@0.3.0",
        world: "vendor-driver",
        imports: { default: trappable },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../wit/lbaas-driver@0.4.0",
        world: "vendor-driver",
        imports: { default: trappable },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub mod v0_5 {
    wasmtime::component::bindgen!({
        path: "../wit/lbaas-driver@0.5.0",
        world: "vendor-driver",
        imports: { default: trappable },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub use v0_1::lbaas::driver::{device_api, log, state};
pub use v0_5::lbaas::driver::types;

/// The types of contracts 0.1.0 and 0.2.0 (one set: 0.1.0's are 0.2.0's).
pub use v0_2::lbaas::driver::types as legacy;

use types::{
    AvailabilityZone, Candidate, Device, DeviceConfig, DriverCapabilities, DriverError, Flavor,
    Hints, LoadBalancer, LoadBalancerStatus, PlacementRequest,
};

/// The contracts this host serves, oldest first.
pub const CONTRACTS: &[&str] = &[
    "lbaas:driver@0.1.0",
    "lbaas:driver@0.2.0",
    "lbaas:driver@0.3.0",
    "lbaas:driver@0.4.0",
    "lbaas:driver@0.5.0",
];

/// Adds the imports of every contract version to `linker`.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_5::VendorDriver::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_4::VendorDriver::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_3::VendorDriver::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
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
    V0_3(v0_3::VendorDriverPre<HostState>),
    V0_4(v0_4::VendorDriverPre<HostState>),
    V0_5(v0_5::VendorDriverPre<HostState>),
}

impl DriverPre {
    /// Finds the newest contract version the component exports.
    pub fn new(pre: InstancePre<HostState>) -> wasmtime::Result<Self> {
        let newest = match v0_5::VendorDriverPre::new(pre.clone()) {
            Ok(pre) => return Ok(Self::V0_5(pre)),
            Err(newest) => newest,
        };
        if let Ok(pre) = v0_4::VendorDriverPre::new(pre.clone()) {
            return Ok(Self::V0_4(pre));
        }
        if let Ok(pre) = v0_3::VendorDriverPre::new(pre.clone()) {
            return Ok(Self::V0_3(pre));
        }
        if let Ok(pre) = v0_2::VendorDriverPre::new(pre.clone()) {
            return Ok(Self::V0_2(pre));
        }
        v0_1::VendorDriverPre::new(pre)
            .map(Self::V0_1)
            .map_err(|_| newest.context("it exports no `driver` interface this host serves"))
    }

    /// The contract version, as manifests name it.
    pub fn contract(&self) -> &'static str {
        match self {
            Self::V0_1(_) => CONTRACTS[0],
            Self::V0_2(_) => CONTRACTS[1],
            Self::V0_3(_) => CONTRACTS[2],
            Self::V0_4(_) => CONTRACTS[3],
            Self::V0_5(_) => CONTRACTS[4],
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            Self::V0_1(pre) => pre.engine(),
            Self::V0_2(pre) => pre.engine(),
            Self::V0_3(pre) => pre.engine(),
            Self::V0_4(pre) => pre.engine(),
            Self::V0_5(pre) => pre.engine(),
        }
    }

    pub fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<DriverInstance> {
        Ok(match self {
            Self::V0_1(pre) => DriverInstance::Legacy(Legacy::V0_1(pre.instantiate(store)?)),
            Self::V0_2(pre) => DriverInstance::Legacy(Legacy::V0_2(pre.instantiate(store)?)),
            Self::V0_3(pre) => DriverInstance::Legacy(Legacy::V0_3(pre.instantiate(store)?)),
            Self::V0_4(pre) => DriverInstance::Legacy(Legacy::V0_4(pre.instantiate(store)?)),
            Self::V0_5(pre) => DriverInstance::Current(pre.instantiate(store)?),
        })
    }
}

/// One instance of a driver, whichever contract version it implements.
pub enum DriverInstance {
    Current(v0_5::VendorDriver),
    Legacy(Legacy),
}

/// A driver of an older contract: it is called in its own types, converted from and to the
/// current ones.
pub enum Legacy {
    V0_1(v0_1::VendorDriver),
    V0_2(v0_2::VendorDriver),
    V0_3(v0_3::VendorDriver),
    V0_4(v0_4::VendorDriver),
}

/// Calls the same export on whichever legacy version `$legacy` is. `$call` is expanded once per
/// version, so the conversions in it ([`compat::convert`]) take that version's types.
macro_rules! each_legacy {
    ($legacy:expr, |$driver:ident| $call:expr) => {
        match $legacy {
            Legacy::V0_1(d) => {
                let $driver = d.lbaas_driver_driver();
                $call
            }
            Legacy::V0_2(d) => {
                let $driver = d.lbaas_driver_driver();
                $call
            }
            Legacy::V0_3(d) => {
                let $driver = d.lbaas_driver_driver();
                $call
            }
            Legacy::V0_4(d) => {
                let $driver = d.lbaas_driver_driver();
                $call
            }
        }
    };
}

type Call<T> = wasmtime::Result<T>;

/// A legacy driver's answer in the current types.
fn upgraded<T: Serialize, E: Serialize, U: DeserializeOwned>(
    answer: Call<Result<T, E>>,
) -> Call<Result<U, DriverError>> {
    match answer? {
        Ok(value) => compat::convert(&value).map(Ok),
        Err(error) => compat::convert(&error).map(Err),
    }
}

impl DriverInstance {
    pub fn capabilities(&self, s: &mut Store<HostState>) -> Call<DriverCapabilities> {
        match self {
            Self::Current(d) => d.lbaas_driver_driver().call_capabilities(s),
            Self::Legacy(old) => each_legacy!(old, |d| compat::capabilities(
                &d.call_capabilities(&mut *s)?
            )),
        }
    }

    pub fn validate_flavor(
        &self,
        s: &mut Store<HostState>,
        flavor: &Flavor,
    ) -> Call<Result<(), DriverError>> {
        match self {
            Self::Current(d) => d.lbaas_driver_driver().call_validate_flavor(s, flavor),
            Self::Legacy(old) => each_legacy!(old, |d| upgraded(
                d.call_validate_flavor(&mut *s, &compat::convert(flavor)?)
            )),
        }
    }

    /// `validate-availability-zone`, which drivers of 0.1.0 and 0.2.0 do not have: they take
    /// only a zone whose profile sets nothing.
    pub fn validate_availability_zone(
        &self,
        s: &mut Store<HostState>,
        zone: &AvailabilityZone,
    ) -> Call<Result<(), DriverError>> {
        match self {
            Self::Current(d) => d
                .lbaas_driver_driver()
                .call_validate_availability_zone(s, zone),
            Self::Legacy(Legacy::V0_3(d)) => upgraded(
                d.lbaas_driver_driver()
                    .call_validate_availability_zone(s, &compat::convert(zone)?),
            ),
            Self::Legacy(Legacy::V0_4(d)) => upgraded(
                d.lbaas_driver_driver()
                    .call_validate_availability_zone(s, &compat::convert(zone)?),
            ),
            Self::Legacy(_) if zone.metadata.is_empty() => Ok(Ok(())),
            Self::Legacy(old) => Ok(Err(DriverError::Unsupported(format!(
                "contract {} has no availability zone metadata",
                old.contract()
            )))),
        }
    }

    pub fn select(
        &self,
        s: &mut Store<HostState>,
        request: &PlacementRequest,
        candidates: &[Candidate],
    ) -> Call<Hints> {
        match self {
            Self::Current(d) => d.lbaas_driver_driver().call_select(s, request, candidates),
            Self::Legacy(old) => each_legacy!(old, |d| {
                let candidates: Vec<_> = compat::convert(&candidates)?;
                compat::convert(&d.call_select(&mut *s, &compat::convert(request)?, &candidates)?)
            }),
        }
    }

    pub fn translate(
        &self,
        s: &mut Store<HostState>,
        lb: &LoadBalancer,
        device: &Device,
    ) -> Call<Result<DeviceConfig, DriverError>> {
        match self {
            Self::Current(d) => d.lbaas_driver_driver().call_translate(s, lb, device),
            Self::Legacy(old) => each_legacy!(old, |d| {
                let lb = match compat::load_balancer(lb, old.contract())? {
                    Ok(lb) => lb,
                    Err(refused) => return Ok(Err(refused)),
                };
                upgraded(d.call_translate(&mut *s, &lb, &compat::convert(device)?))
            }),
        }
    }

    pub fn apply(
        &self,
        s: &mut Store<HostState>,
        lb: &LoadBalancer,
        device: &Device,
        config: &DeviceConfig,
    ) -> Call<Result<(), DriverError>> {
        match self {
            Self::Current(d) => d.lbaas_driver_driver().call_apply(s, lb, device, config),
            Self::Legacy(old) => each_legacy!(old, |d| {
                let lb = match compat::load_balancer(lb, old.contract())? {
                    Ok(lb) => lb,
                    Err(refused) => return Ok(Err(refused)),
                };
                upgraded(d.call_apply(
                    &mut *s,
                    &lb,
                    &compat::convert(device)?,
                    &compat::convert(config)?,
                ))
            }),
        }
    }

    /// `remove` takes the load balancer as it was: a legacy driver gets it without what its
    /// contract cannot carry, which it never configured.
    pub fn remove(
        &self,
        s: &mut Store<HostState>,
        lb: &LoadBalancer,
        device: &Device,
    ) -> Call<Result<(), DriverError>> {
        match self {
            Self::Current(d) => d.lbaas_driver_driver().call_remove(s, lb, device),
            Self::Legacy(old) => each_legacy!(old, |d| upgraded(d.call_remove(
                &mut *s,
                &compat::convert(lb)?,
                &compat::convert(device)?
            ))),
        }
    }

    /// `status`, which 0.1.0 drivers do not have: they report nothing (`unsupported`).
    pub fn status(
        &self,
        s: &mut Store<HostState>,
        lb: &LoadBalancer,
        device: &Device,
    ) -> Call<Result<LoadBalancerStatus, DriverError>> {
        match self {
            Self::Current(d) => d.lbaas_driver_driver().call_status(s, lb, device),
            Self::Legacy(Legacy::V0_4(d)) => upgraded(d.lbaas_driver_driver().call_status(
                s,
                &compat::convert(lb)?,
                &compat::convert(device)?,
            )),
            Self::Legacy(Legacy::V0_3(d)) => upgraded(d.lbaas_driver_driver().call_status(
                s,
                &compat::convert(lb)?,
                &compat::convert(device)?,
            )),
            Self::Legacy(Legacy::V0_2(d)) => upgraded(d.lbaas_driver_driver().call_status(
                s,
                &compat::convert(lb)?,
                &compat::convert(device)?,
            )),
            Self::Legacy(Legacy::V0_1(_)) => Ok(Err(DriverError::Unsupported(
                "contract lbaas:driver@0.1.0 has no status export".into(),
            ))),
        }
    }

    /// `migrate-state`, which 0.1.0 drivers do not have (`None`).
    pub fn migrate_state(
        &self,
        s: &mut Store<HostState>,
        from_version: &str,
    ) -> Call<Option<Result<(), DriverError>>> {
        match self {
            Self::Current(d) => d
                .lbaas_driver_driver()
                .call_migrate_state(s, from_version)
                .map(Some),
            Self::Legacy(Legacy::V0_4(d)) => {
                upgraded(d.lbaas_driver_driver().call_migrate_state(s, from_version)).map(Some)
            }
            Self::Legacy(Legacy::V0_3(d)) => {
                upgraded(d.lbaas_driver_driver().call_migrate_state(s, from_version)).map(Some)
            }
            Self::Legacy(Legacy::V0_2(d)) => {
                upgraded(d.lbaas_driver_driver().call_migrate_state(s, from_version)).map(Some)
            }
            Self::Legacy(Legacy::V0_1(_)) => Ok(None),
        }
    }
}

impl Legacy {
    fn contract(&self) -> &'static str {
        match self {
            Self::V0_1(_) => CONTRACTS[0],
            Self::V0_2(_) => CONTRACTS[1],
            Self::V0_3(_) => CONTRACTS[2],
            Self::V0_4(_) => CONTRACTS[3],
        }
    }
}

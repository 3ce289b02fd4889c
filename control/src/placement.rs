//! The host's side of placement: the scheduler's view of the store (devices with their load,
//! drivers with their capabilities, the request with the flavor's weights), and the drivers'
//! `select` through the Wasm runtime.

use std::borrow::Cow;
use std::collections::BTreeMap;

use lbaas_scheduler::{
    Decision, DeviceView, DriverHints, DriverInfo, Explanation, Hints, Offer, Request, SpawnSpec,
    Verdict, Weights,
};

use crate::contract::{self, ProfileDataError};
use crate::drivers::Drivers;
use crate::model::{self, Device, LoadBalancer, Protocol};
use crate::runtime::{self as wit, LoadedDriver, LoadedIdentity};
use crate::snapshot::Snapshot;
use lbaas_core::placement as recorded;

/// Candidates each driver judges.
pub const TOP_K: usize = 8;

/// A load balancer to place: a stored one, or a hypothetical one (dry run).
pub struct Target {
    pub loadbalancer_id: String,
    pub project_id: String,
    pub vip_address: Option<String>,
    pub vip_network: String,
    pub member_networks: Vec<String>,
    pub protocols: Vec<Protocol>,
    pub flavor_id: Option<String>,
    pub provider: String,
    /// The availability zone (its name): only its devices may be chosen.
    pub availability_zone: Option<String>,
    /// A device that must not be chosen (the one a migration leaves).
    pub exclude: Option<String>,
    /// The only device that may be chosen (a migration to a named device).
    pub only: Option<String>,
}

impl Target {
    /// The stored load balancer `lb`, with the networks of its members and its protocols.
    pub fn of(snapshot: &Snapshot, lb: &LoadBalancer) -> Self {
        let id = lb.common.id.as_str();
        let mut member_networks: Vec<String> = Vec::new();
        for member in snapshot.members.iter().filter(|m| m.loadbalancer_id == id) {
            let network = snapshot.networks.iter().find(|n| {
                n.subnets.iter().any(|s| {
                    member.subnet_id.as_deref() == Some(s.id.as_str())
                        || crate::net::contains(&s.cidr, &member.address)
                })
            });
            if let Some(network) = network
                && !member_networks.contains(&network.id)
            {
                member_networks.push(network.id.clone());
            }
        }
        let mut protocols: Vec<Protocol> = snapshot
            .listeners_of(id)
            .map(|l| l.protocol)
            .chain(snapshot.pools_of(id).map(|p| p.protocol))
            .collect();
        protocols.dedup();
        Self {
            loadbalancer_id: id.to_owned(),
            project_id: lb.common.project_id.clone(),
            vip_address: Some(lb.vip_address.clone()),
            vip_network: lb.vip_network_id.clone(),
            member_networks,
            protocols,
            flavor_id: lb.flavor_id.clone(),
            provider: lb.provider.clone(),
            availability_zone: lb.availability_zone.clone(),
            exclude: lb.migration.as_ref().map(|m| m.from.clone()),
            only: lb.migration.as_ref().and_then(|m| m.to.clone()),
        }
    }
}

/// The flavor's scheduler weights: `flavor_data.scheduler`, Octavia's metadata left alone.
pub fn weights(flavor_data: &str) -> Result<Weights, ProfileDataError> {
    let data: serde_json::Value =
        serde_json::from_str(flavor_data).map_err(|e| ProfileDataError::NotJson(e.to_string()))?;
    match data.get("scheduler") {
        None => Ok(Weights::default()),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|e| ProfileDataError::Weights(e.to_string())),
    }
}

/// The target's availability zone as drivers see it: its name and its profile's metadata.
pub fn availability_zone_of(
    snapshot: &Snapshot,
    name: Option<&str>,
) -> Option<wit::AvailabilityZone> {
    let zone = snapshot.availability_zone(name?).ok()?;
    let profile = snapshot
        .availability_zone_profile(&zone.availability_zone_profile_id)
        .ok()?;
    let metadata = contract::flavor(&zone.name, &profile.availability_zone_data)
        .ok()?
        .metadata;
    Some(wit::AvailabilityZone {
        name: zone.name.clone(),
        metadata,
    })
}

fn flavor_of<'a>(
    snapshot: &'a Snapshot,
    target: &Target,
) -> Option<(&'a model::Flavor, &'a model::FlavorProfile)> {
    let flavor = snapshot.flavor(target.flavor_id.as_deref()?).ok()?;
    let profile = snapshot.flavorprofile(&flavor.flavor_profile_id).ok()?;
    Some((flavor, profile))
}

/// A decision, and the driver versions that took part in it.
pub struct Decided {
    pub explanation: Explanation,
    /// Each placeable driver's active version when the decision was made, by name.
    pub versions: BTreeMap<String, LoadedIdentity>,
}

impl Decided {
    /// The decision as the placement record keeps it.
    pub fn recorded(&self) -> recorded::Explanation {
        record(&self.explanation)
    }

    /// Who made the placement, when it placed or spawned.
    pub fn placed_by(&self) -> Option<model::PlacedBy> {
        let driver = match &self.explanation.outcome {
            Decision::Placed { driver, .. } | Decision::Spawn { driver, .. } => driver,
            Decision::NoCapacity { .. } => return None,
        };
        self.versions.get(driver).map(|identity| model::PlacedBy {
            driver: driver.clone(),
            version: identity.version.clone(),
            sha256: identity.sha256.clone(),
        })
    }
}

/// The scheduler's explanation in the record's types (the store and the admin API's answers
/// never hold the scheduler's own).
pub fn record(explanation: &Explanation) -> recorded::Explanation {
    let verdict = |verdict: &Verdict| match verdict {
        Verdict::Reject(reason) => recorded::Verdict::Reject(reason.clone()),
        Verdict::Score(score) => recorded::Verdict::Score(*score),
    };
    recorded::Explanation {
        candidates: explanation
            .candidates
            .iter()
            .map(|c| recorded::Candidate {
                device_id: c.device_id.clone(),
                driver: c.driver.clone(),
                filtered_by: c.filtered_by.clone(),
                weighers: c.weighers.clone(),
                host_score: c.host_score,
                offered: c.offered,
                driver_verdict: c.driver_verdict.as_ref().map(verdict),
            })
            .collect(),
        considered: explanation.considered,
        unlisted: explanation.unlisted.clone(),
        driver_errors: explanation.driver_errors.clone(),
        outcome: match &explanation.outcome {
            Decision::Placed { device_id, driver } => recorded::Outcome::Placed {
                device_id: device_id.clone(),
                driver: driver.clone(),
            },
            Decision::Spawn {
                driver,
                spec,
                reason,
            } => recorded::Outcome::Spawn {
                driver: driver.clone(),
                spec: recorded::DeviceSpec {
                    name: spec.name.clone(),
                    capacity: spec.capacity,
                    metadata: spec.metadata.clone(),
                },
                reason: reason.clone(),
            },
            Decision::NoCapacity { reason } => recorded::Outcome::NoCapacity {
                reason: reason.clone(),
            },
        },
    }
}

/// Decides where `target` goes, asking the drivers through the Wasm runtime. Changes nothing.
/// The active versions are taken once, so one decision never mixes two versions of a driver.
pub fn decide(drivers: &Drivers, snapshot: &Snapshot, target: &Target) -> Decided {
    let flavor = flavor_of(snapshot, target)
        .and_then(|(f, p)| contract::flavor(&f.name, &p.flavor_data).ok());
    let serving = drivers.placeable();
    let hints = WasmHints {
        drivers: &serving,
        snapshot,
        target,
        flavor,
    };
    let explanation = decide_among(&serving, snapshot, target, &hints);
    Decided {
        explanation,
        versions: serving
            .iter()
            .map(|d| (d.name().to_string(), d.identity().clone()))
            .collect(),
    }
}

/// Decides where `target` goes with `hints` standing in for the drivers' `select`.
pub fn decide_with(
    drivers: &Drivers,
    snapshot: &Snapshot,
    target: &Target,
    hints: &dyn DriverHints,
) -> Explanation {
    decide_among(&drivers.placeable(), snapshot, target, hints)
}

fn decide_among(
    serving: &[LoadedDriver],
    snapshot: &Snapshot,
    target: &Target,
    hints: &dyn DriverHints,
) -> Explanation {
    let flavor = flavor_of(snapshot, target);
    let eligible = flavor
        .map(|(_, profile)| profile.providers())
        .unwrap_or_else(|| vec![target.provider.clone()]);
    let weights = flavor
        .and_then(|(_, profile)| weights(&profile.flavor_data).ok())
        .unwrap_or_default();
    let loads = snapshot.device_loads(
        &target.loadbalancer_id,
        &target.project_id,
        &target.vip_network,
    );
    let devices: Vec<DeviceView<'_>> = snapshot
        .devices
        .iter()
        .enumerate()
        .filter(|(_, d)| target.exclude.as_deref() != Some(d.id.as_str()))
        .filter(|(_, d)| target.only.as_deref().is_none_or(|only| only == d.id))
        .map(|(i, d)| DeviceView {
            id: Cow::Borrowed(&d.id),
            driver: Cow::Borrowed(&d.driver),
            enabled: d.enabled,
            healthy: true,
            capacity: d.capacity,
            load: loads.all[i],
            project_load: loads.project[i],
            network_load: loads.network[i],
            owner: d.project_id.as_deref().map(Cow::Borrowed),
            networks: Cow::Borrowed(&d.networks),
            interfaces: d
                .metadata
                .get("interfaces")
                .and_then(|i| i.parse().ok())
                .unwrap_or(1),
            zone: d.availability_zone.as_deref().map(Cow::Borrowed),
        })
        .collect();
    // A draining or quarantined driver takes no new load balancers.
    let infos: Vec<DriverInfo> = serving
        .iter()
        .map(|driver| {
            let caps = driver.capabilities();
            DriverInfo {
                name: caps.name.clone(),
                protocols: caps.protocols.iter().map(|p| p.name().to_owned()).collect(),
                can_spawn: caps.can_spawn,
                max_vips_per_device: caps.limits.max_vips_per_device,
                max_vlans_per_interface: caps.limits.max_vlans_per_interface,
            }
        })
        .collect();
    let request = Request {
        project_id: target.project_id.clone(),
        vip_network: target.vip_network.clone(),
        member_networks: target.member_networks.clone(),
        protocols: target
            .protocols
            .iter()
            .map(|p| p.name().to_owned())
            .collect(),
        drivers: eligible,
        availability_zone: target.availability_zone.clone(),
        weights,
        top_k: TOP_K,
    };
    lbaas_scheduler::schedule(&devices, &infos, &request, hints)
}

/// Asks drivers through the runtime.
struct WasmHints<'a> {
    drivers: &'a [LoadedDriver],
    snapshot: &'a Snapshot,
    target: &'a Target,
    flavor: Option<wit::Flavor>,
}

impl WasmHints<'_> {
    fn network(&self, id: &str) -> wit::Network {
        self.snapshot
            .networks
            .iter()
            .find(|n| n.id == id)
            .map(contract::network)
            .unwrap_or(wit::Network {
                id: id.to_owned(),
                cidr: String::new(),
                vlan: None,
            })
    }

    fn device(&self, id: &str) -> Option<&Device> {
        self.snapshot.device_by_id(id)
    }
}

impl DriverHints for WasmHints<'_> {
    fn select(
        &self,
        driver: &str,
        _request: &Request,
        offers: &[Offer<'_>],
    ) -> Result<Hints, String> {
        let loaded = self
            .drivers
            .iter()
            .find(|d| d.name().as_str() == driver)
            .ok_or_else(|| format!("driver {driver} is not loaded"))?;
        let target = self.target;
        let request = wit::PlacementRequest {
            load_balancer_id: target.loadbalancer_id.clone(),
            project_id: target.project_id.clone(),
            vip_address: target.vip_address.clone(),
            vip_network: self.network(&target.vip_network),
            member_networks: target
                .member_networks
                .iter()
                .map(|n| self.network(n))
                .collect(),
            protocols: target
                .protocols
                .iter()
                .map(|p| contract::protocol(*p))
                .collect(),
            flavor: self.flavor.clone(),
            availability_zone: availability_zone_of(
                self.snapshot,
                target.availability_zone.as_deref(),
            ),
        };
        let candidates: Vec<wit::Candidate> = offers
            .iter()
            .filter_map(|offer| {
                Some(wit::Candidate {
                    device: contract::device(self.device(&offer.device.id)?),
                    load_balancers: offer.device.load,
                    project_load_balancers: offer.device.project_load,
                    host_score: offer.host_score,
                })
            })
            .collect();
        let hints = loaded
            .select(&request, &candidates)
            .map_err(|e| e.to_string())?;
        Ok(Hints {
            verdicts: hints
                .devices
                .into_iter()
                .map(|hint| {
                    let verdict = match hint.verdict {
                        wit::Verdict::Reject(reason) => Verdict::Reject(reason),
                        wit::Verdict::Score(score) => Verdict::Score(score),
                    };
                    (hint.device_id, verdict)
                })
                .collect(),
            spawn: hints.spawn.map(|spec| SpawnSpec {
                name: spec.name,
                capacity: spec.capacity,
                metadata: spec
                    .metadata
                    .into_iter()
                    .map(|e| (e.key, e.value))
                    .collect::<BTreeMap<_, _>>(),
            }),
        })
    }
}

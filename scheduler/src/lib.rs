//! Placement of a load balancer on a device, as plain logic over a snapshot of devices and
//! their load. No Wasm here: the driver takes part through the [`DriverHints`] trait, which the
//! host implements with the driver runtime and tests implement natively.
//!
//! The pipeline: candidates of the eligible drivers → host filters → host weighers → the top K
//! of each driver go to that driver's `select` (reject / score / ask to spawn) → the best
//! accepted candidate across drivers wins. Every step is recorded in an [`Explanation`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A device as the scheduler sees it, with its load at the time of the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    pub id: String,
    pub driver: String,
    pub enabled: bool,
    pub healthy: bool,
    pub capacity: u32,
    /// Load balancers placed on the device.
    pub load: u32,
    /// Of those, the requesting project's.
    pub project_load: u32,
    /// Of those, with their VIP on the request's VIP network.
    pub network_load: u32,
    /// None: shared; otherwise the only project that may use it.
    pub owner: Option<String>,
    /// Networks the device is already wired to.
    pub networks: Vec<String>,
    /// Data interfaces, each carrying up to the driver's VLANs-per-interface limit.
    pub interfaces: u32,
}

/// What the scheduler needs to know of a driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverInfo {
    pub name: String,
    /// Protocols the driver serves, by name.
    pub protocols: Vec<String>,
    pub can_spawn: bool,
    /// A driver-declared ceiling on VIPs per device.
    pub max_vips_per_device: Option<u32>,
    /// A driver-declared ceiling on networks (VLANs) per device interface.
    pub max_vlans_per_interface: Option<u32>,
}

/// How much each host weigher counts, settable per flavor. A negative project weight spreads
/// a project's load balancers (anti-affinity); a positive one groups them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub least_loaded: f64,
    pub wired: f64,
    pub project_affinity: f64,
    pub network_affinity: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            least_loaded: 1.0,
            wired: 1.0,
            project_affinity: 0.0,
            network_affinity: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub project_id: String,
    pub vip_network: String,
    pub member_networks: Vec<String>,
    /// Listener and pool protocols the load balancer uses, by name.
    pub protocols: Vec<String>,
    /// Drivers the flavor makes eligible.
    pub drivers: Vec<String>,
    pub weights: Weights,
    /// Candidates per driver offered to its `select`.
    pub top_k: usize,
}

/// A candidate offered to a driver, with the host's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer<'a> {
    pub device: &'a DeviceView,
    pub host_score: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Reject(String),
    Score(i32),
}

/// A driver's answer to `select`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hints {
    pub verdicts: Vec<(String, Verdict)>,
    /// The driver asks for a new device with this spec (opaque to the scheduler).
    pub spawn: Option<SpawnSpec>,
}

/// A driver's request for a new device: name, capacity and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SpawnSpec {
    pub name: String,
    pub capacity: u32,
    pub metadata: BTreeMap<String, String>,
}

/// The driver's part of the decision.
pub trait DriverHints {
    /// Asks `driver` to judge `offers` (possibly none). An error counts as rejecting them all.
    fn select(
        &self,
        driver: &str,
        request: &Request,
        offers: &[Offer<'_>],
    ) -> Result<Hints, String>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Placed { device_id: String, driver: String },
    Spawn { driver: String, spec: SpawnSpec },
    NoCapacity { reason: String },
}

/// What happened to one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateReport {
    pub device_id: String,
    pub driver: String,
    /// The host filter that removed it, if one did.
    pub filtered_by: Option<String>,
    /// Each weigher's contribution to the host score.
    pub weighers: BTreeMap<String, f64>,
    pub host_score: Option<i32>,
    /// Whether it was among its driver's top K and offered to the driver.
    pub offered: bool,
    pub driver_verdict: Option<Verdict>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub candidates: Vec<CandidateReport>,
    /// Driver calls that failed, by driver.
    pub driver_errors: BTreeMap<String, String>,
    pub outcome: Outcome,
}

/// The host filters, in order; the first that fails removes the device.
fn filter(device: &DeviceView, driver: Option<&DriverInfo>, request: &Request) -> Option<String> {
    let Some(driver) = driver else {
        return Some(format!("driver {} is not loaded", device.driver));
    };
    if !request.drivers.contains(&device.driver) {
        return Some(format!(
            "driver {} is not eligible for this flavor",
            device.driver
        ));
    }
    if !device.enabled {
        return Some("disabled".into());
    }
    if !device.healthy {
        return Some("unhealthy".into());
    }
    if device
        .owner
        .as_deref()
        .is_some_and(|owner| owner != request.project_id)
    {
        return Some("private to another project".into());
    }
    if device.load >= device.capacity {
        return Some(format!(
            "at capacity ({} of {})",
            device.load, device.capacity
        ));
    }
    if let Some(max) = driver.max_vips_per_device
        && device.load >= max
    {
        return Some(format!("driver limit of {max} VIPs per device reached"));
    }
    if let Some(limit) = driver.max_vlans_per_interface {
        let slots = limit.saturating_mul(device.interfaces.max(1)) as usize;
        let new = std::iter::once(&request.vip_network)
            .chain(&request.member_networks)
            .filter(|n| !device.networks.contains(n))
            .count();
        if device.networks.len() + new > slots {
            return Some(format!(
                "driver limit of {limit} VLANs per interface: {new} more network(s) do not fit"
            ));
        }
    }
    if let Some(missing) = request
        .protocols
        .iter()
        .find(|p| !driver.protocols.contains(p))
    {
        return Some(format!("driver does not support protocol {missing}"));
    }
    None
}

/// Weigher contributions, each a fraction in [0, 1] (or [-1, 1]) times its weight times 100.
fn weigh(device: &DeviceView, request: &Request, peaks: &Peaks) -> BTreeMap<String, f64> {
    let w = request.weights;
    let mut contributions = BTreeMap::new();
    let free = 1.0 - f64::from(device.load) / f64::from(device.capacity.max(1));
    contributions.insert("least_loaded".to_owned(), w.least_loaded * free * 100.0);
    let wanted: Vec<&String> = std::iter::once(&request.vip_network)
        .chain(&request.member_networks)
        .collect();
    let wired = wanted
        .iter()
        .filter(|n| device.networks.contains(n))
        .count() as f64
        / wanted.len().max(1) as f64;
    contributions.insert("wired".to_owned(), w.wired * wired * 100.0);
    let share = |value: u32, peak: u32| {
        if peak == 0 {
            0.0
        } else {
            f64::from(value) / f64::from(peak)
        }
    };
    contributions.insert(
        "project_affinity".to_owned(),
        w.project_affinity * share(device.project_load, peaks.project) * 100.0,
    );
    contributions.insert(
        "network_affinity".to_owned(),
        w.network_affinity * share(device.network_load, peaks.network) * 100.0,
    );
    contributions
}

/// The largest loads among the candidates, to scale the affinity weighers.
struct Peaks {
    project: u32,
    network: u32,
}

/// Decides where a load balancer goes.
pub fn schedule(
    devices: &[DeviceView],
    drivers: &[DriverInfo],
    request: &Request,
    hints: &dyn DriverHints,
) -> Explanation {
    let driver_info = |name: &str| drivers.iter().find(|d| d.name == name);
    // Only the eligible drivers' devices are candidates; sorted so the order given never
    // matters.
    let mut pool: Vec<&DeviceView> = devices
        .iter()
        .filter(|d| request.drivers.contains(&d.driver))
        .collect();
    pool.sort_by(|a, b| a.id.cmp(&b.id));

    let mut reports: Vec<CandidateReport> = pool
        .iter()
        .map(|device| CandidateReport {
            device_id: device.id.clone(),
            driver: device.driver.clone(),
            filtered_by: filter(device, driver_info(&device.driver), request),
            weighers: BTreeMap::new(),
            host_score: None,
            offered: false,
            driver_verdict: None,
        })
        .collect();
    let survivors: Vec<usize> = (0..pool.len())
        .filter(|&i| reports[i].filtered_by.is_none())
        .collect();
    let peaks = Peaks {
        project: survivors
            .iter()
            .map(|&i| pool[i].project_load)
            .max()
            .unwrap_or(0),
        network: survivors
            .iter()
            .map(|&i| pool[i].network_load)
            .max()
            .unwrap_or(0),
    };
    for &i in &survivors {
        let weighers = weigh(pool[i], request, &peaks);
        let total: f64 = weighers.values().sum();
        reports[i].host_score = Some(total.round() as i32);
        reports[i].weighers = weighers;
    }

    // Each eligible driver judges its own top K (or, with none, may ask to spawn).
    let mut driver_errors = BTreeMap::new();
    let mut spawn: Option<(String, SpawnSpec)> = None;
    let mut eligible: Vec<&String> = request.drivers.iter().collect();
    eligible.sort();
    eligible.dedup();
    for driver in eligible {
        let Some(info) = driver_info(driver) else {
            continue;
        };
        let mut mine: Vec<usize> = survivors
            .iter()
            .copied()
            .filter(|&i| &pool[i].driver == driver)
            .collect();
        mine.sort_by(|&a, &b| {
            reports[b]
                .host_score
                .cmp(&reports[a].host_score)
                .then_with(|| pool[a].id.cmp(&pool[b].id))
        });
        mine.truncate(request.top_k.max(1));
        if mine.is_empty() && !info.can_spawn {
            continue;
        }
        let offers: Vec<Offer<'_>> = mine
            .iter()
            .map(|&i| Offer {
                device: pool[i],
                host_score: reports[i].host_score.unwrap_or(0),
            })
            .collect();
        for &i in &mine {
            reports[i].offered = true;
        }
        match hints.select(driver, request, &offers) {
            Ok(answer) => {
                for &i in &mine {
                    let verdict = answer
                        .verdicts
                        .iter()
                        .find(|(id, _)| *id == pool[i].id)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| Verdict::Reject("the driver gave no verdict".into()));
                    reports[i].driver_verdict = Some(verdict);
                }
                if let Some(spec) = answer.spawn
                    && info.can_spawn
                    && spawn.is_none()
                {
                    spawn = Some((driver.clone(), spec));
                }
            }
            Err(error) => {
                for &i in &mine {
                    reports[i].driver_verdict =
                        Some(Verdict::Reject(format!("driver failed: {error}")));
                }
                driver_errors.insert(driver.clone(), error);
            }
        }
    }

    // The best accepted candidate across drivers; ties go to the lower device id.
    let winner = reports
        .iter()
        .filter_map(|r| match r.driver_verdict {
            Some(Verdict::Score(score)) => Some((score, r)),
            _ => None,
        })
        .max_by(|(a, ra), (b, rb)| a.cmp(b).then_with(|| rb.device_id.cmp(&ra.device_id)));
    let outcome = match (winner, spawn) {
        (Some((_, report)), _) => Outcome::Placed {
            device_id: report.device_id.clone(),
            driver: report.driver.clone(),
        },
        (None, Some((driver, spec))) => Outcome::Spawn { driver, spec },
        (None, None) => Outcome::NoCapacity {
            reason: no_capacity_reason(request, &reports),
        },
    };
    Explanation {
        candidates: reports,
        driver_errors,
        outcome,
    }
}

fn no_capacity_reason(request: &Request, reports: &[CandidateReport]) -> String {
    if reports.is_empty() {
        return format!(
            "no capacity: no device of provider {} is registered",
            request.drivers.join(" or ")
        );
    }
    let mut reasons: Vec<String> = reports
        .iter()
        .map(|r| {
            let why = match (&r.filtered_by, &r.driver_verdict) {
                (Some(filter), _) => filter.clone(),
                (None, Some(Verdict::Reject(reason))) => reason.clone(),
                _ => "not among the best candidates".into(),
            };
            format!("{}: {why}", r.device_id)
        })
        .collect();
    reasons.truncate(8);
    format!(
        "no capacity: no device can take this load balancer ({})",
        reasons.join("; ")
    )
}

#[cfg(test)]
mod tests;

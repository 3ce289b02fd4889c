//! Placement of a load balancer on a device, as plain logic over a snapshot of devices and
//! their load. No Wasm here: the driver takes part through the [`DriverHints`] trait, which the
//! host implements with the driver runtime and tests implement natively.
//!
//! The pipeline: candidates of the eligible drivers → host filters → host weighers → the top K
//! of each driver go to that driver's `select` (reject / score / ask to spawn) → the best
//! accepted candidate across drivers wins. Every step is recorded in an [`Explanation`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Pools of up to this many candidates are explained candidate by candidate. Larger ones list
/// the candidates offered to a driver and count the others by why they were not chosen, so an
/// explanation (stored with every placement) stays small with thousands of devices.
pub const EXPLAIN_EVERY_CANDIDATE: usize = 32;

/// A device as the scheduler sees it, with its load at the time of the decision. The host
/// lends its records' strings; tests may own theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView<'a> {
    pub id: Cow<'a, str>,
    pub driver: Cow<'a, str>,
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
    pub owner: Option<Cow<'a, str>>,
    /// Networks the device is already wired to.
    pub networks: Cow<'a, [String]>,
    /// Data interfaces, each carrying up to the driver's VLANs-per-interface limit.
    pub interfaces: u32,
    /// The availability zone the device is in.
    #[serde(default)]
    pub zone: Option<Cow<'a, str>>,
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
    /// The availability zone asked for: only its devices may be chosen.
    #[serde(default)]
    pub availability_zone: Option<String>,
    pub weights: Weights,
    /// Candidates per driver offered to its `select`.
    pub top_k: usize,
}

/// A candidate offered to a driver, with the host's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer<'a> {
    pub device: &'a DeviceView<'a>,
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
pub enum Decision {
    Placed {
        device_id: String,
        driver: String,
    },
    Spawn {
        driver: String,
        spec: SpawnSpec,
        /// Why no existing device would do, in words (empty in decisions recorded before
        /// reasons were).
        #[serde(default)]
        reason: String,
    },
    NoCapacity {
        reason: String,
    },
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
    /// Every candidate when there are at most [`EXPLAIN_EVERY_CANDIDATE`]; otherwise those
    /// offered to a driver.
    pub candidates: Vec<CandidateReport>,
    /// Devices of the eligible drivers considered.
    #[serde(default)]
    pub considered: usize,
    /// The candidates not listed, counted by why they were not chosen: the filter that
    /// removed them, or `not among the best candidates`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unlisted: BTreeMap<String, usize>,
    /// Driver calls that failed, by driver.
    pub driver_errors: BTreeMap<String, String>,
    pub outcome: Decision,
}

/// Why a host filter removed a device. Kept as data until an explanation needs the words,
/// so judging thousands of devices allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Filtered<'a> {
    NotLoaded(&'a str),
    Disabled,
    Unhealthy,
    Private,
    OtherZone,
    AtCapacity { load: u32, capacity: u32 },
    VipLimit(u32),
    VlanLimit { limit: u32, new: usize },
    Protocol(&'a str),
}

impl Filtered<'_> {
    /// The filter's name, for counting.
    fn kind(&self) -> &'static str {
        match self {
            Filtered::NotLoaded(_) => "driver not loaded",
            Filtered::Disabled => "disabled",
            Filtered::Unhealthy => "unhealthy",
            Filtered::Private => "private to another project",
            Filtered::OtherZone => "in another availability zone",
            Filtered::AtCapacity { .. } => "at capacity",
            Filtered::VipLimit(_) => "driver limit of VIPs per device",
            Filtered::VlanLimit { .. } => "driver limit of VLANs per interface",
            Filtered::Protocol(_) => "protocol not supported",
        }
    }

    fn describe(&self) -> String {
        match *self {
            Filtered::NotLoaded(driver) => format!("driver {driver} is not loaded"),
            Filtered::AtCapacity { load, capacity } => {
                format!("at capacity ({load} of {capacity})")
            }
            Filtered::VipLimit(max) => format!("driver limit of {max} VIPs per device reached"),
            Filtered::VlanLimit { limit, new } => format!(
                "driver limit of {limit} VLANs per interface: {new} more network(s) do not fit"
            ),
            Filtered::Protocol(missing) => format!("driver does not support protocol {missing}"),
            other => other.kind().to_owned(),
        }
    }
}

/// The host filters, in order; the first that fails removes the device. Only devices of the
/// request's eligible drivers reach them.
fn filter<'a>(
    device: &'a DeviceView<'_>,
    driver: Option<&'a DriverInfo>,
    missing: Option<&'a str>,
    request: &'a Request,
) -> Option<Filtered<'a>> {
    let Some(driver) = driver else {
        return Some(Filtered::NotLoaded(&device.driver));
    };
    if !device.enabled {
        return Some(Filtered::Disabled);
    }
    if !device.healthy {
        return Some(Filtered::Unhealthy);
    }
    if device
        .owner
        .as_deref()
        .is_some_and(|owner| owner != request.project_id)
    {
        return Some(Filtered::Private);
    }
    if let Some(zone) = &request.availability_zone
        && device.zone.as_deref() != Some(zone.as_str())
    {
        return Some(Filtered::OtherZone);
    }
    if device.load >= device.capacity {
        return Some(Filtered::AtCapacity {
            load: device.load,
            capacity: device.capacity,
        });
    }
    if let Some(max) = driver.max_vips_per_device
        && device.load >= max
    {
        return Some(Filtered::VipLimit(max));
    }
    if let Some(limit) = driver.max_vlans_per_interface {
        let slots = limit.saturating_mul(device.interfaces.max(1)) as usize;
        let new = std::iter::once(&request.vip_network)
            .chain(&request.member_networks)
            .filter(|n| !device.networks.contains(n))
            .count();
        if device.networks.len() + new > slots {
            return Some(Filtered::VlanLimit { limit, new });
        }
    }
    missing.map(Filtered::Protocol)
}

/// A protocol the request needs that `driver` does not serve.
fn missing_protocol<'a>(driver: &DriverInfo, request: &'a Request) -> Option<&'a str> {
    request
        .protocols
        .iter()
        .find(|p| !driver.protocols.contains(p))
        .map(String::as_str)
}

/// The host weighers' contributions, in the order of [`WEIGHERS`].
type Contributions = [f64; 4];
const WEIGHERS: [&str; 4] = [
    "least_loaded",
    "wired",
    "project_affinity",
    "network_affinity",
];

fn weigh(device: &DeviceView<'_>, request: &Request, peaks: &Peaks) -> Contributions {
    let w = request.weights;
    let free = 1.0 - f64::from(device.load) / f64::from(device.capacity.max(1));
    let wanted = 1 + request.member_networks.len();
    let wired = std::iter::once(&request.vip_network)
        .chain(&request.member_networks)
        .filter(|n| device.networks.contains(n))
        .count() as f64
        / wanted as f64;
    let share = |value: u32, peak: u32| {
        if peak == 0 {
            0.0
        } else {
            f64::from(value) / f64::from(peak)
        }
    };
    [
        w.least_loaded * free * 100.0,
        w.wired * wired * 100.0,
        w.project_affinity * share(device.project_load, peaks.project) * 100.0,
        w.network_affinity * share(device.network_load, peaks.network) * 100.0,
    ]
}

struct Peaks {
    project: u32,
    network: u32,
}

/// One candidate while it is judged.
struct Judged<'a> {
    device: &'a DeviceView<'a>,
    /// Its driver's position among the eligible ones.
    driver: usize,
    filtered: Option<Filtered<'a>>,
    contributions: Contributions,
    host_score: i32,
    offered: bool,
    verdict: Option<Verdict>,
}

impl Judged<'_> {
    fn report(&self) -> CandidateReport {
        let weighed = self.filtered.is_none();
        CandidateReport {
            device_id: self.device.id.to_string(),
            driver: self.device.driver.to_string(),
            filtered_by: self.filtered.map(|f| f.describe()),
            weighers: if weighed {
                WEIGHERS
                    .iter()
                    .zip(self.contributions)
                    .map(|(name, value)| ((*name).to_owned(), value))
                    .collect()
            } else {
                BTreeMap::new()
            },
            host_score: weighed.then_some(self.host_score),
            offered: self.offered,
            driver_verdict: self.verdict.clone(),
        }
    }

    /// Why it was not chosen, in a word, for counting.
    fn unlisted_reason(&self) -> &'static str {
        match self.filtered {
            Some(filtered) => filtered.kind(),
            None => "not among the best candidates",
        }
    }
}

/// Places one load balancer: filters, weighers, the drivers' verdicts on their top K, the
/// best accepted candidate. Linear in the devices (the top K is selected, not sorted out of
/// all of them).
pub fn schedule(
    devices: &[DeviceView<'_>],
    drivers: &[DriverInfo],
    request: &Request,
    hints: &dyn DriverHints,
) -> Explanation {
    let driver_info = |name: &str| drivers.iter().find(|d| d.name == name);
    // Only the eligible drivers' devices are candidates; sorted so the order given never
    // matters (the host gives them sorted already).
    let mut eligible: Vec<&String> = request.drivers.iter().collect();
    eligible.sort();
    eligible.dedup();
    let infos: Vec<Option<&DriverInfo>> = eligible.iter().map(|name| driver_info(name)).collect();
    let missing: Vec<Option<&str>> = infos
        .iter()
        .map(|info| info.and_then(|info| missing_protocol(info, request)))
        .collect();
    // Each candidate with the position of its driver in `eligible`.
    let mut pool: Vec<(&DeviceView<'_>, usize)> = devices
        .iter()
        .filter_map(|d| Some((d, eligible.iter().position(|e| **e == d.driver)?)))
        .collect();
    if !pool.is_sorted_by(|a, b| a.0.id <= b.0.id) {
        pool.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    }

    let mut judged: Vec<Judged<'_>> = pool
        .iter()
        .map(|&(device, driver)| Judged {
            device,
            driver,
            filtered: filter(device, infos[driver], missing[driver], request),
            contributions: [0.0; 4],
            host_score: 0,
            offered: false,
            verdict: None,
        })
        .collect();
    let survivors = || judged.iter().filter(|j| j.filtered.is_none());
    let peaks = Peaks {
        project: survivors()
            .map(|j| j.device.project_load)
            .max()
            .unwrap_or(0),
        network: survivors()
            .map(|j| j.device.network_load)
            .max()
            .unwrap_or(0),
    };
    for candidate in judged.iter_mut().filter(|j| j.filtered.is_none()) {
        candidate.contributions = weigh(candidate.device, request, &peaks);
        candidate.host_score = candidate.contributions.iter().sum::<f64>().round() as i32;
    }

    // Each eligible driver judges its own top K (or, with none, may ask to spawn).
    let mut driver_errors = BTreeMap::new();
    let mut spawn: Option<(String, SpawnSpec)> = None;
    // Higher score first; on a tie the lower device id, which is the lower position.
    let best_first = |judged: &[Judged<'_>], a: usize, b: usize| {
        judged[b]
            .host_score
            .cmp(&judged[a].host_score)
            .then(a.cmp(&b))
    };
    for (position, driver) in eligible.into_iter().enumerate() {
        let Some(info) = infos[position] else {
            continue;
        };
        let mut mine: Vec<usize> = (0..judged.len())
            .filter(|&i| judged[i].filtered.is_none() && judged[i].driver == position)
            .collect();
        let k = request.top_k.max(1);
        if mine.len() > k {
            mine.select_nth_unstable_by(k - 1, |&a, &b| best_first(&judged, a, b));
            mine.truncate(k);
        }
        mine.sort_by(|&a, &b| best_first(&judged, a, b));
        if mine.is_empty() && !info.can_spawn {
            continue;
        }
        let offers: Vec<Offer<'_>> = mine
            .iter()
            .map(|&i| Offer {
                device: judged[i].device,
                host_score: judged[i].host_score,
            })
            .collect();
        let answer = hints.select(driver, request, &offers);
        for &i in &mine {
            judged[i].offered = true;
        }
        match answer {
            Ok(answer) => {
                for &i in &mine {
                    let verdict = answer
                        .verdicts
                        .iter()
                        .find(|(id, _)| *id == judged[i].device.id)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| Verdict::Reject("the driver gave no verdict".into()));
                    judged[i].verdict = Some(verdict);
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
                    judged[i].verdict = Some(Verdict::Reject(format!("driver failed: {error}")));
                }
                driver_errors.insert(driver.clone(), error);
            }
        }
    }

    // The best accepted candidate across drivers; ties go to the lower device id.
    let winner = judged
        .iter()
        .filter_map(|j| match j.verdict {
            Some(Verdict::Score(score)) => Some((score, j)),
            _ => None,
        })
        .max_by(|(a, ja), (b, jb)| a.cmp(b).then_with(|| jb.device.id.cmp(&ja.device.id)));
    let outcome = match (winner, spawn) {
        (Some((_, judged)), _) => Decision::Placed {
            device_id: judged.device.id.to_string(),
            driver: judged.device.driver.to_string(),
        },
        (None, Some((driver, spec))) => Decision::Spawn {
            driver,
            spec,
            reason: unplaced_reason(request, &judged),
        },
        (None, None) => Decision::NoCapacity {
            reason: format!("no capacity: {}", unplaced_reason(request, &judged)),
        },
    };
    let list_all = judged.len() <= EXPLAIN_EVERY_CANDIDATE;
    let mut unlisted: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut candidates = Vec::new();
    for candidate in &judged {
        if list_all || candidate.offered {
            candidates.push(candidate.report());
        } else {
            *unlisted.entry(candidate.unlisted_reason()).or_default() += 1;
        }
    }
    Explanation {
        candidates,
        considered: judged.len(),
        unlisted: unlisted
            .into_iter()
            .map(|(reason, count)| (reason.to_owned(), count))
            .collect(),
        driver_errors,
        outcome,
    }
}

/// Why no existing device took the load balancer: each candidate's reason, the first few named.
fn unplaced_reason(request: &Request, judged: &[Judged<'_>]) -> String {
    if judged.is_empty() {
        return format!(
            "no device of provider {} is registered",
            request.drivers.join(" or ")
        );
    }
    let reasons: Vec<String> = judged
        .iter()
        .take(8)
        .map(|j| {
            let why = match (&j.filtered, &j.verdict) {
                (Some(filter), _) => filter.describe(),
                (None, Some(Verdict::Reject(reason))) => reason.clone(),
                _ => "not among the best candidates".into(),
            };
            format!("{}: {why}", j.device.id)
        })
        .collect();
    let more = match judged.len() - reasons.len() {
        0 => String::new(),
        n => format!("; and {n} more"),
    };
    format!(
        "no device can take this load balancer ({}{more})",
        reasons.join("; ")
    )
}

#[cfg(test)]
mod tests;

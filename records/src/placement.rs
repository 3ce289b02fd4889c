//! Why a load balancer is where it is: the stored record of its last placement decision.
//!
//! The scheduler decides with types of its own (`lbaas_scheduler::Explanation`); the control
//! plane copies each decision into these when it records it, so the store, the admin API and
//! `lbaasctl` read a shape this crate owns and a change inside the scheduler never changes a
//! stored record. The JSON is the one placements were always stored in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A load balancer's last placement decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// The load balancer's id.
    pub loadbalancer_id: String,
    /// When the decision was taken (RFC 3339).
    pub decided_at: String,
    /// What the scheduler weighed and what it decided.
    pub explanation: Explanation,
    /// The driver version whose placement this is (none when nothing was placed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_by: Option<PlacedBy>,
    /// The device started for the load balancer, when the decision was to spawn one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawned_device: Option<String>,
}

/// A driver version, as a placement names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedBy {
    /// The driver's name.
    pub driver: String,
    /// Its version.
    pub version: String,
    /// Its component's SHA-256.
    pub sha256: String,
}

/// What a placement weighed: the candidates, why each was or was not taken, and the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// Every candidate when there were few; otherwise those offered to a driver.
    pub candidates: Vec<Candidate>,
    /// Devices of the eligible drivers considered.
    #[serde(default)]
    pub considered: usize,
    /// The candidates not listed, counted by why they were not chosen.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unlisted: BTreeMap<String, usize>,
    /// Driver calls that failed, by driver.
    pub driver_errors: BTreeMap<String, String>,
    /// What was decided.
    pub outcome: Outcome,
}

/// What happened to one candidate device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The device.
    pub device_id: String,
    /// Its driver.
    pub driver: String,
    /// The host filter that removed it, if one did.
    pub filtered_by: Option<String>,
    /// Each weigher's contribution to the host score.
    pub weighers: BTreeMap<String, f64>,
    /// The host's score, when no filter removed it.
    pub host_score: Option<i32>,
    /// Whether it was among its driver's best and offered to the driver.
    pub offered: bool,
    /// What the driver answered for it.
    pub driver_verdict: Option<Verdict>,
}

/// A driver's answer for one offered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not this device, and why.
    Reject(String),
    /// This device, with the driver's score.
    Score(i32),
}

/// How a placement ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// On an existing device.
    Placed {
        /// The device.
        device_id: String,
        /// The driver that took it.
        driver: String,
    },
    /// On a device the driver asked to have started.
    Spawn {
        /// The driver that asked.
        driver: String,
        /// The device it asked for.
        spec: DeviceSpec,
        /// Why no existing device would do, in words (empty in decisions recorded before
        /// reasons were).
        #[serde(default)]
        reason: String,
    },
    /// Nowhere.
    NoCapacity {
        /// Why, in words.
        reason: String,
    },
}

/// The device a driver asked to have started: its name, capacity and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// The device's name.
    pub name: String,
    /// How many load balancers it takes.
    pub capacity: u32,
    /// The driver's metadata for it.
    pub metadata: BTreeMap<String, String>,
}

impl Outcome {
    /// The outcome in words, naming the device started for it when one was.
    pub fn describe(&self, spawned_device: Option<&str>) -> String {
        match self {
            Outcome::Placed { device_id, driver } => format!("placed on {device_id} by {driver}"),
            Outcome::Spawn {
                driver,
                spec,
                reason,
            } => {
                let device = match spawned_device {
                    Some(id) => format!("spawned device {id} ({})", spec.name),
                    None => format!("asked for a new device ({})", spec.name),
                };
                let reason = if reason.is_empty() {
                    "no existing device would take it"
                } else {
                    reason
                };
                format!("{device} for {driver}: {reason}")
            }
            Outcome::NoCapacity { reason } => reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A placement as hosts have stored them reads back whole and is written back the same.
    #[test]
    fn stored_placements_read_back_unchanged() {
        let stored = serde_json::json!({
            "loadbalancer_id": "lb-1",
            "decided_at": "2026-12-01T10:00:00.000000Z",
            "explanation": {
                "candidates": [
                    {"device_id": "d-1", "driver": "acme-adc", "filtered_by": null,
                     "weighers": {"least_loaded": 1.0}, "host_score": 100, "offered": true,
                     "driver_verdict": {"score": 7}},
                    {"device_id": "d-2", "driver": "acme-adc", "filtered_by": null,
                     "weighers": {}, "host_score": 90, "offered": true,
                     "driver_verdict": {"reject": "no VLAN left"}},
                    {"device_id": "d-3", "driver": "acme-adc", "filtered_by": "disabled",
                     "weighers": {}, "host_score": null, "offered": false,
                     "driver_verdict": null}
                ],
                "considered": 3,
                "unlisted": {"at capacity": 12},
                "driver_errors": {"haproxy": "select ran past its deadline"},
                "outcome": {"result": "placed", "device_id": "d-1", "driver": "acme-adc"}
            },
            "placed_by": {"driver": "acme-adc", "version": "1.2.0", "sha256": "ab12"}
        });
        let placement: Placement = serde_json::from_value(stored.clone()).expect("reads");
        assert_eq!(
            placement.explanation.candidates[1].driver_verdict,
            Some(Verdict::Reject("no VLAN left".into()))
        );
        assert_eq!(serde_json::to_value(&placement).expect("writes"), stored);

        let spawned: Outcome = serde_json::from_value(serde_json::json!({
            "result": "spawn", "driver": "haproxy",
            "spec": {"name": "haproxy-2", "capacity": 50, "metadata": {}}
        }))
        .expect("a spawn recorded before reasons were");
        assert_eq!(
            spawned.describe(Some("dev-9")),
            "spawned device dev-9 (haproxy-2) for haproxy: no existing device would take it"
        );
    }
}

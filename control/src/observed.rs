//! What the status rounds observed, kept in memory for the API to read: each listener's
//! traffic totals and each polled device's reachability. A host restart starts both from what
//! the devices report then.

use std::collections::HashMap;
use std::sync::Mutex;

/// Octavia's listener and load-balancer statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub active_connections: u64,
    pub total_connections: u64,
    pub request_errors: u64,
}

impl Counters {
    fn add(self, other: Counters) -> Counters {
        Counters {
            bytes_in: self.bytes_in + other.bytes_in,
            bytes_out: self.bytes_out + other.bytes_out,
            active_connections: self.active_connections + other.active_connections,
            total_connections: self.total_connections + other.total_connections,
            request_errors: self.request_errors + other.request_errors,
        }
    }

    /// Whether `next` counts from zero again (the device reloaded or restarted).
    fn restarted(&self, next: &Counters) -> bool {
        next.bytes_in < self.bytes_in
            || next.bytes_out < self.bytes_out
            || next.total_connections < self.total_connections
            || next.request_errors < self.request_errors
    }
}

/// Running traffic totals per listener. A device's counters start again at every reload;
/// the totals carry what earlier generations counted. Kept in memory: a host restart starts
/// the totals from what the devices report then.
#[derive(Debug, Default)]
pub struct Traffic {
    listeners: Mutex<HashMap<String, Totals>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    /// What earlier device generations counted (no active connections).
    carried: Counters,
    last: Counters,
}

impl Traffic {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Totals>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a device's reading for one listener.
    pub fn record(&self, listener_id: &str, reading: Counters) {
        let mut listeners = self.lock();
        let totals = listeners.entry(listener_id.to_owned()).or_default();
        if totals.last.restarted(&reading) {
            totals.carried = totals.carried.add(Counters {
                active_connections: 0,
                ..totals.last
            });
        }
        totals.last = reading;
    }

    /// A listener's totals.
    pub fn listener(&self, listener_id: &str) -> Counters {
        self.lock()
            .get(listener_id)
            .map(|t| t.carried.add(t.last))
            .unwrap_or_default()
    }

    /// The sum over several listeners (a load balancer's).
    pub fn sum<'a>(&self, listener_ids: impl IntoIterator<Item = &'a str>) -> Counters {
        listener_ids
            .into_iter()
            .map(|id| self.listener(id))
            .fold(Counters::default(), Counters::add)
    }

    /// Drops listeners that no longer exist.
    pub(crate) fn retain(&self, live: &dyn Fn(&str) -> bool) {
        self.lock().retain(|id, _| live(id));
    }
}

/// What the last polling round found of each device this host polls: reachable, or not and
/// why. Kept in memory, like [`Traffic`]; a device no round has reached yet is not here.
#[derive(Debug, Default)]
pub struct DeviceHealth {
    devices: Mutex<HashMap<String, Option<String>>>,
}

impl DeviceHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `None` when the device has not been polled here; `Some(None)` when it answered last
    /// time; `Some(Some(why))` when it could not be asked.
    pub fn of(&self, device_id: &str) -> Option<Option<String>> {
        self.lock().get(device_id).cloned()
    }

    /// Takes one round's findings; devices no longer polled here are forgotten.
    pub(crate) fn replace(&self, found: HashMap<String, Option<String>>) {
        *self.lock() = found;
    }
}

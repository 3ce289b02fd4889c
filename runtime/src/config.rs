//! The runtime's limits and knobs, and the deadline of each export.

use std::path::PathBuf;
use std::time::Duration;

use crate::permissions::DevicePolicy;

/// Limits and knobs of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Longest a call may run: `select`, which sits on the placement path…
    pub select_deadline: Duration,
    /// …`apply`, `remove` and `status`, which wait for devices…
    pub device_deadline: Duration,
    /// …and every other export.
    pub call_deadline: Duration,
    /// Failed calls in a row (traps, deadlines, limits) after which a driver version is
    /// quarantined: no new placements until an admin releases it.
    pub quarantine_after: u32,
    /// `log` calls one driver call may make.
    pub max_log_calls: u32,
    /// Import calls of any kind one driver call may make (each may leave an audit record).
    pub max_import_calls: u32,
    /// Bytes of audit records (keys, device ids, details) one driver call may leave; past it
    /// the call fails, so what the host keeps for a call is bounded by the grant.
    pub max_audit_bytes: usize,
    /// Largest linear memory of a driver instance, in bytes.
    pub memory_limit: usize,
    /// Largest wasm stack, in bytes.
    pub stack_limit: usize,
    /// Driver instances alive at once (the pooling allocator's size).
    pub max_instances: u32,
    /// Largest configuration `translate` may return, in bytes.
    pub max_config_bytes: usize,
    /// Bytes of private state per driver.
    pub state_quota: u64,
    /// Driver log messages per second (after a burst of ten times as many).
    pub log_rate: u32,
    /// What device calls may reach and carry.
    pub device_policy: DevicePolicy,
    /// Pooling instance allocator (the default); `false` allocates on demand, for comparison.
    pub pooling: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            select_deadline: Duration::from_millis(500),
            device_deadline: Duration::from_secs(30),
            call_deadline: Duration::from_secs(2),
            quarantine_after: 5,
            max_log_calls: 1_000,
            max_import_calls: 10_000,
            max_audit_bytes: 1 << 20,
            memory_limit: 64 << 20,
            stack_limit: 512 << 10,
            max_instances: 64,
            max_config_bytes: 1 << 20,
            state_quota: 16 << 20,
            log_rate: 50,
            device_policy: DevicePolicy::default(),
            pooling: true,
        }
    }
}

impl RuntimeConfig {
    /// The deadline of one export.
    pub fn deadline(&self, function: &str) -> Duration {
        match function {
            "select" => self.select_deadline,
            "apply" | "remove" | "status" => self.device_deadline,
            _ => self.call_deadline,
        }
    }
}

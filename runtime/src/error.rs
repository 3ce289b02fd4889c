//! How a driver call fails: the sandbox's [`Failure`]s, the runtime's [`Error`], and a
//! driver's own text made safe to show.

use std::time::Duration;

use wasmtime::{Store, Trap};

use crate::bindings::types::DriverError;
use crate::config::RuntimeConfig;
use crate::host;
use crate::host::HostState;
use lbaas_core::DriverName;

/// Why a driver call did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Stopped at its deadline (epoch interruption).
    #[error("ran past its deadline of {0:?} and was stopped")]
    Deadline(Duration),
    /// Asked for more linear memory than its grant.
    #[error("tried to grow its memory to {wanted} bytes, past the limit of {limit} bytes")]
    MemoryLimit {
        /// The size it asked for, in bytes.
        wanted: usize,
        /// Its grant, in bytes.
        limit: usize,
    },
    /// Ran out of its stack (the stack limit, in bytes).
    #[error("overflowed its stack (limit {0} bytes)")]
    StackOverflow(usize),
    /// Trapped: a panic, an unreachable, a bad memory access.
    #[error("trapped: {trap}{}", guest.as_deref().map(|g| format!("; the driver said: {g}")).unwrap_or_default())]
    Trap {
        /// The trap, in wasmtime's words.
        trap: String,
        /// The last of what the driver wrote to stderr (a panic message), made printable.
        guest: Option<String>,
    },
    /// Answered more than the host takes.
    #[error("returned {what} of {size} bytes, more than the {limit}-byte limit")]
    OutputTooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Could not be instantiated (in wasmtime's words).
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// Made more import calls, log lines or audit bytes than one call may.
    #[error("exceeded a limit: {0}")]
    Limit(String),
    /// Sent a device a request its policy refuses (the refusal).
    #[error("sent a device what its policy refuses: {0}")]
    DeviceRefused(String),
    /// Was under way when the host stopped (found at the next start).
    #[error("was under way when the host stopped: {0}")]
    Interrupted(String),
}

impl Failure {
    /// The sandbox limit this failure is, if it is one (a metric's label).
    pub(crate) fn limit(&self) -> Option<&'static str> {
        Some(match self {
            Failure::Deadline(_) => "deadline",
            Failure::MemoryLimit { .. } => "memory",
            Failure::StackOverflow(_) => "stack",
            Failure::OutputTooLarge { .. } => "output",
            Failure::Limit(_) => "import",
            Failure::DeviceRefused(_) => "device_policy",
            Failure::Trap { .. } | Failure::Instantiate(_) | Failure::Interrupted(_) => {
                return None;
            }
        })
    }

    /// The audit log's name for this failure.
    pub(crate) fn audit_name(&self) -> &'static str {
        match self {
            Failure::Deadline(_) => "limit.deadline",
            Failure::MemoryLimit { .. } => "limit.memory",
            Failure::StackOverflow(_) => "limit.stack",
            Failure::OutputTooLarge { .. } => "limit.output",
            Failure::Limit(_) => "limit.import",
            Failure::Trap { .. } => "call.trap",
            Failure::Instantiate(_) => "call.instantiate",
            Failure::DeviceRefused(_) => "device.refused",
            Failure::Interrupted(_) => "call.interrupted",
        }
    }
}

/// Why the runtime could not load a component or get an answer from a driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a driver component the host takes.
    #[error("{origin}: not a valid driver component: {reason}")]
    InvalidComponent {
        /// Where the bytes came from (a file, an upload).
        origin: String,
        /// Why they are refused.
        reason: String,
    },
    /// The call failed in the sandbox.
    #[error("driver {driver} {version}: `{function}` {failure}")]
    Call {
        /// The driver.
        driver: DriverName,
        /// Its version.
        version: String,
        /// The export called.
        function: &'static str,
        /// How it failed.
        failure: Failure,
    },
    /// The driver answered with an error of its own.
    #[error(
        "driver {driver} {version}: `{function}` refused: {}",
        describe_driver_error(error)
    )]
    Refused {
        /// The driver.
        driver: DriverName,
        /// Its version.
        version: String,
        /// The export called.
        function: &'static str,
        /// The driver's error.
        error: DriverError,
    },
    /// The driver's state namespace failed.
    #[error("driver state: {0}")]
    State(#[from] crate::state::StateError),
    /// Reading a component or the cache failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// wasmtime could not be set up (in its words).
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// The runtime's answer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A driver's error in words, for operators and users: its text escaped and bounded, since it
/// reaches faults, logs and terminals.
pub fn describe_driver_error(error: &DriverError) -> String {
    let (what, why) = match error {
        DriverError::InvalidInput(why) => ("invalid input", why),
        DriverError::Unsupported(why) => ("unsupported", why),
        DriverError::DeviceUnreachable(why) => ("device unreachable", why),
        DriverError::DeviceRejected(why) => ("device rejected the request", why),
        DriverError::State(why) => ("driver state", why),
        DriverError::Internal(why) => ("driver bug", why),
    };
    format!("{what}: {}", printable(why, MAX_DRIVER_TEXT))
}

/// Most characters of a driver's own text (an error, a panic message) kept in a fault.
const MAX_DRIVER_TEXT: usize = 2048;

/// A device refused by its policy what the driver sent during the call.
#[derive(Debug)]
pub(crate) struct DeviceRefusal(pub(crate) String);

impl std::fmt::Display for DeviceRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeviceRefusal {}

/// `text` as one line of at most `max` characters: control characters escaped, so that what a
/// driver or a device wrote cannot forge a log line or a record's layout.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for (count, c) in text.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn classify(
    config: &RuntimeConfig,
    deadline: Duration,
    store: &Store<HostState>,
    error: &wasmtime::Error,
    instantiating: bool,
) -> Failure {
    let state = store.data();
    if let Some(wanted) = state.memory_exceeded() {
        return Failure::MemoryLimit {
            wanted,
            limit: state.context.grant.memory_bytes,
        };
    }
    if let Some(limit) = error.downcast_ref::<host::ImportLimit>() {
        return Failure::Limit(limit.0.clone());
    }
    if let Some(refusal) = error.downcast_ref::<DeviceRefusal>() {
        return Failure::DeviceRefused(refusal.0.clone());
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Deadline(deadline),
        Some(Trap::StackOverflow) => Failure::StackOverflow(config.stack_limit),
        Some(trap) => Failure::Trap {
            trap: trap.to_string(),
            guest: state.stderr_tail(),
        },
        None if instantiating => Failure::Instantiate(format!("{error:#}")),
        None => Failure::Trap {
            trap: format!("{error:#}"),
            guest: state.stderr_tail(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    /// What a driver or a device wrote stays one line and bounded: a newline cannot forge a
    /// host log line, an escape sequence cannot reach a terminal.
    #[test]
    fn printable_text_is_one_bounded_line() {
        let forged = "ok\n2026-11-30T00:00:00Z  INFO lbaasd: driver released by admin\r\x1b[2J";
        let shown = printable(forged, 200);
        assert!(!shown.contains(['\n', '\r', '\x1b']), "{shown}");
        assert!(shown.starts_with("ok\\n2026"), "{shown}");
        assert!(shown.ends_with("\\r\\u{1b}[2J"), "{shown}");
        assert_eq!(printable(&"é".repeat(10), 4), "éééé…");
        assert_eq!(printable("plain", 10), "plain");
    }
}

//! The `log` import: driver messages become host `tracing` events tagged with the driver's
//! name and version, cut to a sane length, and rate-limited per driver version.

use std::sync::Mutex;
use std::time::Instant;

use crate::bindings::log::{Host, Level};

use super::HostState;

/// Longest message kept, in characters; longer ones are cut.
const MAX_MESSAGE: usize = 2048;

/// A token bucket: `burst` messages at once, refilled at `per_second`.
pub struct LogLimiter {
    per_second: f64,
    burst: f64,
    bucket: Mutex<(f64, Instant, u64)>,
}

impl LogLimiter {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            bucket: Mutex::new((f64::from(burst), Instant::now(), 0)),
        }
    }

    /// Whether one more message may pass; when messages were dropped before this one, how many.
    fn admit(&self) -> (bool, u64) {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last, dropped) = &mut *bucket;
        let now = Instant::now();
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            (true, std::mem::take(dropped))
        } else {
            *dropped += 1;
            (false, 0)
        }
    }
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.count_import()?;
        let limit = self.context.max_log_calls;
        let (calls, dropped_here, bytes) = &mut self.logs;
        *calls += 1;
        *bytes += message.len() as u64;
        if *calls > limit {
            return Err(wasmtime::Error::new(super::ImportLimit(format!(
                "more than {limit} log messages in one call"
            ))));
        }
        let (admitted, dropped) = self.context.log_limiter.admit();
        if !admitted {
            *dropped_here += 1;
            return Ok(());
        }
        let identity = &self.context.identity;
        let (driver, version) = (identity.name.as_str(), identity.version.as_str());
        if dropped > 0 {
            tracing::warn!(target: "driver", driver, version, dropped, "driver log messages dropped by rate limit");
        }
        // Control characters escaped: a newline in a driver's message cannot forge a host log
        // line, nor an escape sequence repaint an operator's terminal.
        let message = crate::printable(&message, MAX_MESSAGE);
        match level {
            Level::Trace => tracing::trace!(target: "driver", driver, version, "{message}"),
            Level::Debug => tracing::debug!(target: "driver", driver, version, "{message}"),
            Level::Info => tracing::info!(target: "driver", driver, version, "{message}"),
            Level::Warn => tracing::warn!(target: "driver", driver, version, "{message}"),
            Level::Error => tracing::error!(target: "driver", driver, version, "{message}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_admits_burst_then_counts_drops() {
        let limiter = LogLimiter::new(0, 3);
        assert!((0..3).all(|_| limiter.admit().0));
        assert!(!limiter.admit().0);
        assert!(!limiter.admit().0);
    }
}

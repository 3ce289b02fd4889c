//! What a driver's store holds during one call, and the host side of each import: one file per
//! WIT interface.

mod device_api;
pub use device_api::{APPLIED_HEADER, REFUSAL_HEADER};
mod log;
mod newer;
mod state;

use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::devices::DeviceDirectory;
use crate::state::Namespace;
use lbaas_core::audit::{AuditSink, Event, Outcome};

use super::permissions::DevicePolicy;
use crate::identity::LoadedIdentity;

pub use log::LogLimiter;

/// Bytes of a guest's stderr kept to explain a trap.
const STDERR_CAPTURE: usize = 16 * 1024;
/// Longest key, device id or path kept whole in an audit record; longer ones keep their start
/// and the SHA-256 of the whole.
const AUDITED_TEXT: usize = 128;

/// `text` as an audit record keeps it: printable, and when long, its start and its digest.
pub(super) fn audited_text(text: &str) -> String {
    if text.len() <= AUDITED_TEXT && !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    format!(
        "{}…({} bytes, sha256 {})",
        crate::printable(text, AUDITED_TEXT / 2),
        text.len(),
        &digest[..16]
    )
}

/// Shared by every call of one loaded driver version.
pub struct DriverContext {
    pub identity: Arc<LoadedIdentity>,
    pub namespace: Arc<dyn Namespace>,
    pub devices: Arc<dyn DeviceDirectory>,
    pub policy: Arc<DevicePolicy>,
    pub http: ureq::Agent,
    pub log_limiter: LogLimiter,
    pub audit: Arc<dyn AuditSink>,
    /// The control plane's metrics, where this version's calls are counted.
    pub metrics: lbaas_telemetry::Metrics,
    pub max_log_calls: u32,
    pub max_import_calls: u32,
    pub max_audit_bytes: usize,
    /// The driver name audit records carry: the name, or `unapproved:<name>` for a component
    /// under upload checks, so its records never pass for the name's owner's.
    pub audit_driver: String,
    /// What this driver version may use: its manifest's requests under the operator's caps.
    pub grant: super::manifest::Grant,
}

impl DriverContext {
    /// An audit event of this driver version, named as its records are (`audit_driver`).
    pub fn event(
        &self,
        function: &str,
        target: Option<String>,
        bytes: u64,
        outcome: Outcome,
        duration_us: u64,
        detail: Option<String>,
    ) -> Event {
        let identity = &self.identity;
        Event {
            driver: self.audit_driver.clone(),
            version: identity.version.clone(),
            sha256: identity.sha256.clone(),
            function: function.to_owned(),
            target,
            bytes,
            outcome,
            duration_us,
            detail,
        }
    }
}

/// An import refused because the call went past one of its limits; fails the call with
/// [`super::Failure::Limit`].
#[derive(Debug)]
pub struct ImportLimit(pub String);

impl std::fmt::Display for ImportLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImportLimit {}

/// The data of one call's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryLimit,
    pub(super) stderr: MemoryOutputPipe,
    pub(super) context: Arc<DriverContext>,
    /// Import calls of this driver call, appended to the audit log when it ends.
    audit: Vec<Event>,
    /// `log` calls so far, and messages the rate limit dropped.
    logs: (u32, u32, u64),
    /// Successful `state.get` calls so far, summarized in one record when the call ends.
    reads: Reads,
    /// The first refusal by a device's policy during this call: it fails the call.
    device_refusal: Option<String>,
    /// When the call's deadline passes: imports that block (device calls) end by then too.
    deadline_at: Instant,
    /// Import calls so far, and bytes of audit records kept for this call.
    imports: u32,
    audit_bytes: usize,
    /// The load balancer's scope, sent with every request to its device ([`crate::scope`]).
    pub(super) scope: Option<crate::scope::DeviceScope>,
    /// The key material `send-certificate` may send during this call.
    pub(super) certificates: crate::certificates::CertificateFiles,
}

/// The successful state reads of one driver call.
#[derive(Default)]
struct Reads {
    keys: Vec<String>,
    bytes: u64,
    duration_us: u64,
}

impl HostState {
    pub fn new(
        context: Arc<DriverContext>,
        memory_limit: usize,
        deadline: std::time::Duration,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        // Default-deny, spelled out: no preopened directories, no environment, no arguments,
        // no sockets, no name lookups. The guest's stderr is captured to explain traps.
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits: MemoryLimit::new(memory_limit),
            stderr,
            context,
            audit: Vec::new(),
            logs: (0, 0, 0),
            reads: Reads::default(),
            device_refusal: None,
            deadline_at: Instant::now() + deadline,
            imports: 0,
            audit_bytes: 0,
            scope: None,
            certificates: Default::default(),
        }
    }

    /// The call's device requests to `scope`'s device carry its scope.
    pub fn with_scope(mut self, scope: Option<crate::scope::DeviceScope>) -> Self {
        self.scope = scope;
        self
    }

    /// The key material this call's `send-certificate` may send.
    pub fn with_certificates(mut self, files: crate::certificates::CertificateFiles) -> Self {
        self.certificates = files;
        self
    }

    /// Counts one import call; fails the driver call past its import or audit budget, so the
    /// host never keeps more for one call than its grant allows.
    pub(super) fn count_import(&mut self) -> wasmtime::Result<()> {
        self.imports += 1;
        let context = &self.context;
        if self.imports > context.max_import_calls {
            return Err(wasmtime::Error::new(ImportLimit(format!(
                "more than {} import calls in one call",
                context.max_import_calls
            ))));
        }
        if self.audit_bytes > context.max_audit_bytes {
            return Err(wasmtime::Error::new(ImportLimit(format!(
                "more than {} bytes of audit records in one call",
                context.max_audit_bytes
            ))));
        }
        Ok(())
    }

    /// What is left of the call's deadline.
    pub(super) fn remaining(&self) -> std::time::Duration {
        self.deadline_at.saturating_duration_since(Instant::now())
    }

    /// Notes that a device refused what the driver sent by its policy.
    pub(super) fn device_refused(&mut self, refusal: String) {
        self.device_refusal.get_or_insert(refusal);
    }

    /// The device's policy refusal of this call, if there was one.
    pub fn take_device_refusal(&mut self) -> Option<String> {
        self.device_refusal.take()
    }

    /// Notes an import call for the audit log.
    pub(super) fn audit(
        &mut self,
        function: &str,
        target: Option<String>,
        bytes: usize,
        outcome: Outcome,
        started: Instant,
        detail: Option<String>,
    ) {
        let target = target.as_deref().map(audited_text);
        let detail = detail.map(|d| crate::printable(&d, 1024));
        self.audit_bytes += function.len()
            + target.as_ref().map_or(0, String::len)
            + detail.as_ref().map_or(0, String::len)
            + 64;
        let event = self.context.event(
            function,
            target,
            bytes as u64,
            outcome,
            started.elapsed().as_micros() as u64,
            detail,
        );
        self.audit.push(event);
    }

    /// Notes a successful read of the driver's own state: summarized per call (a `select`
    /// reads a record per candidate), like `log` calls. Writes, deletions, device calls and
    /// every refused or failed call stay one record each.
    pub(super) fn audit_read(&mut self, key: &str, bytes: usize, started: Instant) {
        let key = audited_text(key);
        self.audit_bytes += key.len() + 3;
        self.reads.keys.push(key);
        self.reads.bytes += bytes as u64;
        self.reads.duration_us += started.elapsed().as_micros() as u64;
    }

    /// The call's audit events, with one summary of its successful state reads (the key, or
    /// the keys as a JSON array, in order) and one of its `log` calls.
    pub fn take_audit(&mut self) -> Vec<Event> {
        let reads = std::mem::take(&mut self.reads);
        if !reads.keys.is_empty() {
            let count = reads.keys.len();
            let keys = match <[String; 1]>::try_from(reads.keys) {
                Ok([key]) => key,
                Err(keys) => serde_json::to_string(&keys).unwrap_or_default(),
            };
            let event = self.context.event(
                "state.get",
                Some(keys),
                reads.bytes,
                Outcome::Ok,
                reads.duration_us,
                Some(format!("{count} reads")),
            );
            self.audit.push(event);
        }
        let (calls, dropped, bytes) = std::mem::take(&mut self.logs);
        if calls > 0 {
            let outcome = if dropped > 0 {
                Outcome::Denied
            } else {
                Outcome::Ok
            };
            let event = self.context.event(
                "log.log",
                None,
                bytes,
                outcome,
                0,
                Some(format!(
                    "{calls} messages, {dropped} dropped by the rate limit"
                )),
            );
            self.audit.push(event);
        }
        std::mem::take(&mut self.audit)
    }

    pub fn limiter(&mut self) -> &mut MemoryLimit {
        &mut self.limits
    }

    /// The memory size the guest asked for past its limit, if it did.
    pub fn memory_exceeded(&self) -> Option<usize> {
        self.limits.exceeded
    }

    /// The tail of what the guest wrote to stderr (a panic message, usually).
    pub fn stderr_tail(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let start = text.len().saturating_sub(1024);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        // What a driver wrote reaches faults and terminals: one escaped line.
        Some(crate::printable(&text[start..], 1024))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory growth past the configured limit and remembers that it did. The limit is
/// for the whole instance: a component of several memories (each core module may bring its
/// own) shares one grant among them.
pub struct MemoryLimit {
    limit: usize,
    /// Bytes of every memory of the instance together.
    total: usize,
    exceeded: Option<usize>,
}

impl MemoryLimit {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            total: 0,
            exceeded: None,
        }
    }
}

impl ResourceLimiter for MemoryLimit {
    /// Called for every memory's creation (from 0) and every growth.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            self.exceeded = Some(total);
            return Ok(false);
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The `types` interfaces have no functions; linking them needs only this.
impl crate::bindings::types::Host for HostState {}
impl crate::bindings::v0_4::lbaas::driver::types::Host for HostState {}
impl crate::bindings::v0_3::lbaas::driver::types::Host for HostState {}
impl crate::bindings::legacy::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_share_one_grant() {
        let mib = 1 << 20;
        let mut limit = MemoryLimit::new(64 * mib);
        // Two memories of 40 MiB each: the second does not fit beside the first.
        assert!(limit.memory_growing(0, 40 * mib, None).ok() == Some(true));
        assert!(limit.memory_growing(0, 40 * mib, None).ok() == Some(false));
        assert_eq!(limit.exceeded, Some(80 * mib));
        // The first may still grow within what is left.
        assert!(limit.memory_growing(40 * mib, 60 * mib, None).ok() == Some(true));
        assert!(limit.memory_growing(0, 8 * mib, None).ok() == Some(false));
        assert!(limit.memory_growing(0, 4 * mib, None).ok() == Some(true));
    }
}

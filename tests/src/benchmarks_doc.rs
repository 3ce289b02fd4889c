//! What `docs/benchmarks.md` holds: a row per figure of the summary table (its title and its
//! aim), then the notes of `xtask/benchmarks-notes.md`. `cargo xtask bench` renders every row
//! here from its measurements (and refuses to write a document missing one); a layout test
//! checks the committed document has exactly these rows and these notes.

/// Where the document lives, from the workspace root.
pub const PATH: &str = "docs/benchmarks.md";

/// The notes that follow the table, as written by hand.
pub const NOTES: &str = include_str!("../../xtask/benchmarks-notes.md");

/// One row of the summary table.
pub struct Row {
    /// How `cargo xtask bench` names it.
    pub key: &'static str,
    /// The figure, as the table's first cell says it.
    pub title: &'static str,
    /// The aim, as the table says it (`report` where there is none).
    pub aim: &'static str,
}

const fn row(key: &'static str, title: &'static str, aim: &'static str) -> Row {
    Row { key, title, aim }
}

/// Every row, in the table's order.
pub const ROWS: &[Row] = &[
    row(
        "select",
        "one `select` call, 32 candidates, audited Wasm / native",
        "≤ 2×",
    ),
    row(
        "select-unaudited",
        "… the same `select` on a runtime without the audit log / native",
        "(explains the row above)",
    ),
    row(
        "placement",
        "one full placement, 10,000 devices / 100,000 load balancers, Wasm driver / native driver",
        "≤ 1.1×",
    ),
    row(
        "placements-per-second",
        "placements per second, 10,000 devices, two threads deciding at once on 2 cores",
        "≥ 5,000 /s",
    ),
    row(
        "instantiation",
        "instantiation per call (pooling)",
        "≤ 5 µs",
    ),
    row(
        "activation-cached",
        "upload + activation of a new version (compiled code cached)",
        "< 50 ms",
    ),
    row(
        "activation-loaded",
        "activation alone of an uploaded version already loaded (checks, migration, swap)",
        "< 50 ms",
    ),
    row(
        "creates",
        "acknowledged creates per second, 16 clients / 1 client (flushed before the answer)",
        "report",
    ),
    row(
        "get",
        "API `GET /v2/lbaas/loadbalancers/{id}` with metrics and the log subscriber on / a bare \
         static handler (wrk, 16 connections); p50 / p99 latency",
        "≥ 0.75",
    ),
    row(
        "layers",
        "the API's request layers alone (metrics by route and status, the request span, the log \
         subscriber): static handler behind them / bare",
        "≥ 0.9",
    ),
    row(
        "create-latency",
        "full-tree create → `ACTIVE`, p50 / p99, 16 clients / 1 client alone (acme-adc)",
        "≤ 2× and p50 < 20 ms",
    ),
    row(
        "memory",
        "host resident memory: idle / with 20 more driver versions / with 100,000 load balancers",
        "≤ 300 MiB with 100,000",
    ),
    row(
        "durability",
        "durability cost: creates/s, 16 clients, flushed before the answer / answered before the \
         flush",
        "report",
    ),
    row(
        "postgres-two-hosts",
        "acknowledged creates/s, 16 clients: two hosts on one PostgreSQL / one host on PostgreSQL \
         (fsync on)",
        "≥ 1.6×",
    ),
    row(
        "postgres-one-host",
        "acknowledged creates/s, 16 clients: one host on PostgreSQL / one host on sled",
        "≥ 0.5",
    ),
    row(
        "postgres-get",
        "`GET` of one load balancer, one host of two on PostgreSQL / one host on sled (wrk, 16 \
         connections)",
        "≥ 0.8: reads come from the host's snapshot",
    ),
    row(
        "member-change",
        "member change → traffic on the new member, p50, through HAProxy's runtime API / through \
         a reload (device with 1,000 other listeners)",
        "≤ 0.05",
    ),
    row(
        "steady-load",
        "failed requests under steady load across 1,000 member changes and 100 listener changes",
        "0",
    ),
    row(
        "listener-changes",
        "listener changes per second sustained on a device with 5,000 listeners (64 load \
         balancers changing at once); reloads per second",
        "≥ 50 changes/s with ≤ 2 reloads/s",
    ),
    row(
        "tls",
        "full TLS handshakes per second through a spawned HAProxy's `TERMINATED_HTTPS` listener / \
         the same HAProxy configured by hand (RSA-2048, `openssl s_time -new`)",
        "≥ 0.95",
    ),
    row(
        "tls-rotation",
        "listener update with a new certificate until the new one is served",
        "report",
    ),
    row(
        "takeover",
        "`kill -9` of a host holding 20 jobs to all 20 `ACTIVE` through the other host / the \
         lease (a constant: 2 s)",
        "lease + the jobs' own time",
    ),
    row(
        "audit-verify",
        "`audit verify`, 1,000,000 records (walk the chain, re-hash every record) / reading them \
         back unchecked",
        "report",
    ),
    row(
        "audit-query",
        "audit query at 1,000,000 records: first page (100) of one driver's device calls / \
         reading all back",
        "report",
    ),
];

/// The row `key` names.
pub fn row_of(key: &str) -> Option<&'static Row> {
    ROWS.iter().find(|row| row.key == key)
}

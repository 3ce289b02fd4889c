//! `cargo xtask bench`: runs every benchmark of the project and rewrites `docs/benchmarks.md`
//! with the machine, the commit, and for each figure its median, its spread (the 95 %
//! confidence interval of the median, or the range of repeated runs) and its ratio to the
//! baseline measured in the same run. Nothing here asserts a time.
//!
//! `cargo xtask conformance`: Octavia's own API test suite against `lbaasd`, written to
//! `docs/conformance.md` (see [`conformance`]).

mod conformance;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::Deserialize;

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run every benchmark and rewrite docs/benchmarks.md.
    Bench {
        /// Rewrite the document from the results of the last run, without running anything.
        #[arg(long)]
        no_run: bool,
    },
    /// Run Octavia's API test suite (tempest + octavia-tempest-plugin) against lbaasd, once per
    /// provider, and rewrite docs/conformance.md.
    Conformance(conformance::Args),
    /// Rewrite docs/providers.md (what each bundled provider offers, and what it answers 501
    /// for) from the drivers' declared capabilities.
    Providers,
    /// One provider's run, inside the network namespace `conformance` made for it.
    #[command(hide = true)]
    ConformanceRun(conformance::RunArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Bench { no_run } => bench(no_run),
        Task::Conformance(args) => conformance::conformance(&args),
        Task::ConformanceRun(args) => conformance::run(&args),
        Task::Providers => {
            let path = root().join(lbaas_tests::providers_doc::PATH);
            std::fs::write(&path, lbaas_tests::providers_doc::render())?;
            println!("wrote {}", path.display());
            Ok(())
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

/// The benchmark targets of `lbaas-tests`, in the order they run.
const BENCHES: &[&str] = &[
    "select",
    "placement",
    "activation",
    "api_writes",
    "api_reads",
    "create_latency",
    "memory",
    "audit",
    "fleet",
    "tls",
    "dataplane",
];

/// wrk drives the API read benchmark; installed from the system packages when missing, as the
/// test command installs HAProxy.
fn ensure_wrk() -> anyhow::Result<()> {
    let present = Command::new("wrk").arg("--version").output().is_ok();
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing wrk from the system packages");
    let apt = |args: &[&str]| {
        let mut command = if lbaas_tests::is_root() {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    let installed = apt(&["update", "-qq"]).is_ok_and(|s| s.success())
        && apt(&["install", "-y", "-qq", "wrk"]).is_ok_and(|s| s.success());
    if !installed {
        bail!("wrk is needed for the API read benchmark: install it (apt-get install wrk)");
    }
    Ok(())
}

/// Whether the whole run (`commit.txt`) is newer than a benchmark's own record.
fn no_run_all(all: &Path, own: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    matches!((modified(all), modified(own)), (Some(all), Some(own)) if all > own)
}

fn bench(no_run: bool) -> anyhow::Result<()> {
    // The commit the figures were measured at: recorded by a run, reused by `--no-run` (which
    // may render them again after later commits, say of the notes).
    let measured_at = root().join("target/bench/commit.txt");
    if !no_run {
        ensure_wrk()?;
        std::fs::create_dir_all(root().join("target/bench"))?;
        std::fs::write(&measured_at, lbaas_tests::measured_commit())?;
        for bench in BENCHES {
            let _ = std::fs::remove_file(root().join(format!("target/bench/{bench}.commit")));
        }
        for bench in BENCHES {
            eprintln!("xtask: running the {bench} benchmark");
            let status = cargo()
                .args(["bench", "-p", "lbaas-tests", "--bench", bench])
                .status()
                .with_context(|| format!("cannot run cargo bench --bench {bench}"))?;
            if !status.success() {
                bail!("the {bench} benchmark failed");
            }
        }
    }
    let results = Results::read(&root().join("target"))?;
    let mut commit = std::fs::read_to_string(&measured_at)
        .map(|c| format!("`{}`", c.trim()))
        .unwrap_or_else(|_| {
            format!(
                "`{}` (results from an unrecorded commit)",
                lbaas_tests::measured_commit()
            )
        });
    // A benchmark run on its own since (`cargo bench --bench NAME`, then
    // `cargo xtask bench --no-run`) names the commit it measured in `NAME.commit`.
    for bench in BENCHES {
        let own = root().join(format!("target/bench/{bench}.commit"));
        if let Ok(at) = std::fs::read_to_string(&own)
            && !commit.starts_with(&format!("`{}`", at.trim()))
            && !no_run_all(&measured_at, &own)
        {
            commit = format!("{commit}; the {bench} rows at `{}`", at.trim());
        }
    }
    let document = render(&results, &Machine::read(), &commit)?;
    let path = root().join(lbaas_tests::benchmarks_doc::PATH);
    std::fs::write(&path, document).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// A median with its spread, in one unit.
#[derive(Debug, Clone, Copy)]
struct Measure {
    median: f64,
    low: f64,
    high: f64,
}

impl Measure {
    fn ratio_to(&self, baseline: &Measure) -> f64 {
        self.median / baseline.median
    }
}

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

/// Criterion's estimate of one benchmark, in milliseconds.
fn criterion(target: &Path, id: &str) -> anyhow::Result<Measure> {
    let path = target.join("criterion").join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no result for {id} ({}): run `cargo xtask bench`",
            path.display()
        )
    })?;
    let estimates: Estimates = serde_json::from_str(&text)?;
    let ms = |ns: f64| ns / 1e6;
    Ok(Measure {
        median: ms(estimates.median.point_estimate),
        low: ms(estimates.median.confidence_interval.lower_bound),
        high: ms(estimates.median.confidence_interval.upper_bound),
    })
}

/// The load generators' results: `target/bench/<name>.json`, each a map of figure to its
/// repeated measurements.
fn generated(target: &Path, name: &str, figure: &str) -> anyhow::Result<Measure> {
    let path = target.join("bench").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no result for {name} ({}): run `cargo xtask bench`",
            path.display()
        )
    })?;
    let all: std::collections::BTreeMap<String, Vec<f64>> = serde_json::from_str(&text)?;
    let mut runs = all
        .get(figure)
        .cloned()
        .with_context(|| format!("{name} has no figure {figure}"))?;
    if runs.is_empty() {
        bail!("{name} measured nothing for {figure}");
    }
    runs.sort_by(f64::total_cmp);
    Ok(Measure {
        median: runs[runs.len() / 2],
        low: runs[0],
        high: runs[runs.len() - 1],
    })
}

struct Results {
    select_native: Measure,
    select_wasm: Measure,
    select_unaudited: Measure,
    instantiate_pooling: Measure,
    instantiate_on_demand: Measure,
    placement_native: Measure,
    placement_wasm: Measure,
    placements_two_threads: Measure,
    activation_cold: Measure,
    activation_cached: Measure,
    activation_loaded: Measure,
    writes_1: Measure,
    writes_16: Measure,
    writes_16_no_flush: Measure,
    get_rps: Measure,
    get_p50: Measure,
    get_p99: Measure,
    static_rps: Measure,
    static_p50: Measure,
    static_p99: Measure,
    instrumented_rps: Measure,
    create_p50: Measure,
    create_p99: Measure,
    create_alone_p50: Measure,
    create_alone_p99: Measure,
    rss_idle: Measure,
    rss_versions: Measure,
    rss_load_balancers: Measure,
    audit_read_back: Measure,
    audit_verify: Measure,
    audit_query: Measure,
    creates_sled: Measure,
    creates_pg_1: Measure,
    creates_pg_2: Measure,
    get_sled: Measure,
    get_pg_2: Measure,
    takeover: Measure,
    tls_spawned: Measure,
    tls_by_hand: Measure,
    tls_rotation: Measure,
    member_runtime: Measure,
    member_reload: Measure,
    steady_failed: Measure,
    steady_requests: Measure,
    steady_reloads: Measure,
    listener_changes: Measure,
    reloads_per_second: Measure,
}

impl Results {
    fn read(target: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            select_native: criterion(target, "select-32-candidates/native")?,
            select_wasm: criterion(target, "select-32-candidates/wasm")?,
            select_unaudited: criterion(target, "select-32-candidates/wasm-unaudited")?,
            instantiate_pooling: criterion(target, "instantiate/pooling")?,
            instantiate_on_demand: criterion(target, "instantiate/on-demand")?,
            placement_native: criterion(target, "placement-10k-devices-100k-lbs/native-hints")?,
            placement_wasm: criterion(target, "placement-10k-devices-100k-lbs/wasm-driver")?,
            placements_two_threads: generated(target, "placement", "two-threads-per-second")?,
            activation_cold: criterion(target, "upload-to-serving/cold-compile")?,
            activation_cached: criterion(target, "upload-to-serving/cached-compile")?,
            activation_loaded: criterion(target, "activation/loaded-version")?,
            writes_1: generated(target, "api_writes", "1-client")?,
            writes_16: generated(target, "api_writes", "16-clients")?,
            writes_16_no_flush: generated(target, "api_writes", "16-clients-no-flush")?,
            get_rps: generated(target, "api_reads", "get-requests-per-second")?,
            get_p50: generated(target, "api_reads", "get-p50-ms")?,
            get_p99: generated(target, "api_reads", "get-p99-ms")?,
            static_rps: generated(target, "api_reads", "static-requests-per-second")?,
            static_p50: generated(target, "api_reads", "static-p50-ms")?,
            static_p99: generated(target, "api_reads", "static-p99-ms")?,
            instrumented_rps: generated(target, "api_reads", "instrumented-requests-per-second")?,
            create_p50: generated(target, "create_latency", "p50-ms")?,
            create_p99: generated(target, "create_latency", "p99-ms")?,
            create_alone_p50: generated(target, "create_latency", "alone-p50-ms")?,
            create_alone_p99: generated(target, "create_latency", "alone-p99-ms")?,
            rss_idle: generated(target, "memory", "idle")?,
            rss_versions: generated(target, "memory", "20-versions")?,
            rss_load_balancers: generated(target, "memory", "100k-load-balancers")?,
            audit_read_back: criterion(target, "audit-1m-records/read-back")?,
            audit_verify: criterion(target, "audit-1m-records/verify")?,
            audit_query: criterion(target, "audit-1m-records/query-one-driver")?,
            creates_sled: generated(target, "fleet", "sled-1-host-creates")?,
            creates_pg_1: generated(target, "fleet", "postgres-1-host-creates")?,
            creates_pg_2: generated(target, "fleet", "postgres-2-hosts-creates")?,
            get_sled: generated(target, "fleet", "sled-1-host-get")?,
            get_pg_2: generated(target, "fleet", "postgres-2-hosts-get")?,
            takeover: generated(target, "fleet", "takeover-seconds")?,
            tls_spawned: generated(target, "tls", "spawned-handshakes-per-second")?,
            tls_by_hand: generated(target, "tls", "by-hand-handshakes-per-second")?,
            tls_rotation: generated(target, "tls", "rotation-ms")?,
            member_runtime: generated(target, "dataplane", "member-change-runtime-ms")?,
            member_reload: generated(target, "dataplane", "member-change-reload-ms")?,
            steady_failed: generated(target, "dataplane", "steady-failed-requests")?,
            steady_requests: generated(target, "dataplane", "steady-requests")?,
            steady_reloads: generated(target, "dataplane", "steady-reloads")?,
            listener_changes: generated(target, "dataplane", "listener-changes-per-second")?,
            reloads_per_second: generated(target, "dataplane", "reloads-per-second")?,
        })
    }
}

struct Machine {
    cpu: String,
    cores: usize,
    memory: String,
    kernel: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|kb| kb.trim().trim_end_matches(" kB").parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .unwrap_or_default();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory,
            kernel,
        }
    }
}

fn ms(m: &Measure) -> String {
    let pick = |v: f64| {
        if v >= 100.0 {
            format!("{v:.0} ms")
        } else if v >= 1.0 {
            format!("{v:.2} ms")
        } else {
            format!("{:.1} µs", v * 1000.0)
        }
    };
    format!("{} ({}–{})", pick(m.median), pick(m.low), pick(m.high))
}

fn per_second(m: &Measure) -> String {
    format!("{:.0} /s ({:.0}–{:.0})", m.median, m.low, m.high)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// The summary table: every row of [`lbaas_tests::benchmarks_doc::ROWS`], each rendered once.
struct Table {
    out: String,
    rendered: Vec<&'static str>,
}

impl Table {
    /// Row `key` with its cells; `met` is `None` for a row without a verdict (a report).
    fn row(
        &mut self,
        key: &'static str,
        measured: &str,
        baseline: &str,
        ratio: &str,
        met: Option<bool>,
    ) {
        let Some(row) = lbaas_tests::benchmarks_doc::row_of(key) else {
            panic!("no row {key} in lbaas_tests::benchmarks_doc::ROWS");
        };
        let verdict = met.map_or("", verdict);
        let _ = writeln!(
            self.out,
            "| {} | {measured} | {baseline} | {ratio} | {} | {verdict} |",
            row.title, row.aim
        );
        self.rendered.push(key);
    }
}

fn render(r: &Results, machine: &Machine, commit: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Benchmarks\n\n\
         Generated by `cargo xtask bench` on {} — do not edit by hand.\n\n\
         - Machine: {}, {} cores, {} memory, Linux {}.\n\
         - Measured at commit {}.\n\
         - Each figure: the median, then its spread in parentheses (the 95 % confidence interval \
           of criterion's median, or the lowest and highest of repeated load-generator runs), \
           and its ratio to a baseline measured in the same run; a baseline that is derived or a \
           constant says so. Absolute times show the scale and vary with the machine; the \
           ratios are what to compare.\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        machine.cpu,
        machine.cores,
        machine.memory,
        machine.kernel,
        commit
    );
    let _ = writeln!(
        out,
        "## Summary against the aims\n\n\
         | figure | measured | baseline | ratio | aim | |\n|---|---|---|---|---|---|"
    );
    let mut t = Table {
        out,
        rendered: Vec::new(),
    };
    let ratio = |value: f64| format!("{value:.2}");
    let select = r.select_wasm.ratio_to(&r.select_native);
    t.row(
        "select",
        &ms(&r.select_wasm),
        &format!("native logic {}", ms(&r.select_native)),
        &ratio(select),
        Some(select <= 2.0),
    );
    t.row(
        "select-unaudited",
        &ms(&r.select_unaudited),
        &format!("native logic {}", ms(&r.select_native)),
        &ratio(r.select_unaudited.ratio_to(&r.select_native)),
        None,
    );
    let placement = r.placement_wasm.ratio_to(&r.placement_native);
    t.row(
        "placement",
        &ms(&r.placement_wasm),
        &format!("native driver {}", ms(&r.placement_native)),
        &ratio(placement),
        Some(placement <= 1.1),
    );
    let one_at_a_time = 1000.0 / r.placement_wasm.median;
    t.row(
        "placements-per-second",
        &per_second(&r.placements_two_threads),
        &format!("one at a time {one_at_a_time:.0} /s (derived: 1 / the median of the row above)"),
        &ratio(r.placements_two_threads.median / one_at_a_time),
        Some(r.placements_two_threads.median >= 5000.0),
    );
    t.row(
        "instantiation",
        &ms(&r.instantiate_pooling),
        &format!("on-demand allocator {}", ms(&r.instantiate_on_demand)),
        &ratio(r.instantiate_pooling.ratio_to(&r.instantiate_on_demand)),
        Some(r.instantiate_pooling.median * 1000.0 <= 5.0),
    );
    t.row(
        "activation-cached",
        &ms(&r.activation_cached),
        &format!("cold compile {}", ms(&r.activation_cold)),
        &format!("{:.3}", r.activation_cached.ratio_to(&r.activation_cold)),
        Some(r.activation_cached.median < 50.0),
    );
    t.row(
        "activation-loaded",
        &ms(&r.activation_loaded),
        &format!("cold compile {}", ms(&r.activation_cold)),
        &format!("{:.4}", r.activation_loaded.ratio_to(&r.activation_cold)),
        Some(r.activation_loaded.median < 50.0),
    );
    t.row(
        "creates",
        &per_second(&r.writes_16),
        &format!("1 client {}", per_second(&r.writes_1)),
        &ratio(r.writes_16.ratio_to(&r.writes_1)),
        None,
    );
    let get = r.get_rps.ratio_to(&r.static_rps);
    t.row(
        "get",
        &format!(
            "{}; {} / {}",
            per_second(&r.get_rps),
            ms(&r.get_p50),
            ms(&r.get_p99)
        ),
        &format!(
            "static axum handler {}; {} / {}",
            per_second(&r.static_rps),
            ms(&r.static_p50),
            ms(&r.static_p99)
        ),
        &ratio(get),
        Some(get >= 0.75),
    );
    let layers = r.instrumented_rps.ratio_to(&r.static_rps);
    t.row(
        "layers",
        &per_second(&r.instrumented_rps),
        &format!("static axum handler {}", per_second(&r.static_rps)),
        &ratio(layers),
        Some(layers >= 0.9),
    );
    let create = r.create_p50.ratio_to(&r.create_alone_p50);
    t.row(
        "create-latency",
        &format!("{} / {}", ms(&r.create_p50), ms(&r.create_p99)),
        &format!(
            "1 client alone {} / {}",
            ms(&r.create_alone_p50),
            ms(&r.create_alone_p99)
        ),
        &format!("{create:.1}"),
        Some(create <= 2.0 && r.create_p50.median < 20.0),
    );
    t.row(
        "memory",
        &format!(
            "{:.0} / {:.0} / {:.0} MiB",
            r.rss_idle.median, r.rss_versions.median, r.rss_load_balancers.median
        ),
        "idle",
        &format!(
            "1 / {:.2} / {:.2}",
            r.rss_versions.median / r.rss_idle.median,
            r.rss_load_balancers.median / r.rss_idle.median
        ),
        Some(r.rss_load_balancers.median <= 300.0),
    );
    t.row(
        "durability",
        &per_second(&r.writes_16),
        &format!(
            "answered before the flush {}",
            per_second(&r.writes_16_no_flush)
        ),
        &ratio(r.writes_16.ratio_to(&r.writes_16_no_flush)),
        None,
    );
    let two_hosts = r.creates_pg_2.ratio_to(&r.creates_pg_1);
    t.row(
        "postgres-two-hosts",
        &per_second(&r.creates_pg_2),
        &format!("one host {}", per_second(&r.creates_pg_1)),
        &ratio(two_hosts),
        Some(two_hosts >= 1.6),
    );
    let one_host = r.creates_pg_1.ratio_to(&r.creates_sled);
    t.row(
        "postgres-one-host",
        &per_second(&r.creates_pg_1),
        &format!("one host on sled {}", per_second(&r.creates_sled)),
        &ratio(one_host),
        Some(one_host >= 0.5),
    );
    let reads = r.get_pg_2.ratio_to(&r.get_sled);
    t.row(
        "postgres-get",
        &per_second(&r.get_pg_2),
        &format!("one host on sled {}", per_second(&r.get_sled)),
        &ratio(reads),
        Some(reads >= 0.8),
    );
    let member = r.member_runtime.ratio_to(&r.member_reload);
    t.row(
        "member-change",
        &ms(&r.member_runtime),
        &format!("through a reload {}", ms(&r.member_reload)),
        &format!("{member:.3}"),
        Some(member <= 0.05),
    );
    t.row(
        "steady-load",
        &format!(
            "{:.0} failed of {:.0} requests",
            r.steady_failed.median, r.steady_requests.median
        ),
        &format!("{:.0} reloads during the run", r.steady_reloads.median),
        "—",
        Some(r.steady_failed.median == 0.0),
    );
    t.row(
        "listener-changes",
        &format!(
            "{}; {:.2} reloads/s ({:.2}–{:.2})",
            per_second(&r.listener_changes),
            r.reloads_per_second.median,
            r.reloads_per_second.low,
            r.reloads_per_second.high
        ),
        "—",
        &format!(
            "{:.0} changes per reload",
            r.listener_changes.median / r.reloads_per_second.median
        ),
        Some(r.listener_changes.median >= 50.0 && r.reloads_per_second.high <= 2.0),
    );
    let tls = r.tls_spawned.ratio_to(&r.tls_by_hand);
    t.row(
        "tls",
        &per_second(&r.tls_spawned),
        &format!(
            "the same HAProxy configured by hand {}",
            per_second(&r.tls_by_hand)
        ),
        &ratio(tls),
        Some(tls >= 0.95),
    );
    t.row("tls-rotation", &ms(&r.tls_rotation), "—", "—", None);
    t.row(
        "takeover",
        &format!("{:.1} s", r.takeover.median),
        "the lease, 2 s (a constant)",
        &ratio(r.takeover.median / 2.0),
        None,
    );
    t.row(
        "audit-verify",
        &ms(&r.audit_verify),
        &format!("reading them back unchecked {}", ms(&r.audit_read_back)),
        &ratio(r.audit_verify.ratio_to(&r.audit_read_back)),
        None,
    );
    t.row(
        "audit-query",
        &ms(&r.audit_query),
        &format!("reading all back {}", ms(&r.audit_read_back)),
        &format!("{:.4}", r.audit_query.ratio_to(&r.audit_read_back)),
        None,
    );
    let missing: Vec<&str> = lbaas_tests::benchmarks_doc::ROWS
        .iter()
        .map(|row| row.key)
        .filter(|key| !t.rendered.contains(key))
        .collect();
    if !missing.is_empty() {
        bail!("the document would lack the rows {missing:?}");
    }
    let mut out = t.out;
    out.push('\n');
    out.push_str(lbaas_tests::benchmarks_doc::NOTES);
    Ok(out)
}

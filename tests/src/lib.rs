//! Test support: builds the real driver components and the hostile fixtures from source, starts
//! hosts on temporary data folders, fakes an appliance's management API on loopback, and
//! builds realistic load balancers.

pub mod acme_sim;
pub mod appliance;
pub mod backend;
pub mod barbican;
pub mod benchmarks_doc;
pub mod browser;
pub mod control;
pub mod device;
pub mod keystone;
pub mod model;
pub mod multimemory;
pub mod postgres;
pub mod process;
pub mod providers_doc;
pub mod wrk;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use lbaas_host::DriverName;
use lbaas_host::audit::AuditLog;
use lbaas_host::devices::{DeviceEndpoint, StaticDevices};
use lbaas_host::driver_state::SledStateStore;
use lbaas_host::runtime::{LoadedDriver, Runtime, RuntimeConfig};

/// Whether this process runs as root (it installs packages, makes namespaces and hands
/// PostgreSQL's folder to its own user).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Cargo's target folder (`CARGO_TARGET_DIR`, else the workspace's `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"))
}

/// A loopback port free a moment ago, for a server started as a separate process (one that
/// cannot be handed a bound socket).
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The cargo that runs these tests (so the pinned toolchain builds the components too).
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Builds wasm32-wasip2 packages into `target/<target_dir>` and returns each `.wasm` path.
fn build_components(target_dir: &str, packages: &[&str]) -> Vec<PathBuf> {
    let root = workspace_root();
    let mut command = cargo();
    command
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(root.join("target").join(target_dir));
    for package in packages {
        command.args(["-p", package]);
    }
    let output = command
        .output()
        .expect("cannot run cargo to build the wasm components");
    assert!(
        output.status.success(),
        "building {packages:?} for wasm32-wasip2 failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    packages
        .iter()
        .map(|package| {
            root.join("target")
                .join(target_dir)
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", package.replace('-', "_")))
        })
        .collect()
}

pub struct Drivers {
    pub haproxy: PathBuf,
    pub acme_adc: PathBuf,
}

/// The folder of the bundled drivers, for `lbaasd serve --driver-dir`.
pub fn driver_dir() -> std::path::PathBuf {
    drivers().haproxy.parent().expect("driver dir").to_owned()
}

/// The bundled drivers, built as `cargo drivers` builds them.
pub fn drivers() -> &'static Drivers {
    static DRIVERS: OnceLock<Drivers> = OnceLock::new();
    DRIVERS.get_or_init(|| {
        let paths = build_components("wasm", &["lbaas-driver-haproxy", "lbaas-driver-acme-adc"]);
        Drivers {
            haproxy: paths[0].clone(),
            acme_adc: paths[1].clone(),
        }
    })
}

/// What `cargo ARGS` prints in the workspace; panics with its errors when it fails.
pub fn cargo_stdout(args: &[&str]) -> Vec<u8> {
    let output = cargo()
        .current_dir(workspace_root())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo {args:?}: {e}"));
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The workspace's own packages as `cargo metadata --no-deps` describes them.
pub fn cargo_metadata() -> serde_json::Value {
    let stdout = cargo_stdout(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    serde_json::from_slice(&stdout).expect("cargo metadata's JSON")
}

/// A package of `tests/fixtures/`, as `cargo metadata` describes it.
struct FixturePackage {
    name: String,
    /// Whether it reuses the HAProxy driver's logic (without its exports), so it is built in
    /// a cargo run apart from the driver's.
    reuses_haproxy: bool,
}

/// Every package under `tests/fixtures/`: the list is the folder, so a fixture is never
/// forgotten by the build (and `tests/tests/layout.rs` fails on one no test uses).
fn fixture_packages() -> &'static [FixturePackage] {
    static PACKAGES: OnceLock<Vec<FixturePackage>> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let metadata = cargo_metadata();
        let folder = workspace_root().join("tests").join("fixtures");
        let mut packages: Vec<FixturePackage> = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter(|p| {
                p["manifest_path"]
                    .as_str()
                    .is_some_and(|m| Path::new(m).starts_with(&folder))
            })
            .map(|p| FixturePackage {
                name: p["name"].as_str().expect("package name").to_owned(),
                reuses_haproxy: p["dependencies"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| d["name"] == "lbaas-driver-haproxy")),
            })
            .collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        packages
    })
}

/// The component of the fixture package in `tests/fixtures/<folder>`, built (with the other
/// packages of its kind, once) when first asked for.
fn fixture(folder: &str) -> PathBuf {
    static BUILT: [OnceLock<std::collections::BTreeMap<String, PathBuf>>; 2] =
        [OnceLock::new(), OnceLock::new()];
    let name = format!("fixture-{folder}");
    let package = fixture_packages()
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no fixture package in tests/fixtures/{folder}"));
    let kind = package.reuses_haproxy;
    BUILT[usize::from(kind)].get_or_init(|| {
        let names: Vec<&str> = fixture_packages()
            .iter()
            .filter(|p| p.reuses_haproxy == kind)
            .map(|p| p.name.as_str())
            .collect();
        let paths = build_components("wasm-fixtures", &names);
        names.iter().map(|n| (*n).to_owned()).zip(paths).collect()
    })[&name]
        .clone()
}

/// The folders of `tests/fixtures/` holding a fixture package.
pub fn fixture_folders() -> Vec<String> {
    fixture_packages()
        .iter()
        .filter_map(|p| p.name.strip_prefix("fixture-").map(str::to_owned))
        .collect()
}

pub struct Fixtures {
    pub looper: PathBuf,
    pub memory_hog: PathBuf,
    pub panicker: PathBuf,
    pub snoop: PathBuf,
    /// Claims to be `acme-adc` and loots whatever that name reaches.
    pub name_claim: PathBuf,
    /// Reports a version with a forged log line and terminal escapes, and a 64 KiB vendor.
    pub forged_identity: PathBuf,
    /// `translate` takes 40 MiB of its memory: fits the default grant.
    pub memory_pair: PathBuf,
    /// The same with a second memory that `translate` grows by 40 MiB first
    /// ([`multimemory`]): together past the grant.
    pub memory_pair_two: PathBuf,
    /// Terminates TLS and tries every way to get the keys it is handed by handle.
    pub key_thief: PathBuf,
}

/// The hostile guest fixtures of `tests/fixtures/`, built apart from the drivers so that
/// `lbaasd serve` never loads them.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let memory_pair = fixture("memory-pair");
        let memory_pair_two = memory_pair.with_file_name("memory_pair_two.wasm");
        let single = std::fs::read(&memory_pair).expect("the memory-pair fixture");
        std::fs::write(&memory_pair_two, multimemory::with_second_memory(&single))
            .expect("write the two-memory fixture");
        Fixtures {
            looper: fixture("looper"),
            memory_hog: fixture("memory-hog"),
            panicker: fixture("panicker"),
            snoop: fixture("snoop"),
            name_claim: fixture("name-claim"),
            forged_identity: fixture("forged-identity"),
            memory_pair,
            memory_pair_two,
            key_thief: fixture("key-thief"),
        }
    })
}

/// Driver versions for the lifecycle tests: a good next version of the HAProxy driver, and
/// versions that must be refused.
pub struct LifecycleFixtures {
    /// `haproxy 0.1.1`: the bundled driver's logic under the next version.
    pub haproxy_next: PathBuf,
    /// `haproxy 0.9.0-picky`: refuses every flavor.
    pub haproxy_picky: PathBuf,
    /// Traps in `capabilities`.
    pub broken_caps: PathBuf,
    /// Targets `lbaas:driver@9.0.0`.
    pub future_wit: PathBuf,
    /// `haproxy 0.1.2`: its `migrate-state` fails.
    pub haproxy_stuck: PathBuf,
    /// `legacy 0.1.0`, built against contract 0.1.0 without the SDK.
    pub frozen_0_1: PathBuf,
    /// `legacy-two 0.2.0`, built against contract 0.2.0 without the SDK (`status` included).
    pub frozen_0_2: PathBuf,
    /// `legacy-three 0.3.0`, built against contract 0.3.0 without the SDK (L7 policies and
    /// availability zones included).
    pub frozen_0_3: PathBuf,
    /// `haproxy 0.6.6`: hostile, smuggles `program`, `stats socket`, `http-request return
    /// ... file` or `external-check` into its configuration and hides the device's refusal.
    pub haproxy_inject: PathBuf,
}

/// The fixtures that reuse the HAProxy driver's logic are built in a cargo run of their own:
/// they need the driver without its exports, which building it in the same run as the driver
/// itself would turn on.
pub fn lifecycle_fixtures() -> &'static LifecycleFixtures {
    static FIXTURES: OnceLock<LifecycleFixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| LifecycleFixtures {
        haproxy_next: fixture("haproxy-next"),
        haproxy_picky: fixture("haproxy-picky"),
        broken_caps: fixture("broken-caps"),
        future_wit: fixture("future-wit"),
        haproxy_stuck: fixture("haproxy-stuck"),
        frozen_0_1: fixture("frozen-0-1"),
        frozen_0_2: fixture("frozen-0-2"),
        frozen_0_3: fixture("frozen-0-3"),
        haproxy_inject: fixture("haproxy-inject"),
    })
}

/// Resident memory of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// The commit the working tree is at (12 digits), marked when the tree has changes: what a
/// benchmark measured.
pub fn measured_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(workspace_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let hash = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{hash} (with uncommitted changes)")
    } else {
        hash
    }
}

/// Records a load generator's results (each figure's runs) in `target/bench/<name>.json`,
/// where `cargo xtask bench` reads them, and the commit they measured in `<name>.commit`.
pub fn record_bench<K: serde::Serialize + Ord>(
    name: &str,
    results: &std::collections::BTreeMap<K, Vec<f64>>,
) {
    let dir = workspace_root().join("target/bench");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(results).unwrap_or_default(),
        )?;
        std::fs::write(dir.join(format!("{name}.commit")), measured_commit())
    });
    if let Err(error) = written {
        eprintln!("cannot record the results in {}: {error}", dir.display());
    }
}

/// A listener on a free loopback port for an in-process server, its address told to the test
/// thread waiting on `ready`.
pub async fn loopback_listener(
    ready: std::sync::mpsc::Sender<std::net::SocketAddr>,
) -> tokio::net::TcpListener {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    ready
        .send(listener.local_addr().expect("address"))
        .expect("the test waits for the address");
    listener
}

/// The common fields of an ACTIVE, ONLINE record of `project`, for benchmarks that write
/// records straight to the store.
pub fn active_common(id: String, project: String) -> lbaas_host::model::Common {
    use lbaas_host::model::{Common, OperatingStatus, ProvisioningStatus};
    Common {
        id,
        project_id: project,
        name: String::new(),
        description: String::new(),
        admin_state_up: true,
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        created_at: "2026-11-25T00:00:00".into(),
        updated_at: None,
        tags: Vec::new(),
    }
}

/// The state keys an audit record of `state.get` names: one key, or a call's reads as a JSON
/// array.
pub fn audited_keys(target: Option<&str>) -> Vec<String> {
    match target {
        Some(list) if list.starts_with('[') => serde_json::from_str(list).unwrap_or_default(),
        Some(key) => vec![key.to_owned()],
        None => Vec::new(),
    }
}

/// A host runtime over a data folder, as `lbaasd serve` builds it.
pub struct TestHost {
    pub runtime: Runtime,
    /// Every import call and lifecycle event of the drivers it loads.
    pub audit: Arc<AuditLog>,
    pub devices: Arc<StaticDevices>,
    pub state: Arc<SledStateStore>,
}

impl TestHost {
    /// Opens (or reopens, after a "restart") the host whose data lives in `data_dir`.
    pub fn open(data_dir: &Path) -> Self {
        Self::open_with(data_dir, RuntimeConfig::default())
    }

    pub fn open_with(data_dir: &Path, mut config: RuntimeConfig) -> Self {
        config.cache_dir = Some(data_dir.join("cache"));
        // After a "restart" in the same process, sled's background threads may hold the
        // previous handle's file lock a moment longer.
        let mut attempts = 0;
        let db = loop {
            match sled::open(data_dir.join("db")) {
                Ok(db) => break db,
                Err(sled::Error::Io(error))
                    if error.to_string().contains("could not acquire lock") && attempts < 100 =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => panic!("open the database: {error}"),
            }
        };
        let state = Arc::new(SledStateStore::new(db.clone(), config.state_quota));
        let audit = Arc::new(AuditLog::open(&db, &Default::default()).expect("open the audit log"));
        let devices = Arc::new(StaticDevices::new());
        let runtime = Runtime::audited(
            config,
            state.clone(),
            devices.clone(),
            audit.clone(),
            Default::default(),
        )
        .expect("start the runtime");
        Self {
            runtime,
            audit,
            devices,
            state,
        }
    }

    pub fn load(&self, path: &Path) -> LoadedDriver {
        self.runtime
            .load_file(path)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
    }

    /// Registers a device's management endpoint for `driver`.
    pub fn register_device(&self, device_id: &str, driver: &str, management_url: &str) {
        self.devices.insert(DeviceEndpoint {
            device_id: device_id.into(),
            driver: DriverName::new(driver).expect("driver name"),
            management_url: management_url.into(),
            credentials: None,
        });
    }

    /// Flushes state to disk, as a clean shutdown does.
    pub fn shutdown(self) {
        self.state.flush().expect("flush state");
    }
}

/// Checks a configuration as a device agent would: against the agent's allow-list and the
/// scope the host sends with `lb`'s configuration, then with `haproxy -c -f`. HAProxy must be
/// installed (the README's test command installs it).
pub fn haproxy_check(
    config: &str,
    lb: &lbaas_host::runtime::LoadBalancer,
) -> Result<String, String> {
    let policy = lbaas_agent::ConfigPolicy::default();
    let scope = lbaas_host::runtime::scope::Scope::of(lb, &[]);
    let scope: lbaas_agent::Scope =
        serde_json::from_value(serde_json::to_value(&scope).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    lbaas_agent::policy::check(config, &policy, &scope)
        .map_err(|violation| format!("the agent's policy refused it: {violation}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // The agent's own base file comes first, as on a device: its stats socket keeps HAProxy
    // a listener when every frontend of the load balancer is disabled, and it defines the
    // backend of metrics listeners.
    let base = dir.path().join("base.cfg");
    let base_text = format!(
        "global\n    stats socket {} mode 600 level admin\n{}",
        dir.path().join("stats.sock").display(),
        lbaas_agent::metrics::base_proxies(&dir.path().join("exporter.sock"), "lbaas-check")
    );
    std::fs::write(&base, base_text).map_err(|e| e.to_string())?;
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    let output = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&base)
        .arg("-f")
        .arg(&path)
        .output()
        .map_err(|e| {
            format!(
                "cannot run haproxy (is it installed? the README's test command installs it): {e}"
            )
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Samples of a scrape: each one's name, labels and value.
pub type Samples = Vec<(String, std::collections::BTreeMap<String, String>, f64)>;

/// One scrape of a metrics listener (any path: `GET /`), read by a Prometheus client; `None`
/// when it does not answer 200.
pub fn scrape(address: std::net::SocketAddr) -> Option<Samples> {
    scrape_with(address, &[])
}

/// [`scrape`] with request headers of the client's own (say, forged ones).
pub fn scrape_with(address: std::net::SocketAddr, headers: &[(&str, &str)]) -> Option<Samples> {
    let answer = backend::http_request(address, &address.to_string(), "/", headers)?;
    if answer.status != 200 {
        return None;
    }
    let lines = answer.body.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition format");
    Some(
        scrape
            .samples
            .into_iter()
            .filter_map(|sample| {
                let value = match sample.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => return None,
                };
                let labels = sample
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Some((sample.metric, labels, value))
            })
            .collect(),
    )
}

/// Polls `done` until it holds, for at most a minute; panics naming `what`. Tests wait on an
/// event they can observe this way, never on a fixed sleep.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

//! `cargo xtask conformance`: Octavia's own API test suite (tempest with
//! octavia-tempest-plugin, pinned, in `target/conformance-venv`) against `lbaasd`, once per
//! provider, and `docs/conformance.md` from the results.
//!
//! Each provider's run is sealed in a network namespace of its own (`unshare --net`), with only
//! a loopback interface: the suite's members (192.0.2.x, 2001:db8::x) and anything a spawned
//! HAProxy is told to reach go nowhere. Inside it: a real Keystone (sqlite, bootstrapped, the
//! host's service user and the catalog's `load-balancer` and `network` endpoints), `lbaasd` with
//! the bundled drivers and `--auth keystone`, the provider's devices (simulated Acme appliances,
//! or HAProxy devices the host spawns), and tempest with dynamic credentials; each test class
//! creates its own networks and subnets through the host's Neutron subset.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lbaas_tests::barbican::Barbican;
use lbaas_tests::control::Client;
use lbaas_tests::keystone::Keystone;
use serde::Deserialize;
use serde_json::json;

use super::{cargo, root};

/// What the run installs, pinned.
const PACKAGES: &[&str] = &[
    "tempest==47.0.0",
    "octavia-tempest-plugin==3.5.0",
    "keystone==30.0.0",
    "barbican==23.0.0",
];
/// The API suite Octavia's gate runs.
pub const SUITE: &str = "^octavia_tempest_plugin.tests.api.v2";
/// The suite's VIP subnets (its defaults), made local in the namespace so that spawned
/// HAProxy devices can bind their VIPs.
const VIP_V4: &str = "10.1.1.0/24";
const VIP_V6: &str = "fdde:1a92:7523:70a0::/64";
const SERVICE_PASSWORD: &str = "octavia-secret";

#[derive(clap::Args)]
pub struct Args {
    /// Providers to run the suite with.
    #[arg(long = "provider", default_values_t = ["acme-adc".to_owned(), "haproxy".to_owned()])]
    providers: Vec<String>,
    /// The role schemes the suite's credentials use, each a run of every provider (one
    /// column each).
    #[arg(long = "roles", value_enum, default_values_t = [Roles::Keystone, Roles::Octavia])]
    roles: Vec<Roles>,
    /// The tests to run (a regular expression over test ids).
    #[arg(long, default_value = SUITE)]
    regex: String,
    /// Tests run at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Use debug builds (what `scripts/test` already built) instead of release builds.
    #[arg(long)]
    debug: bool,
    /// Leave docs/conformance.md as it is (for partial runs, as CI's); then a failed test, or
    /// fewer than --min-passed passing per provider, fails the command.
    #[arg(long)]
    no_report: bool,
    /// With --no-report: the tests each run must account for, so that a run that silently ran
    /// nothing (a regex that matches nothing, a service the tests skip without) does not pass.
    /// A test the suite skips on the provider's 501 for an option it does not offer (listed in
    /// docs/providers.md) counts; any other skip does not.
    #[arg(long, default_value_t = 1)]
    min_passed: usize,
    /// Only rewrite docs/conformance.md from the last runs' results.
    #[arg(long)]
    render_only: bool,
}

/// The roles the suite gives its dynamic credentials (its `RBAC_test_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Roles {
    /// Keystone's default roles: `reader`, `member`, `manager`, `admin`.
    Keystone,
    /// Octavia's own: `load-balancer_observer`, `load-balancer_global_observer`,
    /// `load-balancer_member`, `load-balancer_admin`, `load-balancer_quota_admin`.
    Octavia,
}

impl Roles {
    /// The suite's name of the scheme.
    fn tempest(self) -> &'static str {
        match self {
            Self::Keystone => "keystone_default_roles",
            Self::Octavia => "advanced",
        }
    }

    /// The policy lbaasd honours for the scheme, as Octavia's gate installs the matching
    /// sample policy file.
    fn policy(self) -> &'static str {
        match self {
            Self::Keystone => "keystone-default-roles",
            Self::Octavia => "advanced",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Keystone => "Keystone's roles",
            Self::Octavia => "Octavia's roles",
        }
    }
}

/// Octavia's roles, which Keystone must hold for the suite's `advanced` credentials.
const OCTAVIA_ROLES: [&str; 5] = [
    "load-balancer_observer",
    "load-balancer_global_observer",
    "load-balancer_member",
    "load-balancer_admin",
    "load-balancer_quota_admin",
];

/// One run of the suite: a provider, with credentials of one role scheme.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Run {
    provider: String,
    roles: Roles,
}

impl Run {
    fn all(args: &Args) -> Vec<Self> {
        args.roles
            .iter()
            .flat_map(|roles| {
                args.providers.iter().map(|provider| Self {
                    provider: provider.clone(),
                    roles: *roles,
                })
            })
            .collect()
    }

    /// Where its logs and results stay.
    fn dir(&self) -> PathBuf {
        work_dir(&self.provider, self.roles)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}", self.provider, self.roles.label())
    }
}

/// Installs, builds, runs each provider sealed in its own network namespace, and writes the
/// report.
pub fn conformance(args: &Args) -> anyhow::Result<()> {
    if !args.render_only {
        run_all(args)?;
    }
    report(args)
}

fn run_all(args: &Args) -> anyhow::Result<()> {
    let venv = ensure_venv()?;
    build(args.debug)?;
    for run in Run::all(args) {
        let provider = &run.provider;
        eprintln!("xtask: running the suite against {run}");
        let mut unshare = Command::new("unshare");
        unshare.arg("--net");
        if !lbaas_tests::is_root() {
            unshare.arg("--map-root-user");
        }
        let status = unshare
            .arg("--")
            .arg(std::env::current_exe()?)
            .args([
                "conformance-run",
                "--provider",
                provider,
                "--roles",
                run.roles.tempest(),
                "--regex",
                &args.regex,
            ])
            .arg("--concurrency")
            .arg(args.concurrency.to_string())
            .arg("--venv")
            .arg(&venv)
            .args(args.debug.then_some("--debug"))
            .status()
            .context("cannot run unshare (util-linux) for a network namespace")?;
        if !status.success() {
            bail!("the run against {run} failed ({status})");
        }
    }
    Ok(())
}

/// Prints each provider's figures and failures; writes docs/conformance.md unless told not to
/// (then failures fail the command).
fn report(args: &Args) -> anyhow::Result<()> {
    let mut failed = 0;
    let mut short_of = Vec::new();
    for run in Run::all(args) {
        let (outcomes, _) = results(&run)?;
        let tally = tally(&outcomes);
        let failures: usize = tally.values().map(|t| t.failed).sum();
        let passed: usize = tally.values().map(|t| t.passed).sum();
        let skipped: usize = tally.values().map(|t| t.skipped).sum();
        eprintln!("xtask: {run}: {passed} passed, {failures} failed, {skipped} skipped");
        for outcome in outcomes
            .iter()
            .filter(|o| !matches!(o.status.as_str(), "success" | "skip"))
        {
            eprintln!("  FAILED {}: {}", short(&outcome.id), outcome.reason);
        }
        failed += failures;
        if failures == 0
            && let Some(code) = tempest_status(&run).filter(|code| *code != 0)
        {
            bail!("tempest failed against {run} (exit status {code}) though no test failed");
        }
        let declined = outcomes.iter().filter(|o| declined(o)).count();
        if passed + declined < args.min_passed {
            short_of.push(format!(
                "{run} passed {passed} and skipped {declined} for options the provider declines"
            ));
        }
    }
    if args.no_report {
        return gate(failed, &short_of, args.min_passed);
    }
    let report = render(&Run::all(args), &args.regex, args.debug)?;
    let path = root().join("docs/conformance.md");
    std::fs::write(&path, report)?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// A test the suite skipped on the provider's 501 for an option it does not offer.
fn declined(outcome: &Outcome) -> bool {
    outcome.status == "skip"
        && outcome
            .reason
            .contains("does not support a requested option")
}

/// The partial run's verdict: no test failed, and every provider passed at least `min_passed`.
fn gate(failed: usize, short_of: &[String], min_passed: usize) -> anyhow::Result<()> {
    if failed > 0 {
        bail!("{failed} tests failed");
    }
    if !short_of.is_empty() {
        bail!(
            "too few tests passed ({}; at least {min_passed} must): the run skipped or missed \
             tests it should have run",
            short_of.join(", ")
        );
    }
    Ok(())
}

fn venv_dir() -> PathBuf {
    root().join("target/conformance-venv")
}

/// The virtual environment with the pinned packages, created when missing or different.
fn ensure_venv() -> anyhow::Result<PathBuf> {
    let venv = venv_dir();
    let stamp = venv.join("lbaas-packages.txt");
    let wanted = PACKAGES.join("\n");
    // The shim that registers the option the plugin reads but never registers
    // (xtask/conformance/shim), installed afresh every time: it is ours and small.
    let shim = || -> anyhow::Result<()> {
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--no-deps", "--force-reinstall"])
            .arg(root().join("xtask/conformance/shim"))
            .status()?
            .success();
        if !ok {
            bail!("cannot install the conformance shim");
        }
        Ok(())
    };
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        shim()?;
        return Ok(venv);
    }
    eprintln!(
        "xtask: installing {} into {}",
        PACKAGES.join(" "),
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()?
        .success()
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet"])
            .args(PACKAGES)
            .status()?
            .success();
    if !ok {
        bail!("cannot install {} with pip", PACKAGES.join(" "));
    }
    std::fs::write(&stamp, wanted)?;
    shim()?;
    Ok(venv)
}

/// The host, agent, appliance simulator (release builds unless `debug`) and bundled drivers.
fn build(debug: bool) -> anyhow::Result<()> {
    let ok = cargo()
        .arg("build")
        .args((!debug).then_some("--release"))
        .args(["--quiet", "-p", "lbaas-host", "--bin", "lbaasd"])
        .args(["-p", "lbaas-agent", "--bin", "lbaas-agent"])
        .args(["-p", "lbaas-tests", "--bin", "acme-appliance"])
        .status()?
        .success()
        && cargo().args(["drivers", "--quiet"]).status()?.success();
    if !ok {
        bail!("the build failed");
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(long)]
    provider: String,
    /// The suite's `RBAC_test_type`.
    #[arg(long, value_parser = ["keystone_default_roles", "advanced"])]
    roles: String,
    #[arg(long)]
    regex: String,
    #[arg(long)]
    concurrency: usize,
    #[arg(long)]
    venv: PathBuf,
    #[arg(long)]
    debug: bool,
}

fn work_dir(provider: &str, roles: Roles) -> PathBuf {
    root()
        .join("target/conformance")
        .join(provider)
        .join(roles.tempest())
}

/// One provider's run, inside its network namespace.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    for ip in [
        &["link", "set", "lo", "up"][..],
        &["route", "add", "local", VIP_V4, "dev", "lo"],
        &["-6", "route", "add", "local", VIP_V6, "dev", "lo"],
    ] {
        let status = Command::new("ip").args(ip).status()?;
        if !status.success() {
            bail!("ip {} failed", ip.join(" "));
        }
    }
    // Spawned HAProxy devices bind VIPs of the local-routed ranges (AnyIP); IPv6 binds to an
    // address no interface holds only with non-local binding, in this namespace alone.
    std::fs::write("/proc/sys/net/ipv6/ip_nonlocal_bind", "1")
        .context("cannot allow non-local IPv6 binds in the namespace")?;
    let roles = if args.roles == Roles::Octavia.tempest() {
        Roles::Octavia
    } else {
        Roles::Keystone
    };
    let work = work_dir(&args.provider, roles);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let release = root()
        .join("target")
        .join(if args.debug { "debug" } else { "release" });

    let keystone = Keystone::start_in(&args.venv, Duration::from_secs(6 * 3600));
    let lbaas_url = format!("http://127.0.0.1:{}", free_port()?);
    let service_project = keystone.project("service");
    keystone.user("octavia", SERVICE_PASSWORD, &service_project, &["service"]);
    keystone.register("load-balancer", "octavia", &lbaas_url);
    // The suite's `advanced` credentials hold Octavia's roles, which a cloud creates.
    for role in OCTAVIA_ROLES {
        keystone.role(role);
    }
    keystone.register("network", "neutron", &lbaas_url);
    // The key manager the TLS tests keep their certificates in, and the host reads them from
    // (its endpoint found in the catalog, as a cloud's host finds it).
    let barbican = Barbican::start_in(&args.venv, &keystone, &service_project);
    keystone.register("key-manager", "barbican", &barbican.url);

    let password = work.join("keystone-password");
    std::fs::write(&password, SERVICE_PASSWORD)?;
    let mut lbaasd = Command::new(release.join("lbaasd"));
    lbaasd
        .args(["serve", "--listen", lbaas_url.trim_start_matches("http://")])
        .arg("--data-dir")
        .arg(work.join("data"))
        .arg("--driver-dir")
        .arg(root().join("target/wasm/wasm32-wasip2/release"))
        .args(["--auth", "keystone", "--keystone-url", &keystone.url])
        .arg("--keystone-password-file")
        .arg(&password)
        .args(["--key-manager", "barbican"])
        .args(["--policy", roles.policy()])
        .args(["--workers", "8"]);
    if args.provider != "haproxy" {
        lbaasd.arg("--no-spawn");
    }
    let host = Process::start(lbaasd.env("RUST_LOG", "warn"), &work.join("lbaasd.log"))?;
    wait_for(&format!("{lbaas_url}/healthz"))?;

    let admin = Client::new(&lbaas_url).with_token(&keystone.admin_token());
    // Acme: six simulated appliances (64 VIPs each, the appliance's own limit).
    let mut appliances = Vec::new();
    if args.provider == "acme-adc" {
        for n in 1..=6 {
            let address = format!("127.0.0.1:{}", free_port()?);
            let mut simulator = Command::new(release.join("acme-appliance"));
            simulator.args(["--listen", &address]).args([
                "--max-virtual-services",
                "64",
                "--max-vlans-per-interface",
                "64",
            ]);
            appliances.push(Process::start(
                &mut simulator,
                &work.join(format!("acme-{n}.log")),
            )?);
            wait_for(&format!("http://{address}/api/v3/network/vlans"))?;
            admin.create(
                "/v2/admin/devices",
                &json!({"device": {"name": format!("acme-{n}"), "kind": "physical",
                        "driver": "acme-adc", "management_url": format!("http://{address}"),
                        "capacity": 64}}),
            );
        }
    }

    let workspace = work.join("tempest");
    let venv_bin = args.venv.join("bin");
    // Tempest keeps a registry of workspaces by name: the last run's entry goes first.
    let name = format!("lbaas-conformance-{}-{}", args.provider, args.roles);
    let _ = Command::new(venv_bin.join("tempest"))
        .args(["workspace", "remove", "--name", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let status = Command::new(venv_bin.join("tempest"))
        .args(["init", "--name", &name])
        .arg(&workspace)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("tempest init failed");
    }
    // The capabilities the suite expects to find are the provider's own, as an operator
    // configures them: its first flavor and zone keys (none for a provider without).
    let expected = |kind: &str| -> String {
        let (_, body) = admin.get(&format!(
            "/v2/lbaas/providers/{}/{kind}_capabilities",
            args.provider
        ));
        body[format!("{kind}_capabilities")]
            .get(0)
            .map(dict_entry)
            .unwrap_or_default()
    };
    let (_, providers) = admin.get("/v2/lbaas/providers");
    let providers: Vec<String> = providers["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(dict_entry)
        .collect();
    std::fs::write(
        workspace.join("etc/tempest.conf"),
        tempest_conf(
            &keystone.url,
            &args.provider,
            &providers.join(","),
            &expected("flavor"),
            &expected("availability_zone"),
            &args.roles,
        ),
    )?;
    // The subset's tests, as the suite lists them: what the run must account for.
    let listed = Command::new(venv_bin.join("tempest"))
        .args(["run", "--list-tests", "--regex", &args.regex])
        .current_dir(&workspace)
        .output()?;
    if !listed.status.success() {
        bail!(
            "tempest cannot list the tests: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
    }
    std::fs::write(work.join("listed.txt"), &listed.stdout)?;
    let log = std::fs::File::create(work.join("tempest.log"))?;
    let started = Instant::now();
    let tempest = Command::new(venv_bin.join("tempest"))
        .args(["run", "--regex", &args.regex, "--concurrency"])
        .arg(args.concurrency.to_string())
        .current_dir(&workspace)
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()?;
    let took = started.elapsed();
    // Failing tests fail `tempest run` too; the report tells the one from the other.
    std::fs::write(
        work.join("tempest-status.txt"),
        tempest.code().unwrap_or(-1).to_string(),
    )?;
    let subunit = Command::new(venv_bin.join("stestr"))
        .args(["last", "--subunit"])
        .current_dir(&workspace)
        .output()?;
    if !subunit.status.success() {
        bail!(
            "stestr has no results of the run: {}",
            String::from_utf8_lossy(&subunit.stderr)
        );
    }
    let mut parse = Command::new(venv_bin.join("python"))
        .arg(root().join("xtask/conformance/results.py"))
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(work.join("results.jsonl"))?)
        .spawn()?;
    {
        use std::io::Write as _;
        let mut stdin = parse.stdin.take().context("results.py stdin")?;
        stdin.write_all(&subunit.stdout)?;
    }
    if !parse.wait()?.success() {
        bail!("cannot read the suite's results");
    }
    std::fs::write(work.join("duration.txt"), took.as_secs().to_string())?;

    drop(appliances);
    drop(host);
    stop_spawned_devices(&work.join("data"));
    std::fs::write(work.join("barbican.log"), barbican.log())?;
    drop(barbican);
    std::fs::write(work.join("keystone.log"), keystone.log())?;
    drop(keystone);
    Ok(())
}

/// `{"name", "description"}` as one `name:description` entry of an oslo.config dict option,
/// whose syntax has no escapes for `,` and `:`.
fn dict_entry(item: &serde_json::Value) -> String {
    let text = |field: &str| {
        item[field]
            .as_str()
            .unwrap_or_default()
            .replace([',', ':'], ";")
    };
    format!("{}:{}", text("name"), text("description"))
}

fn tempest_conf(
    keystone_url: &str,
    provider: &str,
    providers: &str,
    flavor_capability: &str,
    zone_capability: &str,
    rbac: &str,
) -> String {
    let admin = lbaas_tests::keystone::ADMIN_PASSWORD;
    // Each test class creates its networks and subnets through the Neutron subset the host
    // serves (test_with_noop off; the plugin's network overrides are broken in 3.5.0: it
    // indexes show_subnet's answer as the subnet itself). It checks for compute and image
    // services it does not use in the API suite, hence nova and glance.
    format!(
        "[DEFAULT]\nlog_file = tempest.log\nuse_stderr = False\n\
         [auth]\nuse_dynamic_credentials = True\nadmin_username = admin\n\
         admin_password = {admin}\nadmin_project_name = admin\nadmin_domain_name = Default\n\
         create_isolated_networks = False\n\
         [identity]\nuri_v3 = {keystone_url}\nauth_version = v3\nregion = RegionOne\n\
         [identity-feature-enabled]\napi_v2 = False\n\
         [service_available]\nload_balancer = True\nneutron = True\nnova = True\n\
         glance = True\ncinder = False\nswift = False\nbarbican = True\n\
         [network]\nproject_networks_reachable = True\n\
         [network-feature-enabled]\nport_security = False\n\
         [load_balancer]\nprovider = {provider}\ntest_with_noop = False\n\
         RBAC_test_type = {rbac}\n\
         build_interval = 0.2\nbuild_timeout = 120\ncheck_interval = 0.2\ncheck_timeout = 60\n\
         lb_build_interval = 0.2\nlb_build_timeout = 300\n\
         vip_subnet_cidr = {VIP_V4}\nvip_ipv6_subnet_cidr = {VIP_V6}\ntest_with_ipv6 = True\n\
         default_ipv6_subnetpool =\n\
         enabled_provider_drivers = {providers}\n\
         expected_flavor_capability = {flavor_capability}\n\
         expected_availability_zone_capability = {zone_capability}\n\
         availability_zone = zone-a\navailability_zone2 = zone-b\navailability_zone3 = zone-c\n\
         [loadbalancer-feature-enabled]\nnot_implemented_is_error = False\n\
         terminated_tls_enabled = True\n\
         [enforce_scope]\noctavia = False\n"
    )
}

/// A child process with its output in a file, killed (and reaped) on drop.
struct Process(Child);

impl Process {
    fn start(command: &mut Command, log: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {:?}", command.get_program()))?;
        Ok(Self(child))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `url` answers at all.
fn wait_for(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = Client::new(url);
    while client.try_call("GET", "", None).is_none() {
        if Instant::now() > deadline {
            bail!("{url} did not come up");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Spawned devices outlive the host on purpose; here they go with the run.
fn stop_spawned_devices(data: &Path) {
    let Ok(walk) = Command::new("find")
        .arg(data)
        .args(["-name", "*.pid"])
        .output()
    else {
        return;
    };
    for file in String::from_utf8_lossy(&walk.stdout).lines() {
        let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            continue;
        };
        // Only a device's own programs: a pid whose process ended may name another by now.
        let program = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let program = program.split(|&b| b == 0).next().unwrap_or_default();
        let name = Path::new(std::str::from_utf8(program).unwrap_or_default())
            .file_name()
            .and_then(|n| n.to_str());
        if matches!(name, Some("haproxy" | "lbaas-agent")) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

#[derive(Deserialize, Clone)]
struct Outcome {
    id: String,
    status: String,
    reason: String,
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

/// The module of a test id (`test_listener`), setUpClass entries included.
fn module(id: &str) -> String {
    let inner = id
        .split_once('(')
        .map_or(id, |(_, rest)| rest.trim_end_matches(')'));
    inner
        .split('.')
        .find(|part| part.starts_with("test_"))
        .unwrap_or("other")
        .to_owned()
}

/// A test's name without its module path and idempotent id.
fn short(id: &str) -> String {
    let id = id.split('[').next().unwrap_or(id);
    match id.split_once("api.v2.") {
        Some((_, rest)) => rest.trim_end_matches(')').to_owned(),
        None => id.to_owned(),
    }
}

/// A run's last results: each test's outcome, and how long the suite took (seconds).
fn results(run: &Run) -> anyhow::Result<(Vec<Outcome>, String)> {
    let path = run.dir().join("results.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no results in {}", path.display()))?;
    let outcomes: Vec<Outcome> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let took = std::fs::read_to_string(run.dir().join("duration.txt")).unwrap_or_default();
    let listed = std::fs::read_to_string(run.dir().join("listed.txt")).unwrap_or_default();
    Ok((account(outcomes, &listed), took.trim().to_owned()))
}

/// Each listed test's outcome: a class skipped or failed in its set-up (one entry in the
/// stream) counts as each of its tests, and a listed test with no outcome (a run cut short)
/// as a failure.
fn account(outcomes: Vec<Outcome>, listed: &str) -> Vec<Outcome> {
    let listed: Vec<&str> = listed
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("octavia_tempest_plugin."))
        .collect();
    let mut accounted = Vec::new();
    for outcome in outcomes {
        let class = outcome
            .id
            .strip_prefix("setUpClass (")
            .and_then(|rest| rest.strip_suffix(')'));
        let tests: Vec<&&str> = match class {
            Some(class) => listed
                .iter()
                .filter(|id| {
                    id.strip_prefix(class)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
                .collect(),
            None => Vec::new(),
        };
        if tests.is_empty() {
            accounted.push(outcome);
            continue;
        }
        accounted.extend(tests.into_iter().map(|id| Outcome {
            id: (*id).to_owned(),
            ..outcome.clone()
        }));
    }
    let seen: std::collections::BTreeSet<String> = accounted.iter().map(|o| o.id.clone()).collect();
    let missing: Vec<Outcome> = listed
        .iter()
        .filter(|id| !seen.contains(**id))
        .map(|id| Outcome {
            id: (*id).to_owned(),
            status: "fail".into(),
            reason: "listed in the subset, but the run has no outcome for it".into(),
        })
        .collect();
    accounted.extend(missing);
    accounted
}

/// What `tempest run` exited with, when the run recorded it.
fn tempest_status(run: &Run) -> Option<i32> {
    std::fs::read_to_string(run.dir().join("tempest-status.txt"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Passed, failed and skipped per module.
fn tally(outcomes: &[Outcome]) -> BTreeMap<String, Tally> {
    let mut by_module: BTreeMap<String, Tally> = BTreeMap::new();
    for outcome in outcomes {
        let tally = by_module.entry(module(&outcome.id)).or_default();
        match outcome.status.as_str() {
            "success" => tally.passed += 1,
            "skip" => tally.skipped += 1,
            _ => tally.failed += 1,
        }
    }
    by_module
}

fn render(runs: &[Run], regex: &str, debug: bool) -> anyhow::Result<String> {
    let mut results = BTreeMap::new();
    for run in runs {
        results.insert(run.clone(), self::results(run)?);
    }
    let mut out = String::new();
    let commit = lbaas_tests::measured_commit();
    writeln!(out, "# Conformance: Octavia's own API test suite")?;
    writeln!(out)?;
    writeln!(
        out,
        "Written by `cargo xtask conformance` at commit `{commit}`: {}, tests matching `{regex}` \
         (the API suite Octavia's gate runs), against `lbaasd` ({} build) with \
         `--auth keystone` and a real Keystone, `--key-manager barbican` and a real Barbican \
         (sqlite, the simple crypto plugin; `terminated_tls_enabled = True`, so the TLS tests \
         store their certificates there), once per provider and role scheme. Each run is sealed in a \
         network namespace with only a loopback interface. Acme: a simulated Acme appliance \
         (`acme-appliance`) registered as a device. HAProxy: devices the host spawns (an \
         `lbaas-agent` and a real HAProxy each). Each test class creates its networks and \
         IPv4 and IPv6 subnets through the host's Neutron subset (VIPs in {VIP_V4} and \
         {VIP_V6}); dynamic credentials with Keystone's default roles (`RBAC_test_type = \
         keystone_default_roles`: `reader`, `member`, `admin`; lbaasd with `--policy \
         keystone-default-roles`) or with Octavia's own (`advanced`: `load-balancer_observer`, \
         `load-balancer_global_observer`, `load-balancer_member`, `load-balancer_admin`; \
         lbaasd with `--policy advanced`), as Octavia's gate runs each with the matching \
         sample policy file; `not_implemented_is_error = False`, so a 501 naming an \
         option the provider lacks makes the suite skip the test, as it does for Octavia's \
         own providers.",
        PACKAGES.join(", "),
        if debug { "debug" } else { "release" }
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Skips that name no option are the suite's own: the amphora tests run only with \
         Octavia's amphora provider; one test waits on Octavia bug 2045803. \
         octavia-tempest-plugin 3.5.0 reads an option it never registers \
         (`test_IPv6_subnet_override`) and one barbican-tempest-plugin registers \
         (`[service_available] barbican`, which the TLS tests look for); \
         `xtask/conformance/shim` registers both and changes no test. Logs of each run stay in \
         `target/conformance/PROVIDER/SCHEME/`."
    )?;
    writeln!(out)?;
    let mut header = String::from("| |");
    let mut rule = String::from("|---|");
    for run in runs {
        write!(header, " {run} |")?;
        rule.push_str("---|");
    }
    writeln!(out, "## Totals\n\n{header}\n{rule}")?;
    let tallies: BTreeMap<&Run, BTreeMap<String, Tally>> = results
        .iter()
        .map(|(run, (outcomes, _))| (run, tally(outcomes)))
        .collect();
    for (label, pick) in [
        ("passed", (|t: &Tally| t.passed) as fn(&Tally) -> usize),
        ("failed", |t: &Tally| t.failed),
        ("skipped", |t: &Tally| t.skipped),
    ] {
        let mut row = format!("| {label} |");
        for run in runs {
            let sum: usize = tallies[run].values().map(pick).sum();
            write!(row, " {sum} |")?;
        }
        writeln!(out, "{row}")?;
    }
    let mut row = String::from("| run time |");
    for run in runs {
        write!(row, " {} s |", results[run].1)?;
    }
    writeln!(out, "{row}\n")?;

    writeln!(out, "## Per module (passed / failed / skipped)\n")?;
    writeln!(out, "{}", header.replacen("| |", "| module |", 1))?;
    writeln!(out, "{rule}")?;
    let modules: std::collections::BTreeSet<&String> =
        tallies.values().flat_map(BTreeMap::keys).collect();
    for module in modules {
        let mut row = format!("| `{module}` |");
        for run in runs {
            match tallies[run].get(module) {
                Some(t) => write!(row, " {} / {} / {} |", t.passed, t.failed, t.skipped)?,
                None => row.push_str(" — |"),
            }
        }
        writeln!(out, "{row}")?;
    }
    for run in runs {
        let (outcomes, _) = &results[run];
        for (title, status) in [("Failures", "fail"), ("Skips", "skip")] {
            let listed: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| match status {
                    "skip" => o.status == "skip",
                    _ => !matches!(o.status.as_str(), "success" | "skip"),
                })
                .collect();
            if listed.is_empty() {
                continue;
            }
            writeln!(out, "\n## {title}: {run} ({})\n", listed.len())?;
            writeln!(out, "| test | reason |\n|---|---|")?;
            for outcome in listed {
                let reason = outcome.reason.replace('|', "\\|").replace('\n', " ");
                writeln!(out, "| `{}` | {} |", short(&outcome.id), reason.trim())?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_run_fails_on_a_failure_or_when_too_few_passed() {
        assert!(gate(0, &[], 35).is_ok());
        assert!(gate(1, &[], 35).is_err());
        let short = gate(0, &["acme-adc passed 22".to_owned()], 35)
            .expect_err("an empty run passed")
            .to_string();
        assert!(
            short.contains("acme-adc passed 22") && short.contains("at least 35"),
            "{short}"
        );
    }

    #[test]
    fn every_listed_test_is_accounted_for() {
        let outcome = |id: &str, status: &str| Outcome {
            id: id.into(),
            status: status.into(),
            reason: String::new(),
        };
        let prefix = "octavia_tempest_plugin.tests.api.v2";
        let listed = format!(
            "{{0}} tests\n{prefix}.test_a.A.test_one[id-1]\n{prefix}.test_a.A.test_two[id-2]\n\
             {prefix}.test_b.B.test_one[id-3]\n{prefix}.test_b.Bee.test_one[id-4]\n\
             {prefix}.test_c.C.test_gone[id-5]\n"
        );
        let outcomes = vec![
            outcome(&format!("setUpClass ({prefix}.test_a.A)"), "skip"),
            outcome(&format!("{prefix}.test_b.B.test_one[id-3]"), "success"),
            outcome(&format!("{prefix}.test_b.Bee.test_one[id-4]"), "success"),
        ];
        let accounted = account(outcomes, &listed);
        let statuses: Vec<(String, &str)> = accounted
            .iter()
            .map(|o| (short(&o.id), o.status.as_str()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("test_a.A.test_one".to_owned(), "skip"),
                ("test_a.A.test_two".to_owned(), "skip"),
                ("test_b.B.test_one".to_owned(), "success"),
                ("test_b.Bee.test_one".to_owned(), "success"),
                ("test_c.C.test_gone".to_owned(), "fail"),
            ]
        );
        // A stream from a run that listed nothing is taken as it is.
        assert_eq!(account(vec![outcome("x", "success")], "").len(), 1);
    }

    #[test]
    fn test_ids_map_to_modules() {
        let id = "octavia_tempest_plugin.tests.api.v2.test_listener.ListenerAPITest.\
                  test_http_listener_create[id-7e8f39ce]";
        assert_eq!(module(id), "test_listener");
        assert_eq!(
            short(id),
            "test_listener.ListenerAPITest.test_http_listener_create"
        );
        let setup = "setUpClass (octavia_tempest_plugin.tests.api.v2.test_flavor.FlavorAPITest)";
        assert_eq!(module(setup), "test_flavor");
        assert_eq!(short(setup), "test_flavor.FlavorAPITest");
    }
}

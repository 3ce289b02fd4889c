//! `lbaasctl`: the operators' CLI for what the `openstack` CLI does not cover — driver
//! versions, devices, placement explanations and the audit log — against a running `lbaasd`.
//!
//! Tables for people, `--json` for scripts. Exit codes: 0 done, 1 the host refused (its
//! message is printed), 2 bad usage, 3 the host could not be reached.

use std::io::{IsTerminal as _, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use indicatif::{ProgressBar, ProgressStyle};
use lbaas_records::audit::Record;
use lbaas_records::placement::Verdict;
use lbaas_records::views::{
    AuditPage, DeviceAnswer, DeviceList, DriverAnswer, DriverList, HostList, PlacementAnswer,
    UploadAnswer, VerifyAnswer,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "lbaasctl",
    version,
    about = "Operate an lbaasd host: drivers, devices, placements, audit"
)]
struct Cli {
    #[command(flatten)]
    target: Target,
    /// Print the host's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Target {
    /// The host's API.
    #[arg(
        long,
        env = "LBAAS_URL",
        default_value = "http://127.0.0.1:9876",
        global = true
    )]
    url: String,
    /// An admin token (`--auth tokens` hosts).
    #[arg(long, env = "LBAAS_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// The project to act as on noauth hosts.
    #[arg(long, env = "LBAAS_PROJECT", default_value = "admin", global = true)]
    project: String,
}

#[derive(Subcommand)]
enum Command {
    /// Driver versions: upload, activate, roll back, drain, inspect.
    #[command(subcommand)]
    Driver(DriverCommand),
    /// Devices in the registry.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Why a load balancer is where it is.
    #[command(subcommand)]
    Placement(PlacementCommand),
    /// The drivers' audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The hosts sharing the control plane's store.
    #[command(subcommand)]
    Host(HostCommand),
}

#[derive(Subcommand)]
enum HostCommand {
    /// Every host: version, address, last heartbeat, whether it is alive, jobs held.
    List,
}

#[derive(Subcommand)]
enum DriverCommand {
    /// Every driver with its active version.
    List,
    /// One driver: its active version, grant, and every uploaded version.
    Inspect { name: String },
    /// Upload a component (validated by the host, stored inactive unless --activate).
    Upload {
        file: PathBuf,
        /// Its signature (hex); default: FILE.sig when it exists.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// Activate it once stored.
        #[arg(long)]
        activate: bool,
    },
    /// Make a version active (a SHA-256, a unique prefix of one, or a version string).
    Activate { name: String, version: String },
    /// Send a share of new placements to a version before it takes all.
    Canary {
        name: String,
        version: String,
        /// Share of placements, 1..=99.
        #[arg(long)]
        percent: u8,
    },
    /// Make the canary the active version.
    Promote { name: String },
    /// Go back to the version active before (or end a canary).
    Rollback { name: String },
    /// Stop new placements on a driver (its load balancers keep working); --undo ends it.
    Drain {
        name: String,
        #[arg(long)]
        undo: bool,
    },
    /// Refuse a version for activation; --undo enables it again.
    Disable {
        name: String,
        version: String,
        #[arg(long)]
        undo: bool,
    },
    /// Delete a version no load balancer needs.
    Delete { name: String, version: String },
    /// Lift the quarantine of a driver's active version.
    Release { name: String },
}

#[derive(Subcommand)]
enum DeviceCommand {
    List,
    /// Register a device.
    Add {
        #[arg(long)]
        name: String,
        /// physical or virtual.
        #[arg(long, value_parser = ["physical", "virtual"])]
        kind: String,
        #[arg(long)]
        driver: String,
        #[arg(long)]
        management_url: String,
        /// Load balancers it takes.
        #[arg(long)]
        capacity: u32,
        /// A bearer token the host sends to the device (the driver never sees it).
        #[arg(long, env = "LBAAS_DEVICE_TOKEN", hide_env_values = true)]
        device_token: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
        /// KEY=VALUE (repeatable), e.g. interfaces=4.
        #[arg(long = "metadata", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
    },
    /// Take a device out of placement (its load balancers stay); --undo puts it back.
    Disable {
        id: String,
        #[arg(long)]
        undo: bool,
    },
}

#[derive(Subcommand)]
enum PlacementCommand {
    /// The scheduler's explanation of a load balancer's placement.
    Explain { loadbalancer_id: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// The newest records (filters as GET /v2/admin/audit).
    Tail {
        #[arg(long)]
        driver: Option<String>,
        #[arg(long)]
        function: Option<String>,
        /// ok, denied or failed.
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// Keep printing new records.
        #[arg(long, short)]
        follow: bool,
    },
    /// Check the hash chain (exit 1 when it is broken).
    Verify,
    /// Every record as JSON Lines.
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// Why a command failed, and its exit code.
enum Failure {
    Refused(String),
    Unreachable(String),
    Local(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Refused(_) | Failure::Local(_) => 1,
            Failure::Unreachable(_) => 3,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(m) | Failure::Unreachable(m) | Failure::Local(m) => f.write_str(m),
        }
    }
}

type Result<T, E = Failure> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = Client::new(&cli.target);
    match run(&client, cli.json, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code())
        }
    }
}

struct Client {
    url: String,
    token: Option<String>,
    project: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(target: &Target) -> Self {
        Self {
            url: target.url.trim_end_matches('/').to_owned(),
            token: target.token.clone(),
            project: target.project.clone(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(300)))
                .build()
                .into(),
        }
    }

    /// One request; the JSON answer of a 2xx, the host's message otherwise.
    fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        headers: &[(&str, String)],
        body: impl Read + Send + 'static,
    ) -> Result<Value> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", content_type)
            .header("x-project-id", &self.project);
        if let Some(token) = &self.token {
            request = request.header("x-auth-token", token);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(ureq::SendBody::from_owned_reader(body))
            .map_err(|e| Failure::Local(e.to_string()))?;
        let mut response = self.agent.run(request).map_err(|e| {
            Failure::Unreachable(format!("cannot reach the host at {}: {e}", self.url))
        })?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| Failure::Unreachable(format!("the host's answer was cut: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = value["faultstring"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| text.trim().to_owned());
        Err(Failure::Refused(format!("{} ({status})", message)))
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, "application/json", &[], std::io::empty())
    }

    fn send(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let bytes = body.to_string().into_bytes();
        self.call(
            method,
            path,
            "application/json",
            &[],
            std::io::Cursor::new(bytes),
        )
    }
}

/// The host's answer as the type this CLI reads it as; an answer of another shape (a host of
/// another version) is said to be one rather than shown as empty columns.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<T> {
    T::deserialize(value).map_err(|e| {
        Failure::Local(format!(
            "the host answered in a shape this lbaasctl does not read ({e}); are they of \
             different versions? --json prints the answer as it is"
        ))
    })
}

fn run(client: &Client, json_out: bool, command: Command) -> Result<()> {
    let print = |value: &Value, table: &dyn Fn(&Value) -> Result<String>| -> Result<()> {
        if json_out {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", table(value)?);
        }
        Ok(())
    };
    match command {
        Command::Driver(command) => driver(client, command, &print),
        Command::Device(command) => device(client, command, &print),
        Command::Placement(PlacementCommand::Explain { loadbalancer_id }) => {
            let placement = client.get(&format!(
                "/v2/admin/loadbalancers/{}/placement",
                segment(&loadbalancer_id)
            ))?;
            print(&placement, &|v| explain_table(&typed(v)?))
        }
        Command::Audit(command) => audit(client, command, json_out, &print),
        Command::Host(HostCommand::List) => print(&client.get("/v2/admin/hosts")?, &|v| {
            Ok(hosts_table(&typed(v)?))
        }),
    }
}

type Print<'a> = dyn Fn(&Value, &dyn Fn(&Value) -> Result<String>) -> Result<()> + 'a;

fn driver(client: &Client, command: DriverCommand, print: &Print<'_>) -> Result<()> {
    let action = |path: String, doing: &str| -> Result<Value> {
        spinner(doing, || client.send("POST", &path, json!({})))
    };
    match command {
        DriverCommand::List => print(&client.get("/v2/admin/drivers")?, &|v| {
            Ok(drivers_table(&typed(v)?))
        })?,
        DriverCommand::Inspect { name } => print(
            &client.get(&format!("/v2/admin/drivers/{}", segment(&name)))?,
            &driver_table,
        )?,
        DriverCommand::Upload {
            file,
            signature,
            activate,
        } => {
            let answer = upload(client, &file, signature.as_deref(), activate)?;
            print(&answer, &|v| {
                let answer: UploadAnswer = typed(v)?;
                Ok(format!(
                    "uploaded {} {} ({}), {}\n",
                    answer.driver.name,
                    answer.version.version,
                    short(&answer.version.sha256),
                    answer.version.state.as_str()
                ))
            })?;
        }
        DriverCommand::Activate { name, version } => {
            let path = format!(
                "/v2/admin/drivers/{}/versions/{}/activate",
                segment(&name),
                segment(&version)
            );
            print(&action(path, "activating")?, &driver_table)?;
        }
        DriverCommand::Canary {
            name,
            version,
            percent,
        } => {
            let path = format!(
                "/v2/admin/drivers/{}/versions/{}/canary",
                segment(&name),
                segment(&version)
            );
            let body = json!({"canary": {"percent": percent}});
            print(
                &spinner("starting the canary", || client.send("POST", &path, body))?,
                &driver_table,
            )?;
        }
        DriverCommand::Promote { name } => {
            let path = format!("/v2/admin/drivers/{}/promote", segment(&name));
            print(&action(path, "promoting")?, &driver_table)?;
        }
        DriverCommand::Rollback { name } => {
            let path = format!("/v2/admin/drivers/{}/rollback", segment(&name));
            print(&action(path, "rolling back")?, &driver_table)?;
        }
        DriverCommand::Drain { name, undo } => {
            let verb = if undo { "undrain" } else { "drain" };
            let path = format!("/v2/admin/drivers/{}/{verb}", segment(&name));
            print(&action(path, "draining")?, &driver_table)?;
        }
        DriverCommand::Disable {
            name,
            version,
            undo,
        } => {
            let verb = if undo { "enable" } else { "disable" };
            let path = format!(
                "/v2/admin/drivers/{}/versions/{}/{verb}",
                segment(&name),
                segment(&version)
            );
            print(&action(path, "updating")?, &driver_table)?;
        }
        DriverCommand::Delete { name, version } => {
            client.call(
                "DELETE",
                &format!(
                    "/v2/admin/drivers/{}/versions/{}",
                    segment(&name),
                    segment(&version)
                ),
                "application/json",
                &[],
                std::io::empty(),
            )?;
            print(
                &json!({"deleted": {"driver": name, "version": version}}),
                &|_| Ok(format!("deleted {name} {version}\n")),
            )?;
        }
        DriverCommand::Release { name } => {
            let path = format!("/v2/admin/drivers/{}/release", segment(&name));
            print(&action(path, "releasing")?, &driver_table)?;
        }
    }
    Ok(())
}

/// POSTs the component with a progress bar, then (with `--activate`) waits on the
/// activation with a spinner.
fn upload(client: &Client, file: &Path, signature: Option<&Path>, activate: bool) -> Result<Value> {
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::Local(format!("cannot read {}: {e}", file.display())))?;
    let default_signature = lbaas_records::signature_path(file);
    let signature = match signature {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            Failure::Local(format!("cannot read signature {}: {e}", path.display()))
        })?),
        None => std::fs::read_to_string(&default_signature).ok(),
    };
    let headers: Vec<(&str, String)> = signature
        .map(|s| vec![("x-driver-signature", s.trim().to_owned())])
        .unwrap_or_default();
    let bar = progress(bytes.len() as u64);
    let reader = bar.wrap_read(std::io::Cursor::new(bytes));
    let path = if activate {
        "/v2/admin/drivers?activate=true"
    } else {
        "/v2/admin/drivers"
    };
    bar.set_message("uploading and validating");
    let answer = client.call("POST", path, "application/wasm", &headers, reader);
    bar.finish_and_clear();
    answer
}

fn progress(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Runs `work` under a spinner (on a terminal).
fn spinner<T>(message: &str, work: impl FnOnce() -> T) -> T {
    let spinner = if std::io::stderr().is_terminal() {
        let spinner = ProgressBar::new_spinner();
        spinner.set_message(message.to_owned());
        spinner.enable_steady_tick(Duration::from_millis(80));
        spinner
    } else {
        ProgressBar::hidden()
    };
    let result = work();
    spinner.finish_and_clear();
    result
}

fn device(client: &Client, command: DeviceCommand, print: &Print<'_>) -> Result<()> {
    match command {
        DeviceCommand::List => print(&client.get("/v2/admin/devices")?, &|v| {
            Ok(devices_table(&typed(v)?))
        })?,
        DeviceCommand::Add {
            name,
            kind,
            driver,
            management_url,
            capacity,
            device_token,
            cluster,
            metadata,
        } => {
            let mut meta = serde_json::Map::new();
            for pair in &metadata {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    Failure::Local(format!("--metadata `{pair}` is not KEY=VALUE"))
                })?;
                meta.insert(key.to_owned(), value.into());
            }
            let mut device = json!({"name": name, "kind": kind, "driver": driver,
                "management_url": management_url, "capacity": capacity, "metadata": meta});
            if let Some(token) = device_token {
                device["credentials"] = json!({"type": "bearer", "token": token});
            }
            if let Some(cluster) = cluster {
                device["cluster"] = cluster.into();
            }
            let created = client.send("POST", "/v2/admin/devices", json!({ "device": device }))?;
            print(&created, &|v| {
                let created: DeviceAnswer = typed(v)?;
                Ok(format!(
                    "added device {} ({})\n",
                    created.device.id, created.device.name
                ))
            })?;
        }
        DeviceCommand::Disable { id, undo } => {
            let updated = client.send(
                "PUT",
                &format!("/v2/admin/devices/{}", segment(&id)),
                json!({"device": {"enabled": undo}}),
            )?;
            print(&updated, &|v| {
                let updated: DeviceAnswer = typed(v)?;
                Ok(format!(
                    "device {} {}\n",
                    updated.device.id,
                    if undo { "enabled" } else { "disabled" }
                ))
            })?;
        }
    }
    Ok(())
}

fn audit(client: &Client, command: AuditCommand, json_out: bool, print: &Print<'_>) -> Result<()> {
    match command {
        AuditCommand::Verify => {
            let answer = client.get("/v2/admin/audit/verify")?;
            let verified: VerifyAnswer = typed(&answer)?;
            print(&answer, &|_| {
                Ok(if verified.intact {
                    format!(
                        "audit log intact: {} records, head {}\n",
                        verified.records,
                        verified.head.as_deref().unwrap_or("(empty)")
                    )
                } else {
                    format!(
                        "audit log BROKEN after {} good records: {}\n",
                        verified.records,
                        verified.broken.as_deref().unwrap_or_default()
                    )
                })
            })?;
            if !verified.intact {
                return Err(Failure::Refused(
                    "the audit log's hash chain is broken".into(),
                ));
            }
        }
        AuditCommand::Export { output } => {
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).map_err(|e| {
                        Failure::Local(format!("cannot create {}: {e}", path.display()))
                    })?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut count = 0;
            let mut marker: Option<u64> = None;
            loop {
                let mut path = "/v2/admin/audit?limit=10000".to_owned();
                if let Some(seq) = marker {
                    path.push_str(&format!("&marker={seq}"));
                }
                // Exported as the host wrote them (fields this lbaasctl does not know kept).
                let page = client.get(&path)?;
                let records = page["audit"].as_array().cloned().unwrap_or_default();
                for record in &records {
                    writeln!(out, "{record}").map_err(|e| Failure::Local(e.to_string()))?;
                }
                count += records.len();
                match records.last().and_then(|r| r["seq"].as_u64()) {
                    Some(seq) if records.len() == 10_000 => marker = Some(seq),
                    _ => break,
                }
            }
            out.flush().map_err(|e| Failure::Local(e.to_string()))?;
            eprintln!("{count} audit records exported");
        }
        AuditCommand::Tail {
            driver,
            function,
            outcome,
            lines,
            follow,
        } => {
            let mut filter = String::new();
            for (key, value) in [
                ("driver", driver),
                ("function", function),
                ("outcome", outcome),
            ] {
                if let Some(value) = value {
                    filter.push_str(&format!("&{key}={}", segment(&value)));
                }
            }
            // The newest `lines`: page through to the end, keeping the last ones.
            let mut marker: Option<u64> = None;
            let mut last: std::collections::VecDeque<Record> = Default::default();
            loop {
                let page = audit_page(client, &filter, marker)?;
                for record in &page {
                    last.push_back(record.clone());
                    if last.len() > lines {
                        last.pop_front();
                    }
                }
                match page.last().map(|r| r.seq) {
                    Some(seq) if page.len() == 10_000 => marker = Some(seq),
                    Some(seq) => {
                        marker = Some(seq);
                        break;
                    }
                    None => break,
                }
            }
            let records: Vec<Record> = last.into_iter().collect();
            let shown = serde_json::to_value(&records).unwrap_or_default();
            print(&shown, &|_| Ok(audit_table(&records)))?;
            if !follow {
                return Ok(());
            }
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let page = audit_page(client, &filter, marker)?;
                if let Some(seq) = page.last().map(|r| r.seq) {
                    marker = Some(seq);
                }
                for record in page {
                    if json_out {
                        println!("{}", serde_json::to_string(&record).unwrap_or_default());
                    } else {
                        print!("{}", audit_line(&record));
                    }
                }
            }
        }
    }
    Ok(())
}

fn audit_page(client: &Client, filter: &str, after: Option<u64>) -> Result<Vec<Record>> {
    let mut path = format!("/v2/admin/audit?limit=10000{filter}");
    if let Some(seq) = after {
        path.push_str(&format!("&marker={seq}"));
    }
    typed::<AuditPage>(&client.get(&path)?).map(|page| page.audit)
}

/// A path segment, percent-encoded.
fn segment(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The first 12 characters of a digest.
fn short(digest: &str) -> String {
    digest.chars().take(12).collect()
}

/// An optional field, `-` when absent.
fn or_dash(value: Option<&impl std::fmt::Display>) -> String {
    value.map_or_else(|| "-".to_owned(), ToString::to_string)
}

/// Columns a table may use: the terminal's, else `COLUMNS`, else 120 (output to a pipe or a
/// file is read in a terminal later).
fn columns() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c: &u16| c >= 40)
        .unwrap_or(120)
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    if table.width().is_none() {
        table.set_width(columns());
    }
    table
}

/// `text` cut to `max` characters, ending in `…` when cut: long cells (a state read's keys, a
/// device's answer) are whole with `--json`.
fn elide(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn drivers_table(list: &DriverList) -> String {
    let mut t = table(&[
        "name",
        "active",
        "contract",
        "sha256",
        "versions",
        "draining",
        "quarantined",
    ]);
    for d in &list.drivers {
        t.add_row(vec![
            d.name.clone(),
            or_dash(d.version.as_ref()),
            or_dash(d.contract.as_ref()),
            d.sha256.as_deref().map(short).unwrap_or_default(),
            d.versions.len().to_string(),
            d.draining.to_string(),
            d.quarantined.to_string(),
        ]);
    }
    format!("{t}\n")
}

fn driver_table(value: &Value) -> Result<String> {
    let d = typed::<DriverAnswer>(value)?.driver;
    let mut out = format!(
        "driver {}: active {} ({}), {}{}\n",
        d.name,
        or_dash(d.version.as_ref()),
        d.sha256.as_deref().map(short).unwrap_or_default(),
        or_dash(d.contract.as_ref()),
        if d.draining { ", DRAINING" } else { "" }
    );
    if let Some(canary) = &d.canary {
        out.push_str(&format!(
            "canary: {} takes {}% of placements\n",
            short(&canary.sha256),
            canary.percent
        ));
    }
    if d.quarantined {
        out.push_str(&format!(
            "QUARANTINED: {}\n",
            or_dash(d.quarantine_reason.as_ref())
        ));
    }
    let mut t = table(&[
        "version",
        "sha256",
        "state",
        "contract",
        "source",
        "signed by",
        "uploaded",
    ]);
    for v in &d.versions {
        let mut state = v.state.as_str().to_owned();
        if v.rollback_target {
            state.push_str(" (rollback)");
        }
        t.add_row(vec![
            v.version.clone(),
            short(&v.sha256),
            state,
            or_dash(v.wit.as_ref()),
            v.source.clone(),
            or_dash(v.signed_by.as_ref()),
            v.uploaded_at.clone(),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    if let Some(grant) = &d.grant {
        out.push_str(&format!("grant: {grant}\n"));
    }
    Ok(out)
}

fn hosts_table(list: &HostList) -> String {
    let mut t = table(&[
        "id",
        "name",
        "version",
        "address",
        "alive",
        "last heartbeat",
        "jobs",
    ]);
    for h in &list.hosts {
        t.add_row(vec![
            h.id.clone(),
            h.name.clone(),
            h.version.clone(),
            h.address.clone(),
            h.alive.to_string(),
            h.heartbeat.clone(),
            h.jobs.to_string(),
        ]);
    }
    format!("{t}\n")
}

fn devices_table(list: &DeviceList) -> String {
    let mut t = table(&[
        "id",
        "name",
        "kind",
        "driver",
        "load",
        "enabled",
        "spawned",
        "management url",
    ]);
    for d in &list.devices {
        t.add_row(vec![
            d.id.clone(),
            d.name.clone(),
            format!("{:?}", d.kind).to_lowercase(),
            d.driver.clone(),
            format!("{}/{}", d.load_balancers, d.capacity),
            d.enabled.to_string(),
            d.spawned.to_string(),
            d.management_url.clone(),
        ]);
    }
    format!("{t}\n")
}

fn explain_table(answer: &PlacementAnswer) -> Result<String> {
    let p = &answer.placement.decision;
    let explanation = &p.explanation;
    let mut out = format!(
        "decided {} by {}\noutcome: {}\n",
        p.decided_at,
        match &p.placed_by {
            None => "-".to_owned(),
            Some(by) => format!("{} {} ({})", by.driver, by.version, short(&by.sha256)),
        },
        explanation.outcome.describe(p.spawned_device.as_deref())
    );
    let mut t = table(&[
        "device",
        "driver",
        "filter",
        "host score",
        "offered",
        "driver verdict",
    ]);
    for c in &explanation.candidates {
        t.add_row(vec![
            c.device_id.clone(),
            c.driver.clone(),
            or_dash(c.filtered_by.as_ref()),
            or_dash(c.host_score.as_ref()),
            c.offered.to_string(),
            match &c.driver_verdict {
                None => "-".to_owned(),
                Some(Verdict::Score(score)) => format!("score {score}"),
                Some(Verdict::Reject(reason)) => format!("reject: {reason}"),
            },
        ]);
    }
    out.push_str(&format!("{t}\n"));
    // Large pools list the offered candidates; the others are counted by reason.
    if !explanation.unlisted.is_empty() {
        out.push_str(&format!(
            "{} devices considered; not listed:\n",
            explanation.considered
        ));
        for (reason, count) in &explanation.unlisted {
            out.push_str(&format!("  {count}  {reason}\n"));
        }
    }
    Ok(out)
}

/// A record's cells, in the table's order.
fn audit_cells(r: &Record) -> [String; 8] {
    [
        r.seq.to_string(),
        r.at.clone(),
        r.event.driver.clone(),
        r.event.version.clone(),
        r.event.function.clone(),
        r.event.outcome.as_str().to_owned(),
        elide(or_dash(r.event.target.as_ref()), 60),
        elide(or_dash(r.event.detail.as_ref()), 60),
    ]
}

fn audit_line(r: &Record) -> String {
    let [seq, rest @ ..] = audit_cells(r);
    format!("{seq:>6} {}\n", rest.join(" "))
}

fn audit_table(records: &[Record]) -> String {
    let mut t = table(&[
        "seq", "at", "driver", "version", "function", "outcome", "target", "detail",
    ]);
    for r in records {
        t.add_row(audit_cells(r).to_vec());
    }
    format!("{t}\n")
}

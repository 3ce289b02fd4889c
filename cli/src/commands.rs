//! What each command does: the requests it makes and what it prints.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use lbaas_records::audit::Record;
use lbaas_records::views::{
    AuditPage, DeviceAnswer, SecretList, SecretRef, SecretView, UploadAnswer, VerifyAnswer,
};
use serde_json::{Value, json};

use crate::args::{
    AuditCommand, Command, DeviceCommand, DriverCommand, HostCommand, PlacementCommand,
    SecretCommand,
};
use crate::client::{Client, Failure, Result, typed};
use crate::render::{
    audit_line, audit_table, devices_table, driver_table, drivers_table, explain_table,
    hosts_table, secret_table, secrets_table, segment, short,
};

pub(crate) fn run(client: &Client, json_out: bool, command: Command) -> Result<()> {
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
        Command::Secret(command) => secret(client, command, &print),
    }
}

/// A secret's path from its reference (`…/v1/secrets/<id>`) or its id.
fn secret_path(secret: &str) -> String {
    let id = secret
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(secret);
    format!("/v1/secrets/{}", segment(id))
}

pub(crate) fn secret(client: &Client, command: SecretCommand, print: &Print<'_>) -> Result<()> {
    use base64::Engine as _;
    match command {
        SecretCommand::Store {
            file,
            name,
            secret_type,
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| Failure::Local(format!("cannot read {}: {e}", file.display())))?;
            let body = json!({
                "name": name,
                "secret_type": secret_type,
                "payload": base64::engine::general_purpose::STANDARD.encode(bytes),
                "payload_content_type": "application/octet-stream",
                "payload_content_encoding": "base64",
            });
            let stored = client.send("POST", "/v1/secrets", body)?;
            print(&stored, &|v| {
                Ok(format!("{}\n", typed::<SecretRef>(v)?.secret_ref))
            })
        }
        SecretCommand::List => print(&client.get("/v1/secrets?limit=100")?, &|v| {
            Ok(secrets_table(&typed::<SecretList>(v)?))
        }),
        SecretCommand::Show { secret } => print(&client.get(&secret_path(&secret))?, &|v| {
            Ok(secret_table(&typed::<SecretView>(v)?))
        }),
        SecretCommand::Delete { secret } => {
            client.call(
                "DELETE",
                &secret_path(&secret),
                "application/json",
                &[],
                std::io::empty(),
            )?;
            println!("deleted {secret}");
            Ok(())
        }
    }
}

pub(crate) type Print<'a> = dyn Fn(&Value, &dyn Fn(&Value) -> Result<String>) -> Result<()> + 'a;

pub(crate) fn driver(client: &Client, command: DriverCommand, print: &Print<'_>) -> Result<()> {
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
pub(crate) fn upload(
    client: &Client,
    file: &Path,
    signature: Option<&Path>,
    activate: bool,
) -> Result<Value> {
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

pub(crate) fn progress(len: u64) -> ProgressBar {
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
pub(crate) fn spinner<T>(message: &str, work: impl FnOnce() -> T) -> T {
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

pub(crate) fn device(client: &Client, command: DeviceCommand, print: &Print<'_>) -> Result<()> {
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

pub(crate) fn audit(
    client: &Client,
    command: AuditCommand,
    json_out: bool,
    print: &Print<'_>,
) -> Result<()> {
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

pub(crate) fn audit_page(client: &Client, filter: &str, after: Option<u64>) -> Result<Vec<Record>> {
    let mut path = format!("/v2/admin/audit?limit=10000{filter}");
    if let Some(seq) = after {
        path.push_str(&format!("&marker={seq}"));
    }
    typed::<AuditPage>(&client.get(&path)?).map(|page| page.audit)
}

//! `lbaasd`: the LBaaS host. `serve` runs the host with a folder of driver components;
//! `driver inspect` loads one component and prints what it reports.

mod args;
mod audit_log;
mod drivers;
mod serve;

use anyhow::{Context, bail};
use clap::Parser;
use lbaas_host::addresses::sockets_of_url;
use lbaas_host::api::Auth;
use lbaas_host::integrity;

use crate::args::{Cli, Command, DriverCommand, store_choice};
use crate::audit_log::audit_command;
use crate::drivers::{conformance, inspect, keygen};
use crate::serve::{Access, Sources, serve};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let otlp_endpoint = match &cli.command {
        Command::Serve { observe, .. } => observe.otlp_endpoint.as_deref(),
        _ => None,
    };
    // Dropped last: the final traces are flushed once everything else has stopped.
    let _traces = lbaas_host::traces::init(otlp_endpoint)?;
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            driver_dir,
            driver_poll,
            device_networks,
            auth,
            policy,
            device_registration,
            tokens_file,
            public_url,
            workers,
            store,
            lease,
            cache_mib,
            keystone,
            audit_key,
            secrets_key,
            data_plane,
            trust,
            observe,
        } => {
            let auth = match (auth.as_str(), tokens_file) {
                ("tokens", Some(file)) => Auth::tokens_file(&file)?,
                ("tokens", None) => bail!("--auth tokens needs --tokens-file FILE"),
                (_, Some(_)) => bail!("--tokens-file needs --auth tokens"),
                ("keystone", None) => keystone.connect()?,
                _ => Auth::None,
            };
            if matches!(auth, Auth::None) && !listen.ip().is_loopback() {
                bail!(
                    "--auth none lets every caller act as admin: it listens on loopback addresses \
                     only, not {listen} (use --auth keystone or --auth tokens)"
                );
            }
            let barbican = secrets_key.barbican(&auth)?;
            let sources = Sources {
                data_dir: &data_dir,
                driver_dir: &driver_dir,
                driver_poll,
                cache_mib,
                trust: trust.trust()?,
                audit_key: audit_key.path(&data_dir),
                secrets_key: secrets_key.path(&data_dir),
                barbican,
                store: store_choice(&store.store, lease)?,
            };
            let access = Access {
                auth,
                policy,
                members_register_devices: device_registration == "members",
                public_url,
                keystone: keystone
                    .keystone_url
                    .as_deref()
                    .map(|url| sockets_of_url(url, 5000))
                    .unwrap_or_default(),
            };
            serve(
                listen,
                &sources,
                device_networks,
                access,
                workers,
                &data_plane,
                &observe,
            )
        }
        Command::Driver { command } => match command {
            DriverCommand::Inspect { file, trust } => inspect(&file, &trust.trust()?),
            DriverCommand::Check { file, json, trust } => conformance(&file, json, &trust.trust()?),
            DriverCommand::Keygen { file } => keygen(&file),
            DriverCommand::Sign { key, file } => {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let signature = integrity::sign(&key, &bytes).map_err(anyhow::Error::msg)?;
                let path = integrity::signature_path(&file);
                std::fs::write(&path, signature)?;
                println!("{}", path.display());
                Ok(())
            }
        },
        Command::Audit { command } => audit_command(command),
        Command::MigrateStore { data_dir, to } => {
            let moved = lbaas_host::migrate::sled_to_postgres(&data_dir, &to)?;
            println!(
                "copied {} records, {} driver state keys and {} audit records from {} to {}",
                moved.records,
                moved.state_keys,
                moved.audit_records,
                data_dir.display(),
                lbaas_postgres::redact(&to)
            );
            Ok(())
        }
    }
}

//! `acme-appliance`: a simulated Acme ADC appliance on loopback, for the `acme-adc` driver
//! when no real appliance is reachable. See `lbaas_tests::acme_sim` for its API and limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use lbaas_tests::acme_sim::{Appliance, Limits, router};

/// Serves the Acme ADC management API and enforces the appliance's limits.
#[derive(Debug, Parser)]
#[command(name = "acme-appliance", version)]
struct Args {
    /// Address of the management API (loopback).
    #[arg(long, default_value = "127.0.0.1:9444")]
    listen: SocketAddr,
    /// Network interfaces (1.1 to 1.N).
    #[arg(long, default_value_t = 2)]
    interfaces: u32,
    /// VLANs each interface can carry.
    #[arg(long, default_value_t = 4)]
    max_vlans_per_interface: usize,
    /// Virtual services the appliance holds.
    #[arg(long, default_value_t = 64)]
    max_virtual_services: usize,
    /// File holding the bearer token callers must present.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Keeps the configuration here, across restarts.
    #[arg(long)]
    state_file: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        anyhow::bail!("the simulator listens on loopback addresses only");
    }
    let token = match &args.token_file {
        Some(path) => Some(std::fs::read_to_string(path)?.trim().to_owned()),
        None => None,
    };
    let limits = Limits {
        interfaces: args.interfaces,
        max_vlans_per_interface: args.max_vlans_per_interface,
        max_virtual_services: args.max_virtual_services,
    };
    let appliance = Arc::new(Appliance::new(limits, token, args.state_file));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // Metrics endpoints of the services it kept across a restart.
        lbaas_tests::acme_sim::sync_telemetry(&appliance);
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        eprintln!("acme-appliance listening on {}", listener.local_addr()?);
        axum::serve(listener, router(appliance)).await?;
        anyhow::Ok(())
    })
}

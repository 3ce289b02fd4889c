//! `lbaas-agent`: the management agent of one HAProxy device. See the `lbaas_agent` library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use ipnet::IpNet;
use lbaas_agent::{self as agent, Agent, ConfigPolicy};

/// Runs beside one HAProxy and lets the LBaaS host configure it.
#[derive(Debug, Parser)]
#[command(name = "lbaas-agent", version)]
struct Args {
    /// Address of the management API.
    #[arg(long, default_value = "127.0.0.1:9443")]
    listen: SocketAddr,
    /// Folder for HAProxy's configuration, sockets, pid file and log. An HAProxy already
    /// running from this folder is adopted.
    #[arg(long)]
    state_dir: PathBuf,
    /// Folder for HAProxy's two Unix sockets instead of the state folder: a socket's path
    /// holds at most 107 bytes, so a deep state folder needs a short one here.
    #[arg(long)]
    socket_dir: Option<PathBuf>,
    /// File holding the bearer token the host must present. Without it, anyone who reaches
    /// the agent may configure it: only for a management address nobody else can reach.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The HAProxy executable.
    #[arg(long, default_value = "haproxy")]
    haproxy: PathBuf,
    /// Networks the configuration's `server` lines may point into (repeatable; default: any
    /// IP address). Host names, Unix sockets and the agent's own address are always refused.
    #[arg(long = "allow-server", value_name = "CIDR")]
    allow_servers: Vec<IpNet>,
    /// Networks the configuration's `bind` lines may listen on (repeatable; default: any).
    #[arg(long = "allow-bind", value_name = "CIDR")]
    allow_binds: Vec<IpNet>,
    /// Stop HAProxy when the agent is asked to stop (SIGTERM/SIGINT); by default it keeps
    /// serving and the next agent adopts it.
    #[arg(long)]
    stop_haproxy_on_exit: bool,
    /// Make every change by a reload, none through HAProxy's runtime API (by default, member
    /// weights, addresses, maintenance states, additions and removals are made without one).
    #[arg(long)]
    reload_only: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let token = match &args.token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?;
            let token = token.trim().to_owned();
            if token.is_empty() {
                bail!("the token file {} is empty", path.display());
            }
            Some(token)
        }
        None => {
            tracing::warn!("no --token-file: the management API accepts every caller");
            None
        }
    };
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let state_dir = args.state_dir.canonicalize()?;
    std::fs::write(state_dir.join("agent.pid"), std::process::id().to_string())?;
    let policy = ConfigPolicy {
        servers: args.allow_servers.clone(),
        binds: args.allow_binds.clone(),
        reserved: vec![args.listen],
        // Set by the agent: its own certificate folder.
        certificates: None,
    };
    let agent = Agent::start(
        args.haproxy.clone(),
        &state_dir,
        args.socket_dir.as_deref(),
        token.as_deref(),
        policy,
    )
    .map_err(anyhow::Error::msg)?;
    let agent = Arc::new(match args.reload_only {
        true => agent.reload_only(),
        false => agent,
    });

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        // The metrics of PROMETHEUS listeners, asked by HAProxy (lbaas_agent::metrics).
        let metrics_name = agent.haproxy().metrics_socket_name();
        let metrics = agent::metrics::OwnUser::bind(&metrics_name)
            .with_context(|| format!("binding the abstract metrics socket {metrics_name}"))?;
        tokio::spawn(axum::serve(metrics, agent::metrics::router(agent.clone())).into_future());
        tracing::info!(listen = %args.listen, state_dir = %state_dir.display(), "agent ready");
        axum::serve(listener, agent::router(agent.clone()))
            .with_graceful_shutdown(stop_signal())
            .await?;
        anyhow::Ok(())
    })?;
    if args.stop_haproxy_on_exit {
        agent.haproxy().stop();
    }
    let _ = std::fs::remove_file(state_dir.join("agent.pid"));
    Ok(())
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

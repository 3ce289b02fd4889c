//! `lbaasd serve`: the host built from its options, served until a signal, stopped in order.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use lbaas_host::addresses::sockets_of_url;
use lbaas_host::api::{Auth, Policy};
use lbaas_host::builder::{DriverSource, HostBuilder, StoreChoice};
use lbaas_host::integrity::Trust;
use lbaas_host::net::IpNet;
use lbaas_host::runtime::RuntimeConfig;

use crate::args::{DataPlane, Observe};

/// Where the host's state and drivers come from, and which drivers it accepts.
pub(crate) struct Sources<'a> {
    pub(crate) data_dir: &'a Path,
    pub(crate) driver_dir: &'a Path,
    pub(crate) driver_poll: std::time::Duration,
    /// MiB of database pages kept cached.
    pub(crate) cache_mib: u64,
    pub(crate) trust: Trust,
    /// The secret key that signs audit checkpoints.
    pub(crate) audit_key: PathBuf,
    /// The key the local key manager seals secrets under.
    pub(crate) secrets_key: PathBuf,
    /// Barbican's endpoint, when secrets are kept there.
    pub(crate) barbican: Option<String>,
    pub(crate) store: StoreChoice,
}

/// Who may call the API, and what members may do beyond their own load balancers.
pub(crate) struct Access {
    pub(crate) auth: Auth,
    /// Which roles count.
    pub(crate) policy: Policy,
    pub(crate) members_register_devices: bool,
    pub(crate) public_url: Option<String>,
    /// Where Keystone listens (kept from tenants' addresses and devices, like every socket of
    /// the host).
    pub(crate) keystone: Vec<SocketAddr>,
}

pub(crate) fn serve(
    listen: SocketAddr,
    sources: &Sources<'_>,
    device_networks: Vec<IpNet>,
    Access {
        auth,
        policy,
        members_register_devices,
        public_url,
        keystone,
    }: Access,
    workers: usize,
    data_plane: &DataPlane,
    observe: &Observe,
) -> anyhow::Result<()> {
    let Sources {
        data_dir,
        driver_dir,
        driver_poll,
        cache_mib,
        trust,
        audit_key,
        secrets_key,
        barbican,
        store,
    } = sources;
    let mut config = RuntimeConfig::default();
    if !device_networks.is_empty() {
        config.device_policy.allowed_networks = device_networks;
    }
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let mut builder = HostBuilder::new(data_dir)
        .store(store.clone())
        .cache_bytes(*cache_mib << 20)
        .runtime(config)
        .trust(trust.clone())
        .auth(auth)
        .policy(policy)
        .audit_key(audit_key.clone())
        .secrets_key(secrets_key.clone())
        .drivers(DriverSource::Folder {
            dir: driver_dir.to_path_buf(),
            poll: *driver_poll,
        })
        .status_interval(data_plane.status_interval)
        .workers(workers)
        .members_register_devices(members_register_devices)
        .public_url(public_url);
    if let Some(url) = barbican {
        builder = builder.barbican(url);
    }
    // What tenants' addresses and devices must never reach besides the API (and the database
    // and the spawn range, which the builder adds): the metrics listener, the trace collector
    // and Keystone.
    let mut sockets = keystone;
    sockets.extend(observe.metrics_listen);
    if let Some(url) = &observe.otlp_endpoint {
        sockets.extend(sockets_of_url(url, 4318));
    }
    builder = builder.reserve(sockets, Vec::new());
    let (provisioner, devices) = data_plane.provisioner(data_dir)?;
    if let Some(provisioner) = &provisioner {
        builder = builder.provisioner(provisioner.clone());
    }
    let metrics_listener = match observe.metrics_listen {
        Some(address) => Some(
            std::net::TcpListener::bind(address)
                .with_context(|| format!("cannot listen on {address} for metrics"))?,
        ),
        None => None,
    };
    let host = builder.build(listener)?;
    let address = host.address();
    let plane = host.plane().clone();
    let api = host.api().clone();
    let tokio = tokio::runtime::Runtime::new()?;
    tokio.block_on(async {
        let serving = host.start().await?;
        let metrics = match metrics_listener {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                let at = listener.local_addr()?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let edge = lbaas_host::api::edge::Edge::new(at);
                tokio::spawn(async move {
                    let app = lbaas_host::api::metrics::router(api, edge);
                    if let Err(error) = axum::serve(listener, app).await {
                        tracing::error!(%error, "the metrics listener stopped");
                    }
                });
                format!("http://{at}/metrics (no authentication)")
            }
            None => format!("http://{address}/metrics (admins)"),
        };
        let drivers = plane.drivers.all().len();
        let secrets = match barbican {
            Some(url) => format!("in Barbican at {url} (read with the callers' grants)"),
            None => format!(
                "http://{address}/v1/secrets, sealed under {}",
                secrets_key.display()
            ),
        };
        eprintln!(
            "lbaasd is serving\n  API:       http://{address}/v2 (Octavia v2; admin API under /v2/admin)\n  \
             dashboard: http://{address}/dashboard (admins)\n  \
             metrics:   {metrics}\n  \
             traces:    {}\n  \
             data:      {} ({})\n  \
             secrets:   {secrets}\n  \
             drivers:   {} active, from {}\n  \
             devices:   {devices}",
            observe
                .otlp_endpoint
                .as_deref()
                .map_or("not exported (--otlp-endpoint URL)".to_owned(), |url| format!("OTLP to {url}")),
            data_dir.display(),
            match store {
                StoreChoice::Sled => "sled".to_owned(),
                StoreChoice::Postgres { url, .. } => lbaas_postgres::redact(url),
            },
            drivers,
            driver_dir.display()
        );
        // Last, so whoever waits for this line (the tests) has the lines above already.
        tracing::info!(%address, drivers, dir = %driver_dir.display(), "lbaasd serving");
        serving.run(shutdown_signal()).await
    })?;
    if let Some(provisioner) = provisioner {
        provisioner.close();
    }
    tracing::info!("lbaasd stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

//! A load balancer's metrics for its `PROMETHEUS` listeners, as Octavia's amphora serves them.
//!
//! HAProxy's own Prometheus exporter shows every proxy of the process, and one device serves
//! many load balancers, of many tenants: its answer never reaches a client as it is. The
//! agent's base configuration (never a driver's) holds two internal proxies:
//!
//! - `lbaas-exporter`, HAProxy's exporter on a Unix socket in the agent's socket folder, which
//!   only the agent reads;
//! - `lbaas-metrics`, the backend a load balancer's metrics listener sends its requests to
//!   (`default_backend lbaas-metrics`). It names the frontend the request came in through
//!   (header `lbaas-listener`, set by HAProxy over whatever the client sent) and passes it to
//!   the agent on an abstract Unix socket, where only processes of the agent's own user are
//!   answered.
//!
//! The agent finds the load balancer whose installed configuration defines that frontend, and
//! answers with the exporter's lines about that load balancer's own proxies only, named as
//! Octavia's amphora names them (its `prometheus-proxy`): `octavia_listener_*{listener=…}`,
//! `octavia_pool_*{pool=…}`, `octavia_member_*{pool=…,member=…}`, and
//! `octavia_loadbalancer_*` summed over the load balancer's listeners. The process-wide
//! figures the amphora also reports (CPU, memory, the process's connection counts) describe
//! every tenant of a shared device and are left out. Who may reach the listener at all is the
//! listener's `allowed_cidrs`, which its frontend enforces like any other's.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;

use crate::Agent;

/// Name of the backend a metrics listener uses; defined in the agent's base configuration.
pub const BACKEND: &str = "lbaas-metrics";
/// Name of the frontend of HAProxy's own exporter, in the agent's base configuration.
pub const EXPORTER: &str = "lbaas-exporter";
/// Section names a load balancer's configuration may not take: the agent's own.
pub const RESERVED_PREFIX: &str = "lbaas-";
/// Header in which HAProxy names the frontend a metrics request came in through.
pub const LISTENER_HEADER: &str = "lbaas-listener";
/// Largest exporter answer read (a device with thousands of proxies is a few MiB).
const MAX_EXPORTER_BYTES: usize = 64 << 20;
/// How long HAProxy's exporter may take to answer.
const EXPORTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an abstract socket's name as HAProxy's `abns@` gives it: the whole of a Unix
/// socket address (108 bytes) after its leading zero.
const ABSTRACT_NAME: usize = 107;

/// The internal proxies of the agent's base configuration: HAProxy's exporter on `exporter`
/// (a Unix socket path) and the backend that hands metrics requests to the agent on the
/// abstract socket `metrics` (see [`crate::Haproxy::metrics_socket_name`]).
pub fn base_proxies(exporter: &Path, metrics: &str) -> String {
    format!(
        "\n# The agent's own proxies (lbaas_agent::metrics): HAProxy's exporter, read by the\n\
         # agent alone, and the backend of every PROMETHEUS listener.\n\
         defaults {RESERVED_PREFIX}internal\n    mode http\n    timeout connect 5s\n    \
         timeout client 30s\n    timeout server 30s\n\n\
         frontend {EXPORTER} from {RESERVED_PREFIX}internal\n    \
         bind unix@{} mode 600\n    http-request use-service prometheus-exporter\n\n\
         backend {BACKEND} from {RESERVED_PREFIX}internal\n    \
         http-request set-header {LISTENER_HEADER} %[fe_name]\n    \
         server agent abns@{metrics}\n",
        exporter.display()
    )
}

/// Which family a metric of HAProxy's exporter belongs to, and how Octavia names it.
#[derive(Clone, Copy)]
enum Family {
    Frontend,
    Backend,
    Server,
}

impl Family {
    fn of(name: &str) -> Option<(Self, &str)> {
        [
            ("haproxy_frontend_", Self::Frontend),
            ("haproxy_backend_", Self::Backend),
            ("haproxy_server_", Self::Server),
        ]
        .into_iter()
        .find_map(|(prefix, family)| name.strip_prefix(prefix).map(|rest| (family, rest)))
    }

    /// Octavia's name of the metric whose HAProxy name ends in `rest`.
    fn renamed(self, rest: &str) -> String {
        match self {
            Self::Frontend => format!("octavia_listener_{rest}"),
            // A pool's figures about its servers are about its members.
            Self::Backend => format!("octavia_pool_{}", rest.replace("server", "member")),
            Self::Server => format!("octavia_member_{rest}"),
        }
    }

    /// Octavia's name of a label.
    fn label(self, label: &str) -> &str {
        match (self, label) {
            (Self::Frontend, "proxy") => "listener",
            (Self::Backend | Self::Server, "proxy") => "pool",
            (Self::Server, "server") => "member",
            (_, other) => other,
        }
    }
}

/// One sample line of the exposition format.
struct Sample<'a> {
    name: &'a str,
    /// Each label's name and raw (quoted) value.
    labels: Vec<(&'a str, &'a str)>,
    value: &'a str,
}

fn sample(line: &str) -> Option<Sample<'_>> {
    let (head, value) = line.rsplit_once(' ')?;
    let Some((name, labels)) = head.split_once('{') else {
        return Some(Sample {
            name: head,
            labels: Vec::new(),
            value,
        });
    };
    let labels = labels.strip_suffix('}')?;
    let mut parsed = Vec::new();
    // HAProxy's label values are proxy and server names (plain tokens) and states: no commas
    // or quotes inside them.
    for pair in labels.split(',').filter(|p| !p.is_empty()) {
        let (label, quoted) = pair.split_once('=')?;
        parsed.push((label, quoted));
    }
    Some(Sample {
        name,
        labels: parsed,
        value,
    })
}

fn unquoted(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The lines of HAProxy's exporter `text` about the proxies `sections` (one load balancer's
/// frontends and backends), in Octavia's names, with its load-balancer totals.
pub fn for_load_balancer(text: &str, sections: &[String]) -> String {
    let ours: BTreeSet<&str> = sections.iter().map(String::as_str).collect();
    let mut out = String::with_capacity(text.len() / 4);
    // HELP and TYPE lines wait for the family's first sample of ours.
    let mut pending: Vec<String> = Vec::new();
    let mut pending_for = String::new();
    let mut written_for = String::new();
    let mut listeners = BTreeSet::new();
    let (mut current, mut total) = (0.0_f64, 0.0_f64);
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (Some(kind @ ("HELP" | "TYPE")), Some(name), rest) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let Some((family, suffix)) = Family::of(name) else {
                continue;
            };
            let renamed = family.renamed(suffix);
            if pending_for != renamed {
                pending.clear();
                pending_for = renamed.clone();
            }
            pending.push(format!("# {kind} {renamed} {}", rest.unwrap_or_default()));
            continue;
        }
        let Some(Sample {
            name,
            labels,
            value,
        }) = sample(line)
        else {
            continue;
        };
        let Some((family, suffix)) = Family::of(name) else {
            continue;
        };
        let Some(proxy) = labels
            .iter()
            .find(|(label, _)| *label == "proxy")
            .map(|(_, v)| unquoted(v))
        else {
            continue;
        };
        if !ours.contains(proxy) {
            continue;
        }
        let renamed = family.renamed(suffix);
        if written_for != renamed {
            if pending_for == renamed {
                for help in pending.drain(..) {
                    let _ = writeln!(out, "{}", help.trim_end());
                }
            }
            written_for = renamed.clone();
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(label, v)| format!("{}={v}", family.label(label)))
            .collect();
        let _ = writeln!(out, "{renamed}{{{}}} {value}", labels.join(","));
        if let Family::Frontend = family {
            listeners.insert(proxy.to_owned());
            let number = value.parse::<f64>().unwrap_or(0.0);
            match suffix {
                "current_sessions" => current += number,
                "connections_total" => total += number,
                _ => {}
            }
        }
    }
    let _ = write!(
        out,
        "# HELP octavia_loadbalancer_listeners Number of listeners of the load balancer.\n\
         # TYPE octavia_loadbalancer_listeners gauge\n\
         octavia_loadbalancer_listeners {}\n\
         # HELP octavia_loadbalancer_current_connections Number of active connections, over \
         the load balancer's listeners.\n\
         # TYPE octavia_loadbalancer_current_connections gauge\n\
         octavia_loadbalancer_current_connections {current}\n\
         # HELP octavia_loadbalancer_connections_total Total number of connections accepted, \
         over the load balancer's listeners.\n\
         # TYPE octavia_loadbalancer_connections_total counter\n\
         octavia_loadbalancer_connections_total {total}\n",
        listeners.len()
    );
    out
}

/// HAProxy's exporter answer, read from its Unix socket.
pub async fn exporter_text(socket: &Path) -> Result<String, String> {
    let read = async {
        let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
            format!(
                "cannot reach HAProxy's exporter at {}: {e}",
                socket.display()
            )
        })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("HAProxy's exporter: {e}"))?;
        tokio::spawn(connection);
        let request = hyper::Request::get("/metrics")
            .header(header::HOST, "lbaas-agent")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HAProxy's exporter: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("HAProxy's exporter answered {}", response.status()));
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_EXPORTER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("HAProxy's exporter: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "HAProxy's exporter sent no text".into())
    };
    tokio::time::timeout(EXPORTER_TIMEOUT, read)
        .await
        .map_err(|_| "HAProxy's exporter did not answer in time".to_owned())?
}

/// The router of the metrics socket: every request is a metrics scrape.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new().fallback(scrape).with_state(agent)
}

async fn scrape(State(agent): State<Arc<Agent>>, request: Request) -> Response {
    let Some(listener) = request
        .headers()
        .get(LISTENER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return (StatusCode::BAD_REQUEST, "no listener named\n").into_response();
    };
    let owner = {
        let agent = agent.clone();
        tokio::task::spawn_blocking(move || agent.sections_with_frontend(&listener)).await
    };
    let Ok(Some(sections)) = owner else {
        return (StatusCode::NOT_FOUND, "no such listener here\n").into_response();
    };
    match exporter_text(&agent.haproxy().exporter_socket()).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            for_load_balancer(&text, &sections),
        )
            .into_response(),
        Err(message) => {
            tracing::warn!(%message, "metrics scrape failed");
            (StatusCode::BAD_GATEWAY, "metrics are unavailable\n").into_response()
        }
    }
}

/// The agent's end of the abstract metrics socket: it answers processes of its own user only
/// (HAProxy's workers), whatever else shares the network namespace.
pub struct OwnUser {
    listener: tokio::net::UnixListener,
    uid: u32,
}

impl OwnUser {
    /// Binds the abstract socket `name` as HAProxy names it (`abns@`: the name padded with
    /// zero bytes to the whole address).
    pub fn bind(name: &str) -> std::io::Result<Self> {
        use std::os::linux::net::SocketAddrExt as _;
        let mut padded = name.as_bytes().to_vec();
        padded.resize(ABSTRACT_NAME, 0);
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&padded)?;
        let listener = std::os::unix::net::UnixListener::bind_addr(&address)?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener: tokio::net::UnixListener::from_std(listener)?,
            uid: nix::unistd::getuid().as_raw(),
        })
    }
}

impl axum::serve::Listener for OwnUser {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, address)) => match stream.peer_cred() {
                    Ok(peer) if peer.uid() == self.uid => return (stream, address),
                    Ok(peer) => {
                        tracing::warn!(uid = peer.uid(), "refused a metrics connection");
                    }
                    Err(error) => tracing::warn!(%error, "metrics connection without credentials"),
                },
                Err(error) => {
                    tracing::warn!(%error, "accepting a metrics connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORTED: &str = "\
# HELP haproxy_process_nbthread Number of started threads (global.nbthread)
# TYPE haproxy_process_nbthread gauge
haproxy_process_nbthread 2
# HELP haproxy_frontend_current_sessions Number of current sessions on the frontend
# TYPE haproxy_frontend_current_sessions gauge
haproxy_frontend_current_sessions{proxy=\"mine\"} 3
haproxy_frontend_current_sessions{proxy=\"theirs\"} 7
haproxy_frontend_current_sessions{proxy=\"lbaas-exporter\"} 1
# HELP haproxy_frontend_connections_total Total number of new connections
# TYPE haproxy_frontend_connections_total counter
haproxy_frontend_connections_total{proxy=\"mine\"} 10
haproxy_frontend_connections_total{proxy=\"theirs\"} 99
# HELP haproxy_backend_active_servers Current number of active servers
# TYPE haproxy_backend_active_servers gauge
haproxy_backend_active_servers{proxy=\"pool-a\"} 2
haproxy_backend_active_servers{proxy=\"pool-b\"} 5
# HELP haproxy_server_status Current status of the server
# TYPE haproxy_server_status gauge
haproxy_server_status{proxy=\"pool-a\",server=\"m1\",state=\"UP\"} 1
haproxy_server_status{proxy=\"pool-b\",server=\"m9\",state=\"UP\"} 1
";

    #[test]
    fn keeps_only_the_load_balancers_proxies_in_octavias_names() {
        let out = for_load_balancer(EXPORTED, &["mine".into(), "pool-a".into()]);
        assert!(out.contains("octavia_listener_current_sessions{listener=\"mine\"} 3"));
        assert!(out.contains("octavia_pool_active_members{pool=\"pool-a\"} 2"));
        assert!(
            out.contains("octavia_member_status{pool=\"pool-a\",member=\"m1\",state=\"UP\"} 1")
        );
        assert!(out.contains(
            "# TYPE octavia_listener_connections_total counter\n\
             octavia_listener_connections_total{listener=\"mine\"} 10"
        ));
        assert!(out.contains("octavia_loadbalancer_listeners 1\n"));
        assert!(out.contains("octavia_loadbalancer_current_connections 3\n"));
        assert!(out.contains("octavia_loadbalancer_connections_total 10\n"));
        for foreign in [
            "theirs",
            "pool-b",
            "m9",
            "lbaas-exporter",
            "haproxy_",
            "nbthread",
        ] {
            assert!(!out.contains(foreign), "{foreign} leaked:\n{out}");
        }
    }

    #[test]
    fn a_load_balancer_without_proxies_gets_its_totals_only() {
        let out = for_load_balancer(EXPORTED, &[]);
        assert!(!out.contains("listener="), "{out}");
        assert!(out.contains("octavia_loadbalancer_listeners 0\n"));
    }
}

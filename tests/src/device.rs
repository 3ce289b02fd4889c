//! A device agent with its own HAProxy, run in this process on loopback addresses: for the
//! agent's tests and the data plane benchmark, which drive the agent as the host does (a
//! configuration with the load balancer's scope) without a host in between.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use lbaas_agent::{Agent, Applied, Config, ConfigPolicy, Scope};

/// An agent and the HAProxy it started in a temporary folder; HAProxy stops when this drops.
pub struct Device {
    pub agent: Arc<Agent>,
    _folder: tempfile::TempDir,
}

impl Device {
    /// Changes HAProxy's runtime API can make are made through it (the agent's default).
    pub fn start() -> Self {
        Self::started(|agent| agent)
    }

    /// Every change by a reload (`lbaas-agent --reload-only`).
    pub fn reload_only() -> Self {
        Self::started(Agent::reload_only)
    }

    fn started(configure: impl FnOnce(Agent) -> Agent) -> Self {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let agent = Agent::start(
            "haproxy".into(),
            folder.path(),
            None,
            None,
            ConfigPolicy::default(),
        )
        .expect("the agent starts HAProxy");
        Self {
            agent: Arc::new(configure(agent)),
            _folder: folder,
        }
    }

    /// Reloads HAProxy's master has done.
    pub fn reloads(&self) -> u64 {
        self.agent.haproxy().processes().expect("show proc").reloads
    }

    /// Installs `lb` with `members`, as the host would; the refusal's message on failure.
    pub fn put(&self, lb: &Lb, members: &[Member<'_>]) -> Result<Applied, String> {
        self.put_text(lb, &lb.config(members), members)
    }

    /// Installs `text` as `lb`'s configuration, with the scope of `lb` and `members`.
    pub fn put_text(&self, lb: &Lb, text: &str, members: &[Member<'_>]) -> Result<Applied, String> {
        self.agent
            .put(&lb.id, &Config::new(text), Some(&lb.scope(members)))
            .map_err(|refusal| refusal.message().to_owned())
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.agent.haproxy().stop();
    }
}

/// A server line: its name, where it points, its weight.
pub type Member<'a> = (&'a str, SocketAddr, u32);

/// One load balancer: an HTTP frontend per VIP, all sending to one round-robin backend.
pub struct Lb {
    pub id: String,
    pub vips: Vec<SocketAddr>,
    /// Extra words on every server line.
    pub server_words: String,
}

impl Lb {
    /// One listener, on a free port of 127.0.0.1.
    pub fn new(id: &str) -> Self {
        let vip = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        Self::listening(id, vec![vip])
    }

    /// One listener on each of `vips`.
    pub fn listening(id: &str, vips: Vec<SocketAddr>) -> Self {
        Self {
            id: id.into(),
            vips,
            server_words: String::new(),
        }
    }

    /// The first listener's address.
    pub fn vip(&self) -> SocketAddr {
        self.vips[0]
    }

    /// Its `haproxy.cfg`, shaped as the HAProxy driver renders one.
    pub fn config(&self, members: &[Member<'_>]) -> String {
        let id = &self.id;
        let mut text = String::new();
        for (n, vip) in self.vips.iter().enumerate() {
            text.push_str(&format!(
                "frontend f-{id}-{n}\n    mode http\n    bind {vip}\n    timeout client 5s\n    \
                 default_backend b-{id}\n\n"
            ));
        }
        text.push_str(&format!(
            "backend b-{id}\n    mode http\n    balance roundrobin\n    timeout connect 5s\n    \
             timeout server 5s\n"
        ));
        for (name, address, weight) in members {
            text.push_str(&format!(
                "    server {name} {address} weight {weight}{}\n",
                self.server_words
            ));
        }
        text
    }

    /// What the host would allow it: its VIPs and its members.
    pub fn scope(&self, members: &[Member<'_>]) -> Scope {
        Scope {
            loadbalancer: self.id.clone(),
            binds: self.vips.clone(),
            servers: members.iter().map(|(_, address, _)| *address).collect(),
            ..Scope::default()
        }
    }
}

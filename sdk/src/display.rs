//! The names Octavia's API uses for the contract's enums.

use std::fmt;

use crate::{Algorithm, Protocol};

impl Protocol {
    /// The name Octavia's API uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::TerminatedHttps => "TERMINATED_HTTPS",
            Protocol::Proxy => "PROXY",
            Protocol::ProxyV2 => "PROXYV2",
            Protocol::Prometheus => "PROMETHEUS",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Algorithm {
    /// The name Octavia's API uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "ROUND_ROBIN",
            Algorithm::LeastConnections => "LEAST_CONNECTIONS",
            Algorithm::SourceIp => "SOURCE_IP",
            Algorithm::SourceIpPort => "SOURCE_IP_PORT",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

//! IP networks in CIDR form, shared by the device allow-list and the network model, and the
//! management URLs of devices.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// An IP network, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn bits(&self) -> u32 {
        if self.address.is_ipv4() { 32 } else { 128 }
    }

    fn as_u128(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        }
    }

    fn mask(&self) -> u128 {
        let host_bits = self.bits() - u32::from(self.prefix);
        let all = if self.bits() == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        all.checked_shl(host_bits).unwrap_or(0) & all
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.address.is_ipv4()
            && Self::as_u128(ip) & self.mask() == Self::as_u128(self.address) & self.mask()
    }

    /// Usable host addresses, lowest first (network and broadcast excluded for IPv4).
    pub fn hosts(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let base = Self::as_u128(self.address) & self.mask();
        let size = 1u128
            .checked_shl(self.bits() - u32::from(self.prefix))
            .unwrap_or(u128::MAX);
        let (first, last) = if self.address.is_ipv4() && size > 2 {
            (1, size - 2)
        } else {
            (1, size.saturating_sub(1))
        };
        let v4 = self.address.is_ipv4();
        (first..=last).take(1 << 16).map(move |offset| {
            let n = base + offset;
            if v4 {
                IpAddr::V4(std::net::Ipv4Addr::from(n as u32))
            } else {
                IpAddr::V6(std::net::Ipv6Addr::from(n))
            }
        })
    }
}

/// The socket of an `http(s)://ip[:port][/path]` URL (port 80 or 443 when absent). Host
/// names and user information are refused: allow-lists are checked on addresses, and resolving
/// names would let DNS move a device.
pub fn url_socket(url: &str) -> Option<SocketAddr> {
    let (rest, default_port) = match url.strip_prefix("http://") {
        Some(rest) => (rest, 80),
        None => (url.strip_prefix("https://")?, 443),
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let ip: IpAddr = host.parse().ok()?;
    let port = match port {
        Some(port) => port.parse().ok().filter(|&p| p > 0)?,
        None => default_port,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether `socket` is one of the host's own listening sockets (`reserved`): the same port on
/// the same address, on an address the host listens on all of, or on any loopback address when
/// the host listens on loopback (127.0.0.2 reaches a server bound to 127.0.0.1 only if it is
/// bound to it, but a wildcard bind answers every loopback address).
pub fn is_reserved(socket: SocketAddr, reserved: &[SocketAddr]) -> bool {
    reserved.iter().any(|own| {
        own.port() == socket.port()
            && (own.ip() == socket.ip()
                || own.ip().is_unspecified()
                || (own.ip().is_loopback() && socket.ip().is_loopback())
                || socket.ip().is_unspecified())
    })
}

/// Whether `address` lies inside `cidr`; false when either does not parse.
pub fn contains(cidr: &str, address: &str) -> bool {
    match (cidr.parse::<Cidr>(), address.parse::<IpAddr>()) {
        (Ok(cidr), Ok(address)) => cidr.contains(address),
        _ => false,
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{text}` is not a CIDR such as 10.0.0.0/24");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(bad());
        }
        Ok(Self { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn parsing_and_matching() {
        let net: Cidr = "10.0.0.0/8".parse().expect("cidr");
        assert!(net.contains(ip("10.200.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(ip("8.8.8.8")));
        let v6: Cidr = "fd00::/64".parse().expect("cidr");
        assert!(v6.contains(ip("fd00::5")));
        for bad in ["10.0.0.0/33", "10.0.0/8", "10.0.0.0", "x/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(net.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn hosts_skip_network_and_broadcast() {
        let net: Cidr = "192.0.2.0/30".parse().expect("cidr");
        let hosts: Vec<IpAddr> = net.hosts().collect();
        assert_eq!(hosts, [ip("192.0.2.1"), ip("192.0.2.2")]);
    }

    #[test]
    fn management_urls_and_the_hosts_own_sockets() {
        let socket = |text: &str| text.parse::<SocketAddr>().expect("socket");
        assert_eq!(
            url_socket("http://127.0.0.1:9443/x"),
            Some(socket("127.0.0.1:9443"))
        );
        assert_eq!(url_socket("https://10.0.0.1"), Some(socket("10.0.0.1:443")));
        assert_eq!(url_socket("http://[::1]:80"), Some(socket("[::1]:80")));
        for bad in [
            "http://device.example",
            "http://u:p@127.0.0.1",
            "ftp://1.2.3.4",
            "http://1.2.3.4:0",
        ] {
            assert_eq!(url_socket(bad), None, "{bad}");
        }
        let host = [socket("127.0.0.1:9876")];
        assert!(is_reserved(socket("127.0.0.1:9876"), &host));
        assert!(
            is_reserved(socket("127.0.0.2:9876"), &host),
            "another loopback address"
        );
        assert!(!is_reserved(socket("127.0.0.1:9877"), &host));
        assert!(is_reserved(
            socket("10.1.1.1:9876"),
            &[socket("0.0.0.0:9876")]
        ));
        assert!(!is_reserved(socket("10.1.1.1:9876"), &host));
    }
}

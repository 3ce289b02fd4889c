//! IP networks (`ipnet`'s `IpNet`), shared by the device allow-list and the network model, and
//! the management URLs of devices.

use std::net::{IpAddr, SocketAddr};

pub use ipnet::IpNet;

/// Usable host addresses of `net`, lowest first: without the network address (and for IPv4
/// the broadcast address), at most 65,536 of them.
pub fn hosts(net: &IpNet) -> impl Iterator<Item = IpAddr> + '_ {
    let network = net.network();
    net.hosts().filter(move |ip| *ip != network).take(1 << 16)
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

/// An address as the kernel uses it: an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible
/// (`::a.b.c.d`) IPv6 address is its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip.to_canonical() else {
        return ip.to_canonical();
    };
    let octets = v6.octets();
    let compatible =
        octets[..12].iter().all(|&b| b == 0) && !v6.is_loopback() && !v6.is_unspecified();
    if compatible {
        IpAddr::from([octets[12], octets[13], octets[14], octets[15]])
    } else {
        IpAddr::V6(v6)
    }
}

/// Whether `socket` is one of the host's own listening sockets (`reserved`): the same port on
/// the same address, on an address the host listens on all of, or on any loopback address when
/// the host listens on loopback (127.0.0.2 reaches a server bound to 127.0.0.1 only if it is
/// bound to it, but a wildcard bind answers every loopback address). Addresses are compared
/// [`canonical`]: `::ffff:127.0.0.1` is 127.0.0.1.
pub fn is_reserved(socket: SocketAddr, reserved: &[SocketAddr]) -> bool {
    let ip = canonical(socket.ip());
    reserved.iter().any(|own| {
        let own_ip = canonical(own.ip());
        own.port() == socket.port()
            && (own_ip == ip
                || own_ip.is_unspecified()
                || (own_ip.is_loopback() && ip.is_loopback())
                || ip.is_unspecified())
    })
}

/// Whether `address` lies inside `cidr`; false when either does not parse.
pub fn contains(cidr: &str, address: &str) -> bool {
    match (cidr.parse::<IpNet>(), address.parse::<IpAddr>()) {
        (Ok(cidr), Ok(address)) => cidr.contains(&address),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn containment() {
        assert!(contains("10.0.0.0/8", "10.200.0.1"));
        assert!(!contains("10.0.0.0/8", "11.0.0.1"));
        assert!(!contains("10.0.0.0/8", "::1"));
        assert!(contains("fd00::/64", "fd00::5"));
        for bad in ["10.0.0.0/33", "10.0.0/8", "10.0.0.0", "x/8"] {
            assert!(!contains(bad, "10.0.0.1"), "{bad}");
        }
    }

    #[test]
    fn hosts_skip_network_and_broadcast() {
        let net: IpNet = "192.0.2.0/30".parse().expect("cidr");
        let hosts: Vec<IpAddr> = super::hosts(&net).collect();
        assert_eq!(hosts, [ip("192.0.2.1"), ip("192.0.2.2")]);
        let v6: IpNet = "fd00::/126".parse().expect("cidr");
        assert_eq!(super::hosts(&v6).next(), Some(ip("fd00::1")));
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
        assert!(is_reserved(socket("[::ffff:127.0.0.1]:9876"), &host));
    }

    #[test]
    fn mapped_and_compatible_addresses_are_ipv4() {
        assert_eq!(canonical(ip("::ffff:127.128.0.5")), ip("127.128.0.5"));
        assert_eq!(canonical(ip("::127.128.0.5")), ip("127.128.0.5"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
        assert_eq!(canonical(ip("::")), ip("::"));
        assert_eq!(canonical(ip("fd00::1")), ip("fd00::1"));
    }
}

//! The one choke point for what a driver may ask of a device: checked before every
//! `device-api` call. A request passes only if the device belongs to the calling driver, its
//! endpoint is on the operator's allow-list, and the path, headers and body are within policy.

use crate::devices::DeviceEndpoint;
use lbaas_core::DriverName;

use super::bindings::device_api::{DeviceApiError, Request};

/// Request headers a driver may not set: the host owns routing, framing and credentials.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
];

/// Headers the host adds to a driver's requests (a load balancer's [`crate::scope`]) begin
/// with this; a driver may set none of them.
const HOST_HEADER_PREFIX: &str = "lbaas-";

/// Headers that change the method a server acts on, past the method the grant allowed.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

use crate::net::IpNet;

/// What the operator allows drivers to reach.
#[derive(Debug, Clone)]
pub struct DevicePolicy {
    /// Management endpoints must resolve into one of these networks.
    pub allowed_networks: Vec<IpNet>,
    /// Sockets no device may be reached at: the host's own listening addresses.
    pub reserved: Vec<std::net::SocketAddr>,
    /// The largest request body a driver may send.
    pub max_request_bytes: usize,
    /// The largest response body the host reads from a device.
    pub max_response_bytes: u64,
    /// The longest a device call may take (less when the driver call's deadline is nearer).
    pub timeout: std::time::Duration,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        Self {
            allowed_networks: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
            reserved: Vec::new(),
            max_request_bytes: 1 << 20,
            max_response_bytes: 4 << 20,
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// A request that passed the policy, ready to send.
#[derive(Debug)]
pub struct Permitted {
    /// The URL the request goes to.
    pub url: String,
    /// The device it reaches.
    pub endpoint: DeviceEndpoint,
}

/// Decides whether `driver` may send `request` to the device `endpoint` (looked up by the id the
/// driver named). An unknown device and another driver's device get the same answer, so a
/// driver cannot probe for devices it does not own.
pub fn check(
    policy: &DevicePolicy,
    driver: &DriverName,
    device_id: &str,
    endpoint: Option<DeviceEndpoint>,
    request: &Request,
) -> Result<Permitted, DeviceApiError> {
    let endpoint = endpoint
        .filter(|endpoint| &endpoint.driver == driver)
        .ok_or_else(|| {
            DeviceApiError::UnknownDevice(format!("no device `{device_id}` for driver {driver}"))
        })?;
    check_path(&request.path)?;
    for header in &request.headers {
        check_header(&header.key, &header.value)?;
    }
    if request.body.len() > policy.max_request_bytes {
        return Err(DeviceApiError::NotPermitted(format!(
            "request body of {} bytes exceeds {} bytes",
            request.body.len(),
            policy.max_request_bytes
        )));
    }
    let base = endpoint.management_url.trim_end_matches('/');
    let socket = crate::net::url_socket(base).ok_or_else(|| {
        DeviceApiError::NotPermitted(format!("device {device_id} has no usable management URL"))
    })?;
    let host = socket.ip();
    if !policy
        .allowed_networks
        .iter()
        .any(|net| net.contains(&host))
    {
        return Err(DeviceApiError::NotPermitted(format!(
            "device {device_id}'s management address {host} is outside the allowed networks"
        )));
    }
    if crate::net::is_reserved(socket, &policy.reserved) {
        return Err(DeviceApiError::NotPermitted(format!(
            "device {device_id}'s management address {socket} is the host's own"
        )));
    }
    Ok(Permitted {
        url: format!("{base}{}", request.path),
        endpoint,
    })
}

fn check_path(path: &str) -> Result<(), DeviceApiError> {
    let refuse = |why: &str| {
        Err(DeviceApiError::NotPermitted(format!(
            "path `{}` {why}",
            path.escape_debug()
        )))
    };
    if !path.starts_with('/') || path.starts_with("//") {
        return refuse("must be absolute on the device (start with a single '/')");
    }
    if path.len() > 2048 {
        return refuse("is longer than 2048 bytes");
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) || path.contains('#') || path.contains('\\') {
        return refuse("holds characters that are not allowed");
    }
    let segments = path.split(['?']).next().unwrap_or_default();
    if segments.split('/').any(|s| s == ".." || s == ".") {
        return refuse("may not hold '.' or '..' segments");
    }
    // Encoded dots, slashes and backslashes: a server that decodes them would see segments
    // (`.%2e`, `..%2f`) the grant's path prefixes never did.
    let lowered = segments.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lowered.contains(e))
    {
        return refuse("may not hold encoded dots, slashes, backslashes or NULs");
    }
    Ok(())
}

fn check_header(name: &str, value: &str) -> Result<(), DeviceApiError> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(DeviceApiError::NotPermitted(format!(
            "header name `{}` is invalid",
            name.escape_debug()
        )));
    }
    let host_owned = name
        .get(..HOST_HEADER_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(HOST_HEADER_PREFIX));
    if host_owned
        || RESERVED_HEADERS
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r))
    {
        return Err(DeviceApiError::NotPermitted(format!(
            "header `{name}` is set by the host only"
        )));
    }
    if METHOD_OVERRIDES
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r))
    {
        return Err(DeviceApiError::NotPermitted(format!(
            "header `{name}` would override the request's method"
        )));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(DeviceApiError::NotPermitted(format!(
            "header `{name}` has a control character in its value"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::device_api::Method;
    use crate::bindings::legacy::Entry;

    fn endpoint(driver: &str, url: &str) -> Option<DeviceEndpoint> {
        Some(DeviceEndpoint {
            device_id: "d1".into(),
            driver: DriverName::new(driver).expect("name"),
            management_url: url.into(),
            credentials: None,
        })
    }

    fn request(path: &str) -> Request {
        Request {
            method: Method::Get,
            path: path.into(),
            headers: vec![],
            body: vec![],
        }
    }

    fn me() -> DriverName {
        DriverName::new("acme-adc").expect("name")
    }

    /// acme-adc asks for `request` on device d1, which belongs to `owner` at `url`.
    fn check_device(
        owner: &str,
        url: &str,
        request: &Request,
    ) -> Result<Permitted, DeviceApiError> {
        check(
            &DevicePolicy::default(),
            &me(),
            "d1",
            endpoint(owner, url),
            request,
        )
    }

    #[test]
    fn own_device_on_allowed_network_passes() {
        let ok = check_device(
            "acme-adc",
            "http://127.0.0.1:8443/",
            &request("/api/v3/x?y=1"),
        );
        assert_eq!(
            ok.map(|p| p.url).ok().as_deref(),
            Some("http://127.0.0.1:8443/api/v3/x?y=1")
        );
    }

    #[test]
    fn another_drivers_device_looks_unknown() {
        let theirs = check_device("haproxy", "http://127.0.0.1:1", &request("/"));
        let missing = check(&DevicePolicy::default(), &me(), "d1", None, &request("/"));
        assert!(matches!(theirs, Err(DeviceApiError::UnknownDevice(_))));
        assert_eq!(format!("{theirs:?}"), format!("{missing:?}"));
    }

    #[test]
    fn endpoints_outside_the_allow_list_are_refused() {
        for url in [
            "http://10.1.2.3",
            "http://device.example",
            "http://user:pw@127.0.0.1",
            "file:///etc/passwd",
        ] {
            let result = check_device("acme-adc", url, &request("/"));
            assert!(
                matches!(result, Err(DeviceApiError::NotPermitted(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn hostile_paths_and_headers_are_refused() {
        for path in [
            "",
            "x",
            "//evil.example/",
            "/a/../b",
            "/a b",
            "/a\r\nHost: x",
            "/#frag",
            "/v1/loadbalancers/.%2e/admin",
            "/v1/loadbalancers/%2E%2E/admin",
            "/v1/loadbalancers/..%2fadmin",
            "/v1/loadbalancers/x%5c..%5cadmin",
            "/v1/%2e",
        ] {
            let result = check_device("acme-adc", "http://127.0.0.1", &request(path));
            assert!(
                matches!(result, Err(DeviceApiError::NotPermitted(_))),
                "{path:?}"
            );
        }
        for (name, value) in [
            ("Authorization", "Basic x"),
            ("Host", "x"),
            ("x-ok", "a\r\nb"),
            ("bad name", "v"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("X-Method-Override", "DELETE"),
            ("Forwarded", "for=127.0.0.1"),
            ("lbaas-scope", "{\"binds\": [\"0.0.0.0:22\"]}"),
            ("LBAAS-Scope", "{}"),
        ] {
            let mut req = request("/");
            req.headers.push(Entry {
                key: name.into(),
                value: value.into(),
            });
            let result = check_device("acme-adc", "http://127.0.0.1", &req);
            assert!(
                matches!(result, Err(DeviceApiError::NotPermitted(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn the_hosts_own_address_is_refused() {
        let policy = DevicePolicy {
            reserved: vec!["127.0.0.1:9876".parse().expect("socket")],
            ..DevicePolicy::default()
        };
        for url in ["http://127.0.0.1:9876", "http://127.0.0.5:9876/"] {
            let result = check(
                &policy,
                &me(),
                "d1",
                endpoint("acme-adc", url),
                &request("/v2/admin/drivers"),
            );
            assert!(
                matches!(result, Err(DeviceApiError::NotPermitted(_))),
                "{url}"
            );
        }
        let other = check(
            &policy,
            &me(),
            "d1",
            endpoint("acme-adc", "http://127.0.0.1:9443"),
            &request("/"),
        );
        assert!(other.is_ok());
    }

    #[test]
    fn oversized_bodies_are_refused() {
        let mut req = request("/");
        req.body = vec![0; DevicePolicy::default().max_request_bytes + 1];
        let result = check_device("acme-adc", "http://127.0.0.1", &req);
        assert!(matches!(result, Err(DeviceApiError::NotPermitted(_))));
    }
}

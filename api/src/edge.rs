//! The API's edge: what every request passes before it is routed, authenticated or counted, so
//! that no input grows the host's state before authentication and no web page drives the API.
//!
//! - **Methods** outside a fixed set are answered `405` here, whatever their length, and count
//!   as one label value ([`method_label`]); nothing keeps a method a client made up.
//! - **`Host`** must name this host: its listen address (any IP literal with its port when it
//!   listens on every address; `localhost` when it listens on loopback) or the configured public
//!   URL. A page that rebinds its own DNS name to this host sends its own name and is refused.
//!   Links in answers are built from the public URL when there is one, else from the `Host` that
//!   passed ([`Base`]).
//! - **`Origin`**, when a browser sends one with a write, must be one of those same names.
//! - **Under noauth**, a write must not be what the Fetch standard calls a simple request (a
//!   `POST` with no content type, or a form's or `text/plain`): a page on another site can send
//!   those without asking, and noauth would take them as an admin's.
//! - **Path segments** (ids) decode to printable text of at most [`MAX_SEGMENT`] bytes.
//!
//! Bodies over the limit are `413` ([`crate::body`]) and a handler's panic is Octavia's `500`
//! fault ([`panic_fault`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest path segment (an id, a name in a URL) the API reads.
pub const MAX_SEGMENT: usize = 255;

/// A method as a metric label or span name: one the API answers, else `other` (which the
/// edge answers `405`).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Who this host is to its clients: what `Host` and `Origin` may name.
#[derive(Debug, Clone)]
pub struct Edge {
    listen: SocketAddr,
    public: Option<Public>,
    noauth: bool,
}

/// The configured public URL (`--public-url`), split as the checks need it.
#[derive(Debug, Clone)]
struct Public {
    /// `https://lb.example.com:8443`, no trailing slash: the base of every link.
    base: String,
    /// `lb.example.com:8443`, or `lb.example.com` on the scheme's default port.
    authority: String,
    /// `lb.example.com` with its port made explicit: `lb.example.com:443`.
    explicit: String,
}

/// A `--public-url` that cannot be one.
#[derive(Debug, thiserror::Error)]
#[error("--public-url {0}")]
pub struct PublicUrlError(String);

impl Edge {
    /// The edge of a host listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            public: None,
            noauth: false,
        }
    }

    /// Clients reach the host at `url` (`http(s)://name[:port]`, no path): links use it and
    /// `Host`/`Origin` may name it.
    pub fn public_url(mut self, url: &str) -> Result<Self, PublicUrlError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| PublicUrlError(format!("`{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(PublicUrlError(format!("`{url}` is not an http(s) URL")));
        }
        if parsed.path() != "/" || parsed.query().is_some() || !parsed.username().is_empty() {
            return Err(PublicUrlError(format!(
                "`{url}` must be a scheme, a host and a port only"
            )));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| PublicUrlError(format!("`{url}` names no host")))?
            .to_ascii_lowercase();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let authority = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        self.public = Some(Public {
            base: format!("{}://{authority}", parsed.scheme()),
            explicit: format!("{host}:{port}"),
            authority,
        });
        Ok(self)
    }

    /// Under noauth every caller is an admin: writes must not be simple cross-site requests.
    pub fn noauth(mut self, noauth: bool) -> Self {
        self.noauth = noauth;
        self
    }

    /// Whether a `Host` value (`name[:port]`) names this host.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if let Some(public) = &self.public
            && (host == public.authority || host == public.explicit)
        {
            return true;
        }
        self.names_listen_address(&host)
    }

    /// Whether `host` (lower case) names the listen address.
    fn names_listen_address(&self, host: &str) -> bool {
        let (name, port) = split_authority(host);
        if port.unwrap_or(80) != self.listen.port() {
            return false;
        }
        let listen = self.listen.ip();
        match name.parse::<IpAddr>() {
            Ok(ip) => ip == listen || listen.is_unspecified(),
            Err(_) => name == "localhost" && listen.is_loopback(),
        }
    }

    /// Whether an `Origin` (`scheme://name[:port]`) is this host's.
    fn allows_origin(&self, origin: &str) -> bool {
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        match &self.public {
            Some(public) if public.base.eq_ignore_ascii_case(origin) => true,
            _ => scheme == "http" && self.names_listen_address(&authority.to_ascii_lowercase()),
        }
    }

    /// The base of links in answers to a request whose `Host` passed [`Edge::check`].
    fn base(&self, host: Option<&str>) -> String {
        match (&self.public, host) {
            (Some(public), _) => public.base.clone(),
            (None, Some(host)) => format!("http://{host}"),
            (None, None) => format!("http://{}", self.listen),
        }
    }

    /// Checks one request; `Err` is the answer.
    fn check(&self, parts: &Parts) -> Result<(), ApiError> {
        if method_label(&parts.method) == "other" {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "The method is not one this API answers.",
            ));
        }
        let host = header(parts, HOST).or_else(|| parts.uri.authority().map(|a| a.as_str()));
        if let Some(host) = host
            && !self.allows_host(host)
        {
            return Err(ApiError::bad_request(
                "The Host header does not name this host (its listen address or --public-url).",
            ));
        }
        let writes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if writes
            && let Some(origin) = parts.headers.get(ORIGIN)
            && !origin.to_str().is_ok_and(|o| self.allows_origin(o))
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Requests from another origin may not change anything here.",
            ));
        }
        // The dashboard's forms are simple requests by nature; they carry its form token.
        let dashboard = parts.uri.path().starts_with("/dashboard");
        if self.noauth && writes && !dashboard && is_simple(parts) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Without authentication, a POST must send Content-Type: application/json.",
            ));
        }
        segments_ok(parts.uri.path())
    }
}

/// The edge's checks as a layer function ([`axum::middleware::from_fn_with_state`]); the request
/// carries its [`Base`] onwards.
pub async fn guard(
    axum::extract::State(edge): axum::extract::State<Arc<Edge>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Err(refusal) = edge.check(&parts) {
        return refusal.into_response();
    }
    // The links' base is built by the handlers that answer links ([`Base`]), not for every
    // request.
    parts.extensions.insert(edge);
    next.run(Request::from_parts(parts, body)).await
}

/// Fetch's simple request, for the methods that write: a `POST` whose content type is missing
/// or one a form can send. `PUT`, `PATCH` and `DELETE` always need a preflight.
fn is_simple(parts: &Parts) -> bool {
    if parts.method != Method::POST {
        return false;
    }
    let Some(value) = header(parts, CONTENT_TYPE) else {
        return true;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
    )
}

/// Every path segment decodes to printable UTF-8 of at most [`MAX_SEGMENT`] bytes.
fn segments_ok(path: &str) -> Result<(), ApiError> {
    for segment in path.split('/') {
        // Most segments hold no escape: read as they are, without a copy.
        if !segment.contains('%') {
            if segment.len() > MAX_SEGMENT || segment.bytes().any(|b| b.is_ascii_control()) {
                return Err(not_an_id());
            }
            continue;
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(segment).collect();
        let printable = std::str::from_utf8(&decoded)
            .is_ok_and(|text| !text.chars().any(char::is_control))
            && decoded.len() <= MAX_SEGMENT;
        if !printable {
            return Err(not_an_id());
        }
    }
    Ok(())
}

fn not_an_id() -> ApiError {
    ApiError::bad_request(format!(
        "A path segment is not an id: ids are printable text of at most {MAX_SEGMENT} bytes."
    ))
}

/// `name` and port of `name:port`, `[v6]:port`, `name` or `[v6]`.
fn split_authority(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (name, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (name, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match authority.rsplit_once(':') {
        Some((name, port)) => match port.parse() {
            Ok(port) => (name, Some(port)),
            Err(_) => (authority, Some(0)),
        },
        None => (authority, None),
    }
}

fn header(parts: &Parts, name: axum::http::HeaderName) -> Option<&str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The base URL of links in this request's answers (`http://127.0.0.1:9876`, or the public
/// URL), from the `Host` the edge checked.
#[derive(Debug, Clone)]
pub struct Base(pub String);

impl std::fmt::Display for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let host = header(parts, HOST);
        Ok(Base(match parts.extensions.get::<Arc<Edge>>() {
            Some(edge) => edge.base(host),
            // Only a router built without the edge (a handler test) gets here.
            None => format!("http://{}", host.unwrap_or("localhost")),
        }))
    }
}

/// A handler's panic as Octavia's `500` fault (the panic itself is logged).
pub fn panic_fault(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(format_args!("a request handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).expect("request").into_parts().0
    }

    fn status(edge: &Edge, parts: &Parts) -> Option<u16> {
        edge.check(parts).err().map(|e| e.status.as_u16())
    }

    #[test]
    fn host_names_the_listen_address_or_the_public_url() {
        let edge = Edge::new("127.0.0.1:9876".parse().expect("addr"));
        assert!(edge.allows_host("127.0.0.1:9876"));
        assert!(edge.allows_host("localhost:9876"));
        assert!(!edge.allows_host("127.0.0.2:9876"));
        assert!(!edge.allows_host("127.0.0.1:80"));
        assert!(!edge.allows_host("rebound.example:9876"));
        assert!(!edge.allows_host("127.0.0.1:9876:1"));
        let any = Edge::new("0.0.0.0:9876".parse().expect("addr"));
        assert!(any.allows_host("10.1.2.3:9876"));
        assert!(!any.allows_host("localhost:9876"));
        let public = Edge::new("0.0.0.0:9876".parse().expect("addr"))
            .public_url("https://LB.example.com")
            .expect("url");
        assert!(public.allows_host("lb.example.com"));
        assert!(public.allows_host("lb.example.com:443"));
        assert!(!public.allows_host("lb.example.com:9876"));
        assert!(public.allows_origin("https://lb.example.com"));
        assert!(!public.allows_origin("http://lb.example.com"));
        assert_eq!(public.base(Some("10.0.0.1:9876")), "https://lb.example.com");
        let v6 = Edge::new("[::1]:9876".parse().expect("addr"));
        assert!(v6.allows_host("[::1]:9876"));
        assert!(
            Edge::new("127.0.0.1:1".parse().expect("addr"))
                .public_url("https://x/path")
                .is_err()
        );
    }

    #[test]
    fn requests_are_checked_before_routing() {
        let edge = Edge::new("127.0.0.1:9876".parse().expect("addr")).noauth(true);
        let host = ("host", "127.0.0.1:9876");
        let json = ("content-type", "application/json");
        assert_eq!(status(&edge, &parts("GET", "/v2", &[host])), None);
        assert_eq!(
            status(&edge, &parts(&"X".repeat(1000), "/v2", &[host])),
            Some(405)
        );
        assert_eq!(
            status(
                &edge,
                &parts("GET", "/v2", &[("host", "evil.example:9876")])
            ),
            Some(400)
        );
        let forged = [host, json, ("origin", "http://evil.example:9876")];
        assert_eq!(status(&edge, &parts("POST", "/v2", &forged)), Some(403));
        let own = [host, json, ("origin", "http://127.0.0.1:9876")];
        assert_eq!(status(&edge, &parts("POST", "/v2", &own)), None);
        assert_eq!(status(&edge, &parts("POST", "/v2", &[host])), Some(415));
        let form = [host, ("content-type", "text/plain;charset=UTF-8")];
        assert_eq!(status(&edge, &parts("POST", "/v2", &form)), Some(415));
        assert_eq!(status(&edge, &parts("DELETE", "/v2/x", &[host])), None);
        assert_eq!(
            status(&edge, &parts("GET", "/v2/lbaas/quotas/a%00b", &[host])),
            Some(400)
        );
        let long = format!("/v2/lbaas/loadbalancers/{}", "a".repeat(300));
        assert_eq!(status(&edge, &parts("GET", &long, &[host])), Some(400));
        let authenticated = Edge::new("127.0.0.1:9876".parse().expect("addr"));
        assert_eq!(status(&authenticated, &parts("POST", "/v2", &[host])), None);
    }
}

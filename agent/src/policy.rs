//! What the agent lets reach HAProxy. A driver renders the configuration, and a driver is
//! untrusted code: HAProxy's language can run programs (`program`, `external-check`), load Lua,
//! read and serve files (`errorfile`, `http-request return ... file`, `ca-file`), open Unix
//! sockets (`stats socket`, `server x /path`) and expand the environment. So the agent does not
//! pass the file to `haproxy -c` and hope: it parses it against an allow-list of the sections
//! and keywords a load balancer needs, with every argument checked, before HAProxy sees it.
//!
//! Allowed: comment lines; `global` with `maxconn` only; `defaults`; `frontend` and `backend`
//! with the keywords below, under any name but the agent's own (`lbaas-...`, [`crate::metrics`]:
//! a frontend may send requests to its `lbaas-metrics` backend, never define or shadow it). Every name is a plain token, every address an IP literal and port,
//! every number a number. Anything else — another section, another keyword, an option that
//! names a file or a socket, quotes, backslashes, `$` — is a [`Violation`] naming the line and
//! the keyword.
//!
//! *Where* the allowed lines point is not the driver's to say: the host sends, with each
//! configuration, the [`Scope`] of its load balancer (header `lbaas-scope`): the VIP and ports
//! it may bind, its members' addresses, where their health checks go, and the HTTP checks its
//! monitors ask for. A `bind`, `server`, check target or `option httpchk` outside it is
//! refused, and so is a configuration that comes without one. IPv4-mapped and -compatible IPv6
//! addresses are read as the IPv4 address they carry; unspecified, multicast and link-local
//! addresses and the agent's own management socket are refused whatever the scope says, and the
//! operator's `--allow-server`/`--allow-bind` networks bound it further.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Longest line accepted (the bundled driver's longest is a server line of ~150 bytes).
const MAX_LINE: usize = 4096;
/// Longest name of a section, server, ACL or cookie.
const MAX_NAME: usize = 64;

/// Where a configuration may send and accept traffic.
#[derive(Debug, Clone, Default)]
pub struct ConfigPolicy {
    /// Networks `server` lines (and their health-check `addr`) may point into; empty: any.
    pub servers: Vec<IpNet>,
    /// Networks `bind` lines may listen on; empty: any.
    pub binds: Vec<IpNet>,
    /// Sockets no line may name: the agent's own management API.
    pub reserved: Vec<SocketAddr>,
    /// The folder of the load balancers' certificate files ([`crate::certificates`]): a
    /// `crt`, `ca-file` or `crl-file` argument may name only a file of the configuration's own
    /// load balancer there. `None`: no certificate at all.
    pub certificates: Option<std::path::PathBuf>,
}

/// What one load balancer's configuration may reach, as the host sent it (the host's side is
/// `lbaas_runtime::scope::Scope`; a test keeps the two in step).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Scope {
    /// The load balancer the configuration is for.
    pub loadbalancer: String,
    /// The VIP with each listener's port.
    pub binds: Vec<SocketAddr>,
    /// Each member's address and port.
    pub servers: Vec<SocketAddr>,
    /// Where each member's health checks go.
    pub checks: Vec<SocketAddr>,
    /// `METHOD PATH` of each HTTP(S) health monitor.
    pub http_checks: Vec<String>,
}

/// An address as the kernel uses it: an IPv4-mapped or IPv4-compatible IPv6 address is the
/// IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let octets = v6.octets();
            if octets[..12].iter().all(|&b| b == 0) && !v6.is_loopback() && !v6.is_unspecified() {
                return IpAddr::V4(std::net::Ipv4Addr::new(
                    octets[12], octets[13], octets[14], octets[15],
                ));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

fn canonical_socket(socket: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(socket.ip()), socket.port())
}

/// Why a configuration was refused: the line (1-based), its keyword and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub line: usize,
    pub keyword: String,
    pub reason: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: `{}` {}", self.line, self.keyword, self.reason)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Global,
    Defaults,
    Frontend,
    Backend,
}

/// Checks a whole configuration file against the allow-list and the load balancer's scope.
pub fn check(config: &str, policy: &ConfigPolicy, scope: &Scope) -> Result<(), Violation> {
    let mut section = None;
    for (index, raw) in config.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let words = match split(line) {
            Ok(words) => words,
            Err(bad) => {
                let keyword = line.split_whitespace().next().unwrap_or_default();
                return Err(Violation {
                    line: number,
                    keyword: shown(keyword),
                    reason: format!(
                        "is on a line holding {}, which no allowed keyword takes",
                        describe_char(bad)
                    ),
                });
            }
        };
        let Some(&keyword) = words.first() else {
            continue;
        };
        let refuse = |reason: String| Violation {
            line: number,
            keyword: shown(keyword),
            reason,
        };
        if keyword.starts_with('#') {
            continue;
        }
        if line.len() > MAX_LINE {
            return Err(refuse(format!("is on a line longer than {MAX_LINE} bytes")));
        }
        if words.iter().any(|w| w.contains('\''))
            && !matches!(keyword, "acl" | "http-request" | "http-response")
        {
            return Err(refuse(
                "is on a line holding a quote, which only L7 values and HSTS take".into(),
            ));
        }
        let args = &words[1..];
        let rule = Line {
            keyword,
            args,
            policy,
            scope,
        };
        let opened = rule.section().map_err(|violation| Violation {
            line: number,
            ..violation
        })?;
        if let Some(opened) = opened {
            section = Some(opened);
            continue;
        }
        let Some(current) = section else {
            return Err(refuse("appears before any section".into()));
        };
        rule.check(current).map_err(refuse)?;
    }
    Ok(())
}

/// The words of a line as HAProxy splits it, for the forms allowed here: spaces and tabs
/// separate words outside single quotes; inside them HAProxy interprets nothing, and a word may
/// join quoted parts with `\'` (an escaped quote). The word keeps its quotes ([`unquote`]
/// reads it). Anything else HAProxy would interpret — double quotes, other backslashes,
/// backticks, control characters, an unterminated quote — is refused: the character is
/// returned.
fn split(line: &str) -> Result<Vec<&str>, char> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quoted = false;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if quoted {
            match c {
                '\'' => quoted = false,
                c if c.is_ascii_graphic() || c == ' ' || c == '\t' => {}
                c => return Err(c),
            }
            continue;
        }
        match c {
            ' ' | '\t' => {
                if let Some(from) = start.take() {
                    words.push(&line[from..i]);
                }
            }
            '\'' => {
                start.get_or_insert(i);
                quoted = true;
            }
            '\\' if chars.peek().map(|(_, next)| *next) == Some('\'') && start.is_some() => {
                // `\'` between quoted parts: consume the quote it escapes.
                chars.next();
            }
            c if allowed_char(c) => {
                start.get_or_insert(i);
            }
            c => return Err(c),
        }
    }
    if quoted {
        return Err('\'');
    }
    if let Some(from) = start {
        words.push(&line[from..]);
    }
    Ok(words)
}

/// The text of a single-quoted word (`'a'\''b'` is `a'b`), if it is one.
fn unquote(word: &str) -> Option<String> {
    let inner = word.strip_prefix('\'')?.strip_suffix('\'')?;
    let parts: Vec<&str> = inner.split("'\\''").collect();
    parts
        .iter()
        .all(|part| !part.contains('\''))
        .then(|| parts.join("'"))
}

/// Printable ASCII and tabs, without the characters HAProxy gives a meaning beyond a plain
/// word: quotes and backslashes (escapes, environment expansion) and backticks. `$` is refused
/// too, except inside the one `rstatus` form checked below.
fn allowed_char(c: char) -> bool {
    (c.is_ascii_graphic() || c == ' ' || c == '\t') && !matches!(c, '"' | '\'' | '\\' | '`')
}

fn describe_char(c: char) -> String {
    match c {
        '"' | '\'' => "a quote".into(),
        '\\' => "a backslash".into(),
        c if c.is_control() => format!("the control character {:?}", c),
        c => format!("`{}`", c.escape_debug()),
    }
}

/// A keyword as a refusal shows it: bounded and printable.
fn shown(keyword: &str) -> String {
    keyword
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

struct Line<'a> {
    keyword: &'a str,
    args: &'a [&'a str],
    policy: &'a ConfigPolicy,
    scope: &'a Scope,
}

/// Which list of the scope an address is checked against.
#[derive(Clone, Copy)]
enum Target {
    Bind,
    Server,
    Check,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Bind => "bind",
            Target::Server => "server",
            Target::Check => "health check",
        }
    }
}

type Rule = Result<(), String>;

impl Line<'_> {
    /// The section this line opens, if it is a section header.
    fn section(&self) -> Result<Option<Section>, Violation> {
        let section = match self.keyword {
            "global" => Section::Global,
            "defaults" => Section::Defaults,
            "frontend" => Section::Frontend,
            "backend" => Section::Backend,
            "listen" | "program" | "userlist" | "peers" | "resolvers" | "mailers" | "cache"
            | "ring" | "http-errors" | "log-forward" | "crt-store" | "traces" | "fcgi-app" => {
                return Err(self.violation("section is not allowed on this device"));
            }
            _ => return Ok(None),
        };
        let arity = match section {
            Section::Global => self.args.is_empty(),
            Section::Defaults => self.args.len() <= 1,
            Section::Frontend | Section::Backend => self.args.len() == 1,
        };
        if !arity {
            return Err(self.violation("section header has the wrong number of names"));
        }
        if let Some(name) = self.args.first() {
            name_ok(name).map_err(|reason| self.violation(&reason))?;
            if name.starts_with(crate::metrics::RESERVED_PREFIX) {
                return Err(self.violation(&format!(
                    "name `{name}` is reserved: sections named `{}...` are the agent's own",
                    crate::metrics::RESERVED_PREFIX
                )));
            }
        }
        Ok(Some(section))
    }

    fn violation(&self, reason: &str) -> Violation {
        Violation {
            line: 0,
            keyword: shown(self.keyword),
            reason: reason.to_owned(),
        }
    }

    fn check(&self, section: Section) -> Rule {
        use Section::*;
        let args = self.args;
        match (section, self.keyword) {
            (Global | Defaults | Frontend | Backend, "maxconn") => count(args),
            (Defaults | Backend, "retries") => count(args),
            (Defaults | Backend, "option") if args == ["redispatch"] => Ok(()),
            (Defaults | Frontend | Backend, "timeout") => self.timeout(section),
            (Defaults | Frontend | Backend, "mode") => one_of(args, &["http", "tcp"]),
            (Frontend | Backend, "disabled") => none(args),
            (Frontend, "bind") => self.bind(),
            (Frontend, "tcp-request") => self.tcp_request(),
            (Frontend, "acl") => self.acl(),
            (Frontend, "http-request") => http_request(args),
            (Frontend, "http-response") => hsts(args),
            (Frontend, "use_backend") => match args {
                [
                    "%[var(txn.l7_pool)]",
                    "if",
                    "{",
                    "var(txn.l7_pool)",
                    "-m",
                    "found",
                    "}",
                ] => Ok(()),
                _ => Err(
                    "allows only the L7 pool choice (`use_backend %[var(txn.l7_pool)] ...`)".into(),
                ),
            },
            (Frontend, "option") => one_of(args, &["forwardfor", "httplog", "tcplog"]),
            (Frontend, "default_backend") => match args {
                [name] => name_ok(name),
                _ => Err("takes one backend name".into()),
            },
            (Backend, "balance") => one_of(args, &["roundrobin", "leastconn", "source", "first"]),
            (Backend, "option") => self.backend_option(),
            (Backend, "http-check") => http_check(args),
            (Backend, "stick-table") => stick_table(args),
            (Backend, "stick") => stick(args),
            (Backend, "cookie") => cookie(args),
            (Backend, "server") => self.server(),
            (Global, _) => Err("is not allowed in `global` (only `maxconn` is)".into()),
            _ => Err("is not an allowed keyword here".into()),
        }
    }

    fn timeout(&self, section: Section) -> Rule {
        let kinds: &[&str] = match section {
            Section::Frontend => &["client", "http-request", "http-keep-alive", "tunnel"],
            Section::Backend => &["connect", "server", "check", "queue", "tunnel"],
            _ => &[
                "connect",
                "client",
                "server",
                "check",
                "queue",
                "tunnel",
                "http-request",
                "http-keep-alive",
            ],
        };
        match self.args {
            [kind, value] if kinds.contains(kind) => duration(value),
            _ => Err(format!("takes one of {} and a duration", kinds.join(", "))),
        }
    }

    fn bind(&self) -> Rule {
        let [address, options @ ..] = self.args else {
            return Err("takes an address:port".into());
        };
        let socket = socket(address)?;
        self.reachable(socket, Target::Bind)?;
        if options.is_empty() {
            return Ok(());
        }
        let usage = "takes an address:port, then only TLS options: `ssl`, `crt`, `ca-file`, \
                     `crl-file` (files of this load balancer), `verify`, `alpn`, `ssl-min-ver`, \
                     `ssl-max-ver`, `ciphers`, `ciphersuites`";
        let mut ssl = false;
        let mut certificates = 0;
        let mut rest = options;
        while let Some((&option, tail)) = rest.split_first() {
            if option == "ssl" {
                ssl = true;
                rest = tail;
                continue;
            }
            let Some((&value, tail)) = tail.split_first() else {
                return Err(format!("`{}` needs a value; it {usage}", shown(option)));
            };
            match option {
                "crt" => {
                    certificates += 1;
                    self.certificate_file(value)?;
                }
                "verify" => one_of(&[value], &["none", "optional", "required"])?,
                _ => match self.tls_option(option, value) {
                    Some(rule) => rule?,
                    None => {
                        return Err(format!(
                            "`{}` is not an option it takes; it {usage}",
                            shown(option)
                        ));
                    }
                },
            }
            rest = tail;
        }
        if !ssl || certificates == 0 {
            return Err("TLS options need `ssl` and at least one `crt`".into());
        }
        Ok(())
    }

    /// A TLS option `bind` and `server` lines share, checked; `None` when `option` is not one.
    fn tls_option(&self, option: &str, value: &str) -> Option<Rule> {
        Some(match option {
            "ca-file" | "crl-file" => self.certificate_file(value),
            "alpn" => {
                if value
                    .split(',')
                    .all(|p| ["h2", "http/1.1", "http/1.0"].contains(&p))
                {
                    Ok(())
                } else {
                    Err("`alpn` takes h2, http/1.1 and http/1.0".into())
                }
            }
            "ssl-min-ver" | "ssl-max-ver" => one_of(
                &[value],
                &["SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
            ),
            "ciphers" | "ciphersuites" => {
                let plain = !value.is_empty()
                    && value.len() <= 2048
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b":_-+!.@=".contains(&b));
                if plain {
                    Ok(())
                } else {
                    Err(format!("`{option}` takes an OpenSSL cipher list"))
                }
            }
            _ => return None,
        })
    }

    /// A certificate argument: a file of this configuration's own load balancer, in the
    /// agent's certificate folder, and nothing else on the device. It is named relative to
    /// that folder (`<load balancer>/<name>.pem`, which HAProxy reads from its `crt-base` and
    /// `ca-base`), or by its full path.
    fn certificate_file(&self, value: &str) -> Rule {
        let Some(root) = &self.policy.certificates else {
            return Err("names a certificate file, and this device keeps none".into());
        };
        let own = root.join(&self.scope.loadbalancer);
        let named = std::path::Path::new(value);
        let folder_ok = named.parent() == Some(own.as_path())
            || named.parent() == Some(std::path::Path::new(&self.scope.loadbalancer));
        let allowed = folder_ok
            && named
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pem"))
                .is_some_and(crate::certificates::name_ok);
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "may name only this load balancer's certificate files ({}/<name>.pem)",
                self.scope.loadbalancer
            ))
        }
    }

    fn tcp_request(&self) -> Rule {
        match self.args {
            ["inspect-delay", value] => duration(value),
            ["connection", "reject" | "accept", "if" | "unless", acl] => {
                name_ok(acl.strip_prefix('!').unwrap_or(acl))
            }
            _ => Err("allows only `inspect-delay` and `connection reject|accept if ACL`".into()),
        }
    }

    fn acl(&self) -> Rule {
        match self.args {
            [name, "src", cidrs @ ..] if !cidrs.is_empty() => {
                name_ok(name)?;
                cidrs.iter().try_for_each(|cidr| {
                    cidr.parse::<IpNet>()
                        .map(|_| ())
                        .or_else(|_| cidr.parse::<IpAddr>().map(|_| ()))
                        .map_err(|_| format!("`{}` is not an address or CIDR", shown(cidr)))
                })
            }
            [name, rest @ ..] => {
                name_ok(name)?;
                l7_criterion(rest)
            }
            _ => Err("allows only `acl NAME src CIDR...` and L7 rules".into()),
        }
    }

    fn backend_option(&self) -> Rule {
        match self.args {
            ["redispatch" | "ssl-hello-chk" | "forwardfor" | "allbackups"] => Ok(()),
            // HAProxy's default check request.
            ["httpchk"] => self.http_check("OPTIONS", "/"),
            ["httpchk", method, path] => {
                method_ok(method)?;
                path_ok(path)?;
                self.http_check(method, path)
            }
            ["httpchk", method, path, version] => {
                method_ok(method)?;
                path_ok(path)?;
                one_of(&[version], &["HTTP/1.0", "HTTP/1.1"])?;
                self.http_check(method, path)
            }
            _ => Err(
                "allows only redispatch, ssl-hello-chk, forwardfor and httpchk METHOD PATH".into(),
            ),
        }
    }

    fn server(&self) -> Rule {
        let [name, address, options @ ..] = self.args else {
            return Err("takes a name and an address:port".into());
        };
        name_ok(name)?;
        let target = socket(address)?;
        self.reachable(target, Target::Server)?;
        let mut check_addr = target.ip();
        let mut check_port = target.port();
        let mut checked = false;
        let mut rest = options.iter();
        while let Some(&option) = rest.next() {
            let mut value = || {
                rest.next()
                    .copied()
                    .ok_or_else(|| format!("server option `{}` needs a value", shown(option)))
            };
            match option {
                "check" | "check-ssl" => checked = true,
                "send-proxy" | "send-proxy-v2" | "backup" | "disabled" | "ssl" => {}
                "weight" | "fall" | "rise" | "maxconn" => count(&[value()?])?,
                "inter" | "fastinter" | "downinter" => duration(value()?)?,
                "verify" => one_of(&[value()?], &["none", "required"])?,
                // Re-encryption: the pool's client certificate towards members.
                "crt" => self.certificate_file(value()?)?,
                "ca-file" | "crl-file" | "alpn" | "ssl-min-ver" | "ssl-max-ver" | "ciphers"
                | "ciphersuites" => {
                    let value = value()?;
                    self.tls_option(option, value).unwrap_or(Ok(()))?;
                }
                "cookie" => name_ok(value()?)?,
                "addr" => {
                    let text = value()?;
                    check_addr = text.parse().map_err(|_| {
                        format!("check address `{}` is not an IP address", shown(text))
                    })?;
                }
                "port" => check_port = port(value()?)?,
                other => {
                    return Err(format!(
                        "server option `{}` is not allowed (only weight, check, inter, fall, rise, \
                         check-ssl, addr, port, send-proxy, send-proxy-v2, cookie, backup, \
                         disabled, maxconn, and TLS towards members: ssl, verify, crt, ca-file, \
                         crl-file, alpn, ssl-min-ver, ssl-max-ver, ciphers, ciphersuites)",
                        shown(other)
                    ));
                }
            }
        }
        // Without `check` HAProxy sends no health checks: `addr` and `port` then aim at
        // nothing (a member with a monitor address in a pool without a monitor).
        if checked {
            self.reachable(SocketAddr::new(check_addr, check_port), Target::Check)?;
        }
        Ok(())
    }

    /// An HTTP health check the load balancer's monitors ask for.
    fn http_check(&self, method: &str, path: &str) -> Rule {
        let wanted = format!("{method} {path}");
        if self.scope.http_checks.contains(&wanted) {
            Ok(())
        } else {
            Err(format!(
                "`{}` is not a health check of this load balancer's monitors",
                shown(&wanted)
            ))
        }
    }

    /// Whether `socket` is in the load balancer's scope, within the operator's networks, and
    /// none of the addresses no configuration may name.
    fn reachable(&self, socket: SocketAddr, target: Target) -> Rule {
        let what = target.name();
        let socket = canonical_socket(socket);
        let ip = socket.ip();
        let special = match ip {
            ip if ip.is_unspecified() => Some("the unspecified address"),
            ip if ip.is_multicast() => Some("a multicast address"),
            IpAddr::V4(v4) if v4.is_link_local() || v4.is_broadcast() => {
                Some("a link-local or broadcast address")
            }
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some("a link-local address"),
            _ => None,
        };
        if let Some(special) = special {
            return Err(format!("{what} address {ip} is {special}"));
        }
        let reserved = self.policy.reserved.iter().any(|r| {
            let r = canonical_socket(*r);
            r.port() == socket.port() && (r.ip() == ip || r.ip().is_unspecified())
        });
        if reserved {
            return Err(format!(
                "{what} address {socket} is the device agent's own management address"
            ));
        }
        let networks = match target {
            Target::Bind => &self.policy.binds,
            Target::Server | Target::Check => &self.policy.servers,
        };
        if !networks.is_empty() && !networks.iter().any(|net| net.contains(&ip)) {
            return Err(format!(
                "{what} address {ip} is outside the networks this device allows"
            ));
        }
        let scoped = match target {
            Target::Bind => &self.scope.binds,
            Target::Server => &self.scope.servers,
            Target::Check => &self.scope.checks,
        };
        if !scoped.iter().any(|s| canonical_socket(*s) == socket) {
            return Err(format!(
                "{what} address {socket} is not one of this load balancer's (the host names \
                 its VIP, members and health-check targets)"
            ));
        }
        Ok(())
    }
}

/// `http-response set-header Strict-Transport-Security 'max-age=N;[ includeSubDomains;][ preload;]'`
/// (the amphora's value, quoted for its spaces) or the same without spaces and quotes: the one
/// response header a listener sets (HSTS).
fn hsts(args: &[&str]) -> Rule {
    let usage = "allows only `set-header Strict-Transport-Security 'max-age=N;[ includeSubDomains;][ preload;]'`";
    let ["set-header", "Strict-Transport-Security", value] = args else {
        return Err(usage.into());
    };
    let value = match unquote(value) {
        Some(unquoted) => unquoted,
        None if !value.contains('\'') => (*value).to_owned(),
        None => return Err(usage.into()),
    };
    let mut parts: Vec<&str> = value.split(';').map(str::trim_start).collect();
    // One `;` may end the value, as the amphora's does.
    if parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    let max_age = parts
        .first()
        .and_then(|p| p.strip_prefix("max-age="))
        .is_some_and(|n| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()));
    let directives = &parts[1..];
    let known = directives
        .iter()
        .all(|p| *p == "includeSubDomains" || *p == "preload");
    let once = match directives {
        [] | [_] => true,
        [a, b] => a != b,
        _ => false,
    };
    if max_age && known && once {
        Ok(())
    } else {
        Err(usage.into())
    }
}

fn none(args: &[&str]) -> Rule {
    if args.is_empty() {
        Ok(())
    } else {
        Err("takes no arguments".into())
    }
}

/// An L7 rule's criterion: `FETCH -m MATCH -- 'VALUE'`, with the fetches the HAProxy driver
/// uses and `--` ending the flags (no `-f FILE`, no `-M`); the value is quoted, so it is text.
fn l7_criterion(args: &[&str]) -> Rule {
    let Some((fetch, ["-m", matching, "--", value])) = args.split_last_chunk::<4>() else {
        return Err("allows only `acl NAME FETCH -m MATCH -- 'VALUE'` for L7 rules".into());
    };
    match fetch {
        ["path"] | ["hdr(host)", "-i"] => {}
        [sample] => {
            let name = sample
                .strip_prefix("req.hdr(")
                .or_else(|| sample.strip_prefix("req.cook("))
                .and_then(|rest| rest.strip_suffix(')'))
                .ok_or_else(|| format!("`{}` is not an allowed sample", shown(sample)))?;
            name_ok(name)?;
        }
        _ => return Err("allows only path, hdr(host), req.hdr(NAME) and req.cook(NAME)".into()),
    }
    one_of(&[matching], &["reg", "beg", "end", "sub", "str"])?;
    unquote(value)
        .map(drop)
        .ok_or_else(|| "takes one single-quoted value".into())
}

/// `http-request` of L7 policies and inserted headers: deny, redirect (to an http(s) URL whose
/// log-format holds no sample expression: every `%` doubled), choosing the pool, and the two
/// `X-Forwarded-*` headers.
fn http_request(args: &[&str]) -> Rule {
    match args {
        ["deny", "if", conditions @ ..] => l7_conditions(conditions),
        [
            "redirect",
            "location" | "prefix",
            url,
            "code",
            code,
            "if",
            conditions @ ..,
        ] => {
            let url = unquote(url).ok_or("takes a single-quoted URL")?;
            let absolute = url.starts_with("http://") || url.starts_with("https://");
            if !absolute || url.replace("%%", "").contains('%') {
                return Err("takes an http(s) URL without sample expressions".into());
            }
            one_of(&[code], &["301", "302", "303", "307", "308"])?;
            l7_conditions(conditions)
        }
        ["set-var(txn.l7_pool)", pool, "if", conditions @ ..] => {
            let name = pool
                .strip_prefix("str(")
                .and_then(|rest| rest.strip_suffix(')'))
                .ok_or("takes `str(POOL)`")?;
            name_ok(name)?;
            l7_conditions(conditions)
        }
        ["set-header", "X-Forwarded-Port", "%[dst_port]"]
        | ["set-header", "X-Forwarded-Proto", "http" | "https"] => Ok(()),
        ["set-header", name, value] if SSL_HEADERS.contains(&(*name, *value)) => Ok(()),
        _ => Err(
            "allows only deny, redirect, the L7 pool choice, X-Forwarded-Port/-Proto and the \
             X-SSL-* headers about the client's certificate"
                .into(),
        ),
    }
}

/// Octavia's headers about a TLS client's certificate, each with the one sample HAProxy fills
/// it from (the amphora's).
const SSL_HEADERS: [(&str, &str); 8] = [
    ("X-SSL-Client-Verify", "%[ssl_c_verify]"),
    ("X-SSL-Client-Has-Cert", "%[ssl_c_used]"),
    ("X-SSL-Client-DN", "%{+Q}[ssl_c_s_dn]"),
    ("X-SSL-Client-CN", "%{+Q}[ssl_c_s_dn(cn)]"),
    ("X-SSL-Issuer", "%{+Q}[ssl_c_i_dn]"),
    ("X-SSL-Client-SHA1", "%{+Q}[ssl_c_sha1,hex]"),
    ("X-SSL-Client-Not-Before", "%{+Q}[ssl_c_notbefore]"),
    ("X-SSL-Client-Not-After", "%{+Q}[ssl_c_notafter]"),
];

/// ACL names, each maybe negated, after the test that no earlier policy chose a pool.
fn l7_conditions(words: &[&str]) -> Rule {
    let words = match words {
        ["!{", "var(txn.l7_pool)", "-m", "found", "}", rest @ ..] => rest,
        all => all,
    };
    if words.is_empty() {
        return Err("needs a condition".into());
    }
    words
        .iter()
        .try_for_each(|word| name_ok(word.strip_prefix('!').unwrap_or(word)))
}

fn one_of(args: &[&str], allowed: &[&str]) -> Rule {
    match args {
        [value] if allowed.contains(value) => Ok(()),
        _ => Err(format!("takes one of: {}", allowed.join(", "))),
    }
}

fn count(args: &[&str]) -> Rule {
    match args {
        [value]
            if !value.is_empty()
                && value.len() <= 9
                && value.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(())
        }
        _ => Err("takes one number".into()),
    }
}

/// `500`, `500ms`, `5s`, `30m`, `1h`, `1d`.
fn duration(value: &str) -> Rule {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    let ok = !digits.is_empty()
        && digits.len() <= 9
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "" | "ms" | "s" | "m" | "h" | "d");
    if ok {
        Ok(())
    } else {
        Err(format!("`{}` is not a duration", shown(value)))
    }
}

fn port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("`{}` is not a port", shown(value))),
    }
}

/// `1.2.3.4:80` or `ipv6@2001:db8::1:80`: IP literals only (no host names, Unix sockets,
/// abstract sockets or inherited file descriptors).
fn socket(text: &str) -> Result<SocketAddr, String> {
    let bad = || {
        format!(
            "`{}` is not an IP address and port (no host names, sockets or ranges)",
            shown(text)
        )
    };
    let (ip, port_text) = match text.strip_prefix("ipv6@") {
        Some(v6) => v6.rsplit_once(':').ok_or_else(bad)?,
        None => text.rsplit_once(':').ok_or_else(bad)?,
    };
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    if text.starts_with("ipv6@") != ip.is_ipv6() {
        return Err(bad());
    }
    let port = port(port_text).map_err(|_| bad())?;
    Ok(SocketAddr::new(ip, port))
}

/// Up to `max` letters, digits, `-`, `_` and `.`: a name HAProxy reads as one word.
fn word(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn name_ok(name: &str) -> Rule {
    if word(name, MAX_NAME) {
        Ok(())
    } else {
        Err(format!(
            "name `{}` may only hold up to {MAX_NAME} letters, digits, '-', '_' and '.'",
            shown(name)
        ))
    }
}

fn method_ok(method: &str) -> Rule {
    if !method.is_empty() && method.len() <= 16 && method.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!("`{}` is not an HTTP method", shown(method)))
    }
}

fn path_ok(path: &str) -> Rule {
    if path.starts_with('/') && path.len() <= 2048 && !path.contains(['#', '$']) {
        Ok(())
    } else {
        Err(format!("`{}` is not a URL path", shown(path)))
    }
}

/// `http-check expect status 200`, `http-check expect rstatus ^(200|202)$`, or the `Host`
/// header of the check request, `http-check send hdr Host NAME`.
fn http_check(args: &[&str]) -> Rule {
    match args {
        ["expect", "status", code] if status_code(code) => Ok(()),
        ["send", "hdr", "Host", name] => host_name(name),
        ["expect", "rstatus", pattern] => {
            let codes = pattern
                .strip_prefix("^(")
                .and_then(|p| p.strip_suffix(")$"))
                .filter(|codes| codes.split('|').all(status_code));
            codes
                .map(|_| ())
                .ok_or_else(|| "allows only `rstatus ^(CODE|CODE...)$`".into())
        }
        _ => Err(
            "allows only `expect status CODE`, `expect rstatus ^(CODE|...)$` and \
             `send hdr Host NAME`"
                .into(),
        ),
    }
}

/// A host name: letters, digits, `-`, `_` and `.`, at most 254 bytes.
fn host_name(name: &str) -> Rule {
    if word(name, 254) {
        Ok(())
    } else {
        Err(format!("`{}` is not a host name", shown(name)))
    }
}

fn status_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())
}

/// `stick-table type ip|ipv6|string [len N] size N[k|m] expire DURATION`.
fn stick_table(args: &[&str]) -> Rule {
    let mut rest = args.iter();
    let mut typed = false;
    while let Some(&word) = rest.next() {
        let value = rest.next().copied().unwrap_or_default();
        match word {
            "type" => {
                one_of(&[value], &["ip", "ipv6", "string", "integer"])?;
                typed = true;
            }
            "len" => count(&[value])?,
            "size" => count(&[value.trim_end_matches(['k', 'm', 'g'])])?,
            "expire" => duration(value)?,
            other => {
                return Err(format!(
                    "stick-table option `{}` is not allowed (type, len, size, expire)",
                    shown(other)
                ));
            }
        }
    }
    if typed {
        Ok(())
    } else {
        Err("needs a type".into())
    }
}

/// `stick on src`, `stick match req.cook(NAME)`, `stick store-response res.cook(NAME)`.
fn stick(args: &[&str]) -> Rule {
    let cookie = |fetch: &str, prefix: &str| {
        fetch
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .map_or(
                Err(format!("`{}` is not an allowed sample", shown(fetch))),
                name_ok,
            )
    };
    match args {
        ["on", "src"] => Ok(()),
        ["match" | "on", fetch] => cookie(fetch, "req.cook("),
        ["store-response", fetch] => cookie(fetch, "res.cook("),
        _ => Err("allows only `on src` and cookie matches".into()),
    }
}

/// `cookie NAME insert|rewrite|prefix [indirect] [nocache] [postonly] [preserve] [httponly] [secure]`.
fn cookie(args: &[&str]) -> Rule {
    let [name, options @ ..] = args else {
        return Err("takes a cookie name".into());
    };
    name_ok(name)?;
    const OPTIONS: &[&str] = &[
        "insert", "rewrite", "prefix", "indirect", "nocache", "postonly", "preserve", "httponly",
        "secure",
    ];
    match options.iter().find(|o| !OPTIONS.contains(o)) {
        None => Ok(()),
        Some(other) => Err(format!("cookie option `{}` is not allowed", shown(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ConfigPolicy {
        ConfigPolicy {
            servers: Vec::new(),
            binds: Vec::new(),
            reserved: vec!["127.128.0.1:9443".parse().expect("socket")],
            certificates: Some("/srv/agent/certs".into()),
        }
    }

    /// What the bundled HAProxy driver renders for a full tree (HTTP with cookies and an HTTP
    /// monitor, TCP with source persistence, PROXY protocol, IPv6 members).
    const DRIVER_OUTPUT: &str = "\
# Generated by the lbaas haproxy driver 0.1.0 for load balancer lb-1 on device d-1.
# Do not edit: the next change of the load balancer replaces this file.

global
    maxconn 2000

defaults
    retries 3
    option redispatch
    timeout connect 5000ms
    timeout client 50000ms
    timeout server 50000ms

frontend l-1
    mode http
    bind 127.0.50.1:8080
    maxconn 100
    timeout client 50000ms
    tcp-request inspect-delay 0ms
    acl allowed-cidr src 10.0.0.0/8 192.168.1.1
    tcp-request connection reject if !allowed-cidr
    option forwardfor
    http-request set-header X-Forwarded-Port %[dst_port]
    acl l7r_r-1 path -m beg -- '/api'
    acl l7r_r-2 req.hdr(X-Tenant) -m str -- 'it'\\''s'
    http-request set-var(txn.l7_pool) str(p-2) if l7r_r-1 !l7r_r-2
    acl l7r_r-3 hdr(host) -i -m end -- '.example.com'
    http-request redirect location 'https://example.com/100%%25' code 301 if !{ var(txn.l7_pool) -m found } l7r_r-3
    acl l7r_r-4 req.cook(session) -m reg -- '^-f /etc/passwd #x$'
    http-request deny if !{ var(txn.l7_pool) -m found } l7r_r-4
    use_backend %[var(txn.l7_pool)] if { var(txn.l7_pool) -m found }
    default_backend p-1
    disabled

frontend l-2
    mode tcp
    bind ipv6@::1:8443
    timeout client 50000ms
    default_backend p-2

frontend l-3
    mode http
    bind 127.0.50.1:9100
    timeout client 50000ms
    acl allowed-cidr src 127.0.0.0/8
    tcp-request connection reject if !allowed-cidr
    default_backend lbaas-metrics

backend p-1
    mode http
    balance roundrobin
    timeout connect 5000ms
    timeout server 50000ms
    cookie SRV insert indirect nocache
    timeout check 1s
    option httpchk GET /health?x=1 HTTP/1.1
    http-check send hdr Host www.example.com
    http-check expect rstatus ^(200|202)$
    server m-1 127.0.0.1:8001 weight 1 check inter 2s fall 2 rise 3 addr 127.0.0.2 port 9000 cookie m-1
    server m-2 127.0.0.1:8002 weight 0 check inter 2s fall 2 rise 3 backup disabled

backend p-2
    mode tcp
    balance source
    timeout connect 5000ms
    timeout server 50000ms
    stick-table type ipv6 size 100k expire 30m
    stick on src
    stick-table type string len 64 size 100k expire 30m
    stick store-response res.cook(JSESSIONID)
    stick match req.cook(JSESSIONID)
    option ssl-hello-chk
    http-check expect status 200
    server m-3 ipv6@2001:db8::1:443 weight 256 check inter 5s fall 1 rise 1 check-ssl verify none send-proxy-v2
    server m-4 127.0.0.1:8004 weight 1 send-proxy
";

    /// The scope the host sends with [`DRIVER_OUTPUT`].
    fn scope() -> Scope {
        let sockets = |list: &[&str]| -> Vec<SocketAddr> {
            list.iter().map(|s| s.parse().expect("socket")).collect()
        };
        Scope {
            loadbalancer: "lb-1".into(),
            binds: sockets(&["127.0.50.1:8080", "[::1]:8443", "127.0.50.1:9100"]),
            servers: sockets(&[
                "127.0.0.1:8001",
                "127.0.0.1:8002",
                "[2001:db8::1]:443",
                "127.0.0.1:8004",
            ]),
            checks: sockets(&[
                "127.0.0.2:9000",
                "127.0.0.1:8002",
                "[2001:db8::1]:443",
                "127.0.0.1:8004",
            ]),
            http_checks: vec!["GET /health?x=1".into()],
        }
    }

    #[test]
    fn the_bundled_drivers_output_passes() {
        assert_eq!(check(DRIVER_OUTPUT, &policy(), &scope()), Ok(()));
    }

    /// Lines the allow-list takes, aimed where the load balancer's scope does not reach:
    /// the control plane's API, another tenant's VIP, the agent's socket written as an
    /// IPv4-mapped address, a health check of the driver's choosing.
    #[test]
    fn allowed_lines_stay_inside_the_scope() {
        let cases: &[(&str, &str)] = &[
            (
                "backend p\n    server s0 127.0.0.1:9876 check inter 1s",
                "outside",
            ),
            (
                "backend p\n    option httpchk DELETE /v2/lbaas/loadbalancers/x?cascade=true",
                "monitors",
            ),
            ("backend p\n    option httpchk", "monitors"),
            (
                "backend p\n    server m 127.0.0.1:8001 check addr 127.0.0.1 port 9876",
                "outside",
            ),
            ("frontend l\n    bind 127.0.50.2:8080", "outside"),
            ("frontend l\n    bind 127.0.50.1:22", "outside"),
            (
                "frontend l\n    bind ipv6@::ffff:127.128.0.1:9443",
                "management",
            ),
            (
                "backend p\n    server s ipv6@::127.128.0.1:9443",
                "management",
            ),
            ("frontend l\n    bind 0.0.0.0:8080", "unspecified"),
            ("backend p\n    server s 169.254.169.254:80", "link-local"),
            ("backend p\n    server s 224.0.0.1:80", "multicast"),
        ];
        for (config, reason) in cases {
            let violation = check(config, &policy(), &scope())
                .expect_err(&format!("{config:?} must be refused"));
            let text = violation
                .to_string()
                .replace("one of this load balancer", "outside");
            assert!(text.contains(reason), "{config:?}: {violation}");
        }
        // A mapped address of a member is the member.
        let mapped =
            "backend p\n    server m ipv6@::ffff:127.0.0.1:8001 check addr 127.0.0.2 port 9000";
        assert_eq!(check(mapped, &policy(), &scope()), Ok(()));
        // A member whose checks go elsewhere (a monitor address), in a pool without a health
        // monitor: no `check`, so no check target to hold against the scope (Octavia's
        // conformance suite creates such members); with `check` its own address is not one.
        let unchecked = "backend p\n    server m 127.0.0.1:8001 weight 1";
        assert_eq!(check(unchecked, &policy(), &scope()), Ok(()));
        let checked = "backend p\n    server m 127.0.0.1:8001 check";
        assert!(check(checked, &policy(), &scope()).is_err());
    }

    /// Each hostile addition is refused, naming its line and keyword.
    /// TLS on a bind: only this load balancer's own certificate files, only TLS options, and
    /// the HSTS header; another load balancer's files, any other file, or a path that climbs
    /// out of the folder are refused.
    #[test]
    fn tls_binds_name_only_their_own_certificate_files() {
        let own = "/srv/agent/certs/lb-1";
        let allowed = [
            format!("bind 127.0.50.1:8080 ssl crt {own}/www.pem"),
            format!(
                "bind 127.0.50.1:8080 ssl crt {own}/www.pem crt {own}/sni-1.pem ca-file \
                 {own}/ca.pem crl-file {own}/crl.pem verify required alpn h2,http/1.1 \
                 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE+AESGCM \
                 ciphersuites TLS_AES_128_GCM_SHA256"
            ),
            "http-response set-header Strict-Transport-Security max-age=31536000;includeSubDomains;preload".into(),
            "http-response set-header Strict-Transport-Security max-age=0".into(),
            "http-response set-header Strict-Transport-Security 'max-age=31536000; includeSubDomains; preload;'".into(),
            "http-response set-header Strict-Transport-Security 'max-age=300;'".into(),
            // Relative to HAProxy's crt-base and ca-base: the load balancer's own folder.
            "bind 127.0.50.1:8080 ssl crt lb-1/www.pem ca-file lb-1/ca.pem crl-file lb-1/crl.pem \
             verify optional"
                .into(),
            "http-request set-header X-SSL-Client-CN %{+Q}[ssl_c_s_dn(cn)]".into(),
        ];
        let backend_allowed = [format!(
            "server m-1 127.0.0.1:8001 ssl verify required ca-file {own}/members-ca.pem \
             crl-file {own}/members-crl.pem crt {own}/client.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2"
        )];
        let backend_refused = [
            "server m-1 127.0.0.1:8001 ssl verify required ca-file /srv/agent/certs/lb-2/ca.pem"
                .to_owned(),
            "server m-1 127.0.0.1:8001 ssl crt /etc/ssl/private/host.pem".to_owned(),
            "server m-1 127.0.0.1:8001 ssl verify optional".to_owned(),
        ];
        for line in &backend_allowed {
            let config = format!("backend p-1\n    {line}\n");
            check(&config, &policy(), &scope()).unwrap_or_else(|v| panic!("{line}: {v}"));
        }
        for line in &backend_refused {
            let config = format!("backend p-1\n    {line}\n");
            assert!(check(&config, &policy(), &scope()).is_err(), "{line}");
        }
        for line in &allowed {
            let config = format!("frontend l-1\n    {line}\n");
            check(&config, &policy(), &scope()).unwrap_or_else(|v| panic!("{line}: {v}"));
        }
        let refused = [
            "bind 127.0.50.1:8080 ssl crt /srv/agent/certs/lb-2/www.pem".to_owned(),
            "bind 127.0.50.1:8080 ssl crt /etc/ssl/private/host.pem".to_owned(),
            format!("bind 127.0.50.1:8080 ssl crt {own}/../lb-2/www.pem"),
            format!("bind 127.0.50.1:8080 ssl crt {own}/www.key"),
            format!("bind 127.0.50.1:8080 ssl crt {own}/"),
            format!("bind 127.0.50.1:8080 crt {own}/www.pem"),
            "bind 127.0.50.1:8080 ssl".to_owned(),
            format!("bind 127.0.50.1:8080 ssl crt {own}/www.pem verify sometimes"),
            format!("bind 127.0.50.1:8080 ssl crt {own}/www.pem alpn spdy/3"),
            format!("bind 127.0.50.1:8080 ssl crt {own}/www.pem crt-list {own}/list.txt"),
            format!("bind 127.0.50.1:8080 ssl crt {own}/www.pem ciphers a/b"),
            format!("bind 127.0.50.1:8080 ssl crt {own}/www.pem ca-file"),
            format!("bind 127.0.50.1:8080 ssl crt {own}/www.pem defer-accept"),
            "http-response set-header X-Other yes".to_owned(),
            "http-response set-header Strict-Transport-Security max-age=1;evil".to_owned(),
            "http-response set-header Strict-Transport-Security 'max-age=1; evil;'".to_owned(),
            "http-response set-header Strict-Transport-Security 'max-age=1; preload; preload;'"
                .to_owned(),
            "http-response set-header Strict-Transport-Security 'max-age=1;' x".to_owned(),
            "http-response set-header X-Evil 'max-age=1;'".to_owned(),
            "bind 127.0.50.1:8080 ssl crt lb-2/www.pem".to_owned(),
            "bind 127.0.50.1:8080 ssl crt lb-1/../lb-2/www.pem".to_owned(),
            "bind 127.0.50.1:8080 ssl crt ./lb-1/www.pem".to_owned(),
            "bind 127.0.50.1:8080 ssl crt www.pem".to_owned(),
            "bind 127.0.50.1:8080 ssl crt lb-1/sub/www.pem".to_owned(),
            "http-request set-header X-SSL-Client-CN %[env(HOME)]".to_owned(),
        ];
        for line in &refused {
            let config = format!("frontend l-1\n    {line}\n");
            let keyword = line.split_whitespace().next().unwrap_or_default();
            let violation = check(&config, &policy(), &scope()).expect_err(line);
            assert_eq!(violation.keyword, keyword, "{line}: {violation}");
        }
        // A device without a certificate folder takes no certificate.
        let none = ConfigPolicy {
            certificates: None,
            ..policy()
        };
        let config = format!("frontend l-1\n    bind 127.0.50.1:8080 ssl crt {own}/www.pem\n");
        assert!(check(&config, &none, &scope()).is_err());
    }

    #[test]
    fn hostile_configurations_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("program evil\n    command /bin/sh -c id", "program"),
            ("global\n    lua-load /tmp/x.lua", "lua-load"),
            (
                "global\n    stats socket /tmp/admin.sock level admin",
                "stats",
            ),
            ("global\n    user root", "user"),
            (
                "backend p-9\n    option external-check\n    external-check command /bin/sh",
                "option",
            ),
            (
                "backend p-9\n    external-check command /bin/sh",
                "external-check",
            ),
            (
                "frontend l-9\n    http-request return status 200 file /etc/shadow",
                "http-request",
            ),
            ("frontend l-9\n    errorfile 503 /etc/passwd", "errorfile"),
            (
                "frontend l-9\n    bind 127.0.0.1:80 ssl crt /var/lib/lbaas/key.pem",
                "bind",
            ),
            ("frontend l-9\n    bind /tmp/haproxy.sock", "bind"),
            ("frontend l-9\n    bind unix@/tmp/x.sock", "bind"),
            ("frontend l-9\n    bind 127.128.0.1:9443", "bind"),
            ("frontend l-9\n    log /dev/log local0", "log"),
            (
                "backend p-9\n    server s /run/haproxy/admin.sock",
                "server",
            ),
            ("backend p-9\n    server s abns@x", "server"),
            ("backend p-9\n    server s localhost:80", "server"),
            (
                "backend p-9\n    server s 127.0.0.1:80 ca-file /etc/ssl/x.pem verify required",
                "server",
            ),
            (
                "backend p-9\n    server s 127.0.0.1:80 check addr 127.128.0.1 port 9443",
                "server",
            ),
            ("backend p-9\n    server s 127.128.0.1:9443", "server"),
            ("backend p-9\n    server s \"${HOME}\":80", "server"),
            (
                "backend p-9\n    option httpchk GET /x HTTP/1.1\\r\\nHost:\\ x",
                "option",
            ),
            (
                "backend p-9\n    http-check expect rstatus .*",
                "http-check",
            ),
            (
                "backend p-9\n    http-check send hdr X-Forwarded-For 10.0.0.1",
                "http-check",
            ),
            (
                "backend p-9\n    http-check send hdr Host a\\r\\nX:\\ y",
                "http-check",
            ),
            (
                "backend p-9\n    http-check send meth GET uri /x body secret",
                "http-check",
            ),
            (
                "userlist admins\n    user a insecure-password b",
                "userlist",
            ),
            (".if defined(HOME)\n.endif", ".if"),
            // L7 lines: sample expressions in a redirect, flags that read files, quotes
            // anywhere else, a value left unquoted.
            (
                "frontend l-9\n    http-request redirect location 'https://x/%[env(HOME)]' code 302 if a",
                "http-request",
            ),
            (
                "frontend l-9\n    http-request redirect location 'file:///etc/passwd' code 302 if a",
                "http-request",
            ),
            (
                "frontend l-9\n    acl a req.hdr(x) -f /etc/passwd -m str -- 'v'",
                "acl",
            ),
            ("frontend l-9\n    acl a path -m beg /api", "acl"),
            (
                "frontend l-9\n    acl a path -m beg -- 'unterminated",
                "acl",
            ),
            ("frontend l-9\n    acl a path -m beg -- \"${HOME}\"", "acl"),
            ("backend p-9\n    server s '127.0.0.1:80'", "server"),
            (
                "frontend l-9\n    http-request set-var(txn.l7_pool) str(p) if { env(HOME) -m found }",
                "http-request",
            ),
            ("frontend l-9\n    use_backend %[env(HOME)]", "use_backend"),
            ("    maxconn 10", "maxconn"),
            ("frontend l-9\n    mode http # trailing", "mode"),
            ("frontend l-9 extra", "frontend"),
            (
                "frontend l-9\n    default_backend p\u{0}",
                "default_backend",
            ),
            // The agent's own sections (its metrics backend, HAProxy's exporter) are not a
            // driver's to define or shadow.
            ("backend lbaas-metrics\n    mode http", "backend"),
            ("frontend lbaas-exporter\n    mode http", "frontend"),
            ("defaults lbaas-internal\n    mode http", "defaults"),
        ];
        for (config, keyword) in cases {
            let violation = check(config, &policy(), &scope())
                .expect_err(&format!("{config:?} must be refused"));
            assert_eq!(&violation.keyword, keyword, "{config:?}: {violation}");
            assert!(violation.line >= 1, "{violation}");
            assert!(
                violation
                    .to_string()
                    .starts_with(&format!("line {}: `{keyword}`", violation.line))
            );
        }
    }

    #[test]
    fn the_refusal_names_the_line() {
        let config = format!("{DRIVER_OUTPUT}\nprogram evil\n    command /bin/sh -c id\n");
        let violation = check(&config, &policy(), &scope()).expect_err("refused");
        let line = config
            .lines()
            .position(|l| l == "program evil")
            .expect("line")
            + 1;
        assert_eq!(violation.line, line);
        assert_eq!(
            violation.to_string(),
            format!("line {line}: `program` section is not allowed on this device")
        );
    }

    #[test]
    fn networks_bound_servers_and_binds() {
        let restricted = ConfigPolicy {
            servers: vec!["10.0.0.0/8".parse().expect("cidr")],
            binds: vec!["127.0.50.0/24".parse().expect("cidr")],
            reserved: Vec::new(),
            certificates: None,
        };
        let scope = Scope {
            binds: vec![
                "127.0.50.1:80".parse().expect("socket"),
                "0.0.0.0:22".parse().expect("socket"),
            ],
            servers: vec![
                "10.1.1.1:80".parse().expect("socket"),
                "127.0.0.1:9876".parse().expect("socket"),
            ],
            checks: vec![
                "10.1.1.1:80".parse().expect("socket"),
                "127.0.0.1:80".parse().expect("socket"),
            ],
            ..Scope::default()
        };
        let ok = "frontend l\n    bind 127.0.50.1:80\nbackend p\n    server m 10.1.1.1:80 check\n";
        assert_eq!(check(ok, &restricted, &scope), Ok(()));
        // In the scope, and still outside the operator's networks.
        let outside = "backend p\n    server m 127.0.0.1:9876\n";
        let violation = check(outside, &restricted, &scope).expect_err("refused");
        assert!(violation.reason.contains("outside"), "{violation}");
        let bind = "frontend l\n    bind 0.0.0.0:22\n";
        assert!(check(bind, &restricted, &scope).is_err());
        let check_elsewhere = "backend p\n    server m 10.1.1.1:80 check addr 127.0.0.1\n";
        assert!(check(check_elsewhere, &restricted, &scope).is_err());
    }
}

//! Changes HAProxy takes while it runs, without a reload.
//!
//! A reload re-reads every load balancer's file and starts a new worker: on a device with a
//! few thousand frontends it takes the best part of a second, and it is what every change
//! cost. Most changes of a running load balancer are to its members, and HAProxy's runtime API
//! changes a server's weight, address and port and its maintenance state, and adds and removes
//! servers, in a fraction of a millisecond. [`plan`] compares the installed file with the next
//! one: when they differ only in `server` lines, and every difference is one the runtime API
//! applies exactly as a reload of the new file would, it gives the commands; otherwise `None`,
//! and the agent reloads.
//!
//! The lines come from a driver and passed the [policy](crate::policy) with the load balancer's
//! scope, but they become commands on HAProxy's admin socket, where `;` starts another command
//! and a few other bytes mean something: a command is built only from words of the plain
//! characters below, and a line holding anything else is left to a reload.
//!
//! What is left to a reload, as HAProxy 2.6's runtime API does not apply it as the file would:
//! any change outside `server` lines (a backend's algorithm, a health monitor, a frontend, TLS);
//! a server whose other keywords change (`backup`, checks, `send-proxy`); new servers with
//! keywords `add server` does not take or applies differently (`cookie`, TLS, anything not
//! listed in [`ADDABLE`]) or in a file with `default-server` lines (a dynamic server does not
//! inherit them). A command HAProxy refuses (a static algorithm such as `balance source` takes
//! no new server; a server with connections cannot be deleted) makes the agent reload too.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Keywords a new server may carry to be added at run time: flags, and keywords with one value.
const ADDABLE: &[(&str, bool)] = &[
    ("check", false),
    ("send-proxy", false),
    ("send-proxy-v2", false),
    ("backup", false),
    ("disabled", false),
    ("weight", true),
    ("inter", true),
    ("fall", true),
    ("rise", true),
    ("addr", true),
    ("port", true),
];

/// Largest weight HAProxy takes.
const MAX_WEIGHT: u32 = 256;

/// One `server` line, read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Server<'a> {
    /// The address word as written (`10.0.0.1:80`, `ipv6@fd00::1:80`).
    address: &'a str,
    ip: IpAddr,
    port: u16,
    weight: Option<u32>,
    disabled: bool,
    /// Every other word, in order.
    rest: Vec<&'a str>,
}

/// A configuration split into what the runtime API cannot change (every line but servers'),
/// and each backend's servers by name.
struct Split<'a> {
    fixed: Vec<&'a str>,
    servers: BTreeMap<(&'a str, &'a str), Server<'a>>,
    default_server: bool,
}

/// A word that means nothing but itself on HAProxy's command line.
fn plain(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= 128
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_' | b'-' | b'@'))
}

fn split(config: &str) -> Option<Split<'_>> {
    let mut fixed = Vec::new();
    let mut servers = BTreeMap::new();
    let mut backend: Option<&str> = None;
    let mut default_server = false;
    for line in config.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("frontend" | "defaults" | "global" | "peers" | "userlist") => backend = None,
            Some("backend" | "listen") => backend = words.next(),
            Some("default-server") => default_server = true,
            Some("server") if backend.is_some() => {
                let backend = backend?;
                let name = words.next()?;
                let server = read_server(words)?;
                if !plain(backend) || !plain(name) {
                    return None;
                }
                // A name given twice is HAProxy's to refuse, at a reload.
                if servers.insert((backend, name), server).is_some() {
                    return None;
                }
                continue;
            }
            _ => {}
        }
        fixed.push(line.trim_end());
    }
    Some(Split {
        fixed,
        servers,
        default_server,
    })
}

fn read_server<'a>(mut words: std::str::SplitWhitespace<'a>) -> Option<Server<'a>> {
    let address = words.next()?;
    let bare = address
        .strip_prefix("ipv4@")
        .or_else(|| address.strip_prefix("ipv6@"))
        .unwrap_or(address);
    let (ip, port) = bare.rsplit_once(':')?;
    let mut server = Server {
        address,
        ip: ip.parse().ok()?,
        port: port.parse().ok()?,
        weight: None,
        disabled: false,
        rest: Vec::new(),
    };
    while let Some(word) = words.next() {
        if !plain(word) {
            return None;
        }
        match word {
            "weight" => {
                let weight = words.next()?.parse().ok()?;
                if weight > MAX_WEIGHT || server.weight.replace(weight).is_some() {
                    return None;
                }
            }
            "disabled" => server.disabled = true,
            _ => server.rest.push(word),
        }
    }
    plain(address).then_some(server)
}

/// The runtime commands that take HAProxy from `installed` to `next`, in order; `None` when a
/// reload is needed (see the module's text). An empty plan means nothing changes that HAProxy
/// sees (say, a comment).
pub fn plan(installed: &str, next: &str) -> Option<Vec<String>> {
    let before = split(installed)?;
    let after = split(next)?;
    if before.fixed != after.fixed {
        return None;
    }
    let mut commands = Vec::new();
    // Removals first: a server renamed is one removed and one added.
    for (backend, name) in before.servers.keys() {
        if !after.servers.contains_key(&(backend, name)) {
            commands.push(format!("set server {backend}/{name} state maint"));
            commands.push(format!("del server {backend}/{name}"));
        }
    }
    for ((backend, name), new) in &after.servers {
        let target = format!("{backend}/{name}");
        match before.servers.get(&(backend, name)) {
            Some(old) => changed(&mut commands, &target, old, new)?,
            None => added(&mut commands, &target, new, after.default_server)?,
        }
    }
    Some(commands)
}

fn changed(
    commands: &mut Vec<String>,
    target: &str,
    old: &Server<'_>,
    new: &Server<'_>,
) -> Option<()> {
    if old.rest != new.rest {
        return None;
    }
    if (old.ip, old.port) != (new.ip, new.port) {
        commands.push(format!(
            "set server {target} addr {} port {}",
            new.ip, new.port
        ));
    }
    // A server without a weight has HAProxy's default of 1.
    let weight = |server: &Server<'_>| server.weight.unwrap_or(1);
    if weight(old) != weight(new) {
        commands.push(format!("set server {target} weight {}", weight(new)));
    }
    if old.disabled != new.disabled {
        let state = if new.disabled { "maint" } else { "ready" };
        commands.push(format!("set server {target} state {state}"));
    }
    Some(())
}

fn added(
    commands: &mut Vec<String>,
    target: &str,
    new: &Server<'_>,
    default_server: bool,
) -> Option<()> {
    if default_server {
        return None;
    }
    let mut line = format!("add server {target} {}", new.address);
    let mut words = new.rest.iter();
    while let Some(word) = words.next() {
        let (_, valued) = ADDABLE.iter().find(|(keyword, _)| keyword == word)?;
        line.push(' ');
        line.push_str(word);
        if *valued {
            line.push(' ');
            line.push_str(words.next()?);
        }
    }
    if let Some(weight) = new.weight {
        line.push_str(&format!(" weight {weight}"));
    }
    // A server added at run time starts in maintenance, its checks off.
    commands.push(line);
    if new.rest.contains(&"check") {
        commands.push(format!("enable health {target}"));
    }
    if !new.disabled {
        commands.push(format!("set server {target} state ready"));
    }
    Some(())
}

/// Whether HAProxy's answer to one of [`plan`]'s commands says it was done. Its successes are
/// silence or one of a few sentences; anything else is its refusal.
pub fn succeeded(command: &str, answer: &str) -> bool {
    let answer = answer.trim();
    if answer.is_empty() {
        return true;
    }
    let verb = command.split_whitespace().take(2).collect::<Vec<_>>();
    match verb.as_slice() {
        ["add", "server"] => answer == "New server registered.",
        ["del", "server"] => answer == "Server deleted.",
        ["set", "server"] if command.contains(" addr ") => {
            answer.starts_with("IP changed from") || answer.starts_with("no need to change")
        }
        _ => false,
    }
}

/// Whether HAProxy refused to delete a server only because connections still use it.
pub fn busy(answer: &str) -> bool {
    answer.contains("still has connections")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "frontend l1\n    bind 10.0.0.10:80\n    default_backend p1\n\n\
                        backend p1\n    mode http\n    balance roundrobin\n\
                        \x20   server m1 10.0.1.1:8080 weight 1 check inter 5s fall 3 rise 2\n\
                        \x20   server m2 10.0.1.2:8080 weight 1 check inter 5s fall 3 rise 2\n";

    const BALANCE: &str = "    balance roundrobin\n";

    fn commands(installed: &str, next: &str) -> Vec<String> {
        plan(installed, next).expect("a plan without a reload")
    }

    fn with_weight(config: &str) -> String {
        config.replacen("weight 1", "weight 3", 1)
    }

    fn with(m2: &str) -> String {
        BASE.replace(
            "    server m2 10.0.1.2:8080 weight 1 check inter 5s fall 3 rise 2\n",
            m2,
        )
    }

    #[test]
    fn member_changes_become_commands() {
        let next = with("    server m2 10.0.1.3:9090 weight 7 check inter 5s fall 3 rise 2\n");
        assert_eq!(
            commands(BASE, &next),
            [
                "set server p1/m2 addr 10.0.1.3 port 9090",
                "set server p1/m2 weight 7"
            ]
        );
        let disabled =
            with("    server m2 10.0.1.2:8080 weight 1 check inter 5s fall 3 rise 2 disabled\n");
        assert_eq!(commands(BASE, &disabled), ["set server p1/m2 state maint"]);
        assert_eq!(commands(&disabled, BASE), ["set server p1/m2 state ready"]);
        assert_eq!(commands(BASE, BASE), Vec::<String>::new());
    }

    #[test]
    fn servers_come_and_go() {
        let removed = with("");
        assert_eq!(
            commands(BASE, &removed),
            ["set server p1/m2 state maint", "del server p1/m2"]
        );
        let v6 = BASE.replace(
            BALANCE,
            "    balance roundrobin\n    server m3 ipv6@fd00::3:80 weight 4 check inter 5s fall 3 rise 2 send-proxy\n",
        );
        assert_eq!(
            commands(BASE, &v6),
            [
                "add server p1/m3 ipv6@fd00::3:80 check inter 5s fall 3 rise 2 send-proxy weight 4",
                "enable health p1/m3",
                "set server p1/m3 state ready",
            ]
        );
    }

    #[test]
    fn what_the_runtime_api_cannot_do_is_a_reload() {
        // Anything outside server lines.
        let algorithm = BASE.replace("roundrobin", "leastconn");
        assert_eq!(plan(BASE, &algorithm), None);
        // A server's other keywords.
        let backup =
            with("    server m2 10.0.1.2:8080 weight 1 check inter 5s fall 3 rise 2 backup\n");
        assert_eq!(plan(BASE, &backup), None);
        // New servers with what `add server` does not take, or would apply otherwise.
        let cookie = BASE.replace(
            BALANCE,
            "    balance roundrobin\n    server m3 10.0.1.3:80 cookie m3\n",
        );
        assert_eq!(plan(BASE, &cookie), None);
        let tls = BASE.replace(
            BALANCE,
            "    balance roundrobin\n    server m3 10.0.1.3:80 ssl verify none\n",
        );
        assert_eq!(plan(BASE, &tls), None);
        // A dynamic server does not inherit `default-server`: what the file says would differ.
        let defaults = format!("{BASE}    default-server inter 2s\n");
        let added = format!("{defaults}    server m3 10.0.1.3:80\n");
        assert_eq!(plan(&defaults, &added), None);
        assert_eq!(
            commands(&defaults, &with_weight(&defaults)),
            ["set server p1/m1 weight 3"]
        );
        // A weight HAProxy would refuse.
        let heavy = with("    server m2 10.0.1.2:8080 weight 257 check inter 5s fall 3 rise 2\n");
        assert_eq!(plan(BASE, &heavy), None);
    }

    #[test]
    fn nothing_becomes_a_second_command() {
        // `;` separates commands on HAProxy's socket; `#` starts a comment.
        for hostile in [
            "    server m3 10.0.1.3:80 weight 1;shutdown sessions server p9/x\n",
            "    server m3 10.0.1.3:80 inter 1s;del server p9/x\n",
            "    server m3;x 10.0.1.3:80\n",
            "    server m3 10.0.1.3:80 fall 1#x\n",
            "    server m3 10.0.1.3:80 rise \"1\"\n",
        ] {
            let next = BASE.replace(BALANCE, &format!("{BALANCE}{hostile}"));
            assert_eq!(plan(BASE, &next), None, "{hostile}");
        }
        let section = BASE.replace("backend p1", "backend p1;x");
        let next = format!("{section}    server m3 10.0.1.3:80\n");
        assert_eq!(plan(&section, &next), None);
    }

    #[test]
    fn reads_haproxys_answers() {
        assert!(succeeded("set server p1/m2 weight 7", "\n"));
        assert!(succeeded(
            "add server p1/m3 10.0.0.1:80",
            "New server registered.\n\n"
        ));
        assert!(succeeded("del server p1/m3", "Server deleted.\n"));
        assert!(succeeded(
            "set server p1/m2 addr 10.0.0.2 port 81",
            "IP changed from '10.0.0.1' to '10.0.0.2', port changed from '80' to '81' by 'stats socket command'\n"
        ));
        assert!(!succeeded(
            "add server p1/m3 10.0.0.1:80 cookie x",
            "'cookie' option is not accepted for dynamic server\n"
        ));
        let busy = "Server still has connections attached to it, cannot remove it.\n";
        assert!(!succeeded("del server p1/m3", busy));
        assert!(super::busy(busy) && !super::busy("No such server.\n"));
        assert!(!succeeded("set server p1/m9 weight 2", "No such server.\n"));
    }
}

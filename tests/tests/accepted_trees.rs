//! Nothing the API accepts then fails: random load balancer trees (listeners of every plain
//! protocol with their pools, members, health monitors, session persistence, inserted headers,
//! allowed CIDRs, timeouts and L7 policies, for each bundled provider) go to the API; every one
//! it accepts is rendered by its provider's driver from what a job would send it, and an
//! HAProxy configuration also passes the device agent's allow-list and `haproxy -c`. What the
//! provider cannot render must be refused up front (a 400 or a 501), never accepted to end in
//! `ERROR`.

use std::sync::atomic::{AtomicUsize, Ordering};

use lbaas_host::api::Auth;
use lbaas_host::runtime::DeviceKind;
use lbaas_tests::control::ControlPlane;
use lbaas_tests::model::device;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

fn one_of(values: &'static [&'static str]) -> impl Strategy<Value = &'static str> + Clone {
    prop::sample::select(values)
}

fn monitor() -> impl Strategy<Value = Value> {
    (
        one_of(&[
            "HTTP",
            "HTTPS",
            "TCP",
            "PING",
            "TLS-HELLO",
            "UDP-CONNECT",
            "SCTP",
        ]),
        (1..30u32, 1..30u32, 1..=10u32, 1..=10u32),
        prop::option::of(one_of(&["GET", "HEAD", "POST", "OPTIONS"])),
        prop::option::of(one_of(&["/", "/health", "/a/b?c=d"])),
        prop::option::of(one_of(&["200", "200,202", "200-204", "301"])),
        prop::option::of((
            one_of(&["1.0", "1.1"]),
            prop::option::of(one_of(&["example.com", "www.example.com"])),
        )),
        any::<bool>(),
    )
        .prop_map(
            |(kind, (delay, timeout, retries, down), method, path, codes, http, up)| {
                let mut monitor = json!({"type": kind, "delay": delay, "timeout": timeout,
                                         "max_retries": retries, "max_retries_down": down,
                                         "admin_state_up": up});
                if matches!(kind, "HTTP" | "HTTPS") {
                    monitor["http_method"] = json!(method);
                    monitor["url_path"] = json!(path);
                    monitor["expected_codes"] = json!(codes);
                    if let Some((version, domain)) = http {
                        monitor["http_version"] = json!(version.parse::<f64>().unwrap_or(1.0));
                        if version == "1.1" {
                            monitor["domain_name"] = json!(domain);
                        }
                    }
                }
                monitor
            },
        )
}

fn member() -> impl Strategy<Value = Value> {
    (
        1..=250u8,
        1..=65535u16,
        0..=256u16,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1..=65535u16),
    )
        .prop_map(|(host, port, weight, backup, up, monitor_port)| {
            let mut member = json!({"address": format!("10.2.0.{host}"), "protocol_port": port,
                                    "weight": weight, "backup": backup, "admin_state_up": up});
            if let Some(port) = monitor_port {
                member["monitor_port"] = json!(port);
            }
            member
        })
}

/// The pool protocols Octavia lets a listener of `protocol` use.
fn pool_protocols(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "HTTP" => &["HTTP", "PROXY", "PROXYV2"],
        "HTTPS" => &["HTTPS", "TCP", "PROXY", "PROXYV2"],
        "TCP" => &["TCP", "HTTP", "HTTPS", "PROXY", "PROXYV2"],
        "UDP" => &["UDP"],
        // A metrics listener takes no pool: one given is Octavia's 400.
        "PROMETHEUS" => &["HTTP"],
        _ => &["SCTP"],
    }
}

/// A pool for a listener of `protocol`: mostly of a protocol Octavia allows there, sometimes
/// of any (which the API must refuse, or render).
fn pool(protocol: &'static str) -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            4 => one_of(pool_protocols(protocol)),
            1 => one_of(&["HTTP", "HTTPS", "TCP", "UDP", "SCTP", "PROXY", "PROXYV2"])
        ],
        one_of(&[
            "ROUND_ROBIN",
            "LEAST_CONNECTIONS",
            "SOURCE_IP",
            "SOURCE_IP_PORT",
        ]),
        prop::option::of(one_of(&["SOURCE_IP", "HTTP_COOKIE", "APP_COOKIE"])),
        prop::collection::vec(member(), 0..3),
        prop::option::of(monitor()),
        any::<bool>(),
    )
        .prop_map(|(protocol, algorithm, persistence, members, monitor, up)| {
            let mut pool = json!({"protocol": protocol, "lb_algorithm": algorithm,
                                  "members": members, "admin_state_up": up});
            if let Some(kind) = persistence {
                pool["session_persistence"] = json!({"type": kind});
                if kind == "APP_COOKIE" {
                    pool["session_persistence"]["cookie_name"] = json!("JSESSIONID");
                }
            }
            if let Some(monitor) = monitor {
                pool["healthmonitor"] = monitor;
            }
            pool
        })
}

fn rule() -> impl Strategy<Value = Value> {
    (
        one_of(&["HOST_NAME", "PATH", "FILE_TYPE", "HEADER", "COOKIE"]),
        one_of(&["REGEX", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "EQUAL_TO"]),
        one_of(&["/api", "example.com", "json", "a b", "^x.*$", "it's"]),
        any::<bool>(),
    )
        .prop_map(|(kind, compare, value, invert)| {
            let mut rule = json!({"type": kind, "compare_type": compare, "value": value,
                                  "invert": invert});
            if matches!(kind, "HEADER" | "COOKIE") {
                rule["key"] = json!("X-Key");
            }
            rule
        })
}

fn policy() -> impl Strategy<Value = Value> {
    (
        one_of(&[
            "REJECT",
            "REDIRECT_TO_URL",
            "REDIRECT_PREFIX",
            "REDIRECT_TO_POOL",
        ]),
        prop::collection::vec(rule(), 1..3),
        pool("HTTP"),
        prop::option::of(one_of(&["301", "302", "303", "307", "308"])),
    )
        .prop_map(|(action, rules, pool, code)| {
            let mut policy = json!({"action": action, "rules": rules});
            match action {
                "REDIRECT_TO_URL" => policy["redirect_url"] = json!("https://example.com/x"),
                "REDIRECT_PREFIX" => policy["redirect_prefix"] = json!("https://example.com"),
                "REDIRECT_TO_POOL" => policy["redirect_pool"] = pool,
                _ => {}
            }
            if let Some(code) =
                code.filter(|_| action.starts_with("REDIRECT_T") || action == "REDIRECT_PREFIX")
            {
                policy["redirect_http_code"] = json!(code.parse::<u16>().unwrap_or(302));
            }
            policy
        })
}

fn listener(port: u16) -> impl Strategy<Value = Value> {
    // HTTP most often: its pools, headers and L7 policies have the most to render.
    prop_oneof![
        3 => Just("HTTP"),
        2 => Just("HTTPS"),
        2 => Just("TCP"),
        1 => Just("UDP"),
        1 => Just("SCTP"),
        1 => Just("PROMETHEUS"),
    ]
    .prop_flat_map(move |protocol| {
        (
            prop::option::of(pool(protocol)),
            prop::sample::subsequence(
                vec!["X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"],
                0..=3,
            ),
            prop::option::of(one_of(&["10.0.0.0/8", "192.168.1.0/24"])),
            prop::option::of((0..100_000u32, 0..100_000u32)),
            prop::option::of(prop_oneof![Just(-1i64), 1..10_000i64]),
            prop::collection::vec(policy(), 0..3),
            any::<bool>(),
        )
            .prop_map(
                move |(pool, headers, cidr, timeouts, limit, policies, up)| {
                    let mut listener = json!({"protocol": protocol, "protocol_port": port,
                                              "admin_state_up": up});
                    if let Some(pool) = pool {
                        listener["default_pool"] = pool;
                    }
                    // Octavia takes inserted headers and L7 policies on HTTP listeners alone.
                    let http = protocol == "HTTP";
                    if http && !headers.is_empty() {
                        listener["insert_headers"] = headers
                            .iter()
                            .map(|h| ((*h).to_owned(), json!("true")))
                            .collect::<serde_json::Map<_, _>>()
                            .into();
                    }
                    if let Some(cidr) = cidr {
                        listener["allowed_cidrs"] = json!([cidr]);
                    }
                    if let Some((client, member)) = timeouts {
                        listener["timeout_client_data"] = json!(client);
                        listener["timeout_member_data"] = json!(member);
                    }
                    if let Some(limit) = limit {
                        listener["connection_limit"] = json!(limit);
                    }
                    if http && !policies.is_empty() {
                        listener["l7policies"] = json!(policies);
                    }
                    listener
                },
            )
    })
}

fn tree(provider: &'static str) -> impl Strategy<Value = Value> {
    (listener(8080), prop::option::of(listener(9090))).prop_map(move |(first, second)| {
        let listeners: Vec<Value> = std::iter::once(first).chain(second).collect();
        json!({"loadbalancer": {"name": "generated", "vip_subnet_id": "subnet-generated",
                                "provider": provider, "listeners": listeners}})
    })
}

/// Sends `cases` random trees for `provider`; every accepted one must render.
fn accepted_trees_render(provider: &'static str, kind: DeviceKind) {
    let data = tempfile::tempdir().expect("temp dir");
    let host = ControlPlane::start(data.path(), Auth::None);
    let admin = host.client(None);
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-generated",
                "subnets": [{"id": "subnet-generated", "cidr": "10.1.0.0/16"}]}}),
    );
    let tenant = host.client(None).as_project("tenant");
    let on = device("generated", kind, 1_000, None);
    let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let reasons = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    let cases = 256;
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&tree(provider), |tree| {
        let (status, body) = tenant.post("/v2/lbaas/loadbalancers", &tree);
        prop_assert!(
            matches!(status, 201 | 400 | 501),
            "the API answered {status}: {body}\n{tree:#}"
        );
        if status != 201 {
            refused.fetch_add(1, Ordering::Relaxed);
            let reason = body["faultstring"].as_str().unwrap_or_default();
            *reasons
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(reason.chars().take(60).collect::<String>())
                .or_default() += 1;
            return Ok(());
        }
        accepted.fetch_add(1, Ordering::Relaxed);
        let id = body["loadbalancer"]["id"].as_str().unwrap_or_default();
        let (driver, model) = host
            .plane
            .driver_input(id)
            .expect("the job's input")
            .expect("the load balancer");
        let rendered = driver.translate(&model, &on);
        prop_assert!(
            rendered.is_ok(),
            "accepted, then refused by the {provider} driver: {:?}\n{tree:#}",
            rendered.err()
        );
        if kind == DeviceKind::Virtual {
            let config = rendered.map(|c| c.body).unwrap_or_default();
            let checked = lbaas_tests::haproxy_check(&config, &model);
            prop_assert!(
                checked.is_ok(),
                "accepted, rendered, then refused on the device: {checked:?}\n{tree:#}\n{config}"
            );
        }
        let (status, body) = tenant.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"));
        prop_assert!(matches!(status, 204 | 409), "delete: {status} {body}");
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    eprintln!("{provider}: {accepted} trees accepted and rendered, {refused} refused:");
    for (reason, count) in reasons.into_inner().unwrap_or_else(|e| e.into_inner()) {
        eprintln!("  {count:>4}  {reason}");
    }
    // A generator whose trees the API always refuses would prove nothing.
    assert!(
        accepted * 5 >= cases as usize,
        "only {accepted} of {cases} trees were accepted"
    );
}

#[test]
fn every_tree_the_api_accepts_for_haproxy_renders_and_passes_haproxy() {
    accepted_trees_render("haproxy", DeviceKind::Virtual);
}

#[test]
fn every_tree_the_api_accepts_for_acme_renders() {
    accepted_trees_render("acme-adc", DeviceKind::Physical);
}

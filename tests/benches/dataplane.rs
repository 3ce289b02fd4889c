//! The data plane under change (issue 30): the device agent with a real HAProxy, driven as the
//! host drives it (a load balancer's whole configuration with its scope), without a host in
//! between.
//!
//! - **Member change to traffic**: on a device serving [`BACKGROUND`] other frontends, a load
//!   balancer's member is replaced by one on another backend; the time from the change to the
//!   first request answered by the new member. Through the runtime API (the agent's default),
//!   against the same change on an agent that reloads for everything (`--reload-only`).
//! - **Steady load**: [`CLIENTS`] clients send requests without pause through a load balancer
//!   while it goes through [`MEMBER_CHANGES`] member changes (weights, additions, removals) and
//!   [`LISTENER_CHANGES`] listener changes (a listener added or removed: reloads); every request
//!   that fails is counted.
//! - **Listener changes on a big device**: [`CHANGERS`] load balancers at once each add and
//!   remove a listener, on a device with [`BIG`] listeners, for [`SECONDS`] s; changes and
//!   reloads per second.
//!
//! Results go to `target/bench/dataplane.json` for `cargo xtask bench`.
//!
//! `cargo bench -p lbaas-tests --bench dataplane` (needs `haproxy`)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lbaas_agent::Applied;
use lbaas_tests::backend::{Backend, http_get};
use lbaas_tests::device::{Device, Lb, Member};

/// Frontends of other load balancers on the device of the member-change figures.
const BACKGROUND: usize = 1000;
/// Member changes timed per path.
const SAMPLES: usize = 30;
const CLIENTS: usize = 4;
const MEMBER_CHANGES: usize = 1000;
const LISTENER_CHANGES: usize = 100;
/// Listeners on the device of the listener-change figure, and the load balancers changing.
const BIG: usize = 5000;
const CHANGERS: usize = 64;
const SECONDS: u64 = 10;
const RUNS: usize = 3;

/// `count` listener addresses on loopback network `127.<net>.0.0/16`, port 8080.
fn addresses(net: u8, count: usize) -> Vec<SocketAddr> {
    (0..count)
        .map(|i| SocketAddr::from(([127, net, (i / 250) as u8, (i % 250 + 1) as u8], 8080)))
        .collect()
}

/// Load balancers of `per_lb` listeners each filling `addresses`, installed on `device` with one
/// member each.
fn fill(
    device: &Device,
    prefix: &str,
    addresses: Vec<SocketAddr>,
    per_lb: usize,
    member: SocketAddr,
) -> Vec<Lb> {
    let lbs: Vec<Lb> = addresses
        .chunks(per_lb)
        .enumerate()
        .map(|(n, vips)| Lb::listening(&format!("{prefix}{n}"), vips.to_vec()))
        .collect();
    std::thread::scope(|scope| {
        for chunk in lbs.chunks(lbs.len().div_ceil(16)) {
            scope.spawn(move || {
                for lb in chunk {
                    device
                        .put(lb, &[("m", member, 1)])
                        .expect("background installed");
                }
            });
        }
    });
    lbs
}

/// The time from each member change to the first request the new member answers, in ms.
fn member_changes(
    device: &Device,
    lb: &Lb,
    a: &Backend,
    b: &Backend,
    expected: Applied,
) -> Vec<f64> {
    let mut samples = Vec::new();
    for n in 0..SAMPLES {
        let (name, target) = if n % 2 == 0 { ("m-b", b) } else { ("m-a", a) };
        // Each change finds the device quiet: the reload figure is one reload's.
        std::thread::sleep(lbaas_agent::RELOAD_REST);
        let started = Instant::now();
        let changed = device.put(lb, &[(name, target.address, 1)]);
        assert_eq!(changed, Ok(expected), "change {n}");
        while http_get(lb.vip()).as_deref() != Some(target.name.as_str()) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the new member never answered"
            );
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples
}

fn member_change_figures(results: &mut BTreeMap<&'static str, Vec<f64>>) {
    let (a, b, other) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("other"),
    );
    for (name, device, expected) in [
        (
            "member-change-runtime-ms",
            Device::start(),
            Applied::Runtime,
        ),
        (
            "member-change-reload-ms",
            Device::reload_only(),
            Applied::Reload(false),
        ),
    ] {
        let net = if expected == Applied::Runtime { 61 } else { 62 };
        let _background = fill(&device, "bg", addresses(net, BACKGROUND), 10, other.address);
        let lb = Lb::new("measured");
        device
            .put(&lb, &[("m-a", a.address, 1)])
            .expect("installed");
        let samples = member_changes(&device, &lb, &a, &b, expected);
        println!("dataplane/{name}: {samples:.2?}");
        results.insert(name, samples);
    }
}

fn steady_load(results: &mut BTreeMap<&'static str, Vec<f64>>) {
    let device = Device::start();
    let backends: Vec<Backend> = (0..3).map(|n| Backend::start(&format!("s{n}"))).collect();
    let mut lb = Lb::new("steady");
    let second = Lb::new("unused").vip();
    let all: Vec<Member<'_>> = vec![
        ("s0", backends[0].address, 1),
        ("s1", backends[1].address, 1),
        ("s2", backends[2].address, 1),
    ];
    device.put(&lb, &all).expect("installed");
    let stop = AtomicBool::new(false);
    let (sent, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let reloads = device.reloads();
    let started = Instant::now();
    let vip = lb.vip();
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    if http_get(vip).is_none() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let every = MEMBER_CHANGES / LISTENER_CHANGES;
        for n in 0..MEMBER_CHANGES {
            // Weights, then one member out, then back: always at least two serving.
            let mut members = all.clone();
            match n % 4 {
                0 => members[0].2 = 3,
                1 => members[1].2 = 0,
                2 => {
                    members.remove(n % 3);
                }
                _ => {}
            }
            if n % every == 0 {
                // A listener added, then removed: a reload either way.
                lb.vips = if lb.vips.len() == 1 {
                    vec![lb.vip(), second]
                } else {
                    vec![lb.vip()]
                };
            }
            device.put(&lb, &members).expect("change applied");
        }
        stop.store(true, Ordering::Relaxed);
    });
    let took = started.elapsed().as_secs_f64();
    let (sent, failed) = (sent.into_inner(), failed.into_inner());
    let reloads = device.reloads() - reloads;
    println!(
        "dataplane/steady: {sent} requests in {took:.1} s, {failed} failed, {reloads} reloads"
    );
    results.insert("steady-failed-requests", vec![failed as f64]);
    results.insert("steady-requests", vec![sent as f64]);
    results.insert("steady-reloads", vec![reloads as f64]);
}

fn listener_changes(results: &mut BTreeMap<&'static str, Vec<f64>>) {
    let device = Device::start();
    let member = Backend::start("m");
    let mut lbs = fill(
        &device,
        "big",
        addresses(63, BIG),
        BIG / CHANGERS + 1,
        member.address,
    );
    let spare = addresses(64, lbs.len());
    for _ in 0..RUNS {
        let changes = AtomicU64::new(0);
        let reloads = device.reloads();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for (lb, extra) in lbs.iter_mut().zip(&spare) {
                let (device, changes, member) = (&device, &changes, &member);
                scope.spawn(move || {
                    while started.elapsed() < Duration::from_secs(SECONDS) {
                        // One listener more, then one less.
                        if lb.vips.last() == Some(extra) {
                            lb.vips.pop();
                        } else {
                            lb.vips.push(*extra);
                        }
                        device
                            .put(lb, &[("m", member.address, 1)])
                            .expect("listener change");
                        changes.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let took = started.elapsed().as_secs_f64();
        let reloads = (device.reloads() - reloads) as f64 / took;
        let per_second = changes.into_inner() as f64 / took;
        println!("dataplane/listener-changes: {per_second:.1} /s, {reloads:.2} reloads/s");
        results
            .entry("listener-changes-per-second")
            .or_default()
            .push(per_second);
        results
            .entry("reloads-per-second")
            .or_default()
            .push(reloads);
    }
}

fn main() {
    let mut results = BTreeMap::new();
    member_change_figures(&mut results);
    steady_load(&mut results);
    listener_changes(&mut results);
    lbaas_tests::record_bench("dataplane", &results);
}

//! The device agent against a real HAProxy: member changes go through HAProxy's runtime API
//! without a reload, traffic follows them at once, and what needs a reload is coalesced, one
//! reload for a window's changes, with a broken change failing only itself.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};

use lbaas_agent::Applied;
use lbaas_tests::backend::{Backend, http_get};
use lbaas_tests::device::{Device, Lb, Member};
use lbaas_tests::wait_until;

fn served(vip: SocketAddr, requests: usize) -> BTreeSet<String> {
    (0..requests)
        .filter_map(|_| http_get(vip))
        .collect::<BTreeSet<_>>()
}

fn wait_served(vip: SocketAddr, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    wait_until(&format!("{vip} serves {expected:?}"), || {
        served(vip, 8) == expected
    });
}

#[test]
fn member_changes_reach_traffic_without_a_reload() {
    let device = Device::start();
    let (b1, b2, b3) = (
        Backend::start("b1"),
        Backend::start("b2"),
        Backend::start("b3"),
    );
    let lb = Lb::new("lb1");
    assert_eq!(
        device.put(&lb, &[("m1", b1.address, 1), ("m2", b2.address, 1)]),
        Ok(Applied::Reload(true))
    );
    wait_served(lb.vip(), &["b1", "b2"]);
    let reloads = device.reloads();

    // A new member, a weight, a removal, a move to another address: all at run time, and the
    // very next requests see each.
    let steps: [(&[Member<'_>], &[&str]); 4] = [
        (
            &[
                ("m1", b1.address, 1),
                ("m2", b2.address, 1),
                ("m3", b3.address, 1),
            ],
            &["b1", "b2", "b3"],
        ),
        (
            &[
                ("m1", b1.address, 0),
                ("m2", b2.address, 1),
                ("m3", b3.address, 1),
            ],
            &["b2", "b3"],
        ),
        (
            &[("m2", b2.address, 1), ("m3", b3.address, 1)],
            &["b2", "b3"],
        ),
        (
            &[("m2", b2.address, 1), ("m3", b1.address, 1)],
            &["b1", "b2"],
        ),
    ];
    for (members, expected) in steps {
        assert_eq!(
            device.put(&lb, members),
            Ok(Applied::Runtime),
            "{expected:?}"
        );
        let answers = served(lb.vip(), 8);
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(answers, expected, "at once, without waiting");
    }
    assert_eq!(device.reloads(), reloads, "no reload for member changes");

    // The file is what runs: a reload of it serves the same.
    assert_eq!(
        device.agent.haproxy().reload().map_err(|e| e.to_string()),
        Ok(())
    );
    wait_served(lb.vip(), &["b1", "b2"]);

    // The history says which way each change went, and the commands sent.
    let history = device.agent.history();
    let applied: Vec<&str> = history
        .iter()
        .filter_map(|entry| entry["applied"].as_str())
        .collect();
    assert_eq!(
        applied,
        ["reload", "runtime", "runtime", "runtime", "runtime"]
    );
    let detail = history[1]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("add server b-lb1/m3") && detail.contains("state ready"),
        "{detail}"
    );
}

#[test]
fn an_agent_told_to_reload_only_reloads_for_every_change() {
    let device = Device::reload_only();
    let (b1, b2) = (Backend::start("b1"), Backend::start("b2"));
    let lb = Lb::new("lb1");
    device
        .put(&lb, &[("m1", b1.address, 1)])
        .expect("installed");
    wait_served(lb.vip(), &["b1"]);
    let sessions = |lb: &Lb| {
        let rows = device.agent.stats(&lb.id).expect("stats");
        rows.iter()
            .find(|row| row.server == "FRONTEND")
            .map_or(0, |row| row.total_sessions)
    };
    let before = sessions(&lb);
    assert!(before >= 8, "{before}");
    let reloads = device.reloads();
    assert_eq!(
        device.put(&lb, &[("m1", b1.address, 1), ("m2", b2.address, 1)]),
        Ok(Applied::Reload(false))
    );
    assert_eq!(device.reloads(), reloads + 1);
    // The new worker counts from zero; the agent's figures carry what the old one counted.
    assert!(sessions(&lb) >= before, "{} < {before}", sessions(&lb));
    wait_served(lb.vip(), &["b1", "b2"]);
    assert!(sessions(&lb) >= before + 8);
}

#[test]
fn a_server_line_cannot_smuggle_a_runtime_command() {
    let device = Device::start();
    let (b1, b2) = (Backend::start("b1"), Backend::start("b2"));
    let victim = Lb::new("victim");
    device
        .put(&victim, &[("v1", b1.address, 1)])
        .expect("installed");
    let mut lb = Lb::new("lb1");
    device
        .put(&lb, &[("m1", b1.address, 1)])
        .expect("installed");
    wait_served(victim.vip(), &["b1"]);
    // `;` ends a command on HAProxy's socket: a driver's line must not become two commands.
    // The policy refuses the line; even where it would not, the runtime path never sends it.
    lb.server_words = ";set server b-victim/v1 state maint".into();
    let refused = device.put(&lb, &[("m1", b1.address, 1), ("m2", b2.address, 1)]);
    assert!(refused.is_err(), "{refused:?}");
    wait_served(victim.vip(), &["b1"]);
    assert!(
        live_plan_refuses(&lb, &b1, &b2),
        "the runtime path leaves such a line to a reload"
    );
}

fn live_plan_refuses(lb: &Lb, b1: &Backend, b2: &Backend) -> bool {
    let clean = Lb::listening(&lb.id, lb.vips.clone());
    let installed = clean.config(&[("m1", b1.address, 1)]);
    let next = lb.config(&[("m1", b1.address, 1), ("m2", b2.address, 1)]);
    lbaas_agent::live::plan(&installed, &next).is_none()
}

#[test]
fn changes_that_need_a_reload_share_one_and_a_broken_one_fails_alone() {
    let device = Device::start();
    let backend = Backend::start("b");
    let lbs: Vec<Lb> = (0..8).map(|i| Lb::new(&format!("lb{i}"))).collect();
    let before = device.reloads();
    // Eight new load balancers at once: fewer reloads than changes.
    std::thread::scope(|scope| {
        for lb in &lbs {
            let device = &device;
            let backend = &backend;
            scope.spawn(move || {
                assert_eq!(
                    device.put(lb, &[("m", backend.address, 1)]),
                    Ok(Applied::Reload(true))
                );
            });
        }
    });
    let reloads = device.reloads() - before;
    assert!(reloads < 8, "{reloads} reloads for 8 changes");
    for lb in &lbs {
        wait_served(lb.vip(), &["b"]);
    }

    // In one window: two good changes, one whose port another process holds, and one HAProxy
    // refuses outright (a default backend nowhere). The refused one is refused alone by
    // `haproxy -c`; the three others cannot start together, so each is tried alone, and only
    // the one without its port fails, its file put back.
    let blocker = TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let broken = Lb::listening("broken", vec![blocker.local_addr().expect("address")]);
    let (good1, good2, unchecked) = (Lb::new("good1"), Lb::new("good2"), Lb::new("unchecked"));
    let members = [("m", backend.address, 1)];
    let nowhere = unchecked
        .config(&members)
        .replace("default_backend b-unchecked", "default_backend b-nowhere");
    let outcomes: Vec<Result<Applied, String>> = std::thread::scope(|scope| {
        let threads = [&good1, &broken, &good2, &unchecked].map(|lb| {
            let (device, members, nowhere) = (&device, &members, &nowhere);
            scope.spawn(move || match lb.id.as_str() {
                "unchecked" => device.put_text(lb, nowhere, members),
                _ => device.put(lb, members),
            })
        });
        threads.map(|thread| thread.join().expect("joined")).into()
    });
    assert_eq!(outcomes[0], Ok(Applied::Reload(true)));
    assert_eq!(outcomes[2], Ok(Applied::Reload(true)));
    let error = outcomes[1].clone().expect_err("the broken change fails");
    assert!(
        error.contains("cannot bind socket") && error.contains(&broken.vip().port().to_string()),
        "{error}"
    );
    let refused = outcomes[3]
        .clone()
        .expect_err("the unchecked change is refused");
    assert!(
        refused.contains("HAProxy refused the configuration") && refused.contains("b-nowhere"),
        "{refused}"
    );
    let files = std::fs::read_dir(device.agent.haproxy().conf_dir())
        .expect("conf.d")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect::<BTreeSet<_>>();
    assert!(
        !files.contains("broken.cfg")
            && !files.contains("unchecked.cfg")
            && files.contains("good1.cfg")
            && !files.iter().any(|f| f.ends_with(".candidate")),
        "{files:?}"
    );
    wait_served(good1.vip(), &["b"]);
    wait_served(good2.vip(), &["b"]);
    wait_served(lbs[0].vip(), &["b"]);
}

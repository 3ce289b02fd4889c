//! The scheduler against native driver hints: each filter and weigher, the driver's verdicts,
//! spawning, and properties that must hold for any input.

use proptest::prelude::*;

use super::*;

fn device(id: &str, driver: &str, capacity: u32, load: u32) -> DeviceView<'static> {
    DeviceView {
        id: id.to_owned().into(),
        driver: driver.to_owned().into(),
        enabled: true,
        healthy: true,
        capacity,
        load,
        project_load: 0,
        network_load: 0,
        owner: None,
        networks: Cow::Owned(vec![]),
        interfaces: 1,
        zone: None,
    }
}

fn driver(name: &str, can_spawn: bool) -> DriverInfo {
    DriverInfo {
        name: name.into(),
        protocols: vec!["TCP".into(), "HTTP".into()],
        can_spawn,
        max_vips_per_device: None,
        max_vlans_per_interface: None,
    }
}

fn request(drivers: &[&str]) -> Request {
    Request {
        project_id: "p".into(),
        vip_network: "vip".into(),
        member_networks: vec!["app".into()],
        protocols: vec!["HTTP".into()],
        drivers: drivers.iter().map(|d| (*d).to_owned()).collect(),
        weights: Weights::default(),
        top_k: 8,
        availability_zone: None,
    }
}

/// Accepts every offer with the host's score; spawns when offered nothing.
struct Accepting;

impl DriverHints for Accepting {
    fn select(
        &self,
        _driver: &str,
        _request: &Request,
        offers: &[Offer<'_>],
    ) -> Result<Hints, String> {
        Ok(Hints {
            verdicts: offers
                .iter()
                .map(|o| (o.device.id.to_string(), Verdict::Score(o.host_score)))
                .collect(),
            spawn: offers.is_empty().then(|| SpawnSpec {
                name: "new".into(),
                capacity: 4,
                metadata: BTreeMap::new(),
            }),
        })
    }
}

/// Rejects one device by id, like a vendor that knows a limit the host cannot see.
struct RejectOne(&'static str);

impl DriverHints for RejectOne {
    fn select(
        &self,
        driver: &str,
        request: &Request,
        offers: &[Offer<'_>],
    ) -> Result<Hints, String> {
        let mut hints = Accepting.select(driver, request, offers)?;
        for (id, verdict) in &mut hints.verdicts {
            if id == self.0 {
                *verdict = Verdict::Reject("VLANs exhausted".into());
            }
        }
        Ok(hints)
    }
}

fn placed(explanation: &Explanation) -> Option<&str> {
    match &explanation.outcome {
        Decision::Placed { device_id, .. } => Some(device_id),
        _ => None,
    }
}

#[test]
fn least_loaded_wins_among_equals() {
    let devices = [device("a", "haproxy", 10, 7), device("b", "haproxy", 10, 2)];
    let result = schedule(
        &devices,
        &[driver("haproxy", false)],
        &request(&["haproxy"]),
        &Accepting,
    );
    assert_eq!(placed(&result), Some("b"));
}

#[test]
fn filters_name_their_reason() {
    let mut disabled = device("disabled", "haproxy", 10, 0);
    disabled.enabled = false;
    let mut private = device("private", "haproxy", 10, 0);
    private.owner = Some("other".into());
    let full = device("full", "haproxy", 2, 2);
    let other = device("other-driver", "f5", 10, 0);
    let devices = [disabled, private, full, other];
    let drivers = [driver("haproxy", false), driver("f5", false)];
    let result = schedule(&devices, &drivers, &request(&["haproxy"]), &Accepting);
    let reason = |id: &str| {
        result
            .candidates
            .iter()
            .find(|c| c.device_id == id)
            .and_then(|c| c.filtered_by.clone())
    };
    assert_eq!(reason("disabled").as_deref(), Some("disabled"));
    assert_eq!(
        reason("private").as_deref(),
        Some("private to another project")
    );
    assert!(reason("full").is_some_and(|r| r.contains("capacity")));
    // Devices of drivers the flavor does not name are not candidates at all.
    assert!(
        result
            .candidates
            .iter()
            .all(|c| c.device_id != "other-driver")
    );
    match &result.outcome {
        Decision::NoCapacity { reason } => assert!(reason.contains("disabled"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_availability_zone_keeps_only_its_devices() {
    let mut east = device("east", "haproxy", 10, 5);
    east.zone = Some("east".into());
    let mut west = device("west", "haproxy", 10, 0);
    west.zone = Some("west".into());
    let unzoned = device("unzoned", "haproxy", 10, 0);
    let devices = [east, west, unzoned];
    let drivers = [driver("haproxy", false)];
    let mut wanted = request(&["haproxy"]);
    wanted.availability_zone = Some("east".into());
    let result = schedule(&devices, &drivers, &wanted, &Accepting);
    // The busiest device wins: the others are in another zone, or in none.
    assert_eq!(placed(&result), Some("east"));
    for other in ["west", "unzoned"] {
        let reason = result
            .candidates
            .iter()
            .find(|c| c.device_id == other)
            .and_then(|c| c.filtered_by.clone());
        assert_eq!(reason.as_deref(), Some("in another availability zone"));
    }
    // Without a zone, every device may be chosen (the least loaded wins).
    let result = schedule(&devices, &drivers, &request(&["haproxy"]), &Accepting);
    assert_ne!(placed(&result), Some("east"));
}

#[test]
fn driver_vlan_limits_filter_devices_without_room_for_the_networks() {
    let mut crowded = device("crowded", "acme", 10, 1);
    crowded.networks = vec!["x".into(), "y".into()].into();
    let mut roomy = device("roomy", "acme", 10, 1);
    roomy.networks = vec!["x".into()].into();
    let mut acme = driver("acme", false);
    acme.max_vlans_per_interface = Some(3);
    let result = schedule(&[crowded, roomy], &[acme], &request(&["acme"]), &Accepting);
    assert_eq!(placed(&result), Some("roomy"));
    let crowded = result
        .candidates
        .iter()
        .find(|c| c.device_id == "crowded")
        .expect("report");
    assert!(
        crowded
            .filtered_by
            .as_deref()
            .is_some_and(|f| f.contains("VLANs")),
        "{crowded:?}"
    );
}

#[test]
fn wired_devices_are_preferred() {
    let mut wired = device("wired", "haproxy", 10, 5);
    wired.networks = vec!["vip".into(), "app".into()].into();
    let bare = device("bare", "haproxy", 10, 4);
    let result = schedule(
        &[wired, bare],
        &[driver("haproxy", false)],
        &request(&["haproxy"]),
        &Accepting,
    );
    assert_eq!(placed(&result), Some("wired"));
}

#[test]
fn project_weight_groups_or_spreads() {
    let mut busy = device("busy", "haproxy", 10, 3);
    busy.project_load = 3;
    let quiet = device("quiet", "haproxy", 10, 3);
    let mut group = request(&["haproxy"]);
    group.weights.project_affinity = 1.0;
    let devices = [busy, quiet];
    let drivers = [driver("haproxy", false)];
    assert_eq!(
        placed(&schedule(&devices, &drivers, &group, &Accepting)),
        Some("busy")
    );
    group.weights.project_affinity = -1.0;
    assert_eq!(
        placed(&schedule(&devices, &drivers, &group, &Accepting)),
        Some("quiet")
    );
}

#[test]
fn the_driver_can_reject_what_the_host_allows() {
    let devices = [device("a", "acme", 10, 0), device("b", "acme", 10, 5)];
    let result = schedule(
        &devices,
        &[driver("acme", false)],
        &request(&["acme"]),
        &RejectOne("a"),
    );
    assert_eq!(placed(&result), Some("b"));
    let a = result
        .candidates
        .iter()
        .find(|c| c.device_id == "a")
        .expect("a");
    assert_eq!(
        a.driver_verdict,
        Some(Verdict::Reject("VLANs exhausted".into()))
    );
}

#[test]
fn only_the_top_k_are_offered() {
    let devices: Vec<DeviceView<'_>> = (0..20)
        .map(|i| device(&format!("d{i:02}"), "haproxy", 20, i))
        .collect();
    let mut req = request(&["haproxy"]);
    req.top_k = 3;
    let result = schedule(&devices, &[driver("haproxy", false)], &req, &Accepting);
    assert_eq!(result.candidates.iter().filter(|c| c.offered).count(), 3);
    assert_eq!(placed(&result), Some("d00"));
}

#[test]
fn a_large_pool_lists_the_offered_candidates_and_counts_the_rest() {
    let mut devices: Vec<DeviceView<'_>> = (0..1000)
        .map(|i| device(&format!("d{i:04}"), "haproxy", 10, (i % 10) as u32))
        .collect();
    devices[3].enabled = false;
    let mut req = request(&["haproxy"]);
    req.top_k = 4;
    let result = schedule(&devices, &[driver("haproxy", false)], &req, &Accepting);
    assert_eq!(result.considered, 1000);
    assert_eq!(result.candidates.len(), 4);
    assert!(result.candidates.iter().all(|c| c.offered));
    // Load 9 of 10 leaves the most room on the devices ending in 0.
    assert_eq!(placed(&result), Some("d0000"));
    assert_eq!(result.unlisted.get("disabled"), Some(&1));
    assert_eq!(result.unlisted.get("at capacity"), None);
    assert_eq!(
        result.unlisted.get("not among the best candidates"),
        Some(&(1000 - 4 - 1))
    );
    // Small pools are explained candidate by candidate.
    let small = schedule(
        &devices[..10],
        &[driver("haproxy", false)],
        &req,
        &Accepting,
    );
    assert_eq!(small.candidates.len(), 10);
    assert!(small.unlisted.is_empty());
}

#[test]
fn a_spawning_driver_is_asked_when_nothing_fits() {
    let devices = [device("full", "haproxy", 1, 1)];
    let result = schedule(
        &devices,
        &[driver("haproxy", true)],
        &request(&["haproxy"]),
        &Accepting,
    );
    match result.outcome {
        Decision::Spawn {
            driver,
            spec,
            reason,
        } => {
            assert_eq!(driver, "haproxy");
            assert_eq!(spec.capacity, 4);
            assert_eq!(
                reason,
                "no device can take this load balancer (full: at capacity (1 of 1))"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn candidates_of_several_drivers_compete() {
    let devices = [
        device("appliance", "acme", 10, 9),
        device("vm", "haproxy", 10, 1),
    ];
    let drivers = [driver("acme", false), driver("haproxy", false)];
    let result = schedule(
        &devices,
        &drivers,
        &request(&["acme", "haproxy"]),
        &Accepting,
    );
    assert_eq!(placed(&result), Some("vm"));
}

#[test]
fn a_failing_driver_rejects_its_candidates() {
    struct Broken;
    impl DriverHints for Broken {
        fn select(&self, _: &str, _: &Request, _: &[Offer<'_>]) -> Result<Hints, String> {
            Err("trapped".into())
        }
    }
    let result = schedule(
        &[device("a", "x", 4, 0)],
        &[driver("x", false)],
        &request(&["x"]),
        &Broken,
    );
    assert!(matches!(result.outcome, Decision::NoCapacity { .. }));
    assert_eq!(
        result.driver_errors.get("x").map(String::as_str),
        Some("trapped")
    );
}

fn arbitrary_device() -> impl Strategy<Value = DeviceView<'static>> {
    (
        0u32..40,
        prop_oneof![Just("haproxy"), Just("acme")],
        any::<bool>(),
        any::<bool>(),
        1u32..12,
        0u32..14,
        0u32..5,
        proptest::option::of(prop_oneof![Just("p".to_owned()), Just("q".to_owned())]),
        proptest::collection::vec(
            prop_oneof![Just("vip".to_owned()), Just("app".to_owned())],
            0..2,
        ),
    )
        .prop_map(
            |(n, driver, enabled, healthy, capacity, load, project_load, owner, networks)| {
                DeviceView {
                    id: format!("dev-{n:02}").into(),
                    driver: driver.into(),
                    enabled,
                    healthy,
                    capacity,
                    load,
                    project_load: project_load.min(load),
                    network_load: 0,
                    owner: owner.map(Cow::Owned),
                    networks: networks.into(),
                    interfaces: 1,
                    zone: None,
                }
            },
        )
}

fn unique(mut devices: Vec<DeviceView<'static>>) -> Vec<DeviceView<'static>> {
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    devices.dedup_by(|a, b| a.id == b.id);
    devices
}

proptest! {
    #[test]
    fn the_winner_passes_every_filter_and_has_room(devices in proptest::collection::vec(arbitrary_device(), 0..24), top_k in 1usize..6) {
        let devices = unique(devices);
        let drivers = [driver("haproxy", false), driver("acme", false)];
        let mut req = request(&["haproxy", "acme"]);
        req.top_k = top_k;
        let result = schedule(&devices, &drivers, &req, &Accepting);
        if let Some(id) = placed(&result) {
            let winner = devices.iter().find(|d| d.id == id).expect("winner exists");
            prop_assert!(winner.enabled && winner.healthy);
            prop_assert!(winner.load < winner.capacity, "capacity exceeded");
            prop_assert!(winner.owner.as_deref().is_none_or(|o| o == "p"));
            let report = result.candidates.iter().find(|c| c.device_id == id).expect("report");
            prop_assert!(report.filtered_by.is_none());
        } else {
            // Nothing placed: then nothing passed the filters.
            prop_assert!(result.candidates.iter().all(|c| c.filtered_by.is_some()));
        }
    }

    #[test]
    fn the_result_does_not_depend_on_candidate_order(devices in proptest::collection::vec(arbitrary_device(), 0..24), seed in any::<u64>()) {
        let devices = unique(devices);
        let mut shuffled = devices.clone();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let drivers = [driver("haproxy", true), driver("acme", false)];
        let req = request(&["haproxy", "acme"]);
        let a = schedule(&devices, &drivers, &req, &Accepting);
        let b = schedule(&shuffled, &drivers, &req, &Accepting);
        prop_assert_eq!(a, b);
    }
}

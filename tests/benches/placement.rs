//! Placement decisions with 10,000 devices and 100,000 load balancers in the store: the whole
//! decision (the scheduler's view of the store, filters, weighers, top K) with the HAProxy
//! driver's `select` through the Wasm runtime, against the same driver logic compiled natively
//! (the baseline).

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lbaas_driver_sdk::Driver;
use lbaas_host::drivers::Drivers;
use lbaas_host::model::{Common, Device, DeviceKind, LoadBalancer, Network, Subnet};
use lbaas_host::placement::{self, Target};
use lbaas_host::snapshot::Snapshot;
use lbaas_scheduler::{DriverHints, Hints, Offer, Request, Verdict};
use lbaas_tests::{TestHost, drivers};

const DEVICES: usize = 10_000;
const LOAD_BALANCERS: usize = 100_000;
const NETWORKS: usize = 50;
const PROJECTS: usize = 1_000;

fn common(id: String, project: String) -> Common {
    lbaas_tests::active_common(id, project)
}

fn snapshot() -> Snapshot {
    let networks: Vec<Network> = (0..NETWORKS)
        .map(|n| Network {
            id: format!("net-{n:02}"),
            name: String::new(),
            project_id: None,
            vlan: Some(100 + n as u16),
            subnets: vec![Subnet {
                id: format!("subnet-{n:02}"),
                name: String::new(),
                cidr: format!("10.{n}.0.0/16"),
                gateway_ip: None,
            }],
            created_at: String::new(),
        })
        .collect();
    let devices: Vec<Device> = (0..DEVICES)
        .map(|d| Device {
            id: format!("dev-{d:05}"),
            name: String::new(),
            kind: DeviceKind::Virtual,
            driver: "haproxy".into(),
            management_url: "http://127.0.0.1:9".into(),
            credentials: None,
            capacity: 12 + (d % 9) as u32,
            project_id: None,
            cluster: None,
            networks: vec![format!("net-{:02}", d % NETWORKS)],
            attachments: BTreeMap::new(),
            metadata: BTreeMap::new(),
            enabled: d % 97 != 0,
            provisioned: None,
            host: None,
            availability_zone: None,
            created_at: String::new(),
            updated_at: None,
        })
        .collect();
    let loadbalancers: Vec<LoadBalancer> = (0..LOAD_BALANCERS)
        .map(|i| LoadBalancer {
            common: common(format!("lb-{i:06}"), format!("project-{}", i % PROJECTS)),
            vip_address: String::new(),
            vip_network_id: format!("net-{:02}", i % NETWORKS),
            vip_subnet_id: format!("subnet-{:02}", i % NETWORKS),
            vip_port_id: String::new(),
            provider: "haproxy".into(),
            flavor_id: None,
            device_id: Some(format!("dev-{:05}", (i * 7919) % DEVICES)),
            fault: None,
            migration: None,
            availability_zone: None,
        })
        .collect();
    let mut snapshot = Snapshot::empty_for(&loadbalancers[0]);
    snapshot.loadbalancers = loadbalancers.into();
    snapshot.devices = devices.into();
    snapshot.recount();
    snapshot.networks = networks.into();
    snapshot
}

/// The HAProxy driver's `select`, compiled natively.
struct NativeHaproxy;

impl DriverHints for NativeHaproxy {
    fn select(
        &self,
        _driver: &str,
        _request: &Request,
        offers: &[Offer<'_>],
    ) -> Result<Hints, String> {
        let network = |id: &str| lbaas_driver_sdk::Network {
            id: id.into(),
            cidr: String::new(),
            vlan: None,
        };
        let request = lbaas_driver_sdk::PlacementRequest {
            load_balancer_id: "new".into(),
            project_id: "project-7".into(),
            vip_address: None,
            vip_network: network("net-03"),
            member_networks: vec![],
            protocols: vec![],
            flavor: None,
            availability_zone: None,
        };
        let candidates: Vec<lbaas_driver_sdk::Candidate> = offers
            .iter()
            .map(|o| lbaas_driver_sdk::Candidate {
                device: lbaas_driver_sdk::Device {
                    id: o.device.id.to_string(),
                    name: String::new(),
                    kind: lbaas_driver_sdk::DeviceKind::Virtual,
                    capacity: o.device.capacity,
                    cluster: None,
                    owner_project: None,
                    networks: o.device.networks.to_vec(),
                    metadata: vec![],
                    availability_zone: None,
                },
                load_balancers: o.device.load,
                project_load_balancers: o.device.project_load,
                host_score: o.host_score,
            })
            .collect();
        let hints = lbaas_driver_haproxy::HaproxyDriver::select(&request, &candidates);
        Ok(Hints {
            verdicts: hints
                .devices
                .into_iter()
                .map(|h| {
                    let verdict = match h.verdict {
                        lbaas_driver_sdk::Verdict::Score(n) => Verdict::Score(n),
                        lbaas_driver_sdk::Verdict::Reject(r) => Verdict::Reject(r),
                    };
                    (h.device_id, verdict)
                })
                .collect(),
            spawn: None,
        })
    }
}

fn benches(c: &mut Criterion) {
    let data = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open(data.path());
    let drivers = Drivers::new(vec![host.load(&drivers().haproxy)]);
    let snapshot = snapshot();
    let target = Target {
        loadbalancer_id: "new".into(),
        project_id: "project-7".into(),
        vip_address: None,
        vip_network: "net-03".into(),
        member_networks: vec!["net-04".into()],
        protocols: vec![lbaas_host::model::Protocol::Http],
        flavor_id: None,
        provider: "haproxy".into(),
        exclude: None,
        only: None,
        availability_zone: None,
    };
    // Same decision both ways before timing.
    let wasm = placement::decide(&drivers, &snapshot, &target).explanation;
    let native = placement::decide_with(&drivers, &snapshot, &target, &NativeHaproxy);
    assert_eq!(wasm.outcome, native.outcome);
    assert!(
        matches!(wasm.outcome, lbaas_scheduler::Decision::Placed { .. }),
        "{:?}",
        wasm.outcome
    );

    let mut group = c.benchmark_group("placement-10k-devices-100k-lbs");
    group.sample_size(20);
    group.bench_function("native-hints", |b| {
        b.iter(|| placement::decide_with(&drivers, black_box(&snapshot), &target, &NativeHaproxy))
    });
    group.bench_function("wasm-driver", |b| {
        b.iter(|| placement::decide(&drivers, black_box(&snapshot), &target))
    });
    group.finish();

    // Placements per second with both cores deciding at once (criterion times one thread):
    // decisions read a shared snapshot and call the driver concurrently, as the worker's jobs
    // do. Three runs of three seconds.
    let runs: Vec<f64> = (0..3)
        .map(|_| {
            let decided = std::sync::atomic::AtomicUsize::new(0);
            let started = std::time::Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        while started.elapsed() < std::time::Duration::from_secs(3) {
                            black_box(placement::decide(&drivers, &snapshot, &target));
                            decided.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    });
                }
            });
            decided.into_inner() as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    println!("placement/two-threads-per-second {runs:.0?}");
    lbaas_tests::record_bench(
        "placement",
        &std::collections::BTreeMap::from([("two-threads-per-second", runs)]),
    );
}

criterion_group!(group, benches);
criterion_main!(group);

//! One `select` with 32 candidate appliances through the real acme-adc component, against the
//! same placement logic compiled natively; and what instantiation costs per call, with the
//! pooling allocator and (as the baseline) without it.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lbaas_driver_acme_adc::allocation::{self, DeviceAllocations};
use lbaas_host::DriverName;
use lbaas_host::driver_state::StateStore;
use lbaas_host::runtime::{self, DeviceKind, RuntimeConfig};
use lbaas_tests::model::*;
use lbaas_tests::{TestHost, drivers};

const CANDIDATES: usize = 32;

/// Host-side inputs: a web shop on VLANs 100/201/202 and 32 appliances in two clusters, every
/// other one already carrying some VLANs and VIPs.
fn host_inputs() -> (runtime::PlacementRequest, Vec<runtime::Candidate>) {
    let lb = web_shop("lb-bench", "192.0.2.200");
    let candidates = (0..CANDIDATES)
        .map(|i| {
            let cluster = if i % 2 == 0 { "east" } else { "west" };
            let device = with_metadata(
                device(
                    &format!("adc-{i:02}"),
                    DeviceKind::Physical,
                    64,
                    Some(cluster),
                ),
                "interfaces",
                "2",
            );
            candidate(device, (i % 7) as u32, (i % 3) as u32)
        })
        .collect();
    (request_for(&lb), candidates)
}

/// Every other appliance has records: some hold the requested VIP already, some have no VLAN
/// slot left, the rest carry a few VLANs and VIPs of their own.
fn seeded_allocations(i: usize) -> DeviceAllocations {
    let mut allocations = DeviceAllocations::default();
    let mut seed = |id: String, vip: String, vlans: &[u16]| {
        let mut lb = web_shop(&id, &vip);
        lb.vip_network.vlan = Some(vlans[0]);
        lb.member_networks = vlans[1..]
            .iter()
            .map(|v| network(&format!("net-{v}"), "10.9.0.0/24", Some(*v)))
            .collect();
        allocations
            .allocate(&to_sdk_lb(&lb), 4, 2)
            .expect("seed allocation");
    };
    match i % 6 {
        0 => seed(format!("lb-seed-{i}"), "192.0.2.200".into(), &[100]),
        2 => seed(
            format!("lb-seed-{i}"),
            format!("192.0.2.{i}"),
            &[300, 301, 302, 303, 304, 305, 306, 307],
        ),
        _ => seed(
            format!("lb-seed-{i}"),
            format!("192.0.2.{i}"),
            &[100, 201, 400],
        ),
    }
    allocations
}

/// The same value in the SDK's (guest) types, through their shared JSON shape.
fn to_sdk_lb(lb: &runtime::LoadBalancer) -> lbaas_driver_sdk::LoadBalancer {
    lbaas_driver_sdk::LoadBalancer {
        id: lb.id.clone(),
        name: lb.name.clone(),
        project_id: lb.project_id.clone(),
        vip_address: lb.vip_address.clone(),
        vip_network: to_sdk_network(&lb.vip_network),
        member_networks: lb.member_networks.iter().map(to_sdk_network).collect(),
        listeners: vec![],
        pools: vec![],
        flavor: None,
        availability_zone: None,
        admin_state_up: lb.admin_state_up,
    }
}

fn to_sdk_network(network: &runtime::Network) -> lbaas_driver_sdk::Network {
    lbaas_driver_sdk::Network {
        id: network.id.clone(),
        cidr: network.cidr.clone(),
        vlan: network.vlan,
    }
}

fn to_sdk_request(request: &runtime::PlacementRequest) -> lbaas_driver_sdk::PlacementRequest {
    lbaas_driver_sdk::PlacementRequest {
        load_balancer_id: request.load_balancer_id.clone(),
        project_id: request.project_id.clone(),
        vip_address: request.vip_address.clone(),
        vip_network: to_sdk_network(&request.vip_network),
        member_networks: request.member_networks.iter().map(to_sdk_network).collect(),
        protocols: vec![],
        flavor: None,
        availability_zone: None,
    }
}

fn to_sdk_candidate(candidate: &runtime::Candidate) -> lbaas_driver_sdk::Candidate {
    let device = &candidate.device;
    lbaas_driver_sdk::Candidate {
        device: lbaas_driver_sdk::Device {
            id: device.id.clone(),
            name: device.name.clone(),
            kind: lbaas_driver_sdk::DeviceKind::Physical,
            capacity: device.capacity,
            cluster: device.cluster.clone(),
            owner_project: device.owner_project.clone(),
            networks: device.networks.clone(),
            metadata: device
                .metadata
                .iter()
                .map(|e| lbaas_driver_sdk::Entry::new(e.key.clone(), e.value.clone()))
                .collect(),
            availability_zone: device.availability_zone.clone(),
        },
        load_balancers: candidate.load_balancers,
        project_load_balancers: candidate.project_load_balancers,
        host_score: candidate.host_score,
    }
}

fn benches(c: &mut Criterion) {
    let data = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open(data.path());
    let acme = host.load(&drivers().acme_adc);
    let namespace = host
        .state
        .namespace(&DriverName::new("acme-adc").expect("name"))
        .expect("namespace");
    for i in (0..CANDIDATES).step_by(2) {
        let bytes = serde_json::to_vec(&seeded_allocations(i)).expect("json");
        namespace
            .set(&allocation::key(&format!("adc-{i:02}")), &bytes)
            .expect("seed state");
    }
    let (request, candidates) = host_inputs();
    let sdk_request = to_sdk_request(&request);
    let sdk_candidates: Vec<_> = candidates.iter().map(to_sdk_candidate).collect();

    // Both paths must agree before their speed is compared.
    let wasm_hints = acme.select(&request, &candidates).expect("wasm select");
    let native_hints = native_select(&*namespace, &sdk_request, &sdk_candidates);
    let wasm_verdicts: Vec<(String, Option<i32>)> = wasm_hints
        .devices
        .iter()
        .map(|h| {
            (
                h.device_id.clone(),
                match h.verdict {
                    runtime::Verdict::Score(n) => Some(n),
                    runtime::Verdict::Reject(_) => None,
                },
            )
        })
        .collect();
    let native_verdicts: Vec<(String, Option<i32>)> = native_hints
        .devices
        .iter()
        .map(|h| {
            (
                h.device_id.clone(),
                match h.verdict {
                    lbaas_driver_sdk::Verdict::Score(n) => Some(n),
                    lbaas_driver_sdk::Verdict::Reject(_) => None,
                },
            )
        })
        .collect();
    assert_eq!(
        wasm_verdicts, native_verdicts,
        "native and wasm select disagree"
    );
    assert!(
        wasm_verdicts.iter().any(|(_, v)| v.is_none()),
        "some candidates should be rejected"
    );

    let mut group = c.benchmark_group("select-32-candidates");
    group.bench_function("native", |b| {
        b.iter(|| {
            native_select(
                &*namespace,
                black_box(&sdk_request),
                black_box(&sdk_candidates),
            )
        })
    });
    group.bench_function("wasm", |b| {
        b.iter(|| {
            acme.select(black_box(&request), black_box(&candidates))
                .expect("select")
        })
    });
    // The same driver over the same state, on a runtime that keeps no audit log: what the
    // audit records of the call's 32 `state.get` imports cost.
    let unaudited = runtime::Runtime::new(
        RuntimeConfig::default(),
        host.state.clone(),
        host.devices.clone(),
    )
    .expect("runtime")
    .load_file(&drivers().acme_adc)
    .expect("acme-adc");
    group.bench_function("wasm-unaudited", |b| {
        b.iter(|| {
            unaudited
                .select(black_box(&request), black_box(&candidates))
                .expect("select")
        })
    });
    group.finish();

    let on_demand_dir = tempfile::tempdir().expect("temp dir");
    let on_demand = TestHost::open_with(
        on_demand_dir.path(),
        RuntimeConfig {
            pooling: false,
            ..RuntimeConfig::default()
        },
    );
    let acme_on_demand = on_demand.load(&drivers().acme_adc);
    let mut group = c.benchmark_group("instantiate");
    group.bench_function("pooling", |b| {
        b.iter(|| acme.check_instantiate().expect("instantiate"))
    });
    group.bench_function("on-demand", |b| {
        b.iter(|| acme_on_demand.check_instantiate().expect("instantiate"))
    });
    group.finish();
}

/// The driver's placement logic, compiled natively, reading the same records from the same
/// store the Wasm driver reads through its `state` import.
fn native_select(
    namespace: &dyn lbaas_host::driver_state::Namespace,
    request: &lbaas_driver_sdk::PlacementRequest,
    candidates: &[lbaas_driver_sdk::Candidate],
) -> lbaas_driver_sdk::Hints {
    let mut cache: HashMap<String, DeviceAllocations> = HashMap::new();
    lbaas_driver_acme_adc::placement::select(request, candidates, |id| {
        cache
            .entry(id.to_owned())
            .or_insert_with(|| {
                namespace
                    .get(&allocation::key(id))
                    .ok()
                    .flatten()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or_default()
            })
            .clone()
    })
}

criterion_group!(name = group; config = Criterion::default().sample_size(50); targets = benches);
criterion_main!(group);

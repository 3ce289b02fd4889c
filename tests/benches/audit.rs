//! The audit log at a million records: `verify` (walk the chain, re-hash every record) and a
//! filtered query, against the baseline of reading the same records back from sled without
//! checking anything.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use lbaas_host::audit::{AuditLog, Event, Filter, Outcome};

const RECORDS: usize = 1_000_000;

fn event(i: usize) -> Event {
    Event {
        driver: if i.is_multiple_of(10) {
            "acme-adc"
        } else {
            "haproxy"
        }
        .into(),
        version: "0.1.0".into(),
        sha256: "5f1a0c7a9d2e".into(),
        function: if i.is_multiple_of(3) {
            "device-api.send"
        } else {
            "state.set"
        }
        .into(),
        target: Some(format!("device/d-{}", i % 1000)),
        bytes: 512,
        outcome: Outcome::Ok,
        duration_us: 40,
        detail: Some("status 200; body sha256 9c1185a5c5e9fc54612808977ee8f548b2258d31".into()),
    }
}

fn audit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::open(dir.path().join("db")).expect("db");
    let log = AuditLog::open(&db, &Default::default()).expect("audit log");
    // As a busy host writes them: chunks of a driver call's records.
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(100) {
        log.append_all(chunk.iter().map(|&i| event(i)).collect())
            .expect("append");
    }
    assert!(log.verify().intact());
    let tree = db.open_tree("audit").expect("tree");

    let mut group = c.benchmark_group("audit-1m-records");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("read-back", |b| {
        b.iter(|| {
            tree.iter()
                .map(|entry| entry.map(|(_, value)| value.len()).unwrap_or(0))
                .sum::<usize>()
        })
    });
    group.bench_function("verify", |b| b.iter(|| assert!(log.verify().intact())));
    group.bench_function("query-one-driver", |b| {
        b.iter(|| {
            log.query(&Filter {
                driver: Some("acme-adc".into()),
                function: Some("device-api".into()),
                limit: 100,
                ..Filter::default()
            })
            .len()
        })
    });
    group.finish();
}

criterion_group!(benches, audit);
criterion_main!(benches);

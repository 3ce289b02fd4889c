//! Upload-to-serving time of a driver version: `haproxy 0.1.1` uploaded (trust, compile,
//! capabilities, conformance kit, validate-flavor, stored durably) and activated
//! (`migrate-state`, swap) while 0.1.0 serves — with a cold compile cache, with the compiled
//! code in the cache, and the swap alone of a version already loaded (activate, roll back).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lbaas_host::ControlPlane;
use lbaas_host::audit::Discard;
use lbaas_host::driver_state::SledStateStore;
use lbaas_host::drivers::directory::FileOutcome;
use lbaas_host::drivers::{Drivers, Step};
use lbaas_host::integrity::Trust;
use lbaas_host::runtime::{Runtime, RuntimeConfig};
use lbaas_host::store::{SledStore, Store};
use lbaas_host::worker::StoreDevices;
use lbaas_tests::{drivers, lifecycle_fixtures};

struct Bench {
    _dir: tempfile::TempDir,
    cache: std::path::PathBuf,
    /// Each lifecycle step goes through the control plane's write path, as the admin API's.
    plane: Arc<ControlPlane>,
    tokio: tokio::runtime::Runtime,
    next: Vec<u8>,
}

fn setup() -> Bench {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let config = RuntimeConfig {
        cache_dir: Some(cache.clone()),
        ..RuntimeConfig::default()
    };
    let db = sled::open(dir.path().join("db")).expect("db");
    let store: Arc<dyn Store> = Arc::new(SledStore::new(db.clone()).expect("store"));
    let state = SledStateStore::new(db, config.state_quota);
    let runtime = Runtime::new(
        config,
        Arc::new(state),
        Arc::new(StoreDevices::new(store.clone())),
    )
    .expect("runtime");
    let registry = Drivers::managed(runtime, Trust::default(), store.clone(), Arc::new(Discard))
        .expect("registry");
    let (jobs, _) = tokio::sync::mpsc::unbounded_channel();
    let plane = Arc::new(ControlPlane::new(store, Arc::new(registry), None, jobs));
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let outcome = tokio.block_on(plane.sync_driver_files(std::slice::from_ref(&drivers().haproxy)));
    assert!(
        matches!(outcome[0], FileOutcome::Activated { .. }),
        "{outcome:?}"
    );
    let next = std::fs::read(&lifecycle_fixtures().haproxy_next).expect("haproxy-next");
    Bench {
        _dir: dir,
        cache,
        plane,
        tokio,
        next,
    }
}

impl Bench {
    fn step(&self, step: Step) {
        self.tokio
            .block_on(self.plane.driver_step("haproxy", step, "bench"))
            .expect("lifecycle step");
    }

    fn upload(&self) -> String {
        let (_, version) = self
            .tokio
            .block_on(self.plane.upload_driver(self.next.clone(), None, "bench"))
            .expect("upload");
        version.sha256
    }

    /// Uploads and activates 0.1.1; returns how long until it served.
    fn upload_and_activate(&self) -> Duration {
        let started = Instant::now();
        let sha256 = self.upload();
        self.step(Step::Activate(sha256.clone()));
        let elapsed = started.elapsed();
        assert_eq!(
            self.plane
                .drivers
                .get("haproxy")
                .expect("active")
                .identity()
                .version,
            "0.1.1"
        );
        // Untimed: back to where the next round starts.
        self.step(Step::Rollback);
        self.step(Step::Delete(sha256));
        elapsed
    }

    fn clear_cache(&self) {
        for entry in std::fs::read_dir(&self.cache).expect("cache dir").flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn benches(c: &mut Criterion) {
    let bench = setup();
    let mut group = c.benchmark_group("upload-to-serving");
    group.sample_size(10);
    group.bench_function("cold-compile", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| {
                    bench.clear_cache();
                    bench.upload_and_activate()
                })
                .sum()
        })
    });
    group.bench_function("cached-compile", |b| {
        bench.upload_and_activate(); // fills the cache
        b.iter_custom(|iterations| (0..iterations).map(|_| bench.upload_and_activate()).sum())
    });
    group.finish();

    // The swap alone: 0.1.1 uploaded once and kept loaded; activate, then roll back.
    let sha256 = bench.upload();
    let mut group = c.benchmark_group("activation");
    group.sample_size(20);
    group.bench_function("loaded-version", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                bench.step(Step::Activate(sha256.clone()));
                total += started.elapsed();
                bench.step(Step::Rollback);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(group, benches);
criterion_main!(group);

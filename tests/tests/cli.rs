//! The `lbaasd` binary as an operator runs it: `driver inspect` on good and bad files, and
//! `serve` answering on loopback, restarting from the compiled-driver cache.

use lbaas_tests::drivers;
use lbaas_tests::process::{Server, lbaasd};

#[test]
fn inspect_prints_capabilities_as_json() {
    let output = lbaasd()
        .args(["driver", "inspect"])
        .arg(&drivers().acme_adc)
        .output()
        .expect("run lbaasd");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["name"], "acme-adc");
    assert_eq!(report["capabilities"]["vendor"], "Acme Networks");
    assert_eq!(report["capabilities"]["can_spawn"], false);
    assert_eq!(report["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn inspect_refuses_a_file_that_is_not_a_driver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "definitely not wasm").expect("write");
    let output = lbaasd()
        .args(["driver", "inspect"])
        .arg(&junk)
        .output()
        .expect("run lbaasd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not a valid driver component: it is not a WebAssembly file"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let missing = dir.path().join("missing.wasm");
    let output = lbaasd()
        .args(["driver", "inspect"])
        .arg(&missing)
        .output()
        .expect("run lbaasd");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}

#[test]
fn serve_answers_and_restarts_from_the_compile_cache() {
    let data = tempfile::tempdir().expect("data dir");
    let driver_dir = tempfile::tempdir().expect("driver dir");
    std::fs::copy(&drivers().haproxy, driver_dir.path().join("haproxy.wasm")).expect("copy");
    std::fs::copy(&drivers().acme_adc, driver_dir.path().join("acme-adc.wasm")).expect("copy");
    std::fs::write(driver_dir.path().join("broken.wasm"), "junk").expect("write");

    let server = Server::start(data.path(), driver_dir.path(), &[]);
    let (url, log) = (server.url.clone(), server.log());
    let health: serde_json::Value = ureq::get(&format!("{url}/healthz"))
        .call()
        .expect("healthz")
        .body_mut()
        .read_json()
        .expect("json");
    assert_eq!(health["status"], "ok");
    let providers: serde_json::Value = ureq::get(&format!("{url}/v2/lbaas/providers"))
        .call()
        .expect("providers")
        .body_mut()
        .read_json()
        .expect("json");
    let names: Vec<&str> = providers["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["acme-adc", "haproxy"]);
    assert!(
        log.iter()
            .any(|l| l.contains("broken.wasm") && l.contains("not a WebAssembly file")),
        "{log:#?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.contains("origin=Compiled")).count(),
        2,
        "{log:#?}"
    );
    drop(server);

    // A restart deserialises the cached compilation instead of compiling again.
    let server = Server::start(data.path(), driver_dir.path(), &[]);
    let log = server.log();
    assert_eq!(
        log.iter().filter(|l| l.contains("origin=Cache")).count(),
        2,
        "{log:#?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.contains("origin=Compiled")).count(),
        0,
        "{log:#?}"
    );
}

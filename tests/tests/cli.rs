//! The `lbaasd` binary as an operator runs it: `driver inspect` on good and bad files, and
//! `serve` answering on loopback, restarting from the compiled-driver cache.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lbaas_tests::{cargo, drivers, workspace_root};

fn lbaasd() -> Command {
    let root = workspace_root();
    let status = cargo()
        .current_dir(&root)
        .args(["build", "--quiet", "-p", "lbaas-host", "--bin", "lbaasd"])
        .status()
        .expect("build lbaasd");
    assert!(status.success());
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| root.join("target"));
    let mut command = Command::new(target.join("debug/lbaasd"));
    command.env("RUST_LOG", "info").env_remove("RUST_BACKTRACE");
    command
}

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

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `lbaasd serve` on a free loopback port; returns it once it listens, with its log.
fn serve(data: &std::path::Path, driver_dir: &std::path::Path) -> (Server, String, Vec<String>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut child = lbaasd()
        .args(["serve", "--listen", &address, "--data-dir"])
        .arg(data)
        .arg("--driver-dir")
        .arg(driver_dir)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lbaasd serve");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("log line");
        let ready = line.contains("lbaasd serving");
        log.push(line);
        if ready || Instant::now() > deadline {
            break;
        }
    }
    assert!(log.iter().any(|l| l.contains("lbaasd serving")), "{log:#?}");
    (server, format!("http://{address}"), log)
}

#[test]
fn serve_answers_and_restarts_from_the_compile_cache() {
    let data = tempfile::tempdir().expect("data dir");
    let driver_dir = tempfile::tempdir().expect("driver dir");
    std::fs::copy(&drivers().haproxy, driver_dir.path().join("haproxy.wasm")).expect("copy");
    std::fs::copy(&drivers().acme_adc, driver_dir.path().join("acme-adc.wasm")).expect("copy");
    std::fs::write(driver_dir.path().join("broken.wasm"), "junk").expect("write");

    let (server, url, log) = serve(data.path(), driver_dir.path());
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
    let (_server, _url, log) = serve(data.path(), driver_dir.path());
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

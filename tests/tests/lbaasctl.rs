//! `lbaasctl` as an operator runs it against a running `lbaasd`: driver versions (upload with
//! activation, rollback, inspect), devices, placement explanations, the audit log; tables for
//! people, JSON for scripts, and exit codes that tell a refusal from an unreachable host.

use std::path::Path;
use std::process::Command;

use lbaas_tests::process::{Server, host_binary};
use lbaas_tests::{drivers, lifecycle_fixtures};
use serde_json::Value;

/// Runs `lbaasctl --url URL ARGS…`: (exit code, stdout, stderr).
fn ctl(url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(host_binary("lbaasctl"))
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("LBAAS_TOKEN")
        .output()
        .expect("run lbaasctl");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = ctl(url, &all);
    assert_eq!(code, 0, "lbaasctl {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("lbaasctl {args:?}: {e}: {stdout}"))
}

#[test]
fn operators_drive_the_host_with_lbaasctl() {
    let data = tempfile::tempdir().expect("data dir");
    let folder = tempfile::tempdir().expect("driver folder");
    for (from, name) in [
        (&drivers().haproxy, "haproxy.wasm"),
        (&drivers().acme_adc, "acme-adc.wasm"),
    ] {
        std::fs::copy(from, folder.path().join(name)).expect("copy");
    }
    let server = Server::start(data.path(), folder.path(), &["--no-spawn"]);
    let url = &server.url.clone();

    let (code, table, _) = ctl(url, &["driver", "list"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("haproxy") && table.contains("lbaas:driver@0.5.0"),
        "{table}"
    );
    let listed = json(url, &["driver", "list"]);
    assert_eq!(listed["drivers"].as_array().map(Vec::len), Some(2));

    // Upload and activate the next version, then roll back.
    let next = lifecycle_fixtures().haproxy_next.to_str().expect("utf8");
    let (code, stdout, stderr) = ctl(url, &["driver", "upload", next, "--activate"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("uploaded haproxy 0.1.1") && stdout.contains("ACTIVE"),
        "{stdout}"
    );
    assert_eq!(
        json(url, &["driver", "inspect", "haproxy"])["driver"]["version"],
        "0.1.1"
    );
    let (code, stdout, _) = ctl(url, &["driver", "rollback", "haproxy"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("active 0.1.0"), "{stdout}");
    assert!(
        stdout.contains("INACTIVE"),
        "0.1.1 stays uploaded: {stdout}"
    );
    // Refusals are the host's words, with exit code 1.
    let (code, _, stderr) = ctl(url, &["driver", "activate", "haproxy", "9.9.9"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("has no version `9.9.9`") && stderr.contains("404"),
        "{stderr}"
    );
    let (code, _, stderr) = ctl(url, &["driver", "upload", next]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already uploaded"), "{stderr}");
    let missing = Path::new("/nonexistent/driver.wasm");
    let (code, _, stderr) = ctl(url, &["driver", "upload", missing.to_str().expect("utf8")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read"), "{stderr}");

    // Devices.
    let added = json(
        url,
        &[
            "device",
            "add",
            "--name",
            "adc-1",
            "--kind",
            "physical",
            "--driver",
            "acme-adc",
            "--management-url",
            "http://127.0.0.1:9",
            "--capacity",
            "8",
            "--metadata",
            "interfaces=2",
        ],
    );
    let id = added["device"]["id"].as_str().expect("id").to_owned();
    assert_eq!(added["device"]["metadata"]["interfaces"], "2");
    let (code, table, _) = ctl(url, &["device", "list"]);
    assert_eq!(code, 0);
    assert!(table.contains("adc-1") && table.contains("0/8"), "{table}");
    let disabled = json(url, &["device", "disable", &id]);
    assert_eq!(disabled["device"]["enabled"], false);
    let (code, _, stderr) = ctl(
        url,
        &[
            "device",
            "add",
            "--name",
            "x",
            "--kind",
            "physical",
            "--driver",
            "acme-adc",
            "--management-url",
            "http://127.0.0.1:9",
            "--capacity",
            "1",
            "--metadata",
            "no-equals-sign",
        ],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("is not KEY=VALUE"), "{stderr}");

    // Placement explanations and the audit log.
    let (code, _, stderr) = ctl(url, &["placement", "explain", "no-such-lb"]);
    assert_eq!(code, 1, "{stderr}");
    let tail = json(
        url,
        &["audit", "tail", "-n", "3", "--function", "lifecycle"],
    );
    let tail = tail.as_array().expect("records");
    assert_eq!(tail.len(), 3);
    assert_eq!(tail[2]["function"], "lifecycle.rollback");
    // As a table, every record fits a terminal, however long its target (a state read names
    // every key it read); `--json` above has it whole.
    let (code, table, stderr) = ctl(url, &["audit", "tail", "-n", "50"]);
    assert_eq!(code, 0, "{stderr}");
    let widest = table.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 120, "a {widest}-column line:\n{table}");
    assert!(!table.contains("Method::"), "{table}");
    let (code, stdout, _) = ctl(url, &["audit", "verify"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("audit log intact"), "{stdout}");
    let export = data.path().join("audit.jsonl");
    let (code, _, stderr) = ctl(
        url,
        &["audit", "export", "-o", export.to_str().expect("utf8")],
    );
    assert_eq!(code, 0, "{stderr}");
    let lines = std::fs::read_to_string(&export).expect("export");
    assert!(lines.lines().count() >= 4, "{lines}");
    assert!(
        lines
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );

    // Usage errors are clap's (2); an unreachable host is 3.
    let (code, _, _) = ctl(url, &["driver", "frobnicate"]);
    assert_eq!(code, 2);
    drop(server);
    let (code, _, stderr) = ctl(url, &["driver", "list"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("cannot reach the host"), "{stderr}");
}

/// A tenant keeps a certificate bundle in the host's own key manager with lbaasctl: stored from
/// a file (its reference printed for a listener to name), listed and shown by reference or id
/// without its payload, kept across a restart under the key file the host made, deleted.
#[test]
fn tenants_keep_certificate_bundles_with_lbaasctl() {
    let data = tempfile::tempdir().expect("data dir");
    let folder = tempfile::tempdir().expect("driver folder");
    let bundle = data.path().join("bundle.p12");
    std::fs::write(&bundle, b"\x30\x82 not-parsed-until-a-listener-names-it").expect("write");
    let bundle = bundle.to_str().expect("utf8");
    let server = Server::start(data.path(), folder.path(), &["--no-spawn"]);
    let url = server.url.clone();
    let as_tenant = |args: &[&str]| {
        let mut all = vec!["--project", "tenant"];
        all.extend_from_slice(args);
        ctl(&url, &all)
    };
    let (code, stdout, stderr) = as_tenant(&["secret", "store", bundle, "--name", "www"]);
    assert_eq!(code, 0, "{stderr}");
    let reference = stdout.trim().to_owned();
    assert!(
        reference.starts_with(&format!("{url}/v1/secrets/")),
        "{reference}"
    );
    let id = reference.rsplit('/').next().expect("an id").to_owned();

    // The host made its sealing key beside the database, for nobody else to read.
    let key = data.path().join("secrets.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let (code, table, stderr) = as_tenant(&["secret", "list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table.contains("www") && table.contains("certificate"),
        "{table}"
    );
    assert!(table.contains("application/octet-stream"), "{table}");
    for secret in [reference.as_str(), id.as_str()] {
        let (code, shown, stderr) = as_tenant(&["secret", "show", secret]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            shown.contains(&reference) && shown.contains("ACTIVE"),
            "{shown}"
        );
    }
    let listed = json(&url, &["--project", "tenant", "secret", "list"]);
    assert!(
        !listed.to_string().contains("not-parsed"),
        "a payload in {listed}"
    );

    // A restart keeps it, under the same key file.
    server.stop();
    let server = Server::start(data.path(), folder.path(), &["--no-spawn"]);
    let url = server.url.clone();
    let (code, shown, stderr) = ctl(&url, &["--project", "tenant", "secret", "show", &id]);
    assert_eq!(code, 0, "{stderr}");
    assert!(shown.contains("www"), "{shown}");
    let (code, _, stderr) = ctl(&url, &["--project", "tenant", "secret", "delete", &id]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = ctl(&url, &["--project", "tenant", "secret", "show", &id]);
    assert_ne!(code, 0);
    assert!(stderr.contains("could not be found"), "{stderr}");
    server.stop();
}

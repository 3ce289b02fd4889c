//! The project's layout holds: released contracts stay as released, and every fixture in
//! `tests/fixtures/` is built and used. Source-level checks: they run in milliseconds and
//! build no driver.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Every file of every released contract folder, with its SHA-256. A released contract is
/// frozen: drivers built against it must keep loading. A change belongs in a new version's
/// folder, pinned here when it is released.
const RELEASED: &[(&str, &str)] = &[
    (
        "lbaas-driver@0.1.0/driver.wit",
        "4860f42d2dd59586fd6f6705bceb00d8f930f9a7ae8cd81a5c09caf8112821f8",
    ),
    (
        "lbaas-driver@0.2.0/driver.wit",
        "fdb77cb1dbaa51a985c9aa26a7b3a6a1af57b9a11f97d9f10e137704f769d36a",
    ),
    (
        "lbaas-driver@0.3.0/driver.wit",
        "d334a81ae8ee18b0215cea3de1cbefb975466d85d2b702afcd93c2a9fd974db2",
    ),
    (
        "lbaas-driver@0.4.0/driver.wit",
        "90f73bdc9c01ca6bd8a06972b134b6eca46a5307b2603e69a57db83bb6dd32b7",
    ),
    (
        "lbaas-driver@0.5.0/driver.wit",
        "eebef0efffb04697be144d3466371685d6c008e3745eec838ad7e5006e7d6fc6",
    ),
];

/// Files under `dir`, by their path relative to `root`.
fn files(root: &Path, dir: &Path, into: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(root, &path, into);
        } else {
            let relative = path.strip_prefix(root).expect("under the root");
            into.insert(
                relative.to_string_lossy().into_owned(),
                std::fs::read(&path).expect("readable file"),
            );
        }
    }
}

#[test]
fn released_contracts_are_frozen() {
    let wit = lbaas_tests::workspace_root().join("wit");
    let mut found = BTreeMap::new();
    files(&wit, &wit, &mut found);
    let pinned: BTreeMap<&str, &str> = RELEASED.iter().copied().collect();
    for (file, bytes) in &found {
        let digest = hex::encode(Sha256::digest(bytes));
        match pinned.get(file.as_str()) {
            Some(expected) => assert_eq!(
                &digest, expected,
                "wit/{file} changed after its release: put the change in a new version's folder"
            ),
            None => panic!("wit/{file} is not pinned: pin it here when its version is released"),
        }
    }
    for file in pinned.keys() {
        assert!(found.contains_key(*file), "released wit/{file} is gone");
    }
}

/// Every package in `tests/fixtures/` is built (the test support maps its folder to a field)
/// and some test or benchmark uses that field: a fixture nobody runs fails here.
#[test]
fn every_fixture_is_built_and_used() {
    let root = lbaas_tests::workspace_root();
    let support = std::fs::read_to_string(root.join("tests/src/lib.rs")).expect("lib.rs");
    let mut users = String::new();
    for folder in ["tests/tests", "tests/benches"] {
        for entry in std::fs::read_dir(root.join(folder)).expect("folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                users += &std::fs::read_to_string(&path).expect("source");
            }
        }
    }
    let folders = lbaas_tests::fixture_folders();
    let on_disk: Vec<String> = std::fs::read_dir(root.join("tests/fixtures"))
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for folder in &on_disk {
        assert!(
            folders.contains(folder),
            "tests/fixtures/{folder} is not a package of the workspace"
        );
    }
    for folder in &folders {
        assert!(
            support.contains(&format!("fixture(\"{folder}\")")),
            "tests/fixtures/{folder} is built by no field of the test support"
        );
        let field = folder.replace('-', "_");
        let used = users.match_indices(&format!(".{field}")).any(|(at, hit)| {
            !users[at + hit.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        });
        assert!(
            used,
            "tests/fixtures/{folder} (`{field}`) is used by no test"
        );
    }
}

/// The host fails a driver call when a device refuses it by policy, recognised by a header the
/// agent sends: both sides name the same one.
#[test]
fn host_and_agent_agree_on_the_refusal_header() {
    assert_eq!(
        lbaas_host::runtime::DEVICE_REFUSAL_HEADER,
        lbaas_agent::REFUSAL_HEADER
    );
    // And on the header saying how a change was applied, which the audit records.
    assert_eq!(
        lbaas_host::runtime::DEVICE_APPLIED_HEADER,
        lbaas_agent::APPLIED_HEADER
    );
}

/// The HAProxy driver sends a metrics listener's requests to the backend the agent defines.
/// The driver is a Wasm component, so its side is read from its source.
#[test]
fn haproxy_driver_and_agent_agree_on_the_metrics_backend() {
    let root = lbaas_tests::workspace_root();
    let source =
        std::fs::read_to_string(root.join("drivers/haproxy/src/config.rs")).expect("config.rs");
    let declared = format!(
        "pub const METRICS_BACKEND: &str = \"{}\";",
        lbaas_agent::metrics::BACKEND
    );
    assert!(
        source.contains(&declared),
        "drivers/haproxy/src/config.rs must declare {declared}"
    );
}

/// The host tells a device what a load balancer may reach in a header the agent reads, as
/// JSON both sides read the same way.
#[test]
fn host_and_agent_agree_on_the_scope() {
    use lbaas_host::runtime::scope::{SCOPE_HEADER, Scope};
    assert_eq!(SCOPE_HEADER, lbaas_agent::SCOPE_HEADER);
    let sent = Scope {
        loadbalancer: "lb-1".into(),
        binds: vec!["127.0.50.1:80".parse().expect("socket")],
        servers: vec!["[fd00::1]:8080".parse().expect("socket")],
        checks: vec!["10.0.0.1:9000".parse().expect("socket")],
        http_checks: vec!["GET /health".into()],
    };
    let json = serde_json::to_string(&sent).expect("json");
    let read: lbaas_agent::Scope = serde_json::from_str(&json).expect("the agent reads it");
    assert_eq!(read.loadbalancer, sent.loadbalancer);
    assert_eq!(read.binds, sent.binds);
    assert_eq!(read.servers, sent.servers);
    assert_eq!(read.checks, sent.checks);
    assert_eq!(read.http_checks, sent.http_checks);
}

/// Each crate depends on what its job needs and nothing that belongs to another layer: the
/// records, views and storage traits (core) carry no storage engine, HTTP or Wasm; the driver
/// runtime (what a vendor's CI needs for `driver check`) no storage or HTTP server; the sled
/// backends no Wasm or HTTP; the control plane neither HTTP nor a storage engine, and never the
/// API (so no import cycle between them can exist); the API neither Wasm nor storage; the
/// device agent, which runs on device hosts, and the operators' CLI, which runs on laptops,
/// none of the host; the telemetry crate knows no record, HTTP or storage.
#[test]
fn crates_depend_only_on_what_their_job_needs() {
    let metadata = lbaas_tests::cargo_metadata();
    let dependencies = |package: &str| -> Vec<String> {
        metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .find(|p| p["name"] == package)
            .unwrap_or_else(|| panic!("no package {package}"))["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect()
    };
    let layers = [
        "lbaas-host",
        "lbaas-api",
        "lbaas-control",
        "lbaas-sled",
        "lbaas-postgres",
        "lbaas-runtime",
    ];
    let engines = ["wasmtime", "wasmtime-wasi", "sled", "tokio-postgres"];
    let host_side = [&layers[..], &engines[..]].concat();
    let rules: &[(&str, &[&str])] = &[
        (
            "lbaas-scheduler",
            &[&host_side[..], &["lbaas-core", "axum", "tokio"]].concat(),
        ),
        (
            "lbaas-core",
            &[&host_side[..], &["axum", "tokio", "ureq"]].concat(),
        ),
        (
            "lbaas-runtime",
            &[
                "lbaas-host",
                "lbaas-api",
                "lbaas-control",
                "lbaas-sled",
                "lbaas-postgres",
                "sled",
                "tokio-postgres",
                "axum",
                "tokio",
            ],
        ),
        (
            "lbaas-postgres",
            &[
                "lbaas-host",
                "lbaas-api",
                "lbaas-control",
                "lbaas-runtime",
                "lbaas-sled",
                "sled",
                "wasmtime",
                "axum",
            ],
        ),
        (
            "lbaas-sled",
            &[
                "lbaas-host",
                "lbaas-api",
                "lbaas-control",
                "lbaas-runtime",
                "lbaas-postgres",
                "wasmtime",
                "axum",
                "tokio",
            ],
        ),
        (
            "lbaas-control",
            &[
                "lbaas-host",
                "lbaas-api",
                "lbaas-sled",
                "lbaas-postgres",
                "sled",
                "tokio-postgres",
                "wasmtime",
                "axum",
            ],
        ),
        (
            "lbaas-keys",
            &[
                &host_side[..],
                &["lbaas-core", "lbaas-records", "axum", "tokio", "ureq"],
            ]
            .concat(),
        ),
        (
            "lbaas-api",
            &[
                "lbaas-host",
                "lbaas-sled",
                "lbaas-postgres",
                "lbaas-runtime",
                // Keys are opened below the API only: no handler holds a key's bytes.
                "lbaas-keys",
                "sled",
                "tokio-postgres",
                "wasmtime",
                "wasmtime-wasi",
            ],
        ),
        (
            "lbaas-agent",
            &[&host_side[..], &["lbaas-core", "lbaas-scheduler"]].concat(),
        ),
        (
            "lbaas-records",
            &[
                &host_side[..],
                &[
                    "lbaas-core",
                    "lbaas-scheduler",
                    "axum",
                    "tokio",
                    "ureq",
                    "opentelemetry",
                    "prometheus-client",
                    "ed25519-dalek",
                ],
            ]
            .concat(),
        ),
        (
            "lbaas-telemetry",
            &[
                &host_side[..],
                &["lbaas-core", "lbaas-records", "axum", "tokio", "serde"],
            ]
            .concat(),
        ),
        (
            "lbaas-cli",
            &[
                &host_side[..],
                &[
                    "lbaas-core",
                    "lbaas-telemetry",
                    "lbaas-keys",
                    "axum",
                    "tokio",
                ],
            ]
            .concat(),
        ),
    ];
    for (package, forbidden) in rules {
        let has = dependencies(package);
        for name in *forbidden {
            assert!(
                !has.iter().any(|d| d == name),
                "{package} depends on {name}: {has:?}"
            );
        }
    }
}

/// `lbaasctl` reads views: what it links is the records crate, never the scheduler, the host's
/// telemetry, metrics registry or signing code (checked over its whole dependency tree, not
/// only its own manifest). A stored placement is a record type of its own, so neither the CLI
/// nor the records crate depend on the scheduler.
#[test]
fn the_cli_links_only_records_and_views() {
    let stdout = lbaas_tests::cargo_stdout(&[
        "tree",
        "-p",
        "lbaas-cli",
        "-e",
        "normal",
        "--offline",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    let tree = String::from_utf8_lossy(&stdout);
    let linked: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(linked.contains(&"lbaas-records"), "{linked:?}");
    for heavy in [
        "lbaas-core",
        "lbaas-scheduler",
        "lbaas-telemetry",
        "opentelemetry",
        "opentelemetry_sdk",
        "prometheus-client",
        "ed25519-dalek",
        "tokio",
        "wasmtime",
    ] {
        assert!(!linked.contains(&heavy), "lbaasctl links {heavy}");
    }
}

/// No sandbox type above the control plane: the HTTP crate names neither the driver runtime
/// nor its generated contract types (the control plane reads drivers' capabilities and answers
/// with its own types and errors), so a contract change never reaches an HTTP handler.
#[test]
fn the_api_names_no_sandbox_type() {
    let root = lbaas_tests::workspace_root();
    let mut sources = BTreeMap::new();
    files(&root, &root.join("api"), &mut sources);
    let named: Vec<String> = sources
        .iter()
        .filter(|(path, _)| path.ends_with(".rs"))
        .flat_map(|(path, bytes)| {
            String::from_utf8_lossy(bytes)
                .lines()
                .enumerate()
                .filter(|(_, line)| {
                    ["lbaas_runtime", "runtime::", "convert::"]
                        .iter()
                        .any(|token| line.contains(token))
                        && !line.contains("std::convert::")
                })
                .map(|(n, line)| format!("{path}:{}: {}", n + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(named.is_empty(), "{named:#?}");
    let manifest = std::fs::read_to_string(root.join("api/Cargo.toml")).expect("api manifest");
    assert!(!manifest.contains("lbaas-runtime"), "{manifest}");
}

/// `docs/benchmarks.md` is what `cargo xtask bench` writes today: a row for every figure it
/// renders (with today's aim), no row it no longer renders, and the notes exactly as
/// `xtask/benchmarks-notes.md` has them.
#[test]
fn the_benchmarks_document_has_every_figure_and_the_notes() {
    use lbaas_tests::benchmarks_doc::{NOTES, PATH, ROWS};
    let path = lbaas_tests::workspace_root().join(PATH);
    let document = std::fs::read_to_string(&path).expect("docs/benchmarks.md");
    let rows: Vec<&str> = document
        .lines()
        .skip_while(|line| !line.starts_with("|---"))
        .skip(1)
        .take_while(|line| line.starts_with("| "))
        .collect();
    for row in ROWS {
        assert!(
            rows.iter()
                .any(|line| line.starts_with(&format!("| {} | ", row.title))
                    && line.contains(&format!(" | {} | ", row.aim))),
            "docs/benchmarks.md has no row `{}` with the aim `{}`: run `cargo xtask bench`",
            row.title,
            row.aim
        );
    }
    assert_eq!(
        rows.len(),
        ROWS.len(),
        "docs/benchmarks.md has rows xtask no longer renders"
    );
    assert!(
        document.ends_with(NOTES),
        "the notes of docs/benchmarks.md differ from xtask/benchmarks-notes.md: run `cargo xtask \
         bench --no-run`"
    );
}

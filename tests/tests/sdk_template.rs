//! The vendor README's steps, followed literally: `cargo new`, add the SDK, drop in the
//! template, build for wasm32-wasip2, and load the result in the host.

use std::process::Command;

use lbaas_host::runtime::DeviceKind;
use lbaas_tests::model::*;
use lbaas_tests::{TestHost, cargo, workspace_root};

fn run(command: &mut Command) {
    let output = command.output().expect("run command");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn readme_steps_produce_a_loadable_driver() {
    let root = workspace_root();
    let work = tempfile::tempdir().expect("temp dir");
    let project = work.path().join("my-driver");

    // 1. cargo new --lib my-driver
    run(cargo()
        .current_dir(work.path())
        .args(["new", "--lib", "--vcs", "none", "my-driver"]));
    // 2. a cdylib, depending on the SDK
    let manifest = project.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("manifest");
    text.push_str(&format!(
        "lbaas-driver-sdk = {{ path = {:?} }}\n\n[lib]\ncrate-type = [\"cdylib\"]\n",
        root.join("sdk")
    ));
    std::fs::write(&manifest, text).expect("manifest");
    // 3. the toolchain with the wasm32-wasip2 target
    std::fs::copy(
        root.join("rust-toolchain.toml"),
        project.join("rust-toolchain.toml"),
    )
    .expect("toolchain");
    // 4. the template driver
    std::fs::copy(
        root.join("sdk/template/src/lib.rs"),
        project.join("src/lib.rs"),
    )
    .expect("template");
    // 5. cargo build --release --target wasm32-wasip2 (sharing compiled dependencies)
    let target = root.join("target/template");
    run(cargo()
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "--target", "wasm32-wasip2"]));
    let wasm = target.join("wasm32-wasip2/release/my_driver.wasm");
    assert!(wasm.exists(), "{} missing", wasm.display());

    // The host loads it and every export answers.
    let data = tempfile::tempdir().expect("data dir");
    let host = TestHost::open(data.path());
    let driver = host.load(&wasm);
    assert_eq!(driver.name().as_str(), "example-lb");
    driver
        .validate_flavor(&flavor("gold", &[("tier", "gold")]))
        .expect("known key");
    let error = driver
        .validate_flavor(&flavor("gold", &[("colour", "red")]))
        .expect_err("unknown key is refused by the SDK default");
    assert!(
        error.to_string().contains("`colour` is not supported"),
        "{error}"
    );
    let lb = web_shop("lb-1", "127.0.0.30");
    let device = device("dev-1", DeviceKind::Virtual, 4, None);
    let hints = driver
        .select(&request_for(&lb), &[candidate(device.clone(), 0, 0)])
        .expect("select");
    assert_eq!(hints.devices.len(), 1);
    let config = driver.translate(&lb, &device).expect("translate");
    assert!(config.body.contains("listener 80 HTTP"), "{}", config.body);
}

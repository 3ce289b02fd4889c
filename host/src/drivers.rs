//! `lbaasd driver` and `keygen`: a component checked, loaded alone and reported on, without a
//! running host.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use lbaas_host::devices::StaticDevices;
use lbaas_host::driver_state::SledStateStore;
use lbaas_host::integrity::{self, Trust};
use lbaas_host::runtime::{LoadedDriver, Runtime, RuntimeConfig};

pub(crate) fn keygen(file: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (secret, public) = integrity::keygen().map_err(anyhow::Error::msg)?;
    std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot create {} (it must not exist yet)", file.display()))?
        .write_all(secret.as_bytes())?;
    let public_file = integrity::signature_path(file).with_extension("pub");
    std::fs::write(&public_file, &public)?;
    println!(
        "secret key: {}\npublic key: {} ({public})",
        file.display(),
        public_file.display()
    );
    Ok(())
}

/// Checks `file` against the operator's trust and loads it in a throw-away runtime.
pub(crate) fn load_alone(
    file: &Path,
    trust: &Trust,
) -> anyhow::Result<(LoadedDriver, integrity::Accepted)> {
    let (bytes, accepted) = trust
        .check_file(file)
        .map_err(|e| anyhow::anyhow!("{}: refused: {e}", file.display()))?;
    let scratch = sled::Config::new().temporary(true).open()?;
    let state = SledStateStore::new(scratch, 1 << 20);
    let runtime = Runtime::new(
        RuntimeConfig::default(),
        Arc::new(state),
        Arc::new(StaticDevices::new()),
    )?;
    let driver = runtime.load(&bytes, &file.display().to_string())?;
    Ok((driver, accepted))
}

pub(crate) fn inspect(file: &Path, trust: &Trust) -> anyhow::Result<()> {
    let (driver, accepted) = load_alone(file, trust)?;
    let report = serde_json::json!({
        "name": driver.identity().name,
        "version": driver.identity().version,
        "sha256": driver.identity().sha256,
        "contract": driver.contract(),
        "capabilities": driver.capabilities(),
        "manifest": driver.manifest(),
        "grant": driver.grant(),
        "signed_by": accepted.signed_by,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub(crate) fn conformance(file: &Path, json: bool, trust: &Trust) -> anyhow::Result<()> {
    let (driver, _) = load_alone(file, trust)?;
    let report = lbaas_host::conformance::check(&driver);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    if !report.passed() {
        bail!(
            "{} {} fails {} conformance check(s)",
            report.driver,
            report.version,
            report.failures().len()
        );
    }
    Ok(())
}

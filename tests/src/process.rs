//! `lbaasd` as a separate process, as an operator runs it: built on demand, started on a free
//! loopback port, its log collected, killed (SIGKILL) on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{cargo, workspace_root};

/// The package whose binary `name` is.
fn package_of(name: &str) -> &'static str {
    match name {
        "lbaas-agent" => "lbaas-agent",
        "lbaasctl" => "lbaas-cli",
        _ => "lbaas-host",
    }
}

/// A binary of the workspace (`lbaasd`, `lbaasctl`, `lbaas-agent`), freshly built (debug):
/// built once per test process, however many times it is started.
pub fn host_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let status = cargo()
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", package_of(name), "--bin", name])
            .status()
            .unwrap_or_else(|e| panic!("build {name}: {e}"));
        assert!(status.success(), "building {name} failed");
        built.push(name.to_owned());
    }
    crate::target_dir().join("debug").join(name)
}

/// A copy of `lbaasd` in `dir`, which later builds of the workspace leave as it is: for a long
/// run that restarts hosts while the workspace changes.
pub fn frozen_lbaasd(dir: &Path) -> PathBuf {
    let copy = dir.join("lbaasd");
    std::fs::copy(host_binary("lbaasd"), &copy).expect("copy lbaasd");
    copy
}

/// The `lbaasd` binary of this workspace, freshly built.
pub fn lbaasd() -> Command {
    lbaasd_at(&host_binary("lbaasd"))
}

/// `lbaasd` at `program`, with the environment the tests run it in.
fn lbaasd_at(program: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .env("NO_COLOR", "1");
    command
}

/// `lbaasd serve` over `data` as one of several hosts on the PostgreSQL database at `url`, with
/// the bundled drivers, leases of 2 s and 2 job slots.
pub fn start_in_fleet(data: &Path, url: &str) -> Server {
    start_in_fleet_with(&host_binary("lbaasd"), data, url)
}

/// [`start_in_fleet`] with the `lbaasd` at `program` (a [`frozen_lbaasd`]).
pub fn start_in_fleet_with(program: &Path, data: &Path, url: &str) -> Server {
    let driver_dir = crate::driver_dir();
    Server::start_program(
        program,
        data,
        &driver_dir,
        &["--store", url, "--lease", "2s", "--workers", "2"],
    )
}

/// `lbaasd` for a command on the host over `data` (its audit log, say): pointed at that
/// host's PostgreSQL database when the run uses PostgreSQL.
pub fn lbaasd_for(data: &Path) -> Command {
    let mut command = lbaasd();
    if crate::postgres::backend() == crate::postgres::Backend::Postgres {
        command.env("LBAAS_STORE", crate::postgres::database_for(data).url);
    }
    command
}

/// A running `lbaasd serve`.
pub struct Server {
    child: Child,
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `lbaasd serve` over `data` with the drivers in `driver_dir` and `extra` arguments;
    /// returns once it listens.
    pub fn start(data: &Path, driver_dir: &Path, extra: &[&str]) -> Self {
        Self::start_program(&host_binary("lbaasd"), data, driver_dir, extra)
    }

    /// [`Server::start`] with the `lbaasd` at `program`.
    pub fn start_program(program: &Path, data: &Path, driver_dir: &Path, extra: &[&str]) -> Self {
        let port = crate::free_loopback_port();
        let address = format!("127.0.0.1:{port}");
        let mut command = lbaasd_at(program);
        command
            .args(["serve", "--listen", &address, "--data-dir"])
            .arg(data)
            .arg("--driver-dir")
            .arg(driver_dir)
            .args(extra);
        // Devices in namespaces of their own change the machine (an address on its loopback,
        // a firewall table) for as long as a host runs, and a host these tests kill -9 never
        // tidies up: they are for the tests that look at them (dataplane).
        if !extra.contains(&"--device-isolation") && !extra.contains(&"--no-spawn") {
            command.args(["--device-isolation", "shared"]);
        }
        // The suites that run against both stores: PostgreSQL when the run asks for it,
        // unless the test names its own store.
        if crate::postgres::backend() == crate::postgres::Backend::Postgres
            && !extra.contains(&"--store")
        {
            command
                .env("LBAAS_STORE", crate::postgres::database_for(data).url)
                .args(["--lease", "3s"]);
        }
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lbaasd serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        // Drains the log for the server's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let ready = line.contains("lbaasd serving");
                lines.lock().expect("log").push(line);
                if ready {
                    let _ = ready_tx.send(());
                }
            }
        });
        let started = ready_rx.recv_timeout(Duration::from_secs(120)).is_ok();
        let server = Self {
            child,
            url: format!("http://{address}"),
            log,
        };
        assert!(started, "lbaasd did not start: {:#?}", server.log());
        server
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// The process id of `lbaasd`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of `lbaasd` now, in bytes (Linux' `/proc`).
    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the host's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// SIGTERM, as an operator stops it, and waits for it to exit. Returns what it logged.
    pub fn stop(mut self) -> Vec<String> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        self.log()
    }

    /// SIGKILL: no shutdown, no flush. Returns what it logged.
    pub fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A real headless Chromium for the dashboard's tests, driven over WebDriver (`fantoccini`)
//! through Debian's `chromedriver`, both on loopback. Each [`Chromium`] runs its own
//! chromedriver in a process group of its own, with a throw-away profile, and kills the group
//! (the browser's processes with it) when dropped.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// Where Debian's `chromium` and `chromium-driver` packages put them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";

pub struct Chromium {
    driver: Child,
    webdriver: String,
    profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts chromedriver on a free loopback port and waits until it takes sessions.
    pub fn start() -> Self {
        let port = crate::free_loopback_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {CHROMEDRIVER}: {e} (install Debian's chromium and \
                     chromium-driver packages; scripts/test does)"
                )
            });
        let chromium = Self {
            driver,
            webdriver: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().expect("profile dir"),
        };
        let started = Instant::now();
        let status = format!("{}/status", chromium.webdriver);
        while !ureq::get(&status)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
            .is_some_and(|s| s["value"]["ready"] == true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not come up on {}",
                chromium.webdriver
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        chromium
    }

    /// A new browser session: headless, 1280×900, no sandbox (the tests may run as root), no
    /// network but what the pages ask for on loopback.
    pub async fn session(&self) -> fantoccini::Client {
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,900",
                format!("--user-data-dir={}", self.profile.path().display()),
            ],
        });
        if std::path::Path::new(CHROMIUM).exists() {
            options["binary"] = json!(CHROMIUM);
        }
        let mut capabilities = Capabilities::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        fantoccini::ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.webdriver)
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"))
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The group: chromedriver and the browser processes it started.
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            // SAFETY: killpg only sends a signal; the group is the one made for this child.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
        }
        let _ = self.driver.wait();
    }
}

/// Where a test writes a screenshot for people to look at: `target/dashboard/NAME.png`.
pub fn screenshot_path(name: &str) -> PathBuf {
    let folder = crate::target_dir().join("dashboard");
    std::fs::create_dir_all(&folder).expect("screenshot folder");
    folder.join(format!("{name}.png"))
}

//! wrk (from the system packages) as the read benchmarks drive it: 16 connections, 2 threads,
//! 5 seconds, latency percentiles parsed from its report.

use std::process::Command;

const SECONDS: u32 = 5;

/// What one wrk run measured.
pub struct Run {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A wrk duration (`812.00us`, `1.23ms`, `2.01s`) in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

pub fn wrk(url: &str, headers: &[&str]) -> Run {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c16", &format!("-d{SECONDS}s"), "--latency"]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk; `cargo xtask bench` installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}");
    assert!(!text.contains("Non-2xx"), "errors during the run: {text}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| {
                line.trim()
                    .strip_prefix(prefix)
                    .map(str::trim)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("no `{prefix}` in wrk's output: {text}"))
    };
    Run {
        requests_per_second: field("Requests/sec:").parse().expect("requests/sec"),
        p50_ms: millis(&field("50%")).expect("p50"),
        p99_ms: millis(&field("99%")).expect("p99"),
    }
}

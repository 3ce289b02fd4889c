//! One HAProxy in master-worker mode, driven through files, signals and its sockets.
//!
//! The state folder holds everything: `base.cfg` (written by the agent: the stats socket and
//! the [metrics](crate::metrics) proxies),
//! `conf.d/<load balancer>.cfg` (one per load balancer, exactly as the driver rendered it),
//! the master's pid file and CLI socket, the worker's stats socket, and `haproxy.log` (the
//! master's output, where HAProxy explains a refused reload).
//!
//! A reload is `SIGUSR2` to the master: it re-reads the files, starts a new worker and lets
//! the old one finish its connections, so established connections survive. If the new
//! configuration cannot start, the master keeps the old worker and counts a failed reload,
//! which [`Haproxy::reload`] reads back from `show proc`.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;

/// Why HAProxy could not be started, checked, reloaded or asked. Its text reaches the host
/// in the agent's answer.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// A file or folder of the agent's state could not be made, opened or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Files {
        /// What was being done (`create`, `open`, `write`, …).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The sockets' folder is too deep for HAProxy's Unix socket paths.
    #[error(
        "the socket folder {} is too deep for HAProxy: its sockets are bound as paths of up to \
         {} bytes, and a Unix socket's path holds at most {MAX_SOCKET_PATH}; give \
         --socket-dir a shorter folder",
        .0.display(),
        socket_path_length(.0)
    )]
    TooDeep(PathBuf),
    /// The HAProxy binary could not be run.
    #[error("cannot run {}: {source}", binary.display())]
    Run {
        /// The binary.
        binary: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// HAProxy refused the configuration: its own alerts.
    #[error("{0}")]
    Refused(String),
    /// HAProxy exited or did not come up at start: what happened and the end of its log.
    #[error("HAProxy {what}: {log}")]
    Start {
        /// What happened.
        what: String,
        /// The end of HAProxy's log.
        log: String,
    },
    /// The master did not report the reload in time: the end of its log.
    #[error("HAProxy did not finish reloading: {0}")]
    Reload(String),
    /// The master could not be signalled.
    #[error("cannot signal HAProxy's master: {0}")]
    Signal(nix::Error),
    /// A runtime socket could not be reached or read.
    #[error("HAProxy socket {}: {source}", path.display())]
    Socket {
        /// The socket.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A runtime socket answered what the agent cannot read.
    #[error("unexpected `{command}` answer: {answer}")]
    Unexpected {
        /// The command asked.
        command: &'static str,
        /// What was wrong with the answer.
        answer: String,
    },
}

fn files(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HaproxyError {
    let path = path.to_owned();
    move |source| HaproxyError::Files {
        action,
        path,
        source,
    }
}

/// How long a start or a reload may take before the agent gives up on it.
const SETTLE: Duration = Duration::from_secs(15);
/// How long a removed server's connections may take to end before the agent reloads instead.
const DRAIN: Duration = Duration::from_millis(250);
/// Unix socket paths are limited to 108 bytes, terminator included.
pub const MAX_SOCKET_PATH: usize = 107;
/// HAProxy's Prometheus exporter's socket, the longest socket name the agent gives HAProxy.
const LONGEST_SOCKET: &str = "exporter.sock";
/// What HAProxy adds to a socket's path while it binds it (`<path>.<pid>.tmp`, renamed once
/// bound), with the largest pid Linux hands out.
const BIND_SUFFIX: &str = ".4194304.tmp";

/// The longest path HAProxy binds for a socket in `dir`.
pub fn socket_path_length(dir: &Path) -> usize {
    dir.join(LONGEST_SOCKET).as_os_str().len() + BIND_SUFFIX.len()
}

pub struct Haproxy {
    binary: PathBuf,
    dir: PathBuf,
    /// Where HAProxy's two Unix sockets live: `dir` unless a shorter folder is given, as a
    /// socket's path is limited to 107 bytes wherever the state lives.
    sockets: PathBuf,
}

/// The master's view of itself (`show proc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Processes {
    pub master: u32,
    pub workers: Vec<u32>,
    /// Reloads since the master started.
    pub reloads: u64,
    /// Failed reloads since the last one that succeeded.
    pub failed: u64,
}

/// One line of `show stat`, in the agent's wire format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatRow {
    pub proxy: String,
    pub server: String,
    pub status: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub current_sessions: u64,
    pub total_sessions: u64,
    pub request_errors: u64,
}

impl StatRow {
    /// `now` with these counts added: what an earlier worker counted before `now`'s began.
    /// The status and the current sessions are `now`'s.
    pub fn add_to(&self, now: StatRow) -> StatRow {
        StatRow {
            bytes_in: self.bytes_in + now.bytes_in,
            bytes_out: self.bytes_out + now.bytes_out,
            total_sessions: self.total_sessions + now.total_sessions,
            request_errors: self.request_errors + now.request_errors,
            ..now
        }
    }
}

impl Haproxy {
    pub fn new(binary: PathBuf, dir: PathBuf) -> Self {
        Self {
            binary,
            sockets: dir.clone(),
            dir,
        }
    }

    /// HAProxy's sockets in `sockets` instead of the state folder.
    pub fn with_sockets(self, sockets: PathBuf) -> Self {
        Self { sockets, ..self }
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.dir.join("conf.d")
    }

    fn base(&self) -> PathBuf {
        self.dir.join("base.cfg")
    }

    fn master_socket(&self) -> PathBuf {
        self.sockets.join("master.sock")
    }

    fn stats_socket(&self) -> PathBuf {
        self.sockets.join("stats.sock")
    }

    /// HAProxy's Prometheus exporter ([`crate::metrics`]), which only the agent reads.
    pub fn exporter_socket(&self) -> PathBuf {
        self.sockets.join(LONGEST_SOCKET)
    }

    /// The abstract socket on which the agent answers metrics listeners: one name per socket
    /// folder, the same across restarts of the agent (an adopted HAProxy keeps using it).
    pub fn metrics_socket_name(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let digest = Sha256::digest(self.sockets.as_os_str().as_encoded_bytes());
        format!("lbaas-metrics-{}", &hex::encode(digest)[..32])
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("haproxy.pid")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("haproxy.log")
    }

    /// Adopts the HAProxy a previous agent left running in this folder, or starts one with
    /// the configurations found there.
    pub fn start_or_adopt(&self) -> Result<Processes, HaproxyError> {
        fs::create_dir_all(self.conf_dir()).map_err(files("create", &self.conf_dir()))?;
        // What an agent stopped in the middle of a change left: files HAProxy never loaded.
        for entry in fs::read_dir(self.conf_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path
                .extension()
                .is_some_and(|ext| ext == "candidate" || ext == "writing")
            {
                let _ = fs::remove_file(&path);
            }
        }
        if self.sockets != self.dir {
            // The master socket commands HAProxy: a folder of the agent's alone.
            fs::create_dir_all(&self.sockets)
                .and_then(|()| {
                    fs::set_permissions(&self.sockets, fs::Permissions::from_mode(0o700))
                })
                .map_err(files("create", &self.sockets))?;
        }
        if socket_path_length(&self.sockets) > MAX_SOCKET_PATH {
            return Err(HaproxyError::TooDeep(self.sockets.clone()));
        }
        self.write_base()?;
        if let Ok(processes) = self.processes() {
            tracing::info!(master = processes.master, "adopted a running HAProxy");
            return Ok(processes);
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .map_err(files("open", &self.log_file()))?;
        let _ = fs::remove_file(self.master_socket());
        let mut command = Command::new(&self.binary);
        command
            .arg("-W")
            .arg("-S")
            .arg(self.master_socket())
            .arg("-p")
            .arg(self.pid_file())
            .arg("-f")
            .arg(self.base())
            .arg("-f")
            .arg(self.conf_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(files("open", &self.log_file()))?)
            .stderr(log)
            // Its own process group: a signal meant for the agent's group (Ctrl-C) leaves
            // the data plane running.
            .process_group(0);
        let mut child = command.spawn().map_err(|source| HaproxyError::Run {
            binary: self.binary.clone(),
            source,
        })?;
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Ok(processes) = self.processes()
                && !processes.workers.is_empty()
            {
                tracing::info!(master = processes.master, "started HAProxy");
                // The master is reaped by whoever outlives it; the agent does not wait.
                std::thread::spawn(move || child.wait());
                return Ok(processes);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(HaproxyError::Start {
                    what: format!("exited at start ({status})"),
                    log: self.log_tail(),
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(HaproxyError::Start {
                    what: "did not start".into(),
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The empty folder HAProxy's workers shut themselves in.
    pub fn jail(&self) -> PathBuf {
        self.dir.join("jail")
    }

    fn write_base(&self) -> Result<(), HaproxyError> {
        let mut base = format!(
            "# Written by lbaas-agent at every start; load balancers live in conf.d/.\n\
             global\n    stats socket {} mode 600 level admin\n    stats timeout 10s\n\
             \x20   # Two listeners on one address and port are an error, never a shared socket\n\
             \x20   # the kernel splits connections across (one tenant's VIP taken by another).\n\
             \x20   noreuseport\n",
            self.stats_socket().display()
        );
        // Once its listeners are bound, a worker needs no file: where the agent may chroot
        // (root, or a device user keeping CAP_SYS_CHROOT), HAProxy's workers live in an empty,
        // read-only folder.
        // Certificate files are named relative to the folder of every load balancer's files
        // (`<load balancer>/<name>.pem`), so a driver renders them without knowing where the
        // device keeps them.
        let certificates = std::path::absolute(crate::certificates::root(&self.dir))
            .map_err(files("resolve", &self.dir))?;
        base.push_str(&format!(
            "    crt-base {0}\n    ca-base {0}\n",
            certificates.display()
        ));
        if may_chroot() {
            let jail = std::path::absolute(self.jail()).map_err(files("resolve", &self.jail()))?;
            fs::create_dir_all(&jail)
                .and_then(|()| fs::set_permissions(&jail, fs::Permissions::from_mode(0o500)))
                .map_err(files("prepare", &jail))?;
            base.push_str(&format!("    chroot {}\n", jail.display()));
        }
        base.push_str(&crate::metrics::base_proxies(
            &self.exporter_socket(),
            &self.metrics_socket_name(),
        ));
        fs::write(self.base(), base).map_err(files("write", &self.base()))
    }

    /// Checks the configuration formed by base.cfg and `files` (`haproxy -c`); the error is
    /// HAProxy's own message.
    pub fn check(&self, files: &[PathBuf]) -> Result<(), HaproxyError> {
        let mut command = Command::new(&self.binary);
        command.arg("-c").arg("-f").arg(self.base());
        for file in files {
            command.arg("-f").arg(file);
        }
        let output = command.output().map_err(|source| HaproxyError::Run {
            binary: self.binary.clone(),
            source,
        })?;
        if output.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        Err(HaproxyError::Refused(alerts(&text)))
    }

    /// Reloads and waits until the master reports the outcome.
    pub fn reload(&self) -> Result<(), HaproxyError> {
        let before = self.processes()?;
        let offset = fs::metadata(self.log_file()).map(|m| m.len()).unwrap_or(0);
        kill(Pid::from_raw(before.master as i32), Signal::SIGUSR2).map_err(HaproxyError::Signal)?;
        let deadline = Instant::now() + SETTLE;
        loop {
            // While re-executing, the master does not answer; that is expected.
            if let Ok(now) = self.processes()
                && now.reloads > before.reloads
            {
                if now.failed > 0 {
                    return Err(HaproxyError::Refused(alerts(&self.log_since(offset))));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HaproxyError::Reload(self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops HAProxy at once (its master, and with it every worker); returns once the master
    /// has exited.
    pub fn stop(&self) {
        let Ok(processes) = self.processes() else {
            return;
        };
        let _ = kill(Pid::from_raw(processes.master as i32), Signal::SIGTERM);
        let deadline = Instant::now() + SETTLE;
        while running(processes.master) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the master for its processes.
    pub fn processes(&self) -> Result<Processes, HaproxyError> {
        let text = ask(&self.master_socket(), "show proc")?;
        parse_processes(&text).ok_or(HaproxyError::Unexpected {
            command: "show proc",
            answer: text,
        })
    }

    /// Every proxy's and server's counters and state.
    pub fn stats(&self) -> Result<Vec<StatRow>, HaproxyError> {
        parse_stats(&ask(&self.stats_socket(), "show stat")?).map_err(|answer| {
            HaproxyError::Unexpected {
                command: "show stat",
                answer,
            }
        })
    }

    /// Sends [`crate::live::plan`]'s commands to the running workers, one at a time; stops at
    /// the first HAProxy does not report done, with the command and HAProxy's answer.
    pub fn apply(&self, commands: &[String]) -> Result<(), String> {
        for command in commands {
            let deadline = Instant::now() + DRAIN;
            loop {
                let answer = ask(&self.stats_socket(), command).map_err(|e| e.to_string())?;
                if crate::live::succeeded(command, &answer) {
                    break;
                }
                // A server in maintenance takes no new connection; the ones it has may end
                // within a moment. If they do not, the reload lets them finish on the old
                // worker.
                if !crate::live::busy(&answer) || Instant::now() > deadline {
                    return Err(format!("`{command}`: {}", answer.trim()));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    fn log_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(self.log_file())
            && file.seek(SeekFrom::Start(offset)).is_ok()
        {
            let _ = file.take(64 * 1024).read_to_string(&mut text);
        }
        text
    }

    fn log_tail(&self) -> String {
        let length = fs::metadata(self.log_file()).map(|m| m.len()).unwrap_or(0);
        let text = self.log_since(length.saturating_sub(2048));
        text.lines()
            .last()
            .unwrap_or("(no output)")
            .trim()
            .to_owned()
    }
}

/// `CAP_SYS_CHROOT` (linux/capability.h).
const CAP_SYS_CHROOT: u32 = 18;

/// Whether this process may `chroot` (`CAP_SYS_CHROOT` in its effective set: root, or a device
/// user the host left that capability).
fn may_chroot() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|effective| effective & (1 << CAP_SYS_CHROOT) != 0)
}

/// Whether process `pid` runs (a zombie waiting to be reaped does not).
pub fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(!stat.rsplit_once(") ")?.1.starts_with('Z')))
        .unwrap_or(false)
}

/// Sends one command to an HAProxy CLI socket and reads the whole answer.
fn ask(socket: &Path, command: &str) -> Result<String, HaproxyError> {
    let unreachable = |source| HaproxyError::Socket {
        path: socket.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(unreachable)?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(unreachable)?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(unreachable)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(unreachable)?;
    Ok(answer)
}

/// HAProxy's errors, without its notices: the `[ALERT]` lines, stripped of their prefix.
fn alerts(text: &str) -> String {
    let alerts: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("[ALERT]"))
        .map(|line| match line.split_once(" : ") {
            Some((_, message)) => message.trim().trim_start_matches("config : "),
            None => line.trim(),
        })
        .filter(|line| !line.contains("Fatal errors found"))
        .collect();
    if alerts.is_empty() {
        return text
            .trim()
            .lines()
            .last()
            .unwrap_or("HAProxy failed")
            .to_owned();
    }
    alerts.join("; ")
}

/// Parses `show proc`:
///
/// ```text
/// #<PID>          <type>          <reloads>       <uptime>        <version>
/// 5339            master          1 [failed: 0]   0d00h10m13s     2.6.12
/// # workers
/// 5551            worker          0               0d00h00m01s     2.6.12
/// ```
fn parse_processes(text: &str) -> Option<Processes> {
    let mut master = None;
    let mut workers = Vec::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let mut fields = line.split_whitespace();
        let (Some(pid), Some(kind)) = (fields.next(), fields.next()) else {
            continue;
        };
        let pid: u32 = pid.parse().ok()?;
        match kind {
            "master" => {
                let reloads = fields.next()?.parse().ok()?;
                let failed = line
                    .split_once("[failed:")
                    .and_then(|(_, rest)| rest.split(']').next())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                master = Some((pid, reloads, failed));
            }
            "worker" => workers.push(pid),
            _ => {}
        }
    }
    let (master, reloads, failed) = master?;
    Some(Processes {
        master,
        workers,
        reloads,
        failed,
    })
}

/// Parses `show stat`'s CSV (its header line starts with `# `).
fn parse_stats(text: &str) -> Result<Vec<StatRow>, String> {
    let text = text.strip_prefix("# ").unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("unreadable `show stat` header: {e}"))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("`show stat` has no `{name}` column"))
    };
    let [proxy, server, status, bin, bout, scur, stot, ereq] = [
        "pxname", "svname", "status", "bin", "bout", "scur", "stot", "ereq",
    ]
    .map(column);
    let (proxy, server, status) = (proxy?, server?, status?);
    let (bin, bout, scur, stot, ereq) = (bin?, bout?, scur?, stot?, ereq?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("unreadable `show stat` line: {e}"))?;
        let text = |i: usize| record.get(i).unwrap_or_default().to_owned();
        let number = |i: usize| record.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        rows.push(StatRow {
            proxy: text(proxy),
            server: text(server),
            status: text(status),
            bytes_in: number(bin),
            bytes_out: number(bout),
            current_sessions: number(scur),
            total_sessions: number(stot),
            request_errors: number(ereq),
        });
    }
    Ok(rows)
}

/// The frontends, backends and listens a configuration file defines.
pub fn sections(config: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("frontend" | "backend" | "listen"), Some(name)) => Some(name.to_owned()),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_show_proc() {
        let text = "#<PID>          <type>          <reloads>       <uptime>        <version>\n\
                    5339            master          3 [failed: 2]   0d00h10m28s     2.6.12\n\
                    # workers\n\
                    5551            worker          2               0d00h00m16s     2.6.12\n\
                    5600            worker          0               0d00h00m01s     2.6.12\n\
                    # programs\n";
        assert_eq!(
            parse_processes(text),
            Some(Processes {
                master: 5339,
                workers: vec![5551, 5600],
                reloads: 3,
                failed: 2,
            })
        );
        assert_eq!(parse_processes("Unknown command\n"), None);
    }

    #[test]
    fn reads_show_stat() {
        let text = "# pxname,svname,qcur,scur,stot,bin,bout,ereq,status,check_desc\n\
                    l1,FRONTEND,,3,10,100,200,1,OPEN,\n\
                    p1,m1,0,0,4,50,60,,DOWN,Layer4 connection problem\n\n";
        let rows = parse_stats(text).expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            StatRow {
                proxy: "l1".into(),
                server: "FRONTEND".into(),
                status: "OPEN".into(),
                bytes_in: 100,
                bytes_out: 200,
                current_sessions: 3,
                total_sessions: 10,
                request_errors: 1,
            }
        );
        assert_eq!(
            (rows[1].status.as_str(), rows[1].request_errors),
            ("DOWN", 0)
        );
        assert!(parse_stats("# pxname,svname\n").is_err());
    }

    #[test]
    fn keeps_only_alerts() {
        let log = "[NOTICE]   (5339) : Reloading HAProxy\n\
                   [ALERT]    (5339) : Binding [conf.d/c.cfg:3] for frontend l2: cannot bind socket (Address already in use) for [127.9.0.2:18081]\n\
                   [ALERT]    (5339) : config : Fatal errors found in configuration.\n\
                   [WARNING]  (5339) : Loading failure!\n";
        assert_eq!(
            alerts(log),
            "Binding [conf.d/c.cfg:3] for frontend l2: cannot bind socket (Address already in use) for [127.9.0.2:18081]"
        );
    }

    #[test]
    fn finds_sections() {
        let config =
            "global\n    maxconn 10\nfrontend l1\n    bind 1.2.3.4:80\nbackend p1\n\nlisten x y\n";
        assert_eq!(sections(config), ["l1", "p1", "x"]);
    }
}

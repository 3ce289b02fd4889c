//! A throw-away PostgreSQL for the tests: one cluster per test process, in a temporary folder,
//! listening on a free loopback port, started on first use and stopped (by its process id) when
//! the test process exits. Each test takes a database of its own.
//!
//! PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system
//! user Debian's package creates, and its programs run as that user.
//!
//! The suites that run against both stores ([`also_on_postgres`]) read [`backend`]: each of
//! their tests runs once on sled and once on PostgreSQL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::is_root;

/// Which store the suites that run against both use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sled,
    Postgres,
}

thread_local! {
    /// The store of the test running on this thread, when it runs on a given one.
    static ON: std::cell::Cell<Option<Backend>> = const { std::cell::Cell::new(None) };
}

/// The store the parameterised suites use on this thread: the one [`on`] set, else
/// `LBAAS_TEST_STORE` (`postgres`), else sled.
pub fn backend() -> Backend {
    if let Some(backend) = ON.with(std::cell::Cell::get) {
        return backend;
    }
    match std::env::var("LBAAS_TEST_STORE").as_deref() {
        Ok("postgres") => Backend::Postgres,
        _ => Backend::Sled,
    }
}

/// Runs `test` with the hosts it starts (on this thread) on `backend`.
pub fn on(backend: Backend, test: fn()) {
    ON.with(|on| on.set(Some(backend)));
    test();
    ON.with(|on| on.set(None));
}

/// Runs each named test of a suite a second time, with its hosts on PostgreSQL: one suite, two
/// stores. The sled run is the test itself; the PostgreSQL run is `on_postgres::NAME`.
#[macro_export]
macro_rules! also_on_postgres {
    ($($test:ident),* $(,)?) => {
        mod on_postgres {
            $(
                #[test]
                fn $test() {
                    $crate::postgres::on($crate::postgres::Backend::Postgres, super::$test);
                }
            )*
        }
    };
}

/// A running cluster.
pub struct Cluster {
    child: Mutex<Child>,
    port: u16,
    /// Removed after the server stops.
    dir: tempfile::TempDir,
    bin: PathBuf,
}

static CLUSTER: OnceLock<Arc<Cluster>> = OnceLock::new();
/// Databases by the data folder of the host that uses them, so a host restarted over the same
/// folder finds its database again.
static BY_DATA_DIR: Mutex<Option<HashMap<PathBuf, Database>>> = Mutex::new(None);
static DATABASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One test's database on the shared cluster; the cluster stays up while any is held.
#[derive(Clone)]
pub struct Database {
    pub url: String,
    pub name: String,
    cluster: Arc<Cluster>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("url", &self.url).finish()
    }
}

/// The folder of PostgreSQL's server programs (`initdb`, `postgres`), newest version first.
pub fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// The `postgres` system user's ids, by `id`.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, "postgres"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .expect("the `postgres` system user (Debian's postgresql package creates it)")
    };
    (id("-u"), id("-g"))
}

/// `program` of the server's folder, run as `postgres` when the tests run as root: the child
/// is the program itself, so its process id is the server's.
fn server_command(bin: &Path, program: &str) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new(bin.join(program));
    if is_root() {
        let (uid, gid) = postgres_ids();
        command.uid(uid).gid(gid);
    }
    command
}

impl Cluster {
    fn start() -> Arc<Cluster> {
        let bin = server_bin().expect(
            "PostgreSQL's server is not installed (Debian's `postgresql` package; scripts/test \
             installs it)",
        );
        let dir = tempfile::Builder::new()
            .prefix("lbaas-pg-")
            .tempdir()
            .expect("a folder for the cluster");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data folder");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "cannot give the cluster's folder to postgres"
            );
        }
        let initdb = server_command(&bin, "initdb")
            .args([
                "-U",
                "lbaas",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = crate::free_loopback_port();
        // The tests kill hosts, not the database: fsync off keeps a cluster in a temporary
        // folder fast. Benchmarks keep PostgreSQL's durability (`LBAAS_PG_FSYNC=on`).
        let fsync = match std::env::var("LBAAS_PG_FSYNC").as_deref() {
            Ok("on") => "fsync=on",
            _ => "fsync=off",
        };
        let child = server_command(&bin, "postgres")
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", fsync, "-c", "max_connections=300"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let cluster = Arc::new(Cluster {
            child: Mutex::new(child),
            port,
            dir,
            bin,
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.ready() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept connections within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs `sql` on the cluster's `postgres` database.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "lbaas",
            ])
            .args([
                "-d",
                database,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Cluster {
    /// A fast shutdown (SIGINT), then SIGKILL if it lingers; the folder goes with it.
    fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

/// Stops the cluster when the test process exits (statics are never dropped).
extern "C" fn stop_at_exit() {
    if let Some(cluster) = CLUSTER.get() {
        cluster.stop();
    }
}

fn cluster() -> Arc<Cluster> {
    CLUSTER
        .get_or_init(|| {
            let cluster = Cluster::start();
            // SAFETY: registers a plain function with no arguments, as `atexit` requires.
            #[allow(unsafe_code)]
            unsafe {
                libc::atexit(stop_at_exit);
            }
            cluster
        })
        .clone()
}

/// The database of the host over `data_dir`: created for the first host there, found again
/// for a host restarted over it.
pub fn database_for(data_dir: &Path) -> Database {
    let mut map = BY_DATA_DIR.lock().unwrap_or_else(|e| e.into_inner());
    map.get_or_insert_with(HashMap::new)
        .entry(data_dir.to_owned())
        .or_insert_with(database)
        .clone()
}

/// A fresh, empty database on the test process's cluster (started if none runs).
pub fn database() -> Database {
    let cluster = cluster();
    let n = DATABASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("lbaas_{}_{n}", std::process::id());
    cluster.psql("postgres", &format!("CREATE DATABASE {name}"));
    Database {
        url: format!("postgres://lbaas@127.0.0.1:{}/{name}", cluster.port),
        name,
        cluster,
    }
}

impl Database {
    /// Runs `sql` on this database; its output, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        self.cluster.psql(&self.name, sql)
    }
}

//! Every storage trait in PostgreSQL, for several hosts sharing one control plane: the records
//! ([`store::PgStore`], which is also the hosts' [`lbaas_core::store::Fleet`]: the shared
//! write lock, the revision, job leases and heartbeats), each driver's private namespace
//! ([`state::PgStateStore`]) and the audit chain ([`audit::PgAudit`]), all in one database
//! whose schema [`schema`] migrates.
//!
//! The storage traits are synchronous, as sled is; PostgreSQL is reached through
//! `tokio-postgres` and a `deadpool` connection pool on a small runtime of this crate's own,
//! which the traits' callers wait on ([`Database::block`]). Every query is parameterised.

#![deny(unsafe_code)]

pub mod audit;
pub mod schema;
pub mod state;
pub mod store;

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub use audit::PgAudit;
pub use state::PgStateStore;
pub use store::PgStore;

/// How long a host's job leases and heartbeat last by default: a host silent this long is
/// taken for dead, and another host takes its jobs.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// The most connections one host opens (besides the one that listens for revisions).
const POOL_SIZE: usize = 16;
/// How long a statement may run before PostgreSQL cancels it (a host waiting on a lock held by
/// a stuck host fails its write rather than hanging).
const STATEMENT_TIMEOUT: &str = "-c statement_timeout=30000";

/// A failure of the database, in words that name what failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Postgres(String),
    #[error(
        "the database's schema is version {found}, newer than this lbaasd understands \
         ({known}): upgrade lbaasd before starting it on this database"
    )]
    Newer { found: i32, known: i32 },
    #[error("the PostgreSQL address is not usable: {0}")]
    Address(String),
    #[error("the database connection pool is gone: {0}")]
    Pool(String),
    /// The database cannot be reached now: its connection was lost or refused, or it is
    /// shutting down. Nothing was written; trying again later may succeed.
    #[error("{0}")]
    Unavailable(String),
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        // Connection exceptions (class 08), shutdowns (57P01-57P03), and failures with no
        // answer from the server at all (a closed socket, a refused connection).
        let unavailable = match error.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
            }
            None => true,
        };
        if unavailable {
            Error::Unavailable(describe(&error))
        } else {
            Error::Postgres(describe(&error))
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            deadpool_postgres::PoolError::Timeout(_) => {
                Error::Unavailable(format!("no database connection: {error}"))
            }
            other => Error::Pool(other.to_string()),
        }
    }
}

/// PostgreSQL's own words for a failure: its message and detail for an error it raised, the
/// cause for one on the way (a refused connection).
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("PostgreSQL: {} ({detail})", db.message()),
            None => format!("PostgreSQL: {}", db.message()),
        };
    }
    match std::error::Error::source(error) {
        Some(source) => format!("PostgreSQL: {error}: {source}"),
        None => format!("PostgreSQL: {error}"),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A runtime the host never sees: dropped in the background, so the database can be dropped
/// on any thread, async or not.
struct Background(Option<tokio::runtime::Runtime>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// One host's handle on the database: the pool, the runtime its connections run on, who this
/// host is and how long its leases last.
pub struct Database {
    pool: Pool,
    config: tokio_postgres::Config,
    _runtime: Background,
    handle: tokio::runtime::Handle,
    host: String,
    lease: Duration,
}

impl std::fmt::Debug for Database {
    /// Never the address: it may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("host", &self.host)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects to `url` (`postgres://user:password@host:port/database`), migrates the schema
    /// to this version's (refusing a newer one), and acts as host `host` with leases of
    /// `lease`.
    pub fn open(url: &str, host: &str, lease: Duration) -> Result<Self> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| {
                Error::Address(format!("{} ({})", redact(url), describe(&e)))
            })?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(Error::Address(format!(
                "{}: sslmode=require, but lbaasd speaks to PostgreSQL without TLS; reach it over \
                 a local socket or a private network",
                redact(url)
            )));
        }
        if config.get_options().is_none() {
            config.options(STATEMENT_TIMEOUT);
        }
        config.application_name("lbaasd");
        config.connect_timeout(Duration::from_secs(5));
        config.keepalives_idle(Duration::from_secs(10));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Pool(format!("cannot start the database runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _entered = handle.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(30)))
                .create_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| Error::Pool(e.to_string()))?
        };
        let database = Self {
            pool,
            config,
            _runtime: Background(Some(runtime)),
            handle,
            host: host.to_owned(),
            lease,
        };
        let pool = database.pool.clone();
        database.block(async move { schema::migrate(&pool).await })?;
        Ok(database)
    }

    /// Runs `future` on the database's runtime and waits for it: callable from any thread,
    /// including an async one (which it blocks, as a sled call would).
    pub fn block<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tell, told) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tell.send(future.await);
        });
        told.recv()
            .map_err(|_| Error::Pool("the database runtime has stopped".into()))?
    }

    /// Runs `query` with a pooled connection and waits for it.
    pub fn with<T, Q, F>(&self, query: Q) -> Result<T>
    where
        T: Send + 'static,
        Q: FnOnce(deadpool_postgres::Object) -> F + Send + 'static,
        F: Future<Output = Result<T>> + Send,
    {
        let pool = self.pool.clone();
        self.block(async move { query(pool.get().await?).await })
    }

    /// This host's id.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// How long this host's leases and heartbeat last.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

/// A read-only transaction that sees one moment of the database throughout (repeatable read).
pub(crate) async fn consistent_read(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact("postgres://lbaas:s3cret@127.0.0.1:5432/lbaas"),
            "postgres://lbaas:***@127.0.0.1:5432/lbaas"
        );
        assert_eq!(
            redact("postgres://lbaas@127.0.0.1/lbaas"),
            "postgres://lbaas@127.0.0.1/lbaas"
        );
        let tls = Database::open(
            "postgres://u:pw@127.0.0.1/db?sslmode=require",
            "h",
            DEFAULT_LEASE,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(tls.contains("without TLS") && !tls.contains("pw@"), "{tls}");
        let refused = Database::open("postgres://u:pw@[::1", "h", DEFAULT_LEASE)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!refused.contains("pw@"), "{refused}");
    }
}

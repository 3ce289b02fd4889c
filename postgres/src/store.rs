//! The control plane's records in PostgreSQL, and what the hosts sharing them coordinate
//! through: the write lock (a session advisory lock), the revision every commit bumps and
//! announces (`NOTIFY lbaas_revision`), the change log a host catches up from, job leases and
//! heartbeats.
//!
//! A commit is one transaction: the records' new state, the next revision, a change-log row
//! per record, the lease of each new job (held by the committing host) and the release of each
//! finished one, and the notification, which PostgreSQL delivers only once the transaction is
//! committed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Object};
use lbaas_core::store::{Fleet, HostAbout, Kind, Locked, Store, StoreError, Write};
use lbaas_core::views::HostView;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::{Database, Error, Result};

/// The write lock every host shares ("lbaas_wr").
const WRITE_LOCK: i64 = 0x6c62_6161_735f_7772;
/// Where commits are announced.
const CHANNEL: &str = "lbaas_revision";
/// Change-log rows kept for hosts catching up; one further behind reads everything again.
const KEPT_CHANGES: i64 = 100_000;
/// Hosts silent this long leave the list.
const FORGET_HOSTS: f64 = 86_400.0;
/// RFC 3339 in UTC, as the records' times are written.
const RFC3339: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"#;

fn backend(error: Error) -> StoreError {
    match error {
        Error::Unavailable(why) => StoreError::Unavailable(why),
        other => StoreError::Backend(other.to_string()),
    }
}

/// The records, in a database several hosts may share.
pub struct PgStore {
    db: Arc<Database>,
    /// Whether this process has said it started (its first heartbeat).
    announced: AtomicBool,
}

impl PgStore {
    pub fn new(db: Arc<Database>) -> Self {
        Self {
            db,
            announced: AtomicBool::new(false),
        }
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    fn lease_secs(&self) -> f64 {
        self.db.lease().as_secs_f64()
    }
}

/// What a batch leaves: each record it writes, with its last write (`None`: deleted).
struct Net<'a> {
    puts: (Vec<&'static str>, Vec<&'a str>, Vec<&'a [u8]>),
    deletes: (Vec<&'static str>, Vec<&'a str>),
    jobs_put: Vec<&'a str>,
    jobs_done: Vec<&'a str>,
}

impl<'a> Net<'a> {
    fn of(writes: &'a [Write]) -> Self {
        let mut last: BTreeMap<(&'static str, &'a str), Option<&'a [u8]>> = BTreeMap::new();
        for write in writes {
            match write {
                Write::Put { kind, id, bytes } => {
                    last.insert((kind.tree(), id), Some(bytes));
                }
                Write::Delete { kind, id } => {
                    last.insert((kind.tree(), id), None);
                }
            }
        }
        let mut net = Net {
            puts: Default::default(),
            deletes: Default::default(),
            jobs_put: Vec::new(),
            jobs_done: Vec::new(),
        };
        let jobs = Kind::Job.tree();
        for ((kind, id), bytes) in last {
            match bytes {
                Some(bytes) => {
                    net.puts.0.push(kind);
                    net.puts.1.push(id);
                    net.puts.2.push(bytes);
                    if kind == jobs {
                        net.jobs_put.push(id);
                    }
                }
                None => {
                    net.deletes.0.push(kind);
                    net.deletes.1.push(id);
                    if kind == jobs {
                        net.jobs_done.push(id);
                    }
                }
            }
        }
        net
    }
}

/// Commits `writes` as the next revision, in one statement (`lbaas_commit`, one round trip):
/// the records, the revision, the change log, the jobs' leases and the announcement, all or
/// nothing.
async fn commit_on(
    client: &impl GenericClient,
    host: &str,
    lease_secs: f64,
    writes: &[Write],
) -> Result<u64> {
    let net = Net::of(writes);
    let (kinds, ids, data) = &net.puts;
    let (gone_kinds, gone_ids) = &net.deletes;
    let revision: i64 = client
        .query_one(
            "SELECT lbaas_commit($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &host,
                &lease_secs,
                kinds,
                ids,
                data,
                gone_kinds,
                gone_ids,
                &net.jobs_put,
                &net.jobs_done,
            ],
        )
        .await?
        .get(0);
    Ok(revision as u64)
}

impl Store for PgStore {
    fn get(&self, kind: Kind, id: &str) -> lbaas_core::store::Result<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.db
            .with(move |client| async move {
                Ok(client
                    .query_opt(
                        "SELECT data FROM lbaas_records WHERE kind = $1 AND id = $2",
                        &[&kind.tree(), &id],
                    )
                    .await?
                    .map(|row| row.get(0)))
            })
            .map_err(backend)
    }

    fn scan(&self, kind: Kind) -> lbaas_core::store::Result<Vec<(String, Vec<u8>)>> {
        self.db
            .with(move |client| async move {
                Ok(client
                    .query(
                        "SELECT id, data FROM lbaas_records WHERE kind = $1 ORDER BY id",
                        &[&kind.tree()],
                    )
                    .await?
                    .into_iter()
                    .map(|row| (row.get(0), row.get(1)))
                    .collect())
            })
            .map_err(backend)
    }

    fn commit(&self, writes: &[Write]) -> lbaas_core::store::Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let writes = writes.to_vec();
        let (host, lease) = (self.db.host().to_owned(), self.lease_secs());
        self.db
            .with(move |client| async move { commit_on(&client, &host, lease, &writes).await })
            .map(drop)
            .map_err(backend)
    }

    /// A commit is durable when PostgreSQL answers it.
    fn flush(&self) -> lbaas_core::store::Result<()> {
        Ok(())
    }

    fn fleet(&self) -> Option<&dyn Fleet> {
        Some(self)
    }
}

/// The write lock, held on one pooled connection; commits go through that connection.
struct PgLocked {
    db: Arc<Database>,
    client: Option<Object>,
    revision: u64,
}

impl Locked for PgLocked {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn commit(&mut self, writes: &[Write]) -> lbaas_core::store::Result<u64> {
        let Some(client) = self.client.take() else {
            return Err(StoreError::Backend(
                "the write lock's connection was lost".into(),
            ));
        };
        let writes = writes.to_vec();
        let (host, lease) = (self.db.host().to_owned(), self.db.lease().as_secs_f64());
        let (committed, client) = self
            .db
            .block(async move {
                let committed = commit_on(&client, &host, lease, &writes).await;
                Ok((committed, client))
            })
            .map_err(backend)?;
        self.client = Some(client);
        let revision = committed.map_err(backend)?;
        self.revision = revision;
        Ok(revision)
    }
}

impl Drop for PgLocked {
    /// Releases the lock; a connection that cannot say so is closed, which releases it too.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.db.handle().spawn(async move {
                if client
                    .execute("SELECT pg_advisory_unlock($1)", &[&WRITE_LOCK])
                    .await
                    .is_err()
                {
                    drop(Object::take(client));
                }
            });
        }
    }
}

impl Fleet for PgStore {
    fn host(&self) -> &str {
        self.db.host()
    }

    fn lease(&self) -> Duration {
        self.db.lease()
    }

    fn lock(&self) -> lbaas_core::store::Result<Box<dyn Locked>> {
        let pool = self.db.pool().clone();
        let (client, revision) = self
            .db
            .block(async move {
                let client = pool.get().await?;
                let revision = client
                    .query_one("SELECT lbaas_lock($1)", &[&WRITE_LOCK])
                    .await;
                match revision {
                    Ok(row) => Ok((client, row.get::<_, i64>(0) as u64)),
                    Err(error) => {
                        drop(Object::take(client));
                        Err(error.into())
                    }
                }
            })
            .map_err(backend)?;
        Ok(Box::new(PgLocked {
            db: self.db.clone(),
            client: Some(client),
            revision,
        }))
    }

    fn revision(&self) -> lbaas_core::store::Result<u64> {
        self.db
            .with(|client| async move {
                let row = client
                    .query_one("SELECT revision FROM lbaas_revision", &[])
                    .await?;
                Ok(row.get::<_, i64>(0) as u64)
            })
            .map_err(backend)
    }

    fn changes_since(&self, since: u64) -> lbaas_core::store::Result<Option<(u64, Vec<Write>)>> {
        self.db
            .with(move |mut client| async move {
                let tx = crate::consistent_read(&mut client).await?;
                let now: i64 = tx
                    .query_one("SELECT revision FROM lbaas_revision", &[])
                    .await?
                    .get(0);
                let now = now as u64;
                if now <= since {
                    return Ok(Some((now, Vec::new())));
                }
                let rows = tx
                    .query(
                        "SELECT c.revision, c.kind, c.id, r.data FROM lbaas_changes c
                         LEFT JOIN lbaas_records r ON r.kind = c.kind AND r.id = c.id
                         WHERE c.revision > $1 ORDER BY c.revision",
                        &[&(since as i64)],
                    )
                    .await?;
                // The next revision's changes must all be there, or the log was trimmed.
                let first = rows.first().map(|row| row.get::<_, i64>(0) as u64);
                if first != Some(since + 1) {
                    return Ok(None);
                }
                let mut writes = Vec::with_capacity(rows.len());
                for row in rows {
                    let tree: &str = row.get(1);
                    let Some(kind) = Kind::from_tree(tree) else {
                        continue;
                    };
                    let id: String = row.get(2);
                    writes.push(match row.get::<_, Option<Vec<u8>>>(3) {
                        Some(bytes) => Write::Put { kind, id, bytes },
                        None => Write::Delete { kind, id },
                    });
                }
                Ok(Some((now, writes)))
            })
            .map_err(backend)
    }

    fn watch(&self, notify: Box<dyn Fn(Option<u64>) + Send + Sync>) {
        let config = self.db.config.clone();
        self.db.handle().spawn(async move {
            loop {
                if let Err(error) = listen(&config, &*notify).await {
                    tracing::warn!(%error, "lost the database's revision notifications; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    fn beat(&self, about: &HostAbout) -> lbaas_core::store::Result<Vec<HostView>> {
        let restarted = !self.announced.swap(true, Ordering::AcqRel);
        let (host, lease) = (self.db.host().to_owned(), self.lease_secs());
        let about = about.clone();
        self.db
            .with(move |client| async move {
                client
                    .execute(
                        "INSERT INTO lbaas_hosts (id, name, version, address) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
                             version = EXCLUDED.version, address = EXCLUDED.address,
                             heartbeat = now(),
                             started_at = CASE WHEN $5 THEN now() ELSE lbaas_hosts.started_at END",
                        &[&host, &about.name, &about.version, &about.address, &restarted],
                    )
                    .await?;
                client
                    .execute(
                        "UPDATE lbaas_job_leases SET until = now() + make_interval(secs => $2)
                         WHERE host = $1",
                        &[&host, &lease],
                    )
                    .await?;
                client
                    .execute(
                        "DELETE FROM lbaas_changes
                         WHERE revision <= (SELECT revision FROM lbaas_revision) - $1",
                        &[&KEPT_CHANGES],
                    )
                    .await?;
                client
                    .execute(
                        "DELETE FROM lbaas_hosts WHERE heartbeat < now() - make_interval(secs => $1)",
                        &[&FORGET_HOSTS],
                    )
                    .await?;
                let rows = client
                    .query(
                        &format!(
                            "SELECT h.id, h.name, h.version, h.address,
                                 to_char(h.started_at AT TIME ZONE 'UTC', {RFC3339}),
                                 to_char(h.heartbeat AT TIME ZONE 'UTC', {RFC3339}),
                                 h.heartbeat > now() - make_interval(secs => $1),
                                 (SELECT count(*) FROM lbaas_job_leases l WHERE l.host = h.id)
                             FROM lbaas_hosts h ORDER BY h.started_at, h.id"
                        ),
                        &[&lease],
                    )
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|row| HostView {
                        id: row.get(0),
                        name: row.get(1),
                        version: row.get(2),
                        address: row.get(3),
                        started_at: row.get(4),
                        heartbeat: row.get(5),
                        alive: row.get(6),
                        jobs: row.get::<_, i64>(7) as u64,
                    })
                    .collect())
            })
            .map_err(backend)
    }

    fn claim(&self, job: &str) -> lbaas_core::store::Result<bool> {
        let (job, host, lease) = (job.to_owned(), self.db.host().to_owned(), self.lease_secs());
        self.db
            .with(move |client| async move {
                // Only a job that is stored can be leased: a run queued twice, or after its
                // job ended, must not hold the lease of the next job of that load balancer.
                // `FOR SHARE` waits for a commit deleting the job and then sees it gone.
                let claimed = client
                    .query_opt(
                        "WITH stored AS (
                             SELECT id FROM lbaas_records WHERE kind = $4 AND id = $1 FOR SHARE
                         )
                         INSERT INTO lbaas_job_leases (job, host, until)
                         SELECT id, $2, now() + make_interval(secs => $3) FROM stored
                         ON CONFLICT (job) DO UPDATE SET host = EXCLUDED.host, until = EXCLUDED.until
                         WHERE lbaas_job_leases.host = EXCLUDED.host
                            OR lbaas_job_leases.until < now()
                         RETURNING job",
                        &[&job, &host, &lease, &Kind::Job.tree()],
                    )
                    .await?;
                Ok(claimed.is_some())
            })
            .map_err(backend)
    }

    fn held(&self) -> lbaas_core::store::Result<Vec<String>> {
        let host = self.db.host().to_owned();
        self.db
            .with(move |client| async move {
                let rows = client
                    .query(
                        "SELECT job FROM lbaas_job_leases WHERE host = $1 ORDER BY until",
                        &[&host],
                    )
                    .await?;
                Ok(rows.into_iter().map(|row| row.get(0)).collect())
            })
            .map_err(backend)
    }

    fn claim_expired(&self, limit: usize) -> lbaas_core::store::Result<Vec<String>> {
        let (host, lease) = (self.db.host().to_owned(), self.lease_secs());
        let limit = limit as i64;
        self.db
            .with(move |client| async move {
                let rows = client
                    .query(
                        "UPDATE lbaas_job_leases SET host = $1, until = now() + make_interval(secs => $2)
                         WHERE job IN (SELECT job FROM lbaas_job_leases WHERE until < now()
                                       ORDER BY until LIMIT $3 FOR UPDATE SKIP LOCKED)
                         RETURNING job",
                        &[&host, &lease, &limit],
                    )
                    .await?;
                Ok(rows.into_iter().map(|row| row.get(0)).collect())
            })
            .map_err(backend)
    }
}

/// Listens for revisions on a connection of its own until it is lost.
async fn listen(
    config: &tokio_postgres::Config,
    notify: &(dyn Fn(Option<u64>) + Send + Sync),
) -> Result<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tell, mut told) = tokio::sync::mpsc::unbounded_channel();
    // The connection's messages are read beside the client that asks to listen.
    let pump = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    if tell.send(note.payload().parse::<u64>().ok()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(Error::from(error)),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Listening now: whatever was committed before is caught up from the change log.
    notify(None);
    while let Some(revision) = told.recv().await {
        if revision.is_some() {
            notify(revision);
        }
    }
    drop(client);
    match pump.await {
        Ok(result) => result,
        Err(error) => Err(Error::Pool(error.to_string())),
    }
}

//! The schema, as numbered migrations applied in order at start. Each runs in its own
//! transaction and is recorded in `lbaas_schema`; hosts starting together take turns (an
//! advisory lock), and a database migrated by a newer `lbaasd` is refused rather than misread.

use deadpool_postgres::Pool;

use crate::{Error, Result};

/// Serialises migrations between hosts starting at once.
const MIGRATION_LOCK: i64 = 0x6c62_6161_735f_6d67; // "lbaas_mg"

/// Every migration, by version. Released ones never change: a change is a new one.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "records, revisions, driver state, audit chain, hosts and job leases",
        r#"
CREATE TABLE lbaas_records (
    kind text NOT NULL,
    id text COLLATE "C" NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE lbaas_revision (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    revision bigint NOT NULL
);
INSERT INTO lbaas_revision (revision) VALUES (0);
CREATE TABLE lbaas_changes (
    revision bigint NOT NULL,
    kind text NOT NULL,
    id text COLLATE "C" NOT NULL,
    PRIMARY KEY (revision, kind, id)
);
CREATE TABLE lbaas_driver_state (
    driver text NOT NULL,
    key text COLLATE "C" NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (driver, key)
);
CREATE TABLE lbaas_driver_usage (
    driver text PRIMARY KEY,
    used bigint NOT NULL
);
CREATE TABLE lbaas_audit (
    first_seq bigint PRIMARY KEY,
    last_seq bigint NOT NULL,
    records bytea NOT NULL
);
CREATE TABLE lbaas_audit_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO lbaas_audit_head (seq, hash) VALUES (-1, '');
CREATE TABLE lbaas_hosts (
    id text PRIMARY KEY,
    name text NOT NULL,
    version text NOT NULL,
    address text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE lbaas_job_leases (
    job text PRIMARY KEY,
    host text NOT NULL,
    until timestamptz NOT NULL
);
CREATE INDEX lbaas_job_leases_until ON lbaas_job_leases (until);
CREATE INDEX lbaas_job_leases_host ON lbaas_job_leases (host);
"#,
    ),
    (
        2,
        "a commit and the write lock in one round trip each",
        r#"
CREATE FUNCTION lbaas_commit(
    p_host text, p_lease double precision,
    p_put_kinds text[], p_put_ids text[], p_put_data bytea[],
    p_del_kinds text[], p_del_ids text[],
    p_jobs_put text[], p_jobs_done text[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    rev bigint;
BEGIN
    UPDATE lbaas_revision SET revision = revision + 1 RETURNING revision INTO rev;
    INSERT INTO lbaas_records (kind, id, data)
        SELECT k, i, d FROM unnest(p_put_kinds, p_put_ids, p_put_data) AS w(k, i, d)
        ON CONFLICT (kind, id) DO UPDATE SET data = EXCLUDED.data;
    DELETE FROM lbaas_records r USING unnest(p_del_kinds, p_del_ids) AS g(k, i)
        WHERE r.kind = g.k AND r.id = g.i;
    INSERT INTO lbaas_changes (revision, kind, id)
        SELECT rev, k, i FROM unnest(p_put_kinds || p_del_kinds, p_put_ids || p_del_ids) AS c(k, i);
    -- A new job is the committing host's; a job already leased keeps its holder.
    INSERT INTO lbaas_job_leases (job, host, until)
        SELECT j, p_host, now() + make_interval(secs => p_lease) FROM unnest(p_jobs_put) AS j
        ON CONFLICT (job) DO NOTHING;
    DELETE FROM lbaas_job_leases WHERE job = ANY(p_jobs_done);
    PERFORM pg_notify('lbaas_revision', rev::text);
    RETURN rev;
END
$$;
CREATE FUNCTION lbaas_lock(p_key bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock(p_key);
    -- A statement of its own, so it sees every commit made before the lock was granted.
    RETURN (SELECT revision FROM lbaas_revision);
END
$$;
"#,
    ),
];

/// The schema version this build writes.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, ..)| *version)
}

/// Brings the database to [`latest`], or refuses one that is newer.
pub async fn migrate(pool: &Pool) -> Result<()> {
    let mut client = pool.get().await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let migrated = apply(&mut client).await;
    // Released with the session anyway; released now so the pooled connection is clean.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    migrated?;
    unlocked?;
    Ok(())
}

async fn apply(client: &mut deadpool_postgres::Object) -> Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS lbaas_schema (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let found: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM lbaas_schema", &[])
        .await?
        .get(0);
    if found > latest() {
        return Err(Error::Newer {
            found,
            known: latest(),
        });
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|(v, ..)| *v > found) {
        let transaction = client.transaction().await?;
        transaction.batch_execute(sql).await?;
        transaction
            .execute(
                "INSERT INTO lbaas_schema (version, description) VALUES ($1, $2)",
                &[version, description],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(version, description, "database schema migrated");
    }
    Ok(())
}

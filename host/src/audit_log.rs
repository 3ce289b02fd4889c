//! `lbaasd audit`: the audit log of a stopped host, read, verified and checkpointed offline.

use std::path::Path;

use anyhow::{Context, bail};
use lbaas_host::audit;
use lbaas_host::integrity;

use lbaas_host::builder::StoreChoice;

use crate::args::{AuditCommand, StoreArg, store_choice};

pub(crate) fn open_existing(data_dir: &Path) -> anyhow::Result<sled::Db> {
    let path = data_dir.join("db");
    if !path.exists() {
        bail!(
            "no database in {} (is it the host's --data-dir?)",
            data_dir.display()
        );
    }
    sled::open(&path).with_context(|| {
        format!(
            "cannot open the database in {} (a running lbaasd holds it: stop it, or use GET /v2/admin/audit/verify)",
            data_dir.display()
        )
    })
}

/// A checkpoint as `audit checkpoint` writes it, or as the API answers it (`{"checkpoint": …}`).
pub(crate) fn read_checkpoint(path: &Path) -> anyhow::Result<audit::Checkpoint> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a checkpoint", path.display()))?;
    serde_json::from_value(value.get("checkpoint").cloned().unwrap_or(value))
        .with_context(|| format!("{} is not a checkpoint", path.display()))
}

pub(crate) fn audit_command(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            data_dir,
            checkpoint,
            checkpoint_key,
            store,
        } => {
            let chain = Chain::open(&data_dir, &store)?;
            let verification = match checkpoint {
                Some(path) => {
                    let checkpoint = read_checkpoint(&path)?;
                    let trusted = checkpoint_key
                        .map(|file| integrity::public_key_file(&file))
                        .transpose()
                        .map_err(anyhow::Error::msg)?;
                    match checkpoint.check_signature(trusted.as_ref()) {
                        Ok(Some(key)) => println!(
                            "checkpoint of {} records signed by key {key}{}",
                            checkpoint.records,
                            if trusted.is_some() {
                                ""
                            } else {
                                " (pass --checkpoint-key to require the host's key)"
                            }
                        ),
                        Ok(None) => {
                            println!("checkpoint of {} records, unsigned", checkpoint.records)
                        }
                        Err(why) => bail!("{}: {why}", path.display()),
                    }
                    chain.verify(Some(&checkpoint))?
                }
                None => chain.verify(None)?,
            };
            match &verification.broken {
                None => {
                    println!(
                        "audit log intact: {} records, head {}",
                        verification.records,
                        verification.head.as_deref().unwrap_or("(empty)")
                    );
                    Ok(())
                }
                Some(why) => bail!(
                    "audit log broken after {} good records: {why}",
                    verification.records
                ),
            }
        }
        AuditCommand::Checkpoint {
            data_dir,
            output,
            audit_key,
            store,
        } => {
            let signer = checkpoint_signer(&audit_key.path(&data_dir))?;
            let verification = Chain::open(&data_dir, &store)?.verify(None)?;
            if let Some(why) = &verification.broken {
                bail!(
                    "audit log broken after {} good records: {why}",
                    verification.records
                );
            }
            let checkpoint = audit::Checkpoint::of(&verification)
                .ok_or_else(|| anyhow::anyhow!("the audit log is empty: nothing to checkpoint"))?
                .signed(&signer);
            let text = serde_json::to_string_pretty(&checkpoint)?;
            match output {
                Some(path) => std::fs::write(&path, text + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => println!("{text}"),
            }
            Ok(())
        }
        AuditCommand::PublicKey {
            data_dir,
            audit_key,
        } => {
            let signer = checkpoint_signer(&audit_key.path(&data_dir))?;
            println!("{}", hex::encode(signer.verifying_key().as_bytes()));
            Ok(())
        }
        AuditCommand::Export {
            data_dir,
            output,
            store,
        } => {
            let chain = Chain::open(&data_dir, &store)?;
            let count = match output {
                Some(path) => {
                    let mut file = std::io::BufWriter::new(
                        std::fs::File::create(&path)
                            .with_context(|| format!("cannot create {}", path.display()))?,
                    );
                    let count = chain.export(&mut file)?;
                    std::io::Write::flush(&mut file)?;
                    count
                }
                None => chain.export(&mut std::io::stdout().lock())?,
            };
            eprintln!("{count} audit records exported");
            Ok(())
        }
    }
}

/// The audit chain of a stopped sled host, or of the hosts' PostgreSQL database (which may be
/// read while they run).
pub(crate) enum Chain {
    Sled(sled::Db),
    Postgres(Box<lbaas_postgres::Database>),
}

impl Chain {
    pub(crate) fn open(data_dir: &Path, store: &StoreArg) -> anyhow::Result<Self> {
        match store_choice(&store.store, lbaas_postgres::DEFAULT_LEASE)? {
            StoreChoice::Sled => Ok(Chain::Sled(open_existing(data_dir)?)),
            StoreChoice::Postgres { url, lease } => Ok(Chain::Postgres(Box::new(
                lbaas_postgres::Database::open(&url, "audit", lease).with_context(|| {
                    format!(
                        "cannot use the PostgreSQL database {}",
                        lbaas_postgres::redact(&url)
                    )
                })?,
            ))),
        }
    }

    pub(crate) fn verify(
        &self,
        checkpoint: Option<&audit::Checkpoint>,
    ) -> anyhow::Result<audit::Verification> {
        Ok(match (self, checkpoint) {
            (Chain::Sled(db), Some(checkpoint)) => audit::verify_against(db, checkpoint)?,
            (Chain::Sled(db), None) => audit::verify(db)?,
            (Chain::Postgres(db), checkpoint) => lbaas_postgres::audit::verify(db, checkpoint),
        })
    }

    pub(crate) fn export(&self, out: &mut dyn std::io::Write) -> anyhow::Result<u64> {
        let exported = match self {
            Chain::Sled(db) => audit::export(db, out),
            Chain::Postgres(db) => lbaas_postgres::audit::export(db, out),
        };
        Ok(exported?)
    }
}

pub(crate) fn checkpoint_signer(path: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    integrity::signing_key_file(path)
        .with_context(|| format!("cannot read or create the audit key {}", path.display()))
}

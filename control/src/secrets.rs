//! The host's own key manager, the embedded default: secrets a project stores (the certificate
//! bundles its listeners will name) in the records, each payload sealed under the host's
//! secrets key ([`lbaas_keys::Sealer`], the key in a file outside the database) and bound to
//! its record. Barbican's rules for a secret: its types, its two payload forms (text, or
//! binary in base64), its size limit and its expiration. A payload is never answered back:
//! only the host opens one, to configure a load balancer's devices.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::model::Secret;
use crate::octavia::Caller;
use crate::store::{Batch, StoreExt as _};
use crate::{Change, ControlPlane, Error};

/// The largest payload, in bytes: Barbican's default `max_allowed_secret_in_bytes`.
pub const MAX_PAYLOAD: usize = 20_000;

/// The most secrets one project keeps: each costs its bytes in every backup and a decode in
/// every listing, so one tenant cannot grow them without bound.
pub const MAX_PER_PROJECT: usize = 1_000;

/// Barbican's secret types.
pub const SECRET_TYPES: [&str; 6] = [
    "symmetric",
    "public",
    "private",
    "passphrase",
    "certificate",
    "opaque",
];

/// Content types of a binary payload, sent in base64.
const BINARY: [&str; 4] = [
    "application/octet-stream",
    "application/pkcs8",
    "application/pkix-cert",
    "application/pkcs12",
];

/// A secret to store, as Barbican's `POST /v1/secrets` body gives it. No `Debug`: nothing
/// prints a payload.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    pub name: Option<String>,
    pub secret_type: Option<String>,
    pub payload: Option<String>,
    pub payload_content_type: Option<String>,
    pub payload_content_encoding: Option<String>,
    pub expiration: Option<String>,
    /// Barbican's descriptive fields for keys: accepted as Barbican does, not used.
    pub algorithm: Option<String>,
    pub bit_length: Option<u32>,
    pub mode: Option<String>,
}

/// The secrets this host seals, under one key.
pub struct LocalKeys {
    sealer: lbaas_keys::Sealer,
}

impl LocalKeys {
    /// Secrets sealed under `key` (32 bytes, kept outside the database).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            sealer: lbaas_keys::Sealer::new(key),
        }
    }
}

/// What a sealed payload is bound to: its record's id and project, so that a record moved or
/// copied to another id or project in the database does not open.
fn context(secret: &Secret) -> String {
    format!("secrets/{}/{}", secret.project_id, secret.id)
}

impl NewSecret {
    /// The payload's bytes and its content type, by Barbican's rules.
    fn payload(&self) -> Result<(Zeroizing<Vec<u8>>, String), Error> {
        let payload = self
            .payload
            .as_deref()
            .filter(|payload| !payload.is_empty())
            .ok_or_else(|| {
                Error::field(
                    "payload",
                    "A payload is required: this key store keeps secrets, it does not order them.",
                )
            })?;
        let content_type = self
            .payload_content_type
            .as_deref()
            .ok_or_else(|| {
                Error::field(
                    "payload_content_type",
                    "payload_content_type is required with a payload.",
                )
            })?
            .trim()
            .to_ascii_lowercase();
        let encoding = self.payload_content_encoding.as_deref();
        let bytes = if is_text(&content_type) {
            if encoding.is_some() {
                return Err(Error::field(
                    "payload_content_encoding",
                    "A text/plain payload takes no payload_content_encoding.",
                ));
            }
            Zeroizing::new(payload.as_bytes().to_vec())
        } else if BINARY.contains(&content_type.as_str()) {
            if encoding != Some("base64") {
                return Err(Error::field(
                    "payload_content_encoding",
                    format!(
                        "A {content_type} payload is sent in base64: payload_content_encoding must be 'base64'."
                    ),
                ));
            }
            Zeroizing::new(
                BASE64
                    .decode(payload.trim())
                    .map_err(|_| Error::field("payload", "The payload is not valid base64."))?,
            )
        } else {
            return Err(Error::field(
                "payload_content_type",
                format!(
                    "payload_content_type must be text/plain or one of {}.",
                    BINARY.join(", ")
                ),
            ));
        };
        if bytes.len() > MAX_PAYLOAD {
            return Err(Error::TooLarge { limit: MAX_PAYLOAD });
        }
        let content_type = if is_text(&content_type) {
            "text/plain".to_owned()
        } else {
            content_type
        };
        Ok((bytes, content_type))
    }
}

fn is_text(content_type: &str) -> bool {
    let mut parts = content_type.split(';').map(str::trim);
    parts.next() == Some("text/plain")
        && parts.all(|parameter| parameter.replace(' ', "") == "charset=utf-8")
}

/// An RFC 3339 time, as `humantime` reads it.
fn time(field: &'static str, value: &str) -> Result<std::time::SystemTime, Error> {
    humantime::parse_rfc3339_weak(value.trim_end_matches('Z')).map_err(|_| {
        let shown: String = value.chars().take(64).collect();
        Error::field(
            field,
            format!("Invalid date for '{field}': {}", shown.escape_debug()),
        )
    })
}

/// A secret past its expiration is gone, as in Barbican.
pub(crate) fn expired(secret: &Secret) -> bool {
    secret
        .expiration
        .as_deref()
        .and_then(|at| time("expiration", at).ok())
        .is_some_and(|at| at <= std::time::SystemTime::now())
}

impl ControlPlane {
    /// Uses the host's own key manager with `keys`.
    pub fn with_local_keys(mut self, keys: LocalKeys) -> Self {
        self.keys = Some(Arc::new(keys.sealer));
        self
    }

    /// Keeps secrets in `keys` (Barbican): listeners' and pools' references are read there,
    /// and the host's own store takes none.
    pub fn with_external_keys(mut self, keys: Arc<dyn crate::key_manager::ExternalKeys>) -> Self {
        self.keys = None;
        self.external_keys = Some(keys);
        self
    }

    fn sealer(&self) -> Result<&lbaas_keys::Sealer, Error> {
        self.keys.as_deref().ok_or(Error::NoKeyManager)
    }

    /// Stores `new` for the caller's project, sealed; answers its record.
    pub async fn store_secret(
        self: &Arc<Self>,
        caller: impl Caller + Send + 'static,
        new: NewSecret,
    ) -> Result<Secret, Error> {
        let sealer = self.sealer()?;
        let project = caller.project().to_owned();
        if project.is_empty() || !caller.can_write(&project) {
            return Err(Error::Forbidden);
        }
        if let Some(name) = &new.name
            && name.chars().count() > 255
        {
            return Err(Error::field("name", "name is longer than 255 characters."));
        }
        let secret_type = new.secret_type.clone().unwrap_or_else(|| "opaque".into());
        if !SECRET_TYPES.contains(&secret_type.as_str()) {
            return Err(Error::field(
                "secret_type",
                format!("secret_type must be one of {}.", SECRET_TYPES.join(", ")),
            ));
        }
        if let Some(at) = &new.expiration
            && time("expiration", at)? <= std::time::SystemTime::now()
        {
            return Err(Error::field("expiration", "expiration is in the past."));
        }
        let (payload, content_type) = new.payload()?;
        // Counted outside the write lock: two stores at once may pass one over the limit, which
        // bounds a tenant all the same.
        let store = self.store.clone();
        let owner = project.clone();
        let (kept, payload, not_after) = crate::spawn_blocking(move || {
            // What the operator's expiry alerts read (a bundle's key derivation runs here).
            let not_after = certificate_expiry(&payload);
            store
                .all::<Secret>()
                .map(|all| all.iter().filter(|s| s.project_id == owner).count())
                .map(|kept| (kept, payload, not_after))
        })
        .await??;
        if kept >= MAX_PER_PROJECT {
            return Err(Error::OverQuota { kind: "Secret" });
        }
        let mut secret = Secret {
            id: crate::ids::new_id(),
            project_id: project,
            name: new.name,
            secret_type,
            content_type,
            created_at: crate::ids::now(),
            expiration: new.expiration,
            not_after,
            sealed: String::new(),
        };
        secret.sealed = BASE64.encode(sealer.seal(&context(&secret), &payload));
        self.write(move |_, _| {
            let mut batch = Batch::new();
            batch.put(&secret);
            Ok::<_, Error>(Change::new(batch, secret))
        })
        .await
    }

    /// The secrets the caller may read, oldest first.
    pub async fn secrets(
        self: &Arc<Self>,
        caller: impl Caller + Send + 'static,
    ) -> Result<Vec<Secret>, Error> {
        self.sealer()?;
        let store = self.store.clone();
        let mut secrets = crate::spawn_blocking(move || store.all::<Secret>()).await??;
        secrets.retain(|secret| caller.can_read(&secret.project_id) && !expired(secret));
        secrets.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(secrets)
    }

    /// Secret `id`, if the caller may read it.
    pub async fn secret(
        self: &Arc<Self>,
        caller: impl Caller + Send + 'static,
        id: String,
    ) -> Result<Secret, Error> {
        let secret = self.load_secret(id).await?;
        if !caller.can_read(&secret.project_id) {
            return Err(Error::Forbidden);
        }
        Ok(secret)
    }

    /// Deletes secret `id`, if the caller may change its project.
    pub async fn delete_secret(
        self: &Arc<Self>,
        caller: impl Caller + Send + 'static,
        id: String,
    ) -> Result<(), Error> {
        let secret = self.load_secret(id).await?;
        if !caller.can_write(&secret.project_id) {
            return Err(Error::Forbidden);
        }
        self.write(move |_, _| {
            let mut batch = Batch::new();
            batch.delete::<Secret>(&secret.id);
            Ok::<_, Error>(Change::new(batch, ()))
        })
        .await
    }

    /// Secret `id` as stored, unless it is gone (never stored, deleted, or expired).
    async fn load_secret(self: &Arc<Self>, id: String) -> Result<Secret, Error> {
        self.sealer()?;
        let store = self.store.clone();
        let found = {
            let id = id.clone();
            crate::spawn_blocking(move || store.load::<Secret>(&id)).await??
        };
        found
            .filter(|secret| !expired(secret))
            .ok_or_else(|| Error::not_found("Secret", &id))
    }

    /// The payload of `secret`, opened: for the host alone, when it configures a device.
    pub fn open_secret(&self, secret: &Secret) -> Result<Zeroizing<Vec<u8>>, Error> {
        let sealer = self.sealer()?;
        let sealed = BASE64
            .decode(&secret.sealed)
            .map_err(|e| Error::Sealed(format!("secret {}: {e}", secret.id)))?;
        sealer
            .open(&context(secret), &sealed)
            .map_err(|e| Error::Sealed(format!("secret {}: {e}", secret.id)))
    }
}

/// When the certificate `payload` holds stops being valid: a bundle's served certificate, else
/// the first certificate of a PEM file; `None` when it holds none.
fn certificate_expiry(payload: &[u8]) -> Option<i64> {
    match lbaas_keys::Bundle::parse(payload) {
        Ok(bundle) => Some(bundle.info().not_after),
        Err(_) => lbaas_keys::Authority::from_pem(payload)
            .ok()
            .map(|ca| ca.info().not_after),
    }
}

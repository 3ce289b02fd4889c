//! The admin API's answers as types. The host serializes these and `lbaasctl` reads them, so
//! a renamed field is a compile error on both sides instead of an empty column.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::audit::Record;
use crate::model::{Canary, Device, DeviceKind, DriverRecord, DriverVersion, Placement};

/// `GET /v2/admin/drivers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverList {
    pub drivers: Vec<DriverView>,
}

/// One driver, as every driver route answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverAnswer {
    pub driver: DriverView,
}

/// `POST /v2/admin/drivers`: the version stored and the driver it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadAnswer {
    pub version: VersionView,
    pub driver: DriverView,
}

/// A driver: its record, with the active version's details on top (`version`, `sha256`,
/// `quarantined`… describe the active one; they are empty when none is active).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverView {
    pub name: String,
    pub version: Option<String>,
    pub sha256: Option<String>,
    /// The WIT contract the active version implements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_spawn: Option<bool>,
    pub quarantined: bool,
    #[serde(default)]
    pub quarantine_reason: Option<String>,
    /// What the active version asked for (its manifest) and what the host grants it, as the
    /// runtime writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<serde_json::Value>,
    pub draining: bool,
    pub publisher: Option<String>,
    pub canary: Option<Canary>,
    pub versions: Vec<VersionView>,
}

/// Where a version stands in its driver's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VersionState {
    Active,
    Canary,
    Disabled,
    Inactive,
}

impl VersionState {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Active => "ACTIVE",
            VersionState::Canary => "CANARY",
            VersionState::Disabled => "DISABLED",
            VersionState::Inactive => "INACTIVE",
        }
    }
}

/// One uploaded version (its signature left out: `signed_by` names the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionView {
    pub sha256: String,
    pub version: String,
    pub wit: Option<String>,
    pub size: u64,
    pub uploaded_at: String,
    pub source: String,
    pub signed_by: Option<String>,
    pub disabled: bool,
    pub activated_at: Option<String>,
    pub state: VersionState,
    /// Whether a rollback would go back to it.
    pub rollback_target: bool,
}

impl VersionView {
    pub fn of(version: &DriverVersion, record: &DriverRecord) -> Self {
        let state = if record.active.as_deref() == Some(version.sha256.as_str()) {
            VersionState::Active
        } else if record
            .canary
            .as_ref()
            .is_some_and(|c| c.sha256 == version.sha256)
        {
            VersionState::Canary
        } else if version.disabled {
            VersionState::Disabled
        } else {
            VersionState::Inactive
        };
        Self {
            sha256: version.sha256.clone(),
            version: version.version.clone(),
            wit: version.wit.clone(),
            size: version.size,
            uploaded_at: version.uploaded_at.clone(),
            source: version.source.clone(),
            signed_by: version.signed_by.clone(),
            disabled: version.disabled,
            activated_at: version.activated_at.clone(),
            state,
            rollback_target: record.previous.last() == Some(&version.sha256),
        }
    }
}

/// `GET /v2/admin/devices` (one page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
}

/// One device, as the device routes answer it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceAnswer {
    pub device: DeviceView,
}

/// A device: its record without its credentials or the provisioner's handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    pub kind: DeviceKind,
    pub driver: String,
    pub management_url: String,
    pub capacity: u32,
    pub project_id: Option<String>,
    pub cluster: Option<String>,
    pub networks: Vec<String>,
    #[serde(default)]
    pub attachments: BTreeMap<String, BTreeSet<String>>,
    pub metadata: BTreeMap<String, String>,
    pub enabled: bool,
    #[serde(default)]
    pub availability_zone: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
    /// Whether the host's provisioner started it.
    pub spawned: bool,
    /// On a store several hosts share: the host whose provisioner runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub credentials_set: bool,
    /// Load balancers placed on it.
    pub load_balancers: usize,
}

impl DeviceView {
    /// `device` carrying `load` load balancers.
    pub fn of(device: &Device, load: usize) -> Self {
        Self {
            id: device.id.clone(),
            name: device.name.clone(),
            kind: device.kind,
            driver: device.driver.clone(),
            management_url: device.management_url.clone(),
            capacity: device.capacity,
            project_id: device.project_id.clone(),
            cluster: device.cluster.clone(),
            networks: device.networks.clone(),
            attachments: device.attachments.clone(),
            metadata: device.metadata.clone(),
            enabled: device.enabled,
            availability_zone: device.availability_zone.clone(),
            created_at: device.created_at.clone(),
            updated_at: device.updated_at.clone(),
            spawned: device.provisioned.is_some(),
            host: device.host.clone(),
            credentials_set: device.credentials.is_some(),
            load_balancers: load,
        }
    }
}

/// `GET /v2/admin/loadbalancers/{id}/placement`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementAnswer {
    pub placement: PlacementView,
}

/// The recorded decision and the device the load balancer is on now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementView {
    #[serde(flatten)]
    pub decision: Placement,
    pub device_id: Option<String>,
}

/// `GET /v2/admin/audit` (one page, oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub audit: Vec<Record>,
}

/// `GET /v2/admin/audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyAnswer {
    pub intact: bool,
    pub records: u64,
    pub head: Option<String>,
    /// The first break, in words.
    pub broken: Option<String>,
}

impl From<&crate::audit::Verification> for VerifyAnswer {
    fn from(verification: &crate::audit::Verification) -> Self {
        Self {
            intact: verification.intact(),
            records: verification.records,
            head: verification.head.clone(),
            broken: verification.broken.clone(),
        }
    }
}

/// `GET /v2/admin/hosts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostList {
    pub hosts: Vec<HostView>,
}

/// One host sharing the control plane's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    pub id: String,
    /// Its machine's name.
    pub name: String,
    pub version: String,
    /// Where its API listens.
    pub address: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339: when it last said it was alive.
    pub heartbeat: String,
    /// Its heartbeat is within the lease: it holds its jobs and polls its share of devices.
    pub alive: bool,
    /// Jobs whose lease it holds.
    pub jobs: u64,
}

/// An enum's name in the API (`"REDIRECT_TO_POOL"`).
pub fn name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// `GET /v1/secrets/{id}`: a secret's metadata, in Barbican's shape. Never its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretView {
    /// What a listener names: `<API>/v1/secrets/<id>`.
    pub secret_ref: String,
    pub name: Option<String>,
    /// Always `ACTIVE`: a stored secret is usable.
    pub status: String,
    pub secret_type: String,
    /// `{"default": <the payload's content type>}`.
    pub content_types: BTreeMap<String, String>,
    pub created: String,
    pub updated: String,
    pub expiration: Option<String>,
    pub algorithm: Option<String>,
    pub bit_length: Option<u32>,
    pub mode: Option<String>,
    pub creator_id: Option<String>,
}

/// `GET /v1/secrets`: a page of the caller's secrets (`offset`, `limit`), with links to the
/// pages around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretList {
    pub secrets: Vec<SecretView>,
    /// Secrets in all pages.
    pub total: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// `POST /v1/secrets`: the new secret's reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    pub secret_ref: String,
}

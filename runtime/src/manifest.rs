//! A driver's manifest — what it asks for — and the grant the host enforces.
//!
//! The manifest is the custom section `lbaas-manifest` of the component (the SDK's
//! `manifest!` writes it), so it is covered by the component's SHA-256 and signature. The
//! operator's policy ([`RuntimeConfig`]) caps every request: the grant is the smaller of the two.
//! A driver without a manifest gets the policy's caps, and `device-api` with any method and path.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RuntimeConfig;
use super::bindings::device_api::Method;

/// The custom section's name.
pub const SECTION: &str = "lbaas-manifest";
/// Contract versions this host serves.
pub const SUPPORTED_WIT: &[&str] = super::bindings::CONTRACTS;
/// Largest manifest read.
const MAX_MANIFEST: usize = 64 * 1024;

/// What a driver component declares about itself in its `lbaas-manifest` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The driver's name (it must report the same).
    pub name: String,
    /// Its version (it must report the same).
    pub version: String,
    /// The contract it is built against (`lbaas:driver@0.3.0`).
    pub wit: String,
    /// `None`: the driver needs no device access.
    pub device_api: Option<DeviceApiRequest>,
    /// The linear memory it asks for, in bytes.
    pub memory_bytes: Option<u64>,
    /// The state it asks to keep, in bytes.
    pub state_bytes: Option<u64>,
    /// The deadlines it asks for.
    pub deadlines_ms: Option<DeadlinesMs>,
}

/// The device requests a driver asks to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceApiRequest {
    /// HTTP methods.
    pub methods: Vec<String>,
    /// Path prefixes, each starting with `/`.
    pub paths: Vec<String>,
    /// Path prefixes where `send-certificate` may put key material, each starting with `/`;
    /// `{loadbalancer}` stands for the id of the load balancer the call is for. They need not
    /// be among `paths`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_paths: Vec<String>,
}

/// Deadlines a driver asks for, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlinesMs {
    /// `select`.
    pub select: Option<u64>,
    /// `apply`, `remove`, `status`.
    pub device: Option<u64>,
    /// Every other export.
    pub other: Option<u64>,
}

/// What the host enforces for one driver version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The device requests it may make (`None`: none).
    pub device_api: Option<DeviceApiGrant>,
    /// Its linear memory, in bytes.
    pub memory_bytes: usize,
    /// Its state namespace's quota, in bytes.
    pub state_bytes: u64,
    /// The deadline of `select`.
    #[serde(with = "millis")]
    pub select_deadline: Duration,
    /// The deadline of `apply`, `remove` and `status`.
    #[serde(with = "millis")]
    pub device_deadline: Duration,
    /// The deadline of every other export.
    #[serde(with = "millis")]
    pub call_deadline: Duration,
}

/// The device requests a driver version may make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceApiGrant {
    /// HTTP methods.
    pub methods: Vec<String>,
    /// Path prefixes.
    pub paths: Vec<String>,
    /// Path prefixes for key material (`send-certificate`); `{loadbalancer}` stands for the
    /// call's load balancer.
    pub certificate_paths: Vec<String>,
}

mod millis {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// A method's name as manifests and grants spell it (`GET`, …).
pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

impl Grant {
    /// The deadline of one export.
    pub fn deadline(&self, function: &str) -> Duration {
        match function {
            "select" => self.select_deadline,
            "apply" | "remove" | "status" => self.device_deadline,
            _ => self.call_deadline,
        }
    }

    /// Whether the grant lets the driver send `method` to `path`; the refusal in words.
    pub fn permits(&self, driver: &str, method: Method, path: &str) -> Result<(), NotGranted> {
        let Some(grant) = &self.device_api else {
            return Err(NotGranted::NoDeviceApi {
                driver: driver.to_owned(),
            });
        };
        let method = method_name(method);
        if !grant.methods.iter().any(|m| m == method) {
            return Err(NotGranted::Method {
                driver: driver.to_owned(),
                method,
                granted: grant.methods.clone(),
            });
        }
        let path_only = path.split('?').next().unwrap_or_default();
        if !grant
            .paths
            .iter()
            .any(|prefix| path_only.starts_with(prefix.as_str()))
        {
            return Err(NotGranted::Path {
                driver: driver.to_owned(),
                path: path_only.to_owned(),
                granted: grant.paths.clone(),
            });
        }
        Ok(())
    }

    /// Whether the grant lets the driver put key material at `path` for load balancer
    /// `lb_id`: `path` is under a certificate prefix with `{loadbalancer}` read as `lb_id`.
    /// The certificate prefixes stand apart from `paths`: a driver may have the host put a file
    /// there without being able to send its own bodies there.
    pub fn certificate_path(
        &self,
        driver: &str,
        lb_id: &str,
        path: &str,
    ) -> Result<(), NotGranted> {
        let Some(grant) = &self.device_api else {
            return Err(NotGranted::NoDeviceApi {
                driver: driver.to_owned(),
            });
        };
        let under = grant
            .certificate_paths
            .iter()
            .any(|prefix| path.starts_with(&prefix.replace("{loadbalancer}", lb_id)));
        if under && !path.contains('?') && !path.contains('#') {
            Ok(())
        } else {
            Err(NotGranted::CertificatePath {
                driver: driver.to_owned(),
                path: path.to_owned(),
                granted: grant.certificate_paths.clone(),
            })
        }
    }
}

/// Why a component's manifest is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The component's sections cannot be read.
    #[error("unreadable component: {0}")]
    Unreadable(String),
    /// The manifest is larger than the host reads.
    #[error("its manifest is larger than {MAX_MANIFEST} bytes")]
    TooLarge,
    /// The manifest is not the manifest's JSON.
    #[error("its manifest is not valid: {0}")]
    Invalid(String),
    /// The manifest names a contract this host does not serve.
    #[error("it targets {wit}, which this host does not serve (supported: {})", SUPPORTED_WIT.join(", "))]
    UnsupportedWit {
        /// The contract it names.
        wit: String,
    },
    /// The manifest asks for a method `device-api` does not have.
    #[error("its manifest asks for an unknown method `{0}`")]
    UnknownMethod(String),
    /// A path prefix does not start with `/`.
    #[error("its manifest's path prefix `{0}` does not start with /")]
    RelativePath(String),
}

/// Why a device call is outside what the driver was granted. The text reaches the driver (its
/// `device-api` error) and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotGranted {
    /// The driver may make no device request.
    #[error("driver {driver} was not granted device-api")]
    NoDeviceApi {
        /// The driver.
        driver: String,
    },
    /// The method is not granted.
    #[error("method {method} is not granted to driver {driver} (granted: {})", granted.join(", "))]
    Method {
        /// The driver.
        driver: String,
        /// The method it used.
        method: &'static str,
        /// The methods it was granted.
        granted: Vec<String>,
    },
    /// The path is under no granted prefix.
    #[error("path {path} is not granted to driver {driver} (granted: {})", granted.join(", "))]
    Path {
        /// The driver.
        driver: String,
        /// The path it asked for.
        path: String,
        /// The prefixes it was granted.
        granted: Vec<String>,
    },
    /// The path is under no prefix granted for key material.
    #[error(
        "path {path} is not granted to driver {driver} for certificates (granted: {})",
        if granted.is_empty() { "none".to_owned() } else { granted.join(", ") }
    )]
    CertificatePath {
        /// The driver.
        driver: String,
        /// The path it asked for.
        path: String,
        /// The prefixes it was granted for certificates.
        granted: Vec<String>,
    },
}

/// The manifest in `bytes`, if the component carries one.
pub fn read(bytes: &[u8]) -> Result<Option<Manifest>, ManifestError> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| ManifestError::Unreadable(e.to_string()))?;
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == SECTION
        {
            let data = section.data();
            if data.len() > MAX_MANIFEST {
                return Err(ManifestError::TooLarge);
            }
            let manifest: Manifest =
                serde_json::from_slice(data).map_err(|e| ManifestError::Invalid(e.to_string()))?;
            return check(manifest).map(Some);
        }
    }
    Ok(None)
}

fn check(manifest: Manifest) -> Result<Manifest, ManifestError> {
    if !SUPPORTED_WIT.contains(&manifest.wit.as_str()) {
        return Err(ManifestError::UnsupportedWit { wit: manifest.wit });
    }
    if let Some(device_api) = &manifest.device_api {
        if let Some(bad) = device_api
            .methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(ManifestError::UnknownMethod(bad.clone()));
        }
        if let Some(bad) = device_api
            .paths
            .iter()
            .chain(&device_api.certificate_paths)
            .find(|p| !p.starts_with('/'))
        {
            return Err(ManifestError::RelativePath(bad.clone()));
        }
    }
    Ok(manifest)
}

/// What `manifest` gets under the operator's caps in `config`.
pub fn grant(manifest: Option<&Manifest>, config: &RuntimeConfig) -> Grant {
    let capped = |requested: Option<u64>, cap: Duration| {
        requested.map_or(cap, |ms| Duration::from_millis(ms).min(cap))
    };
    let deadlines = manifest
        .and_then(|m| m.deadlines_ms.clone())
        .unwrap_or_default();
    let device_api = match manifest {
        // Without a manifest, no key material: a driver that takes certificates says where.
        None => Some(DeviceApiGrant {
            methods: METHODS.iter().map(|m| (*m).to_owned()).collect(),
            paths: vec!["/".into()],
            certificate_paths: Vec::new(),
        }),
        Some(manifest) => manifest.device_api.as_ref().map(|request| DeviceApiGrant {
            methods: request.methods.clone(),
            paths: request.paths.clone(),
            certificate_paths: request.certificate_paths.clone(),
        }),
    };
    Grant {
        device_api,
        memory_bytes: manifest
            .and_then(|m| m.memory_bytes)
            .map_or(config.memory_limit, |m| {
                (m.min(config.memory_limit as u64)) as usize
            }),
        state_bytes: manifest
            .and_then(|m| m.state_bytes)
            .map_or(config.state_quota, |s| s.min(config.state_quota)),
        select_deadline: capped(deadlines.select, config.select_deadline),
        device_deadline: capped(deadlines.device, config.device_deadline),
        call_deadline: capped(deadlines.other, config.call_deadline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            name: "haproxy".into(),
            version: "0.1.0".into(),
            wit: "lbaas:driver@0.1.0".into(),
            device_api: Some(DeviceApiRequest {
                methods: vec!["GET".into(), "PUT".into()],
                paths: vec!["/v1/loadbalancers/".into()],
                certificate_paths: vec!["/v1/loadbalancers/{loadbalancer}/certificates/".into()],
            }),
            memory_bytes: Some(1 << 40),
            state_bytes: Some(1024),
            deadlines_ms: Some(DeadlinesMs {
                select: Some(100),
                device: Some(10_000_000),
                other: None,
            }),
        }
    }

    #[test]
    fn the_policy_caps_every_request() {
        let config = RuntimeConfig::default();
        let grant = grant(Some(&manifest()), &config);
        assert_eq!(grant.memory_bytes, config.memory_limit, "capped");
        assert_eq!(grant.state_bytes, 1024, "asked for less");
        assert_eq!(grant.select_deadline, Duration::from_millis(100));
        assert_eq!(grant.device_deadline, config.device_deadline, "capped");
        assert_eq!(
            grant.call_deadline, config.call_deadline,
            "not asked: the cap"
        );
    }

    #[test]
    fn device_api_is_what_was_asked_for() {
        let grant = grant(Some(&manifest()), &RuntimeConfig::default());
        assert!(
            grant
                .permits("haproxy", Method::Put, "/v1/loadbalancers/x/config")
                .is_ok()
        );
        let method = grant.permits("haproxy", Method::Delete, "/v1/loadbalancers/x/config");
        assert!(method.is_err_and(|e| matches!(
            e,
            NotGranted::Method {
                method: "DELETE",
                ..
            }
        )));
        let path = grant.permits("haproxy", Method::Get, "/admin/reboot?x=/v1/loadbalancers/");
        assert!(path.is_err_and(
            |e| matches!(&e, NotGranted::Path { path, .. } if path == "/admin/reboot")
        ));
        let none = Grant {
            device_api: None,
            ..grant.clone()
        };
        assert!(
            none.permits("quiet", Method::Get, "/")
                .is_err_and(|e| matches!(e, NotGranted::NoDeviceApi { .. }))
        );
        // No manifest: everything, within the caps.
        let open = super::grant(None, &RuntimeConfig::default());
        assert!(open.permits("old", Method::Patch, "/anything").is_ok());
    }

    #[test]
    fn manifests_are_checked() {
        assert!(check(manifest()).is_ok());
        let wrong_wit = Manifest {
            wit: "lbaas:driver@9.0.0".into(),
            ..manifest()
        };
        assert!(check(wrong_wit).is_err_and(|e| matches!(e, ManifestError::UnsupportedWit { .. })));
        let mut bad_method = manifest();
        bad_method
            .device_api
            .as_mut()
            .expect("api")
            .methods
            .push("BREW".into());
        assert_eq!(
            check(bad_method).err(),
            Some(ManifestError::UnknownMethod("BREW".into()))
        );
        let mut bad_path = manifest();
        bad_path.device_api.as_mut().expect("api").paths = vec!["v1".into()];
        assert_eq!(
            check(bad_path).err(),
            Some(ManifestError::RelativePath("v1".into()))
        );
    }

    #[test]
    fn certificates_go_only_under_the_load_balancers_own_prefix() {
        let granted = grant(Some(&manifest()), &RuntimeConfig::default());
        let lb = "4f0c6a53-lb";
        let own = format!("/v1/loadbalancers/{lb}/certificates/www");
        assert!(granted.certificate_path("haproxy", lb, &own).is_ok());
        for path in [
            "/v1/loadbalancers/other-lb/certificates/www".to_owned(),
            format!("/v1/loadbalancers/{lb}/config"),
            format!("/v1/loadbalancers/{lb}/certificates/www?echo=1"),
            "/v1/other".to_owned(),
        ] {
            assert!(
                granted.certificate_path("haproxy", lb, &path).is_err(),
                "{path} was granted"
            );
        }
        // The certificate prefixes stand apart from the paths the driver may send to.
        assert!(
            granted
                .permits("haproxy", Method::Put, "/v1/other")
                .is_err()
        );
        // Without a manifest, no key material goes anywhere.
        let open = grant(None, &RuntimeConfig::default());
        assert!(open.permits("x", Method::Put, &own).is_ok());
        let refused = open
            .certificate_path("x", lb, &own)
            .expect_err("no certificate paths");
        assert!(refused.to_string().contains("granted: none"), "{refused}");
    }
}

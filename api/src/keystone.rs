//! Keystone tokens, validated the way keystonemiddleware does for Octavia: the host holds a
//! service token of its own (`POST /v3/auth/tokens` with its password), asks Keystone about each
//! caller's token (`GET /v3/auth/tokens` with `X-Subject-Token`), and takes the project and the
//! role names from the answer. A valid answer is cached for `cache_for` (keystonemiddleware's
//! `token_cache_time`), never past the token's own expiry, so a revoked token stops working
//! within `cache_for`. Tokens are cached by their SHA-256, never kept in the clear.
//!
//! Before authentication anyone can make the host ask Keystone, so what that costs is bounded:
//! a token Keystone refused is refused again without asking for [`NEGATIVE_FOR`] (at most
//! [`MAX_REFUSED`] remembered), and at most [`MAX_VALIDATIONS`] validations run at once; a
//! request that waits longer than Keystone's timeout for its turn is answered `503`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::caller::Context;
use super::error::ApiError;

/// Longer than any token Keystone issues (fernet tokens are under 300 bytes): refused without
/// asking Keystone.
const MAX_TOKEN_BYTES: usize = 8 << 10;
/// Cached tokens at most; past it, expired entries are dropped, then the whole cache.
const MAX_CACHED: usize = 50_000;
/// How long a token Keystone refused is refused without asking again.
pub const NEGATIVE_FOR: Duration = Duration::from_secs(30);
/// Refused tokens remembered at most; past it, the oldest half is forgotten.
pub const MAX_REFUSED: usize = 10_000;
/// Validations in flight at most (each one is a blocking call to Keystone).
pub const MAX_VALIDATIONS: usize = 16;
/// A service token is renewed this long before Keystone says it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// Where Keystone is and who the host is to it.
#[derive(Clone)]
pub struct KeystoneConfig {
    /// Keystone's public endpoint, with or without `/v3` (`http://keystone:5000`).
    pub url: String,
    /// The host's service user, its password, and the project its token is scoped to.
    pub username: String,
    pub password: String,
    pub project: String,
    /// Domain ids of the service user and of its project.
    pub user_domain: String,
    pub project_domain: String,
    /// How long a validated token is trusted before Keystone is asked again.
    pub cache_for: Duration,
    /// How long one request to Keystone may take.
    pub timeout: Duration,
}

impl KeystoneConfig {
    /// The settings keystonemiddleware defaults to: the `service` project of the `default`
    /// domain, five minutes of caching.
    pub fn new(url: &str, username: &str, password: &str) -> Self {
        Self {
            url: url.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            project: "service".into(),
            user_domain: "default".into(),
            project_domain: "default".into(),
            cache_for: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for KeystoneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("project", &self.project)
            .field("cache_for", &self.cache_for)
            .finish_non_exhaustive()
    }
}

/// Why Keystone could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    #[error("cannot reach Keystone at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Keystone refused the host's own credentials (user {user:?}, project {project:?})")]
    Credentials { user: String, project: String },
    #[error(
        "Keystone does not let user {user:?} validate tokens: give it the `service` or `admin` role"
    )]
    NotAllowed { user: String },
    #[error("Keystone answered {status} to {what}")]
    Unexpected { what: &'static str, status: u16 },
    #[error("Keystone's answer to {what} is unreadable: {reason}")]
    Unreadable { what: &'static str, reason: String },
}

impl From<KeystoneError> for ApiError {
    fn from(error: KeystoneError) -> Self {
        tracing::error!(%error, "token validation failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The identity service cannot validate tokens at the moment; try again later.",
        )
    }
}

/// A token Keystone vouched for.
#[derive(Debug, Clone)]
struct Grant {
    project_id: Option<String>,
    roles: Vec<String>,
    expires: SystemTime,
}

#[derive(Debug, Clone)]
struct Issued {
    token: String,
    /// The host's own user id, as Keystone names it in the token.
    user_id: Option<String>,
    expires: SystemTime,
}

/// A Keystone client that validates callers' tokens.
pub struct Keystone {
    config: KeystoneConfig,
    /// `…/v3`, without a trailing slash.
    base: String,
    http: ureq::Agent,
    service: Mutex<Option<Issued>>,
    cache: Mutex<HashMap<[u8; 32], (Grant, SystemTime)>>,
    /// Tokens Keystone refused, until when they are refused without asking.
    refused: Mutex<HashMap<[u8; 32], SystemTime>>,
    /// Turns to ask Keystone.
    validations: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Keystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystone")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Keystone {
    pub fn new(config: KeystoneConfig) -> Self {
        let trimmed = config.url.trim_end_matches('/');
        let base = if trimmed.ends_with("/v3") {
            trimmed.to_owned()
        } else {
            format!("{trimmed}/v3")
        };
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            .build()
            .into();
        Self {
            config,
            base,
            http,
            service: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            validations: tokio::sync::Semaphore::new(MAX_VALIDATIONS),
        }
    }

    /// Gets the host's own token, so wrong settings show at start rather than at the first
    /// request.
    pub fn check(&self) -> Result<(), KeystoneError> {
        self.service_token(true).map(drop)
    }

    /// The caller holding `token`, as Keystone describes it.
    pub async fn context(self: &Arc<Self>, token: &str) -> Result<Context, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::unauthorized());
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let grant = match self.cached(&key) {
            Some(grant) => grant,
            None if self.was_refused(&key) => return Err(ApiError::unauthorized()),
            None => {
                let busy = || {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Too many tokens are being validated with Keystone right now. Try again.",
                    )
                };
                let _turn = tokio::time::timeout(self.config.timeout, self.validations.acquire())
                    .await
                    .map_err(|_| busy())?
                    .map_err(|_| busy())?;
                // Another request may have asked about the same token meanwhile.
                if let Some(grant) = self.cached(&key) {
                    grant
                } else if self.was_refused(&key) {
                    return Err(ApiError::unauthorized());
                } else {
                    let this = Arc::clone(self);
                    let token = token.to_owned();
                    let answer = tokio::task::spawn_blocking(move || this.validate(&token))
                        .await
                        .map_err(ApiError::internal)??;
                    let Some(grant) = answer else {
                        self.remember_refused(key);
                        return Err(ApiError::unauthorized());
                    };
                    self.remember(key, grant.clone());
                    grant
                }
            }
        };
        let project_id = grant.project_id.ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "The token is not scoped to a project: load balancers belong to projects.",
            )
        })?;
        Ok(Context {
            project_id,
            roles: grant.roles,
            policy: Default::default(),
            noauth: false,
            token: Some(crate::caller::Token::new(token)),
        })
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Grant> {
        let now = SystemTime::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(key) {
            Some((grant, until)) if *until > now && grant.expires > now => Some(grant.clone()),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    fn was_refused(&self, key: &[u8; 32]) -> bool {
        let now = SystemTime::now();
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.get(key).is_some_and(|until| *until > now)
    }

    fn remember_refused(&self, key: [u8; 32]) {
        let now = SystemTime::now();
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.len() >= MAX_REFUSED {
            refused.retain(|_, until| *until > now);
            if refused.len() >= MAX_REFUSED {
                // The oldest half: those refused first expire first.
                let mut untils: Vec<SystemTime> = refused.values().copied().collect();
                untils.sort_unstable();
                let cut = untils[untils.len() / 2];
                refused.retain(|_, until| *until > cut);
            }
        }
        refused.insert(key, now + NEGATIVE_FOR);
    }

    /// Tokens remembered as refused (for tests of the bound).
    pub fn refused_remembered(&self) -> usize {
        self.refused.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn remember(&self, key: [u8; 32], grant: Grant) {
        let now = SystemTime::now();
        let until = (now + self.config.cache_for).min(grant.expires);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (grant, until)| *until > now && grant.expires > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, (grant, until));
    }

    /// Asks Keystone about `token`: `None` when it is not valid (unknown, expired or revoked).
    fn validate(&self, token: &str) -> Result<Option<Grant>, KeystoneError> {
        let mut renewed = false;
        loop {
            let service = self.service_token(renewed)?;
            let mut response = self
                .http
                .get(format!("{}/auth/tokens?nocatalog", self.base))
                .header("x-auth-token", &service)
                .header("x-subject-token", token)
                .call()
                .map_err(|e| self.unreachable(e))?;
            match response.status().as_u16() {
                200 => {
                    let body: TokenBody = read(&mut response, "token validation")?;
                    return body.grant().map(Some);
                }
                // Keystone's answer for a token it does not know, an expired or revoked one,
                // or one that is not a token at all.
                400 | 404 => return Ok(None),
                // Our own token stopped working (revoked, keys rotated): one fresh try.
                401 if !renewed => renewed = true,
                401 => return Err(self.credentials()),
                403 => {
                    return Err(KeystoneError::NotAllowed {
                        user: self.config.username.clone(),
                    });
                }
                status => {
                    return Err(KeystoneError::Unexpected {
                        what: "token validation",
                        status,
                    });
                }
            }
        }
    }

    /// The public endpoint of the catalog's service of `service_type` (`key-manager`), as the
    /// host's own token sees the catalog. Blocks.
    pub fn public_endpoint(&self, service_type: &str) -> Result<Option<String>, KeystoneError> {
        let token = self.service_token(false)?;
        let mut response = self
            .http
            .get(format!("{}/auth/catalog", self.base))
            .header("x-auth-token", &token)
            .call()
            .map_err(|e| self.unreachable(e))?;
        match response.status().as_u16() {
            200 => {}
            status => {
                return Err(KeystoneError::Unexpected {
                    what: "the service catalog",
                    status,
                });
            }
        }
        let body: Catalog = read(&mut response, "the service catalog")?;
        Ok(body.endpoint(service_type))
    }

    /// The host's own token, issued again when `renew` or when it is about to expire.
    fn service_token(&self, renew: bool) -> Result<String, KeystoneError> {
        self.issued(renew).map(|issued| issued.token)
    }

    fn issued(&self, renew: bool) -> Result<Issued, KeystoneError> {
        let mut service = self.service.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(issued) = service.as_ref()
            && !renew
            && issued.expires > SystemTime::now() + RENEW_BEFORE
        {
            return Ok(issued.clone());
        }
        let config = &self.config;
        let request = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": config.username,
                "domain": {"id": config.user_domain},
                "password": config.password,
            }}},
            "scope": {"project": {
                "name": config.project,
                "domain": {"id": config.project_domain},
            }},
        }});
        let mut response = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.base))
            .send_json(&request)
            .map_err(|e| self.unreachable(e))?;
        match response.status().as_u16() {
            201 => {}
            401 | 403 | 404 => return Err(self.credentials()),
            status => {
                return Err(KeystoneError::Unexpected {
                    what: "the host's own authentication",
                    status,
                });
            }
        }
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| KeystoneError::Unreadable {
                what: "the host's own authentication",
                reason: "no X-Subject-Token header".into(),
            })?;
        let body: TokenBody = read(&mut response, "the host's own authentication")?;
        let user_id = body.token.user.as_ref().and_then(|user| user.id.clone());
        let issued = Issued {
            token,
            user_id,
            expires: body.grant()?.expires,
        };
        *service = Some(issued.clone());
        Ok(issued)
    }

    fn unreachable(&self, error: ureq::Error) -> KeystoneError {
        KeystoneError::Unreachable {
            url: self.base.clone(),
            reason: error.to_string(),
        }
    }

    fn credentials(&self) -> KeystoneError {
        KeystoneError::Credentials {
            user: self.config.username.clone(),
            project: self.config.project.clone(),
        }
    }
}

/// The host as Keystone knows it, for its calls to Barbican.
impl lbaas_control::key_manager::HostIdentity for Keystone {
    fn token(&self, renew: bool) -> Result<String, String> {
        self.service_token(renew).map_err(|e| e.to_string())
    }

    fn user_id(&self) -> Result<String, String> {
        self.issued(false)
            .map_err(|e| e.to_string())?
            .user_id
            .ok_or_else(|| "Keystone's token for the host names no user id".to_owned())
    }
}

fn read<T: serde::de::DeserializeOwned>(
    response: &mut ureq::http::Response<ureq::Body>,
    what: &'static str,
) -> Result<T, KeystoneError> {
    response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_json()
        .map_err(|e| KeystoneError::Unreadable {
            what,
            reason: e.to_string(),
        })
}

/// The parts of Keystone's token document the host uses.
#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: String,
    #[serde(default)]
    project: Option<Named>,
    #[serde(default)]
    roles: Vec<Named>,
    #[serde(default)]
    user: Option<Named>,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// Keystone's `GET /v3/auth/catalog` answer, the parts the host reads.
#[derive(Deserialize)]
struct Catalog {
    catalog: Vec<CatalogService>,
}

#[derive(Deserialize)]
struct CatalogService {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Deserialize)]
struct CatalogEndpoint {
    interface: String,
    url: String,
}

impl Catalog {
    fn endpoint(self, service_type: &str) -> Option<String> {
        self.catalog
            .into_iter()
            .filter(|service| service.kind == service_type)
            .flat_map(|service| service.endpoints)
            .find(|endpoint| endpoint.interface == "public")
            .map(|endpoint| endpoint.url)
    }
}

impl TokenBody {
    fn grant(self) -> Result<Grant, KeystoneError> {
        let token = self.token;
        let expires = humantime::parse_rfc3339_weak(&token.expires_at).map_err(|e| {
            KeystoneError::Unreadable {
                what: "token validation",
                reason: format!("expires_at {:?}: {e}", token.expires_at),
            }
        })?;
        Ok(Grant {
            project_id: token.project.and_then(|p| p.id),
            roles: token.roles.into_iter().filter_map(|r| r.name).collect(),
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_token_documents_are_read() {
        let body: TokenBody = serde_json::from_value(json!({"token": {
            "expires_at": "2026-12-01T01:43:46.000000Z",
            "project": {"id": "54b3", "name": "admin", "domain": {"id": "default"}},
            "roles": [{"id": "1", "name": "admin"}, {"id": "2", "name": "reader"}],
            "user": {"id": "5e18", "name": "admin"},
            "methods": ["password"],
        }}))
        .expect("token body");
        let grant = body.grant().expect("grant");
        assert_eq!(grant.project_id.as_deref(), Some("54b3"));
        assert_eq!(grant.roles, ["admin", "reader"]);
        assert_eq!(
            grant.expires,
            humantime::parse_rfc3339("2026-12-01T01:43:46Z").expect("time")
        );
        let system: TokenBody = serde_json::from_value(json!({"token": {
            "expires_at": "2026-12-01T01:43:46Z", "system": {"all": true}, "roles": []}}))
        .expect("system-scoped body");
        assert_eq!(system.grant().expect("grant").project_id, None);
    }

    #[test]
    fn the_catalog_gives_a_services_public_endpoint() {
        let catalog: Catalog = serde_json::from_value(json!({"catalog": [
            {"type": "identity", "endpoints": [{"interface": "public", "url": "http://k"}]},
            {"type": "key-manager", "name": "barbican", "endpoints": [
                {"interface": "internal", "url": "http://internal:9311"},
                {"interface": "public", "url": "http://b:9311", "region": "RegionOne"}]},
        ]}))
        .expect("catalog");
        assert_eq!(
            catalog.endpoint("key-manager").as_deref(),
            Some("http://b:9311")
        );
        let empty: Catalog = serde_json::from_value(json!({"catalog": []})).expect("catalog");
        assert_eq!(empty.endpoint("key-manager"), None);
    }

    #[test]
    fn the_endpoint_gets_one_v3() {
        for url in [
            "http://k:5000",
            "http://k:5000/",
            "http://k:5000/v3",
            "http://k:5000/v3/",
        ] {
            assert_eq!(
                Keystone::new(KeystoneConfig::new(url, "u", "p")).base,
                "http://k:5000/v3"
            );
        }
    }

    #[test]
    fn the_password_stays_out_of_logs() {
        let config = KeystoneConfig::new("http://k:5000", "lbaas", "hunter2");
        assert!(!format!("{:?}", Keystone::new(config)).contains("hunter2"));
    }
}

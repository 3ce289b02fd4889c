//! Who is asking: `--auth none` (Octavia's noauth: the project comes from the request, every
//! action is allowed), `--auth tokens FILE` (opaque tokens from `X-Auth-Token`, each mapped to
//! a project and roles, for small set-ups and tests) or `--auth keystone` (tokens Keystone
//! issued, validated against it: [`crate::keystone`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::http::request::Parts;
use serde::Deserialize;

use super::error::ApiError;
use super::keystone::Keystone;

pub const ROLE_MEMBER: &str = "load-balancer_member";
pub const ROLE_OBSERVER: &str = "load-balancer_observer";
pub const ROLE_GLOBAL_OBSERVER: &str = "load-balancer_global_observer";
pub const ROLE_ADMIN: &str = "admin";
/// Keystone's default roles (Octavia 2025.1 and later honour them beside its own): a
/// project's `reader` reads it, its `member` and `manager` also change it.
pub const ROLE_READER: &str = "reader";
pub const ROLE_PROJECT_MEMBER: &str = "member";
pub const ROLE_MANAGER: &str = "manager";

/// The project a noauth request acts for when it names none.
pub const DEFAULT_PROJECT: &str = "default";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenGrant {
    pub project_id: String,
    pub roles: Vec<String>,
}

/// A tokens file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    #[error("cannot read tokens file {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("tokens file {} is invalid: {source}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Tokens(HashMap<String, TokenGrant>),
    Keystone(Arc<Keystone>),
}

impl Auth {
    /// Reads a tokens file: a JSON object from token to `{"project_id", "roles"}`.
    pub fn tokens_file(path: &Path) -> Result<Self, TokensFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| TokensFileError::Read {
            path: path.to_owned(),
            source: e,
        })?;
        let tokens: HashMap<String, TokenGrant> =
            serde_json::from_str(&text).map_err(|e| TokensFileError::Invalid {
                path: path.to_owned(),
                source: e,
            })?;
        Ok(Auth::Tokens(tokens))
    }

    pub async fn context(&self, parts: &Parts) -> Result<Context, ApiError> {
        match self {
            Auth::None => {
                let project = header(parts, "x-project-id")
                    .or_else(|| header(parts, "x-tenant-id"))
                    .unwrap_or(DEFAULT_PROJECT);
                Ok(Context {
                    project_id: project.to_owned(),
                    roles: vec![ROLE_ADMIN.to_owned()],
                    noauth: true,
                })
            }
            Auth::Tokens(tokens) => {
                let token = header(parts, "x-auth-token").ok_or_else(ApiError::unauthorized)?;
                let grant = tokens.get(token).ok_or_else(ApiError::unauthorized)?;
                Ok(Context {
                    project_id: grant.project_id.clone(),
                    roles: grant.roles.clone(),
                    noauth: false,
                })
            }
            Auth::Keystone(keystone) => {
                let token = header(parts, "x-auth-token").ok_or_else(ApiError::unauthorized)?;
                keystone.context(token).await
            }
        }
    }
}

impl Auth {
    /// The caller who holds `token` (the dashboard's session): as if it came in
    /// `X-Auth-Token`. Under noauth, the default project's admin.
    pub async fn token_context(&self, token: &str) -> Result<Context, ApiError> {
        let mut request = axum::http::Request::new(());
        let value =
            axum::http::HeaderValue::from_str(token).map_err(|_| ApiError::unauthorized())?;
        request.headers_mut().insert("x-auth-token", value);
        let (parts, ()) = request.into_parts();
        self.context(&parts).await
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Context {
    pub project_id: String,
    pub roles: Vec<String>,
    /// Octavia's noauth: everything allowed, the project taken from the request.
    pub noauth: bool,
}

impl Context {
    fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(ROLE_ADMIN)
    }

    /// May change its project's objects: Octavia's member role or Keystone's member or manager.
    fn is_member(&self) -> bool {
        self.has(ROLE_MEMBER) || self.has(ROLE_PROJECT_MEMBER) || self.has(ROLE_MANAGER)
    }

    /// May read its project's objects.
    fn is_reader(&self) -> bool {
        self.is_member() || self.has(ROLE_OBSERVER) || self.has(ROLE_READER)
    }

    /// Holds a role the load-balancer API knows: Octavia's policy refuses every request of a
    /// caller without one (a project user with only an unrelated role), lists included.
    pub fn has_api_role(&self) -> bool {
        self.noauth || self.is_admin() || self.reads_all() || self.is_reader()
    }

    /// May see every project's objects.
    pub fn reads_all(&self) -> bool {
        self.is_admin() || self.has(ROLE_GLOBAL_OBSERVER)
    }

    pub fn can_read(&self, project_id: &str) -> bool {
        self.reads_all() || (project_id == self.project_id && self.is_reader())
    }

    pub fn can_write(&self, project_id: &str) -> bool {
        self.is_admin() || (project_id == self.project_id && self.is_member())
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn require_member(&self) -> Result<(), ApiError> {
        if self.is_admin() || self.is_member() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// The project a new object belongs to: the body's `project_id` only for admins (noauth
    /// included), otherwise the caller's.
    pub fn owning_project(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match requested {
            Some(project) if project != self.project_id && !self.is_admin() => {
                Err(ApiError::forbidden())
            }
            Some(project) => Ok(project.to_owned()),
            None => Ok(self.project_id.clone()),
        }
    }
}

impl lbaas_control::Reader for Context {
    fn reads_all(&self) -> bool {
        Context::reads_all(self)
    }

    fn project(&self) -> &str {
        &self.project_id
    }

    fn can_read(&self, project_id: &str) -> bool {
        Context::can_read(self, project_id)
    }
}

impl lbaas_control::octavia::Caller for Context {
    fn can_write(&self, project_id: &str) -> bool {
        Context::can_write(self, project_id)
    }

    fn is_admin(&self) -> bool {
        Context::is_admin(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[&str]) -> Context {
        Context {
            project_id: "p".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            noauth: false,
        }
    }

    #[test]
    fn keystone_default_roles_and_octavia_roles_both_count() {
        for writer in [&[ROLE_MEMBER][..], &[ROLE_PROJECT_MEMBER], &[ROLE_MANAGER]] {
            let ctx = caller(writer);
            assert!(ctx.can_write("p") && ctx.can_read("p"), "{writer:?}");
            assert!(!ctx.can_read("q") && !ctx.can_write("q"), "{writer:?}");
            assert!(ctx.require_member().is_ok() && ctx.require_admin().is_err());
        }
        for reader in [&[ROLE_OBSERVER][..], &[ROLE_READER]] {
            let ctx = caller(reader);
            assert!(ctx.can_read("p") && !ctx.can_write("p"), "{reader:?}");
            assert!(!ctx.can_read("q"), "{reader:?}");
            assert!(ctx.require_member().is_err());
        }
        let global = caller(&[ROLE_GLOBAL_OBSERVER]);
        assert!(global.can_read("q") && !global.can_write("q"));
        let admin = caller(&[ROLE_ADMIN]);
        assert!(admin.can_write("q") && admin.require_admin().is_ok());
        assert!(!caller(&["load-balancer_quota_admin"]).can_read("p"));
    }
}

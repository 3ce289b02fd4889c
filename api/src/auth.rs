//! Who is asking: `--auth none` (Octavia's noauth: the project comes from the request, every
//! action is allowed), `--auth tokens FILE` (opaque tokens from `X-Auth-Token`, each mapped to
//! a project and roles, for small set-ups and tests) or `--auth keystone` (tokens Keystone
//! issued, validated against it: [`crate::keystone`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::http::request::Parts;
use serde::Deserialize;

use super::caller::{Context, ROLE_ADMIN};
use super::error::ApiError;
use super::keystone::Keystone;

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
                    policy: Default::default(),
                    noauth: true,
                    token: None,
                })
            }
            Auth::Tokens(tokens) => {
                let token = header(parts, "x-auth-token").ok_or_else(ApiError::unauthorized)?;
                let grant = tokens.get(token).ok_or_else(ApiError::unauthorized)?;
                Ok(Context {
                    project_id: grant.project_id.clone(),
                    roles: grant.roles.clone(),
                    policy: Default::default(),
                    noauth: false,
                    token: None,
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

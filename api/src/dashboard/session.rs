//! Who is looking: the session cookie the login form sets (the token, HttpOnly, SameSite=Strict,
//! scoped to `/dashboard`), checked as the API checks `X-Auth-Token`; the form token that
//! binds every changing form to its session and this process; login and logout.

use std::sync::{Arc, LazyLock};

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::html::render;
use crate::{Api, ApiError, Auth, Context};

pub(crate) const COOKIE: &str = "lbaas_session";

/// Who is looking, from the session cookie.
pub(crate) struct Viewer {
    pub(crate) ctx: Context,
    /// The session's token (none under noauth).
    pub(crate) token: Option<String>,
}

impl Viewer {
    pub(crate) fn csrf(&self) -> String {
        csrf_for(self.token.as_deref().unwrap_or(""))
    }

    pub(crate) fn who(&self) -> String {
        if self.ctx.noauth {
            "noauth admin".to_owned()
        } else {
            format!("admin of project {}", self.ctx.project_id)
        }
    }
}

/// The form token of a session: bound to its token and to this process.
pub(crate) fn csrf_for(token: &str) -> String {
    static SECRET: LazyLock<[u8; 32]> = LazyLock::new(|| {
        let mut secret = [0u8; 32];
        // Without randomness the token is still bound to the session token.
        let _ = getrandom::fill(&mut secret);
        secret
    });
    let mut hash = Sha256::new();
    hash.update(*SECRET);
    hash.update(token.as_bytes());
    hex::encode(hash.finalize())
}

pub(crate) fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// The admin looking at the dashboard, or the answer for anyone else: the login form for
/// no (or a no longer valid) session, a refusal for a caller who is not an admin.
pub(crate) async fn viewer(api: &Api, headers: &HeaderMap) -> Result<Viewer, Response> {
    if matches!(api.auth, Auth::None) {
        let ctx = api
            .token_caller("noauth")
            .await
            .map_err(IntoResponse::into_response)?;
        return Ok(Viewer { ctx, token: None });
    }
    let Some(token) = session_token(headers) else {
        return Err(Redirect::to("/dashboard/login").into_response());
    };
    match api.token_caller(&token).await {
        Ok(ctx) if ctx.is_admin() => Ok(Viewer {
            ctx,
            token: Some(token),
        }),
        Ok(ctx) => Err(render(
            StatusCode::FORBIDDEN,
            &Refused {
                message: format!(
                    "You are logged in for project {}, without the admin role.",
                    ctx.project_id
                ),
                csrf: csrf_for(&token),
            },
        )),
        Err(error) if error.status == StatusCode::UNAUTHORIZED => {
            Err(Redirect::to("/dashboard/login").into_response())
        }
        Err(error) => Err(error.into_response()),
    }
}

/// A form that changes something must come from this dashboard: its origin (when the
/// browser names one) and its session's form token.
pub(crate) fn is_genuine_form(viewer: &Viewer, headers: &HeaderMap, csrf: &str) -> bool {
    let host = headers.get("host").and_then(|h| h.to_str().ok());
    if let Some(origin) = headers.get("origin").and_then(|o| o.to_str().ok()) {
        let same = host.is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        });
        if !same {
            return false;
        }
    }
    csrf == viewer.csrf()
}

pub(crate) const FORGED_FORM: &str =
    "This form did not come from this dashboard; reload the page and try again.";

pub(crate) fn forbidden_form() -> Response {
    ApiError::new(StatusCode::FORBIDDEN, FORGED_FORM).into_response()
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
pub(crate) struct Login {
    pub(crate) error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/refused.html")]
pub(crate) struct Refused {
    pub(crate) message: String,
    pub(crate) csrf: String,
}

pub(crate) async fn login_form(State(api): State<Arc<Api>>) -> Response {
    if matches!(api.auth, Auth::None) {
        return Redirect::to("/dashboard").into_response();
    }
    render(StatusCode::OK, &Login { error: None })
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    pub(crate) token: String,
}

/// The longest token taken (as the API takes in its header).
pub(crate) const MAX_TOKEN: usize = 8192;

pub(crate) async fn login(State(api): State<Arc<Api>>, Form(form): Form<LoginForm>) -> Response {
    let token = form.token.trim();
    let usable = !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    let refused = |status, error: &str| {
        render(
            status,
            &Login {
                error: Some(error.to_owned()),
            },
        )
    };
    if !usable {
        return refused(StatusCode::BAD_REQUEST, "That is not a token.");
    }
    match api.token_caller(token).await {
        Ok(ctx) if ctx.is_admin() => {
            let cookie = format!("{COOKIE}={token}; Path=/dashboard; HttpOnly; SameSite=Strict");
            let mut response = Redirect::to("/dashboard").into_response();
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(SET_COOKIE, cookie);
            }
            response
        }
        Ok(ctx) => refused(
            StatusCode::FORBIDDEN,
            &format!(
                "The dashboard is for admins: this token is project {}'s, without the admin role.",
                ctx.project_id
            ),
        ),
        Err(error) if error.status == StatusCode::UNAUTHORIZED => {
            refused(StatusCode::UNAUTHORIZED, "This token is not valid.")
        }
        Err(error) => refused(error.status, &error.message),
    }
}

#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    pub(crate) csrf: String,
}

pub(crate) async fn logout(headers: HeaderMap, Form(form): Form<LogoutForm>) -> Response {
    let token = session_token(&headers).unwrap_or_default();
    if form.csrf != csrf_for(&token) {
        return forbidden_form();
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "lbaas_session=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

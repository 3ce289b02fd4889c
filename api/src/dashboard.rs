//! The operator dashboard under `/dashboard`: server-rendered pages (askama templates, every
//! value escaped) of the devices and load balancers, the drivers with their lifecycle buttons,
//! recent placements with their explanations, and the audit tail with its verification. One
//! stylesheet and one small script (a refresh every five seconds) are served from the binary:
//! no external asset, and a content security policy that allows nothing else.
//!
//! Admins only. A browser cannot send `X-Auth-Token`, so the login form takes the token and
//! keeps it in an HttpOnly, SameSite=Strict cookie scoped to `/dashboard`; each page checks it
//! as the API checks the header (a revoked Keystone token stops working here too). Under
//! noauth every visitor is the admin, as on the API. Every form that changes something
//! carries a token derived from the session and a secret of this process, and a request from
//! another origin is refused, so no other site can press the buttons for an operator.

use std::sync::{Arc, LazyLock};

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use lbaas_core::audit::{Filter, Record};
use lbaas_core::views::{VersionState, VersionView};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::drivers::actor;
use crate::{Api, ApiError, Auth, Context};
use lbaas_control::drivers::Step;

const COOKIE: &str = "lbaas_session";
/// Rows of a long table shown; the rest are counted.
const MAX_ROWS: usize = 200;
const AUDIT_TAIL: u64 = 100;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/dashboard", get(overview))
        .route("/dashboard/", get(overview))
        .route("/dashboard/drivers", get(drivers))
        .route("/dashboard/placements", get(placements))
        .route("/dashboard/audit", get(audit))
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/drivers/{name}/{action}", post(driver_action))
        .route("/dashboard/assets/dashboard.css", get(stylesheet))
        .route("/dashboard/assets/dashboard.js", get(script))
}

/// Headers of every page: nothing but this host's own assets runs or loads.
fn page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (CACHE_CONTROL, "no-store"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            // Nothing leaves for other sites; `no-referrer` would also make the browser send
            // `Origin: null` with the page's own forms, which the origin check refuses.
            (HeaderName::from_static("referrer-policy"), "same-origin"),
        ],
        html,
    )
        .into_response()
}

fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => page(status, html),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

async fn stylesheet() -> Response {
    asset("text/css", include_str!("../assets/dashboard.css"))
}

async fn script() -> Response {
    asset("text/javascript", include_str!("../assets/dashboard.js"))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// Who is looking, from the session cookie.
struct Viewer {
    ctx: Context,
    /// The session's token (none under noauth).
    token: Option<String>,
}

impl Viewer {
    fn csrf(&self) -> String {
        csrf_for(self.token.as_deref().unwrap_or(""))
    }

    fn who(&self) -> String {
        if self.ctx.noauth {
            "noauth admin".to_owned()
        } else {
            format!("admin of project {}", self.ctx.project_id)
        }
    }
}

/// The form token of a session: bound to its token and to this process.
fn csrf_for(token: &str) -> String {
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

fn session_token(headers: &HeaderMap) -> Option<String> {
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
async fn viewer(api: &Api, headers: &HeaderMap) -> Result<Viewer, Response> {
    if matches!(api.auth, Auth::None) {
        let ctx = api
            .auth
            .token_context("noauth")
            .await
            .map_err(IntoResponse::into_response)?;
        return Ok(Viewer { ctx, token: None });
    }
    let Some(token) = session_token(headers) else {
        return Err(Redirect::to("/dashboard/login").into_response());
    };
    match api.auth.token_context(&token).await {
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
fn is_genuine_form(viewer: &Viewer, headers: &HeaderMap, csrf: &str) -> bool {
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

const FORGED_FORM: &str =
    "This form did not come from this dashboard; reload the page and try again.";

fn forbidden_form() -> Response {
    ApiError::new(StatusCode::FORBIDDEN, FORGED_FORM).into_response()
}

/// What every page shows around its content.
struct Chrome {
    page: &'static str,
    who: String,
    csrf: String,
    can_log_out: bool,
    refresh: bool,
    notice: Option<String>,
    error: Option<String>,
    now: String,
}

impl Chrome {
    fn new(page: &'static str, viewer: &Viewer) -> Self {
        Self {
            page,
            who: viewer.who(),
            csrf: viewer.csrf(),
            can_log_out: viewer.token.is_some(),
            refresh: true,
            notice: None,
            error: None,
            now: lbaas_core::ids::now(),
        }
    }
}

/// A status's name as the API shows it.
fn status_name(status: &impl serde::Serialize) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "UNKNOWN".to_owned(),
    }
}

fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// At most `max` characters, with an ellipsis when cut.
fn elide(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

// ---- Overview ----

struct StatusCount {
    status: String,
    count: usize,
}

struct LbRow {
    id: String,
    name: String,
    project: String,
    provider: String,
    provisioning: String,
    operating: String,
    device: String,
    fault: String,
}

struct DeviceRow {
    id: String,
    name: String,
    driver: String,
    kind: String,
    health: &'static str,
    health_detail: String,
    load: usize,
    capacity: u32,
    host: String,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct Overview {
    chrome: Chrome,
    lb_counts: Vec<StatusCount>,
    loadbalancers: Vec<LbRow>,
    lbs_unlisted: usize,
    devices: Vec<DeviceRow>,
}

async fn overview(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let viewer = match viewer(&api, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let read = api
        .read(|plane, snapshot| {
            let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
            let mut lbs: Vec<LbRow> = snapshot
                .loadbalancers
                .iter()
                .map(|lb| {
                    let provisioning = status_name(&lb.common.provisioning_status);
                    *counts.entry(provisioning.clone()).or_default() += 1;
                    LbRow {
                        id: lb.common.id.clone(),
                        name: lb.common.name.clone(),
                        project: lb.common.project_id.clone(),
                        provider: lb.provider.clone(),
                        provisioning,
                        operating: status_name(&lb.common.operating_status),
                        device: or_dash(lb.device_id.as_deref()),
                        fault: lb.fault.clone().unwrap_or_default(),
                    }
                })
                .collect();
            // Faults first, then by name.
            lbs.sort_by(|a, b| {
                (a.fault.is_empty(), &a.name, &a.id).cmp(&(b.fault.is_empty(), &b.name, &b.id))
            });
            let unlisted = lbs.len().saturating_sub(MAX_ROWS);
            lbs.truncate(MAX_ROWS);
            let devices = snapshot
                .devices
                .iter()
                .map(|device| {
                    let (health, detail) = if !device.enabled {
                        ("disabled", "taken out of service by an operator".to_owned())
                    } else {
                        match plane.device_health.of(&device.id) {
                            None => ("unknown", "not polled by this host".to_owned()),
                            Some(None) => ("up", "answered the last status poll".to_owned()),
                            Some(Some(why)) => ("unreachable", why),
                        }
                    };
                    DeviceRow {
                        id: device.id.clone(),
                        name: device.name.clone(),
                        driver: device.driver.clone(),
                        kind: status_name(&device.kind).to_lowercase(),
                        health,
                        health_detail: detail,
                        load: snapshot.load_of(&device.id),
                        capacity: device.capacity,
                        host: or_dash(device.host.as_deref()),
                    }
                })
                .collect();
            let counts = counts
                .into_iter()
                .map(|(status, count)| StatusCount { status, count })
                .collect();
            Ok::<_, ApiError>((counts, lbs, unlisted, devices))
        })
        .await;
    let (lb_counts, loadbalancers, lbs_unlisted, devices) = match read {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    render(
        StatusCode::OK,
        &Overview {
            chrome: Chrome::new("overview", &viewer),
            lb_counts,
            loadbalancers,
            lbs_unlisted,
            devices,
        },
    )
}

// ---- Drivers ----

struct VersionRow {
    version: String,
    sha256: String,
    short_sha: String,
    state: String,
    uploaded_at: String,
    signed_by: String,
    can_activate: bool,
}

struct DriverRow {
    name: String,
    active: String,
    vendor: String,
    contract: String,
    canary: String,
    draining: bool,
    quarantine: Option<String>,
    can_roll_back: bool,
    rollback_to: String,
    versions: Vec<VersionRow>,
}

#[derive(Template)]
#[template(path = "dashboard/drivers.html")]
struct Drivers {
    chrome: Chrome,
    drivers: Vec<DriverRow>,
}

fn driver_rows(api: &Api) -> Vec<DriverRow> {
    api.drivers
        .records()
        .iter()
        .map(|record| {
            let loaded = api.drivers.get(&record.name);
            let versions: Vec<VersionView> = record
                .versions
                .iter()
                .map(|v| VersionView::of(v, record))
                .collect();
            let version_of = |sha: &str| {
                versions
                    .iter()
                    .find(|v| v.sha256 == sha)
                    .map_or_else(|| sha.chars().take(12).collect(), |v| v.version.clone())
            };
            let rollback_to = versions
                .iter()
                .find(|v| v.rollback_target)
                .map(|v| v.version.clone());
            DriverRow {
                name: record.name.clone(),
                active: record
                    .active
                    .as_deref()
                    .map_or_else(|| "none active".to_owned(), version_of),
                vendor: loaded
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |d| d.capabilities().vendor.clone()),
                contract: loaded
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |d| d.contract().to_string()),
                canary: record.canary.as_ref().map_or_else(
                    || "none".to_owned(),
                    |c| {
                        format!(
                            "{} takes {}% of new placements",
                            version_of(&c.sha256),
                            c.percent
                        )
                    },
                ),
                draining: record.draining,
                quarantine: loaded.as_ref().and_then(|d| d.quarantined()),
                can_roll_back: rollback_to.is_some(),
                rollback_to: rollback_to.unwrap_or_default(),
                versions: versions
                    .iter()
                    .map(|v| VersionRow {
                        version: v.version.clone(),
                        sha256: v.sha256.clone(),
                        short_sha: v.sha256.chars().take(12).collect(),
                        state: status_name(&v.state).to_lowercase(),
                        uploaded_at: v.uploaded_at.clone(),
                        signed_by: v
                            .signed_by
                            .as_deref()
                            .map_or_else(|| "unsigned".to_owned(), |key| elide(key, 16)),
                        can_activate: matches!(v.state, VersionState::Inactive),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn drivers_page(
    api: &Api,
    viewer: &Viewer,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    render(
        status,
        &Drivers {
            chrome: Chrome {
                // What a button did stays on the page until the operator moves on.
                refresh: notice.is_none() && error.is_none(),
                notice,
                error,
                ..Chrome::new("drivers", viewer)
            },
            drivers: driver_rows(api),
        },
    )
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
    driver: Option<String>,
}

async fn drivers(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(done): Query<Done>,
) -> Response {
    let viewer = match viewer(&api, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    // What the last button did, in the dashboard's own words (never text from the link).
    let notice = match (done.done.as_deref(), done.driver.as_deref()) {
        (Some(action), Some(name)) if api.drivers.record(name).is_some() => {
            let what = match action {
                "rollback" => "rolled back",
                "activate" => "activated a version of",
                "release" => "released the quarantine of",
                _ => "changed",
            };
            Some(format!("Done: {what} driver {name}."))
        }
        _ => None,
    };
    drivers_page(&api, &viewer, StatusCode::OK, notice, None)
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    version: Option<String>,
}

async fn driver_action(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let viewer = match viewer(&api, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    if !is_genuine_form(&viewer, &headers, &form.csrf) {
        return drivers_page(
            &api,
            &viewer,
            StatusCode::FORBIDDEN,
            None,
            Some(FORGED_FORM.to_owned()),
        );
    }
    let result = match action.as_str() {
        "rollback" => api
            .plane
            .driver_step(&name, Step::Rollback, &actor(&viewer.ctx))
            .await
            .map(drop)
            .map_err(ApiError::from),
        "activate" => match form.version {
            Some(version) => api
                .plane
                .driver_step(&name, Step::Activate(version), &actor(&viewer.ctx))
                .await
                .map(drop)
                .map_err(ApiError::from),
            None => Err(ApiError::bad_request("Name the version to activate.")),
        },
        "release" => match api.drivers.get(&name) {
            Some(driver) if driver.release(&actor(&viewer.ctx)) => Ok(()),
            Some(_) => Err(ApiError::conflict(format!(
                "Driver {name} is not quarantined."
            ))),
            None => Err(ApiError::not_found("Driver", &name)),
        },
        _ => Err(ApiError::not_found("Dashboard action", &action)),
    };
    match result {
        Ok(()) => Redirect::to(&format!(
            "/dashboard/drivers?done={action}&driver={}",
            form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
        ))
        .into_response(),
        Err(error) => drivers_page(&api, &viewer, error.status, None, Some(error.message)),
    }
}

// ---- Placements ----

struct PlacementRow {
    loadbalancer_id: String,
    loadbalancer: String,
    decided_at: String,
    decision: String,
    by: String,
    candidates: Vec<String>,
    unlisted: String,
}

#[derive(Template)]
#[template(path = "dashboard/placements.html")]
struct Placements {
    chrome: Chrome,
    placements: Vec<PlacementRow>,
}

async fn placements(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let viewer = match viewer(&api, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let read = api
        .read(|_, snapshot| {
            let mut recent: Vec<_> = snapshot.placements.iter().collect();
            recent.sort_by(|a, b| b.decided_at.cmp(&a.decided_at));
            recent.truncate(MAX_ROWS);
            Ok::<_, ApiError>(
                recent
                    .into_iter()
                    .map(|p| {
                        let explanation = &p.explanation;
                        PlacementRow {
                            loadbalancer_id: p.loadbalancer_id.clone(),
                            loadbalancer: snapshot
                                .loadbalancer_by_id(&p.loadbalancer_id)
                                .map_or_else(
                                    || "(deleted)".to_owned(),
                                    |lb| lb.common.name.clone(),
                                ),
                            decided_at: p.decided_at.clone(),
                            decision: explanation.outcome.describe(p.spawned_device.as_deref()),
                            by: p.placed_by.as_ref().map_or_else(
                                || "-".to_owned(),
                                |by| format!("{} {}", by.driver, by.version),
                            ),
                            candidates: explanation
                                .candidates
                                .iter()
                                .map(|c| {
                                    let verdict = match (&c.filtered_by, &c.driver_verdict) {
                                        (Some(filter), _) => format!("filtered: {filter}"),
                                        (None, Some(lbaas_core::placement::Verdict::Score(s))) => {
                                            format!("score {s}")
                                        }
                                        (
                                            None,
                                            Some(lbaas_core::placement::Verdict::Reject(why)),
                                        ) => {
                                            format!("rejected: {}", elide(why, 120))
                                        }
                                        (None, None) => "not offered".to_owned(),
                                    };
                                    format!("{} ({}): {verdict}", c.device_id, c.driver)
                                })
                                .collect(),
                            unlisted: explanation
                                .unlisted
                                .iter()
                                .map(|(reason, count)| format!("{count} {reason}"))
                                .collect::<Vec<_>>()
                                .join("; "),
                        }
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await;
    let placements = match read {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    render(
        StatusCode::OK,
        &Placements {
            chrome: Chrome::new("placements", &viewer),
            placements,
        },
    )
}

// ---- Audit ----

struct AuditRow {
    seq: u64,
    at: String,
    driver: String,
    version: String,
    function: String,
    outcome: &'static str,
    target: String,
    target_short: String,
    detail: String,
    detail_short: String,
}

impl From<Record> for AuditRow {
    fn from(record: Record) -> Self {
        let target = record.event.target.unwrap_or_default();
        let detail = record.event.detail.unwrap_or_default();
        Self {
            seq: record.seq,
            at: record.at,
            driver: record.event.driver,
            version: record.event.version,
            function: record.event.function,
            outcome: record.event.outcome.as_str(),
            target_short: elide(&target, 80),
            target,
            detail_short: elide(&detail, 120),
            detail,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
struct Audit {
    chrome: Chrome,
    intact: bool,
    verification: String,
    records: Vec<AuditRow>,
}

async fn audit(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let viewer = match viewer(&api, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let Some(log) = api.audit.clone() else {
        return ApiError::new(StatusCode::NOT_FOUND, "This host keeps no audit log.")
            .into_response();
    };
    let found = api
        .blocking(move || {
            let verification = log.verify();
            let filter = Filter {
                after: verification.records.checked_sub(AUDIT_TAIL + 1),
                limit: AUDIT_TAIL as usize,
                ..Filter::default()
            };
            let mut records = log.query(&filter);
            records.reverse();
            (verification, records)
        })
        .await;
    let (verification, records) = match found {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    render(
        StatusCode::OK,
        &Audit {
            // Verifying walks the whole chain: the page is verified when asked for, not
            // every few seconds for as long as it stays open.
            chrome: Chrome {
                refresh: false,
                ..Chrome::new("audit", &viewer)
            },
            intact: verification.intact(),
            verification: match &verification.broken {
                None => format!(
                    "Chain intact: {} records verified{}.",
                    verification.records,
                    verification
                        .head
                        .as_deref()
                        .map(|head| format!(", head {}", elide(head, 16)))
                        .unwrap_or_default()
                ),
                Some(broken) => format!("Chain BROKEN: {broken}"),
            },
            records: records.into_iter().map(AuditRow::from).collect(),
        },
    )
}

// ---- Sessions ----

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct Login {
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/refused.html")]
struct Refused {
    message: String,
    csrf: String,
}

async fn login_form(State(api): State<Arc<Api>>) -> Response {
    if matches!(api.auth, Auth::None) {
        return Redirect::to("/dashboard").into_response();
    }
    render(StatusCode::OK, &Login { error: None })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// The longest token taken (as the API takes in its header).
const MAX_TOKEN: usize = 8192;

async fn login(State(api): State<Arc<Api>>, Form(form): Form<LoginForm>) -> Response {
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
    match api.auth.token_context(token).await {
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
struct LogoutForm {
    csrf: String,
}

async fn logout(headers: HeaderMap, Form(form): Form<LogoutForm>) -> Response {
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

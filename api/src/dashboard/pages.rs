//! The pages: the overview (load balancers and devices), the drivers with their lifecycle
//! buttons, recent placements with their explanations, and the audit tail.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use lbaas_core::audit::{Filter, Record};
use lbaas_core::views::{VersionState, VersionView};
use serde::Deserialize;

use super::html::render;
use super::session::{FORGED_FORM, Viewer, is_genuine_form, viewer};
use crate::drivers::actor;
use crate::{Api, ApiError};
use lbaas_control::drivers::Step;

/// Rows of a long table shown; the rest are counted.
pub(crate) const MAX_ROWS: usize = 200;
pub(crate) const AUDIT_TAIL: u64 = 100;
/// What every page shows around its content.
pub(crate) struct Chrome {
    pub(crate) page: &'static str,
    pub(crate) who: String,
    pub(crate) csrf: String,
    pub(crate) can_log_out: bool,
    pub(crate) refresh: bool,
    pub(crate) notice: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) now: String,
}

impl Chrome {
    pub(crate) fn new(page: &'static str, viewer: &Viewer) -> Self {
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
pub(crate) fn status_name(status: &impl serde::Serialize) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "UNKNOWN".to_owned(),
    }
}

pub(crate) fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// At most `max` characters, with an ellipsis when cut.
pub(crate) fn elide(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

// ---- Overview ----

pub(crate) struct StatusCount {
    pub(crate) status: String,
    pub(crate) count: usize,
}

pub(crate) struct LbRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) project: String,
    pub(crate) provider: String,
    pub(crate) provisioning: String,
    pub(crate) operating: String,
    pub(crate) device: String,
    pub(crate) fault: String,
}

pub(crate) struct DeviceRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) driver: String,
    pub(crate) kind: String,
    pub(crate) health: &'static str,
    pub(crate) health_detail: String,
    pub(crate) load: usize,
    pub(crate) capacity: u32,
    pub(crate) host: String,
}

/// A TLS listener's certificates, by when the first of them expires.
pub(crate) struct CertificateRow {
    pub(crate) loadbalancer: String,
    pub(crate) listener: String,
    /// RFC 3339, to the second.
    pub(crate) expires: String,
    pub(crate) days_left: i64,
    /// `expired`, `soon` (within 30 days) or `ok`.
    pub(crate) state: &'static str,
}

/// Days before expiry from which the dashboard marks a certificate.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// The rows for `expiries` as seen at `now` (seconds since the Unix epoch).
fn certificate_rows(
    expiries: Vec<lbaas_control::octavia::certificates::Expiry>,
    now: i64,
) -> Vec<CertificateRow> {
    let mut rows: Vec<CertificateRow> = expiries
        .into_iter()
        .map(|expiry| {
            let days_left = (expiry.not_after - now).div_euclid(86_400);
            let at = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(expiry.not_after.max(0) as u64);
            CertificateRow {
                loadbalancer: expiry.loadbalancer_id,
                listener: expiry.listener_id,
                expires: humantime::format_rfc3339_seconds(at).to_string(),
                days_left,
                state: if expiry.not_after <= now {
                    "expired"
                } else if days_left < EXPIRY_WARNING_DAYS {
                    "soon"
                } else {
                    "ok"
                },
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.expires, &a.listener).cmp(&(&b.expires, &b.listener)));
    rows.truncate(MAX_ROWS);
    rows
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
pub(crate) struct Overview {
    pub(crate) chrome: Chrome,
    pub(crate) lb_counts: Vec<StatusCount>,
    pub(crate) loadbalancers: Vec<LbRow>,
    pub(crate) lbs_unlisted: usize,
    pub(crate) devices: Vec<DeviceRow>,
    /// TLS listeners, the soonest to expire first.
    pub(crate) certificates: Vec<CertificateRow>,
}

pub(crate) async fn overview(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
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
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let certificates = certificate_rows(plane.certificate_expiries(snapshot)?, now);
            Ok::<_, ApiError>((counts, lbs, unlisted, devices, certificates))
        })
        .await;
    let (lb_counts, loadbalancers, lbs_unlisted, devices, certificates) = match read {
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
            certificates,
        },
    )
}

// ---- Drivers ----

pub(crate) struct VersionRow {
    pub(crate) version: String,
    sha256: String,
    pub(crate) short_sha: String,
    pub(crate) state: String,
    pub(crate) uploaded_at: String,
    pub(crate) signed_by: String,
    pub(crate) can_activate: bool,
}

pub(crate) struct DriverRow {
    pub(crate) name: String,
    pub(crate) active: String,
    pub(crate) vendor: String,
    pub(crate) contract: String,
    pub(crate) canary: String,
    pub(crate) draining: bool,
    pub(crate) quarantine: Option<String>,
    pub(crate) can_roll_back: bool,
    pub(crate) rollback_to: String,
    pub(crate) versions: Vec<VersionRow>,
}

#[derive(Template)]
#[template(path = "dashboard/drivers.html")]
pub(crate) struct Drivers {
    pub(crate) chrome: Chrome,
    pub(crate) drivers: Vec<DriverRow>,
}

pub(crate) fn driver_rows(api: &Api) -> Vec<DriverRow> {
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

pub(crate) fn drivers_page(
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
pub(crate) struct Done {
    pub(crate) done: Option<String>,
    pub(crate) driver: Option<String>,
}

pub(crate) async fn drivers(
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
pub(crate) struct ActionForm {
    pub(crate) csrf: String,
    pub(crate) version: Option<String>,
}

pub(crate) async fn driver_action(
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

pub(crate) struct PlacementRow {
    pub(crate) loadbalancer_id: String,
    pub(crate) loadbalancer: String,
    pub(crate) decided_at: String,
    pub(crate) decision: String,
    pub(crate) by: String,
    pub(crate) candidates: Vec<String>,
    pub(crate) unlisted: String,
}

#[derive(Template)]
#[template(path = "dashboard/placements.html")]
pub(crate) struct Placements {
    pub(crate) chrome: Chrome,
    pub(crate) placements: Vec<PlacementRow>,
}

pub(crate) async fn placements(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
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

pub(crate) struct AuditRow {
    pub(crate) seq: u64,
    pub(crate) at: String,
    pub(crate) driver: String,
    pub(crate) version: String,
    pub(crate) function: String,
    pub(crate) outcome: &'static str,
    pub(crate) target: String,
    pub(crate) target_short: String,
    pub(crate) detail: String,
    pub(crate) detail_short: String,
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
pub(crate) struct Audit {
    pub(crate) chrome: Chrome,
    pub(crate) intact: bool,
    pub(crate) verification: String,
    pub(crate) records: Vec<AuditRow>,
}

pub(crate) async fn audit(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
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

#[cfg(test)]
mod tests {
    use super::certificate_rows;
    use lbaas_control::octavia::certificates::Expiry;

    const DAY: i64 = 86_400;

    fn expiry(listener: &str, not_after: i64) -> Expiry {
        Expiry {
            loadbalancer_id: "lb".to_owned(),
            listener_id: listener.to_owned(),
            not_after,
        }
    }

    #[test]
    fn certificates_are_marked_from_under_thirty_days_left_soonest_first() {
        let now = 1_800_000_000;
        let rows = certificate_rows(
            vec![
                expiry("fresh", now + 30 * DAY),
                expiry("a-second-less", now + 30 * DAY - 1),
                expiry("gone", now),
                expiry("long-gone", now - 2 * DAY),
            ],
            now,
        );
        let seen: Vec<(&str, i64, &str)> = rows
            .iter()
            .map(|row| (row.listener.as_str(), row.days_left, row.state))
            .collect();
        assert_eq!(
            seen,
            [
                ("long-gone", -2, "expired"),
                ("gone", 0, "expired"),
                ("a-second-less", 29, "soon"),
                ("fresh", 30, "ok"),
            ]
        );
        assert_eq!(rows[3].expires, "2027-02-14T08:00:00Z");
    }
}

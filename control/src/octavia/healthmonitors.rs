//! Health monitors: how a pool's members are checked, and the timings and HTTP fields
//! Octavia allows each kind of check.

use lbaas_core::ids::now;
use serde::Deserialize;

use super::Caller;
use super::fields::{self, Decided, Int};
use super::status::{self, Step};
use super::tree::{
    child_change, delete_child, ensure_mutable, ensure_writable, new_common, touch_parent,
};
use crate::model::{HealthMonitor, HttpVersion, MonitorType, Pool};
use crate::plane::Change;
use crate::snapshot::Snapshot;
use crate::store::Batch;
use crate::{ControlPlane, Error};

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthMonitorCreate {
    pool_id: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: MonitorType,
    #[serde_as(as = "Int")]
    delay: i64,
    #[serde_as(as = "Int")]
    timeout: i64,
    #[serde_as(as = "Int")]
    max_retries: i64,
    #[serde_as(as = "Option<Int>")]
    max_retries_down: Option<i64>,
    http_method: Option<String>,
    url_path: Option<String>,
    expected_codes: Option<String>,
    admin_state_up: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
    http_version: Option<serde_json::Value>,
    domain_name: Option<String>,
}

/// The numbers of a monitor, checked as Octavia checks them.
struct Timing {
    delay: u32,
    timeout: u32,
    max_retries: u32,
    max_retries_down: u32,
}

fn timing(delay: i64, timeout: i64, max_retries: i64, max_retries_down: i64) -> Decided<Timing> {
    let range = |field: &str, value: i64, low: i64, high: i64| {
        if (low..=high).contains(&value) {
            Ok(value as u32)
        } else {
            Err(Error::invalid(format!(
                "{field} {value} is out of range {low}-{high}"
            )))
        }
    };
    let timing = Timing {
        delay: range("delay", delay, 0, 2_147_483_647)?,
        timeout: range("timeout", timeout, 0, 2_147_483_647)?,
        max_retries: range("max_retries", max_retries, 1, 10)?,
        max_retries_down: range("max_retries_down", max_retries_down, 1, 10)?,
    };
    // Octavia accepts a timeout longer than the delay (a check may outlast the interval).
    Ok(timing)
}

fn http_fields(
    kind: MonitorType,
    method: Option<String>,
    path: Option<String>,
    codes: Option<String>,
) -> Decided<(Option<String>, Option<String>, Option<String>)> {
    if !matches!(kind, MonitorType::Http | MonitorType::Https) {
        if method.is_some() || path.is_some() || codes.is_some() {
            return Err(Error::invalid(
                "http_method, url_path and expected_codes only apply to HTTP and HTTPS monitors",
            ));
        }
        return Ok((None, None, None));
    }
    let method = method.unwrap_or_else(|| "GET".into());
    const METHODS: [&str; 9] = [
        "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
    ];
    if !METHODS.contains(&method.as_str()) {
        return Err(Error::invalid(format!(
            "http_method `{method}` is not an HTTP method"
        )));
    }
    let path = path.unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) || path.len() > 2048 {
        return Err(Error::invalid(format!(
            "url_path `{}` must start with '/' and hold no spaces or control characters",
            path.escape_debug()
        )));
    }
    let codes = codes.unwrap_or_else(|| "200".into());
    let valid_code =
        |c: &str| c.len() == 3 && c.parse::<u16>().is_ok_and(|n| (100..=599).contains(&n));
    let valid = codes.split(',').all(|part| match part.split_once('-') {
        Some((low, high)) => valid_code(low) && valid_code(high) && low <= high,
        None => valid_code(part),
    });
    if !valid {
        return Err(Error::invalid(format!(
            "expected_codes `{codes}` must look like 200, 200,202 or 200-204"
        )));
    }
    Ok((Some(method), Some(path), Some(codes)))
}

/// Octavia's `http_version`: `1.0` or `1.1`, as a number (or its text).
fn http_version(value: &serde_json::Value) -> Decided<HttpVersion> {
    use serde_json::Value;
    let number = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.parse::<f64>().ok(),
        _ => None,
    };
    match number {
        Some(1.0) => Ok(HttpVersion::Http10),
        Some(1.1) => Ok(HttpVersion::Http11),
        _ => Err(Error::field(
            "http_version",
            format!("Value: '{value}'. Value should be one of: 1.0, 1.1"),
        )),
    }
}

/// Octavia's `domain_name`: a host name (labels of letters, digits, `-` and a leading `_`, at
/// most 63 characters each and 253 in all, an optional final dot).
fn domain_name(name: String) -> Decided<String> {
    let bare = name.strip_suffix('.').unwrap_or(&name);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
            && !label[1..].contains('_')
    };
    if !bare.is_empty() && bare.len() <= 253 && bare.split('.').all(label_ok) {
        Ok(name)
    } else {
        Err(Error::field(
            "domain_name",
            format!(
                "Value: '{}'. Value should be a host name (letters, digits and '-' in labels of \
                 at most 63 characters, at most 253 in all)",
                name.escape_debug()
            ),
        ))
    }
}

/// A monitor's HTTP version and `Host` header: a domain needs HTTP/1.1, as Octavia requires.
fn http_check_options(
    version: Option<HttpVersion>,
    domain: Option<String>,
) -> Decided<(Option<HttpVersion>, Option<String>)> {
    match (version, &domain) {
        (None, Some(_)) => Err(Error::invalid(
            "'http_version' must be specified when 'domain_name' is provided.",
        )),
        (Some(HttpVersion::Http10), Some(_)) => Err(Error::invalid(
            "http_version 1.0 is not a valid option for health monitors HTTP 1.1 domain name \
             health check",
        )),
        _ => Ok((version, domain)),
    }
}

/// Checks and builds the monitor of `pool`, of a load balancer of `provider`: Octavia's rules,
/// then the provider's support of its type (a `501`, as Octavia answers, rather than a load
/// balancer in `ERROR` when the driver cannot render it).
pub fn build(
    plane: &ControlPlane,
    provider: &str,
    pool: &Pool,
    body: HealthMonitorCreate,
) -> Decided<HealthMonitor> {
    fields::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &pool.common.project_id,
    )?;
    if !fields::monitor_compatible(pool.protocol, body.kind) {
        return Err(Error::invalid(format!(
            "The health monitor type is not valid for a {} pool.",
            pool.protocol.name()
        )));
    }
    plane.provider_renders_monitor(provider, body.kind)?;
    let timing = timing(
        body.delay,
        body.timeout,
        body.max_retries,
        body.max_retries_down.unwrap_or(3),
    )?;
    let (http_method, url_path, expected_codes) = http_fields(
        body.kind,
        body.http_method,
        body.url_path,
        body.expected_codes,
    )?;
    let version = body
        .http_version
        .filter(|v| !v.is_null())
        .map(|v| http_version(&v))
        .transpose()?;
    let domain = body.domain_name.map(domain_name).transpose()?;
    let (http_version, domain_name) = http_check_options(version, domain)?;
    if http_version.is_some() || domain_name.is_some() {
        plane.provider_sends_http_check_options(provider)?;
    }
    Ok(HealthMonitor {
        common: new_common(
            &pool.common.project_id,
            body.name,
            None,
            body.admin_state_up,
            body.tags,
        )?,
        loadbalancer_id: pool.loadbalancer_id.clone(),
        pool_id: pool.common.id.clone(),
        kind: body.kind,
        delay: timing.delay,
        timeout: timing.timeout,
        max_retries: timing.max_retries,
        max_retries_down: timing.max_retries_down,
        http_method,
        url_path,
        expected_codes,
        http_version,
        domain_name,
    })
}

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthMonitorUpdate {
    name: Option<String>,
    #[serde_as(as = "Option<Int>")]
    delay: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    timeout: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    max_retries: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    max_retries_down: Option<i64>,
    http_method: Option<String>,
    url_path: Option<String>,
    expected_codes: Option<String>,
    admin_state_up: Option<bool>,
    tags: Option<Vec<String>>,
    #[serde(default, with = "::serde_with::rust::double_option")]
    http_version: Option<Option<serde_json::Value>>,
    #[serde(default, with = "::serde_with::rust::double_option")]
    domain_name: Option<Option<String>>,
}

/// Creates the health monitor of a pool the caller may change.
pub fn create(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    mut body: HealthMonitorCreate,
) -> Decided<Change<HealthMonitor>> {
    let pool_id = fields::required("pool_id", body.pool_id.take())?;
    let pool = fields::referenced(snapshot.pool(caller, &pool_id), "Pool", &pool_id)?;
    ensure_writable(caller, &pool.common.project_id)?;
    ensure_mutable(snapshot.parent(&pool.loadbalancer_id)?)?;
    if snapshot.healthmonitor_of(&pool_id).is_some() {
        return Err(Error::conflict(format!(
            "Pool {pool_id} already has a health monitor."
        )));
    }
    let provider = &snapshot.parent(&pool.loadbalancer_id)?.provider;
    let hm = build(plane, provider, pool, body)?;
    let mut pool = pool.clone();
    pool.healthmonitor_id = Some(hm.common.id.clone());
    let mut batch = Batch::new();
    touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
    batch.put(&hm).put(&pool);
    let lb = pool.loadbalancer_id.clone();
    super::quotas::enforce(snapshot, &hm.common.project_id, &batch)?;
    Ok(Change::new(batch, hm).with_job(&lb))
}

/// Changes a health monitor the caller may write.
pub fn update(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    id: &str,
    body: HealthMonitorUpdate,
) -> Decided<Change<HealthMonitor>> {
    let current = snapshot.healthmonitor(caller, id)?;
    ensure_writable(caller, &current.common.project_id)?;
    let mut hm = current.clone();
    // Absent: kept; null: cleared.
    let version = match body.http_version {
        None => hm.http_version,
        Some(value) => value
            .filter(|v| !v.is_null())
            .map(|v| http_version(&v))
            .transpose()?,
    };
    let domain = match body.domain_name {
        None => hm.domain_name.clone(),
        Some(name) => name.map(domain_name).transpose()?,
    };
    (hm.http_version, hm.domain_name) = http_check_options(version, domain)?;
    let asked = (hm.http_version, &hm.domain_name) != (current.http_version, &current.domain_name);
    if asked && (hm.http_version.is_some() || hm.domain_name.is_some()) {
        plane.provider_sends_http_check_options(&snapshot.parent(&hm.loadbalancer_id)?.provider)?;
    }
    let t = timing(
        body.delay.unwrap_or(i64::from(hm.delay)),
        body.timeout.unwrap_or(i64::from(hm.timeout)),
        body.max_retries.unwrap_or(i64::from(hm.max_retries)),
        body.max_retries_down
            .unwrap_or(i64::from(hm.max_retries_down)),
    )?;
    (hm.delay, hm.timeout, hm.max_retries, hm.max_retries_down) =
        (t.delay, t.timeout, t.max_retries, t.max_retries_down);
    if body.http_method.is_some() || body.url_path.is_some() || body.expected_codes.is_some() {
        let (method, path, codes) = http_fields(
            hm.kind,
            body.http_method.or(hm.http_method.clone()),
            body.url_path.or(hm.url_path.clone()),
            body.expected_codes.or(hm.expected_codes.clone()),
        )?;
        (hm.http_method, hm.url_path, hm.expected_codes) = (method, path, codes);
    }
    if let Some(name) = body.name {
        hm.common.name = fields::text("name", Some(name), 255)?;
    }
    if let Some(up) = body.admin_state_up {
        hm.common.admin_state_up = up;
    }
    if let Some(tags) = body.tags {
        hm.common.tags = tags;
    }
    status::step(&mut hm.common, Step::Update, &now());
    let lb_id = hm.loadbalancer_id.clone();
    child_change(snapshot, &lb_id, &hm, hm.clone())
}

/// Deletes a health monitor the caller may write.
pub fn delete(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Change<()>> {
    delete_child(snapshot, caller, id, Snapshot::healthmonitor)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn http_version_is_one_of_octavias_numbers() {
        assert_eq!(http_version(&json!(1.1)).ok(), Some(HttpVersion::Http11));
        assert_eq!(http_version(&json!(1)).ok(), Some(HttpVersion::Http10));
        assert_eq!(http_version(&json!("1.0")).ok(), Some(HttpVersion::Http10));
        for bad in [json!(2.0), json!("1.1x"), json!(true), json!([1.1])] {
            let error = http_version(&bad).expect_err("refused").to_string();
            assert!(error.contains("1.0, 1.1"), "{bad}: {error}");
        }
    }

    #[test]
    fn domain_names_follow_octavias_pattern() {
        for good in [
            "example.com",
            "www.example.com.",
            "_srv.example",
            "a-b.c1",
            "x",
        ] {
            assert!(domain_name(good.into()).is_ok(), "{good}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = vec!["abcdefghi"; 26].join(".");
        for bad in [
            "",
            ".",
            "-a.com",
            "a-.com",
            "a_b.com",
            "a..com",
            "a b.com",
            "a.com\r\nX-Evil: 1",
            "a.com;b",
            &long_label,
            &long_name,
        ] {
            assert!(domain_name(bad.into()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_domain_needs_http_1_1() {
        let domain = || Some("example.com".to_owned());
        assert!(http_check_options(None, domain()).is_err());
        assert!(http_check_options(Some(HttpVersion::Http10), domain()).is_err());
        assert!(http_check_options(Some(HttpVersion::Http11), domain()).is_ok());
        assert!(http_check_options(Some(HttpVersion::Http10), None).is_ok());
        assert!(http_check_options(None, None).is_ok());
    }
}

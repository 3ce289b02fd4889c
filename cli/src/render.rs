//! Tables and lines for people: the views rendered to fit the terminal.

use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use lbaas_records::audit::Record;
use lbaas_records::placement::Verdict;
use lbaas_records::views::{
    DeviceList, DriverAnswer, DriverList, HostList, PlacementAnswer, SecretList, SecretView,
};
use serde_json::Value;

use crate::client::{Result, typed};

/// A path segment, percent-encoded.
pub(crate) fn segment(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The first 12 characters of a digest.
pub(crate) fn short(digest: &str) -> String {
    digest.chars().take(12).collect()
}

/// An optional field, `-` when absent.
pub(crate) fn or_dash(value: Option<&impl std::fmt::Display>) -> String {
    value.map_or_else(|| "-".to_owned(), ToString::to_string)
}

/// Columns a table may use: the terminal's, else `COLUMNS`, else 120 (output to a pipe or a
/// file is read in a terminal later).
pub(crate) fn columns() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c: &u16| c >= 40)
        .unwrap_or(120)
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    if table.width().is_none() {
        table.set_width(columns());
    }
    table
}

/// `text` cut to `max` characters, ending in `…` when cut: long cells (a state read's keys, a
/// device's answer) are whole with `--json`.
pub(crate) fn elide(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub(crate) fn drivers_table(list: &DriverList) -> String {
    let mut t = table(&[
        "name",
        "active",
        "contract",
        "sha256",
        "versions",
        "draining",
        "quarantined",
    ]);
    for d in &list.drivers {
        t.add_row(vec![
            d.name.clone(),
            or_dash(d.version.as_ref()),
            or_dash(d.contract.as_ref()),
            d.sha256.as_deref().map(short).unwrap_or_default(),
            d.versions.len().to_string(),
            d.draining.to_string(),
            d.quarantined.to_string(),
        ]);
    }
    format!("{t}\n")
}

pub(crate) fn driver_table(value: &Value) -> Result<String> {
    let d = typed::<DriverAnswer>(value)?.driver;
    let mut out = format!(
        "driver {}: active {} ({}), {}{}\n",
        d.name,
        or_dash(d.version.as_ref()),
        d.sha256.as_deref().map(short).unwrap_or_default(),
        or_dash(d.contract.as_ref()),
        if d.draining { ", DRAINING" } else { "" }
    );
    if let Some(canary) = &d.canary {
        out.push_str(&format!(
            "canary: {} takes {}% of placements\n",
            short(&canary.sha256),
            canary.percent
        ));
    }
    if d.quarantined {
        out.push_str(&format!(
            "QUARANTINED: {}\n",
            or_dash(d.quarantine_reason.as_ref())
        ));
    }
    let mut t = table(&[
        "version",
        "sha256",
        "state",
        "contract",
        "source",
        "signed by",
        "uploaded",
    ]);
    for v in &d.versions {
        let mut state = v.state.as_str().to_owned();
        if v.rollback_target {
            state.push_str(" (rollback)");
        }
        t.add_row(vec![
            v.version.clone(),
            short(&v.sha256),
            state,
            or_dash(v.wit.as_ref()),
            v.source.clone(),
            or_dash(v.signed_by.as_ref()),
            v.uploaded_at.clone(),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    if let Some(grant) = &d.grant {
        out.push_str(&format!("grant: {grant}\n"));
    }
    Ok(out)
}

pub(crate) fn hosts_table(list: &HostList) -> String {
    let mut t = table(&[
        "id",
        "name",
        "version",
        "address",
        "alive",
        "last heartbeat",
        "jobs",
    ]);
    for h in &list.hosts {
        t.add_row(vec![
            h.id.clone(),
            h.name.clone(),
            h.version.clone(),
            h.address.clone(),
            h.alive.to_string(),
            h.heartbeat.clone(),
            h.jobs.to_string(),
        ]);
    }
    format!("{t}\n")
}

pub(crate) fn devices_table(list: &DeviceList) -> String {
    let mut t = table(&[
        "id",
        "name",
        "kind",
        "driver",
        "load",
        "enabled",
        "spawned",
        "management url",
    ]);
    for d in &list.devices {
        t.add_row(vec![
            d.id.clone(),
            d.name.clone(),
            format!("{:?}", d.kind).to_lowercase(),
            d.driver.clone(),
            format!("{}/{}", d.load_balancers, d.capacity),
            d.enabled.to_string(),
            d.spawned.to_string(),
            d.management_url.clone(),
        ]);
    }
    format!("{t}\n")
}

pub(crate) fn explain_table(answer: &PlacementAnswer) -> Result<String> {
    let p = &answer.placement.decision;
    let explanation = &p.explanation;
    let mut out = format!(
        "decided {} by {}\noutcome: {}\n",
        p.decided_at,
        match &p.placed_by {
            None => "-".to_owned(),
            Some(by) => format!("{} {} ({})", by.driver, by.version, short(&by.sha256)),
        },
        explanation.outcome.describe(p.spawned_device.as_deref())
    );
    let mut t = table(&[
        "device",
        "driver",
        "filter",
        "host score",
        "offered",
        "driver verdict",
    ]);
    for c in &explanation.candidates {
        t.add_row(vec![
            c.device_id.clone(),
            c.driver.clone(),
            or_dash(c.filtered_by.as_ref()),
            or_dash(c.host_score.as_ref()),
            c.offered.to_string(),
            match &c.driver_verdict {
                None => "-".to_owned(),
                Some(Verdict::Score(score)) => format!("score {score}"),
                Some(Verdict::Reject(reason)) => format!("reject: {reason}"),
            },
        ]);
    }
    out.push_str(&format!("{t}\n"));
    // Large pools list the offered candidates; the others are counted by reason.
    if !explanation.unlisted.is_empty() {
        out.push_str(&format!(
            "{} devices considered; not listed:\n",
            explanation.considered
        ));
        for (reason, count) in &explanation.unlisted {
            out.push_str(&format!("  {count}  {reason}\n"));
        }
    }
    Ok(out)
}

/// A record's cells, in the table's order.
pub(crate) fn audit_cells(r: &Record) -> [String; 8] {
    [
        r.seq.to_string(),
        r.at.clone(),
        r.event.driver.clone(),
        r.event.version.clone(),
        r.event.function.clone(),
        r.event.outcome.as_str().to_owned(),
        elide(or_dash(r.event.target.as_ref()), 60),
        elide(or_dash(r.event.detail.as_ref()), 60),
    ]
}

pub(crate) fn audit_line(r: &Record) -> String {
    let [seq, rest @ ..] = audit_cells(r);
    format!("{seq:>6} {}\n", rest.join(" "))
}

pub(crate) fn audit_table(records: &[Record]) -> String {
    let mut t = table(&[
        "seq", "at", "driver", "version", "function", "outcome", "target", "detail",
    ]);
    for r in records {
        t.add_row(audit_cells(r).to_vec());
    }
    format!("{t}\n")
}

/// A secret's content type, as its metadata names it.
fn content_type(secret: &SecretView) -> String {
    or_dash(secret.content_types.get("default"))
}

pub(crate) fn secrets_table(list: &SecretList) -> String {
    let mut t = table(&[
        "reference",
        "name",
        "type",
        "content type",
        "created",
        "expires",
    ]);
    for s in &list.secrets {
        t.add_row(vec![
            s.secret_ref.clone(),
            or_dash(s.name.as_ref()),
            s.secret_type.clone(),
            content_type(s),
            s.created.clone(),
            or_dash(s.expiration.as_ref()),
        ]);
    }
    let more = if list.total > list.secrets.len() {
        format!("{} of {} shown\n", list.secrets.len(), list.total)
    } else {
        String::new()
    };
    format!("{t}\n{more}")
}

pub(crate) fn secret_table(secret: &SecretView) -> String {
    let mut t = table(&["field", "value"]);
    for (field, value) in [
        ("reference", secret.secret_ref.clone()),
        ("name", or_dash(secret.name.as_ref())),
        ("type", secret.secret_type.clone()),
        ("content type", content_type(secret)),
        ("status", secret.status.clone()),
        ("created", secret.created.clone()),
        ("expires", or_dash(secret.expiration.as_ref())),
    ] {
        t.add_row(vec![field.to_owned(), value]);
    }
    format!("{t}\n")
}

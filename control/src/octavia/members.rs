//! Members: the servers behind a pool, one by one or all at once (the batch update replaces
//! the whole set). A member's address and port are checked against the host's own
//! ([`crate::addresses`]).

use std::net::IpAddr;

use lbaas_core::ids::now;
use serde::Deserialize;

use super::Caller;
use super::fields::{self, Decided, Int};
use super::status::{self, Step};
use super::tree::{ensure_mutable, ensure_writable, new_common, touch_parent};
use crate::Error;
use crate::model::{Member, Pool};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;
use crate::store::{Batch, Kind};

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberCreate {
    name: Option<String>,
    address: String,
    #[serde_as(as = "Int")]
    protocol_port: i64,
    #[serde_as(as = "Option<Int>")]
    weight: Option<i64>,
    backup: Option<bool>,
    admin_state_up: Option<bool>,
    subnet_id: Option<String>,
    monitor_address: Option<String>,
    #[serde_as(as = "Option<Int>")]
    monitor_port: Option<i64>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
    request_sriov: Option<bool>,
}

fn weight(value: Option<i64>) -> Decided<u32> {
    match value.unwrap_or(1) {
        w @ 0..=256 => Ok(w as u32),
        w => Err(Error::invalid(format!("weight {w} is out of range 0-256"))),
    }
}

/// Checks and builds a member of `pool`, given the members it already has.
pub fn build<'a>(
    pool: &Pool,
    siblings: impl Iterator<Item = &'a Member>,
    body: MemberCreate,
) -> Decided<Member> {
    if body.request_sriov == Some(true) {
        return Err(Error::invalid(
            "SR-IOV members are not supported by this host.",
        ));
    }
    fields::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &pool.common.project_id,
    )?;
    // Kept as written (Octavia answers the address it was given), compared as addresses.
    let ip = fields::ip("address", &body.address)?;
    let address = body.address.trim().to_owned();
    let protocol_port = fields::port("protocol_port", body.protocol_port)?;
    let monitor_address = match body.monitor_address {
        Some(a) => {
            fields::ip("monitor_address", &a)?;
            Some(a.trim().to_owned())
        }
        None => None,
    };
    let monitor_port = match body.monitor_port {
        Some(p) => Some(fields::port("monitor_port", p)?),
        None => None,
    };
    if siblings
        .into_iter()
        .any(|m| same_address(&m.address, ip) && m.protocol_port == protocol_port)
    {
        return Err(Error::conflict(format!(
            "Another member on this pool is already using ip {address} on protocol_port {protocol_port}"
        )));
    }
    Ok(Member {
        common: new_common(
            &pool.common.project_id,
            body.name,
            None,
            body.admin_state_up,
            body.tags,
        )?,
        loadbalancer_id: pool.loadbalancer_id.clone(),
        pool_id: pool.common.id.clone(),
        address,
        protocol_port,
        weight: weight(body.weight)?,
        backup: body.backup.unwrap_or(false),
        subnet_id: body.subnet_id,
        monitor_address,
        monitor_port,
    })
}

/// A member's traffic and health checks stay off the control plane, the devices' management
/// sockets and the special addresses ([`crate::addresses::AddressRules::member`]).
pub fn check_target(plane: &ControlPlane, snapshot: &Snapshot, member: &Member) -> Decided<()> {
    plane.addresses.member(snapshot, member).map_err(|refused| {
        tracing::warn!(project = %member.common.project_id, %refused, "member address refused");
        Error::from(refused)
    })
}

/// The pool, writable by the caller, on a load balancer that accepts changes.
fn writable_pool<'a>(
    snapshot: &'a Snapshot,
    caller: &impl Caller,
    pool_id: &str,
) -> Decided<&'a Pool> {
    let pool = snapshot.pool(caller, pool_id)?;
    ensure_writable(caller, &pool.common.project_id)?;
    ensure_mutable(snapshot.parent(&pool.loadbalancer_id)?)?;
    Ok(pool)
}

fn check_subnet(snapshot: &Snapshot, caller: &impl Caller, member: &Member) -> Decided<()> {
    if let Some(subnet_id) = &member.subnet_id {
        snapshot
            .subnet(caller, subnet_id)
            .map_err(|_| Error::invalid(format!("Subnet {subnet_id} could not be found.")))?;
    }
    Ok(())
}

/// Creates a member of a pool the caller may change.
pub fn create(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    pool_id: &str,
    body: MemberCreate,
) -> Decided<Change<Member>> {
    let pool = writable_pool(snapshot, caller, pool_id)?;
    let member = build(pool, snapshot.members_of(pool_id), body)?;
    check_subnet(snapshot, caller, &member)?;
    check_target(plane, snapshot, &member)?;
    let mut batch = Batch::new();
    touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
    batch.put(&member);
    let lb = pool.loadbalancer_id.clone();
    super::quotas::enforce(snapshot, &member.common.project_id, &batch)?;
    Ok(Change::new(batch, member).with_job(&lb))
}

/// Makes a pool's members the list given: members matched by address and port are updated,
/// the others created; those not in it are deleted, unless `additive` keeps them.
pub fn replace(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    pool_id: &str,
    members: Vec<MemberCreate>,
    additive: bool,
) -> Decided<Change<()>> {
    let pool = writable_pool(snapshot, caller, pool_id)?;
    let mut wanted: Vec<Member> = Vec::new();
    for body in members {
        let member = build(pool, wanted.iter(), body)?;
        check_subnet(snapshot, caller, &member)?;
        check_target(plane, snapshot, &member)?;
        wanted.push(member);
    }
    let mut batch = Batch::new();
    touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
    let existing: Vec<&Member> = snapshot.members_of(pool_id).collect();
    // Each address parsed once: members are matched as (address, port).
    let existing_at: Vec<(Option<IpAddr>, u16)> = existing
        .iter()
        .map(|m| (m.address.parse().ok(), m.protocol_port))
        .collect();
    for mut member in wanted {
        let at = (member.address.parse().ok(), member.protocol_port);
        let same = existing_at
            .iter()
            .position(|old| at.0.is_some() && *old == at);
        if let Some(old) = same.map(|i| existing[i]) {
            member.common.id = old.common.id.clone();
            member.common.created_at = old.common.created_at.clone();
            status::step(&mut member.common, Step::Update, &now());
            member.common.operating_status = old.common.operating_status;
        }
        batch.put(&member);
    }
    for old in existing.into_iter().filter(|_| !additive) {
        if !batch.puts_id(Kind::Member, &old.common.id) {
            let mut gone = old.clone();
            status::step(&mut gone.common, Step::Delete, &now());
            batch.put(&gone);
        }
    }
    let lb = pool.loadbalancer_id.clone();
    super::quotas::enforce(snapshot, &pool.common.project_id, &batch)?;
    Ok(Change::new(batch, ()).with_job(&lb))
}

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberUpdate {
    name: Option<String>,
    #[serde_as(as = "Option<Int>")]
    weight: Option<i64>,
    backup: Option<bool>,
    admin_state_up: Option<bool>,
    #[serde(default, with = "::serde_with::rust::double_option")]
    monitor_address: Option<Option<String>>,
    #[serde(default, with = "::serde_with::rust::double_option")]
    monitor_port: Option<Option<i64>>,
    tags: Option<Vec<String>>,
}

/// Changes a member the caller may write.
pub fn update(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    pool_id: &str,
    id: &str,
    body: MemberUpdate,
) -> Decided<Change<Member>> {
    let pool = writable_pool(snapshot, caller, pool_id)?;
    let mut member = snapshot.member(caller, pool_id, id)?.clone();
    if let Some(name) = body.name {
        member.common.name = fields::text("name", Some(name), 255)?;
    }
    if body.weight.is_some() {
        member.weight = weight(body.weight)?;
    }
    if let Some(backup) = body.backup {
        member.backup = backup;
    }
    if let Some(up) = body.admin_state_up {
        member.common.admin_state_up = up;
    }
    if let Some(address) = body.monitor_address {
        member.monitor_address = match address {
            Some(a) => {
                fields::ip("monitor_address", &a)?;
                Some(a.trim().to_owned())
            }
            None => None,
        };
    }
    if let Some(port) = body.monitor_port {
        member.monitor_port = match port {
            Some(p) => Some(fields::port("monitor_port", p)?),
            None => None,
        };
    }
    if let Some(tags) = body.tags {
        member.common.tags = tags;
    }
    check_target(plane, snapshot, &member)?;
    status::step(&mut member.common, Step::Update, &now());
    let mut batch = Batch::new();
    touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
    batch.put(&member);
    let lb = pool.loadbalancer_id.clone();
    Ok(Change::new(batch, member).with_job(&lb))
}

/// Deletes a member the caller may write.
pub fn delete(
    snapshot: &Snapshot,
    caller: &impl Caller,
    pool_id: &str,
    id: &str,
) -> Decided<Change<()>> {
    let pool = writable_pool(snapshot, caller, pool_id)?;
    let mut member = snapshot.member(caller, pool_id, id)?.clone();
    status::step(&mut member.common, Step::Delete, &now());
    let mut batch = Batch::new();
    touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
    batch.put(&member);
    let lb = pool.loadbalancer_id.clone();
    Ok(Change::new(batch, ()).with_job(&lb))
}

/// Whether a stored member address is `ip` (written the same or not: `2001:db8::1` is
/// `2001:db8:0:0:0:0:0:1`).
fn same_address(stored: &str, ip: IpAddr) -> bool {
    stored.parse::<IpAddr>() == Ok(ip)
}

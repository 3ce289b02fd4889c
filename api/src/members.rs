//! `/lbaas/pools/{pool_id}/members`: the servers behind a pool, one by one or all at once
//! (the batch `PUT` replaces the whole set).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Member, Pool, ProvisioningStatus};
use crate::store::{Batch, Kind};

use super::auth::Context;
use super::body::Body;
use super::body::Int;
use super::error::{ApiError, ApiResult};
use super::loadbalancers::{ensure_mutable, new_common, touch_parent};
use super::pools::explicit;
use super::{Api, Change, listing, validate, views};
use crate::edge::Base;
use lbaas_control::ControlPlane;
use lbaas_control::snapshot::Snapshot;
use lbaas_core::ids::now;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/pools/{pool_id}/members",
            get(list).post(create).put(batch_update),
        )
        .route(
            "/pools/{pool_id}/members/{id}",
            get(show).put(update).delete(delete),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEnvelope {
    member: MemberCreate,
}

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

fn weight(value: Option<i64>) -> ApiResult<u32> {
    match value.unwrap_or(1) {
        w @ 0..=256 => Ok(w as u32),
        w => Err(ApiError::bad_request(format!(
            "weight {w} is out of range 0-256"
        ))),
    }
}

/// Checks and builds a member of `pool`, given the members it already has.
pub fn build<'a>(
    pool: &Pool,
    siblings: impl Iterator<Item = &'a Member>,
    body: MemberCreate,
) -> ApiResult<Member> {
    if body.request_sriov == Some(true) {
        return Err(ApiError::bad_request(
            "SR-IOV members are not supported by this host.",
        ));
    }
    validate::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &pool.common.project_id,
    )?;
    // Kept as written (Octavia answers the address it was given), compared as addresses.
    let ip = validate::ip("address", &body.address)?;
    let address = body.address.trim().to_owned();
    let protocol_port = validate::port("protocol_port", body.protocol_port)?;
    let monitor_address = match body.monitor_address {
        Some(a) => {
            validate::ip("monitor_address", &a)?;
            Some(a.trim().to_owned())
        }
        None => None,
    };
    let monitor_port = match body.monitor_port {
        Some(p) => Some(validate::port("monitor_port", p)?),
        None => None,
    };
    if siblings
        .into_iter()
        .any(|m| same_address(&m.address, ip) && m.protocol_port == protocol_port)
    {
        return Err(ApiError::conflict(format!(
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
/// sockets and the special addresses ([`lbaas_control::addresses::AddressRules::member`]).
pub fn check_target(api: &ControlPlane, snapshot: &Snapshot, member: &Member) -> ApiResult<()> {
    api.addresses.member(snapshot, member).map_err(|refused| {
        tracing::warn!(project = %member.common.project_id, %refused, "member address refused");
        ApiError::from(refused)
    })
}

/// The pool, writable by the caller, on a load balancer that accepts changes.
fn writable_pool<'a>(snapshot: &'a Snapshot, ctx: &Context, pool_id: &str) -> ApiResult<&'a Pool> {
    let pool = snapshot.pool(ctx, pool_id)?;
    if !ctx.can_write(&pool.common.project_id) {
        return Err(ApiError::forbidden());
    }
    ensure_mutable(snapshot.parent(&pool.loadbalancer_id)?)?;
    Ok(pool)
}

fn check_subnet(snapshot: &Snapshot, ctx: &Context, member: &Member) -> ApiResult<()> {
    if let Some(subnet_id) = &member.subnet_id {
        snapshot.subnet(ctx, subnet_id).map_err(|_| {
            ApiError::bad_request(format!("Subnet {subnet_id} could not be found."))
        })?;
    }
    Ok(())
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(pool_id): Path<String>,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let view = api
        .write(move |plane, snapshot| {
            let pool = writable_pool(snapshot, &ctx, &pool_id)?;
            let member = build(pool, snapshot.members_of(&pool_id), body.member)?;
            check_subnet(snapshot, &ctx, &member)?;
            check_target(plane, snapshot, &member)?;
            let mut batch = Batch::new();
            touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
            batch.put(&member);
            let lb = pool.loadbalancer_id.clone();
            super::quotas::enforce(snapshot, &member.common.project_id, &batch)?;
            Ok(Change::new(batch, views::member(&member)).with_job(&lb))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "member": view }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchEnvelope {
    members: Vec<MemberCreate>,
}

/// Replaces the pool's members: ones with the same address and port are updated, new ones
/// created, the rest deleted.
/// `PUT /pools/{id}/members`: the pool's members become the list given (members matched by
/// address and port are updated, the others created); those not in it are deleted, unless
/// `?additive_only=true` (Octavia v2.11) keeps them.
async fn batch_update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(pool_id): Path<String>,
    RawQuery(raw): RawQuery,
    Body(body): Body<BatchEnvelope>,
) -> ApiResult<StatusCode> {
    ctx.require_member()?;
    let additive = additive_only(raw.as_deref())?;
    api.write(move |plane, snapshot| {
        let pool = writable_pool(snapshot, &ctx, &pool_id)?;
        let mut wanted: Vec<Member> = Vec::new();
        for body in body.members {
            let member = build(pool, wanted.iter(), body)?;
            check_subnet(snapshot, &ctx, &member)?;
            check_target(plane, snapshot, &member)?;
            wanted.push(member);
        }
        let mut batch = Batch::new();
        touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
        let existing: Vec<&Member> = snapshot.members_of(&pool_id).collect();
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
                member.common.updated_at = Some(now());
                member.common.provisioning_status = ProvisioningStatus::PendingUpdate;
                member.common.operating_status = old.common.operating_status;
            }
            batch.put(&member);
        }
        for old in existing.into_iter().filter(|_| !additive) {
            if !batch.puts_id(Kind::Member, &old.common.id) {
                let mut gone = old.clone();
                gone.common.provisioning_status = ProvisioningStatus::PendingDelete;
                batch.put(&gone);
            }
        }
        let lb = pool.loadbalancer_id.clone();
        super::quotas::enforce(snapshot, &pool.common.project_id, &batch)?;
        Ok(Change::new(batch, ()).with_job(&lb))
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// The `additive_only` flag of a batch update's query (`true`/`false`, any case; absent: false).
fn additive_only(query: Option<&str>) -> ApiResult<bool> {
    let value = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "additive_only")
        .map(|(_, value)| value.to_ascii_lowercase());
    match value.as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for additive_only: '{}' is not a boolean.",
            other.escape_debug()
        ))),
    }
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    Path(pool_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/pools/{pool_id}/members", base);
    listing(&api, raw, "members", url, move |snapshot| {
        snapshot.pool(&ctx, &pool_id)?;
        let members: Vec<Value> = snapshot.members_of(&pool_id).map(views::member).collect();
        Ok(Box::new(members.into_iter()))
    })
    .await
}

async fn show(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((pool_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    api.read_one(move |_, snapshot| {
        let member = snapshot.member(&ctx, &pool_id, &id)?;
        Ok(Json(json!({ "member": views::member(member) })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEnvelope {
    member: MemberUpdate,
}

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberUpdate {
    name: Option<String>,
    #[serde_as(as = "Option<Int>")]
    weight: Option<i64>,
    backup: Option<bool>,
    admin_state_up: Option<bool>,
    #[serde(default, deserialize_with = "explicit")]
    monitor_address: Option<Option<String>>,
    #[serde(default, deserialize_with = "explicit")]
    monitor_port: Option<Option<i64>>,
    tags: Option<Vec<String>>,
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((pool_id, id)): Path<(String, String)>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let view = api
        .write(move |plane, snapshot| {
            let pool = writable_pool(snapshot, &ctx, &pool_id)?;
            let mut member = snapshot.member(&ctx, &pool_id, &id)?.clone();
            let body = body.member;
            if let Some(name) = body.name {
                member.common.name = validate::text("name", Some(name), 255)?;
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
                        validate::ip("monitor_address", &a)?;
                        Some(a.trim().to_owned())
                    }
                    None => None,
                };
            }
            if let Some(port) = body.monitor_port {
                member.monitor_port = match port {
                    Some(p) => Some(validate::port("monitor_port", p)?),
                    None => None,
                };
            }
            if let Some(tags) = body.tags {
                member.common.tags = tags;
            }
            check_target(plane, snapshot, &member)?;
            member.common.provisioning_status = ProvisioningStatus::PendingUpdate;
            member.common.updated_at = Some(now());
            let mut batch = Batch::new();
            touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
            batch.put(&member);
            let lb = pool.loadbalancer_id.clone();
            Ok(Change::new(batch, views::member(&member)).with_job(&lb))
        })
        .await?;
    Ok(Json(json!({ "member": view })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((pool_id, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| {
        let pool = writable_pool(snapshot, &ctx, &pool_id)?;
        let mut member = snapshot.member(&ctx, &pool_id, &id)?.clone();
        member.common.provisioning_status = ProvisioningStatus::PendingDelete;
        let mut batch = Batch::new();
        touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
        batch.put(&member);
        let lb = pool.loadbalancer_id.clone();
        Ok(Change::new(batch, ()).with_job(&lb))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a stored member address is `ip` (written the same or not: `2001:db8::1` is
/// `2001:db8:0:0:0:0:0:1`).
fn same_address(stored: &str, ip: IpAddr) -> bool {
    stored.parse::<IpAddr>() == Ok(ip)
}

//! `/lbaas/loadbalancers`: create (alone or as a full tree), list, show, update, delete (with
//! `cascade`), the status tree and statistics.

use lbaas_control::ControlPlane;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Common, Job, LoadBalancer, OperatingStatus, ProvisioningStatus};
use crate::store::{Batch, Record};

use super::auth::Context;
use super::body::Body;
use super::error::{ApiError, ApiResult};
use super::listeners::{self, ListenerCreate};
use super::members;
use super::pools::{self, PoolCreate};
use super::query::ListQuery;
use super::{Api, Change, listing, validate, views};
use lbaas_control::snapshot::{Snapshot, network_visible};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/loadbalancers", get(list).post(create))
        .route("/loadbalancers/{id}", get(show).put(update).delete(delete))
        .route("/loadbalancers/{id}/status", get(status))
        .route("/loadbalancers/{id}/stats", get(stats))
        .route("/loadbalancers/{id}/failover", put(failover))
}

use crate::edge::Base;
use lbaas_core::ids::{new_id, now};

/// The fields every new child starts with.
pub fn new_common(
    project_id: &str,
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    tags: Option<Vec<String>>,
) -> ApiResult<Common> {
    Ok(Common {
        id: new_id(),
        project_id: project_id.to_owned(),
        name: validate::text("name", name, 255)?,
        description: validate::text("description", description, 255)?,
        admin_state_up: admin_state_up.unwrap_or(true),
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        created_at: now(),
        updated_at: None,
        tags: tags.unwrap_or_default(),
    })
}

/// A change to a child: the load balancer must not be `PENDING_*`, and moves to
/// `PENDING_UPDATE` with a job that makes the device match.
pub fn touch_parent(snapshot: &Snapshot, lb_id: &str, batch: &mut Batch) -> ApiResult<()> {
    let lb = snapshot.parent(lb_id)?;
    ensure_mutable(lb)?;
    queue_update(&mut lb.clone(), batch);
    Ok(())
}

/// Puts `lb` in `PENDING_UPDATE` with the job that makes its device match, into `batch`.
pub fn queue_update(lb: &mut LoadBalancer, batch: &mut Batch) {
    lb.common.provisioning_status = ProvisioningStatus::PendingUpdate;
    lb.common.updated_at = Some(now());
    batch.put(lb).put(&job(&lb.common.id));
}

/// A record that belongs to one load balancer.
pub trait Child: Record + Clone + Send + 'static {
    fn common(&self) -> &Common;
    fn common_mut(&mut self) -> &mut Common;
    fn loadbalancer_id(&self) -> &str;
}

macro_rules! child {
    ($ty:ty) => {
        impl Child for $ty {
            fn common(&self) -> &Common {
                &self.common
            }
            fn common_mut(&mut self) -> &mut Common {
                &mut self.common
            }
            fn loadbalancer_id(&self) -> &str {
                &self.loadbalancer_id
            }
        }
    };
}

child!(crate::model::Listener);
child!(crate::model::Pool);
child!(crate::model::Member);
child!(crate::model::HealthMonitor);

/// Deletes a child the caller may write: it becomes `PENDING_DELETE`, and the job that
/// removes it from the device is queued.
pub async fn delete_child<R: Child>(
    api: &Arc<Api>,
    ctx: Context,
    id: String,
    find: for<'a> fn(&'a Snapshot, &Context, &str) -> Result<&'a R, lbaas_control::Error>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| {
        let child = find(snapshot, &ctx, &id)?;
        if !ctx.can_write(&child.common().project_id) {
            return Err(ApiError::forbidden());
        }
        let mut child = child.clone();
        child.common_mut().provisioning_status = ProvisioningStatus::PendingDelete;
        let lb_id = child.loadbalancer_id().to_owned();
        child_change(snapshot, &lb_id, &child, ())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Records a new or changed child; its load balancer moves to `PENDING_UPDATE` with a job.
pub fn child_change<R: Record, T>(
    snapshot: &Snapshot,
    lb_id: &str,
    child: &R,
    value: T,
) -> ApiResult<Change<T>> {
    let mut batch = Batch::new();
    touch_parent(snapshot, lb_id, &mut batch)?;
    batch.put(child);
    Ok(Change::new(batch, value).with_job(lb_id))
}

pub fn ensure_mutable(lb: &LoadBalancer) -> ApiResult<()> {
    if lb.common.provisioning_status.is_pending() {
        return Err(ApiError::immutable(&lb.common.id));
    }
    Ok(())
}

pub fn job(lb_id: &str) -> Job {
    // One job per load balancer: a newer change supersedes an unfinished older one.
    Job::new(lb_id, lbaas_core::traces::traceparent())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEnvelope {
    loadbalancer: LoadBalancerCreate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadBalancerCreate {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    vip_address: Option<String>,
    vip_network_id: Option<String>,
    vip_subnet_id: Option<String>,
    vip_port_id: Option<String>,
    vip_qos_policy_id: Option<String>,
    provider: Option<String>,
    flavor_id: Option<String>,
    availability_zone: Option<String>,
    /// More VIPs on other subnets (Octavia v2.26): no driver of this host serves them yet.
    additional_vips: Option<Value>,
    tags: Option<Vec<String>>,
    listeners: Option<Vec<ListenerCreate>>,
    pools: Option<Vec<PoolCreate>>,
}

/// The provider for a new load balancer: from its flavor, else as named, else its availability
/// zone's, else the default. A zone must be enabled and for that provider.
fn provider_for(
    api: &ControlPlane,
    snapshot: &Snapshot,
    flavor_id: Option<&str>,
    provider: Option<&str>,
    zone: Option<&str>,
) -> ApiResult<String> {
    let zone_provider = match zone {
        Some(name) => {
            let zone = snapshot.availability_zone(name).map_err(|_| {
                ApiError::bad_request(format!("Availability zone {name} could not be found."))
            })?;
            if !zone.enabled {
                return Err(ApiError::bad_request(format!(
                    "The selected availability_zone is not allowed in this deployment: {name}"
                )));
            }
            let profile = snapshot.availability_zone_profile(&zone.availability_zone_profile_id)?;
            Some(profile.provider_name.as_str())
        }
        None => None,
    };
    let provider = provider.or(if flavor_id.is_none() {
        zone_provider
    } else {
        None
    });
    let chosen = match flavor_id {
        Some(flavor_id) => {
            let flavor = snapshot.flavor(flavor_id).map_err(|_| {
                ApiError::bad_request(format!("Flavor {flavor_id} could not be found."))
            })?;
            if !flavor.enabled {
                return Err(ApiError::bad_request(format!(
                    "Flavor {flavor_id} is disabled."
                )));
            }
            let profile = snapshot.flavorprofile(&flavor.flavor_profile_id)?;
            if let Some(provider) = provider
                && provider != profile.provider_name
            {
                return Err(ApiError::bad_request(format!(
                    "Flavor {flavor_id} is not compatible with provider {provider}."
                )));
            }
            profile.provider_name.clone()
        }
        None => match provider {
            Some(provider) => provider.to_owned(),
            None => api
                .default_provider()
                .ok_or_else(|| ApiError::bad_request("No provider is loaded on this host."))?,
        },
    };
    if api.drivers.get(&chosen).is_none() {
        return Err(ApiError::bad_request(format!(
            "Provider '{chosen}' is not enabled."
        )));
    }
    if let (Some(name), Some(zone_provider)) = (zone, zone_provider)
        && zone_provider != chosen
    {
        return Err(ApiError::bad_request(format!(
            "Availability zone {name} is not compatible with provider {chosen}."
        )));
    }
    Ok(chosen)
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let view = api
        .write(move |api, snapshot| {
            let body = body.loadbalancer;
            if body.vip_port_id.is_some() {
                return Err(ApiError::bad_request(
                    "vip_port_id is not supported: give vip_subnet_id or vip_network_id.",
                ));
            }
            if body.vip_qos_policy_id.is_some() {
                return Err(ApiError::bad_request(
                    "QoS policies are not supported by this host.",
                ));
            }
            let project =
                ctx.owning_project(body.project_id.as_deref().or(body.tenant_id.as_deref()))?;
            let provider = provider_for(
                api,
                snapshot,
                body.flavor_id.as_deref(),
                body.provider.as_deref(),
                body.availability_zone.as_deref(),
            )?;
            validate::unsupported_options(
                &provider,
                &[("additional_vips", &body.additional_vips)],
            )?;
            let (network, subnet) = validate::vip_location(
                snapshot
                    .networks
                    .iter()
                    .filter(|n| network_visible(&ctx, n)),
                body.vip_subnet_id.as_deref(),
                body.vip_network_id.as_deref(),
            )?;
            // Addresses another subnet of the same range uses (projects' networks overlap):
            // only those subnets' VIPs can collide, so only they are looked at. Devices share
            // one data plane, so a VIP another load balancer holds is taken whatever its
            // subnet, unless the two networks are apart on VLANs of their own.
            let overlapping = validate::overlapping_subnets(snapshot, subnet);
            let (mut taken, mut elsewhere) = (Vec::new(), Vec::new());
            for lb in snapshot.loadbalancers.iter() {
                if lb.vip_subnet_id == subnet.id {
                    taken.push(lb.vip_address.as_str());
                } else if overlapping.contains(lb.vip_subnet_id.as_str()) {
                    let apart = snapshot
                        .networks
                        .iter()
                        .find(|n| n.id == lb.vip_network_id)
                        .is_some_and(|other| validate::isolated(network, other));
                    if apart {
                        elsewhere.push(lb.vip_address.as_str());
                    } else {
                        taken.push(lb.vip_address.as_str());
                    }
                }
            }
            let vip_address =
                validate::allocate_vip(subnet, body.vip_address.as_deref(), &taken, &elsewhere)?;
            if let Ok(ip) = vip_address.parse() {
                api.addresses.address("vip_address", ip)?;
            }
            let common = new_common(
                &project,
                body.name,
                body.description,
                body.admin_state_up,
                body.tags,
            )?;
            let lb = LoadBalancer {
                vip_port_id: new_id(),
                common,
                vip_address,
                vip_network_id: network.id.clone(),
                vip_subnet_id: subnet.id.clone(),
                provider,
                flavor_id: body.flavor_id,
                device_id: None,
                fault: None,
                migration: None,
                availability_zone: body.availability_zone,
            };

            let mut batch = Batch::new();
            let mut tree = Snapshot::empty_for(&lb);
            for pool in body.pools.unwrap_or_default() {
                pools::build_tree(api, &mut tree, &lb, pool, None)?;
            }
            for listener in body.listeners.unwrap_or_default() {
                listeners::build_tree(api, &mut tree, &lb, listener)?;
            }
            for member in &tree.members {
                members::check_target(api, snapshot, member)?;
            }
            tree.put_children(&mut batch);
            batch.put(&lb).put(&job(&lb.common.id));
            let view = views::loadbalancer(&tree, &lb);
            super::quotas::enforce(snapshot, &lb.common.project_id, &batch)?;
            Ok(Change::new(batch, view).with_job(&lb.common.id))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "loadbalancer": view }))))
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/loadbalancers", base);
    listing(&api, raw, "loadbalancers", url, move |snapshot| {
        Ok(Box::new(
            snapshot
                .loadbalancers
                .iter()
                .filter(move |lb| ctx.can_read(&lb.common.project_id))
                .map(|lb| views::loadbalancer(snapshot, lb)),
        ))
    })
    .await
}

async fn show(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = ListQuery::parse(raw.as_deref())?;
    api.read_one(move |_, snapshot| {
        let lb = snapshot.loadbalancer(&ctx, &id)?;
        if query.selects_fields() {
            let view = query.project(views::loadbalancer(snapshot, lb));
            return Ok(Json(json!({ "loadbalancer": view })).into_response());
        }
        #[derive(serde::Serialize)]
        struct Envelope<'a> {
            loadbalancer: views::LoadBalancerView<'a>,
        }
        let body = serde_json::to_vec(&Envelope {
            loadbalancer: views::LoadBalancerView::of(snapshot, lb),
        })
        .map_err(ApiError::internal)?;
        Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEnvelope {
    loadbalancer: LoadBalancerUpdate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadBalancerUpdate {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    tags: Option<Vec<String>>,
    vip_qos_policy_id: Option<Value>,
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let view = api
        .write(move |_, snapshot| {
            let lb = snapshot.loadbalancer(&ctx, &id)?;
            if !ctx.can_write(&lb.common.project_id) {
                return Err(ApiError::forbidden());
            }
            ensure_mutable(lb)?;
            let body = body.loadbalancer;
            if body.vip_qos_policy_id.is_some_and(|v| !v.is_null()) {
                return Err(ApiError::bad_request(
                    "QoS policies are not supported by this host.",
                ));
            }
            let mut lb = lb.clone();
            if let Some(name) = body.name {
                lb.common.name = validate::text("name", Some(name), 255)?;
            }
            if let Some(description) = body.description {
                lb.common.description = validate::text("description", Some(description), 255)?;
            }
            if let Some(up) = body.admin_state_up {
                lb.common.admin_state_up = up;
            }
            if let Some(tags) = body.tags {
                lb.common.tags = tags;
            }
            lb.common.provisioning_status = ProvisioningStatus::PendingUpdate;
            lb.common.updated_at = Some(now());
            let mut batch = Batch::new();
            batch.put(&lb).put(&job(&id));
            Ok(Change::new(batch, views::loadbalancer(snapshot, &lb)).with_job(&id))
        })
        .await?;
    Ok(Json(json!({ "loadbalancer": view })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let cascade = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "cascade" && v.eq_ignore_ascii_case("true"));
    api.write(move |_, snapshot| {
        let lb = snapshot.loadbalancer(&ctx, &id)?;
        if !ctx.can_write(&lb.common.project_id) {
            return Err(ApiError::forbidden());
        }
        ensure_mutable(lb)?;
        let has_children =
            snapshot.listeners_of(&id).next().is_some() || snapshot.pools_of(&id).next().is_some();
        if has_children && !cascade {
            return Err(ApiError::bad_request(format!(
                "Cannot delete Load Balancer {id} - it has children"
            )));
        }
        let mut lb = lb.clone();
        lb.common.provisioning_status = ProvisioningStatus::PendingDelete;
        lb.common.updated_at = Some(now());
        let mut batch = Batch::new();
        batch.put(&lb).put(&job(&id));
        Ok(Change::new(batch, ()).with_job(&id))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn statuses(common: &Common) -> (ProvisioningStatus, OperatingStatus) {
    (common.provisioning_status, common.operating_status)
}

async fn status(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |_, snapshot| {
        let lb = snapshot.loadbalancer(&ctx, &id)?;
        let pool_tree = |pool_id: &str| -> Option<Value> {
            let pool = snapshot.pools.iter().find(|p| p.common.id == pool_id)?;
            let (p, o) = statuses(&pool.common);
            let members: Vec<Value> = snapshot
                .members_of(pool_id)
                .map(|m| {
                    let (p, o) = statuses(&m.common);
                    json!({"id": m.common.id, "name": m.common.name, "address": m.address,
                           "protocol_port": m.protocol_port, "provisioning_status": p, "operating_status": o})
                })
                .collect();
            let mut value = json!({"id": pool.common.id, "name": pool.common.name,
                                   "provisioning_status": p, "operating_status": o, "members": members});
            if let Some(hm) = snapshot.healthmonitor_of(pool_id) {
                let (p, o) = statuses(&hm.common);
                value["health_monitor"] = json!({"id": hm.common.id, "name": hm.common.name, "type": hm.kind,
                                                 "provisioning_status": p, "operating_status": o});
            }
            Some(value)
        };
        let listeners: Vec<Value> = snapshot
            .listeners_of(&id)
            .map(|l| {
                let (p, o) = statuses(&l.common);
                let pools: Vec<Value> = l.default_pool_id.as_deref().and_then(pool_tree).into_iter().collect();
                let policies: Vec<Value> = snapshot
                    .l7policies_of(&l.common.id)
                    .into_iter()
                    .map(|policy| {
                        let rules: Vec<Value> = snapshot
                            .l7rules_of(&policy.common.id)
                            .map(|r| {
                                let (p, o) = statuses(&r.common);
                                json!({"id": r.common.id, "type": r.kind,
                                       "provisioning_status": p, "operating_status": o})
                            })
                            .collect();
                        let (p, o) = statuses(&policy.common);
                        json!({"id": policy.common.id, "name": policy.common.name,
                               "action": policy.action, "provisioning_status": p,
                               "operating_status": o, "rules": rules})
                    })
                    .collect();
                json!({"id": l.common.id, "name": l.common.name, "provisioning_status": p,
                       "operating_status": o, "pools": pools, "l7policies": policies})
            })
            .collect();
        // Octavia's tree: pools appear under the listeners that send traffic to them.
        let (p, o) = statuses(&lb.common);
        Ok(Json(json!({"statuses": {"loadbalancer": {
            "id": lb.common.id, "name": lb.common.name, "provisioning_status": p,
            "operating_status": o, "listeners": listeners,
        }}})))
    })
    .await
}

/// `PUT /loadbalancers/{id}/failover` (admins): the load balancer's configuration is applied
/// again, where it is while its device is enabled and the status monitor reaches it, else on a
/// device the scheduler picks (as an admin's migration). `202` without a body, as Octavia
/// answers; the load balancer is `PENDING_UPDATE` until the job ends.
async fn failover(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| {
        let lb = snapshot.loadbalancer(&ctx, &id)?;
        ensure_mutable(lb)?;
        let mut lb = lb.clone();
        if let Some(device_id) = lb.device_id.clone() {
            let failed = snapshot.device_by_id(&device_id).is_none_or(|d| !d.enabled)
                || lb.common.operating_status == OperatingStatus::Error;
            if failed {
                lb.migration = Some(crate::model::Migration {
                    from: device_id,
                    to: None,
                });
            }
        }
        let mut batch = Batch::new();
        queue_update(&mut lb, &mut batch);
        Ok(Change::new(batch, ()).with_job(&id))
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

async fn stats(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |api, snapshot| {
        snapshot.loadbalancer(&ctx, &id)?;
        let listeners = snapshot.listeners_of(&id).map(|l| l.common.id.as_str());
        Ok(Json(views::stats(api.traffic.sum(listeners))))
    })
    .await
}

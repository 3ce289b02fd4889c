//! Availability zones: `/lbaas/availabilityzoneprofiles` (a provider plus metadata its driver
//! validates), `/lbaas/availabilityzones` (named zones, each with a profile) and each provider's
//! `availability_zone_capabilities`. A load balancer created in a zone is placed only on
//! devices registered in it.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{AvailabilityZone, AvailabilityZoneProfile};
use crate::store::Batch;

use super::auth::Context;
use super::body::Body;
use super::error::{ApiError, ApiResult};
use super::query::ListQuery;
use super::{Api, Change, listing, validate};
use crate::edge::Base;
use lbaas_core::ids::new_id;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/providers/{name}/availability_zone_capabilities",
            get(capabilities),
        )
        .route(
            "/availabilityzoneprofiles",
            get(list_profiles).post(create_profile),
        )
        .route(
            "/availabilityzoneprofiles/{id}",
            get(show_profile).put(update_profile).delete(delete_profile),
        )
        .route("/availabilityzones", get(list_zones).post(create_zone))
        .route(
            "/availabilityzones/{name}",
            get(show_zone).put(update_zone).delete(delete_zone),
        )
}

fn profile_view(profile: &AvailabilityZoneProfile) -> Value {
    serde_json::to_value(profile).unwrap_or(Value::Null)
}

fn zone_view(zone: &AvailabilityZone) -> Value {
    serde_json::to_value(zone).unwrap_or(Value::Null)
}

/// The metadata keys a provider's zone profiles may set.
async fn capabilities(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    // Octavia's policy: provider capabilities are for admins.
    ctx.require_admin()?;
    let query = ListQuery::parse(raw.as_deref())?;
    let keys: Vec<Value> = api
        .availability_zone_keys(&name)
        .ok_or_else(|| ApiError::not_found("Provider", &name))?
        .into_iter()
        .map(|key| json!({ "name": key.name, "description": key.description }))
        .collect();
    super::flavors::unpaged(&query, "availability_zone_capabilities", keys)
}

/// The profile's metadata must be a JSON object of scalars its provider's driver accepts.
async fn validate_profile(api: &Arc<Api>, profile: &AvailabilityZoneProfile) -> ApiResult<()> {
    Ok(api.plane.check_availability_zone_profile(profile).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEnvelope {
    availability_zone_profile: ProfileBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    name: Option<String>,
    provider_name: Option<String>,
    availability_zone_data: Option<String>,
}

async fn create_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<ProfileEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let body = body.availability_zone_profile;
    let name = validate::text("name", body.name, 255)?;
    if name.is_empty() {
        return Err(ApiError::bad_request("name is required."));
    }
    let profile = AvailabilityZoneProfile {
        id: new_id(),
        name,
        provider_name: body
            .provider_name
            .ok_or_else(|| ApiError::bad_request("provider_name is required."))?,
        availability_zone_data: body
            .availability_zone_data
            .ok_or_else(|| ApiError::bad_request("availability_zone_data is required."))?,
    };
    validate_profile(&api, &profile).await?;
    let view = profile_view(&profile);
    api.write(move |_, _| {
        let mut batch = Batch::new();
        batch.put(&profile);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "availability_zone_profile": view })),
    ))
}

async fn list_profiles(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let url = format!("{}/v2/lbaas/availabilityzoneprofiles", base);
    listing(&api, raw, "availability_zone_profiles", url, |snapshot| {
        Ok(Box::new(
            snapshot.availability_zone_profiles.iter().map(profile_view),
        ))
    })
    .await
}

async fn show_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    api.read(move |_, snapshot| {
        let profile = snapshot.availability_zone_profile(&id)?;
        Ok(Json(
            json!({ "availability_zone_profile": profile_view(profile) }),
        ))
    })
    .await
}

async fn update_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<ProfileEnvelope>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let lookup = id.clone();
    let mut profile = api
        .read(move |_, snapshot| Ok(snapshot.availability_zone_profile(&lookup)?.clone()))
        .await?;
    let body = body.availability_zone_profile;
    if let Some(name) = body.name {
        profile.name = validate::text("name", Some(name), 255)?;
    }
    if let Some(provider) = body.provider_name {
        profile.provider_name = provider;
    }
    if let Some(data) = body.availability_zone_data {
        profile.availability_zone_data = data;
    }
    validate_profile(&api, &profile).await?;
    let view = profile_view(&profile);
    api.write(move |_, snapshot| {
        let stored = snapshot.availability_zone_profile(&id)?;
        if stored.provider_name != profile.provider_name && in_use(snapshot, &id) {
            return Err(ApiError::conflict(format!(
                "Availability zone profile {id} is in use: its provider cannot change."
            )));
        }
        let mut batch = Batch::new();
        batch.put(&profile);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok(Json(json!({ "availability_zone_profile": view })))
}

/// Whether a zone uses profile `id`.
fn in_use(snapshot: &super::Snapshot, id: &str) -> bool {
    snapshot
        .availability_zones
        .iter()
        .any(|z| z.availability_zone_profile_id == id)
}

async fn delete_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| {
        snapshot.availability_zone_profile(&id)?;
        if in_use(snapshot, &id) {
            return Err(ApiError::conflict(format!(
                "Availability zone profile {id} is in use by an availability zone."
            )));
        }
        let mut batch = Batch::new();
        batch.delete::<AvailabilityZoneProfile>(&id);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneEnvelope {
    availability_zone: ZoneBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneBody {
    name: Option<String>,
    description: Option<String>,
    availability_zone_profile_id: Option<String>,
    enabled: Option<bool>,
}

async fn create_zone(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<ZoneEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let view = api
        .write(move |_, snapshot| {
            let body = body.availability_zone;
            let profile_id = body.availability_zone_profile_id.ok_or_else(|| {
                ApiError::bad_request("availability_zone_profile_id is required.")
            })?;
            snapshot
                .availability_zone_profile(&profile_id)
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "Availability zone profile {profile_id} could not be found."
                    ))
                })?;
            let name = validate::text("name", body.name, 255)?;
            if name.is_empty() {
                return Err(ApiError::bad_request("name is required."));
            }
            if snapshot.availability_zone(&name).is_ok() {
                return Err(ApiError::conflict(format!(
                    "An availability zone named {name} already exists."
                )));
            }
            let zone = AvailabilityZone {
                name,
                description: validate::text("description", body.description, 255)?,
                availability_zone_profile_id: profile_id,
                enabled: body.enabled.unwrap_or(true),
            };
            let mut batch = Batch::new();
            batch.put(&zone);
            Ok(Change::new(batch, zone_view(&zone)))
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "availability_zone": view })),
    ))
}

async fn list_zones(
    State(api): State<Arc<Api>>,
    _ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/availabilityzones", base);
    listing(&api, raw, "availability_zones", url, |snapshot| {
        Ok(Box::new(snapshot.availability_zones.iter().map(zone_view)))
    })
    .await
}

async fn show_zone(
    State(api): State<Arc<Api>>,
    _ctx: Context,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |_, snapshot| {
        let zone = snapshot.availability_zone(&name)?;
        Ok(Json(json!({ "availability_zone": zone_view(zone) })))
    })
    .await
}

async fn update_zone(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(name): Path<String>,
    Body(body): Body<ZoneEnvelope>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let view = api
        .write(move |_, snapshot| {
            let mut zone = snapshot.availability_zone(&name)?.clone();
            let body = body.availability_zone;
            if body.name.is_some() || body.availability_zone_profile_id.is_some() {
                return Err(ApiError::bad_request(
                    "An availability zone's name and profile cannot be changed.",
                ));
            }
            if let Some(description) = body.description {
                zone.description = validate::text("description", Some(description), 255)?;
            }
            if let Some(enabled) = body.enabled {
                zone.enabled = enabled;
            }
            let mut batch = Batch::new();
            batch.put(&zone);
            Ok(Change::new(batch, zone_view(&zone)))
        })
        .await?;
    Ok(Json(json!({ "availability_zone": view })))
}

async fn delete_zone(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| {
        snapshot.availability_zone(&name)?;
        let zoned = |zone: &Option<String>| zone.as_deref() == Some(name.as_str());
        if snapshot
            .loadbalancers
            .iter()
            .any(|lb| zoned(&lb.availability_zone))
        {
            return Err(ApiError::conflict(format!(
                "Availability zone {name} is in use by load balancers."
            )));
        }
        if snapshot.devices.iter().any(|d| zoned(&d.availability_zone)) {
            return Err(ApiError::conflict(format!(
                "Availability zone {name} still has devices."
            )));
        }
        let mut batch = Batch::new();
        batch.delete::<AvailabilityZone>(&name);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

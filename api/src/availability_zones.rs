//! Availability zones: `/lbaas/availabilityzoneprofiles` (a provider plus metadata its driver
//! validates), `/lbaas/availabilityzones` (named zones, each with a profile) and each provider's
//! `availability_zone_capabilities`. A load balancer created in a zone is placed only on
//! devices registered in it.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::octavia::zones::{self, ZoneProfileSpec, ZoneSpec};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{AvailabilityZone, AvailabilityZoneProfile};

use super::body::Body;
use super::caller::Context;
use super::error::{ApiError, ApiResult};
use super::query::ListQuery;
use super::{Api, listing};
use crate::edge::Base;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEnvelope {
    availability_zone_profile: ZoneProfileSpec,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneEnvelope {
    availability_zone: ZoneSpec,
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

async fn create_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<ProfileEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let profile = api
        .plane
        .create_zone_profile(body.availability_zone_profile)
        .await?;
    let view = profile_view(&profile);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "availability_zone_profile": view })),
    ))
}

async fn update_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<ProfileEnvelope>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let profile = api
        .plane
        .update_zone_profile(&id, body.availability_zone_profile)
        .await?;
    Ok(Json(
        json!({ "availability_zone_profile": profile_view(&profile) }),
    ))
}

async fn delete_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| Ok(zones::delete_profile(snapshot, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_zone(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<ZoneEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let zone = api
        .write(move |_, snapshot| Ok(zones::create(snapshot, body.availability_zone)?))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "availability_zone": zone_view(&zone) })),
    ))
}

async fn update_zone(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(name): Path<String>,
    Body(body): Body<ZoneEnvelope>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let zone = api
        .write(move |_, snapshot| Ok(zones::update(snapshot, &name, body.availability_zone)?))
        .await?;
    Ok(Json(json!({ "availability_zone": zone_view(&zone) })))
}

async fn delete_zone(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| Ok(zones::delete(snapshot, &name)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

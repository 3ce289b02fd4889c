//! Service types: `/lbaas/providers` (one per loaded driver), `/lbaas/flavorprofiles` (a
//! provider plus driver metadata the driver validates) and `/lbaas/flavors`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::octavia::flavors::{self, FlavorProfileSpec, FlavorSpec};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::caller::Context;
use super::error::{ApiError, ApiResult};
use super::query::ListQuery;
use super::{Api, listing, views};
use crate::edge::Base;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/providers", get(providers))
        .route(
            "/providers/{name}/flavor_capabilities",
            get(flavor_capabilities),
        )
        .route("/flavorprofiles", get(list_profiles).post(create_profile))
        .route(
            "/flavorprofiles/{id}",
            get(show_profile).put(update_profile).delete(delete_profile),
        )
        .route("/flavors", get(list_flavors).post(create_flavor))
        .route(
            "/flavors/{id}",
            get(show_flavor).put(update_flavor).delete(delete_flavor),
        )
}

async fn providers(
    State(api): State<Arc<Api>>,
    _ctx: Context,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = ListQuery::parse(raw.as_deref())?;
    let items: Vec<Value> = api
        .drivers
        .all()
        .iter()
        .map(|driver| {
            let caps = driver.capabilities();
            json!({
                "name": caps.name,
                "description": format!("{} driver {} ({})", caps.vendor, caps.version, driver.identity().sha256),
            })
        })
        .collect();
    unpaged(&query, "providers", items)
}

/// A list Octavia answers without paging links, its filters and `fields` applied.
pub(crate) fn unpaged(query: &ListQuery, kind: &str, items: Vec<Value>) -> ApiResult<Json<Value>> {
    query.respond(kind, "", items).map(|mut body| {
        if let Some(map) = body.as_object_mut() {
            map.remove(&format!("{kind}_links"));
        }
        Json(body)
    })
}

async fn flavor_capabilities(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    // Octavia's policy: provider capabilities are for admins.
    ctx.require_admin()?;
    let query = ListQuery::parse(raw.as_deref())?;
    let keys: Vec<Value> = api
        .flavor_keys(&name)
        .ok_or_else(|| ApiError::not_found("Provider", &name))?
        .into_iter()
        .map(|key| json!({ "name": key.name, "description": key.description }))
        .collect();
    unpaged(&query, "flavor_capabilities", keys)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEnvelope {
    flavorprofile: FlavorProfileSpec,
}

async fn list_profiles(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let url = format!("{}/v2/lbaas/flavorprofiles", base);
    listing(&api, raw, "flavorprofiles", url, |snapshot| {
        Ok(Box::new(
            snapshot.flavorprofiles.iter().map(views::flavorprofile),
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
        Ok(Json(
            json!({ "flavorprofile": views::flavorprofile(snapshot.flavorprofile(&id)?) }),
        ))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlavorEnvelope {
    flavor: FlavorSpec,
}

async fn list_flavors(
    State(api): State<Arc<Api>>,
    _ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/flavors", base);
    listing(&api, raw, "flavors", url, |snapshot| {
        Ok(Box::new(snapshot.flavors.iter().map(views::flavor)))
    })
    .await
}

async fn show_flavor(
    State(api): State<Arc<Api>>,
    _ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |_, snapshot| {
        Ok(Json(
            json!({ "flavor": views::flavor(snapshot.flavor(&id)?) }),
        ))
    })
    .await
}

async fn create_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<ProfileEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let profile = api.plane.create_flavor_profile(body.flavorprofile).await?;
    let view = views::flavorprofile(&profile);
    Ok((StatusCode::CREATED, Json(json!({ "flavorprofile": view }))))
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
        .update_flavor_profile(&id, body.flavorprofile)
        .await?;
    Ok(Json(
        json!({ "flavorprofile": views::flavorprofile(&profile) }),
    ))
}

async fn delete_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| Ok(flavors::delete_profile(snapshot, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_flavor(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<FlavorEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let flavor = api
        .write(move |_, snapshot| Ok(flavors::create(snapshot, body.flavor)?))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "flavor": views::flavor(&flavor) })),
    ))
}

async fn update_flavor(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<FlavorEnvelope>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let flavor = api
        .write(move |_, snapshot| Ok(flavors::update(snapshot, &id, body.flavor)?))
        .await?;
    Ok(Json(json!({ "flavor": views::flavor(&flavor) })))
}

async fn delete_flavor(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| Ok(flavors::delete(snapshot, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Service types: `/lbaas/providers` (one per loaded driver), `/lbaas/flavorprofiles` (a
//! provider plus driver metadata the driver validates) and `/lbaas/flavors`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Flavor, FlavorProfile};
use crate::store::Batch;

use super::auth::Context;
use super::body::Body;
use super::error::{ApiError, ApiResult};
use super::query::ListQuery;
use super::{Api, Change, listing, validate, views};
use crate::edge::Base;
use lbaas_core::ids::new_id;

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

/// Checks a profile with every driver it names (the control plane's rules).
async fn validate_profile(api: &Arc<Api>, name: &str, profile: &FlavorProfile) -> ApiResult<()> {
    Ok(api.plane.check_flavor_profile(name, profile).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEnvelope {
    flavorprofile: ProfileBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    name: Option<String>,
    provider_name: Option<String>,
    flavor_data: Option<String>,
}

async fn create_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<ProfileEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let body = body.flavorprofile;
    let profile = FlavorProfile {
        id: new_id(),
        name: validate::text("name", body.name, 255)?,
        provider_name: body
            .provider_name
            .ok_or_else(|| ApiError::bad_request("provider_name is required."))?,
        flavor_data: body
            .flavor_data
            .ok_or_else(|| ApiError::bad_request("flavor_data is required."))?,
    };
    validate_profile(&api, &profile.name, &profile).await?;
    let view = views::flavorprofile(&profile);
    api.write(move |_, _| {
        let mut batch = Batch::new();
        batch.put(&profile);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "flavorprofile": view }))))
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

async fn update_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<ProfileEnvelope>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let lookup = id.clone();
    let mut profile = api
        .read(move |_, snapshot| Ok(snapshot.flavorprofile(&lookup)?.clone()))
        .await?;
    let body = body.flavorprofile;
    if let Some(name) = body.name {
        profile.name = validate::text("name", Some(name), 255)?;
    }
    if let Some(provider) = body.provider_name {
        profile.provider_name = provider;
    }
    if let Some(data) = body.flavor_data {
        profile.flavor_data = data;
    }
    validate_profile(&api, &profile.name, &profile).await?;
    let view = views::flavorprofile(&profile);
    api.write(move |_, snapshot| {
        snapshot.flavorprofile(&id)?;
        let mut batch = Batch::new();
        batch.put(&profile);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok(Json(json!({ "flavorprofile": view })))
}

async fn delete_profile(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| {
        snapshot.flavorprofile(&id)?;
        if snapshot.flavors.iter().any(|f| f.flavor_profile_id == id) {
            return Err(ApiError::conflict(format!(
                "Flavor profile {id} is in use by a flavor."
            )));
        }
        let mut batch = Batch::new();
        batch.delete::<FlavorProfile>(&id);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlavorEnvelope {
    flavor: FlavorBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlavorBody {
    name: Option<String>,
    description: Option<String>,
    flavor_profile_id: Option<String>,
    enabled: Option<bool>,
}

async fn create_flavor(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<FlavorEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let view = api
        .write(move |_, snapshot| {
            let body = body.flavor;
            let profile_id = body
                .flavor_profile_id
                .ok_or_else(|| ApiError::bad_request("flavor_profile_id is required."))?;
            snapshot.flavorprofile(&profile_id).map_err(|_| {
                ApiError::bad_request(format!("Flavor profile {profile_id} could not be found."))
            })?;
            let name = validate::text("name", body.name, 255)?;
            if name.is_empty() {
                return Err(ApiError::bad_request("name is required."));
            }
            if snapshot.flavors.iter().any(|f| f.name == name) {
                return Err(ApiError::conflict(format!(
                    "A flavor named {name} already exists."
                )));
            }
            let flavor = Flavor {
                id: new_id(),
                name,
                description: validate::text("description", body.description, 255)?,
                flavor_profile_id: profile_id,
                enabled: body.enabled.unwrap_or(true),
            };
            let mut batch = Batch::new();
            batch.put(&flavor);
            Ok(Change::new(batch, views::flavor(&flavor)))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "flavor": view }))))
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

async fn update_flavor(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<FlavorEnvelope>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let view = api
        .write(move |_, snapshot| {
            let mut flavor = snapshot.flavor(&id)?.clone();
            let body = body.flavor;
            if body.flavor_profile_id.is_some() {
                return Err(ApiError::bad_request(
                    "A flavor's profile cannot be changed.",
                ));
            }
            if let Some(name) = body.name {
                flavor.name = validate::text("name", Some(name), 255)?;
            }
            if let Some(description) = body.description {
                flavor.description = validate::text("description", Some(description), 255)?;
            }
            if let Some(enabled) = body.enabled {
                flavor.enabled = enabled;
            }
            let mut batch = Batch::new();
            batch.put(&flavor);
            Ok(Change::new(batch, views::flavor(&flavor)))
        })
        .await?;
    Ok(Json(json!({ "flavor": view })))
}

async fn delete_flavor(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| {
        snapshot.flavor(&id)?;
        if snapshot
            .loadbalancers
            .iter()
            .any(|lb| lb.flavor_id.as_deref() == Some(id.as_str()))
        {
            return Err(ApiError::conflict(format!(
                "Flavor {id} is in use by load balancers."
            )));
        }
        let mut batch = Batch::new();
        batch.delete::<Flavor>(&id);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

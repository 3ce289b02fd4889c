//! `/lbaas/l7policies` and `/lbaas/l7policies/{id}/rules`: a listener's layer-7 policies and
//! their rules, validated as Octavia validates them, so that what reaches a driver is already
//! a well-formed URL, HTTP token or regular expression.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::octavia::l7policies::{
    self, PolicyCreate, PolicyUpdate, RuleCreate, RuleUpdate,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::caller::Context;
use super::error::ApiResult;
use super::{Api, listing, views};
use crate::edge::Base;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/l7policies", get(list).post(create))
        .route("/l7policies/{id}", get(show).put(update).delete(delete))
        .route("/l7policies/{id}/rules", get(list_rules).post(create_rule))
        .route(
            "/l7policies/{id}/rules/{rule_id}",
            get(show_rule).put(update_rule).delete(delete_rule),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEnvelope {
    l7policy: PolicyCreate,
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/l7policies", base);
    listing(&api, raw, "l7policies", url, move |snapshot| {
        Ok(Box::new(
            snapshot
                .l7policies
                .iter()
                .filter(move |p| ctx.can_read(&p.common.project_id))
                .map(|p| views::l7policy(p, snapshot.l7rules_of(&p.common.id))),
        ))
    })
    .await
}

async fn show(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read_one(move |_, snapshot| {
        let policy = snapshot.l7policy(&ctx, &id)?;
        let view = views::l7policy(policy, snapshot.l7rules_of(&id));
        Ok(Json(json!({ "l7policy": view })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEnvelope {
    l7policy: PolicyUpdate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEnvelope {
    rule: RuleCreate,
}

async fn list_rules(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    Path(policy_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/l7policies/{policy_id}/rules", base);
    listing(&api, raw, "rules", url, move |snapshot| {
        snapshot.l7policy(&ctx, &policy_id)?;
        let rules: Vec<Value> = snapshot.l7rules_of(&policy_id).map(views::l7rule).collect();
        Ok(Box::new(rules.into_iter()))
    })
    .await
}

async fn show_rule(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((policy_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    api.read_one(move |_, snapshot| {
        let rule = snapshot.l7rule(&ctx, &policy_id, &id)?;
        Ok(Json(json!({ "rule": views::l7rule(rule) })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleUpdateEnvelope {
    rule: RuleUpdate,
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let (policy, rules) = api
        .write(move |plane, snapshot| Ok(l7policies::create(plane, snapshot, &ctx, body.l7policy)?))
        .await?;
    let view = views::l7policy(&policy, rules.iter());
    Ok((StatusCode::CREATED, Json(json!({ "l7policy": view }))))
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let view = api
        .write(move |plane, snapshot| {
            let change = l7policies::update(plane, snapshot, &ctx, &id, body.l7policy)?;
            Ok(change.map(|policy| views::l7policy(&policy, snapshot.l7rules_of(&id))))
        })
        .await?;
    Ok(Json(json!({ "l7policy": view })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| Ok(l7policies::delete(snapshot, &ctx, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_rule(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(policy_id): Path<String>,
    Body(body): Body<RuleEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let rule = api
        .write(move |plane, snapshot| {
            Ok(l7policies::create_rule(
                plane, snapshot, &ctx, &policy_id, body.rule,
            )?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "rule": views::l7rule(&rule) })),
    ))
}

async fn update_rule(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((policy_id, id)): Path<(String, String)>,
    Body(body): Body<RuleUpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let rule = api
        .write(move |plane, snapshot| {
            Ok(l7policies::update_rule(
                plane, snapshot, &ctx, &policy_id, &id, body.rule,
            )?)
        })
        .await?;
    Ok(Json(json!({ "rule": views::l7rule(&rule) })))
}

async fn delete_rule(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((policy_id, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| Ok(l7policies::delete_rule(snapshot, &ctx, &policy_id, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

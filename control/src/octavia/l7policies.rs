//! L7 policies and their rules: a listener's layer-7 decisions, checked as Octavia checks
//! them, so that what reaches a driver is already a well-formed URL, HTTP token or regular
//! expression; their positions renumbered as Octavia numbers them.

use lbaas_core::ids::now;
use serde::Deserialize;
use serde_json::Value;

use super::Caller;
use super::fields::{self, Decided, Int};
use super::status::{self, Step};
use super::tree::{child_change, ensure_mutable, ensure_writable, new_common, touch_parent};
use crate::Error;
use crate::model::{
    L7Action, L7CompareType, L7Policy, L7Rule, L7RuleType, Listener, LoadBalancer, Pool, Protocol,
};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;
use crate::store::Batch;

/// Octavia's bounds: positions are 1-based, and a policy holds at most 50 rules (HAProxy stops
/// parsing a condition longer than that).
const MAX_POSITION: i64 = 2_147_483_647;
const MAX_RULES: usize = 50;
const REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

/// An absolute `http` or `https` URL, at most 255 characters, with no spaces or control
/// characters (which a URL parser would otherwise drop or encode silently).
fn redirect_url(field: &str, value: &str) -> Decided<String> {
    let bad = || {
        Error::invalid(format!(
            "{field}: Not a valid URL: {}",
            value.escape_debug()
        ))
    };
    if value.len() > 255 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let parsed = url::Url::parse(value).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad());
    }
    Ok(value.to_owned())
}

/// RFC 7230's `tchar`: what an HTTP header or cookie name is made of.
fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value as Octavia takes it: visible ASCII, or a double-quoted string that may also
/// hold spaces.
fn is_header_value(value: &str) -> bool {
    let visible = |b: u8| b.is_ascii_graphic();
    let plain = !value.is_empty() && value.bytes().all(visible);
    let quoted = value.len() >= 2
        && value.starts_with('"')
        && value.ends_with('"')
        && value.bytes().all(|b| visible(b) || b == b' ' || b == b'\t');
    plain || quoted
}

/// A cookie value (RFC 6265): visible ASCII but `"`, `,`, `;` and `\`.
fn is_cookie_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\",;\\".contains(&b))
}

fn invalid_rule(why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("Invalid L7 Rule: {why}"))
}

/// Checks a rule as Octavia's `l7rule_data` does, and returns its key (kept only where the
/// rule type uses one).
fn check_rule(
    kind: L7RuleType,
    compare: L7CompareType,
    key: Option<String>,
    value: &str,
) -> Decided<Option<String>> {
    if value.len() > 255 || value.contains(['\r', '\n']) {
        return Err(invalid_rule(
            "value must be at most 255 characters on one line",
        ));
    }
    let key = match kind {
        L7RuleType::Header | L7RuleType::Cookie => {
            let key = key.ok_or_else(|| invalid_rule("L7 rule type requires a key"))?;
            if key.len() > 255 || !is_token(&key) {
                return Err(Error::invalid("Invalid characters in key"));
            }
            Some(key)
        }
        _ => None,
    };
    if compare == L7CompareType::Regex {
        regex_syntax::Parser::new()
            .parse(value)
            .map_err(|e| Error::invalid(format!("Unable to parse regular expression: {e}")))?;
        return Ok(key);
    }
    let comparable = match kind {
        L7RuleType::FileType => compare == L7CompareType::EqualTo,
        _ => true,
    };
    if !comparable {
        return Err(invalid_rule("invalid comparison type for rule type"));
    }
    let (valid, what) = match kind {
        L7RuleType::Cookie => (is_cookie_value(value), "cookie value"),
        L7RuleType::Header => (is_header_value(value), "header value"),
        _ => (is_header_value(value), "comparison value"),
    };
    if !valid {
        return Err(Error::invalid(format!("Invalid characters in {what}")));
    }
    Ok(key)
}

/// The redirect fields a policy's action keeps (Octavia clears the others), checked.
struct Redirect {
    pool_id: Option<String>,
    url: Option<String>,
    prefix: Option<String>,
    code: Option<u16>,
}

fn redirect<'a>(
    find_pool: impl Fn(&str) -> Option<&'a Pool>,
    listener: &Listener,
    action: L7Action,
    given: Redirect,
) -> Decided<Redirect> {
    let args = |msg: &str| Error::invalid(format!("Invalid L7 Policy arguments: {msg}"));
    if given.pool_id.is_some() && given.url.is_some() {
        return Err(args(
            "Cannot specify redirect_pool_id and redirect_url at the same time",
        ));
    }
    if let Some(code) = given.code
        && !REDIRECT_CODES.contains(&code)
    {
        return Err(Error::invalid(format!(
            "Invalid input for field/attribute redirect_http_code. Value: '{code}'. Value should \
             be one of: 301, 302, 303, 307, 308"
        )));
    }
    let code = given.code.or(Some(302));
    Ok(match action {
        L7Action::Reject => Redirect {
            pool_id: None,
            url: None,
            prefix: None,
            code: None,
        },
        L7Action::RedirectToUrl => Redirect {
            url: Some(redirect_url(
                "redirect_url",
                given
                    .url
                    .as_deref()
                    .ok_or_else(|| args("redirect_url must not be None"))?,
            )?),
            pool_id: None,
            prefix: None,
            code,
        },
        L7Action::RedirectPrefix => Redirect {
            prefix: Some(redirect_url(
                "redirect_prefix",
                given
                    .prefix
                    .as_deref()
                    .ok_or_else(|| args("redirect_prefix must not be None"))?,
            )?),
            pool_id: None,
            url: None,
            code,
        },
        L7Action::RedirectToPool => {
            let pool_id = given
                .pool_id
                .ok_or_else(|| args("redirect_pool_id or redirect_pool must not be None"))?;
            let pool = find_pool(&pool_id)
                .filter(|p| p.loadbalancer_id == listener.loadbalancer_id)
                .ok_or_else(|| Error::not_found("Pool", &pool_id))?;
            fields::pool_for_listener(listener.protocol, pool.protocol)?;
            Redirect {
                pool_id: Some(pool_id),
                url: None,
                prefix: None,
                code: None,
            }
        }
    })
}

/// The listener's policies after `moved` takes `position` (its place among the others; past
/// the end means last) and `removed` leaves: numbered 1..n again, as Octavia keeps them. Only
/// the policies whose position changes are returned, `moved` always.
fn renumber(
    snapshot: &Snapshot,
    listener_id: &str,
    moved: Option<&L7Policy>,
    removed: Option<&str>,
) -> Vec<L7Policy> {
    let skip = |p: &L7Policy| {
        p.common.provisioning_status == crate::model::ProvisioningStatus::PendingDelete
            || Some(p.common.id.as_str()) == removed
            || moved.is_some_and(|m| m.common.id == p.common.id)
    };
    let mut order: Vec<L7Policy> = snapshot
        .l7policies_of(listener_id)
        .into_iter()
        .filter(|p| !skip(p))
        .cloned()
        .collect();
    if let Some(moved) = moved {
        let at = (moved.position.max(1) as usize - 1).min(order.len());
        order.insert(at, moved.clone());
    }
    order
        .into_iter()
        .enumerate()
        .filter_map(|(i, mut policy)| {
            let position = i as u32 + 1;
            let is_moved = moved.is_some_and(|m| m.common.id == policy.common.id);
            (std::mem::replace(&mut policy.position, position) != position || is_moved)
                .then_some(policy)
        })
        .collect()
}

/// The provider must render the action (501 otherwise, as Octavia answers).
fn provider_renders_action(plane: &ControlPlane, provider: &str, action: L7Action) -> Decided<()> {
    Ok(plane.provider_renders_action(provider, action)?)
}

fn provider_renders_rule(plane: &ControlPlane, provider: &str, kind: L7RuleType) -> Decided<()> {
    Ok(plane.provider_renders_rule(provider, kind)?)
}

fn position(value: Option<i64>) -> Decided<u32> {
    let value = value.unwrap_or(MAX_POSITION);
    if !(1..=MAX_POSITION).contains(&value) {
        return Err(Error::invalid(format!(
            "Invalid input for field/attribute position. Value: '{value}'. Value must be between \
             1 and {MAX_POSITION}"
        )));
    }
    Ok(value as u32)
}

/// What a new policy is made of, whichever body it came in.
struct NewPolicy {
    action: L7Action,
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    redirect: Redirect,
    position: Option<i64>,
    rules: Option<Vec<RuleCreate>>,
    tags: Option<Vec<String>>,
}

/// Checks and builds a new policy of `listener` (of `lb`) with its rules; `find_pool` looks up
/// the pool it may send to.
fn assemble<'a>(
    plane: &ControlPlane,
    find_pool: impl Fn(&str) -> Option<&'a Pool>,
    lb: &LoadBalancer,
    listener: &Listener,
    new: NewPolicy,
) -> Decided<(L7Policy, Vec<L7Rule>)> {
    if listener.protocol != Protocol::Http {
        return Err(Error::invalid(format!(
            "L7 policies need an HTTP listener; listener {} is {}.",
            listener.common.id,
            listener.protocol.name()
        )));
    }
    provider_renders_action(plane, &lb.provider, new.action)?;
    let redirect = redirect(find_pool, listener, new.action, new.redirect)?;
    let policy = L7Policy {
        common: new_common(
            &lb.common.project_id,
            new.name,
            new.description,
            new.admin_state_up,
            new.tags,
        )?,
        loadbalancer_id: lb.common.id.clone(),
        listener_id: listener.common.id.clone(),
        action: new.action,
        position: position(new.position)?,
        redirect_pool_id: redirect.pool_id,
        redirect_url: redirect.url,
        redirect_prefix: redirect.prefix,
        redirect_http_code: redirect.code,
    };
    let rules = new.rules.unwrap_or_default();
    if rules.len() > MAX_RULES {
        return Err(too_many_rules(&policy.common.id));
    }
    let rules = rules
        .into_iter()
        .map(|rule| build_rule(plane, &lb.provider, &policy, rule))
        .collect::<Decided<Vec<_>>>()?;
    Ok((policy, rules))
}

/// The pool a tree's policy defines inline (not one it names), if it parses: its certificate
/// references are resolved before the write.
pub fn inline_pool(body: &Value) -> Option<super::pools::PoolCreate> {
    match body.get("redirect_pool")? {
        Value::Object(reference) if reference.len() == 1 && reference.contains_key("name") => None,
        pool => serde_json::from_value(pool.clone()).ok(),
    }
}

/// A policy of a listener in a full load balancer tree. Its pool, `redirect_pool`, is a
/// reference by name (`{"name": …}`) to a pool of the tree, or a whole new pool.
#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TreePolicy {
    action: L7Action,
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    redirect_pool: Option<Value>,
    redirect_url: Option<String>,
    redirect_prefix: Option<String>,
    #[serde_as(as = "Option<Int>")]
    redirect_http_code: Option<u16>,
    #[serde_as(as = "Option<Int>")]
    position: Option<i64>,
    rules: Option<Vec<RuleCreate>>,
    tags: Option<Vec<String>>,
}

/// Adds `body`, a policy of `listener` in a full load balancer tree, with its rules (and its
/// pool, when it defines one) to `tree`.
pub fn build_tree(
    plane: &ControlPlane,
    tree: &mut Snapshot,
    lb: &LoadBalancer,
    listener: &Listener,
    body: Value,
    resolved: &super::certificates::Resolved,
) -> Decided<()> {
    fields::listener_has_children(listener.protocol)?;
    let body: TreePolicy = serde_json::from_value(body)
        .map_err(|e| Error::invalid(format!("Invalid input for l7policies: {e}")))?;
    let pool_id = match body.redirect_pool {
        None | Some(Value::Null) => None,
        Some(Value::Object(reference)) if reference.len() == 1 => {
            let name = reference
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::invalid("redirect_pool names a pool of the tree by its name.")
                })?;
            let pool = tree
                .pools
                .iter()
                .find(|p| p.common.name == name)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "Pool '{name}' was referenced but no full definition was found."
                    ))
                })?;
            Some(pool.common.id.clone())
        }
        Some(pool) => {
            let pool = serde_json::from_value(pool)
                .map_err(|e| Error::invalid(format!("Invalid redirect_pool: {e}")))?;
            Some(super::pools::build_tree(
                plane,
                tree,
                lb,
                pool,
                Some(listener.protocol),
                resolved,
            )?)
        }
    };
    let new = NewPolicy {
        action: body.action,
        name: body.name,
        description: body.description,
        admin_state_up: body.admin_state_up,
        redirect: Redirect {
            pool_id,
            url: body.redirect_url,
            prefix: body.redirect_prefix,
            code: body.redirect_http_code,
        },
        position: body.position,
        rules: body.rules,
        tags: body.tags,
    };
    let (policy, rules) = assemble(
        plane,
        |id| tree.pools.iter().find(|p| p.common.id == id),
        lb,
        listener,
        new,
    )?;
    for rule in rules {
        tree.l7rules.push(rule);
    }
    for placed in renumber(tree, &listener.common.id, Some(&policy), None) {
        tree.l7policies.upsert(placed);
    }
    Ok(())
}

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCreate {
    listener_id: String,
    action: L7Action,
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    redirect_pool_id: Option<String>,
    redirect_url: Option<String>,
    redirect_prefix: Option<String>,
    #[serde_as(as = "Option<Int>")]
    redirect_http_code: Option<u16>,
    #[serde_as(as = "Option<Int>")]
    position: Option<i64>,
    rules: Option<Vec<RuleCreate>>,
    tags: Option<Vec<String>>,
}

/// `null` for a redirect field clears it; absent leaves it.
#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    action: Option<L7Action>,
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    #[serde(default, with = "::serde_with::rust::double_option")]
    redirect_pool_id: Option<Option<String>>,
    #[serde(default, with = "::serde_with::rust::double_option")]
    redirect_url: Option<Option<String>>,
    #[serde(default, with = "::serde_with::rust::double_option")]
    redirect_prefix: Option<Option<String>>,
    #[serde_as(as = "Option<Int>")]
    redirect_http_code: Option<u16>,
    #[serde_as(as = "Option<Int>")]
    position: Option<i64>,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleCreate {
    #[serde(rename = "type")]
    kind: L7RuleType,
    compare_type: L7CompareType,
    key: Option<String>,
    value: String,
    invert: Option<bool>,
    admin_state_up: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
}

fn too_many_rules(policy_id: &str) -> Error {
    Error::conflict(format!("Too many rules on L7 policy {policy_id}"))
}

fn build_rule(
    plane: &ControlPlane,
    provider: &str,
    policy: &L7Policy,
    body: RuleCreate,
) -> Decided<L7Rule> {
    fields::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &policy.common.project_id,
    )?;
    provider_renders_rule(plane, provider, body.kind)?;
    let key = check_rule(body.kind, body.compare_type, body.key, &body.value)?;
    Ok(L7Rule {
        common: new_common(
            &policy.common.project_id,
            None,
            None,
            body.admin_state_up,
            body.tags,
        )?,
        loadbalancer_id: policy.loadbalancer_id.clone(),
        l7policy_id: policy.common.id.clone(),
        kind: body.kind,
        compare_type: body.compare_type,
        key,
        value: body.value,
        invert: body.invert.unwrap_or(false),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleUpdate {
    #[serde(rename = "type")]
    kind: Option<L7RuleType>,
    compare_type: Option<L7CompareType>,
    #[serde(default, with = "::serde_with::rust::double_option")]
    key: Option<Option<String>>,
    value: Option<String>,
    invert: Option<bool>,
    admin_state_up: Option<bool>,
    tags: Option<Vec<String>>,
}

/// Creates a policy (with its rules) on a listener the caller may change. The change's value
/// is the policy, at the position it took, and its rules.
pub fn create(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    body: PolicyCreate,
) -> Decided<Change<(L7Policy, Vec<L7Rule>)>> {
    let listener = snapshot.listener(caller, &body.listener_id)?;
    ensure_writable(caller, &listener.common.project_id)?;
    let lb = snapshot.parent(&listener.loadbalancer_id)?;
    ensure_mutable(lb)?;
    fields::listener_has_children(listener.protocol)?;
    fields::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &listener.common.project_id,
    )?;
    let new = NewPolicy {
        action: body.action,
        name: body.name,
        description: body.description,
        admin_state_up: body.admin_state_up,
        redirect: Redirect {
            pool_id: body.redirect_pool_id,
            url: body.redirect_url,
            prefix: body.redirect_prefix,
            code: body.redirect_http_code,
        },
        position: body.position,
        rules: body.rules,
        tags: body.tags,
    };
    let find_pool = |id: &str| snapshot.pool(caller, id).ok();
    let (policy, rules) = assemble(plane, find_pool, lb, listener, new)?;
    let mut batch = Batch::new();
    touch_parent(snapshot, &policy.loadbalancer_id, &mut batch)?;
    let policy = place(snapshot, policy, &mut batch);
    for rule in &rules {
        batch.put(rule);
    }
    super::quotas::enforce(snapshot, &policy.common.project_id, &batch)?;
    let lb_id = policy.loadbalancer_id.clone();
    Ok(Change::new(batch, (policy, rules)).with_job(&lb_id))
}

/// Puts `policy` at its position among its listener's policies: every policy whose position
/// changes goes into `batch`, `policy` with them. Returns `policy` as placed.
fn place(snapshot: &Snapshot, policy: L7Policy, batch: &mut Batch) -> L7Policy {
    let placed = renumber(snapshot, &policy.listener_id, Some(&policy), None);
    for changed in &placed {
        batch.put(changed);
    }
    placed
        .into_iter()
        .find(|p| p.common.id == policy.common.id)
        .unwrap_or(policy)
}

/// Changes a policy the caller may write.
pub fn update(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    id: &str,
    body: PolicyUpdate,
) -> Decided<Change<L7Policy>> {
    let current = snapshot.l7policy(caller, id)?;
    ensure_writable(caller, &current.common.project_id)?;
    let lb = snapshot.parent(&current.loadbalancer_id)?;
    ensure_mutable(lb)?;
    let listener = snapshot.listener(caller, &current.listener_id)?;
    let mut policy = current.clone();
    // Naming a redirect target implies its action, as in Octavia.
    let action = body.action.unwrap_or(
        match (
            &body.redirect_pool_id,
            &body.redirect_url,
            &body.redirect_prefix,
        ) {
            (Some(Some(_)), _, _) => L7Action::RedirectToPool,
            (_, Some(Some(_)), _) => L7Action::RedirectToUrl,
            (_, _, Some(Some(_))) => L7Action::RedirectPrefix,
            _ => policy.action,
        },
    );
    provider_renders_action(plane, &lb.provider, action)?;
    // A new action starts from its own fields: the old action's targets are dropped
    // (Octavia resets them), those given in the body are checked against it.
    let changed = action != policy.action;
    let keep = |given: Option<Option<String>>, old: &Option<String>| match given {
        Some(value) => value,
        None if changed => None,
        None => old.clone(),
    };
    let redirect = redirect(
        |id| snapshot.pool(caller, id).ok(),
        listener,
        action,
        Redirect {
            pool_id: keep(body.redirect_pool_id, &policy.redirect_pool_id),
            url: keep(body.redirect_url, &policy.redirect_url),
            prefix: keep(body.redirect_prefix, &policy.redirect_prefix),
            code: body
                .redirect_http_code
                .or(policy.redirect_http_code.filter(|_| !changed)),
        },
    )?;
    policy.action = action;
    (
        policy.redirect_pool_id,
        policy.redirect_url,
        policy.redirect_prefix,
        policy.redirect_http_code,
    ) = (
        redirect.pool_id,
        redirect.url,
        redirect.prefix,
        redirect.code,
    );
    if let Some(name) = body.name {
        policy.common.name = fields::text("name", Some(name), 255)?;
    }
    if let Some(description) = body.description {
        policy.common.description = fields::text("description", Some(description), 255)?;
    }
    if let Some(up) = body.admin_state_up {
        policy.common.admin_state_up = up;
    }
    if let Some(tags) = body.tags {
        policy.common.tags = tags;
    }
    if body.position.is_some() {
        policy.position = position(body.position)?;
    }
    status::step(&mut policy.common, Step::Update, &now());
    let mut batch = Batch::new();
    touch_parent(snapshot, &policy.loadbalancer_id, &mut batch)?;
    let policy = place(snapshot, policy, &mut batch);
    let lb_id = policy.loadbalancer_id.clone();
    Ok(Change::new(batch, policy).with_job(&lb_id))
}

/// Deletes a policy the caller may write; the listener's other policies close the gap.
pub fn delete(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Change<()>> {
    let policy = snapshot.l7policy(caller, id)?;
    ensure_writable(caller, &policy.common.project_id)?;
    let mut batch = Batch::new();
    touch_parent(snapshot, &policy.loadbalancer_id, &mut batch)?;
    for changed in renumber(snapshot, &policy.listener_id, None, Some(id)) {
        batch.put(&changed);
    }
    let mut policy = policy.clone();
    status::step(&mut policy.common, Step::Delete, &now());
    batch.put(&policy);
    Ok(Change::new(batch, ()).with_job(&policy.loadbalancer_id))
}

/// Adds a rule to a policy the caller may change.
pub fn create_rule(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    policy_id: &str,
    body: RuleCreate,
) -> Decided<Change<L7Rule>> {
    let policy = snapshot.l7policy(caller, policy_id)?;
    ensure_writable(caller, &policy.common.project_id)?;
    let lb = snapshot.parent(&policy.loadbalancer_id)?;
    ensure_mutable(lb)?;
    if snapshot.l7rules_of(policy_id).count() >= MAX_RULES {
        return Err(too_many_rules(policy_id));
    }
    let rule = build_rule(plane, &lb.provider, policy, body)?;
    let mut batch = Batch::new();
    touch_parent(snapshot, &rule.loadbalancer_id, &mut batch)?;
    batch.put(&rule);
    super::quotas::enforce(snapshot, &rule.common.project_id, &batch)?;
    let lb_id = rule.loadbalancer_id.clone();
    Ok(Change::new(batch, rule).with_job(&lb_id))
}

/// Changes a rule the caller may write.
pub fn update_rule(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    policy_id: &str,
    id: &str,
    body: RuleUpdate,
) -> Decided<Change<L7Rule>> {
    let current = snapshot.l7rule(caller, policy_id, id)?;
    ensure_writable(caller, &current.common.project_id)?;
    let lb = snapshot.parent(&current.loadbalancer_id)?;
    let mut rule = current.clone();
    rule.kind = body.kind.unwrap_or(rule.kind);
    rule.compare_type = body.compare_type.unwrap_or(rule.compare_type);
    let key = body.key.unwrap_or(rule.key.clone());
    rule.value = body.value.unwrap_or(rule.value);
    provider_renders_rule(plane, &lb.provider, rule.kind)?;
    rule.key = check_rule(rule.kind, rule.compare_type, key, &rule.value)?;
    rule.invert = body.invert.unwrap_or(rule.invert);
    rule.common.admin_state_up = body.admin_state_up.unwrap_or(rule.common.admin_state_up);
    if let Some(tags) = body.tags {
        rule.common.tags = tags;
    }
    status::step(&mut rule.common, Step::Update, &now());
    let lb_id = rule.loadbalancer_id.clone();
    child_change(snapshot, &lb_id, &rule, rule.clone())
}

/// Deletes a rule the caller may write.
pub fn delete_rule(
    snapshot: &Snapshot,
    caller: &impl Caller,
    policy_id: &str,
    id: &str,
) -> Decided<Change<()>> {
    let rule = snapshot.l7rule(caller, policy_id, id)?;
    ensure_writable(caller, &rule.common.project_id)?;
    let mut rule = rule.clone();
    status::step(&mut rule.common, Step::Delete, &now());
    let lb_id = rule.loadbalancer_id.clone();
    child_change(snapshot, &lb_id, &rule, ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_checked_as_octavia_checks_them() {
        use L7CompareType::*;
        use L7RuleType::*;
        let ok = |kind, compare, key: Option<&str>, value: &str| {
            check_rule(kind, compare, key.map(Into::into), value).is_ok()
        };
        assert!(ok(Path, StartsWith, None, "/api"));
        assert!(ok(HostName, EqualTo, None, "www.example.com"));
        assert!(ok(Header, Contains, Some("X-Tenant"), "\"two words\""));
        assert!(ok(Cookie, EqualTo, Some("session"), "abc123"));
        assert!(ok(Path, Regex, None, "^/(a|b)/[0-9]+$"));
        assert!(ok(FileType, EqualTo, None, "jpg"));
        // A space would end the value in the device's configuration.
        assert!(!ok(Path, StartsWith, None, "/a b"));
        assert!(!ok(Path, StartsWith, None, "/a\n    http-request deny"));
        assert!(!ok(Header, EqualTo, None, "x"), "a header rule needs a key");
        assert!(!ok(Header, EqualTo, Some("X Y"), "x"));
        assert!(!ok(Cookie, EqualTo, Some("c"), "a;b"));
        assert!(!ok(FileType, StartsWith, None, "jp"));
        assert!(!ok(Path, Regex, None, "(unclosed"));
        assert!(!ok(Path, EqualTo, None, &"a".repeat(256)));
    }

    #[test]
    fn redirect_urls_are_absolute_http_urls() {
        assert!(redirect_url("u", "https://example.com/a?b=c").is_ok());
        assert!(redirect_url("u", "http://[2001:db8::1]:8080/").is_ok());
        for bad in [
            "ftp://example.com/",
            "/relative",
            "https://",
            "https://example.com/a b",
            "https://example.com/\ncode 301",
            "javascript:alert(1)",
        ] {
            assert!(redirect_url("u", bad).is_err(), "{bad:?} accepted");
        }
    }
}

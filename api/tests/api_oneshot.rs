//! The API's handlers without a socket, a disk or a driver: a router over an in-memory store,
//! called with `tower::ServiceExt::oneshot` (as axum's own testing example does). Auth, input
//! validation, paging and the shape of every error, in milliseconds.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use lbaas_api::auth::TokenGrant;
use lbaas_api::{Api, Auth, Policy, router};
use lbaas_control::ControlPlane;
use lbaas_control::drivers::Drivers;
use lbaas_core::store::MemoryStore;
use lbaas_telemetry::Metrics;
use lbaas_telemetry::metrics::RequestLabels;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ADMIN: &str = "admin-token";
const MEMBER: &str = "member-token";
const READER: &str = "reader-token";

/// A host with no drivers, whose jobs nobody runs (the receiver is kept so sends succeed).
fn host() -> (Router, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let grant = |project: &str, role: &str| TokenGrant {
        project_id: project.into(),
        roles: vec![role.into()],
    };
    let auth = Auth::Tokens(HashMap::from([
        (ADMIN.to_owned(), grant("admin-project", "admin")),
        (MEMBER.to_owned(), grant("tenant", "load-balancer_member")),
        (READER.to_owned(), grant("tenant", "load-balancer_observer")),
    ]));
    app(auth, Policy::Default)
}

/// The API over an empty in-memory store and no driver, its callers read through `policy`.
fn app(auth: Auth, policy: Policy) -> (Router, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
    let plane = ControlPlane::new(
        Arc::new(MemoryStore::new()),
        Arc::new(Drivers::none()),
        None,
        jobs,
    );
    let api = Api::new(Arc::new(plane), auth).with_policy(policy);
    (router(Arc::new(api)), queue)
}

/// One request; the status and the body as JSON (`null` when empty or not JSON).
async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("x-auth-token", token);
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("an answer");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Octavia's error shape: a client or server fault code, a readable message, no debug info.
fn assert_fault(status: StatusCode, body: &Value, wanted: StatusCode, mentions: &str) {
    assert_eq!(status, wanted, "{body}");
    let code = if wanted.is_client_error() {
        "Client"
    } else {
        "Server"
    };
    assert_eq!(body["faultcode"], code, "{body}");
    assert!(body["debuginfo"].is_null(), "{body}");
    let message = body["faultstring"].as_str().unwrap_or_default();
    assert!(
        message.contains(mentions),
        "{message:?} does not mention {mentions:?}"
    );
}

#[tokio::test]
async fn tokens_roles_and_projects_are_enforced() {
    let (app, _jobs) = host();
    let (status, body) = call(&app, "GET", "/v2/lbaas/loadbalancers", None, None).await;
    assert_fault(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "requires authentication",
    );
    let (status, body) = call(&app, "GET", "/v2/lbaas/loadbalancers", Some("forged"), None).await;
    assert_fault(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "requires authentication",
    );

    for token in [MEMBER, READER] {
        let (status, body) = call(&app, "GET", "/v2/lbaas/loadbalancers", Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["loadbalancers"], json!([]));
        // Members see their project's devices; the audit log and drivers are admins' only.
        for path in ["/v2/admin/audit", "/v2/admin/drivers"] {
            let (status, body) = call(&app, "GET", path, Some(token), None).await;
            assert_fault(
                status,
                &body,
                StatusCode::FORBIDDEN,
                "Policy does not allow",
            );
        }
    }
    // An observer reads but does not write.
    let body = r#"{"loadbalancer": {"vip_subnet_id": "subnet-1"}}"#;
    let (status, answer) = call(
        &app,
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(READER),
        Some(body),
    )
    .await;
    assert_fault(
        status,
        &answer,
        StatusCode::FORBIDDEN,
        "Policy does not allow",
    );
    let (status, body) = call(&app, "GET", "/v2/admin/devices", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `--policy`: each of Octavia's sample policies honours its own roles alone.
#[tokio::test]
async fn each_policy_honours_its_own_roles() {
    let grant = |role: &str| TokenGrant {
        project_id: "tenant".into(),
        roles: vec![role.into()],
    };
    let tokens = HashMap::from([
        ("keystone-member".to_owned(), grant("member")),
        ("octavia-member".to_owned(), grant("load-balancer_member")),
    ]);
    let answers = |policy: Policy| {
        let tokens = tokens.clone();
        async move {
            let (app, _jobs) = app(Auth::Tokens(tokens), policy);
            let mut statuses = Vec::new();
            for token in ["keystone-member", "octavia-member"] {
                let (status, _) =
                    call(&app, "GET", "/v2/lbaas/loadbalancers", Some(token), None).await;
                statuses.push(status.as_u16());
            }
            statuses
        }
    };
    assert_eq!(answers(Policy::Default).await, [200, 200]);
    assert_eq!(answers(Policy::Advanced).await, [403, 200]);
    assert_eq!(answers(Policy::KeystoneDefaultRoles).await, [200, 403]);
}

#[tokio::test]
async fn bad_requests_get_octavia_faults() {
    let (app, _jobs) = host();
    let post = |body: &'static str| {
        let app = app.clone();
        async move {
            call(
                &app,
                "POST",
                "/v2/lbaas/loadbalancers",
                Some(MEMBER),
                Some(body),
            )
            .await
        }
    };
    let (status, body) = post("{not json").await;
    assert_fault(status, &body, StatusCode::BAD_REQUEST, "");
    let (status, body) = post(r#"{"loadbalancer": {"vip_subnet_id": "s", "colour": "red"}}"#).await;
    assert_fault(status, &body, StatusCode::BAD_REQUEST, "colour");
    let (status, body) = post(r#"{"loadbalancer": {"vip_subnet_id": 7}}"#).await;
    assert_fault(status, &body, StatusCode::BAD_REQUEST, "vip_subnet_id");
    // The VIP is checked before the provider, as Octavia does.
    let (status, body) = post(r#"{"loadbalancer": {"vip_subnet_id": "nowhere"}}"#).await;
    assert_fault(status, &body, StatusCode::BAD_REQUEST, "Subnet nowhere");
    // Well formed, but this host has no driver to run it.
    let network = r#"{"network": {"id": "net-vip", "subnets": [{"id": "subnet-vip", "cidr": "10.1.0.0/24"}]}}"#;
    let (status, created) = call(
        &app,
        "POST",
        "/v2/admin/networks",
        Some(ADMIN),
        Some(network),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body) = post(r#"{"loadbalancer": {"vip_subnet_id": "subnet-vip"}}"#).await;
    assert_fault(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "No provider is loaded",
    );

    let (status, body) = call(
        &app,
        "GET",
        "/v2/lbaas/loadbalancers/4e0f0ab6-0000-4000-8000-000000000000",
        Some(MEMBER),
        None,
    )
    .await;
    assert_fault(status, &body, StatusCode::NOT_FOUND, "4e0f0ab6");
    let (status, _) = call(&app, "GET", "/v2/lbaas/no-such-thing", Some(MEMBER), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A device of a driver this host does not have, and one aimed outside the device networks.
    let device = |driver: &str, url: &str| {
        json!({"device": {"name": "d", "kind": "virtual", "driver": driver,
                          "management_url": url, "capacity": 4}})
        .to_string()
    };
    let body = device("acme-adc", "http://127.0.0.1:9443");
    let (status, answer) = call(&app, "POST", "/v2/admin/devices", Some(ADMIN), Some(&body)).await;
    assert_fault(status, &answer, StatusCode::BAD_REQUEST, "not loaded");
}

#[tokio::test]
async fn lists_page_by_limit_and_marker() {
    let (app, _jobs) = host();
    for n in 0..5 {
        let body = json!({"network": {"name": format!("net-{n}"),
                          "subnets": [{"cidr": format!("10.{n}.0.0/24")}]}})
        .to_string();
        let (status, created) =
            call(&app, "POST", "/v2/admin/networks", Some(ADMIN), Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let mut path = "/v2/admin/networks?limit=2".to_owned();
    let mut pages = Vec::new();
    loop {
        let (status, page) = call(&app, "GET", &path, Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let names: Vec<String> = page["networks"]
            .as_array()
            .expect("networks")
            .iter()
            .filter_map(|n| n["name"].as_str().map(str::to_owned))
            .collect();
        pages.push(names);
        let next = page["networks_links"]
            .as_array()
            .and_then(|links| links.iter().find(|l| l["rel"] == "next"))
            .and_then(|l| l["href"].as_str())
            .map(str::to_owned);
        match next {
            Some(href) => {
                let query = href.split_once('?').map(|(_, q)| q).unwrap_or_default();
                path = format!("/v2/admin/networks?{query}");
            }
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let mut all: Vec<String> = pages.concat();
    all.sort();
    assert_eq!(all, ["net-0", "net-1", "net-2", "net-3", "net-4"]);
    for bad in ["limit=-1", "limit=many", "marker=no-such-network"] {
        let (status, body) = call(
            &app,
            "GET",
            &format!("/v2/admin/networks?{bad}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert!(status.is_client_error(), "{bad}: {status} {body}");
        assert_eq!(body["faultcode"], "Client", "{bad}: {body}");
    }
}

#[tokio::test]
async fn the_version_documents_answer_without_a_token() {
    let (app, _jobs) = host();
    let (status, body) = call(&app, "GET", "/", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["versions"].as_array().is_some_and(|v| !v.is_empty()),
        "{body}"
    );
}

/// A host whose drivers are fixed at start takes no lifecycle step: admins are told why,
/// others are refused by policy first, and an unknown driver is not found.
#[tokio::test]
async fn driver_steps_on_a_fixed_host_are_refused_with_the_reason() {
    let (app, _jobs) = host();
    for (method, path) in [
        ("POST", "/v2/admin/drivers"),
        ("POST", "/v2/admin/drivers/haproxy/rollback"),
        ("POST", "/v2/admin/drivers/haproxy/drain"),
        ("POST", "/v2/admin/drivers/haproxy/versions/1.0/activate"),
        ("POST", "/v2/admin/drivers/haproxy/versions/1.0/disable"),
        ("DELETE", "/v2/admin/drivers/haproxy/versions/1.0"),
    ] {
        let (status, body) = call(&app, method, path, Some(MEMBER), Some("\0asm")).await;
        assert_fault(
            status,
            &body,
            StatusCode::FORBIDDEN,
            "Policy does not allow",
        );
        let (status, body) = call(&app, method, path, Some(ADMIN), Some("\0asm")).await;
        assert_fault(status, &body, StatusCode::CONFLICT, "fixed at start");
    }
    let (status, body) = call(&app, "GET", "/v2/admin/drivers/nothing", Some(ADMIN), None).await;
    assert_fault(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "Driver nothing could not be found",
    );
}

/// Integers may come as JSON strings (`"80"`), as Octavia takes them; anything else that is
/// not an integer is refused naming the field.
#[tokio::test]
async fn integers_sent_as_strings_are_taken() {
    let (app, _jobs) = host();
    let member = |port: &str| {
        format!(
            r#"{{"member": {{"address": "192.0.2.5", "protocol_port": {port}, "weight": "3"}}}}"#
        )
    };
    let path = "/v2/lbaas/pools/no-such-pool/members";
    // Taken as integers: the request gets as far as the missing pool.
    for port in [r#""80""#, "80"] {
        let (status, body) = call(&app, "POST", path, Some(ADMIN), Some(&member(port))).await;
        assert_fault(status, &body, StatusCode::NOT_FOUND, "no-such-pool");
    }
    let (status, body) = call(
        &app,
        "POST",
        path,
        Some(ADMIN),
        Some(&member(r#""eighty""#)),
    )
    .await;
    assert_fault(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "Invalid input for field/attribute member.protocol_port",
    );
    let monitor = r#"{"healthmonitor": {"pool_id": "no-such-pool", "type": "TCP", "delay": "5", "timeout": "10", "max_retries": "3"}}"#;
    let (_, body) = call(
        &app,
        "POST",
        "/v2/lbaas/healthmonitors",
        Some(ADMIN),
        Some(monitor),
    )
    .await;
    let fault = body["faultstring"].as_str().unwrap_or_default();
    assert!(
        fault.contains("no-such-pool could not be found"),
        "the body was taken and the pool looked up: {body}"
    );
}

/// Octavia's quotas API: admins set, reset and list them; a project reads its own; values are
/// bounded; both spellings of the renamed keys are taken and shown.
#[tokio::test]
async fn quotas_are_set_read_and_reset_by_whom_octavia_lets() {
    let (app, _jobs) = host();
    let path = "/v2/lbaas/quotas/tenant";
    let (status, body) = call(&app, "GET", path, Some(READER), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["quota"]["loadbalancer"], -1,
        "no quota of its own: no limit"
    );
    let (status, body) = call(&app, "GET", "/v2/lbaas/quotas/other", Some(MEMBER), None).await;
    assert_fault(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "Policy does not allow",
    );

    let update = r#"{"quota": {"load_balancer": 2, "member": "5"}}"#;
    let (status, body) = call(&app, "PUT", path, Some(MEMBER), Some(update)).await;
    assert_fault(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "Policy does not allow",
    );
    let (status, body) = call(&app, "PUT", path, Some(ADMIN), Some(update)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for (key, value) in [
        ("loadbalancer", 2),
        ("load_balancer", 2),
        ("member", 5),
        ("listener", -1),
    ] {
        assert_eq!(body["quota"][key], value, "{key}: {body}");
    }
    let (status, body) = call(
        &app,
        "PUT",
        path,
        Some(ADMIN),
        Some(r#"{"quota": {"pool": -2}}"#),
    )
    .await;
    assert_fault(status, &body, StatusCode::BAD_REQUEST, "quota.pool");

    // The project sees its own in the list; an admin sees every project's.
    let (_, body) = call(&app, "GET", "/v2/lbaas/quotas", Some(READER), None).await;
    assert_eq!(body["quotas"][0]["project_id"], "tenant", "{body}");
    assert_eq!(body["quotas"][0]["member"], 5, "{body}");
    let (_, body) = call(
        &app,
        "GET",
        "/v2/lbaas/quotas/tenant/default",
        Some(READER),
        None,
    )
    .await;
    assert_eq!(body["quota"]["member"], -1, "{body}");

    let (status, _) = call(&app, "DELETE", path, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, body) = call(&app, "GET", path, Some(READER), None).await;
    assert_eq!(body["quota"]["member"], -1, "reset to the default: {body}");
}

/// A project's members create and delete networks and subnets of their own through the
/// Neutron subset; readers cannot, other projects do not see them, and Neutron's checks hold.
#[tokio::test]
async fn projects_keep_networks_of_their_own() {
    let (app, _jobs) = host();
    // A bodiless request's status.
    let status_of = |method: &'static str, path: String, token: &'static str| {
        let app = app.clone();
        async move { call(&app, method, &path, Some(token), None).await.0 }
    };
    let (status, body) = call(
        &app,
        "POST",
        "/v2.0/networks",
        Some(READER),
        Some(r#"{"network": {"name": "nope"}}"#),
    )
    .await;
    assert_fault(status, &body, StatusCode::FORBIDDEN, "Policy");
    let (status, body) = call(
        &app,
        "POST",
        "/v2.0/networks",
        Some(MEMBER),
        Some(r#"{"network": {"name": "vips", "port_security_enabled": false}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["network"]["project_id"], "tenant");
    assert_eq!(body["network"]["shared"], false);
    let network = body["network"]["id"].as_str().expect("id").to_owned();

    let subnet = |cidr: &str, version: u8| {
        json!({"subnet": {"network_id": network, "cidr": cidr, "ip_version": version,
                          "name": format!("v{version}")}})
        .to_string()
    };
    let (status, body) = call(
        &app,
        "POST",
        "/v2.0/subnets",
        Some(MEMBER),
        Some(&subnet("fdde:1a92::/64", 4)),
    )
    .await;
    assert_fault(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "not an IPv4 network",
    );
    let mut ids = Vec::new();
    for (cidr, version) in [("10.1.1.0/24", 4), ("fdde:1a92::/64", 6)] {
        let (status, body) = call(
            &app,
            "POST",
            "/v2.0/subnets",
            Some(MEMBER),
            Some(&subnet(cidr, version)),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["subnet"]["ip_version"], version);
        ids.push(body["subnet"]["id"].as_str().expect("id").to_owned());
    }
    let (_, shown) = call(
        &app,
        "GET",
        &format!("/v2.0/networks/{network}"),
        Some(READER),
        None,
    )
    .await;
    assert_eq!(shown["network"]["subnets"], json!(ids));

    // Another project's network is neither seen nor touched.
    let (status, body) = call(
        &app,
        "POST",
        "/v2.0/networks",
        Some(ADMIN),
        Some(r#"{"network": {"name": "ops"}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let theirs = body["network"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        status_of("GET", format!("/v2.0/networks/{theirs}"), MEMBER).await,
        StatusCode::NOT_FOUND
    );
    let (_, listed) = call(&app, "GET", "/v2.0/networks", Some(MEMBER), None).await;
    assert_eq!(listed["networks"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        status_of("DELETE", format!("/v2.0/networks/{theirs}"), MEMBER).await,
        StatusCode::NOT_FOUND
    );

    // Subnets, then the network, go; a reader may not delete them.
    assert_eq!(
        status_of("DELETE", format!("/v2.0/subnets/{}", ids[0]), READER).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_of("DELETE", format!("/v2.0/subnets/{}", ids[0]), MEMBER).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status_of("DELETE", format!("/v2.0/networks/{network}"), MEMBER).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status_of("GET", format!("/v2.0/subnets/{}", ids[1]), MEMBER).await,
        StatusCode::NOT_FOUND,
        "the network's subnets go with it"
    );
}

/// A handler that panics answers Octavia's `500` fault instead of dropping the connection, and
/// the host keeps answering.
#[tokio::test]
async fn a_panicking_handler_answers_a_500_fault() {
    let edge = Arc::new(lbaas_api::edge::Edge::new(
        "127.0.0.1:9876".parse().expect("address"),
    ));
    let metrics = Metrics::default();
    let app: Router = lbaas_api::metrics::instrument(
        Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    panic!("a bug");
                    #[allow(unreachable_code)]
                    ""
                }),
            )
            .route("/fine", axum::routing::get(|| async { "fine" })),
        edge,
        metrics.clone(),
    );
    let (status, body) = call(&app, "GET", "/boom", None, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["faultcode"], "Server", "{body}");
    assert!(
        !body["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("a bug"),
        "the panic's message is logged, not sent: {body}"
    );
    let (status, _) = call(&app, "GET", "/fine", None, None).await;
    assert_eq!(status, StatusCode::OK);
    // Each counted once in this router's registry, the panic as the 500 it was answered.
    let counted = |route: &str, status: u16| {
        metrics
            .http_requests
            .get_or_create(&RequestLabels {
                method: "GET".into(),
                route: route.into(),
                status,
            })
            .get()
    };
    assert_eq!(counted("/boom", 500), 1);
    assert_eq!(counted("/fine", 200), 1);
}

/// With a public URL, links are built from it whatever `Host` the request named, and `Host`
/// may name it.
#[tokio::test]
async fn links_follow_the_public_url() {
    let (jobs, _queue) = tokio::sync::mpsc::unbounded_channel();
    let plane = ControlPlane::new(
        Arc::new(MemoryStore::new()),
        Arc::new(Drivers::none()),
        None,
        jobs,
    );
    let edge = lbaas_api::edge::Edge::new("0.0.0.0:9876".parse().expect("address"))
        .public_url("https://lb.example.com")
        .expect("public url");
    let app = router(Arc::new(
        Api::new(Arc::new(plane), Auth::None).with_edge(edge),
    ));
    for host in ["lb.example.com", "10.0.0.5:9876"] {
        let request = Request::builder()
            .uri("/")
            .header("host", host)
            .body(Body::empty())
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            body["versions"][0]["links"][0]["href"], "https://lb.example.com/v2/",
            "{body}"
        );
    }
    let request = Request::builder()
        .uri("/")
        .header("host", "evil.example")
        .body(Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Neutron's default quotas: a project has at most 100 networks and 100 subnets; the next is
/// `409`, and another project is not held by them.
#[tokio::test]
async fn projects_networks_and_subnets_have_neutrons_quotas() {
    let (app, _jobs) = host();
    let mut network = String::new();
    for i in 0..lbaas_control::octavia::networks::MAX_NETWORKS {
        let (status, body) = call(
            &app,
            "POST",
            "/v2.0/networks",
            Some(MEMBER),
            Some(&json!({"network": {"name": format!("n{i}")}}).to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        network = body["network"]["id"].as_str().expect("id").to_owned();
    }
    let (status, body) = call(
        &app,
        "POST",
        "/v2.0/networks",
        Some(MEMBER),
        Some(r#"{"network": {"name": "one more"}}"#),
    )
    .await;
    assert_fault(status, &body, StatusCode::CONFLICT, "Quota exceeded");
    for i in 0..lbaas_control::octavia::networks::MAX_SUBNETS {
        let cidr = format!("10.{}.{}.0/24", i / 256, i % 256);
        let (status, body) = call(
            &app,
            "POST",
            "/v2.0/subnets",
            Some(MEMBER),
            Some(
                &json!({"subnet": {"network_id": network, "cidr": cidr, "ip_version": 4}})
                    .to_string(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = call(
        &app,
        "POST",
        "/v2.0/subnets",
        Some(MEMBER),
        Some(
            &json!({"subnet": {"network_id": network, "cidr": "10.200.0.0/24", "ip_version": 4}})
                .to_string(),
        ),
    )
    .await;
    assert_fault(status, &body, StatusCode::CONFLICT, "Quota exceeded");
    let (status, body) = call(
        &app,
        "POST",
        "/v2.0/networks",
        Some(ADMIN),
        Some(r#"{"network": {"name": "the admin's own"}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

const OTHER: &str = "other-token";

/// A host with no drivers over a store that already holds what a tenant built: a VIP network,
/// and project `tenant`'s ACTIVE load balancer with an HTTP listener on port 80, a pool with a
/// health monitor and one member at 10.0.1.11:8080.
fn seeded() -> (Router, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use lbaas_core::model::{HealthMonitor, Listener, LoadBalancer, Member, Network, Pool};
    use lbaas_core::store::Batch;
    let record = |kind_fields: Value, id: &str| {
        let mut value = json!({
            "id": id, "project_id": "tenant", "name": id, "description": "",
            "admin_state_up": true, "provisioning_status": "ACTIVE",
            "operating_status": "ONLINE", "created_at": "2026-12-01T00:00:00Z",
            "updated_at": null, "tags": [], "loadbalancer_id": "lb-1",
        });
        value
            .as_object_mut()
            .expect("object")
            .extend(kind_fields.as_object().expect("fields").clone());
        value
    };
    fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).expect("a record")
    }
    let store = MemoryStore::new();
    let network: Network = typed(json!({
        "id": "net-vip", "name": "public", "project_id": null, "vlan": 100,
        "subnets": [{"id": "subnet-vip", "name": "", "cidr": "127.0.10.0/24",
                     "gateway_ip": null}],
        "created_at": "2026-12-01T00:00:00Z"}));
    let lb: LoadBalancer = typed(record(
        json!({"vip_address": "127.0.10.2", "vip_network_id": "net-vip",
               "vip_subnet_id": "subnet-vip", "vip_port_id": "port-1", "provider": "haproxy",
               "flavor_id": null, "device_id": null, "fault": null}),
        "lb-1",
    ));
    let listener: Listener = typed(record(
        json!({"protocol": "HTTP", "protocol_port": 80, "connection_limit": -1,
               "default_pool_id": "pool-1", "timeout_client_data": 50000,
               "timeout_member_connect": 5000, "timeout_member_data": 50000,
               "timeout_tcp_inspect": 0, "allowed_cidrs": []}),
        "listener-1",
    ));
    let pool: Pool = typed(record(
        json!({"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
               "session_persistence": null, "healthmonitor_id": "hm-1"}),
        "pool-1",
    ));
    let member: Member = typed(record(
        json!({"pool_id": "pool-1", "address": "10.0.1.11", "protocol_port": 8080,
               "weight": 1, "backup": false, "subnet_id": null, "monitor_address": null,
               "monitor_port": null}),
        "member-1",
    ));
    let monitor: HealthMonitor = typed(record(
        json!({"pool_id": "pool-1", "type": "TCP", "delay": 5, "timeout": 3,
               "max_retries": 3, "max_retries_down": 3, "http_method": null,
               "url_path": null, "expected_codes": null}),
        "hm-1",
    ));
    let mut batch = Batch::new();
    batch
        .put(&network)
        .put(&lb)
        .put(&listener)
        .put(&pool)
        .put(&member)
        .put(&monitor);
    batch.commit(&store).expect("seed the store");
    let grant = |project: &str, role: &str| TokenGrant {
        project_id: project.into(),
        roles: vec![role.into()],
    };
    let auth = Auth::Tokens(HashMap::from([
        (ADMIN.to_owned(), grant("admin-project", "admin")),
        (MEMBER.to_owned(), grant("tenant", "load-balancer_member")),
        (OTHER.to_owned(), grant("other", "load-balancer_member")),
    ]));
    let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
    let plane = ControlPlane::new(Arc::new(store), Arc::new(Drivers::none()), None, jobs)
        .with_address_rules(lbaas_control::addresses::AddressRules {
            device_networks: vec!["127.0.0.0/8".parse().expect("a network")],
            ..Default::default()
        })
        .with_local_keys(lbaas_control::secrets::LocalKeys::new(&[9; 32]));
    let api = Api::new(Arc::new(plane), auth);
    (router(Arc::new(api)), queue)
}

/// Every request a tenant or an operator can get wrong, answered with the status Octavia
/// gives and a message naming what is wrong; and nothing stored changes.
#[tokio::test]
async fn bad_requests_get_their_octavia_status_and_a_readable_fault() {
    let (app, mut jobs) = seeded();
    let listener =
        |fields: &str| format!(r#"{{"listener": {{"loadbalancer_id": "lb-1", {fields}}}}}"#);
    let device = |fields: &str| {
        format!(r#"{{"device": {{"kind": "virtual", "driver": "haproxy", {fields}}}}}"#)
    };
    let lbs = "/v2/lbaas/loadbalancers";
    let listeners = "/v2/lbaas/listeners";
    let members = "/v2/lbaas/pools/pool-1/members";
    let cases: Vec<(&str, &str, &str, String, u16, &str)> = vec![
        // Bodies that are not what the resource takes.
        (MEMBER, "POST", lbs, "{not json".into(), 400, "Invalid input"),
        (MEMBER, "POST", lbs, String::new(), 400, "empty"),
        (MEMBER, "POST", lbs, r#"{"loadbalancer": {"vip_subnet_id": 42}}"#.into(), 400, "invalid type"),
        (MEMBER, "POST", lbs, r#"{"loadbalancer": {"vip_subnet_id": "subnet-vip", "colour": "red"}}"#.into(), 400, "unknown field"),
        (MEMBER, "POST", lbs, r#"{"loadbalancer": {}}"#.into(), 400, "vip_subnet_id"),
        (MEMBER, "POST", lbs, r#"{"loadbalancer": {"vip_subnet_id": "nope"}}"#.into(), 400, "Subnet nope"),
        (MEMBER, "POST", lbs, r#"{"loadbalancer": {"vip_subnet_id": "subnet-vip", "project_id": "other"}}"#.into(), 403, "Policy"),
        // Listeners.
        (MEMBER, "POST", listeners, listener(r#""protocol": "TCP", "protocol_port": 70000"#), 400, "70000"),
        (MEMBER, "POST", listeners, listener(r#""protocol": "TCP", "protocol_port": 0"#), 400, "not a port"),
        (MEMBER, "POST", listeners, listener(r#""protocol": "GOPHER", "protocol_port": 70"#), 400, "unknown variant"),
        (OTHER, "POST", listeners, listener(r#""protocol": "TCP", "protocol_port": 82"#), 403, "Policy does not allow"),
        // Members, monitors, pools.
        (MEMBER, "POST", members, r#"{"member": {"address": "not-an-ip", "protocol_port": 80}}"#.into(), 400, "not an IP address"),
        (MEMBER, "POST", members, r#"{"member": {"address": "10.0.1.50", "protocol_port": 80, "weight": 300}}"#.into(), 400, "weight 300"),
        (MEMBER, "POST", members, r#"{"member": {"address": "10.0.1.11", "protocol_port": 8080}}"#.into(), 409, "already using"),
        (OTHER, "POST", members, r#"{"member": {"address": "10.0.1.60", "protocol_port": 80}}"#.into(), 403, "Policy does not allow"),
        (MEMBER, "POST", "/v2/lbaas/healthmonitors", r#"{"healthmonitor": {"pool_id": "pool-1", "type": "TCP", "delay": 1, "timeout": 5, "max_retries": 3}}"#.into(), 409, "already has"),
        (MEMBER, "PUT", "/v2/lbaas/pools/pool-1", r#"{"pool": {"lb_algorithm": "FASTEST"}}"#.into(), 400, "unknown variant"),
        (MEMBER, "DELETE", "/v2/lbaas/loadbalancers/lb-1", String::new(), 400, "has children"),
        // What only admins create.
        (MEMBER, "POST", "/v2/lbaas/flavors", r#"{"flavor": {"name": "x"}}"#.into(), 403, "Policy"),
        (MEMBER, "POST", "/v2/admin/networks", r#"{"network": {"subnets": [{"cidr": "10.0.0.0/8"}]}}"#.into(), 403, "Policy"),
        (MEMBER, "POST", "/v2/admin/devices", device(r#""management_url": "http://127.0.0.1:1", "capacity": 1"#), 403, "does not allow"),
        (ADMIN, "POST", "/v2/admin/networks", r#"{"network": {"subnets": [{"cidr": "300.0.0.0/8"}]}}"#.into(), 400, "not a CIDR"),
        // Queries and paths.
        (MEMBER, "GET", "/v2/lbaas/loadbalancers?limit=abc", String::new(), 400, "limit"),
        (MEMBER, "GET", "/v2/lbaas/loadbalancers?colour=red", String::new(), 400, "colour"),
        (MEMBER, "GET", "/v2/lbaas/loadbalancers/does-not-exist", String::new(), 404, "could not be found"),
        (MEMBER, "GET", "/v2/nothing/here", String::new(), 404, "could not be found"),
    ];
    let (_, before) = call(
        &app,
        "GET",
        "/v2/lbaas/loadbalancers/lb-1/status",
        Some(MEMBER),
        None,
    )
    .await;
    for (token, method, path, body, expected, words) in cases {
        let sent = (!body.is_empty()).then_some(body.as_str());
        let (status, answer) = call(&app, method, path, Some(token), sent).await;
        assert_fault(
            status,
            &answer,
            StatusCode::from_u16(expected).expect("a status"),
            words,
        );
    }
    // Nothing stored changed, and no job was queued.
    let (_, after) = call(
        &app,
        "GET",
        "/v2/lbaas/loadbalancers/lb-1/status",
        Some(MEMBER),
        None,
    )
    .await;
    assert_eq!(before, after);
    assert_eq!(
        after["statuses"]["loadbalancer"]["provisioning_status"],
        "ACTIVE"
    );
    assert!(jobs.try_recv().is_err(), "a refused request queued a job");
}

/// A host with the local key manager (a fixed sealing key) over a store the test can read.
fn keyed() -> (
    Router,
    Arc<MemoryStore>,
    Arc<ControlPlane>,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let grant = |project: &str, role: &str| TokenGrant {
        project_id: project.into(),
        roles: vec![role.into()],
    };
    let auth = Auth::Tokens(HashMap::from([
        (ADMIN.to_owned(), grant("admin-project", "admin")),
        (MEMBER.to_owned(), grant("tenant", "load-balancer_member")),
        (READER.to_owned(), grant("tenant", "load-balancer_observer")),
        (OTHER.to_owned(), grant("other", "load-balancer_member")),
    ]));
    let store = Arc::new(MemoryStore::new());
    let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
    let plane = Arc::new(
        ControlPlane::new(store.clone(), Arc::new(Drivers::none()), None, jobs)
            .with_local_keys(lbaas_control::secrets::LocalKeys::new(&[7; 32])),
    );
    let api = Api::new(plane.clone(), auth);
    (router(Arc::new(api)), store, plane, queue)
}

/// The local key manager: a project stores secrets in Barbican's shape and reads their
/// metadata; nobody reads a payload back, other projects see nothing, observers change
/// nothing; at rest a payload is sealed and bound to its record.
#[tokio::test]
async fn secrets_are_stored_sealed_and_never_answered_back() {
    use lbaas_core::store::{Kind, Store as _};
    let (app, store, plane, mut jobs) = keyed();
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB-not-checked-until-a-listener-names-it\n-----END CERTIFICATE-----\n";
    let text = json!({"name": "www", "secret_type": "certificate", "payload": pem,
                      "payload_content_type": "text/plain"})
    .to_string();
    let binary =
        json!({"payload": "AAECAwQFBgcICQ==", "payload_content_type": "application/octet-stream",
                        "payload_content_encoding": "base64"})
        .to_string();
    let mut refs = Vec::new();
    for body in [&text, &binary] {
        let (status, answer) = call(&app, "POST", "/v1/secrets", Some(MEMBER), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let reference = answer["secret_ref"].as_str().expect("a ref").to_owned();
        assert!(reference.contains("/v1/secrets/"), "{reference}");
        refs.push(reference);
    }
    let ids: Vec<String> = refs
        .iter()
        .map(|r| r.rsplit('/').next().expect("an id").to_owned())
        .collect();

    // The project reads the metadata, observers included; another project sees none of it.
    for (token, seen) in [(MEMBER, 2), (READER, 2), (ADMIN, 2), (OTHER, 0)] {
        let (status, list) = call(&app, "GET", "/v1/secrets", Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["total"], seen, "{token}: {list}");
        assert!(!list.to_string().contains("MIIB"), "a payload in {list}");
    }
    let (status, shown) = call(
        &app,
        "GET",
        &format!("/v1/secrets/{}", ids[0]),
        Some(READER),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["name"], "www");
    assert_eq!(shown["secret_type"], "certificate");
    assert_eq!(shown["content_types"]["default"], "text/plain");
    assert_eq!(shown["secret_ref"], refs[0].as_str());
    // Paging as Barbican pages.
    let (_, page) = call(&app, "GET", "/v1/secrets?limit=1", Some(MEMBER), None).await;
    assert_eq!(page["secrets"].as_array().map(Vec::len), Some(1), "{page}");
    assert!(
        page["next"]
            .as_str()
            .is_some_and(|n| n.ends_with("limit=1&offset=1")),
        "{page}"
    );
    let (_, page) = call(
        &app,
        "GET",
        "/v1/secrets?limit=1&offset=1",
        Some(MEMBER),
        None,
    )
    .await;
    assert!(
        page.get("next").is_none() && page["previous"].is_string(),
        "{page}"
    );

    let payload = format!("/v1/secrets/{}/payload", ids[0]);
    // Who, how, where, with what body; the answer and what its message says.
    type Denied<'a> = (
        &'a str,
        &'a str,
        String,
        Option<&'a str>,
        StatusCode,
        &'a str,
    );
    let denied: [Denied<'_>; 7] = [
        (
            MEMBER,
            "GET",
            payload.clone(),
            None,
            StatusCode::FORBIDDEN,
            "does not give payloads back",
        ),
        (
            OTHER,
            "GET",
            payload,
            None,
            StatusCode::FORBIDDEN,
            "Policy does not allow",
        ),
        (
            OTHER,
            "GET",
            format!("/v1/secrets/{}", ids[0]),
            None,
            StatusCode::FORBIDDEN,
            "Policy does not allow",
        ),
        (
            OTHER,
            "DELETE",
            format!("/v1/secrets/{}", ids[0]),
            None,
            StatusCode::FORBIDDEN,
            "Policy does not allow",
        ),
        (
            READER,
            "DELETE",
            format!("/v1/secrets/{}", ids[0]),
            None,
            StatusCode::FORBIDDEN,
            "Policy does not allow",
        ),
        (
            READER,
            "POST",
            "/v1/secrets".into(),
            Some(&text),
            StatusCode::FORBIDDEN,
            "Policy does not allow",
        ),
        (
            MEMBER,
            "GET",
            "/v1/secrets/no-such-secret".into(),
            None,
            StatusCode::NOT_FOUND,
            "Secret no-such-secret could not be found",
        ),
    ];
    for (token, method, path, body, wanted, mentions) in denied {
        let (status, answer) = call(&app, method, &path, Some(token), body).await;
        assert_fault(status, &answer, wanted, mentions);
    }

    // At rest: sealed, and bound to its record.
    let stored = store.scan(Kind::Secret).expect("scan");
    assert_eq!(stored.len(), 2);
    for (_, bytes) in &stored {
        let raw = String::from_utf8_lossy(bytes);
        assert!(
            !raw.contains("MIIB") && !raw.contains("AAECAwQFBgcICQ"),
            "{raw}"
        );
    }
    let record: lbaas_core::model::Secret =
        lbaas_core::store::decode(&ids[0], &stored[0].1).expect("a record");
    let record = if record.id == ids[0] {
        record
    } else {
        lbaas_core::store::decode(&ids[1], &stored[1].1).expect("a record")
    };
    assert_eq!(
        plane.open_secret(&record).expect("opens").as_slice(),
        pem.as_bytes()
    );
    let moved = lbaas_core::model::Secret {
        project_id: "other".into(),
        ..record.clone()
    };
    assert!(matches!(
        plane.open_secret(&moved),
        Err(lbaas_control::Error::Sealed(_))
    ));

    // Expired is gone, as in Barbican.
    let expired = lbaas_core::model::Secret {
        id: "expired".into(),
        expiration: Some("2020-01-01T00:00:00".into()),
        ..record
    };
    let mut batch = lbaas_core::store::Batch::new();
    batch.put(&expired);
    batch.commit(&*store).expect("store");
    let (status, answer) = call(&app, "GET", "/v1/secrets/expired", Some(MEMBER), None).await;
    assert_fault(status, &answer, StatusCode::NOT_FOUND, "could not be found");

    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/v1/secrets/{}", ids[1]),
        Some(MEMBER),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &app,
        "GET",
        &format!("/v1/secrets/{}", ids[1]),
        Some(MEMBER),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(jobs.try_recv().is_err(), "a secret queues no job");
}

/// Barbican's rules for a secret's body, each refusal naming the field; nothing is stored.
#[tokio::test]
async fn bad_secrets_are_refused_with_the_field_named() {
    use lbaas_core::store::{Kind, Store as _};
    let (app, store, _plane, _jobs) = keyed();
    let octets = r#""payload_content_type": "application/octet-stream""#;
    let too_large = "A".repeat(lbaas_control::secrets::MAX_PAYLOAD + 1);
    let long_name = "n".repeat(256);
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (r#"{"name": "x"}"#.into(), StatusCode::BAD_REQUEST, "A payload is required"),
        (r#"{"payload": "x"}"#.into(), StatusCode::BAD_REQUEST, "payload_content_type is required"),
        (r#"{"payload": "x", "payload_content_type": "text/plain", "payload_content_encoding": "base64"}"#.into(),
            StatusCode::BAD_REQUEST, "takes no payload_content_encoding"),
        (format!(r#"{{"payload": "AAAA", {octets}}}"#), StatusCode::BAD_REQUEST, "payload_content_encoding must be 'base64'"),
        (format!(r#"{{"payload": "not base64!", {octets}, "payload_content_encoding": "base64"}}"#),
            StatusCode::BAD_REQUEST, "not valid base64"),
        (r#"{"payload": "x", "payload_content_type": "image/png"}"#.into(), StatusCode::BAD_REQUEST,
            "payload_content_type must be text/plain or one of"),
        (r#"{"payload": "x", "payload_content_type": "text/plain", "secret_type": "key"}"#.into(),
            StatusCode::BAD_REQUEST, "secret_type must be one of"),
        (format!(r#"{{"payload": "x", "payload_content_type": "text/plain", "name": "{long_name}"}}"#),
            StatusCode::BAD_REQUEST, "name is longer than 255"),
        (r#"{"payload": "x", "payload_content_type": "text/plain", "expiration": "2020-01-01T00:00:00Z"}"#.into(),
            StatusCode::BAD_REQUEST, "expiration is in the past"),
        (r#"{"payload": "x", "payload_content_type": "text/plain", "expiration": "soon"}"#.into(),
            StatusCode::BAD_REQUEST, "Invalid date for 'expiration': soon"),
        (r#"{"payload": "x", "payload_content_type": "text/plain", "owner": "me"}"#.into(),
            StatusCode::BAD_REQUEST, "owner"),
        (format!(r#"{{"payload": "{too_large}", "payload_content_type": "text/plain"}}"#),
            StatusCode::PAYLOAD_TOO_LARGE, "too large: the limit is 20000 bytes"),
    ];
    for (body, wanted, mentions) in cases {
        let (status, answer) = call(&app, "POST", "/v1/secrets", Some(MEMBER), Some(&body)).await;
        assert_fault(status, &answer, wanted, mentions);
    }
    assert!(store.scan(Kind::Secret).expect("scan").is_empty());
    // A future expiration and a charset are taken.
    let body = r#"{"payload": "x", "payload_content_type": "text/plain; charset=utf-8", "expiration": "2999-01-01T00:00:00Z"}"#;
    let (status, answer) = call(&app, "POST", "/v1/secrets", Some(MEMBER), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // A project keeps at most MAX_PER_PROJECT secrets; another project is not held by it.
    let mut batch = lbaas_core::store::Batch::new();
    for n in 1..lbaas_control::secrets::MAX_PER_PROJECT {
        batch.put(&lbaas_core::model::Secret {
            id: format!("seeded-{n}"),
            project_id: "tenant".into(),
            name: None,
            secret_type: "opaque".into(),
            content_type: "text/plain".into(),
            created_at: "2026-12-01T00:00:00".into(),
            expiration: None,
            not_after: None,
            sealed: String::new(),
        });
    }
    batch.commit(&*store).expect("seed");
    let (status, answer) = call(&app, "POST", "/v1/secrets", Some(MEMBER), Some(body)).await;
    assert_fault(
        status,
        &answer,
        StatusCode::FORBIDDEN,
        "Quota has been met for resources: Secret",
    );
    let (status, answer) = call(&app, "POST", "/v1/secrets", Some(OTHER), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// Stores `payload` as `token`'s secret (binary, in base64); its reference.
async fn store_secret(app: &Router, token: &str, payload: &[u8]) -> String {
    use base64::Engine as _;
    let body = json!({"payload": base64::engine::general_purpose::STANDARD.encode(payload),
                      "payload_content_type": "application/octet-stream",
                      "payload_content_encoding": "base64"});
    let (status, answer) = call(
        app,
        "POST",
        "/v1/secrets",
        Some(token),
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["secret_ref"]
        .as_str()
        .expect("a reference")
        .to_owned()
}

/// A listener's TLS fields by Octavia's rules, each refusal a 400 naming what is wrong, before
/// the provider answers 501 for TLS it does not render: which protocols take certificates,
/// which field needs which, versions, ALPN, HSTS; and every reference resolved with the
/// caller's rights in the key manager (another project's secret, a key that does not match,
/// a pass phrase, a CA that is not one, a CRL another CA signed).
#[tokio::test]
async fn tls_listeners_follow_octavias_rules_before_the_providers_answer() {
    use lbaas_keys::testing::{EC, Pki, openssl};
    let (app, mut jobs) = seeded();
    let pki = Pki::new();
    pki.leaf("www.example.com", EC);
    pki.leaf("other.example.com", EC);
    openssl(
        &pki.path(""),
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "www.example.com.key",
            "-in",
            "www.example.com.pem",
            "-passout",
            "pass:secret",
            "-out",
            "locked.p12",
        ],
    );
    let www = store_secret(&app, MEMBER, &pki.pkcs12("www.example.com")).await;
    let mismatched = pki.concat(&["www.example.com.pem", "other.example.com.key"]);
    let mismatched = store_secret(&app, MEMBER, &mismatched).await;
    let locked = store_secret(&app, MEMBER, &pki.read("locked.p12")).await;
    let ca = store_secret(&app, MEMBER, &pki.read("int.pem")).await;
    let crl = store_secret(&app, MEMBER, &pki.crl("int")).await;
    let root_crl = store_secret(&app, MEMBER, &pki.crl("root")).await;
    let theirs = store_secret(&app, OTHER, &pki.pkcs12("other.example.com")).await;
    let (_, before) = call(&app, "GET", "/v2/lbaas/listeners", Some(ADMIN), None).await;
    let (_, pools_before) = call(&app, "GET", "/v2/lbaas/pools", Some(ADMIN), None).await;

    let listener = |fields: Value| {
        let mut body = json!({"loadbalancer_id": "lb-1", "protocol": "TERMINATED_HTTPS",
                              "protocol_port": 443});
        body.as_object_mut()
            .expect("object")
            .extend(fields.as_object().expect("fields").clone());
        json!({ "listener": body }).to_string()
    };
    let missing = "http://127.0.0.1:9876/v1/secrets/no-such-secret";
    let cases: Vec<(Value, StatusCode, String)> = vec![
        (json!({"protocol": "HTTP", "protocol_port": 81, "default_tls_container_ref": www}),
            StatusCode::BAD_REQUEST, "Certificate container references are not allowed on HTTP protocol listeners.".into()),
        (json!({"protocol": "UDP", "protocol_port": 53, "default_tls_container_ref": www}),
            StatusCode::BAD_REQUEST, "UDP protocol listener does not support TLS.".into()),
        (json!({}), StatusCode::BAD_REQUEST,
            "An SNI or default certificate container reference must be provided for TERMINATED_HTTPS protocol listeners.".into()),
        (json!({"client_ca_tls_container_ref": ca}), StatusCode::BAD_REQUEST,
            "must be provided with a client CA container reference.".into()),
        (json!({"default_tls_container_ref": www, "client_authentication": "MANDATORY"}), StatusCode::BAD_REQUEST,
            "Client authentication setting MANDATORY requires a client CA container reference.".into()),
        (json!({"default_tls_container_ref": www, "client_crl_container_ref": crl}), StatusCode::BAD_REQUEST,
            "A client authentication CA reference is required to specify a client authentication revocation list.".into()),
        (json!({"default_tls_container_ref": www, "client_authentication": "SOMETIMES"}), StatusCode::BAD_REQUEST,
            "Value should be one of: NONE, OPTIONAL, MANDATORY".into()),
        (json!({"default_tls_container_ref": www, "tls_versions": []}), StatusCode::BAD_REQUEST,
            "Empty TLS version list.".into()),
        (json!({"default_tls_container_ref": www, "tls_versions": ["TLSv1.3", "TLSv9"]}), StatusCode::BAD_REQUEST,
            "Invalid TLS versions: TLSv9".into()),
        (json!({"default_tls_container_ref": www, "alpn_protocols": ["spdy/3"]}), StatusCode::BAD_REQUEST,
            "Invalid ALPN protocol: spdy/3".into()),
        (json!({"default_tls_container_ref": www, "hsts_preload": true}), StatusCode::BAD_REQUEST,
            "only make sense if hsts_max_age is set as well.".into()),
        (json!({"protocol": "HTTP", "protocol_port": 81, "hsts_max_age": 300}), StatusCode::BAD_REQUEST,
            "The HSTS feature can only be used for listeners using the TERMINATED_HTTPS protocol.".into()),
        // Octavia checks versions of TLS listeners only; the rest pass, and the provider is
        // asked (this host has no driver loaded).
        (json!({"protocol": "HTTP", "protocol_port": 81, "tls_versions": ["TLSv9"]}), StatusCode::BAD_REQUEST,
            "Provider 'haproxy' is not enabled.".into()),
        (json!({"protocol": "HTTP", "protocol_port": 81,
                "insert_headers": {"X-Forwarded-For": "true", "X-SSL-Client-CN": "true"}}),
            StatusCode::BAD_REQUEST,
            "['X-SSL-Client-CN'] is not a valid option for HTTP protocol listener.".into()),
        (json!({"sni_container_refs": ["r".repeat(256)]}), StatusCode::BAD_REQUEST,
            "Invalid input for field/attribute sni_container_refs".into()),
        (json!({"default_tls_container_ref": 7}), StatusCode::BAD_REQUEST,
            "Invalid input for field/attribute default_tls_container_ref".into()),
        // References, resolved with the caller's rights.
        (json!({"default_tls_container_ref": missing}), StatusCode::BAD_REQUEST,
            format!("Could not retrieve certificate: ['{missing}']")),
        (json!({"default_tls_container_ref": www, "sni_container_refs": [theirs]}), StatusCode::BAD_REQUEST,
            format!("Could not retrieve certificate: ['{theirs}'] (sni_container_refs: no such secret for this project)")),
        (json!({"default_tls_container_ref": mismatched}), StatusCode::BAD_REQUEST,
            format!("Could not retrieve certificate: ['{mismatched}'] (default_tls_container_ref: Key and x509 certificate do not match)")),
        (json!({"default_tls_container_ref": locked}), StatusCode::BAD_REQUEST,
            "The PKCS12 bundle is unreadable. Please check the PKCS12 bundle validity.".into()),
        (json!({"default_tls_container_ref": www, "client_ca_tls_container_ref": www,
                "client_authentication": "OPTIONAL"}), StatusCode::BAD_REQUEST,
            "The client authentication CA certificate is invalid.".into()),
        (json!({"default_tls_container_ref": www, "client_ca_tls_container_ref": ca,
                "client_crl_container_ref": root_crl}), StatusCode::BAD_REQUEST,
            "The CRL specified is not valid for client certificate authority reference supplied.".into()),
        // Everything right: the provider is asked.
        (json!({"default_tls_container_ref": www, "sni_container_refs": [www],
                "client_ca_tls_container_ref": ca, "client_crl_container_ref": crl,
                "client_authentication": "MANDATORY", "tls_versions": ["TLSv1.2", "TLSv1.3"],
                "alpn_protocols": ["h2", "http/1.1"], "hsts_max_age": 31536000,
                "hsts_include_subdomains": true, "hsts_preload": true}),
            StatusCode::BAD_REQUEST,
            "Provider 'haproxy' is not enabled.".into()),
    ];
    for (fields, wanted, mentions) in cases {
        let body = listener(fields.clone());
        let (status, answer) = call(
            &app,
            "POST",
            "/v2/lbaas/listeners",
            Some(MEMBER),
            Some(&body),
        )
        .await;
        assert_fault(status, &answer, wanted, &mentions);
    }
    // A pool's TLS towards its members: the same resolution, Octavia's pool rules.
    let pool = |fields: Value| {
        let mut body = json!({"loadbalancer_id": "lb-1", "protocol": "HTTP",
                              "lb_algorithm": "ROUND_ROBIN"});
        body.as_object_mut()
            .expect("object")
            .extend(fields.as_object().expect("fields").clone());
        json!({ "pool": body }).to_string()
    };
    let pool_cases: Vec<(Value, StatusCode, String)> = vec![
        (
            json!({"crl_container_ref": crl}),
            StatusCode::BAD_REQUEST,
            "A CA certificate reference is required to specify a revocation list.".into(),
        ),
        (
            json!({"tls_enabled": true, "tls_container_ref": theirs}),
            StatusCode::BAD_REQUEST,
            format!("Could not retrieve certificate: ['{theirs}']"),
        ),
        (
            json!({"tls_enabled": true, "tls_versions": []}),
            StatusCode::BAD_REQUEST,
            "Empty TLS version list.".into(),
        ),
        (
            json!({"tls_enabled": true, "ca_tls_container_ref": www}),
            StatusCode::BAD_REQUEST,
            "The client authentication CA certificate is invalid.".into(),
        ),
        (
            json!({"tls_enabled": true, "ca_tls_container_ref": ca, "crl_container_ref": root_crl}),
            StatusCode::BAD_REQUEST,
            "The CRL specified is not valid".into(),
        ),
        // Octavia checks versions of a pool with TLS only; then the provider is asked.
        (
            json!({"tls_versions": ["TLSv9"]}),
            StatusCode::BAD_REQUEST,
            "Provider 'haproxy' is not enabled.".into(),
        ),
        (
            json!({"tls_enabled": true, "tls_container_ref": www, "ca_tls_container_ref": ca,
                "crl_container_ref": crl, "tls_versions": ["TLSv1.3"], "alpn_protocols": ["h2"]}),
            StatusCode::BAD_REQUEST,
            "Provider 'haproxy' is not enabled.".into(),
        ),
    ];
    for (fields, wanted, mentions) in pool_cases {
        let (status, answer) = call(
            &app,
            "POST",
            "/v2/lbaas/pools",
            Some(MEMBER),
            Some(&pool(fields)),
        )
        .await;
        assert_fault(status, &answer, wanted, &mentions);
    }

    // A full tree's listeners and pools, inline ones included, pass the same rules.
    let bad_pool = json!({"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                          "tls_enabled": true, "tls_container_ref": theirs});
    let trees = [
        json!({"listeners": [{"protocol": "TERMINATED_HTTPS", "protocol_port": 443,
                              "default_tls_container_ref": theirs}]}),
        json!({"listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": bad_pool}]}),
        json!({"listeners": [{"protocol": "HTTP", "protocol_port": 80, "l7policies": [
            {"action": "REDIRECT_TO_POOL", "redirect_pool": bad_pool,
             "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/a"}]}]}]}),
        json!({"pools": [bad_pool]}),
    ];
    for mut tree in trees {
        tree["vip_subnet_id"] = json!("subnet-vip");
        let body = json!({ "loadbalancer": tree }).to_string();
        let (status, answer) = call(
            &app,
            "POST",
            "/v2/lbaas/loadbalancers",
            Some(MEMBER),
            Some(&body),
        )
        .await;
        assert_fault(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "Could not retrieve certificate",
        );
    }

    // A change of a listener without TLS: Octavia's rules for a PUT.
    let updates: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"default_tls_container_ref": www}),
            StatusCode::BAD_REQUEST,
            "Certificate container references are not allowed on HTTP protocol listeners.",
        ),
        (
            json!({"client_authentication": "OPTIONAL"}),
            StatusCode::BAD_REQUEST,
            "Client authentication setting OPTIONAL requires a client CA container reference.",
        ),
        (
            json!({"client_crl_container_ref": crl}),
            StatusCode::BAD_REQUEST,
            "A client authentication CA reference is required to specify a client authentication revocation list.",
        ),
        (
            json!({"tls_versions": []}),
            StatusCode::BAD_REQUEST,
            "Empty TLS version list.",
        ),
        (
            json!({"hsts_preload": true}),
            StatusCode::BAD_REQUEST,
            "Cannot enable hsts_include_subdomains or hsts_preload if hsts_max_age was not set as well.",
        ),
        (
            json!({"hsts_max_age": 60}),
            StatusCode::BAD_REQUEST,
            "The HSTS feature can only be used for listeners using the TERMINATED_HTTPS protocol.",
        ),
        (
            json!({"tls_versions": ["TLSv1.3", "TLSv9"]}),
            StatusCode::BAD_REQUEST,
            "Invalid TLS versions: TLSv9",
        ),
    ];
    for (fields, wanted, mentions) in updates {
        let body = json!({ "listener": fields }).to_string();
        let (status, answer) = call(
            &app,
            "PUT",
            "/v2/lbaas/listeners/listener-1",
            Some(MEMBER),
            Some(&body),
        )
        .await;
        assert_fault(status, &answer, wanted, mentions);
    }

    // A change of a pool: Octavia's rules for a PUT, its references resolved.
    let pool_updates: Vec<(Value, StatusCode, String)> = vec![
        (
            json!({"crl_container_ref": crl}),
            StatusCode::BAD_REQUEST,
            "A CA reference is required to specify a certificate revocation list.".into(),
        ),
        (
            json!({"tls_container_ref": mismatched}),
            StatusCode::BAD_REQUEST,
            format!("Could not retrieve certificate: ['{mismatched}']"),
        ),
        (
            json!({"ca_tls_container_ref": ca, "crl_container_ref": root_crl}),
            StatusCode::BAD_REQUEST,
            "The CRL specified is not valid".into(),
        ),
        (
            json!({"alpn_protocols": ["gopher"]}),
            StatusCode::BAD_REQUEST,
            "Invalid ALPN protocol: gopher".into(),
        ),
        (
            json!({"tls_enabled": true, "tls_container_ref": www}),
            StatusCode::BAD_REQUEST,
            "Provider 'haproxy' is not enabled.".into(),
        ),
    ];
    for (fields, wanted, mentions) in pool_updates {
        let body = json!({ "pool": fields }).to_string();
        let (status, answer) = call(
            &app,
            "PUT",
            "/v2/lbaas/pools/pool-1",
            Some(MEMBER),
            Some(&body),
        )
        .await;
        assert_fault(status, &answer, wanted, &mentions);
    }

    let (_, after) = call(&app, "GET", "/v2/lbaas/listeners", Some(ADMIN), None).await;
    assert_eq!(before, after, "nothing stored");
    let (_, pools_after) = call(&app, "GET", "/v2/lbaas/pools", Some(ADMIN), None).await;
    assert_eq!(pools_before, pools_after, "nothing stored");
    // Octavia 19's body of a listener without TLS.
    let (_, shown) = call(
        &app,
        "GET",
        "/v2/lbaas/listeners/listener-1",
        Some(MEMBER),
        None,
    )
    .await;
    let shown = &shown["listener"];
    assert_eq!(
        (&shown["hsts_include_subdomains"], &shown["hsts_preload"]),
        (&json!(false), &json!(false))
    );
    assert!(
        shown["hsts_max_age"].is_null() && shown["default_tls_container_ref"].is_null(),
        "{shown}"
    );
    assert_eq!(shown["client_authentication"], "NONE");
    assert!(jobs.try_recv().is_err(), "no job queued");
}

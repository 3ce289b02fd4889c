//! `--auth keystone` against a real Keystone: its tokens are accepted with their project and
//! roles, revoked and expired ones are refused, a reader cannot write and a member of one
//! project cannot see another's. The host validates as an ordinary service user (role
//! `service`), whose own token expires and is renewed during the test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_host::api::keystone::{Keystone as KeystoneClient, KeystoneConfig};
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{ControlPlane, id_of};
use lbaas_tests::keystone::Keystone;
use serde_json::json;

/// Short enough that tokens, the host's own included, expire while the test runs.
const TOKEN_LIFETIME: Duration = Duration::from_secs(20);
const CACHE_FOR: Duration = Duration::from_secs(2);

#[test]
fn keystone_tokens_carry_projects_and_roles() {
    let keystone = Keystone::start(TOKEN_LIFETIME);
    let service = keystone.role("service");
    assert!(!service.is_empty());
    let service_project = keystone.project("service");
    keystone.user("lbaas", "lbaas-secret", &service_project, &["service"]);
    let alpha = keystone.project("alpha");
    let beta = keystone.project("beta");
    keystone.user("alice", "alice-secret", &alpha, &["member"]);
    keystone.user("rita", "rita-secret", &alpha, &["reader"]);
    keystone.user("bob", "bob-secret", &beta, &["load-balancer_member"]);

    let mut config = KeystoneConfig::new(&keystone.url, "lbaas", "lbaas-secret");
    config.cache_for = CACHE_FOR;
    let client = KeystoneClient::new(config);
    client.check().expect("the service user authenticates");
    let data = tempfile::tempdir().expect("temp dir");
    let plane = ControlPlane::start(data.path(), Auth::Keystone(Arc::new(client)));
    let appliance = FakeAppliance::start();

    // Keystone's admin is the load balancer admin.
    let admin = plane.client(Some(&keystone.admin_token()));
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public",
                "subnets": [{"id": "subnet-vip", "cidr": "127.0.61.0/24"}]}}),
    );
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "haproxy-1", "kind": "virtual", "driver": "haproxy",
                "management_url": appliance.url(), "capacity": 10}}),
    );

    // A member's load balancer belongs to the member's Keystone project.
    let alice = plane.client(Some(&keystone.token("alice", "alice-secret", "alpha")));
    let lb = alice.create_loadbalancer("haproxy", "web");
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
    assert_eq!(lb["project_id"], alpha.as_str());
    let lb_path = format!("/v2/lbaas/loadbalancers/{}", lb["id"].as_str().expect("id"));

    // A reader of the same project sees it and cannot change anything.
    let rita = plane.client(Some(&keystone.token("rita", "rita-secret", "alpha")));
    let (status, seen) = rita.get(&lb_path);
    assert_eq!(status, 200, "{seen}");
    let (status, body) = rita.put(&lb_path, &json!({"loadbalancer": {"name": "mine"}}));
    assert_eq!(status, 403, "a reader renamed it: {body}");
    let (status, body) = rita.post(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "x", "vip_subnet_id": "subnet-vip"}}),
    );
    assert_eq!(status, 403, "a reader created one: {body}");

    // A member of another project neither sees nor touches it (Octavia's policy refusal),
    // and works in its own.
    let bob = plane.client(Some(&keystone.token("bob", "bob-secret", "beta")));
    let (status, _) = bob.get(&lb_path);
    assert_eq!(status, 403);
    let (_, listed) = bob.get("/v2/lbaas/loadbalancers");
    assert_eq!(listed["loadbalancers"], json!([]), "{listed}");
    let (status, _) = bob.delete(&lb_path);
    assert_eq!(status, 403);
    let own = bob.create_loadbalancer("haproxy", "bobs");
    assert_eq!(own["project_id"], beta.as_str());
    // The admin sees both projects'.
    let (_, all) = admin.get("/v2/lbaas/loadbalancers");
    assert_eq!(all["loadbalancers"].as_array().map(Vec::len), Some(2));

    // No token, a made-up one, and one revoked before its first use: 401, nothing asked of
    // the caller's project.
    let (status, body) = plane.client(None).get("/v2/lbaas/loadbalancers");
    assert_eq!(status, 401, "{body}");
    let (status, _) = plane
        .client(Some("not-a-token"))
        .get("/v2/lbaas/loadbalancers");
    assert_eq!(status, 401);
    // A token far longer than any Keystone issues (the host does not pass it on) is refused.
    let (status, _) = plane
        .client(Some(&"x".repeat(9 << 10)))
        .get("/v2/lbaas/loadbalancers");
    assert_eq!(status, 401);
    let revoked = keystone.token("alice", "alice-secret", "alpha");
    keystone.revoke(&revoked);
    let (status, _) = plane.client(Some(&revoked)).get(&lb_path);
    assert_eq!(status, 401, "a revoked token was accepted");

    // A token revoked after use is refused once the host's cache of it has run out.
    let later = keystone.token("alice", "alice-secret", "alpha");
    let user = plane.client(Some(&later));
    assert_eq!(user.get(&lb_path).0, 200);
    keystone.revoke(&later);
    std::thread::sleep(CACHE_FOR + Duration::from_millis(500));
    assert_eq!(
        user.get(&lb_path).0,
        401,
        "a revoked token outlived the cache"
    );

    // A token stops working when it expires, cached or not; the host's own token (issued at
    // the start, with the same lifetime) is renewed on the way.
    let expiring = keystone.token("alice", "alice-secret", "alpha");
    let issued = Instant::now();
    let user = plane.client(Some(&expiring));
    assert_eq!(user.get(&lb_path).0, 200);
    std::thread::sleep(TOKEN_LIFETIME.saturating_sub(issued.elapsed()) + Duration::from_secs(1));
    assert_eq!(user.get(&lb_path).0, 401, "an expired token was accepted");
    let fresh = plane.client(Some(&keystone.token("alice", "alice-secret", "alpha")));
    let (status, body) = fresh.put(&lb_path, &json!({"loadbalancer": {"name": "renamed"}}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(id_of(&body, "loadbalancer"), lb["id"].as_str().expect("id"));

    plane.stop();
}

#[test]
fn wrong_service_credentials_are_reported_at_start() {
    let keystone = Keystone::start(Duration::from_secs(600));
    let refused = KeystoneClient::new(KeystoneConfig::new(&keystone.url, "admin", "wrong"))
        .check()
        .expect_err("a wrong password was accepted");
    assert!(
        refused
            .to_string()
            .contains("refused the host's own credentials"),
        "{refused}"
    );
    // A user without the service role authenticates but may not validate others' tokens.
    let project = keystone.project("service");
    keystone.user("nobody", "nobody-secret", &project, &["reader"]);
    let client = KeystoneClient::new(KeystoneConfig::new(
        &keystone.url,
        "nobody",
        "nobody-secret",
    ));
    client.check().expect("the user authenticates");
    let data = tempfile::tempdir().expect("temp dir");
    let plane = ControlPlane::start(data.path(), Auth::Keystone(Arc::new(client)));
    let (status, body) = plane
        .client(Some(&keystone.admin_token()))
        .get("/v2/lbaas/loadbalancers");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["faultstring"]
            .as_str()
            .is_some_and(|f| f.contains("identity service")),
        "{body}"
    );
    plane.stop();
}

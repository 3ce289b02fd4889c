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

/// A VIP network on `cidr` and an HAProxy device at `appliance`, made by `admin`.
fn serve_from(admin: &lbaas_tests::control::Client, appliance: &FakeAppliance, cidr: &str) {
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public",
                "subnets": [{"id": "subnet-vip", "cidr": cidr}]}}),
    );
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "haproxy-1", "kind": "virtual", "driver": "haproxy",
                "management_url": appliance.url(), "capacity": 10}}),
    );
}

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
    serve_from(&admin, &appliance, "127.0.61.0/24");

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

/// `--key-manager barbican`: a tenant keeps its certificates in a real Barbican (behind the
/// same Keystone) and names them in its listeners. The host asks Barbican with the tenant's
/// token to let the host's user read each one (its ACL), reads it with its own token, and
/// sends the device what it holds; another project's reference, or one to anything but this
/// Barbican, is a 400 naming it, and the host calls nowhere else.
#[test]
fn barbican_keeps_the_certificates_and_callers_grant_the_host() {
    use lbaas_keys::testing::{EC, Pki};
    use lbaas_tests::barbican::Barbican;

    let keystone = Keystone::start(Duration::from_secs(3600));
    let service_project = keystone.project("service");
    let host_user = keystone.user("lbaas", "lbaas-secret", &service_project, &["service"]);
    let alpha = keystone.project("alpha");
    let beta = keystone.project("beta");
    keystone.user("alice", "alice-secret", &alpha, &["member"]);
    keystone.user("bob", "bob-secret", &beta, &["member"]);
    let barbican = Barbican::start_in(&lbaas_tests::keystone::venv(), &keystone, &service_project);

    let client = KeystoneClient::new(KeystoneConfig::new(&keystone.url, "lbaas", "lbaas-secret"));
    client.check().expect("the service user authenticates");
    let data = tempfile::tempdir().expect("temp dir");
    let plane = ControlPlane::start_with_options(
        data.path(),
        Auth::Keystone(Arc::new(client)),
        lbaas_tests::control::Options {
            barbican: Some(barbican.url.clone()),
            ..Default::default()
        },
    );
    let appliance = FakeAppliance::start();
    let admin = plane.client(Some(&keystone.admin_token()));
    serve_from(&admin, &appliance, "127.0.62.0/24");

    let alice_token = keystone.token("alice", "alice-secret", "alpha");
    let alice = plane.client(Some(&alice_token));
    // The host keeps no secrets of its own here.
    let (status, body) = alice.post(
        "/v1/secrets",
        &json!({"name": "x", "payload": "y", "payload_content_type": "text/plain"}),
    );
    assert_eq!(status, 501, "{body}");

    let pki = Pki::new();
    pki.leaf("www.example.com", EC);
    pki.leaf("api.example.com", EC);
    let www = barbican.store(&alice_token, "www", &pki.pkcs12("www.example.com"));
    // A legacy certificate container: the certificate, its key and the intermediate, each a
    // secret of its own.
    let text = |name: &str| String::from_utf8(pki.read(name)).expect("PEM");
    let parts = [
        ("certificate", "api.example.com.pem"),
        ("private_key", "api.example.com.key"),
        ("intermediates", "int.pem"),
    ]
    .map(|(part, file)| (part, barbican.store_text(&alice_token, file, &text(file))));
    let parts: Vec<(&str, &str)> = parts.iter().map(|(n, r)| (*n, r.as_str())).collect();
    let api = barbican.container(&alice_token, "api", &parts);
    // Before a listener names them, the host may read none of them.
    assert!(!barbican.readers(&alice_token, &www).contains(&host_user));

    let lb = alice.create_loadbalancer("haproxy", "web");
    let lb_id = lb["id"].as_str().expect("id").to_owned();
    let listener = alice.create(
        "/v2/lbaas/listeners",
        &json!({"listener": {"loadbalancer_id": lb_id, "protocol": "TERMINATED_HTTPS",
                "protocol_port": 10443, "default_tls_container_ref": www,
                "sni_container_refs": [api]}}),
    );
    assert_eq!(
        listener["listener"]["default_tls_container_ref"],
        www.as_str()
    );
    assert_eq!(alice.settle(&lb_id)["provisioning_status"], "ACTIVE");
    // The tenant's grant made the host a reader of each secret, and of the container.
    let mut granted: Vec<&str> = vec![&www, &api];
    granted.extend(parts.iter().map(|(_, reference)| *reference));
    for reference in granted {
        assert!(
            barbican
                .readers(&alice_token, reference)
                .contains(&host_user),
            "the host cannot read {reference}"
        );
    }
    // Operators see when its certificates expire, as for the host's own secrets.
    let listener_id = listener["listener"]["id"].as_str().expect("id");
    let (_, metrics) = admin.text("/metrics");
    assert!(
        metrics.lines().any(|line| {
            line.starts_with("lbaas_tls_certificate_expiry_timestamp_seconds{")
                && line.contains(listener_id)
        }),
        "no expiry for {listener_id}: {metrics}"
    );
    // The device got both certificates, each with its key, from what Barbican holds.
    let sent: Vec<String> = appliance
        .received()
        .into_iter()
        .filter(|r| r.path.contains("/certificates/"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    for cert in ["www.example.com.pem", "api.example.com.pem"] {
        let cert = text(cert);
        assert!(
            sent.iter()
                .any(|body| body.contains(cert.trim()) && body.contains("PRIVATE KEY-----")),
            "no file with {cert} and a key was sent: {sent:?}"
        );
    }

    // Bob, in another project, cannot use Alice's secret (he may not change its ACL): a 400
    // naming the reference, and his listener is not made.
    let bob = plane.client(Some(&keystone.token("bob", "bob-secret", "beta")));
    let bobs = bob.create_loadbalancer("haproxy", "bobs");
    let bobs_id = bobs["id"].as_str().expect("id").to_owned();
    let (status, body) = bob.post(
        "/v2/lbaas/listeners",
        &json!({"listener": {"loadbalancer_id": bobs_id, "protocol": "TERMINATED_HTTPS",
                "protocol_port": 443, "default_tls_container_ref": www}}),
    );
    assert_eq!(status, 400, "{body}");
    let fault = body["faultstring"].as_str().unwrap_or_default();
    assert!(
        fault.starts_with(&format!("Could not retrieve certificate: ['{www}']"))
            && fault.contains("default_tls_container_ref: Barbican does not let the caller"),
        "{body}"
    );
    // Naming Alice's load balancer is refused by policy before any reference is looked at.
    let (status, body) = bob.post(
        "/v2/lbaas/listeners",
        &json!({"listener": {"loadbalancer_id": lb_id, "protocol": "TERMINATED_HTTPS",
                "protocol_port": 8443, "default_tls_container_ref": www}}),
    );
    assert_eq!(status, 403, "{body}");

    // A reference anywhere but this Barbican is never fetched: the host would send its token.
    let catcher = FakeAppliance::start();
    let before = catcher.arrived();
    for elsewhere in [
        format!("{}/v1/secrets/{}", catcher.url(), uuid::Uuid::new_v4()),
        format!("{}/v1/orders/{}", barbican.url, uuid::Uuid::new_v4()),
        "not-a-reference".to_owned(),
    ] {
        let (status, body) = alice.post(
            "/v2/lbaas/listeners",
            &json!({"listener": {"loadbalancer_id": lb_id, "protocol": "TERMINATED_HTTPS",
                    "protocol_port": 8443, "default_tls_container_ref": elsewhere}}),
        );
        assert_eq!(status, 400, "{elsewhere}: {body}");
        assert!(
            body["faultstring"].as_str().is_some_and(
                |f| f.contains("not a reference to a secret of this host's key manager")
            ),
            "{body}"
        );
    }
    assert_eq!(catcher.arrived(), before, "the host called a tenant's URL");
    // A secret Barbican does not have.
    let missing = format!("{}/v1/secrets/{}", barbican.url, uuid::Uuid::new_v4());
    let (status, body) = alice.post(
        "/v2/lbaas/listeners",
        &json!({"listener": {"loadbalancer_id": lb_id, "protocol": "TERMINATED_HTTPS",
                "protocol_port": 8443, "default_tls_container_ref": missing}}),
    );
    assert_eq!(status, 400, "{body}");

    plane.stop();
}

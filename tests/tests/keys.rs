//! The host's own key manager on a running host: the key it seals secrets under is a file it
//! makes beside the database (mode 0600), what the store holds is sealed, a restart opens it
//! again, and a host given another key opens nothing (and says so in its log, not to callers).

use lbaas_host::api::Auth;
use lbaas_host::store::{Kind, StoreExt as _};
use lbaas_tests::control::{ControlPlane, Options};
use serde_json::json;

const PAYLOAD: &str = "-----BEGIN PRIVATE KEY-----\nTHE-KEY-BYTES-A-DRIVER-MUST-NEVER-READ\n-----END PRIVATE KEY-----\n";

#[test]
fn secrets_are_sealed_at_rest_and_open_only_under_the_hosts_key() {
    let data = tempfile::tempdir().expect("data dir");
    let plane = ControlPlane::start(data.path(), Auth::None);
    let client = plane.client(None).as_project("tenant");
    let (status, stored) = client.post(
        "/v1/secrets",
        &json!({"name": "www", "secret_type": "private", "payload": PAYLOAD,
                "payload_content_type": "text/plain"}),
    );
    assert_eq!(status, 201, "{stored}");
    let id = stored["secret_ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .expect("a reference")
        .to_owned();

    let key = data.path().join("secrets.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("the key file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // What the backend holds is sealed.
    let raw = plane.plane.store.scan(Kind::Secret).expect("scan");
    assert_eq!(raw.len(), 1);
    assert!(!String::from_utf8_lossy(&raw[0].1).contains("THE-KEY-BYTES"));
    plane.stop();

    // The same data folder, the same key: it opens.
    let plane = ControlPlane::start(data.path(), Auth::None);
    let record = plane
        .plane
        .store
        .load::<lbaas_host::model::Secret>(&id)
        .expect("load")
        .expect("kept");
    let opened = plane.plane.open_secret(&record).expect("opens");
    assert_eq!(opened.as_slice(), PAYLOAD.as_bytes());
    plane.stop();

    // Another key: the metadata is there, the payload does not open.
    let other = tempfile::tempdir().expect("another key's folder");
    let plane = ControlPlane::start_with_options(
        data.path(),
        Auth::None,
        Options {
            secrets_key: Some(other.path().join("secrets.key")),
            ..Options::default()
        },
    );
    let (status, shown) = plane
        .client(None)
        .as_project("tenant")
        .get(&format!("/v1/secrets/{id}"));
    assert_eq!(status, 200, "{shown}");
    let error = plane.plane.open_secret(&record).expect_err("another key");
    assert!(
        error
            .to_string()
            .contains("cannot be opened with this host's key"),
        "{error}"
    );
    plane.stop();
}

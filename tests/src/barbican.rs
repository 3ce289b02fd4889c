//! A real Barbican (the PyPI release `cargo xtask conformance` pins, in the same virtual
//! environment as Keystone) on a loopback port, behind a real [`Keystone`]: its stock paste
//! pipeline (keystonemiddleware's `auth_token` in front of the API), a sqlite database and the
//! simple crypto plugin with a fresh key encryption key, all in a temporary folder; served by
//! `tests/barbican/serve.py`, killed by its pid on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::keystone::Keystone;
use crate::workspace_root;

/// Barbican's own service user's password (it validates tokens with it).
const SERVICE_PASSWORD: &str = "barbican-secret";

pub struct Barbican {
    child: Child,
    /// `http://127.0.0.1:PORT`: Barbican's endpoint, as the catalog lists it.
    pub url: String,
    http: ureq::Agent,
    dir: tempfile::TempDir,
}

impl Barbican {
    /// Starts a Barbican that asks `keystone` about tokens, with Barbican's service user made
    /// in the project `service_project` (an id), installed in the virtual environment `venv`.
    pub fn start_in(venv: &Path, keystone: &Keystone, service_project: &str) -> Self {
        let bin = venv.join("bin");
        let paste = venv.join("etc/barbican/barbican-api-paste.ini");
        assert!(
            paste.exists(),
            "Barbican is not installed in {}: scripts/test installs it (cargo xtask conformance)",
            venv.display()
        );
        keystone.user("barbican", SERVICE_PASSWORD, service_project, &["admin"]);
        let dir = tempfile::tempdir().expect("barbican folder");
        let port = crate::free_loopback_port();
        let url = format!("http://127.0.0.1:{port}");
        let kek = base64::engine::general_purpose::URL_SAFE.encode(rand_key());
        let conf_dir = dir.path().join(".barbican");
        std::fs::create_dir_all(&conf_dir).expect("barbican config folder");
        std::fs::write(
            conf_dir.join("barbican.conf"),
            format!(
                "[DEFAULT]\nhost_href = {url}\ndb_auto_create = True\n\
                 [database]\nconnection = sqlite:///{db}\n\
                 [secretstore]\nenabled_secretstore_plugins = store_crypto\n\
                 [crypto]\nenabled_crypto_plugins = simple_crypto\n\
                 [simple_crypto_plugin]\nkek = {kek}\n\
                 [keystone_authtoken]\nwww_authenticate_uri = {keystone}\n\
                 auth_url = {keystone}\nauth_type = password\ninterface = public\n\
                 username = barbican\npassword = {SERVICE_PASSWORD}\n\
                 project_id = {service_project}\nuser_domain_id = default\n",
                db = dir.path().join("barbican.db").display(),
                keystone = keystone.url,
            ),
        )
        .expect("barbican.conf");
        let log = std::fs::File::create(dir.path().join("barbican.log")).expect("barbican log");
        let child = Command::new(bin.join("python"))
            .arg(workspace_root().join("tests/barbican/serve.py"))
            .args(["127.0.0.1", &port.to_string()])
            .arg(&paste)
            // oslo.config finds ~/.barbican/barbican.conf; Barbican reads it at import.
            .env("HOME", dir.path())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start barbican");
        let barbican = Self {
            child,
            url,
            http: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        // Its version document answers 300 (Multiple Choices) once it serves.
        while barbican.call("GET", "/", None, None).0 == 0 {
            assert!(
                Instant::now() < deadline,
                "barbican did not start: {}",
                barbican.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        barbican
    }

    /// What Barbican logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("barbican.log")).unwrap_or_default()
    }

    /// One request to Barbican, with `token` if given: its status and JSON answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .header("accept", "application/json");
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        let request = request
            .body(body.map(Value::to_string).unwrap_or_default())
            .expect("request");
        let Ok(mut response) = self.http.run(request) else {
            return (0, Value::Null);
        };
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    /// Stores `payload` as a binary secret (a PKCS#12 bundle) with `token`; its reference.
    pub fn store(&self, token: &str, name: &str, payload: &[u8]) -> String {
        self.store_as(
            token,
            json!({"name": name, "payload_content_type": "application/octet-stream",
                   "payload_content_encoding": "base64",
                   "payload": base64::engine::general_purpose::STANDARD.encode(payload)}),
        )
    }

    /// Stores `pem` as a text secret (a CA, a revocation list, a certificate) with `token`.
    pub fn store_text(&self, token: &str, name: &str, pem: &str) -> String {
        self.store_as(
            token,
            json!({"name": name, "payload_content_type": "text/plain", "payload": pem}),
        )
    }

    fn store_as(&self, token: &str, body: Value) -> String {
        let (status, answer) = self.call("POST", "/v1/secrets", Some(token), Some(&body));
        assert_eq!(status, 201, "store a secret: {answer}");
        answer["secret_ref"]
            .as_str()
            .expect("secret_ref")
            .to_owned()
    }

    /// A legacy certificate container of the secrets `parts` (name, reference), with `token`.
    pub fn container(&self, token: &str, name: &str, parts: &[(&str, &str)]) -> String {
        let refs: Vec<Value> = parts
            .iter()
            .map(|(name, reference)| json!({"name": name, "secret_ref": reference}))
            .collect();
        let body = json!({"type": "certificate", "name": name, "secret_refs": refs});
        let (status, answer) = self.call("POST", "/v1/containers", Some(token), Some(&body));
        assert_eq!(status, 201, "store a container: {answer}");
        answer["container_ref"]
            .as_str()
            .expect("container_ref")
            .to_owned()
    }

    /// The users on the read ACL of the secret or container `reference` names, as `token` sees
    /// them.
    pub fn readers(&self, token: &str, reference: &str) -> Vec<String> {
        let path = reference
            .strip_prefix(&self.url)
            .expect("a reference to this Barbican");
        let (status, acl) = self.call("GET", &format!("{path}/acl"), Some(token), None);
        assert_eq!(status, 200, "the ACL of {reference}: {acl}");
        acl["read"]["users"]
            .as_array()
            .map(|users| {
                users
                    .iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A fresh 32-byte key encryption key.
fn rand_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("random key");
    key
}

impl Drop for Barbican {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

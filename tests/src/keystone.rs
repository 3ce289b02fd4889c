//! A real Keystone (the PyPI release `cargo xtask conformance` pins, in
//! `target/conformance-venv`, which `scripts/test` installs) on a loopback port: sqlite and fernet keys in a temporary folder, `keystone-manage bootstrap`ed
//! with an `admin` user, served by `tests/keystone/serve.py`, killed by its pid on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::workspace_root;

/// The bootstrap admin's password.
pub const ADMIN_PASSWORD: &str = "admin-secret";

/// The virtual environment Keystone is installed in (`LBAAS_KEYSTONE_VENV` overrides it).
pub fn venv() -> PathBuf {
    std::env::var_os("LBAAS_KEYSTONE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/conformance-venv"))
}

pub struct Keystone {
    child: Child,
    /// `http://127.0.0.1:PORT/v3`
    pub url: String,
    http: ureq::Agent,
    token_lifetime: Duration,
    /// The admin's token and when it was issued (each issue costs Keystone a password hash).
    admin: std::sync::Mutex<Option<(String, Instant)>>,
    _dir: tempfile::TempDir,
}

impl Keystone {
    /// Bootstraps and starts a Keystone whose tokens live `token_lifetime`.
    pub fn start(token_lifetime: Duration) -> Self {
        Self::start_in(&venv(), token_lifetime)
    }

    /// [`Keystone::start`] with Keystone installed in the virtual environment `venv`.
    pub fn start_in(venv: &std::path::Path, token_lifetime: Duration) -> Self {
        let bin = venv.join("bin");
        assert!(
            bin.join("keystone-manage").exists(),
            "Keystone is not installed in {}: scripts/test installs it (cargo xtask conformance)",
            venv.display()
        );
        let dir = tempfile::tempdir().expect("keystone folder");
        let port = crate::free_loopback_port();
        let url = format!("http://127.0.0.1:{port}/v3");
        let path = dir.path().to_path_buf();
        let config = path.join("keystone.conf");
        std::fs::write(
            &config,
            format!(
                "[database]\nconnection = sqlite:///{db}?timeout=30\n\
                 [identity]\npassword_hash_rounds = 4\n\
                 [token]\nprovider = fernet\nexpiration = {expiration}\n\
                 [fernet_tokens]\nkey_repository = {keys}/fernet\n\
                 [fernet_receipts]\nkey_repository = {keys}/receipts\n\
                 [credential]\nkey_repository = {keys}/credential\n",
                db = path.join("keystone.db").display(),
                expiration = token_lifetime.as_secs().max(1),
                keys = path.display(),
            ),
        )
        .expect("keystone.conf");
        let (user, group) = whoami();
        let manage = |args: &[&str]| {
            let output = Command::new(bin.join("keystone-manage"))
                .arg("--config-file")
                .arg(&config)
                .args(args)
                .output()
                .expect("run keystone-manage");
            assert!(
                output.status.success(),
                "keystone-manage {args:?} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        manage(&["db_sync"]);
        for setup in ["fernet_setup", "credential_setup"] {
            manage(&[setup, "--keystone-user", &user, "--keystone-group", &group]);
        }
        manage(&[
            "bootstrap",
            "--bootstrap-password",
            ADMIN_PASSWORD,
            "--bootstrap-public-url",
            &url,
            "--bootstrap-region-id",
            "RegionOne",
        ]);
        let log = std::fs::File::create(path.join("keystone.log")).expect("keystone log");
        let child = Command::new(bin.join("python"))
            .arg(workspace_root().join("tests/keystone/serve.py"))
            .args(["127.0.0.1", &port.to_string()])
            .env("OS_KEYSTONE_CONFIG_FILES", &config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start keystone");
        let keystone = Self {
            child,
            url,
            http: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            token_lifetime,
            admin: std::sync::Mutex::new(None),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while keystone.call("GET", "", &[], None).0 != 200 {
            assert!(
                Instant::now() < deadline,
                "keystone did not start: {}",
                std::fs::read_to_string(path.join("keystone.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        keystone
    }

    /// One request to Keystone with `headers` (`x-auth-token`, `x-subject-token`): its status
    /// and JSON answer, with the `X-Subject-Token` it sends under `"subject_token"`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let text = body.map(Value::to_string).unwrap_or_default();
        let request = request.body(text).expect("request");
        let Ok(mut response) = self.http.run(request) else {
            return (0, Value::Null);
        };
        let status = response.status().as_u16();
        let subject = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut value: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        if let Some(subject) = subject {
            value["subject_token"] = Value::String(subject);
        }
        (status, value)
    }

    /// A request as the bootstrap admin.
    fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let token = self.admin_token();
        self.call(method, path, &[("x-auth-token", &token)], body)
    }

    /// What Keystone logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("keystone.log")).unwrap_or_default()
    }

    /// A project-scoped token for `user` (domain `default`).
    pub fn token(&self, user: &str, password: &str, project: &str) -> String {
        let (status, body) = self.call(
            "POST",
            "/auth/tokens",
            &[],
            Some(&json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": user, "domain": {"id": "default"}, "password": password}}},
                "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})),
        );
        assert_eq!(status, 201, "token for {user} in {project}: {body}");
        body["subject_token"].as_str().expect("token").to_owned()
    }

    /// The bootstrap admin's token, issued again once half its life has passed.
    pub fn admin_token(&self) -> String {
        let mut admin = self.admin.lock().expect("admin token");
        match admin.as_ref() {
            Some((token, issued)) if issued.elapsed() < self.token_lifetime / 2 => token.clone(),
            _ => {
                let token = self.token("admin", ADMIN_PASSWORD, "admin");
                *admin = Some((token.clone(), Instant::now()));
                token
            }
        }
    }

    /// Revokes `token` (as the admin).
    pub fn revoke(&self, token: &str) {
        let admin = self.admin_token();
        let (status, body) = self.call(
            "DELETE",
            "/auth/tokens",
            &[("x-auth-token", &admin), ("x-subject-token", token)],
            None,
        );
        assert_eq!(status, 204, "revoke: {body}");
    }

    /// Creates `kind` (`projects`, `users`, `roles`) as the admin; returns its id.
    pub fn create(&self, kind: &str, body: Value) -> String {
        let singular = kind.trim_end_matches('s');
        let (status, created) = self.admin(
            "POST",
            &format!("/{kind}"),
            Some(&json!({ singular: body })),
        );
        assert_eq!(status, 201, "create {singular}: {created}");
        created[singular]["id"].as_str().expect("id").to_owned()
    }

    /// The id of the role named `name`, created when missing.
    pub fn role(&self, name: &str) -> String {
        let (_, roles) = self.admin("GET", &format!("/roles?name={name}"), None);
        match roles["roles"][0]["id"].as_str() {
            Some(id) => id.to_owned(),
            None => self.create("roles", json!({"name": name})),
        }
    }

    /// Adds a service of `service_type` to the catalog, its public endpoint at `url`.
    pub fn register(&self, service_type: &str, name: &str, url: &str) {
        let service = self.create("services", json!({"name": name, "type": service_type}));
        self.create(
            "endpoints",
            json!({"service_id": service, "interface": "public", "url": url,
                   "region_id": "RegionOne"}),
        );
    }

    /// A project of the `default` domain.
    pub fn project(&self, name: &str) -> String {
        self.create("projects", json!({"name": name, "domain_id": "default"}))
    }

    /// A user of the `default` domain holding `roles` on `project_id`.
    pub fn user(&self, name: &str, password: &str, project_id: &str, roles: &[&str]) -> String {
        let user = self.create(
            "users",
            json!({"name": name, "password": password, "domain_id": "default"}),
        );
        for role in roles {
            let role_id = self.role(role);
            let (status, body) = self.admin(
                "PUT",
                &format!("/projects/{project_id}/users/{user}/roles/{role_id}"),
                None,
            );
            assert_eq!(status, 204, "grant {role} to {name}: {body}");
        }
        user
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The user and group this process runs as, which own the key repositories.
fn whoami() -> (String, String) {
    let id = |flag: &str| {
        let output = Command::new("id").arg(flag).output().expect("run id");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    (id("-un"), id("-gn"))
}

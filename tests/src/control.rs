//! A whole control plane in the test process: sled store in a temporary folder, the real
//! driver components, the worker, and the API on a loopback port — plus a JSON client.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_host::builder::StoreChoice;
use lbaas_host::integrity::Trust;
use lbaas_host::provision::{FixedEndpoint, Provisioner};
use lbaas_host::runtime::RuntimeConfig;
use lbaas_host::{DriverSource, HostBuilder};
use serde_json::Value;

use crate::drivers;

/// What else a test's control plane runs with.
#[derive(Default)]
pub struct Options {
    pub extra_drivers: Vec<std::path::PathBuf>,
    pub config: RuntimeConfig,
    /// Which components the host accepts (uploads included).
    pub trust: Trust,
    /// Store drivers that fail the conformance kit (hostile fixtures that fail it on purpose).
    pub skip_conformance: bool,
    /// Answer writes before they are flushed (benchmarks of what durability costs).
    pub acknowledge_before_flush: bool,
    /// Let project members register virtual devices (`--device-registration members`).
    pub members_register_devices: bool,
    /// Where the host keeps its records; by default sled, or PostgreSQL when the run asks for
    /// it (`LBAAS_TEST_STORE=postgres`).
    pub store: Option<StoreChoice>,
    /// Spawns the devices drivers ask for.
    pub provisioner: Option<Arc<dyn Provisioner>>,
    /// Runs the status monitor this often.
    pub status_interval: Option<Duration>,
    /// The key the local key manager seals secrets under (default: in the data folder).
    pub secrets_key: Option<std::path::PathBuf>,
    /// Keep secrets in the Barbican at this endpoint (with Keystone as the auth).
    pub barbican: Option<String>,
}

pub struct ControlPlane {
    pub url: String,
    /// The host's control plane, for what a test does behind the API.
    pub plane: Arc<lbaas_host::ControlPlane>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Jobs the worker runs at once: 4, as `lbaasd serve` defaults to, or `LBAAS_WORKERS` (the
/// create-latency benchmark was run with 1 and 16 to see how much the slots matter).
fn worker_slots() -> usize {
    std::env::var("LBAAS_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .filter(|&w| w > 0)
        .unwrap_or(4)
}

impl ControlPlane {
    /// Starts a control plane over `data_dir` (reusing what an earlier one left there).
    pub fn start(data_dir: &Path, auth: Auth) -> Self {
        Self::start_with(data_dir, auth, None)
    }

    /// Like [`ControlPlane::start`]; devices drivers ask to spawn are registered at once with
    /// the management endpoint `spawn_url`.
    pub fn start_with(data_dir: &Path, auth: Auth, spawn_url: Option<String>) -> Self {
        let provisioner = spawn_url.map(|management_url| {
            Arc::new(FixedEndpoint { management_url }) as Arc<dyn Provisioner>
        });
        Self::launch(data_dir, auth, provisioner, None, Options::default())
    }

    /// A control plane that also loads `options.extra_drivers`, with `options.config` for the
    /// runtime.
    pub fn start_with_options(data_dir: &Path, auth: Auth, options: Options) -> Self {
        Self::launch(data_dir, auth, None, None, options)
    }

    /// A control plane whose drivers spawn devices through `provisioner`, adopting those it
    /// started before, with the status monitor polling every `status_interval`.
    pub fn start_with_data_plane(
        data_dir: &Path,
        auth: Auth,
        provisioner: Arc<dyn Provisioner>,
        status_interval: Duration,
    ) -> Self {
        Self::launch(
            data_dir,
            auth,
            Some(provisioner),
            Some(status_interval),
            Options::default(),
        )
    }

    fn launch(
        data_dir: &Path,
        auth: Auth,
        provisioner: Option<Arc<dyn Provisioner>>,
        status_interval: Option<Duration>,
        options: Options,
    ) -> Self {
        // As `lbaasd serve` does with its driver folder: every file uploaded and activated.
        let provisioner = provisioner.or_else(|| options.provisioner.clone());
        let status_interval = status_interval.or(options.status_interval);
        let mut files = vec![drivers().haproxy.clone(), drivers().acme_adc.clone()];
        files.extend(options.extra_drivers.iter().cloned());
        let make = || {
            let mut builder = HostBuilder::new(data_dir)
                .runtime(options.config.clone())
                .trust(options.trust.clone())
                .auth(auth.clone())
                .drivers(DriverSource::Files(files.clone()))
                .workers(worker_slots())
                .members_register_devices(options.members_register_devices);
            if let Some(store) = options.store.clone() {
                builder = builder.store(store);
            } else if crate::postgres::backend() == crate::postgres::Backend::Postgres {
                builder = builder.store(StoreChoice::Postgres {
                    url: crate::postgres::database_for(data_dir).url,
                    lease: Duration::from_secs(3),
                });
            }
            if let Some(provisioner) = provisioner.clone() {
                builder = builder.provisioner(provisioner);
            }
            if let Some(interval) = status_interval {
                builder = builder.status_interval(interval);
            }
            if options.skip_conformance {
                builder = builder.without_conformance();
            }
            if let Some(key) = options.secrets_key.clone() {
                builder = builder.secrets_key(key);
            }
            if let Some(url) = &options.barbican {
                builder = builder.barbican(url);
            }
            if options.acknowledge_before_flush {
                builder = builder.acknowledge_before_flush();
            }
            builder
        };
        // A host a test stopped a moment ago may still be letting go of the data folder's
        // database (sled holds its file lock until the last of its threads ends): wait until
        // the lock is free, not a fixed time.
        let mut built = None;
        crate::wait_until("the data folder's database is free", || {
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
            match make().build(listener) {
                Ok(host) => {
                    built = Some(host);
                    true
                }
                Err(error) if format!("{error:#}").contains("could not acquire lock") => false,
                Err(error) => panic!("wire the host: {error:#}"),
            }
        });
        let host = built.expect("built");
        let address = host.address();
        let plane = host.plane().clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // Told once the host has adopted its devices and serves, as `lbaasd serve` is ready then.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let tokio = tokio::runtime::Runtime::new().expect("tokio");
            tokio.block_on(async move {
                let serving = host.start().await.expect("start the host");
                ready_tx
                    .send(())
                    .expect("the test waits until the host is ready");
                serving
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        ready_rx.recv().expect("control plane started");
        Self {
            url: format!("http://{address}"),
            plane,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Runs one round of the status monitor now (what the host does every few seconds), then
    /// waits until every job it queued has run: after this, whatever a round would do about
    /// what a test just did is done.
    pub fn status_round(&self) {
        use lbaas_host::store::StoreExt as _;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(lbaas_host::monitor::round(&self.plane));
        crate::wait_until("the jobs of a status round have run", || {
            self.plane
                .store
                .all::<lbaas_host::model::Job>()
                .is_ok_and(|jobs| jobs.is_empty())
        });
    }

    /// Stops the server and waits until it has shut down.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        let mut client = Client::new(&self.url);
        client.token = token.map(Into::into);
        client
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A JSON client: every call returns the status and the body (JSON, or `null`).
#[derive(Clone)]
pub struct Client {
    url: String,
    token: Option<String>,
    project: Option<String>,
}

impl Client {
    /// A client of the API at `url`, without a token.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            token: None,
            project: None,
        }
    }

    /// Sends `token` as `X-Auth-Token`.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Acts for `project` (noauth's `X-Project-Id`).
    pub fn as_project(mut self, project: &str) -> Self {
        self.project = Some(project.into());
        self
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.try_call(method, path, body).expect("HTTP call")
    }

    /// Like [`Client::call`], but `None` when the server cannot be reached or hangs up.
    pub fn try_call(&self, method: &str, path: &str, body: Option<&str>) -> Option<(u16, Value)> {
        self.send(
            method,
            path,
            "application/json",
            &[],
            body.unwrap_or_default().as_bytes().to_vec(),
        )
    }

    /// POSTs a driver component (`.wasm`) to `path`, with `headers` (e.g. its signature).
    pub fn upload(&self, path: &str, component: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
        self.send("POST", path, "application/wasm", headers, component)
            .expect("HTTP call")
    }

    /// GETs `path` and answers its status and body as text (e.g. `/metrics`).
    pub fn text(&self, path: &str) -> (u16, String) {
        self.send_raw("GET", path, "text/plain", &[], Vec::new())
            .expect("HTTP call")
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Option<(u16, Value)> {
        let (status, text) = self.send_raw(method, path, content_type, headers, body)?;
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Some((status, value))
    }

    fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Option<(u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", content_type);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = &self.token {
            request = request.header("x-auth-token", token);
        }
        if let Some(project) = &self.project {
            request = request.header("x-project-id", project);
        }
        let request = request.body(body).expect("request");
        let mut response = agent.run(request).ok()?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().ok()?;
        Some((status, text))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(&body.to_string()))
    }

    /// Stores `payload` in the host's key manager (PKCS#12 in base64, PEM as text, as
    /// Barbican takes them); its reference.
    pub fn store_secret(&self, name: &str, payload: &[u8]) -> String {
        use base64::Engine as _;
        let body = match std::str::from_utf8(payload) {
            Ok(text) if text.contains("-----BEGIN") => serde_json::json!({"name": name,
                "secret_type": "certificate", "payload": text,
                "payload_content_type": "text/plain"}),
            _ => serde_json::json!({"name": name, "secret_type": "certificate",
                "payload": base64::engine::general_purpose::STANDARD.encode(payload),
                "payload_content_type": "application/pkcs12",
                "payload_content_encoding": "base64"}),
        };
        let (status, answer) = self.post("/v1/secrets", &body);
        assert_eq!(status, 201, "{answer}");
        answer["secret_ref"]
            .as_str()
            .expect("a reference")
            .to_owned()
    }

    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("PUT", path, Some(&body.to_string()))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None)
    }

    /// POSTs and insists on `201 Created`; returns the body.
    pub fn create(&self, path: &str, body: &Value) -> Value {
        let (status, value) = self.post(path, body);
        assert_eq!(status, 201, "POST {path} {body} answered {status}: {value}");
        value
    }

    /// Polls a load balancer until it leaves `PENDING_*`; returns it.
    pub fn settle(&self, lb_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.get(&format!("/v2/lbaas/loadbalancers/{lb_id}"));
            if status == 404 {
                return Value::Null;
            }
            let lb = body["loadbalancer"].clone();
            let state = lb["provisioning_status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !state.starts_with("PENDING_") {
                return lb;
            }
            assert!(
                Instant::now() < deadline,
                "load balancer {lb_id} stuck in {state}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The id in an answer's `{kind: {"id": …}}`.
pub fn id_of(body: &Value, kind: &str) -> String {
    body[kind]["id"].as_str().expect("id").to_owned()
}

impl Client {
    /// Creates a load balancer of `provider` named `name` (one TCP listener, VIP on the subnet
    /// `subnet-vip`) and waits until it settles.
    pub fn create_loadbalancer(&self, provider: &str, name: &str) -> Value {
        let created = self.create(
            "/v2/lbaas/loadbalancers",
            &serde_json::json!({"loadbalancer": {"name": name, "vip_subnet_id": "subnet-vip",
                "provider": provider, "listeners": [{"protocol": "TCP", "protocol_port": 443}]}}),
        );
        self.settle(&id_of(&created, "loadbalancer"))
    }

    /// Audit records matching `query` (as `GET /v2/admin/audit` takes it).
    pub fn audit(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v2/admin/audit?{query}"));
        assert_eq!(status, 200, "{body}");
        body["audit"].as_array().cloned().unwrap_or_default()
    }
}

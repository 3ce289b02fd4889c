//! The admin API's client: requests with the caller's token and project, answers read as
//! the views they should be, and why a command failed ([`Failure`], its exit code).

use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::args::Target;

/// Why a command failed, and its exit code.
pub(crate) enum Failure {
    Refused(String),
    Unreachable(String),
    Local(String),
}

impl Failure {
    pub(crate) fn code(&self) -> u8 {
        match self {
            Failure::Refused(_) | Failure::Local(_) => 1,
            Failure::Unreachable(_) => 3,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(m) | Failure::Unreachable(m) | Failure::Local(m) => f.write_str(m),
        }
    }
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

pub(crate) struct Client {
    pub(crate) url: String,
    pub(crate) token: Option<String>,
    pub(crate) project: String,
    pub(crate) agent: ureq::Agent,
}

impl Client {
    pub(crate) fn new(target: &Target) -> Self {
        Self {
            url: target.url.trim_end_matches('/').to_owned(),
            token: target.token.clone(),
            project: target.project.clone(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(300)))
                .build()
                .into(),
        }
    }

    /// One request; the JSON answer of a 2xx, the host's message otherwise.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        headers: &[(&str, String)],
        body: impl Read + Send + 'static,
    ) -> Result<Value> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", content_type)
            .header("x-project-id", &self.project);
        if let Some(token) = &self.token {
            request = request.header("x-auth-token", token);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(ureq::SendBody::from_owned_reader(body))
            .map_err(|e| Failure::Local(e.to_string()))?;
        let mut response = self.agent.run(request).map_err(|e| {
            Failure::Unreachable(format!("cannot reach the host at {}: {e}", self.url))
        })?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| Failure::Unreachable(format!("the host's answer was cut: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = value["faultstring"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| text.trim().to_owned());
        Err(Failure::Refused(format!("{} ({status})", message)))
    }

    pub(crate) fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, "application/json", &[], std::io::empty())
    }

    pub(crate) fn send(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let bytes = body.to_string().into_bytes();
        self.call(
            method,
            path,
            "application/json",
            &[],
            std::io::Cursor::new(bytes),
        )
    }
}

/// The host's answer as the type this CLI reads it as; an answer of another shape (a host of
/// another version) is said to be one rather than shown as empty columns.
pub(crate) fn typed<T: DeserializeOwned>(value: &Value) -> Result<T> {
    T::deserialize(value).map_err(|e| {
        Failure::Local(format!(
            "the host answered in a shape this lbaasctl does not read ({e}); are they of \
             different versions? --json prints the answer as it is"
        ))
    })
}

//! The `device-api` import: HTTP to one of the calling driver's devices. The permission check
//! comes first; the host adds the credentials; every call is recorded in the audit log with the
//! SHA-256 of the body sent. A device's policy refusal (the agent's `lbaas-refusal` header)
//! fails the driver call whatever the driver makes of it.

use std::io::Read;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::audit::Outcome;
use crate::devices::Credentials;
use crate::runtime::bindings::device_api::{DeviceApiError, Host, Method, Request, Response};
use crate::runtime::bindings::types::Entry;
use crate::runtime::permissions;

use super::HostState;

impl Host for HostState {
    fn send(
        &mut self,
        device_id: String,
        request: Request,
    ) -> wasmtime::Result<Result<Response, DeviceApiError>> {
        let context = &self.context;
        let identity = &context.identity;
        let endpoint = context.devices.endpoint(&device_id);
        let started = Instant::now();
        let result = context
            .grant
            .permits(identity.name.as_str(), request.method, &request.path)
            .map_err(DeviceApiError::NotPermitted)
            .and_then(|()| {
                permissions::check(
                    &context.policy,
                    &identity.name,
                    &device_id,
                    endpoint,
                    &request,
                )
            })
            .and_then(|permitted| {
                send(
                    &context.http,
                    context.policy.max_response_bytes,
                    permitted,
                    &request,
                )
            });
        let digest = hex::encode(Sha256::digest(&request.body));
        let (outcome, detail) = match &result {
            Ok(response) => match policy_refusal(response) {
                Some(refusal) => {
                    let detail = format!(
                        "status {}, refused by the device: {refusal}",
                        response.status
                    );
                    self.device_refused(refusal);
                    (Outcome::Denied, detail)
                }
                None => (Outcome::Ok, format!("status {}", response.status)),
            },
            Err(error @ (DeviceApiError::NotPermitted(_) | DeviceApiError::UnknownDevice(_))) => {
                (Outcome::Denied, format!("{error:?}"))
            }
            Err(error) => (Outcome::Failed, format!("{error:?}")),
        };
        let target = format!("{device_id} {:?} {}", request.method, request.path);
        self.audit(
            "device-api.send",
            Some(target),
            request.body.len(),
            outcome,
            started,
            Some(format!("{detail}; body sha256 {digest}")),
        );
        Ok(result)
    }
}

fn send(
    agent: &ureq::Agent,
    max_response: u64,
    permitted: permissions::Permitted,
    request: &Request,
) -> Result<Response, DeviceApiError> {
    let method = match request.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    };
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(&permitted.url);
    for header in &request.headers {
        builder = builder.header(&header.key, &header.value);
    }
    match &permitted.endpoint.credentials {
        Some(Credentials::Basic { username, password }) => {
            builder = builder.header("authorization", basic_auth(username, password));
        }
        Some(Credentials::Bearer { token }) => {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        None => {}
    }
    let http_request = builder
        .body(request.body.clone())
        .map_err(|e| DeviceApiError::NotPermitted(format!("malformed request: {e}")))?;
    let mut response = agent
        .run(http_request)
        .map_err(|e| DeviceApiError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some(Entry {
                key: name.as_str().to_owned(),
                value: value.to_str().ok()?.to_owned(),
            })
        })
        .collect();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(max_response + 1)
        .read_to_end(&mut body)
        .map_err(|e| DeviceApiError::Unreachable(format!("reading the response: {e}")))?;
    if body.len() as u64 > max_response {
        return Err(DeviceApiError::NotPermitted(format!(
            "response larger than {max_response} bytes"
        )));
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The message of a device's refusal by policy (`lbaas-refusal: policy` and `{"error": ...}`),
/// bounded: a device's answer is not trusted either.
fn policy_refusal(response: &Response) -> Option<String> {
    let refused = response.headers.iter().any(|entry| {
        entry.key.eq_ignore_ascii_case(crate::agent::REFUSAL_HEADER) && entry.value == "policy"
    });
    if !refused {
        return None;
    }
    let message = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "no reason given".into());
    Some(crate::runtime::printable(&message, 512))
}

fn basic_auth(username: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_auth_matches_rfc7617() {
        assert_eq!(
            super::basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(super::basic_auth("a", "b"), "Basic YTpi");
    }
}

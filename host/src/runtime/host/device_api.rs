//! The `device-api` import: HTTP to one of the calling driver's devices. The permission check
//! comes first; the host adds the credentials; every call is recorded in the audit trail.

use std::io::Read;
use std::time::Instant;

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
        let result = permissions::check(
            &context.policy,
            &identity.name,
            &device_id,
            endpoint,
            &request,
        )
        .and_then(|permitted| {
            send(
                &context.http,
                context.policy.max_response_bytes,
                permitted,
                &request,
            )
        });
        let outcome = match &result {
            Ok(response) => format!("status {}", response.status),
            Err(error) => format!("{error:?}"),
        };
        tracing::info!(
            target: "audit",
            driver = identity.name.as_str(),
            version = identity.version.as_str(),
            sha256 = identity.sha256.as_str(),
            device = device_id.as_str(),
            method = ?request.method,
            path = request.path.as_str(),
            request_bytes = request.body.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome = outcome.as_str(),
            "device-api call"
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

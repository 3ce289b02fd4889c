//! Requests to a device's management endpoint, through the host. A driver names the device by
//! id; the host resolves its address, adds its credentials and checks the request.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::lbaas::driver::device_api as raw;
use crate::{DriverError, Entry, TlsFile};

pub use raw::{DeviceApiError, Method};

/// An HTTP request to build and send to one device.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    path: String,
    headers: Vec<Entry>,
    body: Vec<u8>,
}

impl Request {
    /// A request of `method` to `path` on the device, without headers or body.
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET` of `path`.
    pub fn get(path: &str) -> Self {
        Self::new(Method::Get, path)
    }

    /// A `POST` to `path`.
    pub fn post(path: &str) -> Self {
        Self::new(Method::Post, path)
    }

    /// A `PUT` to `path`.
    pub fn put(path: &str) -> Self {
        Self::new(Method::Put, path)
    }

    /// A `DELETE` of `path`.
    pub fn delete(path: &str) -> Self {
        Self::new(Method::Delete, path)
    }

    /// Adds a header (the host refuses `lbaas-*` names: those are its own).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(Entry::new(name, value));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// A JSON body, with its content type.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, DriverError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| DriverError::Internal(format!("cannot encode request body: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sends the request to `device_id`'s management endpoint.
    pub fn send(self, device_id: &str) -> Result<Response, DriverError> {
        let request = raw::Request {
            method: self.method,
            path: self.path,
            headers: self.headers,
            body: self.body,
        };
        let response = raw::send(device_id, &request)?;
        Ok(Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

/// Has the host send the key material `file` names to `device_id`: a `PUT` of `path` whose
/// whole body is the PEM file. The driver never holds the bytes; the host sends them only
/// during the `apply` call that was handed `file`, only to the device that call's load balancer
/// is on, and only to a path the manifest's `certificate_paths` names. The answer is the
/// device's status; a status other than 2xx is a [`DriverError::DeviceRejected`].
pub fn send_certificate(device_id: &str, file: &TlsFile, path: &str) -> Result<(), DriverError> {
    match raw::send_certificate(device_id, &file.handle, path)? {
        200..=299 => Ok(()),
        status => Err(DriverError::DeviceRejected(format!(
            "the device answered {status} to the certificate sent to {path}"
        ))),
    }
}

/// A device's answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: Vec<Entry>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response itself when its status is 2xx; otherwise the device refused.
    pub fn success(self) -> Result<Self, DriverError> {
        if self.is_success() {
            return Ok(self);
        }
        let text = String::from_utf8_lossy(&self.body);
        let text: String = text.chars().take(512).collect();
        Err(DriverError::DeviceRejected(format!(
            "device answered {}: {}",
            self.status,
            text.trim()
        )))
    }

    /// Decodes a JSON body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, DriverError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| DriverError::DeviceRejected(format!("device sent invalid JSON: {e}")))
    }

    /// The first header named `name` (case-insensitively), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|entry| entry.key.eq_ignore_ascii_case(name))
            .map(|entry| entry.value.as_str())
    }
}

impl From<DeviceApiError> for DriverError {
    fn from(error: DeviceApiError) -> Self {
        match error {
            DeviceApiError::UnknownDevice(why) => DriverError::InvalidInput(why),
            DeviceApiError::NotPermitted(why) => DriverError::Internal(why),
            DeviceApiError::Unreachable(why) => DriverError::DeviceUnreachable(why),
        }
    }
}

//! The imports of contracts 0.2.0 to 0.5.0: the same host functions as 0.1.0, whose
//! implementations they call. Only the interface-local types (errors, enums, the HTTP request
//! and its headers) are converted. `send-certificate` (since 0.4.0) is the one import 0.1.0
//! lacks.

use crate::bindings::v0_1::lbaas::driver as old;

use super::HostState;

fn entries<A, B>(entries: Vec<A>, entry: impl Fn(A) -> B) -> Vec<B> {
    entries.into_iter().map(entry).collect()
}

/// Implements one newer contract's imports by calling 0.1.0's.
macro_rules! delegate_to_v0_1 {
    (@send_certificate) => {};
    (@send_certificate certificates) => {
        fn send_certificate(
            &mut self,
            device_id: String,
            handle: String,
            path: String,
        ) -> wasmtime::Result<Result<u16, new::device_api::DeviceApiError>> {
            use new::device_api::DeviceApiError as New;
            use old::device_api::DeviceApiError as Old;
            Ok(HostState::send_certificate(self, device_id, handle, path)?.map_err(|e| match e {
                Old::UnknownDevice(why) => New::UnknownDevice(why),
                Old::NotPermitted(why) => New::NotPermitted(why),
                Old::Unreachable(why) => New::Unreachable(why),
            }))
        }
    };
    ($new:path $(, $certificates:ident)?) => {
        const _: () = {
            use old::types::Entry as OldEntry;
            use $new as new;

            fn state_error(error: old::state::StateError) -> new::state::StateError {
                use new::state::StateError as New;
                use old::state::StateError as Old;
                match error {
                    Old::QuotaExceeded(why) => New::QuotaExceeded(why),
                    Old::InvalidKey(why) => New::InvalidKey(why),
                    Old::Storage(why) => New::Storage(why),
                }
            }

            impl new::state::Host for HostState {
                fn get(
                    &mut self,
                    key: String,
                ) -> wasmtime::Result<Result<Option<Vec<u8>>, new::state::StateError>> {
                    Ok(old::state::Host::get(self, key)?.map_err(state_error))
                }

                fn set(
                    &mut self,
                    key: String,
                    value: Vec<u8>,
                ) -> wasmtime::Result<Result<(), new::state::StateError>> {
                    Ok(old::state::Host::set(self, key, value)?.map_err(state_error))
                }

                fn delete(
                    &mut self,
                    key: String,
                ) -> wasmtime::Result<Result<bool, new::state::StateError>> {
                    Ok(old::state::Host::delete(self, key)?.map_err(state_error))
                }

                fn keys(
                    &mut self,
                    prefix: String,
                ) -> wasmtime::Result<Result<Vec<String>, new::state::StateError>> {
                    Ok(old::state::Host::keys(self, prefix)?.map_err(state_error))
                }
            }

            impl new::log::Host for HostState {
                fn log(&mut self, level: new::log::Level, message: String) -> wasmtime::Result<()> {
                    use new::log::Level as New;
                    use old::log::Level as Old;
                    let level = match level {
                        New::Trace => Old::Trace,
                        New::Debug => Old::Debug,
                        New::Info => Old::Info,
                        New::Warn => Old::Warn,
                        New::Error => Old::Error,
                    };
                    old::log::Host::log(self, level, message)
                }
            }

            impl new::device_api::Host for HostState {
                delegate_to_v0_1!(@send_certificate $($certificates)?);

                fn send(
                    &mut self,
                    device_id: String,
                    request: new::device_api::Request,
                ) -> wasmtime::Result<
                    Result<new::device_api::Response, new::device_api::DeviceApiError>,
                > {
                    use new::device_api::{DeviceApiError as NewError, Method as New, Response};
                    use old::device_api::{DeviceApiError as OldError, Method as Old, Request};
                    let method = match request.method {
                        New::Get => Old::Get,
                        New::Post => Old::Post,
                        New::Put => Old::Put,
                        New::Patch => Old::Patch,
                        New::Delete => Old::Delete,
                    };
                    let request = Request {
                        method,
                        path: request.path,
                        headers: entries(request.headers, |e| OldEntry {
                            key: e.key,
                            value: e.value,
                        }),
                        body: request.body,
                    };
                    Ok(old::device_api::Host::send(self, device_id, request)?
                        .map(|r| Response {
                            status: r.status,
                            headers: entries(r.headers, |e| new::types::Entry {
                                key: e.key,
                                value: e.value,
                            }),
                            body: r.body,
                        })
                        .map_err(|e| match e {
                            OldError::UnknownDevice(why) => NewError::UnknownDevice(why),
                            OldError::NotPermitted(why) => NewError::NotPermitted(why),
                            OldError::Unreachable(why) => NewError::Unreachable(why),
                        }))
                }
            }
        };
    };
}

delegate_to_v0_1!(crate::bindings::v0_2::lbaas::driver);
delegate_to_v0_1!(crate::bindings::v0_3::lbaas::driver);
delegate_to_v0_1!(crate::bindings::v0_4::lbaas::driver, certificates);
delegate_to_v0_1!(crate::bindings::v0_5::lbaas::driver, certificates);

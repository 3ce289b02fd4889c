//! Levelled log messages. The host tags them with the driver's name and version and
//! rate-limits them.

use crate::bindings::lbaas::driver::log as raw;

pub use raw::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    raw::log(level, message);
}

/// Logs `message` at trace level.
pub fn trace(message: &str) {
    raw::log(Level::Trace, message);
}

/// Logs `message` at debug level.
pub fn debug(message: &str) {
    raw::log(Level::Debug, message);
}

/// Logs `message` at info level.
pub fn info(message: &str) {
    raw::log(Level::Info, message);
}

/// Logs `message` at warn level.
pub fn warn(message: &str) {
    raw::log(Level::Warn, message);
}

/// Logs `message` at error level.
pub fn error(message: &str) {
    raw::log(Level::Error, message);
}

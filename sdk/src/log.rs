//! Levelled log messages. The host tags them with the driver's name and version and
//! rate-limits them.

use crate::bindings::lbaas::driver::log as raw;

pub use raw::Level;

pub fn log(level: Level, message: &str) {
    raw::log(level, message);
}

pub fn trace(message: &str) {
    raw::log(Level::Trace, message);
}

pub fn debug(message: &str) {
    raw::log(Level::Debug, message);
}

pub fn info(message: &str) {
    raw::log(Level::Info, message);
}

pub fn warn(message: &str) {
    raw::log(Level::Warn, message);
}

pub fn error(message: &str) {
    raw::log(Level::Error, message);
}

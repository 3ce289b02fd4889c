//! Who a loaded driver version is: [`LoadedIdentity`].

use lbaas_core::DriverName;

/// Who a loaded driver is: the name it reports, its version, and the digest of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadedIdentity {
    /// The name it reports.
    pub name: DriverName,
    /// The version it reports.
    pub version: String,
    /// The SHA-256 of its component's bytes.
    pub sha256: String,
}

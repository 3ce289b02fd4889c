//! Who a loaded driver version is: [`LoadedIdentity`].

use lbaas_core::DriverName;

/// Who a loaded driver is: the name it reports, its version, and the digest of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadedIdentity {
    pub name: DriverName,
    pub version: String,
    pub sha256: String,
}

//! Certificates and the keys behind them, for TLS termination: a bundle read and checked as
//! Octavia reads and checks a certificate reference ([`Bundle`]), a client-authentication CA
//! and its revocation list ([`Authority`]), what may be said of a
//! certificate without its key ([`CertificateInfo`]), and secrets sealed at rest under a key
//! the host keeps outside its database ([`Sealer`]).
//!
//! Nothing here sees a driver, HTTP or a storage engine: the control plane stores what
//! [`Sealer`] seals and hands devices what [`Bundle::pem`] renders.

#![warn(missing_docs)]

mod authority;
mod bundle;
mod certificate;
mod seal;
#[cfg(feature = "testing")]
pub mod testing;

pub use authority::{Authority, AuthorityError, pem_blocks};
pub use bundle::{Bundle, CertError};
pub use certificate::CertificateInfo;
pub use seal::{SealError, Sealer};

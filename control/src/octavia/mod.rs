//! Octavia's rules, as the control plane decides them: what a provider offers and which
//! profiles it takes ([`providers`]). A handler parses the request, asks here, and renders the
//! answer; the typed errors say which answer (Octavia's `400` or `501`) without prose to match.

pub mod providers;

pub use providers::ProviderError;

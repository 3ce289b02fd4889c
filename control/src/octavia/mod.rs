//! Octavia's rules, as the control plane decides them: checks of single values ([`fields`]),
//! where a VIP goes ([`vip`]), what a provider offers and which profiles it takes
//! ([`providers`]). A handler parses the request, asks here, and renders the answer; the typed
//! errors ([`crate::Error`]) say which answer (Octavia's `400`, `403`, `409` or `501`) without
//! prose to match.

pub mod certificates;
pub mod devices;
pub mod fields;
pub mod flavors;
pub mod healthmonitors;
pub mod l7policies;
pub mod listeners;
pub mod loadbalancers;
pub mod members;
pub mod networks;
pub mod offer;
pub mod pools;
pub mod providers;
pub mod quotas;
pub mod status;
pub mod tls;
pub mod tree;
pub mod vip;
pub mod zones;

pub use fields::Decided;
pub use providers::ProviderError;

/// Who asks for a change: a [`Reader`](crate::Reader) that may also write some projects'
/// objects. The API's authenticated caller is one.
pub trait Caller: crate::Reader {
    /// May change objects of `project_id`.
    fn can_write(&self, project_id: &str) -> bool;
    /// May change every project's objects and the host's own (devices, providers).
    fn is_admin(&self) -> bool;
    /// The caller's own token, when the caller proved who it is with one: the host acts with
    /// it where another service must see the caller (Barbican's ACLs).
    fn token(&self) -> Option<&str> {
        None
    }

    /// The project a new object belongs to: the request's `project_id` only for admins,
    /// otherwise the caller's own.
    fn owning_project(&self, requested: Option<&str>) -> Decided<String> {
        match requested {
            Some(project) if project != self.project() && !self.is_admin() => {
                Err(crate::Error::Forbidden)
            }
            Some(project) => Ok(project.to_owned()),
            None => Ok(self.project().to_owned()),
        }
    }
}

//! The fence on a run's writes: the ticket of the stored job.

use lbaas_core::model::Job;

use crate::error::Error;
use crate::plane::ControlPlane;
use crate::store::StoreExt;

/// Whether the stored job of `lb_id` still carries `ticket`: read under the write lock, in the
/// write that commits a run's outcome, so no other outcome of the same job, and no newer
/// change, can come between.
pub(super) fn holds(api: &ControlPlane, lb_id: &str, ticket: &str) -> Result<bool, Error> {
    Ok(api
        .store
        .load::<Job>(lb_id)?
        .is_some_and(|job| job.ticket == ticket))
}

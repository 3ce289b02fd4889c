//! Why a job ended its load balancer in `ERROR`, in one type whose text is the fault.

use crate::error::Error;
use crate::provision::ProvisionError;
use crate::runtime as wit;

/// Why a job ended its load balancer in `ERROR`. Its text is the load balancer's fault, which
/// the tenant reads: rendered here, in one place.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No device has room for the load balancer, and none could be made.
    #[error("{0}")]
    NoCapacity(String),
    /// The provisioner could not start the device a driver asked for.
    #[error("provisioning a new {driver} device failed: {source}")]
    Provision {
        driver: String,
        #[source]
        source: ProvisionError,
    },
    /// The load balancer's provider is not a driver this host serves.
    #[error("provider {0} is not loaded on this host")]
    NotLoaded(String),
    /// The version that serves the load balancer is quarantined.
    #[error(
        "driver {driver} {version} is quarantined ({reason}); an admin can release it \
         (POST /v2/admin/drivers/{driver}/release)"
    )]
    Quarantined {
        driver: String,
        version: String,
        reason: String,
    },
    /// A record the job needs is gone (the device, the VIP network).
    #[error("{0}")]
    Gone(String),
    /// The load balancer's flavor cannot be given to the driver.
    #[error("{0}")]
    Flavor(crate::contract::ProfileDataError),
    /// The driver's call failed: its own error, a trap, a limit, the device's answer.
    #[error("{0}")]
    Driver(#[from] wit::Error),
    /// The host stopped while the driver ran this job's calls, too many times to run again.
    #[error(
        "the host stopped {times} times while driver {driver} {version} ran this load \
         balancer's calls; they are not run again"
    )]
    Interrupted {
        times: u32,
        driver: String,
        version: String,
    },
    /// The control plane could not read or record the job's progress.
    #[error(transparent)]
    ControlPlane(#[from] Error),
    /// The stored job no longer carries this run's ticket: another run finished it, or a newer
    /// change was acknowledged meanwhile. The run commits nothing; never a fault.
    #[error("the job was finished by another run, or superseded by a newer change")]
    Superseded,
}

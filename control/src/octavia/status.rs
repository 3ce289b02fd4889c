//! The object tree's status machine, in one place: what a request sets (`PENDING_CREATE`,
//! `PENDING_UPDATE`, `PENDING_DELETE`), what the job that carries it out settles (`ACTIVE` with
//! an operating status, removal, or `ERROR`), and which load balancers accept a change. The API's
//! rules and the worker both step through [`step`]; the table test below is the whole machine.

use crate::Error;
use crate::model::{Common, LoadBalancer, OperatingStatus, ProvisioningStatus};

/// What happens to one object of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A request creates it: `PENDING_CREATE`, `OFFLINE` until its job ends.
    Create,
    /// A request changes it (or, for a load balancer, one of its children).
    Update,
    /// A request deletes it.
    Delete,
    /// Its job ended with the device matching the model: a deleted object goes, the others are
    /// `ACTIVE` with the operating status given (`OFFLINE` while administratively down).
    Settle(OperatingStatus),
    /// Its job failed: what was pending ends in `ERROR`; what was not keeps its statuses.
    Fail,
    /// The load balancer whose job failed: `ERROR`, whatever it was.
    Fault,
    /// The status monitor saw it so: only an `ACTIVE` object takes the operating status (one
    /// with a job pending is the job's to settle).
    Observe(OperatingStatus),
}

/// What the object is after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Kept,
    Removed,
}

/// Steps `common` through `step` at `now`. `updated_at` moves only when a status changes (or a
/// request changes the object).
pub fn step(common: &mut Common, step: Step, now: &str) -> After {
    use OperatingStatus as O;
    use ProvisioningStatus as P;
    let requested = |common: &mut Common, provisioning| {
        common.provisioning_status = provisioning;
        common.updated_at = Some(now.to_owned());
    };
    match step {
        Step::Create => {
            common.set_statuses(P::PendingCreate, O::Offline, now);
            common.updated_at = None;
        }
        Step::Update => requested(common, P::PendingUpdate),
        Step::Delete => requested(common, P::PendingDelete),
        Step::Settle(_) if common.provisioning_status == P::PendingDelete => return After::Removed,
        Step::Settle(operating) => {
            let operating = if common.admin_state_up {
                operating
            } else {
                O::Offline
            };
            common.set_statuses(P::Active, operating, now);
        }
        Step::Fail if common.provisioning_status.is_pending() => {
            common.set_statuses(P::Error, O::Error, now);
        }
        Step::Fail => {}
        Step::Fault => common.set_statuses(P::Error, O::Error, now),
        Step::Observe(operating) if common.provisioning_status == P::Active => {
            common.set_statuses(P::Active, operating, now);
        }
        Step::Observe(_) => {}
    }
    After::Kept
}

/// A load balancer accepts a change (to itself or a child) only when no job of it is pending.
pub fn ensure_mutable(lb: &LoadBalancer) -> Result<(), Error> {
    if lb.common.provisioning_status.is_pending() {
        return Err(Error::immutable(&lb.common.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use OperatingStatus as O;
    use ProvisioningStatus as P;

    fn common(provisioning: P, operating: O, admin_state_up: bool) -> Common {
        Common {
            id: "x".into(),
            project_id: "p".into(),
            name: String::new(),
            description: String::new(),
            admin_state_up,
            provisioning_status: provisioning,
            operating_status: operating,
            created_at: "t0".into(),
            updated_at: None,
            tags: Vec::new(),
        }
    }

    /// A row: (provisioning, operating, admin up) --step--> Some((provisioning, operating)) or
    /// None (removed), and whether `updated_at` moved.
    type Row = (P, O, bool, Step, Option<(P, O)>, bool);

    #[test]
    fn the_status_machine() {
        #[rustfmt::skip]
        let table: &[Row] = &[
            // What requests set.
            (P::Active, O::Online, true, Step::Update, Some((P::PendingUpdate, O::Online)), true),
            (P::Error, O::Error, true, Step::Update, Some((P::PendingUpdate, O::Error)), true),
            (P::Active, O::Online, true, Step::Delete, Some((P::PendingDelete, O::Online)), true),
            (P::Error, O::Error, true, Step::Delete, Some((P::PendingDelete, O::Error)), true),
            // What a job's success settles.
            (P::PendingCreate, O::Offline, true, Step::Settle(O::Online), Some((P::Active, O::Online)), true),
            (P::PendingCreate, O::Offline, false, Step::Settle(O::Online), Some((P::Active, O::Offline)), true),
            (P::PendingUpdate, O::Online, true, Step::Settle(O::NoMonitor), Some((P::Active, O::NoMonitor)), true),
            (P::PendingDelete, O::Online, true, Step::Settle(O::Online), None, false),
            (P::Active, O::Online, true, Step::Settle(O::Online), Some((P::Active, O::Online)), false),
            (P::Error, O::Error, true, Step::Settle(O::Online), Some((P::Active, O::Online)), true),
            // What a job's failure leaves.
            (P::PendingCreate, O::Offline, true, Step::Fail, Some((P::Error, O::Error)), true),
            (P::PendingUpdate, O::Online, true, Step::Fail, Some((P::Error, O::Error)), true),
            (P::PendingDelete, O::Online, true, Step::Fail, Some((P::Error, O::Error)), true),
            (P::Active, O::Online, true, Step::Fail, Some((P::Active, O::Online)), false),
            (P::Active, O::Online, true, Step::Fault, Some((P::Error, O::Error)), true),
            (P::Error, O::Error, true, Step::Fault, Some((P::Error, O::Error)), false),
            // What the status monitor sees.
            (P::Active, O::Online, true, Step::Observe(O::Error), Some((P::Active, O::Error)), true),
            (P::Active, O::Online, true, Step::Observe(O::Online), Some((P::Active, O::Online)), false),
            (P::PendingUpdate, O::Online, true, Step::Observe(O::Error), Some((P::PendingUpdate, O::Online)), false),
            (P::Error, O::Error, true, Step::Observe(O::Online), Some((P::Error, O::Error)), false),
        ];
        for &(provisioning, operating, up, step_, expected, moved) in table {
            let mut c = common(provisioning, operating, up);
            let after = step(&mut c, step_, "t1");
            let got = (after == After::Kept).then_some((c.provisioning_status, c.operating_status));
            let row = format!("{provisioning:?}/{operating:?}/up={up} --{step_:?}-->");
            assert_eq!(got, expected, "{row}");
            if after == After::Kept {
                assert_eq!(c.updated_at.is_some(), moved, "{row} updated_at");
            }
        }
        let mut new = common(P::Active, O::Online, true);
        assert_eq!(step(&mut new, Step::Create, "t1"), After::Kept);
        assert_eq!(
            (
                new.provisioning_status,
                new.operating_status,
                new.updated_at
            ),
            (P::PendingCreate, O::Offline, None)
        );
    }

    fn lb_fixture() -> LoadBalancer {
        LoadBalancer {
            common: common(P::Active, O::Online, true),
            vip_port_id: "port".into(),
            vip_address: "192.0.2.10".into(),
            vip_network_id: "n".into(),
            vip_subnet_id: "s".into(),
            provider: "acme".into(),
            flavor_id: None,
            device_id: None,
            fault: None,
            migration: None,
            availability_zone: None,
        }
    }

    #[test]
    fn a_pending_load_balancer_refuses_changes() {
        for (provisioning, accepts) in [
            (P::Active, true),
            (P::Error, true),
            (P::PendingCreate, false),
            (P::PendingUpdate, false),
            (P::PendingDelete, false),
        ] {
            let lb = LoadBalancer {
                common: common(provisioning, O::Online, true),
                ..lb_fixture()
            };
            assert_eq!(ensure_mutable(&lb).is_ok(), accepts, "{provisioning:?}");
        }
    }
}

//! Octavia's quotas: how many load balancers, listeners, pools, members, health monitors, L7
//! policies and rules a project may have. A project without a quota of its own has no limit;
//! every create counts what it adds and is refused (`403`) once a quota is met.

use super::fields::Decided;
use super::tree::{remove, store};
use crate::Error;
use crate::model::{Common, Quota};
use crate::plane::Change;
use crate::snapshot::Snapshot;
use crate::store::{Batch, Record, Write};
use crate::table::Table;

/// Octavia's bounds of a quota value (`-1`: no limit).
pub const BOUNDS: std::ops::RangeInclusive<i64> = -1..=2_000_000_000;

/// One kind of object a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    LoadBalancer,
    Listener,
    Pool,
    Member,
    HealthMonitor,
    L7Policy,
    L7Rule,
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 7] = [
        Self::LoadBalancer,
        Self::Listener,
        Self::Pool,
        Self::Member,
        Self::HealthMonitor,
        Self::L7Policy,
        Self::L7Rule,
    ];

    /// Octavia's name of the kind in a refusal.
    pub fn name(self) -> &'static str {
        match self {
            Self::LoadBalancer => "Load Balancer",
            Self::Listener => "Listener",
            Self::Pool => "Pool",
            Self::Member => "Member",
            Self::HealthMonitor => "Health Monitor",
            Self::L7Policy => "L7 Policy",
            Self::L7Rule => "L7 Rule",
        }
    }

    fn slot(self, quota: &mut Quota) -> &mut Option<i64> {
        match self {
            Self::LoadBalancer => &mut quota.loadbalancer,
            Self::Listener => &mut quota.listener,
            Self::Pool => &mut quota.pool,
            Self::Member => &mut quota.member,
            Self::HealthMonitor => &mut quota.healthmonitor,
            Self::L7Policy => &mut quota.l7policy,
            Self::L7Rule => &mut quota.l7rule,
        }
    }

    fn limit(self, quota: &Quota) -> Option<i64> {
        match self {
            Self::LoadBalancer => quota.loadbalancer,
            Self::Listener => quota.listener,
            Self::Pool => quota.pool,
            Self::Member => quota.member,
            Self::HealthMonitor => quota.healthmonitor,
            Self::L7Policy => quota.l7policy,
            Self::L7Rule => quota.l7rule,
        }
    }

    /// How many objects of the kind `project_id` would have after `batch`; `None` when the
    /// batch adds none.
    fn demand(self, snapshot: &Snapshot, project_id: &str, batch: &Batch) -> Option<usize> {
        let s = snapshot;
        let p = project_id;
        match self {
            Self::LoadBalancer => demand(&s.loadbalancers, |r| &r.common, p, batch),
            Self::Listener => demand(&s.listeners, |r| &r.common, p, batch),
            Self::Pool => demand(&s.pools, |r| &r.common, p, batch),
            Self::Member => demand(&s.members, |r| &r.common, p, batch),
            Self::HealthMonitor => demand(&s.healthmonitors, |r| &r.common, p, batch),
            Self::L7Policy => demand(&s.l7policies, |r| &r.common, p, batch),
            Self::L7Rule => demand(&s.l7rules, |r| &r.common, p, batch),
        }
    }
}

/// What the host allows a project without a quota of its own: no limit.
pub fn default_quota(project_id: &str) -> Quota {
    let mut quota = Quota {
        project_id: project_id.to_owned(),
        ..Quota::default()
    };
    for kind in QuotaKind::ALL {
        *kind.slot(&mut quota) = Some(-1);
    }
    quota
}

/// A project's quotas in force: its own where set, the defaults elsewhere.
pub fn effective(snapshot: &Snapshot, project_id: &str) -> Quota {
    merged(snapshot.quotas.find(project_id), project_id)
}

/// `own` quotas where set, the defaults elsewhere.
fn merged(own: Option<&Quota>, project_id: &str) -> Quota {
    let mut quota = default_quota(project_id);
    if let Some(own) = own {
        for kind in QuotaKind::ALL {
            if let Some(value) = kind.limit(own) {
                *kind.slot(&mut quota) = Some(value);
            }
        }
    }
    quota
}

/// The records of `table`'s kind that `batch` adds (ids not in the table yet) plus those
/// `project_id` has; `None`, without counting them, when the batch adds none.
fn demand<T: Record>(
    table: &Table<T>,
    common: fn(&T) -> &Common,
    project_id: &str,
    batch: &Batch,
) -> Option<usize> {
    let added = batch
        .writes()
        .iter()
        .filter(|w| matches!(w, Write::Put { kind, id, .. } if *kind == T::KIND && table.find(id).is_none()))
        .count();
    (added > 0).then(|| {
        added
            + table
                .iter()
                .filter(|r| common(r).project_id == project_id)
                .count()
    })
}

/// Refuses a write that would take `project_id` past a quota: every object `batch` creates
/// (a record not in the snapshot yet) counts.
pub fn enforce(snapshot: &Snapshot, project_id: &str, batch: &Batch) -> Decided<()> {
    let quota = effective(snapshot, project_id);
    for kind in QuotaKind::ALL {
        let Some(limit) = kind.limit(&quota).filter(|l| *l >= 0) else {
            continue;
        };
        let Some(total) = kind.demand(snapshot, project_id, batch) else {
            continue;
        };
        if total > usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(Error::OverQuota { kind: kind.name() });
        }
    }
    Ok(())
}

/// Sets some of a project's quotas: each value (named by the request's `field`, spelled as the
/// caller spelled it) must be within [`BOUNDS`]. The change's value is the quotas in force.
pub fn set(
    snapshot: &Snapshot,
    project_id: &str,
    values: &[(QuotaKind, &'static str, Option<i64>)],
) -> Decided<Change<Quota>> {
    let mut quota = snapshot
        .quotas
        .find(project_id)
        .cloned()
        .unwrap_or_else(|| Quota {
            project_id: project_id.to_owned(),
            ..Quota::default()
        });
    for &(kind, field, value) in values {
        let Some(value) = value else { continue };
        if !BOUNDS.contains(&value) {
            return Err(Error::field(
                field,
                format!(
                    "Invalid input for field/attribute quota.{field}: {value} is out of range \
                     {}-{}",
                    BOUNDS.start(),
                    BOUNDS.end()
                ),
            ));
        }
        *kind.slot(&mut quota) = Some(value);
    }
    Ok(store(quota).map(|quota| merged(Some(&quota), project_id)))
}

/// Resets a project's quotas to the defaults.
pub fn reset(project_id: &str) -> Change<()> {
    remove::<Quota>(project_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_quotas_override_the_defaults_kind_by_kind() {
        let own = Quota {
            project_id: "p".into(),
            pool: Some(3),
            ..Quota::default()
        };
        let quota = merged(Some(&own), "p");
        assert_eq!(quota.pool, Some(3));
        assert_eq!(quota.loadbalancer, Some(-1));
        assert_eq!(quota.l7rule, Some(-1));
        assert_eq!(merged(None, "p"), default_quota("p"));
    }
}

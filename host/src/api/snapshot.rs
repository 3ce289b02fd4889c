//! A consistent read of the control plane's records, with the lookups handlers need. Writes
//! validate against a snapshot taken under the write lock.

use crate::model::{
    Device, Flavor, FlavorProfile, HealthMonitor, Listener, LoadBalancer, Member, Network,
    Placement, Pool,
};
use crate::store::{Batch, Kind, Record, Store, StoreExt, Write, decode};

use super::auth::Context;
use super::error::{ApiError, ApiResult};

/// Every record kind but jobs, each sorted by id as the store keeps them.
#[derive(Clone)]
pub struct Snapshot {
    pub loadbalancers: Vec<LoadBalancer>,
    pub listeners: Vec<Listener>,
    pub pools: Vec<Pool>,
    pub members: Vec<Member>,
    pub healthmonitors: Vec<HealthMonitor>,
    pub flavorprofiles: Vec<FlavorProfile>,
    pub flavors: Vec<Flavor>,
    pub devices: Vec<Device>,
    pub networks: Vec<Network>,
    pub placements: Vec<Placement>,
}

/// Looks up a project-owned object the caller may read; another project's object is "not
/// found", exactly like a missing one.
fn visible<'a, T>(
    items: &'a [T],
    what: &str,
    id: &str,
    ctx: &Context,
    key: impl Fn(&T) -> (&str, &str),
) -> ApiResult<&'a T> {
    items
        .iter()
        .find(|item| key(item).0 == id)
        .filter(|item| ctx.can_read(key(item).1))
        .ok_or_else(|| ApiError::not_found(what, id))
}

impl Snapshot {
    pub fn load(store: &dyn Store) -> crate::store::Result<Self> {
        Ok(Self {
            loadbalancers: store.all()?,
            listeners: store.all()?,
            pools: store.all()?,
            members: store.all()?,
            healthmonitors: store.all()?,
            flavorprofiles: store.all()?,
            flavors: store.all()?,
            devices: store.all()?,
            networks: store.all()?,
            placements: store.all()?,
        })
    }

    /// Brings the snapshot up to date with a committed batch, without reading the store again.
    pub fn apply(&mut self, writes: &[Write]) -> crate::store::Result<()> {
        for write in writes {
            match write {
                Write::Put { kind, id, bytes } => match kind {
                    Kind::LoadBalancer => upsert(&mut self.loadbalancers, decode(id, bytes)?),
                    Kind::Listener => upsert(&mut self.listeners, decode(id, bytes)?),
                    Kind::Pool => upsert(&mut self.pools, decode(id, bytes)?),
                    Kind::Member => upsert(&mut self.members, decode(id, bytes)?),
                    Kind::HealthMonitor => upsert(&mut self.healthmonitors, decode(id, bytes)?),
                    Kind::FlavorProfile => upsert(&mut self.flavorprofiles, decode(id, bytes)?),
                    Kind::Flavor => upsert(&mut self.flavors, decode(id, bytes)?),
                    Kind::Device => upsert(&mut self.devices, decode(id, bytes)?),
                    Kind::Network => upsert(&mut self.networks, decode(id, bytes)?),
                    Kind::Placement => upsert(&mut self.placements, decode(id, bytes)?),
                    Kind::Job | Kind::Driver | Kind::DriverBlob => {}
                },
                Write::Delete { kind, id } => match kind {
                    Kind::LoadBalancer => remove(&mut self.loadbalancers, id),
                    Kind::Listener => remove(&mut self.listeners, id),
                    Kind::Pool => remove(&mut self.pools, id),
                    Kind::Member => remove(&mut self.members, id),
                    Kind::HealthMonitor => remove(&mut self.healthmonitors, id),
                    Kind::FlavorProfile => remove(&mut self.flavorprofiles, id),
                    Kind::Flavor => remove(&mut self.flavors, id),
                    Kind::Device => remove(&mut self.devices, id),
                    Kind::Network => remove(&mut self.networks, id),
                    Kind::Placement => remove(&mut self.placements, id),
                    Kind::Job | Kind::Driver | Kind::DriverBlob => {}
                },
            }
        }
        Ok(())
    }

    /// A scratch snapshot holding only `lb`, for building a new load balancer's tree.
    pub fn empty_for(lb: &LoadBalancer) -> Self {
        Self {
            loadbalancers: vec![lb.clone()],
            listeners: Vec::new(),
            pools: Vec::new(),
            members: Vec::new(),
            healthmonitors: Vec::new(),
            flavorprofiles: Vec::new(),
            flavors: Vec::new(),
            devices: Vec::new(),
            networks: Vec::new(),
            placements: Vec::new(),
        }
    }

    /// Writes every child record of this snapshot into `batch`.
    pub fn put_children(&self, batch: &mut Batch) {
        for listener in &self.listeners {
            batch.put(listener);
        }
        for pool in &self.pools {
            batch.put(pool);
        }
        for member in &self.members {
            batch.put(member);
        }
        for hm in &self.healthmonitors {
            batch.put(hm);
        }
    }

    /// The last placement decision of load balancer `lb_id` (placements are kept sorted by it).
    pub fn placement(&self, lb_id: &str) -> Option<&Placement> {
        self.placements
            .binary_search_by(|p| p.loadbalancer_id.as_str().cmp(lb_id))
            .ok()
            .map(|i| &self.placements[i])
    }

    pub fn loadbalancer(&self, ctx: &Context, id: &str) -> ApiResult<&LoadBalancer> {
        visible(&self.loadbalancers, "Load Balancer", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
    }

    pub fn listener(&self, ctx: &Context, id: &str) -> ApiResult<&Listener> {
        visible(&self.listeners, "Listener", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
    }

    pub fn pool(&self, ctx: &Context, id: &str) -> ApiResult<&Pool> {
        visible(&self.pools, "Pool", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
    }

    pub fn member(&self, ctx: &Context, pool_id: &str, id: &str) -> ApiResult<&Member> {
        visible(&self.members, "Member", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
        .ok()
        .filter(|m| m.pool_id == pool_id)
        .ok_or_else(|| ApiError::not_found("Member", id))
    }

    pub fn healthmonitor(&self, ctx: &Context, id: &str) -> ApiResult<&HealthMonitor> {
        visible(&self.healthmonitors, "Health Monitor", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
    }

    pub fn flavor(&self, id: &str) -> ApiResult<&Flavor> {
        self.flavors
            .iter()
            .find(|f| f.id == id)
            .ok_or_else(|| ApiError::not_found("Flavor", id))
    }

    pub fn flavorprofile(&self, id: &str) -> ApiResult<&FlavorProfile> {
        self.flavorprofiles
            .iter()
            .find(|f| f.id == id)
            .ok_or_else(|| ApiError::not_found("Flavor profile", id))
    }

    /// A device the caller may see: shared ones and its project's own; admins see all.
    pub fn device(&self, ctx: &Context, id: &str) -> ApiResult<&Device> {
        self.devices
            .iter()
            .find(|d| d.id == id)
            .filter(|d| device_visible(ctx, d))
            .ok_or_else(|| ApiError::not_found("Device", id))
    }

    pub fn network(&self, ctx: &Context, id: &str) -> ApiResult<&Network> {
        self.networks
            .iter()
            .find(|n| n.id == id)
            .filter(|n| network_visible(ctx, n))
            .ok_or_else(|| ApiError::not_found("Network", id))
    }

    /// The network holding subnet `id`, and the subnet, if the caller may use it.
    pub fn subnet(&self, ctx: &Context, id: &str) -> ApiResult<(&Network, &crate::model::Subnet)> {
        self.networks
            .iter()
            .filter(|n| network_visible(ctx, n))
            .find_map(|n| n.subnets.iter().find(|s| s.id == id).map(|s| (n, s)))
            .ok_or_else(|| ApiError::not_found("Subnet", id))
    }

    pub fn listeners_of<'a>(&'a self, lb_id: &'a str) -> impl Iterator<Item = &'a Listener> + 'a {
        self.listeners
            .iter()
            .filter(move |l| l.loadbalancer_id == lb_id)
    }

    pub fn pools_of<'a>(&'a self, lb_id: &'a str) -> impl Iterator<Item = &'a Pool> + 'a {
        self.pools
            .iter()
            .filter(move |p| p.loadbalancer_id == lb_id)
    }

    pub fn members_of<'a>(&'a self, pool_id: &'a str) -> impl Iterator<Item = &'a Member> + 'a {
        self.members.iter().filter(move |m| m.pool_id == pool_id)
    }

    pub fn healthmonitor_of(&self, pool_id: &str) -> Option<&HealthMonitor> {
        self.healthmonitors.iter().find(|h| h.pool_id == pool_id)
    }

    /// The load balancer owning a child, which must exist.
    pub fn parent(&self, lb_id: &str) -> ApiResult<&LoadBalancer> {
        self.loadbalancers
            .iter()
            .find(|lb| lb.common.id == lb_id)
            .ok_or_else(|| {
                ApiError::internal(format!("load balancer {lb_id} of a child is missing"))
            })
    }

    /// Load balancers placed on a device.
    pub fn load_of(&self, device_id: &str) -> usize {
        self.loadbalancers
            .iter()
            .filter(|lb| lb.device_id.as_deref() == Some(device_id))
            .count()
    }
}

/// Shared devices are the operator's business; a project sees only its own private devices.
fn upsert<R: Record>(items: &mut Vec<R>, record: R) {
    match items.binary_search_by(|r| r.id().cmp(record.id())) {
        Ok(i) => items[i] = record,
        Err(i) => items.insert(i, record),
    }
}

fn remove<R: Record>(items: &mut Vec<R>, id: &str) {
    if let Ok(i) = items.binary_search_by(|r| r.id().cmp(id)) {
        items.remove(i);
    }
}

pub fn device_visible(ctx: &Context, device: &Device) -> bool {
    ctx.reads_all()
        || device
            .project_id
            .as_deref()
            .is_some_and(|p| p == ctx.project_id && ctx.can_read(p))
}

pub fn network_visible(ctx: &Context, network: &Network) -> bool {
    ctx.reads_all()
        || network
            .project_id
            .as_deref()
            .is_none_or(|p| p == ctx.project_id)
}

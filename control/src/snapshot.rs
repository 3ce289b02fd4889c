//! A consistent read of the control plane's records, with the lookups handlers need. Writes
//! validate against a snapshot taken under the write lock.

use std::collections::HashMap;

use crate::model::{
    AvailabilityZone, AvailabilityZoneProfile, Device, Flavor, FlavorProfile, HealthMonitor,
    L7Policy, L7Rule, Listener, LoadBalancer, Member, Network, Placement, Pool, Quota,
};
use crate::store::{Batch, Kind, Record, Store, StoreExt, Write, decode};

use crate::error::Error;
use crate::table::Table;

/// Who is reading: what a lookup may show them. The API's request context implements it.
pub trait Reader {
    /// Sees every project's objects (an admin, a global observer).
    fn reads_all(&self) -> bool;
    /// The project the reader acts for.
    fn project(&self) -> &str;
    /// May read objects of `project_id`.
    fn can_read(&self, project_id: &str) -> bool;
}

type Found<'a, T> = Result<&'a T, Error>;

/// Every record kind but jobs, each sorted by id as the store keeps them, and the load of
/// every device, kept up to date with them.
#[derive(Clone)]
pub struct Snapshot {
    pub loadbalancers: Table<LoadBalancer>,
    pub listeners: Table<Listener>,
    pub pools: Table<Pool>,
    pub members: Table<Member>,
    pub healthmonitors: Table<HealthMonitor>,
    pub l7policies: Table<L7Policy>,
    pub l7rules: Table<L7Rule>,
    pub flavorprofiles: Table<FlavorProfile>,
    pub flavors: Table<Flavor>,
    pub availability_zone_profiles: Table<AvailabilityZoneProfile>,
    pub availability_zones: Table<AvailabilityZone>,
    pub devices: Table<Device>,
    pub networks: Table<Network>,
    pub placements: Table<Placement>,
    pub quotas: Table<Quota>,
    loads: Loads,
    /// Child ids by parent, when kept (snapshots of the store keep them; a scratch snapshot
    /// being filled with a new load balancer's tree does not, and its lookups scan).
    children: Option<std::sync::Arc<Children>>,
    /// The store's revision this snapshot shows, on a store several hosts share (0 on one a
    /// host owns).
    pub revision: u64,
}

/// The ids of each parent's children, so a view or a job finds a load balancer's listeners
/// and pools, and a pool's members and health monitor, without scanning every record.
#[derive(Clone, Default)]
struct Children {
    listeners: HashMap<String, Vec<String>>,
    pools: HashMap<String, Vec<String>>,
    members: HashMap<String, Vec<String>>,
    healthmonitors: HashMap<String, Vec<String>>,
    l7policies: HashMap<String, Vec<String>>,
    l7rules: HashMap<String, Vec<String>>,
}

/// Where a kind of child is indexed, and its parent.
struct Child<T> {
    index: fn(&mut Children) -> &mut HashMap<String, Vec<String>>,
    read: fn(&Children) -> &HashMap<String, Vec<String>>,
    parent: fn(&T) -> &str,
}

impl Child<Listener> {
    const LISTENER: Self = Self {
        index: |c| &mut c.listeners,
        read: |c| &c.listeners,
        parent: |l| &l.loadbalancer_id,
    };
}

impl Child<Pool> {
    const POOL: Self = Self {
        index: |c| &mut c.pools,
        read: |c| &c.pools,
        parent: |p| &p.loadbalancer_id,
    };
}

impl Child<Member> {
    const MEMBER: Self = Self {
        index: |c| &mut c.members,
        read: |c| &c.members,
        parent: |m| &m.pool_id,
    };
}

impl Child<HealthMonitor> {
    const HEALTHMONITOR: Self = Self {
        index: |c| &mut c.healthmonitors,
        read: |c| &c.healthmonitors,
        parent: |h| &h.pool_id,
    };
}

impl Child<L7Policy> {
    const L7POLICY: Self = Self {
        index: |c| &mut c.l7policies,
        read: |c| &c.l7policies,
        parent: |p| &p.listener_id,
    };
}

impl Child<L7Rule> {
    const L7RULE: Self = Self {
        index: |c| &mut c.l7rules,
        read: |c| &c.l7rules,
        parent: |r| &r.l7policy_id,
    };
}

/// Puts a child record, keeping the index (when there is one) with it.
fn put_child<T: Record>(
    table: &mut Table<T>,
    children: &mut Option<std::sync::Arc<Children>>,
    child: Child<T>,
    record: T,
) {
    let new = ((child.parent)(&record).to_owned(), record.id().to_owned());
    let old = table.upsert(record);
    if let Some(children) = children {
        let map = (child.index)(std::sync::Arc::make_mut(children));
        if let Some(old) = old {
            link(map, (child.parent)(&old), old.id(), false);
        }
        link(map, &new.0, &new.1, true);
    }
}

/// Removes a child record, keeping the index (when there is one) with it.
fn remove_child<T: Record>(
    table: &mut Table<T>,
    children: &mut Option<std::sync::Arc<Children>>,
    child: Child<T>,
    id: &str,
) {
    if let (Some(old), Some(children)) = (table.remove(id), children) {
        let map = (child.index)(std::sync::Arc::make_mut(children));
        link(map, (child.parent)(&old), old.id(), false);
    }
}

fn link(map: &mut HashMap<String, Vec<String>>, parent: &str, id: &str, add: bool) {
    if add {
        let ids = map.entry(parent.to_owned()).or_default();
        if let Err(i) = ids.binary_search_by(|c| c.as_str().cmp(id)) {
            ids.insert(i, id.to_owned());
        }
    } else if let Some(ids) = map.get_mut(parent) {
        ids.retain(|c| c != id);
        if ids.is_empty() {
            map.remove(parent);
        }
    }
}

/// Load balancers per device, counted once and then kept with each change, so a placement
/// decision reads them instead of counting every load balancer.
#[derive(Clone, Default)]
struct Loads {
    /// Per device, in the order of `devices`.
    all: Vec<u32>,
    /// Per project, then per device (its index in `devices`).
    by_project: HashMap<String, HashMap<usize, u32>>,
    /// Per VIP network, then per device (its index in `devices`).
    by_network: HashMap<String, HashMap<usize, u32>>,
}

/// The loads of every device (in the order of `Snapshot::devices`) as one placement sees them.
pub struct DeviceLoads {
    pub all: Vec<u32>,
    /// Of the requesting project.
    pub project: Vec<u32>,
    /// On the request's VIP network.
    pub network: Vec<u32>,
}

/// Looks up a project-owned object the caller may read; another project's object is refused
/// (403), as Octavia's policy refuses it.
fn visible<'a, T: Record>(
    items: &'a Table<T>,
    what: &'static str,
    id: &str,
    ctx: &impl Reader,
    key: impl Fn(&T) -> (&str, &str),
) -> Found<'a, T> {
    match items.find(id) {
        Some(item) if ctx.can_read(key(item).1) => Ok(item),
        Some(_) => Err(Error::Forbidden),
        None => Err(Error::not_found(what, id)),
    }
}

impl Snapshot {
    pub fn load(store: &dyn Store) -> crate::store::Result<Self> {
        // Read before the records: a commit landing meanwhile is caught up again later, and
        // catching up is idempotent.
        let revision = match store.fleet() {
            Some(fleet) => fleet.revision()?,
            None => 0,
        };
        let mut snapshot = Self {
            loadbalancers: store.all::<_>()?.into(),
            listeners: store.all::<_>()?.into(),
            pools: store.all::<_>()?.into(),
            members: store.all::<_>()?.into(),
            healthmonitors: store.all::<_>()?.into(),
            l7policies: store.all::<_>()?.into(),
            l7rules: store.all::<_>()?.into(),
            flavorprofiles: store.all::<_>()?.into(),
            flavors: store.all::<_>()?.into(),
            availability_zone_profiles: store.all::<_>()?.into(),
            availability_zones: store.all::<_>()?.into(),
            devices: store.all::<_>()?.into(),
            networks: store.all::<_>()?.into(),
            placements: store.all::<_>()?.into(),
            quotas: store.all::<_>()?.into(),
            loads: Loads::default(),
            children: None,
            revision,
        };
        snapshot.recount();
        snapshot.reindex();
        Ok(snapshot)
    }

    /// Counts every device's load again: after loading, or after the devices or load
    /// balancers were replaced wholesale (benchmarks build snapshots that way).
    pub fn recount(&mut self) {
        self.loads = Loads {
            all: vec![0; self.devices.len()],
            ..Loads::default()
        };
        for lb in self.loadbalancers.clone().iter() {
            self.count(lb, true);
        }
    }

    /// Builds the index of children by parent.
    fn reindex(&mut self) {
        let mut children = Children::default();
        for l in &self.listeners {
            link(
                &mut children.listeners,
                &l.loadbalancer_id,
                &l.common.id,
                true,
            );
        }
        for p in &self.pools {
            link(&mut children.pools, &p.loadbalancer_id, &p.common.id, true);
        }
        for m in &self.members {
            link(&mut children.members, &m.pool_id, &m.common.id, true);
        }
        for h in &self.healthmonitors {
            link(&mut children.healthmonitors, &h.pool_id, &h.common.id, true);
        }
        for p in &self.l7policies {
            link(&mut children.l7policies, &p.listener_id, &p.common.id, true);
        }
        for r in &self.l7rules {
            link(&mut children.l7rules, &r.l7policy_id, &r.common.id, true);
        }
        self.children = Some(std::sync::Arc::new(children));
    }

    /// Adds (or takes away) one load balancer's part of its device's load.
    fn count(&mut self, lb: &LoadBalancer, add: bool) {
        let Some(device) = lb.device_id.as_deref() else {
            return;
        };
        // A load balancer on a device not (yet) recorded counts when the device arrives:
        // adding or removing a device recounts.
        let Ok(i) = self.devices.position(device) else {
            return;
        };
        let step = |n: &mut u32| *n = if add { *n + 1 } else { n.saturating_sub(1) };
        step(&mut self.loads.all[i]);
        for (map, key) in [
            (&mut self.loads.by_project, &lb.common.project_id),
            (&mut self.loads.by_network, &lb.vip_network_id),
        ] {
            let per_device = map.entry(key.clone()).or_default();
            let n = per_device.entry(i).or_default();
            step(n);
            if *n == 0 {
                per_device.remove(&i);
                if per_device.is_empty() {
                    map.remove(key);
                }
            }
        }
    }

    fn put_loadbalancer(&mut self, lb: LoadBalancer) {
        let counted = lb.clone();
        if let Some(old) = self.loadbalancers.upsert(lb) {
            self.count(&old, false);
        }
        self.count(&counted, true);
    }

    fn remove_loadbalancer(&mut self, id: &str) {
        if let Some(old) = self.loadbalancers.remove(id) {
            self.count(&old, false);
        }
    }

    /// Every device's load as a placement of `lb_id` (of `project_id`, VIP on `vip_network`)
    /// sees it: without `lb_id`'s own part, when it is already placed.
    pub fn device_loads(&self, lb_id: &str, project_id: &str, vip_network: &str) -> DeviceLoads {
        let mut loads = DeviceLoads {
            all: self.loads.all.clone(),
            project: vec![0; self.devices.len()],
            network: vec![0; self.devices.len()],
        };
        let index = |device: &str| self.devices.position(device).ok();
        for (map, key, dense) in [
            (&self.loads.by_project, project_id, &mut loads.project),
            (&self.loads.by_network, vip_network, &mut loads.network),
        ] {
            for (&i, &n) in map.get(key).into_iter().flatten() {
                dense[i] = n;
            }
        }
        if let Some(own) = self.loadbalancers.find(lb_id)
            && let Some(i) = own.device_id.as_deref().and_then(index)
        {
            let less = |n: &mut u32| *n = n.saturating_sub(1);
            less(&mut loads.all[i]);
            if own.common.project_id == project_id {
                less(&mut loads.project[i]);
            }
            if own.vip_network_id == vip_network {
                less(&mut loads.network[i]);
            }
        }
        loads
    }

    /// Brings the snapshot up to date with a committed batch, without reading the store again.
    pub fn apply(&mut self, writes: &[Write]) -> crate::store::Result<()> {
        for write in writes {
            match write {
                Write::Put { kind, id, bytes } => match kind {
                    Kind::LoadBalancer => self.put_loadbalancer(decode(id, bytes)?),
                    Kind::Listener => put_child(
                        &mut self.listeners,
                        &mut self.children,
                        Child::LISTENER,
                        decode(id, bytes)?,
                    ),
                    Kind::Pool => put_child(
                        &mut self.pools,
                        &mut self.children,
                        Child::POOL,
                        decode(id, bytes)?,
                    ),
                    Kind::Member => put_child(
                        &mut self.members,
                        &mut self.children,
                        Child::MEMBER,
                        decode(id, bytes)?,
                    ),
                    Kind::HealthMonitor => put_child(
                        &mut self.healthmonitors,
                        &mut self.children,
                        Child::HEALTHMONITOR,
                        decode(id, bytes)?,
                    ),
                    Kind::L7Policy => put_child(
                        &mut self.l7policies,
                        &mut self.children,
                        Child::L7POLICY,
                        decode(id, bytes)?,
                    ),
                    Kind::L7Rule => put_child(
                        &mut self.l7rules,
                        &mut self.children,
                        Child::L7RULE,
                        decode(id, bytes)?,
                    ),
                    Kind::FlavorProfile => drop(self.flavorprofiles.upsert(decode(id, bytes)?)),
                    Kind::Flavor => drop(self.flavors.upsert(decode(id, bytes)?)),
                    Kind::AvailabilityZoneProfile => {
                        drop(self.availability_zone_profiles.upsert(decode(id, bytes)?))
                    }
                    Kind::AvailabilityZone => {
                        drop(self.availability_zones.upsert(decode(id, bytes)?))
                    }
                    Kind::Device => {
                        let device: Device = decode(id, bytes)?;
                        if self.devices.upsert(device).is_none() {
                            self.recount();
                        }
                    }
                    Kind::Network => drop(self.networks.upsert(decode(id, bytes)?)),
                    Kind::Placement => drop(self.placements.upsert(decode(id, bytes)?)),
                    Kind::Quota => drop(self.quotas.upsert(decode(id, bytes)?)),
                    Kind::Job
                    | Kind::Driver
                    | Kind::DriverBlob
                    | Kind::Quarantine
                    | Kind::Secret => {}
                },
                Write::Delete { kind, id } => match kind {
                    Kind::LoadBalancer => self.remove_loadbalancer(id),
                    Kind::Listener => {
                        remove_child(&mut self.listeners, &mut self.children, Child::LISTENER, id)
                    }
                    Kind::Pool => {
                        remove_child(&mut self.pools, &mut self.children, Child::POOL, id)
                    }
                    Kind::Member => {
                        remove_child(&mut self.members, &mut self.children, Child::MEMBER, id)
                    }
                    Kind::HealthMonitor => remove_child(
                        &mut self.healthmonitors,
                        &mut self.children,
                        Child::HEALTHMONITOR,
                        id,
                    ),
                    Kind::L7Policy => remove_child(
                        &mut self.l7policies,
                        &mut self.children,
                        Child::L7POLICY,
                        id,
                    ),
                    Kind::L7Rule => {
                        remove_child(&mut self.l7rules, &mut self.children, Child::L7RULE, id)
                    }
                    Kind::FlavorProfile => drop(self.flavorprofiles.remove(id)),
                    Kind::Flavor => drop(self.flavors.remove(id)),
                    Kind::AvailabilityZoneProfile => {
                        drop(self.availability_zone_profiles.remove(id))
                    }
                    Kind::AvailabilityZone => drop(self.availability_zones.remove(id)),
                    Kind::Device => {
                        if self.devices.remove(id).is_some() {
                            self.recount();
                        }
                    }
                    Kind::Network => drop(self.networks.remove(id)),
                    Kind::Placement => drop(self.placements.remove(id)),
                    Kind::Quota => drop(self.quotas.remove(id)),
                    Kind::Job
                    | Kind::Driver
                    | Kind::DriverBlob
                    | Kind::Quarantine
                    | Kind::Secret => {}
                },
            }
        }
        Ok(())
    }

    /// A snapshot of no records.
    pub fn empty() -> Self {
        Self {
            loadbalancers: Table::default(),
            listeners: Table::default(),
            pools: Table::default(),
            members: Table::default(),
            healthmonitors: Table::default(),
            l7policies: Table::default(),
            l7rules: Table::default(),
            flavorprofiles: Table::default(),
            flavors: Table::default(),
            availability_zone_profiles: Table::default(),
            availability_zones: Table::default(),
            devices: Table::default(),
            networks: Table::default(),
            placements: Table::default(),
            quotas: Table::default(),
            loads: Loads::default(),
            children: None,
            revision: 0,
        }
    }

    /// A scratch snapshot holding only `lb`, for building a new load balancer's tree.
    pub fn empty_for(lb: &LoadBalancer) -> Self {
        Self {
            loadbalancers: vec![lb.clone()].into(),
            ..Self::empty()
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
        for policy in &self.l7policies {
            batch.put(policy);
        }
        for rule in &self.l7rules {
            batch.put(rule);
        }
    }

    /// The last placement decision of load balancer `lb_id` (placements are kept sorted by it).
    pub fn placement(&self, lb_id: &str) -> Option<&Placement> {
        self.placements.find(lb_id)
    }

    pub fn loadbalancer(&self, ctx: &impl Reader, id: &str) -> Result<&LoadBalancer, Error> {
        visible(&self.loadbalancers, "Load Balancer", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
    }

    pub fn listener(&self, ctx: &impl Reader, id: &str) -> Result<&Listener, Error> {
        visible(&self.listeners, "Listener", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
    }

    pub fn pool(&self, ctx: &impl Reader, id: &str) -> Result<&Pool, Error> {
        visible(&self.pools, "Pool", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
    }

    pub fn member(&self, ctx: &impl Reader, pool_id: &str, id: &str) -> Result<&Member, Error> {
        visible(&self.members, "Member", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
        .and_then(|m| {
            (m.pool_id == pool_id)
                .then_some(m)
                .ok_or_else(|| Error::not_found("Member", id))
        })
    }

    pub fn healthmonitor(&self, ctx: &impl Reader, id: &str) -> Result<&HealthMonitor, Error> {
        visible(&self.healthmonitors, "Health Monitor", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
    }

    pub fn l7policy(&self, ctx: &impl Reader, id: &str) -> Result<&L7Policy, Error> {
        visible(&self.l7policies, "L7 Policy", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
    }

    pub fn l7rule(&self, ctx: &impl Reader, policy_id: &str, id: &str) -> Result<&L7Rule, Error> {
        visible(&self.l7rules, "L7 Rule", id, ctx, |r| {
            (&r.common.id, &r.common.project_id)
        })
        .and_then(|r| {
            (r.l7policy_id == policy_id)
                .then_some(r)
                .ok_or_else(|| Error::not_found("L7 Rule", id))
        })
    }

    pub fn flavor(&self, id: &str) -> Result<&Flavor, Error> {
        self.flavors
            .find(id)
            .ok_or_else(|| Error::not_found("Flavor", id))
    }

    pub fn availability_zone(&self, name: &str) -> Result<&AvailabilityZone, Error> {
        self.availability_zones
            .find(name)
            .ok_or_else(|| Error::not_found("Availability Zone", name))
    }

    pub fn availability_zone_profile(&self, id: &str) -> Result<&AvailabilityZoneProfile, Error> {
        self.availability_zone_profiles
            .find(id)
            .ok_or_else(|| Error::not_found("Availability Zone Profile", id))
    }

    pub fn flavorprofile(&self, id: &str) -> Result<&FlavorProfile, Error> {
        self.flavorprofiles
            .find(id)
            .ok_or_else(|| Error::not_found("Flavor profile", id))
    }

    /// A device the caller may see: shared ones and its project's own; admins see all.
    pub fn device(&self, ctx: &impl Reader, id: &str) -> Result<&Device, Error> {
        self.devices
            .find(id)
            .filter(|d| device_visible(ctx, d))
            .ok_or_else(|| Error::not_found("Device", id))
    }

    /// Load balancer `id`, whoever owns it (the worker's lookup).
    pub fn loadbalancer_by_id(&self, id: &str) -> Option<&LoadBalancer> {
        self.loadbalancers.find(id)
    }

    /// Device `id`, whoever may see it (the scheduler's and worker's lookup).
    pub fn device_by_id(&self, id: &str) -> Option<&Device> {
        self.devices.find(id)
    }

    pub fn network(&self, ctx: &impl Reader, id: &str) -> Result<&Network, Error> {
        self.networks
            .iter()
            .find(|n| n.id == id)
            .filter(|n| network_visible(ctx, n))
            .ok_or_else(|| Error::not_found("Network", id))
    }

    /// The network holding subnet `id`, and the subnet, if the caller may use it.
    pub fn subnet(
        &self,
        ctx: &impl Reader,
        id: &str,
    ) -> Result<(&Network, &crate::model::Subnet), Error> {
        self.networks
            .iter()
            .filter(|n| network_visible(ctx, n))
            .find_map(|n| n.subnets.iter().find(|s| s.id == id).map(|s| (n, s)))
            .ok_or_else(|| Error::not_found("Subnet", id))
    }

    pub fn listeners_of<'a>(
        &'a self,
        lb_id: &'a str,
    ) -> Box<dyn Iterator<Item = &'a Listener> + 'a> {
        self.children_of(&self.listeners, Child::LISTENER, lb_id)
    }

    pub fn pools_of<'a>(&'a self, lb_id: &'a str) -> Box<dyn Iterator<Item = &'a Pool> + 'a> {
        self.children_of(&self.pools, Child::POOL, lb_id)
    }

    pub fn members_of<'a>(&'a self, pool_id: &'a str) -> Box<dyn Iterator<Item = &'a Member> + 'a> {
        self.children_of(&self.members, Child::MEMBER, pool_id)
    }

    /// A listener's L7 policies, in `position` order.
    pub fn l7policies_of<'a>(&'a self, listener_id: &'a str) -> Vec<&'a L7Policy> {
        let mut policies: Vec<&L7Policy> = self
            .children_of(&self.l7policies, Child::L7POLICY, listener_id)
            .collect();
        policies.sort_by_key(|p| p.position);
        policies
    }

    pub fn l7rules_of<'a>(
        &'a self,
        policy_id: &'a str,
    ) -> Box<dyn Iterator<Item = &'a L7Rule> + 'a> {
        self.children_of(&self.l7rules, Child::L7RULE, policy_id)
    }

    pub fn healthmonitor_of<'a>(&'a self, pool_id: &'a str) -> Option<&'a HealthMonitor> {
        self.children_of(&self.healthmonitors, Child::HEALTHMONITOR, pool_id)
            .next()
    }

    /// The children of `parent` in `table`, in id order: from the index, or (in a scratch
    /// snapshot) by a scan.
    fn children_of<'a, T: Record>(
        &'a self,
        table: &'a Table<T>,
        child: Child<T>,
        parent: &'a str,
    ) -> Box<dyn Iterator<Item = &'a T> + 'a> {
        match &self.children {
            Some(children) => Box::new(lookup((child.read)(children), parent, table)),
            None => Box::new(table.iter().filter(move |r| (child.parent)(r) == parent)),
        }
    }

    /// The load balancer owning a child, which must exist.
    pub fn parent(&self, lb_id: &str) -> Result<&LoadBalancer, Error> {
        self.loadbalancers.find(lb_id).ok_or_else(|| {
            Error::Inconsistent(format!("load balancer {lb_id} of a child is missing"))
        })
    }

    /// Load balancers placed on a device.
    pub fn load_of(&self, device_id: &str) -> usize {
        self.devices
            .position(device_id)
            .map_or(0, |i| self.loads.all[i] as usize)
    }
}

/// The children of `parent` listed in `index`, in id order.
fn lookup<'a, T: Record>(
    index: &'a HashMap<String, Vec<String>>,
    parent: &str,
    table: &'a Table<T>,
) -> impl Iterator<Item = &'a T> + 'a {
    index
        .get(parent)
        .into_iter()
        .flatten()
        .filter_map(move |id| table.find(id))
}

/// Shared devices are the operator's business; a project sees only its own private devices.
pub fn device_visible(ctx: &impl Reader, device: &Device) -> bool {
    ctx.reads_all()
        || device
            .project_id
            .as_deref()
            .is_some_and(|p| p == ctx.project() && ctx.can_read(p))
}

pub fn network_visible(ctx: &impl Reader, network: &Network) -> bool {
    ctx.reads_all()
        || network
            .project_id
            .as_deref()
            .is_none_or(|p| p == ctx.project())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Common, DeviceKind, OperatingStatus, ProvisioningStatus};

    fn device(id: &str) -> Device {
        Device {
            id: id.into(),
            name: String::new(),
            kind: DeviceKind::Virtual,
            driver: "haproxy".into(),
            management_url: "http://127.0.0.1:9".into(),
            credentials: None,
            capacity: 10,
            project_id: None,
            cluster: None,
            networks: Vec::new(),
            attachments: BTreeMap::new(),
            metadata: BTreeMap::new(),
            enabled: true,
            provisioned: None,
            host: None,
            availability_zone: None,
            created_at: String::new(),
            updated_at: None,
        }
    }

    fn lb(id: &str, project: &str, network: &str, device: Option<&str>) -> LoadBalancer {
        LoadBalancer {
            common: Common {
                id: id.into(),
                project_id: project.into(),
                name: String::new(),
                description: String::new(),
                admin_state_up: true,
                provisioning_status: ProvisioningStatus::Active,
                operating_status: OperatingStatus::Online,
                created_at: String::new(),
                updated_at: None,
                tags: Vec::new(),
            },
            vip_address: String::new(),
            vip_network_id: network.into(),
            vip_subnet_id: String::new(),
            vip_port_id: String::new(),
            provider: "haproxy".into(),
            flavor_id: None,
            device_id: device.map(str::to_owned),
            fault: None,
            migration: None,
            availability_zone: None,
        }
    }

    /// The loads counted from scratch, as the scheduler once did for every decision.
    fn counted(snapshot: &Snapshot, lb_id: &str, project: &str, network: &str) -> Vec<[u32; 3]> {
        snapshot
            .devices
            .iter()
            .map(|d| {
                let mine = snapshot.loadbalancers.iter().filter(|lb| {
                    lb.device_id.as_deref() == Some(d.id.as_str()) && lb.common.id != lb_id
                });
                let mut loads = [0; 3];
                for lb in mine {
                    loads[0] += 1;
                    loads[1] += u32::from(lb.common.project_id == project);
                    loads[2] += u32::from(lb.vip_network_id == network);
                }
                loads
            })
            .collect()
    }

    fn kept(snapshot: &Snapshot, lb_id: &str, project: &str, network: &str) -> Vec<[u32; 3]> {
        let loads = snapshot.device_loads(lb_id, project, network);
        (0..snapshot.devices.len())
            .map(|i| [loads.all[i], loads.project[i], loads.network[i]])
            .collect()
    }

    #[test]
    fn device_loads_kept_with_each_write_match_a_recount() {
        let mut snapshot = Snapshot::empty_for(&lb("seed", "p", "n1", None));
        snapshot.recount();
        let apply = |snapshot: &mut Snapshot, batch: &Batch| {
            snapshot.apply(batch.writes()).expect("apply");
        };
        let mut batch = Batch::new();
        batch.put(&device("b")).put(&device("d"));
        // Placed on a device that does not exist yet.
        batch.put(&lb("lb-1", "p", "n1", Some("c")));
        batch.put(&lb("lb-2", "q", "n1", Some("b")));
        batch.put(&lb("lb-3", "p", "n2", Some("b")));
        apply(&mut snapshot, &batch);
        // The device arrives; a load balancer moves; another goes; one is placed.
        let mut batch = Batch::new();
        batch.put(&device("c")).put(&device("a"));
        batch.put(&lb("lb-2", "q", "n1", Some("d")));
        batch.delete::<LoadBalancer>("lb-3");
        batch.put(&lb("lb-4", "p", "n1", Some("c")));
        apply(&mut snapshot, &batch);

        for (lb_id, project, network) in [
            ("new", "p", "n1"),
            ("lb-1", "p", "n1"),
            ("lb-2", "p", "n2"),
            ("new", "z", "n9"),
        ] {
            assert_eq!(
                kept(&snapshot, lb_id, project, network),
                counted(&snapshot, lb_id, project, network),
                "{lb_id} {project} {network}"
            );
        }
        assert_eq!(snapshot.load_of("c"), 2);
        assert_eq!(snapshot.load_of("b"), 0);
        // Devices are a, b, c, d; lb-1 and lb-4 (p, n1) on c, lb-2 (q, n1) on d.
        assert_eq!(
            kept(&snapshot, "new", "p", "n1"),
            [[0, 0, 0], [0, 0, 0], [2, 2, 2], [1, 0, 1]]
        );
        batch = Batch::new();
        batch.delete::<Device>("c");
        apply(&mut snapshot, &batch);
        assert_eq!(
            kept(&snapshot, "new", "p", "n1"),
            counted(&snapshot, "new", "p", "n1")
        );
    }

    fn common_of(id: &str) -> Common {
        lb(id, "p", "n", None).common
    }

    fn listener(id: &str, lb_id: &str) -> Listener {
        Listener {
            common: common_of(id),
            loadbalancer_id: lb_id.into(),
            protocol: crate::model::Protocol::Http,
            protocol_port: 80,
            connection_limit: -1,
            default_pool_id: None,
            timeout_client_data: 0,
            timeout_member_connect: 0,
            timeout_member_data: 0,
            timeout_tcp_inspect: 0,
            allowed_cidrs: Vec::new(),
            insert_headers: Default::default(),
            tls: Default::default(),
        }
    }

    fn member(id: &str, pool_id: &str) -> Member {
        Member {
            common: common_of(id),
            loadbalancer_id: "lb".into(),
            pool_id: pool_id.into(),
            address: "10.0.0.1".into(),
            protocol_port: 80,
            weight: 1,
            backup: false,
            subnet_id: None,
            monitor_address: None,
            monitor_port: None,
        }
    }

    #[test]
    fn the_children_index_answers_what_a_scan_answers() {
        let mut snapshot = Snapshot::empty_for(&lb("lb-a", "p", "n", None));
        snapshot.reindex();
        let mut batch = Batch::new();
        for (id, parent) in [("l1", "lb-a"), ("l2", "lb-b"), ("l3", "lb-a")] {
            batch.put(&listener(id, parent));
        }
        for (id, pool) in [("m1", "pool-1"), ("m2", "pool-2"), ("m3", "pool-1")] {
            batch.put(&member(id, pool));
        }
        snapshot.apply(batch.writes()).expect("apply");
        let mut batch = Batch::new();
        batch.delete::<Listener>("l1");
        batch.put(&listener("l2", "lb-a"));
        batch.delete::<Member>("m3");
        batch.put(&member("m4", "pool-2"));
        snapshot.apply(batch.writes()).expect("apply");

        fn ids<'a>(it: Box<dyn Iterator<Item = &'a str> + 'a>) -> Vec<&'a str> {
            it.collect()
        }
        for parent in ["lb-a", "lb-b", "lb-c"] {
            let indexed = ids(Box::new(
                snapshot.listeners_of(parent).map(|l| l.common.id.as_str()),
            ));
            let scanned = ids(Box::new(
                snapshot
                    .listeners
                    .iter()
                    .filter(|l| l.loadbalancer_id == parent)
                    .map(|l| l.common.id.as_str()),
            ));
            assert_eq!(indexed, scanned, "{parent}");
        }
        for pool in ["pool-1", "pool-2"] {
            let indexed = ids(Box::new(
                snapshot.members_of(pool).map(|m| m.common.id.as_str()),
            ));
            let scanned = ids(Box::new(
                snapshot
                    .members
                    .iter()
                    .filter(|m| m.pool_id == pool)
                    .map(|m| m.common.id.as_str()),
            ));
            assert_eq!(indexed, scanned, "{pool}");
        }
        assert_eq!(
            snapshot
                .listeners_of("lb-a")
                .map(|l| l.common.id.as_str())
                .collect::<Vec<_>>(),
            ["l2", "l3"]
        );
    }
}

//! The Acme ADC driver: a physical appliance vendor. Devices exist in a fixed number, carry a
//! limited number of VLANs per interface, refuse overlapping IP addresses, and are grouped in
//! clusters across which a tenant's VIPs should be spread.
//!
//! The driver's private state records, per device, which VLANs sit on which interface and which
//! VIP addresses are configured, and for which load balancers.

pub mod allocation;
mod appliance;
pub mod placement;

use lbaas_driver_sdk::prelude::*;

use allocation::DeviceAllocations;

pub use appliance::render;

/// VLANs one appliance interface carries unless the device's metadata says otherwise.
pub const DEFAULT_MAX_VLANS_PER_INTERFACE: u32 = 4;

pub struct AcmeAdcDriver;

impl Driver for AcmeAdcDriver {
    fn capabilities() -> Capabilities {
        Capabilities {
            name: "acme-adc".into(),
            vendor: "Acme Networks".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            device_kinds: vec![DeviceKind::Physical],
            protocols: vec![
                Protocol::Tcp,
                Protocol::Udp,
                Protocol::Sctp,
                Protocol::Http,
                Protocol::Https,
                Protocol::TerminatedHttps,
                Protocol::Proxy,
                Protocol::ProxyV2,
                Protocol::Prometheus,
            ],
            algorithms: vec![
                Algorithm::RoundRobin,
                Algorithm::LeastConnections,
                Algorithm::SourceIp,
                Algorithm::SourceIpPort,
            ],
            can_spawn: false,
            limits: Limits {
                max_vips_per_device: Some(appliance::MAX_VIPS_PER_DEVICE),
                max_vlans_per_interface: Some(DEFAULT_MAX_VLANS_PER_INTERFACE),
                overlapping_ips: false,
            },
            flavor_keys: vec![
                FlavorKey::new("cluster", "Place only on appliances of this cluster."),
                FlavorKey::new(
                    "spread",
                    "true (default): spread a project's VIPs across the cluster; false: pack them.",
                ),
                FlavorKey::new(
                    "loadbalancer_topology",
                    "SINGLE (default): the virtual service runs on one appliance; \
                     ACTIVE_STANDBY: the appliance mirrors it to its HA peer.",
                ),
            ],
            features: Features {
                availability_zone_keys: vec![
                    FlavorKey::new("cluster", "Place only on appliances of this cluster."),
                    FlavorKey::new(
                        "compute_zone",
                        "Place only on appliances whose `compute_zone` metadata is this site.",
                    ),
                    FlavorKey::new(
                        "management_network",
                        "Place only on appliances managed through this network (their \
                         `management_network` metadata).",
                    ),
                ],
                insert_headers: appliance::INSERT_HEADERS
                    .iter()
                    .chain(appliance::SSL_HEADERS.iter())
                    .map(|h| (*h).to_owned())
                    .collect(),
                // The appliance offloads TLS and re-encrypts; it keeps the files itself.
                tls: vec![
                    TlsFeature::Sni,
                    TlsFeature::ClientAuthentication,
                    TlsFeature::Hsts,
                    TlsFeature::PoolTls,
                    TlsFeature::PoolClientCertificate,
                ],
                // The appliance runs every check Octavia names (ICMP for PING).
                health_monitor_kinds: vec![
                    HealthMonitorKind::Http,
                    HealthMonitorKind::Https,
                    HealthMonitorKind::Tcp,
                    HealthMonitorKind::Ping,
                    HealthMonitorKind::TlsHello,
                    HealthMonitorKind::UdpConnect,
                    HealthMonitorKind::Sctp,
                ],
                ..Features::full_l7()
            },
        }
    }

    fn validate_flavor(flavor: &Flavor) -> Result<(), DriverError> {
        for entry in &flavor.metadata {
            match entry.key.as_str() {
                "cluster" if !entry.value.trim().is_empty() => {}
                "spread" if matches!(entry.value.as_str(), "true" | "false") => {}
                "loadbalancer_topology" if appliance::redundancy(Some(&entry.value)).is_some() => {}
                "cluster" | "spread" | "loadbalancer_topology" => {
                    return Err(DriverError::InvalidInput(format!(
                        "flavor key `{}` has an invalid value `{}` (cluster: a name; spread: true \
                         or false; loadbalancer_topology: SINGLE or ACTIVE_STANDBY)",
                        entry.key, entry.value
                    )));
                }
                other => {
                    return Err(DriverError::InvalidInput(format!(
                        "flavor key `{other}` is not supported by the acme-adc driver (known: \
                         cluster, spread, loadbalancer_topology)"
                    )));
                }
            }
        }
        Ok(())
    }

    fn validate_availability_zone(zone: &AvailabilityZone) -> Result<(), DriverError> {
        for entry in &zone.metadata {
            match entry.key.as_str() {
                "cluster" | "compute_zone" | "management_network" => {
                    if entry.value.trim().is_empty() {
                        return Err(DriverError::InvalidInput(format!(
                            "availability zone key `{}` needs a name",
                            entry.key
                        )));
                    }
                }
                other => {
                    return Err(DriverError::InvalidInput(format!(
                        "availability zone key `{other}` is not supported by the acme-adc \
                         driver (known: cluster, compute_zone, management_network)"
                    )));
                }
            }
        }
        Ok(())
    }

    fn select(request: &PlacementRequest, candidates: &[Candidate]) -> Hints {
        let mut failure = None;
        let hints = placement::select(request, candidates, |device_id| {
            match state::get::<DeviceAllocations>(&allocation::key(device_id)) {
                Ok(found) => found.unwrap_or_default(),
                Err(error) => {
                    failure = Some(error);
                    DeviceAllocations::default()
                }
            }
        });
        match failure {
            // Without its records the driver cannot tell which devices are safe.
            Some(error) => {
                log::error(&format!("cannot read allocations: {error}"));
                Hints::reject_all(candidates, &format!("driver state unavailable: {error}"))
            }
            None => hints,
        }
    }

    fn translate(lb: &LoadBalancer, device: &Device) -> Result<DeviceConfig, DriverError> {
        Ok(DeviceConfig {
            content_type: "application/json".into(),
            body: render(lb, device)?,
        })
    }

    /// Allocates the VIP address and the VLANs, creates the VLANs the device lacks, pushes the
    /// virtual service, and only then records the allocation.
    fn apply(lb: &LoadBalancer, device: &Device, config: &DeviceConfig) -> Result<(), DriverError> {
        let key = allocation::key(&device.id);
        let mut allocations: DeviceAllocations = state::get(&key)?.unwrap_or_default();
        let added = allocations.allocate(
            lb,
            placement::vlan_limit(device),
            placement::interfaces(device),
        )?;
        for vlan in &added {
            device::Request::put(&appliance::vlan_path(vlan.vlan))
                .json(&appliance::vlan_body(vlan))?
                .send(&device.id)?
                .success()?;
        }
        // The files the service names, before the service: the appliance refuses a service
        // whose files it does not hold.
        for (file, name) in appliance::certificate_files(lb) {
            device::send_certificate(&device.id, file, &appliance::certificate_path(lb, &name))?;
        }
        device::Request::put(&appliance::service_path(lb))
            .header("content-type", &config.content_type)
            .body(config.body.as_bytes().to_vec())
            .send(&device.id)?
            .success()?;
        state::put(&key, &allocations)?;
        log::info(&format!(
            "load balancer {} configured on {} (VIP {}, VLANs {:?})",
            lb.id,
            device.id,
            lb.vip_address,
            allocations.vlans_of(&lb.id)
        ));
        Ok(())
    }

    /// Deletes the virtual service and the VLANs no other load balancer uses, then frees them.
    fn remove(lb: &LoadBalancer, device: &Device) -> Result<(), DriverError> {
        let response = device::Request::delete(&appliance::service_path(lb)).send(&device.id)?;
        if response.status != 404 {
            response.success()?;
        }
        let key = allocation::key(&device.id);
        let Some(mut allocations) = state::get::<DeviceAllocations>(&key)? else {
            return Ok(());
        };
        for vlan in allocations.release(&lb.id) {
            let response = device::Request::delete(&appliance::vlan_path(vlan)).send(&device.id)?;
            if response.status != 404 {
                response.success()?;
            }
        }
        if allocations.is_empty() {
            state::delete(&key)?;
        } else {
            state::put(&key, &allocations)?;
        }
        Ok(())
    }
}

export_driver!(AcmeAdcDriver);
lbaas_driver_sdk::manifest!(include_str!("../manifest.json"));

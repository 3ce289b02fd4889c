//! The HAProxy driver: virtual devices (HAProxy processes run by a device agent), which it can
//! spawn at will. `translate` renders one complete `haproxy.cfg` per load balancer.

mod config;
mod status;
mod tls;

use lbaas_driver_sdk::prelude::*;

pub use config::render;

/// Load balancers a spawned device carries unless the flavor says otherwise.
const DEFAULT_SPAWN_CAPACITY: u32 = 16;

pub struct HaproxyDriver;

impl Driver for HaproxyDriver {
    fn capabilities() -> Capabilities {
        Capabilities {
            name: "haproxy".into(),
            vendor: "HAProxy (open source)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            device_kinds: vec![DeviceKind::Virtual],
            protocols: config::PROTOCOLS.to_vec(),
            algorithms: vec![
                Algorithm::RoundRobin,
                Algorithm::LeastConnections,
                Algorithm::SourceIp,
            ],
            can_spawn: true,
            limits: Limits {
                max_vips_per_device: None,
                max_vlans_per_interface: None,
                overlapping_ips: true,
            },
            flavor_keys: vec![
                FlavorKey::new(
                    "maxconn",
                    "Process-wide connection limit of each HAProxy (1..=1000000).",
                ),
                FlavorKey::new(
                    "spawn-capacity",
                    "Load balancers a newly spawned HAProxy device carries (1..=1000).",
                ),
                FlavorKey::new(
                    "loadbalancer_topology",
                    "SINGLE: one HAProxy per load balancer (the only topology this driver runs).",
                ),
            ],
            features: features(),
        }
    }

    fn validate_flavor(flavor: &Flavor) -> Result<(), DriverError> {
        for entry in &flavor.metadata {
            let range = match entry.key.as_str() {
                "maxconn" => 1..=1_000_000,
                "spawn-capacity" => 1..=1_000,
                "loadbalancer_topology" if entry.value == "SINGLE" => continue,
                "loadbalancer_topology" => {
                    return Err(DriverError::Unsupported(format!(
                        "loadbalancer_topology `{}` is not run by the haproxy driver (only SINGLE)",
                        entry.value
                    )));
                }
                other => {
                    return Err(DriverError::InvalidInput(format!(
                        "flavor key `{other}` is not supported by the haproxy driver \
                         (known: maxconn, spawn-capacity, loadbalancer_topology)"
                    )));
                }
            };
            match entry.value.parse::<u32>() {
                Ok(n) if range.contains(&n) => {}
                _ => {
                    return Err(DriverError::InvalidInput(format!(
                        "flavor key `{}` must be a whole number in {}..={}, got `{}`",
                        entry.key,
                        range.start(),
                        range.end(),
                        entry.value
                    )));
                }
            }
        }
        Ok(())
    }

    fn validate_availability_zone(zone: &AvailabilityZone) -> Result<(), DriverError> {
        for entry in &zone.metadata {
            match entry.key.as_str() {
                COMPUTE_ZONE if valid_zone_name(&entry.value) => {}
                COMPUTE_ZONE => {
                    return Err(DriverError::InvalidInput(format!(
                        "availability zone key `{COMPUTE_ZONE}` must be a name of letters, \
                         digits, '-', '_' and '.' (at most 255), got `{}`",
                        entry.value.escape_debug()
                    )));
                }
                other => {
                    return Err(DriverError::InvalidInput(format!(
                        "availability zone key `{other}` is not supported by the haproxy driver \
                         (known: {COMPUTE_ZONE})"
                    )));
                }
            }
        }
        Ok(())
    }

    fn select(request: &PlacementRequest, candidates: &[Candidate]) -> Hints {
        let compute_zone = request
            .availability_zone
            .as_ref()
            .and_then(|zone| zone.get(COMPUTE_ZONE));
        let devices: Vec<DeviceHint> = candidates
            .iter()
            .map(|candidate| DeviceHint {
                device_id: candidate.device.id.clone(),
                verdict: verdict(candidate, compute_zone),
            })
            .collect();
        let any_fit = devices
            .iter()
            .any(|hint| matches!(hint.verdict, Verdict::Score(_)));
        let spawn = (!any_fit).then(|| SpawnSpec {
            name: format!("haproxy-{}", short_id(&request.load_balancer_id)),
            capacity: request
                .flavor
                .as_ref()
                .and_then(|flavor| flavor.get("spawn-capacity"))
                .and_then(|value| value.parse().ok())
                .unwrap_or(DEFAULT_SPAWN_CAPACITY),
            // Spawned here, for this zone: later load balancers of the zone may share it.
            metadata: compute_zone
                .map(|zone| Entry {
                    key: COMPUTE_ZONE.into(),
                    value: zone.into(),
                })
                .into_iter()
                .collect(),
        });
        Hints { devices, spawn }
    }

    fn translate(lb: &LoadBalancer, device: &Device) -> Result<DeviceConfig, DriverError> {
        Ok(DeviceConfig {
            content_type: CONTENT_TYPE.into(),
            body: render(lb, device)?,
        })
    }

    /// Has the host send the load balancer's certificate files to the device agent, then hands
    /// it the configuration that names them; the agent checks it with `haproxy -c` and reloads
    /// (also when only a certificate changed). A refusal carries HAProxy's own message.
    fn apply(lb: &LoadBalancer, device: &Device, config: &DeviceConfig) -> Result<(), DriverError> {
        for (file, name) in tls::files(lb)? {
            let path = format!("/v1/loadbalancers/{}/certificates/{name}", lb.id);
            device::send_certificate(&device.id, file, &path)?;
        }
        let response = device::Request::put(&config_path(lb))
            .header("content-type", &config.content_type)
            .body(config.body.as_bytes().to_vec())
            .send(&device.id)?;
        if response.is_success() {
            return Ok(());
        }
        Err(agent_error(&response))
    }

    fn remove(lb: &LoadBalancer, device: &Device) -> Result<(), DriverError> {
        let response = device::Request::delete(&config_path(lb)).send(&device.id)?;
        if response.is_success() || response.status == 404 {
            return Ok(());
        }
        Err(agent_error(&response))
    }

    fn status(lb: &LoadBalancer, device: &Device) -> Result<LoadBalancerStatus, DriverError> {
        let path = format!("/v1/loadbalancers/{}/stats", lb.id);
        let response = device::Request::get(&path).send(&device.id)?;
        if !response.is_success() {
            return Err(agent_error(&response));
        }
        Ok(status::from_stats(lb, &response.json()?))
    }
}

const CONTENT_TYPE: &str = "text/x-haproxy-cfg";

/// Every L7 action and rule kind, Octavia's inserted headers with the `X-SSL-*` ones, TLS
/// termination with SNI, client authentication and HSTS, re-encryption towards members with a
/// client certificate, and the health monitors HAProxy runs over TCP.
fn features() -> Features {
    let mut features = Features::full_l7();
    features.availability_zone_keys = vec![FlavorKey::new(
        COMPUTE_ZONE,
        "Place only on HAProxy devices whose `compute_zone` metadata is this zone; a device \
         spawned for the zone carries it.",
    )];
    features
        .insert_headers
        .extend(tls::SSL_HEADERS.iter().map(|(name, _)| (*name).to_owned()));
    features.tls = vec![
        TlsFeature::Sni,
        TlsFeature::ClientAuthentication,
        TlsFeature::Hsts,
        TlsFeature::PoolTls,
        TlsFeature::PoolClientCertificate,
    ];
    features.health_monitor_kinds = vec![
        HealthMonitorKind::Http,
        HealthMonitorKind::Https,
        HealthMonitorKind::Tcp,
        HealthMonitorKind::TlsHello,
    ];
    features
}

fn config_path(lb: &LoadBalancer) -> String {
    format!("/v1/loadbalancers/{}/config", lb.id)
}

/// The agent answers errors as `{"error": "..."}`.
fn agent_error(response: &device::Response) -> DriverError {
    #[derive(serde::Deserialize)]
    struct AgentError {
        error: String,
    }
    let message = match response.json::<AgentError>() {
        Ok(body) => body.error,
        Err(_) => String::from_utf8_lossy(&response.body)
            .chars()
            .take(512)
            .collect(),
    };
    DriverError::DeviceRejected(format!(
        "HAProxy agent answered {}: {}",
        response.status,
        message.trim()
    ))
}

/// The availability zone key naming where a load balancer's HAProxy runs: the `compute_zone`
/// metadata of the devices (registered, or spawned for the zone).
const COMPUTE_ZONE: &str = "compute_zone";

fn valid_zone_name(name: &str) -> bool {
    config::word(name, 255)
}

/// An HAProxy device of the load balancer's compute zone (if its zone names one) takes it
/// while it has room; emptier devices score higher.
fn verdict(candidate: &Candidate, compute_zone: Option<&str>) -> Verdict {
    let device = &candidate.device;
    if device.kind != DeviceKind::Virtual {
        return Verdict::Reject("not an HAProxy (virtual) device".into());
    }
    if let Some(zone) = compute_zone
        && device.metadata(COMPUTE_ZONE) != Some(zone)
    {
        return Verdict::Reject(format!("not in compute zone {zone}"));
    }
    if candidate.load_balancers >= device.capacity {
        return Verdict::Reject(format!(
            "full: {} of {} load balancers",
            candidate.load_balancers, device.capacity
        ));
    }
    let free_percent = (device.capacity - candidate.load_balancers) * 100 / device.capacity.max(1);
    Verdict::Score(candidate.host_score.saturating_add(free_percent as i32))
}

fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(feature = "export")]
export_driver!(HaproxyDriver);
#[cfg(feature = "export")]
lbaas_driver_sdk::manifest!(include_str!("../manifest.json"));

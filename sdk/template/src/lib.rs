//! A minimal LBaaS driver, the starting point for a vendor: it reports its capabilities,
//! accepts every candidate device the host offers, and renders a small text configuration.
//! `apply` and `remove` use the SDK's defaults (PUT / DELETE on the device's management API).

use lbaas_driver_sdk::prelude::*;

struct ExampleDriver;

impl Driver for ExampleDriver {
    fn capabilities() -> Capabilities {
        Capabilities {
            name: "example-lb".into(),
            vendor: "Example Networks".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            device_kinds: vec![DeviceKind::Virtual],
            protocols: vec![Protocol::Tcp, Protocol::Http],
            algorithms: vec![Algorithm::RoundRobin],
            can_spawn: false,
            limits: Limits {
                max_vips_per_device: Some(100),
                max_vlans_per_interface: None,
                overlapping_ips: true,
            },
            flavor_keys: vec![FlavorKey::new("tier", "gold or silver")],
            features: Features::none(),
        }
    }

    fn translate(lb: &LoadBalancer, device: &Device) -> Result<DeviceConfig, DriverError> {
        let mut body = format!("device {}\nvip {}\n", device.id, lb.vip_address);
        for listener in &lb.listeners {
            body += &format!("listener {} {}\n", listener.protocol_port, listener.protocol);
        }
        Ok(DeviceConfig {
            content_type: "text/plain".into(),
            body,
        })
    }
}

export_driver!(ExampleDriver);

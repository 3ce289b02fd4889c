//! A driver's `capabilities` answer in the host's types: converted once, when a version is
//! loaded, so that nothing above the runtime reads the contract's own.

use crate as wit;
use lbaas_core::capabilities::{Capabilities, Features, Limits, ProfileKey, TlsFeature};
use lbaas_core::model;

/// A driver's `capabilities` answer in the host's types.
pub(crate) fn host(reported: &wit::DriverCapabilities) -> Capabilities {
    let keys = |keys: &[wit::FlavorKey]| {
        keys.iter()
            .map(|key| ProfileKey {
                name: key.name.clone(),
                description: key.help.clone(),
            })
            .collect()
    };
    Capabilities {
        name: reported.name.clone(),
        vendor: reported.vendor.clone(),
        version: reported.version.clone(),
        device_kinds: reported
            .device_kinds
            .iter()
            .map(|kind| match kind {
                wit::DeviceKind::Physical => model::DeviceKind::Physical,
                wit::DeviceKind::Virtual => model::DeviceKind::Virtual,
            })
            .collect(),
        protocols: reported
            .protocols
            .iter()
            .map(|p| host_protocol(*p))
            .collect(),
        algorithms: reported
            .algorithms
            .iter()
            .map(|a| match a {
                wit::Algorithm::RoundRobin => model::LbAlgorithm::RoundRobin,
                wit::Algorithm::LeastConnections => model::LbAlgorithm::LeastConnections,
                wit::Algorithm::SourceIp => model::LbAlgorithm::SourceIp,
                wit::Algorithm::SourceIpPort => model::LbAlgorithm::SourceIpPort,
            })
            .collect(),
        can_spawn: reported.can_spawn,
        limits: Limits {
            max_vips_per_device: reported.limits.max_vips_per_device,
            max_vlans_per_interface: reported.limits.max_vlans_per_interface,
            overlapping_ips: reported.limits.overlapping_ips,
        },
        flavor_keys: keys(&reported.flavor_keys),
        features: Features {
            l7_actions: reported
                .features
                .l7_actions
                .iter()
                .map(|a| match a {
                    wit::L7Action::Reject => model::L7Action::Reject,
                    wit::L7Action::RedirectToUrl => model::L7Action::RedirectToUrl,
                    wit::L7Action::RedirectPrefix => model::L7Action::RedirectPrefix,
                    wit::L7Action::RedirectToPool => model::L7Action::RedirectToPool,
                })
                .collect(),
            l7_rule_kinds: reported
                .features
                .l7_rule_kinds
                .iter()
                .map(|k| match k {
                    wit::L7RuleKind::HostName => model::L7RuleType::HostName,
                    wit::L7RuleKind::Path => model::L7RuleType::Path,
                    wit::L7RuleKind::FileType => model::L7RuleType::FileType,
                    wit::L7RuleKind::Header => model::L7RuleType::Header,
                    wit::L7RuleKind::Cookie => model::L7RuleType::Cookie,
                })
                .collect(),
            insert_headers: reported.features.insert_headers.clone(),
            availability_zone_keys: keys(&reported.features.availability_zone_keys),
            tls: reported
                .features
                .tls
                .iter()
                .map(|feature| match feature {
                    wit::TlsFeature::Sni => TlsFeature::Sni,
                    wit::TlsFeature::ClientAuthentication => TlsFeature::ClientAuthentication,
                    wit::TlsFeature::Hsts => TlsFeature::Hsts,
                    wit::TlsFeature::PoolTls => TlsFeature::PoolTls,
                    wit::TlsFeature::PoolClientCertificate => TlsFeature::PoolClientCertificate,
                })
                .collect(),
            health_monitor_types: reported
                .features
                .health_monitor_kinds
                .iter()
                .map(|kind| match kind {
                    wit::HealthMonitorKind::Http => model::MonitorType::Http,
                    wit::HealthMonitorKind::Https => model::MonitorType::Https,
                    wit::HealthMonitorKind::Tcp => model::MonitorType::Tcp,
                    wit::HealthMonitorKind::Ping => model::MonitorType::Ping,
                    wit::HealthMonitorKind::TlsHello => model::MonitorType::TlsHello,
                    wit::HealthMonitorKind::UdpConnect => model::MonitorType::UdpConnect,
                    wit::HealthMonitorKind::Sctp => model::MonitorType::Sctp,
                })
                .collect(),
        },
    }
}

fn host_protocol(p: wit::Protocol) -> model::Protocol {
    match p {
        wit::Protocol::Http => model::Protocol::Http,
        wit::Protocol::Https => model::Protocol::Https,
        wit::Protocol::Tcp => model::Protocol::Tcp,
        wit::Protocol::Udp => model::Protocol::Udp,
        wit::Protocol::Sctp => model::Protocol::Sctp,
        wit::Protocol::TerminatedHttps => model::Protocol::TerminatedHttps,
        wit::Protocol::Proxy => model::Protocol::Proxy,
        wit::Protocol::ProxyV2 => model::Protocol::ProxyV2,
        wit::Protocol::Prometheus => model::Protocol::Prometheus,
    }
}

//! What a provider offers and what it answers `501` for, option by option, asked of its driver
//! with the same [`Asked`] the API's checks use: the list operators and tenants read
//! (`docs/providers.md`, written by `cargo xtask providers`) cannot drift from the answers.

use lbaas_core::capabilities::TlsFeature;

use super::listeners::{INSERT_HEADERS, SSL_HEADERS};
use super::providers::Asked;
use crate::model::{L7Action, L7RuleType, LbAlgorithm, MonitorType, Protocol};
use crate::runtime::LoadedDriver;

/// One kind of option: the values a provider offers, and those it answers `501` for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What the values are (`protocol`, `lb_algorithm`, …).
    pub option: &'static str,
    pub offered: Vec<String>,
    pub not_offered: Vec<String>,
}

/// Every value of each option Octavia's API takes, in its order.
fn options() -> Vec<(&'static str, Vec<(String, Asked)>)> {
    use lbaas_core::views::name;
    fn each<T: serde::Serialize + Copy>(
        values: &[T],
        asked: impl Fn(T) -> Asked,
    ) -> Vec<(String, Asked)> {
        values.iter().map(|v| (name(v), asked(*v))).collect()
    }
    let headers = INSERT_HEADERS
        .iter()
        .chain(SSL_HEADERS.iter())
        .map(|h| ((*h).to_owned(), Asked::InsertHeader((*h).to_owned())))
        .collect();
    let tls = [
        TlsFeature::Sni,
        TlsFeature::ClientAuthentication,
        TlsFeature::Hsts,
        TlsFeature::PoolTls,
        TlsFeature::PoolClientCertificate,
    ]
    .iter()
    .map(|f| (super::providers::tls_option(*f).to_owned(), Asked::Tls(*f)))
    .collect();
    vec![
        (
            "protocol (listeners and pools)",
            each(
                &[
                    Protocol::Http,
                    Protocol::Https,
                    Protocol::Tcp,
                    Protocol::Udp,
                    Protocol::Sctp,
                    Protocol::TerminatedHttps,
                    Protocol::Proxy,
                    Protocol::ProxyV2,
                    Protocol::Prometheus,
                ],
                Asked::Protocol,
            ),
        ),
        (
            "lb_algorithm",
            each(
                &[
                    LbAlgorithm::RoundRobin,
                    LbAlgorithm::LeastConnections,
                    LbAlgorithm::SourceIp,
                    LbAlgorithm::SourceIpPort,
                ],
                Asked::Algorithm,
            ),
        ),
        (
            "health monitor type",
            each(
                &[
                    MonitorType::Http,
                    MonitorType::Https,
                    MonitorType::Ping,
                    MonitorType::Tcp,
                    MonitorType::TlsHello,
                    MonitorType::UdpConnect,
                    MonitorType::Sctp,
                ],
                Asked::Monitor,
            ),
        ),
        (
            "health monitor options",
            vec![(
                "http_version, domain_name".to_owned(),
                Asked::HttpCheckOptions,
            )],
        ),
        (
            "L7 policy action",
            each(
                &[
                    L7Action::Reject,
                    L7Action::RedirectToUrl,
                    L7Action::RedirectPrefix,
                    L7Action::RedirectToPool,
                ],
                Asked::L7Action,
            ),
        ),
        (
            "L7 rule type",
            each(
                &[
                    L7RuleType::HostName,
                    L7RuleType::Path,
                    L7RuleType::FileType,
                    L7RuleType::Header,
                    L7RuleType::Cookie,
                ],
                Asked::L7Rule,
            ),
        ),
        ("insert_headers", headers),
        ("TLS (listeners and pools)", tls),
    ]
}

/// What `driver` offers, option by option.
pub fn rows(driver: &LoadedDriver) -> Vec<Row> {
    options()
        .into_iter()
        .map(|(option, values)| {
            let (offered, not_offered): (Vec<_>, Vec<_>) = values
                .into_iter()
                .partition(|(_, asked)| asked.offered_by(driver));
            Row {
                option,
                offered: offered.into_iter().map(|(name, _)| name).collect(),
                not_offered: not_offered.into_iter().map(|(name, _)| name).collect(),
            }
        })
        .collect()
}

/// What no provider of this host offers (`501` whatever the driver declares): no contract
/// carries them to a driver.
pub const NOT_OFFERED_BY_ANY: &[(&str, &str)] = &[
    (
        "`PROMETHEUS` listeners with TLS (`default_tls_container_ref`, `sni_container_refs`)",
        "no driver contract carries a metrics listener's certificates yet",
    ),
    (
        "`additional_vips`",
        "a load balancer has one VIP in every contract",
    ),
];

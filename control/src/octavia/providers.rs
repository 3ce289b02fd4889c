//! What a provider (one driver's active version) offers, read from its capabilities: the
//! protocols, algorithms, L7 actions and rule kinds, inserted headers and device kinds it
//! handles, and the flavor and availability-zone profile keys it declares and accepts. The
//! capabilities are the driver's own words; only the control plane reads them.

use std::sync::Arc;

use lbaas_core::capabilities::TlsFeature;

use crate::contract::{self, ProfileDataError};
use crate::model::{
    AvailabilityZoneProfile, DeviceKind, FlavorProfile, L7Action, L7RuleType, LbAlgorithm,
    ListenerTls, MonitorType, PoolTls, Protocol,
};
use crate::placement;
use crate::plane::ControlPlane;
use crate::runtime::{self as wit, LoadedDriver};

/// The first contract whose health monitors carry `http-version` and `domain-name`.
const HTTP_CHECK_OPTIONS_CONTRACT: &str = "lbaas:driver@0.4.0";

/// Why a provider does not take a request, by the answer Octavia gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No active driver has the name (`400`).
    #[error("Provider '{0}' is not enabled.")]
    NotEnabled(String),
    /// The provider lacks an option the request asks for (`501`): `option` names it.
    #[error("Provider '{provider}' does not support a requested option: {option}")]
    Unsupported { provider: String, option: String },
    /// The request's own value is wrong for the provider (`400`), in words for the caller.
    #[error("{0}")]
    Invalid(String),
}

pub use lbaas_core::capabilities::ProfileKey;

/// Which profile a metadata check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Flavor,
    AvailabilityZone,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Self::Flavor => "flavor",
            Self::AvailabilityZone => "availability zone",
        }
    }
}

fn unsupported(provider: &str, option: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unsupported {
        provider: provider.to_owned(),
        option: option.to_string(),
    }
}

/// One option a request may ask of a provider, beyond Octavia's own rules: offered when the
/// provider's driver declares it. The API's checks and the list of what each provider offers
/// ([`super::offer`]) both ask here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// A listener or pool protocol.
    Protocol(Protocol),
    /// A pool's `lb_algorithm`.
    Algorithm(LbAlgorithm),
    /// A health monitor type.
    Monitor(MonitorType),
    /// A health monitor's `http_version` and `domain_name`: contract 0.4.0 carries both to a
    /// driver, which must then render them in every HTTP and HTTPS check it runs.
    HttpCheckOptions,
    /// An L7 policy action.
    L7Action(L7Action),
    /// An L7 rule type.
    L7Rule(L7RuleType),
    /// One of a listener's `insert_headers`.
    InsertHeader(String),
    /// TLS beyond the `TERMINATED_HTTPS` protocol.
    Tls(TlsFeature),
}

impl Asked {
    /// Whether `driver` offers it.
    pub fn offered_by(&self, driver: &LoadedDriver) -> bool {
        let caps = driver.capabilities();
        let features = &caps.features;
        match self {
            Self::Protocol(protocol) => caps.protocols.contains(protocol),
            Self::Algorithm(algorithm) => caps.algorithms.contains(algorithm),
            Self::Monitor(kind) => features.health_monitor_types.contains(kind),
            Self::HttpCheckOptions => {
                driver.contract_at_least(HTTP_CHECK_OPTIONS_CONTRACT)
                    && features
                        .health_monitor_types
                        .iter()
                        .any(|kind| matches!(kind, MonitorType::Http | MonitorType::Https))
            }
            Self::L7Action(action) => features.l7_actions.contains(action),
            Self::L7Rule(kind) => features.l7_rule_kinds.contains(kind),
            Self::InsertHeader(header) => features.insert_headers.iter().any(|h| h == header),
            Self::Tls(feature) => features.tls.contains(feature),
        }
    }
}

/// How a 501 names the option, as Octavia's messages do.
impl std::fmt::Display for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use lbaas_core::views::name;
        match self {
            Self::Protocol(protocol) => write!(f, "protocol {}", name(protocol)),
            Self::Algorithm(algorithm) => write!(f, "lb_algorithm {}", name(algorithm)),
            Self::Monitor(kind) => write!(f, "health monitor type {}", name(kind)),
            Self::HttpCheckOptions => f.write_str("health monitor http_version and domain_name"),
            Self::L7Action(action) => write!(f, "L7 policy action {}", name(action)),
            Self::L7Rule(kind) => write!(f, "L7 rule type {}", name(kind)),
            Self::InsertHeader(header) => write!(f, "insert_headers {header}"),
            Self::Tls(feature) => f.write_str(tls_option(*feature)),
        }
    }
}

/// The API field that asks for a TLS feature.
pub fn tls_option(feature: TlsFeature) -> &'static str {
    match feature {
        TlsFeature::Sni => "sni_container_refs",
        TlsFeature::ClientAuthentication => "client_ca_tls_container_ref",
        TlsFeature::Hsts => "hsts_max_age",
        TlsFeature::PoolTls => "tls_enabled",
        TlsFeature::PoolClientCertificate => "tls_container_ref",
    }
}

impl ControlPlane {
    /// The active driver of `provider`.
    fn provider(&self, provider: &str) -> Result<LoadedDriver, ProviderError> {
        self.drivers
            .get(provider)
            .ok_or_else(|| ProviderError::NotEnabled(provider.to_owned()))
    }

    /// Whether `provider` is an active driver.
    pub fn provider_enabled(&self, provider: &str) -> bool {
        self.drivers.get(provider).is_some()
    }

    /// The provider handles `protocol` and `algorithm` (those given).
    pub fn provider_supports(
        &self,
        provider: &str,
        protocol: Option<Protocol>,
        algorithm: Option<LbAlgorithm>,
    ) -> Result<(), ProviderError> {
        self.provider(provider)?;
        if let Some(protocol) = protocol {
            self.offers(provider, Asked::Protocol(protocol))?;
        }
        if let Some(algorithm) = algorithm {
            self.offers(provider, Asked::Algorithm(algorithm))?;
        }
        Ok(())
    }

    /// The provider renders the L7 policy `action`.
    pub fn provider_renders_action(
        &self,
        provider: &str,
        action: L7Action,
    ) -> Result<(), ProviderError> {
        self.offers(provider, Asked::L7Action(action))
    }

    /// The provider renders L7 rules of `kind`.
    pub fn provider_renders_rule(
        &self,
        provider: &str,
        kind: L7RuleType,
    ) -> Result<(), ProviderError> {
        self.offers(provider, Asked::L7Rule(kind))
    }

    /// The provider inserts the header `header` (one of Octavia's `insert_headers`).
    pub fn provider_inserts_header(
        &self,
        provider: &str,
        header: &str,
    ) -> Result<(), ProviderError> {
        self.offers(provider, Asked::InsertHeader(header.to_owned()))
    }

    /// The provider renders a listener's TLS settings `tls` (its `TERMINATED_HTTPS` protocol
    /// is checked with the other protocols).
    pub fn provider_renders_listener_tls(
        &self,
        provider: &str,
        tls: &ListenerTls,
    ) -> Result<(), ProviderError> {
        let needs = [
            (!tls.sni_container_refs.is_empty(), TlsFeature::Sni),
            (
                tls.client_ca_tls_container_ref.is_some(),
                TlsFeature::ClientAuthentication,
            ),
            (tls.hsts_max_age.is_some(), TlsFeature::Hsts),
        ];
        self.renders_tls(provider, &needs)
    }

    /// The provider renders a pool's TLS towards its members.
    pub fn provider_renders_pool_tls(
        &self,
        provider: &str,
        tls: &PoolTls,
    ) -> Result<(), ProviderError> {
        let needs = [
            (tls.tls_enabled, TlsFeature::PoolTls),
            (
                tls.tls_enabled && tls.tls_container_ref.is_some(),
                TlsFeature::PoolClientCertificate,
            ),
        ];
        self.renders_tls(provider, &needs)
    }

    fn renders_tls(
        &self,
        provider: &str,
        needs: &[(bool, TlsFeature)],
    ) -> Result<(), ProviderError> {
        for (needed, feature) in needs {
            if *needed {
                self.offers(provider, Asked::Tls(*feature))?;
            }
        }
        Ok(())
    }

    /// The provider sends an HTTP check's `http_version` and `domain_name` (its `Host`
    /// header).
    pub fn provider_sends_http_check_options(&self, provider: &str) -> Result<(), ProviderError> {
        self.offers(provider, Asked::HttpCheckOptions)
    }

    /// The provider renders health monitors of `kind`.
    pub fn provider_renders_monitor(
        &self,
        provider: &str,
        kind: MonitorType,
    ) -> Result<(), ProviderError> {
        self.offers(provider, Asked::Monitor(kind))
    }

    /// The provider offers what a request `asked`; else it lacks that option (`501`).
    fn offers(&self, provider: &str, asked: Asked) -> Result<(), ProviderError> {
        if asked.offered_by(&self.provider(provider)?) {
            Ok(())
        } else {
            Err(unsupported(provider, asked))
        }
    }

    /// The driver `driver` manages devices of `kind`.
    pub fn driver_manages(&self, driver: &str, kind: DeviceKind) -> Result<(), ProviderError> {
        let loaded = self
            .drivers
            .get(driver)
            .ok_or_else(|| ProviderError::Invalid(format!("Driver '{driver}' is not loaded.")))?;
        if loaded.capabilities().device_kinds.contains(&kind) {
            return Ok(());
        }
        Err(ProviderError::Invalid(format!(
            "Driver '{driver}' does not manage {kind:?} devices."
        )))
    }

    /// The flavor keys `provider` declares (`None`: no such provider).
    pub fn flavor_keys(&self, provider: &str) -> Option<Vec<ProfileKey>> {
        let driver = self.drivers.get(provider)?;
        Some(driver.capabilities().flavor_keys.clone())
    }

    /// The availability-zone keys `provider` declares (`None`: no such provider).
    pub fn availability_zone_keys(&self, provider: &str) -> Option<Vec<ProfileKey>> {
        let driver = self.drivers.get(provider)?;
        Some(
            driver
                .capabilities()
                .features
                .availability_zone_keys
                .clone(),
        )
    }

    /// Checks a flavor profile with every provider it names: its metadata a JSON object of
    /// scalars, its scheduler weights and `providers` well formed, every key declared by each
    /// provider's driver, which then accepts the values (`validate-flavor`).
    pub async fn check_flavor_profile(
        self: &Arc<Self>,
        name: &str,
        profile: &FlavorProfile,
    ) -> Result<(), ProviderError> {
        let invalid =
            |e: ProfileDataError| ProviderError::Invalid(format!("Invalid flavor_data: {e}"));
        let flavor = contract::flavor(name, &profile.flavor_data).map_err(invalid)?;
        placement::weights(&profile.flavor_data).map_err(invalid)?;
        if let Ok(serde_json::Value::Object(data)) =
            serde_json::from_str::<serde_json::Value>(&profile.flavor_data)
            && data.get("providers").is_some_and(|p| {
                !p.as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_string))
            })
        {
            return Err(ProviderError::Invalid(
                "flavor_data `providers` must be a list of provider names.".into(),
            ));
        }
        for provider in profile.providers() {
            let driver = self.provider(&provider)?;
            declared(
                &provider,
                Profile::Flavor,
                &flavor.metadata,
                &driver.capabilities().flavor_keys,
            )?;
            let flavor = flavor.clone();
            crate::spawn_blocking(move || driver.validate_flavor(&flavor))
                .await
                .map_err(|e| ProviderError::Invalid(format!("the check did not finish: {e}")))?
                .map_err(|e| refused(&provider, Profile::Flavor, e))?;
        }
        Ok(())
    }

    /// Checks an availability-zone profile with its provider: its metadata a JSON object of
    /// scalars, every key declared by the driver, which then accepts the values
    /// (`validate-availability-zone`).
    pub async fn check_availability_zone_profile(
        self: &Arc<Self>,
        profile: &AvailabilityZoneProfile,
    ) -> Result<(), ProviderError> {
        let metadata = contract::flavor(&profile.name, &profile.availability_zone_data)
            .map_err(|e| ProviderError::Invalid(format!("Invalid availability_zone_data: {e}")))?
            .metadata;
        let provider = profile.provider_name.clone();
        let driver = self.provider(&provider)?;
        declared(
            &provider,
            Profile::AvailabilityZone,
            &metadata,
            &driver.capabilities().features.availability_zone_keys,
        )?;
        let zone = wit::AvailabilityZone {
            name: profile.name.clone(),
            metadata,
        };
        crate::spawn_blocking(move || driver.validate_availability_zone(&zone))
            .await
            .map_err(|e| ProviderError::Invalid(format!("the check did not finish: {e}")))?
            .map_err(|e| refused(&provider, Profile::AvailabilityZone, e))
    }
}

/// A metadata key the provider's driver does not declare is an option the provider lacks
/// (`501` naming it; the driver is not asked).
fn declared(
    provider: &str,
    profile: Profile,
    metadata: &[wit::Entry],
    declared: &[ProfileKey],
) -> Result<(), ProviderError> {
    match metadata
        .iter()
        .find(|entry| !declared.iter().any(|key| key.name == entry.key))
    {
        Some(entry) => Err(unsupported(
            provider,
            format_args!("{} metadata key '{}'", profile.name(), entry.key),
        )),
        None => Ok(()),
    }
}

/// A driver's answer to a profile's metadata: a value it does not support is an option the
/// provider lacks (`501`), one it finds invalid a `400`.
fn refused(provider: &str, profile: Profile, error: wit::Error) -> ProviderError {
    let what = profile.name();
    match error {
        wit::Error::Refused {
            error: wit::DriverError::Unsupported(option),
            ..
        } => unsupported(provider, option),
        wit::Error::Refused { error, .. } => ProviderError::Invalid(format!(
            "Provider '{provider}' rejected the {what} metadata: {}",
            wit::describe_driver_error(&error)
        )),
        other => ProviderError::Invalid(format!(
            "Provider '{provider}' could not validate the {what} metadata: {other}"
        )),
    }
}

impl From<ProviderError> for crate::Error {
    fn from(error: ProviderError) -> Self {
        match error {
            ProviderError::Unsupported { provider, option } => {
                Self::Unsupported { provider, option }
            }
            other @ (ProviderError::NotEnabled(_) | ProviderError::Invalid(_)) => {
                Self::invalid(other.to_string())
            }
        }
    }
}

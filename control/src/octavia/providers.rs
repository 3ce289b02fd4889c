//! What a provider (one driver's active version) offers, read from its capabilities: the
//! protocols, algorithms, L7 actions and rule kinds, inserted headers and device kinds it
//! handles, and the flavor and availability-zone profile keys it declares and accepts. The
//! capabilities are the driver's own words; only the control plane reads them.

use std::sync::Arc;

use lbaas_core::capabilities::{Capabilities, TlsFeature};

use crate::contract::{self, ProfileDataError};
use crate::model::{
    AvailabilityZoneProfile, DeviceKind, FlavorProfile, L7Action, L7RuleType, LbAlgorithm,
    ListenerTls, MonitorType, PoolTls, Protocol,
};
use crate::placement;
use crate::plane::ControlPlane;
use crate::runtime::{self as wit, LoadedDriver};

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
            self.offers(
                provider,
                |caps| caps.protocols.contains(&protocol),
                format_args!("protocol {}", lbaas_core::views::name(&protocol)),
            )?;
        }
        if let Some(algorithm) = algorithm {
            self.offers(
                provider,
                |caps| caps.algorithms.contains(&algorithm),
                format_args!("lb_algorithm {}", lbaas_core::views::name(&algorithm)),
            )?;
        }
        Ok(())
    }

    /// The provider renders the L7 policy `action`.
    pub fn provider_renders_action(
        &self,
        provider: &str,
        action: L7Action,
    ) -> Result<(), ProviderError> {
        self.offers(
            provider,
            |caps| caps.features.l7_actions.contains(&action),
            format_args!("L7 policy action {}", lbaas_core::views::name(&action)),
        )
    }

    /// The provider renders L7 rules of `kind`.
    pub fn provider_renders_rule(
        &self,
        provider: &str,
        kind: L7RuleType,
    ) -> Result<(), ProviderError> {
        self.offers(
            provider,
            |caps| caps.features.l7_rule_kinds.contains(&kind),
            format_args!("L7 rule type {}", lbaas_core::views::name(&kind)),
        )
    }

    /// The provider inserts the header `header` (one of Octavia's `insert_headers`).
    pub fn provider_inserts_header(
        &self,
        provider: &str,
        header: &str,
    ) -> Result<(), ProviderError> {
        self.offers(
            provider,
            |caps| caps.features.insert_headers.iter().any(|h| h == header),
            format_args!("insert_headers {header}"),
        )
    }

    /// The provider renders a listener's TLS settings `tls` (its `TERMINATED_HTTPS` protocol
    /// is checked with the other protocols).
    pub fn provider_renders_listener_tls(
        &self,
        provider: &str,
        tls: &ListenerTls,
    ) -> Result<(), ProviderError> {
        let needs = [
            (
                !tls.sni_container_refs.is_empty(),
                TlsFeature::Sni,
                "sni_container_refs",
            ),
            (
                tls.client_ca_tls_container_ref.is_some(),
                TlsFeature::ClientAuthentication,
                "client_ca_tls_container_ref",
            ),
            (tls.hsts_max_age.is_some(), TlsFeature::Hsts, "hsts_max_age"),
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
            (tls.tls_enabled, TlsFeature::PoolTls, "tls_enabled"),
            (
                tls.tls_enabled && tls.tls_container_ref.is_some(),
                TlsFeature::PoolClientCertificate,
                "tls_container_ref",
            ),
        ];
        self.renders_tls(provider, &needs)
    }

    fn renders_tls(
        &self,
        provider: &str,
        needs: &[(bool, TlsFeature, &str)],
    ) -> Result<(), ProviderError> {
        for (needed, feature, option) in needs {
            if *needed {
                self.offers(provider, |caps| caps.features.tls.contains(feature), option)?;
            }
        }
        Ok(())
    }

    /// The provider renders health monitors of `kind`.
    pub fn provider_renders_monitor(
        &self,
        provider: &str,
        kind: MonitorType,
    ) -> Result<(), ProviderError> {
        self.offers(
            provider,
            |caps| caps.features.health_monitor_types.contains(&kind),
            format_args!("health monitor type {}", lbaas_core::views::name(&kind)),
        )
    }

    /// The provider's capabilities say it `offers` something; else it lacks `option` (`501`).
    fn offers(
        &self,
        provider: &str,
        offers: impl FnOnce(&Capabilities) -> bool,
        option: impl std::fmt::Display,
    ) -> Result<(), ProviderError> {
        if offers(self.provider(provider)?.capabilities()) {
            Ok(())
        } else {
            Err(unsupported(provider, option))
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

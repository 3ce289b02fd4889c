//! Availability zones and their profiles (admins' objects): a profile names a provider and
//! metadata its driver validates; a zone, known by its name, names a profile. A profile in use
//! keeps its provider and stays; a zone in use by load balancers or devices stays.

use std::sync::Arc;

use lbaas_core::ids::new_id;
use serde::Deserialize;

use super::fields::{Decided, required, required_text, text};
use super::tree::{remove, store};
use crate::Error;
use crate::model::{AvailabilityZone, AvailabilityZoneProfile};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;

/// An availability zone profile's fields, as a create or update gives them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneProfileSpec {
    name: Option<String>,
    provider_name: Option<String>,
    availability_zone_data: Option<String>,
}

/// An availability zone's fields, as a create or update gives them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    name: Option<String>,
    description: Option<String>,
    availability_zone_profile_id: Option<String>,
    enabled: Option<bool>,
}

/// Whether a zone uses profile `id`.
fn in_use(snapshot: &Snapshot, id: &str) -> bool {
    snapshot
        .availability_zones
        .iter()
        .any(|z| z.availability_zone_profile_id == id)
}

impl ControlPlane {
    /// Stores a new availability zone profile once its provider's driver accepts its metadata.
    pub async fn create_zone_profile(
        self: &Arc<Self>,
        spec: ZoneProfileSpec,
    ) -> Decided<AvailabilityZoneProfile> {
        let profile = AvailabilityZoneProfile {
            id: new_id(),
            name: required_text("name", spec.name, 255)?,
            provider_name: required("provider_name", spec.provider_name)?,
            availability_zone_data: required(
                "availability_zone_data",
                spec.availability_zone_data,
            )?,
        };
        self.check_availability_zone_profile(&profile).await?;
        self.write(move |_, _| Ok::<_, Error>(store(profile))).await
    }

    /// Changes an availability zone profile; its provider's driver checks the result first,
    /// and a profile a zone uses keeps its provider.
    pub async fn update_zone_profile(
        self: &Arc<Self>,
        id: &str,
        spec: ZoneProfileSpec,
    ) -> Decided<AvailabilityZoneProfile> {
        let lookup = id.to_owned();
        let mut profile = self
            .read(move |_, snapshot| {
                Ok::<_, Error>(snapshot.availability_zone_profile(&lookup)?.clone())
            })
            .await?;
        if let Some(name) = spec.name {
            profile.name = text("name", Some(name), 255)?;
        }
        if let Some(provider) = spec.provider_name {
            profile.provider_name = provider;
        }
        if let Some(data) = spec.availability_zone_data {
            profile.availability_zone_data = data;
        }
        self.check_availability_zone_profile(&profile).await?;
        self.write(move |_, snapshot| {
            let id = &profile.id;
            let current = snapshot.availability_zone_profile(id)?;
            if current.provider_name != profile.provider_name && in_use(snapshot, id) {
                return Err(Error::conflict(format!(
                    "Availability zone profile {id} is in use: its provider cannot change."
                )));
            }
            Ok(store(profile))
        })
        .await
    }
}

/// Deletes an availability zone profile no zone uses.
pub fn delete_profile(snapshot: &Snapshot, id: &str) -> Decided<Change<()>> {
    snapshot.availability_zone_profile(id)?;
    if in_use(snapshot, id) {
        return Err(Error::conflict(format!(
            "Availability zone profile {id} is in use by an availability zone."
        )));
    }
    Ok(remove::<AvailabilityZoneProfile>(id))
}

/// Creates a zone of an existing profile, under a name no other zone has.
pub fn create(snapshot: &Snapshot, spec: ZoneSpec) -> Decided<Change<AvailabilityZone>> {
    let profile_id = required(
        "availability_zone_profile_id",
        spec.availability_zone_profile_id,
    )?;
    snapshot
        .availability_zone_profile(&profile_id)
        .map_err(|_| {
            Error::field(
                "availability_zone_profile_id",
                format!("Availability zone profile {profile_id} could not be found."),
            )
        })?;
    let name = required_text("name", spec.name, 255)?;
    if snapshot.availability_zone(&name).is_ok() {
        return Err(Error::conflict(format!(
            "An availability zone named {name} already exists."
        )));
    }
    let zone = AvailabilityZone {
        name,
        description: text("description", spec.description, 255)?,
        availability_zone_profile_id: profile_id,
        enabled: spec.enabled.unwrap_or(true),
    };
    Ok(store(zone))
}

/// Changes a zone's description or whether it is enabled; its name and profile stay.
pub fn update(
    snapshot: &Snapshot,
    name: &str,
    spec: ZoneSpec,
) -> Decided<Change<AvailabilityZone>> {
    let mut zone = snapshot.availability_zone(name)?.clone();
    if spec.name.is_some() || spec.availability_zone_profile_id.is_some() {
        return Err(Error::invalid(
            "An availability zone's name and profile cannot be changed.",
        ));
    }
    if let Some(description) = spec.description {
        zone.description = text("description", Some(description), 255)?;
    }
    if let Some(enabled) = spec.enabled {
        zone.enabled = enabled;
    }
    Ok(store(zone))
}

/// Deletes a zone no load balancer and no device is in.
pub fn delete(snapshot: &Snapshot, name: &str) -> Decided<Change<()>> {
    snapshot.availability_zone(name)?;
    let zoned = |zone: &Option<String>| zone.as_deref() == Some(name);
    if snapshot
        .loadbalancers
        .iter()
        .any(|lb| zoned(&lb.availability_zone))
    {
        return Err(Error::conflict(format!(
            "Availability zone {name} is in use by load balancers."
        )));
    }
    if snapshot.devices.iter().any(|d| zoned(&d.availability_zone)) {
        return Err(Error::conflict(format!(
            "Availability zone {name} still has devices."
        )));
    }
    Ok(remove::<AvailabilityZone>(name))
}

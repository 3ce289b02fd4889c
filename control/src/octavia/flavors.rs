//! Flavors and their profiles (admins' objects): a profile names a provider and metadata its
//! driver validates; a flavor names a profile. A profile in use by a flavor, and a flavor in
//! use by a load balancer, stay.

use std::sync::Arc;

use lbaas_core::ids::new_id;
use serde::Deserialize;

use super::fields::{Decided, text};
use super::tree::put;
use crate::Error;
use crate::model::{Flavor, FlavorProfile};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;
use crate::store::Batch;

/// A flavor profile's fields, as a create or update gives them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorProfileSpec {
    name: Option<String>,
    provider_name: Option<String>,
    flavor_data: Option<String>,
}

/// A flavor's fields, as a create or update gives them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorSpec {
    name: Option<String>,
    description: Option<String>,
    flavor_profile_id: Option<String>,
    enabled: Option<bool>,
}

impl ControlPlane {
    /// Stores a new flavor profile once every driver it names accepts its metadata.
    pub async fn create_flavor_profile(
        self: &Arc<Self>,
        spec: FlavorProfileSpec,
    ) -> Decided<FlavorProfile> {
        let required = |value: Option<String>, field: &'static str| {
            value.ok_or_else(|| Error::field(field, format!("{field} is required.")))
        };
        let profile = FlavorProfile {
            id: new_id(),
            name: text("name", spec.name, 255)?,
            provider_name: required(spec.provider_name, "provider_name")?,
            flavor_data: required(spec.flavor_data, "flavor_data")?,
        };
        self.check_flavor_profile(&profile.name, &profile).await?;
        let stored = profile.clone();
        self.write(move |_, _| Ok::<_, Error>(put(&stored))).await?;
        Ok(profile)
    }

    /// Changes a flavor profile; the drivers it names check the result first.
    pub async fn update_flavor_profile(
        self: &Arc<Self>,
        id: &str,
        spec: FlavorProfileSpec,
    ) -> Decided<FlavorProfile> {
        let lookup = id.to_owned();
        let mut profile = self
            .read(move |_, snapshot| Ok::<_, Error>(snapshot.flavorprofile(&lookup)?.clone()))
            .await?;
        if let Some(name) = spec.name {
            profile.name = text("name", Some(name), 255)?;
        }
        if let Some(provider) = spec.provider_name {
            profile.provider_name = provider;
        }
        if let Some(data) = spec.flavor_data {
            profile.flavor_data = data;
        }
        self.check_flavor_profile(&profile.name, &profile).await?;
        let stored = profile.clone();
        self.write(move |_, snapshot| {
            snapshot.flavorprofile(&stored.id)?;
            Ok::<_, Error>(put(&stored))
        })
        .await?;
        Ok(profile)
    }
}

/// Deletes a flavor profile no flavor uses.
pub fn delete_profile(snapshot: &Snapshot, id: &str) -> Decided<Change<()>> {
    snapshot.flavorprofile(id)?;
    if snapshot.flavors.iter().any(|f| f.flavor_profile_id == id) {
        return Err(Error::conflict(format!(
            "Flavor profile {id} is in use by a flavor."
        )));
    }
    let mut batch = Batch::new();
    batch.delete::<FlavorProfile>(id);
    Ok(Change::new(batch, ()))
}

/// Creates a flavor of an existing profile, under a name no other flavor has.
pub fn create(snapshot: &Snapshot, spec: FlavorSpec) -> Decided<Change<Flavor>> {
    let profile_id = spec
        .flavor_profile_id
        .ok_or_else(|| Error::field("flavor_profile_id", "flavor_profile_id is required."))?;
    snapshot.flavorprofile(&profile_id).map_err(|_| {
        Error::field(
            "flavor_profile_id",
            format!("Flavor profile {profile_id} could not be found."),
        )
    })?;
    let name = text("name", spec.name, 255)?;
    if name.is_empty() {
        return Err(Error::field("name", "name is required."));
    }
    if snapshot.flavors.iter().any(|f| f.name == name) {
        return Err(Error::conflict(format!(
            "A flavor named {name} already exists."
        )));
    }
    let flavor = Flavor {
        id: new_id(),
        name,
        description: text("description", spec.description, 255)?,
        flavor_profile_id: profile_id,
        enabled: spec.enabled.unwrap_or(true),
    };
    Ok(put(&flavor).map(|()| flavor))
}

/// Changes a flavor's name, description or whether it is enabled; its profile stays.
pub fn update(snapshot: &Snapshot, id: &str, spec: FlavorSpec) -> Decided<Change<Flavor>> {
    let mut flavor = snapshot.flavor(id)?.clone();
    if spec.flavor_profile_id.is_some() {
        return Err(Error::field(
            "flavor_profile_id",
            "A flavor's profile cannot be changed.",
        ));
    }
    if let Some(name) = spec.name {
        flavor.name = text("name", Some(name), 255)?;
    }
    if let Some(description) = spec.description {
        flavor.description = text("description", Some(description), 255)?;
    }
    if let Some(enabled) = spec.enabled {
        flavor.enabled = enabled;
    }
    Ok(put(&flavor).map(|()| flavor))
}

/// Deletes a flavor no load balancer uses.
pub fn delete(snapshot: &Snapshot, id: &str) -> Decided<Change<()>> {
    snapshot.flavor(id)?;
    if snapshot
        .loadbalancers
        .iter()
        .any(|lb| lb.flavor_id.as_deref() == Some(id))
    {
        return Err(Error::conflict(format!(
            "Flavor {id} is in use by load balancers."
        )));
    }
    let mut batch = Batch::new();
    batch.delete::<Flavor>(id);
    Ok(Change::new(batch, ()))
}

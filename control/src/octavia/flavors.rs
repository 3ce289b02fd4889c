//! Flavors and their profiles (admins' objects): a profile names a provider and metadata its
//! driver validates; a flavor names a profile. A profile in use by a flavor, and a flavor in
//! use by a load balancer, stay.

use std::sync::Arc;

use lbaas_core::ids::new_id;
use serde::Deserialize;

use super::fields::{Decided, required, required_text, text};
use super::tree::{remove, store};
use crate::Error;
use crate::model::{Flavor, FlavorProfile};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;

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
        let profile = FlavorProfile {
            id: new_id(),
            name: text("name", spec.name, 255)?,
            provider_name: required("provider_name", spec.provider_name)?,
            flavor_data: required("flavor_data", spec.flavor_data)?,
        };
        self.check_flavor_profile(&profile.name, &profile).await?;
        self.write(move |_, _| Ok::<_, Error>(store(profile))).await
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
        self.write(move |_, snapshot| {
            snapshot.flavorprofile(&profile.id)?;
            Ok::<_, Error>(store(profile))
        })
        .await
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
    Ok(remove::<FlavorProfile>(id))
}

/// Creates a flavor of an existing profile, under a name no other flavor has.
pub fn create(snapshot: &Snapshot, spec: FlavorSpec) -> Decided<Change<Flavor>> {
    let profile_id = required("flavor_profile_id", spec.flavor_profile_id)?;
    snapshot.flavorprofile(&profile_id).map_err(|_| {
        Error::field(
            "flavor_profile_id",
            format!("Flavor profile {profile_id} could not be found."),
        )
    })?;
    let name = required_text("name", spec.name, 255)?;
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
    Ok(store(flavor))
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
    Ok(store(flavor))
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
    Ok(remove::<Flavor>(id))
}

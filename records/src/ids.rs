//! Identifiers and the clock: validated identifiers (a value of these types has been checked
//! once, at the boundary), new record ids, and the time stamps records carry.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A refused identifier or label. Values come from drivers, which are hostile: the error keeps
/// at most [`InvalidId::SHOWN`] characters of one and shows them escaped, so neither a log line,
/// a terminal nor a fault can be written to through it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} \"{}\": {why}", value.escape_debug())]
pub struct InvalidId {
    pub what: &'static str,
    /// The start of the refused value, unescaped.
    pub value: String,
    pub why: &'static str,
}

impl InvalidId {
    /// How many characters of a refused value the error keeps.
    pub const SHOWN: usize = 64;

    fn new(what: &'static str, value: &str, why: &'static str) -> Self {
        Self {
            what,
            value: value.chars().take(Self::SHOWN).collect(),
            why,
        }
    }
}

/// A driver's name: 1 to 64 of `a-z`, `0-9` and `-`, starting with a letter. It names the
/// driver's private state namespace, so it is checked before any use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DriverName(String);

impl DriverName {
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
        let value = value.into();
        let why = if value.is_empty() || value.len() > 64 {
            Some("must be 1 to 64 characters long")
        } else if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
            Some("must start with a lowercase letter")
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Some("may only hold a-z, 0-9 and '-'")
        } else {
            None
        };
        match why {
            Some(why) => Err(InvalidId::new("driver name", &value, why)),
            None => Ok(Self(value)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DriverName {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<DriverName> for String {
    fn from(name: DriverName) -> Self {
        name.0
    }
}

impl fmt::Display for DriverName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version as a driver reports it: 1 to 64 of `A-Z`, `a-z`, `0-9` and `.+-_~` (every semantic
/// version fits). It is shown to operators, written to logs and audited, so it is checked when
/// the driver loads.
pub fn check_driver_version(value: &str) -> Result<(), InvalidId> {
    let why = if value.is_empty() || value.len() > 64 {
        Some("must be 1 to 64 characters long")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".+-_~".contains(&b))
    {
        Some("may only hold A-Z, a-z, 0-9 and '.+-_~'")
    } else {
        None
    };
    why.map_or(Ok(()), |why| {
        Err(InvalidId::new("driver version", value, why))
    })
}

/// Free text a driver reports about itself (its vendor, a flavor key's help): at most `max`
/// bytes and no control characters (no line breaks, no terminal escapes).
pub fn check_driver_text(what: &'static str, value: &str, max: usize) -> Result<(), InvalidId> {
    let why = if value.len() > max {
        Some("is too long")
    } else if value.chars().any(char::is_control) {
        Some("holds control characters")
    } else {
        None
    };
    why.map_or(Ok(()), |why| Err(InvalidId::new(what, value, why)))
}

/// The time now as records carry it: RFC 3339 in whole seconds, without the zone (UTC), as
/// Octavia shows `created_at` and `updated_at`.
pub fn now() -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    stamp.trim_end_matches('Z').to_owned()
}

/// A new record id: a UUID, as Octavia's, of version 7 — its leading bits are the time, and
/// ids made by one process are ordered by their creation. Listings, which stream records in id
/// order, so come in creation order: Octavia's default order (`created_at`), without sorting.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_uuids_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "ordered as made"
        );
        for id in &ids[..3] {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 7);
        }
    }

    #[test]
    fn driver_names() {
        assert!(DriverName::new("acme-adc").is_ok());
        assert!(DriverName::new("haproxy2").is_ok());
        for bad in [
            "",
            "Acme",
            "1abc",
            "a/b",
            "a..b",
            "driver/x",
            &"a".repeat(65),
        ] {
            assert!(DriverName::new(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn driver_versions_and_texts() {
        for good in ["0.1.0", "1.2.3-rc.1+build.5", "2024_06~x"] {
            assert!(check_driver_version(good).is_ok(), "{good} refused");
        }
        for bad in [
            "",
            "1.0 beta",
            "1.0\n",
            "1.0\u{1b}[2J",
            "v/1",
            &"1".repeat(65),
        ] {
            assert!(check_driver_version(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_driver_text("vendor", "Acme Networks, Inc. — ADC", 128).is_ok());
        assert!(check_driver_text("vendor", "Acme\u{1b}]0;owned\u{7}", 128).is_err());
        assert!(check_driver_text("vendor", "line\nbreak", 128).is_err());
        assert!(check_driver_text("vendor", &"x".repeat(129), 128).is_err());
    }

    #[test]
    fn a_refused_value_is_shown_short_and_escaped() {
        let hostile = format!("9.9\u{1b}[2J\nlevel=ERROR forged{}", "x".repeat(10_000));
        let message = check_driver_version(&hostile)
            .expect_err("refused")
            .to_string();
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(message.contains("\\u{1b}[2J\\n"), "{message}");
        assert!(message.len() < 200, "{} bytes", message.len());
    }
}

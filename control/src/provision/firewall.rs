//! What a device in a namespace of its own may send into the host: nothing but replies and
//! connections to its own members. The host's kernel accepts a packet for any of its addresses
//! on any interface, so without a filter a device could reach every service the host runs on
//! all addresses (at the gateway, or the host's other addresses), whatever its configuration
//! says; and the agent's allow-list is only as good as the agent. So the host filters each
//! device's link with nftables, below anything the device controls:
//!
//! ```text
//! table inet lbaas_<tag> {
//!     map links { type ifname : verdict }          # "lb<handle>" : jump d_<handle>
//!     chain input   { type filter hook input priority filter; iifname vmap @links }
//!     chain forward { type filter hook forward priority filter; iifname vmap @links }
//!     set r4_<handle> { type ipv4_addr . inet_service }   # the device's members (TCP)
//!     set r6_<handle> { type ipv6_addr . inet_service }
//!     chain d_<handle> {
//!         ct state established,related accept            # answers to the host's calls
//!         icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
//!         ip daddr . tcp dport @r4_<handle> accept
//!         ip6 daddr . tcp dport @r6_<handle> accept
//!         counter drop
//!     }
//! }
//! ```
//!
//! A device's chain exists before its link does, and goes after it; the table, one per
//! provisioner ([`super::netns::tag`]), goes with the provisioner's last device.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::ProvisionError;

/// One provisioner's table.
#[derive(Debug, Clone)]
pub(super) struct Firewall {
    table: String,
}

impl Firewall {
    /// The table of the provisioner whose mark is `tag`.
    pub(super) fn of(tag: &str) -> Self {
        Self {
            table: format!("lbaas_{tag}"),
        }
    }

    pub(super) fn table(&self) -> &str {
        &self.table
    }

    /// Filters the link `link` of device `handle`: nothing but replies passes until
    /// [`Firewall::allow`] names its members. Safe to repeat.
    pub(super) fn guard(&self, handle: &str, link: &str) -> Result<(), ProvisionError> {
        nft(&self.guarding(handle, link))
    }

    fn guarding(&self, handle: &str, link: &str) -> String {
        let t = &self.table;
        format!(
            "add table inet {t}
             add map inet {t} links {{ type ifname : verdict; }}
             add chain inet {t} input {{ type filter hook input priority filter; policy accept; }}
             add chain inet {t} forward {{ type filter hook forward priority filter; policy accept; }}
             flush chain inet {t} input
             flush chain inet {t} forward
             add rule inet {t} input iifname vmap @links
             add rule inet {t} forward iifname vmap @links
             add set inet {t} r4_{handle} {{ type ipv4_addr . inet_service; }}
             add set inet {t} r6_{handle} {{ type ipv6_addr . inet_service; }}
             add chain inet {t} d_{handle}
             flush chain inet {t} d_{handle}
             add rule inet {t} d_{handle} ct state established,related accept
             add rule inet {t} d_{handle} icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept
             add rule inet {t} d_{handle} ip daddr . tcp dport @r4_{handle} accept
             add rule inet {t} d_{handle} ip6 daddr . tcp dport @r6_{handle} accept
             add rule inet {t} d_{handle} counter drop
             add element inet {t} links {{ \"{link}\" : jump d_{handle} }}
            "
        )
    }

    /// Lets device `handle` (its link `link` filtered as [`Firewall::guard`] does, again if it
    /// was lost) open connections to exactly `targets` (TCP), in one transaction: no moment
    /// where an allowed target is refused.
    pub(super) fn allow(
        &self,
        handle: &str,
        link: &str,
        targets: &BTreeSet<SocketAddr>,
    ) -> Result<(), ProvisionError> {
        let t = &self.table;
        let mut script = self.guarding(handle, link);
        script.push_str(&format!(
            "flush set inet {t} r4_{handle}\nflush set inet {t} r6_{handle}\n"
        ));
        let (v4, v6): (Vec<&SocketAddr>, Vec<&SocketAddr>) =
            targets.iter().partition(|target| target.is_ipv4());
        for (set, targets) in [("r4", v4), ("r6", v6)] {
            if targets.is_empty() {
                continue;
            }
            let elements: Vec<String> = targets
                .iter()
                .map(|target| format!("{} . {}", target.ip(), target.port()))
                .collect();
            script.push_str(&format!(
                "add element inet {t} {set}_{handle} {{ {} }}\n",
                elements.join(", ")
            ));
        }
        nft(&script)
    }

    /// Stops filtering device `handle`'s link (once its link is gone): its chain and sets go.
    /// Nothing to remove is not an error.
    pub(super) fn forget(&self, handle: &str, link: &str) {
        let t = &self.table;
        if nft(&format!("list chain inet {t} d_{handle}")).is_err() {
            return;
        }
        let removed = nft(&format!(
            "delete element inet {t} links {{ \"{link}\" }}
             delete chain inet {t} d_{handle}
             delete set inet {t} r4_{handle}
             delete set inet {t} r6_{handle}
            "
        ));
        if let Err(error) = removed {
            tracing::warn!(%error, handle, "cannot remove a device's firewall chain");
        }
    }

    /// Handles of the devices whose links the table filters.
    pub(super) fn guarded(&self) -> Vec<String> {
        let Ok(listed) = nft_output(&["list", "table", "inet", &self.table]) else {
            return Vec::new();
        };
        listed
            .lines()
            .filter_map(|line| line.trim().strip_prefix("chain d_"))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// Removes the table (once no device of the provisioner is left).
    pub(super) fn remove(&self) {
        if nft_output(&["list", "table", "inet", &self.table]).is_ok()
            && let Err(error) = nft_output(&["delete", "table", "inet", &self.table])
        {
            tracing::warn!(%error, table = self.table.as_str(), "cannot remove the devices' firewall table");
        }
    }
}

/// Whether nftables can be used here.
pub(super) fn available() -> Result<(), ProvisionError> {
    nft_output(&["list", "tables"]).map(drop)
}

/// Runs an `nft` script as one transaction.
fn nft(script: &str) -> Result<(), ProvisionError> {
    let what = script.lines().next().unwrap_or_default().trim();
    super::run("nft", &["-f", "-"], Some(script))
        .map_err(|error| error.about(&format!("nft {what}")))
        .map(drop)
}

fn nft_output(args: &[&str]) -> Result<String, ProvisionError> {
    super::run("nft", args, None)
}

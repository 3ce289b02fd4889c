//! The caller of one request, as authentication found it: a project and roles, read through
//! Octavia's policy (and Keystone's default roles). It is the control plane's `Reader` and
//! `Caller`.

use super::error::ApiError;

pub const ROLE_MEMBER: &str = "load-balancer_member";
pub const ROLE_OBSERVER: &str = "load-balancer_observer";
pub const ROLE_GLOBAL_OBSERVER: &str = "load-balancer_global_observer";
pub const ROLE_ADMIN: &str = "admin";
/// Octavia's own admin role: an admin of every load-balancer API, granted instead of the
/// cloud-wide `admin`.
pub const ROLE_LB_ADMIN: &str = "load-balancer_admin";
/// Octavia's quota admin role: reads and changes every project's quotas, nothing else.
pub const ROLE_QUOTA_ADMIN: &str = "load-balancer_quota_admin";
/// Keystone's default roles (Octavia 2025.1 and later honour them beside its own): a
/// project's `reader` reads it, its `member` and `manager` also change it.
pub const ROLE_READER: &str = "reader";
pub const ROLE_PROJECT_MEMBER: &str = "member";
pub const ROLE_MANAGER: &str = "manager";

/// Which roles the load-balancer API honours: one of the policies Octavia ships.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// Octavia's defaults: Keystone's default roles (`reader`, `member`, `manager`, `admin`)
    /// and, as their deprecated alternatives, Octavia's own `load-balancer_*` roles.
    #[default]
    Default,
    /// Octavia's own roles alone (`octavia-advanced-rbac-policy.yaml`): a project's
    /// `load-balancer_observer` reads it, its `load-balancer_member` changes it;
    /// `load-balancer_global_observer`, `load-balancer_admin` and `load-balancer_quota_admin`
    /// (and `admin`) act on every project. Keystone's `reader` and `member` count for nothing.
    Advanced,
    /// Keystone's default roles alone, with the new defaults enforced
    /// (`keystone_default_roles-policy.yaml`): `reader` reads its project, `member` changes
    /// it, `admin` acts on all; Octavia's observer, member and quota roles count for nothing.
    KeystoneDefaultRoles,
}

impl Policy {
    /// Every policy, by the name `lbaasd serve --policy` takes.
    pub const NAMES: [(&str, Self); 3] = [
        ("default", Self::Default),
        ("advanced", Self::Advanced),
        ("keystone-default-roles", Self::KeystoneDefaultRoles),
    ];

    /// Whether Octavia's own project and global roles count.
    fn octavia_roles(self) -> bool {
        self != Self::KeystoneDefaultRoles
    }

    /// Whether Keystone's project roles count.
    fn keystone_roles(self) -> bool {
        self != Self::Advanced
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, policy)| *policy)
            .ok_or_else(|| {
                format!("`{name}` is not a policy (default, advanced, keystone-default-roles)")
            })
    }
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Context {
    pub project_id: String,
    pub roles: Vec<String>,
    /// The policy the host applies to `roles`.
    pub policy: Policy,
    /// Octavia's noauth: everything allowed, the project taken from the request.
    pub noauth: bool,
    /// The Keystone token the caller proved itself with, to act as the caller toward
    /// Barbican; `None` without Keystone.
    pub token: Option<Token>,
}

/// A caller's Keystone token: a credential, so never printed.
#[derive(Clone)]
pub struct Token(std::sync::Arc<str>);

impl Token {
    pub fn new(token: &str) -> Self {
        Self(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Context {
    fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(ROLE_ADMIN) || self.has(ROLE_LB_ADMIN)
    }

    /// May change quotas (Octavia's `load-balancer:write-quota`).
    fn is_quota_admin(&self) -> bool {
        self.is_admin() || (self.policy.octavia_roles() && self.has(ROLE_QUOTA_ADMIN))
    }

    /// May read `project_id`'s quotas (Octavia's `load-balancer:read-quota`).
    pub fn can_read_quotas(&self, project_id: &str) -> bool {
        self.can_read(project_id) || self.is_quota_admin()
    }

    pub fn require_quota_admin(&self) -> Result<(), ApiError> {
        if self.is_quota_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// May change its project's objects: Octavia's member role or Keystone's member or
    /// manager, as the policy counts them.
    fn is_member(&self) -> bool {
        (self.policy.octavia_roles() && self.has(ROLE_MEMBER))
            || (self.policy.keystone_roles()
                && (self.has(ROLE_PROJECT_MEMBER) || self.has(ROLE_MANAGER)))
    }

    /// May read its project's objects.
    fn is_reader(&self) -> bool {
        self.is_member()
            || (self.policy.octavia_roles() && self.has(ROLE_OBSERVER))
            || (self.policy.keystone_roles() && self.has(ROLE_READER))
    }

    /// Holds a role the load-balancer API knows: Octavia's policy refuses every request of a
    /// caller without one (a project user with only an unrelated role), lists included.
    pub fn has_api_role(&self) -> bool {
        self.noauth || self.is_quota_admin() || self.reads_all() || self.is_reader()
    }

    /// May see every project's objects.
    pub fn reads_all(&self) -> bool {
        self.is_admin() || (self.policy.octavia_roles() && self.has(ROLE_GLOBAL_OBSERVER))
    }

    pub fn can_read(&self, project_id: &str) -> bool {
        self.reads_all() || (project_id == self.project_id && self.is_reader())
    }

    pub fn can_write(&self, project_id: &str) -> bool {
        self.is_admin() || (project_id == self.project_id && self.is_member())
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn require_member(&self) -> Result<(), ApiError> {
        if self.is_admin() || self.is_member() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

impl lbaas_control::Reader for Context {
    fn reads_all(&self) -> bool {
        Context::reads_all(self)
    }

    fn project(&self) -> &str {
        &self.project_id
    }

    fn can_read(&self, project_id: &str) -> bool {
        Context::can_read(self, project_id)
    }
}

impl lbaas_control::octavia::Caller for Context {
    fn can_write(&self, project_id: &str) -> bool {
        Context::can_write(self, project_id)
    }

    fn is_admin(&self) -> bool {
        Context::is_admin(self)
    }

    fn token(&self) -> Option<&str> {
        self.token.as_ref().map(Token::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[&str]) -> Context {
        Context {
            project_id: "p".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            policy: Policy::Default,
            noauth: false,
            token: None,
        }
    }

    #[test]
    fn keystone_default_roles_and_octavia_roles_both_count() {
        for writer in [&[ROLE_MEMBER][..], &[ROLE_PROJECT_MEMBER], &[ROLE_MANAGER]] {
            let ctx = caller(writer);
            assert!(ctx.can_write("p") && ctx.can_read("p"), "{writer:?}");
            assert!(!ctx.can_read("q") && !ctx.can_write("q"), "{writer:?}");
            assert!(ctx.require_member().is_ok() && ctx.require_admin().is_err());
        }
        for reader in [&[ROLE_OBSERVER][..], &[ROLE_READER]] {
            let ctx = caller(reader);
            assert!(ctx.can_read("p") && !ctx.can_write("p"), "{reader:?}");
            assert!(!ctx.can_read("q"), "{reader:?}");
            assert!(ctx.require_member().is_err());
        }
        let global = caller(&[ROLE_GLOBAL_OBSERVER]);
        assert!(global.can_read("q") && !global.can_write("q"));
        let admin = caller(&[ROLE_ADMIN]);
        assert!(admin.can_write("q") && admin.require_admin().is_ok());
        // Octavia's own admin roles, which operators grant instead of the cloud-wide admin.
        let lb_admin = caller(&[ROLE_LB_ADMIN]);
        assert!(lb_admin.can_write("q") && lb_admin.require_admin().is_ok());
        let quota_admin = caller(&[ROLE_QUOTA_ADMIN]);
        assert!(!quota_admin.can_read("p") && quota_admin.require_admin().is_err());
        assert!(quota_admin.can_read_quotas("q") && quota_admin.require_quota_admin().is_ok());
        assert!(caller(&[ROLE_MEMBER]).require_quota_admin().is_err());
        assert!(caller(&[ROLE_MEMBER]).can_read_quotas("p"));
    }

    fn under(policy: Policy, roles: &[&str]) -> Context {
        Context {
            policy,
            ..caller(roles)
        }
    }

    /// Octavia's two sample policies: each honours its own roles alone (and `admin`).
    #[test]
    fn advanced_and_keystone_policies_honour_their_own_roles_alone() {
        let advanced = |roles: &[&str]| under(Policy::Advanced, roles);
        for keystone in [ROLE_READER, ROLE_PROJECT_MEMBER, ROLE_MANAGER] {
            let ctx = advanced(&[keystone]);
            assert!(!ctx.has_api_role() && !ctx.can_read("p"), "{keystone}");
        }
        assert!(advanced(&[ROLE_MEMBER]).can_write("p"));
        assert!(advanced(&[ROLE_OBSERVER]).can_read("p"));
        assert!(advanced(&[ROLE_GLOBAL_OBSERVER]).can_read("q"));
        assert!(advanced(&[ROLE_QUOTA_ADMIN]).require_quota_admin().is_ok());
        assert!(advanced(&[ROLE_LB_ADMIN]).require_admin().is_ok());

        let keystone = |roles: &[&str]| under(Policy::KeystoneDefaultRoles, roles);
        for octavia in [
            ROLE_MEMBER,
            ROLE_OBSERVER,
            ROLE_GLOBAL_OBSERVER,
            ROLE_QUOTA_ADMIN,
        ] {
            assert!(!keystone(&[octavia]).has_api_role(), "{octavia}");
        }
        assert!(keystone(&[ROLE_PROJECT_MEMBER]).can_write("p"));
        assert!(keystone(&[ROLE_READER]).can_read("p"));
        assert!(!keystone(&[ROLE_READER]).can_write("p"));
        assert!(keystone(&[ROLE_ADMIN]).require_quota_admin().is_ok());
        // Octavia's sample file keeps load-balancer_admin an admin.
        assert!(keystone(&[ROLE_LB_ADMIN]).require_admin().is_ok());
    }
}

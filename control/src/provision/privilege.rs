//! Spawned devices run least-privileged. A device agent and its HAProxy execute what a driver
//! rendered (checked by the agent's allow-list, but defence in depth), so they never run as
//! the host's user: when the host runs as root, they run as the dedicated system user
//! [`DEVICE_USER`] (created when missing), keeping two capabilities, `CAP_NET_BIND_SERVICE`, so
//! listeners may use ports below 1024, and `CAP_SYS_CHROOT`, so HAProxy's workers shut
//! themselves in an empty folder once their listeners are bound, and with `no_new_privs` set
//! (so a chroot cannot be turned into a privilege by a set-uid program: none gains any). Their
//! folder belongs to that user and is closed to others; the host's database and cache are
//! closed to it.
//!
//! A host that does not run as root cannot switch users: its devices run as its own user, and
//! the host says so at start.

use std::io;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::ProvisionError;

/// The system user spawned devices run as.
pub const DEVICE_USER: &str = "lbaas-device";

/// `CAP_NET_BIND_SERVICE` (linux/capability.h).
const CAP_NET_BIND_SERVICE: u32 = 10;
/// `CAP_SYS_CHROOT` (linux/capability.h).
const CAP_SYS_CHROOT: u32 = 18;
/// What spawned devices keep.
const KEPT: [u32; 2] = [CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT];
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The uid and gid devices run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceUser {
    pub uid: u32,
    pub gid: u32,
}

impl DeviceUser {
    /// The dedicated user, created when missing; `None` when the host is not root (it cannot
    /// switch users then).
    pub fn ensure() -> Result<Option<Self>, ProvisionError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        if let Some(user) = Self::lookup()? {
            return Ok(Some(user));
        }
        let output = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "lbaas spawned devices",
                DEVICE_USER,
            ])
            .output()
            .map_err(|source| ProvisionError::Program {
                program: "useradd".into(),
                source,
            })?;
        // Another host may have created it meanwhile (exit code 9: the user exists).
        if !output.status.success() && output.status.code() != Some(9) {
            return Err(ProvisionError::Unavailable(format!(
                "useradd could not create the system user {DEVICE_USER}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        tracing::info!(
            user = DEVICE_USER,
            "created the system user spawned devices run as"
        );
        Self::lookup()?.map(Some).ok_or_else(|| {
            ProvisionError::Unavailable(format!("the system user {DEVICE_USER} was not created"))
        })
    }

    /// The dedicated user, if it exists.
    pub fn lookup() -> Result<Option<Self>, ProvisionError> {
        let user =
            nix::unistd::User::from_name(DEVICE_USER).map_err(|e| ProvisionError::System {
                what: format!("cannot look up the user {DEVICE_USER}"),
                source: e.into(),
            })?;
        Ok(user.map(|user| Self {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }))
    }

    /// Gives `dir` and everything in it to the device user, closed to everyone else.
    pub fn own(&self, dir: &Path) -> io::Result<()> {
        lchown(dir, Some(self.uid), Some(self.gid))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() && !path.is_symlink() {
                self.own(&path)?;
            } else {
                lchown(&path, Some(self.uid), Some(self.gid))?;
            }
        }
        Ok(())
    }

    /// Makes `command` run as the device user, with only `CAP_NET_BIND_SERVICE` and
    /// `CAP_SYS_CHROOT` (inherited by what it executes: HAProxy) and `no_new_privs`.
    pub fn apply(&self, command: &mut Command) {
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: the closure runs in the forked child before exec; it only makes system calls
        // (no allocation, no locks), which is what `pre_exec` requires.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || drop_privileges(uid, gid));
        }
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(result: libc::c_long) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Becomes `uid`:`gid` keeping [`KEPT`] as ambient capabilities. Called between fork and exec:
/// system calls only.
fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain system calls on values owned by this frame.
    #[allow(unsafe_code)]
    unsafe {
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).into())?;
        let groups = [gid];
        check(libc::setgroups(1, groups.as_ptr()).into())?;
        check(libc::setresgid(gid, gid, gid).into())?;
        check(libc::setresuid(uid, uid, uid).into())?;
        let header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mask = KEPT.iter().fold(0u32, |mask, cap| mask | 1 << cap);
        let data = [
            CapData {
                effective: mask,
                permitted: mask,
                inheritable: mask,
            },
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        check(libc::syscall(
            libc::SYS_capset,
            &header as *const CapHeader,
            data.as_ptr(),
        ))?;
        for cap in KEPT {
            check(
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
                .into(),
            )?;
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into())?;
    }
    Ok(())
}

/// The first folder on the way to `dir` that others may not pass through (mode without `o+x`),
/// which would keep the device user out of its own folder.
pub fn closed_ancestor(dir: &Path) -> Option<std::path::PathBuf> {
    let absolute = std::path::absolute(dir).ok()?;
    absolute
        .ancestors()
        .skip(1)
        .find(|folder| {
            std::fs::metadata(folder).is_ok_and(|meta| meta.permissions().mode() & 0o001 == 0)
        })
        .map(Path::to_path_buf)
}

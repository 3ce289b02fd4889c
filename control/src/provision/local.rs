//! Devices as local processes: each spawned device is an `lbaas-agent` with its own HAProxy,
//! listening on a fresh loopback address, or, [isolated](LocalProcesses::isolated), on a fresh
//! address in a network namespace of its own (see [`netns`](super::netns)). Everything about one device lives in
//! `<root>/<handle>/`: its management address, its bearer token, the agent's log and pid file,
//! and the agent's HAProxy state.
//!
//! Devices run as the dedicated system user of [`privilege`](super::privilege) when the host
//! is root; their folders belong to it (mode 0700), and the agent refuses any configuration
//! line that names the agent's own management socket.
//!
//! The processes run in their own process groups and outlive the host: traffic keeps flowing
//! while the host restarts. At start the host [adopts](Provisioner::adopt) them: a device
//! whose agent is gone gets a new agent (which adopts the running HAProxy), and a folder no
//! device record names is stopped and removed, so nothing is orphaned.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lbaas_scheduler::SpawnSpec;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::firewall::Firewall;
use super::netns::{self, Gateway, Namespace};
use super::privilege::{self, DeviceUser};
use super::{ProvisionError, Provisioned, Provisioner, Reach};
use crate::devices::Credentials;
use crate::net::IpNet;

/// How long a new agent may take to answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopping process may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct LocalProcesses {
    agent: PathBuf,
    haproxy: PathBuf,
    root: PathBuf,
    addresses: IpNet,
    port: u16,
    /// Drivers whose devices speak the agent's API.
    drivers: Vec<String>,
    /// Who devices run as; `None` when the host is not root (then they run as the host's user).
    user: Option<DeviceUser>,
    /// Why the device user cannot reach its folders, when it cannot: nothing is spawned then
    /// (the host still serves registered devices).
    unreachable: Option<String>,
    /// With devices in namespaces of their own: the host's address on each device's link,
    /// where the device's default route points.
    gateway: Option<Gateway>,
    /// The mark on this provisioner's namespaces ([`netns::tag`]).
    tag: String,
    /// Where each device's HAProxy keeps its two Unix sockets (`<sockets>/<handle>`): a short
    /// folder apart from the data, as a socket's path holds at most 107 bytes.
    sockets: PathBuf,
    /// What each device was last given: a job's hand-over that changes nothing runs no
    /// program.
    served: Mutex<HashMap<String, Reach>>,
    /// One provisioning, release or adoption at a time.
    busy: Mutex<()>,
}

impl LocalProcesses {
    /// Devices get management addresses from `addresses` (loopback) at `port`, and live in
    /// `root`.
    pub fn new(
        agent: PathBuf,
        haproxy: PathBuf,
        root: PathBuf,
        addresses: IpNet,
        port: u16,
    ) -> Result<Self, ProvisionError> {
        if !addresses.addr().is_loopback() {
            return Err(ProvisionError::Unavailable(format!(
                "local devices listen on loopback addresses; {addresses} is not loopback"
            )));
        }
        Self::with_network(agent, haproxy, root, addresses, port, None)
    }

    /// Devices in network namespaces of their own: each gets a management address from
    /// `addresses` (routable, not loopback: the host routes to it over the device's veth
    /// pair); `gateway`, outside that range, is the host's side of every pair, where a device's
    /// default route points and where members on this machine listen. Needs root and iproute2.
    pub fn isolated(
        agent: PathBuf,
        haproxy: PathBuf,
        root: PathBuf,
        addresses: IpNet,
        gateway: IpAddr,
        port: u16,
    ) -> Result<Self, ProvisionError> {
        let routable = |ip: IpAddr| !ip.is_loopback() && !ip.is_unspecified() && !ip.is_multicast();
        if !routable(addresses.addr()) || !routable(gateway) || addresses.contains(&gateway) {
            return Err(ProvisionError::Unavailable(format!(
                "devices in namespaces of their own need a routable address range and a gateway \
                 outside it; {addresses} and {gateway} are not (e.g. --spawn-addresses \
                 198.18.0.0/16 --device-gateway 198.19.0.1)"
            )));
        }
        netns::available()?;
        // There from the start, so members on this machine can listen on it before any device.
        let gateway = Gateway::at(gateway, None);
        gateway.ensure()?;
        Self::with_network(agent, haproxy, root, addresses, port, Some(gateway))
    }

    /// Devices in namespaces of their own also get IPv6: the host at `gateway` (on its
    /// loopback, where members on this machine listen over IPv6) and each device at the
    /// gateway's /96 with its IPv4 address as the last 32 bits; IPv6 VIPs are routed to their
    /// devices as IPv4 ones are.
    pub fn with_ipv6_gateway(mut self, gateway: Ipv6Addr) -> Result<Self, ProvisionError> {
        let Some(v4) = self.gateway.as_ref().map(Gateway::v4) else {
            return Err(ProvisionError::Unavailable(
                "an IPv6 gateway is for devices in namespaces of their own".into(),
            ));
        };
        let low = IpAddr::from(std::array::from_fn::<u8, 4, _>(|i| {
            gateway.octets()[12 + i]
        }));
        let unusable = gateway.is_loopback()
            || gateway.is_unspecified()
            || gateway.is_multicast()
            || gateway.segments()[0] & 0xffc0 == 0xfe80
            || gateway.to_ipv4_mapped().is_some()
            || self.addresses.contains(&low);
        if unusable {
            return Err(ProvisionError::Unavailable(format!(
                "{gateway} cannot be the devices' IPv6 gateway: it must be a routable IPv6 \
                 address whose last 32 bits are no address of {} (e.g. fd00:198:19::1)",
                self.addresses
            )));
        }
        let gateway = Gateway::at(v4, Some(gateway));
        gateway.ensure()?;
        self.gateway = Some(gateway);
        Ok(self)
    }

    /// Whether devices can get namespaces of their own here: root, iproute2 and nftables.
    pub fn can_isolate() -> Result<(), ProvisionError> {
        netns::available()
    }

    fn with_network(
        agent: PathBuf,
        haproxy: PathBuf,
        root: PathBuf,
        addresses: IpNet,
        port: u16,
        gateway: Option<Gateway>,
    ) -> Result<Self, ProvisionError> {
        fs::create_dir_all(&root).map_err(|source| ProvisionError::System {
            what: format!("cannot create {}", root.display()),
            source,
        })?;
        let user = DeviceUser::ensure()?;
        let mut unreachable = None;
        match user {
            Some(_) => {
                // The device user passes through the root to its own folder, and sees nothing else.
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&root, fs::Permissions::from_mode(0o711)).map_err(
                    |source| ProvisionError::System {
                        what: format!("cannot restrict {}", root.display()),
                        source,
                    },
                )?;
                if let Some(closed) = privilege::closed_ancestor(&root) {
                    let why = format!(
                        "devices run as the system user {}, which cannot reach {}: {} is closed to \
                         other users (choose a data folder others may pass through)",
                        privilege::DEVICE_USER,
                        root.display(),
                        closed.display()
                    );
                    tracing::warn!("{why}; no device can be spawned");
                    unreachable = Some(why);
                }
            }
            None => {
                tracing::warn!("the host is not root: spawned devices run as the host's own user")
            }
        }
        let tag = netns::tag(&root);
        let sockets = match socket_root(&tag, user.is_some()) {
            Ok(sockets) => sockets,
            Err(why) => {
                tracing::warn!("{why}; no device can be spawned");
                unreachable.get_or_insert(why);
                PathBuf::new()
            }
        };
        Ok(Self {
            agent,
            haproxy,
            root,
            addresses,
            port,
            drivers: vec!["haproxy".into()],
            user,
            unreachable,
            gateway,
            tag,
            sockets,
            served: Mutex::new(HashMap::new()),
            busy: Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dir(&self, handle: &str) -> Result<PathBuf, ProvisionError> {
        if handle.is_empty() || !handle.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ProvisionError::UnknownHandle(handle.to_owned()));
        }
        Ok(self.root.join(handle))
    }

    /// The folder of the HAProxy sockets of the device in `dir`.
    fn socket_dir(&self, dir: &Path) -> PathBuf {
        self.sockets.join(dir.file_name().unwrap_or_default())
    }

    /// Handles of every device folder.
    fn handles(&self) -> Vec<String> {
        fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| self.dir(name).is_ok())
            .collect()
    }

    /// Management addresses taken by existing devices.
    fn taken(&self) -> HashSet<IpAddr> {
        self.handles()
            .iter()
            .filter_map(|handle| read_address(&self.root.join(handle)).ok())
            .map(|address| address.ip())
            .collect()
    }

    /// The first address of the range that no device has and nothing else listens on, or, in
    /// namespaces of their own, that the host routes nowhere yet (another host on this machine
    /// may spawn from the same range).
    fn free_address(&self) -> Result<SocketAddr, ProvisionError> {
        let mut taken = self.taken();
        if self.gateway.is_some() {
            taken.extend(netns::routed()?);
        }
        crate::net::hosts(&self.addresses)
            .filter(|ip| !taken.contains(ip))
            .map(|ip| SocketAddr::new(ip, self.port))
            .find(|address| self.gateway.is_some() || TcpListener::bind(address).is_ok())
            .ok_or_else(|| ProvisionError::Exhausted(self.addresses.to_string()))
    }

    /// The namespace of the device in `dir`, when devices get their own.
    fn namespace(&self, dir: &Path) -> Option<Namespace> {
        self.namespace_named(&dir.file_name()?.to_string_lossy())
    }

    /// The namespace of device `handle`, when devices get their own.
    fn namespace_named(&self, handle: &str) -> Option<Namespace> {
        Some(Namespace::of(&self.tag, handle, self.gateway.as_ref()?))
    }

    /// The host's address on each device's link, where members on this machine listen, when
    /// devices run in namespaces of their own.
    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway.as_ref().map(Gateway::v4)
    }

    /// The nftables table (family `inet`) that filters the devices' links, when they run in
    /// namespaces of their own.
    pub fn firewall_table(&self) -> Option<String> {
        self.gateway.as_ref()?;
        Some(Self::firewall_table_of(&self.root))
    }

    /// The nftables table of the provisioner whose devices live in `root`, isolated.
    pub fn firewall_table_of(root: &Path) -> String {
        Firewall::of(&netns::tag(root)).table().to_owned()
    }

    /// The name of the network namespace device `handle` runs in, when it has its own.
    pub fn namespace_of(&self, handle: &str) -> Option<String> {
        let dir = self.dir(handle).ok()?;
        self.namespace(&dir).map(|ns| ns.name().to_owned())
    }

    /// Who spawned devices run as (`None`: the host's own user).
    pub fn device_user(&self) -> Option<DeviceUser> {
        self.user
    }

    /// Starts the agent of the device in `dir`; returns once it answers.
    fn start_agent(&self, dir: &Path) -> Result<(), ProvisionError> {
        let address = read_address(dir)?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .map_err(ProvisionError::system("cannot open the agent's log"))?;
        let mut command = Command::new(&self.agent);
        // Joins the device's namespace first, while it still may (before dropping to the
        // device user); the file stays open in the host until the agent has started.
        let namespace = match self.namespace(dir) {
            Some(namespace) => Some(namespace.open()?),
            None => None,
        };
        if let Some(namespace) = &namespace {
            let fd = namespace.try_clone().map_err(ProvisionError::system(
                "cannot share the device's network namespace",
            ))?;
            // SAFETY: the closure runs in the forked child before exec and only makes the
            // `setns` system call, which is what `pre_exec` requires.
            #[allow(unsafe_code)]
            unsafe {
                command.pre_exec(move || netns::enter(&fd));
            }
        }
        private_folder(&self.sockets, socket_folder_mode(self.user.is_some()))
            .map_err(|why| ProvisionError::Unavailable(unusable(&self.sockets, &why)))?;
        let sockets = self.socket_dir(dir);
        fs::create_dir_all(&sockets)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&sockets, fs::Permissions::from_mode(0o700))
            })
            .map_err(ProvisionError::system(format!(
                "cannot create the device's socket folder {}",
                sockets.display()
            )))?;
        if let Some(user) = &self.user {
            for owned in [dir, &sockets] {
                user.own(owned).map_err(ProvisionError::system(format!(
                    "cannot give {} to {}",
                    owned.display(),
                    privilege::DEVICE_USER
                )))?;
            }
            user.apply(&mut command);
        }
        let mut child = command
            .arg("--listen")
            .arg(address.to_string())
            .arg("--state-dir")
            .arg(dir)
            .arg("--socket-dir")
            .arg(&sockets)
            .arg("--token-file")
            .arg(dir.join("token"))
            .arg("--haproxy")
            .arg(&self.haproxy)
            .arg("--stop-haproxy-on-exit")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(ProvisionError::system("cannot share the agent's log"))?,
            )
            .stderr(log)
            // Not in the host's process group: stopping the host leaves the device serving.
            .process_group(0)
            .spawn()
            .map_err(|source| ProvisionError::Program {
                program: self.agent.clone(),
                source,
            })?;
        let token = read_token(dir)?;
        let url = format!("http://{address}/v1/health");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if healthy(&url, &token) {
                // Reaped by a thread while the host runs; after a host restart, by init.
                std::thread::spawn(move || child.wait());
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ProvisionError::Start(format!(
                    "the device agent exited at start ({status}): {}",
                    log_tail(dir)
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProvisionError::Start(format!(
                    "the device agent did not start: {}",
                    log_tail(dir)
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the agent (which stops its HAProxy), makes sure HAProxy is gone too, and removes
    /// the folder.
    fn stop(&self, dir: &Path) {
        if let Some(pid) = running(&dir.join("agent.pid"), "lbaas-agent") {
            terminate(pid, "lbaas-agent");
        }
        if let Some(pid) = running(&dir.join("haproxy.pid"), "haproxy") {
            terminate(pid, "haproxy");
        }
        if let Some(namespace) = self.namespace(dir) {
            namespace.remove();
            self.served_now().remove(namespace.handle());
        }
        let _ = fs::remove_dir_all(self.socket_dir(dir));
        // A process on its way out may still remove its own files meanwhile.
        for attempt in 0.. {
            match fs::remove_dir_all(dir) {
                Ok(()) => return,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
                Err(error) if attempt == 10 => {
                    tracing::warn!(dir = %dir.display(), %error, "cannot remove a stopped device's folder");
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Stops every device this provisioner started, known or not. For tests and teardown:
    /// `lbaasd` itself leaves devices running when it stops.
    pub fn stop_all(&self) {
        let _busy = self.lock();
        for handle in self.handles() {
            self.stop(&self.root.join(handle));
        }
        self.remove_orphan_namespaces(&[]);
        self.tidy();
    }

    /// What devices were last given.
    fn served_now(&self) -> std::sync::MutexGuard<'_, HashMap<String, Reach>> {
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives device `handle` `reach`: its VIPs reconciled with what its namespace holds, and
    /// its filter written again (one transaction), when `mend` asks or the reach changed; a
    /// job's hand-over that changes nothing runs no program.
    fn route(&self, handle: &str, reach: &Reach, mend: bool) -> Result<(), ProvisionError> {
        let dir = self.dir(handle)?;
        let Some(namespace) = self.namespace(&dir) else {
            return Ok(());
        };
        let _busy = self.lock();
        if !namespace.exists() {
            return Ok(());
        }
        let last = self.served_now().get(handle).cloned();
        if !mend && last.as_ref() == Some(reach) {
            return Ok(());
        }
        namespace.serve(read_address(&dir)?.ip(), reach)?;
        if mend || last.map(|last| last.targets) != Some(reach.targets.clone()) {
            namespace.allow(reach)?;
        }
        self.served_now().insert(handle.to_owned(), reach.clone());
        Ok(())
    }

    /// Once this provisioner has no device left (when the host stops): its sockets' folder
    /// and firewall table go, and the gateway address too unless another provisioner's devices
    /// on this machine still use it. Devices left running keep all three.
    fn tidy(&self) {
        if !self.handles().is_empty() {
            return;
        }
        // Empty with no device left (never another provisioner's: the tag is ours).
        let _ = fs::remove_dir(&self.sockets);
        let Some(gateway) = &self.gateway else { return };
        Firewall::of(&self.tag).remove();
        if !gateway.in_use() {
            gateway.remove();
        }
    }

    /// Removes the namespaces of devices whose folder is gone (and that `keep` does not name).
    fn remove_orphan_namespaces(&self, keep: &[String]) {
        if self.gateway.is_none() {
            return;
        }
        let folders = self.handles();
        let mut orphans: BTreeSet<String> = Namespace::all(&self.tag).into_iter().collect();
        orphans.extend(Firewall::of(&self.tag).guarded());
        for handle in orphans {
            if folders.contains(&handle) || keep.contains(&handle) {
                continue;
            }
            if let Some(namespace) = self.namespace_named(&handle) {
                tracing::warn!(handle, "removing a device namespace no device folder names");
                namespace.remove();
            }
        }
    }

    /// Pids of the agent and HAProxy master of a device, when they run (for tests and tools).
    pub fn processes(&self, handle: &str) -> Vec<u32> {
        let Ok(dir) = self.dir(handle) else {
            return Vec::new();
        };
        [("agent.pid", "lbaas-agent"), ("haproxy.pid", "haproxy")]
            .into_iter()
            .filter_map(|(file, name)| running(&dir.join(file), name))
            .collect()
    }
}

/// Where `program` is: itself when it names a path, else the first match on `PATH`; an error
/// of kind `NotFound` when there is none, `PermissionDenied` when it cannot be run.
fn resolve(program: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<PathBuf> = if program.components().count() > 1 {
        vec![program.to_owned()]
    } else {
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(program))
                    .collect()
            })
            .unwrap_or_default()
    };
    let found = candidates.into_iter().find(|candidate| candidate.is_file());
    match found {
        Some(path) if fs::metadata(&path)?.permissions().mode() & 0o111 == 0 => Err(
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "not executable"),
        ),
        Some(path) => Ok(path),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        )),
    }
}

impl LocalProcesses {
    /// Whether the programs a device runs are there: the agent, then HAProxy. Checked at the
    /// host's start (a warning) and before each spawn (the load balancer's fault), so a
    /// missing program is named rather than found in an agent's log.
    pub fn check_programs(&self) -> Result<(), ProvisionError> {
        for program in [&self.agent, &self.haproxy] {
            resolve(program).map_err(|source| ProvisionError::Program {
                program: program.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

impl Provisioner for LocalProcesses {
    fn management_range(&self) -> Option<crate::net::IpNet> {
        Some(self.addresses)
    }

    fn host_addresses(&self) -> Vec<IpAddr> {
        self.gateway
            .as_ref()
            .map(Gateway::addresses)
            .unwrap_or_default()
    }

    fn provision(&self, driver: &str, spec: &SpawnSpec) -> Result<Provisioned, ProvisionError> {
        if !self.drivers.iter().any(|d| d == driver) {
            return Err(ProvisionError::Unsupported(driver.to_owned()));
        }
        if let Some(why) = &self.unreachable {
            return Err(ProvisionError::Unavailable(why.clone()));
        }
        self.check_programs()?;
        let _busy = self.lock();
        let address = self.free_address()?;
        let handle = hex::encode(random::<6>()?);
        let token = hex::encode(random::<32>()?);
        let dir = self.root.join(&handle);
        fs::create_dir_all(&dir).map_err(ProvisionError::system(format!(
            "cannot create {}",
            dir.display()
        )))?;
        let written = fs::write(dir.join("address"), address.to_string())
            .and_then(|()| fs::write(dir.join("name"), &spec.name))
            .and_then(|()| {
                fs::OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .mode(0o600)
                    .open(dir.join("token"))?
                    .write_all(token.as_bytes())
            });
        if let Err(source) = written {
            self.stop(&dir);
            return Err(ProvisionError::System {
                what: "cannot write the device's files".into(),
                source,
            });
        }
        let started = match self.namespace(&dir) {
            Some(namespace) => namespace
                .create(address.ip())
                .and_then(|()| self.start_agent(&dir)),
            None => self.start_agent(&dir),
        };
        if let Err(error) = started {
            self.stop(&dir);
            return Err(error);
        }
        tracing::info!(handle, %address, name = spec.name.as_str(), "started a local HAProxy device");
        Ok(Provisioned {
            management_url: format!("http://{address}"),
            credentials: Some(Credentials::Bearer { token }),
            handle: Some(handle),
        })
    }

    fn release(&self, handle: &str) -> Result<(), ProvisionError> {
        let dir = self.dir(handle)?;
        let _busy = self.lock();
        self.stop(&dir);
        tracing::info!(handle, "stopped a local HAProxy device");
        Ok(())
    }

    fn adopt(&self, handles: &[String]) {
        let _busy = self.lock();
        for orphan in self.handles().iter().filter(|h| !handles.contains(h)) {
            tracing::warn!(
                handle = orphan.as_str(),
                "stopping a local device no record names"
            );
            self.stop(&self.root.join(orphan));
        }
        self.remove_orphan_namespaces(handles);
        self.revive_locked(handles);
    }

    fn serve(&self, handle: &str, reach: &Reach) -> Result<(), ProvisionError> {
        self.route(handle, reach, false)
    }

    fn mend(&self, handle: &str, reach: &Reach) -> Result<(), ProvisionError> {
        self.route(handle, reach, true)
    }

    fn revive(&self, handles: &[String]) {
        let _busy = self.lock();
        self.revive_locked(handles);
    }

    fn close(&self) {
        let _busy = self.lock();
        self.tidy();
    }
}

impl LocalProcesses {
    fn revive_locked(&self, handles: &[String]) {
        // Members on this machine listen at the gateway: put back if it went.
        if let Some(gateway) = &self.gateway
            && let Err(error) = gateway.ensure()
        {
            tracing::error!(%error, "cannot put the devices' gateway address back");
        }
        for handle in handles {
            let Ok(dir) = self.dir(handle) else { continue };
            if running(&dir.join("agent.pid"), "lbaas-agent").is_some() {
                continue;
            }
            if !dir.join("token").exists() {
                tracing::error!(
                    handle = handle.as_str(),
                    "a local device's folder is gone; it cannot be restarted"
                );
                continue;
            }
            // After a reboot the namespace is gone with the processes: made again.
            let namespace = self.namespace(&dir).filter(|ns| !ns.exists());
            let recreated = match (namespace, read_address(&dir)) {
                (None, _) => Ok(()),
                (Some(namespace), Ok(address)) => {
                    // A new namespace holds none of what was handed over before.
                    self.served_now().remove(handle);
                    namespace.create(address.ip())
                }
                (Some(_), Err(error)) => Err(error),
            };
            match recreated.and_then(|()| self.start_agent(&dir)) {
                Ok(()) => {
                    tracing::info!(handle = handle.as_str(), "restarted a local device's agent")
                }
                Err(error) => {
                    tracing::error!(handle = handle.as_str(), %error, "cannot restart a local device's agent")
                }
            }
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N], ProvisionError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| ProvisionError::System {
        what: "no randomness".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(bytes)
}

fn read_address(dir: &Path) -> Result<SocketAddr, ProvisionError> {
    let text = fs::read_to_string(dir.join("address")).map_err(ProvisionError::system(format!(
        "cannot read the address file in {}",
        dir.display()
    )))?;
    text.trim().parse().map_err(|e| ProvisionError::System {
        what: format!("bad address file in {}", dir.display()),
        source: std::io::Error::other(e),
    })
}

fn read_token(dir: &Path) -> Result<String, ProvisionError> {
    fs::read_to_string(dir.join("token"))
        .map(|t| t.trim().to_owned())
        .map_err(ProvisionError::system("cannot read the device's token"))
}

fn healthy(url: &str, token: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    agent
        .get(url)
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .is_ok()
}

fn log_tail(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    let tail: Vec<&str> = lines.into_iter().rev().collect();
    if tail.is_empty() {
        "(no output)".into()
    } else {
        tail.join(" | ")
    }
}

/// The pid in `pid_file` when that process runs and is `name` (a recycled pid is not).
fn running(pid_file: &Path, name: &str) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    is(pid, name).then_some(pid)
}

/// Whether process `pid` runs the program `name` (and is not a zombie waiting to be reaped).
fn is(pid: u32, name: &str) -> bool {
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(") ")?.1.starts_with('Z')));
    if zombie != Some(false) {
        return false;
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let program = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    Path::new(std::ffi::OsStr::from_bytes(program))
        .file_name()
        .is_some_and(|file| file == name)
}

/// SIGTERM, then SIGKILL if it does not go.
fn terminate(pid: u32, name: &str) {
    let target = Pid::from_raw(pid as i32);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while is(pid, name) {
        if Instant::now() > deadline {
            let _ = kill(target, Signal::SIGKILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The longest path a Unix socket may have (`sun_path` holds 108 bytes with the final NUL).
const SOCKET_PATH_MAX: usize = 107;
/// The longest path HAProxy binds in a device's socket folder: `master.sock`, with what HAProxy
/// adds while it binds (`<path>.<pid>.tmp`, then renamed) for the largest pid Linux hands out.
const LONGEST_SOCKET: &str = "0123456789ab/master.sock.4194304.tmp";

/// The folder of the devices' sockets: `/run/lbaas/<tag>` as root, else
/// `$XDG_RUNTIME_DIR/lbaas/<tag>`, else `<temp>/lbaas-<uid>/<tag>`; whatever the data folder,
/// the sockets' paths stay short. The parent is made if missing; a folder someone else owns or
/// may write is refused, as is one too deep for a socket, in words.
fn socket_root(tag: &str, root: bool) -> Result<PathBuf, String> {
    let base = if root {
        PathBuf::from("/run/lbaas")
    } else {
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
            Some(runtime) => PathBuf::from(runtime).join("lbaas"),
            None => std::env::temp_dir().join(format!("lbaas-{}", nix::unistd::geteuid())),
        }
    };
    let folder = base.join(tag);
    let longest = folder.join(LONGEST_SOCKET);
    if longest.as_os_str().len() > SOCKET_PATH_MAX {
        return Err(format!(
            "the devices' socket folder {} is too deep for HAProxy's sockets: a device's socket \
             is bound as a path of {} bytes, and a Unix socket's path holds at most \
             {SOCKET_PATH_MAX}; set XDG_RUNTIME_DIR or TMPDIR to a shorter folder",
            folder.display(),
            longest.as_os_str().len()
        ));
    }
    private_folder(&base, socket_folder_mode(root)).map_err(|why| unusable(&base, &why))?;
    // This provisioner's own folder is made with its first device, and goes with its last.
    Ok(folder)
}

/// Root's socket folders may be passed through by the device user; the host's own user keeps
/// its folders to itself.
fn socket_folder_mode(root: bool) -> u32 {
    if root { 0o711 } else { 0o700 }
}

fn unusable(dir: &Path, why: &str) -> String {
    format!(
        "the devices' socket folder {} cannot be used: {why}",
        dir.display()
    )
}

/// Makes `dir` with `mode`, or checks the one there is a folder (not a link) of the host's
/// own user that nobody else may write.
fn private_folder(dir: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            return fs::set_permissions(dir, fs::Permissions::from_mode(mode))
                .map_err(|error| error.to_string());
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error.to_string()),
    }
    let found = fs::symlink_metadata(dir).map_err(|error| error.to_string())?;
    if !found.is_dir() {
        return Err("it is not a folder".into());
    }
    if found.uid() != nix::unistd::geteuid().as_raw() {
        return Err(format!(
            "it belongs to user {}, not to the host's",
            found.uid()
        ));
    }
    if found.mode() & 0o022 != 0 {
        return Err(format!(
            "others may write to it (mode {:o})",
            found.mode() & 0o777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The sockets' folder is made private, and one that is a link, or that others may
    /// write, is refused in words.
    #[test]
    fn socket_folders_are_private_or_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().expect("temp dir");
        let made = base.path().join("made");
        super::private_folder(&made, 0o700).expect("a new folder");
        let mode = fs::metadata(&made).expect("made").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        super::private_folder(&made, 0o700).expect("the same folder again");

        let open = base.path().join("open");
        fs::create_dir(&open).expect("open folder");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
        let why = super::private_folder(&open, 0o700).expect_err("others may write");
        assert!(why.contains("others may write"), "{why}");

        let link = base.path().join("link");
        std::os::unix::fs::symlink(&made, &link).expect("symlink");
        let why = super::private_folder(&link, 0o700).expect_err("a link");
        assert!(why.contains("not a folder"), "{why}");
    }

    /// However deep the data folder, a device's sockets are bound on short paths.
    #[test]
    fn socket_paths_do_not_depend_on_the_data_folder() {
        let sockets = super::socket_root("0123abcd", false).expect("a socket folder");
        let longest = sockets.join(super::LONGEST_SOCKET);
        assert!(
            longest.as_os_str().len() <= super::SOCKET_PATH_MAX,
            "{}",
            longest.display()
        );
        let _ = fs::remove_dir(&sockets);
    }

    use super::*;

    /// A device whose agent program is missing fails in plain words: what is missing and how
    /// to say where it is; its folder is not left behind.
    #[test]
    fn a_missing_agent_is_named_with_what_to_do() {
        let root = tempfile::tempdir().expect("temp dir");
        let devices = LocalProcesses::new(
            PathBuf::from("/nonexistent/lbaas-agent"),
            PathBuf::from("haproxy"),
            root.path().join("devices"),
            "127.201.0.0/29".parse().expect("range"),
            9443,
        )
        .expect("a provisioner");
        let error = devices
            .provision("haproxy", &SpawnSpec::default())
            .expect_err("no agent to run");
        assert!(matches!(error, ProvisionError::Program { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with("cannot run /nonexistent/lbaas-agent:")
                && message.contains("install it, or name it with lbaasd serve --agent PATH"),
            "{message}"
        );
        assert!(devices.handles().is_empty(), "a half-made device was left");
        devices.close();
        assert!(!devices.sockets.exists(), "its socket folder was left");
        // HAProxy missing: named, with what to do, before any agent starts.
        let agent = std::env::current_exe().expect("this test binary, standing in for the agent");
        let devices = LocalProcesses::new(
            agent,
            PathBuf::from("/nonexistent/haproxy"),
            root.path().join("devices-2"),
            "127.201.0.8/29".parse().expect("range"),
            9443,
        )
        .expect("a provisioner");
        let message = devices
            .check_programs()
            .expect_err("no haproxy")
            .to_string();
        assert!(
            message.starts_with("cannot run /nonexistent/haproxy:")
                && message.contains("apt-get install haproxy"),
            "{message}"
        );
        let error = devices.release("not-hex").expect_err("no such device");
        assert!(
            matches!(error, ProvisionError::UnknownHandle(_)),
            "{error:?}"
        );
        let error = devices
            .provision("acme-adc", &SpawnSpec::default())
            .expect_err("not spawned here");
        assert!(matches!(error, ProvisionError::Unsupported(_)), "{error:?}");
        devices.close();
    }
}

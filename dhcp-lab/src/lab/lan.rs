//! The real server's network: one LAN (a bridge), `xdhcp run`'s port on it, client ports and
//! a relay agent with a client behind it.
use std::{
    fmt::Write as _,
    fs::{self, File},
    net::Ipv4Addr,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, Result, ensure};
use xdhcp::{
    fastpath::maps::{Counters, FastPathMaps},
    fastpath::{self, AttachMode},
};

use super::{
    clients::{Client, ClientKind},
    netns::{NetNs, TempDir, VethEnd, VethPair, unique_ifname},
    process::require_root,
    xdp::PassProgram,
};

/// The server's address on the lab LAN (10.99.0.0/16): its server identifier.
pub const LAN_SERVER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
pub const LAN_PREFIX: u8 = 16;
const LAN_SERVER_MAC: [u8; 6] = [0x02, 0x58, 0x64, 0, 0, 0x01];
/// A relay agent's address on the LAN ([`Lan::relay`]).
pub const RELAY_UPSTREAM: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// The relay agent's address on the relayed subnet 10.98.0.0/24: the giaddr it stamps.
pub const RELAY_GIADDR: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);

/// What the lab configures `xdhcp run` with.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// 60 s is the shortest lease the fast path grants (below its floor it passes to
    /// userspace), so it is also the shortest that still shows renewals through XDP.
    pub lease_secs: u32,
    pub t1_secs: u32,
    pub t2_secs: u32,
    /// `[fast_path] horizon`: how long the kernel may keep renewing while no daemon runs.
    pub horizon_secs: u32,
    /// The LAN's pool, inside 10.99.0.0/16.
    pub pool: (Ipv4Addr, Ipv4Addr),
    pub fast_path: bool,
    pub attach_mode: AttachMode,
    /// Also serve 10.98.0.0/24, the subnet behind [`Lan::relay`].
    pub relayed: bool,
    /// More of the file, after the subnets (`[police]`, `[limits]`...).
    pub extra: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            lease_secs: 60,
            t1_secs: 10,
            t2_secs: 50,
            horizon_secs: 300,
            pool: (Ipv4Addr::new(10, 99, 0, 100), Ipv4Addr::new(10, 99, 0, 199)),
            fast_path: true,
            attach_mode: AttachMode::Native,
            relayed: false,
            extra: String::new(),
        }
    }
}

impl ServerConfig {
    pub(crate) fn toml(&self, iface: &str, dir: &Path) -> String {
        let mode = format!("{:?}", self.attach_mode).to_lowercase();
        let times = format!(
            "lease_time = {}\nt1 = {}\nt2 = {}\n",
            self.lease_secs, self.t1_secs, self.t2_secs
        );
        let mut s = format!(
            "# Written by the xdhcp lab.\n\
             interfaces = [\"{iface}\"]\n\
             server_id = \"{LAN_SERVER}\"\n\
             state_dir = \"{dir}/state\"\n\
             control_socket = \"{dir}/control.sock\"\n\
             [fast_path]\n\
             enabled = {fast}\n\
             attach_mode = \"{mode}\"\n\
             horizon = {horizon}\n\
             [[subnet]]\n\
             prefix = \"10.99.0.0/{LAN_PREFIX}\"\n\
             pools = [{{ start = \"{start}\", end = \"{end}\" }}]\n\
             {times}",
            dir = dir.display(),
            fast = self.fast_path,
            horizon = self.horizon_secs,
            start = self.pool.0,
            end = self.pool.1,
        );
        if self.relayed {
            let _ = write!(
                s,
                "[[subnet]]\n\
                 prefix = \"10.98.0.0/24\"\n\
                 pools = [{{ start = \"10.98.0.100\", end = \"10.98.0.199\" }}]\n\
                 {times}"
            );
        }
        s + &self.extra
    }
}

/// One L2 segment: a bridge in a switch namespace, the server's veth (in a server namespace,
/// where `xdhcp run` attaches XDP to it) as one port, and [`Port`]s for clients. The bridge
/// end of the server's link runs the pass program, without which a veth drops the frames its
/// peer sends with `XDP_TX`. Drop removes whatever the daemon left pinned, then everything else.
pub struct Lan {
    _pass: PassProgram,
    _link: VethPair,
    pub switch: NetNs,
    pub server: NetNs,
    pub server_if: String,
    ports: AtomicU32,
}

impl Lan {
    pub fn new() -> Result<Self> {
        require_root()?;
        let server = NetNs::new("server")?;
        let switch = NetNs::new("switch")?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        let server_if = unique_ifname('s');
        let uplink = unique_ifname('u');
        let link = VethPair::new(
            &server,
            VethEnd {
                name: server_if.clone(),
                mac: LAN_SERVER_MAC,
                addr: Some((LAN_SERVER, LAN_PREFIX)),
            },
            &switch,
            VethEnd { name: uplink.clone(), mac: [0x02, 0x58, 0x64, 0, 0, 0x02], addr: None },
        )?;
        switch.ip(&["link", "set", &uplink, "master", "br0"])?;
        let pass = PassProgram::attach(&switch, &uplink)?;
        Ok(Self { _pass: pass, _link: link, switch, server, server_if, ports: AtomicU32::new(0) })
    }

    /// A new namespace with a veth on the bridge, its end there configured with `addr` (a
    /// client gets none: its DHCP client configures it).
    pub fn port(&self, tag: &str, addr: Option<(Ipv4Addr, u8)>) -> Result<Port> {
        let [hi, lo] = self.next_port();
        let mac = [0x02, 0x58, 0x64, 0, hi, lo];
        let ns = NetNs::new(tag)?;
        let (sw, iface) = (unique_ifname('b'), unique_ifname('c'));
        let veth = VethPair::new(
            &self.switch,
            VethEnd { name: sw.clone(), mac: [0x02, 0x58, 0x65, 0, hi, lo], addr: None },
            &ns,
            VethEnd { name: iface.clone(), mac, addr },
        )?;
        self.switch.ip(&["link", "set", &sw, "master", "br0"])?;
        Ok(Port { client: None, _veth: veth, ns, iface, mac })
    }

    /// The next port's number on this LAN, as the last two bytes of its MACs (distinct
    /// ports, distinct MACs).
    pub(crate) fn next_port(&self) -> [u8; 2] {
        let n = self.ports.fetch_add(1, Ordering::Relaxed) + 16;
        let [_, _, hi, lo] = n.to_be_bytes();
        [hi, lo]
    }

    /// A relay agent (ISC dhcrelay) in a namespace of its own with one port on the LAN
    /// ([`RELAY_UPSTREAM`]) and one on 10.98.0.0/24 ([`RELAY_GIADDR`]), where a client port
    /// waits; routes both ways go through the agent. Needs [`ServerConfig::relayed`].
    pub fn relay(&self) -> Result<Relay> {
        let bin = Path::new("/usr/sbin/dhcrelay");
        ensure!(bin.is_file(), "dhcrelay is not installed: apt-get install isc-dhcp-relay");
        let agent = self.port("relay", Some((RELAY_UPSTREAM, LAN_PREFIX)))?;
        let [hi, lo] = self.next_port();
        let ns = NetNs::new("relayed")?;
        let (down, iface) = (unique_ifname('r'), unique_ifname('c'));
        let mac = [0x02, 0x58, 0x64, 0, hi, lo];
        let veth = VethPair::new(
            &agent.ns,
            VethEnd {
                name: down.clone(),
                mac: [0x02, 0x58, 0x66, 0, 0, 1],
                addr: Some((RELAY_GIADDR, 24)),
            },
            &ns,
            VethEnd { name: iface.clone(), mac, addr: None },
        )?;
        agent.ns.run(|| Ok(fs::write("/proc/sys/net/ipv4/ip_forward", "1")?))?;
        self.server.ip(&["route", "add", "10.98.0.0/24", "via", &RELAY_UPSTREAM.to_string()])?;
        // onlink: the client has no address yet when the route goes in; it unicasts its
        // renewals to the server identifier through the agent.
        ns.ip(&[
            "route",
            "add",
            "10.99.0.0/16",
            "via",
            &RELAY_GIADDR.to_string(),
            "dev",
            &iface,
            "onlink",
        ])?;
        let dir = TempDir::new("dhcrelay")?;
        let log = dir.path().join("dhcrelay.log");
        let out = File::create(&log)?;
        let child = agent
            .ns
            .exec(bin)
            .args(["-d", "-4", "--no-pid", "-i", &down, "-i", &agent.iface])
            .arg(LAN_SERVER.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .context("start dhcrelay")?;
        Ok(Relay {
            agent: Some(child),
            client: Port { client: None, _veth: veth, ns, iface, mac },
            agent_port: agent,
            log,
            _dir: dir,
        })
    }

    /// The fast path's maps, as the daemon pinned them (also while no daemon runs).
    pub fn fast_path(&self) -> Result<FastPathMaps> {
        FastPathMaps::open_pinned(&fastpath::pin_dir(&self.server_if))
            .with_context(|| format!("open the fast path pinned for {}", self.server_if))
    }

    /// The fast path's counters; all zero before a daemon first attached it.
    pub fn fast_path_stats(&self) -> Result<Counters> {
        if !fastpath::pin_dir(&self.server_if).exists() {
            return Ok(Counters::default());
        }
        self.fast_path()?.stats()
    }

    #[must_use]
    pub fn namespaces(&self) -> Vec<String> {
        vec![self.server.name().to_owned(), self.switch.name().to_owned()]
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // The daemon leaves its fast path pinned for a successor; the lab has none.
        if fastpath::pin_dir(&self.server_if).exists()
            && let Err(e) = fastpath::detach(&self.server_if)
        {
            eprintln!("xdhcp lab: detach {}: {e:#}", self.server_if);
        }
    }
}

/// A namespace on the LAN (or behind a relay) with its veth end `iface`, and the DHCP client
/// running there, if any.
pub struct Port {
    client: Option<Client>,
    _veth: VethPair,
    pub ns: NetNs,
    pub iface: String,
    pub mac: [u8; 6],
}

impl Port {
    /// A port on a link the caller made (`veth`, its end `iface` with `mac` in `ns`).
    pub(crate) fn new(veth: VethPair, ns: NetNs, iface: String, mac: [u8; 6]) -> Self {
        Self { client: None, _veth: veth, ns, iface, mac }
    }

    pub fn start_client(&mut self, kind: ClientKind) -> Result<&mut Client> {
        self.start_client_requesting(kind, &[])
    }

    /// Starts `kind` asking for the options `request` (codes) besides its defaults; its hook
    /// records what it was given ([`Client::hook_calls`]).
    pub fn start_client_requesting(
        &mut self,
        kind: ClientKind,
        request: &[u8],
    ) -> Result<&mut Client> {
        ensure!(self.client.is_none(), "a client already runs on {}", self.iface);
        let c = Client::start_requesting(kind, &self.ns, &self.iface, self.mac, request)?;
        Ok(self.client.insert(c))
    }

    pub fn client(&mut self) -> Result<&mut Client> {
        self.client.as_mut().context("no client started")
    }

    pub fn stop_client(&mut self) -> Result<()> {
        self.client.as_mut().map_or(Ok(()), Client::stop)
    }

    /// The client identifier this port's client sends.
    #[must_use]
    pub fn client_id(&self) -> Option<Vec<u8>> {
        self.client.as_ref().and_then(|c| c.kind().client_id(self.mac))
    }
}

/// ISC dhcrelay between the LAN and 10.98.0.0/24, with a client port behind it.
pub struct Relay {
    agent: Option<Child>,
    pub client: Port,
    agent_port: Port,
    log: PathBuf,
    _dir: TempDir,
}

impl Relay {
    /// The agent's namespace and the relayed client's.
    #[must_use]
    pub fn namespaces(&self) -> Vec<String> {
        vec![self.agent_port.ns.name().to_owned(), self.client.ns.name().to_owned()]
    }

    /// What dhcrelay printed.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

//! A lab of network namespaces in which real DHCP clients (udhcpc, dhclient, dhcpcd) get
//! leases and renew them through the XDP fast path. `xdhcp lab` and the real-client
//! integration tests are built from these pieces.
//!
//! Rules every piece follows:
//! - interfaces are only ever created inside namespaces the lab created (`ip -n NS link add ...
//!   peer ... netns OTHER`), so nothing appears in the caller's namespace, not even briefly;
//! - every resource is a guard that removes itself on drop, also while a panic unwinds, and
//!   namespaces kill whatever still runs in them before they are deleted;
//! - every wait is bounded, and the demo's waits end early on Ctrl-C ([`catch_interrupts`]);
//! - client hook scripts only log and configure the lab interface: nothing touches the host's
//!   resolv.conf, routes or lease databases.
//!
//! Two kinds of lab:
//! - [`Lan`] + [`Daemon`]: the real server, `xdhcp run` in a server namespace, serving a bridge
//!   with clients (and a relay agent) on ports of their own. The demo and the server tests.
//! - [`Segment`]: the fast path alone on a veth pair, the client's lease put in the map by hand
//!   and its first lease from [`Responder`], a deliberately tiny DORA responder that never
//!   answers a renewal. A renewal the client logs there can only have come from XDP.
use std::{
    collections::HashMap,
    ffi::{CString, OsStr},
    fmt,
    fs::{self, File},
    io,
    net::{Ipv4Addr, SocketAddrV4, UdpSocket},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::{
            fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _},
            process::CommandExt as _,
        },
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail, ensure};
use aya::programs::{XdpMode, links::FdLink};
use bytemuck::Zeroable as _;
use dhcp_common::{LeaseEntry, Stat, digest};
use dhcproto::{
    Decodable as _,
    v4::{DhcpOption, Message, MessageType, Opcode, OptionCode},
};

use crate::{
    fastpath::{
        self, AttachMode, LoadOptions, clock,
        maps::{Counters, FastPathMaps},
        subnet::SubnetOptions,
    },
    packet::{self, BROADCAST_MAC, L2},
};

/// How often bounded waits look again.
const POLL: Duration = Duration::from_millis(100);
/// `ip` and friends answer in milliseconds; this only stops a wedged one from hanging us.
const CMD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client gets to exit on SIGTERM before it and its helpers are killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

static SEQ: AtomicU32 = AtomicU32::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn next_seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Processes, waits, interrupts
// ---------------------------------------------------------------------------------------------

extern "C" fn note_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT and SIGTERM into a flag that every lab wait checks, so Ctrl-C unwinds through
/// the guards (and tears the lab down) instead of killing the process with everything in place.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, note_interrupt as *const () as libc::sighandler_t) };
    }
}

/// True once SIGINT/SIGTERM arrived after [`catch_interrupts`].
#[must_use]
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Polls `check` until it returns a value, for at most `timeout`; gives up early on Ctrl-C.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if interrupted() {
            bail!("interrupted while waiting for {what}");
        }
        if Instant::now() >= deadline {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs_f32());
        }
        thread::sleep(POLL);
    }
}

/// Like [`wait_for`] for teardown: Ctrl-C must not cut cleanup short, so it is not checked.
fn settle(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Runs `cmd` to completion within `timeout` and returns its stdout; a nonzero exit is an
/// error carrying its stderr.
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let desc = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {desc}"))?;
    let pid = child.id() as libc::pid_t;
    // wait_with_output drains both pipes while waiting; doing that on a helper thread is what
    // lets the wait itself be bounded.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => {
            let out = out.with_context(|| format!("wait for {desc}"))?;
            if !out.status.success() {
                bail!(
                    "{desc} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(_) => {
            // SAFETY: plain kill(2) of the child we spawned (the helper thread has not reaped it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            bail!("{desc} did not finish within {} s", timeout.as_secs())
        }
    }
}

fn ip(args: &[&str]) -> Result<String> {
    run_cmd(Command::new("ip").args(args), CMD_TIMEOUT)
}

fn require_root() -> Result<()> {
    // SAFETY: geteuid cannot fail.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "the lab creates network namespaces and attaches XDP programs: run it as root"
    );
    Ok(())
}

fn errno(what: &str) -> anyhow::Error {
    anyhow::Error::new(io::Error::last_os_error()).context(what.to_owned())
}

/// Parent pid of every process, from /proc.
fn parents() -> HashMap<i32, i32> {
    let mut m = HashMap::new();
    let Ok(rd) = fs::read_dir("/proc") else { return m };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // The command name may hold spaces and parentheses; the ppid is the second field
        // after the last ')'.
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else { continue };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            m.insert(pid, ppid);
        }
    }
    m
}

/// `root` and all its descendants.
fn process_tree(root: i32) -> Vec<i32> {
    let parents = parents();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// (device, inode) identifying a namespace, as stat(2) sees its nsfs file.
fn ns_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn pid_in_netns(pid: i32, ns: (u64, u64)) -> bool {
    ns_id(Path::new(&format!("/proc/{pid}/ns/net"))) == Some(ns)
}

// ---------------------------------------------------------------------------------------------
// Namespaces, temp dirs, veth pairs
// ---------------------------------------------------------------------------------------------

/// An interface name unique across processes (pid) and threads (sequence), at most 15 bytes:
/// bpffs is global, so the fast path's pin directory (named after the interface) must not
/// collide with a parallel test's, even though the interfaces live in different namespaces.
#[must_use]
pub fn unique_ifname(role: char) -> String {
    let name = format!("x{role}{}n{}", std::process::id(), next_seq());
    debug_assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

/// A network namespace named `xdhcp-<purpose>-<pid>-<n>`, deleted on drop together with
/// whatever still runs in it.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace with `lo` up and IPv6 off (the lab is DHCPv4 only; without
    /// IPv6 the fast path's pass counters show only DHCP and ARP).
    pub fn new(purpose: &str) -> Result<Self> {
        require_root()?;
        let purpose: String =
            purpose.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let name = format!("xdhcp-{purpose}-{}-{}", std::process::id(), next_seq());
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.run(|| {
            for conf in ["all", "default"] {
                fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1")?;
            }
            Ok(())
        })
        .context("switch IPv6 off in the namespace")?;
        Ok(ns)
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's bind mount, for setns(2).
    #[must_use]
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `ip -n NAME args...`, checked and bounded.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs `program` inside the namespace (through `ip netns exec`, which also
    /// gives it a private mount namespace with this namespace's /sys).
    pub fn exec(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Every process whose network namespace is this one.
    #[must_use]
    pub fn pids(&self) -> Vec<i32> {
        let Some(id) = ns_id(&self.path()) else { return vec![] };
        parents().into_keys().filter(|p| pid_in_netns(*p, id)).collect()
    }

    /// Runs `f` as if under `ip netns exec`: in this network namespace, with a /sys that shows
    /// its interfaces and the host's bpffs still at /sys/fs/bpf (pins are global).
    ///
    /// `f` runs on a fresh thread that enters the namespaces and then ends, rather than on the
    /// caller's thread with a restore afterwards: leaving a private mount namespace again would
    /// also leave that thread with its own cwd and root, and a failed restore would leave it in
    /// the wrong namespace. Sockets and BPF links created in `f` stay bound to this namespace
    /// after it returns.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
        let path = self.path();
        thread::scope(|s| {
            s.spawn(|| {
                enter_netns_privately(&path)?;
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
        .with_context(|| format!("in namespace {}", self.name))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Only processes in our own namespace are killed: the lab started all of them.
        for pid in self.pids() {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if !settle(Duration::from_secs(3), || self.pids().is_empty()) {
            eprintln!("xdhcp lab: processes {:?} outlived SIGKILL in {}", self.pids(), self.name);
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("xdhcp lab: could not delete namespace {}: {e:#}", self.name);
        }
    }
}

/// The calling thread joins the namespace at `netns` and a mount namespace of its own with
/// that namespace's sysfs. Only ever called on a thread that ends afterwards.
fn enter_netns_privately(netns: &Path) -> Result<()> {
    let ns = File::open(netns).with_context(|| format!("open {}", netns.display()))?;
    // SAFETY: unshare(2) of this thread's mount namespace; it copies the thread's fs struct
    // first, so other threads keep theirs.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(errno("unshare the mount namespace"));
    }
    // Before anything is mounted: nothing below may propagate to the host's mount table.
    // SAFETY: mount(2) with static C strings / null.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(errno("make the private mount namespace private"));
    }
    // SAFETY: setns(2) with a namespace fd we own.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(errno("setns into the network namespace"));
    }
    // A new sysfs instance describes the network namespace of the thread that mounts it.
    // It hides the host's bpffs mount, so keep a handle on that and bind it back.
    let bpffs = is_bpffs("/sys/fs/bpf")
        .then(|| {
            File::options()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open("/sys/fs/bpf")
        })
        .transpose()
        .context("open /sys/fs/bpf")?;
    // SAFETY: mount(2) with static C strings.
    let rc = unsafe {
        libc::mount(c"sysfs".as_ptr(), c"/sys".as_ptr(), c"sysfs".as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        return Err(errno("mount the namespace's sysfs"));
    }
    if let Some(b) = bpffs {
        let src = CString::new(format!("/proc/self/fd/{}", b.as_raw_fd()))?;
        // SAFETY: bind mount(2) of the bpffs directory our O_PATH fd refers to.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                c"/sys/fs/bpf".as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(errno("bind the host's bpffs back to /sys/fs/bpf"));
        }
    }
    Ok(())
}

fn is_bpffs(path: &str) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let Ok(p) = CString::new(path) else { return false };
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(p.as_ptr(), &raw mut st) }) == 0 && st.f_type == BPF_FS_MAGIC
}

/// A directory under the system temp dir, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<Self> {
        let p = std::env::temp_dir().join(format!(
            "xdhcp-lab-{tag}-{}-{}",
            std::process::id(),
            next_seq()
        ));
        fs::create_dir(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(Self(p))
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One end of a veth pair.
#[derive(Clone, Debug)]
pub struct VethEnd {
    pub name: String,
    pub mac: [u8; 6],
    /// Address and prefix length configured on it, if any.
    pub addr: Option<(Ipv4Addr, u8)>,
}

/// A veth pair between two lab namespaces, deleted on drop.
#[derive(Debug)]
pub struct VethPair {
    pub a: VethEnd,
    pub b: VethEnd,
    a_ns: String,
}

impl VethPair {
    /// Creates `a` in `a_ns` and its peer `b` in `b_ns` in one netlink request issued from
    /// inside `a_ns`, configures the addresses and brings both up.
    pub fn new(a_ns: &NetNs, a: VethEnd, b_ns: &NetNs, b: VethEnd) -> Result<Self> {
        let (amac, bmac) = (packet::fmt_mac(&a.mac), packet::fmt_mac(&b.mac));
        a_ns.ip(&[
            "link",
            "add",
            &a.name,
            "address",
            &amac,
            "type",
            "veth",
            "peer",
            "name",
            &b.name,
            "netns",
            b_ns.name(),
            "address",
            &bmac,
        ])?;
        let pair = Self { a, b, a_ns: a_ns.name().to_owned() };
        for (ns, end) in [(a_ns, &pair.a), (b_ns, &pair.b)] {
            if let Some((addr, prefix)) = end.addr {
                ns.ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", &end.name])?;
            }
            ns.ip(&["link", "set", &end.name, "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both; it fails harmlessly if the namespace already went.
        let _ = ip(&["-n", &self.a_ns, "link", "del", &self.a.name]);
    }
}

// ---------------------------------------------------------------------------------------------
// XDP on both ends
// ---------------------------------------------------------------------------------------------

/// The fast path attached and pinned on an interface of a lab namespace, with its maps open.
/// Drop detaches it and removes the pins.
pub struct FastPath {
    iface: String,
    pub maps: FastPathMaps,
}

/// Removes a pin directory unless disarmed: covers the window between attaching and holding
/// a [`FastPath`].
struct PinGuard<'a>(Option<&'a str>);

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.0
            && fastpath::pin_dir(i).exists()
        {
            let _ = fastpath::detach(i);
        }
    }
}

impl FastPath {
    /// [`fastpath::attach`] (enabled, not waiting for the writer lock) run through
    /// [`NetNs::run`]: attach resolves the name in the thread's network namespace and reads the
    /// MAC for the control entry from /sys/class/net, which shows a namespace's interfaces only
    /// under a sysfs mounted in it.
    pub fn attach(ns: &NetNs, iface: &str, mode: AttachMode) -> Result<Self> {
        fastpath::ensure_bpffs()?;
        let dir = fastpath::pin_dir(iface);
        ensure!(
            !dir.exists(),
            "{} exists already (left by an earlier run on an interface with this name; \
             `xdhcp detach --iface {iface}` removes it): refusing to adopt it",
            dir.display()
        );
        let mut guard = PinGuard(Some(iface));
        ns.run(|| fastpath::attach(iface, mode, true, None, Duration::ZERO))
            .with_context(|| format!("attach the fast path to {iface}"))?;
        let maps = FastPathMaps::open_pinned(&dir)?;
        guard.0 = None;
        Ok(Self { iface: iface.to_owned(), maps })
    }

    #[must_use]
    pub fn iface(&self) -> &str {
        &self.iface
    }

    pub fn stats(&self) -> Result<Counters> {
        self.maps.stats()
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        if let Err(e) = fastpath::detach(&self.iface) {
            eprintln!("xdhcp lab: detach {}: {e:#}", self.iface);
        }
    }
}

/// The do-nothing XDP program on the client end of a veth pair: without an XDP program of its
/// own, a veth drops the frames its peer sends with XDP_TX. Dropping this detaches it.
pub struct PassProgram {
    _link: FdLink,
}

impl PassProgram {
    pub fn attach(ns: &NetNs, iface: &str) -> Result<Self> {
        let link = ns
            .run(|| {
                // A private copy of the object: only its pass program is used, so the maps
                // stay minimal.
                let mut ebpf =
                    fastpath::load(&LoadOptions { leases_max: Some(1), ..LoadOptions::default() })?;
                let prog = fastpath::program(&mut ebpf, fastpath::PASS_PROG)?;
                let id = prog.attach(iface, XdpMode::Driver)?;
                // The link alone keeps the program attached; the object may go.
                let link: FdLink =
                    prog.take_link(id)?.try_into().context("XDP link is not a bpf_link")?;
                Ok(link)
            })
            .with_context(|| format!("attach {} to {iface}", fastpath::PASS_PROG))?;
        Ok(Self { _link: link })
    }
}

// ---------------------------------------------------------------------------------------------
// The first-lease responder
// ---------------------------------------------------------------------------------------------

/// What the [`Responder`] hands out, to one client only.
#[derive(Clone, Debug)]
pub struct ResponderConfig {
    /// The server-side interface (in the namespace the responder is started in).
    pub iface: String,
    pub server_mac: [u8; 6],
    pub server: Ipv4Addr,
    pub prefix: u8,
    /// The only client answered.
    pub client_mac: [u8; 6],
    /// The only address offered.
    pub addr: Ipv4Addr,
    pub lease_secs: u32,
    pub t1_secs: u32,
    pub t2_secs: u32,
}

/// What the responder saw and did.
#[derive(Clone, Debug, Default)]
pub struct ResponderLog {
    pub offers: u32,
    pub acks: u32,
    pub naks: u32,
    /// RENEWING/REBINDING requests that reached userspace: the fast path did not answer them.
    /// The responder never does.
    pub renewals: u32,
    /// Client identifiers (option 61) the client sent, distinct, in order of appearance.
    pub client_ids: Vec<Option<Vec<u8>>>,
    pub ignored: u32,
    pub errors: Vec<String>,
}

/// A minimal DHCP responder for a client's first lease: OFFER for a DISCOVER, ACK for a
/// SELECTING/INIT-REBOOT REQUEST of the one planned address (NAK for any other). It receives
/// on a UDP socket bound to port 67 of its interface and sends complete frames through a
/// packet socket, so checksums are never left to offload and no ARP is needed for a client
/// that has no address yet. Drop stops it.
pub struct Responder {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ResponderLog>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Responder {
    pub fn start(ns: &NetNs, cfg: ResponderConfig) -> Result<Self> {
        let iface = cfg.iface.clone();
        let (udp, raw, ifindex) =
            ns.run(|| open_responder_sockets(&iface)).context("open the responder's sockets")?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(ResponderLog::default()));
        let (s, l) = (stop.clone(), log.clone());
        let thread = thread::Builder::new()
            .name(format!("responder-{}", cfg.iface))
            .spawn(move || responder_loop(&cfg, &udp, &raw, ifindex, &s, &l))?;
        Ok(Self { stop, log, thread: Some(thread) })
    }

    #[must_use]
    pub fn log(&self) -> ResponderLog {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The loop wakes at least every POLL (its receive timeout).
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_responder_sockets(iface: &str) -> Result<(UdpSocket, OwnedFd, i32)> {
    let name = CString::new(iface)?;
    // SAFETY: if_nametoindex reads a C string we own.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    ensure!(ifindex != 0, "no interface {iface} in this namespace");
    // SAFETY: socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno("UDP socket"));
    }
    let udp_fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // Bound to the device before bind(2): several responders (one per lab segment) then share
    // port 67 in one namespace.
    // SAFETY: setsockopt(2) with pointers to live values and their lengths.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.as_bytes().len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(errno("SO_BINDTODEVICE"));
    }
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(errno("SO_REUSEADDR"));
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: dhcp_common::bootp::SERVER_PORT.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: bind(2) with a sockaddr_in we own and its size.
    let rc = unsafe {
        libc::bind(fd, (&raw const sin).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t)
    };
    if rc != 0 {
        return Err(errno("bind UDP port 67"));
    }
    let udp = UdpSocket::from(udp_fd);
    udp.set_read_timeout(Some(POLL))?;
    // Protocol 0: a send-only packet socket, it never queues received frames.
    // SAFETY: socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno("packet socket"));
    }
    let raw = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((udp, raw, ifindex as i32))
}

fn responder_loop(
    cfg: &ResponderConfig,
    udp: &UdpSocket,
    raw: &OwnedFd,
    ifindex: i32,
    stop: &AtomicBool,
    log: &Mutex<ResponderLog>,
) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::SeqCst) {
        let n = match udp.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                lock(log).errors.push(format!("receive: {e}"));
                return;
            }
        };
        let Some(frame) = answer(cfg, &buf[..n], &mut lock(log)) else { continue };
        if let Err(e) = send_frame(raw, ifindex, &frame) {
            lock(log).errors.push(format!("send: {e}"));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The reply frame for one request, if it gets one.
fn answer(cfg: &ResponderConfig, payload: &[u8], log: &mut ResponderLog) -> Option<Vec<u8>> {
    let Ok(req) = Message::from_bytes(payload) else {
        log.ignored += 1;
        return None;
    };
    if req.opcode() != Opcode::BootRequest || req.chaddr() != cfg.client_mac {
        log.ignored += 1;
        return None;
    }
    let client_id = match req.opts().get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) => Some(id.clone()),
        _ => None,
    };
    if !log.client_ids.contains(&client_id) {
        log.client_ids.push(client_id.clone());
    }
    let requested = match req.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(a)) => Some(*a),
        _ => None,
    };
    let server_id = match req.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
        _ => None,
    };
    let kind = match req.opts().msg_type() {
        Some(MessageType::Discover) => {
            log.offers += 1;
            MessageType::Offer
        }
        Some(MessageType::Request) => match (requested, server_id) {
            // ciaddr and neither option: RENEWING or REBINDING, the fast path's job.
            (None, None) if !req.ciaddr().is_unspecified() => {
                log.renewals += 1;
                return None;
            }
            (Some(_), Some(s)) if s != cfg.server => {
                log.ignored += 1;
                return None;
            }
            (Some(a), _) if a == cfg.addr => {
                log.acks += 1;
                MessageType::Ack
            }
            _ => {
                log.naks += 1;
                MessageType::Nak
            }
        },
        _ => {
            log.ignored += 1;
            return None;
        }
    };
    Some(reply_frame(cfg, &req, kind, client_id))
}

fn prefix_mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// OFFER/ACK/NAK for `req`, broadcast: a client without an address accepts that in every
/// state, whatever it put in the broadcast flag.
fn reply_frame(
    cfg: &ResponderConfig,
    req: &Message,
    kind: MessageType,
    client_id: Option<Vec<u8>>,
) -> Vec<u8> {
    let yiaddr = if kind == MessageType::Nak { Ipv4Addr::UNSPECIFIED } else { cfg.addr };
    let mut m = Message::new_with_id(
        req.xid(),
        Ipv4Addr::UNSPECIFIED,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        req.giaddr(),
        req.chaddr(),
    );
    m.set_opcode(Opcode::BootReply);
    m.set_flags(req.flags());
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    o.insert(DhcpOption::ServerIdentifier(cfg.server));
    if kind != MessageType::Nak {
        o.insert(DhcpOption::AddressLeaseTime(cfg.lease_secs));
        o.insert(DhcpOption::Renewal(cfg.t1_secs));
        o.insert(DhcpOption::Rebinding(cfg.t2_secs));
        o.insert(DhcpOption::SubnetMask(prefix_mask(cfg.prefix)));
    }
    // RFC 6842: echo the client identifier.
    if let Some(id) = client_id {
        o.insert(DhcpOption::ClientIdentifier(id));
    }
    packet::udp_frame(
        &L2 { dst: BROADCAST_MAC, src: cfg.server_mac, vlans: vec![] },
        SocketAddrV4::new(cfg.server, dhcp_common::bootp::SERVER_PORT),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, dhcp_common::bootp::CLIENT_PORT),
        &packet::encode(&m),
    )
}

fn send_frame(raw: &OwnedFd, ifindex: i32, frame: &[u8]) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll; the fields that matter are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: sendto(2) of a buffer we own to a sockaddr_ll we own.
    let n = unsafe {
        libc::sendto(
            raw.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

// ---------------------------------------------------------------------------------------------
// Real clients
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ClientKind {
    /// busybox udhcpc (Debian package udhcpc).
    Udhcpc,
    /// ISC dhclient (Debian package isc-dhcp-client).
    Dhclient,
    /// dhcpcd (Debian package dhcpcd-base in bookworm, dhcpcd in later releases).
    Dhcpcd,
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ClientKind {
    pub const ALL: [ClientKind; 3] = [ClientKind::Udhcpc, ClientKind::Dhclient, ClientKind::Dhcpcd];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Udhcpc => "udhcpc",
            ClientKind::Dhclient => "dhclient",
            ClientKind::Dhcpcd => "dhcpcd",
        }
    }

    /// The Debian package that installs the client.
    #[must_use]
    pub fn package(self) -> &'static str {
        match self {
            ClientKind::Udhcpc => "udhcpc",
            ClientKind::Dhclient => "isc-dhcp-client",
            ClientKind::Dhcpcd => "dhcpcd-base (bookworm; dhcpcd in later releases)",
        }
    }

    /// The client's binary, or an error naming the package to install.
    pub fn locate(self) -> Result<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
            .map(|d| d.join(self.name()))
            .find(|p| p.is_file())
            .with_context(|| {
                format!("{} is not installed: apt-get install {}", self.name(), self.package())
            })
    }

    /// The client identifier (option 61 value) this client sends as the lab runs it:
    /// udhcpc's default and the `clientid` the lab configures for dhcpcd are type 1 + MAC;
    /// dhclient sends none by default.
    #[must_use]
    pub fn client_id(self, mac: [u8; 6]) -> Option<Vec<u8>> {
        match self {
            ClientKind::Udhcpc | ClientKind::Dhcpcd => Some([&[1u8][..], &mac].concat()),
            ClientKind::Dhclient => None,
        }
    }

    /// What the hook script logs: the reason and the address and lease of the ACK.
    fn hook_vars(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ClientKind::Udhcpc => ("$1", "$ip", "$lease"),
            ClientKind::Dhclient | ClientKind::Dhcpcd => {
                ("$reason", "$new_ip_address", "$new_dhcp_lease_time")
            }
        }
    }

    fn hook_script(self, log: &Path, iface: &str) -> String {
        let (reason, addr, lease) = self.hook_vars();
        // dhcpcd configures the address itself (re-adding it would drop its lifetimes);
        // udhcpc and dhclient leave it to the script, and need it to unicast their renewals.
        let configure = match self {
            ClientKind::Udhcpc => format!("ip addr replace \"$a/$mask\" dev '{iface}'"),
            ClientKind::Dhclient => {
                format!("ip addr replace \"$a/$new_subnet_mask\" dev '{iface}'")
            }
            ClientKind::Dhcpcd => ":".to_owned(),
        };
        format!(
            "#!/bin/sh\n\
             # Written by the xdhcp lab. It only logs and configures the lab interface: no\n\
             # resolv.conf, no routes. dhclient clears the environment, hence PATH and the\n\
             # baked-in paths.\n\
             PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
             r=\"{reason}\" a=\"{addr}\" l=\"{lease}\"\n\
             echo \"$(date +%s.%N) reason=$r ip=$a lease=$l\" >> '{log}'\n\
             case \"$r\" in\n\
             bound|renew|BOUND|RENEW|REBIND|REBOOT) [ -n \"$a\" ] && {configure} ;;\n\
             esac\n\
             exit 0\n",
            log = log.display(),
        )
    }
}

/// The classes of hook call the lab cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A lease from INIT or INIT-REBOOT (udhcpc `bound`, dhclient/dhcpcd `BOUND`, `REBOOT`).
    Bound,
    /// An ACK in RENEWING state (udhcpc reports REBINDING ACKs as `renew` too).
    Renew,
    /// An ACK in REBINDING state.
    Rebind,
    Other,
}

/// One line of a client's hook log.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientEvent {
    /// Wall clock, seconds since the epoch.
    pub at: f64,
    pub reason: String,
    pub kind: EventKind,
    pub ip: Option<Ipv4Addr>,
    pub lease_secs: Option<u32>,
}

impl ClientEvent {
    fn parse(line: &str) -> Option<Self> {
        let mut it = line.split_whitespace();
        let at = it.next()?.parse().ok()?;
        let mut f: HashMap<&str, &str> = HashMap::new();
        for kv in it {
            let (k, v) = kv.split_once('=')?;
            f.insert(k, v);
        }
        let reason = f.get("reason").copied().unwrap_or_default().to_owned();
        let kind = match reason.as_str() {
            "bound" | "BOUND" | "REBOOT" => EventKind::Bound,
            "renew" | "RENEW" => EventKind::Renew,
            "REBIND" => EventKind::Rebind,
            _ => EventKind::Other,
        };
        Some(Self {
            at,
            reason,
            kind,
            ip: f.get("ip").and_then(|s| s.parse().ok()),
            lease_secs: f.get("lease").and_then(|s| s.parse().ok()),
        })
    }

    #[must_use]
    pub fn is_renewal(&self) -> bool {
        matches!(self.kind, EventKind::Renew | EventKind::Rebind)
    }
}

/// A real DHCP client running in a lab namespace with a generated hook script; its hook log,
/// configuration and output live in a temp dir that goes with it. Drop stops it.
pub struct Client {
    kind: ClientKind,
    iface: String,
    netns: PathBuf,
    netns_name: String,
    child: Option<Child>,
    started: SystemTime,
    log: PathBuf,
    output: PathBuf,
    dir: TempDir,
}

impl Client {
    /// Starts `kind` on `iface` (which has MAC `mac`) in `ns`.
    pub fn start(kind: ClientKind, ns: &NetNs, iface: &str, mac: [u8; 6]) -> Result<Self> {
        let bin = kind.locate()?;
        let dir = TempDir::new(kind.name())?;
        let d = dir.path();
        let log = d.join("events.log");
        let output = d.join("client.out");
        let hook = d.join("hook");
        ensure!(
            !hook.to_string_lossy().contains('\''),
            "temp dir {} cannot be quoted in a script",
            d.display()
        );
        fs::write(&hook, kind.hook_script(&log, iface))?;
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755))?;
        File::create(&log)?;
        let mut cmd = match kind {
            ClientKind::Udhcpc => {
                // -T 2: the broadcast retry after an unanswered unicast renewal (see
                // [`Timing`]) comes 2 s later instead of 3.
                let mut c = ns.exec(&bin);
                c.args(["-f", "-i", iface, "-t", "5", "-T", "2", "-s"]).arg(&hook);
                c
            }
            ClientKind::Dhclient => {
                // An own (empty) configuration, so /etc/dhcp/dhclient.conf plays no part.
                let conf = d.join("dhclient.conf");
                fs::write(&conf, "# xdhcp lab: dhclient's defaults only.\n")?;
                let mut c = ns.exec(&bin);
                c.args(["-4", "-d", "-v", "-cf"])
                    .arg(&conf)
                    .arg("-sf")
                    .arg(&hook)
                    .arg("-lf")
                    .arg(d.join("dhclient.leases"))
                    .arg("-pf")
                    .arg(d.join("dhclient.pid"))
                    .arg(iface);
                c
            }
            ClientKind::Dhcpcd => {
                let conf = d.join("dhcpcd.conf");
                fs::write(
                    &conf,
                    format!(
                        "# xdhcp lab: nothing from /etc/dhcpcd.conf; the lab's hook is the only script.\n\
                         script {}\n\
                         nohook resolv.conf, ntp.conf, timesyncd.conf, hostname\n\
                         clientid 01:{}\n\
                         ipv4only\n\
                         noipv4ll\n\
                         # No ARP probe of the offered address: it would delay BOUND by seconds.\n\
                         noarp\n\
                         nodelay\n",
                        hook.display(),
                        packet::fmt_mac(&mac),
                    ),
                )?;
                // `ip netns exec` gives the client a mount namespace of its own (slave, so
                // nothing propagates back): tmpfs over /run and /var/lib/dhcpcd keeps dhcpcd's
                // pid file, control socket, DUID and lease database out of the host's.
                let mut c = ns.exec("/bin/sh");
                c.arg("-c")
                    .arg(
                        "set -e; mount -t tmpfs xdhcp-lab /run; \
                         d=/var/lib/dhcpcd; [ -d \"$d\" ] || d=/var/lib; \
                         mount -t tmpfs xdhcp-lab \"$d\"; \
                         exec \"$1\" -4 -B -d -f \"$2\" \"$3\"",
                    )
                    .arg("sh")
                    .arg(&bin)
                    .arg(&conf)
                    .arg(iface);
                c
            }
        };
        let out = File::create(&output)?;
        // Own process group: a Ctrl-C on the terminal reaches only the lab, which then stops
        // the clients itself, in order.
        cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).process_group(0);
        let child = cmd.spawn().with_context(|| format!("start {}", kind.name()))?;
        Ok(Self {
            kind,
            iface: iface.to_owned(),
            netns: ns.path(),
            netns_name: ns.name().to_owned(),
            child: Some(child),
            started: SystemTime::now(),
            log,
            output,
            dir,
        })
    }

    #[must_use]
    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    #[must_use]
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The temp dir with the hook, its log, the configuration and the client's output.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Seconds between starting the client and `e`.
    #[must_use]
    pub fn elapsed_at(&self, e: &ClientEvent) -> f64 {
        e.at - self.started.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
    }

    /// Every hook call so far.
    #[must_use]
    pub fn events(&self) -> Vec<ClientEvent> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(ClientEvent::parse)
            .collect()
    }

    /// The first lease, then every renewal after it.
    #[must_use]
    pub fn lease_history(&self) -> (Option<ClientEvent>, Vec<ClientEvent>) {
        let ev = self.events();
        let Some(i) = ev.iter().position(|e| e.kind == EventKind::Bound) else {
            return (None, vec![]);
        };
        let renewals = ev[i + 1..].iter().filter(|e| e.is_renewal()).cloned().collect();
        (Some(ev[i].clone()), renewals)
    }

    /// Everything the client printed so far.
    #[must_use]
    pub fn output(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// RENEWING/REBINDING requests the client reports having sent after its first lease, from
    /// its own (verbose) output; each one is a request the fast path should answer. Tied to
    /// the wording of udhcpc 1.35, dhclient 4.4 and dhcpcd 9.
    #[must_use]
    pub fn renewal_requests(&self) -> usize {
        let out = self.output();
        let (bound, sent): (&str, &[&str]) = match self.kind {
            ClientKind::Udhcpc => ("lease of ", &["sending renew to server", "broadcasting renew"]),
            ClientKind::Dhclient => ("DHCPACK", &["DHCPREQUEST"]),
            ClientKind::Dhcpcd => ("leased ", &["sending REQUEST"]),
        };
        out.lines()
            .skip_while(|l| !l.contains(bound))
            .filter(|l| sent.iter().any(|s| l.contains(s)))
            .count()
    }

    /// The last lines of the client's own output.
    #[must_use]
    pub fn output_tail(&self, lines: usize) -> String {
        let s = fs::read_to_string(&self.output).unwrap_or_default();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the client is still running; an error with its output if it exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(c) = &mut self.child
            && let Some(status) = c.try_wait()?
        {
            self.child = None;
            bail!("{} exited ({status}):\n{}", self.kind, self.output_tail(30));
        }
        Ok(())
    }

    fn diagnose(&self, e: anyhow::Error) -> anyhow::Error {
        let ev: Vec<String> = self
            .events()
            .iter()
            .map(|e| {
                format!(
                    "  +{:.1}s {} ip={:?} lease={:?}",
                    self.elapsed_at(e),
                    e.reason,
                    e.ip,
                    e.lease_secs
                )
            })
            .collect();
        e.context(format!(
            "{} on {}: hook log:\n{}\nclient output (last lines):\n{}",
            self.kind,
            self.iface,
            ev.join("\n"),
            self.output_tail(25)
        ))
    }

    /// Waits (bounded) for the first lease.
    pub fn wait_bound(&mut self, timeout: Duration) -> Result<ClientEvent> {
        let what = format!("{} to get a lease", self.kind);
        let r = wait_for(&what, timeout, || {
            self.check_running()?;
            Ok(self.lease_history().0)
        });
        r.map_err(|e| self.diagnose(e))
    }

    /// Waits (bounded) until the client has logged `n` renewals after its first lease, and
    /// returns them all.
    pub fn wait_renewals(&mut self, n: usize, timeout: Duration) -> Result<Vec<ClientEvent>> {
        let what = format!("{} to renew {n} time(s)", self.kind);
        let r = wait_for(&what, timeout, || {
            self.check_running()?;
            let (_, renewals) = self.lease_history();
            Ok((renewals.len() >= n).then_some(renewals))
        });
        r.map_err(|e| self.diagnose(e))
    }

    /// Makes the client give its lease back (DHCPRELEASE) the way an operator would:
    /// `dhclient -r` with the running client's files, SIGUSR2 to udhcpc, SIGALRM to dhcpcd
    /// (what `dhcpcd -k` sends when it cannot reach the control socket). dhclient -r also
    /// stops the running dhclient; the others keep running, without a lease.
    pub fn release(&mut self) -> Result<()> {
        let pid = self.child.as_ref().context("the client is not running")?.id();
        let sig = match self.kind {
            ClientKind::Udhcpc => libc::SIGUSR2,
            ClientKind::Dhcpcd => libc::SIGALRM,
            ClientKind::Dhclient => {
                let d = self.dir.path();
                let bin = self.kind.locate()?;
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.netns_name])
                    .arg(bin)
                    .args(["-4", "-r", "-v", "-cf"])
                    .arg(d.join("dhclient.conf"))
                    .arg("-sf")
                    .arg(d.join("hook"))
                    .arg("-lf")
                    .arg(d.join("dhclient.leases"))
                    .arg("-pf")
                    .arg(d.join("dhclient.pid"))
                    .arg(&self.iface);
                run_cmd(&mut c, CMD_TIMEOUT)?;
                return Ok(());
            }
        };
        // SAFETY: kill(2) of the client we started (ip netns exec execs it, same pid).
        if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
            return Err(errno("signal the client"));
        }
        Ok(())
    }

    /// Stops the client and every process it forked (dhcpcd's privilege-separated helpers):
    /// SIGTERM, then SIGKILL for whatever is left after a grace period. Only processes still
    /// inside the client's namespace are signalled, so a recycled pid is never hit.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let Some(ns) = ns_id(&self.netns) else {
            // The namespace is gone, and with it every process in it.
            let _ = child.wait();
            return Ok(());
        };
        let mine = |pids: &[i32]| -> Vec<i32> {
            pids.iter().copied().filter(|p| pid_in_netns(*p, ns)).collect()
        };
        // Collected before the main process dies: its helpers are reparented then.
        let tree = mine(&process_tree(child.id() as i32));
        for &p in &tree {
            // SAFETY: plain kill(2) of processes this client started.
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
        let exited = settle(STOP_GRACE, || {
            matches!(child.try_wait(), Ok(Some(_))) && mine(&tree).is_empty()
        });
        if !exited {
            for p in mine(&tree) {
                // SAFETY: as above.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        let _ = settle(STOP_GRACE, || matches!(child.try_wait(), Ok(Some(_))));
        ensure!(
            mine(&tree).is_empty() && matches!(child.try_wait(), Ok(Some(_))),
            "{} on {} did not stop",
            self.kind,
            self.iface
        );
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("xdhcp lab: {e:#}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A segment: one client behind its own veth, answered by the fast path
// ---------------------------------------------------------------------------------------------

/// Lease times of the lab.
///
/// The first lease (from the [`Responder`]) is short so that the first renewal comes soon.
/// The fast path grants `lease_secs`, which cannot be below its 60 s floor (shorter grants go
/// to userspace). dhclient (at 3/4 to 1 of T1) and dhcpcd (at T1) then renew every ~10 s.
/// udhcpc ignores T1: it raises leases below 30 s to 30, unicasts a renewal at half of what is
/// left, and if that gets no answer within `-T` (2 s here) and no more than 30 s are left,
/// broadcasts (REBINDING) instead: first renewal at ~17 s, then every ~32 s.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub first_lease_secs: u32,
    pub first_t1_secs: u32,
    pub first_t2_secs: u32,
    /// Lease time put in the map: what XDP's ACKs grant.
    pub lease_secs: u32,
    /// T1/T2 in the subnet's fast-path reply data.
    pub t1_secs: u32,
    pub t2_secs: u32,
    /// How long from now the map's grant horizon reaches.
    pub grant_secs: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            first_lease_secs: 20,
            first_t1_secs: 10,
            first_t2_secs: 17,
            lease_secs: 60,
            t1_secs: 10,
            t2_secs: 50,
            grant_secs: 3600,
        }
    }
}

impl Timing {
    /// A bound for waiting on `n` renewals of `kind`: when they are due, plus room for a
    /// retransmission each and for a loaded machine.
    #[must_use]
    pub fn renewal_timeout(&self, kind: ClientKind, n: usize) -> Duration {
        // udhcpc raises leases below 30 s to 30 and renews at half of what is left.
        let (first, next) = if kind == ClientKind::Udhcpc {
            (self.first_lease_secs.max(30) / 2, self.lease_secs / 2)
        } else {
            (self.first_t1_secs, self.t1_secs)
        };
        let n = n as u64;
        Duration::from_secs(u64::from(first) + u64::from(next) * n.saturating_sub(1) + 5 * n + 10)
    }
}

/// Addresses and names of segment `index` (1..=254).
#[derive(Clone, Debug)]
pub struct SegmentPlan {
    pub kind: ClientKind,
    pub index: u8,
    pub server_if: String,
    pub client_if: String,
    pub server_mac: [u8; 6],
    pub client_mac: [u8; 6],
    pub server: Ipv4Addr,
    /// The address the client is given (by the responder) and renews (through XDP).
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub timing: Timing,
    /// Native unless changed: what `xdhcp attach` picks on veth.
    pub attach_mode: AttachMode,
}

impl SegmentPlan {
    #[must_use]
    pub fn new(index: u8, kind: ClientKind, timing: Timing) -> Self {
        Self {
            kind,
            index,
            server_if: unique_ifname('s'),
            client_if: unique_ifname('c'),
            server_mac: [0x02, 0x58, 0x64, index, 0, 0x01],
            client_mac: [0x02, 0x58, 0x64, index, 0, 0x50],
            server: Ipv4Addr::new(10, 99, index, 1),
            addr: Ipv4Addr::new(10, 99, index, 50),
            prefix: 24,
            timing,
            attach_mode: AttachMode::Native,
        }
    }

    /// The subnet's fast-path reply data: server id, mask, and the lab's T1/T2.
    #[must_use]
    pub fn subnet(&self) -> SubnetOptions {
        SubnetOptions {
            server_id: self.server,
            mask: prefix_mask(self.prefix),
            routers: vec![],
            dns: vec![],
            domain: None,
            t1_secs: self.timing.t1_secs,
            t2_secs: self.timing.t2_secs,
        }
    }

    /// The lease entry for the client, bound with the client identifier it will send.
    pub fn lease(&self) -> Result<LeaseEntry> {
        let digest = self
            .kind
            .client_id(self.client_mac)
            .map(|id| digest::client_id(&id).context("client id too long for the fast path"))
            .transpose()?;
        Ok(LeaseEntry {
            grant_until_ns: clock::grant_until_ns(clock::monotonic_ns(), self.timing.grant_secs),
            client_id_digest: digest.unwrap_or(0),
            lease_secs: self.timing.lease_secs,
            subnet: 0,
            flags: if digest.is_some() { LeaseEntry::F_CLIENT_ID } else { 0 },
            chaddr: self.client_mac,
            ..LeaseEntry::zeroed()
        })
    }

    fn responder(&self) -> ResponderConfig {
        ResponderConfig {
            iface: self.server_if.clone(),
            server_mac: self.server_mac,
            server: self.server,
            prefix: self.prefix,
            client_mac: self.client_mac,
            addr: self.addr,
            lease_secs: self.timing.first_lease_secs,
            t1_secs: self.timing.first_t1_secs,
            t2_secs: self.timing.first_t2_secs,
        }
    }
}

/// One client's part of the lab: its own namespace, a veth pair to the server namespace with
/// the fast path on the server end (subnet reply data set, lease not yet) and the pass program
/// on the client end, and the first-lease responder. Teardown is drop, in field order.
///
/// The client end runs the pass program because in native mode a veth drops the frames its
/// peer sends with XDP_TX unless it runs an XDP program of its own.
pub struct Segment {
    client: Option<Client>,
    responder: Responder,
    _pass: PassProgram,
    pub fast: FastPath,
    _veth: VethPair,
    client_ns: NetNs,
    server_ns: Arc<NetNs>,
    pub plan: SegmentPlan,
}

impl Segment {
    pub fn new(server_ns: &Arc<NetNs>, plan: SegmentPlan) -> Result<Self> {
        let client_ns = NetNs::new(plan.kind.name())?;
        let veth = VethPair::new(
            server_ns,
            VethEnd {
                name: plan.server_if.clone(),
                mac: plan.server_mac,
                addr: Some((plan.server, plan.prefix)),
            },
            &client_ns,
            VethEnd { name: plan.client_if.clone(), mac: plan.client_mac, addr: None },
        )?;
        let mut fast = FastPath::attach(server_ns, &plan.server_if, plan.attach_mode)?;
        fast.maps.set_subnet(0, &plan.subnet().encode()?)?;
        let pass = PassProgram::attach(&client_ns, &plan.client_if)?;
        let responder = Responder::start(server_ns, plan.responder())?;
        Ok(Self {
            client: None,
            responder,
            _pass: pass,
            fast,
            _veth: veth,
            client_ns,
            server_ns: server_ns.clone(),
            plan,
        })
    }

    /// Puts the client's lease in the map, as a server would after binding it.
    pub fn install_lease(&mut self) -> Result<LeaseEntry> {
        let e = self.plan.lease()?;
        self.fast.maps.put_lease(self.plan.addr, &e)?;
        Ok(e)
    }

    pub fn start_client(&mut self) -> Result<&mut Client> {
        ensure!(self.client.is_none(), "the client already runs");
        let c = Client::start(
            self.plan.kind,
            &self.client_ns,
            &self.plan.client_if,
            self.plan.client_mac,
        )?;
        Ok(self.client.insert(c))
    }

    pub fn client(&mut self) -> Result<&mut Client> {
        self.client.as_mut().context("no client started")
    }

    pub fn stop_client(&mut self) -> Result<()> {
        match &mut self.client {
            Some(c) => c.stop(),
            None => Ok(()),
        }
    }

    #[must_use]
    pub fn responder_log(&self) -> ResponderLog {
        self.responder.log()
    }

    pub fn stats(&self) -> Result<Counters> {
        self.fast.stats()
    }

    /// The lease entry as the kernel has it now (XDP stamps it on every ACK).
    #[must_use]
    pub fn lease(&self) -> Option<LeaseEntry> {
        self.fast.maps.lease(self.plan.addr)
    }

    /// The run so far: client events and output, counters since `before`, responder log, map
    /// entry. Call it after [`Segment::stop_client`] for exact numbers.
    pub fn report(&mut self, before: &Counters) -> Result<RenewalReport> {
        let counters = self.stats()?.since(before);
        let responder = self.responder_log();
        let lease = self.lease();
        let plan = self.plan.clone();
        let c = self.client()?;
        let (bound, renewals) = c.lease_history();
        Ok(RenewalReport {
            kind: plan.kind,
            addr: plan.addr,
            bound,
            renewals,
            requests: c.renewal_requests(),
            counters,
            responder,
            lease,
            timing: plan.timing,
            expected_client_id: plan.kind.client_id(plan.client_mac),
        })
    }

    /// Names of the namespaces this segment uses (the server's is shared).
    #[must_use]
    pub fn namespaces(&self) -> [String; 2] {
        [self.server_ns.name().to_owned(), self.client_ns.name().to_owned()]
    }
}

/// What a segment's client did and what the fast path counted, since `before`.
#[derive(Clone, Debug)]
pub struct RenewalReport {
    pub kind: ClientKind,
    pub addr: Ipv4Addr,
    pub bound: Option<ClientEvent>,
    pub renewals: Vec<ClientEvent>,
    /// Renewal requests the client says it sent ([`Client::renewal_requests`]).
    pub requests: usize,
    pub counters: Counters,
    pub responder: ResponderLog,
    pub lease: Option<LeaseEntry>,
    pub timing: Timing,
    pub expected_client_id: Option<Vec<u8>>,
}

impl RenewalReport {
    #[must_use]
    pub fn acks(&self) -> u64 {
        self.counters.get(Stat::Ack)
    }

    /// Everything that contradicts "the client got its first lease from the responder and
    /// every renewal after it from XDP"; empty when the run proves it.
    #[must_use]
    pub fn problems(&self, min_renewals: usize) -> Vec<String> {
        let mut p = Vec::new();
        let t = &self.timing;
        match &self.bound {
            None => p.push("no first lease".to_owned()),
            Some(b) if b.ip != Some(self.addr) || b.lease_secs != Some(t.first_lease_secs) => {
                p.push(format!("first lease {b:?} is not the responder's"));
            }
            Some(_) => {}
        }
        if self.renewals.len() < min_renewals {
            p.push(format!("{} renewal(s), wanted {min_renewals}", self.renewals.len()));
        }
        for r in &self.renewals {
            if r.ip != Some(self.addr) || r.lease_secs != Some(t.lease_secs) {
                p.push(format!("renewal {r:?} does not carry the map's {} s lease", t.lease_secs));
            }
        }
        // Each request XDP answers is one ACK, whether or not the client then takes it.
        if self.acks() != self.requests as u64 {
            p.push(format!(
                "{} XDP ACKs for {} renewal requests the client sent",
                self.acks(),
                self.requests
            ));
        }
        if self.acks() < self.renewals.len() as u64 {
            p.push(format!("{} renewals but only {} XDP ACKs", self.renewals.len(), self.acks()));
        }
        if self.responder.renewals != 0 {
            p.push(format!("{} renewal(s) reached userspace", self.responder.renewals));
        }
        if self.responder.client_ids != [self.expected_client_id.clone()] {
            p.push(format!(
                "client ids seen {:?}, the lease was bound with {:?}",
                self.responder.client_ids, self.expected_client_id
            ));
        }
        if !self.responder.errors.is_empty() {
            p.push(format!("responder errors: {:?}", self.responder.errors));
        }
        match &self.lease {
            Some(l)
                if !self.renewals.is_empty()
                    && (l.renewed_at_ns == 0 || l.renewed_secs != t.lease_secs) =>
            {
                p.push(format!(
                    "the map's entry was not stamped with a {} s XDP grant: {l:?}",
                    t.lease_secs
                ));
            }
            Some(_) => {}
            None => p.push("the lease is gone from the map".to_owned()),
        }
        p
    }
}

// ---------------------------------------------------------------------------------------------
// The real server: one LAN, `xdhcp run`, clients on ports of the LAN
// ---------------------------------------------------------------------------------------------

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
        }
    }
}

impl ServerConfig {
    fn toml(&self, iface: &str, dir: &Path) -> String {
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
            s += &format!(
                "[[subnet]]\n\
                 prefix = \"10.98.0.0/24\"\n\
                 pools = [{{ start = \"10.98.0.100\", end = \"10.98.0.199\" }}]\n\
                 {times}"
            );
        }
        s
    }
}

/// One L2 segment: a bridge in a switch namespace, the server's veth (in a server namespace,
/// where `xdhcp run` attaches XDP to it) as one port, and [`Port`]s for clients. The bridge
/// end of the server's link runs the pass program, without which a veth drops the frames its
/// peer sends with XDP_TX. Drop removes whatever the daemon left pinned, then everything else.
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
        let n = self.ports.fetch_add(1, Ordering::Relaxed) + 16;
        let mac = [0x02, 0x58, 0x64, 0, (n >> 8) as u8, n as u8];
        let ns = NetNs::new(tag)?;
        let (sw, iface) = (unique_ifname('b'), unique_ifname('c'));
        let veth = VethPair::new(
            &self.switch,
            VethEnd {
                name: sw.clone(),
                mac: [0x02, 0x58, 0x65, 0, (n >> 8) as u8, n as u8],
                addr: None,
            },
            &ns,
            VethEnd { name: iface.clone(), mac, addr },
        )?;
        self.switch.ip(&["link", "set", &sw, "master", "br0"])?;
        Ok(Port { client: None, _veth: veth, ns, iface, mac })
    }

    /// A relay agent (ISC dhcrelay) in a namespace of its own with one port on the LAN
    /// ([`RELAY_UPSTREAM`]) and one on 10.98.0.0/24 ([`RELAY_GIADDR`]), where a client port
    /// waits; routes both ways go through the agent. Needs [`ServerConfig::relayed`].
    pub fn relay(&self) -> Result<Relay> {
        let bin = Path::new("/usr/sbin/dhcrelay");
        ensure!(bin.is_file(), "dhcrelay is not installed: apt-get install isc-dhcp-relay");
        let agent = self.port("relay", Some((RELAY_UPSTREAM, LAN_PREFIX)))?;
        let n = self.ports.fetch_add(1, Ordering::Relaxed) + 16;
        let ns = NetNs::new("relayed")?;
        let (down, iface) = (unique_ifname('r'), unique_ifname('c'));
        let mac = [0x02, 0x58, 0x64, 0, (n >> 8) as u8, n as u8];
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
    pub fn start_client(&mut self, kind: ClientKind) -> Result<&mut Client> {
        ensure!(self.client.is_none(), "a client already runs on {}", self.iface);
        let c = Client::start(kind, &self.ns, &self.iface, self.mac)?;
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
        self.client.as_ref().and_then(|c| c.kind.client_id(self.mac))
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

/// How the lab starts `xdhcp run`.
#[derive(Clone, Debug)]
pub enum Launcher {
    /// `EXE --netns NS run --config FILE`: the demo runs the binary it is.
    Exe(PathBuf),
    /// A test binary running itself again with only the test `test` selected, which calls
    /// [`daemon_child`]: the server is then the code the test was built with, whatever state
    /// the separately built `xdhcp` binary is in.
    TestHarness { exe: PathBuf, test: String },
}

const CHILD_CONFIG: &str = "XDHCP_LAB_DAEMON_CONFIG";
const CHILD_NETNS: &str = "XDHCP_LAB_DAEMON_NETNS";

/// The body of the test that [`Launcher::TestHarness`] selects: in a normal test run it
/// returns at once; in the child the lab started, it becomes `xdhcp --netns NS run --config
/// FILE` and ends the process when the server stops.
pub fn daemon_child() {
    let (Some(cfg), Some(ns)) = (std::env::var_os(CHILD_CONFIG), std::env::var_os(CHILD_NETNS))
    else {
        return;
    };
    let r = fastpath::enter_netns(&ns.to_string_lossy())
        .and_then(|()| crate::daemon::run(Path::new(&cfg)));
    if let Err(e) = r {
        eprintln!("xdhcp: {e:#}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// `xdhcp run` as a child process in the LAN's server namespace, with its config, store,
/// control socket and log in a temp dir. It can be killed and started again on the same store
/// and pinned fast path. Drop stops it (SIGTERM, then SIGKILL).
pub struct Daemon {
    child: Option<Child>,
    launcher: Launcher,
    netns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    log: PathBuf,
    /// How many times it was started.
    pub starts: u32,
    dir: TempDir,
}

/// How long a start may take before the daemon answers on its control socket.
const DAEMON_READY: Duration = Duration::from_secs(20);

impl Daemon {
    pub fn start(lan: &Lan, cfg: &ServerConfig, launcher: Launcher) -> Result<Self> {
        let dir = TempDir::new("server")?;
        let config = dir.path().join("xdhcp.toml");
        fs::write(&config, cfg.toml(&lan.server_if, dir.path()))?;
        let mut d = Self {
            child: None,
            launcher,
            netns: lan.server.name().to_owned(),
            config,
            socket: dir.path().join("control.sock"),
            state_dir: dir.path().join("state"),
            log: dir.path().join("xdhcp.log"),
            starts: 0,
            dir,
        };
        d.restart()?;
        Ok(d)
    }

    /// The temp dir with config, store, socket and log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server again (after [`Daemon::kill`]) and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        ensure!(self.child.is_none(), "xdhcp run is still running");
        let mut log = fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        self.starts += 1;
        io::Write::write_all(
            &mut log,
            format!("--- xdhcp lab: start {}\n", self.starts).as_bytes(),
        )?;
        let mut cmd = match &self.launcher {
            Launcher::Exe(exe) => {
                let mut c = Command::new(exe);
                c.args(["--netns", &self.netns, "run", "--config"]).arg(&self.config);
                c
            }
            Launcher::TestHarness { exe, test } => {
                let mut c = Command::new(exe);
                c.args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                    .env(CHILD_CONFIG, &self.config)
                    .env(CHILD_NETNS, &self.netns);
                c
            }
        };
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        // The log is a file, read by people and tests: no terminal colours in it.
        cmd.env("NO_COLOR", "1");
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
        // SAFETY: prctl(2) only, between fork and exec: the server must not outlive the
        // thread that started it (a test killed mid-run), as nothing else would stop it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().context("start xdhcp run")?);
        let r = wait_for("xdhcp run to answer on its control socket", DAEMON_READY, || {
            if let Some(c) = &mut self.child
                && let Some(st) = c.try_wait()?
            {
                self.child = None;
                bail!("xdhcp run exited ({st})");
            }
            Ok(crate::daemon::ctl::request(&self.socket, &crate::daemon::ctl::Request::Stats)
                .ok()
                .map(|_| ()))
        });
        r.map_err(|e| e.context(format!("xdhcp log:\n{}", self.log_tail(30))))
    }

    /// Sends `signal` and waits (bounded) for the server to exit; its exit status.
    pub fn kill(&mut self, signal: libc::c_int) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("xdhcp run is not running")?;
        // SAFETY: kill(2) of our own child, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let mut status = None;
        settle(Duration::from_secs(10), || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        match status {
            Some(s) => Ok(s),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("xdhcp run did not exit on signal {signal} within 10 s")
            }
        }
    }

    /// Whether the server still runs; an error with its log if it exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(c) = &mut self.child
            && let Some(st) = c.try_wait()?
        {
            self.child = None;
            bail!("xdhcp run exited ({st}):\n{}", self.log_tail(30));
        }
        Ok(())
    }

    pub fn ctl(&self, req: &crate::daemon::ctl::Request) -> Result<serde_json::Value> {
        crate::daemon::ctl::request(&self.socket, req)
    }

    /// `xdhcp leases --json`: every lease record the server holds.
    pub fn leases(&self) -> Result<Vec<serde_json::Value>> {
        let v = self.ctl(&crate::daemon::ctl::Request::Leases { addr: None, mac: None })?;
        Ok(v["leases"].as_array().cloned().unwrap_or_default())
    }

    /// The record of `addr`, if the server has one.
    pub fn lease(&self, addr: Ipv4Addr) -> Result<Option<serde_json::Value>> {
        let v = self.ctl(&crate::daemon::ctl::Request::Leases { addr: Some(addr), mac: None })?;
        Ok(v["leases"].as_array().and_then(|a| a.first().cloned()))
    }

    /// `xdhcp stats`.
    pub fn stats(&self) -> Result<serde_json::Value> {
        self.ctl(&crate::daemon::ctl::Request::Stats)
    }

    /// Everything the server logged, over all its starts.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        let s = self.log();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Err(e) = self.kill(libc::SIGTERM)
        {
            eprintln!("xdhcp lab: {e:#}");
        }
    }
}

/// An AF_PACKET socket on a lab interface, for exchanges the real clients cannot be made to
/// do (a DECLINE, an INIT-REBOOT from another network) and for watching the wire.
pub struct RawSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawSocket {
    /// Opens the socket on `iface` in `ns`; it receives every IPv4 frame the interface sees
    /// or sends from then on.
    pub fn open(ns: &NetNs, iface: &str) -> Result<Self> {
        let iface = iface.to_owned();
        ns.run(move || {
            let name = CString::new(iface.as_str())?;
            // SAFETY: if_nametoindex reads a C string we own.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            ensure!(ifindex != 0, "no interface {iface} in this namespace");
            let proto = (libc::ETH_P_IP as u16).to_be();
            // SAFETY: socket(2); the fd is owned right away.
            let fd = unsafe {
                libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto))
            };
            if fd < 0 {
                return Err(errno("packet socket"));
            }
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: all-zero is a valid sockaddr_ll; family, protocol and index are set.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: bind(2) with a sockaddr_ll we own.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const sll).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(errno("bind the packet socket"));
            }
            // A load test's burst must not overflow the default 200 KB.
            let size: libc::c_int = 32 << 20;
            // SAFETY: setsockopt(2) with a live int.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const size).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            let tv = libc::timeval { tv_sec: 0, tv_usec: POLL.as_micros() as libc::suseconds_t };
            // SAFETY: as above.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&raw const tv).cast(),
                    size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(errno("SO_RCVTIMEO"));
            }
            Ok(Self { fd, ifindex: ifindex as i32 })
        })
    }

    pub fn send(&self, frame: &[u8]) -> Result<()> {
        send_frame(&self.fd, self.ifindex, frame).context("send a frame")
    }

    /// The next frame that arrived (not one sent from this interface), waiting at most
    /// [`POLL`]; `None` when none came.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        loop {
            // SAFETY: all-zero is a valid sockaddr_ll for recvfrom to fill.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: recvfrom(2) into buffers we own, with their lengths.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&raw mut sll).cast(),
                    &raw mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e).context("receive a frame"),
                };
            }
            if sll.sll_pkttype != libc::PACKET_OUTGOING {
                return Ok(Some(n as usize));
            }
        }
    }

    /// Frames dropped because the receive queue was full, since the last call.
    pub fn drops(&self) -> u32 {
        // SAFETY: tpacket_stats is plain data; getsockopt fills it.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &raw mut len,
            )
        };
        if rc == 0 { st.tp_drops } else { 0 }
    }

    /// Sends `msg` broadcast from `mac` (no address yet, 0.0.0.0:68) and waits at most
    /// `timeout` for a DHCP reply with the same xid.
    pub fn exchange(
        &self,
        mac: [u8; 6],
        msg: &Message,
        timeout: Duration,
    ) -> Result<Option<packet::Parsed>> {
        self.send(&client_frame(mac, msg))?;
        self.reply_to(msg.xid(), timeout)
    }

    /// The first DHCP reply carrying `xid` within `timeout`.
    pub fn reply_to(&self, xid: u32, timeout: Duration) -> Result<Option<packet::Parsed>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 2048];
        while Instant::now() < deadline {
            let Some(n) = self.recv(&mut buf)? else { continue };
            if let Ok(p) = packet::parse_frame(&buf[..n])
                && p.src_port == dhcp_common::bootp::SERVER_PORT
                && p.msg.opcode() == Opcode::BootReply
                && p.msg.xid() == xid
            {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

/// `msg` as a client without an address broadcasts it.
#[must_use]
pub fn client_frame(mac: [u8; 6], msg: &Message) -> Vec<u8> {
    packet::udp_frame(
        &L2 { dst: BROADCAST_MAC, src: mac, vlans: vec![] },
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, dhcp_common::bootp::CLIENT_PORT),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, dhcp_common::bootp::SERVER_PORT),
        &packet::encode(msg),
    )
}

/// A client message from `mac` with client identifier 1 + MAC, of type `kind`.
#[must_use]
pub fn client_message(xid: u32, mac: [u8; 6], kind: MessageType) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, z, z, z, z, &mac);
    m.set_flags(dhcproto::v4::Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut().insert(DhcpOption::ClientIdentifier([&[1u8][..], &mac].concat()));
    m
}

/// Names in `ip netns list`.
pub fn netns_list() -> Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------------------------

/// Options of `xdhcp lab`.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoOptions {
    /// Client to run (repeatable; default: udhcpc, dhclient and dhcpcd).
    #[arg(long = "client", value_enum)]
    pub clients: Vec<ClientKind>,
    /// Renewals every client must complete through XDP.
    #[arg(long, default_value_t = 2)]
    pub renewals: usize,
    /// Give up (and tear down) after this many seconds.
    #[arg(long, default_value_t = 85)]
    pub timeout_secs: u64,
    /// How the server attaches the fast path to its veth.
    #[arg(long, value_enum, default_value = "native")]
    pub mode: AttachMode,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { clients: vec![], renewals: 2, timeout_secs: 85, mode: AttachMode::Native }
    }
}

/// `xdhcp lab`: a LAN of network namespaces, `xdhcp run` (this binary) serving it with XDP on
/// its veth, and udhcpc, dhclient and dhcpcd each on a port of its own. Every client gets its
/// lease from the server's slow path and renews through XDP; the summary shows the store's
/// leases (from the control socket) beside the fast path's counters. Everything is torn down
/// on return, also on error and Ctrl-C.
pub fn run_demo(opts: &DemoOptions) -> Result<()> {
    require_root()?;
    let mut kinds: Vec<ClientKind> = Vec::new();
    for k in if opts.clients.is_empty() { &ClientKind::ALL[..] } else { &opts.clients[..] } {
        if !kinds.contains(k) {
            kinds.push(*k);
        }
    }
    for k in &kinds {
        k.locate()?;
    }
    ensure!(opts.renewals >= 1, "--renewals must be at least 1");
    catch_interrupts();
    let t0 = Instant::now();
    let mut names = Vec::new();
    let mut pins = String::new();
    let result = demo(opts, &kinds, t0, &mut names, &mut pins);
    let leftover: Vec<String> =
        netns_list().unwrap_or_default().into_iter().filter(|n| names.contains(n)).collect();
    let pinned = !pins.is_empty() && fastpath::pin_dir(&pins).exists();
    if leftover.is_empty() && !pinned {
        println!(
            "[{:5.1}s] torn down: server stopped, {} namespaces deleted, pins removed",
            t0.elapsed().as_secs_f64(),
            names.len()
        );
    } else {
        eprintln!("xdhcp lab: left behind: namespaces {leftover:?}, pins of {pins}: {pinned}");
    }
    if interrupted() {
        bail!("interrupted");
    }
    result
}

fn demo(
    opts: &DemoOptions,
    kinds: &[ClientKind],
    t0: Instant,
    names: &mut Vec<String>,
    pins: &mut String,
) -> Result<()> {
    let deadline = t0 + Duration::from_secs(opts.timeout_secs);
    let at = || t0.elapsed().as_secs_f64();
    let cfg = ServerConfig { attach_mode: opts.mode, ..ServerConfig::default() };
    let lan = Lan::new()?;
    names.extend(lan.namespaces());
    pins.clone_from(&lan.server_if);
    let exe = std::env::current_exe().context("find this program's path")?;
    let daemon = Daemon::start(&lan, &cfg, Launcher::Exe(exe))?;
    println!(
        "[{:5.1}s] xdhcp run (pid {}) serves 10.99.0.0/{LAN_PREFIX} as {LAN_SERVER} on {} in \
         namespace {}, XDP in {} mode; leases {} s, T1 {} s, T2 {} s; store {}",
        at(),
        daemon.pid().unwrap_or(0),
        lan.server_if,
        lan.server.name(),
        format!("{:?}", cfg.attach_mode).to_lowercase(),
        cfg.lease_secs,
        cfg.t1_secs,
        cfg.t2_secs,
        daemon.state_dir.display(),
    );
    let mut daemon = daemon;
    let before = lan.fast_path_stats()?;
    let mut ports = Vec::new();
    for k in kinds {
        let mut p = lan.port(k.name(), None)?;
        names.push(p.ns.name().to_owned());
        p.start_client(*k)?;
        println!(
            "[{:5.1}s] {k}: namespace {}, {} ({}) on the LAN's bridge",
            at(),
            p.ns.name(),
            p.iface,
            packet::fmt_mac(&p.mac)
        );
        ports.push(p);
    }
    let mut shown = vec![0usize; ports.len()];
    loop {
        daemon.check_running()?;
        let acks = lan.fast_path_stats()?.since(&before).get(Stat::Ack);
        let mut done = true;
        for (i, p) in ports.iter_mut().enumerate() {
            let c = p.client()?;
            c.check_running()?;
            let events = c.events();
            for e in &events[shown[i]..] {
                let source = match e.kind {
                    EventKind::Bound => " (xdhcp's slow path)".to_owned(),
                    EventKind::Renew | EventKind::Rebind => {
                        format!(" (XDP ACKs on the server's veth so far: {acks})")
                    }
                    EventKind::Other => String::new(),
                };
                let detail = match (e.ip, e.lease_secs) {
                    (Some(a), Some(l)) => format!(" {a} lease {l} s"),
                    _ => String::new(),
                };
                println!("[{:5.1}s] {}: {}{detail}{source}", at(), c.kind(), e.reason);
            }
            shown[i] = events.len();
            let (bound, renewals) = c.lease_history();
            done &= bound.is_some() && renewals.len() >= opts.renewals;
        }
        if done {
            break;
        }
        ensure!(!interrupted(), "interrupted");
        if Instant::now() >= deadline {
            let mut msg = String::new();
            for p in &mut ports {
                let c = p.client()?;
                let (b, r) = c.lease_history();
                msg += &format!(
                    "\n{}: {}, {} renewal(s); output:\n{}",
                    c.kind(),
                    if b.is_some() { "bound" } else { "no lease" },
                    r.len(),
                    c.output_tail(10)
                );
            }
            bail!(
                "timed out after {} s{msg}\nxdhcp log:\n{}",
                opts.timeout_secs,
                daemon.log_tail(20)
            );
        }
        thread::sleep(POLL);
    }
    for p in &mut ports {
        p.stop_client()?;
    }
    // The events of the last renewals reach the store within a tick of the daemon's loop.
    thread::sleep(Duration::from_millis(300));
    let counters = lan.fast_path_stats()?.since(&before);
    let stats = daemon.stats()?;
    let leases = daemon.leases()?;
    let maps = lan.fast_path()?;
    println!();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let (mut renewals_total, mut requests_total) = (0u64, 0u64);
    for p in &mut ports {
        let mac = p.mac;
        let c = p.client()?;
        let kind = c.kind();
        let (bound, renewals) = c.lease_history();
        let requests = c.renewal_requests();
        renewals_total += renewals.len() as u64;
        requests_total += requests as u64;
        let addr = bound.as_ref().and_then(|b| b.ip);
        let record = leases
            .iter()
            .find(|l| Some(l["address"].as_str()) == Some(addr.map(|a| a.to_string()).as_deref()));
        let entry = addr.and_then(|a| maps.lease(a));
        let p = lease_problems(
            &cfg,
            mac,
            bound.as_ref(),
            &renewals,
            record,
            entry.as_ref(),
            opts.renewals,
        );
        let field = |k: &str| record.map_or("-".to_owned(), |l| json_text(&l[k]));
        rows.push(vec![
            kind.to_string(),
            packet::fmt_mac(&mac),
            addr.map_or("-".into(), |a| a.to_string()),
            field("state"),
            field("expires_in"),
            field("held_for"),
            renewals.len().to_string(),
            requests.to_string(),
            record.and_then(|l| l["cltt"].as_u64()).map_or("-".into(), |t| {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                format!("{} s ago", now.saturating_sub(t))
            }),
            if p.is_empty() { "ok" } else { "FAILED" }.to_owned(),
        ]);
        problems.extend(p.into_iter().map(|p| format!("{kind}: {p}")));
    }
    println!("leases (xdhcp leases, from the control socket) and each client's renewals:");
    print!(
        "{}",
        crate::table::render(
            &[
                "CLIENT",
                "MAC",
                "ADDRESS",
                "STATE",
                "EXPIRES_IN_S",
                "HELD_FOR_S",
                "RENEWALS",
                "REQUESTS",
                "CLTT",
                "VERDICT"
            ],
            &rows
        )
    );
    let xdp_acks = counters.get(Stat::Ack);
    let slow_acks = stats["sent"]["ack"].as_u64().unwrap_or(0);
    let recorded = stats["fast_path_renewals_recorded"].as_u64().unwrap_or(0);
    println!(
        "\nslow path (xdhcp run): {} DISCOVER, {} REQUEST received; {} OFFER, {slow_acks} ACK, \
         {} NAK sent; {} store commits, mean {} us",
        stats["received"]["discover"],
        stats["received"]["request"],
        stats["sent"]["offer"],
        stats["sent"]["nak"],
        stats["store"]["commits"],
        stats["store"]["mean_commit_us"],
    );
    println!(
        "fast path (XDP on {}): {xdp_acks} ACKs for {requests_total} renewal requests the clients \
         sent ({renewals_total} renewals they logged); {recorded} reported to the server, which \
         writes the store only when a lease's committed horizon must move",
        lan.server_if
    );
    let nz: Vec<String> = counters
        .values
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{}={v}", k.name()))
        .collect();
    println!("fast-path counters during the run (nonzero): {}", nz.join(" "));
    if xdp_acks != requests_total {
        problems.push(format!("{xdp_acks} XDP ACKs for {requests_total} renewal requests"));
    }
    if slow_acks != kinds.len() as u64 {
        problems.push(format!(
            "the slow path sent {slow_acks} ACKs for {} first leases: renewals reached userspace",
            kinds.len()
        ));
    }
    if recorded != xdp_acks {
        problems.push(format!("{recorded} of {xdp_acks} XDP renewals reported to the server"));
    }
    if xdp_acks > renewals_total {
        println!(
            "\nmore XDP ACKs than renewals: on veth the ACK to a unicast renewal arrives while \
             udhcpc is still inside send(); it sends from a short-lived socket that then takes \
             the ACK and is closed, and renews with the ACK to its broadcast retry instead"
        );
    }
    ensure!(problems.is_empty(), "the run does not show what it should:\n{}", problems.join("\n"));
    println!(
        "\nevery first lease came from the slow path and was committed to the store; every \
         renewal was answered by XDP (XDP ACKs = renewal requests, no ACK from userspace after \
         the first leases) and reported to the server (CLTT)"
    );
    drop(ports);
    daemon.kill(libc::SIGTERM)?;
    Ok(())
}

/// What contradicts "this client got its lease from the server, the store holds it, and the
/// client's renewals were answered by XDP"; empty when the run proves it.
fn lease_problems(
    cfg: &ServerConfig,
    mac: [u8; 6],
    bound: Option<&ClientEvent>,
    renewals: &[ClientEvent],
    record: Option<&serde_json::Value>,
    entry: Option<&LeaseEntry>,
    min_renewals: usize,
) -> Vec<String> {
    let mut p = Vec::new();
    let Some(b) = bound else { return vec!["no lease".into()] };
    if b.lease_secs != Some(cfg.lease_secs) {
        p.push(format!("first lease {b:?} is not the server's {} s", cfg.lease_secs));
    }
    if renewals.len() < min_renewals {
        p.push(format!("{} renewal(s), wanted {min_renewals}", renewals.len()));
    }
    for r in renewals {
        if r.ip != b.ip || r.lease_secs != Some(cfg.lease_secs) {
            p.push(format!("renewal {r:?} does not renew {:?} for {} s", b.ip, cfg.lease_secs));
        }
    }
    match record {
        Some(l) if l["state"] == "active" && l["mac"] == packet::fmt_mac(&mac) => {
            // The server learns of XDP's renewals from its events: the client's last
            // transaction time is then that of its last renewal. It rounds down to whole
            // seconds, twice (its clock, then the event's age), and the client's hook runs a
            // moment after the ACK: hence the slack.
            let cltt = l["cltt"].as_u64().unwrap_or(0) as f64;
            if let Some(last) = renewals.last()
                && cltt + 3.0 < last.at
            {
                p.push(format!(
                    "the server's CLTT {cltt} predates the last renewal at {}",
                    last.at
                ));
            }
        }
        other => p.push(format!("the server's record is {other:?}")),
    }
    match entry {
        Some(e) if e.chaddr == mac => {}
        other => p.push(format!("the kernel map's entry is {other:?}")),
    }
    p
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_log_lines_parse() {
        let e = ClientEvent::parse("1700000000.25 reason=renew ip=10.99.1.50 lease=60").unwrap();
        assert_eq!(e.kind, EventKind::Renew);
        assert_eq!(e.ip, Some(Ipv4Addr::new(10, 99, 1, 50)));
        assert_eq!(e.lease_secs, Some(60));
        let e = ClientEvent::parse("1700000000.25 reason=PREINIT ip= lease=").unwrap();
        assert_eq!((e.kind, e.ip, e.lease_secs), (EventKind::Other, None, None));
    }

    #[test]
    fn masks_and_names() {
        assert_eq!(prefix_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_mask(0), Ipv4Addr::UNSPECIFIED);
        assert!(unique_ifname('s').len() <= 15);
    }

    #[test]
    fn responder_answers_first_leases_only() {
        let plan = SegmentPlan::new(3, ClientKind::Udhcpc, Timing::default());
        let cfg = plan.responder();
        let mut log = ResponderLog::default();
        let id = ClientKind::Udhcpc.client_id(plan.client_mac);
        let msg = |ciaddr: Ipv4Addr, t: MessageType, requested: Option<Ipv4Addr>| {
            let mut m = Message::new_with_id(
                9,
                ciaddr,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                &plan.client_mac,
            );
            m.opts_mut().insert(DhcpOption::MessageType(t));
            m.opts_mut().insert(DhcpOption::ClientIdentifier(id.clone().unwrap()));
            if let Some(r) = requested {
                m.opts_mut().insert(DhcpOption::RequestedIpAddress(r));
            }
            packet::encode(&m)
        };
        let zero = Ipv4Addr::UNSPECIFIED;
        let offer = answer(&cfg, &msg(zero, MessageType::Discover, None), &mut log).unwrap();
        let p = packet::parse_frame(&offer).unwrap();
        assert!(p.ip_checksum_ok && p.udp_checksum_ok);
        assert_eq!(p.msg.yiaddr(), plan.addr);
        assert_eq!(p.msg.opts().msg_type(), Some(MessageType::Offer));
        let ack =
            answer(&cfg, &msg(zero, MessageType::Request, Some(plan.addr)), &mut log).unwrap();
        assert_eq!(
            packet::parse_frame(&ack).unwrap().msg.opts().msg_type(),
            Some(MessageType::Ack)
        );
        let other = Ipv4Addr::new(10, 99, 3, 77);
        let nak = answer(&cfg, &msg(zero, MessageType::Request, Some(other)), &mut log).unwrap();
        assert_eq!(
            packet::parse_frame(&nak).unwrap().msg.opts().msg_type(),
            Some(MessageType::Nak)
        );
        assert!(answer(&cfg, &msg(plan.addr, MessageType::Request, None), &mut log).is_none());
        assert_eq!((log.offers, log.acks, log.naks, log.renewals), (1, 1, 1, 1));
        assert_eq!(log.client_ids, vec![id]);
    }
}

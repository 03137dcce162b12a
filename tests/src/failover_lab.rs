//! A failover lab: one L2 segment (a bridge in a namespace of its own) with servers and real
//! DHCP clients each in their own namespace, all created for one test and removed on drop.
//!
//! xdhcp servers run inside the test process (one thread each, moved into its namespace) so
//! the test always runs the code it was built with; ISC dhcpd and the clients are processes
//! started with `ip netns exec`. Nothing here touches the host's interfaces: every interface is
//! created inside a namespace this lab made, and only processes it started are signalled.
use std::{
    fs, io,
    net::Ipv4Addr,
    path::PathBuf,
    process::{Child, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use dhcp_lab::lab::{Daemon, Launcher, NetNs, PassProgram, TempDir, unique_ifname};
use serde_json::Value;
use xdhcp::{daemon::ctl, fastpath};

mod audit;
mod clients;

pub use audit::{
    Expected, States, agreed_backup_share, assert_no_isc_reject, assert_no_reject,
    assert_one_address_per_client, assert_pool_counts, binding_state, double_bound, isc_active,
    isc_records, isc_states, lines_about, log_tail, not_free, rejects, rejects_but_crossings,
    wait_isc_settled, wait_pair_settled, wait_settled, xdhcp_diag, xdhcp_states,
};
pub use clients::{
    Answer, Crafted, Perfdhcp, Renewal, Renewers, StopOnDrop, decline, dora, dora_from, extend,
    perf_summary, release,
};

/// The failover tests' wait: an error (a control socket not answering while its server
/// restarts) counts as "not yet", and the last one is reported if time runs out.
pub use dhcp_lab::lab::retry_for as wait_for;

static SEQ: AtomicU32 = AtomicU32::new(0);

fn seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Every line the in-process xdhcp servers logged, failover at debug level (each message sent
/// and received, with its acks and rejects), prefixed by the logging thread's name: the
/// server's namespace (see [`Xdhcp::log_text`]).
static LOG: Mutex<String> = Mutex::new(String::new());

/// Appends to [`LOG`].
struct LogCapture;

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Installs the tracing subscriber before the daemon installs its own: the usual log through
/// the test harness (shown for failing tests only; threads inherit the test's output capture),
/// and a copy of it, failover at debug level, in [`LOG`].
fn init_logging() {
    use tracing_subscriber::{
        EnvFilter, Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let shown = tracing_subscriber::fmt::layer().with_test_writer().with_filter(filter);
    let kept = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_thread_names(true)
        .with_writer(|| LogCapture)
        .with_filter(EnvFilter::new("info,xdhcp::failover=debug"));
    let _ = tracing_subscriber::registry().with(shown).with(kept).try_init();
}

/// One end of the segment, inside `ns`.
pub struct Port {
    pub ns: NetNs,
    pub iface: String,
    pub mac: [u8; 6],
    /// The namespace's ports on other segments ([`Segment::port_into`]): `IFACE2`, `IFACE3`...
    /// of a server's config.
    pub more: Vec<String>,
}

impl Port {
    /// Makes `peer` unreachable from this port's namespace (a blackhole route), while DHCP
    /// clients on the segment still reach it: a partition of the failover link only. The
    /// kernel here has neither nftables nor tc actions, and a route is all it takes.
    pub fn cut_from(&self, peer: Ipv4Addr) -> Result<()> {
        self.ns.ip(&["route", "add", "blackhole", &format!("{peer}/32")]).map(drop)
    }

    /// Undoes [`Port::cut_from`].
    pub fn heal_to(&self, peer: Ipv4Addr) -> Result<()> {
        self.ns.ip(&["route", "del", "blackhole", &format!("{peer}/32")]).map(drop)
    }
}

/// The segment: a bridge in its own namespace. Ports are veth pairs whose far end is in a
/// namespace of the port's own.
pub struct Segment {
    pub sw: NetNs,
    /// Keeps the pass program on the bridge ports: a frame `XDP_TX` sends out of a veth is only
    /// taken by a peer running XDP itself.
    pass: Vec<PassProgram>,
}

impl Segment {
    pub fn new() -> Result<Self> {
        let sw = NetNs::new("sw")?;
        sw.ip(&["link", "add", "br0", "type", "bridge"])?;
        sw.ip(&["link", "set", "br0", "up"])?;
        Ok(Segment { sw, pass: Vec::new() })
    }

    /// A port for a server (`addr`/24 configured) or a client (`addr` None), with `mac`.
    pub fn port(&mut self, tag: &str, mac: [u8; 6], addr: Option<Ipv4Addr>) -> Result<Port> {
        let ns = NetNs::new(tag)?;
        let iface = self.plug(&ns, mac, addr)?;
        Ok(Port { ns, iface, mac, more: Vec::new() })
    }

    /// A port on this segment for the namespace of `port` (which is on another segment): a
    /// server on two segments, `addr`/24 configured, `mac`. Its interface is the last of
    /// `port.more`, which an xdhcp config names `IFACE2`, `IFACE3`...
    pub fn port_into(&mut self, port: &mut Port, mac: [u8; 6], addr: Ipv4Addr) -> Result<()> {
        let iface = self.plug(&port.ns, mac, Some(addr))?;
        port.more.push(iface);
        Ok(())
    }

    /// As [`Segment::port_into`], the interface's name returned instead of kept in the port:
    /// for a server the test hands its interfaces itself (dhcpd's command line).
    pub fn attach(&mut self, port: &Port, mac: [u8; 6], addr: Ipv4Addr) -> Result<String> {
        self.plug(&port.ns, mac, Some(addr))
    }

    /// A veth from the bridge into `ns`, with `mac` and `addr`, both ends up: the name of its
    /// end in `ns`.
    fn plug(&mut self, ns: &NetNs, mac: [u8; 6], addr: Option<Ipv4Addr>) -> Result<String> {
        let (a, b) = (unique_ifname('a'), unique_ifname('b'));
        self.sw.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
        self.sw.ip(&["link", "set", &b, "netns", ns.name()])?;
        self.sw.ip(&["link", "set", &a, "master", "br0"])?;
        self.sw.ip(&["link", "set", &a, "up"])?;
        let m = xdhcp::packet::fmt_mac(&mac);
        ns.ip(&["link", "set", &b, "address", &m])?;
        if let Some(addr) = addr {
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", &b])?;
        }
        ns.ip(&["link", "set", &b, "up"])?;
        self.pass.push(PassProgram::attach(&self.sw, &a)?);
        Ok(b)
    }
}

/// An xdhcp server in `port`'s namespace: running in this process on a thread of its own
/// ([`Xdhcp::start`]), or as a child process that a signal can kill ([`Xdhcp::spawn`]).
pub struct Xdhcp {
    pub socket: PathBuf,
    /// Its port's interfaces ([`Port::iface`] and [`Port::more`]), where its fast path is.
    ifaces: Vec<String>,
    /// Its port's namespace, the name of the thread it runs on.
    ns: String,
    run: Run,
}

enum Run {
    Thread {
        dir: TempDir,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<thread::JoinHandle<Result<()>>>,
    },
    /// `xdhcp run` as a child process, its log in its directory.
    Process(Daemon),
}

/// What a child process server logs: failover at debug level, as [`LOG`] keeps it for the
/// servers in this process.
const CHILD_LOG: &str = "info,xdhcp::failover=debug";

/// The name of the test that [`Xdhcp::spawn`]'s child process runs: every test file that
/// spawns servers has it, calling [`dhcp_lab::lab::daemon_child`].
pub const DAEMON_TEST: &str = "daemon_process";

/// Writes `config` into `dir` as `xdhcp.toml`, `STATE`, `SOCKET` and `IFACE` replaced by the
/// paths in `dir` and `port`'s interface (`IFACE2`, `IFACE3`... by its [`Port::more`]); the
/// config file and the control socket's path.
fn write_config(port: &Port, config: &str, dir: &TempDir) -> Result<(PathBuf, PathBuf)> {
    let socket = dir.path().join("control.sock");
    // The last run's socket file would pass for this one's.
    let _ = fs::remove_file(&socket);
    let mut text = config
        .replace("STATE", &dir.path().join("state").display().to_string())
        .replace("SOCKET", &socket.display().to_string());
    // The highest first: IFACE2 would be taken for IFACE followed by a 2.
    for (k, iface) in port.more.iter().enumerate().rev() {
        text = text.replace(&format!("IFACE{}", k + 2), iface);
    }
    let text = text.replace("IFACE", &port.iface);
    let file = dir.path().join("xdhcp.toml");
    fs::write(&file, text)?;
    Ok((file, socket))
}

fn port_ifaces(port: &Port) -> Vec<String> {
    std::iter::once(&port.iface).chain(&port.more).cloned().collect()
}

impl Xdhcp {
    /// Starts `xdhcp run` with `config` (TOML; `STATE` and `SOCKET` in it are replaced by
    /// paths in a fresh directory).
    pub fn start(port: &Port, config: &str) -> Result<Self> {
        Self::start_in(port, config, TempDir::new("xdhcp")?)
    }

    /// Starts `xdhcp run` in `dir`: a stopped server's (see [`Xdhcp::stop_keep`]) comes back
    /// with its lease store and failover state.
    pub fn start_in(port: &Port, config: &str, dir: TempDir) -> Result<Self> {
        let (file, socket) = write_config(port, config, &dir)?;
        init_logging();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ns = port.ns.name().to_owned();
        // The daemon's runtime runs on this one thread: its name tells its log lines apart.
        let thread = thread::Builder::new().name(ns.clone()).spawn(move || {
            fastpath::enter_netns(&ns)?;
            xdhcp::daemon::run_until(&file, Some(rx))
        })?;
        let x = Xdhcp {
            socket,
            ifaces: port_ifaces(port),
            ns: port.ns.name().to_owned(),
            run: Run::Thread { dir, stop: Some(tx), thread: Some(thread) },
        };
        wait_for("the control socket", Duration::from_secs(20), || {
            if let Run::Thread { thread: Some(t), .. } = &x.run
                && t.is_finished()
            {
                bail!("xdhcp run ended early");
            }
            Ok(x.socket.exists().then_some(()))
        })?;
        Ok(x)
    }

    /// Starts `xdhcp run` with `config` (as [`Xdhcp::start`]) as a child process: this test
    /// binary run again with only [`DAEMON_TEST`] selected, so the server is the code the
    /// test was built with. It answers on its control socket when this returns.
    pub fn spawn(port: &Port, config: &str) -> Result<Self> {
        let dir = TempDir::new("xdhcp")?;
        let (_, socket) = write_config(port, config, &dir)?;
        let launcher =
            Launcher::TestHarness { exe: std::env::current_exe()?, test: DAEMON_TEST.to_owned() };
        let d = Daemon::start_in(port.ns.name(), dir, launcher, Some(CHILD_LOG))?;
        Ok(Xdhcp {
            socket,
            ifaces: port_ifaces(port),
            ns: port.ns.name().to_owned(),
            run: Run::Process(d),
        })
    }

    /// The child process of [`Xdhcp::spawn`].
    ///
    /// # Panics
    /// For a server running in this process.
    pub fn process(&mut self) -> &mut Daemon {
        match &mut self.run {
            Run::Process(d) => d,
            Run::Thread { .. } => panic!("{} runs in this process, not as a child", self.ns),
        }
    }

    /// What this server logged (every run in its port's namespace), failover at debug level:
    /// each failover message sent and received with its acks and rejects.
    #[must_use]
    pub fn log_text(&self) -> String {
        if let Run::Process(d) = &self.run {
            return d.log();
        }
        let me = format!(" {} ", self.ns);
        let all = LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.lines().filter(|l| l.contains(&me)).fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
    }

    pub fn ask(&self, req: &ctl::Request) -> Result<Value> {
        ctl::request(&self.socket, req)
    }

    pub fn failover(&self) -> Result<Value> {
        self.ask(&ctl::Request::FailoverStatus { relationship: None })
    }

    /// Every lease record the server holds (`xdhcp leases --json`).
    pub fn leases(&self) -> Result<Vec<Value>> {
        dhcp_lab::lab::daemon::all_leases(|r| self.ask(r))
    }

    /// The server's active bindings, address → MAC.
    pub fn active_bindings(&self) -> Result<std::collections::BTreeMap<Ipv4Addr, String>> {
        Ok(self
            .leases()?
            .iter()
            .filter(|l| l["state"] == "active")
            .filter_map(|l| Some((l["address"].as_str()?.parse().ok()?, l["mac"].as_str()?.into())))
            .collect())
    }

    pub fn lease(&self, addr: Ipv4Addr) -> Result<Option<Value>> {
        let v = self.ask(&ctl::Request::Leases(Box::new(ctl::LeaseQuery {
            addr: Some(addr),
            ..Default::default()
        })))?;
        Ok(v["leases"].as_array().and_then(|a| a.first().cloned()))
    }

    /// Waits until this server and its partner are both in NORMAL.
    pub fn wait_normal(&self, timeout: Duration) -> Result<Value> {
        wait_for("failover NORMAL on both sides", timeout, || {
            let v = self.failover()?;
            let normal = v["my_state"] == "normal" && v["partner_state"] == "normal";
            Ok(normal.then_some(v))
        })
    }

    /// Stops the server as a crash would leave its partner (no goodbye on the failover link)
    /// and hands back its directory.
    ///
    /// # Panics
    /// For a child process server (kill and restart it instead: [`Xdhcp::process`]).
    pub fn stop_keep(mut self) -> Result<TempDir> {
        self.stop()?;
        for i in &self.ifaces {
            let _ = fastpath::detach(i);
        }
        match &mut self.run {
            Run::Thread { dir, .. } => Ok(dir.take()),
            Run::Process(_) => panic!("{}: restart a child process server in place", self.ns),
        }
    }

    pub fn stop(&mut self) -> Result<()> {
        let (stop, thread) = match &mut self.run {
            Run::Thread { stop, thread, .. } => (stop, thread),
            Run::Process(d) => {
                // SIGTERM, as systemd stops it (SIGKILL if it does not end within 10 s).
                if d.pid().is_some() {
                    d.kill(libc::SIGTERM)?;
                }
                return Ok(());
            }
        };
        if let Some(s) = stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = thread.take() {
            let end = Instant::now() + Duration::from_secs(10);
            while !t.is_finished() && Instant::now() < end {
                thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("xdhcp run panicked")))?;
            }
        }
        Ok(())
    }
}

impl Drop for Xdhcp {
    fn drop(&mut self) {
        let _ = self.stop();
        // The daemon leaves its fast path pinned for a successor; this one has none.
        for i in &self.ifaces {
            let _ = fastpath::detach(i);
        }
    }
}

/// ISC dhcpd (4.4) in `port`'s namespace, with its own config, lease file and log.
pub struct Dhcpd {
    pub dir: TempDir,
    pub leases: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Dhcpd {
    /// Starts `dhcpd -4 -d -f` on `port` with `conf` and an empty (or `keep`'s) lease file.
    pub fn start(port: &Port, conf: &str, dir: Option<TempDir>) -> Result<Self> {
        Self::start_on(port, &[], conf, dir)
    }

    /// As [`Dhcpd::start`], listening on `more` interfaces of `port`'s namespace too (see
    /// [`Segment::attach`]).
    pub fn start_on(port: &Port, more: &[&str], conf: &str, dir: Option<TempDir>) -> Result<Self> {
        let dir = match dir {
            Some(d) => d,
            None => TempDir::new("dhcpd")?,
        };
        let cf = dir.path().join("dhcpd.conf");
        fs::write(&cf, conf)?;
        let leases = dir.path().join("dhcpd.leases");
        if !leases.exists() {
            fs::write(&leases, "")?;
        }
        let log = dir.path().join("dhcpd.log");
        // A stale pid file makes dhcpd refuse to start: each run gets a fresh one.
        let pf = dir.path().join(format!("dhcpd-{}.pid", seq()));
        let logf = fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = port
            .ns
            .exec("dhcpd")
            .args(["-4", "-d", "-f", "-cf"])
            .arg(&cf)
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(&pf)
            .arg(&port.iface)
            .args(more)
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf)
            .spawn()
            .context("start dhcpd (is isc-dhcp-server installed? cargo xtask setup)")?;
        Ok(Dhcpd { dir, leases, log, child: Some(child) })
    }

    #[must_use]
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    #[must_use]
    pub fn lease_file(&self) -> String {
        fs::read_to_string(&self.leases).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        wait_for(&format!("{needle:?} in dhcpd's log"), timeout, || {
            Ok(self.log_text().contains(needle).then_some(()))
        })
        .with_context(|| format!("dhcpd log:\n{}", tail(&self.log_text(), 40)))
    }

    /// Stops dhcpd (it writes its lease file on every change, so nothing is lost) and hands
    /// back its directory.
    #[must_use]
    pub fn stop(mut self) -> TempDir {
        self.kill();
        self.dir.take()
    }

    /// Kills dhcpd as a crash would (SIGKILL: no SHUTDOWN state sent to its partner, which
    /// a SIGTERM'd dhcpd does) and hands back its directory with the lease file as it was.
    #[must_use]
    pub fn crash(mut self) -> TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.dir.take()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: SIGTERM to the ip-netns-exec child we started (it execs dhcpd).
            unsafe { libc::kill(dhcp_lab::lab::process::pid(c.id()), libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dhcpd {
    fn drop(&mut self) {
        self.kill();
    }
}

#[must_use]
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A udhcpc (busybox) client on `port`, logging what its script is told.
pub struct Udhcpc {
    dir: TempDir,
    child: Option<Child>,
}

/// One line the client's script logged.
#[derive(Debug, Clone)]
pub struct ClientEvent {
    pub reason: String,
    pub ip: Option<Ipv4Addr>,
    pub server: Option<Ipv4Addr>,
    pub lease: Option<u32>,
}

const HOOK: &str = r#"#!/bin/sh
log="$(dirname "$0")/events.log"
case "$1" in
  bound|renew)
    ip addr replace "$ip/$mask" dev "$interface"
    echo "$1 $ip $serverid $lease" >> "$log" ;;
  deconfig)
    ip addr flush dev "$interface"
    echo "deconfig - - -" >> "$log" ;;
  *)
    echo "$1 - - -" >> "$log" ;;
esac
exit 0
"#;

impl Udhcpc {
    pub fn start(port: &Port) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("udhcpc")?;
        let hook = dir.path().join("hook.sh");
        fs::write(&hook, HOOK)?;
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755))?;
        let out = fs::File::create(dir.path().join("udhcpc.out"))?;
        // -t/-T/-A: retry quickly, a lab segment has no slow links.
        let child = port
            .ns
            .exec("udhcpc")
            .args(["-f", "-i", &port.iface, "-s"])
            .arg(&hook)
            .args(["-t", "20", "-T", "1", "-A", "1"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("start udhcpc")?;
        Ok(Udhcpc { dir, child: Some(child) })
    }

    #[must_use]
    pub fn events(&self) -> Vec<ClientEvent> {
        let text = fs::read_to_string(self.dir.path().join("events.log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let get = |i: usize| f.get(i).copied().unwrap_or("-");
                ClientEvent {
                    reason: get(0).to_owned(),
                    ip: get(1).parse().ok(),
                    server: get(2).parse().ok(),
                    lease: get(3).parse().ok(),
                }
            })
            .collect()
    }

    pub fn wait_bound(&self, timeout: Duration) -> Result<ClientEvent> {
        wait_for("the client to be bound", timeout, || {
            Ok(self.events().into_iter().find(|e| e.reason == "bound"))
        })
        .with_context(|| format!("udhcpc said:\n{}", self.output()))
    }

    pub fn wait_renewals(&self, n: usize, timeout: Duration) -> Result<Vec<ClientEvent>> {
        wait_for(&format!("{n} renewals"), timeout, || {
            let r: Vec<ClientEvent> =
                self.events().into_iter().filter(|e| e.reason == "renew").collect();
            Ok((r.len() >= n).then_some(r))
        })
    }

    #[must_use]
    pub fn output(&self) -> String {
        tail(&fs::read_to_string(self.dir.path().join("udhcpc.out")).unwrap_or_default(), 30)
    }
}

impl Drop for Udhcpc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `count` simulated clients (`xdhcp-load`, DORA only) on `port`, for at most `duration`:
/// how many got a lease. Clients of one `seed` have the same MACs run after run.
pub fn dora_clients(port: &Port, count: u32, seed: u16, duration: Duration) -> Result<u64> {
    let opts = dhcp_lab::load::LoadOptions {
        iface: port.iface.clone(),
        clients: count,
        renewals: 0,
        rate: 0,
        duration,
        window: 16,
        seed,
        relay: None,
        agent: dhcp_lab::load::Agent::default(),
        assume_bound: None,
        progress: false,
    };
    port.ns.run(|| match dhcp_lab::load::run(&opts) {
        Ok(s) => Ok(s.bound),
        Err(e) if e.to_string().contains("no client got a lease") => Ok(0),
        Err(e) => Err(e),
    })
}

/// One side's config of an xdhcp failover pair on 10.`net`.0.0/24: the primary is .1, the
/// secondary .2, the shared pool .100 to .`pool_end`, split [`Self::SPLIT`]; the rest is the
/// test's. `IFACE`, `STATE` and `SOCKET` are filled in by [`Xdhcp::start`].
#[derive(Clone, Copy)]
pub struct PairConfig<'a> {
    pub name: &'a str,
    pub net: u8,
    pub pool_end: u8,
    pub lease_secs: u64,
    /// The primary's MCLT (the secondary learns it in the handshake).
    pub mclt: u64,
    pub max_response_delay: u64,
    /// More lines for both sides' `[failover]`, each ending in a newline.
    pub failover_more: &'a str,
}

impl PairConfig<'_> {
    /// The primary's split of the pool: half each (what a partner ISC dhcpd must be told too).
    pub const SPLIT: u16 = 128;

    #[must_use]
    pub const fn addr(&self, primary: bool) -> Ipv4Addr {
        Ipv4Addr::new(10, self.net, 0, if primary { 1 } else { 2 })
    }

    /// The shared pool's addresses, .100 to .`pool_end`.
    pub fn pool(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let net = self.net;
        (100..=self.pool_end).map(move |h| Ipv4Addr::new(10, net, 0, h))
    }

    #[must_use]
    pub fn pool_size(&self) -> u64 {
        u64::from(self.pool_end.saturating_sub(99))
    }

    /// The primary's config (`primary`) or the secondary's, `more` (lines, each ending in a
    /// newline) added to its `[failover]`.
    ///
    /// The load-balancing window is wider than any client's retry delay, so the split alone
    /// decides who answers.
    #[must_use]
    pub fn render(&self, primary: bool, more: &str) -> String {
        self.render_with(primary, Self::SPLIT, "", more, "")
    }

    /// As [`Self::render`], the primary splitting the pool at `split` (0: the secondary serves
    /// every new client), `top` (lines, each ending in a newline) added to the top level and
    /// `subnet_more` to the subnet.
    #[must_use]
    pub fn render_with(
        &self,
        primary: bool,
        split: u16,
        top: &str,
        more: &str,
        subnet_more: &str,
    ) -> String {
        let (role, me, peer) = (
            if primary { "primary" } else { "secondary" },
            self.addr(primary),
            self.addr(!primary),
        );
        let primary_only = if primary {
            format!("mclt = {}\nsplit = {split}\n", self.mclt)
        } else {
            String::new()
        };
        let Self { name, net, pool_end, lease_secs, max_response_delay, failover_more, .. } = *self;
        format!(
            r#"interfaces = ["IFACE"]
server_id = "{me}"
state_dir = "STATE"
control_socket = "SOCKET"
{top}
[fast_path]
attach_mode = "native"

[failover]
name = "{name}"
role = "{role}"
address = "{me}"
peer_address = "{peer}"
max_response_delay = {max_response_delay}
load_balance_max_seconds = 60
{failover_more}{primary_only}{more}
[[subnet]]
prefix = "10.{net}.0.0/24"
pools = [{{ start = "10.{net}.0.100", end = "10.{net}.0.{pool_end}" }}]
lease_time = {lease_secs}
failover = true
{subnet_more}"#
        )
    }

    /// ISC dhcpd's config for the same pair: the primary's (`primary`) or the secondary's, the
    /// primary splitting the pool at `split`, `top` (lines, each ending in a newline) added to
    /// the top level, `more` to its `failover peer` block and `subnet_more` to its subnet.
    ///
    /// dhcpd acknowledges once 10 updates are pending (or after 2 s); only the primary states
    /// the MCLT and the split.
    #[must_use]
    pub fn render_dhcpd(
        &self,
        primary: bool,
        split: u16,
        top: &str,
        more: &str,
        subnet_more: &str,
    ) -> String {
        let (role, me, peer) = (
            if primary { "primary" } else { "secondary" },
            self.addr(primary),
            self.addr(!primary),
        );
        let primary_only = if primary {
            format!("  mclt {};\n  split {split};\n", self.mclt)
        } else {
            String::new()
        };
        let Self { name, net, pool_end, lease_secs, max_response_delay, .. } = *self;
        format!(
            r#"ddns-update-style none;
authoritative;
default-lease-time {lease_secs};
max-lease-time {lease_secs};
{top}
failover peer "{name}" {{
  {role};
  address {me};
  port 647;
  peer address {peer};
  peer port 647;
  max-response-delay {max_response_delay};
  max-unacked-updates 10;
  load balance max seconds 60;
{more}{primary_only}}}

subnet 10.{net}.0.0 netmask 255.255.255.0 {{
{subnet_more}  pool {{
    failover peer "{name}";
    range 10.{net}.0.100 10.{net}.0.{pool_end};
  }}
}}
"#
        )
    }
}

/// A MAC whose RFC 3074 bucket, hashed as the server will (udhcpc sends option 61 = 1 + MAC),
/// the primary (or the secondary) serves under `split`.
///
/// # Panics
/// If none of 256 MACs hashes to that side (the split leaves it nothing).
#[must_use]
pub fn mac_served_by(primary: bool, split: u16, tag: u8) -> [u8; 6] {
    let hba = dhcp_failover::load_balance::Hba::split(split);
    (0..=255u8)
        .map(|i| [0x02, 0xf0, tag, 0, 0, i])
        .find(|m| {
            let mut key = vec![1];
            key.extend_from_slice(m);
            hba.serves(primary, dhcp_failover::load_balance::bucket(&key))
        })
        .expect("some MAC in 256 hashes to each side")
}

/// With its partner just gone, `x` goes COMMUNICATIONS-INTERRUPTED within `wait` with the
/// pool's `free` addresses split between its own share and the partner's, then serves 100 new
/// clients from its own share alone and says why it stops there. Returns both shares (its own,
/// the partner's).
///
/// # Panics
/// When any of that does not happen: this is a test's assertion.
#[must_use]
pub fn cut_off_serves_its_own_share(
    x: &Xdhcp,
    clients: &Port,
    free: u64,
    wait: Duration,
) -> (u64, u64) {
    let interrupted =
        wait_for("COMMUNICATIONS-INTERRUPTED", wait, || state_is(x, "communications-interrupted"))
            .unwrap();
    let own = num(&interrupted["pools"][0], "share_ours_free");
    let theirs = num(&interrupted["pools"][0], "share_partner_free");
    assert_eq!(own + theirs, free, "{interrupted}");
    let served = dora_clients(clients, 100, 2, Duration::from_secs(8)).unwrap();
    assert_eq!(served, own, "served from its own share");
    let st = x.failover().unwrap();
    assert!(num(&st, "refused_share_exhausted_total") > 0, "{st}");
    (own, theirs)
}

/// A number field of a control-socket answer; a missing one fails the test, naming it.
///
/// # Panics
/// When the field is missing or not a number.
#[must_use]
pub fn num(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// `x`'s leases in `states` by address: MAC.
///
/// # Panics
/// When `x` does not answer the lease query.
#[must_use]
pub fn bound(x: &Xdhcp, states: &[&str]) -> std::collections::HashMap<Ipv4Addr, String> {
    x.leases()
        .unwrap()
        .iter()
        .filter(|l| states.iter().any(|s| l["state"] == *s))
        .filter_map(|l| Some((l["address"].as_str()?.parse().ok()?, l["mac"].as_str()?.into())))
        .collect()
}

/// `x`'s active leases by address: MAC.
#[must_use]
pub fn active(x: &Xdhcp) -> std::collections::HashMap<Ipv4Addr, String> {
    bound(x, &["active"])
}

/// `x`'s addresses in `state`, MAC or not.
///
/// # Panics
/// When `x` does not answer the lease query.
#[must_use]
pub fn in_state(x: &Xdhcp, state: &str) -> std::collections::HashSet<Ipv4Addr> {
    x.leases()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == state)
        .filter_map(|l| l["address"].as_str()?.parse().ok())
        .collect()
}

/// `x`'s failover status once its state is `mine` (for [`wait_for`]).
pub fn state_is(x: &Xdhcp, mine: &str) -> Result<Option<Value>> {
    let v = x.failover()?;
    Ok((v["my_state"] == mine).then_some(v))
}

/// Lease blocks of an ISC lease file: address → the block's text (the last one wins, as for
/// dhcpd itself).
#[must_use]
pub fn isc_leases(text: &str) -> std::collections::HashMap<Ipv4Addr, String> {
    let mut out = std::collections::HashMap::new();
    let mut rest = text;
    while let Some(i) =
        rest.find("\nlease ").map(|i| i + 1).or_else(|| rest.starts_with("lease ").then_some(0))
    {
        let block = &rest[i..];
        let end = block.find("\n}").map_or(block.len(), |e| e + 2);
        let head = block["lease ".len()..].split_whitespace().next().unwrap_or("");
        if let Ok(a) = head.parse() {
            out.insert(a, block[..end].to_owned());
        }
        rest = &block[end..];
    }
    out
}

/// The active bindings of a dhcpd lease file, address → MAC, as xdhcp's importer reads it (the
/// last block for an address wins); with `ending_after` (unix seconds), only those that end
/// later, the ones still in force.
///
/// # Panics
/// When the text does not parse or a binding's hardware address is not a MAC.
#[must_use]
pub fn dhcpd_bindings(
    text: &str,
    ending_after: Option<u64>,
) -> std::collections::BTreeMap<Ipv4Addr, String> {
    xdhcp::import::leases::parse::parse(text, "dhcpd.leases")
        .unwrap()
        .into_iter()
        .filter(|(_, l)| l.binding.as_deref() == Some("active"))
        .filter(|(_, l)| {
            ending_after.is_none_or(|t| l.ends.is_some_and(|e| e.is_none_or(|e| e > t)))
        })
        .map(|(a, l)| (a, xdhcp::packet::fmt_mac(&l.hardware.unwrap().try_into().unwrap())))
        .collect()
}

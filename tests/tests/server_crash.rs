//! The store is never behind an ACK: perfdhcp (acting as a relay, thousands of simulated
//! clients) loads `xdhcp run` while the server is killed with SIGKILL several times and started
//! again each time. Every DHCPACK is captured on the wire on perfdhcp's side. Afterwards, with
//! the server restarted cleanly, every address a client got an ACK for is in the store, bound to
//! that client, with an expiry at least what the client was told; and no address went out in an
//! ACK to two clients at overlapping times.
use std::{
    collections::HashMap,
    fs,
    net::Ipv4Addr,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use dhcp_lab::lab::{self, Daemon, LAN_SERVER, Lan, Launcher, RawSocket, ServerConfig, netns_list};
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use integration::fixture::root_required;

/// perfdhcp's address on the LAN: the giaddr of everything it sends.
const PERFDHCP_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);
/// DORAs per second, simulated clients, seconds of load.
const RATE: u32 = 400;
const CLIENTS: u32 = 4000;
const LOAD_SECS: u64 = 20;
/// SIGKILLs during the load, one every `KILL_EVERY`.
const KILLS: usize = 6;
const KILL_EVERY: Duration = Duration::from_millis(2500);
/// The store rounds its clock down to whole seconds and the capture sees the ACK a moment
/// after the server read its clock: an expiry this much short of "receipt + lease" is still
/// what the server committed for that ACK.
const CLOCK_SLACK: f64 = 2.0;

/// The daemon with `pid` holds the fast path's writer lock (changes by hand are refused and
/// name it), or with `None` nobody does.
fn assert_writer_is(lan: &Lan, pid: Option<u32>) {
    let r = xdhcp::fastpath::lock_writer(&lan.server_if, Duration::ZERO);
    match (pid, r) {
        (None, Ok(_)) => {}
        (Some(pid), Err(e)) => {
            let e = format!("{e:#}");
            assert!(e.contains(&format!("pid {pid} (")), "{e}");
        }
        (pid, r) => panic!("writer lock of {}: expected {pid:?}, got {r:?}", lan.server_if),
    }
}

/// Not a test: the server process of the test below (see `server_clients.rs`).
#[test]
fn daemon_process() {
    lab::daemon_child();
}

/// One DHCPACK as perfdhcp's interface received it.
#[derive(Clone, Debug)]
struct Ack {
    /// Unix time of receipt.
    at: f64,
    addr: Ipv4Addr,
    chaddr: [u8; 6],
    client_id: Option<Vec<u8>>,
    lease_secs: u32,
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Collects every DHCPACK arriving on the socket until `stop`; also the frames the socket's
/// queue dropped (those ACKs are then unchecked, never wrongly checked).
fn capture(sock: &RawSocket, stop: &AtomicBool) -> (Vec<Ack>, u32) {
    let mut acks = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut drops = sock.drops();
    while !stop.load(Ordering::SeqCst) {
        let Ok(Some(n)) = sock.recv(&mut buf) else { continue };
        let Ok(p) = xdhcp::packet::parse_frame(&buf[..n]) else { continue };
        if p.msg.opts().msg_type() != Some(MessageType::Ack) || p.msg.yiaddr().is_unspecified() {
            continue;
        }
        let lease_secs = match p.msg.opts().get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(l)) => *l,
            _ => continue,
        };
        let client_id = match p.msg.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) => Some(id.clone()),
            _ => None,
        };
        acks.push(Ack {
            at: unix_now(),
            addr: p.msg.yiaddr(),
            chaddr: p.msg.chaddr()[..6].try_into().unwrap(),
            client_id,
            lease_secs,
        });
    }
    drops += sock.drops();
    (acks, drops)
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario, load and kills to audit, read top to bottom"
)]
fn every_ack_survives_kill_9_under_perfdhcp_load() {
    root_required();
    let t0 = Instant::now();
    assert!(
        std::path::Path::new("/usr/sbin/perfdhcp").is_file(),
        "perfdhcp is not installed: cargo xtask setup (Debian package kea-admin)"
    );
    let cfg = ServerConfig {
        lease_secs: 3600,
        t1_secs: 1800,
        t2_secs: 3150,
        pool: (Ipv4Addr::new(10, 99, 1, 0), Ipv4Addr::new(10, 99, 255, 254)),
        ..ServerConfig::default()
    };
    let lan = Lan::new().expect("build the LAN");
    let mut names = lan.namespaces();
    let launcher = Launcher::TestHarness {
        exe: std::env::current_exe().unwrap(),
        test: "daemon_process".into(),
    };
    let mut daemon = Daemon::start(&lan, &cfg, launcher).expect("start xdhcp run");
    let port = lan.port("perfdhcp", Some((PERFDHCP_ADDR, lab::LAN_PREFIX))).unwrap();
    names.push(port.ns.name().to_owned());

    let sock = RawSocket::open(&port.ns, &port.iface).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let capturing = {
        let stop = stop.clone();
        thread::spawn(move || capture(&sock, &stop))
    };
    let out_path = daemon.dir().join("perfdhcp.out");
    let out = fs::File::create(&out_path).unwrap();
    let mut perfdhcp = port
        .ns
        .exec("perfdhcp")
        .args(["-4", "-l", &port.iface, "-r", &RATE.to_string(), "-R", &CLIENTS.to_string()])
        .args(["-p", &LOAD_SECS.to_string()])
        .arg(LAN_SERVER.to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start perfdhcp");

    let mut downtime = Duration::ZERO;
    for _ in 0..KILLS {
        thread::sleep(KILL_EVERY);
        daemon.check_running().unwrap();
        assert_writer_is(&lan, daemon.pid());
        let status = daemon.kill(libc::SIGKILL).unwrap();
        assert!(!status.success(), "{status}");
        // kill -9 leaves no stale claim on the maps behind.
        assert_writer_is(&lan, None);
        let down = Instant::now();
        daemon.restart().unwrap_or_else(|e| panic!("restart after kill -9: {e:#}"));
        downtime += down.elapsed();
    }
    let deadline = Instant::now() + Duration::from_secs(LOAD_SECS + 20);
    let perf_status = loop {
        if let Some(s) = perfdhcp.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = perfdhcp.kill();
            let _ = perfdhcp.wait();
            panic!("perfdhcp ran past its {LOAD_SECS} s");
        }
        thread::sleep(Duration::from_millis(100));
    };
    // Late replies to the last requests.
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (acks, drops) = capturing.join().unwrap();
    let perf_out = fs::read_to_string(&out_path).unwrap_or_default();
    eprintln!("perfdhcp ({perf_status}):\n{perf_out}");

    // A clean restart: the store as a new server loads it.
    daemon.kill(libc::SIGTERM).unwrap();
    daemon.restart().unwrap();
    let leases = daemon.leases().unwrap();
    let store: HashMap<Ipv4Addr, &serde_json::Value> =
        leases.iter().map(|l| (l["address"].as_str().unwrap().parse().unwrap(), l)).collect();

    assert!(acks.len() >= 200, "only {} ACKs captured ({perf_status}):\n{perf_out}", acks.len());
    let mut problems = Vec::new();
    let mut by_addr: HashMap<Ipv4Addr, Vec<&Ack>> = HashMap::new();
    for a in &acks {
        by_addr.entry(a.addr).or_default().push(a);
    }
    for (addr, list) in &by_addr {
        // No two clients hold the address at once: each ACK's lease runs until the next ACK
        // of the address, which must then be for the same client.
        for w in list.windows(2) {
            let (a, b) = (w[0], w[1]);
            let same = a.chaddr == b.chaddr && a.client_id == b.client_id;
            if !same && b.at < a.at + f64::from(a.lease_secs) {
                problems.push(format!("{addr} ACKed to {a:?} and then to {b:?}"));
            }
        }
        let last = list.last().unwrap();
        let told = list.iter().map(|a| a.at + f64::from(a.lease_secs)).fold(0.0, f64::max);
        match store.get(addr) {
            None => problems.push(format!("{addr} was ACKed ({last:?}) but is not in the store")),
            Some(l) => {
                let mac = xdhcp::packet::fmt_mac(&last.chaddr);
                let expires = l["expires_at"].as_f64().unwrap_or(0.0);
                if l["state"] != "active" || l["mac"] != mac.as_str() {
                    problems.push(format!("{addr}: store has {l}, the last ACK went to {mac}"));
                } else if expires + CLOCK_SLACK < told {
                    problems.push(format!(
                        "{addr}: the store's expiry {expires} is before what the client was told \
                         ({told:.1})"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in {} ACKs:\n{}",
        problems.len(),
        acks.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "{} ACKs captured ({drops} frames dropped by the capture) for {} addresses, {KILLS} \
         kill -9, {:.1} s down in all, {} leases in the store; {:.1} s",
        acks.len(),
        by_addr.len(),
        downtime.as_secs_f64(),
        leases.len(),
        t0.elapsed().as_secs_f64()
    );
    drop(port);
    drop(daemon);
    drop(lan);
    let left: Vec<String> =
        netns_list().unwrap().into_iter().filter(|n| names.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

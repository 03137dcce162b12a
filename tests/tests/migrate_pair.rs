//! Replacing a live ISC dhcpd failover pair with xdhcp, one server at a time, while its clients
//! stay (docs/migration.md, "Replacing a live dhcpd failover pair").
//!
//! Two real dhcpd 4.4 (primary and secondary, split 128, MCLT 30 s, 60 s leases) serve real
//! clients (udhcpc, dhclient, dhcpcd, each on both sides of the split) and the load
//! generator's. Then, as an operator would:
//!
//! 1. the secondary's dhcpd.conf is translated by `xdhcp import dhcpd-conf`, the secondary
//!    dhcpd is stopped, and xdhcp starts in its place with an empty store: it learns every
//!    binding from the primary dhcpd (UPDREQALL) and the pair is NORMAL again;
//! 2. the same for the primary, xdhcp learning everything from the xdhcp secondary.
//!
//! Throughout, every client keeps its address and renews without a NAK; the load generator's
//! clients, coming back, are given their own addresses; both xdhcp stores hold every binding
//! the dhcpd lease files held; and XDP answers renewals.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use dhcp_lab::lab::{Client, ClientKind, EventKind, TempDir};
use integration::{
    failover_lab::{
        Dhcpd, Port, Segment, Xdhcp, dhcpd_bindings, dora_clients, num, tail, wait_for,
    },
    fixture::root_required,
};

const NET: u8 = 93;
const PRIMARY: Ipv4Addr = Ipv4Addr::new(10, NET, 0, 1);
const SECONDARY: Ipv4Addr = Ipv4Addr::new(10, NET, 0, 2);
/// Short enough that every client renews several times within the test; the fast path grants
/// at least 60 s, so no shorter.
const LEASE: u64 = 60;
/// Each xdhcp waits this long in RECOVER-WAIT after learning the partner's bindings, and a new
/// client's first lease is this long. Not much shorter: udhcpc, given 15 s leases by dhcpd,
/// came to renew only after they ended, and dhcpd's secondary then allocated the address anew
/// each time (for MCLT again) rather than renewing it.
const MCLT: u64 = 30;
/// A full lease as the clients report it (dhcpd's may be a second short of `LEASE`).
#[expect(clippy::cast_possible_truncation, reason = "LEASE is 60 s")]
const FULL: u32 = LEASE as u32 - 5;
const SPLIT: u16 = 128;
const LOAD: u32 = 20;
/// The load generator's MACs are 02:93:00:00:00:xx, apart from the ports' 02:5d:...
const SEED: u16 = 0x93;
const NAME: &str = "edge-swap";

/// The pair's dhcpd.conf, as an ISP would write it: the primary states the MCLT and the split.
fn dhcpd_conf(primary: bool) -> String {
    let (role, me, peer) =
        if primary { ("primary", PRIMARY, SECONDARY) } else { ("secondary", SECONDARY, PRIMARY) };
    let primary_only =
        if primary { format!("  mclt {MCLT};\n  split {SPLIT};\n") } else { String::new() };
    format!(
        r#"ddns-update-style none;
authoritative;
default-lease-time {LEASE};
max-lease-time {LEASE};

failover peer "{NAME}" {{
  {role};
  address {me};
  port 647;
  peer address {peer};
  peer port 647;
  max-response-delay 10;
  max-unacked-updates 10;
  load balance max seconds 3;
{primary_only}}}

subnet 10.{NET}.0.0 netmask 255.255.255.0 {{
  option routers 10.{NET}.0.1;
  option domain-name-servers 10.{NET}.0.53;
  pool {{
    failover peer "{NAME}";
    range 10.{NET}.0.100 10.{NET}.0.159;
  }}
}}
"#
    )
}

/// `xdhcp import dhcpd-conf FILE --interface IF --server-id ADDR`, as the CLI runs it; the
/// store and control socket are the lab's (`STATE` and `SOCKET`, filled in by
/// [`Xdhcp::start_in`]) rather than /var/lib/xdhcp.
fn import_conf(file: &Path, port: &Port, server_id: Ipv4Addr) -> String {
    let inputs = xdhcp::import::conf::Inputs {
        interfaces: vec![port.iface.clone()],
        server_id: Some(server_id),
    };
    let t = xdhcp::import::conf::translate(file, &inputs).unwrap();
    assert!(t.untranslated.is_empty(), "{:?}", t.untranslated);
    let f = t.config.failover.first().expect("the failover peer is translated");
    assert_eq!(f.name, NAME);
    // Top-level keys go before the first table.
    format!("state_dir = \"STATE\"\ncontrol_socket = \"SOCKET\"\n{}", t.toml)
}

/// The bindings of a dhcpd lease file still in force (active, ending more than 2 s from now),
/// address → MAC.
fn isc_bindings(leases: &Path) -> BTreeMap<Ipv4Addr, String> {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "unix time")]
    let soon = now() as u64 + 2;
    dhcpd_bindings(&std::fs::read_to_string(leases).unwrap(), Some(soon))
}

/// Waits until `x` holds every binding of `want` (its own clients' later renewals may add
/// none: every client is in `want`). `logs` says what else there is to know, should it not.
fn wait_holds(x: &Xdhcp, want: &BTreeMap<Ipv4Addr, String>, who: &str, logs: &dyn Fn() -> String) {
    wait_for(&format!("every dhcpd binding in {who}'s store"), Duration::from_secs(20), || {
        let have = x.active_bindings().unwrap();
        let missing: Vec<String> = want
            .iter()
            .filter(|(a, m)| have.get(a) != Some(m))
            .map(|(a, m)| format!("{a} {m} (have {:?})", have.get(a)))
            .collect();
        if missing.is_empty() {
            Ok(Some(()))
        } else {
            Err(anyhow::anyhow!("{} missing: {missing:?}", missing.len()))
        }
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{who} log:\n{}\n{}", tail(&x.log_text(), 60), logs()));
}

/// A real client, on a port of its own whose MAC the RFC 3074 hash gives to `primary`'s side.
struct Real {
    kind: ClientKind,
    mac: String,
    client: Client,
    ip: Ipv4Addr,
    _port: Port,
}

/// A MAC whose hash bucket (over the client identifier `kind` sends, else the MAC, as both
/// dhcpd and xdhcp hash) is `primary`'s under the split.
fn mac_for(kind: ClientKind, primary: bool, tag: u8) -> [u8; 6] {
    let hba = dhcp_failover::load_balance::Hba::split(SPLIT);
    (0..=255u8)
        .map(|i| [0x02, NET, tag, 0, 0, i])
        .find(|&m| {
            let key = kind.client_id(m).unwrap_or_else(|| m.to_vec());
            hba.serves(primary, dhcp_failover::load_balance::bucket(&key))
        })
        .expect("some MAC in 256 hashes to each side")
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

impl Real {
    /// Whether the client has kept its first address all along, renewing it without a NAK:
    /// after its first lease every hook call is a renewal (or dhcpcd's re-announcement of the
    /// same lease) of that address, and the client's own output has no NAK.
    fn check_kept(&self) {
        let ev = self.client.events();
        let first = ev.iter().position(|e| e.kind == EventKind::Bound).unwrap();
        let bad: Vec<String> = ev[first..]
            .iter()
            .filter(|e| {
                !matches!(e.kind, EventKind::Bound | EventKind::Renew | EventKind::Rebind)
                    || e.ip != Some(self.ip)
            })
            .map(|e| format!("{:.1} {} {:?}", e.at, e.reason, e.ip))
            .collect();
        let out = self.client.output();
        assert!(
            bad.is_empty() && !out.contains("NAK"),
            "{} {}: lost or changed its lease: {bad:?} (now {:.1})\n{}",
            self.kind,
            self.ip,
            now(),
            self.client.output_tail(40)
        );
    }

    /// Renewals (ACKs the client took) after `since` (unix time).
    fn renewals_after(&self, since: f64) -> u64 {
        let ev = self.client.events();
        ev.iter().filter(|e| e.at > since && e.is_renewal()).count().try_into().unwrap()
    }
}

/// What each real client's hook was told and what it printed last.
fn clients_said(clients: &[Real]) -> String {
    let mut s = String::new();
    for c in clients {
        let ev: Vec<String> = c
            .client
            .events()
            .iter()
            .map(|e| format!("{:.1} {} {:?}", e.at, e.reason, e.ip))
            .collect();
        let _ = writeln!(s, "{} {}: {ev:?}\n{}", c.kind, c.ip, c.client.output_tail(15));
    }
    s
}

/// Waits until every real client has renewed `n` times after `since`: with 60 s leases, the
/// first is within T1 plus some retries, each further one T1 later.
fn wait_all_renew(clients: &[Real], since: f64, n: u64, what: &str) {
    wait_for(what, Duration::from_secs(n * LEASE / 2 + 60), || {
        let late: Vec<String> = clients
            .iter()
            .filter(|c| c.renewals_after(since) < n)
            .map(|c| format!("{} {}", c.kind, c.ip))
            .collect();
        if late.is_empty() { Ok(Some(())) } else { Err(anyhow::anyhow!("not yet: {late:?}")) }
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", clients_said(clients)));
    for c in clients {
        c.check_kept();
    }
}

/// Waits until every real client holds a full lease. One whose lease is MCLT long would lose
/// it in the seconds a swap takes; the MCLT rule lets a server grant a full lease once its
/// partner has acknowledged the binding, by the client's next renewal.
fn wait_full_leases(clients: &[Real]) {
    wait_for("every real client on a full lease", Duration::from_secs(3 * LEASE), || {
        let short: Vec<String> = clients
            .iter()
            .filter(|c| c.client.events().last().and_then(|e| e.lease_secs) < Some(FULL))
            .map(|c| format!("{} {}", c.kind, c.ip))
            .collect();
        if short.is_empty() { Ok(Some(())) } else { Err(anyhow::anyhow!("short: {short:?}")) }
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", clients_said(clients)));
    for c in clients {
        c.check_kept();
    }
}

/// How often `needle` is in dhcpd's log.
fn count_in_log(d: &Dhcpd, needle: &str) -> usize {
    d.log_text().matches(needle).count()
}

/// ACKs the server's XDP program sent on `port`, and the fast-path renewals the store recorded.
fn xdp_acks(x: &Xdhcp, port: &Port) -> (u64, u64) {
    let st = x.ask(&xdhcp::daemon::ctl::Request::Stats).unwrap();
    let fp = &st["fast_path"][&port.iface];
    (num(fp, "ack"), num(&st, "fast_path_renewals_recorded"))
}

/// The load generator's clients come back (a DORA each, same MACs): all of them get a lease.
/// `logs` says what the servers logged, should some not.
fn load_clients_return(load: &Port, when: &str, logs: &dyn Fn() -> String) {
    let bound = dora_clients(load, LOAD, SEED, Duration::from_secs(30)).unwrap();
    assert_eq!(bound, u64::from(LOAD), "{when}: the load generator's clients\n{}", logs());
}

/// The load generator's clients coming back every 15 s, as clients renewing would (they only
/// DORA): each round's unix time and how many got a lease within 8 s, until `stop`.
struct Returning {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(f64, u64)>>>,
}

impl Returning {
    fn start(load: Port) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rounds = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                let at = now();
                let bound = dora_clients(&load, LOAD, SEED, Duration::from_secs(8)).unwrap_or(0);
                rounds.push((at, bound));
                while t.elapsed() < Duration::from_secs(15) && !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            rounds
        });
        Returning { stop, thread: Some(thread) }
    }

    /// Stops the rounds (the one under way finishes, at most 8 s) and returns them.
    fn stop(mut self) -> Vec<(f64, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().map(|t| t.join().unwrap()).unwrap_or_default()
    }
}

impl Drop for Returning {
    /// A failed check unwinds through here: the rounds end, and the load port (its namespace)
    /// goes with the thread.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The xdhcp that replaces dhcpd on `port`: started with an empty store from the translation of
/// that dhcpd's own dhcpd.conf, on the same address.
fn replace(port: &Port, conf: &Path, server_id: Ipv4Addr) -> Xdhcp {
    let config = import_conf(conf, port, server_id);
    Xdhcp::start_in(port, &config, TempDir::new("xdhcp").unwrap()).unwrap()
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, two swaps, read top to bottom")]
fn a_dhcpd_failover_pair_is_replaced_one_server_at_a_time_while_its_clients_stay() {
    root_required();
    let t0 = Instant::now();
    let mut seg = Segment::new().unwrap();
    let pport = seg.port("pri", [0x02, NET, 0, 0, 0, 1], Some(PRIMARY)).unwrap();
    let sport = seg.port("sec", [0x02, NET, 0, 0, 0, 2], Some(SECONDARY)).unwrap();
    let load = seg.port("load", [0x02, NET, 0, 0, 0, 3], None).unwrap();

    // The pair as it runs before the migration.
    let dp = Dhcpd::start(&pport, &dhcpd_conf(true), None).unwrap();
    let ds = Dhcpd::start(&sport, &dhcpd_conf(false), None).unwrap();
    dp.wait_log("Both servers normal", Duration::from_secs(90)).unwrap();
    ds.wait_log("Both servers normal", Duration::from_secs(30)).unwrap();
    // The primary gives the secondary its share of the free pool (BACKUP) once NORMAL: until
    // then the secondary's new clients get nothing ("peer holds all free leases").
    wait_for("BACKUP addresses in the secondary's lease file", Duration::from_mins(1), || {
        Ok(ds.lease_file().contains("binding state backup;").then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!("{e:#}\n{}\n{}", tail(&dp.log_text(), 30), tail(&ds.log_text(), 30))
    });
    eprintln!("migrate: dhcpd pair NORMAL after {:.1} s", t0.elapsed().as_secs_f64());

    // Real clients of each kind, one on each side of the split.
    let mut clients = Vec::new();
    for (k, kind) in ClientKind::ALL.into_iter().enumerate() {
        for primary in [true, false] {
            let tag = u8::try_from(2 * k).unwrap() + u8::from(primary) + 1;
            let m = mac_for(kind, primary, tag);
            let cport = seg.port(&format!("c{tag}"), m, None).unwrap();
            let client = Client::start(kind, &cport.ns, &cport.iface, m).unwrap();
            clients.push((kind, client, cport, m));
        }
    }
    let mut real: Vec<Real> = clients
        .into_iter()
        .map(|(kind, mut client, port, m)| {
            let b = client.wait_bound(Duration::from_mins(1)).unwrap();
            let mac = xdhcp::packet::fmt_mac(&m);
            Real { kind, mac, client, ip: b.ip.unwrap(), _port: port }
        })
        .collect();
    real.sort_by_key(|c| c.ip);
    // The load generator's clients, which never renew: a DORA each. Their addresses are in
    // the primary's lease file (every binding reaches it), and they are to get them back
    // whenever they come again.
    load_clients_return(&load, "first lease", &|| {
        format!("{}\n{}", tail(&dp.log_text(), 40), tail(&ds.log_text(), 40))
    });
    let returning = Returning::start(load);
    let loaded =
        wait_for("the load clients in the primary's lease file", Duration::from_secs(20), || {
            let b: BTreeMap<Ipv4Addr, String> = isc_bindings(&dp.leases)
                .into_iter()
                .filter(|(_, m)| m.starts_with("02:93:"))
                .collect();
            Ok((b.len() == LOAD as usize).then_some(b))
        })
        .unwrap();
    // Every client of the pair, address → MAC: what both xdhcp stores must hold in the end.
    let mut expected = loaded.clone();
    expected.extend(real.iter().map(|c| (c.ip, c.mac.clone())));
    assert_eq!(expected.len(), LOAD as usize + real.len(), "one address per client");
    wait_full_leases(&real);
    eprintln!("migrate: {} real clients bound and renewing", real.len());

    // Step 1: the secondary. Translated first (what the operator reviews), then dhcpd stopped
    // (SIGTERM, as systemctl stops it: it tells the primary it shuts down, and the primary goes
    // PARTNER-DOWN and serves everyone), then xdhcp in its place with an empty store.
    let normals = count_in_log(&dp, "Both servers normal");
    let sdir = ds.stop();
    let t1 = Instant::now();
    eprintln!("migrate: the secondary dhcpd stopped at {:.1}", now());
    let xs = replace(&sport, &sdir.path().join("dhcpd.conf"), SECONDARY);
    xs.wait_normal(Duration::from_secs(MCLT + 60)).unwrap_or_else(|e| {
        panic!("{e:#}\nxdhcp:\n{}\ndhcpd:\n{}", tail(&xs.log_text(), 60), tail(&dp.log_text(), 40))
    });
    wait_for("dhcpd primary NORMAL again", Duration::from_secs(30), || {
        Ok((count_in_log(&dp, "Both servers normal") > normals).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&dp.log_text(), 40)));
    let log = xs.log_text();
    assert!(log.contains("sending UpdReqAll"), "{}", tail(&log, 60));
    eprintln!(
        "migrate: xdhcp secondary NORMAL {:.1} s after dhcpd stopped",
        t1.elapsed().as_secs_f64()
    );
    // Whatever the stopped dhcpd held that is still in force, xdhcp learned from the primary.
    wait_holds(
        &xs,
        &isc_bindings(&sdir.path().join("dhcpd.leases")),
        "the xdhcp secondary",
        &|| format!("{}\n{}", tail(&dp.log_text(), 60), clients_said(&real)),
    );
    let since = now();
    wait_holds(&xs, &expected, "the xdhcp secondary", &|| clients_said(&real));
    wait_all_renew(
        &real,
        since,
        1,
        "every real client renewing with dhcpd and the xdhcp secondary",
    );
    wait_full_leases(&real);

    // Step 2: the primary, the same way; xdhcp learns everything from the xdhcp secondary.
    let pdir = dp.stop();
    let t2 = Instant::now();
    eprintln!("migrate: the primary dhcpd stopped at {:.1}", now());
    let xp = replace(&pport, &pdir.path().join("dhcpd.conf"), PRIMARY);
    xp.wait_normal(Duration::from_secs(MCLT + 60)).unwrap_or_else(|e| {
        panic!(
            "{e:#}\nprimary:\n{}\nsecondary:\n{}",
            tail(&xp.log_text(), 60),
            tail(&xs.log_text(), 40)
        )
    });
    xs.wait_normal(Duration::from_secs(30)).unwrap();
    eprintln!(
        "migrate: xdhcp primary NORMAL {:.1} s after dhcpd stopped",
        t2.elapsed().as_secs_f64()
    );
    let st = xp.failover().unwrap();
    assert_eq!(num(&st, "mclt"), MCLT, "{st}");
    let held = isc_bindings(&pdir.path().join("dhcpd.leases"));
    wait_holds(&xp, &held, "the xdhcp primary", &|| clients_said(&real));

    // Afterwards: two xdhcp, every client still on its address, renewing through XDP on both.
    // A lease learned from the partner goes into the kernel's table once this server has
    // answered its client itself (userspace, the first renewal); the next one is XDP's.
    let xdp_before = (xdp_acks(&xp, &pport), xdp_acks(&xs, &sport));
    let since = now();
    wait_all_renew(&real, since, 2, "every real client renewing twice with the xdhcp pair");
    let xdp_after = (xdp_acks(&xp, &pport), xdp_acks(&xs, &sport));
    assert!(
        xdp_after.0.0 > xdp_before.0.0 && xdp_after.1.0 > xdp_before.1.0,
        "renewals answered by XDP (ACKs sent, renewals recorded), primary and secondary: \
         {xdp_before:?} before, {xdp_after:?} after"
    );
    // Every client of the dhcpd pair, and no other, holds the address dhcpd gave it, in both
    // stores.
    let rounds = returning.stop();
    let unserved: Vec<&(f64, u64)> = rounds.iter().filter(|r| r.1 < u64::from(LOAD)).collect();
    assert!(unserved.is_empty(), "rounds of the load clients not all served: {unserved:?}");
    for (who, x) in [("primary", &xp), ("secondary", &xs)] {
        wait_holds(x, &expected, &format!("the xdhcp {who}"), &|| clients_said(&real));
        assert_eq!(x.active_bindings().unwrap(), expected, "the xdhcp {who}'s bindings");
    }
    let st = xp.failover().unwrap();
    assert_eq!(num(&st, "rejects_received_total"), 0, "the primary: {st}");
    // The secondary's only refused updates: expiries it made while recovering, which a
    // primary in NORMAL refuses (ISC's rule, and ours), expiring the lease itself; and updates
    // that crossed one of the primary's for the same address (the primary's wins, draft-12
    // and dhcpd).
    let xs_log = xs.log_text();
    let refused: Vec<&str> = xs_log.lines().filter(|l| l.contains("partner rejected")).collect();
    assert!(
        refused.iter().all(|l| l.contains("active to expired") || l.contains("reason 16")),
        "{refused:#?}"
    );
    eprintln!(
        "migrate: done in {:.1} s; XDP ACKs (primary, secondary) {:?} -> {:?}; {} updates refused",
        t0.elapsed().as_secs_f64(),
        (xdp_before.0.0, xdp_before.1.0),
        (xdp_after.0.0, xdp_after.1.0),
        refused.len()
    );
    drop((real, xp, xs));
}

//! No address gets stuck (draft-ietf-dhc-failover-12 §5.11), over real sockets: clients that
//! release (some in the same second as their ACK), let short leases expire and decline, over
//! several cycles, on an xdhcp pair and on xdhcp with ISC dhcpd 4.4 in both roles. Afterwards
//! every pool address is FREE or BACKUP on both sides (no client holds one any more), both
//! databases say the same, and no log shows a reject.
//!
//! The primary's split is 0 (the secondary serves every new client) except for the DECLINE
//! scenario, where each server serves and declines are made on each. The bulk of the clients
//! is perfdhcp acting as a relay, unicasting to the serving server, releasing some of its
//! leases and letting the others run out; a few crafted clients (a packet socket) release each
//! lease at once after its ACK.
use std::{
    collections::HashMap,
    fs,
    net::{Ipv4Addr, SocketAddrV4},
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use dhcp_lab::lab::{self, RawSocket};
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use integration::{
    failover_lab::{
        Dhcpd, PairConfig, Port, Segment, Xdhcp, isc_leases, mac_served_by, num, tail, wait_for,
    },
    fixture::root_required,
};
use serde_json::Value;

/// Short leases, so that the clients that neither renew nor release run out within the test.
/// The first lease of a client is at most the MCLT (the partner has acknowledged nothing yet).
const LEASE: u64 = 20;
const MCLT: u64 = 10;
/// The shared pool, .100 to .`POOL_END`.
const POOL_END: u8 = 199;
const POOL: u64 = POOL_END as u64 - 99;
/// perfdhcp's simulated clients (one MAC range, the same every cycle), DORAs and RELEASEs per
/// second, seconds per cycle.
const CLIENTS: u32 = 30;
const RATE: u32 = 20;
const RELEASE_RATE: u32 = 10;
const CYCLE_SECS: u64 = 4;
const CYCLES: u8 = 3;
/// Crafted clients per cycle that release in the second of their ACK.
const QUICK: u8 = 4;
/// Long enough for the leases still out to run out and for both servers to free them.
const SETTLE: Duration = Duration::from_secs(LEASE + MCLT + 40);
/// xdhcp's probation after a DECLINE.
const PROBATION: u64 = 15;
const NAME: &str = "edge-live";

fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, net, 0, host)
}

/// The pair on 10.`net`.0.0/24.
fn pair(net: u8) -> PairConfig<'static> {
    PairConfig {
        name: NAME,
        net,
        pool_end: POOL_END,
        lease_secs: LEASE,
        mclt: MCLT,
        max_response_delay: 5,
        // dhcpd's value: it acknowledges once half of ours are pending (or after 2 s). Every
        // release or expiry the secondary serves turns one of its BACKUP addresses FREE (the
        // primary's): balancing every few seconds gives them back between cycles.
        failover_more: "max_unacked_updates = 10\nmin_balance = 2\nmax_balance = 4\n",
    }
}

/// xdhcp's side on 10.`net`.0.0/24, the primary's split `split`, `top` added at the top level.
fn xdhcp_config(net: u8, primary: bool, split: u16, top: &str) -> String {
    pair(net).render_with(primary, split, top, "")
}

/// dhcpd's side of the same pair, split 0 when it is the primary.
fn dhcpd_config(net: u8, primary: bool) -> String {
    pair(net).render_dhcpd(primary, 0, "", "  min-balance 2;\n  max-balance 4;\n", "")
}

/// The segment and its ports: the primary's (.1), the secondary's (.2), perfdhcp's (.3, the
/// relay address) and the crafted clients' (no address).
struct Lab {
    _seg: Segment,
    primary: Port,
    secondary: Port,
    perf: Port,
    raw: Port,
}

fn lab(net: u8) -> Lab {
    root_required();
    assert!(
        std::path::Path::new("/usr/sbin/perfdhcp").is_file(),
        "perfdhcp is not installed: cargo xtask setup (Debian package kea-admin)"
    );
    let mut seg = Segment::new().unwrap();
    let primary = seg.port("pri", [0x02, net, 0, 0, 0, 1], Some(ip(net, 1))).unwrap();
    let secondary = seg.port("sec", [0x02, net, 0, 0, 0, 2], Some(ip(net, 2))).unwrap();
    let perf = seg.port("perf", [0x02, net, 0, 0, 0, 3], Some(ip(net, 3))).unwrap();
    let raw = seg.port("raw", [0x02, net, 0, 0, 0, 4], None).unwrap();
    Lab { _seg: seg, primary, secondary, perf, raw }
}

/// One perfdhcp run from `perf` (a relay) to `server`: DORAs of [`CLIENTS`] clients at
/// [`RATE`], releasing at [`RELEASE_RATE`] (a release follows its ACK at once when one is due),
/// for [`CYCLE_SECS`]. Returns its report.
fn perfdhcp(perf: &Port, server: Ipv4Addr, net: u8) -> String {
    let out_path = std::env::temp_dir().join(format!("{}-perfdhcp.out", perf.ns.name()));
    let out = fs::File::create(&out_path).unwrap();
    let mut child = perf
        .ns
        .exec("perfdhcp")
        .args(["-4", "-l", &perf.iface, "-r", &RATE.to_string(), "-R", &CLIENTS.to_string()])
        .args(["-F", &RELEASE_RATE.to_string(), "-p", &CYCLE_SECS.to_string()])
        .args(["-b", &format!("mac=02:5e:{net:02x}:00:00:00")])
        .arg(server.to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start perfdhcp");
    let deadline = Instant::now() + Duration::from_secs(CYCLE_SECS + 15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("perfdhcp ran past its {CYCLE_SECS} s");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let text = fs::read_to_string(&out_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    // perfdhcp exits 3 when it saw drops (a lease it asked for and did not get): expected
    // here, the secondary balancing its share; anything else is a failure to run.
    assert!(matches!(status.code(), Some(0 | 3)), "perfdhcp {status}:\n{text}");
    text
}

/// perfdhcp's report, its counts only.
fn perf_summary(report: &str) -> String {
    report
        .lines()
        .filter(|l| {
            l.starts_with("***Statistics")
                || l.starts_with("sent packets")
                || l.starts_with("received packets")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A crafted client `mac` on `sock` gets a lease (DISCOVER, OFFER, REQUEST, ACK; up to four
/// DISCOVERs 3 s apart): the address and the server that gave it.
fn dora(sock: &RawSocket, mac: [u8; 6], xid: u32) -> (Ipv4Addr, Ipv4Addr) {
    let wait = Duration::from_secs(3);
    // A server whose share a cycle used up gets addresses back at its next balancing.
    let offer = (0..4)
        .find_map(|_| {
            let discover = lab::client_message(xid, mac, MessageType::Discover);
            sock.exchange(mac, &discover, wait).unwrap()
        })
        .unwrap_or_else(|| panic!("no OFFER for {}", xdhcp::packet::fmt_mac(&mac)));
    let a = offer.msg.yiaddr();
    let Some(DhcpOption::ServerIdentifier(server)) =
        offer.msg.opts().get(OptionCode::ServerIdentifier).cloned()
    else {
        panic!("an OFFER without a server identifier: {:?}", offer.msg);
    };
    let mut req = lab::client_message(xid + 1, mac, MessageType::Request);
    req.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    req.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    let ack = sock.exchange(mac, &req, wait).unwrap().expect("an ACK");
    assert_eq!(
        (ack.msg.opts().msg_type(), ack.msg.yiaddr()),
        (Some(MessageType::Ack), a),
        "{:?}",
        ack.msg
    );
    (a, server)
}

/// The crafted client `mac`, bound to `a` by `server`, releases it as RFC 2131 says: unicast
/// from `a` to the server (at `server_mac`), so that only the server that bound it hears it.
fn release(sock: &RawSocket, mac: [u8; 6], xid: u32, a: Ipv4Addr, server: (Ipv4Addr, [u8; 6])) {
    let mut m = lab::client_message(xid, mac, MessageType::Release);
    m.set_flags(dhcproto::v4::Flags::default());
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server.0));
    m.set_ciaddr(a);
    let frame = xdhcp::packet::udp_frame(
        &xdhcp::packet::L2 { dst: server.1, src: mac, vlans: vec![] },
        SocketAddrV4::new(a, dhcp_common::bootp::CLIENT_PORT),
        SocketAddrV4::new(server.0, dhcp_common::bootp::SERVER_PORT),
        &xdhcp::packet::encode(&m),
    );
    sock.send(&frame).unwrap();
}

/// The crafted client `mac`, bound to `a` by `server`, declines it (broadcast: it has no
/// address it could use).
fn decline(sock: &RawSocket, mac: [u8; 6], xid: u32, a: Ipv4Addr, server: Ipv4Addr) {
    let mut m = lab::client_message(xid, mac, MessageType::Decline);
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    sock.send(&lab::client_frame(mac, &m)).unwrap();
}

/// The common cycle, [`CYCLES`] times: perfdhcp's clients lease from `server` and release
/// some of their leases, and [`QUICK`] crafted clients each lease and release in the same
/// second. The same clients come back every cycle. Returns how many leases the crafted
/// clients released.
fn churn(lab: &Lab, server: Ipv4Addr, net: u8, diag: &dyn Fn() -> String) -> usize {
    let sock = RawSocket::open(&lab.raw.ns, &lab.raw.iface).unwrap();
    let mut quick = 0;
    for cycle in 0..CYCLES {
        for k in 0..QUICK {
            let mac = [0x02, 0x9e, net, 0, 0, k];
            let xid = 0x11fe_0000 | (u32::from(cycle) << 8) | (u32::from(k) << 2);
            let (a, by) = dora(&sock, mac, xid);
            let acked = Instant::now();
            assert_eq!(by, server, "split 0: {server} serves every new client");
            let by_mac = if by == ip(net, 1) { lab.primary.mac } else { lab.secondary.mac };
            release(&sock, mac, xid + 2, a, (by, by_mac));
            assert!(acked.elapsed() < Duration::from_millis(200), "the release came late");
            quick += 1;
        }
        let report = perfdhcp(&lab.perf, server, net);
        eprintln!("cycle {cycle}: perfdhcp:\n{}\n{}", perf_summary(&report), diag());
    }
    quick
}

/// Waits until `x`'s store has a settled BACKUP share (the secondary's, after the primary's
/// first balancing): the same non-zero count two polls running.
fn wait_backup_share(net: u8, x: &Xdhcp) {
    let mut last = 0;
    wait_for("the secondary's share", Duration::from_secs(20), || {
        let n = xdhcp_states(net, x).values().filter(|v| *v == "backup").count();
        let settled = n > 0 && n == last;
        last = n;
        Ok(settled.then_some(()))
    })
    .unwrap();
}

/// What `x` answered so far, for the cycles' report.
fn served(x: &Xdhcp) -> String {
    match x.ask(&xdhcp::daemon::ctl::Request::Stats) {
        Ok(v) => format!(
            "received {}, sent {}, {} releases, {} declines, {} refused (pool exhausted)",
            v["received"], v["sent"], v["releases"], v["declines"], v["dropped"]["pool_exhausted"]
        ),
        Err(e) => format!("{e:#}"),
    }
}

/// An xdhcp store's records of the pool on 10.`net`.0.0/24: address → state. A pool address
/// without a record is FREE (the primary's, never handed out), as the pool counts take it.
fn xdhcp_states(net: u8, x: &Xdhcp) -> HashMap<Ipv4Addr, String> {
    let mut states: HashMap<Ipv4Addr, String> =
        (100..=POOL_END).map(|h| (ip(net, h), "free".to_owned())).collect();
    states.extend(
        x.leases().unwrap().iter().filter_map(|l| {
            Some((l["address"].as_str()?.parse().ok()?, l["state"].as_str()?.into()))
        }),
    );
    states
}

/// The last `n` lines of an xdhcp log that are not keep-alives.
fn log_tail(x: &Xdhcp, n: usize) -> String {
    let log = x.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" Contact xid ")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn binding_state(block: &str) -> Option<&str> {
    block
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("binding state ").map(|s| s.trim_end_matches(';')))
}

/// dhcpd's lease file: address → binding state.
fn isc_states(d: &Dhcpd) -> HashMap<Ipv4Addr, String> {
    isc_leases(&d.lease_file())
        .into_iter()
        .map(|(a, b)| (a, binding_state(&b).unwrap_or("").to_owned()))
        .collect()
}

/// The pool's addresses in `states` that are not FREE or BACKUP (or missing), as
/// "address state" lines.
fn not_free(net: u8, states: &HashMap<Ipv4Addr, String>) -> Vec<String> {
    (100..=POOL_END)
        .map(|h| ip(net, h))
        .filter_map(|a| match states.get(&a).map(String::as_str) {
            Some("free" | "backup") => None,
            s => Some(format!("{a} {}", s.unwrap_or("missing"))),
        })
        .collect()
}

/// `x`'s failover pool counts: no address ACTIVE, EXPIRED, RELEASED, ABANDONED or RESET, all
/// of them FREE or BACKUP.
fn assert_pool_counts_free(x: &Xdhcp) -> Value {
    let st = x.failover().unwrap();
    let p = &st["pools"][0];
    for k in ["active", "expired", "released", "abandoned", "reset"] {
        assert_eq!(num(p, k), 0, "{k}: {st}");
    }
    assert_eq!(num(p, "free_primary") + num(p, "backup_secondary"), POOL, "{st}");
    st
}

/// Some lease ran out and went through EXPIRED on the failover link, which `x`'s log shows.
fn assert_expiries_seen(who: &str, x: &Xdhcp) {
    let log = x.log_text();
    let n = log.lines().filter(|l| l.contains("BndUpd") && l.contains(" Expired ends ")).count();
    assert!(n > 0, "{who}: no EXPIRED update sent or received:\n{}", log_tail(x, 40));
}

/// Lines of `log` that mention a reject.
fn rejects(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.to_ascii_lowercase().contains("reject")).collect()
}

/// No reject in `x`'s log (it shows the acks it sent and received) or counters. On failure,
/// every line of its log and of `partner_log` (dhcpd's) that names a rejected address.
fn assert_no_reject(who: &str, x: &Xdhcp, partner_log: Option<&str>) {
    let log = x.log_text();
    let r = rejects(&log);
    if !r.is_empty() {
        let addrs: std::collections::BTreeSet<&str> = r
            .iter()
            .flat_map(|l| l.split(|c: char| !(c.is_ascii_digit() || c == '.')))
            .filter(|w| w.parse::<Ipv4Addr>().is_ok_and(|a| a.octets()[3] >= 100))
            .collect();
        let about = |text: &str| {
            text.lines()
                .filter(|l| {
                    addrs.iter().any(|a| {
                        l.contains(&format!("{a} "))
                            || l.contains(&format!("{a}:"))
                            || l.ends_with(a)
                    })
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{who} logged rejects:\n{}\n\n{who}'s lines about {addrs:?}:\n{}\n\npartner's lines \
             about them:\n{}",
            r.join("\n"),
            about(&log),
            partner_log.map(about).unwrap_or_default()
        );
    }
    let st = x.failover().unwrap();
    assert_eq!(num(&st, "rejects_received_total"), 0, "{who}: {st}");
    assert!(log.contains("failover: received"), "{who}'s log has no failover lines:\n{log}");
}

fn assert_no_isc_reject(d: &Dhcpd) {
    let log = d.log_text();
    let r = rejects(&log);
    assert!(r.is_empty(), "dhcpd logged rejects:\n{}", r.join("\n"));
}

/// Waits until both xdhcp stores have every pool address FREE or BACKUP and agree.
fn wait_pair_settled(net: u8, p: &Xdhcp, s: &Xdhcp, timeout: Duration) {
    let mut last = String::new();
    let settled = wait_for("every address FREE or BACKUP on both", timeout, || {
        let (ps, ss) = (xdhcp_states(net, p), xdhcp_states(net, s));
        let (pn, sn) = (not_free(net, &ps), not_free(net, &ss));
        let differ: Vec<String> = (100..=POOL_END)
            .map(|h| ip(net, h))
            .filter(|a| ps.get(a) != ss.get(a))
            .map(|a| format!("{a} {:?}/{:?}", ps.get(&a), ss.get(&a)))
            .collect();
        last =
            format!("primary: {pn:?}\nsecondary: {sn:?}\ndiffer (primary/secondary): {differ:?}");
        Ok((pn.is_empty() && sn.is_empty() && differ.is_empty()).then_some(()))
    });
    if let Err(e) = settled {
        panic!(
            "{e:#}\n{last}\nprimary's status: {}\nsecondary's status: {}\nprimary's log:\n{}\n\
             secondary's log:\n{}",
            p.failover().map_or_else(|e| format!("{e:#}"), |v| v.to_string()),
            s.failover().map_or_else(|e| format!("{e:#}"), |v| v.to_string()),
            log_tail(p, 40),
            log_tail(s, 40)
        );
    }
}

/// Waits until xdhcp's store and dhcpd's lease file have every pool address FREE or BACKUP and
/// agree.
fn wait_isc_settled(net: u8, x: &Xdhcp, d: &Dhcpd, timeout: Duration) {
    let mut last = String::new();
    let settled = wait_for("every address FREE or BACKUP on both", timeout, || {
        let (xs, ds) = (xdhcp_states(net, x), isc_states(d));
        let (xn, dn) = (not_free(net, &xs), not_free(net, &ds));
        let differ: Vec<String> = (100..=POOL_END)
            .map(|h| ip(net, h))
            .filter(|a| xs.get(a) != ds.get(a))
            .map(|a| format!("{a} {:?}/{:?}", xs.get(&a), ds.get(&a)))
            .collect();
        last = format!("xdhcp: {xn:?}\ndhcpd: {dn:?}\ndiffer (xdhcp/dhcpd): {differ:?}");
        Ok((xn.is_empty() && dn.is_empty() && differ.is_empty()).then_some(()))
    });
    if let Err(e) = settled {
        panic!(
            "{e:#}\n{last}\nxdhcp's status: {}\nxdhcp's log:\n{}\ndhcpd's log:\n{}",
            x.failover().map_or_else(|e| format!("{e:#}"), |v| v.to_string()),
            log_tail(x, 40),
            tail(&d.log_text(), 40)
        );
    }
}

#[test]
fn xdhcp_pair_split_0_releases_and_expiries_leave_every_address_free_on_both() {
    const NET: u8 = 81;
    let t0 = Instant::now();
    let lab = lab(NET);
    let p = Xdhcp::start(&lab.primary, &xdhcp_config(NET, true, 0, "")).unwrap();
    let s = Xdhcp::start(&lab.secondary, &xdhcp_config(NET, false, 0, "")).unwrap();
    p.wait_normal(Duration::from_mins(1)).unwrap();
    s.wait_normal(Duration::from_secs(30)).unwrap();
    wait_backup_share(NET, &s);

    let diag = || format!("primary: {}\nsecondary: {}", served(&p), served(&s));
    let quick = churn(&lab, ip(NET, 2), NET, &diag);
    let served = s.ask(&xdhcp::daemon::ctl::Request::Stats).unwrap();
    assert!(num(&served["sent"], "ack") > u64::from(CLIENTS), "{served}");
    assert!(num(&served, "releases") >= quick as u64, "{served}");
    let churned = Instant::now();

    wait_pair_settled(NET, &p, &s, SETTLE);
    // The primary expires the leases nobody released (a secondary in NORMAL leaves it).
    assert_expiries_seen("the secondary", &s);
    assert_pool_counts_free(&p);
    assert_pool_counts_free(&s);
    assert_no_reject("the primary", &p, Some(&s.log_text()));
    assert_no_reject("the secondary", &s, Some(&p.log_text()));
    eprintln!(
        "xdhcp pair: {} ACKs, {} releases by the secondary; settled {:.1} s after the churn, \
         {:.1} s in all",
        served["sent"]["ack"],
        served["releases"],
        churned.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// xdhcp and dhcpd with split 0, xdhcp the primary (dhcpd serves every new client) or the
/// secondary (xdhcp does).
fn with_isc(net: u8, xdhcp_primary: bool) {
    let t0 = Instant::now();
    let lab = lab(net);
    let (xp, dp) =
        if xdhcp_primary { (&lab.primary, &lab.secondary) } else { (&lab.secondary, &lab.primary) };
    let x = Xdhcp::start(xp, &xdhcp_config(net, xdhcp_primary, 0, "")).unwrap();
    let d = Dhcpd::start(dp, &dhcpd_config(net, !xdhcp_primary), None).unwrap();
    d.wait_log("Both servers normal", Duration::from_secs(90)).unwrap();
    x.wait_normal(Duration::from_secs(30)).unwrap();
    let normal_after = t0.elapsed();
    wait_backup_share(net, &x);

    let diag = || format!("xdhcp: {}", served(&x));
    let quick = churn(&lab, ip(net, 2), net, &diag);
    if !xdhcp_primary {
        let served = x.ask(&xdhcp::daemon::ctl::Request::Stats).unwrap();
        assert!(num(&served, "releases") >= quick as u64, "{served}");
    }
    let churned = Instant::now();

    wait_isc_settled(net, &x, &d, SETTLE);
    assert_expiries_seen("xdhcp", &x);
    assert_pool_counts_free(&x);
    assert_no_reject("xdhcp", &x, Some(&d.log_text()));
    assert_no_isc_reject(&d);
    eprintln!(
        "xdhcp {} with dhcpd, split 0: NORMAL after {:.1} s, settled {:.1} s after the churn, \
         {:.1} s in all",
        if xdhcp_primary { "primary" } else { "secondary" },
        normal_after.as_secs_f64(),
        churned.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn xdhcp_primary_isc_secondary_split_0_releases_and_expiries_leave_every_address_free() {
    with_isc(82, true);
}

#[test]
fn isc_primary_xdhcp_secondary_split_0_releases_and_expiries_leave_every_address_free() {
    with_isc(83, false);
}

/// A declined address goes ABANDONED on both servers, whichever declined it, and after the
/// probation comes back FREE (or BACKUP) on both.
#[test]
fn xdhcp_pair_declines_on_each_server_come_back_after_probation() {
    const NET: u8 = 84;
    let t0 = Instant::now();
    let lab = lab(NET);
    let top = format!("probation = {PROBATION}\n");
    let split = PairConfig::SPLIT;
    let p = Xdhcp::start(&lab.primary, &xdhcp_config(NET, true, split, &top)).unwrap();
    let s = Xdhcp::start(&lab.secondary, &xdhcp_config(NET, false, split, &top)).unwrap();
    p.wait_normal(Duration::from_mins(1)).unwrap();
    s.wait_normal(Duration::from_secs(30)).unwrap();
    // Balancing done: an address the secondary takes is from its share for good.
    wait_for("the secondary's share", Duration::from_secs(15), || {
        let n = xdhcp_states(NET, &s).values().filter(|v| *v == "backup").count();
        Ok((n as u64 == POOL / 2).then_some(()))
    })
    .unwrap();

    let sock = RawSocket::open(&lab.raw.ns, &lab.raw.iface).unwrap();
    let mut declined = Vec::new();
    for (k, by_primary) in [(1u8, true), (2, false), (3, true), (4, false)] {
        let mac = mac_served_by(by_primary, split, k);
        let xid = 0xdec1_0000 | (u32::from(k) << 4);
        let (a, by) = dora(&sock, mac, xid);
        assert_eq!(by, ip(NET, if by_primary { 1 } else { 2 }), "the split decides");
        decline(&sock, mac, xid + 2, a, by);
        declined.push((a, by));
    }
    let declined_at = Instant::now();
    wait_for("every declined address ABANDONED on both", Duration::from_secs(10), || {
        let (ps, ss) = (xdhcp_states(NET, &p), xdhcp_states(NET, &s));
        let all = declined.iter().all(|(a, _)| {
            ps.get(a).map(String::as_str) == Some("abandoned")
                && ss.get(a).map(String::as_str) == Some("abandoned")
        });
        Ok(all.then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\ndeclined {declined:?}\nprimary: {:?}\nsecondary: {:?}",
            declined.iter().map(|(a, _)| xdhcp_states(NET, &p).get(a).cloned()).collect::<Vec<_>>(),
            declined.iter().map(|(a, _)| xdhcp_states(NET, &s).get(a).cloned()).collect::<Vec<_>>()
        )
    });

    wait_pair_settled(NET, &p, &s, Duration::from_secs(PROBATION + 40));
    let back_after = declined_at.elapsed();
    // The store keeps whole seconds, and the first decline went out before `declined_at`.
    assert!(
        back_after >= Duration::from_secs(PROBATION - 2),
        "back after {back_after:?}, before the probation"
    );
    assert_pool_counts_free(&p);
    assert_pool_counts_free(&s);
    assert_no_reject("the primary", &p, Some(&s.log_text()));
    assert_no_reject("the secondary", &s, Some(&p.log_text()));
    eprintln!(
        "declines: {} addresses ABANDONED on both, FREE again on both {:.1} s later, {:.1} s in \
         all",
        declined.len(),
        back_after.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

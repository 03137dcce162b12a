//! No address gets stuck (draft-ietf-dhc-failover-12 §5.11), over real sockets: clients that
//! release (some in the same second as their ACK), let short leases expire and decline, over
//! several cycles, on an xdhcp pair and on xdhcp with ISC dhcpd 4.4 in both roles. Afterwards
//! every pool address is FREE or BACKUP on both sides (no client holds one any more), both
//! databases say the same, and no log shows a reject (but for two updates that crossed about
//! a DECLINE both servers heard, with dhcpd).
//!
//! The primary's split is 0 (the secondary serves every new client) except for the DECLINE
//! scenarios (an xdhcp pair, and xdhcp with dhcpd in both roles), where each server serves
//! and declines are made on each. The bulk of the clients
//! is perfdhcp acting as a relay, unicasting to the serving server, releasing some of its
//! leases and letting the others run out; a few crafted clients (a packet socket) release each
//! lease at once after its ACK.
use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use dhcp_lab::lab::RawSocket;
use integration::{
    failover_lab::{
        Dhcpd, Expected, PairConfig, Perfdhcp, Port, Segment, Xdhcp, active, agreed_backup_share,
        assert_no_isc_reject, assert_no_reject, assert_pool_counts, decline, dora, dora_clients,
        isc_active, isc_states, lines_about, log_tail, mac_served_by, num, perf_summary, rejects,
        rejects_but_crossings, release, tail, wait_for, wait_isc_settled, wait_pair_settled,
        xdhcp_states,
    },
    fixture::root_required,
};

/// Short leases, so that the clients that neither renew nor release run out within the test.
/// The first lease of a client is at most the MCLT (the partner has acknowledged nothing yet).
const LEASE: u64 = 20;
const MCLT: u64 = 10;
/// The shared pool, .100 to .`POOL_END`.
const POOL_END: u8 = 199;
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
    pair(net).render_with(primary, split, top, "", "")
}

/// dhcpd's side of the same pair, split 0 when it is the primary.
fn dhcpd_config(net: u8, primary: bool) -> String {
    dhcpd_config_split(net, primary, 0, "")
}

/// dhcpd's side of the same pair, the primary splitting the pool at `split`, `top` added at
/// the top level.
fn dhcpd_config_split(net: u8, primary: bool, split: u16, top: &str) -> String {
    pair(net).render_dhcpd(primary, split, top, "  min-balance 2;\n  max-balance 4;\n", "")
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
        let report = perfdhcp(net).run(&lab.perf, &server.to_string());
        eprintln!("cycle {cycle}: perfdhcp:\n{}\n{}", perf_summary(&report), diag());
    }
    quick
}

/// One perfdhcp run (a relay): DORAs of [`CLIENTS`] clients at [`RATE`], releasing at
/// [`RELEASE_RATE`], for [`CYCLE_SECS`].
fn perfdhcp(net: u8) -> Perfdhcp {
    Perfdhcp {
        clients: CLIENTS,
        rate: RATE,
        release_rate: RELEASE_RATE,
        secs: CYCLE_SECS,
        mac_base: format!("02:5e:{net:02x}:00:00:00"),
    }
}

/// Waits until `x`'s store has a settled BACKUP share (the secondary's, after the primary's
/// first balancing): the same non-zero count two polls running.
fn wait_backup_share(net: u8, x: &Xdhcp) {
    let mut last = 0;
    wait_for("the secondary's share", Duration::from_secs(20), || {
        let n = xdhcp_states(&pair(net), x).values().filter(|v| *v == "backup").count();
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

/// Some lease ran out and went through EXPIRED on the failover link, which `x`'s log shows.
fn assert_expiries_seen(who: &str, x: &Xdhcp) {
    let log = x.log_text();
    let n = log.lines().filter(|l| l.contains("BndUpd") && l.contains(" Expired ends ")).count();
    assert!(n > 0, "{who}: no EXPIRED update sent or received:\n{}", log_tail(x, 40));
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

    wait_pair_settled(&pair(NET), &p, &s, &Expected::new(), SETTLE);
    // The primary expires the leases nobody released (a secondary in NORMAL leaves it).
    assert_expiries_seen("the secondary", &s);
    assert_pool_counts(&pair(NET), &p, &Expected::new());
    assert_pool_counts(&pair(NET), &s, &Expected::new());
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

    wait_isc_settled(&pair(net), &x, &d, &Expected::new(), SETTLE);
    assert_expiries_seen("xdhcp", &x);
    assert_pool_counts(&pair(net), &x, &Expected::new());
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
        let n = xdhcp_states(&pair(NET), &s).values().filter(|v| *v == "backup").count();
        Ok((n as u64 == pair(NET).pool_size() / 2).then_some(()))
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
        let (ps, ss) = (xdhcp_states(&pair(NET), &p), xdhcp_states(&pair(NET), &s));
        let all = declined.iter().all(|(a, _)| {
            ps.get(a).map(String::as_str) == Some("abandoned")
                && ss.get(a).map(String::as_str) == Some("abandoned")
        });
        Ok(all.then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\ndeclined {declined:?}\nprimary: {:?}\nsecondary: {:?}",
            declined
                .iter()
                .map(|(a, _)| xdhcp_states(&pair(NET), &p).get(a).cloned())
                .collect::<Vec<_>>(),
            declined
                .iter()
                .map(|(a, _)| xdhcp_states(&pair(NET), &s).get(a).cloned())
                .collect::<Vec<_>>()
        )
    });

    wait_pair_settled(&pair(NET), &p, &s, &Expected::new(), Duration::from_secs(PROBATION + 40));
    let back_after = declined_at.elapsed();
    // The store keeps whole seconds, and the first decline went out before `declined_at`.
    assert!(
        back_after >= Duration::from_secs(PROBATION - 2),
        "back after {back_after:?}, before the probation"
    );
    assert_pool_counts(&pair(NET), &p, &Expected::new());
    assert_pool_counts(&pair(NET), &s, &Expected::new());
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

/// DECLINEs on xdhcp and on dhcpd, xdhcp the primary or the secondary; the split has each
/// serve half the new clients.
///
/// What dhcpd 4.4 does with a declined address (server/dhcp.c `dhcpdecline`, mdb.c
/// `abandon_lease`, `pool_timer`): it is ABANDONED until `abandon-lease-time` (a day by
/// default; here [`PROBATION`], xdhcp's `probation`) has passed, then FREE, and dhcpd tells its
/// partner, in either role. Meanwhile only the primary hands one out, and only as a last
/// resort, its pool otherwise exhausted. dhcpd abandons an address whichever server the client
/// declined it to (the DECLINE is broadcast), so both servers abandon what a client of xdhcp
/// declines, and their two ABANDONED updates cross on the wire; dhcpd takes a partner's FREE
/// over ABANDONED in any state, where the draft's Figure 7.1.3-1 refuses it.
///
/// Checked: every declined address is ABANDONED on both; while the probation runs, new
/// clients get none of them (with xdhcp the primary they take every other address of both
/// shares); afterwards all are FREE (or BACKUP) on both, not before the probation; the only
/// rejects are of updates that crossed about a DECLINE both servers heard.
fn declines_with_isc(net: u8, xdhcp_primary: bool) {
    let t0 = Instant::now();
    let lab = lab(net);
    let (xp, dp) =
        if xdhcp_primary { (&lab.primary, &lab.secondary) } else { (&lab.secondary, &lab.primary) };
    let split = PairConfig::SPLIT;
    let top = format!("probation = {PROBATION}\n");
    let x = Xdhcp::start(xp, &xdhcp_config(net, xdhcp_primary, split, &top)).unwrap();
    // dhcpd's probation: how long an address it abandoned stays so.
    let isc_top = format!("abandon-lease-time {PROBATION};\n");
    let d =
        Dhcpd::start(dp, &dhcpd_config_split(net, !xdhcp_primary, split, &isc_top), None).unwrap();
    d.wait_log("Both servers normal", Duration::from_secs(90)).unwrap();
    x.wait_normal(Duration::from_secs(30)).unwrap();
    let half = pair(net).pool_size() / 2;
    let _ = agreed_backup_share(&x, &d, xdhcp_primary.then_some(half));

    let sock = RawSocket::open(&lab.raw.ns, &lab.raw.iface).unwrap();
    let (x_ip, d_ip) =
        (ip(net, if xdhcp_primary { 1 } else { 2 }), ip(net, if xdhcp_primary { 2 } else { 1 }));
    let mut by_xdhcp = Vec::new();
    let mut by_dhcpd = Vec::new();
    for (k, on_xdhcp) in [(1u8, true), (2, false), (3, true), (4, false)] {
        let mac = mac_served_by(on_xdhcp == xdhcp_primary, split, k);
        let xid = 0xdec2_0000 | (u32::from(k) << 4);
        let (a, by) = dora(&sock, mac, xid);
        assert_eq!(by, if on_xdhcp { x_ip } else { d_ip }, "the split decides");
        decline(&sock, mac, xid + 2, a, by);
        if on_xdhcp { by_xdhcp.push(a) } else { by_dhcpd.push(a) }
    }
    let declined_at = Instant::now();
    let all: Vec<Ipv4Addr> = by_xdhcp.iter().chain(&by_dhcpd).copied().collect();
    let abandoned_on_both = || {
        let (xs, ds) = (xdhcp_states(&pair(net), &x), isc_states(&d));
        all.iter().all(|a| xs[a] == "abandoned" && ds.get(a).is_some_and(|s| s == "abandoned"))
    };
    wait_for("every declined address ABANDONED on both", Duration::from_secs(10), || {
        Ok(abandoned_on_both().then_some(()))
    })
    .unwrap_or_else(|e| {
        let (xs, ds) = (xdhcp_states(&pair(net), &x), isc_states(&d));
        panic!(
            "{e:#}\ndeclined on xdhcp {by_xdhcp:?}, on dhcpd {by_dhcpd:?}\nxdhcp: {:?}\n\
             dhcpd: {:?}\nxdhcp's lines about them:\n{}\ndhcpd's:\n{}",
            all.iter().map(|a| xs.get(a)).collect::<Vec<_>>(),
            all.iter().map(|a| ds.get(a)).collect::<Vec<_>>(),
            lines_about(&x.log_text(), &all),
            lines_about(&d.log_text(), &all)
        )
    });
    for a in &by_dhcpd {
        d.wait_log(&format!("Abandoning IP address {a}: declined"), Duration::ZERO).unwrap();
    }

    // While the probation runs new clients come, and neither server hands them a declined
    // address. With xdhcp the primary they take every other address of both shares: neither
    // xdhcp nor a dhcpd secondary reclaims an abandoned one. A dhcpd primary does reclaim one
    // once its own share is used up ("Reclaiming abandoned lease", as a last resort), so there
    // they take fewer than its share holds.
    let wanted = if xdhcp_primary { pair(net).pool_size() + 20 } else { 40 };
    let got =
        dora_clients(&lab.raw, u32::try_from(wanted).unwrap(), 7, Duration::from_secs(8)).unwrap();
    assert!(
        declined_at.elapsed() < Duration::from_secs(PROBATION - 2),
        "the probation ran out first"
    );
    if !xdhcp_primary {
        assert_eq!(got, wanted, "every client served");
    }
    let (xa, da) = (active(&x), isc_active(&d));
    let handed: Vec<Ipv4Addr> =
        all.iter().filter(|a| xa.contains_key(a) || da.contains_key(a)).copied().collect();
    assert!(
        handed.is_empty(),
        "declined addresses handed out during the probation: {handed:?}\n{}",
        tail(&d.log_text(), 30)
    );
    eprintln!("declines with dhcpd: {got} new clients served while the probation ran");

    // Those clients' leases (MCLT) run out, the probations end (xdhcp's, and dhcpd's
    // `abandon-lease-time`): every declined address is FREE (or BACKUP) on both again.
    let expect = Expected::new();
    wait_isc_settled(&pair(net), &x, &d, &expect, Duration::from_secs(PROBATION + LEASE + 40));
    let back_after = declined_at.elapsed();
    assert!(
        back_after >= Duration::from_secs(PROBATION - 2),
        "back after {back_after:?}, before the probation"
    );
    assert_pool_counts(&pair(net), &x, &expect);
    // Only updates that crossed about a DECLINE both servers heard were refused.
    let (xlog, dlog) = (x.log_text(), d.log_text());
    let (xr, dr) =
        (rejects_but_crossings(&xlog, &by_xdhcp), rejects_but_crossings(&dlog, &by_xdhcp));
    assert!(xr.is_empty() && dr.is_empty(), "xdhcp's rejects:\n{xr:#?}\ndhcpd's:\n{dr:#?}");
    eprintln!(
        "declines with dhcpd (xdhcp {}): {} declined on xdhcp and {} on dhcpd, FREE again on \
         both {:.1} s later; {} crossing rejects; {:.1} s in all",
        if xdhcp_primary { "primary" } else { "secondary" },
        by_xdhcp.len(),
        by_dhcpd.len(),
        back_after.as_secs_f64(),
        rejects(&xlog).len() + rejects(&dlog).len(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn xdhcp_primary_isc_secondary_declines_on_either_come_back_after_probation() {
    declines_with_isc(85, true);
}

#[test]
fn isc_primary_xdhcp_secondary_declines_on_either_come_back_after_probation() {
    declines_with_isc(88, false);
}

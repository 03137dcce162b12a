//! Faults the failover protocol exists for, beyond a dead xdhcp primary (`failover_faults.rs`):
//! a partition of the failover link with both servers still serving (an xdhcp pair, and xdhcp
//! with dhcpd), and an ISC dhcpd partner that crashes and comes back.
//!
//! A partition is the dangerous one: both servers see their clients but not each other, both
//! go COMMUNICATIONS-INTERRUPTED and keep serving new clients. The protocol's promise is that
//! each serves only its own share, so when the link heals no address is held by two clients.
//! A crashed dhcpd is the everyday one: xdhcp must behave as it does with an xdhcp partner, and
//! dhcpd, coming back, must recover through xdhcp and end up knowing every binding xdhcp made
//! while it was gone.
use std::{
    collections::{HashMap, HashSet},
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use dhcp_lab::lab::RawSocket;
use integration::{
    failover_lab::{
        Answer, Dhcpd, Expected, PairConfig, Port, Renewers, Segment, StopOnDrop, Udhcpc, Xdhcp,
        active, agreed_backup_share, assert_no_isc_reject, assert_no_reject,
        assert_one_address_per_client, assert_pool_counts, bound, cut_off_serves_its_own_share,
        dora_clients, dora_from, double_bound, in_state, isc_active, isc_records, lines_about,
        log_tail, mac_served_by, num, state_is, tail, wait_for, wait_isc_settled,
    },
    fixture::root_required,
};
use xdhcp::daemon::ctl::Request;

/// Short, to keep the tests bounded: it is the wait between partner-down and the takeover, and
/// a recovering server's time in RECOVER-WAIT.
const MCLT: u64 = 30;

/// A pair of xdhcp and dhcpd on 10.`net`.0.0/24, the pool ending at .`pool_end`.
fn pair(net: u8, pool_end: u8) -> PairConfig<'static> {
    PairConfig {
        name: "edge-faults",
        net,
        pool_end,
        lease_secs: 600,
        mclt: MCLT,
        max_response_delay: 5,
        // dhcpd's value: it acknowledges once half of ours are pending (or after 2 s).
        failover_more: "max_unacked_updates = 10\n",
    }
}

/// xdhcp's side of a pair with dhcpd on 10.`net`.0.0/24, the pool ending at .`pool_end`.
fn xdhcp_config(net: u8, primary: bool, pool_end: u8) -> String {
    pair(net, pool_end).render(primary, "")
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, partition to heal, read top to bottom")]
fn partition_both_serve_their_own_share_then_heal_without_duplicates() {
    const NET: u8 = 95;
    const POOL: u64 = 20;
    const EARLY: u8 = 4;
    const LATE: u8 = 6;
    root_required();
    let t0 = Instant::now();
    let (pip, sip) = (Ipv4Addr::new(10, NET, 0, 1), Ipv4Addr::new(10, NET, 0, 2));
    let mut seg = Segment::new().unwrap();
    let pa = seg.port("pri", [0x02, NET, 0, 0, 0, 1], Some(pip)).unwrap();
    let sa = seg.port("sec", [0x02, NET, 0, 0, 0, 2], Some(sip)).unwrap();
    let clients = seg.port("cl", [0x02, NET, 0, 0, 0, 3], None).unwrap();
    let p = Xdhcp::start(&pa, &xdhcp_config(NET, true, 119)).unwrap();
    let s = Xdhcp::start(&sa, &xdhcp_config(NET, false, 119)).unwrap();
    p.wait_normal(Duration::from_mins(1)).unwrap();
    s.wait_normal(Duration::from_secs(30)).unwrap();
    // The addresses the secondary may hand out on its own, now and while cut off.
    let s_share = wait_for("the secondary's share", Duration::from_secs(15), || {
        let share = in_state(&s, "backup");
        Ok((share.len() as u64 == POOL / 2).then_some(share))
    })
    .unwrap();
    // A few real clients (they renew, so their leases last) before the cut.
    let mut real = Vec::new();
    let start = |seg: &mut Segment, k: u8| {
        let port = seg.port(&format!("u{k}"), [0x02, 0xf5, NET, 0, 0, k], None).unwrap();
        let c = Udhcpc::start(&port).unwrap();
        (port, c)
    };
    for k in 0..EARLY {
        real.push(start(&mut seg, k));
    }
    for (_, c) in &real {
        c.wait_bound(Duration::from_secs(30)).unwrap();
    }
    wait_for("the first leases on both servers", Duration::from_secs(15), || {
        Ok((active(&p).len() == EARLY as usize && active(&s) == active(&p)).then_some(()))
    })
    .unwrap();

    // The failover link breaks; the clients' segment does not.
    pa.cut_from(sip).unwrap();
    sa.cut_from(pip).unwrap();
    let cut = Instant::now();
    for x in [&p, &s] {
        wait_for("COMMUNICATIONS-INTERRUPTED", Duration::from_secs(30), || {
            state_is(x, "communications-interrupted")
        })
        .unwrap();
    }
    let interrupted_after = cut.elapsed();

    // New clients: each hears both servers, and each server answers from its own share only,
    // until that share is used up.
    for k in EARLY..EARLY + LATE {
        real.push(start(&mut seg, k));
    }
    let mut got = Vec::new();
    for (port, c) in &real {
        let b = c.wait_bound(Duration::from_secs(30)).unwrap();
        got.push((xdhcp::packet::fmt_mac(&port.mac), b.ip.unwrap(), b.server.unwrap()));
    }
    let newcomers = dora_clients(&clients, 60, 2, Duration::from_secs(10)).unwrap();
    for x in [&p, &s] {
        let st = x.failover().unwrap();
        assert_eq!(st["my_state"], "communications-interrupted", "{st}");
        assert!(num(&st, "refused_share_exhausted_total") > 0, "both shares used up: {st}");
    }
    let (pa_now, sa_now) = (active(&p), active(&s));
    let p_new: Vec<Ipv4Addr> = pa_now.keys().filter(|a| !s_share.contains(a)).copied().collect();
    let s_new: Vec<Ipv4Addr> = sa_now.keys().filter(|a| s_share.contains(a)).copied().collect();
    assert!(!p_new.is_empty() && !s_new.is_empty(), "both serve: {p_new:?} {s_new:?}");
    let clash = double_bound(&pa_now, &sa_now);
    assert!(clash.is_empty(), "while partitioned: {clash:?}");
    // What each real client was told is what the server that told it recorded, from its share.
    let ips: HashSet<Ipv4Addr> = got.iter().map(|g| g.1).collect();
    assert_eq!(ips.len(), got.len(), "two clients told the same address: {got:?}");
    for (m, ip, server) in got.iter().skip(EARLY as usize) {
        let (store, theirs) = if *server == pip { (&pa_now, false) } else { (&sa_now, true) };
        assert_eq!(store.get(ip), Some(m), "{ip} from {server}");
        assert_eq!(s_share.contains(ip), theirs, "{ip} from {server}: not its own share");
    }
    eprintln!(
        "partition: both COMMUNICATIONS-INTERRUPTED {:.1} s after the cut; {} real and {newcomers} \
         simulated new clients served, both shares used up",
        interrupted_after.as_secs_f64(),
        LATE
    );

    // The link heals: both back to NORMAL, each learning what the other bound meanwhile.
    let healed = Instant::now();
    pa.heal_to(sip).unwrap();
    sa.heal_to(pip).unwrap();
    // Each side retries the connection every 90 s after a silent partner, so healing shows
    // only at the next attempt.
    p.wait_normal(Duration::from_mins(2)).unwrap();
    s.wait_normal(Duration::from_secs(20)).unwrap();
    wait_for("both stores with every real client", Duration::from_secs(30), || {
        let (pn, sn) = (active(&p), active(&s));
        let clash = double_bound(&pn, &sn);
        assert!(clash.is_empty(), "after healing: {clash:?}");
        let all = got.iter().all(|(m, ip, _)| pn.get(ip) == Some(m) && sn.get(ip) == Some(m));
        Ok(all.then_some(()))
    })
    .unwrap();
    let pn = active(&p);
    assert_one_address_per_client(&pn);
    eprintln!(
        "partition: healed to NORMAL in {:.1} s, {} bindings on both sides, no duplicates, \
         {:.1} s in all",
        healed.elapsed().as_secs_f64(),
        pn.len(),
        t0.elapsed().as_secs_f64()
    );
    drop(real);
}

/// dhcpd's side of the pair, the secondary at .2 or the primary at .1, sharing the pool
/// 10.net.0.100 to 10.net.0.`pool_end` as [`xdhcp_config`] does.
fn dhcpd_config(net: u8, primary: bool, pool_end: u8) -> String {
    pair(net, pool_end).render_dhcpd(primary, PairConfig::SPLIT, "", "", "")
}

/// An xdhcp and a dhcpd on a segment of their own (10.`net`.0.0/24, pool .100 to
/// .`pool_end`), xdhcp the primary or the secondary, both NORMAL: the segment, xdhcp's,
/// dhcpd's and the clients' ports, dhcpd's config, the two servers.
fn isc_pair(
    net: u8,
    xdhcp_primary: bool,
    pool_end: u8,
) -> (Segment, Port, Port, Port, String, Xdhcp, Dhcpd) {
    let (xh, dh) = if xdhcp_primary { (1, 2) } else { (2, 1) };
    let mut seg = Segment::new().unwrap();
    let xa = seg.port("xd", [0x02, net, 0, 0, 0, xh], Some(Ipv4Addr::new(10, net, 0, xh))).unwrap();
    let da =
        seg.port("isc", [0x02, net, 0, 0, 0, dh], Some(Ipv4Addr::new(10, net, 0, dh))).unwrap();
    let clients = seg.port("cl", [0x02, net, 0, 0, 0, 3], None).unwrap();
    let dconf = dhcpd_config(net, !xdhcp_primary, pool_end);
    let x = Xdhcp::start(&xa, &xdhcp_config(net, xdhcp_primary, pool_end)).unwrap();
    let d = Dhcpd::start(&da, &dconf, None).unwrap();
    d.wait_log("Both servers normal", Duration::from_secs(90)).unwrap();
    x.wait_normal(Duration::from_secs(30)).unwrap();
    (seg, xa, da, clients, dconf, x, d)
}

#[test]
fn isc_secondary_crashes_xdhcp_serves_its_share_takes_over_and_dhcpd_recovers() {
    isc_partner_crashes(true, 96);
}

#[test]
fn isc_primary_crashes_xdhcp_serves_its_share_takes_over_and_dhcpd_recovers() {
    isc_partner_crashes(false, 98);
}

/// dhcpd, the partner of an xdhcp primary (or secondary), crashes: xdhcp serves its own share,
/// takes over after partner-down and STOS+MCLT, and dhcpd recovers through it.
#[expect(clippy::too_many_lines, reason = "one scenario, crash to recovery, read top to bottom")]
fn isc_partner_crashes(xdhcp_primary: bool, net: u8) {
    const POOL: u64 = 100;
    const LEASED: u32 = 29;
    root_required();
    let t0 = Instant::now();
    let (_seg, _xa, da, clients, dconf, x, d) = isc_pair(net, xdhcp_primary, 199);
    let _ = agreed_backup_share(&x, &d, xdhcp_primary.then_some(POOL / 2));

    // 29 clients, served by both servers as the split says.
    let leased = dora_clients(&clients, LEASED, 1, Duration::from_secs(20)).unwrap();
    assert_eq!(leased, u64::from(LEASED));
    // What still disagreed at the last look, for the failure message.
    let mut differ = String::new();
    wait_for("all 29 leases in both databases", Duration::from_secs(20), || {
        let ours = active(&x);
        let isc = isc_records(&d);
        let missing: Vec<String> = ours
            .iter()
            .filter(|(a, m)| {
                !isc.get(a).is_some_and(|r| r.0 == "active" && r.1.as_deref() == Some(m))
            })
            .map(|(a, m)| format!("{a} {m}: dhcpd has {:?}", isc.get(a)))
            .collect();
        differ = format!("xdhcp has {} active; not so in dhcpd: {missing:?}", ours.len());
        Ok((ours.len() == LEASED as usize && missing.is_empty()).then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{differ}\nxdhcp's failover: {}\ndhcpd's log:\n{}",
            x.failover().map_or_else(|e| format!("{e:#}"), |v| v.to_string()),
            tail(&d.log_text(), 40)
        )
    });

    // dhcpd crashes.
    let ddir = d.crash();
    // 100 new clients: xdhcp serves exactly its own share and says why it stops.
    let free = POOL - u64::from(LEASED);
    let (own, theirs) = cut_off_serves_its_own_share(&x, &clients, free, Duration::from_secs(30));
    if xdhcp_primary {
        assert!(own >= 30, "at least as many as dhcpd's own secondary served (30): {own}");
    }
    let metrics = x.ask(&Request::Metrics).unwrap();
    let text = metrics["text"].as_str().unwrap_or_default();
    let want = format!(
        "xdhcp_failover_share_free{{relationship=\"edge-faults\",subnet=\"10.{net}.0.0/24\",owner=\"partner\"}} {theirs}"
    );
    assert!(text.contains(&want), "{text}");

    // The operator declares dhcpd down; its addresses are used only after STOS+MCLT.
    let declared =
        x.ask(&Request::FailoverPartnerDown { confirm: true, relationship: None }).unwrap();
    let usable_in = num(&declared, "usable_in_secs");
    assert!((MCLT - 2..=MCLT).contains(&usable_in), "{declared}");
    let early = dora_clients(&clients, 100, 3, Duration::from_secs(4)).unwrap();
    assert_eq!(early, 0, "dhcpd's addresses were used before STOS+MCLT");
    let usable_at = Instant::now() + Duration::from_secs(usable_in);
    while Instant::now() < usable_at + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let later = dora_clients(&clients, 100, 3, Duration::from_secs(15)).unwrap();
    assert_eq!(later, theirs, "every address of dhcpd's share");
    assert_eq!(own + later, POOL - u64::from(LEASED), "every free address is served");
    let handed_out = bound(&x, &["active", "expired", "released"]);
    eprintln!(
        "isc faults (xdhcp {}): dhcpd crashed; xdhcp served {own} from its share, then \
         {later} more after partner-down + MCLT, {:.1} s",
        if xdhcp_primary { "primary" } else { "secondary" },
        t0.elapsed().as_secs_f64()
    );

    // dhcpd returns with its lease file: it finds xdhcp in PARTNER-DOWN, recovers, and learns
    // every binding made without it.
    let back = Instant::now();
    let log_before = std::fs::read_to_string(ddir.path().join("dhcpd.log")).unwrap();
    let normal_before = log_before.matches("Both servers normal").count();
    let d = Dhcpd::start(&da, &dconf, Some(ddir)).unwrap();
    // dhcpd can pass through RECOVER and RECOVER-DONE within a tenth of a second (xdhcp's
    // database is small and the MCLT short), quicker than any poll of xdhcp's status: its own
    // log is the record of what it went through.
    let since_restart = || d.log_text().get(log_before.len()..).unwrap_or_default().to_owned();
    for (what, line) in [
        ("dhcpd to recover", "I move from startup to recover"),
        ("dhcpd in RECOVER-DONE", "to recover-done"),
    ] {
        wait_for(what, Duration::from_secs(MCLT + 30), || {
            Ok(since_restart().contains(line).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", tail(&d.log_text(), 40)));
    }
    wait_for("xdhcp's bindings in dhcpd's lease file", Duration::from_secs(20), || {
        let isc = isc_records(&d);
        let missing: Vec<_> = handed_out
            .iter()
            .filter(|(a, m)| isc.get(a).and_then(|r| r.1.as_ref()) != Some(m))
            .collect();
        if missing.is_empty() {
            Ok(Some(()))
        } else {
            Err(anyhow::anyhow!("{} missing, e.g. {:?}", missing.len(), missing.first()))
        }
    })
    .unwrap_or_else(|e| panic!("{e:#}\nlease file:\n{}", tail(&d.lease_file(), 40)));
    // dhcpd in RECOVER-DONE: xdhcp goes NORMAL once dhcpd has acknowledged what it handed
    // out of dhcpd's share, and dhcpd follows.
    let normal = x.wait_normal(Duration::from_mins(1));
    let st = x.failover().unwrap();
    assert!(
        normal.is_ok(),
        "xdhcp stayed {} ({} updates unacked, {} queued)\ndhcpd log:\n{}",
        st["my_state"],
        st["updates_unacked"],
        st["updates_queued"],
        tail(&d.log_text(), 30)
    );
    wait_for("dhcpd NORMAL again", Duration::from_secs(20), || {
        let n = d.log_text().matches("Both servers normal").count();
        Ok((n > normal_before).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", tail(&d.log_text(), 30)));
    eprintln!(
        "isc faults: dhcpd recovered with {} bindings reconciled {:.1} s after restart, \
         {:.1} s in all",
        handed_out.len(),
        back.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn partition_with_dhcpd_each_serves_its_own_share_and_the_heal_leaves_no_duplicates() {
    const NET: u8 = 97;
    const POOL: u64 = 20;
    root_required();
    let t0 = Instant::now();
    let (xip, dip) = (Ipv4Addr::new(10, NET, 0, 1), Ipv4Addr::new(10, NET, 0, 2));
    let (_seg, xa, da, clients, _dconf, x, d) = isc_pair(NET, true, 119);
    let d_share = agreed_backup_share(&x, &d, Some(POOL / 2));

    // The failover link breaks; the clients' segment does not.
    xa.cut_from(dip).unwrap();
    da.cut_from(xip).unwrap();
    wait_for("xdhcp COMMUNICATIONS-INTERRUPTED", Duration::from_secs(30), || {
        state_is(&x, "communications-interrupted")
    })
    .unwrap();
    d.wait_log("I move from normal to communications-interrupted", Duration::from_secs(30))
        .unwrap();

    // New clients hear both servers and take the first offer, which is xdhcp's: it serves its
    // whole share. The addresses dhcpd offered the same clients stay reserved for them in
    // dhcpd ("uid lease ... is duplicate", then "peer holds all free leases" for everyone
    // else), so dhcpd may serve none; what matters is that neither touches the other's share.
    let served = dora_clients(&clients, 40, 2, Duration::from_secs(10)).unwrap();
    let ours = active(&x);
    let theirs = isc_active(&d);
    assert!(!ours.is_empty(), "xdhcp served nobody while cut off");
    if theirs.is_empty() {
        // Nobody took dhcpd's offers, so none of xdhcp's went unanswered either.
        assert_eq!(ours.len() as u64, POOL / 2, "xdhcp serves all of its own share: {ours:?}");
    }
    assert_eq!((ours.len() + theirs.len()) as u64, served, "{ours:?} {theirs:?}");
    for a in ours.keys() {
        assert!(!d_share.contains(a), "xdhcp used dhcpd's {a} while cut off");
    }
    for a in theirs.keys() {
        assert!(d_share.contains(a), "dhcpd used xdhcp's {a} while cut off");
    }
    let clash = double_bound(&ours, &theirs);
    assert!(clash.is_empty(), "while partitioned: {clash:?}");
    eprintln!(
        "isc partition: xdhcp served {} and dhcpd {} new clients from their own shares",
        ours.len(),
        theirs.len()
    );

    // The link heals: both NORMAL, each knowing what the other bound meanwhile.
    let healed = Instant::now();
    let normal_before = d.log_text().matches("Both servers normal").count();
    xa.heal_to(dip).unwrap();
    da.heal_to(xip).unwrap();
    // Each side retries a silent partner every 90 s or so.
    x.wait_normal(Duration::from_secs(150)).unwrap_or_else(|e| {
        panic!("{e:#}\nlog:\n{}", tail(&d.log_text(), 30));
    });
    wait_for("dhcpd NORMAL again", Duration::from_secs(20), || {
        Ok((d.log_text().matches("Both servers normal").count() > normal_before).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", tail(&d.log_text(), 30)));
    // The clients got MCLT-long leases (the partner had acknowledged nothing of them) and do
    // not renew, so by the time the link is back they have run out: taken from xdhcp's share
    // while cut off, they rewind to free (draft-12 §5.2.2) and dhcpd never needs to hear of
    // them. What must hold is that no address is bound to two clients in the two databases.
    let clash = double_bound(&active(&x), &isc_active(&d));
    assert!(clash.is_empty(), "after healing: {clash:?}");
    // The healed pair serves new clients together again, and both databases agree on them.
    let after = dora_clients(&clients, 10, 5, Duration::from_secs(10)).unwrap();
    assert!(after > 0, "nobody served after the heal");
    wait_for("the new bindings in both databases", Duration::from_secs(30), || {
        let (xn, dn) = (active(&x), isc_active(&d));
        let clash = double_bound(&xn, &dn);
        assert!(clash.is_empty(), "after healing: {clash:?}");
        Ok((xn.len() as u64 >= after && xn == dn).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nlease file:\n{}", tail(&d.lease_file(), 40)));
    let xn = active(&x);
    assert_one_address_per_client(&xn);
    eprintln!(
        "isc partition: healed to NORMAL in {:.1} s, {} bindings on both sides, no duplicates, \
         {:.1} s in all",
        healed.elapsed().as_secs_f64(),
        xn.len(),
        t0.elapsed().as_secs_f64()
    );
}

/// The operator declares dhcpd down while it in fact serves (the mistake the runbook warns
/// of), with the failover link cut and clients reaching both servers; then the link heals.
///
/// Cut off, both go COMMUNICATIONS-INTERRUPTED; xdhcp is told PARTNER-DOWN and serves
/// everyone, dhcpd goes on serving in COMMUNICATIONS-INTERRUPTED, and new clients are bound on
/// both sides (each from its own share: xdhcp takes nothing of dhcpd's before STOS+MCLT, and
/// the link heals before). Crafted clients renew every 2 s throughout, unicast to the server
/// that bound them; one of each side's new ones releases while cut off. When the two talk
/// again, dhcpd (COMMUNICATIONS-INTERRUPTED, its partner in PARTNER-DOWN) and xdhcp (PARTNER-
/// DOWN, its partner not) both go POTENTIAL-CONFLICT, the primary asks for the secondary's
/// bindings (UPDREQ), then the secondary for the primary's, and both end in NORMAL (draft-12
/// §5.10, §9.7). Afterwards no address is bound to two clients, each client still holding an
/// address is ACTIVE in both stores, every other address is FREE or BACKUP in both, and no
/// log shows a reject.
#[expect(
    clippy::too_many_lines,
    reason = "one scenario, cut to conflict to NORMAL, read top to bottom"
)]
fn partner_down_while_dhcpd_serves(net: u8, xdhcp_primary: bool) {
    const POOL: u64 = 20;
    root_required();
    let t0 = Instant::now();
    let (xh, dh) = if xdhcp_primary { (1, 2) } else { (2, 1) };
    let (xip, dip) = (Ipv4Addr::new(10, net, 0, xh), Ipv4Addr::new(10, net, 0, dh));
    let (_seg, xa, da, clients, _dconf, x, d) = isc_pair(net, xdhcp_primary, 119);
    let backup = agreed_backup_share(&x, &d, xdhcp_primary.then_some(POOL / 2));
    // Each server's own share: the primary's FREE addresses, the secondary's BACKUP ones.
    let x_share = |a: &Ipv4Addr| backup.contains(a) != xdhcp_primary;
    let renewers =
        Renewers::new(&clients, [(xip, xa.mac), (dip, da.mac)].into(), Duration::from_secs(2));
    let sock = RawSocket::open(&clients.ns, &clients.iface).unwrap();
    let mac = |k: u8| [0x02, 0xc0, net, 0, 0, k];
    // Before the cut: one client of each server, as the split has it.
    for (k, server) in [(1u8, xip), (2, dip)] {
        let m = mac_served_by((server == xip) == xdhcp_primary, PairConfig::SPLIT, 0xc0 + k);
        let a = dora_from(&sock, m, 0xc0f1_0000 | (u32::from(k) << 8), server);
        renewers.add(m, a, server);
    }
    let normal_before = d.log_text().matches("Both servers normal").count();

    let (renewals, healed_in) = std::thread::scope(|sc| {
        let _stop = StopOnDrop(&renewers.stop);
        let renewing = sc.spawn(|| renewers.run(&sock));

        // The failover link breaks; the clients' segment does not.
        xa.cut_from(dip).unwrap();
        da.cut_from(xip).unwrap();
        wait_for("xdhcp COMMUNICATIONS-INTERRUPTED", Duration::from_secs(30), || {
            state_is(&x, "communications-interrupted")
        })
        .unwrap();
        d.wait_log("I move from normal to communications-interrupted", Duration::from_secs(30))
            .unwrap();

        // The operator declares dhcpd down. It is not.
        let declared =
            x.ask(&Request::FailoverPartnerDown { confirm: true, relationship: None }).unwrap();
        assert_eq!(declared["status"]["my_state"], "partner-down", "{declared}");
        let usable_in = num(&declared, "usable_in_secs");
        let declared_at = Instant::now();

        // New clients on both sides, each served from its server's own share; one of each
        // releases.
        let mine = RawSocket::open(&clients.ns, &clients.iface).unwrap();
        for (k, server) in [(3, xip), (4, dip), (5, xip), (6, dip)] {
            let a = dora_from(&mine, mac(k), 0xc0f2_0000 | (u32::from(k) << 8), server);
            assert_eq!(x_share(&a), server == xip, "{a} from {server}: not from its own share");
            renewers.add(mac(k), a, server);
        }
        for c in renewers.clients.lock().unwrap().iter_mut().skip(4) {
            c.release = true;
        }
        let (xn, dn) = (active(&x), isc_active(&d));
        let clash = double_bound(&xn, &dn);
        assert!(clash.is_empty(), "while cut off: {clash:?}");
        assert!(
            declared_at.elapsed() < Duration::from_secs(usable_in),
            "STOS+MCLT came before the heal: xdhcp may take dhcpd's share"
        );
        let st = x.failover().unwrap();
        assert_eq!(st["my_state"], "partner-down", "{st}");
        assert!(
            !d.log_text().contains("I move from communications-interrupted to partner-down"),
            "dhcpd was to serve on in COMMUNICATIONS-INTERRUPTED"
        );

        // The link heals. Each side connects again at its next attempt (dhcpd and xdhcp
        // retry a silent partner every 90 s): both find a conflict and resolve it.
        let healed = Instant::now();
        xa.heal_to(dip).unwrap();
        da.heal_to(xip).unwrap();
        let x_moves = |needle: &str| x.log_text().contains(needle);
        wait_for("xdhcp in POTENTIAL-CONFLICT", Duration::from_mins(2), || {
            Ok(x_moves("I move from PartnerDown to PotentialConflict").then_some(()))
        })
        .unwrap_or_else(|e| {
            panic!("{e:#}\n{}\ndhcpd:\n{}", log_tail(&x, 30), tail(&d.log_text(), 30))
        });
        x.wait_normal(Duration::from_mins(1)).unwrap_or_else(|e| {
            panic!("{e:#}\n{}\ndhcpd:\n{}", log_tail(&x, 40), tail(&d.log_text(), 40))
        });
        let healed_in = healed.elapsed();
        d.wait_log("I move from communications-interrupted to potential-conflict", Duration::ZERO)
            .unwrap();
        wait_for("dhcpd NORMAL again", Duration::from_secs(20), || {
            Ok((d.log_text().matches("Both servers normal").count() > normal_before).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", tail(&d.log_text(), 30)));
        // The primary resolved first: it went through CONFLICT-DONE.
        let primary_log = if xdhcp_primary { x.log_text() } else { d.log_text() };
        assert!(
            primary_log.contains("ConflictDone") || primary_log.contains("conflict-done"),
            "the primary never said CONFLICT-DONE"
        );

        // Both stores agree: every client still holding an address has it in both, bound to
        // it, and every other address is free on both.
        let mut held = HashMap::new();
        for c in renewers.snapshot().iter().filter(|c| !c.released) {
            held.insert(c.addr, xdhcp::packet::fmt_mac(&c.mac));
        }
        let expect: Expected = held.keys().map(|a| (*a, "active")).collect();
        wait_isc_settled(&pair(net, 119), &x, &d, &expect, Duration::from_secs(30));
        let (xn, dn) = (active(&x), isc_active(&d));
        assert!(
            double_bound(&xn, &dn).is_empty(),
            "after the conflict: {:?}",
            double_bound(&xn, &dn)
        );
        assert_eq!(xn, held, "xdhcp's ACTIVE addresses are the clients' that hold one");
        assert_eq!(dn, held, "dhcpd's ACTIVE addresses are the clients' that hold one");
        assert_one_address_per_client(&xn);
        assert_pool_counts(&pair(net, 119), &x, &expect);
        renewers.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (renewing.join().unwrap(), healed_in)
    });
    assert_no_reject("xdhcp", &x, Some(&d.log_text()));
    assert_no_isc_reject(&d);
    let naks: Vec<String> = renewals
        .iter()
        .filter(|r| matches!(r.2, Answer::Nak(_)))
        .map(|(at, k, a)| format!("{:.1} s: client {k}: {a:?}", (*at - t0).as_secs_f64()))
        .collect();
    if !naks.is_empty() {
        let addrs: Vec<Ipv4Addr> = renewers.snapshot().iter().map(|c| c.addr).collect();
        panic!(
            "NAKs: {naks:?} (clients {addrs:?}, test started {:?} ago)\nxdhcp:\n{}\ndhcpd:\n{}",
            t0.elapsed(),
            lines_about(&x.log_text(), &addrs),
            lines_about(&d.log_text(), &addrs)
        );
    }
    let silent = renewals.iter().filter(|r| r.2 == Answer::Silence).count();
    eprintln!(
        "isc conflict (xdhcp {}): PARTNER-DOWN declared while dhcpd served; NORMAL again {:.1} s \
         after the heal through POTENTIAL-CONFLICT; {} renewals, {silent} unanswered; {:.1} s \
         in all",
        if xdhcp_primary { "primary" } else { "secondary" },
        healed_in.as_secs_f64(),
        renewals.len(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn xdhcp_primary_declared_partner_down_while_dhcpd_serves_resolves_the_potential_conflict() {
    partner_down_while_dhcpd_serves(89, true);
}

#[test]
fn xdhcp_secondary_declared_partner_down_while_dhcpd_serves_resolves_the_potential_conflict() {
    partner_down_while_dhcpd_serves(90, false);
}

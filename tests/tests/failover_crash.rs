//! kill -9 of a failover server while its clients renew and release: an xdhcp pair in NORMAL,
//! both servers real processes, serves
//! - crafted clients (a packet socket) that renew every couple of seconds, unicast to the server
//!   that bound them (where XDP answers, also while that server's daemon is dead), rebinding
//!   to any server when it does not answer, and half of which release in the end;
//! - real clients (udhcpc), renewing at half their lease;
//! - perfdhcp's, leasing and releasing, one perfdhcp for each server.
//!
//! The primary is killed with SIGKILL in the middle, restarted on its state directory, and
//! the pair returns to NORMAL; then the same for the secondary.
//!
//! Afterwards nothing is lost (draft-12 §5.11): once perfdhcp's leases have run out, each
//! server's free and backup addresses are exactly the ones no client holds, the only ACTIVE
//! addresses are those of the clients still holding theirs (bound to them in both stores), no
//! address is stuck EXPIRED, RELEASED or ABANDONED on either side, both stores agree on every
//! address, no client was refused (NAK) or moved to another address, and no log shows a reject.
use std::{
    collections::HashMap,
    net::Ipv4Addr,
    sync::atomic::Ordering,
    thread,
    time::{Duration, Instant},
};

use dhcp_lab::lab::{self, RawSocket};
use integration::{
    failover_lab::{
        Answer, Expected, PairConfig, Perfdhcp, Port, Renewers, Segment, StopOnDrop, Udhcpc, Xdhcp,
        active, assert_no_reject, assert_one_address_per_client, assert_pool_counts, dora,
        double_bound, log_tail, mac_served_by, num, perf_summary, wait_for, wait_pair_settled,
    },
    fixture::root_required,
};
use xdhcp::daemon::ctl::Request;

const NET: u8 = 86;
/// The fast path's shortest grant: renewals are answered by XDP too.
const LEASE: u64 = 60;
/// A client's first lease (the partner has acknowledged nothing yet), and how long a lease
/// nobody renews lasts. udhcpc takes a lease shorter than 30 s for 30 s (and renews it after
/// it ran out).
const MCLT: u64 = 30;
const POOL_END: u8 = 159;
/// Crafted clients (half for each server), and how often each renews.
const CRAFTED: u8 = 8;
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// udhcpc clients: they renew at half their lease and never release.
const REAL: u8 = 4;
/// perfdhcp's simulated clients, DORAs and RELEASEs per second, seconds; one run per server.
const PERF: Perfdhcp =
    Perfdhcp { clients: 40, rate: 10, release_rate: 5, secs: 25, mac_base: String::new() };
/// How long each killed server stays dead.
const DOWN: Duration = Duration::from_secs(3);

const PAIR: PairConfig = PairConfig {
    name: "edge-crash",
    net: NET,
    pool_end: POOL_END,
    lease_secs: LEASE,
    mclt: MCLT,
    max_response_delay: 5,
    // Balancing every few seconds gives back what releases and expiries on the secondary
    // turned FREE (the primary's).
    failover_more: "min_balance = 2\nmax_balance = 4\n",
};

/// Not a test: the server processes of the test below ([`Xdhcp::spawn`]).
#[test]
fn daemon_process() {
    lab::daemon_child();
}

/// When a server's daemon was dead: its address, the kill, the restart.
type Downtime = (Ipv4Addr, Instant, Instant);

/// Kills `x` with SIGKILL while its clients keep asking, leaves it dead for [`DOWN`], starts
/// it again on its state directory and waits until the pair is back in NORMAL. When it was
/// down, and how long NORMAL took from the kill.
fn kill_9_and_restart(
    who: &str,
    ip: Ipv4Addr,
    x: &mut Xdhcp,
    partner: &Xdhcp,
) -> (Downtime, Duration) {
    let killed = Instant::now();
    let status = x.process().kill(libc::SIGKILL).unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    thread::sleep(DOWN);
    let restarted = Instant::now();
    x.process().restart().unwrap_or_else(|e| panic!("restart {who} after kill -9: {e:#}"));
    x.wait_normal(Duration::from_secs(40)).unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{who}: {}\npartner: {}\n{who}'s log:\n{}",
            x.failover().map_or_else(|e| format!("{e:#}"), |v| v.to_string()),
            partner.failover().map_or_else(|e| format!("{e:#}"), |v| v.to_string()),
            log_tail(x, 40)
        )
    });
    partner.wait_normal(Duration::from_secs(10)).unwrap();
    ((ip, killed, restarted), killed.elapsed())
}

/// The address each real client holds now, by MAC; none of them was refused or moved since
/// its first lease.
fn real_clients_kept_their_addresses(real: &[(Port, Udhcpc)]) -> HashMap<Ipv4Addr, String> {
    let mut held = HashMap::new();
    for (port, c) in real {
        let ev = c.events();
        let first = ev.iter().position(|e| e.reason == "bound").expect("bound");
        let ip = ev[first].ip.unwrap();
        let later: Vec<_> = ev[first + 1..].iter().filter(|e| e.reason != "renew").collect();
        assert!(later.is_empty(), "{}: after its first lease {later:?}\n{ev:?}", port.iface);
        assert!(
            ev[first..].iter().all(|e| e.ip == Some(ip)),
            "{} changed address: {ev:?}",
            port.iface
        );
        held.insert(ip, xdhcp::packet::fmt_mac(&port.mac));
    }
    held
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, two kills to audit, read top to bottom")]
fn kill_9_of_either_server_while_clients_renew_and_release_loses_no_address() {
    root_required();
    assert!(
        std::path::Path::new("/usr/sbin/perfdhcp").is_file(),
        "perfdhcp is not installed: cargo xtask setup (Debian package kea-admin)"
    );
    let t0 = Instant::now();
    let (pip, sip) = (PAIR.addr(true), PAIR.addr(false));
    let mut seg = Segment::new().unwrap();
    let pa = seg.port("pri", [0x02, NET, 0, 0, 0, 1], Some(pip)).unwrap();
    let sa = seg.port("sec", [0x02, NET, 0, 0, 0, 2], Some(sip)).unwrap();
    // perfdhcp unicasts (it is a relay): one for each server, each a relay of its own.
    let perf: Vec<Port> = [3, 4]
        .into_iter()
        .map(|h| {
            let addr = Ipv4Addr::new(10, NET, 0, h);
            seg.port(&format!("perf{h}"), [0x02, NET, 0, 0, 0, h], Some(addr)).unwrap()
        })
        .collect();
    let raw = seg.port("raw", [0x02, NET, 0, 0, 0, 5], None).unwrap();
    let renewers = Renewers::new(&raw, [(pip, pa.mac), (sip, sa.mac)].into(), RENEW_EVERY);
    let mut p = Xdhcp::spawn(&pa, &PAIR.render(true, "")).unwrap();
    let mut s = Xdhcp::spawn(&sa, &PAIR.render(false, "")).unwrap();
    p.wait_normal(Duration::from_mins(1)).unwrap();
    s.wait_normal(Duration::from_secs(30)).unwrap();
    wait_for("the secondary's share", Duration::from_secs(15), || {
        let v = s.failover()?;
        Ok((num(&v["pools"][0], "backup_secondary") == PAIR.pool_size() / 2).then_some(()))
    })
    .unwrap();

    // Real clients, each on its own port, and the crafted ones, half on each server.
    let mut real = Vec::new();
    for k in 0..REAL {
        let port = seg.port(&format!("u{k}"), [0x02, 0xf6, NET, 0, 0, k], None).unwrap();
        let c = Udhcpc::start(&port).unwrap();
        real.push((port, c));
    }
    let sock = RawSocket::open(&raw.ns, &raw.iface).unwrap();
    for k in 0..CRAFTED {
        let mac = mac_served_by(k % 2 == 0, PairConfig::SPLIT, k);
        let (addr, by) = dora(&sock, mac, 0xc4a5_0000 | (u32::from(k) << 4));
        renewers.add(mac, addr, by);
    }
    for (_, c) in &real {
        c.wait_bound(Duration::from_secs(30)).unwrap();
    }
    eprintln!("crash: pair NORMAL, every client bound after {:.1} s", t0.elapsed().as_secs_f64());

    // perfdhcp's clients lease and release, the crafted ones renew; both servers are killed
    // meanwhile. Half the crafted clients release in the end; the others renew until every
    // check is done.
    let churn = |k: u8| Perfdhcp { mac_base: format!("02:5e:{NET:02x}:{k:02x}:00:00"), ..PERF };
    let stats = |x: &Xdhcp| x.ask(&Request::Stats).unwrap();
    let (renewals, downs, held, churned) = thread::scope(|sc| {
        // However this ends (a failed check unwinds), the renewals stop and the scope can end.
        let _stop = StopOnDrop(&renewers.stop);
        let renewing = sc.spawn(|| renewers.run(&sock));
        let runs: Vec<_> = [pip, sip]
            .into_iter()
            .zip(&perf)
            .zip([0u8, 1])
            .map(|((server, port), k)| {
                let c = churn(k);
                sc.spawn(move || c.run(port, &server.to_string()))
            })
            .collect();
        thread::sleep(Duration::from_secs(5));
        let p_down = kill_9_and_restart("the primary", pip, &mut p, &s);
        thread::sleep(Duration::from_secs(3));
        let s_down = kill_9_and_restart("the secondary", sip, &mut s, &p);
        let reports: Vec<String> = runs.into_iter().map(|r| r.join().unwrap()).collect();
        // Half the crafted clients (two of every four, so some of each server's) release.
        for (k, c) in renewers.clients.lock().unwrap().iter_mut().enumerate() {
            c.release = k % 4 >= 2;
        }
        let churned = Instant::now();
        eprintln!(
            "crash: perfdhcp to the primary {}\nto the secondary {}\nprimary back in NORMAL \
             {:.1} s after its kill, secondary {:.1} s",
            perf_summary(&reports[0]),
            perf_summary(&reports[1]),
            p_down.1.as_secs_f64(),
            s_down.1.as_secs_f64()
        );
        for (who, x) in [("primary", &p), ("secondary", &s)] {
            let st = stats(x);
            assert!(num(&st["sent"], "ack") > 0 && num(&st, "releases") > 0, "{who}: {st}");
        }

        // Every real client renews again after both kills; none was refused or moved.
        for (_, c) in &real {
            c.wait_renewals(2, Duration::from_secs(LEASE)).unwrap();
        }
        let mut held = real_clients_kept_their_addresses(&real);
        wait_for("the crafted clients' releases", Duration::from_secs(10), || {
            let n = renewers.snapshot().iter().filter(|c| c.released).count();
            Ok((n == usize::from(CRAFTED / 2)).then_some(()))
        })
        .unwrap();
        for c in renewers.snapshot().iter().filter(|c| !c.released) {
            held.insert(c.addr, xdhcp::packet::fmt_mac(&c.mac));
        }

        // perfdhcp's leases run out (MCLT, none renewed) and both servers free them, as the
        // crafted clients' releases: what the clients still hold is all that is bound.
        let expect: Expected = held.keys().map(|a| (*a, "active")).collect();
        wait_pair_settled(&PAIR, &p, &s, &expect, Duration::from_secs(MCLT + 40));
        let (pn, sn) = (active(&p), active(&s));
        assert!(double_bound(&pn, &sn).is_empty(), "{:?}", double_bound(&pn, &sn));
        assert_eq!(pn, held, "the primary's ACTIVE addresses are the clients' that hold one");
        assert_eq!(sn, held, "the secondary's ACTIVE addresses are the clients' that hold one");
        assert_one_address_per_client(&pn);
        assert_pool_counts(&PAIR, &p, &expect);
        assert_pool_counts(&PAIR, &s, &expect);
        let held_n = held.len();
        renewers.stop.store(true, Ordering::SeqCst);
        (renewing.join().unwrap(), [p_down, s_down], held_n, churned)
    });
    assert_no_reject("the primary", &p, Some(&s.log_text()));
    assert_no_reject("the secondary", &s, Some(&p.log_text()));

    // No crafted client was refused, and each one's renewals reached a server throughout
    // (XDP answers for a dead daemon; the partner answers a rebinding).
    let naks: Vec<_> = renewals.iter().filter(|r| matches!(r.2, Answer::Nak(_))).collect();
    assert!(naks.is_empty(), "NAKs: {naks:?}");
    let silent = renewals.iter().filter(|r| r.2 == Answer::Silence).count();
    let while_dead = |d: &Downtime| {
        renewals
            .iter()
            .filter(|(t, _, a)| *t >= d.1 && *t < d.2 && *a == Answer::Renewed(d.0))
            .count()
    };
    let (p_xdp, s_xdp) = (while_dead(&downs[0].0), while_dead(&downs[1].0));
    let rebound = renewals.iter().filter(|r| matches!(r.2, Answer::Rebound(_))).count();
    eprintln!(
        "crash: {} renewals by crafted clients: answered by the dead primary's XDP {p_xdp}, the \
         dead secondary's {s_xdp}, {rebound} rebound, {silent} unanswered",
        renewals.len()
    );
    assert!(p_xdp > 0 && s_xdp > 0, "no renewal answered by a dead daemon's XDP: {renewals:?}");
    let xdp = |x: &Xdhcp| stats(x)["fast_path_renewals_recorded"].clone();
    eprintln!(
        "crash: settled {:.1} s after the churn, {held} clients holding an address on both, \
         XDP renewals recorded since the last starts {} + {}; {:.1} s in all",
        churned.elapsed().as_secs_f64(),
        xdp(&p),
        xdp(&s),
        t0.elapsed().as_secs_f64()
    );
    drop(real);
}

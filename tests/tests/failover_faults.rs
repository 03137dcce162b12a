//! The failure the failover protocol exists for, with real processes and a real network: the
//! primary of an xdhcp pair dies.
//!
//! The yardstick is a dhcpd pair in the same situation (a 100-address pool, 29 leased, the
//! primary killed): its secondary served 30 of 100 new clients, refused the rest with "peer
//! holds all free leases", and stayed that way until someone intervened. Here the secondary
//! must serve at least as many from its own share, say what to do about the rest, and after
//! `partner-down` plus STOS+MCLT serve every address nobody holds. When the primary comes back
//! it recovers (RECOVER, RECOVER-WAIT, RECOVER-DONE) and both end in NORMAL, each knowing what
//! the other handed out.
use std::{
    collections::HashSet,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use integration::{
    failover_lab::{
        PairConfig, Port, Segment, Xdhcp, active, bound, cut_off_serves_its_own_share,
        dora_clients, in_state, num, state_is, wait_for,
    },
    fixture::root_required,
};
use xdhcp::daemon::ctl::Request;

const PRIMARY: Ipv4Addr = PAIR.addr(true);
const SECONDARY: Ipv4Addr = PAIR.addr(false);
/// Short, to keep the test bounded; it is the wait between partner-down and the takeover.
const MCLT: u64 = 30;
const POOL: u64 = 100;
const LEASED: u32 = 29;

const PAIR: PairConfig = PairConfig {
    name: "edge-faults",
    net: 94,
    pool_end: 199,
    lease_secs: 600,
    mclt: MCLT,
    max_response_delay: 5,
    failover_more: "",
};

/// An xdhcp pair on a segment of its own (MACs tagged `tag`), both NORMAL and the free
/// addresses split half and half; `secondary_more` goes into the secondary's `[failover]`.
/// Returns the segment, the primary's, secondary's and clients' ports, the primary's config,
/// and the two servers.
fn pair_in_normal(
    tag: u8,
    secondary_more: &str,
) -> (Segment, Port, Port, Port, String, Xdhcp, Xdhcp) {
    let mut seg = Segment::new().unwrap();
    let pa = seg.port("pri", [0x02, 0x94, 0, 0, tag, 1], Some(PRIMARY)).unwrap();
    let sa = seg.port("sec", [0x02, 0x94, 0, 0, tag, 2], Some(SECONDARY)).unwrap();
    let clients = seg.port("cl", [0x02, 0x94, 0, 0, tag, 3], None).unwrap();
    let pcfg = PAIR.render(true, "");
    let p = Xdhcp::start(&pa, &pcfg).unwrap();
    let s = Xdhcp::start(&sa, &PAIR.render(false, secondary_more)).unwrap();
    p.wait_normal(Duration::from_mins(1)).unwrap();
    s.wait_normal(Duration::from_secs(30)).unwrap();
    wait_for("the secondary's share", Duration::from_secs(15), || {
        let v = s.failover()?;
        Ok((num(&v["pools"][0], "backup_secondary") == POOL / 2).then_some(()))
    })
    .unwrap();
    (seg, pa, sa, clients, pcfg, p, s)
}

#[test]
fn primary_dies_the_secondary_serves_its_share_then_everything_after_partner_down() {
    root_required();
    let t0 = Instant::now();
    let (_seg, pa, _sa, clients, pcfg, p, s) = pair_in_normal(0, "");

    // 29 clients, served by both servers as the split says.
    let leased = dora_clients(&clients, LEASED, 1, Duration::from_secs(20)).unwrap();
    assert_eq!(leased, u64::from(LEASED));
    wait_for("all 29 leases on both servers", Duration::from_secs(15), || {
        Ok((active(&p).len() == LEASED as usize && active(&s) == active(&p)).then_some(()))
    })
    .unwrap();

    // The primary dies.
    let pdir = p.stop_keep().unwrap();
    // 100 new clients: the secondary serves exactly its own share and says why it stops.
    let free = POOL - u64::from(LEASED);
    let (own, theirs) = cut_off_serves_its_own_share(&s, &clients, free, Duration::from_secs(20));
    assert!(own >= 30, "at least as many as dhcpd's secondary served (30): {own}");
    let st = s.failover().unwrap();
    assert_eq!(num(&st["pools"][0], "share_partner_free"), theirs, "{st}");
    let metrics = s.ask(&Request::Metrics).unwrap();
    let text = metrics["text"].as_str().unwrap_or_default();
    let want = format!(
        "xdhcp_failover_share_free{{relationship=\"edge-faults\",subnet=\"10.94.0.0/24\",owner=\"partner\"}} {theirs}"
    );
    assert!(text.contains(&want), "{text}");

    // The operator: first without confirming, then for real.
    let refused = s.ask(&Request::FailoverPartnerDown { confirm: false, relationship: None });
    assert!(refused.is_err(), "{refused:?}");
    let declared =
        s.ask(&Request::FailoverPartnerDown { confirm: true, relationship: None }).unwrap();
    let usable_in = num(&declared, "usable_in_secs");
    assert!((MCLT - 2..=MCLT).contains(&usable_in), "{declared}");
    assert_eq!(declared["status"]["my_state"], "partner-down", "{declared}");

    // Before STOS+MCLT nothing of the partner's share is used.
    let early = dora_clients(&clients, 100, 3, Duration::from_secs(4)).unwrap();
    assert_eq!(early, 0, "the partner's addresses were used before STOS+MCLT");
    let usable_at = Instant::now() + Duration::from_secs(usable_in);
    while Instant::now() < usable_at + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(200));
    }
    // After it, every address no client holds.
    let later = dora_clients(&clients, 100, 3, Duration::from_secs(15)).unwrap();
    assert_eq!(own + later, POOL - u64::from(LEASED), "every free address is served");
    assert_eq!(later, theirs);
    // Leases given in PARTNER-DOWN are MCLT long and will have run out by the time the
    // primary is back; what must reach it is who had which address.
    let handed_out = bound(&s, &["active", "expired", "released"]);
    eprintln!(
        "faults: 29 leased; after the primary died the secondary served {own} from its \
         share, then {later} more after partner-down + MCLT, {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // The primary returns: RECOVER, RECOVER-WAIT, RECOVER-DONE, then both NORMAL, and the
    // primary knows every lease the secondary made while it was away.
    let p = Xdhcp::start_in(&pa, &pcfg, pdir).unwrap();
    wait_for("the primary to recover", Duration::from_secs(20), || {
        let v = p.failover()?;
        Ok(v["my_state"].as_str().is_some_and(|s| s.starts_with("recover")).then_some(()))
    })
    .unwrap();
    p.wait_normal(Duration::from_secs(MCLT + 40)).unwrap();
    s.wait_normal(Duration::from_secs(10)).unwrap();
    wait_for("the secondary's bindings on the primary", Duration::from_secs(15), || {
        // Each address the secondary handed out is, on the primary, the same client's, or free
        // again because its lease ran out and both servers freed it (draft-12 §5.11).
        let mine = bound(&p, &["active", "expired", "released"]);
        let free: HashSet<Ipv4Addr> =
            in_state(&p, "free").into_iter().chain(in_state(&p, "backup")).collect();
        let missing: Vec<_> = handed_out
            .iter()
            .filter(|(a, m)| mine.get(*a) != Some(*m) && !free.contains(*a))
            .collect();
        if missing.is_empty() {
            Ok(Some(()))
        } else {
            Err(anyhow::anyhow!("{} missing, e.g. {:?}", missing.len(), missing.first()))
        }
    })
    .unwrap();
    eprintln!("faults: back to NORMAL with leases reconciled, {:.1} s", t0.elapsed().as_secs_f64());
}

/// How long the secondary of the automatic scenario waits in COMMUNICATIONS-INTERRUPTED.
const AUTO_AFTER: u64 = 10;

#[test]
fn primary_dies_and_auto_partner_down_takes_over_after_its_time_then_stos_plus_mclt() {
    root_required();
    let t0 = Instant::now();
    let auto = format!("auto_partner_down = {AUTO_AFTER}\n");
    let (_seg, _pa, _sa, clients, _pcfg, p, s) = pair_in_normal(1, &auto);
    let leased = dora_clients(&clients, 10, 1, Duration::from_secs(20)).unwrap();
    assert_eq!(leased, 10);
    wait_for("the 10 leases on the secondary", Duration::from_secs(15), || {
        Ok((active(&s).len() == 10).then_some(()))
    })
    .unwrap();

    // The primary dies; nobody declares anything.
    let _pdir = p.stop_keep().unwrap();
    let interrupted = wait_for("COMMUNICATIONS-INTERRUPTED", Duration::from_secs(20), || {
        state_is(&s, "communications-interrupted")
    })
    .unwrap();
    let since = num(&interrupted, "my_stos");
    let down = wait_for("automatic PARTNER-DOWN", Duration::from_secs(AUTO_AFTER + 10), || {
        state_is(&s, "partner-down")
    })
    .unwrap();
    let stos = num(&down, "my_stos");
    assert!(
        (since + AUTO_AFTER..=since + AUTO_AFTER + 2).contains(&stos),
        "PARTNER-DOWN at {stos}, COMMUNICATIONS-INTERRUPTED at {since}: {down}"
    );
    assert_eq!(num(&down, "partner_addresses_usable_at"), stos + MCLT, "{down}");
    let own = num(&down["pools"][0], "share_ours_free");
    let theirs = num(&down["pools"][0], "share_partner_free");
    assert_eq!(own + theirs, POOL - 10, "{down}");

    // Until STOS+MCLT only its own share; after it, everything nobody holds.
    let first = dora_clients(&clients, 100, 2, Duration::from_secs(8)).unwrap();
    assert_eq!(first, own, "before STOS+MCLT only the secondary's own share");
    let usable_at = std::time::UNIX_EPOCH + Duration::from_secs(stos + MCLT + 1);
    while std::time::SystemTime::now() < usable_at {
        std::thread::sleep(Duration::from_millis(200));
    }
    let later = dora_clients(&clients, 100, 3, Duration::from_secs(15)).unwrap();
    assert_eq!(later, theirs, "after STOS+MCLT the partner's free addresses");
    eprintln!(
        "faults (auto): PARTNER-DOWN {AUTO_AFTER} s after COMMUNICATIONS-INTERRUPTED; served \
         {first} from its share, {later} more after STOS+MCLT, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

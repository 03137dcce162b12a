//! Two xdhcp servers share a pool over the failover protocol, with real clients on one segment.
//!
//! The pair starts with empty stores, so it goes the whole way a new deployment does: STARTUP,
//! RECOVER with UPDREQALL both ways, RECOVER-DONE, NORMAL, and the primary handing the
//! secondary half the free addresses. Then each client lands on the server its hash says,
//! each server's binding shows up in the other's store, and a renewal the primary's XDP program
//! answers reaches the secondary's store as a new potential expiration time.
use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use integration::{
    failover_lab::{PairConfig, Segment, Udhcpc, Xdhcp, mac_served_by, num, wait_for},
    fixture::root_required,
};

const PRIMARY: Ipv4Addr = PAIR.addr(true);
const SECONDARY: Ipv4Addr = PAIR.addr(false);
const SPLIT: u16 = PairConfig::SPLIT;
/// The fast path grants at least 60 s, so leases and the MCLT are 60 s: the first lease is
/// MCLT long, and udhcpc renews it after 30 s.
const LEASE: u64 = 60;

const PAIR: PairConfig = PairConfig {
    name: "edge-pair",
    net: 91,
    pool_end: 139,
    lease_secs: LEASE,
    mclt: LEASE,
    max_response_delay: 10,
    failover_more: "",
};

#[test]
#[expect(
    clippy::similar_names,
    reason = "the p/s pairs (cp/cs, bp/bs): the primary's and the secondary's of each"
)]
#[expect(clippy::cast_possible_truncation, reason = "LEASE is 60 s, as u32 in an assertion")]
fn an_xdhcp_pair_reaches_normal_replicates_both_ways_and_carries_fast_path_renewals() {
    root_required();
    let t0 = Instant::now();
    let mut seg = Segment::new().unwrap();
    let pa = seg.port("pri", [0x02, 0x91, 0, 0, 0, 1], Some(PRIMARY)).unwrap();
    let sa = seg.port("sec", [0x02, 0x91, 0, 0, 0, 2], Some(SECONDARY)).unwrap();
    let p = Xdhcp::start(&pa, &PAIR.render(true, "")).unwrap();
    let s = Xdhcp::start(&sa, &PAIR.render(false, "")).unwrap();

    let status = p.wait_normal(Duration::from_mins(1)).unwrap();
    s.wait_normal(Duration::from_secs(30)).unwrap();
    let normal_after = t0.elapsed();
    assert_eq!(num(&status, "mclt"), LEASE);
    let backup = wait_for("the secondary's share of the pool", Duration::from_secs(10), || {
        let v = s.failover()?;
        let n = num(&v["pools"][0], "backup_secondary");
        Ok((n == 20).then_some(n))
    })
    .unwrap();
    assert_eq!(backup, 20, "half of the 40 free addresses moved to the secondary");

    // One client for each side of the split; each must land where the hash says.
    let mp = mac_served_by(true, SPLIT, 1);
    let ms = mac_served_by(false, SPLIT, 2);
    let cp_port = seg.port("cp", mp, None).unwrap();
    let cs_port = seg.port("cs", ms, None).unwrap();
    let cp = Udhcpc::start(&cp_port).unwrap();
    let cs = Udhcpc::start(&cs_port).unwrap();
    let bp = cp.wait_bound(Duration::from_secs(30)).unwrap();
    let bs = cs.wait_bound(Duration::from_secs(30)).unwrap();
    assert_eq!(bp.server, Some(PRIMARY), "{bp:?}");
    assert_eq!(bs.server, Some(SECONDARY), "{bs:?}");
    assert_eq!(bp.lease, Some(LEASE as u32), "a new lease is MCLT long");
    let (ap, as_) = (bp.ip.unwrap(), bs.ip.unwrap());

    // Each binding reaches the other server's store.
    let mac = |m: [u8; 6]| xdhcp::packet::fmt_mac(&m);
    let replicated = |x: &Xdhcp, a: Ipv4Addr, m: [u8; 6]| {
        wait_for(&format!("{a} in the partner's store"), Duration::from_secs(10), || {
            let l = x.lease(a)?;
            Ok(l.filter(|l| l["state"] == "active" && l["mac"] == mac(m).as_str()))
        })
    };
    let on_s = replicated(&s, ap, mp).unwrap();
    let on_p = replicated(&p, as_, ms).unwrap();
    let first_pet = num(&p.lease(ap).unwrap().unwrap(), "pet_sent");
    assert_eq!(num(&on_s, "pet_received"), first_pet);
    assert!(num(&on_p, "pet_received") > 0);

    // The primary's client renews at T1; the primary's XDP program answers it, and the
    // secondary learns that the address may be held until the new PET. (udhcpc on veth misses
    // the unicast ACK and retries by broadcast, which both servers may answer (draft-12 §5.5):
    // then the secondary's own, later, picture of the renewal is what it keeps, and it
    // acknowledges the primary's.)
    let renewals = cp.wait_renewals(1, Duration::from_secs(LEASE + 20)).unwrap();
    assert_eq!(renewals[0].server, Some(PRIMARY));
    let stats = p.ask(&xdhcp::daemon::ctl::Request::Stats).unwrap();
    assert!(
        num(&stats, "fast_path_renewals_recorded") >= 1,
        "the renewal was not answered by XDP: {stats}"
    );
    let (renewed, theirs) = wait_for(
        "the renewal's PET acknowledged by the secondary",
        Duration::from_secs(10),
        || {
            let mine = p.lease(ap)?.unwrap_or_default();
            let theirs = s.lease(ap)?.unwrap_or_default();
            let pet = num(&mine, "pet_sent");
            let known = num(&theirs, "pet_received").max(num(&theirs, "pet_sent"));
            let done = pet > first_pet
                && num(&mine, "pet_acked") == pet
                && known >= pet
                && num(&theirs, "expires_at") == num(&mine, "expires_at");
            Ok(done.then_some((mine, theirs)))
        },
    )
    .unwrap();
    assert!(num(&theirs, "expires_at") > num(&on_s, "expires_at"), "{theirs}");
    assert!(num(&renewed, "expires_at") > num(&on_s, "expires_at"), "{renewed}");

    // The secondary's own picture of the renewal may still be on its way to the primary
    // (see above): everything it sent is acknowledged within moments.
    let st = wait_for("the secondary's updates acknowledged", Duration::from_secs(10), || {
        let st = s.failover()?;
        Ok((num(&st, "updates_unacked") == 0).then_some(st))
    })
    .unwrap();
    assert_eq!(num(&st, "updates_unacked"), 0, "{st}");
    let metrics = s.ask(&xdhcp::daemon::ctl::Request::Metrics).unwrap();
    let text = metrics["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(
            "xdhcp_failover_state{relationship=\"edge-pair\",side=\"self\",state=\"normal\"} 1"
        ),
        "{text}"
    );
    eprintln!(
        "pair: NORMAL after {:.1} s, replicated and renewed through XDP after {:.1} s",
        normal_after.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    drop((cp, cs));
}

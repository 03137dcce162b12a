//! Pool balancing: shares evened at each pass, POOLREQ, nothing outside NORMAL.
use super::*;

/// Free addresses each side of `pair` counts as (primary's FREE, secondary's BACKUP), as the
/// store of `side` holds them.
fn split_seen_by(side: &Side) -> (u64, u64) {
    split_of(side, 0)
}

/// `n` new clients of the primary's (or the secondary's) hash buckets lease at that server,
/// MACs numbered from `first`, and the partner hears of it.
fn new_clients(pair: &mut Pair, primary: bool, first: u8, n: u8) {
    let now = pair.now;
    let side = if primary { &mut pair.p } else { &mut pair.s };
    for k in first..first + n {
        dora(side, now, mac_for(primary, k));
    }
    pair.exchange();
}

#[test]
fn balancing_arithmetic_evens_a_misbalance_and_leaves_a_small_one_alone() {
    let b = |ours, partners| pool_balance(Shares { ours, partners }, 100, 15);
    assert_eq!(b(50, 50), PoolBalance { give: 0, short: false });
    assert_eq!(b(100, 0), PoolBalance { give: 50, short: false }, "the first split");
    assert_eq!(b(60, 30), PoolBalance { give: 0, short: false }, "15 over: within the threshold");
    assert_eq!(
        b(70, 30),
        PoolBalance { give: 20, short: false },
        "evened out, not to the threshold"
    );
    assert_eq!(b(10, 70), PoolBalance { give: 0, short: false }, "30 short: the partner's job");
    assert_eq!(b(0, 62), PoolBalance { give: 0, short: true }, "31 short: ask for a POOLREQ");
    // After a move neither side sees a reason to move anything back.
    let after = b(50, 20 + 30);
    assert_eq!(after.give, 0);
    // A tiny pool still splits.
    assert_eq!(pool_balance(Shares { ours: 2, partners: 0 }, 2, 15).give, 1);
}

#[test]
fn the_secondary_uses_up_most_of_its_share_and_the_primary_tops_it_up_at_the_next_pass() {
    let mut pair = Pair::new();
    pair.normal();
    assert_eq!(split_seen_by(&pair.p), (10, 10));
    new_clients(&mut pair, false, 40, 8);
    assert_eq!(split_seen_by(&pair.p), (10, 2));
    // Within min_balance (60 s) of the last move nothing happens; then the primary evens the
    // pool (misbalance 4 > 15 % of 20).
    pair.run_for(30);
    assert_eq!(split_seen_by(&pair.s), (10, 2));
    pair.run_for(31);
    assert_eq!(split_seen_by(&pair.p), (6, 6));
    assert_eq!(split_seen_by(&pair.s), (6, 6), "the secondary stored the moves");
    // The secondary can serve new clients again, from what it was given.
    let (a, _) = dora(&mut pair.s, pair.now, mac_for(false, 60));
    assert_eq!(pair.p.lease(a).state, LeaseState::Backup);
    let st = pair.p.fo().status(pair.p.server(), pair.now);
    assert_eq!(st["balanced_moved_total"], 14, "10 at the first split, 4 now: {st}");
}

#[test]
fn the_primary_runs_low_and_the_secondary_gives_back_backup_addresses_it_does_not_need() {
    let mut pair = Pair::new();
    pair.normal();
    new_clients(&mut pair, true, 40, 8);
    assert_eq!(split_seen_by(&pair.s), (2, 10));
    pair.run_for(61);
    assert_eq!(split_seen_by(&pair.s), (6, 6));
    assert_eq!(split_seen_by(&pair.p), (6, 6));
    // What came back is the top of the secondary's share, never used, and the primary's now.
    for a in [119, 118, 117, 116].map(|h| Ipv4Addr::new(10, 0, 0, h)) {
        assert_eq!(pair.p.lease(a).state, LeaseState::Free, "{a}");
        assert_eq!(pair.s.lease(a).state, LeaseState::Free, "{a}");
    }
    new_clients(&mut pair, true, 50, 6);
    assert_eq!(split_seen_by(&pair.s), (0, 6), "the primary served 6 more from what came back");
    assert_eq!(
        discover(&mut pair.p, pair.now, mac_for(true, 70)),
        Handled::Dropped(DropReason::PoolExhausted),
        "the primary's share is used up; the secondary's 6 stay its own until the next pass"
    );
}

#[test]
fn a_server_short_of_addresses_asks_with_poolreq_and_the_partner_moves_them_at_once() {
    // The primary balances on its own only every 10 minutes; the secondary checks every 60 s.
    let strict = "max_lease_misbalance = 5\n";
    let mut pair = Pair::of(
        Side::with(config_with("primary", &format!("{strict}min_balance = 600\n"))),
        Side::with(config_with("secondary", strict)),
    );
    pair.normal();
    new_clients(&mut pair, false, 40, 6);
    assert_eq!(split_seen_by(&pair.s), (10, 4), "3 short, threshold 1: the secondary asks");
    pair.run_for(61);
    assert_eq!(split_seen_by(&pair.s), (7, 7), "moved on the POOLREQ, not at the primary's pass");
    assert_eq!(split_seen_by(&pair.p), (7, 7));
}

/// Free addresses of subnet `sid` as (primary's FREE, secondary's BACKUP) in `side`'s store.
fn split_of(side: &Side, sid: u32) -> (u64, u64) {
    let sh = side.fo().shares(side.server(), SubnetId(sid));
    match side.fo().config().role {
        Role::Primary => (sh.ours, sh.partners),
        Role::Secondary => (sh.partners, sh.ours),
    }
}

/// Like [`dora`], for a client behind a relay at `giaddr`.
fn dora_relayed(side: &mut Side, now: u64, mac: [u8; 6], giaddr: Ipv4Addr) -> Ipv4Addr {
    let mut m = msg(mac, MessageType::Discover, Ipv4Addr::UNSPECIFIED);
    m.set_giaddr(giaddr);
    let o = side.dhcp(now, &m);
    let Handled::Offered(a) = o.result else { panic!("no offer: {:?}", o.result) };
    let mut m = select(mac, side.server().config().server_id, a);
    m.set_giaddr(giaddr);
    assert_eq!(side.dhcp(now, &m).result, Handled::Acked(a));
    a
}

#[test]
fn a_server_short_in_one_pool_asks_with_poolreq_even_while_it_gives_in_another() {
    // Two shared subnets; the primary balances on its own only every 10 minutes. The relayed
    // one comes first in the file, so it is subnet 0 and the clients' own one subnet 1.
    let relayed = r#"
[[subnet]]
prefix = "10.0.1.0/24"
pools = [{ start = "10.0.1.100", end = "10.0.1.119" }]
lease_time = 3600
failover = true
"#;
    let strict = "max_lease_misbalance = 5\n";
    let mut pair = Pair::of(
        Side::with(config_with("primary", &format!("{strict}min_balance = 600\n{relayed}"))),
        Side::with(config_with("secondary", &format!("{strict}{relayed}"))),
    );
    pair.normal();
    assert_eq!(split_of(&pair.s, 0), (10, 10));
    // The secondary runs low in its clients' subnet; the primary uses up its share of the
    // relayed one.
    new_clients(&mut pair, false, 40, 6);
    let relay = Ipv4Addr::new(10, 0, 1, 1);
    for k in 80..88 {
        dora_relayed(&mut pair.p, pair.now, mac_for(true, k), relay);
    }
    pair.exchange();
    assert_eq!(split_of(&pair.s, 1), (10, 4), "short in its clients' subnet");
    assert_eq!(split_of(&pair.s, 0), (2, 10), "holding too much of the relayed one");
    pair.run_for(61);
    // The secondary's pass gives in the relayed subnet, and its POOLREQ has the primary even
    // out the other at once rather than at its own pass ten minutes on.
    assert_eq!(split_of(&pair.s, 0), (6, 6));
    assert_eq!(split_of(&pair.s, 1), (7, 7), "moved on the POOLREQ");
    assert_eq!(split_of(&pair.p, 1), (7, 7));
}

#[test]
fn nothing_moves_outside_normal() {
    let mut pair = Pair::new();
    pair.normal();
    new_clients(&mut pair, false, 40, 8);
    lose_partner(&mut pair.p, pair.now);
    for _ in 0..120 {
        pair.now += 1;
        alone(&mut pair.p, pair.now);
    }
    assert_eq!(split_seen_by(&pair.p), (10, 2), "a cut-off primary keeps its share");
}

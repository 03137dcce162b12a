//! A pair whose link is gone: COMMUNICATIONS-INTERRUPTED, PARTNER-DOWN, rewinding.
use super::*;

#[test]
fn primary_dies_and_the_secondary_serves_only_its_backup_share_then_says_what_would_help() {
    let mut pair = Pair::new();
    pair.normal();
    // The primary leases three addresses and tells the secondary, then dies.
    let leased: Vec<Ipv4Addr> =
        (0..3).map(|i| dora(&mut pair.p, pair.now, mac_for(true, 10 + i)).0).collect();
    pair.exchange();
    let now = pair.now + 1;
    lose_partner(&mut pair.s, now);
    assert_eq!(pair.s.fo().peer().state(), ServerState::CommunicationsInterrupted);
    assert!(pair.s.fo().fast_path_allowed(), "renewals go on in the kernel too");

    let mut got = Vec::new();
    for n in 0..10 {
        let (a, lease) = dora(&mut pair.s, now, client(n));
        assert!(lease <= MCLT, "a new client gets at most MCLT: {lease}");
        got.push(a);
    }
    assert!(
        got.iter().all(|a| pair.p.lease(*a).state == LeaseState::Backup),
        "every address came from the secondary's own share: {got:?}"
    );
    assert_eq!(discover(&mut pair.s, now, client(10)), Handled::Dropped(DropReason::PoolExhausted));
    alone(&mut pair.s, now);
    let st = pair.s.fo().status(pair.s.server(), now);
    assert_eq!(st["refused_share_exhausted_total"], 1, "{st}");
    assert_eq!(st["pools"][0]["share_ours_free"], 0, "{st}");
    assert_eq!(
        st["pools"][0]["share_partner_free"],
        10 - leased.len() as u64,
        "the partner's share: what it had, less what it leased: {st}"
    );
    assert_eq!(st["partner_addresses_usable_at"], Value::Null, "{st}");
}

#[test]
fn the_partner_still_talking_is_not_declared_down() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now;
    let e = pair.s.partner_down(now).unwrap_err();
    assert_eq!(e, PartnerDownRefused::PartnerTalking("normal").to_string());
    assert_eq!(pair.s.fo().peer().state(), ServerState::Normal);
}

#[test]
fn partner_down_takes_the_partners_free_addresses_at_stos_plus_mclt_and_not_a_second_sooner() {
    let mut pair = Pair::new();
    pair.normal();
    // One client of the primary's, known to the secondary, whose lease will run out.
    let (theirs, _) = dora(&mut pair.p, pair.now, mac_for(true, 20));
    pair.exchange();
    let known = pair.s.lease(theirs).clone();
    assert_eq!(known.state, LeaseState::Active);

    let now = pair.now + 1;
    lose_partner(&mut pair.s, now);
    for n in 0..10 {
        dora(&mut pair.s, now, client(n));
    }
    let pd = now + 5;
    alone(&mut pair.s, pd);
    let usable_at = pair.s.partner_down(pd).unwrap();
    alone(&mut pair.s, pd);
    assert_eq!(usable_at, pd + u64::from(MCLT));
    assert_eq!(pair.s.fo().peer().state(), ServerState::PartnerDown);
    assert_eq!(pair.s.partner_down(pd + 1), Ok(usable_at), "declaring it twice changes nothing");

    // A second before STOS+MCLT: still only its own share, which is used up.
    let before = usable_at - 1;
    alone(&mut pair.s, before);
    assert_eq!(
        discover(&mut pair.s, before, client(100)),
        Handled::Dropped(DropReason::PoolExhausted)
    );
    // At STOS+MCLT every free address of the partner's is usable.
    alone(&mut pair.s, usable_at);
    let mut taken = Vec::new();
    for n in 0..9 {
        let (a, lease) = dora(&mut pair.s, usable_at, client(200 + n));
        assert!(lease <= MCLT, "{lease}");
        taken.push(a);
    }
    assert!(!taken.contains(&theirs));
    assert!(taken.iter().all(|a| pair.p.store.get(*a).is_none_or(|l| l.state == LeaseState::Free)));

    // The primary's client's address is reclaimed only MCLT past everything it may have been
    // promised (its expiry and the PETs), not at STOS+MCLT.
    let reuse = known.expires_at.max(known.pet_received).max(known.pet_sent) + u64::from(MCLT);
    assert!(reuse > usable_at);
    for t in [usable_at + 1, reuse - 1] {
        alone(&mut pair.s, t);
        assert_eq!(
            discover(&mut pair.s, t, client(300)),
            Handled::Dropped(DropReason::PoolExhausted),
            "at {t}, reuse at {reuse}"
        );
    }
    alone(&mut pair.s, reuse);
    assert_eq!(pair.s.lease(theirs).state, LeaseState::Expired);
    assert_eq!(dora(&mut pair.s, reuse, client(300)).0, theirs);
}

#[test]
fn auto_partner_down_follows_the_configured_time_in_communications_interrupted() {
    let mut pair = Pair::of(
        Side::new("primary"),
        Side::with(config_with("secondary", "auto_partner_down = 600\n")),
    );
    pair.normal();
    let cut = pair.now;
    lose_partner(&mut pair.s, cut);
    alone(&mut pair.s, cut + 599);
    assert_eq!(pair.s.fo().peer().state(), ServerState::CommunicationsInterrupted);
    alone(&mut pair.s, cut + 600);
    assert_eq!(pair.s.fo().peer().state(), ServerState::PartnerDown);
    // The MCLT counts from entering PARTNER-DOWN, not from losing the partner.
    assert_eq!(pair.s.fo().takeover_time(), cut + 600 + u64::from(MCLT));
    let early = cut + 600 + u64::from(MCLT) - 1;
    alone(&mut pair.s, early);
    for n in 0..10 {
        dora(&mut pair.s, early, client(n));
    }
    assert_eq!(
        discover(&mut pair.s, early, client(50)),
        Handled::Dropped(DropReason::PoolExhausted)
    );
    let at = early + 1;
    alone(&mut pair.s, at);
    assert!(matches!(discover(&mut pair.s, at, client(50)), Handled::Offered(_)));
}

#[test]
fn in_communications_interrupted_the_survivor_renews_the_partners_clients_within_mclt() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(true, 30);
    let (a, _) = dora(&mut pair.p, pair.now, mac);
    pair.exchange();
    // Renewed once at the primary with the full lease; the secondary hears of it.
    let t1 = pair.now + u64::from(MCLT / 2);
    pair.run_for(t1 - pair.now);
    let o = pair.p.dhcp(t1, &msg(mac, MessageType::Request, a));
    assert_eq!(lease_time(&o), LEASE);
    pair.exchange();
    let known = pair.s.lease(a).clone();

    let now = t1 + 10;
    lose_partner(&mut pair.s, now);
    let o = pair.s.dhcp(now, &msg(mac, MessageType::Request, a));
    assert_eq!(o.result, Handled::Acked(a), "renewed whoever gave it out");
    let horizon = known.pet_received.max(known.pet_acked).max(known.expires_at);
    let lease = u64::from(lease_time(&o));
    assert!(now + lease <= horizon + u64::from(MCLT), "{now} + {lease} vs {horizon}");
    // The kernel's horizon obeys the same rule.
    let l = pair.s.lease(a);
    assert!(l.held_until <= horizon.max(known.expires_at) + u64::from(MCLT));
}

#[test]
fn cut_off_the_secondary_rewinds_a_lease_nobody_else_heard_of_and_serves_a_new_client_with_it() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now + 1;
    lose_partner(&mut pair.s, now);
    // Ten clients take the whole backup share while the primary is unreachable.
    let got: Vec<Ipv4Addr> = (0..10).map(|n| dora(&mut pair.s, now, client(n)).0).collect();
    assert_eq!(discover(&mut pair.s, now, client(10)), Handled::Dropped(DropReason::PoolExhausted));
    let first = pair.s.lease(got[0]).clone();
    assert_eq!(first.rewind_state, Some(LeaseState::Backup), "persisted with the binding");
    alone(&mut pair.s, now);
    assert_eq!(pair.s.fo().updates_held(), 10, "the primary must not hear of them yet");

    // One leaves; the primary never knew it was there, so its address is the secondary's again.
    let released = pair.s.dhcp(now + 10, &msg(client(0), MessageType::Release, got[0]));
    assert_eq!(released.result, Handled::Released(got[0]));
    alone(&mut pair.s, now + 10);
    assert_eq!(pair.s.lease(got[0]).state, LeaseState::Backup);
    let (again, _) = dora(&mut pair.s, now + 10, client(10));
    assert_eq!(again, got[0], "the newcomer gets the rewound address");
    assert_eq!(pair.s.server().counters().rewound_to_free, 1);
}

#[test]
fn cut_off_an_expired_client_gets_its_lease_back_and_reconnection_unwinds_every_rewind() {
    let mut pair = Pair::new();
    pair.normal();
    let (a, _) = dora(&mut pair.s, pair.now, mac_for(false, 1));
    pair.exchange();
    let now = pair.now + 1;
    lose_partner(&mut pair.s, now);
    lose_partner(&mut pair.p, now);
    // The lease the primary acknowledged runs out while the two cannot talk.
    let end = pair.s.lease(a).expires_at;
    alone(&mut pair.s, end);
    let l = pair.s.lease(a);
    assert_eq!((l.state, l.rewind_state), (LeaseState::Expired, Some(LeaseState::Active)));
    // Its client returns: the primary still holds the address as that client's.
    let acked = pair.s.lease(a).pet_acked;
    let (back, lease) = dora(&mut pair.s, end + 5, mac_for(false, 1));
    assert_eq!(back, a);
    let until = end + 5 + u64::from(lease);
    assert!(until <= acked + u64::from(MCLT), "still within the MCLT rule: {until} vs {acked}");
    assert_eq!(pair.s.server().counters().rewound_to_active, 1);

    // A newcomer's lease from the share, then the link comes back: the store loses the
    // rewind before the primary hears of the binding.
    let (b, _) = dora(&mut pair.s, end + 6, client(1));
    assert_eq!(pair.s.lease(b).rewind_state, Some(LeaseState::Backup));
    pair.now = end + 10;
    pair.normal();
    assert_eq!(pair.s.lease(b).rewind_state, None);
    assert_eq!(pair.s.fo().updates_held(), 0);
    assert_eq!(pair.p.lease(b).state, LeaseState::Active, "the primary knows it now");
}

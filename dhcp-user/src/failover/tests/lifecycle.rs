//! The life of an address in a pair: release, expiry, decline, restart and stop.
use super::*;

/// Rejects the side received for its own updates: a pair that agrees has none.
fn rejects(side: &Side) -> u64 {
    side.fo().counters().rejects_received
}

#[test]
fn the_secondary_releases_and_both_servers_free_the_address() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(false, 1);
    let (a, _) = dora(&mut pair.s, pair.now, mac);
    pair.exchange();
    assert_eq!(pair.p.lease(a).state, LeaseState::Active);
    pair.run_for(5);
    let o = pair.s.dhcp(pair.now, &msg(mac, MessageType::Release, a));
    assert_eq!(o.result, Handled::Released(a));
    pair.exchange();
    // §5.11: the primary frees it acknowledging the RELEASED, the secondary on the BNDACK.
    assert_eq!(pair.p.lease(a).state, LeaseState::Free);
    assert_eq!(pair.s.lease(a).state, LeaseState::Free);
    assert_eq!(rejects(&pair.p) + rejects(&pair.s), 0);
}

#[test]
fn a_release_in_the_second_of_its_ack_is_accepted_by_the_partner() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(false, 2);
    let (a, _) = dora(&mut pair.s, pair.now, mac);
    pair.exchange();
    // The same second: the RELEASED carries the CLTT the partner already has.
    pair.s.dhcp(pair.now, &msg(mac, MessageType::Release, a));
    pair.exchange();
    assert_eq!(rejects(&pair.s), 0, "the primary took the release as news, not as outdated");
    assert_eq!(
        (pair.p.lease(a).state, pair.s.lease(a).state),
        (LeaseState::Free, LeaseState::Free)
    );
}

#[test]
fn in_normal_the_secondary_leaves_expiry_to_the_primary_and_both_free_the_address() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(false, 3);
    let (a, lease) = dora(&mut pair.s, pair.now, mac);
    pair.exchange();
    let end = pair.now + u64::from(lease);
    pair.run_for(u64::from(lease) - 1);
    // Past the end, the secondary alone: it does not expire the lease itself (a dhcpd primary
    // refuses a secondary's expiry in NORMAL), nor tell the partner anything.
    pair.s.turn(end + 1, Vec::new());
    assert_eq!(pair.s.fo().peer().state(), ServerState::Normal);
    assert_eq!(pair.s.lease(a).state, LeaseState::Active);
    let updates = pair.s.outbox.iter().filter(|c| match c {
        PeerCmd::Send { bytes, .. } => {
            dhcp_failover::decode(bytes).unwrap().kind == dhcp_failover::MessageType::BndUpd
        }
        _ => false,
    });
    assert_eq!(updates.count(), 0);
    // The primary expires it; the secondary frees it acknowledging, the primary on the BNDACK.
    pair.now = end + 1;
    pair.exchange();
    pair.run_for(2);
    assert_eq!(pair.p.lease(a).state, LeaseState::Free);
    assert_eq!(pair.s.lease(a).state, LeaseState::Free);
    assert_eq!(rejects(&pair.p) + rejects(&pair.s), 0);
}

#[test]
fn a_release_committed_just_before_a_kill_9_reaches_the_partner_after_the_restart() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(true, 4);
    let (a, _) = dora(&mut pair.p, pair.now, mac);
    pair.exchange();
    assert!(pair.p.lease(a).partner_acked);
    // The client leaves; the primary commits the release and dies before sending it. A change
    // of state alone moves no PET, so only the record's own flag says the partner lacks it.
    pair.run_for(10);
    let now = pair.now;
    pair.p.dhcp(now, &msg(mac, MessageType::Release, a));
    assert_eq!(pair.p.lease(a).state, LeaseState::Released);
    assert!(!pair.p.lease(a).partner_acked, "committed as news the partner lacks");
    pair.p = Side::from_store(config("primary"), pair.p.store.clone(), now);
    pair.s.link_down(now);
    pair.normal();
    assert_eq!(pair.s.lease(a).state, LeaseState::Free, "the RELEASED was sent again");
    assert_eq!(pair.p.lease(a).state, LeaseState::Free);
}

#[test]
fn a_declined_address_comes_back_on_both_servers_after_its_probation() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(true, 5);
    let (a, _) = dora(&mut pair.p, pair.now, mac);
    pair.exchange();
    let mut decline = msg(mac, MessageType::Decline, Ipv4Addr::UNSPECIFIED);
    decline.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    decline.opts_mut().insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(pair.p.dhcp(pair.now, &decline).result, Handled::Declined(a));
    pair.exchange();
    assert_eq!(pair.s.lease(a).state, LeaseState::Abandoned);
    // An hour's probation later the primary frees it, and the secondary takes its word.
    pair.run_for(3601);
    assert_eq!(pair.p.lease(a).state, LeaseState::Free);
    assert_eq!(pair.s.lease(a).state, LeaseState::Free);
    assert_eq!(rejects(&pair.p), 0, "the FREE came after the abandonment, and was taken");
}

#[test]
fn a_state_the_store_would_not_take_is_not_told_to_the_partner() {
    let mut pair = Pair::new();
    // The primary's disk refuses the relationship's state from the start: it must not tell the
    // secondary of a state a restart would not know.
    pair.p.store.fail_state_writes = true;
    pair.run_for(30);
    assert_ne!(pair.s.fo().peer().state(), ServerState::Normal);
    assert!(pair.p.store.failover.is_empty());
    // The disk recovers: the state is written, and the two reach NORMAL.
    pair.p.store.fail_state_writes = false;
    pair.normal();
    let saved = decode_state(pair.p.store.failover.values().next().unwrap()).unwrap();
    assert_eq!(saved.my_state, ServerState::Normal);
}

#[test]
fn a_server_stopped_tells_its_partner_it_pauses_and_the_partner_stops_waiting_for_it() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now;
    let mut out: Output<()> = pair.p.core.stop(Now::at(now), &mut pair.p.store);
    pair.p.outbox.extend(out.link.drain(..).map(|(_, c)| c));
    // No time passes: the partner does not wait out its timers to know.
    pair.exchange();
    assert_eq!(pair.s.fo().peer().state(), ServerState::CommunicationsInterrupted);
    assert_eq!(pair.p.fo().peer().state(), ServerState::Paused);
}

#[test]
fn the_status_and_the_metrics_show_the_partners_clock_offset() {
    let mut pair = Pair::new();
    pair.normal();
    let st = pair.p.fo().status(pair.p.server(), pair.now);
    assert_eq!(st["partner_clock_offset_secs"], 0, "{st}");
    assert_eq!(st["refused_for_clock_skew"], false);
    let req = Request::Metrics;
    let out = pair
        .p
        .turn(pair.now, vec![Input::Control { req, reply: (), measured: Measured::default() }]);
    let text = out.answers[0].1["text"].as_str().unwrap().to_owned();
    assert!(
        text.contains("xdhcp_failover_partner_clock_offset_seconds{relationship=\"pair\"} 0\n"),
        "{text}"
    );
}

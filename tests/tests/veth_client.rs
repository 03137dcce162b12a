//! Real DHCP clients renew through XDP on a veth pair between two network namespaces.
//!
//! Each test gets its own server and client namespaces and uniquely named interfaces, so the
//! tests run in parallel. The client's lease is put in the map by hand; its first lease comes
//! from the lab's responder, which never answers renewals. So a renewal the client logs can
//! only have been answered by XDP: the ack counter must equal the renewal requests the client
//! sent, every logged renewal must grant the map's lease time (not the responder's shorter
//! one), and no renewal may reach userspace.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use dhcp_common::{Control, Stat};
use dhcp_lab::lab::{ClientKind, NetNs, Segment, SegmentPlan, Timing, netns_list, wait_for};
use integration::fixture::root_required;
use xdhcp::fastpath::eventlog::EventLog;

/// Renewals each client must complete through XDP.
const RENEWALS: usize = 2;
const BOUND_WITHIN: Duration = Duration::from_secs(30);

/// A segment for `kind` in a fresh server namespace, with the client's lease in the map, and
/// the names of its namespaces.
fn segment(kind: ClientKind) -> (Segment, Vec<String>) {
    root_required();
    if let Err(e) = kind.locate() {
        panic!("{e:#}");
    }
    let server = Arc::new(NetNs::new(&format!("srv-{kind}")).expect("server namespace"));
    let mut seg = Segment::new(&server, SegmentPlan::new(1, kind, Timing::default()))
        .expect("build the lab segment");
    let names = seg.namespaces().to_vec();
    seg.install_lease().expect("put the lease in the map");
    (seg, names)
}

/// Drops the segment and asserts that none of its namespaces is left in `ip netns list`.
fn tear_down(seg: Segment, names: &[String]) {
    drop(seg);
    let left: Vec<String> =
        netns_list().expect("ip netns list").into_iter().filter(|n| names.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

fn renews_through_xdp(kind: ClientKind) {
    let t0 = Instant::now();
    let (mut seg, names) = segment(kind);
    let t = seg.plan.timing;
    let before = seg.stats().unwrap();
    let c = seg.start_client().unwrap();
    c.wait_bound(BOUND_WITHIN).unwrap();
    c.wait_renewals(RENEWALS, t.renewal_timeout(kind, RENEWALS)).unwrap();
    // Stopped right after the last renewal, long before the next is due (T1 or half the
    // lease away), so every ACK XDP sent has been seen by the client's hook.
    seg.stop_client().unwrap();
    let r = seg.report(&before).unwrap();
    let problems = r.problems(RENEWALS);
    assert!(problems.is_empty(), "{kind}: {problems:#?}\n{r:#?}");
    // The point, spelled out: the renewals the client logged carry the map's lease time,
    // and the ack counter rose by one per renewal request the client sent.
    assert!(r.renewals.iter().all(|e| e.lease_secs == Some(t.lease_secs)));
    assert_eq!(r.acks(), r.requests as u64);
    assert_eq!(r.responder.renewals, 0);
    if kind != ClientKind::Udhcpc {
        // One request per renewal: nothing retransmitted, nothing lost.
        assert_eq!(r.acks(), r.renewals.len() as u64, "{:?}", r.counters.to_json());
    }
    let c = seg.client().unwrap();
    let at: Vec<f64> = r.renewals.iter().map(|e| (c.elapsed_at(e) * 10.0).round() / 10.0).collect();
    eprintln!(
        "{kind}: renewals at {at:?} s, {} requests, {} XDP ACKs, {:.1} s in all",
        r.requests,
        r.acks(),
        t0.elapsed().as_secs_f64()
    );
    tear_down(seg, &names);
}

#[test]
fn udhcpc_renews_through_xdp() {
    renews_through_xdp(ClientKind::Udhcpc);
}

#[test]
fn dhclient_renews_through_xdp() {
    renews_through_xdp(ClientKind::Dhclient);
}

#[test]
fn dhcpcd_renews_through_xdp() {
    renews_through_xdp(ClientKind::Dhcpcd);
}

/// What the daemon relies on: with events on, every ACK XDP sent is waiting in the pinned
/// event log, read back through the pins as a restarted daemon would, exactly once.
#[test]
fn every_xdp_ack_waits_in_the_pinned_event_log() {
    let kind = ClientKind::Dhclient;
    let (mut seg, names) = segment(kind);
    let mut ctl = seg.fast.maps.control().unwrap();
    ctl.flags |= Control::F_EVENTS;
    seg.fast.maps.set_control(ctl).unwrap();
    let dir = xdhcp::fastpath::pin_dir(&seg.plan.server_if);
    let (t, before) = (seg.plan.timing, seg.stats().unwrap());
    let c = seg.start_client().unwrap();
    c.wait_bound(BOUND_WITHIN).unwrap();
    c.wait_renewals(RENEWALS, t.renewal_timeout(kind, RENEWALS)).unwrap();
    seg.stop_client().unwrap();
    let acks = seg.stats().unwrap().since(&before).get(Stat::Ack);
    assert!(acks >= RENEWALS as u64);
    assert_eq!(EventLog::waiting_pinned(&dir).unwrap().iter().sum::<u64>(), acks);
    assert_eq!(EventLog::slots_pinned(&dir).unwrap(), dhcp_common::maps::LOG_SLOTS);

    let mut log = EventLog::open_pinned(&dir).unwrap();
    let mut events = Vec::new();
    log.drain(&mut events);
    assert_eq!(events.len() as u64, acks, "one event per ACK: {events:?}");
    for e in &events {
        assert_eq!(e.addr, seg.plan.addr.octets());
        assert_eq!(e.chaddr, seg.plan.client_mac);
        assert_eq!(e.granted_secs, t.lease_secs);
    }
    assert!(events.windows(2).all(|w| w[0].at_ns <= w[1].at_ns), "in the order they were sent");
    assert_eq!(seg.lease().unwrap().renewed_at_ns, events.last().unwrap().at_ns);
    log.drain(&mut events);
    assert_eq!(events.len() as u64, acks, "drained once");
    assert_eq!(EventLog::waiting_pinned(&dir).unwrap().iter().sum::<u64>(), 0);
    tear_down(seg, &names);
}

/// The control for the tests above: with the fast path switched off, the same renewal reaches
/// userspace (where nothing answers it), the client logs no renewal and XDP sends nothing.
#[test]
fn renewal_reaches_userspace_when_fast_path_is_off() {
    let kind = ClientKind::Dhclient;
    let (mut seg, names) = segment(kind);
    let mut ctl = seg.fast.maps.control().unwrap();
    ctl.enabled = 0;
    seg.fast.maps.set_control(ctl).unwrap();
    let before = seg.stats().unwrap();
    seg.start_client().unwrap().wait_bound(BOUND_WITHIN).unwrap();
    let timeout = seg.plan.timing.renewal_timeout(kind, 1);
    wait_for("a renewal to reach the responder", timeout, || {
        Ok((seg.responder_log().renewals >= 1).then_some(()))
    })
    .unwrap();
    seg.stop_client().unwrap();
    let r = seg.report(&before).unwrap();
    assert_eq!(r.acks(), 0, "{:?}", r.counters.to_json());
    assert!(r.counters.get(Stat::PassDisabled) >= 1, "{:?}", r.counters.to_json());
    assert!(r.renewals.is_empty(), "nothing answered, yet {kind} logged {:?}", r.renewals);
    assert!(!r.problems(1).is_empty(), "the report must not call this run a success");
    tear_down(seg, &names);
}

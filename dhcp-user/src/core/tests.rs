//! Scenarios of one server's turn: what leaves it, and what the store holds by then.
use std::net::Ipv4Addr;

use dhcp_common::RenewEvent;
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};

use super::*;
use crate::store::LeaseState;

const T0: u64 = 1_700_000_000;

const CONFIG: &str = r#"
interfaces = ["eth1"]
server_id = "10.0.0.1"

[[subnet]]
prefix = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.103" }]
lease_time = 600
"#;

fn core(store: &MemStore) -> Core {
    Core::new(Config::from_toml(CONFIG, "core.toml").unwrap(), store, T0).unwrap()
}

fn dhcp(kind: MessageType, mac: [u8; 6], ciaddr: Ipv4Addr, extra: &[DhcpOption]) -> Input<()> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0x42, ciaddr, z, z, z, &mac);
    m.set_opcode(Opcode::BootRequest);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    for o in extra {
        m.opts_mut().insert(o.clone());
    }
    let rx = RxInfo { ifindex: 2, local_addr: Some(Ipv4Addr::new(10, 0, 0, 1)) };
    Input::Dhcp { rx, bytes: dhcproto::Encodable::to_vec(&m).unwrap() }
}

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];

/// The event XDP logs when it renews `MAC`'s lease of `a` for 600 s at `at`.
fn renewed_by_xdp(a: Ipv4Addr, at: u64) -> Input<()> {
    let ev = RenewEvent {
        at_ns: Now::at(at).mono_ns,
        addr: a.octets(),
        granted_secs: 600,
        chaddr: MAC,
        _pad: [0; 10],
    };
    Input::Renewed(ev)
}

/// DISCOVER then REQUEST, each its own turn; the address.
fn lease(c: &mut Core, store: &mut MemStore, now: u64) -> Ipv4Addr {
    let out = c.turn(
        Now::at(now),
        vec![dhcp(MessageType::Discover, MAC, Ipv4Addr::UNSPECIFIED, &[])],
        store,
    );
    let Handled::Offered(a) = out.handled[0] else { panic!("no offer: {:?}", out.handled) };
    let select = [
        DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 1)),
        DhcpOption::RequestedIpAddress(a),
    ];
    let out = c.turn(
        Now::at(now),
        vec![dhcp(MessageType::Request, MAC, Ipv4Addr::UNSPECIFIED, &select)],
        store,
    );
    assert_eq!(out.handled, vec![Handled::Acked(a)]);
    assert_eq!(out.replies.len(), 1);
    a
}

#[test]
fn an_ack_leaves_the_turn_with_its_record_committed_and_its_kernel_entry() {
    let mut store = MemStore::default();
    let mut c = core(&store);
    let a = lease(&mut c, &mut store, T0);
    let l = store.get(a).expect("committed");
    assert_eq!((l.state, l.expires_at), (LeaseState::Active, T0 + 600));
    assert_eq!(c.fast_path_entries(T0).len(), 1, "the kernel may renew it");
}

#[test]
fn a_commit_the_store_refuses_sends_nothing_and_the_server_restarts_from_what_is_durable() {
    let mut store = MemStore::default();
    let mut c = core(&store);
    let a = lease(&mut c, &mut store, T0);
    let before = store.get(a).cloned();
    // The client renews; the disk refuses the write.
    store.fail_next_commit = true;
    let out = c.turn(Now::at(T0 + 300), vec![dhcp(MessageType::Request, MAC, a, &[])], &mut store);
    assert_eq!(out.handled, vec![Handled::Acked(a)], "decided, but");
    assert!(out.replies.is_empty() && out.map_ops.is_empty(), "nothing of it leaves: {out:?}");
    assert!(out.commit_failed);
    assert_eq!(store.get(a).cloned(), before);
    assert_eq!(c.server().lease(a), before.as_ref(), "memory is back to what the store holds");
    // The retry is answered once the disk takes it.
    let out = c.turn(Now::at(T0 + 301), vec![dhcp(MessageType::Request, MAC, a, &[])], &mut store);
    assert_eq!(out.replies.len(), 1);
    assert_eq!(store.get(a).map(|l| l.expires_at), Some(T0 + 301 + 600));
}

#[test]
fn a_renewal_the_kernel_answered_is_recorded_before_an_expiry_could_undo_it() {
    let mut store = MemStore::default();
    let mut c = core(&store);
    let a = lease(&mut c, &mut store, T0);
    // XDP renewed it at T0 + 599 for 600 s; its event reaches a turn after the old end.
    c.turn(Now::at(T0 + 601), vec![renewed_by_xdp(a, T0 + 599)], &mut store);
    assert_eq!(
        c.server().lease(a).map(|l| (l.state, l.expires_at)),
        Some((LeaseState::Active, T0 + 1199))
    );
    assert_eq!(c.fast_path_renewals(), 1);
}

#[test]
fn control_requests_are_answered_after_the_turns_commit() {
    let mut store = MemStore::default();
    let mut c = core(&store);
    lease(&mut c, &mut store, T0);
    let ask = |req| Input::Control { req, reply: 7u8, measured: Measured::default() };
    let out = c.turn(
        Now::at(T0 + 1),
        vec![
            ask(Request::Leases(Box::default())),
            ask(Request::FailoverStatus { relationship: None }),
        ],
        &mut store,
    );
    assert_eq!(out.answers.len(), 2);
    assert_eq!(out.answers[0].0, 7, "the reply token comes back as given");
    assert_eq!(out.answers[0].1["leases"][0]["state"], "active");
    assert!(out.answers[1].1.get("error").is_some(), "no relationship configured");
}

#[test]
fn a_released_address_goes_to_the_next_client_once_the_kernel_has_let_go_of_it() {
    let mut store = MemStore::default();
    let mut c = core(&store);
    let a = lease(&mut c, &mut store, T0);
    let out = c.turn(Now::at(T0 + 10), vec![dhcp(MessageType::Release, MAC, a, &[])], &mut store);
    assert_eq!(out.handled, vec![Handled::Released(a)]);
    assert!(out.map_ops.contains(&MapOp::Delete(a)), "the kernel stops renewing it");
    // The next turn drains what XDP answered before the delete; the one after lets go.
    for t in [11, 12] {
        c.turn(Now::at(T0 + t), Vec::<Input<()>>::new(), &mut store);
    }
    let other = [2, 0, 0, 0, 0, 8];
    let asks = [DhcpOption::RequestedIpAddress(a)];
    let out = c.turn(
        Now::at(T0 + 13),
        vec![dhcp(MessageType::Discover, other, Ipv4Addr::UNSPECIFIED, &asks)],
        &mut store,
    );
    assert_eq!(out.handled, vec![Handled::Offered(a)], "RFC 2131 §4.3.4: no longer allocated");
    assert_eq!(store.get(a).map(|l| l.held_until), Some(T0 + 12), "durably so");
}

#[test]
fn a_renewal_xdp_answered_just_before_the_release_took_effect_keeps_the_address_bound() {
    let mut store = MemStore::default();
    let mut c = core(&store);
    let a = lease(&mut c, &mut store, T0);
    c.turn(Now::at(T0 + 10), vec![dhcp(MessageType::Release, MAC, a, &[])], &mut store);
    // XDP renewed it before the delete reached the kernel; the event comes with the next drain.
    c.turn(Now::at(T0 + 11), vec![renewed_by_xdp(a, T0 + 10)], &mut store);
    c.turn(Now::at(T0 + 12), Vec::<Input<()>>::new(), &mut store);
    let l = store.get(a).unwrap();
    assert_eq!((l.state, l.expires_at), (LeaseState::Active, T0 + 610));
    let out = c.turn(
        Now::at(T0 + 13),
        vec![dhcp(
            MessageType::Discover,
            [2, 0, 0, 0, 0, 8],
            Ipv4Addr::UNSPECIFIED,
            &[DhcpOption::RequestedIpAddress(a)],
        )],
        &mut store,
    );
    assert_ne!(out.handled, vec![Handled::Offered(a)]);
}

#[test]
fn an_operator_pages_through_the_leases_and_finds_one_by_mac_or_client_id() {
    let mut store = MemStore::default();
    for k in 0..25u8 {
        let a = Ipv4Addr::new(10, 0, 0, 200 - k);
        let state = if k % 5 == 0 { LeaseState::Released } else { LeaseState::Active };
        let mut l = crate::store::Lease::new(a, state, 0, T0);
        l.chaddr = [2, 0, 0, 0, 1, k].into();
        l.client_id = (k == 7).then(|| [1, 2, 0, 0, 0, 1, 7].into());
        if k == 7 {
            l.class = crate::store::LeaseClass::None;
        }
        l.expires_at = T0 + 600;
        store.leases.insert(a, l);
    }
    let mut c = core(&store);
    let mut ask = |q: LeaseQuery| {
        let req = Request::Leases(Box::new(q));
        let out = c.turn(
            Now::at(T0 + 1),
            vec![Input::Control { req, reply: (), measured: Measured::default() }],
            &mut store,
        );
        out.answers.into_iter().next().unwrap().1
    };
    let addrs = |v: &serde_json::Value| -> Vec<String> {
        v["leases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["address"].as_str().unwrap().into())
            .collect()
    };
    // Ten at a time, in address order, each page saying where the next starts.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let v = ask(LeaseQuery { after, limit: Some(10), ..LeaseQuery::default() });
        seen.extend(addrs(&v));
        match v["next"].as_str() {
            Some(a) => after = Some(a.parse().unwrap()),
            None => break,
        }
    }
    let want: Vec<String> = (176..=200).map(|h| format!("10.0.0.{h}")).collect();
    assert_eq!(seen, want);
    // Lookups by MAC and by client identifier, and a filter by state.
    let v = ask(LeaseQuery { mac: Some("02:00:00:00:01:03".into()), ..LeaseQuery::default() });
    assert_eq!(addrs(&v), ["10.0.0.197"]);
    let v = ask(LeaseQuery { client_id: Some("01020000000107".into()), ..LeaseQuery::default() });
    assert_eq!(addrs(&v), ["10.0.0.193"]);
    let v = ask(LeaseQuery { state: Some("released".into()), ..LeaseQuery::default() });
    assert_eq!(addrs(&v).len(), 5);
    // The counts, by state and by subnet.
    let v = ask(LeaseQuery { count: true, ..LeaseQuery::default() });
    assert_eq!(v["count"]["total"], 25);
    assert_eq!(v["count"]["by_state"]["active"], 20);
    assert_eq!(v["count"]["by_subnet"]["10.0.0.0/24"]["released"], 5);
    // A page of none is a page of one (it must still say where the next one starts).
    let v = ask(LeaseQuery { limit: Some(0), ..LeaseQuery::default() });
    assert_eq!(addrs(&v), ["10.0.0.176"]);
    assert_eq!(v["next"], "10.0.0.176");
    // By the class a binding was made for: "" is those decided to be in none (the others
    // were never classified here); a name the config lacks is an error.
    let v = ask(LeaseQuery { class: Some(String::new()), ..LeaseQuery::default() });
    assert_eq!(addrs(&v), ["10.0.0.193"]);
    let v = ask(LeaseQuery { class: Some("stb".into()), ..LeaseQuery::default() });
    assert!(v["error"].as_str().unwrap().starts_with("class:"), "{v}");
    // A query it cannot read is an error, not everything.
    let v = ask(LeaseQuery { mac: Some("nonsense".into()), ..LeaseQuery::default() });
    assert!(v["error"].as_str().unwrap().starts_with("mac:"), "{v}");
}

/// [`core`]'s server with `[history]` configured: its turns describe their lease events.
fn core_with_history(store: &MemStore) -> Core {
    let text = format!("{CONFIG}\n[history]\nfile = \"/nonexistent/history.jsonl\"\n");
    Core::new(Config::from_toml(&text, "core.toml").unwrap(), store, T0).unwrap()
}

fn kinds(out: &Output<()>) -> Vec<(crate::history::Kind, crate::history::Via, u64)> {
    out.history.iter().map(|e| (e.kind, e.path, e.lease_end)).collect()
}

#[test]
fn a_lease_s_life_from_offer_to_release_is_in_the_history_with_the_path_that_answered() {
    use crate::history::{Kind, Via};
    let mut store = MemStore::default();
    let mut c = core_with_history(&store);
    let out = c.turn(
        Now::at(T0),
        vec![dhcp(MessageType::Discover, MAC, Ipv4Addr::UNSPECIFIED, &[])],
        &mut store,
    );
    let Handled::Offered(a) = out.handled[0] else { panic!("{:?}", out.handled) };
    assert_eq!(kinds(&out), [(Kind::Offer, Via::Slow, T0 + 600)]);
    assert_eq!(
        (out.history[0].address, out.history[0].describe().mac.as_str()),
        (a, "02:00:00:00:00:07")
    );
    let select = [
        DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 1)),
        DhcpOption::RequestedIpAddress(a),
    ];
    let out = c.turn(
        Now::at(T0 + 1),
        vec![dhcp(MessageType::Request, MAC, Ipv4Addr::UNSPECIFIED, &select)],
        &mut store,
    );
    assert_eq!(kinds(&out), [(Kind::Bind, Via::Slow, T0 + 601)]);
    assert_eq!(out.history[0].state, "active");
    // Renewed by the slow path, then by XDP (its event a turn later).
    let out = c.turn(Now::at(T0 + 300), vec![dhcp(MessageType::Request, MAC, a, &[])], &mut store);
    assert_eq!(kinds(&out), [(Kind::Renew, Via::Slow, T0 + 900)]);
    let out = c.turn(Now::at(T0 + 601), vec![renewed_by_xdp(a, T0 + 600)], &mut store);
    assert_eq!(kinds(&out), [(Kind::Renew, Via::Xdp, T0 + 1200)]);
    assert_eq!(out.history[0].time, T0 + 600, "when XDP answered, not when it was drained");
    let out = c.turn(Now::at(T0 + 700), vec![dhcp(MessageType::Release, MAC, a, &[])], &mut store);
    assert_eq!(out.handled, [Handled::Released(a)]);
    assert_eq!(out.history.len(), 1);
    assert_eq!((out.history[0].kind, out.history[0].state), (Kind::Release, "released"));
}

#[test]
fn a_lease_that_runs_out_is_an_expiry_and_a_turn_whose_commit_failed_tells_nothing() {
    use crate::history::{Kind, Via};
    let mut store = MemStore::default();
    let mut c = core_with_history(&store);
    let a = lease(&mut c, &mut store, T0);
    store.fail_next_commit = true;
    let out = c.turn(Now::at(T0 + 300), vec![dhcp(MessageType::Request, MAC, a, &[])], &mut store);
    assert!(out.commit_failed);
    assert!(out.history.is_empty(), "not committed, not history: {:?}", out.history);
    let out = c.turn(Now::at(T0 + 601), Vec::new(), &mut store);
    assert_eq!(kinds(&out), [(Kind::Expire, Via::Slow, T0 + 600)]);
    assert_eq!(out.history[0].address, a);
}

#[test]
fn without_history_configured_the_turn_describes_no_events() {
    let mut store = MemStore::default();
    let mut c = core(&store);
    let a = lease(&mut c, &mut store, T0);
    let out = c.turn(Now::at(T0 + 300), vec![renewed_by_xdp(a, T0 + 300)], &mut store);
    assert!(out.history.is_empty());
}

#[test]
fn a_status_request_written_before_relationships_had_names_still_reads() {
    // What a script written for one relationship sends: no `relationship` key.
    let r: Request = serde_json::from_str(r#"{"cmd":"failover_status"}"#).unwrap();
    assert!(matches!(r, Request::FailoverStatus { relationship: None }), "{r:?}");
    let r: Request =
        serde_json::from_str(r#"{"cmd":"failover_status","relationship":"edge-a"}"#).unwrap();
    assert!(matches!(r, Request::FailoverStatus { relationship: Some(n) } if n == "edge-a"));
}

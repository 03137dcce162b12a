//! Our primary engine replayed against what the real ISC secondary said in
//! `tests/data/isc-failover.pcap` after the ISC primary restarted: CONNECTACK, STATE
//! (COMMUNICATIONS-INTERRUPTED, then NORMAL), thirty BNDUPDs for leases it handed out alone, and
//! keepalives. The engine must take the connection up, reach NORMAL, accept and ack every
//! binding, and ignore the BNDACKs that answer the original primary's updates (not ours).

mod common;

use std::net::Ipv4Addr;

use dhcp_failover::load_balance::Hba;
use dhcp_failover::{
    Config, Event, FrameDecoder, Message, MessageType, Peer, PersistedState, ServerState,
};

const RESTART: &[u8] = include_bytes!("data/isc-failover.pcap");

fn isc_secondary_messages() -> Vec<Message> {
    let secondary = Ipv4Addr::new(10, 40, 0, 2);
    let (_, bytes) = common::tcp_streams(RESTART)
        .into_iter()
        // The connection the restarted primary opened: the one the secondary starts with
        // CONNECTACK (the other carries the keepalives before the primary was killed).
        .find(|(f, b)| f.src == secondary && f.sport == 647 && b.get(2) == Some(&6))
        .expect("the secondary's side of the reconnection");
    let mut d = FrameDecoder::new();
    d.push(&bytes);
    std::iter::from_fn(|| d.pop_message().unwrap()).collect()
}

#[test]
fn our_primary_completes_a_reconnection_with_a_real_isc_secondary() {
    let script = isc_secondary_messages();
    assert_eq!(script[0].kind, MessageType::ConnectAck);
    let start = u64::from(script[0].time);

    let cfg = Config {
        max_response_delay: 30,
        max_unacked_updates: 10,
        ..Config::primary("f", 60, Hba::split(128))
    };
    let saved = PersistedState {
        my_state: ServerState::Normal,
        my_state_since: start - 3600,
        partner_state: Some(ServerState::Normal),
        partner_state_since: start - 3600,
        mclt: 60,
        hba: Hba::split(128),
    };
    let mut peer = Peer::new(cfg, Some(saved), start);
    peer.handle_connected(start);

    let mut sent: Vec<Message> = Vec::new();
    let mut applied = 0;
    let mut drain = |peer: &mut Peer, now: u64, sent: &mut Vec<Message>| {
        while let Some(ev) = peer.poll_event() {
            if let Event::ApplyBinding { commit, .. } = ev {
                applied += 1;
                peer.handle_committed(now, commit);
            }
        }
        sent.extend(std::iter::from_fn(|| peer.poll_transmit()));
    };
    drain(&mut peer, start, &mut sent);
    // ISC matches CONNECTACK to CONNECT by xid; its capture answered xid 0.
    assert_eq!(sent[0].kind, MessageType::Connect);
    assert_eq!(sent[0].xid, script[0].xid);

    for msg in script {
        let now = u64::from(msg.time);
        peer.handle_timeout(now);
        peer.handle_message(now, msg);
        drain(&mut peer, now, &mut sent);
    }

    assert_eq!(peer.state(), ServerState::Normal);
    assert!(peer.is_communicating());
    assert_eq!(peer.partner_vendor_class(), b"isc-4.4.3-P1");
    let bndupds_received = 30;
    assert_eq!(applied, bndupds_received);
    let acks: Vec<&Message> = sent.iter().filter(|m| m.kind == MessageType::BndAck).collect();
    assert_eq!(acks.len(), bndupds_received);
    assert!(acks.iter().all(|a| a.binding_acks()[0].reject.is_none()));
    // We restarted from NORMAL: our first STATE says so, flagged STARTUP, as ISC's did.
    let states: Vec<(Option<ServerState>, Option<u8>)> = sent
        .iter()
        .filter(|m| m.kind == MessageType::State)
        .map(|m| (m.server_state(), m.server_flags()))
        .collect();
    assert_eq!(states[0], (Some(ServerState::Normal), Some(1)));
    assert_eq!(states.last(), Some(&(Some(ServerState::Normal), Some(0))));
    assert!(!sent.iter().any(|m| m.kind == MessageType::Disconnect));
}

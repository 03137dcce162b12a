//! Frames recorded from a real ISC dhcpd 4.4.3-P1 pair (see `/work/shared/research/captures`,
//! copied to `tests/data`) must all decode, re-encode to the same bytes, and — for every message
//! type we send — be exactly what our own builders produce from the decoded values.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dhcp_failover::load_balance::Hba;
use dhcp_failover::messages::{ConnectAckInfo, ConnectInfo};
use dhcp_failover::{
    BindingStatus, FrameDecoder, Message, MessageType, RejectReason, ServerState, decode, encode,
};

const FRESH: &[u8] = include_bytes!("data/isc-failover-fresh.pcap");
const RESTART: &[u8] = include_bytes!("data/isc-failover.pcap");

/// Every frame of every TCP direction in the capture, in stream order.
fn frames(capture: &[u8]) -> Vec<(common::Flow, Vec<u8>)> {
    let mut out = Vec::new();
    for (flow, bytes) in common::tcp_streams(capture) {
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        while let Some(frame) = decoder.pop_frame().expect("ISC's stream frames cleanly") {
            out.push((flow, frame));
        }
        assert_eq!(decoder.buffered(), 0, "{flow:?} ends mid-frame");
    }
    out
}

fn count_types(frames: &[(common::Flow, Vec<u8>)]) -> BTreeMap<u8, usize> {
    let mut counts = BTreeMap::new();
    for (_, f) in frames {
        *counts.entry(f[2]).or_default() += 1;
    }
    counts
}

/// Rebuilds a message with our own constructors from its decoded fields, for the types we send.
/// `None` for types we never originate in this form.
fn rebuilt_by_us(m: &Message) -> Option<Message> {
    let (t, x) = (m.time, m.xid);
    Some(match m.kind {
        MessageType::Connect => Message::connect(
            t,
            x,
            &ConnectInfo {
                relationship: m.relationship_name()?.to_vec(),
                max_unacked: m.max_unacked()?,
                receive_timer: m.receive_timer()?,
                vendor_class: m.vendor_class()?.to_vec(),
                mclt: m.mclt()?,
                hba: m.hba()?,
            },
        ),
        MessageType::ConnectAck => Message::connect_ack(
            t,
            x,
            &ConnectAckInfo {
                relationship: m.relationship_name()?.to_vec(),
                max_unacked: m.max_unacked()?,
                receive_timer: m.receive_timer()?,
                vendor_class: m.vendor_class()?.to_vec(),
            },
        ),
        MessageType::State => {
            Message::state(t, x, m.server_state()?, m.server_flags()?, m.start_time_of_state()?)
        }
        MessageType::BndUpd => {
            let bindings = m.binding_updates();
            let [Ok(b)] = bindings.as_slice() else {
                return None;
            };
            Message::bndupd(t, x, b)
        }
        MessageType::BndAck => Message::bndack(t, x, &m.binding_acks()),
        MessageType::UpdReqAll => Message::updreqall(t, x),
        MessageType::UpdDone => Message::upddone(t, x),
        MessageType::Contact => Message::contact(t, x),
        _ => return None,
    })
}

fn assert_frames_round_trip(frames: &[(common::Flow, Vec<u8>)]) {
    for (flow, frame) in frames {
        let msg = decode(frame).unwrap_or_else(|e| panic!("{flow:?}: {e}: {frame:02x?}"));
        assert_eq!(&encode(&msg).unwrap(), frame, "{flow:?} {:?}", msg.kind);
        // No ISC frame needs an exception: its option order is the order our builders use.
        let ours = rebuilt_by_us(&msg).unwrap_or_else(|| panic!("no builder for {msg:?}"));
        assert_eq!(&encode(&ours).unwrap(), frame, "our {:?} differs from ISC's", msg.kind);
    }
}

#[test]
fn fresh_pair_capture_decodes_and_reencodes_byte_for_byte() {
    let frames = frames(FRESH);
    // 250 BNDUPDs: both sides answer the other's UPDREQALL with all 100 addresses as FREE, then
    // the primary moves 50 to BACKUP; the 100 rejects are ISC refusing FREE updates that are
    // "less critical" than its own outgoing ones.
    let expected = BTreeMap::from([
        (3, 250), // BNDUPD
        (4, 250), // BNDACK
        (5, 2),   // CONNECT: the primary sent one on each of the two connections
        (6, 1),   // CONNECTACK: the secondary answered only on the one it opened
        (7, 4),   // UPDREQALL: ISC sends two in a row from each side
        (8, 2),   // UPDDONE
        (10, 8),  // STATE
        (11, 6),  // CONTACT
    ]);
    assert_eq!(count_types(&frames), expected);
    assert_frames_round_trip(&frames);
}

#[test]
fn restart_capture_decodes_and_reencodes_byte_for_byte() {
    let frames = frames(RESTART);
    let expected = BTreeMap::from([(3, 101), (4, 101), (5, 1), (6, 1), (10, 4), (11, 10)]);
    assert_eq!(count_types(&frames), expected);
    assert_frames_round_trip(&frames);
}

#[test]
fn the_primarys_connect_carries_the_configured_relationship() {
    let frames = frames(FRESH);
    let connect = frames
        .iter()
        .map(|(_, f)| decode(f).unwrap())
        .find(|m| m.kind == MessageType::Connect)
        .unwrap();
    assert_eq!(connect.relationship_name(), Some(&b"f"[..]));
    assert_eq!(connect.mclt(), Some(60));
    assert_eq!(connect.max_unacked(), Some(10));
    assert_eq!(connect.receive_timer(), Some(30));
    assert_eq!(connect.vendor_class(), Some(&b"isc-4.4.3-P1"[..]));
    assert!(connect.extra_header.is_empty(), "ISC uses payload offset 12");
    assert_eq!(connect.hba(), Some(Hba::split(128).0));
}

#[test]
fn a_restarting_isc_reports_its_saved_state_with_the_startup_flag() {
    let states: Vec<(ServerState, u8)> = frames(RESTART)
        .iter()
        .map(|(_, f)| decode(f).unwrap())
        .filter(|m| m.kind == MessageType::State)
        .map(|m| (m.server_state().unwrap(), m.server_flags().unwrap()))
        .collect();
    assert!(states.contains(&(ServerState::Normal, 1)), "{states:?}");
    assert!(states.contains(&(ServerState::CommunicationsInterrupted, 0)), "{states:?}");
}

#[test]
fn isc_bindings_read_as_typed_updates() {
    let msgs: Vec<Message> = frames(RESTART).iter().map(|(_, f)| decode(f).unwrap()).collect();
    let active = msgs
        .iter()
        .filter(|m| m.kind == MessageType::BndUpd)
        .flat_map(Message::binding_updates)
        .map(Result::unwrap)
        .find(|b| b.status == BindingStatus::Active)
        .unwrap();
    let hw = active.chaddr.as_ref().unwrap();
    assert_eq!(hw.htype, 1);
    assert_eq!(hw.addr.len(), 6);
    // ISC's client-identifier is DHCP option 61 verbatim: type 1 then the MAC.
    let id = active.client_id.as_ref().unwrap();
    assert_eq!(id[0], 1);
    assert_eq!(&id[1..], hw.addr.as_slice());
    let pet = active.potential_expiration.unwrap();
    let ends = active.lease_expiration.unwrap();
    assert!(pet > ends, "PET leads the lease");
    assert!(active.ip_flags.is_none(), "ISC omits zero IP-flags");

    let fresh: Vec<Message> = frames(FRESH).iter().map(|(_, f)| decode(f).unwrap()).collect();
    let rejected = fresh
        .iter()
        .filter(|m| m.kind == MessageType::BndAck)
        .flat_map(Message::binding_acks)
        .filter(|a| a.reject == Some(RejectReason::LESS_CRITICAL_BINDING))
        .count();
    assert_eq!(rejected, 100);
    let first_ip = fresh
        .iter()
        .find(|m| m.kind == MessageType::BndUpd)
        .map(|m| m.binding_updates()[0].clone().unwrap().ip);
    assert_eq!(first_ip, Some(Ipv4Addr::new(10, 40, 0, 100)));
}

#[test]
fn the_stream_decoder_handles_any_read_size() {
    for (flow, bytes) in common::tcp_streams(FRESH) {
        let whole: Vec<Vec<u8>> = {
            let mut d = FrameDecoder::new();
            d.push(&bytes);
            std::iter::from_fn(|| d.pop_frame().unwrap()).collect()
        };
        for chunk in [1, 3, 7, 12, 13, 1500] {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                d.push(piece);
                while let Some(f) = d.pop_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, whole, "{flow:?} read {chunk} bytes at a time");
        }
    }
}

//! XDP's ACK against the slow path's, byte for byte in header and options and to the same
//! place: plain, relayed, behind an access node (option 82 echoed wherever the request ends),
//! from another line (never XDP's), with a client class's long profile and option 57; and the
//! lab's ceiling program.
use dhcp_common::{LeaseEntry, Stat, layout};
use dhcp_lab::testrun::{Harness, XDP_PASS, XDP_TX};
use dhcproto::v4::{DhcpOption, Message, MessageType};
use integration::{fixture::*, xdp::*};
use xdhcp::packet::{self, Parsed, RenewKind, Renewal, Vlan};
use xdhcp::store::Lease;

/// What the slow path, fast path off, answers to `frame` with `leases` in its store: the reply
/// as it goes on the wire, and where to.
fn slow_path_reply(
    leases: Vec<xdhcp::store::Lease>,
    frame: &[u8],
    now: u64,
    circuit_change: &str,
) -> Option<(Vec<u8>, xdhcp::server::Dest)> {
    slow_path_reply_as(leases, frame, now, circuit_change, false)
}

/// [`slow_path_reply`], for a client whose reply carries the class options of the long
/// profile (`class`).
fn slow_path_reply_as(
    leases: Vec<xdhcp::store::Lease>,
    frame: &[u8],
    now: u64,
    circuit_change: &str,
    class: bool,
) -> Option<(Vec<u8>, xdhcp::server::Dest)> {
    let mut s = xdhcp::server::Server::new(slow_path_config(false, circuit_change), leases);
    let p = packet::parse_frame(frame).expect("the request parses");
    let rx = xdhcp::server::RxInfo { ifindex: 1, local_addr: Some(SERVER) };
    let mut r = s.handle_bytes(now, &p.payload, &rx).reply?;
    if class {
        with_class_options(&mut r.msg);
    }
    Some((packet::encode_reply(&r.msg, &r.room), r.dest))
}

/// The lab client's lease, bound with `relay_info` on record, in the kernel as the daemon
/// would write it; the record as the store holds it.
fn bind(h: &mut Harness, client_id: Option<Vec<u8>>, relay_info: Option<Vec<u8>>) -> Lease {
    let now = xdhcp::core::Now::read();
    let l = bound(CLIENT, CLIENT_MAC, client_id, relay_info, now.unix);
    h.maps.put_lease(CLIENT, &kernel_entry(&l, now)).unwrap();
    l
}

/// XDP answers `req` and the slow path, fast path off, answers it too: the same BOOTP header
/// byte for byte, the same options byte for byte in the same order, to the same place.
fn assert_parity(h: &mut Harness, lease: &Lease, req: &Renewal) {
    assert_parity_of(h, lease, req, &req.frame(), false);
}

/// [`assert_parity`] for `frame` (`req`'s, perhaps with options of its own), the lease's
/// profile the long one (`long`) or the lab subnet's; the XDP ACK parsed.
fn assert_parity_of(
    h: &mut Harness,
    lease: &Lease,
    req: &Renewal,
    frame: &[u8],
    long: bool,
) -> Parsed {
    let len = match (long, req.relay_info.is_some()) {
        (false, false) => layout::BOOTP_LEN,
        (false, true) => layout::RELAY_BOOTP_LEN,
        (true, false) => layout::LONG_BOOTP_LEN,
        (true, true) => layout::LONG_RELAY_BOOTP_LEN,
    };
    let frame = frame.to_vec();
    let xdp = ack_of_len(h, &frame, len);
    let now = xdhcp::core::Now::read().unix;
    let (slow, dest) = slow_path_reply_as(vec![lease.clone()], &frame, now, "nak", long)
        .unwrap_or_else(|| panic!("the slow path does not answer {req:?}"));
    assert_eq!(xdp.payload[..236], slow[..236], "BOOTP header, {req:?}");
    assert_eq!(options_of(&xdp.payload), options_of(&slow), "options, {req:?}");
    assert_eq!(
        std::net::SocketAddrV4::new(xdp.ip_dst, xdp.dst_port),
        dest.socket_addr(),
        "destination, {req:?}"
    );
    if let Some(r) = &req.relay_info {
        let o = options_of(&xdp.payload);
        assert_eq!(o.last(), Some(&(82, r.clone())), "option 82 last, as sent");
    }
    xdp
}

fn circuit(id: &[u8], remote: &[u8]) -> Vec<u8> {
    xdhcp::relay::encode(&[(xdhcp::relay::CIRCUIT_ID, id), (xdhcp::relay::REMOTE_ID, remote)])
}

/// A parity case: the option 82 on record, the client id, how the renewal comes, its VLAN tags,
/// the option 82 it carries.
type Case = (Option<Vec<u8>>, Option<Vec<u8>>, RenewKind, Vec<Vlan>, Option<Vec<u8>>);

#[test]
fn xdp_and_the_slow_path_send_the_same_ack_plain_relayed_and_from_an_access_node() {
    let mut h = harness();
    let id = Some(client_id(CLIENT_MAC));
    // A TR-101 access node's: circuit-id and remote-id, 20 bytes in all.
    let opt82 = circuit(b"olt1 1/1/3:100", b"cpe");
    assert_eq!(opt82.len(), 21);
    let relayed = RenewKind::Relayed { giaddr: RELAY, relay_mac: RELAY_MAC };
    let qinq = vec![Vlan::dot1ad(100), Vlan::dot1q(4000)];
    let cases: Vec<Case> = vec![
        (None, id.clone(), RenewKind::Renewing, vec![], None),
        (None, None, RenewKind::Rebinding, vec![], None),
        (Some(opt82.clone()), id.clone(), relayed, vec![], Some(opt82.clone())),
        // An access node at layer 2: giaddr 0, renewing and rebinding, tagged or not.
        (Some(opt82.clone()), id.clone(), RenewKind::Renewing, vec![], Some(opt82.clone())),
        (Some(opt82.clone()), None, RenewKind::Rebinding, qinq.clone(), Some(opt82.clone())),
        // Bound through a relay, renewing around it: no option 82, answered without one.
        (Some(opt82.clone()), id.clone(), RenewKind::Renewing, vec![], None),
        // Sub-options out of code order, an unknown one; empty; the longest the slot holds.
        (
            Some(xdhcp::relay::encode(&[(2, b"r"), (9, b"\0\0\x0d\xe9x"), (1, b"c")])),
            id.clone(),
            relayed,
            qinq,
            Some(xdhcp::relay::encode(&[(2, b"r"), (9, b"\0\0\x0d\xe9x"), (1, b"c")])),
        ),
        (Some(vec![]), id.clone(), RenewKind::Renewing, vec![], Some(vec![])),
        (
            Some(circuit(&[b'c'; 30], &[b'r'; 30])),
            id.clone(),
            relayed,
            vec![],
            Some(circuit(&[b'c'; 30], &[b'r'; 30])),
        ),
    ];
    for (record, client_id, kind, vlans, sent) in cases {
        let lease = bind(&mut h, client_id.clone(), record);
        let req = Renewal { client_id, kind, vlans, relay_info: sent, ..renewal(kind) };
        assert_parity(&mut h, &lease, &req);
    }
}

#[test]
fn option_82_is_echoed_wherever_the_request_ends() {
    // Relays add option 82 last; unpadded, its last word runs past the frame and the value is
    // copied out with a helper instead of read in place. A full 576-byte request with option
    // 82 is shrunk to the option 82 ACK. Every one must match the slow path's ACK.
    let mut h = harness();
    let opt82 = circuit(b"eth 1/1/7:42", b"x");
    let lease = bind(&mut h, Some(client_id(CLIENT_MAC)), Some(opt82.clone()));
    let req = Renewal { relay_info: Some(opt82.clone()), ..renewal(RenewKind::Renewing) };
    let unpadded = packet::insert_last_option(
        &dhcproto::Encodable::to_vec(&req.message()).unwrap(),
        82,
        &opt82,
    );
    assert_eq!(unpadded[unpadded.len() - 2 - opt82.len() - 1], 82, "option 82 last, unpadded");
    let mut full = req.payload();
    full.resize(layout::FULL_BOOTP_LEN, 0);
    for payload in [unpadded, full] {
        let frame = req.frame_with(&payload);
        let xdp = ack_of_len(&mut h, &frame, layout::RELAY_BOOTP_LEN);
        let now = xdhcp::core::Now::read().unix;
        let (slow, _) = slow_path_reply(vec![lease.clone()], &frame, now, "nak").unwrap();
        assert_eq!(options_of(&xdp.payload), options_of(&slow));
        // The byte before the echo is PAD (the subnet block's END was), and what follows
        // END is zeroes.
        let at = 240 + layout::PROFILE_BLOCK + dhcp_common::maps::PROFILE_OPTS_LEN;
        assert_eq!(xdp.payload[at..at + 2], [82, u8::try_from(opt82.len()).unwrap()]);
        let end = at + 2 + opt82.len();
        assert_eq!(xdp.payload[end], 255);
        assert!(xdp.payload[end + 1..].iter().all(|b| *b == 0), "zeroes after END");
        assert_eq!(options_of(&xdp.payload).last(), Some(&(82, opt82.clone())), "82 the last");
    }
}

#[test]
fn a_renewal_from_another_line_is_never_answered_by_xdp() {
    let mut h = harness();
    let home = circuit(b"olt1 1/1/3:100", b"cpe-1");
    let lease = bind(&mut h, Some(client_id(CLIENT_MAC)), Some(home.clone()));
    let now = xdhcp::core::Now::read().unix;
    let from = |relay_info: Vec<u8>| Renewal {
        relay_info: Some(relay_info),
        ..renewal(RenewKind::Renewing)
    };
    // Another circuit-id: XDP passes, and the slow path, by the default policy, refuses.
    let away = from(circuit(b"olt1 1/1/4:100", b"cpe-1"));
    passes(&mut h, &away.frame(), Stat::PassRelayInfoMismatch);
    let (nak, dest) = slow_path_reply(vec![lease.clone()], &away.frame(), now, "nak").unwrap();
    assert_eq!(options_of(&nak)[0], (53, vec![6]), "a DHCPNAK");
    assert_eq!(dest, xdhcp::server::Dest::Broadcast);
    assert!(slow_path_reply(vec![lease.clone()], &away.frame(), now, "ignore").is_none());
    // Moved, the slow path acknowledges and records it; XDP still passes until the kernel
    // entry says so.
    let (ack, _) = slow_path_reply(vec![lease.clone()], &away.frame(), now, "move").unwrap();
    assert_eq!(options_of(&ack)[0], (53, vec![5]));
    // The same line with another remote-id, or the sub-options reordered: not the bytes on
    // record, so not XDP's to answer (the slow path acknowledges and records them).
    for other in [
        circuit(b"olt1 1/1/3:100", b"cpe-2"),
        xdhcp::relay::encode(&[(2, b"cpe-1"), (1, b"olt1 1/1/3:100")]),
    ] {
        let req = from(other);
        passes(&mut h, &req.frame(), Stat::PassRelayInfoMismatch);
        let (ack, _) = slow_path_reply(vec![lease.clone()], &req.frame(), now, "nak").unwrap();
        assert_eq!(options_of(&ack)[0], (53, vec![5]));
    }
    // One byte off anywhere in the value, or one byte short.
    for i in 0..home.len() {
        let mut v = home.clone();
        v[i] ^= 0x20;
        passes(&mut h, &from(v).frame(), Stat::PassRelayInfoMismatch);
    }
    passes(&mut h, &from(home[..home.len() - 1].to_vec()).frame(), Stat::PassRelayInfoMismatch);
    // And the value on record is answered.
    assert_parity(&mut h, &lease, &from(home));
}

#[test]
fn option_82_the_fast_path_leaves_to_the_slow_path_is_passed_and_counted() {
    let mut h = harness();
    let base = renewal(RenewKind::Relayed { giaddr: RELAY, relay_mac: RELAY_MAC });
    // Link selection (RFC 3527) and server identifier override (RFC 5107) on record: every
    // renewal with option 82 goes to the slow path, the same one included.
    for sub in [(5u8, [10u8, 77, 0, 0]), (11, [10, 78, 0, 1])] {
        let raw = xdhcp::relay::encode(&[(1, b"port-1"), (sub.0, &sub.1)]);
        bind(&mut h, Some(client_id(CLIENT_MAC)), Some(raw.clone()));
        let req = Renewal { relay_info: Some(raw), ..base.clone() };
        passes(&mut h, &req.frame(), Stat::PassRelayInfoUnsupported);
        // Without option 82 it is answered all the same.
        ack(&mut h, &Renewal { relay_info: None, ..req }.frame());
    }
    // Malformed on record (a sub-option longer than the option): the same.
    bind(&mut h, Some(client_id(CLIENT_MAC)), Some(vec![1, 9, b'x']));
    let req = Renewal { relay_info: Some(vec![1, 9, b'x']), ..base.clone() };
    passes(&mut h, &req.frame(), Stat::PassRelayInfoUnsupported);
    // Longer than the slot, whatever is on record.
    bind(&mut h, Some(client_id(CLIENT_MAC)), Some(circuit(b"p", b"r")));
    let long = Renewal { relay_info: Some(circuit(&[b'c'; 100], &[b'r'; 60])), ..base.clone() };
    passes(&mut h, &long.frame(), Stat::PassRelayInfoLong);
    // Twice (RFC 3396 would concatenate them): the slow path's.
    let once = circuit(b"p", b"r");
    let twice = packet::insert_last_option(
        &Renewal { relay_info: Some(once.clone()), ..base.clone() }.payload(),
        82,
        &once,
    );
    passes(&mut h, &base.frame_with(&twice), Stat::PassNotRenewal);
}

#[test]
fn the_labs_ceiling_bounces_a_renewal_as_a_reply_with_valid_checksums() {
    root_required();
    let mut h = Harness::new(1024, &[xdhcp::fastpath::BOUNCE_PROG]).unwrap();
    let req = renewal(RenewKind::Relayed { giaddr: RELAY, relay_mac: RELAY_MAC });
    let frame = req.frame();
    let (ret, out) = h.run_prog(xdhcp::fastpath::BOUNCE_PROG, &frame).unwrap();
    assert_eq!(ret, XDP_TX);
    let p = packet::parse_frame(&out).expect("the bounced frame parses");
    assert!(p.ip_checksum_ok && p.udp_checksum_ok, "checksums updated, not broken");
    assert_eq!(p.msg.opcode(), dhcproto::v4::Opcode::BootReply);
    assert_eq!(p.msg.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!((p.msg.xid(), out.len()), (req.xid, frame.len()), "nothing else changed");
    assert_eq!(&out[0..6], &frame[6..12], "back to the sender");
    // Anything else is passed as it came.
    let mut other = frame.clone();
    other[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&53u16.to_be_bytes());
    let (ret, out) = h.run_prog(xdhcp::fastpath::BOUNCE_PROG, &other).unwrap();
    assert_eq!((ret, out), (XDP_PASS, other));
}

/// `req`'s payload with `f` applied to its message, and its option 82 (if any) added last, as
/// a relay adds it.
fn payload_with(req: &Renewal, f: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut m = req.message();
    f(&mut m);
    let p = packet::encode(&m);
    match &req.relay_info {
        Some(r) => packet::insert_last_option(&p, 82, r),
        None => p,
    }
}

/// [`bind`], the lease's kernel entry naming the long profile.
fn bind_long(h: &mut Harness, client_id: Option<Vec<u8>>, relay_info: Option<Vec<u8>>) -> Lease {
    let now = xdhcp::core::Now::read();
    let l = bound(CLIENT, CLIENT_MAC, client_id, relay_info, now.unix);
    let e = LeaseEntry { profile: LONG_PROFILE, ..kernel_entry(&l, now) };
    h.maps.put_lease(CLIENT, &e).unwrap();
    l
}

fn codes(payload: &[u8]) -> Vec<u8> {
    options_of(payload).iter().map(|o| o.0).collect()
}

#[test]
fn a_long_profile_renewed_by_xdp_is_the_slow_paths_ack_byte_for_byte() {
    let mut h = harness();
    let p = long_profile().encode().unwrap();
    assert_eq!(p.flags, dhcp_common::ReplyProfile::F_LONG);
    // 200 bytes of options (the subnet's 42, the class's 158), then END.
    assert_eq!(p.opts.iter().rposition(|b| *b == 255), Some(200));
    let id = Some(client_id(CLIENT_MAC));
    let relayed = RenewKind::Relayed { giaddr: RELAY, relay_mac: RELAY_MAC };
    let qinq = vec![Vlan::dot1ad(100), Vlan::dot1q(4000)];
    let class = [54, 1, 3, 6, 15, 42, 43, 66, 67, 121];
    for (client_id, kind, vlans) in [
        (id.clone(), RenewKind::Renewing, vec![]),
        (None, RenewKind::Rebinding, qinq),
        (id.clone(), relayed, vec![]),
    ] {
        let lease = bind_long(&mut h, client_id.clone(), None);
        let req = Renewal { client_id: client_id.clone(), kind, vlans, ..renewal(kind) };
        let xdp = assert_parity_of(&mut h, &lease, &req, &req.frame(), true);
        let head: &[u8] =
            if client_id.is_some() { &[53, 51, 58, 59, 61] } else { &[53, 51, 58, 59] };
        assert_eq!(codes(&xdp.payload), [head, &class[..]].concat(), "{kind:?}");
        assert_eq!(xdp.payload.len() + 28, layout::LONG_IP_LEN);
    }
    // A full 576-byte request, shrunk to the long ACK; a lease with option 82 on record renewed
    // around its relay, without it.
    let lease = bind_long(&mut h, id.clone(), None);
    let req = renewal(RenewKind::Renewing);
    let mut full = req.payload();
    full.resize(layout::FULL_BOOTP_LEN, 0);
    assert_parity_of(&mut h, &lease, &req, &req.frame_with(&full), true);
    let lease = bind_long(&mut h, id, Some(circuit(b"olt1 1/1/3:100", b"cpe")));
    assert_parity_of(&mut h, &lease, &req, &req.frame(), true);
    // The lab subnet's leases keep the short ACK beside them.
    let lease = bind(&mut h, Some(client_id(CLIENT_MAC)), None);
    assert_parity(&mut h, &lease, &req);
}

#[test]
fn a_long_profile_echoing_option_82_is_xdps_only_for_a_client_allowing_more_than_576_bytes() {
    let mut h = harness();
    let opt82 = circuit(b"olt1 1/1/3:100", b"cpe");
    let lease = bind_long(&mut h, Some(client_id(CLIENT_MAC)), Some(opt82.clone()));
    let relayed = RenewKind::Relayed { giaddr: RELAY, relay_mac: RELAY_MAC };
    let req = Renewal { relay_info: Some(opt82.clone()), ..renewal(relayed) };
    let now = xdhcp::core::Now::read().unix;
    let with_57 = |v: Option<u16>| {
        req.frame_with(&payload_with(&req, |m| {
            if let Some(v) = v {
                m.opts_mut().insert(DhcpOption::MaxMessageSize(v));
            }
        }))
    };
    // The ACK takes 604 bytes of IP: without option 57, or with one allowing less, the slow
    // path's, whose reply fits 576 bytes with every option of the profile, option 82 last.
    for v in [None, Some(300), Some(576), Some(603)] {
        let frame = with_57(v);
        passes(&mut h, &frame, Stat::PassReplyTooLong);
        let (slow, _) = slow_path_reply_as(vec![lease.clone()], &frame, now, "nak", true).unwrap();
        assert!(28 + slow.len() <= 576, "{} bytes of IP, option 57 {v:?}", 28 + slow.len());
        let c = codes(&slow);
        assert_eq!(c, [53, 51, 58, 59, 61, 54, 1, 3, 6, 15, 42, 43, 66, 67, 121, 82], "{v:?}");
        assert_eq!(options_of(&slow).last(), Some(&(82, opt82.clone())));
    }
    // Allowing 604 bytes or more: XDP answers, with the slow path's ACK.
    for v in [604, 1500] {
        let xdp = assert_parity_of(&mut h, &lease, &req, &with_57(Some(v)), true);
        assert_eq!(xdp.payload.len() + 28, layout::LONG_RELAY_IP_LEN);
    }
    // Option 57 of another length than two is read as none; twice, as one of four bytes
    // (RFC 3396), it is the slow path's.
    let bare = packet::encode(&req.message());
    let odd = packet::insert_last_option(&bare, 57, &[0x05, 0xdc, 0]);
    passes(
        &mut h,
        &req.frame_with(&packet::insert_last_option(&odd, 82, &opt82)),
        Stat::PassReplyTooLong,
    );
    let once = packet::insert_last_option(&bare, 57, &[0x05, 0xdc]);
    let twice = packet::insert_last_option(&once, 57, &[0x05, 0xdc]);
    passes(
        &mut h,
        &req.frame_with(&packet::insert_last_option(&twice, 82, &opt82)),
        Stat::PassNotRenewal,
    );
    // The lab subnet's short ACK echoing option 82 (492 bytes) needs no option 57.
    let lease = bind(&mut h, Some(client_id(CLIENT_MAC)), Some(opt82.clone()));
    assert_parity_of(&mut h, &lease, &req, &with_57(None), false);
}

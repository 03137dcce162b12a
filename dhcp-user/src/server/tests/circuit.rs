//! The subscriber's line: option 82 echoed as it came, recorded with the binding, and the
//! `circuit_change` policy for requests from another line.
use dhcproto::Encodable as _;

use super::*;
use crate::config::CircuitChange;
use crate::relay;

fn server_with(policy: &str) -> Server {
    let text = CONFIG.replacen(
        "lease_time = 600\n",
        &format!("lease_time = 600\ncircuit_change = \"{policy}\"\n"),
        1,
    );
    Server::new(Config::from_toml(&text, "test.toml").unwrap(), Vec::new())
}

/// A client behind a layer-2 access node: option 82 with `circuit`, giaddr 0.
fn on_line(n: u8, circuit: &[u8]) -> Client {
    Client { circuit: Some(circuit.to_vec()), ..Client::new(n) }
}

fn circuit_of(s: &Server, a: Ipv4Addr) -> Option<Vec<u8>> {
    s.lease(a).and_then(Lease::circuit_id).map(<[u8]>::to_vec)
}

#[test]
fn the_default_refuses_a_renewal_from_another_line_and_a_new_dora_moves_the_binding() {
    let mut s = server();
    assert_eq!(s.config().subnets[0].circuit_change, CircuitChange::Nak);
    let home = on_line(1, b"olt1 eth 1/1/1:100");
    let a = home.dora(&mut s, T0);
    assert_eq!(circuit_of(&s, a).as_deref(), Some(&b"olt1 eth 1/1/1:100"[..]));
    assert!(s.take_circuit_changes().is_empty());

    // From its own line, and without option 82 (renewing around an L3 relay): acknowledged,
    // and the line on record stays.
    for c in [&home, &Client::new(1)] {
        let o = s.handle(T0 + 300, &c.renew(a), &direct());
        assert_eq!(o.result, Handled::Acked(a));
        assert_eq!(circuit_of(&s, a).as_deref(), Some(&b"olt1 eth 1/1/1:100"[..]));
    }

    // From another line: renewing, rebinding, rebooting are all refused, each counted and told.
    let away = on_line(1, b"olt2 eth 1/1/7:100");
    for m in [away.renew(a), away.rebind(a), away.init_reboot(a)] {
        let o = s.handle(T0 + 310, &m, &direct());
        assert_eq!(o.result, Handled::Nacked);
        assert!(o.changes.is_empty(), "nothing recorded");
        assert_eq!(reply(&o).dest, Dest::Broadcast);
    }
    assert_eq!(s.counters().circuit_changes, [3, 0, 0, 0]);
    assert_eq!(circuit_of(&s, a).as_deref(), Some(&b"olt1 eth 1/1/1:100"[..]));
    let told = s.take_circuit_changes();
    assert_eq!(told.len(), 3);
    assert_eq!(told[0].address, a);
    assert_eq!(told[0].from, b"olt1 eth 1/1/1:100");
    assert_eq!(told[0].to.as_deref(), Some(&b"olt2 eth 1/1/7:100"[..]));
    assert_eq!(told[0].action, CircuitAction::Nak);

    // The client starts over from the new line: its DORA binds it there.
    assert_eq!(away.dora(&mut s, T0 + 320), a);
    assert_eq!(circuit_of(&s, a).as_deref(), Some(&b"olt2 eth 1/1/7:100"[..]));
    assert_eq!(s.counters().circuit_changes, [3, 0, 0, 1]);
    assert_eq!(s.take_circuit_changes()[0].action, CircuitAction::Rebound);
    // ...and its renewals from there are its own now; the old line's are refused.
    assert_eq!(s.handle(T0 + 330, &away.renew(a), &direct()).result, Handled::Acked(a));
    assert_eq!(s.handle(T0 + 330, &home.renew(a), &direct()).result, Handled::Nacked);
}

#[test]
fn ignore_leaves_the_binding_on_its_line_unanswered() {
    let mut s = server_with("ignore");
    let a = on_line(1, b"port-1").dora(&mut s, T0);
    let away = on_line(1, b"port-2");
    for m in [away.renew(a), away.rebind(a), away.init_reboot(a)] {
        let o = s.handle(T0 + 300, &m, &direct());
        assert_eq!(o.result, Handled::Dropped(DropReason::CircuitChanged));
        assert!(o.reply.is_none() && o.changes.is_empty());
    }
    assert_eq!(s.counters().dropped(DropReason::CircuitChanged), 3);
    assert_eq!(s.counters().circuit_changes, [0, 3, 0, 0]);
    assert_eq!(circuit_of(&s, a).as_deref(), Some(&b"port-1"[..]));
}

#[test]
fn move_acknowledges_and_the_fast_path_follows_the_new_line() {
    let mut s = server_with("move");
    let a = on_line(1, b"port-1").dora(&mut s, T0);
    let away = on_line(1, b"port-2");
    let o = s.handle(T0 + 300, &away.renew(a), &direct());
    assert_eq!(o.result, Handled::Acked(a));
    assert_eq!(put(&o).circuit_id(), Some(&b"port-2"[..]));
    assert_eq!(s.counters().circuit_changes, [0, 0, 1, 0]);
    assert_eq!(s.take_circuit_changes()[0].action, CircuitAction::Moved);
    // The kernel entry is rewritten with the new option 82, so XDP answers from the new line
    // (and no longer from the old).
    let ops = s.map_ops(&o.changes, T0 + 300);
    let [MapOp::Upsert(l)] = ops.as_slice() else { panic!("{ops:?}") };
    let want = relay::encode(&[(relay::CIRCUIT_ID, b"port-2")]);
    assert_eq!(l.relay_info.as_deref(), Some(&want[..]));
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, m, o: as in the other scenarios")]
fn only_a_known_line_against_a_named_one_is_a_change() {
    let mut s = server();
    // Bound without option 82: the first line it is seen on is recorded, not refused.
    let c = Client::new(1);
    let a = c.dora(&mut s, T0);
    assert_eq!(circuit_of(&s, a), None);
    let o = s.handle(T0 + 300, &on_line(1, b"port-1").renew(a), &direct());
    assert_eq!(o.result, Handled::Acked(a));
    assert_eq!(circuit_of(&s, a).as_deref(), Some(&b"port-1"[..]));
    // Option 82 without a circuit-id, against one on record, is another line.
    let mut m = c.renew(a);
    let remote_only = relay::encode(&[(relay::REMOTE_ID, b"cpe-1")]);
    m.opts_mut().insert(DhcpOption::Unknown(UnknownOption::new(
        OptionCode::RelayAgentInformation,
        remote_only,
    )));
    assert_eq!(s.handle(T0 + 310, &m, &direct()).result, Handled::Nacked);
    assert_eq!(s.counters().circuit_changes, [1, 0, 0, 0]);
    assert_eq!(s.take_circuit_changes()[0].to, None);
    // Another client's address is not this client's binding: no policy, the usual answer.
    let other = on_line(2, b"port-9");
    let o = s.handle(T0 + 320, &other.renew(a), &direct());
    assert_eq!(o.result, Handled::Nacked);
    assert_eq!(s.counters().circuit_changes, [1, 0, 0, 0], "not a circuit change");
}

/// The options of an encoded reply, PAD skipped, in wire order, up to END.
pub(super) fn wire_options(payload: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut o = 240;
    while o < payload.len() {
        match payload[o] {
            255 => break,
            0 => o += 1,
            c => {
                let len = usize::from(payload[o + 1]);
                out.push((c, payload[o + 2..o + 2 + len].to_vec()));
                o += 2 + len;
            }
        }
    }
    out
}

#[test]
fn option_82_comes_back_byte_for_byte_last_and_replies_keep_the_fast_paths_order() {
    let mut s = server();
    // Sub-options out of code order, an unknown one, as an access node may send them: dhcproto
    // would sort them, drop the vendor one's position and re-encode.
    let raw = relay::encode(&[(relay::REMOTE_ID, b"cpe-1"), (9, b"\x00\x00\x0d\xe9v"), (1, b"p1")]);
    let c = Client { client_id: Some(vec![1, 2, 0, 0, 0, 0, 1]), ..Client::new(1) };
    // Added to the encoded message as a relay adds it (dhcproto would encode an unknown
    // option 82 twice).
    let with_82 = |mut m: Message| {
        m.opts_mut().insert(DhcpOption::Hostname("cpe".into()));
        crate::packet::insert_last_option(&m.to_vec().unwrap(), 82, &raw)
    };
    let offer = s.handle_bytes(T0, &with_82(c.discover()), &direct());
    let Handled::Offered(a) = offer.result else { panic!("{:?}", offer.result) };
    let ack = s.handle_bytes(T0, &with_82(c.select(SERVER, a)), &direct());
    assert_eq!(ack.result, Handled::Acked(a));
    assert_eq!(s.lease(a).unwrap().relay_info.as_deref(), Some(&raw[..]), "recorded as sent");
    let bytes = crate::packet::encode_reply(&reply(&ack).msg, &reply(&ack).room);
    let opts = wire_options(&bytes);
    let codes: Vec<u8> = opts.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [53, 51, 58, 59, 61, 54, 1, 3, 6, 15, 82]);
    assert_eq!(opts.last().unwrap().1, raw);
    assert_eq!(*bytes.last().unwrap(), 255, "END right after option 82");
    // An empty option 82 goes back as one (dhcproto would write nothing for it).
    let mut m = reply(&ack).msg.clone();
    let code = OptionCode::RelayAgentInformation;
    m.opts_mut().insert(DhcpOption::Unknown(UnknownOption::new(code, Vec::new())));
    let bytes = crate::packet::encode_reply(&m, &reply(&ack).room);
    assert_eq!(wire_options(&bytes).last().unwrap(), &(82, Vec::new()));
    // Options the fast path never sends follow its own, by code, before 82.
    m.opts_mut().insert(DhcpOption::Message("x".into()));
    let codes: Vec<u8> = wire_options(&crate::packet::encode_reply(&m, &reply(&ack).room))
        .iter()
        .map(|o| o.0)
        .collect();
    assert_eq!(&codes[codes.len() - 2..], [56, 82]);
}

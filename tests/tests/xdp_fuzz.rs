//! Thousands of random and mutated frames through the real program: only `XDP_PASS` (frame
//! untouched) or `XDP_TX` come back, and `XDP_TX` only for a frame that an independent model of the
//! rules calls a valid renewal of an installed lease, and that the slow path (fast path off)
//! answers with the same ACK. Option 82 gets garbage of its own: random values, lengths past the
//! packet, sub-options lying about theirs, the longest option there is, repeats. Half the leases
//! have the long reply profile, whose ACK echoing option 82 only a client allowing 604 bytes
//! (option 57) gets from XDP; renewals carry option 57 of any value and length, and options in
//! `file` and `sname`, with option 52 naming them or not.
use std::{collections::HashMap, net::Ipv4Addr};

use dhcp_common::{LeaseEntry, Stat, digest};
use dhcp_lab::testrun::{Harness, XDP_DROP, XDP_PASS, XDP_TX};
use dhcproto::{
    Decodable as _,
    v4::{DhcpOption, Message, MessageType, Opcode, OptionCode},
};
use integration::fixture::*;
use xdhcp::{
    packet::{self, RenewKind, Renewal, Vlan},
    relay,
    server::{Handled, RxInfo, Server},
    store::Lease,
};

/// xorshift64*: deterministic, so a failure names a seed that reproduces it.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    #[expect(clippy::cast_possible_truncation, reason = "the remainder is below n, a usize")]
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    #[expect(clippy::cast_possible_truncation, reason = "the low 32 bits are the point")]
    fn next_u32(&mut self) -> u32 {
        self.next() as u32
    }
    #[expect(clippy::cast_possible_truncation, reason = "the low byte is the point")]
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

const LEASES: u8 = 8;
const FRAMES: u64 = 10_000;

fn lease_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 100 + i)
}
fn lease_mac(i: u8) -> [u8; 6] {
    [2, 0x77, 0, 0, 1, i]
}
/// Option 82 on record: a line for most leases, none for some, one the fast path leaves to
/// the slow path (link selection) for one.
fn lease_relay(i: u8) -> Option<Vec<u8>> {
    match i % 4 {
        0 => None,
        3 => Some(relay::encode(&[(1, b"port-3"), (5, &[10, 77, 0, 0])])),
        _ => Some(relay::encode(&[(1, format!("olt1 1/1/{i}:100").as_bytes()), (2, b"cpe")])),
    }
}

/// Whether lease `i` has the long profile (its kernel entry names `LONG_PROFILE`).
fn lease_long(i: u8) -> bool {
    i % 2 == 1
}

/// Option 82 as XDP reads it: the values of every instance, walking the options as it does.
fn opt82_instances(payload: &[u8]) -> Vec<&[u8]> {
    instances(payload, 82)
}

/// Option `want` as XDP reads it: the values of every instance, walking the options as it does.
fn instances(payload: &[u8], want: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut o = 240;
    while let Some(&code) = payload.get(o) {
        match code {
            255 => break,
            0 => o += 1,
            _ => {
                let Some(&len) = payload.get(o + 1) else { break };
                let Some(v) = payload.get(o + 2..o + 2 + usize::from(len)) else { break };
                if code == want {
                    out.push(v);
                }
                o += 2 + usize::from(len);
            }
        }
    }
    out
}

/// The UDP payload of a frame XDP answered (so Ethernet, IPv4 and UDP are whole).
fn udp_payload(frame: &[u8]) -> Vec<u8> {
    let mut l2 = 14;
    while matches!(u16::from_be_bytes([frame[l2 - 2], frame[l2 - 1]]), 0x8100 | 0x88a8) {
        l2 += 4;
    }
    let udp_len = usize::from(u16::from_be_bytes([frame[l2 + 24], frame[l2 + 25]]));
    frame[l2 + 28..l2 + 20 + udp_len].to_vec()
}

/// The message as dhcproto (the slow path's decoder) decodes it; `None` where it fails or
/// trips one of its debug assertions (the slow path checks first, `dhcproto_safe`).
fn decode(payload: &[u8]) -> Option<Message> {
    std::panic::catch_unwind(|| Message::from_bytes(payload)).ok()?.ok()
}

/// Whether dhcproto decodes every option of `payload`: it stops at the first option whose
/// value it cannot read as its type (an address list of 3 bytes, a hostname not UTF-8), and the
/// slow path then sees none of those after it. XDP does not check the values of options it
/// does not use, so it may answer such a request where the slow path, missing say the client
/// identifier after it (or dropping a message it cannot decode at all), would not: a gap this
/// test counts (and prints) rather than closes.
fn dhcproto_sees_every_option(payload: &[u8]) -> bool {
    let Some(m) = decode(payload) else { return false };
    let mut o = 240;
    while let Some(&code) = payload.get(o) {
        match code {
            255 => return true,
            0 => o += 1,
            _ => {
                if m.opts().get(OptionCode::from(code)).is_none() {
                    return false;
                }
                o += 2 + usize::from(*payload.get(o + 1).unwrap_or(&0));
            }
        }
    }
    true
}

/// What the rules say about a frame: is it a renewal the kernel may answer?
#[expect(clippy::many_single_char_names, reason = "p, m, o, h: packet, message, options, harness")]
fn model_says_renewal(frame: &[u8], h: &Harness) -> Result<(), String> {
    let p = packet::parse_frame(frame).map_err(|e| format!("does not parse: {e}"))?;
    if p.dst_port != 67 {
        return Err("not to port 67".into());
    }
    let m = decode(&p.payload).ok_or("dhcproto does not decode it")?;
    if p.payload.get(236..240) != Some(&dhcproto::v4::MAGIC[..]) {
        return Err("no magic cookie".into());
    }
    if m.opcode() != Opcode::BootRequest || m.hlen() != 6 {
        return Err("not an Ethernet BOOTREQUEST".into());
    }
    let o = m.opts();
    if o.get(OptionCode::MessageType) != Some(&DhcpOption::MessageType(MessageType::Request)) {
        return Err("not a REQUEST".into());
    }
    for c in
        [OptionCode::RequestedIpAddress, OptionCode::ServerIdentifier, OptionCode::OptionOverload]
    {
        if o.get(c).is_some() {
            return Err(format!("carries {c:?}"));
        }
    }
    // Option 57 at most once; read as none unless two bytes long.
    let max_size = match instances(&p.payload, 57)[..] {
        [] => None,
        [v] => <[u8; 2]>::try_from(v).ok().map(u16::from_be_bytes),
        _ => return Err("option 57 more than once".into()),
    };
    // Option 82: at most once, and then byte for byte the value on record, which must be one
    // the fast path echoes; with the long profile, only for a client allowing its 604 bytes.
    match opt82_instances(&p.payload)[..] {
        [] => {}
        [v] => {
            let i = (0..LEASES).find(|i| lease_addr(*i) == m.ciaddr()).ok_or("no such lease")?;
            let on_record = lease_relay(i);
            if on_record.as_deref() != Some(v) || !relay::fast_path_eligible(v) {
                return Err(format!("option 82 {v:02x?} is not the one on record"));
            }
            if lease_long(i) && max_size.is_none_or(|n| n < 604) {
                return Err(format!("604 bytes of ACK for a client allowing {max_size:?}"));
            }
        }
        _ => return Err("option 82 more than once".into()),
    }
    let e: LeaseEntry = h.maps.lease(m.ciaddr()).ok_or("no lease for ciaddr")?;
    if e.chaddr != m.chaddr()[..6] {
        return Err("chaddr differs".into());
    }
    let id = match o.get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) => digest::client_id(id),
        _ => None,
    };
    if (e.flags & LeaseEntry::F_CLIENT_ID != 0) != id.is_some()
        || id.is_some_and(|d| d != e.client_id_digest)
    {
        return Err("client id differs".into());
    }
    Ok(())
}

fn valid_renewal(rng: &mut Rng) -> Renewal {
    let i = u8::try_from(rng.below(LEASES.into())).expect("below LEASES, a u8");
    let kind = match rng.below(3) {
        0 => RenewKind::Renewing,
        1 => RenewKind::Rebinding,
        _ => RenewKind::Relayed { giaddr: RELAY, relay_mac: RELAY_MAC },
    };
    let vlans = match rng.below(3) {
        0 => vec![],
        1 => vec![Vlan::dot1q(u16::try_from(rng.below(4095)).expect("below 4095"))],
        _ => vec![Vlan::dot1ad(1), Vlan::dot1q(2)],
    };
    Renewal {
        xid: rng.next_u32(),
        chaddr: lease_mac(i),
        ciaddr: lease_addr(i),
        client_id: i.is_multiple_of(2).then(|| client_id(lease_mac(i))),
        kind,
        server: SERVER,
        server_mac: SERVER_MAC,
        vlans,
        relay_info: lease_relay(i),
    }
}

/// Option 82 garbage for a valid renewal.
fn garbage_relay_info(rng: &mut Rng, r: &Renewal) -> Vec<u8> {
    let payload = |v: &[u8]| packet::insert_last_option(&packet::encode(&r.message()), 82, v);
    match rng.below(7) {
        // Random values, some longer than the fast path echoes, up to the longest possible.
        0 => {
            let v: Vec<u8> = (0..rng.below(256)).map(|_| rng.byte()).collect();
            payload(&v)
        }
        // Sub-options lying about their length.
        1 => {
            let mut v = r.relay_info.clone().unwrap_or_else(|| relay::encode(&[(1, b"p")]));
            let at = rng.below(v.len().max(1)) & !1;
            if at + 1 < v.len() {
                v[at + 1] = rng.byte();
            }
            payload(&v)
        }
        // The option's own length running past the packet.
        2 => {
            let mut p = payload(&r.relay_info.clone().unwrap_or_default());
            if let Some(at) = p[240..].windows(1).position(|w| w[0] == 82) {
                p[240 + at + 1] = 200 + rng.byte() % 56;
                p.truncate(240 + at + 2 + rng.below(40));
            }
            p
        }
        // Twice: the value on record split in two, or repeated.
        3 => {
            let v = r.relay_info.clone().unwrap_or_else(|| vec![1, 1, b'x']);
            let cut = rng.below(v.len() + 1);
            let once = packet::insert_last_option(&packet::encode(&r.message()), 82, &v[..cut]);
            packet::insert_last_option(&once, 82, &v[cut..])
        }
        // One byte of the value on record changed, or one byte more.
        4 => {
            let mut v = r.relay_info.clone().unwrap_or_default();
            if v.is_empty() || rng.below(2) == 0 {
                v.push(rng.byte());
            } else {
                let at = rng.below(v.len());
                v[at] ^= 1 << rng.below(8);
            }
            payload(&v)
        }
        // 255-byte options up to the option 82: the scan's cap and the packet's end.
        5 => {
            let mut p = packet::encode(&r.message());
            let end = 240 + p[240..].iter().position(|b| *b == 255).unwrap();
            let filler: Vec<u8> = (0..rng.below(4))
                .flat_map(|_| [224u8, 255].into_iter().chain((0..255).map(|_| 0x55)))
                .collect();
            p.splice(end..end, filler);
            packet::insert_last_option(&p, 82, &r.relay_info.clone().unwrap_or_default())
        }
        // The value on record, unpadded, last: copied out rather than read in place.
        _ => packet::insert_last_option(
            &dhcproto::Encodable::to_vec(&r.message()).unwrap(),
            82,
            &r.relay_info.clone().unwrap_or_default(),
        ),
    }
}

/// A valid renewal carrying option 57 (none, a value near the 604 bytes a long profile's ACK
/// with option 82 takes, any value, or one of another length than two), and options in `file`
/// or `sname` (an address, a client identifier, random ones), with option 52 naming the field
/// or not.
#[expect(clippy::many_single_char_names, reason = "r, m, p, a, f, v: the renewal and its parts")]
fn room_and_overload(rng: &mut Rng, r: &Renewal) -> Vec<u8> {
    let mut m = r.message();
    let near = [0u16, 300, 576, 603, 604, 605, 1500, 65535];
    match rng.below(4) {
        0 => {}
        1 => {
            m.opts_mut().insert(DhcpOption::MaxMessageSize(near[rng.below(near.len())]));
        }
        _ => {
            #[expect(clippy::cast_possible_truncation, reason = "any value will do")]
            m.opts_mut().insert(DhcpOption::MaxMessageSize(rng.next() as u16));
        }
    }
    let mut p = packet::encode(&m);
    if rng.below(6) == 0 {
        let v: Vec<u8> = (0..rng.below(5)).map(|_| rng.byte()).collect();
        p = packet::insert_last_option(&p, 57, &v);
    }
    let fields = [(108usize, 128usize), (44, 64)];
    if rng.below(2) == 0 {
        let (at, len) = fields[rng.below(2)];
        let a = r.ciaddr.octets();
        let mut f = match rng.below(3) {
            0 => vec![50, 4, a[0], a[1], a[2], a[3], 255],
            1 => [&[61u8, 7, 1][..], &lease_mac(rng.byte() % LEASES), &[255]].concat(),
            _ => (0..rng.below(len)).map(|_| rng.byte()).collect(),
        };
        f.truncate(len);
        p[at..at + f.len()].copy_from_slice(&f);
        if rng.below(2) == 0 {
            #[expect(clippy::cast_possible_truncation, reason = "below 5")]
            let v = rng.below(5) as u8;
            p = packet::insert_last_option(&p, 52, &[v]);
        }
    }
    match &r.relay_info {
        Some(v) => packet::insert_last_option(&p, 82, v),
        None => p,
    }
}

/// The slow path must send the ACK XDP sent: the same header and options, byte for byte (with
/// the class options of the long profile, for its leases).
fn slow_path_agrees(slow: &mut Server, frame: &[u8], ack: &packet::Parsed) -> Result<(), String> {
    let p = packet::parse_frame(frame).map_err(|e| e.to_string())?;
    let now = xdhcp::core::Now::read().unix;
    let rx = RxInfo { ifindex: 1, local_addr: Some(SERVER) };
    let o = slow.handle_bytes(now, &p.payload, &rx);
    let Handled::Acked(a) = o.result else { return Err(format!("slow path: {:?}", o.result)) };
    let mut r = o.reply.ok_or("no reply")?;
    if (0..LEASES).any(|i| lease_addr(i) == a && lease_long(i)) {
        with_class_options(&mut r.msg);
    }
    let bytes = packet::encode_reply(&r.msg, &r.room);
    if bytes[..236] != ack.payload[..236] {
        return Err("the BOOTP headers differ".into());
    }
    if options_of(&bytes) != options_of(&ack.payload) {
        return Err(format!(
            "the options differ: slow {:?}, XDP {:?}",
            options_of(&bytes),
            options_of(&ack.payload)
        ));
    }
    Ok(())
}

fn mutate(rng: &mut Rng, mut f: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !f.is_empty() => {
                let at = rng.below(f.len());
                f[at] = rng.byte();
            }
            1 if !f.is_empty() => {
                let at = rng.below(f.len());
                f[at] ^= 1 << rng.below(8);
            }
            2 => {
                let keep = 14 + rng.below(f.len().saturating_sub(13).max(1));
                f.truncate(keep.min(f.len()));
            }
            3 => f.extend((0..rng.below(64)).map(|_| rng.byte())),
            _ => {
                // Aim at the interesting region: the BOOTP header and first options.
                let at = 42 + rng.below(300);
                if at < f.len() {
                    f[at] = [0, 1, 3, 50, 53, 54, 61, 82, 255][rng.below(9)];
                }
            }
        }
    }
    f
}

/// Frame `n` of a run: random bytes, a mutated renewal, one with garbage in option 82, one
/// with option 57 and overloaded fields, or a valid renewal, in turn.
fn fuzz_frame(rng: &mut Rng, n: u64) -> Vec<u8> {
    match n % 5 {
        0 => (0..14 + rng.below(600)).map(|_| rng.byte()).collect(),
        1 => {
            let f = valid_renewal(rng).frame();
            mutate(rng, f)
        }
        2 => {
            let r = valid_renewal(rng);
            let payload = garbage_relay_info(rng, &r);
            r.frame_with(&payload)
        }
        3 => {
            let r = valid_renewal(rng);
            let payload = room_and_overload(rng, &r);
            r.frame_with(&payload)
        }
        _ => valid_renewal(rng).frame(),
    }
}

fn fuzz_seed() -> u64 {
    std::env::var("XDHCP_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_2026_u64)
}

/// The leases of the run in the kernel, and the slow path holding the same records.
fn install_leases(h: &mut Harness) -> Server {
    let now = xdhcp::core::Now::read();
    let mut records: HashMap<Ipv4Addr, Lease> = HashMap::new();
    for i in 0..LEASES {
        let id = i.is_multiple_of(2).then(|| client_id(lease_mac(i)));
        let l = bound(lease_addr(i), lease_mac(i), id, lease_relay(i), now.unix);
        let profile = if lease_long(i) { LONG_PROFILE } else { 0 };
        h.maps.put_lease(lease_addr(i), &LeaseEntry { profile, ..kernel_entry(&l, now) }).unwrap();
        records.insert(l.address, l);
    }
    Server::new(slow_path_config(false, "nak"), records.into_values())
}

/// The same frames with every bucket tiny: XDP drops only what the rules do not call a renewal
/// of an installed lease, and a frame the server's own parser refuses (random bytes, lying
/// lengths, cut short) is charged to the interface's bucket alone, never to a key read from it.
#[test]
fn under_policing_garbage_is_charged_to_the_interface_and_no_renewal_is_dropped() {
    use dhcp_common::police::{Policy, Rate};
    let mut h = harness();
    let _slow = install_leases(&mut h);
    let mut police = h.police().unwrap();
    let tiny = Rate::new(1, 1);
    police
        .set(&xdhcp::fastpath::police::Plan {
            interface: Rate::new(1, 1_000),
            policies: vec![Policy { mac: tiny, port: tiny, vlan: tiny }],
            prefixes: vec![],
        })
        .unwrap();
    let seed = fuzz_seed();
    let mut rng = Rng(seed);
    let (mut dropped, mut by_iface, mut renewals) = (0u64, 0u64, 0u64);
    for n in 0..FRAMES {
        let frame = fuzz_frame(&mut rng, n);
        let before = h.maps.stats().unwrap();
        let (ret, out) = h.run(&frame).unwrap();
        let d = h.maps.stats().unwrap().since(&before);
        // Judged only where the model can read every option (as in the test above).
        let parsed = packet::parse_frame(&frame);
        let judged = parsed.as_ref().is_ok_and(|p| dhcproto_sees_every_option(&p.payload));
        let renewal = judged && model_says_renewal(&frame, &h).is_ok();
        renewals += u64::from(renewal);
        match ret {
            XDP_TX => {
                assert!(
                    renewal || !judged,
                    "seed {seed} frame {n}: answered a frame the rules refuse"
                );
            }
            XDP_PASS => assert!(out == frame, "seed {seed} frame {n}: passed frame was modified"),
            XDP_DROP => {
                assert!(out == frame, "seed {seed} frame {n}: dropped frame was modified");
                assert!(!renewal, "seed {seed} frame {n}: dropped a renewal: {frame:02x?}");
                dropped += 1;
                if parsed.is_err() {
                    assert_eq!(
                        d.get(Stat::DropPolicedInterface),
                        1,
                        "seed {seed} frame {n}: garbage charged to a key: {:?}",
                        d.to_json()
                    );
                }
                by_iface += d.get(Stat::DropPolicedInterface);
            }
            other => panic!("seed {seed} frame {n}: verdict {other}"),
        }
    }
    let c = h.maps.stats().unwrap();
    let total: u64 = c.values.iter().map(|(_, v)| v).sum();
    assert_eq!(total, FRAMES, "exactly one counter per frame");
    let counted: u64 = Stat::POLICED.iter().map(|s| c.get(*s)).sum();
    assert_eq!(counted, dropped, "every drop counted under its key");
    // The buckets bit: the mutations that make a renewal some other message (a new client's,
    // another MAC's) are over a 1-message burst, and the interface's 1,000 ran out. Most
    // mutated renewals are still their own client's, and never charged.
    let by_key = c.get(Stat::DropPolicedMac) + c.get(Stat::DropPolicedPort);
    assert!(by_key >= 10 && by_iface > 0, "{dropped} dropped, {by_iface} by the interface");
    assert!(renewals >= 1_500, "only {renewals} renewals among the frames");
    let top = police.offenders(3).unwrap();
    assert!(!top.is_empty());
    println!("seed {seed}: {dropped} dropped ({by_iface} by the interface), {renewals} renewals");
}

#[test]
fn random_and_mutated_frames_only_pass_untouched_or_ack_valid_renewals() {
    let mut h = harness();
    let mut slow = install_leases(&mut h);
    let seed = fuzz_seed();
    let mut rng = Rng(seed);
    let (mut acks, mut passed, mut acks82, mut beyond_dhcproto) = (0, 0, 0, 0);
    let mut acks_long82 = 0;
    for n in 0..FRAMES {
        let frame = fuzz_frame(&mut rng, n);
        let (ret, out) = h.run(&frame).unwrap();
        match ret {
            XDP_PASS => {
                assert!(out == frame, "seed {seed} frame {n}: passed frame was modified");
                passed += 1;
            }
            XDP_TX => {
                let payload = udp_payload(&frame);
                if !dhcproto_sees_every_option(&payload) {
                    beyond_dhcproto += 1;
                    continue;
                }
                if let Err(why) = model_says_renewal(&frame, &h) {
                    panic!(
                        "seed {seed} frame {n}: XDP answered a frame the rules refuse ({why}): {frame:02x?}"
                    );
                }
                let p = packet::parse_frame(&out).expect("ACK parses");
                assert!(p.ip_checksum_ok && p.udp_checksum_ok, "seed {seed} frame {n}: checksums");
                if let Err(why) = slow_path_agrees(&mut slow, &frame, &p) {
                    panic!("seed {seed} frame {n}: not the slow path's ACK ({why}): {frame:02x?}");
                }
                acks += 1;
                let with82 = options_of(&p.payload).iter().any(|o| o.0 == 82);
                acks82 += usize::from(with82);
                acks_long82 += usize::from(with82 && p.payload.len() + 28 > 576);
            }
            other => panic!("seed {seed} frame {n}: verdict {other}"),
        }
    }
    let c = h.maps.stats().unwrap();
    let total: u64 = c.values.iter().map(|(_, v)| v).sum();
    assert_eq!(total, FRAMES, "exactly one counter per frame");
    assert_eq!(c.get(Stat::Ack), acks + beyond_dhcproto);
    // The unmutated fifth must be answered but for the leases the fast path leaves option 82
    // of to the slow path (and the long ones without option 57); mutation must not stop
    // everything.
    assert!(acks >= 1500, "only {acks} ACKs");
    assert!(acks82 >= 600, "only {acks82} ACKs echoing option 82");
    assert!(acks_long82 >= 20, "only {acks_long82} long ACKs echoing option 82");
    assert!(passed >= 3000, "only {passed} passes");
    for s in [
        Stat::PassRelayInfoLong,
        Stat::PassRelayInfoMismatch,
        Stat::PassRelayInfoUnsupported,
        Stat::PassReplyTooLong,
    ] {
        assert!(c.get(s) > 0, "no frame was {}", s.name());
    }
    println!(
        "seed {seed}: {acks} ACKs ({acks82} with option 82, {acks_long82} of them long), \
         {passed} passed; \
         {beyond_dhcproto} ACKs to requests with an option dhcproto cannot decode"
    );
}

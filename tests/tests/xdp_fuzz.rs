//! Thousands of random and mutated frames through the real program: only `XDP_PASS` (frame
//! untouched) or `XDP_TX` come back, and `XDP_TX` only for a frame that an independent model of the
//! rules calls a valid renewal of an installed lease.
use std::net::Ipv4Addr;

use dhcp_common::{LeaseEntry, Stat, digest};
use dhcp_lab::testrun::{Harness, XDP_PASS, XDP_TX};
use dhcproto::{
    Decodable as _,
    v4::{DhcpOption, Message, MessageType, Opcode, OptionCode},
};
use integration::fixture::*;
use xdhcp::packet::{self, RenewKind, Renewal, Vlan};

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

fn lease_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 100 + i)
}
fn lease_mac(i: u8) -> [u8; 6] {
    [2, 0x77, 0, 0, 1, i]
}

/// What the rules say about a frame: is it a renewal the kernel may answer?
#[expect(clippy::many_single_char_names, reason = "p, m, o, h: packet, message, options, harness")]
fn model_says_renewal(frame: &[u8], h: &Harness) -> Result<(), String> {
    let p = packet::parse_frame(frame).map_err(|e| format!("does not parse: {e}"))?;
    if p.dst_port != 67 {
        return Err("not to port 67".into());
    }
    let m = Message::from_bytes(&p.payload).map_err(|e| e.to_string())?;
    if m.opcode() != Opcode::BootRequest || m.chaddr().len() != 6 {
        return Err("not an Ethernet BOOTREQUEST".into());
    }
    let o = m.opts();
    if o.get(OptionCode::MessageType) != Some(&DhcpOption::MessageType(MessageType::Request)) {
        return Err("not a REQUEST".into());
    }
    for c in [
        OptionCode::RequestedIpAddress,
        OptionCode::ServerIdentifier,
        OptionCode::RelayAgentInformation,
        OptionCode::OptionOverload,
    ] {
        if o.get(c).is_some() {
            return Err(format!("carries {c:?}"));
        }
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
        relay_info: None,
    }
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

#[test]
fn random_and_mutated_frames_only_pass_untouched_or_ack_valid_renewals() {
    let mut h = harness();
    for i in 0..LEASES {
        let id = client_id(lease_mac(i));
        h.maps
            .put_lease(
                lease_addr(i),
                &lease(lease_mac(i), i.is_multiple_of(2).then_some(&id[..]), 7200),
            )
            .unwrap();
    }
    let seed = std::env::var("XDHCP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_u64);
    let mut rng = Rng(seed);
    let (mut acks, mut passed) = (0, 0);
    for n in 0..6000 {
        let frame = match n % 3 {
            0 => (0..14 + rng.below(600)).map(|_| rng.byte()).collect(),
            1 => {
                let f = valid_renewal(&mut rng).frame();
                mutate(&mut rng, f)
            }
            _ => valid_renewal(&mut rng).frame(),
        };
        let (ret, out) = h.run(&frame).unwrap();
        match ret {
            XDP_PASS => {
                assert!(out == frame, "seed {seed} frame {n}: passed frame was modified");
                passed += 1;
            }
            XDP_TX => {
                if let Err(why) = model_says_renewal(&frame, &h) {
                    panic!(
                        "seed {seed} frame {n}: XDP answered a frame the rules refuse ({why}): {frame:02x?}"
                    );
                }
                let p = packet::parse_frame(&out).expect("ACK parses");
                assert!(p.ip_checksum_ok && p.udp_checksum_ok, "seed {seed} frame {n}: checksums");
                acks += 1;
            }
            other => panic!("seed {seed} frame {n}: verdict {other}"),
        }
    }
    let c = h.maps.stats().unwrap();
    let total: u64 = c.values.iter().map(|(_, v)| v).sum();
    assert_eq!(total, 6000, "exactly one counter per frame");
    assert_eq!(c.get(Stat::Ack), acks);
    // The unmutated third must all be answered; mutation must not stop everything.
    assert!(acks >= 2000, "only {acks} ACKs");
    assert!(passed >= 2000, "only {passed} passes");
    println!("seed {seed}: {acks} ACKs, {passed} passed");
}

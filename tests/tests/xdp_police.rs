//! Policing in XDP, run for real through `BPF_PROG_TEST_RUN` with limits from a real config:
//! what is not a renewal of a lease held here is charged to its MAC, port, VLAN and interface
//! buckets and dropped past them; what is one never is.
//!
//! The rates are 1/s, so within a test only the bursts pass; a test that stalls for seconds
//! (a busy CI host) may see one more message per second pass, which the counts allow.
use std::{net::Ipv4Addr, time::Instant};

use dhcp_common::{LeaseEntry, Stat};
use dhcp_lab::testrun::{Harness, XDP_DROP, XDP_PASS, XDP_TX};
use dhcproto::v4::MessageType;
use integration::fixture::*;
use xdhcp::{
    fastpath::police::{self, PoliceMaps},
    packet::{self, RenewKind, Renewal, Vlan},
};

/// A second relay, in a subnet with a stricter port limit of its own.
const STRICT_RELAY: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);

fn config() -> xdhcp::config::Config {
    let text = format!(
        r#"interfaces = ["veth0"]
server_id = "{SERVER}"

[police]
mac = {{ rate = 1, burst = 3 }}
port = {{ rate = 1, burst = 5 }}
vlan = {{ rate = 1, burst = 8 }}
interface = {{ rate = 1, burst = 40 }}

[[subnet]]
prefix = "10.77.0.0/24"
pools = [{{ start = "10.77.0.10", end = "10.77.0.199" }}]
relay_addresses = ["{RELAY}"]

[[subnet]]
prefix = "10.79.0.0/24"
pools = [{{ start = "10.79.0.10", end = "10.79.0.199" }}]
police = {{ port = {{ rate = 1, burst = 2 }} }}
"#
    );
    xdhcp::config::Config::from_toml(&text, "police.toml").expect("the test config is valid")
}

struct Lab {
    h: Harness,
    police: PoliceMaps,
    started: Instant,
}

fn lab() -> Lab {
    let mut h = harness();
    let mut police = h.police().unwrap();
    police.set(&police::plan(&config(), Some(SERVER))).unwrap();
    Lab { h, police, started: Instant::now() }
}

impl Lab {
    /// Runs `frame`; its verdict, and the counter it moved.
    fn run(&mut self, frame: &[u8]) -> (u32, Stat) {
        let before = self.h.maps.stats().unwrap();
        let (ret, out) = self.h.run(frame).unwrap();
        let d = self.h.maps.stats().unwrap().since(&before);
        let moved: Vec<Stat> = d.values.iter().filter(|(_, v)| *v > 0).map(|(s, _)| *s).collect();
        assert_eq!(moved.len(), 1, "one counter per frame: {:?}", d.to_json());
        if ret != XDP_TX {
            assert!(out == frame, "a passed or dropped frame is untouched");
        }
        (ret, moved[0])
    }

    /// Runs every frame; how many were passed, and the drops by counter.
    fn flood(&mut self, frames: impl IntoIterator<Item = Vec<u8>>) -> (u64, Vec<Stat>) {
        let (mut passed, mut dropped) = (0, Vec::new());
        for f in frames {
            match self.run(&f) {
                (XDP_PASS, _) => passed += 1,
                (XDP_DROP, why) => dropped.push(why),
                other => panic!("verdict {other:?} for a message that is not a renewal"),
            }
        }
        (passed, dropped)
    }

    /// `passed` is the burst, give or take what a 1/s rate refilled meanwhile.
    fn assert_burst(&self, passed: u64, burst: u64) {
        let refilled = self.started.elapsed().as_secs() + 1;
        assert!(
            (burst..=burst + refilled).contains(&passed),
            "{passed} passed, burst {burst} (+{refilled} refilled at most)"
        );
    }
}

/// A message of `kind` from `mac` asking for `requested` (option 50): on the link, or through
/// `relay` with option 82 `line`.
fn client_frame(
    mac: [u8; 6],
    kind: MessageType,
    requested: Option<Ipv4Addr>,
    relay: Option<(Ipv4Addr, &[u8])>,
    vlans: Vec<Vlan>,
) -> Vec<u8> {
    let r = Renewal {
        ciaddr: Ipv4Addr::UNSPECIFIED,
        client_id: None,
        chaddr: mac,
        kind: match relay {
            Some((giaddr, _)) => RenewKind::Relayed { giaddr, relay_mac: RELAY_MAC },
            None => RenewKind::Rebinding,
        },
        vlans,
        relay_info: relay.map(|(_, line)| line.to_vec()),
        ..renewal(RenewKind::Rebinding)
    };
    r.frame_as(kind, requested)
}

fn discover(mac: [u8; 6], relay: Option<(Ipv4Addr, &[u8])>, vlans: Vec<Vlan>) -> Vec<u8> {
    client_frame(mac, MessageType::Discover, None, relay, vlans)
}

/// An INIT-REBOOT REQUEST for `addr` (option 50) from `mac`.
fn reboot(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    client_frame(mac, MessageType::Request, Some(addr), None, vec![])
}

fn random_mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x0a, 0x5e, b[0], b[1], b[2], b[3]]
}

fn line(circuit: &str) -> Vec<u8> {
    let mut v = vec![1, u8::try_from(circuit.len()).unwrap()];
    v.extend_from_slice(circuit.as_bytes());
    v.extend_from_slice(&[2, 5, b'c', b'p', b'e', b'-', b'1']);
    v
}

#[test]
fn a_looping_cpe_is_held_to_its_burst_and_its_neighbours_are_not() {
    let mut lab = lab();
    let looping = [2, 0xbb, 0, 0, 0, 1];
    let (passed, dropped) = lab.flood((0..50).map(|_| discover(looping, None, vec![])));
    lab.assert_burst(passed, 3);
    assert!(dropped.iter().all(|s| *s == Stat::DropPolicedMac), "{dropped:?}");
    // The next CPE on the link is not held back by it.
    assert_eq!(lab.run(&discover([2, 0xbb, 0, 0, 0, 2], None, vec![])).0, XDP_PASS);
    // And the looping one tops the offenders, with every drop counted.
    let top = lab.police.offenders(10).unwrap();
    assert_eq!((top[0].kind, top[0].key.as_str()), ("mac", "02:bb:00:00:00:01"));
    assert_eq!(top[0].dropped, 50 - passed);
    assert_eq!(top.len(), 1, "only the looping MAC refused anything: {top:?}");
}

#[test]
fn random_macs_behind_one_port_are_held_by_the_port_and_other_ports_get_through() {
    let mut lab = lab();
    let port = line("olt1 1/1/1");
    let (passed, dropped) =
        lab.flood((0..30).map(|i| discover(random_mac(i), Some((RELAY, &port)), vec![])));
    lab.assert_burst(passed, 5);
    assert!(dropped.iter().all(|s| *s == Stat::DropPolicedPort), "{dropped:?}");
    // Another line of the same access node, and the same circuit-id on another access node
    // (circuit-ids are unique only within one), each have their own bucket.
    let other = line("olt1 1/1/2");
    assert_eq!(lab.run(&discover(random_mac(100), Some((RELAY, &other)), vec![])).0, XDP_PASS);
    let top = lab.police.offenders(10).unwrap();
    assert_eq!(top[0].kind, "port");
    assert_eq!(top[0].key, "relay 10.78.0.1 circuit-id \"olt1 1/1/1\" remote-id \"cpe-1\"");
    // The stricter subnet's relay: its own port limit (2), not the file's (5).
    let (passed, dropped) =
        lab.flood((200..220).map(|i| discover(random_mac(i), Some((STRICT_RELAY, &port)), vec![])));
    lab.assert_burst(passed, 2);
    assert!(dropped.iter().all(|s| *s == Stat::DropPolicedPort), "{dropped:?}");
}

#[test]
fn qinq_subscribers_are_held_per_vlan_pair() {
    let mut lab = lab();
    let tags = |inner| vec![Vlan::dot1ad(100), Vlan::dot1q(inner)];
    let (passed, dropped) = lab.flood((0..20).map(|i| discover(random_mac(i), None, tags(200))));
    lab.assert_burst(passed, 8);
    assert!(dropped.iter().all(|s| *s == Stat::DropPolicedVlan), "{dropped:?}");
    assert_eq!(lab.run(&discover(random_mac(99), None, tags(201))).0, XDP_PASS);
    assert_eq!(lab.police.offenders(1).unwrap()[0].key, "100.200");
}

#[test]
fn known_clients_renew_and_reboot_when_every_bucket_is_empty() {
    let mut lab = lab();
    // Garbage to port 67 (DISCOVERs cut short, one lying about its option's length) is charged
    // to the interface alone, until its bucket is empty.
    let whole = discover(random_mac(1), None, vec![]);
    let garbage = (0..60).map(|i| {
        let mut f = whole.clone();
        if i % 2 == 0 {
            f.truncate(14 + 20 + 8 + 100 + i);
        } else {
            let opts = 14 + 20 + 8 + 240;
            f[opts + 1] = 250;
        }
        f
    });
    let (passed, dropped) = lab.flood(garbage);
    lab.assert_burst(passed, 40);
    assert!(dropped.iter().all(|s| *s == Stat::DropPolicedInterface), "{dropped:?}");
    let top = lab.police.offenders(10).unwrap();
    assert_eq!(top.len(), 1, "no key was read from garbage: {top:?}");
    assert_eq!(top[0].kind, "interface");

    // A new client is refused now; the known one is answered, or passed to the slow path.
    assert_eq!(
        lab.run(&discover(random_mac(2), None, vec![])),
        (XDP_DROP, Stat::DropPolicedInterface)
    );
    assert_eq!(lab.run(&renewal(RenewKind::Renewing).frame()), (XDP_TX, Stat::Ack));
    assert_eq!(lab.run(&reboot(CLIENT_MAC, CLIENT)), (XDP_PASS, Stat::PassNotRenewal));
    let rediscover = client_frame(CLIENT_MAC, MessageType::Discover, Some(CLIENT), None, vec![]);
    assert_eq!(lab.run(&rediscover), (XDP_PASS, Stat::PassNotRequest));
    // Its address asked for by another MAC is not a known client's.
    assert_eq!(
        lab.run(&reboot([2, 0xcc, 0, 0, 0, 1], CLIENT)),
        (XDP_DROP, Stat::DropPolicedInterface)
    );
    // A renewal XDP cannot answer (too little grant left) goes to the slow path, unpoliced.
    let short = Ipv4Addr::new(10, 77, 0, 51);
    let mac = [2, 0x77, 0, 0, 0, 0x51];
    lab.h.maps.put_lease(short, &LeaseEntry { ..lease(mac, None, 30) }).unwrap();
    let r = Renewal { ciaddr: short, chaddr: mac, client_id: None, ..renewal(RenewKind::Renewing) };
    assert_eq!(lab.run(&r.frame()), (XDP_PASS, Stat::PassGrantTooShort));
    // Traffic that is not for the server is never policed.
    let dns = packet::udp_frame(
        &packet::L2 { dst: SERVER_MAC, src: CLIENT_MAC, vlans: vec![] },
        std::net::SocketAddrV4::new(CLIENT, 40_000),
        std::net::SocketAddrV4::new(SERVER, 53),
        &[0; 40],
    );
    assert_eq!(lab.run(&dns), (XDP_PASS, Stat::PassNotDhcp));
}

#[test]
fn without_limits_nothing_is_dropped() {
    let mut h = harness();
    let (passed, dropped) = (0..200).fold((0, 0), |(p, d), i| {
        match h.run(&discover(random_mac(i % 3), None, vec![])).unwrap().0 {
            XDP_PASS => (p + 1, d),
            _ => (p, d + 1),
        }
    });
    assert_eq!((passed, dropped), (200, 0));
}

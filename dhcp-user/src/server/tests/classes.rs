//! Options, classes and port reservations: what each kind of device is told, and where its
//! address comes from.
use super::*;
use crate::store::LeaseClass;

const ISP: &str = r#"
interfaces = ["eth1"]
server_id = "10.0.0.1"

[options]
ntp-servers = ["10.0.0.123"]

[[class]]
name = "stb"
vendor_class_prefix = "IPTV"
[class.options]
tftp-server-name = "tftp.isp.example"
bootfile-name = "stb.img"
ntp-servers = ["10.0.0.124"]

[[class]]
name = "voip"
user_class = "voip"
[class.options]
domain-search = ["voice.isp.example"]

[[subnet]]
prefix = "10.0.0.0/24"
routers = ["10.0.0.254"]
lease_time = 600
[subnet.options]
interface-mtu = 1492

[[subnet.pools]]
start = "10.0.0.100"
end = "10.0.0.109"
deny = ["stb"]

[[subnet.pools]]
start = "10.0.0.200"
end = "10.0.0.209"
allow = ["stb"]
[subnet.pools.options]
domain-name = "tv.isp.example"

[[subnet.reservation]]
circuit_id = "olt1 0/1/1:7"
address = "10.0.0.50"
[subnet.reservation.options]
interface-mtu = 1500
"#;

fn isp() -> Server {
    Server::new(Config::from_toml(ISP, "isp.toml").unwrap(), Vec::new())
}

fn with_vendor(mut m: Message, v: &[u8]) -> Message {
    m.opts_mut().insert(DhcpOption::ClassIdentifier(v.to_vec()));
    m
}

fn option(o: &Outcome, code: u8) -> Option<Vec<u8>> {
    let wire = crate::packet::encode_reply(&reply(o).msg, &reply(o).room);
    let mut at = dhcp_common::bootp::OPTIONS;
    while let Some(&c) = wire.get(at) {
        match c {
            0 => at += 1,
            255 => return None,
            _ => {
                let len = usize::from(wire[at + 1]);
                if c == code {
                    return Some(wire[at + 2..at + 2 + len].to_vec());
                }
                at += 2 + len;
            }
        }
    }
    None
}

/// The codes of the reply's options as they go on the wire.
fn codes(o: &Outcome) -> Vec<u8> {
    let wire = crate::packet::encode_reply(&reply(o).msg, &reply(o).room);
    let mut out = Vec::new();
    let mut at = dhcp_common::bootp::OPTIONS;
    while let Some(&c) = wire.get(at) {
        if c == 255 {
            break;
        }
        out.push(c);
        at += 2 + usize::from(wire[at + 1]);
    }
    out
}

#[test]
fn a_set_top_box_gets_its_class_options_and_pool_and_a_pc_the_subnets() {
    let mut s = isp();
    let stb = Client::new(1);
    let offer = s.handle(T0, &with_vendor(stb.discover(), b"IPTV-STB 2.1"), &direct());
    let a = reply(&offer).msg.yiaddr();
    assert_eq!(a, ip("10.0.0.200"), "the stb pool, which allows the class");
    assert_eq!(option(&offer, 66).as_deref(), Some(&b"tftp.isp.example"[..]));
    assert_eq!(option(&offer, 42).as_deref(), Some(&[10, 0, 0, 124][..]), "the class wins");
    assert_eq!(option(&offer, 15).as_deref(), Some(&b"tv.isp.example"[..]), "the pool's");
    assert_eq!(option(&offer, 26).as_deref(), Some(&[0x05, 0xd4][..]), "the subnet's");
    // The fast path's order: 53, 51, 58, 59, 54, 1, 3, 6, 15, then by code.
    assert_eq!(codes(&offer), [53, 51, 58, 59, 54, 1, 3, 15, 26, 42, 66, 67]);

    let ack = s.handle(T0, &with_vendor(stb.select(SERVER, a), b"IPTV-STB 2.1"), &direct());
    assert_eq!(ack.result, Handled::Acked(a));
    assert_eq!(put(&ack).class, LeaseClass::Class(0));

    let pc = Client::new(2);
    let offer = s.handle(T0, &pc.discover(), &direct());
    assert_eq!(reply(&offer).msg.yiaddr(), ip("10.0.0.100"), "not the stb pool");
    assert_eq!(option(&offer, 42).as_deref(), Some(&[10, 0, 0, 123][..]), "the global");
    assert_eq!(option(&offer, 66), None);
    assert_eq!(option(&offer, 15), None);
    // Requests by class (stb, voip, in none): a class that never matches shows its zero.
    assert_eq!(s.counters().classified, [2, 0, 1]);
}

#[test]
fn a_renewal_keeps_the_class_its_binding_was_made_with_in_both_paths() {
    let mut s = isp();
    let stb = Client::new(1);
    let o = s.handle(T0, &with_vendor(stb.discover(), b"IPTV-STB"), &direct());
    let a = reply(&o).msg.yiaddr();
    s.handle(T0, &with_vendor(stb.select(SERVER, a), b"IPTV-STB"), &direct());
    // New firmware, another vendor class: the renewal is still the stb's, as XDP renews it.
    let renew = s.handle(T0 + 300, &with_vendor(stb.renew(a), b"Linux"), &direct());
    assert_eq!(renew.result, Handled::Acked(a));
    assert_eq!(option(&renew, 66).as_deref(), Some(&b"tftp.isp.example"[..]));
    let l = s.lease(a).unwrap().clone();
    let entry = s.fast_path_entry(&l, T0 + 300).unwrap();
    let cfg = s.config();
    let sub = &cfg.subnets[0];
    assert_eq!(entry.profile, cfg.profiles.lookup(sub, a, Some(crate::config::ClassId(0))));
    assert_ne!(entry.profile, cfg.profiles.lookup(sub, ip("10.0.0.100"), None));
    // A record whose class was not decided here (the partner's) waits for the slow path.
    let partners = Lease { class: LeaseClass::Unknown, ..l };
    assert!(s.fast_path_entry(&partners, T0 + 300).is_none());
}

#[test]
fn the_port_keeps_its_address_when_the_cpe_behind_it_is_replaced() {
    let mut s = isp();
    let old = Client { circuit: Some(b"olt1 0/1/1:7".to_vec()), ..Client::new(1) };
    let a = old.dora(&mut s, T0);
    assert_eq!(a, ip("10.0.0.50"));
    let new = Client { circuit: Some(b"olt1 0/1/1:7".to_vec()), ..Client::new(9) };
    let offer = s.handle(T0 + 60, &new.discover(), &direct());
    assert_eq!(reply(&offer).msg.yiaddr(), a, "the port's address, though the old CPE held it");
    assert_eq!(option(&offer, 26).as_deref(), Some(&[0x05, 0xdc][..]), "the reservation's MTU");
    let ack = s.handle(T0 + 60, &new.select(SERVER, a), &direct());
    assert_eq!(ack.result, Handled::Acked(a));
    assert_eq!(put(&ack).chaddr.as_slice(), &new.mac[..]);
    // The old CPE, should it come back, is told the address is not its own.
    let back = s.handle(T0 + 120, &old.renew(a), &direct());
    assert_eq!(kind(&back), MessageType::Nak);
    // A device on another port does not take it.
    let other = Client { circuit: Some(b"olt1 0/1/1:8".to_vec()), ..Client::new(3) };
    let offer = s.handle(T0 + 120, &other.discover(), &direct());
    assert_ne!(reply(&offer).msg.yiaddr(), a);
}

#[test]
fn a_pool_that_denies_a_class_leaves_its_addresses_for_the_others() {
    let text = ISP.replace("end = \"10.0.0.209\"", "end = \"10.0.0.200\"");
    let mut s = Server::new(Config::from_toml(&text, "isp.toml").unwrap(), Vec::new());
    let first = Client::new(1);
    let o = s.handle(T0, &with_vendor(first.discover(), b"IPTV"), &direct());
    assert_eq!(reply(&o).msg.yiaddr(), ip("10.0.0.200"));
    // The stb pool is now held by an offer; a second stb gets that address (the oldest
    // offer gives way when nothing else is left), never one of the other pool.
    let second = Client::new(2);
    let o = s.handle(T0 + 1, &with_vendor(second.discover(), b"IPTV"), &direct());
    assert_eq!(o.result, Handled::Offered(ip("10.0.0.200")));
    assert_eq!(s.counters().offers_reclaimed, 1);
    // Bound, it is no one else's: a third stb finds no room.
    let ack =
        s.handle(T0 + 1, &with_vendor(second.select(SERVER, ip("10.0.0.200")), b"IPTV"), &direct());
    assert_eq!(ack.result, Handled::Acked(ip("10.0.0.200")));
    let o = s.handle(T0 + 2, &with_vendor(Client::new(4).discover(), b"IPTV"), &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::PoolExhausted));
    // Nothing was lost on the way: a PC still gets the first address of its pool.
    let o = s.handle(T0, &Client::new(3).discover(), &direct());
    assert_eq!(reply(&o).msg.yiaddr(), ip("10.0.0.100"));
}

//! Scenarios: what a client sees, and what the store is asked to keep.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{
    DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption,
    relay::{RelayAgentInformation, RelayInfo},
};

use super::*;
use crate::config::Config;

mod circuit;
mod classes;
mod limits;
mod room;
mod shared_network;
use crate::store::{Lease, LeaseChange, LeaseState};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
const T0: u64 = 1_700_000_000;

const CONFIG: &str = r#"
interfaces = ["eth1"]
server_id = "10.0.0.1"
probation = "1h"
offer_hold = 60

[[subnet]]
prefix = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.103" }]
routers = ["10.0.0.254"]
dns = ["10.0.0.53"]
domain = "lab.example"
lease_time = 600

[[subnet.reservation]]
mac = "02:00:00:00:00:aa"
address = "10.0.0.10"

# Reached through the relay 192.0.2.7.
[[subnet]]
prefix = "10.1.0.0/24"
pools = [{ start = "10.1.0.100", end = "10.1.0.199" }]
lease_time = 3600
relay_addresses = ["192.0.2.7"]

# Named by the relay's link-selection sub-option.
[[subnet]]
prefix = "10.2.0.0/24"
pools = [{ start = "10.2.0.100", end = "10.2.0.199" }]
"#;

fn server() -> Server {
    Server::new(Config::from_toml(CONFIG, "test.toml").unwrap(), Vec::new())
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A directly attached interface with address 10.0.0.1.
fn direct() -> RxInfo {
    RxInfo { ifindex: 2, local_addr: Some(SERVER) }
}

/// A simulated client: builds the requests a real one would send.
#[derive(Clone)]
struct Client {
    mac: [u8; 6],
    #[expect(clippy::struct_field_names, reason = "DHCP's own name for option 61")]
    client_id: Option<Vec<u8>>,
    giaddr: Option<Ipv4Addr>,
    link_selection: Option<Ipv4Addr>,
    /// Option 82 with this circuit-id, relayed or not (an access node adds it at layer 2).
    circuit: Option<Vec<u8>>,
    broadcast: bool,
}

impl Client {
    fn new(n: u8) -> Self {
        Client {
            mac: [2, 0, 0, 0, 0, n],
            client_id: None,
            giaddr: None,
            link_selection: None,
            circuit: None,
            broadcast: false,
        }
    }

    fn msg(&self, kind: MessageType, ciaddr: Ipv4Addr) -> Message {
        let mut m = Message::new_with_id(
            0x1234,
            ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            self.giaddr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            &self.mac,
        );
        m.set_opcode(Opcode::BootRequest);
        if self.broadcast {
            m.set_flags(Flags::default().set_broadcast());
        }
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        if let Some(id) = &self.client_id {
            m.opts_mut().insert(DhcpOption::ClientIdentifier(id.clone()));
        }
        if self.giaddr.is_some() || self.circuit.is_some() {
            let mut info = RelayAgentInformation::default();
            let circuit = self.circuit.clone().unwrap_or_else(|| b"port-7".to_vec());
            info.insert(RelayInfo::AgentCircuitId(circuit));
            if let Some(l) = self.link_selection {
                info.insert(RelayInfo::LinkSelection(l));
            }
            m.opts_mut().insert(DhcpOption::RelayAgentInformation(info));
        }
        m
    }

    fn discover(&self) -> Message {
        self.msg(MessageType::Discover, Ipv4Addr::UNSPECIFIED)
    }

    fn discover_asking_for(&self, a: Ipv4Addr) -> Message {
        let mut m = self.discover();
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
        m
    }

    fn select(&self, server: Ipv4Addr, a: Ipv4Addr) -> Message {
        let mut m = self.msg(MessageType::Request, Ipv4Addr::UNSPECIFIED);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
        m
    }

    fn init_reboot(&self, a: Ipv4Addr) -> Message {
        let mut m = self.msg(MessageType::Request, Ipv4Addr::UNSPECIFIED);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
        m
    }

    fn renew(&self, a: Ipv4Addr) -> Message {
        self.msg(MessageType::Request, a)
    }

    fn rebind(&self, a: Ipv4Addr) -> Message {
        let mut m = self.msg(MessageType::Request, a);
        m.set_flags(Flags::default().set_broadcast());
        m
    }

    fn decline(&self, a: Ipv4Addr) -> Message {
        let mut m = self.msg(MessageType::Decline, Ipv4Addr::UNSPECIFIED);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        m
    }

    fn release(&self, a: Ipv4Addr) -> Message {
        let mut m = self.msg(MessageType::Release, a);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        m
    }

    #[expect(clippy::unused_self, reason = "relayed or not, a client's frames now arrive alike")]
    fn rx(&self) -> RxInfo {
        direct()
    }

    /// DISCOVER, OFFER, REQUEST, ACK; the address.
    fn dora(&self, s: &mut Server, now: u64) -> Ipv4Addr {
        let offer = s.handle(now, &self.discover(), &self.rx());
        let Handled::Offered(a) = offer.result else { panic!("no offer: {:?}", offer.result) };
        let ack = s.handle(now, &self.select(SERVER, a), &self.rx());
        assert_eq!(ack.result, Handled::Acked(a));
        a
    }
}

fn reply(o: &Outcome) -> &Reply {
    o.reply.as_ref().unwrap_or_else(|| panic!("no reply: {:?}", o.result))
}

fn kind(o: &Outcome) -> MessageType {
    reply(o).msg.opts().msg_type().unwrap()
}

fn lease_time(m: &Message) -> u32 {
    match m.opts().get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        o => panic!("no lease time: {o:?}"),
    }
}

fn put(o: &Outcome) -> &Lease {
    match o.changes.as_slice() {
        [LeaseChange::Put(l)] => l,
        c => panic!("expected one Put, got {c:?}"),
    }
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, o: server, client, address, outcome")]
fn a_new_client_gets_an_address_through_dora() {
    let mut s = server();
    let c = Client::new(1);

    let offer = s.handle(T0, &c.discover(), &direct());
    assert_eq!(kind(&offer), MessageType::Offer);
    assert!(offer.changes.is_empty(), "an offer is held in memory only");
    let r = reply(&offer);
    let a = r.msg.yiaddr();
    assert_eq!(a, ip("10.0.0.100"));
    assert_eq!(
        r.dest,
        Dest::UnicastL2 { ip: a, mac: c.mac },
        "no address yet, no broadcast flag: L2 unicast"
    );
    assert_eq!(
        r.msg.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        r.msg.opts().get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![ip("10.0.0.254")]))
    );
    assert_eq!(
        r.msg.opts().get(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(ip("255.255.255.0")))
    );
    assert_eq!(lease_time(&r.msg), 600);
    assert_eq!(r.msg.opts().get(OptionCode::Renewal), Some(&DhcpOption::Renewal(300)));
    assert_eq!(r.msg.opts().get(OptionCode::Rebinding), Some(&DhcpOption::Rebinding(525)));
    assert_eq!(
        (r.msg.opcode(), r.msg.xid(), r.msg.chaddr()),
        (Opcode::BootReply, 0x1234, &c.mac[..])
    );

    let ack = s.handle(T0 + 1, &c.select(SERVER, a), &direct());
    assert_eq!(kind(&ack), MessageType::Ack);
    assert_eq!(reply(&ack).msg.yiaddr(), a);
    let l = put(&ack);
    assert_eq!((l.address, l.state, l.chaddr.as_slice()), (a, LeaseState::Active, &c.mac[..]));
    // The ACK says 600 s: exactly what is committed, and the fast path's horizon is beyond it.
    assert_eq!(l.expires_at, T0 + 1 + u64::from(lease_time(&reply(&ack).msg)));
    assert!(l.held_until >= l.expires_at);
    assert_eq!(l.held_until, l.expires_at + 600, "horizon defaults to one lease time");
    assert_eq!(l.cltt, T0 + 1);

    let ops = s.map_ops(&ack.changes, T0 + 1);
    assert_eq!(
        ops,
        vec![MapOp::Upsert(FastPathLease {
            address: a,
            chaddr: c.mac,
            client_id: None,
            relay_info: None,
            lease_secs: 600,
            profile: 0,
            held_until: l.held_until,
        })]
    );
    assert_eq!(s.counters().offers, 1);
    assert_eq!(s.counters().acks, 1);
}

#[test]
fn a_client_asking_for_broadcast_gets_broadcasts() {
    let mut s = server();
    let c = Client { broadcast: true, ..Client::new(1) };
    assert_eq!(reply(&s.handle(T0, &c.discover(), &direct())).dest, Dest::Broadcast);
}

#[test]
fn renewing_extends_the_lease_and_is_answered_at_ciaddr() {
    let mut s = server();
    let c = Client::new(1);
    let a = c.dora(&mut s, T0);
    let first = s.lease(a).unwrap().clone();

    let renew = s.handle(T0 + 300, &c.renew(a), &direct());
    assert_eq!(kind(&renew), MessageType::Ack);
    assert_eq!(reply(&renew).dest, Dest::Ciaddr(a));
    assert_eq!(reply(&renew).msg.ciaddr(), a);
    let l = put(&renew);
    assert_eq!(l.expires_at, T0 + 900);
    assert!(l.held_until >= first.held_until, "a committed horizon never shrinks");
    assert_eq!(l.stos, first.stos, "still the same active binding");
}

#[test]
fn rebinding_is_acked_for_a_known_lease_and_ignored_for_an_unknown_one() {
    let mut s = server();
    let c = Client::new(1);
    let a = c.dora(&mut s, T0);
    let rebind = s.handle(T0 + 530, &c.rebind(a), &direct());
    assert_eq!(kind(&rebind), MessageType::Ack);
    assert_eq!(put(&rebind).expires_at, T0 + 1130);

    let stranger = Client::new(9);
    let o = s.handle(T0 + 530, &stranger.rebind(ip("10.0.0.102")), &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::UnknownClient));
    // ... but rebinding onto someone else's live lease is refused outright.
    let o = s.handle(T0 + 530, &stranger.rebind(a), &direct());
    assert_eq!(kind(&o), MessageType::Nak);
    assert_eq!(reply(&o).dest, Dest::Broadcast, "a NAK to a local client is always broadcast");
    assert!(o.changes.is_empty());
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, o: server, client, address, outcome")]
fn init_reboot_on_the_wrong_subnet_is_nakked() {
    let mut s = server();
    let c = Client::new(1);
    let a = c.dora(&mut s, T0);
    // The client moved to the relayed subnet but remembers its old address.
    let moved = Client { giaddr: Some(RELAY), ..c.clone() };
    let o = s.handle(T0 + 10, &moved.init_reboot(a), &moved.rx());
    assert_eq!(kind(&o), MessageType::Nak);
    let r = reply(&o);
    assert_eq!(r.dest, Dest::Relay(RELAY));
    assert!(r.msg.flags().broadcast(), "a relay must broadcast the NAK on the client's link");
    assert_eq!((r.msg.yiaddr(), r.msg.ciaddr()), (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED));

    // Back home, its address is still good.
    let o = s.handle(T0 + 20, &c.init_reboot(a), &direct());
    assert_eq!(kind(&o), MessageType::Ack);
    // A client we know asking for an address that is not its own is told so.
    let o = s.handle(T0 + 20, &c.init_reboot(ip("10.0.0.103")), &direct());
    assert_eq!(kind(&o), MessageType::Nak);
    // One we know nothing about gets silence: another server may own it (RFC 2131 §4.3.2).
    let o = s.handle(T0 + 20, &Client::new(7).init_reboot(ip("10.0.0.103")), &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::UnknownClient));
}

#[test]
fn a_reservation_wins_over_the_pool_and_what_the_client_asks_for() {
    let mut s = server();
    let reserved = Client { client_id: Some(vec![1, 2, 0, 0, 0, 0, 0xaa]), ..Client::new(0xaa) };
    let o = s.handle(T0, &reserved.discover_asking_for(ip("10.0.0.101")), &direct());
    assert_eq!(reply(&o).msg.yiaddr(), ip("10.0.0.10"));
    let ack = s.handle(T0, &reserved.select(SERVER, ip("10.0.0.10")), &direct());
    assert_eq!(put(&ack).client_id.as_deref(), Some(&[1, 2, 0, 0, 0, 0, 0xaa][..]));
    assert_eq!(
        reply(&ack).msg.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 0xaa])),
        "the client identifier is echoed (RFC 6842)"
    );
    // Nobody else may have the reserved address, even by asking.
    let other = Client::new(5);
    let o = s.handle(T0, &other.discover_asking_for(ip("10.0.0.10")), &direct());
    assert_ne!(reply(&o).msg.yiaddr(), ip("10.0.0.10"));
    let o = s.handle(T0, &other.select(SERVER, ip("10.0.0.10")), &direct());
    assert_eq!(kind(&o), MessageType::Nak);
}

#[test]
fn an_exhausted_pool_offers_nothing_until_a_lease_is_reusable() {
    let mut s = server();
    let clients: Vec<Client> = (1..=4).map(Client::new).collect();
    let addrs: Vec<Ipv4Addr> = clients.iter().map(|c| c.dora(&mut s, T0)).collect();
    assert_eq!(addrs.len(), 4);
    let late = Client::new(5);
    let o = s.handle(T0 + 1, &late.discover(), &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::PoolExhausted));
    assert_eq!(s.counters().dropped(DropReason::PoolExhausted), 1);

    // The first lease runs out at T0+600; its committed horizon holds the address until
    // T0+1200, because the fast path might still renew it until then.
    let changes = s.expire(T0 + 600);
    assert!(
        changes.iter().any(|c| matches!(c, LeaseChange::Put(l) if l.state == LeaseState::Expired))
    );
    assert_eq!(
        s.handle(T0 + 601, &late.discover(), &direct()).result,
        Handled::Dropped(DropReason::PoolExhausted)
    );
    let o = s.handle(T0 + 1200, &late.discover(), &direct());
    assert_eq!(o.result, Handled::Offered(addrs[0]));
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, d, l, b, o: as the test below")]
fn a_decline_the_partner_abandoned_first_is_still_ours_to_declare() {
    let mut s = server();
    let c = Client::new(1);
    let a = c.dora(&mut s, T0);
    // The partner heard the broadcast DECLINE first: its ABANDONED (no client) replaced ours.
    s.put_failover_record(T0 + 5, Lease::new(a, LeaseState::Abandoned, 0, T0 + 5));
    let d = s.handle(T0 + 5, &c.decline(a), &direct());
    assert_eq!(d.result, Handled::Declined(a));
    let l = put(&d);
    assert_eq!(
        (l.state, l.probation_until.map(u64::from)),
        (LeaseState::Abandoned, Some(T0 + 5 + 3600))
    );
    // A free address is still nobody's to decline.
    let b = Client::new(2).dora(&mut s, T0 + 6);
    s.put_failover_record(T0 + 7, Lease::new(b, LeaseState::Free, 0, T0 + 7));
    let o = s.handle(T0 + 8, &Client::new(2).decline(b), &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::NotTheirs));
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, o: server, client, address, outcome")]
fn a_declined_address_sits_out_its_probation() {
    let mut s = server();
    let c = Client::new(1);
    let a = c.dora(&mut s, T0);
    let d = s.handle(T0 + 5, &c.decline(a), &direct());
    assert_eq!(d.result, Handled::Declined(a));
    assert!(d.reply.is_none());
    let l = put(&d);
    assert_eq!(
        (l.state, l.probation_until.map(u64::from)),
        (LeaseState::Abandoned, Some(T0 + 5 + 3600))
    );
    assert_eq!(
        s.map_ops(&d.changes, T0 + 5),
        vec![MapOp::Delete(a)],
        "the fast path must stop renewing it"
    );

    // The same client starts over and gets another address.
    let again = s.handle(T0 + 6, &c.discover(), &direct());
    assert_ne!(reply(&again).msg.yiaddr(), a);
    // Nobody may decline an address that is not theirs.
    let b = Client::new(2).dora(&mut s, T0 + 7);
    let o = s.handle(T0 + 8, &Client::new(3).decline(b), &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::NotTheirs));

    // After probation the address is free again.
    let changes = s.expire(T0 + 5 + 3600);
    assert!(changes.iter().any(
        |c| matches!(c, LeaseChange::Put(l) if l.address == a && l.state == LeaseState::Free)
    ));
    let o = s.handle(T0 + 5 + 3600, &Client::new(4).discover_asking_for(a), &direct());
    assert_eq!(o.result, Handled::Offered(a));
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, o: server, client, address, outcome")]
fn a_released_address_goes_back_to_the_same_client() {
    let mut s = server();
    let c = Client::new(1);
    let a = c.dora(&mut s, T0);
    let r = s.handle(T0 + 10, &c.release(a), &direct());
    assert_eq!(r.result, Handled::Released(a));
    let l = put(&r);
    assert_eq!((l.state, l.expires_at), (LeaseState::Released, T0 + 10));
    assert_eq!(s.map_ops(&r.changes, T0 + 10), vec![MapOp::Delete(a)]);

    // Others get other addresses while the released one's horizon runs...
    let other = Client::new(2).dora(&mut s, T0 + 11);
    assert_ne!(other, a);
    // ... and the client that released it gets it back.
    let o = s.handle(T0 + 12, &c.discover(), &direct());
    assert_eq!(o.result, Handled::Offered(a));
    let ack = s.handle(T0 + 12, &c.select(SERVER, a), &direct());
    assert_eq!(put(&ack).state, LeaseState::Active);
}

#[test]
fn a_relay_selects_the_subnet_by_giaddr_and_gets_option_82_back() {
    let mut s = server();
    let c = Client { giaddr: Some(RELAY), ..Client::new(1) };
    let o = s.handle(T0, &c.discover(), &c.rx());
    let r = reply(&o);
    assert_eq!(r.msg.yiaddr(), ip("10.1.0.100"));
    assert_eq!(r.dest, Dest::Relay(RELAY));
    assert_eq!(r.dest.socket_addr(), SocketAddrV4::new(RELAY, 67));
    assert_eq!(r.msg.giaddr(), RELAY);
    let Some(DhcpOption::RelayAgentInformation(sent)) =
        c.discover().opts().get(OptionCode::RelayAgentInformation).cloned()
    else {
        panic!("the relay sends option 82")
    };
    assert_eq!(
        r.msg.opts().get(OptionCode::RelayAgentInformation),
        Some(&DhcpOption::Unknown(UnknownOption::new(
            OptionCode::RelayAgentInformation,
            dhcproto::Encodable::to_vec(&sent).unwrap()
        ))),
        "option 82 is echoed unchanged"
    );
    assert_eq!(lease_time(&r.msg), 3600);
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, o: server, client, address, outcome")]
fn a_relay_selects_the_subnet_by_link_selection() {
    let mut s = server();
    let c = Client { giaddr: Some(RELAY), link_selection: Some(ip("10.2.0.0")), ..Client::new(1) };
    let a = c.dora(&mut s, T0);
    assert_eq!(a, ip("10.2.0.100"));
    // Unrelayed, the same sub-option is not trusted: the interface decides.
    let direct_client = Client { giaddr: None, ..c };
    let mut m = direct_client.discover();
    let mut info = RelayAgentInformation::default();
    info.insert(RelayInfo::LinkSelection(ip("10.2.0.0")));
    m.opts_mut().insert(DhcpOption::RelayAgentInformation(info));
    let o = s.handle(T0, &m, &direct());
    assert_eq!(reply(&o).msg.yiaddr(), ip("10.0.0.100"));
}

#[test]
fn selecting_another_server_lets_our_offer_go() {
    let mut s = server();
    let c = Client::new(1);
    let o = s.handle(T0, &c.discover(), &direct());
    let a = reply(&o).msg.yiaddr();
    let o = s.handle(T0 + 1, &c.select(ip("10.0.0.2"), ip("10.0.0.50")), &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::OtherServer));
    assert!(o.reply.is_none() && o.changes.is_empty());
    // The address is free for the next client at once.
    let o = s.handle(T0 + 2, &Client::new(2).discover_asking_for(a), &direct());
    assert_eq!(o.result, Handled::Offered(a));
}

#[test]
fn an_offer_holds_its_address_until_it_lapses() {
    let mut s = server();
    let first = s.handle(T0, &Client::new(1).discover(), &direct());
    let a = reply(&first).msg.yiaddr();
    let o = s.handle(T0 + 1, &Client::new(2).select(SERVER, a), &direct());
    assert_eq!(kind(&o), MessageType::Nak, "offered to someone else");
    assert_eq!(s.next_timeout(), Some(T0 + 60));
    let _ = s.expire(T0 + 60);
    let o = s.handle(T0 + 61, &Client::new(2).select(SERVER, a), &direct());
    assert_eq!(o.result, Handled::Acked(a));
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, o: server, client, address, outcome")]
fn inform_gets_options_but_no_lease() {
    let mut s = server();
    let c = Client::new(1);
    let m = c.msg(MessageType::Inform, ip("10.0.0.77"));
    let o = s.handle(T0, &m, &direct());
    assert_eq!(o.result, Handled::Informed);
    assert!(o.changes.is_empty());
    let r = reply(&o);
    assert_eq!(kind(&o), MessageType::Ack);
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.msg.ciaddr(), ip("10.0.0.77"));
    assert_eq!(r.dest, Dest::Ciaddr(ip("10.0.0.77")));
    assert!(r.msg.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert_eq!(
        r.msg.opts().get(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("lab.example".into()))
    );
}

#[test]
fn a_fast_path_renewal_moves_the_lease_and_its_horizon() {
    let mut s = server();
    let c = Client::new(1);
    let a = c.dora(&mut s, T0);
    // Held until T0 + 1200: a renewal to T0 + 900 still leaves half a horizon (300 s) beyond
    // it, so nothing new must be durable: the engine records it in memory only.
    assert_eq!(s.apply_fast_path_renewal(T0 + 300, a, c.mac, 600), None);
    let l = s.lease(a).unwrap();
    assert_eq!((l.expires_at, l.cltt, l.held_until), (T0 + 900, T0 + 300, T0 + 1200));
    // A renewal to T0 + 1000 would leave less: the horizon moves, and that is committed.
    let change = s.apply_fast_path_renewal(T0 + 400, a, c.mac, 600).unwrap();
    let LeaseChange::Put(l) = &change else { panic!() };
    assert_eq!((l.expires_at, l.cltt, l.held_until), (T0 + 1000, T0 + 400, T0 + 1600));
    // A stale event for an address that changed hands is ignored.
    assert_eq!(s.apply_fast_path_renewal(T0 + 300, a, [2, 0, 0, 0, 0, 9], 600), None);
}

#[test]
fn a_restarted_engine_knows_its_leases() {
    let mut s = server();
    let c = Client::new(1);
    let a = c.dora(&mut s, T0);
    let leases: Vec<Lease> = s.leases().cloned().collect();
    let mut s = Server::new(Config::from_toml(CONFIG, "test.toml").unwrap(), leases);
    assert_eq!(s.fast_path_entries(T0 + 1).count(), 1);
    let o = s.handle(T0 + 100, &c.renew(a), &direct());
    assert_eq!(o.result, Handled::Acked(a));
    // And never offers that address to someone else.
    let o = s.handle(T0 + 100, &Client::new(2).discover_asking_for(a), &direct());
    assert_ne!(reply(&o).msg.yiaddr(), a);
}

#[test]
fn malformed_requests_are_counted_and_dropped() {
    let mut s = server();
    assert_eq!(
        s.handle_bytes(T0, &[1, 2, 3], &direct()).result,
        Handled::Dropped(DropReason::Undecodable)
    );
    let mut m = Client::new(1).discover();
    m.set_opcode(Opcode::BootReply);
    assert_eq!(s.handle(T0, &m, &direct()).result, Handled::Dropped(DropReason::NotBootRequest));
    let mut m = Client::new(1).discover();
    m.opts_mut().remove(OptionCode::MessageType);
    assert_eq!(s.handle(T0, &m, &direct()).result, Handled::Dropped(DropReason::NoMessageType));
    let m = Client::new(1).msg(MessageType::Offer, Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        s.handle(T0, &m, &direct()).result,
        Handled::Dropped(DropReason::UnsupportedMessageType)
    );
    let mut m = Client::new(1).discover();
    m.opts_mut().insert(DhcpOption::ClientIdentifier(vec![1]));
    assert_eq!(s.handle(T0, &m, &direct()).result, Handled::Dropped(DropReason::BadClientId));
    // hlen 200 on the wire: dhcproto would slice chaddr with it.
    let mut bytes = crate::packet::encode(&Client::new(1).discover());
    bytes[2] = 200;
    assert_eq!(
        s.handle_bytes(T0, &bytes, &direct()).result,
        Handled::Dropped(DropReason::BadHardwareAddress)
    );
    let o = s.handle(
        T0,
        &Client::new(1).discover(),
        &RxInfo { local_addr: Some(ip("172.16.0.1")), ..direct() },
    );
    assert_eq!(o.result, Handled::Dropped(DropReason::NoSubnet));
    assert_eq!(s.counters().dropped.iter().sum::<u64>(), 7);
}

#[test]
fn packets_that_would_trip_dhcproto_are_dropped_before_decoding() {
    let mut s = server();
    let header = &crate::packet::encode(&Client::new(1).discover())[..240];
    let with = |opts: &[u8]| [header, &[53, 1, 1], opts, &[255]].concat();
    for bad in [
        &[80, 1, 0][..],
        &[81, 1, 0],
        &[94, 2, 0, 0],
        &[151, 0],
        &[152, 3, 0, 0, 0],
        &[94, 3, 0, 0, 0, 94, 1, 0],
    ] {
        let b = with(bad);
        assert!(!request::dhcproto_safe(&b), "{bad:?}");
        assert_eq!(
            s.handle_bytes(T0, &b, &direct()).result,
            Handled::Dropped(DropReason::Undecodable)
        );
    }
    // The same options with their proper lengths go through.
    for good in [&[80, 0][..], &[94, 3, 1, 2, 0], &[94, 1, 1, 94, 2, 2, 0], &[81, 3, 0, 0, 0]] {
        assert!(request::dhcproto_safe(&with(good)), "{good:?}");
        assert_eq!(
            s.handle_bytes(T0, &with(good), &direct()).result,
            Handled::Offered(ip("10.0.0.100"))
        );
    }
}

/// xorshift64*: a reproducible stream without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_byte_strings_never_panic() {
    // The ISP example too: classes matched on 60, 77, 82 and the MAC, port reservations, a
    // shared network.
    let isp = include_str!("../../../examples/isp.toml").replace("access0", "eth1");
    let isp_rx = RxInfo { ifindex: 2, local_addr: Some(ip("100.64.0.1")) };
    for (seed, text, rx) in [(7, CONFIG, direct()), (8, isp.as_str(), isp_rx)] {
        let mut s = Server::new(Config::from_toml(text, "test.toml").unwrap(), Vec::new());
        random_bytes_into(&mut s, seed, &rx);
    }
}

fn random_bytes_into(s: &mut Server, seed: u64, rx: &RxInfo) {
    let mut rng = Rng(seed);
    let valid = crate::packet::encode(&Client::new(1).discover());
    // Codes whose decoding dhcproto gets wrong on bad lengths, and the ones we read.
    let codes =
        [12, 50, 51, 52, 53, 54, 55, 57, 60, 61, 77, 80, 81, 82, 94, 121, 151, 152, 155, 255, 0];
    let random_options = |rng: &mut Rng, b: &mut Vec<u8>, n: u64| {
        for _ in 0..rng.below(n) {
            b.push(codes[usize::try_from(rng.below(codes.len() as u64)).unwrap()]);
            let len = u8::try_from(rng.below(8)).unwrap();
            b.push(len);
            b.extend((0..rng.below(u64::from(len) + 2)).map(|_| rng.next().to_le_bytes()[0]));
        }
    };
    let mut replies = 0;
    for i in 0..100_000 {
        let mut b = valid.clone();
        if i % 3 == 2 {
            // Option 52 (any value, any length), and options of random codes, lengths and
            // contents in `file` and `sname`, whether it names them or not: each reply is
            // encoded too, within what the request's option 57 allows.
            b.truncate(240);
            b.extend_from_slice(&[53, 1, 1]);
            let len = [1u8, 1, 1, 0, 2][usize::try_from(rng.below(5)).unwrap()];
            b.extend_from_slice(&[52, len]);
            b.extend((0..len).map(|_| u8::try_from(rng.below(5)).unwrap()));
            random_options(&mut rng, &mut b, 4);
            b.push(255);
            for (at, n) in [(108usize, 128usize), (44, 64)] {
                let mut f = Vec::new();
                random_options(&mut rng, &mut f, 12);
                f.truncate(n);
                b[at..at + f.len()].copy_from_slice(&f);
            }
            let o = s.handle_bytes(T0 + i, &b, rx);
            if let Some(r) = o.reply {
                // Short options: every reply fits, and reads back whole.
                let bytes = crate::packet::encode_reply(&r.msg, &r.room);
                assert!(bytes.len() + 28 <= r.room.max_ip_len, "{} bytes", bytes.len());
                let flat = super::request::unfold_overload(&bytes).unwrap_or(bytes);
                assert!(Message::from_bytes(&flat).is_ok());
                replies += 1;
            }
            continue;
        }
        if i % 3 == 0 {
            for _ in 0..=rng.below(8) {
                let at = usize::try_from(rng.below(b.len() as u64)).unwrap();
                b[at] = rng.next().to_le_bytes()[0];
            }
            b.truncate(usize::try_from(rng.below(b.len() as u64 + 1)).unwrap());
        } else {
            // A sound header, then options of random codes, lengths and contents.
            b.truncate(240);
            random_options(&mut rng, &mut b, 6);
        }
        let _ = s.handle_bytes(T0 + i, &b, rx);
    }
    assert!(replies > 1000, "only {replies} replies to overloaded requests");
}

/// Many clients doing everything a client does, in random order with time passing. From the
/// clients' side: no address is ever ACKed to one client while another still holds an ACK for
/// it, and every ACK is covered by the lease the store was asked to commit with it.
#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, o: server, client, address, outcome")]
fn two_clients_never_hold_the_same_address() {
    let mut s = server();
    let clients: Vec<Client> = (0..12u8)
        .map(|n| Client {
            client_id: (n % 3 == 0).then(|| vec![1, 2, 0, 0, 0, 0, n]),
            giaddr: (n % 4 == 1).then_some(RELAY),
            ..Client::new(n)
        })
        .collect();
    // What each client believes: its address and when its lease ends.
    let mut held: Vec<Option<(Ipv4Addr, u64)>> = vec![None; clients.len()];
    let mut committed: HashMap<Ipv4Addr, Lease> = HashMap::new();
    let mut rng = Rng(0x5eed);
    let mut now = T0;
    let mut acks = 0;
    for _ in 0..20_000 {
        now += rng.below(40);
        if rng.below(10) == 0 {
            for c in s.expire(now) {
                if let LeaseChange::Put(l) = c {
                    committed.insert(l.address, l);
                }
            }
        }
        let i = usize::try_from(rng.below(clients.len() as u64)).unwrap();
        let c = &clients[i];
        let mine = held[i].filter(|&(_, end)| end > now).map(|(a, _)| a);
        let any = ip(&format!("10.0.0.{}", 98 + rng.below(8)));
        let msg = match rng.below(8) {
            0 | 1 => {
                // A complete DORA as a client would do it.
                let o = s.handle(now, &c.discover(), &c.rx());
                match o.result {
                    Handled::Offered(a) => c.select(SERVER, a),
                    _ => continue,
                }
            }
            2 => c.renew(mine.unwrap_or(any)),
            3 => c.rebind(mine.unwrap_or(any)),
            4 => c.init_reboot(mine.unwrap_or(any)),
            5 => c.release(mine.unwrap_or(any)),
            6 => c.decline(mine.unwrap_or(any)),
            _ => c.select(SERVER, any),
        };
        let o = s.handle(now, &msg, &c.rx());
        for ch in &o.changes {
            if let LeaseChange::Put(l) = ch {
                committed.insert(l.address, l.clone());
            }
        }
        match o.result {
            Handled::Acked(a) => {
                acks += 1;
                let end = now + u64::from(lease_time(&reply(&o).msg));
                for (j, h) in held.iter().enumerate() {
                    if j != i
                        && let Some((b, until)) = h
                    {
                        assert!(
                            !(*b == a && *until > now),
                            "{a} ACKed to client {i} while client {j} holds it"
                        );
                    }
                }
                let l = &committed[&a];
                assert!(
                    l.state == LeaseState::Active && l.expires_at == end && l.held_until >= end
                );
                held[i] = Some((a, end));
            }
            // A NAKed client stops using its address and starts over.
            Handled::Released(_) | Handled::Declined(_) | Handled::Nacked => held[i] = None,
            _ => {}
        }
    }
    assert!(acks > 1000, "the scenario should exercise many ACKs, got {acks}");
}

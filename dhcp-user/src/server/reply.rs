//! Building replies and choosing where they go (RFC 2131 §4.1, §4.3).
use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode, UnknownOption};

use super::request::Request;
use crate::config::model::{OPT_DNS, OPT_DOMAIN, OPT_MASK, OPT_ROUTER};
use crate::config::{Options, Subnet};
use dhcp_common::bootp::{CLIENT_PORT, SERVER_PORT};

/// Where a reply must be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// To the relay agent, `giaddr:67`.
    Relay(Ipv4Addr),
    /// To the client's configured address, `ciaddr:68`, routed as any unicast.
    Ciaddr(Ipv4Addr),
    /// To `yiaddr:68` in a frame addressed to `mac`: the client has no address yet, so it cannot
    /// answer ARP; the frame must be built without ARP (raw socket, or a static neighbour entry).
    UnicastL2 { ip: Ipv4Addr, mac: [u8; 6] },
    /// `255.255.255.255:68` in a broadcast frame on the receiving interface.
    Broadcast,
}

impl Dest {
    /// The UDP destination.
    #[must_use]
    pub fn socket_addr(&self) -> SocketAddrV4 {
        match *self {
            Dest::Relay(a) => SocketAddrV4::new(a, SERVER_PORT),
            Dest::Ciaddr(a) | Dest::UnicastL2 { ip: a, .. } => SocketAddrV4::new(a, CLIENT_PORT),
            Dest::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
        }
    }
}

/// A reply and where it goes. `ifindex` is the interface the request arrived on: broadcasts and
/// L2 unicasts leave through it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub msg: Message,
    pub dest: Dest,
    pub ifindex: u32,
    /// How long it may be on the wire, and what it keeps if its options take more
    /// (`packet::encode_reply`): the request's option 57 and 55.
    pub room: crate::packet::ReplyRoom,
}

/// RFC 2131 §4.1: relay first; a NAK to a directly attached client is always broadcast (its
/// address is wrong, so unicast may not reach it); then ciaddr; then broadcast when asked or
/// when the hardware address cannot be framed; else unicast to yiaddr at chaddr.
pub(super) fn dest(req: &Request<'_>, kind: MessageType, yiaddr: Ipv4Addr) -> Dest {
    if let Some(gi) = req.giaddr {
        return Dest::Relay(gi);
    }
    if kind == MessageType::Nak {
        return Dest::Broadcast;
    }
    if let Some(ci) = req.ciaddr {
        return Dest::Ciaddr(ci);
    }
    let mac: Option<[u8; 6]> =
        (req.client.htype == 1).then(|| req.client.chaddr.as_slice().try_into().ok()).flatten();
    match mac {
        Some(mac) if !req.msg.flags().broadcast() && !yiaddr.is_unspecified() => {
            Dest::UnicastL2 { ip: yiaddr, mac }
        }
        _ => Dest::Broadcast,
    }
}

/// The fields and options every reply shares: xid, chaddr, flags and giaddr from the request;
/// server identifier; the client identifier echoed (RFC 6842); option 82 echoed (RFC 3046).
pub(super) fn base(
    req: &Request<'_>,
    kind: MessageType,
    server_id: Ipv4Addr,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
) -> Message {
    let mut m = Message::new_with_id(
        req.msg.xid(),
        ciaddr,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        req.giaddr.unwrap_or(Ipv4Addr::UNSPECIFIED),
        &req.client.chaddr,
    );
    let mut flags = req.msg.flags();
    // A relay must broadcast a NAK on the client's link (RFC 2131 §4.1): tell it so.
    if kind == MessageType::Nak && req.giaddr.is_some() {
        flags = flags.set_broadcast();
    }
    m.set_opcode(Opcode::BootReply).set_htype(HType::from(req.client.htype)).set_flags(flags);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    o.insert(DhcpOption::ServerIdentifier(server_id));
    if let Some(id) = &req.client.client_id {
        o.insert(DhcpOption::ClientIdentifier(id.clone()));
    }
    if let Some(ri) = &req.relay_info {
        let code = OptionCode::RelayAgentInformation;
        o.insert(DhcpOption::Unknown(UnknownOption::new(code, ri.clone())));
    }
    m
}

/// A reply profile's options ([`crate::config::Profile`]): 1, 3, 6 and 15 as dhcproto types
/// them, every other as its encoded bytes (`packet::encode_reply` writes them in order).
pub(super) fn profile_options(m: &mut Message, opts: &Options) {
    let addrs = |v: &[u8]| {
        v.chunks_exact(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect::<Vec<_>>()
    };
    let o = m.opts_mut();
    for (&code, v) in opts {
        o.insert(match code {
            OPT_MASK if v.len() == 4 => DhcpOption::SubnetMask(addrs(v)[0]),
            OPT_ROUTER => DhcpOption::Router(addrs(v)),
            OPT_DNS => DhcpOption::DomainNameServer(addrs(v)),
            OPT_DOMAIN => DhcpOption::DomainName(String::from_utf8_lossy(v).into_owned()),
            _ => DhcpOption::Unknown(UnknownOption::new(OptionCode::from(code), v.clone())),
        });
    }
}

/// OFFER or ACK binding `yiaddr` for `lease` seconds.
pub(super) fn lease_reply(
    req: &Request<'_>,
    kind: MessageType,
    server_id: Ipv4Addr,
    s: &Subnet,
    opts: &Options,
    yiaddr: Ipv4Addr,
    lease: u32,
) -> Message {
    let ciaddr = if kind == MessageType::Ack {
        req.ciaddr.unwrap_or(Ipv4Addr::UNSPECIFIED)
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let mut m = base(req, kind, server_id, ciaddr, yiaddr);
    let (t1, t2) = s.timers(lease);
    let o = m.opts_mut();
    o.insert(DhcpOption::AddressLeaseTime(lease));
    o.insert(DhcpOption::Renewal(t1));
    o.insert(DhcpOption::Rebinding(t2));
    profile_options(&mut m, opts);
    m
}

pub(super) fn nak(req: &Request<'_>, server_id: Ipv4Addr, why: &str) -> Message {
    let mut m =
        base(req, MessageType::Nak, server_id, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
    m.opts_mut().insert(DhcpOption::Message(why.to_owned()));
    m
}

/// ACK to an INFORM: configuration only, no address, no lease time (RFC 2131 §3.4).
pub(super) fn inform_ack(req: &Request<'_>, server_id: Ipv4Addr, opts: &Options) -> Message {
    let mut m = base(
        req,
        MessageType::Ack,
        server_id,
        req.ciaddr.unwrap_or(Ipv4Addr::UNSPECIFIED),
        Ipv4Addr::UNSPECIFIED,
    );
    profile_options(&mut m, opts);
    m
}

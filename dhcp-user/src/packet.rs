//! Pure frame building and parsing: Ethernet (+ VLAN tags), IPv4, UDP around a DHCP message.
//! The slow path, the XDP tests and the load generator all build their frames here.
use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Result, bail, ensure};
use dhcp_common::bootp::{
    CLIENT_PORT, ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, IPPROTO_UDP, IPV4_HLEN,
    SERVER_PORT, UDP_HLEN, VLAN_HLEN,
};
use dhcproto::{
    Decodable as _, Encodable as _,
    v4::{DhcpOption, Flags, Message, MessageType, Opcode},
};

pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Real clients pad BOOTP messages to the historical minimum; the builders do the same.
pub const BOOTP_MIN_LEN: usize = 300;

#[must_use]
pub fn fmt_mac(m: &[u8; 6]) -> String {
    fmt_hw(m)
}

/// Bytes as colon-separated hex pairs, the way hardware addresses are written: a MAC, any
/// other `chaddr`, a MAC prefix.
#[must_use]
pub fn fmt_hw(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        let sep = if i > 0 { ":" } else { "" };
        let _ = write!(s, "{sep}{x:02x}");
    }
    s
}

#[must_use]
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// An 802.1Q or 802.1ad tag as it sits in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vlan {
    pub tpid: u16,
    pub tci: u16,
}

impl Vlan {
    #[must_use]
    pub fn dot1q(vid: u16) -> Self {
        Self { tpid: ETH_P_8021Q, tci: vid }
    }
    #[must_use]
    pub fn dot1ad(vid: u16) -> Self {
        Self { tpid: ETH_P_8021AD, tci: vid }
    }
}

/// Link-layer framing of one datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2 {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub vlans: Vec<Vlan>,
}

/// Internet checksum of `data` added to `sum` (RFC 1071), not yet complemented.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

#[expect(clippy::cast_possible_truncation, reason = "the loop leaves sum <= 0xffff")]
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[must_use]
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    !fold(sum16(0, header))
}

/// The UDP checksum over the pseudo header and the whole datagram (with its checksum field as
/// it is: verifying a datagram gives 0, computing over a zeroed field gives the value to store).
#[must_use]
#[expect(clippy::cast_possible_truncation, reason = "an IPv4 datagram is under 64 KiB")]
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut s = sum16(0, &src.octets());
    s = sum16(s, &dst.octets());
    s += u32::from(IPPROTO_UDP) + udp.len() as u32;
    !fold(sum16(s, udp))
}

/// Ethernet/VLAN/IPv4/UDP frame around `payload`, with both checksums.
#[must_use]
#[expect(
    clippy::cast_possible_truncation,
    reason = "the payload is one DHCP message, far below 64 KiB"
)]
pub fn udp_frame(l2: &L2, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HLEN + 8 + IPV4_HLEN + UDP_HLEN + payload.len());
    f.extend_from_slice(&l2.dst);
    f.extend_from_slice(&l2.src);
    for v in &l2.vlans {
        f.extend_from_slice(&v.tpid.to_be_bytes());
        f.extend_from_slice(&v.tci.to_be_bytes());
    }
    f.extend_from_slice(&ETH_P_IP.to_be_bytes());
    let ip_at = f.len();
    let total = (IPV4_HLEN + UDP_HLEN + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0]);
    f.extend_from_slice(&src.ip().octets());
    f.extend_from_slice(&dst.ip().octets());
    let c = ipv4_checksum(&f[ip_at..ip_at + IPV4_HLEN]);
    f[ip_at + 10..ip_at + 12].copy_from_slice(&c.to_be_bytes());
    let udp_at = f.len();
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&((UDP_HLEN + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let c = match udp_checksum(*src.ip(), *dst.ip(), &f[udp_at..]) {
        0 => 0xffff,
        c => c,
    };
    f[udp_at + 6..udp_at + 8].copy_from_slice(&c.to_be_bytes());
    f
}

/// Encodes a DHCP message, padded to [`BOOTP_MIN_LEN`] as clients do.
///
/// # Panics
/// Never for a message dhcproto built: it encodes whatever it can represent.
#[must_use]
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut v = msg.to_vec().expect("dhcproto encodes any message it can represent");
    if v.len() < BOOTP_MIN_LEN {
        v.resize(BOOTP_MIN_LEN, 0);
    }
    v
}

/// `payload` (an encoded BOOTP message ending in END, perhaps zero-padded) with option `code`
/// inserted just before END, as a relay agent or access node adds option 82 (RFC 3046 §2.1:
/// last). The zero padding after END gives way for it, down to [`BOOTP_MIN_LEN`]; a payload with
/// no END is returned as it is.
///
#[must_use]
pub fn insert_last_option(payload: &[u8], code: u8, value: &[u8]) -> Vec<u8> {
    let mut at = dhcp_common::bootp::OPTIONS;
    let end = loop {
        match payload.get(at) {
            None => return payload.to_vec(),
            Some(255) => break at,
            Some(0) => at += 1,
            Some(_) => at += 2 + usize::from(*payload.get(at + 1).unwrap_or(&0)),
        }
    };
    let mut v = payload[..end].to_vec();
    push_option(&mut v, code, value);
    let tail = &payload[end..];
    let kept = tail.len() - tail.iter().rev().take_while(|b| **b == 0).count();
    v.extend_from_slice(&tail[..kept.max(1)]);
    if v.len() < BOOTP_MIN_LEN && payload.len() >= BOOTP_MIN_LEN {
        v.resize(BOOTP_MIN_LEN, 0);
    }
    v
}

/// How long a reply may be, and what it keeps when its options take more (RFC 2131 §2, §4.1;
/// RFC 2132 §9.3, §9.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyRoom {
    /// The longest IP datagram the client accepts: 576 bytes, or its option 57 where that
    /// allows more ([`dhcp_common::layout::max_reply_ip_len`]).
    pub max_ip_len: usize,
    /// The client's option 55 (parameter request list), in its order: what is kept first,
    /// after [`ESSENTIAL`], when not everything fits.
    pub requested: Vec<u8>,
}

impl Default for ReplyRoom {
    /// What a client that sends neither option 57 nor 55 gets.
    fn default() -> Self {
        Self { max_ip_len: dhcp_common::layout::max_reply_ip_len(None), requested: Vec::new() }
    }
}

/// The options a reply never leaves out for room, in the order they are given it: message
/// type, server identifier, lease time, T1, T2, subnet mask, the client identifier echoed (RFC
/// 6842) and option 82 echoed (RFC 3046).
pub const ESSENTIAL: [u8; 8] = [53, 54, 51, 58, 59, 1, 61, 82];

/// A reply as it goes on the wire: the fixed fields as dhcproto encodes them, then the options
/// in [`dhcp_common::layout::REPLY_ORDER`] (the fast-path ACK's order, so that an ACK reads the
/// same whichever path built it), any others by code, option 82 last (RFC 3046 §2.2: the relay
/// strips it from the end), END. Option 82's value goes out as it came, even empty.
///
/// When that is longer than `room.max_ip_len` (with the IPv4 and UDP headers), the options that
/// do not fit the options field go into `file`, then `sname`, by option overload (option 52,
/// RFC 2131 §4.1, RFC 2132 §9.3; `file` first because a client reads it first), each field
/// ending with END and PAD-filled, each option (with all its RFC 3396 instances) whole in one
/// field; option 82 stays last in the options field, where relays look for it. Options are
/// given room in this order: option 82 (the options field alone holds it), then [`ESSENTIAL`],
/// then those the client asked for in its option 55's order, then the rest by code; each goes
/// into the first of options, `file`, `sname` with room for it, and one that fits none is left
/// out. An essential option that fits none stays in the options field all the same (the reply
/// is then longer than the client asked for: a 255-byte client identifier and option 82 of as
/// much cannot both fit 576 bytes). Within each field options keep the order above.
///
/// # Panics
/// Never for a message dhcproto built: it encodes whatever it can represent.
#[must_use]
pub fn encode_reply(msg: &Message, room: &ReplyRoom) -> Vec<u8> {
    use dhcp_common::{
        bootp::{IPV4_HLEN, OPT_END, OPT_RELAY_AGENT, UDP_HLEN},
        layout::REPLY_ORDER,
    };
    let mut head = msg.clone();
    head.set_opts(dhcproto::v4::DhcpOptions::new());
    let mut v = head.to_vec().expect("dhcproto encodes any message it can represent");
    let rank = |code: u8| match REPLY_ORDER.iter().position(|c| *c == code) {
        Some(i) => i,
        None if code == OPT_RELAY_AGENT => usize::MAX,
        None => REPLY_ORDER.len() + usize::from(code),
    };
    let mut opts: Vec<(u8, &DhcpOption)> =
        msg.opts().iter().map(|(c, o)| (u8::from(*c), o)).collect();
    opts.sort_by_key(|(c, _)| rank(*c));
    // Each option encoded, with all its instances, in wire order.
    let encoded: Vec<(u8, Vec<u8>)> = opts
        .into_iter()
        .filter_map(|(code, o)| match o {
            // Option 82 as it came and configured options as encoded (dhcproto would write
            // nothing for an empty value).
            DhcpOption::Unknown(u) => {
                let mut b = Vec::new();
                push_option(&mut b, code, u.data());
                Some((code, b))
            }
            DhcpOption::End | DhcpOption::Pad => None,
            o => Some((code, o.to_vec().expect("dhcproto encodes any option it can represent"))),
        })
        .collect();
    let all: usize = encoded.iter().map(|(_, b)| b.len()).sum();
    // With END.
    if IPV4_HLEN + UDP_HLEN + v.len() + all < room.max_ip_len {
        for (_, b) in &encoded {
            v.extend_from_slice(b);
        }
        v.push(OPT_END);
        return v;
    }
    overloaded(msg, v, &encoded, room)
}

/// [`encode_reply`] for options that do not all fit the options field: `v`, the fixed fields
/// and cookie; `encoded`, the options in wire order.
fn overloaded(
    msg: &Message,
    mut v: Vec<u8>,
    encoded: &[(u8, Vec<u8>)],
    room: &ReplyRoom,
) -> Vec<u8> {
    use dhcp_common::bootp::{
        FILE, FILE_LEN, IPV4_HLEN, OPT_END, OPT_OVERLOAD, OPT_RELAY_AGENT, SNAME, SNAME_LEN,
        UDP_HLEN,
    };
    // The options field keeps room for option 52 (3 bytes) and END.
    let main_room = room.max_ip_len.saturating_sub(IPV4_HLEN + UDP_HLEN + v.len() + 3 + 1);
    let free = [
        (FILE, FILE_LEN, msg.fname().is_none_or(<[u8]>::is_empty)),
        (SNAME, SNAME_LEN, msg.sname().is_none_or(<[u8]>::is_empty)),
    ];
    // Field 0 is the options field, 1 `file`, 2 `sname`; `None`: left out.
    let mut room_left = [main_room, FILE_LEN - 1, SNAME_LEN - 1];
    for (k, (_, _, is_free)) in free.iter().enumerate() {
        if !is_free {
            room_left[k + 1] = 0;
        }
    }
    let priority = |code: u8| {
        if code == OPT_RELAY_AGENT {
            (0, 0)
        } else if let Some(i) = ESSENTIAL.iter().position(|c| *c == code) {
            (1, i)
        } else if let Some(i) = room.requested.iter().position(|c| *c == code) {
            (2, i)
        } else {
            (3, usize::from(code))
        }
    };
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|i| priority(encoded[*i].0));
    let mut field: Vec<Option<usize>> = vec![None; encoded.len()];
    for i in order {
        let (code, b) = &encoded[i];
        let fields: &[usize] = if *code == OPT_RELAY_AGENT { &[0] } else { &[0, 1, 2] };
        let at = fields.iter().copied().find(|f| room_left[*f] >= b.len());
        let at = at.or_else(|| ESSENTIAL.contains(code).then_some(0));
        if let Some(f) = at {
            room_left[f] = room_left[f].saturating_sub(b.len());
            field[i] = Some(f);
        }
    }
    let used = |f: usize| field.contains(&Some(f));
    let overload = u8::from(used(1)) | u8::from(used(2)) << 1;
    let in_field = |f: usize| {
        encoded.iter().zip(&field).filter(move |(_, at)| **at == Some(f)).map(|((c, b), _)| (*c, b))
    };
    // Option 52 after the others in the options field, but for option 82, still the last.
    for (code, b) in in_field(0) {
        if code == OPT_RELAY_AGENT {
            break;
        }
        v.extend_from_slice(b);
    }
    if overload != 0 {
        v.extend_from_slice(&[OPT_OVERLOAD, 1, overload]);
    }
    if let Some((_, b)) = in_field(0).find(|(c, _)| *c == OPT_RELAY_AGENT) {
        v.extend_from_slice(b);
    }
    v.push(OPT_END);
    for (k, (at, len, _)) in free.iter().enumerate() {
        if !used(k + 1) {
            continue;
        }
        let mut f: Vec<u8> = in_field(k + 1).flat_map(|(_, b)| b.iter().copied()).collect();
        f.push(OPT_END);
        f.resize(*len, 0);
        v[*at..*at + *len].copy_from_slice(&f);
    }
    v
}

/// Appends option `code` with `value`: one instance when it fits 255 bytes, else consecutive
/// instances of at most 255 (RFC 3396), which the receiver joins; an empty value is one
/// instance of length 0.
///
/// # Panics
/// Never: the value is written in chunks of at most 255 bytes.
pub fn push_option(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    let chunks: Vec<&[u8]> = if value.is_empty() { vec![&[]] } else { value.chunks(255).collect() };
    for c in chunks {
        out.push(code);
        out.push(u8::try_from(c.len()).expect("chunks of at most 255 bytes"));
        out.extend_from_slice(c);
    }
}

/// `payload` (an encoded BOOTP message) without option `code`, every instance of it (RFC 3396
/// splits a long one), as a relay agent or access node takes option 82 out of a reply before
/// passing it to the client (RFC 3046 §2.2). Only the options field is read (an option that
/// overload put into `file` or `sname` stays). A payload of at least [`BOOTP_MIN_LEN`] bytes is
/// zero padded back to it, as [`insert_last_option`] took the padding. `None` when the payload
/// has no such option or its options do not read to an END (nothing is changed then).
#[must_use]
pub fn remove_option(payload: &[u8], code: u8) -> Option<Vec<u8>> {
    use dhcp_common::bootp::{OPT_END, OPT_PAD, OPTIONS};
    let mut v = payload.get(..OPTIONS)?.to_vec();
    let mut at = OPTIONS;
    let mut found = false;
    loop {
        match *payload.get(at)? {
            OPT_END => break,
            OPT_PAD => {
                v.push(OPT_PAD);
                at += 1;
            }
            c => {
                let next = at + 2 + usize::from(*payload.get(at + 1)?);
                let opt = payload.get(at..next)?;
                if c == code {
                    found = true;
                } else {
                    v.extend_from_slice(opt);
                }
                at = next;
            }
        }
    }
    v.extend_from_slice(&payload[at..]);
    if v.len() < BOOTP_MIN_LEN && payload.len() >= BOOTP_MIN_LEN {
        v.resize(BOOTP_MIN_LEN, 0);
    }
    found.then_some(v)
}

/// How a renewal reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewKind {
    /// RENEWING: unicast from ciaddr to the server.
    Renewing,
    /// REBINDING: broadcast from ciaddr.
    Rebinding,
    /// Through a relay: from giaddr:67 to the server:67 (how perfdhcp sends renewals).
    Relayed { giaddr: Ipv4Addr, relay_mac: [u8; 6] },
}

/// A client renewing `ciaddr`: what a RENEWING/REBINDING DHCPREQUEST carries.
#[derive(Clone, Debug)]
pub struct Renewal {
    pub xid: u32,
    pub chaddr: [u8; 6],
    pub ciaddr: Ipv4Addr,
    /// Option 61 value, type byte included.
    pub client_id: Option<Vec<u8>>,
    pub kind: RenewKind,
    pub server: Ipv4Addr,
    pub server_mac: [u8; 6],
    pub vlans: Vec<Vlan>,
    /// Option 82's value (sub-options), as the relay (giaddr set) or a layer-2 access node
    /// (giaddr 0) adds it: inserted last, before END, byte for byte.
    pub relay_info: Option<Vec<u8>>,
}

impl Renewal {
    #[must_use]
    pub fn message(&self) -> Message {
        let giaddr = match self.kind {
            RenewKind::Relayed { giaddr, .. } => giaddr,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        let mut m = Message::new_with_id(
            self.xid,
            self.ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            giaddr,
            &self.chaddr,
        );
        m.set_opcode(Opcode::BootRequest);
        if giaddr != Ipv4Addr::UNSPECIFIED {
            m.set_hops(1);
        }
        if self.kind == RenewKind::Rebinding {
            m.set_flags(Flags::default().set_broadcast());
        }
        let opts = m.opts_mut();
        opts.insert(DhcpOption::MessageType(MessageType::Request));
        if let Some(id) = &self.client_id {
            opts.insert(DhcpOption::ClientIdentifier(id.clone()));
        }
        opts.insert(DhcpOption::ParameterRequestList(vec![
            dhcproto::v4::OptionCode::SubnetMask,
            dhcproto::v4::OptionCode::Router,
            dhcproto::v4::OptionCode::DomainNameServer,
            dhcproto::v4::OptionCode::DomainName,
        ]));
        m
    }

    /// The BOOTP payload as it arrives: [`Renewal::message`], padded as clients pad, with
    /// option 82 added last when the renewal carries one.
    #[must_use]
    pub fn payload(&self) -> Vec<u8> {
        self.payload_of(&self.message())
    }

    /// This client's message of another `kind` (a DISCOVER, an INIT-REBOOT REQUEST), asking
    /// for `requested` (option 50), framed as this renewal is: what tests and benchmarks send
    /// to see the messages the fast path does not answer.
    #[must_use]
    pub fn frame_as(&self, kind: MessageType, requested: Option<Ipv4Addr>) -> Vec<u8> {
        let mut m = self.message();
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        if let Some(a) = requested {
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
        }
        self.frame_with(&self.payload_of(&m))
    }

    /// The payload of `m` as [`Renewal::payload`] lays it out.
    fn payload_of(&self, m: &Message) -> Vec<u8> {
        let p = encode(m);
        match &self.relay_info {
            Some(r) => insert_last_option(&p, dhcp_common::bootp::OPT_RELAY_AGENT, r),
            None => p,
        }
    }

    /// The whole frame as it arrives at the server's interface.
    #[must_use]
    pub fn frame(&self) -> Vec<u8> {
        self.frame_with(&self.payload())
    }

    /// The frame around an arbitrary BOOTP payload (tests mutate the payload).
    #[must_use]
    pub fn frame_with(&self, payload: &[u8]) -> Vec<u8> {
        let (l2, src, dst) = match self.kind {
            RenewKind::Renewing => (
                L2 { dst: self.server_mac, src: self.chaddr, vlans: self.vlans.clone() },
                SocketAddrV4::new(self.ciaddr, CLIENT_PORT),
                SocketAddrV4::new(self.server, SERVER_PORT),
            ),
            RenewKind::Rebinding => (
                L2 { dst: BROADCAST_MAC, src: self.chaddr, vlans: self.vlans.clone() },
                SocketAddrV4::new(self.ciaddr, CLIENT_PORT),
                SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT),
            ),
            RenewKind::Relayed { giaddr, relay_mac } => (
                L2 { dst: self.server_mac, src: relay_mac, vlans: self.vlans.clone() },
                SocketAddrV4::new(giaddr, SERVER_PORT),
                SocketAddrV4::new(self.server, SERVER_PORT),
            ),
        };
        udp_frame(&l2, src, dst, payload)
    }
}

/// A frame taken apart, with both checksums verified independently of whoever built it.
#[derive(Debug)]
pub struct Parsed {
    pub l2: L2,
    pub ip_src: Ipv4Addr,
    pub ip_dst: Ipv4Addr,
    pub ttl: u8,
    pub ip_checksum_ok: bool,
    pub src_port: u16,
    pub dst_port: u16,
    /// Zero UDP checksum means none was sent.
    pub udp_checksum: u16,
    pub udp_checksum_ok: bool,
    pub payload: Vec<u8>,
    pub msg: Message,
}

/// Parses an Ethernet/VLAN/IPv4/UDP/DHCP frame. The IPv4 and UDP lengths must agree; bytes
/// after the IP packet (Ethernet padding) are ignored.
pub fn parse_frame(f: &[u8]) -> Result<Parsed> {
    ensure!(f.len() >= ETH_HLEN, "short Ethernet header");
    let mut l2 = L2 { dst: f[0..6].try_into()?, src: f[6..12].try_into()?, vlans: vec![] };
    let mut off = 12;
    let mut proto = u16::from_be_bytes([f[off], f[off + 1]]);
    while proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        ensure!(f.len() >= off + 2 + VLAN_HLEN, "short VLAN tag");
        l2.vlans.push(Vlan { tpid: proto, tci: u16::from_be_bytes([f[off + 2], f[off + 3]]) });
        off += VLAN_HLEN;
        proto = u16::from_be_bytes([f[off], f[off + 1]]);
    }
    ensure!(proto == ETH_P_IP, "ethertype {proto:#06x} is not IPv4");
    let ip = &f[off + 2..];
    ensure!(ip.len() >= IPV4_HLEN && ip[0] == 0x45, "not a plain IPv4 header");
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    ensure!(
        total <= ip.len() && total >= IPV4_HLEN,
        "IPv4 total length {total} but {} bytes follow",
        ip.len()
    );
    let ip = &ip[..total];
    ensure!(ip[9] == IPPROTO_UDP, "not UDP");
    let ip_src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let ip_dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &ip[IPV4_HLEN..];
    ensure!(udp.len() >= UDP_HLEN, "short UDP header");
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    ensure!(ulen == udp.len(), "UDP length {ulen} but {} bytes", udp.len());
    let udp_sum = u16::from_be_bytes([udp[6], udp[7]]);
    let payload = udp[UDP_HLEN..].to_vec();
    // dhcproto 0.15 debug-asserts some options' lengths: a crafted frame is an error here, not
    // a panic.
    let msg = match std::panic::catch_unwind(|| Message::from_bytes(&payload)) {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => bail!("DHCP message does not decode: {e}"),
        Err(_) => bail!("DHCP message does not decode (dhcproto asserted)"),
    };
    Ok(Parsed {
        l2,
        ip_src,
        ip_dst,
        ttl: ip[8],
        ip_checksum_ok: ipv4_checksum(&ip[..IPV4_HLEN]) == 0,
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        udp_checksum: udp_sum,
        udp_checksum_ok: udp_sum != 0 && udp_checksum(ip_src, ip_dst, udp) == 0,
        payload,
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_renewal_parses_back_with_valid_checksums() {
        let r = Renewal {
            xid: 7,
            chaddr: [2, 0, 0, 0, 0, 1],
            ciaddr: Ipv4Addr::new(10, 0, 0, 5),
            client_id: Some(vec![1, 2, 0, 0, 0, 0, 1]),
            kind: RenewKind::Renewing,
            server: Ipv4Addr::new(10, 0, 0, 1),
            server_mac: [2, 0, 0, 0, 0, 0xfe],
            vlans: vec![Vlan::dot1ad(100), Vlan::dot1q(200)],
            relay_info: None,
        };
        let p = parse_frame(&r.frame()).unwrap();
        assert!(p.ip_checksum_ok && p.udp_checksum_ok);
        assert_eq!(p.l2.vlans, r.vlans);
        assert_eq!(p.msg.ciaddr(), r.ciaddr);
        assert_eq!(p.payload.len(), BOOTP_MIN_LEN);
        assert_eq!(parse_mac(&fmt_mac(&r.chaddr)), Some(r.chaddr));

        // With option 82: last before END, as sent, within the padding while it fits.
        let raw = crate::relay::encode(&[(2, b"cpe"), (1, b"olt1 eth 1/1/1:7")]);
        let with = Renewal { relay_info: Some(raw.clone()), ..r };
        let p = with.payload();
        assert_eq!(p.len(), BOOTP_MIN_LEN);
        assert_eq!(crate::relay::from_payload(&p), Some(raw.clone()));
        let end = 240 + p[240..].iter().position(|b| *b == 255).unwrap();
        assert_eq!(
            &p[end - raw.len() - 2..end],
            [&[82, u8::try_from(raw.len()).unwrap()][..], &raw].concat()
        );
        // A long one grows the message past the padding.
        let long = vec![b'x'; 200];
        let p = insert_last_option(&encode(&with.message()), 82, &long);
        assert!(p.len() > BOOTP_MIN_LEN);
        assert_eq!(crate::relay::from_payload(&p), Some(long));
        assert_eq!(*p.last().unwrap(), 255);
    }

    #[test]
    fn remove_option_takes_out_every_instance_and_nothing_else() {
        let m = Renewal {
            xid: 9,
            chaddr: [2, 0, 0, 0, 0, 2],
            ciaddr: Ipv4Addr::new(10, 0, 0, 6),
            client_id: Some(vec![1, 2, 0, 0, 0, 0, 2]),
            kind: RenewKind::Renewing,
            server: Ipv4Addr::new(10, 0, 0, 1),
            server_mac: [2, 0, 0, 0, 0, 0xfe],
            vlans: vec![],
            relay_info: None,
        }
        .message();
        let plain = encode(&m);
        assert_eq!(remove_option(&plain, 82), None, "nothing to remove");
        // Short: back to the message as the client sent it, padding and all.
        let raw = crate::relay::encode(&[(1, b"olt1 xpon 0/1/1:7"), (2, b"ont-7")]);
        let with = insert_last_option(&plain, 82, &raw);
        assert_eq!(remove_option(&with, 82).unwrap(), plain);
        // Long (two instances, RFC 3396): both go, END stays last.
        let long = insert_last_option(&plain, 82, &[b'x'; 300]);
        let out = remove_option(&long, 82).unwrap();
        assert_eq!(crate::relay::from_payload(&out), None);
        assert_eq!(out, plain);
        let back = Message::from_bytes(&out).unwrap();
        assert_eq!(back.opts().msg_type(), Some(MessageType::Request));
        // A PAD between options is kept; options that run past the payload change nothing.
        let mut padded = with.clone();
        padded.insert(dhcp_common::bootp::OPTIONS, 0);
        assert_eq!(remove_option(&padded, 82).unwrap()[240], 0);
        let at82 = 240 + with[240..].iter().position(|b| *b == 82).unwrap();
        assert_eq!(remove_option(&with[..at82 + 5], 82), None, "82 runs past the payload");
        assert_eq!(remove_option(&with[..200], 82), None, "no options field");
    }
}

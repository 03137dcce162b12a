//! A layer-2 access node port (an OLT's or DSLAM's subscriber port, TR-101): a shim between a
//! subscriber's link and the LAN that forwards every frame both ways and, as TR-101 R-124 asks
//! of an access node that snoops DHCP, adds option 82 (relay agent information: the port's
//! circuit-id and remote-id) as the last option of every DHCP message the subscriber sends —
//! DISCOVER, REQUEST, the unicast renewals, RELEASE — and takes it out of every reply towards
//! the subscriber (RFC 3046 §2.2). It relays at layer 2: `giaddr` stays 0, the frames keep the
//! subscriber's addresses, and the server's XDP program sees them as the access node sent them.
//!
//! The rewriting is pure ([`add_relay_info`], [`strip_relay_info`]); [`Shim`] runs it on two
//! packet sockets in a namespace the lab made, and [`AccessPort`] builds one port of it on a
//! [`Lan`]: a namespace for the access node, with an uplink on the LAN's bridge and a veth to
//! the subscriber's namespace. The shim touches no interface: it only reads and writes frames
//! on the two interfaces it is given, both the lab's.
//!
//! Unlike ISC dhcrelay (an L3 relay: giaddr set, broadcasts only, renewals bypass it), this is
//! what a subscriber's renewals meet on a real access network. tc or nftables could rewrite
//! bytes in place but not insert an option and fix the lengths.
use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{Context as _, Result};
use dhcp_common::bootp::{
    BOOTREPLY, BOOTREQUEST, CLIENT_PORT, COOKIE, ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP,
    IPPROTO_UDP, MAGIC_COOKIE, OP, OPT_RELAY_AGENT, SERVER_PORT, UDP_HLEN, VLAN_HLEN,
};
use xdhcp::{
    packet,
    packet_socket::{Meta, PacketSocket, Protocol},
    relay,
};

use super::{
    lan::{Lan, Port},
    netns::{NetNs, VethEnd, VethPair, unique_ifname},
};

/// Where the headers of an unfragmented IPv4/UDP datagram sit in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Datagram {
    /// Offset of the IPv4 header.
    ip: usize,
    /// Offset of the UDP header.
    udp: usize,
    /// End of the IP datagram (what follows is Ethernet padding).
    end: usize,
    src_port: u16,
    dst_port: u16,
}

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

/// The frame's IPv4/UDP headers, under any number of 802.1Q/802.1ad tags; `None` for anything
/// else, a fragment, or lengths that do not add up.
fn udp_of(f: &[u8]) -> Option<Datagram> {
    let mut at = ETH_HLEN - 2;
    let mut proto = be16(f, at)?;
    while proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        at += VLAN_HLEN;
        proto = be16(f, at)?;
    }
    if proto != ETH_P_IP {
        return None;
    }
    let ip = at + 2;
    let (vihl, frag) = (*f.get(ip)?, be16(f, ip + 6)?);
    let ihl = usize::from(vihl & 0x0f) * 4;
    // Version 4, a whole header, UDP, and neither more fragments (MF) nor an offset.
    if vihl >> 4 != 4 || ihl < 20 || *f.get(ip + 9)? != IPPROTO_UDP || frag & 0x3fff != 0 {
        return None;
    }
    let end = ip + usize::from(be16(f, ip + 2)?);
    let udp = ip + ihl;
    if end > f.len() || udp + UDP_HLEN > end || udp + usize::from(be16(f, udp + 4)?) != end {
        return None;
    }
    Some(Datagram { ip, udp, end, src_port: be16(f, udp)?, dst_port: be16(f, udp + 2)? })
}

fn ips(f: &[u8], u: &Datagram) -> (Ipv4Addr, Ipv4Addr) {
    let a = |at: usize| Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3]);
    (a(u.ip + 12), a(u.ip + 16))
}

/// Stores the UDP checksum of the datagram at `u` (computed over a zeroed field; 0 goes out
/// as 0xffff, RFC 768).
fn set_udp_checksum(f: &mut [u8], u: &Datagram) {
    let (src, dst) = ips(f, u);
    f[u.udp + 6..u.udp + 8].fill(0);
    let c = match packet::udp_checksum(src, dst, &f[u.udp..u.end]) {
        0 => 0xffff,
        c => c,
    };
    f[u.udp + 6..u.udp + 8].copy_from_slice(&c.to_be_bytes());
}

/// `f` with the UDP payload replaced by `payload`: link and IP headers as they were (TTL, id,
/// TOS and IP options untouched, as a layer-2 device leaves them), IP total length, IP
/// checksum, UDP length and UDP checksum made to fit. Ethernet padding is dropped.
///
/// # Panics
/// When the datagram would exceed 64 KiB, which a DHCP message never comes near.
fn with_payload(f: &[u8], u: &Datagram, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(u.udp + UDP_HLEN + payload.len());
    out.extend_from_slice(&f[..u.udp + UDP_HLEN]);
    out.extend_from_slice(payload);
    let total = u16::try_from(out.len() - u.ip).expect("an IPv4 datagram under 64 KiB");
    let ulen = u16::try_from(out.len() - u.udp).expect("a UDP datagram under 64 KiB");
    out[u.ip + 2..u.ip + 4].copy_from_slice(&total.to_be_bytes());
    out[u.ip + 10..u.ip + 12].fill(0);
    let ihl = u.udp - u.ip;
    let c = packet::ipv4_checksum(&out[u.ip..u.ip + ihl]);
    out[u.ip + 10..u.ip + 12].copy_from_slice(&c.to_be_bytes());
    out[u.udp + 4..u.udp + 6].copy_from_slice(&ulen.to_be_bytes());
    let u = Datagram { end: out.len(), ..*u };
    set_udp_checksum(&mut out, &u);
    out
}

/// The BOOTP payload of `f` when it is a DHCP message from `from` to `to` (ports) of `op`.
fn dhcp_payload(f: &[u8], from: u16, to: u16, op: u8) -> Option<(Datagram, &[u8])> {
    let u = udp_of(f)?;
    let p = &f[u.udp + UDP_HLEN..u.end];
    let is_dhcp = u.src_port == from
        && u.dst_port == to
        && p.get(OP) == Some(&op)
        && p.get(COOKIE..COOKIE + 4) == Some(&MAGIC_COOKIE[..]);
    is_dhcp.then_some((u, p))
}

/// A frame from the subscriber with `relay_info` (option 82's value) added as the last option
/// before END, when it is a DHCP client message (IPv4, UDP 68 → 67, BOOTREQUEST; broadcast or
/// unicast, tagged or not); `None` for any other frame, which goes on unchanged. An option 82
/// the subscriber put in itself is replaced: only the access node says which line a message
/// came from.
#[must_use]
pub fn add_relay_info(frame: &[u8], relay_info: &[u8]) -> Option<Vec<u8>> {
    let (u, p) = dhcp_payload(frame, CLIENT_PORT, SERVER_PORT, BOOTREQUEST)?;
    let own = packet::remove_option(p, OPT_RELAY_AGENT);
    let p = own.as_deref().unwrap_or(p);
    let with = packet::insert_last_option(p, OPT_RELAY_AGENT, relay_info);
    // No END to put it before: the message goes on as it came.
    (with != p).then(|| with_payload(frame, &u, &with))
}

/// A frame towards the subscriber without option 82, when it is a DHCP reply (IPv4, UDP 67 →
/// 68, BOOTREPLY) that has one; `None` for any other frame, which goes on unchanged.
#[must_use]
pub fn strip_relay_info(frame: &[u8]) -> Option<Vec<u8>> {
    let (u, p) = dhcp_payload(frame, SERVER_PORT, CLIENT_PORT, BOOTREPLY)?;
    let without = packet::remove_option(p, OPT_RELAY_AGENT)?;
    Some(with_payload(frame, &u, &without))
}

/// The frame as it was on the wire, from the bytes and [`Meta`] a packet socket gave: the VLAN
/// tag the kernel lifted off put back after the MAC addresses, and a UDP checksum left to
/// offload (the sender's stack and a veth leave it to "hardware" that a packet socket is not)
/// completed.
#[must_use]
pub fn as_on_the_wire(bytes: &[u8], meta: Meta) -> Vec<u8> {
    let mut f = bytes.to_vec();
    if let Some((tpid, tci)) = meta.vlan
        && f.len() >= ETH_HLEN
    {
        let tag = [tpid.to_be_bytes(), tci.to_be_bytes()].concat();
        f.splice(12..12, tag);
    }
    if meta.checksum_pending
        && let Some(u) = udp_of(&f)
    {
        set_udp_checksum(&mut f, &u);
    }
    f
}

/// An access port's identity in option 82: circuit-id (sub-option 1, the line) and remote-id
/// (sub-option 2, the subscriber's device or account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub circuit_id: String,
    pub remote_id: String,
}

impl Line {
    #[must_use]
    pub fn new(circuit_id: &str, remote_id: &str) -> Self {
        Self { circuit_id: circuit_id.to_owned(), remote_id: remote_id.to_owned() }
    }

    /// Option 82's value: circuit-id, then remote-id.
    #[must_use]
    pub fn relay_info(&self) -> Vec<u8> {
        relay::encode(&[
            (relay::CIRCUIT_ID, self.circuit_id.as_bytes()),
            (relay::REMOTE_ID, self.remote_id.as_bytes()),
        ])
    }
}

/// What a [`Shim`] did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShimStats {
    /// Frames from the subscriber forwarded to the LAN.
    pub upstream: u64,
    /// Of them, DHCP client messages given option 82.
    pub inserted: u64,
    /// Frames from the LAN forwarded to the subscriber.
    pub downstream: u64,
    /// Of them, DHCP replies option 82 was taken out of.
    pub stripped: u64,
    /// Frames whose UDP checksum the sender left to offload, completed by the shim.
    pub checksums_completed: u64,
    /// Frames that could not be sent on (the link going away at teardown, say).
    pub send_errors: u64,
}

#[derive(Default)]
struct Counters {
    upstream: AtomicU64,
    inserted: AtomicU64,
    downstream: AtomicU64,
    stripped: AtomicU64,
    checksums_completed: AtomicU64,
    send_errors: AtomicU64,
}

/// How often a forwarding thread looks at its stop flag while no frame comes.
const SHIM_POLL: Duration = Duration::from_millis(50);

/// The forwarding of one access port: a thread per direction between the subscriber's
/// interface and the uplink, both in one namespace. Bounded: each thread wakes at least every
/// 50 ms and ends when told ([`Shim::stop`], or drop).
pub struct Shim {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl Shim {
    /// Starts forwarding between `subscriber_if` and `uplink_if` in `ns`, adding `relay_info`
    /// as option 82 to the subscriber's DHCP messages and removing option 82 from replies.
    pub fn start(
        ns: &NetNs,
        subscriber_if: &str,
        uplink_if: &str,
        relay_info: Vec<u8>,
    ) -> Result<Self> {
        let open = |iface: &str| -> Result<Arc<PacketSocket>> {
            let s = PacketSocket::open(iface, Protocol::All)
                .with_context(|| format!("packet socket on {iface}"))?;
            s.enable_auxdata().context("PACKET_AUXDATA")?;
            s.set_recv_timeout(SHIM_POLL).context("SO_RCVTIMEO")?;
            Ok(Arc::new(s))
        };
        let (sub, up) = ns.run(|| Ok((open(subscriber_if)?, open(uplink_if)?)))?;
        // Built first, so that a thread already started is stopped (on drop) if the next
        // cannot be.
        let mut shim = Self {
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::new(Counters::default()),
            threads: Vec::new(),
        };
        let relay_info: Arc<[u8]> = relay_info.into();
        for upstream in [true, false] {
            let (from, to) =
                if upstream { (sub.clone(), up.clone()) } else { (up.clone(), sub.clone()) };
            let (stop, counters, relay_info) =
                (shim.stop.clone(), shim.counters.clone(), relay_info.clone());
            let name = format!("shim-{}", if upstream { "up" } else { "down" });
            shim.threads.push(
                thread::Builder::new()
                    .name(name)
                    .spawn(move || forward(&from, &to, upstream, &relay_info, &stop, &counters))?,
            );
        }
        Ok(shim)
    }

    #[must_use]
    pub fn stats(&self) -> ShimStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ShimStats {
            upstream: get(&c.upstream),
            inserted: get(&c.inserted),
            downstream: get(&c.downstream),
            stripped: get(&c.stripped),
            checksums_completed: get(&c.checksums_completed),
            send_errors: get(&c.send_errors),
        }
    }

    /// Stops both threads and waits for them; the first error either met.
    pub fn stop(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let mut first = Ok(());
        for t in self.threads.drain(..) {
            let r = t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a shim thread panicked")));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("xdhcp lab: access node shim: {e:#}");
        }
    }
}

/// One direction's loop: every frame that arrives on `from` (not those sent from it) goes out
/// of `to`, rewritten when it is DHCP.
fn forward(
    from: &PacketSocket,
    to: &PacketSocket,
    upstream: bool,
    relay_info: &[u8],
    stop: &AtomicBool,
    c: &Counters,
) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let Some((r, meta)) = from.recv_meta(&mut buf).context("receive a frame")? else {
            continue;
        };
        if r.outgoing {
            continue;
        }
        if meta.checksum_pending {
            c.checksums_completed.fetch_add(1, Ordering::Relaxed);
        }
        let frame = as_on_the_wire(&buf[..r.len], meta);
        let rewritten = if upstream {
            c.upstream.fetch_add(1, Ordering::Relaxed);
            add_relay_info(&frame, relay_info).inspect(|_| {
                c.inserted.fetch_add(1, Ordering::Relaxed);
            })
        } else {
            c.downstream.fetch_add(1, Ordering::Relaxed);
            strip_relay_info(&frame).inspect(|_| {
                c.stripped.fetch_add(1, Ordering::Relaxed);
            })
        };
        if to.send(rewritten.as_deref().unwrap_or(&frame)).is_err() {
            c.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// A subscriber behind one port of an access node on a [`Lan`]: the subscriber's namespace
/// and link ([`AccessPort::port`], where its DHCP client runs), the access node's namespace
/// with its uplink on the LAN's bridge, and the [`Shim`] between them that stamps the port's
/// [`Line`]. Drop stops the shim, then removes the subscriber, then the access node.
pub struct AccessPort {
    shim: Shim,
    pub port: Port,
    node: Port,
    pub line: Line,
}

impl Lan {
    /// A new access port stamping `line`, its subscriber's namespace named after `tag`.
    pub fn access_port(&self, tag: &str, line: Line) -> Result<AccessPort> {
        let node = self.port("olt", None)?;
        let [hi, lo] = self.next_port();
        let mac = [0x02, 0x58, 0x64, 0, hi, lo];
        let ns = NetNs::new(tag)?;
        let (down, iface) = (unique_ifname('a'), unique_ifname('c'));
        let veth = VethPair::new(
            &node.ns,
            VethEnd { name: down.clone(), mac: [0x02, 0x58, 0x67, 0, hi, lo], addr: None },
            &ns,
            VethEnd { name: iface.clone(), mac, addr: None },
        )?;
        let shim = Shim::start(&node.ns, &down, &node.iface, line.relay_info())?;
        Ok(AccessPort { shim, port: Port::new(veth, ns, iface, mac), node, line })
    }
}

impl AccessPort {
    #[must_use]
    pub fn shim_stats(&self) -> ShimStats {
        self.shim.stats()
    }

    /// The subscriber's namespace and the access node's.
    #[must_use]
    pub fn namespaces(&self) -> Vec<String> {
        vec![self.port.ns.name().to_owned(), self.node.ns.name().to_owned()]
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use dhcproto::v4::{DhcpOption, Message, MessageType};
    use xdhcp::packet::{L2, RenewKind, Renewal, Vlan, parse_frame};

    use super::*;

    const CLIENT: [u8; 6] = [0x02, 0, 0, 0, 0, 7];
    const SERVER: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

    fn line() -> Vec<u8> {
        Line::new("olt1 xpon 0/1/1:7", "ont-7").relay_info()
    }

    fn discover(vlans: Vec<Vlan>) -> Vec<u8> {
        let m = super::super::raw::client_message(0x0701, CLIENT, MessageType::Discover);
        packet::udp_frame(
            &L2 { dst: packet::BROADCAST_MAC, src: CLIENT, vlans },
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT),
            &packet::encode(&m),
        )
    }

    fn renewal(relay_info: Option<Vec<u8>>) -> Renewal {
        Renewal {
            xid: 0x0702,
            chaddr: CLIENT,
            ciaddr: Ipv4Addr::new(10, 99, 0, 107),
            client_id: Some([&[1u8][..], &CLIENT].concat()),
            kind: RenewKind::Renewing,
            server: Ipv4Addr::new(10, 99, 0, 1),
            server_mac: SERVER,
            vlans: vec![],
            relay_info,
        }
    }

    /// Checksums valid, option 82 as given (or none), and the rest of the message unchanged.
    fn check(out: &[u8], before: &[u8], relay_info: Option<&[u8]>) -> packet::Parsed {
        let p = parse_frame(out).unwrap();
        assert!(p.ip_checksum_ok && p.udp_checksum_ok, "{p:?}");
        assert_eq!(relay::from_payload(&p.payload).as_deref(), relay_info);
        let b = parse_frame(before).unwrap();
        let mut m = p.msg.clone();
        m.opts_mut().remove(dhcproto::v4::OptionCode::RelayAgentInformation);
        let mut bm = b.msg.clone();
        bm.opts_mut().remove(dhcproto::v4::OptionCode::RelayAgentInformation);
        assert_eq!(m, bm);
        assert_eq!((&p.l2, p.ip_src, p.ip_dst, p.ttl), (&b.l2, b.ip_src, b.ip_dst, b.ttl));
        p
    }

    #[test]
    fn client_messages_get_option_82_last_broadcast_unicast_and_tagged() {
        let raw = line();
        let d = discover(vec![]);
        let out = add_relay_info(&d, &raw).unwrap();
        let p = check(&out, &d, Some(&raw));
        // Last before END, giaddr untouched (layer 2).
        let end = 240 + p.payload[240..].iter().position(|b| *b == 255).unwrap();
        assert_eq!(&p.payload[end - raw.len() - 2..end - raw.len()], [82, 26]);
        assert_eq!(p.msg.giaddr(), Ipv4Addr::UNSPECIFIED);

        // A unicast renewal, sent by a kernel UDP socket: as the server would see it from an
        // access node, byte for byte.
        let r = renewal(None);
        let out = add_relay_info(&r.frame(), &raw).unwrap();
        check(&out, &r.frame(), Some(&raw));
        assert_eq!(out, renewal(Some(raw.clone())).frame());

        // Under 802.1Q and QinQ tags.
        for vlans in [vec![Vlan::dot1q(7)], vec![Vlan::dot1ad(100), Vlan::dot1q(7)]] {
            let d = discover(vlans.clone());
            let p = check(&add_relay_info(&d, &raw).unwrap(), &d, Some(&raw));
            assert_eq!(p.l2.vlans, vlans);
        }

        // A long option 82 grows the message; IP and UDP lengths follow (parse_frame checks).
        let long = relay::encode(&[(1, &[b'c'; 120]), (2, &[b'r'; 120])]);
        let out = add_relay_info(&d, &long).unwrap();
        assert!(out.len() > d.len());
        check(&out, &d, Some(&long));
    }

    #[test]
    fn a_subscribers_own_option_82_is_replaced() {
        let forged = relay::encode(&[(1, b"olt1 xpon 0/1/1:1")]);
        let f = renewal(Some(forged)).frame();
        let out = add_relay_info(&f, &line()).unwrap();
        assert_eq!(out, renewal(Some(line())).frame());
    }

    #[test]
    fn other_frames_pass_unchanged() {
        let raw = line();
        // A reply going up, a BOOTREQUEST to another port, ARP, an IP fragment.
        let mut ack = renewal(Some(raw.clone())).frame();
        let u = udp_of(&ack).unwrap();
        ack[u.udp..u.udp + 4].copy_from_slice(&[0, 67, 0, 68]);
        assert_eq!(add_relay_info(&ack, &raw), None);
        let mut other = renewal(None).frame();
        other[u.udp + 2..u.udp + 4].copy_from_slice(&[0, 69]);
        assert_eq!(add_relay_info(&other, &raw), None);
        let mut arp = discover(vec![]);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(add_relay_info(&arp, &raw), None);
        let mut frag = discover(vec![]);
        frag[ETH_HLEN + 6] = 0x20;
        assert_eq!(add_relay_info(&frag, &raw), None);
        // A reply without option 82 is not rewritten.
        let mut plain = renewal(None).frame();
        plain[u.udp..u.udp + 4].copy_from_slice(&[0, 67, 0, 68]);
        let pu = udp_of(&plain).unwrap();
        plain[pu.udp + UDP_HLEN + OP] = BOOTREPLY;
        assert_eq!(strip_relay_info(&plain), None);
    }

    /// A reply from the server, echoing option 82 (RFC 3046 §2.2).
    fn ack(vlans: Vec<Vlan>, relay_info: &[u8]) -> Vec<u8> {
        let z = Ipv4Addr::UNSPECIFIED;
        let a = Ipv4Addr::new(10, 99, 0, 107);
        let mut m = Message::new_with_id(0x0702, a, a, z, z, &CLIENT);
        m.set_opcode(dhcproto::v4::Opcode::BootReply);
        m.opts_mut().insert(DhcpOption::MessageType(MessageType::Ack));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 99, 0, 1)));
        m.opts_mut().insert(DhcpOption::AddressLeaseTime(60));
        let p = packet::insert_last_option(
            &packet::encode_reply(&m, &packet::ReplyRoom::default()),
            OPT_RELAY_AGENT,
            relay_info,
        );
        packet::udp_frame(
            &L2 { dst: CLIENT, src: SERVER, vlans },
            SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 1), SERVER_PORT),
            SocketAddrV4::new(a, CLIENT_PORT),
            &p,
        )
    }

    #[test]
    fn replies_lose_option_82_on_the_way_to_the_subscriber() {
        for vlans in [vec![], vec![Vlan::dot1q(7)]] {
            let f = ack(vlans.clone(), &line());
            let out = strip_relay_info(&f).unwrap();
            let p = check(&out, &f, None);
            assert_eq!(p.l2.vlans, vlans);
            assert_eq!(p.msg.opts().msg_type(), Some(MessageType::Ack));
            assert_eq!(strip_relay_info(&out), None, "nothing left to strip");
        }
    }

    #[test]
    fn frames_from_a_packet_socket_are_put_back_as_on_the_wire() {
        let tagged = discover(vec![Vlan::dot1q(7)]);
        // The kernel hands the frame over untagged, with the tag beside it.
        let untagged = [&tagged[..12], &tagged[16..]].concat();
        let meta = Meta { vlan: Some((ETH_P_8021Q, 7)), checksum_pending: false };
        assert_eq!(as_on_the_wire(&untagged, meta), tagged);
        // A checksum left to offload: the field holds the pseudo header's sum only.
        let f = renewal(None).frame();
        let u = udp_of(&f).unwrap();
        let mut partial = f.clone();
        partial[u.udp + 6..u.udp + 8].copy_from_slice(&[0x12, 0x34]);
        assert!(!parse_frame(&partial).unwrap().udp_checksum_ok);
        let meta = Meta { vlan: None, checksum_pending: true };
        assert_eq!(as_on_the_wire(&partial, meta), f);
    }
}

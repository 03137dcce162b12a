//! The first-lease responder: a deliberately tiny DORA responder for one client that never
//! answers a renewal, so a renewal the client logs can only have come from XDP.
use std::{
    ffi::CString,
    io,
    net::{Ipv4Addr, SocketAddrV4, UdpSocket},
    os::fd::{FromRawFd as _, OwnedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use anyhow::{Context as _, Result};
use dhcproto::{
    Decodable as _,
    v4::{DhcpOption, Message, MessageType, Opcode, OptionCode},
};
use xdhcp::{
    packet::{self, BROADCAST_MAC, L2},
    packet_socket::{PacketSocket, Protocol, socklen_of},
};

use super::{
    netns::NetNs,
    process::{POLL, errno},
};

/// What the [`Responder`] hands out, to one client only.
#[derive(Clone, Debug)]
pub struct ResponderConfig {
    /// The server-side interface (in the namespace the responder is started in).
    pub iface: String,
    pub server_mac: [u8; 6],
    pub server: Ipv4Addr,
    pub prefix: u8,
    /// The only client answered.
    pub client_mac: [u8; 6],
    /// The only address offered.
    pub addr: Ipv4Addr,
    pub lease_secs: u32,
    pub t1_secs: u32,
    pub t2_secs: u32,
}

/// What the responder saw and did.
#[derive(Clone, Debug, Default)]
pub struct ResponderLog {
    pub offers: u32,
    pub acks: u32,
    pub naks: u32,
    /// RENEWING/REBINDING requests that reached userspace: the fast path did not answer them.
    /// The responder never does.
    pub renewals: u32,
    /// Client identifiers (option 61) the client sent, distinct, in order of appearance.
    pub client_ids: Vec<Option<Vec<u8>>>,
    pub ignored: u32,
    pub errors: Vec<String>,
}

/// A minimal DHCP responder for a client's first lease: OFFER for a DISCOVER, ACK for a
/// SELECTING/INIT-REBOOT REQUEST of the one planned address (NAK for any other). It receives
/// on a UDP socket bound to port 67 of its interface and sends complete frames through a
/// packet socket, so checksums are never left to offload and no ARP is needed for a client
/// that has no address yet. Drop stops it.
pub struct Responder {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ResponderLog>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Responder {
    pub fn start(ns: &NetNs, cfg: ResponderConfig) -> Result<Self> {
        let iface = cfg.iface.clone();
        let (udp, raw) =
            ns.run(|| open_responder_sockets(&iface)).context("open the responder's sockets")?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(ResponderLog::default()));
        let (s, l) = (stop.clone(), log.clone());
        let thread = thread::Builder::new()
            .name(format!("responder-{}", cfg.iface))
            .spawn(move || responder_loop(&cfg, &udp, &raw, &s, &l))?;
        Ok(Self { stop, log, thread: Some(thread) })
    }

    #[must_use]
    pub fn log(&self) -> ResponderLog {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The loop wakes at least every POLL (its receive timeout).
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_responder_sockets(iface: &str) -> Result<(UdpSocket, PacketSocket)> {
    // Send only: the requests come in on the UDP socket.
    let raw = PacketSocket::open(iface, Protocol::SendOnly)?;
    let name = CString::new(iface)?;
    let name_len = libc::socklen_t::try_from(name.as_bytes().len())?;
    // SAFETY: socket(2) takes no pointers; a nonnegative result is a new descriptor nothing
    // else owns, so OwnedFd may take it.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno("UDP socket"));
    }
    // SAFETY: see above.
    let udp_fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // Bound to the device before bind(2): several responders (one per lab segment) then share
    // port 67 in one namespace.
    // SAFETY: setsockopt(2) reads the given length from the name buffer, which outlives it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name_len,
        )
    };
    if rc != 0 {
        return Err(errno("SO_BINDTODEVICE"));
    }
    // SAFETY: setsockopt(2) reads one c_int from a live local.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            socklen_of::<libc::c_int>(),
        )
    };
    if rc != 0 {
        return Err(errno("SO_REUSEADDR"));
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "AF_INET is 2; libc types it as int, sockaddr_in as sa_family_t"
    )]
    let family = libc::AF_INET as libc::sa_family_t;
    let sin = libc::sockaddr_in {
        sin_family: family,
        sin_port: dhcp_common::bootp::SERVER_PORT.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: bind(2) reads a sockaddr_in of the given size from a live local.
    let rc = unsafe { libc::bind(fd, (&raw const sin).cast(), socklen_of::<libc::sockaddr_in>()) };
    if rc != 0 {
        return Err(errno("bind UDP port 67"));
    }
    let udp = UdpSocket::from(udp_fd);
    udp.set_read_timeout(Some(POLL))?;
    Ok((udp, raw))
}

fn responder_loop(
    cfg: &ResponderConfig,
    udp: &UdpSocket,
    raw: &PacketSocket,
    stop: &AtomicBool,
    log: &Mutex<ResponderLog>,
) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::SeqCst) {
        let n = match udp.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                lock(log).errors.push(format!("receive: {e}"));
                return;
            }
        };
        let Some(frame) = answer(cfg, &buf[..n], &mut lock(log)) else { continue };
        if let Err(e) = raw.send(&frame) {
            lock(log).errors.push(format!("send: {e}"));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The reply frame for one request, if it gets one.
pub(crate) fn answer(
    cfg: &ResponderConfig,
    payload: &[u8],
    log: &mut ResponderLog,
) -> Option<Vec<u8>> {
    let Ok(req) = Message::from_bytes(payload) else {
        log.ignored += 1;
        return None;
    };
    if req.opcode() != Opcode::BootRequest || req.chaddr() != cfg.client_mac {
        log.ignored += 1;
        return None;
    }
    let client_id = match req.opts().get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) => Some(id.clone()),
        _ => None,
    };
    if !log.client_ids.contains(&client_id) {
        log.client_ids.push(client_id.clone());
    }
    let requested = match req.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(a)) => Some(*a),
        _ => None,
    };
    let server_id = match req.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
        _ => None,
    };
    let kind = match req.opts().msg_type() {
        Some(MessageType::Discover) => {
            log.offers += 1;
            MessageType::Offer
        }
        Some(MessageType::Request) => match (requested, server_id) {
            // ciaddr and neither option: RENEWING or REBINDING, the fast path's job.
            (None, None) if !req.ciaddr().is_unspecified() => {
                log.renewals += 1;
                return None;
            }
            (Some(_), Some(s)) if s != cfg.server => {
                log.ignored += 1;
                return None;
            }
            (Some(a), _) if a == cfg.addr => {
                log.acks += 1;
                MessageType::Ack
            }
            _ => {
                log.naks += 1;
                MessageType::Nak
            }
        },
        _ => {
            log.ignored += 1;
            return None;
        }
    };
    Some(reply_frame(cfg, &req, kind, client_id))
}

pub(crate) fn prefix_mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// OFFER/ACK/NAK for `req`, broadcast: a client without an address accepts that in every
/// state, whatever it put in the broadcast flag.
fn reply_frame(
    cfg: &ResponderConfig,
    req: &Message,
    kind: MessageType,
    client_id: Option<Vec<u8>>,
) -> Vec<u8> {
    let yiaddr = if kind == MessageType::Nak { Ipv4Addr::UNSPECIFIED } else { cfg.addr };
    let mut m = Message::new_with_id(
        req.xid(),
        Ipv4Addr::UNSPECIFIED,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        req.giaddr(),
        req.chaddr(),
    );
    m.set_opcode(Opcode::BootReply);
    m.set_flags(req.flags());
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    o.insert(DhcpOption::ServerIdentifier(cfg.server));
    if kind != MessageType::Nak {
        o.insert(DhcpOption::AddressLeaseTime(cfg.lease_secs));
        o.insert(DhcpOption::Renewal(cfg.t1_secs));
        o.insert(DhcpOption::Rebinding(cfg.t2_secs));
        o.insert(DhcpOption::SubnetMask(prefix_mask(cfg.prefix)));
    }
    // RFC 6842: echo the client identifier.
    if let Some(id) = client_id {
        o.insert(DhcpOption::ClientIdentifier(id));
    }
    packet::udp_frame(
        &L2 { dst: BROADCAST_MAC, src: cfg.server_mac, vlans: vec![] },
        SocketAddrV4::new(cfg.server, dhcp_common::bootp::SERVER_PORT),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, dhcp_common::bootp::CLIENT_PORT),
        &packet::encode(&m),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{ClientKind, SegmentPlan, Timing};

    #[test]
    fn masks() {
        assert_eq!(prefix_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_mask(0), Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn responder_answers_first_leases_only() {
        let plan = SegmentPlan::new(3, ClientKind::Udhcpc, Timing::default());
        let cfg = plan.responder();
        let mut log = ResponderLog::default();
        let id = ClientKind::Udhcpc.client_id(plan.client_mac);
        let msg = |ciaddr: Ipv4Addr, t: MessageType, requested: Option<Ipv4Addr>| {
            let mut m = Message::new_with_id(
                9,
                ciaddr,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                &plan.client_mac,
            );
            m.opts_mut().insert(DhcpOption::MessageType(t));
            m.opts_mut().insert(DhcpOption::ClientIdentifier(id.clone().unwrap()));
            if let Some(r) = requested {
                m.opts_mut().insert(DhcpOption::RequestedIpAddress(r));
            }
            packet::encode(&m)
        };
        let zero = Ipv4Addr::UNSPECIFIED;
        let offer = answer(&cfg, &msg(zero, MessageType::Discover, None), &mut log).unwrap();
        let p = packet::parse_frame(&offer).unwrap();
        assert!(p.ip_checksum_ok && p.udp_checksum_ok);
        assert_eq!(p.msg.yiaddr(), plan.addr);
        assert_eq!(p.msg.opts().msg_type(), Some(MessageType::Offer));
        let ack =
            answer(&cfg, &msg(zero, MessageType::Request, Some(plan.addr)), &mut log).unwrap();
        assert_eq!(
            packet::parse_frame(&ack).unwrap().msg.opts().msg_type(),
            Some(MessageType::Ack)
        );
        let other = Ipv4Addr::new(10, 99, 3, 77);
        let nak = answer(&cfg, &msg(zero, MessageType::Request, Some(other)), &mut log).unwrap();
        assert_eq!(
            packet::parse_frame(&nak).unwrap().msg.opts().msg_type(),
            Some(MessageType::Nak)
        );
        assert!(answer(&cfg, &msg(plan.addr, MessageType::Request, None), &mut log).is_none());
        assert_eq!((log.offers, log.acks, log.naks, log.renewals), (1, 1, 1, 1));
        assert_eq!(log.client_ids, vec![id]);
    }
}

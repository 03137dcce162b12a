//! A packet socket on a lab interface, for exchanges the real clients cannot be made to do (a
//! DECLINE, an INIT-REBOOT from another network) and for watching the wire.
use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use xdhcp::{
    packet::{self, BROADCAST_MAC, L2},
    packet_socket::{PacketSocket, Protocol},
};

use super::{netns::NetNs, process::POLL};

/// [`PacketSocket`] on a lab interface, opened inside the lab namespace that has it.
pub struct RawSocket {
    sock: PacketSocket,
}

impl RawSocket {
    /// Opens the socket on `iface` in `ns`; it receives every IPv4 frame the interface sees
    /// or sends from then on.
    pub fn open(ns: &NetNs, iface: &str) -> Result<Self> {
        ns.run(|| {
            let sock = PacketSocket::open(iface, Protocol::Ipv4)?;
            // A load test's burst must not overflow the default 200 KB; without it the
            // socket still works, and drops() tells.
            let _ = sock.force_recv_buffer(32 << 20);
            sock.set_recv_timeout(POLL).context("SO_RCVTIMEO")?;
            Ok(Self { sock })
        })
    }

    pub fn send(&self, frame: &[u8]) -> Result<()> {
        self.sock.send(frame).context("send a frame")
    }

    /// The next frame that arrived (not one sent from this interface), waiting at most
    /// [`POLL`]; `None` when none came.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        loop {
            match self.sock.recv(buf).context("receive a frame")? {
                Some(r) if !r.outgoing => return Ok(Some(r.len)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    /// Frames dropped because the receive queue was full, since the last call.
    #[must_use]
    pub fn drops(&self) -> u32 {
        self.sock.drops()
    }

    /// Sends `msg` broadcast from `mac` (no address yet, 0.0.0.0:68) and waits at most
    /// `timeout` for a DHCP reply with the same xid.
    pub fn exchange(
        &self,
        mac: [u8; 6],
        msg: &Message,
        timeout: Duration,
    ) -> Result<Option<packet::Parsed>> {
        self.send(&client_frame(mac, msg))?;
        self.reply_to(msg.xid(), timeout)
    }

    /// The first DHCP reply carrying `xid` within `timeout`.
    pub fn reply_to(&self, xid: u32, timeout: Duration) -> Result<Option<packet::Parsed>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 2048];
        while Instant::now() < deadline {
            let Some(n) = self.recv(&mut buf)? else { continue };
            if let Ok(p) = packet::parse_frame(&buf[..n])
                && p.src_port == dhcp_common::bootp::SERVER_PORT
                && p.msg.opcode() == Opcode::BootReply
                && p.msg.xid() == xid
            {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

/// `msg` as a client without an address broadcasts it.
#[must_use]
pub fn client_frame(mac: [u8; 6], msg: &Message) -> Vec<u8> {
    packet::udp_frame(
        &L2 { dst: BROADCAST_MAC, src: mac, vlans: vec![] },
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, dhcp_common::bootp::CLIENT_PORT),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, dhcp_common::bootp::SERVER_PORT),
        &packet::encode(msg),
    )
}

/// A client message from `mac` with client identifier 1 + MAC, of type `kind`.
#[must_use]
pub fn client_message(xid: u32, mac: [u8; 6], kind: MessageType) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, z, z, z, z, &mac);
    m.set_flags(dhcproto::v4::Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut().insert(DhcpOption::ClientIdentifier([&[1u8][..], &mac].concat()));
    m
}

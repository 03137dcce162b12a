//! DHCP sockets of one interface: a UDP socket on port 67 bound to the device (requests in,
//! routed and broadcast replies out) and an `AF_PACKET` socket for replies to clients that have
//! no address yet (RFC 2131 §4.1: unicast to yiaddr at chaddr, without ARP).
use std::{
    io,
    net::{Ipv4Addr, SocketAddrV4, UdpSocket as StdUdp},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result};
use dhcp_common::bootp::{CLIENT_PORT, SERVER_PORT};
use tokio::net::UdpSocket;

use crate::{
    packet::{self, L2},
    packet_socket::{self, PacketSocket, Protocol},
};

fn check(rc: libc::c_int, what: &str) -> Result<libc::c_int> {
    if rc < 0 {
        return Err(io::Error::last_os_error()).context(what.to_owned());
    }
    Ok(rc)
}

fn setopt<T>(fd: libc::c_int, level: i32, name: i32, v: &T, what: &str) -> Result<()> {
    // SAFETY: v points to a live T of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            std::ptr::from_ref(v).cast(),
            packet_socket::socklen_of::<T>(),
        )
    };
    check(rc, what).map(|_| ())
}

/// The UDP socket's receive buffer, asked for (see [`IfaceSockets::open`]).
const RCVBUF: libc::c_int = 4 << 20;

pub struct IfaceSockets {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// The interface's IPv4 address: selects the subnet of unrelayed requests.
    pub addr: Option<Ipv4Addr>,
    pub udp: UdpSocket,
    raw: PacketSocket,
}

impl IfaceSockets {
    /// Opens both sockets on `iface` in the calling thread's network namespace.
    pub fn open(iface: &str) -> Result<Self> {
        let c_name = std::ffi::CString::new(iface)?;
        let ifindex = packet_socket::ifindex(iface)?;
        let mac = crate::fastpath::interface_mac(iface)?;
        let addr = packet_socket::interface_addr(iface);

        // SAFETY: plain socket(2) calls; the fds are owned right away.
        let fd = check(
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) },
            "UDP socket",
        )?;
        // SAFETY: `check` let only a nonnegative result through: a new descriptor nothing else
        // owns.
        let udp_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one, "SO_REUSEADDR")?;
        setopt(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, &one, "SO_BROADCAST")?;
        // Nothing reads the socket while a turn commits (one thread: the reader waits for the
        // fsync), so the socket must hold a slow commit's worth of requests. The default
        // 212,992 bytes hold ~80 datagrams (~2.5 KiB each as the kernel counts them): 40 ms
        // at 1,000 DORA/s, and every one past them is dropped where the daemon cannot count it
        // or put requests before DISCOVERs. 4 MiB (the kernel doubles it) holds ~3,000.
        // FORCE passes net.core.rmem_max, which needs CAP_NET_ADMIN (the daemon has it for
        // XDP); without it the kernel caps the plain option at rmem_max. Best effort: a
        // smaller buffer only drops sooner.
        let rcvbuf: libc::c_int = RCVBUF;
        if setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf, "SO_RCVBUFFORCE").is_err() {
            let _ = setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf, "SO_RCVBUF");
        }
        // One socket per interface, all on 0.0.0.0:67: the device binding keeps them apart and
        // tells which interface a request came in on.
        let name_len = libc::socklen_t::try_from(c_name.as_bytes().len())
            .with_context(|| format!("interface name {iface:?}"))?;
        // SAFETY: the name buffer outlives the call and is name_len bytes long.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                c_name.as_ptr().cast(),
                name_len,
            )
        };
        check(rc, "SO_BINDTODEVICE")?;
        let std_udp = StdUdp::from(udp_fd);
        std_udp
            .set_nonblocking(true)
            .and_then(|()| bind_any(&std_udp))
            .with_context(|| format!("bind 0.0.0.0:67 on {iface}"))?;
        let udp = UdpSocket::from_std(std_udp)?;

        let raw = PacketSocket::open(iface, Protocol::SendOnly)?;
        raw.set_nonblocking(true).context("nonblocking AF_PACKET socket")?;
        Ok(Self { name: iface.to_owned(), ifindex, mac, addr, udp, raw })
    }

    pub async fn send_udp(&self, bytes: &[u8], to: SocketAddrV4) -> Result<()> {
        self.udp
            .send_to(bytes, to)
            .await
            .with_context(|| format!("send to {to} on {}", self.name))?;
        Ok(())
    }

    /// A whole frame to `mac`/`ip`:68 from our MAC and `src`:67, with no ARP.
    pub fn send_l2(&self, bytes: &[u8], src: Ipv4Addr, ip: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
        let frame = packet::udp_frame(
            &L2 { dst: mac, src: self.mac, vlans: vec![] },
            SocketAddrV4::new(src, SERVER_PORT),
            SocketAddrV4::new(ip, CLIENT_PORT),
            bytes,
        );
        self.raw.send(&frame).context("send an L2 frame")
    }
}

fn bind_any(s: &StdUdp) -> io::Result<()> {
    // SAFETY: sockaddr_in for 0.0.0.0:67.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "AF_INET is 2; libc types it as int, sockaddr_in as sa_family_t"
    )]
    let family = libc::AF_INET as libc::sa_family_t;
    sin.sin_family = family;
    sin.sin_port = SERVER_PORT.to_be();
    // SAFETY: bind(2) reads exactly size_of::<sockaddr_in>() bytes from a live local.
    let rc = unsafe {
        libc::bind(
            s.as_raw_fd(),
            (&raw const sin).cast(),
            packet_socket::socklen_of::<libc::sockaddr_in>(),
        )
    };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

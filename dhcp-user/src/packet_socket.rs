//! An `AF_PACKET` socket bound to one interface, and the interface lookups that go with it.
//!
//! The daemon sends replies to clients without an address through it (no ARP), the lab's
//! responder and raw sockets and the load generator send and watch whole frames with it. It
//! exists so that the `unsafe` of `sockaddr_ll`, ifreq and friends is written (and argued) once.
use std::{
    ffi::CString,
    io,
    mem::size_of,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    time::Duration,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad interface name {0:?}")]
    BadName(String),
    #[error("no interface {0} in this network namespace")]
    NoInterface(String),
    #[error("{what}")]
    Sys {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

fn sys(what: &'static str) -> Error {
    Error::Sys { what, source: io::Error::last_os_error() }
}

/// Which frames the socket receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// None: a send-only socket never queues a received frame, so it costs nothing to keep.
    SendOnly,
    /// Every IPv4 frame the interface receives or sends.
    Ipv4,
    /// Every frame the interface receives or sends, whatever its ethertype (`ETH_P_ALL`): what
    /// a bridge or the lab's access node forwards.
    All,
}

impl Protocol {
    /// The protocol in network byte order, as socket(2) and `sockaddr_ll` take it.
    fn be(self) -> u16 {
        match self {
            Protocol::SendOnly => 0,
            Protocol::Ipv4 => {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "ETH_P_IP is 0x0800; libc types it as int, the wire as 16 bits"
                )]
                let p = libc::ETH_P_IP as u16;
                p.to_be()
            }
            Protocol::All => {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "ETH_P_ALL is 0x0003; libc types it as int, the wire as 16 bits"
                )]
                let p = libc::ETH_P_ALL as u16;
                p.to_be()
            }
        }
    }
}

/// A frame taken off the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    /// Sent from this host: a packet socket sees the interface's outgoing frames too.
    pub outgoing: bool,
}

/// What the kernel knows of a received frame that its bytes do not say (`PACKET_AUXDATA`);
/// [`PacketSocket::recv_meta`] gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// The VLAN tag (TPID, TCI) the kernel took off the frame before the socket saw it: the
    /// stack (or the NIC's VLAN offload) untags a frame before packet sockets get it, so its
    /// bytes start with the inner ethertype. A TPID the kernel did not report is 802.1Q's.
    pub vlan: Option<(u16, u16)>,
    /// The transport checksum is not computed yet: the sender left it to checksum offload
    /// (`CHECKSUM_PARTIAL`, as a veth passes on a frame its namespace's stack sent), and the
    /// field holds only the pseudo header's sum. Whoever forwards the bytes must complete it.
    pub checksum_pending: bool,
}

/// A raw (whole-frame) packet socket bound to one interface. Frames are sent as given, link
/// header included, with checksums as the caller computed them.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    /// Opens the socket on `iface` of the calling thread's network namespace and binds it
    /// there, so sends leave from `iface` and only its frames are received.
    pub fn open(iface: &str, proto: Protocol) -> Result<Self, Error> {
        let ifindex = ifindex(iface)?;
        // SAFETY: socket(2) takes no pointers; a nonnegative result is a new descriptor that
        // nothing else owns, so OwnedFd may take it.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto.be()),
            )
        };
        if fd < 0 {
            return Err(sys("AF_PACKET socket"));
        }
        // SAFETY: see above; fd is valid and unowned.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut sll = sockaddr_ll(ifindex);
        sll.sll_protocol = proto.be();
        // SAFETY: bind(2) reads exactly size_of::<sockaddr_ll>() bytes from a live local.
        let rc = unsafe {
            libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), socklen_of::<libc::sockaddr_ll>())
        };
        if rc != 0 {
            return Err(sys("bind the AF_PACKET socket"));
        }
        Ok(Self { fd, ifindex })
    }

    #[must_use]
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl(2) F_GETFL/F_SETFL on a descriptor we own take and return plain ints.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// How long [`PacketSocket::recv`] waits for a frame (zero: forever).
    pub fn set_recv_timeout(&self, t: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(t.subsec_micros()),
        };
        setsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    /// The receive queue's size, past `net.core.rmem_max` (root only): a burst of replies
    /// must not overflow the default.
    pub fn force_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        let b = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        setsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &b)
    }

    /// Both queues' sizes, up to `net.core.{r,w}mem_max`.
    pub fn set_buffers(&self, bytes: usize) -> io::Result<()> {
        let b = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            setsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, opt, &b)?;
        }
        Ok(())
    }

    /// Frames go straight to the device driver, past the qdisc (`PACKET_QDISC_BYPASS`).
    pub fn bypass_qdisc(&self) -> io::Result<()> {
        let one: libc::c_int = 1;
        setsockopt(self.fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &one)
    }

    /// Sends one whole frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: send(2) reads frame.len() bytes from a slice that lives across the call;
        // the socket is bound, so it needs no address.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        match usize::try_from(n) {
            Ok(n) if n == frame.len() => Ok(()),
            Ok(_) => Err(io::Error::new(io::ErrorKind::WriteZero, "frame sent in part")),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }

    /// Sends up to `frames.len()` frames in one system call (sendmmsg); how many went (none
    /// when the socket is momentarily full).
    #[must_use]
    pub fn send_batch(&self, frames: &[&[u8]]) -> usize {
        let mut iov: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec { iov_base: f.as_ptr() as *mut _, iov_len: f.len() })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: mmsghdr is plain data (pointers and integers): all-zero is valid, a
                // message without name, control data or flags.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // Past c_uint::MAX frames the rest are simply not sent, as the return value allows.
        let count = libc::c_uint::try_from(msgs.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: every mmsghdr points at one iovec of `iov`, each at a frame of `frames`;
        // all outlive the call, and the kernel only reads the frames (the iov_base cast to
        // *mut is never written through). `count` is at most msgs.len().
        let n = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), count, 0) };
        usize::try_from(n).unwrap_or(0)
    }

    /// The next frame, waiting as [`PacketSocket::set_recv_timeout`] or
    /// [`PacketSocket::set_nonblocking`] say; `None` when none came (or a signal cut the
    /// wait short).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        // SAFETY: all-zero is a valid sockaddr_ll for recvfrom to fill.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = socklen_of::<libc::sockaddr_ll>();
        // SAFETY: recvfrom(2) writes at most buf.len() bytes into buf and at most `len` bytes
        // into sll, both live locals or borrows for the whole call.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&raw mut sll).cast(),
                &raw mut len,
            )
        };
        if let Ok(len) = usize::try_from(n) {
            return Ok(Some(Received { len, outgoing: sll.sll_pkttype == libc::PACKET_OUTGOING }));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(None)
            }
            _ => Err(e),
        }
    }

    /// Asks the kernel for each frame's [`Meta`], which [`PacketSocket::recv_meta`] reads.
    pub fn enable_auxdata(&self) -> io::Result<()> {
        let one: libc::c_int = 1;
        setsockopt(self.fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, &one)
    }

    /// [`PacketSocket::recv`] with what the kernel knows of the frame besides its bytes
    /// (after [`PacketSocket::enable_auxdata`]; without it, the default [`Meta`]).
    pub fn recv_meta(&self, buf: &mut [u8]) -> io::Result<Option<(Received, Meta)>> {
        // SAFETY: all-zero is a valid sockaddr_ll for recvmsg to fill.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // Room for one cmsghdr with a tpacket_auxdata (40 bytes on 64-bit), 8-byte aligned.
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain data (pointers and integers): all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut sll).cast();
        msg.msg_namelen = socklen_of::<libc::sockaddr_ll>();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: recvmsg(2) writes at most buf.len() bytes through the one iovec, at most
        // msg_namelen bytes into sll and msg_controllen bytes into control; all are live
        // locals or borrows for the whole call.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, 0) };
        let Ok(len) = usize::try_from(n) else {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        };
        let mut meta = Meta::default();
        // SAFETY: the CMSG_* helpers walk the control data recvmsg wrote into `control`,
        // bounded by msg_controllen as it set it; each header they return lies within it.
        let mut c = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
        while !c.is_null() {
            // SAFETY: c is a header within `control` (above).
            let h = unsafe { &*c };
            if h.cmsg_level == libc::SOL_PACKET && h.cmsg_type == libc::PACKET_AUXDATA {
                // SAFETY: a PACKET_AUXDATA message carries one tpacket_auxdata; the read is
                // unaligned because CMSG_DATA promises no alignment for it.
                let aux: libc::tpacket_auxdata =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        dhcp_common::bootp::ETH_P_8021Q
                    };
                    meta.vlan = Some((tpid, aux.tp_vlan_tci));
                }
                meta.checksum_pending = aux.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0;
            }
            // SAFETY: as above; null after the last header.
            c = unsafe { libc::CMSG_NXTHDR(&raw const msg, c) };
        }
        let r = Received { len, outgoing: sll.sll_pkttype == libc::PACKET_OUTGOING };
        Ok(Some((r, meta)))
    }

    /// Frames dropped because the receive queue was full, since the last call
    /// (`PACKET_STATISTICS` resets on read).
    #[must_use]
    pub fn drops(&self) -> u32 {
        // SAFETY: tpacket_stats is two integers; all-zero is valid.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = socklen_of::<libc::tpacket_stats>();
        // SAFETY: getsockopt(2) writes at most `len` bytes into the live local `st`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &raw mut len,
            )
        };
        if rc == 0 { st.tp_drops } else { 0 }
    }
}

fn sockaddr_ll(ifindex: u32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain integers and bytes; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "AF_PACKET is 17; libc types it as int, sockaddr_ll as unsigned short"
    )]
    let family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_family = family;
    // The kernel's ifindex is a positive int; if_nametoindex(3) hands it out as unsigned.
    sll.sll_ifindex = ifindex.cast_signed();
    sll
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: setsockopt(2) reads size_of::<T>() bytes from `v`, a live borrow; T is the
    // option's C type at every call site.
    let rc = unsafe {
        libc::setsockopt(fd, level, name, std::ptr::from_ref(v).cast(), socklen_of::<T>())
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `size_of::<T>()` as the length socket calls take with a struct.
#[must_use]
#[expect(
    clippy::cast_possible_truncation,
    reason = "T is a socket address or option struct, a few dozen bytes, far below u32::MAX"
)]
pub const fn socklen_of<T>() -> libc::socklen_t {
    size_of::<T>() as libc::socklen_t
}

/// The index of `iface` in the calling thread's network namespace.
pub fn ifindex(iface: &str) -> Result<u32, Error> {
    let name = CString::new(iface).map_err(|_| Error::BadName(iface.to_owned()))?;
    // SAFETY: if_nametoindex(3) reads the NUL-terminated string we own.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(Error::NoInterface(iface.to_owned())),
        i => Ok(i),
    }
}

/// An ifreq naming `iface`, and a datagram socket to ask the kernel about it with.
fn ifreq(iface: &str) -> Result<(OwnedFd, libc::ifreq), Error> {
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(Error::BadName(iface.to_owned()));
    }
    // SAFETY: socket(2) takes no pointers; a nonnegative result is a new, unowned descriptor.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(sys("socket for an interface ioctl"));
    }
    // SAFETY: see above.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is a name and a union of plain data; all-zero is valid, and it leaves the
    // name NUL-terminated (the length was checked above).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        // c_char is i8 or u8 depending on the target; the byte is the same either way.
        *d = libc::c_char::from_ne_bytes([*s]);
    }
    Ok((fd, req))
}

/// The interface's MAC, asked of the kernel in the calling thread's network namespace
/// (SIOCGIFHWADDR; sysfs would show the namespace it was mounted in instead).
pub fn interface_mac(iface: &str) -> Result<[u8; 6], Error> {
    let (fd, mut req) = ifreq(iface)?;
    // SAFETY: SIOCGIFHWADDR reads the name from and writes ifr_hwaddr into the ifreq, a live
    // local of the type the request expects.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &raw mut req) } != 0 {
        return Err(Error::NoInterface(iface.to_owned()));
    }
    // SAFETY: the ioctl succeeded, so the kernel wrote the hwaddr member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = u8::from_ne_bytes(s.to_ne_bytes());
    }
    Ok(mac)
}

/// The interface's primary IPv4 address, if it has one (SIOCGIFADDR).
#[must_use]
pub fn interface_addr(iface: &str) -> Option<Ipv4Addr> {
    let (fd, mut req) = ifreq(iface).ok()?;
    // SAFETY: SIOCGIFADDR reads the name from and writes ifr_addr into the ifreq, a live
    // local of the type the request expects.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFADDR, &raw mut req) } != 0 {
        return None;
    }
    // SAFETY: the ioctl succeeded, so the kernel wrote an AF_INET sockaddr (a sockaddr_in,
    // which has the size of sockaddr) into the addr member of the union.
    let sin: libc::sockaddr_in = unsafe { std::mem::transmute_copy(&req.ifr_ifru.ifru_addr) };
    Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_kernel_cannot_take_are_refused_before_any_call() {
        for bad in ["", "sixteen-bytes-xx", "a\0b"] {
            assert!(matches!(interface_mac(bad), Err(Error::BadName(_))), "{bad:?}");
        }
        assert!(matches!(ifindex("a\0b"), Err(Error::BadName(_))));
        assert!(interface_addr("").is_none());
    }

    #[test]
    fn loopback_is_found_in_every_namespace() {
        assert!(ifindex("lo").unwrap() > 0);
        assert_eq!(interface_mac("lo").unwrap(), [0; 6]);
        assert!(matches!(ifindex("xdhcp-none0"), Err(Error::NoInterface(_))));
    }
}

//! Header parsing up to the facts a renewal decision needs. Each step checks bounds and returns
//! the PASS reason that stops it.
use aya_ebpf::programs::XdpContext;
use dhcp_common::{
    Stat,
    bootp::{
        BOOTREQUEST, CHADDR, CIADDR, COOKIE, DHCPREQUEST, ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q,
        ETH_P_IP, FLAGS, GIADDR, HLEN, HTYPE, HTYPE_ETHER, IPPROTO_UDP, IPV4_HLEN, MAGIC_COOKIE,
        OP, OPT_CLIENT_ID, OPT_END, OPT_MAX_MESSAGE_SIZE, OPT_MESSAGE_TYPE, OPT_OVERLOAD, OPT_PAD,
        OPT_RELAY_AGENT, OPT_REQUESTED_IP, OPT_SERVER_ID, OPTIONS, SERVER_PORT, UDP_HLEN,
        VLAN_HLEN, XID,
    },
};

use dhcp_common::maps::RELAY_INFO_MAX;

use crate::ptr::{opaque, ptr_at, read, read_fixed};
use crate::scan::Scan;

/// The option scan stops (and passes) after this many options; a PAD-stuffed or hostile
/// options area cannot make the program loop long, and the verifier sees a bounded loop.
pub const MAX_OPTIONS: u32 = 64;
/// Options must end within this many bytes of the cookie.
const OPTIONS_SPAN: usize = 1024;
const _: () = assert!(OPTIONS_SPAN.is_power_of_two());

/// What the reply needs from a renewal request, all copied out of the frame: the frame is
/// resized before it is rewritten, which invalidates every packet pointer.
pub struct Renewal {
    /// Length of Ethernet + VLAN tags: the IPv4 header starts here.
    pub l2_len: usize,
    /// The VLAN tags (TPID and TCI) as they sit in the frame; only the first
    /// `(l2_len - 14) / 4` are meaningful.
    pub vlan: [u32; 2],
    pub src_mac: [u8; 6],
    pub chaddr: [u8; 6],
    /// The ACK's 16-byte chaddr field: the 6-byte address and zeroes, as the slow path writes
    /// it (dhcproto keeps `hlen` bytes), whatever the request's field had past them.
    pub chaddr_field: [u64; 2],
    pub flags: u16,
    pub ciaddr: [u8; 4],
    pub giaddr: [u8; 4],
    pub xid: [u8; 4],
    /// Offset in the frame of the option 61 value; 0 when the request has none.
    pub client_id_off: usize,
    pub client_id_len: usize,
    /// Offset in the frame of the option 82 value; 0 when the request has none.
    pub relay_off: usize,
    pub relay_len: usize,
    /// Offset in the frame of option 57's two-byte value; 0 when the request has none (or one
    /// of another length): the ACK may then be 576 bytes of IP at most.
    pub max_size_off: usize,
    /// The option scan's per-CPU scratch, where the option 82 value is loaded.
    pub scan: *mut Scan,
    /// The UDP payload's length (Ethernet padding excluded).
    pub bootp_len: usize,
}

#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Ethernet with up to two VLAN tags (802.1Q or 802.1ad); returns the L2 header length.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn ethernet(ctx: &XdpContext) -> Result<usize, Stat> {
    let mut off = ETH_HLEN;
    let mut proto = be16(read_fixed(ctx, 12)?);
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        proto = be16(read_fixed(ctx, off + 2)?);
        off += VLAN_HLEN;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            proto = be16(read_fixed(ctx, off + 2)?);
            off += VLAN_HLEN;
        }
    }
    if proto != ETH_P_IP {
        return Err(Stat::PassNotIpv4);
    }
    Ok(off)
}

/// Untagged IPv4 without options that is not UDP to port 67: most of a subscriber port's
/// traffic, told apart by one bounds check and three loads at fixed offsets. Anything else
/// (VLAN tags, IP options, short frames, UDP to 67) takes the full parse.
#[inline(always)]
pub fn plainly_not_dhcp(ctx: &XdpContext) -> bool {
    // Through the UDP destination port of an untagged frame.
    const NEEDED: usize = ETH_HLEN + IPV4_HLEN + 4;
    let p = ctx.data();
    if p + NEEDED > ctx.data_end() {
        return false;
    }
    // SAFETY: the NEEDED bytes were just checked.
    let (head, proto, port) = unsafe {
        (
            ((p + 12) as *const [u8; 4]).read_unaligned(),
            *((p + ETH_HLEN + 9) as *const u8),
            ((p + ETH_HLEN + IPV4_HLEN + 2) as *const [u8; 2]).read_unaligned(),
        )
    };
    // Ethertype, then version and header length: 08 00 45.
    let [t0, t1, vihl, _] = head;
    let v4 = ETH_P_IP.to_be_bytes();
    t0 == v4[0]
        && t1 == v4[1]
        && vihl == 0x45
        && (proto != IPPROTO_UDP || be16(port) != SERVER_PORT)
}

/// IPv4 without options and unfragmented, carrying UDP to port 67; returns the UDP payload
/// length (Ethernet padding after the IP packet is not part of it).
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn ipv4_udp67(ctx: &XdpContext, l2: usize) -> Result<usize, Stat> {
    let ip = ptr_at::<[u8; IPV4_HLEN + UDP_HLEN]>(ctx, l2)?;
    // SAFETY: ptr_at proved the bytes within the frame; a byte array needs no alignment.
    let ip = unsafe { &*ip };
    if ip[0] != 0x45 {
        return Err(if ip[0] >> 4 == 4 { Stat::PassIpOptions } else { Stat::PassNotIpv4 });
    }
    // The port before the fragment bits, as `plainly_not_dhcp` does: a later fragment's "port"
    // is payload, and whichever way it reads the fragment is passed.
    if ip[9] != IPPROTO_UDP || be16([ip[22], ip[23]]) != SERVER_PORT {
        return Err(Stat::PassNotDhcp);
    }
    // MF set or a nonzero fragment offset.
    if be16([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(Stat::PassFragment);
    }
    let total = usize::from(be16([ip[2], ip[3]]));
    let udp_len = usize::from(be16([ip[24], ip[25]]));
    if l2 + total > ctx.data_end() - ctx.data()
        || udp_len + IPV4_HLEN != total
        || udp_len < UDP_HLEN
    {
        return Err(Stat::PassTruncated);
    }
    Ok(udp_len - UDP_HLEN)
}

#[inline(always)]
#[expect(clippy::cast_possible_truncation, reason = "BPF is a 64-bit target")]
pub fn renewal(ctx: &XdpContext) -> Result<Renewal, Stat> {
    // Whole-field loads: indexing byte by byte costs a load, a spill and a shift per byte.
    fn field<T: Copy>(hdr: &[u8; OPTIONS], o: usize) -> T {
        // SAFETY: callers pass fixed BOOTP offsets whose fields end within the header.
        unsafe { hdr.as_ptr().add(o).cast::<T>().read_unaligned() }
    }
    let l2_len = ethernet(ctx)?;
    let bootp_len = ipv4_udp67(ctx, l2_len)?;
    if bootp_len < OPTIONS {
        return Err(Stat::PassTruncated);
    }
    let bootp = l2_len + IPV4_HLEN + UDP_HLEN;
    // SAFETY: ptr_at proved the bytes within the frame; a byte array needs no alignment.
    let hdr = unsafe { &*ptr_at::<[u8; OPTIONS]>(ctx, bootp)? };
    if hdr[OP] != BOOTREQUEST
        || hdr[HTYPE] != HTYPE_ETHER
        || hdr[HLEN] != 6
        || hdr[COOKIE..OPTIONS] != MAGIC_COOKIE
    {
        return Err(Stat::PassNotBootRequest);
    }
    let vlan = match l2_len {
        ETH_HLEN => [0, 0],
        18 => [read_fixed(ctx, 12)?, 0],
        _ => [read_fixed(ctx, 12)?, read_fixed(ctx, 16)?],
    };
    let mut r = Renewal {
        l2_len,
        vlan,
        src_mac: read(ctx, 6)?,
        chaddr_field: [field::<u64>(hdr, CHADDR) & 0xffff_ffff_ffff, 0],
        flags: field(hdr, FLAGS),
        chaddr: field(hdr, CHADDR),
        ciaddr: field(hdr, CIADDR),
        giaddr: field(hdr, GIADDR),
        xid: field(hdr, XID),
        client_id_off: 0,
        client_id_len: 0,
        relay_off: 0,
        relay_len: 0,
        max_size_off: 0,
        scan: core::ptr::null_mut(),
        bootp_len,
    };
    let scan = options(ctx, bootp + OPTIONS, bootp_len - OPTIONS)?;
    let msg_type_off = scan.msg_type_off as usize;
    if msg_type_off == 0 || read::<u8>(ctx, msg_type_off & 0xfff)? != DHCPREQUEST {
        return Err(Stat::PassNotRequest);
    }
    if scan.slow != 0 || r.ciaddr == [0; 4] {
        return Err(Stat::PassNotRenewal);
    }
    r.client_id_off = scan.client_id_off as usize & 0xfff;
    r.client_id_len = scan.client_id_len as usize & 0xff;
    r.relay_off = scan.relay_off as usize & 0xfff;
    r.relay_len = scan.relay_len as usize & 0xff;
    // One of another length than two is read as none (576 bytes).
    let max_size = scan.max_size;
    r.max_size_off = if max_size >> 32 == 2 { max_size as usize & 0xfff } else { 0 };
    if r.relay_off != 0 && r.relay_len > RELAY_INFO_MAX {
        return Err(Stat::PassRelayInfoLong);
    }
    r.scan = scan;
    Ok(r)
}

/// Walks the `len` bytes of options once, recording only offsets. Every option must end before
/// the next iteration starts inside `len`, so an option running past the UDP payload is
/// truncation, whatever bytes follow it in the frame.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn options(ctx: &XdpContext, start: usize, len: usize) -> Result<&'static mut Scan, Stat> {
    let scan = crate::maps::XDHCP_SCAN.get_ptr_mut(0).ok_or(Stat::PassOptionCap)?;
    // SAFETY: a per-CPU slot, used by this program run only.
    let scan = unsafe { &mut *scan };
    // SAFETY: `f` is a reference, so valid and aligned for the write.
    let put = |f: &mut u64, v: u64| unsafe { core::ptr::write_volatile(f, v) };
    put(&mut scan.msg_type_off, 0);
    put(&mut scan.slow, 0);
    put(&mut scan.requested_off, 0);
    put(&mut scan.client_id_off, 0);
    put(&mut scan.client_id_len, 0);
    put(&mut scan.relay_off, 0);
    put(&mut scan.relay_len, 0);
    put(&mut scan.max_size, 0);
    let mut o: usize = 0;
    let mut i = 0;
    while i < MAX_OPTIONS {
        i += 1;
        let rel = opaque(o);
        if rel >= len {
            return Err(Stat::PassTruncated);
        }
        if rel >= OPTIONS_SPAN {
            return Err(Stat::PassOptionCap);
        }
        // A no-op mask at run time, but it makes the verifier forget how far this path has
        // advanced: every path reaches the next iteration with the same offset range, and
        // states prune instead of multiplying. Through the stack (`black_box`), not
        // `opaque`: with the register barrier here the verifier passed its 1 M limit.
        o = core::hint::black_box(rel) & (OPTIONS_SPAN - 1);
        let at = start + o;
        // END and PAD have no length byte; END may be the frame's last byte.
        let code = read::<u8>(ctx, at)?;
        if code == OPT_END {
            return Ok(scan);
        }
        if code == OPT_PAD {
            o += 1;
            continue;
        }
        let len = read::<u8>(ctx, at + 1)?;
        // A repeated 53 or 61 would be concatenated by an RFC 3396 reader: too unusual to
        // answer here, so a second copy sends the request to the slow path.
        // SAFETY: `f` is a reference, so valid and aligned for the read.
        let seen = |f: &u64| unsafe { core::ptr::read_volatile(f) };
        match code {
            OPT_MESSAGE_TYPE => {
                let again = seen(&scan.slow) | seen(&scan.msg_type_off);
                put(&mut scan.slow, again);
                put(&mut scan.msg_type_off, if len == 1 { (at + 2) as u64 } else { 0 });
            }
            // Not renewals; option 50 is kept for policing (`police::known`).
            OPT_REQUESTED_IP => {
                put(&mut scan.slow, 1);
                put(&mut scan.requested_off, if len == 4 { (at + 2) as u64 } else { 0 });
            }
            OPT_SERVER_ID | OPT_OVERLOAD => {
                put(&mut scan.slow, 1);
            }
            // Echoed byte for byte if it is the one on record (a second instance would be
            // concatenated, RFC 3396: the slow path's).
            OPT_RELAY_AGENT => {
                let again = seen(&scan.slow) | seen(&scan.relay_off);
                put(&mut scan.slow, again);
                put(&mut scan.relay_off, (at + 2) as u64);
                put(&mut scan.relay_len, u64::from(len));
            }
            // Read only where the ACK would be longer than 576 bytes (`reply::renew`).
            OPT_MAX_MESSAGE_SIZE => {
                let again = seen(&scan.slow) | seen(&scan.max_size);
                put(&mut scan.slow, again);
                put(&mut scan.max_size, (at + 2) as u64 | u64::from(len) << 32);
            }
            OPT_CLIENT_ID => {
                let again = seen(&scan.slow) | seen(&scan.client_id_off);
                put(&mut scan.slow, again);
                put(&mut scan.client_id_off, (at + 2) as u64);
                put(&mut scan.client_id_len, u64::from(len));
            }
            _ => {}
        }
        o += 2 + len as usize;
    }
    Err(Stat::PassOptionCap)
}

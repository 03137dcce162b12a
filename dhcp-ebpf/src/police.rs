//! Policing of what the renewal path passed (`dhcp_common::police`): a message to port 67 that is
//! not a renewal of a lease held here for its sender is charged to its buckets, and dropped when
//! one of them is empty. Only after `reply::renew` has refused the frame, so an answered renewal
//! never pays for it.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps::{LruHashMap, lpm_trie::Key},
    helpers::generated::{bpf_ktime_get_ns, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use dhcp_common::{
    Stat,
    bootp::{CHADDR, CIADDR, ETH_HLEN, GIADDR, IPPROTO_UDP, IPV4_HLEN, SERVER_PORT, UDP_HLEN},
    police::{Bucket, MacKey, PORT_KEY_BYTES, PortKey, Rate, vlan_key},
};

use crate::{
    maps::{
        XDHCP_POLICED_IFACE, XDHCP_POLICED_MACS, XDHCP_POLICED_PORTS, XDHCP_POLICED_VLANS,
        XDHCP_POLICIES, XDHCP_POLICY_OF, XDHCP_SCAN,
    },
    parse,
    ptr::read,
    reply,
};

/// What the renewal path's verdict says of the frame: a DHCP message whose every key is known
/// (its options were walked to the end), one to port 67 it could not read through (only the
/// interface is charged: keys read from garbage would be garbage), or nothing to police (not
/// for the server, or a renewal of a lease held for its very client that XDP could not answer).
enum Charge {
    Keys,
    Interface,
}

/// `Ok`: pass the frame on. `Err`: drop it, counted under the returned reason.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn admit(ctx: &XdpContext, verdict: Stat) -> Result<(), Stat> {
    let charge = match verdict {
        Stat::PassNotRequest
        | Stat::PassNotRenewal
        | Stat::PassUnknownLease
        | Stat::PassChaddrMismatch
        | Stat::PassClientIdMismatch
        | Stat::PassRelayInfoLong => Charge::Keys,
        Stat::PassTruncated
        | Stat::PassNotBootRequest
        | Stat::PassOptionCap
        | Stat::PassIpOptions
        | Stat::PassFragment => Charge::Interface,
        _ => return Ok(()),
    };
    // SAFETY: a helper without arguments, allowed in XDP.
    let now = unsafe { bpf_ktime_get_ns() };
    let charged = match charge {
        Charge::Keys => by_keys(ctx, now)?,
        Charge::Interface => to_server_port(ctx),
    };
    if !charged {
        return Ok(());
    }
    let Some(iface) = XDHCP_POLICED_IFACE.get_ptr_mut(0) else { return Ok(()) };
    // SAFETY: the map's value pointer, valid and aligned; other CPUs may race on it, which
    // only lets a message more through.
    let iface = unsafe { &mut *iface };
    let rate = iface.rate;
    if rate.is_on() && !spend(&mut iface.bucket, &rate, now) {
        return Err(Stat::DropPolicedInterface);
    }
    Ok(())
}

/// The buckets of a message the option scan read to its end: its MAC, its access port, its
/// VLAN, by the policy of the subnet its relay (or the link) is in. `Ok(false)`: a message of a
/// client known here, charged to nothing (not even the interface).
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn by_keys(ctx: &XdpContext, now: u64) -> Result<bool, Stat> {
    let Ok(l2) = parse::ethernet(ctx) else { return Ok(false) };
    let bootp = l2 + IPV4_HLEN + UDP_HLEN;
    let (Ok(mac), Ok(ciaddr), Ok(giaddr)) = (
        read::<[u8; 6]>(ctx, bootp + CHADDR),
        read::<[u8; 4]>(ctx, bootp + CIADDR),
        read::<[u8; 4]>(ctx, bootp + GIADDR),
    ) else {
        return Ok(true);
    };
    let Some(scan) = XDHCP_SCAN.get_ptr(0) else { return Ok(true) };
    // SAFETY: this CPU's scan value, filled for this frame by the scan that just ran to END.
    let (requested_off, relay_off, relay_len) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*scan).requested_off),
            core::ptr::read_volatile(&raw const (*scan).relay_off),
            core::ptr::read_volatile(&raw const (*scan).relay_len),
        )
    };
    if known(ctx, mac, ciaddr, requested_off) {
        return Ok(false);
    }
    let idx = XDHCP_POLICY_OF.get(&Key::new(32, giaddr)).copied().unwrap_or(0);
    let Some(policy) = XDHCP_POLICIES.get(idx) else { return Ok(true) };
    if policy.mac.is_on() {
        let key = MacKey { mac, _pad: [0; 2] };
        if !charge(&XDHCP_POLICED_MACS, &key, &policy.mac, now) {
            return Err(Stat::DropPolicedMac);
        }
    }
    let relay_len = (relay_len & 0xff) as u32;
    if policy.port.is_on() && relay_off != 0 && relay_len != 0 {
        let mut key = core::mem::MaybeUninit::<PortKey>::uninit();
        let key = port_key(ctx, &mut key, giaddr, relay_off, relay_len);
        if let Some(key) = key
            && !charge(&XDHCP_POLICED_PORTS, key, &policy.port, now)
        {
            return Err(Stat::DropPolicedPort);
        }
    }
    if policy.vlan.is_on() && l2 > ETH_HLEN {
        let tci = |at: usize| read::<[u8; 2]>(ctx, at).map_or(0, u16::from_be_bytes);
        let key = if l2 == ETH_HLEN + 4 {
            vlan_key(1, tci(ETH_HLEN), 0)
        } else {
            vlan_key(2, tci(ETH_HLEN), tci(ETH_HLEN + 4))
        };
        if !charge(&XDHCP_POLICED_VLANS, &key, &policy.vlan, now) {
            return Err(Stat::DropPolicedVlan);
        }
    }
    Ok(true)
}

/// Whether the address the message is about (ciaddr, else option 50) is leased here to this
/// MAC: a client rebooting or re-requesting its own lease is never policed (after an OLT's
/// power cut, every CPE's INIT-REBOOT REQUEST is one of these).
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn known(ctx: &XdpContext, mac: [u8; 6], ciaddr: [u8; 4], requested_off: u64) -> bool {
    #[expect(clippy::cast_possible_truncation, reason = "masked to 12 bits")]
    let addr = if ciaddr != [0; 4] {
        ciaddr
    } else if requested_off != 0 {
        match read::<[u8; 4]>(ctx, requested_off as usize & 0xfff) {
            Ok(a) => a,
            Err(_) => return false,
        }
    } else {
        return false;
    };
    let Some(p) = reply::slot(u32::from_be_bytes(addr)) else { return false };
    // SAFETY: the lease map's value pointer (non-null), valid and aligned; a torn copy fails
    // `holds`.
    let lease = unsafe { *p };
    lease.holds(addr) && lease.chaddr == mac
}

/// The access port's key: the relay and the option 82 value's first bytes, zero past them.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn port_key<'k>(
    ctx: &XdpContext,
    key: &'k mut core::mem::MaybeUninit<PortKey>,
    giaddr: [u8; 4],
    relay_off: u64,
    relay_len: u32,
) -> Option<&'k PortKey> {
    // Word by word (the key is 4-aligned, and unaligned 8-byte stores are allowed on BPF), and
    // volatile: LLVM turns a plain loop of stores into a call to the byte-at-a-time memset.
    let words = key.as_mut_ptr().cast::<[u8; 8]>();
    let mut i = 0;
    while i < size_of::<PortKey>() / 8 {
        // SAFETY: `i` is below the key's words (its size is a multiple of 8); `[u8; 8]` needs
        // no alignment.
        unsafe { words.add(i).write_volatile([0; 8]) };
        i += 1;
    }
    // SAFETY: every byte was written just above; all-zero is a valid `PortKey`.
    let key = unsafe { key.assume_init_mut() };
    key.giaddr = giaddr;
    key.len = relay_len;
    let n = crate::ptr::opaque((relay_len as usize).min(PORT_KEY_BYTES));
    if n == 0 || n > PORT_KEY_BYTES {
        return None;
    }
    #[expect(clippy::cast_possible_truncation, reason = "masked to 12 bits; n <= PORT_KEY_BYTES")]
    // SAFETY: writes n bytes (1..=PORT_KEY_BYTES, checked) into the key's value; the helper
    // checks offset and length against the frame and fails rather than read past it.
    let rc = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            (relay_off & 0xfff) as u32,
            key.value.as_mut_ptr().cast(),
            n as u32,
        )
    };
    (rc == 0).then_some(key)
}

/// Charges `key`'s bucket (made full if the LRU has none); false: it was empty.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn charge<K, const N: usize>(
    map: &LruHashMap<K, Bucket, N>,
    key: &K,
    rate: &Rate,
    now: u64,
) -> bool {
    if let Some(b) = map.get_ptr_mut(key) {
        // SAFETY: the map's value pointer, valid and aligned; racing CPUs only let more through.
        return spend(unsafe { &mut *b }, rate, now);
    }
    // A new bucket is full: its first message passes. Field by field and volatile, or LLVM
    // clears the zero fields with a call to the byte-at-a-time memset.
    let tat = rate.charge(0, now).unwrap_or(now);
    let mut fresh = core::mem::MaybeUninit::<Bucket>::uninit();
    let b = fresh.as_mut_ptr();
    // SAFETY: `b` points at the local, aligned for a `Bucket`; every field is written.
    let fresh = unsafe {
        core::ptr::write_volatile(&raw mut (*b).tat_ns, tat);
        core::ptr::write_volatile(&raw mut (*b).passed, 1);
        core::ptr::write_volatile(&raw mut (*b).dropped, 0);
        core::ptr::write_volatile(&raw mut (*b).last_drop_ns, 0);
        fresh.assume_init_ref()
    };
    // Another CPU may have made it meanwhile: its bucket stands.
    let _ = map.insert(key, fresh, u64::from(BPF_NOEXIST));
    true
}

#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn spend(b: &mut Bucket, rate: &Rate, now: u64) -> bool {
    if let Some(tat) = rate.charge(b.tat_ns, now) {
        b.tat_ns = tat;
        b.passed += 1;
        true
    } else {
        b.dropped += 1;
        b.last_drop_ns = now;
        false
    }
}

/// Whether a frame the renewal path could not read through is UDP to port 67 (IP options and
/// first fragments included): only those reach the server, and only those are charged.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn to_server_port(ctx: &XdpContext) -> bool {
    let Ok(l2) = parse::ethernet(ctx) else { return false };
    let Ok(ip) = read::<[u8; IPV4_HLEN]>(ctx, l2) else { return false };
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    // A later fragment carries no UDP header: the stack cannot deliver it without the first.
    if ip[0] >> 4 != 4 || ihl < IPV4_HLEN || ip[9] != IPPROTO_UDP || ip[7] != 0 || ip[6] & 0x1f != 0
    {
        return false;
    }
    read::<[u8; 2]>(ctx, l2 + ihl + 2).is_ok_and(|p| u16::from_be_bytes(p) == SERVER_PORT)
}

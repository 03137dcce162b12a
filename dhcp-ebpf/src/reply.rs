//! The decision (may this renewal be answered here?) and the in-place rewrite into a DHCPACK.
use aya_ebpf::{
    helpers::generated::{
        bpf_get_smp_processor_id, bpf_jiffies64, bpf_xdp_adjust_head, bpf_xdp_adjust_tail,
        bpf_xdp_load_bytes,
    },
    programs::XdpContext,
};
use dhcp_common::{
    Control, LeaseEntry, LogCursor, RenewEvent, ReplyProfile, Stat,
    bootp::{
        BOOTREPLY, CHADDR, CIADDR, CLIENT_PORT, COOKIE, ETH_HLEN, ETH_P_IP, GIADDR, HTYPE_ETHER,
        IPPROTO_UDP, IPV4_HLEN, MAGIC_COOKIE, OP, OPT_END, OPT_RELAY_AGENT, OPTIONS, SECS,
        SERVER_PORT, SIADDR, SNAME, UDP_HLEN, VLAN_HLEN, XID, YIADDR,
    },
    digest::{ClientIdWords, RELAY_SEED, RelaySlot, client_id_words, relay_factor, relay_finish},
    layout,
    maps::{BLOCK_SLOTS, CLIENT_ID_MAX, PROFILE_LONG_OPTS_LEN, PROFILE_OPTS_LEN, RELAY_INFO_MAX},
};

use crate::{
    csum,
    maps::{
        XDHCP_BLOCKS, XDHCP_CONTROL, XDHCP_LEASES, XDHCP_LOG, XDHCP_LOG_CURSORS, XDHCP_LOG_SLOTS,
        XDHCP_PAGES, XDHCP_PROFILES,
    },
    parse::{self, Renewal},
    ptr::{ptr_at, ptr_at_mut, read},
};

const NS_PER_SEC: u64 = 1_000_000_000;
// The profile block is copied in whole words.
const _: () =
    assert!(PROFILE_OPTS_LEN.is_multiple_of(8) && PROFILE_LONG_OPTS_LEN.is_multiple_of(8));

/// Answers the frame as a DHCPACK (Ok: the caller returns `XDP_TX`) or says why not (the frame is
/// then untouched and passed).
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn renew(ctx: &XdpContext) -> Result<(), Stat> {
    let req = parse::renewal(ctx)?;
    let ctl: Control = *XDHCP_CONTROL.get(0).ok_or(Stat::PassDisabled)?;
    if ctl.enabled == 0 {
        return Err(Stat::PassDisabled);
    }
    let lease_ptr = slot(u32::from_be_bytes(req.ciaddr)).ok_or(Stat::PassUnknownLease)?;
    // SAFETY: `slot` hands the lease map's value pointer (non-null: the lookup returned it),
    // valid and aligned for a `LeaseEntry`. Userspace may be rewriting it through the mmap; a
    // torn copy is refused by `holds` just below.
    let lease: LeaseEntry = unsafe { *lease_ptr };
    // An empty slot, another address's, or one read while userspace rewrote it.
    if !lease.holds(req.ciaddr) {
        return Err(Stat::PassUnknownLease);
    }
    if lease.chaddr != req.chaddr {
        return Err(Stat::PassChaddrMismatch);
    }
    // Zeroed where it lives: a zeroed value moved into place becomes a call to the BPF memset,
    // which stores one byte per iteration.
    let mut client_id = core::mem::MaybeUninit::<ClientIdWords>::uninit();
    let client_id = zero_words(&mut client_id);
    check_client_id(ctx, &req, &lease, client_id)?;
    // A renewal without option 82 is answered as the slow path answers it, whatever the lease
    // was bound with; one with option 82 only if it is, byte for byte, the one on record.
    let relay = if req.relay_off != 0 { Some(load_relay_info(ctx, &req, &lease)?) } else { None };
    let profile: &ReplyProfile = XDHCP_PROFILES.get(lease.profile).ok_or(Stat::PassNoProfile)?;
    if profile.enabled == 0 {
        return Err(Stat::PassNoProfile);
    }
    // Every ACK fits the 576 bytes every client accepts but a long profile's echoing option
    // 82, which only a client that allows more (option 57) gets from here; the slow path fits
    // its reply to what the client allows.
    let long_block = profile.flags & ReplyProfile::F_LONG != 0;
    if long_block && relay.is_some() && max_reply_ip_len(ctx, &req)? < layout::LONG_RELAY_IP_LEN {
        return Err(Stat::PassReplyTooLong);
    }

    // CLOCK_MONOTONIC from jiffies (inlined to a load) rather than bpf_ktime_get_coarse_ns (a
    // call, a tenth of the renewal); no calibrated clock, no renewals.
    // SAFETY: a helper without arguments, allowed in XDP.
    let now = ctl.clock.now_ns(unsafe { bpf_jiffies64() }).ok_or(Stat::PassDisabled)?;
    let left = lease.grant_until_ns.saturating_sub(now) / NS_PER_SEC;
    #[expect(clippy::cast_possible_truncation, reason = "left < lease_secs, a u32, when cast")]
    let granted = if left < u64::from(lease.lease_secs) { left as u32 } else { lease.lease_secs };
    let floor = ctl.min_grant_secs.max(Control::MIN_GRANT_FLOOR).max(profile.t1_secs);
    if granted < floor {
        return Err(Stat::PassGrantTooShort);
    }
    let times = Times {
        lease: granted,
        t1: profile.t1_secs.min(granted / 2),
        t2: profile.t2_secs.min(granted - granted / 8),
    };

    // Claim the event's slot before touching the frame: an ACK userspace would not hear about
    // must not be sent.
    let log = if ctl.flags & Control::F_EVENTS != 0 {
        Some(log_slot().ok_or(Stat::PassEventLogFull)?)
    } else {
        None
    };
    // One copy of the rewrite per length, each with its lengths as constants: chosen at run
    // time, they cost the ordinary renewal 7-16 ns (paired; 24-51 over 1 M leases).
    // An ACK echoing option 82 has a length of its own (layout::RELAY_IP_LEN), and so has one
    // with the long block, with and without option 82; a full-size request answered from a
    // long profile is shrunk to its ACK rather than given a copy of its own (no client seen
    // sends one).
    let (p, id, t) = (profile, client_id, &times);
    match (long_block, relay) {
        (false, None) if req.bootp_len == layout::FULL_BOOTP_LEN => {
            rewrite::<true, false, false>(ctx, &req, &ctl, p, id, t, &EMPTY_RELAY)?;
        }
        (false, None) => rewrite::<false, false, false>(ctx, &req, &ctl, p, id, t, &EMPTY_RELAY)?,
        (false, Some(relay)) => rewrite::<false, true, false>(ctx, &req, &ctl, p, id, t, relay)?,
        (true, None) => rewrite::<false, false, true>(ctx, &req, &ctl, p, id, t, &EMPTY_RELAY)?,
        (true, Some(relay)) => rewrite::<false, true, true>(ctx, &req, &ctl, p, id, t, relay)?,
    }

    // SAFETY: `lease_ptr` is the lease map's value pointer, non-null and aligned (read above);
    // userspace reads these two fields, and writes them only when it replaces the whole entry.
    unsafe {
        (*lease_ptr).renewed_at_ns = now;
        (*lease_ptr).renewed_secs = granted;
    }
    if let Some((cursor, head, slot)) = log {
        const _: () = assert!(size_of::<RenewEvent>() == 32);
        // Plain stores, in this order: the event, then the head that hands it to userspace.
        // No lock and no atomic, unlike a ring buffer's reserve and submit: the region is this
        // CPU's alone, and XDP does not migrate mid-run.
        //
        // The event goes in as four words, laid out as `RenewEvent` (little-endian): built as
        // a struct, its padding became a call to the byte-wise BPF memset.
        let words: [u64; 4] = [
            now,
            u64::from(u32::from_ne_bytes(req.ciaddr)) | u64::from(granted) << 32,
            u64::from(u16::from_ne_bytes([req.chaddr[0], req.chaddr[1]]))
                | u64::from(u32::from_ne_bytes([
                    req.chaddr[2],
                    req.chaddr[3],
                    req.chaddr[4],
                    req.chaddr[5],
                ])) << 16,
            0,
        ];
        let slot = slot.cast::<u64>();
        // SAFETY: `slot` and `cursor` are map value pointers, non-null (checked in `log_slot`)
        // and 8-aligned (mmapable arrays' values start on a page); the event is four words
        // (asserted above), and both are this CPU's, which XDP does not leave mid-run.
        unsafe {
            let mut k = 0;
            while k < 4 {
                slot.add(k).write_volatile(words[k]);
                k += 1;
            }
            (&raw mut (*cursor).head).write_volatile(head + 1);
        }
    }
    Ok(())
}

/// This CPU's cursor, its head, and the slot the next event goes to; `None` while the region
/// is full (userspace has not read far enough) or the maps are smaller than this CPU's index.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn log_slot() -> Option<(*mut LogCursor, u64, *mut RenewEvent)> {
    let slots = XDHCP_LOG_SLOTS.load();
    if slots == 0 || slots & (slots - 1) != 0 {
        return None;
    }
    // SAFETY: a helper without arguments, allowed in XDP.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let cursor = XDHCP_LOG_CURSORS.get_ptr_mut(cpu)?;
    // SAFETY: `cursor` is non-null (the lookup returned it) and points to this CPU's
    // `LogCursor`, aligned; volatile because userspace moves `tail` through the mmap.
    let (head, tail) = unsafe {
        ((&raw const (*cursor).head).read_volatile(), (&raw const (*cursor).tail).read_volatile())
    };
    if head.wrapping_sub(tail) >= u64::from(slots) {
        return None;
    }
    #[expect(clippy::cast_possible_truncation, reason = "only the bits under `slots - 1` are kept")]
    let at = cpu.wrapping_mul(slots) | (head as u32 & (slots - 1));
    Some((cursor, head, XDHCP_LOG.get_ptr_mut(at)?))
}

/// The lease slot of an address, through its /16's page and its /24's block; `None` when either
/// has none. Each value is 1 + an index so that 0 means unset.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub(crate) fn slot(ip: u32) -> Option<*mut LeaseEntry> {
    let page = *XDHCP_PAGES.get(ip >> 16)?;
    // Out-of-range indexes (a value read mid-write) are refused by the array lookups.
    let block_at = page.checked_sub(1)?.wrapping_mul(BLOCK_SLOTS).wrapping_add((ip >> 8) & 0xff);
    let base = XDHCP_BLOCKS.get(block_at)?.checked_sub(1)?;
    XDHCP_LEASES.get_ptr_mut(base.wrapping_add(ip & 0xff))
}

/// A lease bound with a client identifier is renewed only for that identifier, and a lease bound
/// without one only for requests without one; anything else is the slow path's call.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn check_client_id(
    ctx: &XdpContext,
    req: &Renewal,
    lease: &LeaseEntry,
    words: &mut ClientIdWords,
) -> Result<(), Stat> {
    let bound = lease.flags & LeaseEntry::F_CLIENT_ID != 0;
    if req.client_id_off == 0 {
        return if bound { Err(Stat::PassClientIdMismatch) } else { Ok(()) };
    }
    let len = crate::ptr::opaque(req.client_id_len);
    if !bound || len == 0 || len > CLIENT_ID_MAX {
        return Err(Stat::PassClientIdMismatch);
    }
    // The 32 bytes from the identifier's start are read straight from the frame when the frame
    // has them (bytes past the identifier, other options or padding, are masked off), saving
    // a helper call and its copy; an identifier at the very end of a short frame is copied
    // into the zeroed buffer with bpf_xdp_load_bytes.
    if let Ok(p) = ptr_at::<ClientIdWords>(ctx, req.client_id_off) {
        let mut k = 0;
        while k < words.len() {
            // SAFETY: ptr_at proved the identifier's 32 bytes from `p` within the frame, and
            // `k` is below their 4 words; the read is unaligned.
            let w = unsafe { p.cast::<u64>().add(k).read_unaligned() };
            let n = len.saturating_sub(8 * k).min(8);
            words[k] = if n == 8 { w } else { w & ((1u64 << (8 * n)) - 1) };
            k += 1;
        }
    } else {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "the offset is masked to 12 bits in parse::renewal, the length to 6 here"
        )]
        // SAFETY: writes `len` bytes, 1..=CLIENT_ID_MAX (checked above), into the
        // CLIENT_ID_MAX-byte buffer; the helper checks offset and length against the frame
        // itself and fails (rc) rather than read past it.
        let rc = unsafe {
            bpf_xdp_load_bytes(
                ctx.ctx,
                req.client_id_off as u32,
                words.as_mut_ptr().cast(),
                (len & 0x3f) as u32,
            )
        };
        if rc != 0 {
            return Err(Stat::PassTruncated);
        }
    }
    #[expect(clippy::cast_possible_truncation, reason = "len <= CLIENT_ID_MAX, checked above")]
    if client_id_words(words, len as u32) != lease.client_id_digest {
        return Err(Stat::PassClientIdMismatch);
    }
    Ok(())
}

/// What a rewrite without option 82 is handed for it (and never reads).
static EMPTY_RELAY: RelaySlot = [0; layout::RELAY_SLOT_WORDS];

/// The request's option 82 value, loaded as zero-padded words into the scan's scratch, if the
/// lease has that very value on record (its digest); otherwise the reason it is the slow
/// path's. The words are read straight from the frame where it has them, else copied with
/// `bpf_xdp_load_bytes` (option 82 last in an unpadded request).
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn load_relay_info(
    ctx: &XdpContext,
    req: &Renewal,
    lease: &LeaseEntry,
) -> Result<&'static RelaySlot, Stat> {
    if lease.flags & LeaseEntry::F_RELAY_INFO == 0 {
        return Err(if lease.flags & LeaseEntry::F_RELAY_SLOW != 0 {
            Stat::PassRelayInfoUnsupported
        } else {
            Stat::PassRelayInfoMismatch
        });
    }
    // SAFETY: the scan's per-CPU value (non-null: `parse::renewal` got it from the map), used
    // by this program run only. Volatile throughout: what goes through map memory is what the
    // verifier forgets, so that the paths through the loop below (each knowing a little more
    // of the length) meet again as one state after it.
    let scan = unsafe { &mut *req.scan };
    // SAFETY: `f` is a reference into the scan, valid and aligned.
    let put = |f: &mut u64, v: u64| unsafe { core::ptr::write_volatile(f, v) };
    // SAFETY: as above.
    let get = |f: &u64| unsafe { core::ptr::read_volatile(f) };
    let len = req.relay_len & 0xff;
    // The slot is built as the value is read, each word shifted in two bytes behind code and
    // length (`layout::relay_word` says the same, word by word, and builds it where the value
    // had to be copied): zeroes, the head, then per word of the value (the last masked past
    // its end) the slot word it completes and the two bytes it carries into the next. A word
    // the frame does not have marks the copy for the helper instead.
    put(&mut scan.relay_copy, 0);
    let mut j = 0;
    while j < layout::RELAY_SLOT_WORDS {
        put(&mut scan.slot[j], 0);
        j += 1;
    }
    // Each word completed is added to the digest's sum of products and to the checksum's sum;
    // the scan also holds both as they would be with the word carried so far, so that nothing
    // the loop counts is needed after it.
    let half = |v: u64| (v & 0xffff_ffff) + (v >> 32);
    let mut carry = u64::from(OPT_RELAY_AGENT) | (len as u64) << 8;
    let (mut acc, mut sum) = (RELAY_SEED, 0u64);
    put(&mut scan.slot[0], carry);
    put(&mut scan.slot_acc, acc.wrapping_add(carry.wrapping_mul(relay_factor(0))));
    put(&mut scan.slot_sum, half(carry));
    let mut k = 0;
    while k < RELAY_INFO_MAX / 8 && 8 * k < len {
        let w = if let Ok(p) = ptr_at::<u64>(ctx, req.relay_off + 8 * k) {
            // SAFETY: ptr_at proved the 8 bytes from `p` within the frame; unaligned read.
            let w = unsafe { p.read_unaligned() };
            let rest = len - 8 * k;
            if rest >= 8 { w } else { w & ((1u64 << (8 * rest)) - 1) }
        } else {
            put(&mut scan.relay_copy, 1);
            0
        };
        let word = w << 16 | carry;
        put(&mut scan.slot[k], word);
        acc = acc.wrapping_add(word.wrapping_mul(relay_factor(k)));
        sum += half(word);
        carry = w >> 48;
        put(&mut scan.slot[k + 1], carry);
        put(&mut scan.slot_acc, acc.wrapping_add(carry.wrapping_mul(relay_factor(k + 1))));
        put(&mut scan.slot_sum, sum + half(carry));
        k += 1;
    }
    #[expect(clippy::cast_possible_truncation, reason = "BPF is a 64-bit target")]
    let len = get(&scan.relay_len) as usize & 0xff;
    if len > RELAY_INFO_MAX {
        return Err(Stat::PassRelayInfoLong);
    }
    let acc = if get(&scan.relay_copy) != 0 {
        if len == 0 {
            return Err(Stat::PassTruncated);
        }
        // The words past the value are read by nothing below (`relay_word` masks them).
        #[expect(
            clippy::cast_possible_truncation,
            reason = "the offset is masked to 12 bits, the length to 8"
        )]
        // SAFETY: writes `len` bytes, 1..=RELAY_INFO_MAX (checked just above), into the
        // scratch's RELAY_INFO_MAX bytes; the helper checks offset and length against the frame
        // itself and fails (rc) rather than read past it.
        let rc = unsafe {
            bpf_xdp_load_bytes(
                ctx.ctx,
                (get(&scan.relay_off) & 0xfff) as u32,
                scan.relay.as_mut_ptr().cast(),
                (len & 0xff) as u32,
            )
        };
        if rc != 0 {
            return Err(Stat::PassTruncated);
        }
        let (mut acc, mut sum) = (RELAY_SEED, 0u64);
        let mut j = 0;
        while j < layout::RELAY_SLOT_WORDS {
            #[expect(clippy::cast_possible_truncation, reason = "masked to 8 bits")]
            let w = layout::relay_word_with(j, len as u8, &scan.relay, |x| {
                crate::ptr::opaque(x as usize) as u64
            });
            put(&mut scan.slot[j], w);
            acc = acc.wrapping_add(w.wrapping_mul(relay_factor(j)));
            sum += half(w);
            j += 1;
        }
        put(&mut scan.slot_sum, sum);
        acc
    } else {
        // END after the value: its bits, OR-ed into their word, add their own product and sum.
        let end = 2 + len;
        // Opaque, so that the verifier learns the index's bound from the comparison on the very
        // register it is used in (from `end`'s, through the shift, it knows too little).
        let at = crate::ptr::opaque(end / 8);
        let bits = u64::from(OPT_END) << (8 * (end % 8));
        let Some(w) = scan.slot.get_mut(at) else { return Err(Stat::PassRelayInfoLong) };
        let v = get(w) | bits;
        put(w, v);
        let sum = get(&scan.slot_sum) + half(bits);
        put(&mut scan.slot_sum, sum);
        get(&scan.slot_acc).wrapping_add(bits.wrapping_mul(relay_factor(at)))
    };
    if relay_finish(acc) != lease.relay_digest {
        return Err(Stat::PassRelayInfoMismatch);
    }
    Ok(&scan.slot)
}

/// The longest ACK, IP header included, that the client accepts: 576 bytes, or what its option
/// 57 allows beyond that (`layout::max_reply_ip_len`).
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn max_reply_ip_len(ctx: &XdpContext, req: &Renewal) -> Result<usize, Stat> {
    let v = if req.max_size_off == 0 {
        None
    } else {
        Some(u16::from_be_bytes(read::<[u8; 2]>(ctx, req.max_size_off)?))
    };
    Ok(layout::max_reply_ip_len(v))
}

/// Zeroes the buffer in place with word stores, not the byte-wise memset LLVM would call.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn zero_words(w: &mut core::mem::MaybeUninit<ClientIdWords>) -> &mut ClientIdWords {
    let p = w.as_mut_ptr().cast::<u64>();
    let mut i = 0;
    while i < CLIENT_ID_MAX / 8 {
        // SAFETY: `i` is below the buffer's CLIENT_ID_MAX / 8 words, and a `MaybeUninit` of
        // `[u64; 4]` is 8-aligned.
        unsafe { p.add(i).write_volatile(0) };
        i += 1;
    }
    // SAFETY: every word was written just above.
    unsafe { w.assume_init_mut() }
}

struct Times {
    lease: u32,
    t1: u32,
    t2: u32,
}

/// Stores `v` at `base + off`, unaligned.
///
/// # Safety
///
/// The `size_of::<T>()` bytes from `base + off` must be writable: in the frame, within a range
/// checked since the last resize.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
unsafe fn put<T>(base: *mut u8, off: usize, v: T) {
    // SAFETY: the caller's contract (above); the write is unaligned.
    unsafe { base.add(off).cast::<T>().write_unaligned(v) }
}

/// Resizes the frame from `have` bytes to `want` as the ACK is made: growth at the head (XDP
/// guarantees 256 bytes of headroom, while tailroom can be a few bytes; at the tail when the
/// headroom is short of it), shrinking at the tail.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
#[expect(
    clippy::comparison_chain,
    reason = "the branches as the verifier and the benchmarks know them, not an `Ordering` match"
)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "both are frame lengths, below a page, so their difference fits an i32"
)]
pub(crate) fn resize(ctx: &XdpContext, want: i64, have: i64) -> i64 {
    if want > have {
        // SAFETY: `ctx.ctx` is this program's context; the helper checks the delta against the
        // headroom itself (an error, not a corruption), and the verifier makes every packet
        // pointer be checked again after it.
        let rc = unsafe { bpf_xdp_adjust_head(ctx.ctx, (have - want) as i32) };
        if rc == 0 {
            return 0;
        }
        // More than the headroom (256 bytes less the kernel's frame header: a short request
        // growing into the option 82 ACK): the tail, where there is room (else the slow path
        // answers).
        // SAFETY: as above, for the tail.
        unsafe { bpf_xdp_adjust_tail(ctx.ctx, (want - have) as i32) }
    } else if want < have {
        // SAFETY: as above, for the tail.
        unsafe { bpf_xdp_adjust_tail(ctx.ctx, (want - have) as i32) }
    } else {
        0
    }
}

/// `FULL`: the request is a full 576-byte IP packet, answered at that length. `RELAY`: the
/// request carried option 82 (`relay`, its value), echoed after the profile's block, whose END
/// becomes PAD (`layout`). `LONG`: the profile's block is the long one (`ReplyProfile::F_LONG`;
/// never with `FULL`).
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
#[expect(
    clippy::too_many_lines,
    reason = "the ACK written in one pass, in frame order, as the verifier checks it"
)]
#[expect(
    clippy::many_single_char_names,
    reason = "u, b, o: the UDP, BOOTP and options pointers, named after the frame's layout"
)]
#[expect(clippy::similar_names, reason = "ip_len and id_len: head_word's name for the latter")]
#[expect(
    clippy::cast_ptr_alignment,
    reason = "unaligned access is allowed: built with +allows-misaligned-mem-access"
)]
fn rewrite<const FULL: bool, const RELAY: bool, const LONG: bool>(
    ctx: &XdpContext,
    req: &Renewal,
    ctl: &Control,
    profile: &ReplyProfile,
    client_id: &ClientIdWords,
    t: &Times,
    relay: &RelaySlot,
) -> Result<(), Stat> {
    // Every ACK has the same length, and is written whole: resize once, then every later check
    // is against constants. A frame too short grows at the head, not the tail: XDP guarantees
    // 256 bytes of headroom, while tailroom can be a few bytes (veth copies frames into tight
    // page-pool fragments), so the ACK is built from scratch over whatever is there. A request
    // of the full 576 bytes keeps its length (layout::FULL_IP_LEN): the ACK, then zeroes.
    // The ACK's own length, without the option 82 slot (`plain`), and as sent.
    let plain = if LONG { layout::LONG_IP_LEN } else { layout::IP_LEN };
    let ip_len = if RELAY {
        plain + layout::RELAY_SLOT
    } else if FULL {
        layout::FULL_IP_LEN
    } else {
        plain
    };
    let block = if LONG { PROFILE_LONG_OPTS_LEN } else { PROFILE_OPTS_LEN };
    let udp_len = ip_len - IPV4_HLEN;
    #[expect(clippy::cast_possible_wrap, reason = "a frame length, below a page")]
    let have = (ctx.data_end() - ctx.data()) as i64;
    #[expect(clippy::cast_possible_wrap, reason = "the ACK's length, at most 22 + 604 bytes")]
    if resize(ctx, (req.l2_len + ip_len) as i64, have) != 0 {
        return Err(Stat::PassResize);
    }
    // The frame now has exactly the ACK's length, so these checks cannot fail; the verifier
    // needs them because resizing invalidated every packet pointer.
    let eth = ptr_at_mut::<[u8; ETH_HLEN + 2 * VLAN_HLEN]>(ctx, 0)?.cast::<u8>();
    // One checked pointer for the whole IP packet; UDP and BOOTP are constant offsets from it,
    // so the verifier keeps the proven range for all three.
    let ip = if LONG {
        ptr_at_mut::<[u8; layout::LONG_IP_LEN]>(ctx, req.l2_len)?.cast::<u8>()
    } else {
        ptr_at_mut::<[u8; layout::IP_LEN]>(ctx, req.l2_len)?.cast::<u8>()
    };
    // The option 82 slot follows the plain ACK's end (checked only where it exists).
    let slot = if RELAY {
        ptr_at_mut::<[u8; layout::RELAY_SLOT]>(ctx, req.l2_len + plain)?.cast::<u8>()
    } else {
        core::ptr::null_mut()
    };
    if FULL {
        const _: () = assert!(layout::FULL_PAD % 8 == 4);
        let pad = ptr_at_mut::<[u8; layout::FULL_PAD]>(ctx, req.l2_len + layout::IP_LEN)?;
        let pad = pad.cast::<u8>();
        let mut z = 0;
        while z + 8 <= layout::FULL_PAD {
            // SAFETY: ptr_at_mut proved the FULL_PAD bytes from `pad` within the frame, and
            // `z + 8 <= FULL_PAD`; the store may be unaligned, which BPF allows (built with
            // +allows-misaligned-mem-access).
            unsafe { pad.add(z).cast::<u64>().write_volatile(0) };
            z += 8;
        }
        // SAFETY: `z` is now FULL_PAD - 4 (FULL_PAD % 8 == 4, asserted above), so the last
        // word is within the checked pad; unaligned as above.
        unsafe { pad.add(z).cast::<u32>().write_volatile(0) };
    }
    // SAFETY: within the IP_LEN bytes ptr_at_mut proved from `ip`.
    let u = unsafe { ip.add(IPV4_HLEN) };
    // SAFETY: as above, UDP_HLEN further.
    let b = unsafe { u.add(UDP_HLEN) };
    let relayed = req.giaddr != [0; 4];
    let dst_ip = if relayed { req.giaddr } else { req.ciaddr };

    // SAFETY: every store is within a range proven since the resize: `eth`'s 22 bytes (the
    // Ethernet header and up to two VLAN tags) and the `plain` bytes from `ip` (IP_LEN, or
    // LONG_IP_LEN with `LONG`), of which `u`, `b`, `o` and `dst` are constant offsets (the
    // layout's asserts: the profile block ends at `plain`), and with `RELAY` the RELAY_SLOT
    // bytes from `slot`, checked just above. `src` reads `block` bytes of the profile map
    // value's options (PROFILE_LONG_OPTS_LEN of them). The
    // volatile u64 stores may be unaligned, which BPF allows (+allows-misaligned-mem-access).
    unsafe {
        // Ethernet: back to whoever sent it (client or relay), from us; VLAN tags as they came.
        put(eth, 0, req.src_mac);
        put(eth, 6, ctl.if_mac);
        let ip_type = ETH_P_IP.to_be_bytes();
        match req.l2_len {
            ETH_HLEN => put(eth, 12, ip_type),
            18 => {
                put(eth, 12, req.vlan[0]);
                put(eth, 16, ip_type);
            }
            _ => {
                put(eth, 12, req.vlan[0]);
                put(eth, 16, req.vlan[1]);
                put(eth, 20, ip_type);
            }
        }

        // Every checksum is summed from the values as they are stored, never read back: a
        // load over stores of other widths cannot be forwarded from the store buffer and
        // stalls, which made the read-back sums a quarter of the whole renewal.
        let half = |v: u64| (v & 0xffff_ffff) + (v >> 32);

        // IPv4: id 0, DF, TTL 64.
        #[expect(clippy::cast_possible_truncation, reason = "ip_len's bytes; it is at most 604")]
        let ip_w = [0x45u8, 0, (ip_len >> 8) as u8, ip_len as u8];
        let frag_w = [0u8, 0, 0x40, 0];
        let ttl_w = [64u8, IPPROTO_UDP, 0, 0];
        put(ip, 0, ip_w);
        put(ip, 4, frag_w);
        put(ip, 8, ttl_w);
        put(ip, 12, profile.server_id);
        put(ip, 16, dst_ip);
        let ip_sum = csum::ne32(ip_w)
            + csum::ne32(frag_w)
            + csum::ne32(ttl_w)
            + csum::ne32(profile.server_id)
            + csum::ne32(dst_ip);
        put(ip, 10, !csum::fold(ip_sum));

        // UDP: from 67, to the relay's 67 or the client's 68; checksum filled in last.
        let dport = if relayed { SERVER_PORT } else { CLIENT_PORT };
        let ports = u32::from(SERVER_PORT.to_be()) | u32::from(dport.to_be()) << 16;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "udp_len is at most 584 (604 less the IPv4 header)"
        )]
        let len_w = u32::from((udp_len as u16).to_be());
        put(u, 0, ports);
        put(u, 4, len_w);

        // BOOTP: xid, flags, ciaddr, giaddr and chaddr are the request's; sname and file empty.
        let op_w = [BOOTREPLY, HTYPE_ETHER, 6, 0];
        let flags_w = u32::from(req.flags) << 16; // secs 0, then the flags as they came
        put(b, OP, op_w);
        put(b, XID, req.xid);
        put(b, SECS, flags_w);
        put(b, CIADDR, req.ciaddr);
        put(b, YIADDR, req.ciaddr);
        put(b, SIADDR, [0u8; 4]);
        put(b, GIADDR, req.giaddr);
        put(b, CHADDR, req.chaddr_field[0]);
        put(b, CHADDR + 8, req.chaddr_field[1]);
        // Volatile stores: LLVM turns a plain zeroing loop into a call to the BPF memset,
        // which stores one byte per iteration (~80 ns for these 192 bytes).
        let mut z = SNAME;
        while z < COOKIE {
            b.add(z).cast::<u64>().write_volatile(0);
            z += 8;
        }
        put(b, COOKIE, MAGIC_COOKIE);
        // Pseudo-header, UDP header and the fixed BOOTP fields (sname and file add nothing).
        #[expect(clippy::cast_possible_truncation, reason = "udp_len's bytes; it is at most 584")]
        let mut sum = csum::ne32(profile.server_id)
            + csum::ne32(dst_ip)
            + csum::ne32([0, IPPROTO_UDP, (udp_len >> 8) as u8, udp_len as u8])
            + u64::from(ports)
            + u64::from(len_w)
            + csum::ne32(op_w)
            + csum::ne32(req.xid)
            + u64::from(flags_w)
            + 2 * csum::ne32(req.ciaddr)
            + csum::ne32(req.giaddr)
            + half(req.chaddr_field[0])
            + half(req.chaddr_field[1])
            + csum::ne32(MAGIC_COOKIE);

        // Options: the head (53, 51, 58, 59 and the echoed 61, RFC 6842) as whole words, then
        // the profile's block, whose sum userspace precomputed.
        let o = b.add(OPTIONS);
        #[expect(
            clippy::cast_possible_truncation,
            reason = "client_id_len is masked to 8 bits in parse::renewal"
        )]
        let id_len = if req.client_id_off != 0 { req.client_id_len as u8 } else { 0 };
        let times = [t.lease, t.t1, t.t2];
        let mut k = 0;
        while k < layout::HEAD_WORDS {
            let w = layout::head_word(k, times, id_len, client_id);
            put(o, 8 * k, w);
            sum += half(w);
            k += 1;
        }
        let src = profile.opts.as_ptr();
        let dst = o.add(layout::PROFILE_BLOCK);
        // With option 82 after it, the block whose END is PAD.
        let src = if RELAY { profile.open_opts.as_ptr() } else { src };
        let mut k = 0;
        while k + 8 <= block {
            put(dst, k, src.add(k).cast::<u64>().read_unaligned());
            k += 8;
        }
        sum += u64::from(if RELAY { profile.open_sum } else { profile.opts_sum });
        if RELAY {
            // Option 82 as it came, then END (RFC 3046 §2.2: the last option), as
            // `load_relay_info` built it.
            let mut j = 0;
            while j < layout::RELAY_SLOT_WORDS {
                put(slot, 8 * j, relay[j]);
                j += 1;
            }
            sum += core::ptr::read_volatile(&raw const (*req.scan).slot_sum);
        }
        let c = !csum::fold(sum);
        // A computed zero goes out as all ones; zero means "no checksum".
        put(u, 6, if c == 0 { 0xffff } else { c });
    }
    Ok(())
}

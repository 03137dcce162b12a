//! Benchmark programs, never attached: `BPF_PROG_TEST_RUN` with `repeat` feeds each repetition the
//! previous output, so `xdhcp_bench` first restores the request (and picks the next client)
//! and then runs the real fast path. Its restore step has to resize our ACK back to the request
//! where that differs in length; `xdhcp_bench_restore` (restore without resizing) and
//! `xdhcp_bench_resize` (restore, then resize back to the ACK's length) bracket that cost, and
//! userspace subtracts their mean.
use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::Array,
    helpers::generated::{
        bpf_jiffies64, bpf_ktime_get_coarse_ns, bpf_xdp_adjust_head, bpf_xdp_adjust_tail,
        bpf_xdp_store_bytes,
    },
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use dhcp_common::{
    BenchFrame, Stat,
    bootp::{CIADDR, ETH_HLEN, IPV4_HLEN, UDP_HLEN},
    maps::BENCH_FRAME_MAX,
};

use crate::{
    maps::XDHCP_CONTROL,
    ptr::{ptr_at_mut, read_fixed},
};

#[btf_map]
static XDHCP_BENCH: Array<BenchFrame, 1> = Array::new();

#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn restore(ctx: &XdpContext) -> Option<()> {
    let b = XDHCP_BENCH.get_ptr_mut(0)?;
    // SAFETY: the map's pointer is valid, and test_run runs one repetition at a time on one
    // CPU, so nothing else holds it.
    let b = unsafe { &mut *b };
    let len = (b.len as usize) & (BENCH_FRAME_MAX - 1);
    if len < 64 {
        return None;
    }
    // Undone where the fast path did it, or the room there would run out: it grows short
    // requests at the head and shrinks long ones at the tail.
    let have = ctx.data_end() - ctx.data();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        reason = "frame lengths: `len` is masked below BENCH_FRAME_MAX, `have` is below a page"
    )]
    let rc = match len as i32 - have as i32 {
        0 => 0,
        // SAFETY: `ctx.ctx` is this program's context; the helper checks the delta against the
        // headroom itself, and the verifier makes every packet pointer be checked again after.
        by @ ..0 => unsafe { bpf_xdp_adjust_head(ctx.ctx, -by) },
        // SAFETY: as above, for the tail.
        by => unsafe { bpf_xdp_adjust_tail(ctx.ctx, by) },
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: reads `len` bytes of `b.frame`, which has BENCH_FRAME_MAX (`len` is masked below
    // it); the helper checks offset and length against the frame itself.
    #[expect(clippy::cast_possible_truncation, reason = "masked below BENCH_FRAME_MAX above")]
    if unsafe { bpf_xdp_store_bytes(ctx.ctx, 0, b.frame.as_mut_ptr().cast(), len as u32) } != 0 {
        return None;
    }
    if b.clients > 1 {
        #[expect(clippy::cast_possible_truncation, reason = "a remainder of a u32 (`clients`)")]
        let i = ((b.counter * u64::from(b.stride)) % u64::from(b.clients)) as u32;
        b.counter += 1;
        // Built as whole words: LLVM would otherwise merge byte stores into a misaligned
        // stack store, which the verifier rejects. Little-endian: the first byte is lowest.
        let mut addr = u64::from(u32::from_ne_bytes((b.base_addr + i).to_be_bytes()));
        // BenchFrame::client_mac(i) = [2, 0, i as big-endian bytes].
        let mut mac = 2 | (u64::from(i.swap_bytes()) << 16);
        let store = |off: u32, p: *mut u8, n: u32| {
            // SAFETY: `p` is one of the two u64 locals below and `n` at most 6 of its 8 bytes;
            // the helper checks `off + n` against the frame itself.
            off == 0 || unsafe { bpf_xdp_store_bytes(ctx.ctx, off, p.cast(), n) } == 0
        };
        let (a, m) = ((&raw mut addr).cast::<u8>(), (&raw mut mac).cast::<u8>());
        let ok = store(b.ciaddr_off, a, 4)
            && store(b.chaddr_off, m, 6)
            && store(b.client_id_mac_off, m, 6);
        if !ok {
            return None;
        }
    }
    Some(())
}

#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_bench(ctx: XdpContext) -> u32 {
    if restore(&ctx).is_none() {
        return xdp_action::XDP_DROP;
    }
    crate::fast_path(&ctx)
}

#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_bench_resize(ctx: XdpContext) -> u32 {
    if restore(&ctx).is_none() {
        return xdp_action::XDP_DROP;
    }
    let Some(b) = XDHCP_BENCH.get(0) else { return xdp_action::XDP_DROP };
    // Opaque to LLVM, which would otherwise fold it into 32-bit pointer arithmetic.
    let have = core::hint::black_box(ctx.data_end() - ctx.data());
    #[expect(clippy::cast_possible_wrap, reason = "masked below BENCH_FRAME_MAX")]
    let ack_len = (b.ack_len as usize & (BENCH_FRAME_MAX - 1)) as i64;
    #[expect(clippy::cast_possible_wrap, reason = "a frame length, below a page")]
    if crate::reply::resize(&ctx, ack_len, have as i64) != 0 {
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// Restore, then find the lease's slot and load its first word, as the renewal's first touch
/// of the lease does: net of `xdhcp_bench_restore`, what that one access costs in the kernel
/// (over 1 M leases, a miss), the part of a renewal no code change can remove.
#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_bench_touch(ctx: XdpContext) -> u32 {
    const CIADDR_AT: usize = ETH_HLEN + IPV4_HLEN + UDP_HLEN + CIADDR;
    if restore(&ctx).is_none() {
        return xdp_action::XDP_DROP;
    }
    let Ok(ciaddr) = read_fixed::<[u8; 4]>(&ctx, CIADDR_AT) else {
        return xdp_action::XDP_DROP;
    };
    let Some(lease) = crate::reply::slot(u32::from_be_bytes(ciaddr)) else {
        return xdp_action::XDP_DROP;
    };
    // Volatile: the load must happen though nothing but the verdict depends on it.
    // SAFETY: `slot` returns a pointer into the lease map, valid and 8-aligned (a page-aligned
    // mmapable array of 64-byte entries).
    let first = unsafe { lease.cast::<u64>().read_volatile() };
    if first == 0 { xdp_action::XDP_DROP } else { xdp_action::XDP_PASS }
}

#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_bench_restore(ctx: XdpContext) -> u32 {
    if restore(&ctx).is_none() {
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// What telling a frame that is plainly not DHCP apart costs, for `ns_non_dhcp` to be read
/// against: the short check alone, and with the outcome's counter that every frame bumps. Both
/// return at once, so no register the renewal needs is saved; a DHCP frame is dropped.
#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_bench_check(ctx: XdpContext) -> u32 {
    if crate::parse::plainly_not_dhcp(&ctx) { xdp_action::XDP_PASS } else { xdp_action::XDP_DROP }
}

#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_bench_check_counted(ctx: XdpContext) -> u32 {
    if crate::parse::plainly_not_dhcp(&ctx) {
        crate::maps::count(Stat::PassNotDhcp);
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_DROP
    }
}

/// The two ways XDP can tell the time, for what each costs over the floor: the helper the
/// renewal called until the seventh session, and what it does now (jiffies on the control
/// entry's line). Each writes its reading over the frame, so that it is not optimised away.
#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_bench_clock_call(ctx: XdpContext) -> u32 {
    // SAFETY: a helper without arguments, allowed in XDP.
    stamp(&ctx, unsafe { bpf_ktime_get_coarse_ns() })
}

#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_bench_clock_jiffies(ctx: XdpContext) -> u32 {
    let Some(c) = XDHCP_CONTROL.get(0) else { return xdp_action::XDP_DROP };
    // SAFETY: a helper without arguments, allowed in XDP.
    match c.clock.now_ns(unsafe { bpf_jiffies64() }) {
        Some(now) => stamp(&ctx, now),
        None => xdp_action::XDP_DROP,
    }
}

#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
fn stamp(ctx: &XdpContext, v: u64) -> u32 {
    match ptr_at_mut::<u64>(ctx, 0) {
        Ok(p) => {
            // SAFETY: ptr_at_mut proved the 8 bytes within the frame; the write is unaligned.
            unsafe { p.write_unaligned(v) };
            xdp_action::XDP_PASS
        }
        Err(_) => xdp_action::XDP_DROP,
    }
}

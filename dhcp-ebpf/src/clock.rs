//! The reading userspace calibrates `dhcp_common::KernelClock` from: jiffies and the coarse
//! monotonic clock, taken together in the kernel, since userspace can read only the second.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_jiffies64, bpf_ktime_get_coarse_ns},
    macros::xdp,
    programs::XdpContext,
};

use crate::ptr::ptr_at_mut;

/// Never attached: run once through BPF_PROG_TEST_RUN, it writes jiffies and then
/// CLOCK_MONOTONIC_COARSE ns (two native-endian u64) over the first 16 bytes of the frame.
/// Jiffies first: a tick falling between the two readings then puts the base's ns ahead of
/// its jiffies, which can only make XDP's `now` later, never earlier.
#[xdp]
pub fn xdhcp_clock(ctx: XdpContext) -> u32 {
    if let Ok(p) = ptr_at_mut::<[u64; 2]>(&ctx, 0) {
        let jiffies = unsafe { bpf_jiffies64() };
        let ns = unsafe { bpf_ktime_get_coarse_ns() };
        unsafe { p.write_unaligned([jiffies, ns]) };
    }
    xdp_action::XDP_PASS
}

//! The reading userspace calibrates `dhcp_common::KernelClock` from: jiffies and the coarse
//! monotonic clock, taken together in the kernel, since userspace can read only the second.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_jiffies64, bpf_ktime_get_coarse_ns},
    macros::xdp,
    programs::XdpContext,
};

use crate::ptr::ptr_at_mut;

/// Never attached: run once through `BPF_PROG_TEST_RUN`, it writes jiffies and then
/// `CLOCK_MONOTONIC_COARSE` ns (two native-endian u64) over the first 16 bytes of the frame.
/// Jiffies first: a tick falling between the two readings then puts the base's ns ahead of
/// its jiffies, which can only make XDP's `now` later, never earlier.
#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_clock(ctx: XdpContext) -> u32 {
    if let Ok(p) = ptr_at_mut::<[u64; 2]>(&ctx, 0) {
        // SAFETY: helpers without arguments, allowed in XDP.
        let jiffies = unsafe { bpf_jiffies64() };
        // SAFETY: as above.
        let ns = unsafe { bpf_ktime_get_coarse_ns() };
        // SAFETY: ptr_at_mut proved the 16 bytes within the frame; the write is unaligned.
        unsafe { p.write_unaligned([jiffies, ns]) };
    }
    xdp_action::XDP_PASS
}

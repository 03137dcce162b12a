//! XDP renewal fast path: answers DHCPREQUESTs in RENEWING / REBINDING state (ciaddr set, no
//! option 50 or 54) for clients whose lease userspace installed in `XDHCP_LEASES`, by turning
//! the request into a DHCPACK in place and bouncing it with `XDP_TX`.
//!
//! The program fails open: anything it does not fully understand, any lease it cannot vouch for,
//! any helper that fails, is `XDP_PASS` with the frame untouched, and userspace decides. The one
//! exception is policing (`police`): a message to the server that is not a renewal of a lease
//! held here is dropped when its client, port, VLAN or interface is over its configured rate.
#![no_std]
// Inline asm on BPF: only for `ptr::opaque` (the toolchain is Debian's rustc with
// RUSTC_BOOTSTRAP, docs/building.md).
#![feature(asm_experimental_arch)]
#![no_main]

mod bench;
mod bounce;
mod clock;
mod csum;
mod maps;
mod parse;
mod peer;
mod police;
mod ptr;
mod reply;
mod scan;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use dhcp_common::Stat;

#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp(ctx: XdpContext) -> u32 {
    fast_path(&ctx)
}

/// Every packet bumps exactly one outcome counter: a frame plainly not DHCP (most of the
/// traffic) as soon as that is known, any other once its renewal is decided.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub(crate) fn fast_path(ctx: &XdpContext) -> u32 {
    if parse::plainly_not_dhcp(ctx) {
        maps::count(Stat::PassNotDhcp);
        return xdp_action::XDP_PASS;
    }
    let (action, stat) = match reply::renew(ctx) {
        Ok(()) => (xdp_action::XDP_TX, Stat::Ack),
        Err(reason) => match police::admit(ctx, reason) {
            Ok(()) => (xdp_action::XDP_PASS, reason),
            Err(policed) => (xdp_action::XDP_DROP, policed),
        },
    };
    maps::count(stat);
    action
}

/// A do-nothing program for the far side of a veth pair: on veth, frames sent with `XDP_TX` only
/// reach a peer that runs an XDP program of its own. Tests use it on the client side; the
/// benchmark uses it as the floor. (`xdhcp_peer` is the lab's, which can also count.)
#[xdp]
pub fn xdhcp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects code that could get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

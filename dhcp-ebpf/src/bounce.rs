//! The lab's ceiling, never attached in service: `xdhcp_bounce` answers every DHCP request it
//! sees with the least work that still makes an answer — Ethernet, IPv4 and UDP addresses
//! swapped, the op set to BOOTREPLY and a REQUEST's message type to ACK, the UDP checksum
//! updated for the two changed words (RFC 1624) — and `XDP_TX`. No lease is looked up and no
//! option written. `cargo xtask bench e2e` runs the same load generator against it on the same
//! chain, so the report can say what share of what this lab can carry xdhcp reaches.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use dhcp_common::bootp::{
    BOOTREPLY, ETH_HLEN, ETH_P_IP, IPPROTO_UDP, IPV4_HLEN, OPTIONS, SERVER_PORT, UDP_HLEN,
};

use crate::{csum, ptr::ptr_at_mut};

const UDP_AT: usize = ETH_HLEN + IPV4_HLEN;
const BOOTP_AT: usize = UDP_AT + UDP_HLEN;
/// Through the first option's value: a message type first, as clients put it.
const HEAD: usize = BOOTP_AT + OPTIONS + 3;

#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_bounce(ctx: XdpContext) -> u32 {
    let Ok(f) = ptr_at_mut::<[u8; HEAD]>(&ctx, 0) else { return xdp_action::XDP_PASS };
    // SAFETY: ptr_at_mut proved the HEAD bytes from `f` within the frame; nothing else
    // references them while this program runs.
    let f = unsafe { &mut *f };
    let is_request = f[12..14] == ETH_P_IP.to_be_bytes()
        && f[ETH_HLEN] == 0x45
        && f[ETH_HLEN + 9] == IPPROTO_UDP
        && f[UDP_AT + 2..UDP_AT + 4] == SERVER_PORT.to_be_bytes()
        && f[BOOTP_AT] == 1;
    if !is_request {
        return xdp_action::XDP_PASS;
    }
    // Swaps leave every checksum as it was: the sums are over the same words.
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    for i in 0..4 {
        f.swap(ETH_HLEN + 12 + i, ETH_HLEN + 16 + i);
    }
    for i in 0..2 {
        f.swap(UDP_AT + i, UDP_AT + 2 + i);
    }
    // Each change raises the high byte of its 16-bit word: op 1 -> 2, message type 3 -> 5.
    f[BOOTP_AT] = BOOTREPLY;
    let mut added = 0x0100u64;
    let t = BOOTP_AT + OPTIONS;
    if f[t] == 53 && f[t + 1] == 1 && f[t + 2] == 3 {
        f[t + 2] = 5;
        added += 0x0200;
    }
    let old = u16::from_be_bytes([f[UDP_AT + 6], f[UDP_AT + 7]]);
    // Zero: sent without a checksum, and so it stays.
    if old != 0 {
        let c = !csum::fold(u64::from(!old) + added);
        let c = if c == 0 { 0xffff } else { c };
        f[UDP_AT + 6..UDP_AT + 8].copy_from_slice(&c.to_be_bytes());
    }
    xdp_action::XDP_TX
}

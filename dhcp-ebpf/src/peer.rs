//! The client side of a lab's veth pair. `XDP_TX` frames reach a veth peer only if it runs an XDP
//! program, so this one passes everything — except, while a load run asks for it, the renewal
//! ACKs of that run, which it counts and drops (sampled ones still pass, for latency).
use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, PerCpuArray},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use dhcp_common::{
    PeerCtl,
    bootp::{BOOTREPLY, ETH_HLEN, ETH_P_IP, IPPROTO_UDP, IPV4_HLEN, SERVER_PORT, UDP_HLEN, XID},
    maps::LOAD_RENEW_PHASE,
};

use crate::ptr::read_fixed;

#[btf_map]
static XDHCP_PEER_CTL: Array<PeerCtl, 1> = Array::new();

#[btf_map]
static XDHCP_PEER_ACKS: PerCpuArray<u64, 1> = PerCpuArray::new();

/// Untagged Ethernet, IPv4 without options, UDP from port 67, a BOOTREPLY.
const XID_AT: usize = ETH_HLEN + IPV4_HLEN + UDP_HLEN + XID;

#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "the #[xdp] macro hands the context by value")]
pub fn xdhcp_peer(ctx: XdpContext) -> u32 {
    match XDHCP_PEER_CTL.get(0) {
        Some(c) if c.enabled != 0 => {}
        _ => return xdp_action::XDP_PASS,
    }
    let Ok(head) = read_fixed::<[u8; XID_AT + 4]>(&ctx, 0) else { return xdp_action::XDP_PASS };
    let ip = ETH_HLEN;
    let udp = ip + IPV4_HLEN;
    let is_reply = head[12..14] == ETH_P_IP.to_be_bytes()
        && head[ip] == 0x45
        && head[ip + 9] == IPPROTO_UDP
        && head[udp..udp + 2] == SERVER_PORT.to_be_bytes()
        && head[udp + UDP_HLEN] == BOOTREPLY;
    let xid =
        u32::from_be_bytes([head[XID_AT], head[XID_AT + 1], head[XID_AT + 2], head[XID_AT + 3]]);
    if !is_reply || xid >> 30 != LOAD_RENEW_PHASE {
        return xdp_action::XDP_PASS;
    }
    if let Some(n) = XDHCP_PEER_ACKS.get_ptr_mut(0) {
        // SAFETY: the map hands a valid pointer to this CPU's slot; no one else writes it.
        unsafe { *n += 1 };
    }
    let shift = XDHCP_PEER_CTL.get(0).map_or(31, |c| c.sample_shift & 31);
    if xid & ((1 << shift) - 1) == 0 { xdp_action::XDP_PASS } else { xdp_action::XDP_DROP }
}

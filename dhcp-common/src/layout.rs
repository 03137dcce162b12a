//! The fixed layout of a fast-path DHCPACK's options. Every ACK has the same length, so the
//! program resizes the frame once and checksums a constant-size region, and userspace can
//! pre-encode a subnet's constant options into one block.
//!
//! | offset (after the cookie) | bytes | content |
//! |---|---|---|
//! | 0  | 3  | 53 = DHCPACK |
//! | 3  | 6  | 51 lease time |
//! | 9  | 6  | 58 T1 |
//! | 15 | 6  | 59 T2 |
//! | 21 | 35 | 61 client identifier echoed (RFC 6842), PAD-filled; all PAD if none |
//! | 56 | 96 | the subnet's block: 54, 1, 3, 6, 15 ..., END, zero padding |
//!
//! The subnet block starts 4-aligned in the UDP datagram (offset 304), so its checksum
//! contribution is precomputed by userspace (`SubnetReply::opts_sum`).
use crate::{bootp, maps};

pub const MSG_TYPE: usize = 0;
pub const LEASE_TIME: usize = 3;
pub const T1: usize = 9;
pub const T2: usize = 15;
pub const CLIENT_ID: usize = 21;
/// Option 61 with up to 32 bytes, and one PAD so the subnet block that follows is 4-aligned.
pub const CLIENT_ID_SLOT: usize = 2 + maps::CLIENT_ID_MAX + 1;
pub const SUBNET_BLOCK: usize = CLIENT_ID + CLIENT_ID_SLOT;
pub const OPTIONS_LEN: usize = SUBNET_BLOCK + maps::SUBNET_OPTS_LEN;

/// BOOTP payload of every fast-path ACK.
pub const BOOTP_LEN: usize = bootp::OPTIONS + OPTIONS_LEN;
/// UDP header + payload; a multiple of 4 so `bpf_csum_diff` can sum it in one call.
pub const UDP_LEN: usize = bootp::UDP_HLEN + BOOTP_LEN;
pub const IP_LEN: usize = bootp::IPV4_HLEN + UDP_LEN;

const _: () = assert!(UDP_LEN.is_multiple_of(4));
/// Where the subnet block sits in the UDP datagram: 4-aligned, see `SubnetReply::opts_sum`.
pub const UDP_SUBNET_BLOCK: usize = bootp::UDP_HLEN + bootp::OPTIONS + SUBNET_BLOCK;
const _: () = assert!(UDP_SUBNET_BLOCK.is_multiple_of(4));
const _: () = assert!(UDP_SUBNET_BLOCK + maps::SUBNET_OPTS_LEN == UDP_LEN);
const _: () = assert!(BOOTP_LEN >= 300, "BOOTP minimum message size");

//! The fixed layout of a fast-path DHCPACK's options. Every ACK has one of a few lengths, each a
//! constant (the plain one, [`IP_LEN`]; with option 82, [`RELAY_IP_LEN`]; with a long profile
//! block, [`LONG_IP_LEN`] and [`LONG_RELAY_IP_LEN`]; the answer to a full 576-byte request,
//! [`FULL_IP_LEN`]), so the program resizes the frame once and checksums a constant-size region,
//! and userspace can pre-encode a profile's constant options into one block.
//!
//! | offset (after the cookie) | bytes | content |
//! |---|---|---|
//! | 0  | 3  | 53 = DHCPACK |
//! | 3  | 6  | 51 lease time |
//! | 9  | 6  | 58 T1 |
//! | 15 | 6  | 59 T2 |
//! | 21 | 35 | 61 client identifier echoed (RFC 6842), PAD-filled; all PAD if none |
//! | 56 | 96 (long: 208) | the profile's block: 54, 1, 3, 6, 15 ..., END, zero padding |
//!
//! The block starts 4-aligned in the UDP datagram (offset 304), so its checksum contribution is
//! precomputed by userspace (`ReplyProfile::opts_sum`).
//!
//! An ACK to a request with option 82 (relay agent information) echoes it as the last option
//! before END (RFC 3046 §2.2), in a slot of its own after the block, whose END becomes PAD; this
//! ACK too has one length whatever the option's ([`RELAY_IP_LEN`], [`LONG_RELAY_IP_LEN`]):
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 152 (long: 264) | 72 | 82, its length, its value (up to [`maps::RELAY_INFO_MAX`]), END, zeroes |
//!
//! No reply is longer than 576 bytes of IP unless the client's option 57 (maximum DHCP message
//! size, read as the longest IP datagram it accepts, as ISC dhcpd reads it) allows more
//! ([`max_reply_ip_len`]): of these only [`LONG_RELAY_IP_LEN`] is longer.
use crate::{bootp, maps};

/// The order of a reply's options, the fast path's ACK as this file lays it out and the slow
/// path's replies alike (the slow path puts options not named here after them, by code, and
/// option 82 last): 53, 51, 58, 59, 61, then the profile's block, 54, 1, 3, 6, 15.
pub const REPLY_ORDER: [u8; 10] = [
    bootp::OPT_MESSAGE_TYPE,
    bootp::OPT_LEASE_TIME,
    bootp::OPT_T1,
    bootp::OPT_T2,
    bootp::OPT_CLIENT_ID,
    bootp::OPT_SERVER_ID,
    bootp::OPT_SUBNET_MASK,
    bootp::OPT_ROUTER,
    bootp::OPT_DNS,
    bootp::OPT_DOMAIN_NAME,
];

pub const MSG_TYPE: usize = 0;
pub const LEASE_TIME: usize = 3;
pub const T1: usize = 9;
pub const T2: usize = 15;
pub const CLIENT_ID: usize = 21;
/// Option 61 with up to 32 bytes, and one PAD so the profile block that follows is 4-aligned.
pub const CLIENT_ID_SLOT: usize = 2 + maps::CLIENT_ID_MAX + 1;
pub const PROFILE_BLOCK: usize = CLIENT_ID + CLIENT_ID_SLOT;
pub const OPTIONS_LEN: usize = PROFILE_BLOCK + maps::PROFILE_OPTS_LEN;

/// BOOTP payload of every fast-path ACK.
pub const BOOTP_LEN: usize = bootp::OPTIONS + OPTIONS_LEN;
/// UDP header + payload; a multiple of 4 so `bpf_csum_diff` can sum it in one call.
pub const UDP_LEN: usize = bootp::UDP_HLEN + BOOTP_LEN;
pub const IP_LEN: usize = bootp::IPV4_HLEN + UDP_LEN;

const _: () = assert!(UDP_LEN.is_multiple_of(4));
/// Where the profile block sits in the UDP datagram: 4-aligned, see `ReplyProfile::opts_sum`.
pub const UDP_PROFILE_BLOCK: usize = bootp::UDP_HLEN + bootp::OPTIONS + PROFILE_BLOCK;
const _: () = assert!(UDP_PROFILE_BLOCK.is_multiple_of(4));
const _: () = assert!(UDP_PROFILE_BLOCK + maps::PROFILE_OPTS_LEN == UDP_LEN);
const _: () = assert!(BOOTP_LEN >= 300, "BOOTP minimum message size");

/// The ACK of a profile with the long block ([`maps::PROFILE_LONG_OPTS_LEN`]).
pub const LONG_OPTIONS_LEN: usize = PROFILE_BLOCK + maps::PROFILE_LONG_OPTS_LEN;
pub const LONG_BOOTP_LEN: usize = bootp::OPTIONS + LONG_OPTIONS_LEN;
pub const LONG_UDP_LEN: usize = bootp::UDP_HLEN + LONG_BOOTP_LEN;
pub const LONG_IP_LEN: usize = bootp::IPV4_HLEN + LONG_UDP_LEN;
const _: () =
    assert!(LONG_UDP_LEN.is_multiple_of(4) && maps::PROFILE_LONG_OPTS_LEN.is_multiple_of(8));
// Within what every client accepts, so answered whatever option 57 says.
const _: () = assert!(LONG_IP_LEN <= FULL_IP_LEN);
// Grown from a 328-byte request (300 bytes of BOOTP, what clients pad to) within XDP's
// headroom: 256 bytes less the kernel's 40-byte `xdp_frame` (`maps::PROFILE_LONG_OPTS_LEN`).
const _: () = assert!(LONG_IP_LEN - (bootp::IPV4_HLEN + bootp::UDP_HLEN + 300) <= 256 - 40);

/// A request in a 576-byte IP packet (the size every client must accept, RFC 2131 §2, and what a
/// client sending its whole fixed-size packet struct sends) is answered at its own length: the
/// ACK, then zeroes. Resizing the frame is a helper call, and the shrink the longer request
/// would need costs more than the zeroes.
pub const FULL_IP_LEN: usize = 576;
pub const FULL_BOOTP_LEN: usize = FULL_IP_LEN - bootp::IPV4_HLEN - bootp::UDP_HLEN;
/// The zeroes after the ACK in a full-length answer.
pub const FULL_PAD: usize = FULL_IP_LEN - IP_LEN;
const _: () = assert!(FULL_IP_LEN > IP_LEN && FULL_PAD.is_multiple_of(4));

/// The option 82 slot of an ACK that echoes one: code, length, value, END, 8-byte words.
pub const RELAY_SLOT: usize = (2 + maps::RELAY_INFO_MAX + 1).next_multiple_of(8);
pub const RELAY_SLOT_WORDS: usize = RELAY_SLOT / 8;
pub const RELAY_OPTIONS_LEN: usize = OPTIONS_LEN + RELAY_SLOT;
pub const RELAY_BOOTP_LEN: usize = bootp::OPTIONS + RELAY_OPTIONS_LEN;
pub const RELAY_UDP_LEN: usize = bootp::UDP_HLEN + RELAY_BOOTP_LEN;
pub const RELAY_IP_LEN: usize = bootp::IPV4_HLEN + RELAY_UDP_LEN;
/// Where the slot sits in the UDP datagram: 8-aligned, so its words are summed as stored.
pub const UDP_RELAY_SLOT: usize = bootp::UDP_HLEN + bootp::OPTIONS + OPTIONS_LEN;
const _: () = assert!(UDP_RELAY_SLOT.is_multiple_of(8));
const _: () = assert!(RELAY_UDP_LEN.is_multiple_of(4));
// Within what every client must accept (RFC 2131 §2); shorter than a full-length request,
// which is then shrunk to it.
const _: () = assert!(RELAY_IP_LEN < FULL_IP_LEN);

/// The ACK of a long profile echoing option 82: longer than 576 bytes of IP, so XDP sends it
/// only to a client whose option 57 allows it (else `pass_reply_too_long`).
pub const LONG_RELAY_OPTIONS_LEN: usize = LONG_OPTIONS_LEN + RELAY_SLOT;
pub const LONG_RELAY_BOOTP_LEN: usize = bootp::OPTIONS + LONG_RELAY_OPTIONS_LEN;
pub const LONG_RELAY_UDP_LEN: usize = bootp::UDP_HLEN + LONG_RELAY_BOOTP_LEN;
pub const LONG_RELAY_IP_LEN: usize = bootp::IPV4_HLEN + LONG_RELAY_UDP_LEN;
/// Where its slot sits in the UDP datagram: 8-aligned, as [`UDP_RELAY_SLOT`].
pub const UDP_LONG_RELAY_SLOT: usize = bootp::UDP_HLEN + bootp::OPTIONS + LONG_OPTIONS_LEN;
const _: () = assert!(UDP_LONG_RELAY_SLOT.is_multiple_of(8));
const _: () = assert!(LONG_RELAY_IP_LEN > FULL_IP_LEN);

/// The longest reply, IP header included, that a client sending option 57 (maximum DHCP message
/// size) with `option_57` accepts, or any client (without one, `None`): RFC 2131 §2 has every
/// client accept 576 bytes, and a value below that is read as 576 (RFC 2132 §9.10 allows none
/// below it). Read as the length of the IP datagram, as ISC dhcpd reads it (RFC 2132 says "DHCP
/// message", which dhcpd and most clients take to include the IP and UDP headers); the
/// stricter reading of the two for a server.
#[inline(always)]
#[expect(clippy::inline_always, reason = "called from XDP, where a call costs verifier budget")]
#[must_use]
pub fn max_reply_ip_len(option_57: Option<u16>) -> usize {
    match option_57 {
        Some(v) if usize::from(v) > FULL_IP_LEN => usize::from(v),
        _ => FULL_IP_LEN,
    }
}

/// Word `j` (< [`RELAY_SLOT_WORDS`]) of the option 82 slot, little-endian: code 82, `len`, the
/// value, END, zeroes. `value` holds the value as zero-padded words; only its first
/// `ceil(len / 8)` are read (the last with nothing but zeroes past `len`).
#[inline(always)]
#[expect(clippy::inline_always, reason = "called from XDP, where a call costs verifier budget")]
#[must_use]
pub fn relay_word(j: usize, len: u8, value: &crate::digest::RelayWords) -> u64 {
    relay_word_with(j, len, value, |x| x)
}

/// [`relay_word`], with `hide` applied to the differences its masks are made from. Branch-free
/// (masks from sign bits, not comparisons): in XDP a branch per word splits the verifier's
/// states by what it learns of `len`. XDP passes a barrier LLVM cannot see through
/// (`ptr::opaque`), or LLVM, knowing the values' ranges, turns the masks back into branches.
#[inline(always)]
#[must_use]
pub fn relay_word_with(
    j: usize,
    len: u8,
    value: &crate::digest::RelayWords,
    hide: impl Fn(u64) -> u64,
) -> u64 {
    const WORDS: usize = maps::RELAY_INFO_MAX / 8;
    const _: () = assert!(WORDS.is_power_of_two());
    // The value's words, rounded up (not `div_ceil`, which LLVM makes a branch).
    let n = (u64::from(len) + 7) >> 3;
    // All ones when word `k` is one of the value's, else zero; the index stays in bounds.
    let v = |k: usize| {
        value[k & (WORDS - 1)]
            & (hide((k as u64).wrapping_sub(n)).cast_signed() >> 63).cast_unsigned()
    };
    let head = u64::from(bootp::OPT_RELAY_AGENT) | u64::from(len) << 8;
    let w = if j == 0 { head | v(0) << 16 } else { v(j) << 16 | v(j - 1) >> 48 };
    let end = 2 + u64::from(len);
    // All ones when END falls in this word.
    let here = 0u64.wrapping_sub(hide(((end >> 3) ^ j as u64).wrapping_sub(1)) >> 63);
    w | here & (u64::from(bootp::OPT_END) << (8 * (end & 7)))
}

/// The slot's words for `raw` (at most [`maps::RELAY_INFO_MAX`] bytes; the rest is dropped).
#[must_use]
pub fn relay_slot_of(raw: &[u8]) -> crate::digest::RelaySlot {
    let raw = &raw[..raw.len().min(maps::RELAY_INFO_MAX)];
    let words = crate::digest::relay_words(raw);
    #[expect(clippy::cast_possible_truncation, reason = "at most RELAY_INFO_MAX bytes")]
    core::array::from_fn(|j| relay_word(j, raw.len() as u8, &words))
}

/// Options bytes 0..56 (message type through the client-identifier slot) as seven
/// little-endian words, so XDP can store them with word stores and add them to the UDP checksum
/// straight from registers. Reading back what it had just stored, in other widths, cost a
/// stalled store-to-load forward per word.
pub const HEAD_WORDS: usize = PROFILE_BLOCK / 8;
const _: () = assert!(PROFILE_BLOCK.is_multiple_of(8));
const _: () = assert!(LEASE_TIME == 3 && T1 == 9 && T2 == 15 && CLIENT_ID == 21);

/// Word `k` (< [`HEAD_WORDS`]) of the head. `id` is the zero-padded identifier; `id_len` 0 means
/// none (the slot is all PAD).
#[inline(always)]
#[must_use]
pub fn head_word(k: usize, times: [u32; 3], id_len: u8, id: &crate::digest::ClientIdWords) -> u64 {
    use crate::bootp::{DHCPACK, OPT_LEASE_TIME, OPT_MESSAGE_TYPE, OPT_T1, OPT_T2};
    // A u32's network-order bytes, lowest first in a little-endian word.
    let be = |v: u32| u64::from(v.swap_bytes());
    let [lease, t1, t2] = times;
    let b = |v: u8, at: u32| u64::from(v) << (8 * at);
    let id_hdr = if id_len == 0 { 0 } else { b(crate::bootp::OPT_CLIENT_ID, 5) | b(id_len, 6) };
    match k {
        0 => {
            b(OPT_MESSAGE_TYPE, 0)
                | b(1, 1)
                | b(DHCPACK, 2)
                | b(OPT_LEASE_TIME, 3)
                | b(4, 4)
                | be(lease) << 40
        }
        1 => be(lease) >> 24 | b(OPT_T1, 1) | b(4, 2) | be(t1) << 24 | b(OPT_T2, 7),
        2 => b(4, 0) | be(t2) << 8 | id_hdr | (id[0] & 0xff) << 56,
        // The identifier starts at byte 23, one past a word boundary; the byte after it is PAD.
        3 => id[0] >> 8 | id[1] << 56,
        4 => id[1] >> 8 | id[2] << 56,
        5 => id[2] >> 8 | id[3] << 56,
        _ => id[3] >> 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootp::*;

    /// The head as the table at the top of this file describes it, byte by byte.
    fn expected(times: [u32; 3], id: Option<&[u8]>) -> [u8; PROFILE_BLOCK] {
        let mut b = [0u8; PROFILE_BLOCK];
        b[MSG_TYPE..MSG_TYPE + 3].copy_from_slice(&[OPT_MESSAGE_TYPE, 1, DHCPACK]);
        for (at, code, v) in [(LEASE_TIME, OPT_LEASE_TIME, 0), (T1, OPT_T1, 1), (T2, OPT_T2, 2)] {
            b[at..at + 2].copy_from_slice(&[code, 4]);
            b[at + 2..at + 6].copy_from_slice(&times[v].to_be_bytes());
        }
        if let Some(id) = id {
            b[CLIENT_ID] = OPT_CLIENT_ID;
            b[CLIENT_ID + 1] = u8::try_from(id.len()).unwrap();
            b[CLIENT_ID + 2..CLIENT_ID + 2 + id.len()].copy_from_slice(id);
        }
        b
    }

    fn built(times: [u32; 3], id: Option<&[u8]>) -> [u8; PROFILE_BLOCK] {
        let mut padded = [0u8; maps::CLIENT_ID_MAX];
        let id_len = id.map_or(0, |id| {
            padded[..id.len()].copy_from_slice(id);
            u8::try_from(id.len()).unwrap()
        });
        let mut words = [0u64; maps::CLIENT_ID_MAX / 8];
        for (w, c) in words.iter_mut().zip(padded.chunks(8)) {
            *w = u64::from_le_bytes(c.try_into().unwrap());
        }
        let mut b = [0u8; PROFILE_BLOCK];
        for k in 0..HEAD_WORDS {
            b[8 * k..8 * k + 8].copy_from_slice(&head_word(k, times, id_len, &words).to_le_bytes());
        }
        b
    }

    #[test]
    #[expect(clippy::cast_possible_truncation, reason = "lengths and indices below 256")]
    fn relay_slot_words_lay_out_code_length_value_and_end() {
        let full: [u8; maps::RELAY_INFO_MAX] = core::array::from_fn(|i| 0x80 | (i as u8));
        for len in [0usize, 1, 5, 6, 7, 8, 20, 21, 55, 56, 62, 63, 64] {
            let value = &full[..len];
            let mut want = [0u8; RELAY_SLOT];
            want[0] = OPT_RELAY_AGENT;
            want[1] = len as u8;
            want[2..2 + len].copy_from_slice(value);
            want[2 + len] = OPT_END;
            let words = crate::digest::relay_words(value);
            // Garbage past the value's words must not show.
            let mut dirty = words;
            for w in dirty.iter_mut().skip(len.div_ceil(8)) {
                *w = u64::MAX;
            }
            let mut got = [0u8; RELAY_SLOT];
            for j in 0..RELAY_SLOT_WORDS {
                got[8 * j..8 * j + 8]
                    .copy_from_slice(&relay_word(j, len as u8, &dirty).to_le_bytes());
            }
            assert_eq!(got, want, "len {len}");
        }
    }

    #[test]
    fn the_ack_lengths_and_the_room_option_57_gives() {
        assert_eq!((IP_LEN, RELAY_IP_LEN, LONG_IP_LEN, LONG_RELAY_IP_LEN), (420, 492, 532, 604));
        assert_eq!(max_reply_ip_len(None), 576);
        // Below the minimum every client must accept: read as that minimum.
        assert_eq!(max_reply_ip_len(Some(0)), 576);
        assert_eq!(max_reply_ip_len(Some(300)), 576);
        assert_eq!(max_reply_ip_len(Some(604)), 604);
        assert_eq!(max_reply_ip_len(Some(1500)), 1500);
    }

    #[test]
    fn head_words_lay_out_the_table_byte_for_byte() {
        let full: [u8; 32] = core::array::from_fn(|i| 0xa0 + u8::try_from(i).unwrap());
        let times = [0x0102_0304, 0x1112_1314, 0x2122_2324];
        for id in [None, Some(&[1u8, 2, 3, 4, 5, 6, 7][..]), Some(&full[..]), Some(&full[..1])] {
            assert_eq!(built(times, id), expected(times, id), "id {id:?}");
        }
        assert_eq!(built([3600, 1800, 3150], None), expected([3600, 1800, 3150], None));
        // The byte before the profile block is PAD even with a full-length identifier.
        assert_eq!(built(times, Some(&full))[PROFILE_BLOCK - 1], OPT_PAD);
    }
}

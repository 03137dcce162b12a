//! The digests stored in a lease entry: of the client identifier, and of the option 82 value
//! the slow path last acknowledged the client with. XDP loads the value into zero-padded
//! words and digests them; userspace digests what it recorded, through these same functions,
//! so both sides agree by construction.
use crate::maps::{CLIENT_ID_MAX, RELAY_INFO_MAX};

/// Words of the zero-padded identifier, little-endian as XDP loads them.
pub type ClientIdWords = [u64; CLIENT_ID_MAX / 8];

/// Digest of a client identifier already laid out as zero-padded words. Branch-free and with a
/// constant trip count, so the verifier sees straight-line code.
#[inline(always)]
#[expect(clippy::inline_always, reason = "called from XDP, where a call costs verifier budget")]
#[must_use]
pub fn client_id_words(words: &ClientIdWords, len: u32) -> u64 {
    let mut h = u64::from(len).wrapping_mul(K) ^ 0x6a09_e667_f3bc_c908;
    let mut i = 0;
    while i < words.len() {
        h = (h ^ words[i]).wrapping_mul(K);
        h ^= h >> 29;
        i += 1;
    }
    // Zero means "no identifier" in nothing we store, but keep it out of the range anyway.
    h | 1
}

/// Digest of an identifier (the option 61 value, type byte included). `None` when it is empty
/// or longer than the fast path compares: such leases are never put in the map with
/// [`crate::LeaseEntry::F_CLIENT_ID`].
#[must_use]
pub fn client_id(id: &[u8]) -> Option<u64> {
    if id.is_empty() || id.len() > CLIENT_ID_MAX {
        return None;
    }
    let mut words: ClientIdWords = [0; CLIENT_ID_MAX / 8];
    for (i, b) in id.iter().enumerate() {
        words[i / 8] |= u64::from(*b) << ((i % 8) * 8);
    }
    #[expect(clippy::cast_possible_truncation, reason = "len <= CLIENT_ID_MAX, checked above")]
    Some(client_id_words(&words, id.len() as u32))
}

/// Words of a zero-padded option 82 value, little-endian as XDP loads them.
pub type RelayWords = [u64; RELAY_INFO_MAX / 8];

/// The option 82 slot of an ACK as words (`crate::layout::relay_word`): code, length, value,
/// END, zeroes.
pub type RelaySlot = [u64; crate::layout::RELAY_SLOT_WORDS];

/// Digest of an option 82 value as the slot that echoes it (which holds its length and every
/// byte): [`RELAY_SEED`] plus each word times the factor of its position
/// ([`relay_factor`]), mixed ([`relay_finish`]). A sum of products: the multiplications are
/// independent of each other (a chained hash made XDP wait out one per word), a word moved
/// changes the sum, a zero word adds nothing (XDP sums only the words it writes, as it writes
/// them), and bits OR-ed into a word add their own product. Its own seed: never a client-id
/// digest of the same bytes.
#[inline(always)]
#[expect(clippy::inline_always, reason = "called from XDP, where a call costs verifier budget")]
#[must_use]
pub fn relay_slot(slot: &RelaySlot) -> u64 {
    let mut acc = RELAY_SEED;
    let mut i = 0;
    while i < slot.len() {
        acc = acc.wrapping_add(slot[i].wrapping_mul(relay_factor(i)));
        i += 1;
    }
    relay_finish(acc)
}

pub const RELAY_SEED: u64 = 0xbb67_ae85_84ca_a73b;
const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// The factor of slot word `i`: odd, and distinct for every position.
#[inline(always)]
#[expect(clippy::inline_always, reason = "called from XDP, where a call costs verifier budget")]
#[must_use]
pub fn relay_factor(i: usize) -> u64 {
    K.wrapping_add(0x3c6e_f372_fe94_f82a_u64.wrapping_mul(i as u64 + 1)) | 1
}

/// The digest of a sum of products (never 0).
#[inline(always)]
#[expect(clippy::inline_always, reason = "called from XDP, where a call costs verifier budget")]
#[must_use]
pub fn relay_finish(acc: u64) -> u64 {
    let mut h = (acc ^ (acc >> 31)).wrapping_mul(K);
    h ^= h >> 29;
    h | 1
}

/// Digest of an option 82 value; `None` when it is longer than the fast path echoes.
#[must_use]
pub fn relay_info(raw: &[u8]) -> Option<u64> {
    if raw.len() > RELAY_INFO_MAX {
        return None;
    }
    Some(relay_slot(&crate::layout::relay_slot_of(raw)))
}

/// `raw` (at most [`RELAY_INFO_MAX`] bytes; the rest is dropped) as zero-padded words.
#[must_use]
pub fn relay_words(raw: &[u8]) -> RelayWords {
    let mut words: RelayWords = [0; RELAY_INFO_MAX / 8];
    for (i, b) in raw.iter().take(RELAY_INFO_MAX).enumerate() {
        words[i / 8] |= u64::from(*b) << ((i % 8) * 8);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::many_single_char_names, reason = "a, b, c, d, x, y: values and digests")]
    fn relay_digests_tell_values_apart_and_not_by_trailing_zeroes() {
        let a = relay_info(&[1, 6, b'p', b'o', b'r', b't', b'-', b'1']).unwrap();
        let b = relay_info(&[1, 6, b'p', b'o', b'r', b't', b'-', b'2']).unwrap();
        let c = relay_info(&[1, 6, b'p', b'o', b'r', b't', b'-', b'1', 0]).unwrap();
        assert!(a != b && a != c && b != c);
        assert!(relay_info(&[]).is_some());
        assert_eq!(relay_info(&[0; RELAY_INFO_MAX + 1]), None);
        assert!(relay_info(&[7; RELAY_INFO_MAX]).is_some());
        // Not the client-id digest of the same bytes.
        assert_ne!(relay_info(&[1, 2, 3]), client_id(&[1, 2, 3]));
        // Sub-options in another order (words swapped) are another value.
        let x =
            [1u8, 6, b'p', b'o', b'r', b't', b'-', b'1', 2, 6, b'c', b'p', b'e', b'-', b'1', b'0'];
        let mut y = x;
        y.rotate_left(8);
        assert_ne!(relay_info(&x), relay_info(&y));
        // One byte changed anywhere, one byte longer: another digest.
        let base = [0x5au8; RELAY_INFO_MAX];
        let d = relay_info(&base).unwrap();
        for i in 0..RELAY_INFO_MAX {
            let mut v = base;
            v[i] ^= 1;
            assert_ne!(relay_info(&v), Some(d), "byte {i}");
        }
        assert_ne!(relay_info(&base[..RELAY_INFO_MAX - 1]), Some(d));
    }

    #[test]
    fn distinct_ids_distinct_digests() {
        let a = client_id(&[1, 0, 1, 2, 3, 4, 5]).unwrap();
        let b = client_id(&[1, 0, 1, 2, 3, 4, 6]).unwrap();
        // Trailing zero bytes must not collide with a shorter id.
        let c = client_id(&[1, 0, 1, 2, 3, 4, 5, 0]).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(client_id(&[]), None);
        assert_eq!(client_id(&[0; 33]), None);
        assert!(client_id(&[0; 32]).is_some());
    }
}

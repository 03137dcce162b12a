//! The client-identifier digest stored in a lease entry. XDP loads the option 61 value into a
//! zeroed 32-byte buffer and digests it; userspace digests the identifier it bound the lease
//! with, through this same function, so both sides agree by construction.
use crate::maps::CLIENT_ID_MAX;

/// Words of the zero-padded identifier, little-endian as XDP loads them.
pub type ClientIdWords = [u64; CLIENT_ID_MAX / 8];

/// Digest of a client identifier already laid out as zero-padded words. Branch-free and with a
/// constant trip count, so the verifier sees straight-line code.
#[inline(always)]
#[must_use]
pub fn client_id_words(words: &ClientIdWords, len: u32) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
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

#[cfg(test)]
mod tests {
    use super::*;

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

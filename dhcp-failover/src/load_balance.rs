//! RFC 3074 load balancing as ISC dhcpd applies it.
//!
//! Each client hashes to one of 256 buckets; a 32-byte hash bucket assignment (HBA) says which
//! server answers DISCOVERs from which bucket in NORMAL state. Renewals and rebinds are always
//! answered (draft-12 §9.8.2), so only the DISCOVER path asks this module.
//!
//! Bit meaning: draft-12 §12.11 says a set bit means the *secondary* serves the bucket. ISC
//! dhcpd means the *primary*: `split N` sets buckets 0..N-1, the primary serves set bits and the
//! secondary applies the negation of the HBA it received. We follow ISC, since that is the peer
//! we interoperate with, and so does every [`Hba`] in this crate.

/// The 256-entry permutation of RFC 3074 §6 (`loadb_mx_tbl`).
pub const RFC3074_TABLE: [u8; 256] = [
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232, 31, 32, 55, 60, 152,
    58, 17, 237, 174, 70, 160, 144, 220, 90, 57, 223, 59, 3, 18, 140, 111, 166, 203, 196, 134, 243,
    124, 95, 222, 179, 197, 65, 180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97,
    16, 40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108, 244, 67, 207, 9, 178, 204,
    74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5, 20, 113, 71, 35, 128, 13, 182, 94, 25,
    226, 227, 199, 75, 27, 41, 245, 230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115, 241,
    73, 88, 105, 39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84, 82,
    163, 44, 139, 228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239, 195, 42, 106, 198, 118,
    112, 184, 172, 87, 2, 173, 117, 176, 229, 247, 253, 137, 185, 99, 164, 102, 147, 45, 66, 231,
    52, 141, 211, 194, 206, 246, 238, 56, 110, 78, 248, 63, 240, 189, 93, 92, 51, 53, 183, 19, 171,
    72, 50, 33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125, 188, 213, 96, 235, 136,
    208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4, 216, 131, 89, 21, 28, 133, 37, 153,
    149, 80, 170, 68, 6, 169, 234, 151,
];

/// RFC 3074 hash of a client key: start from the key length (mod 256) and fold the bytes in from
/// last to first through the permutation table.
#[must_use]
pub fn bucket(key: &[u8]) -> u8 {
    // The RFC seeds with the length as an octet; truncation is the specified behaviour.
    #[expect(clippy::cast_possible_truncation, reason = "RFC 3074 seeds with len mod 256")]
    let seed = key.len() as u8;
    key.iter().rev().fold(seed, |h, &k| RFC3074_TABLE[usize::from(h ^ k)])
}

/// The key RFC 3074 hashes: the client identifier if the client sent one (its raw option-61
/// bytes), otherwise `chaddr[..hlen]`.
#[must_use]
pub fn client_key<'a>(client_id: Option<&'a [u8]>, chaddr: &'a [u8]) -> &'a [u8] {
    client_id.unwrap_or(chaddr)
}

/// Hash bucket assignment, ISC meaning: a set bit means the primary serves that bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hba(pub [u8; 32]);

impl Hba {
    /// ISC's `split N`: the primary serves buckets `0..N` (N is clamped to 256).
    #[must_use]
    pub fn split(n: u16) -> Self {
        let mut bits = [0u8; 32];
        for b in 0..n.min(256) {
            bits[usize::from(b >> 3)] |= 1 << (b & 7);
        }
        Self(bits)
    }

    /// Whether the primary serves bucket `h`.
    #[must_use]
    pub fn primary_serves(&self, h: u8) -> bool {
        self.0[usize::from(h >> 3)] & (1 << (h & 7)) != 0
    }

    /// Whether a server in `role` serves bucket `h` while load balancing.
    #[must_use]
    pub fn serves(&self, primary: bool, h: u8) -> bool {
        self.primary_serves(h) == primary
    }
}

/// ISC's `load balance max seconds` test for a DISCOVER in NORMAL state.
///
/// `max_seconds == 0` turns load balancing off (both servers answer everything). A client whose
/// `secs` exceeds the limit has waited too long for the server that should have answered, so we
/// answer it anyway.
#[must_use]
pub fn should_answer_discover(
    hba: &Hba,
    primary: bool,
    key: &[u8],
    secs: u16,
    max_seconds: u16,
) -> bool {
    max_seconds == 0 || secs > max_seconds || hba.serves(primary, bucket(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_a_permutation() {
        let mut seen = [false; 256];
        for &v in &RFC3074_TABLE {
            assert!(!seen[usize::from(v)], "{v} twice");
            seen[usize::from(v)] = true;
        }
    }

    #[test]
    fn hash_follows_the_rfc_recurrence() {
        assert_eq!(bucket(&[]), 0);
        // len 1: T[1 ^ k]
        assert_eq!(bucket(&[0]), RFC3074_TABLE[1]);
        assert_eq!(bucket(&[1]), RFC3074_TABLE[0]);
        // len 2, bytes folded from the last: T[T[2 ^ k1] ^ k0]
        let k = [0x12, 0x34];
        let inner = RFC3074_TABLE[usize::from(2 ^ k[1])];
        assert_eq!(bucket(&k), RFC3074_TABLE[usize::from(inner ^ k[0])]);
    }

    #[test]
    fn split_128_matches_the_hba_isc_sent_in_the_capture() {
        let mut expected = [0u8; 32];
        expected[..16].fill(0xff);
        assert_eq!(Hba::split(128).0, expected);
        assert_eq!(Hba::split(0).0, [0; 32]);
        assert_eq!(Hba::split(256).0, [0xff; 32]);
        assert_eq!(Hba::split(999), Hba::split(256));
    }

    #[test]
    fn exactly_one_server_answers_each_bucket() {
        let hba = Hba::split(100);
        for h in 0..=255u8 {
            assert_ne!(hba.serves(true, h), hba.serves(false, h), "bucket {h}");
        }
        assert!(hba.primary_serves(99));
        assert!(!hba.primary_serves(100));
    }

    #[test]
    fn a_split_shares_real_clients_roughly_in_proportion() {
        let hba = Hba::split(128);
        let primary = (0..10_000u32)
            .filter(|i| {
                let [_, a, b, c] = i.to_be_bytes();
                let mac = [0, 0x0c, 0, a, b, c];
                hba.serves(true, bucket(&mac))
            })
            .count();
        assert!((4_000..6_000).contains(&primary), "{primary}");
    }

    #[test]
    fn slow_clients_and_disabled_balancing_are_always_answered() {
        let nobody = Hba::split(0); // the secondary serves every bucket
        let key = b"\x01\x00\x0c\x01\x02\x03\x04";
        assert!(!should_answer_discover(&nobody, true, key, 0, 3));
        assert!(should_answer_discover(&nobody, true, key, 4, 3));
        assert!(should_answer_discover(&nobody, true, key, 0, 0));
        assert!(should_answer_discover(&nobody, false, key, 0, 3));
    }
}

//! Internet checksums (RFC 1071). Sums are kept in the byte order memory is read in: a ones'
//! complement sum is byte-order independent, so a sum of little-endian loads, folded and stored
//! little-endian, lands as the right network-order bytes.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
#[expect(clippy::cast_possible_truncation, reason = "the folds leave s <= 0xffff")]
pub fn fold(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn ne32(b: [u8; 4]) -> u64 {
    u64::from(u32::from_ne_bytes(b))
}

//! Internet checksums (RFC 1071). Sums are kept in the byte order memory is read in: a ones'
//! complement sum is byte-order independent, so a sum of little-endian loads, folded and stored
//! little-endian, lands as the right network-order bytes.
use aya_ebpf::helpers::generated::bpf_csum_diff;

#[inline(always)]
pub fn fold(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Checksum of a constant-length region (a multiple of 4 bytes) with a seed sum, or `None` when
/// the helper refuses.
#[inline(always)]
pub fn region(p: *const u8, len: u32, seed: u32) -> Option<u16> {
    let r = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, len, seed) };
    if r < 0 {
        return None;
    }
    let c = !fold(r as u64);
    // UDP sends a computed zero as all ones; zero means "no checksum".
    Some(if c == 0 { 0xffff } else { c })
}

#[inline(always)]
pub fn ne32(b: [u8; 4]) -> u64 {
    u64::from(u32::from_ne_bytes(b))
}

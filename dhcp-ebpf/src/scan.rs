//! The option scan's scratch value, kernel-side only. A module of its own so that the map
//! holding it ([`crate::maps::XDHCP_SCAN`]) and the scan filling it ([`crate::parse`]) both
//! depend on it rather than on each other.
use dhcp_common::digest::{RelaySlot, RelayWords};

/// What the option scan found, kept in a per-CPU map value rather than in registers: the
/// verifier does not track map memory, so loop iterations that saw different options still look
/// alike at the loop head and are pruned. Registers holding flags and offsets made the state
/// count explode past the 1 M instruction limit.
#[repr(C)]
pub struct Scan {
    /// Offset in the frame of option 53's value; 0 = not seen.
    pub msg_type_off: u64,
    /// Option 50, 54 or 52 seen (SELECTING / INIT-REBOOT or overloaded fields, which userspace
    /// must judge), or 53, 57, 61 or 82 repeated.
    pub slow: u64,
    /// Option 57 (maximum DHCP message size): the offset in the frame of its value, and its
    /// length shifted left by 32; 0 = not seen.
    pub max_size: u64,
    /// Offset in the frame of option 50's four-byte value (the address a client in INIT-REBOOT
    /// or SELECTING asks for); 0 = not seen, or not four bytes.
    pub requested_off: u64,
    pub client_id_off: u64,
    pub client_id_len: u64,
    /// Offset in the frame of option 82's value; 0 = not seen.
    pub relay_off: u64,
    pub relay_len: u64,
    /// Nonzero when the frame ended before the last word of option 82's value: it is copied
    /// with a helper instead.
    pub relay_copy: u64,
    /// Option 82's value as the helper copies it, when the frame ends before its last word.
    pub relay: RelayWords,
    /// The ACK's option 82 slot (code, length, value, END, zeroes; `layout::relay_word`),
    /// built once the lease is found, as the value is read: digested to compare with the
    /// lease's, and copied into the ACK after the frame was resized (the request's bytes are
    /// gone by then). Built here, in map memory, rather than in the rewrite: the
    /// verifier forgets what it learnt of the length while building it, so the paths through
    /// it meet again as one before the rewrite, instead of each being verified through it.
    pub slot: RelaySlot,
    /// The slot's digest before its final mix (`digest::relay_slot`), and its words' sum for
    /// the UDP checksum (the halves of each word), both summed as the slot is built.
    pub slot_acc: u64,
    pub slot_sum: u64,
}

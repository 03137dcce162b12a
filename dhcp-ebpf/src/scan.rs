//! The option scan's scratch value, kernel-side only. A module of its own so that the map
//! holding it ([`crate::maps::XDHCP_SCAN`]) and the scan filling it ([`crate::parse`]) both
//! depend on it rather than on each other.

/// What the option scan found, kept in a per-CPU map value rather than in registers: the
/// verifier does not track map memory, so loop iterations that saw different options still look
/// alike at the loop head and are pruned. Registers holding flags and offsets made the state
/// count explode past the 1 M instruction limit.
#[repr(C)]
pub struct Scan {
    /// Offset in the frame of option 53's value; 0 = not seen.
    pub msg_type_off: u64,
    /// Option 50, 54, 52 or 82 seen (SELECTING / INIT-REBOOT, overloaded fields or relay agent
    /// information, all of which userspace must judge and echo), or 53 or 61 repeated.
    pub slow: u64,
    pub client_id_off: u64,
    pub client_id_len: u64,
}

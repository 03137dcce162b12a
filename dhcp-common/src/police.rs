//! Policing of the DHCP messages XDP does not answer: DISCOVERs, REQUESTs of clients it does not
//! know, garbage sent to port 67. Each message is charged to buckets keyed by its client MAC, by
//! its access port (the relay's address and the option 82 value it added), by its VLAN tags, and
//! to the interface's one bucket; a message some bucket refuses is dropped in the kernel and
//! counted. A renewal or a re-request of a lease the kernel holds for that very client is never
//! charged at all.
//!
//! The buckets are GCRA (the virtual-scheduling form of a token bucket): one timestamp per key,
//! the theoretical arrival time, so a bucket is a single word to read and write and needs no
//! division in the kernel. Two CPUs charging one bucket at once may both pass: the error is on
//! the side of answering.
use bytemuck::{Pod, Zeroable};

/// [`Policy`] slots: index 0 is the file's `[police]`, the others the distinct ones subnets set.
pub const POLICIES: &str = "XDHCP_POLICIES";
pub const POLICIES_MAX: u32 = 1024;
/// LPM trie: a relay address (`giaddr`) → the [`POLICIES`] slot of its subnet. `0.0.0.0/32` is
/// the slot of clients on the link itself (no relay). No match: slot 0.
pub const POLICY_OF: &str = "XDHCP_POLICY_OF";
pub const POLICY_OF_MAX: u32 = 16_384;
/// LRU hashes of [`Bucket`]s: the least recently charged key makes room for a new one, so a
/// random-MAC flood recycles its own entries and costs a bucket at most its history.
pub const POLICED_MACS: &str = "XDHCP_POLICED_MACS";
pub const POLICED_MACS_MAX: u32 = 65_536;
pub const POLICED_PORTS: &str = "XDHCP_POLICED_PORTS";
pub const POLICED_PORTS_MAX: u32 = 65_536;
pub const POLICED_VLANS: &str = "XDHCP_POLICED_VLANS";
pub const POLICED_VLANS_MAX: u32 = 8_192;
/// The interface's one bucket (an ARRAY of one: every interface has maps of its own).
pub const POLICED_IFACE: &str = "XDHCP_POLICED_IFACE";

/// How much of the option 82 value keys an access port: circuit-id and remote-id of the
/// lengths TR-101 suggests fit. Longer values are told apart by these bytes alone.
pub const PORT_KEY_BYTES: usize = 56;

const NS_PER_SEC: u64 = 1_000_000_000;

/// One key kind's limit: messages per second and the burst above it. All zero: not policed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Rate {
    /// Nanoseconds between messages at the sustained rate; 0 = not policed.
    pub interval_ns: u64,
    /// How far ahead of now a bucket's arrival time may run: `interval × (burst - 1)`.
    pub tolerance_ns: u64,
}

impl Rate {
    /// `per_sec` messages a second with bursts of `burst` (each at least 1).
    #[must_use]
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let interval_ns = NS_PER_SEC / u64::from(per_sec.max(1));
        Self { interval_ns, tolerance_ns: interval_ns * u64::from(burst.max(1) - 1) }
    }

    /// The bucket's arrival time after a message at `now` if it conforms; `None`: drop it.
    /// A bucket never charged (`tat` 0) is full.
    #[inline(always)]
    #[expect(clippy::inline_always, reason = "called from XDP, where a call costs verifier budget")]
    #[must_use]
    pub fn charge(&self, tat: u64, now: u64) -> Option<u64> {
        let tat = if tat > now { tat } else { now };
        if tat - now > self.tolerance_ns { None } else { Some(tat + self.interval_ns) }
    }

    #[must_use]
    pub fn is_on(&self) -> bool {
        self.interval_ns != 0
    }
}

/// The limits for the clients of one subnet (or of the whole file), per key kind.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Policy {
    pub mac: Rate,
    pub port: Rate,
    pub vlan: Rate,
}

/// One key's bucket, and what it let through and refused since it was made (what `xdhcp stats`
/// ranks offenders by).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Bucket {
    pub tat_ns: u64,
    pub passed: u64,
    pub dropped: u64,
    /// `CLOCK_MONOTONIC` ns of the last message refused (0: none).
    pub last_drop_ns: u64,
}

/// The interface's bucket, with its own limit (set by userspace from `[police] interface`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct IfaceBucket {
    pub rate: Rate,
    pub bucket: Bucket,
}

/// A client MAC (chaddr), padded to a word.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct MacKey {
    pub mac: [u8; 6],
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, public so the key can be built literally"
    )]
    pub _pad: [u8; 2],
}

/// An access port: the relay that added option 82 and the first [`PORT_KEY_BYTES`] of its value
/// (zero past `len`). Circuit-ids are unique only within one access node, hence the relay.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PortKey {
    pub giaddr: [u8; 4],
    /// The option 82 value's full length (it may be longer than `value` holds).
    pub len: u32,
    pub value: [u8; PORT_KEY_BYTES],
}

/// The VLAN tags of a frame: the outer VID, the inner VID, and how many tags there were.
#[must_use]
pub const fn vlan_key(tags: u32, outer_tci: u16, inner_tci: u16) -> u32 {
    tags << 24 | ((outer_tci & 0x0fff) as u32) << 12 | (inner_tci & 0x0fff) as u32
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all plain integers and byte arrays, `#[repr(C)]`, no padding (Pod derives).
    unsafe impl aya::Pod for super::Rate {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Policy {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Bucket {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::IfaceBucket {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::MacKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PortKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_its_burst_at_once_then_the_rate() {
        let r = Rate::new(10, 3);
        let (mut tat, mut passed) = (0, 0);
        // 100 messages in the same nanosecond: the burst passes, the rest is refused.
        for _ in 0..100 {
            if let Some(t) = r.charge(tat, 1_000) {
                tat = t;
                passed += 1;
            }
        }
        assert_eq!(passed, 3);
        // Over ten seconds at 1,000/s, 10/s more pass.
        for i in 0..10_000u64 {
            if let Some(t) = r.charge(tat, 1_000 + i * 1_000_000) {
                tat = t;
                passed += 1;
            }
        }
        assert!((100..=103).contains(&passed), "{passed}");
    }

    #[test]
    fn a_quiet_bucket_refills_to_its_burst_and_no_further() {
        let r = Rate::new(1, 4);
        let mut tat = 0;
        for _ in 0..4 {
            tat = r.charge(tat, 5 * NS_PER_SEC).unwrap();
        }
        assert_eq!(r.charge(tat, 5 * NS_PER_SEC), None);
        // An hour later: four again, not 3,600.
        let later = 3_605 * NS_PER_SEC;
        let mut n = 0;
        while let Some(t) = r.charge(tat, later) {
            tat = t;
            n += 1;
        }
        assert_eq!(n, 4);
    }

    #[test]
    fn vlan_keys_tell_tag_counts_and_vids_apart() {
        assert_ne!(vlan_key(1, 100, 0), vlan_key(2, 100, 0));
        assert_ne!(vlan_key(2, 100, 200), vlan_key(2, 200, 100));
        // The priority bits are not part of the VLAN (0xe064: priority 7, VID 100).
        assert_eq!(vlan_key(1, 0xe064, 0), vlan_key(1, 100, 0));
    }
}

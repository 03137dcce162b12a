use aya_ebpf::{
    Global,
    bindings::BPF_F_MMAPABLE,
    btf_maps::{Array, LpmTrie, LruHashMap, PerCpuArray},
    macros::btf_map,
};
use dhcp_common::{
    Control, LeaseEntry, LogCursor, RenewEvent, ReplyProfile, Stat,
    maps::{BLOCKS_LEN, LEASES_MAX, LOG_SLOTS, PAGES_LEN, PROFILES_MAX},
    stats::STATS_LEN,
};

use dhcp_common::police::{
    Bucket, IfaceBucket, MacKey, POLICED_MACS_MAX, POLICED_PORTS_MAX, POLICED_VLANS_MAX,
    POLICIES_MAX, POLICY_OF_MAX, Policy, PortKey,
};

use crate::scan::Scan;

// BTF map definitions, so `bpftool map dump` can print keys and values by field name.

/// Mmapable for the alignment, not for mapping: a plain array's values start 312 bytes into its
/// allocation (after `struct bpf_array`), so every 64-byte slot straddled two cache lines and a
/// renewal over a large table missed twice; an mmapable array's values start on a page.
#[btf_map]
pub static XDHCP_LEASES: Array<LeaseEntry, { LEASES_MAX as usize }, { BPF_F_MMAPABLE as usize }> =
    Array::new();

/// Address → slot, two levels (see `dhcp_common::maps::PAGES`).
#[btf_map]
pub static XDHCP_PAGES: Array<u32, { PAGES_LEN as usize }> = Array::new();

#[btf_map]
pub static XDHCP_BLOCKS: Array<u32, { BLOCKS_LEN as usize }> = Array::new();

#[btf_map]
pub static XDHCP_PROFILES: Array<ReplyProfile, { PROFILES_MAX as usize }> = Array::new();

#[btf_map]
pub static XDHCP_CONTROL: Array<Control, 1> = Array::new();

#[btf_map]
pub static XDHCP_STATS: PerCpuArray<u64, { STATS_LEN as usize }> = PerCpuArray::new();

/// Sized for one CPU here; the loader sets the real size (possible CPUs × the slots per CPU in
/// `XDHCP_LOG_SLOTS`).
#[btf_map]
pub static XDHCP_LOG: Array<RenewEvent, { LOG_SLOTS as usize }, { BPF_F_MMAPABLE as usize }> =
    Array::new();

/// Slots per CPU in `XDHCP_LOG`, a power of two; set by the loader (read-only once loaded, so
/// the verifier knows it).
#[unsafe(no_mangle)]
pub static XDHCP_LOG_SLOTS: Global<u32> = Global::new(LOG_SLOTS);

#[btf_map]
pub static XDHCP_LOG_CURSORS: Array<LogCursor, 1, { BPF_F_MMAPABLE as usize }> = Array::new();

/// Scratch space of the option scan (see [`Scan`]); not shared with userspace.
#[btf_map]
pub static XDHCP_SCAN: PerCpuArray<Scan, 1> = PerCpuArray::new();

// Policing (`crate::police`).

#[btf_map]
pub static XDHCP_POLICIES: Array<Policy, { POLICIES_MAX as usize }> = Array::new();

#[btf_map]
pub static XDHCP_POLICY_OF: LpmTrie<[u8; 4], u32, { POLICY_OF_MAX as usize }> = LpmTrie::new();

#[btf_map]
pub static XDHCP_POLICED_MACS: LruHashMap<MacKey, Bucket, { POLICED_MACS_MAX as usize }> =
    LruHashMap::new();

#[btf_map]
pub static XDHCP_POLICED_PORTS: LruHashMap<PortKey, Bucket, { POLICED_PORTS_MAX as usize }> =
    LruHashMap::new();

#[btf_map]
pub static XDHCP_POLICED_VLANS: LruHashMap<u32, Bucket, { POLICED_VLANS_MAX as usize }> =
    LruHashMap::new();

#[btf_map]
pub static XDHCP_POLICED_IFACE: Array<IfaceBucket, 1> = Array::new();

#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn count(stat: Stat) {
    if let Some(c) = XDHCP_STATS.get_ptr_mut(stat as u32) {
        // SAFETY: the map hands a valid pointer to this CPU's slot, which no one else writes
        // (so no atomics either).
        unsafe { *c += 1 };
    }
}

//! Map names, sizes and the key/value types stored in them.
use bytemuck::{Pod, Zeroable};

/// Leases the fast path may renew: an ARRAY of [`LeaseEntry`] slots. A renewal finds its slot in
/// two steps, its address's /24 block in [`BLOCKS`] and then the slot `base + last octet`, so a
/// renewal touches one line of this large table instead of a hash bucket and then an element
/// (each a cache and TLB miss once the table outgrows the caches). Preallocated and never
/// evicting: it holds authoritative grants.
pub const LEASES: &str = "XDHCP_LEASES";
/// The way from an address to its slot, a two-level table of ARRAYs (XDP looks both up inline,
/// without a hash or a helper call, and the few entries in use stay in cache):
/// [`PAGES`]`[addr >> 16]` is 1 + the /16's page (0: no page), and
/// [`BLOCKS`]`[page * 256 + third octet]` is 1 + the /24's first slot in [`LEASES`] (0: none).
/// Userspace allocates pages and blocks the first time it puts a lease under them, and gives a
/// block back when the last lease in it is deleted (a page when its last block goes). A value
/// read while being written, or a block's old base read just before it was given back and
/// reused, can only lead to a wrong slot, and a slot answers only for its own address.
pub const PAGES: &str = "XDHCP_PAGES";
pub const BLOCKS: &str = "XDHCP_BLOCKS";
/// Reply profiles: what the fast path puts in an ACK ([`ReplyProfile`]: server id, T1/T2, the
/// option block), one per (subnet, client class, ...) as userspace decides; a lease's entry
/// names its profile ([`LeaseEntry::profile`]).
pub const PROFILES: &str = "XDHCP_PROFILES";
/// One-slot array: whether the fast path answers at all, and how.
pub const CONTROL: &str = "XDHCP_CONTROL";
/// Per-CPU counters, one slot per [`crate::Stat`].
pub const STATS: &str = "XDHCP_STATS";
/// The event log: one [`RenewEvent`] per ACK sent by XDP, in a region of [`LOG_SLOTS`] slots per
/// CPU (`LOG[cpu * LOG_SLOTS + head % LOG_SLOTS]`). An ARRAY userspace maps into its memory
/// (`BPF_F_MMAPABLE`) and reads in place, with no system call.
pub const LOG: &str = "XDHCP_LOG";
/// One [`LogCursor`] per CPU: where XDP writes next in that CPU's region of [`LOG`], and where
/// userspace reads next. Also mapped into userspace memory.
pub const LOG_CURSORS: &str = "XDHCP_LOG_CURSORS";

/// The lease table's default capacity (`fast_path.lease_capacity`), and its bounds: one /24
/// block, and 16 M leases (1 GiB of kernel memory at 64 bytes a slot).
pub const LEASES_MAX: u32 = 1 << 20;
pub const LEASES_MIN: u32 = BLOCK_SLOTS;
pub const LEASES_LIMIT: u32 = 1 << 24;
/// Addresses per block (a /24), and blocks per page (a /16).
pub const BLOCK_SLOTS: u32 = 256;
/// One entry per /16.
pub const PAGES_LEN: u32 = 1 << 16;
/// Distinct /16s that can hold fast-path leases.
pub const PAGES_MAX: u32 = 1024;
pub const BLOCKS_LEN: u32 = PAGES_MAX * BLOCK_SLOTS;
/// Slots of [`PROFILES`].
pub const PROFILES_MAX: u32 = 4096;
/// Event slots per CPU by default: 2 MiB, ~65 ms of renewals at 1 M/s on one CPU (the daemon
/// drains every 10 ms). A full region makes XDP pass the renewal to the slow path rather than
/// send an ACK userspace would not hear about. Both maps are sized at load time for the
/// possible CPUs, with the slots per CPU the configuration asks for
/// (`fast_path.event_log_slots`), or that pinned maps already have; the program learns the
/// number from the read-only global [`LOG_SLOTS_GLOBAL`], set at load.
pub const LOG_SLOTS: u32 = 1 << 16;
/// Bounds of `fast_path.event_log_slots` (a power of two): 32 KiB to 32 MiB per CPU.
pub const LOG_SLOTS_MIN: u32 = 1 << 10;
pub const LOG_SLOTS_MAX: u32 = 1 << 20;

/// Whether the event log may have `slots` per CPU: a power of two (XDP indexes the region with
/// a mask) within [`LOG_SLOTS_MIN`]..=[`LOG_SLOTS_MAX`].
#[must_use]
pub const fn log_slots_valid(slots: u32) -> bool {
    slots.is_power_of_two() && slots >= LOG_SLOTS_MIN && slots <= LOG_SLOTS_MAX
}
/// Name of the program's global holding the slots per CPU of [`LOG`].
pub const LOG_SLOTS_GLOBAL: &str = "XDHCP_LOG_SLOTS";

/// Longest client identifier (option 61 value) the fast path compares; longer ones go to the
/// slow path.
pub const CLIENT_ID_MAX: usize = 32;

/// Longest option 82 value (relay agent information, RFC 3046) the fast path echoes; a renewal
/// with a longer one goes to the slow path (`pass_relay_info_long`). Room for a circuit-id and a
/// remote-id of 30 bytes each with their headers (TR-101's formats, such as
/// "OLT1 xpon 0/1/1/12:101.1.10", take 20-30). 64 and not more: the ACK echoing it grows a
/// 342-byte request by 164 bytes, within what XDP's headroom takes (256 bytes less the kernel's
/// frame header); with 128 it grew by 228, past it, and every such renewal paid a failed
/// `bpf_xdp_adjust_head` and then an `adjust_tail` (~50 ns, `ns_per_renewal_opt82`).
pub const RELAY_INFO_MAX: usize = 64;

/// A lease the fast path may renew; all zero is an empty slot.
///
/// Userspace rewrites a slot with one `bpf_map_update_elem`, which copies the value without a
/// lock, so XDP could in principle read half of an old entry and half of a new one (a slot handed
/// from one client to the next, or a vCPU descheduled mid-read). `check` is a digest of every
/// field XDP decides by; a mixture fails it and the renewal goes to the slow path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct LeaseEntry {
    /// End of the time userspace has durably granted (and, with a partner, that the MCLT rule
    /// allows), in `CLOCK_MONOTONIC` nanoseconds (XDP reads it through [`KernelClock`]).
    /// An ACK never reaches beyond it.
    pub grant_until_ns: u64,
    /// [`crate::digest::client_id`] of the client identifier the lease was bound with; only
    /// meaningful with [`LeaseEntry::F_CLIENT_ID`].
    pub client_id_digest: u64,
    /// [`crate::digest::relay_info`] of the option 82 value the slow path last acknowledged
    /// this client with (its circuit-id and remote-id among it); only meaningful with
    /// [`LeaseEntry::F_RELAY_INFO`].
    pub relay_digest: u64,
    /// Last fast-path ACK, `CLOCK_MONOTONIC` ns, stamped in place by XDP (0 = never).
    pub renewed_at_ns: u64,
    /// [`LeaseEntry::digest`] of this entry, set by [`LeaseEntry::sealed`].
    pub check: u64,
    /// The leased address, network order: a slot answers only for the address it was written
    /// for.
    pub addr: [u8; 4],
    /// Lease time a renewal asks for, seconds, before the horizon caps it.
    pub lease_secs: u32,
    /// Index into [`PROFILES`]: what the ACK carries.
    pub profile: u32,
    /// Seconds granted by the last fast-path ACK (paired with `renewed_at_ns`).
    pub renewed_secs: u32,
    pub chaddr: [u8; 6],
    /// `F_*` bits.
    pub flags: u16,
}

impl LeaseEntry {
    /// The lease was bound with a client identifier: renewals must carry the same one.
    /// Without it, a renewal carrying any option 61 goes to the slow path.
    pub const F_CLIENT_ID: u16 = 1;
    /// The slow path last acknowledged this client with an option 82 the fast path can echo:
    /// a renewal carrying option 82 is answered only if its value is that one, byte for byte
    /// (`relay_digest`). Without this bit (and without [`LeaseEntry::F_RELAY_SLOW`]) the lease
    /// has no option 82 on record, and a renewal carrying one goes to the slow path, which
    /// records it. A renewal without option 82 is answered either way, as the slow path
    /// answers it (an L3 relay's clients unicast their renewals around it).
    pub const F_RELAY_INFO: u16 = 2;
    /// The option 82 on record is one the fast path leaves to the slow path (longer than
    /// [`RELAY_INFO_MAX`], malformed, or asking for link selection or a server identifier
    /// override): every renewal carrying option 82 goes to the slow path.
    pub const F_RELAY_SLOW: u16 = 4;

    /// Digest of the fields a renewal is decided by (not the stamps XDP writes). Never 0, so an
    /// empty slot never passes.
    #[inline(always)]
    #[must_use]
    pub fn digest(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mix = |h: u64, v: u64| {
            let h = (h ^ v).wrapping_mul(K);
            h ^ (h >> 29)
        };
        let w = |b: [u8; 4]| u64::from(u32::from_ne_bytes(b));
        let mac = w([self.chaddr[0], self.chaddr[1], self.chaddr[2], self.chaddr[3]])
            | u64::from(self.chaddr[4]) << 32
            | u64::from(self.chaddr[5]) << 40
            | u64::from(self.flags) << 48;
        let mut h = mix(0x6a09_e667_f3bc_c908, self.grant_until_ns);
        h = mix(h, self.client_id_digest);
        h = mix(h, self.relay_digest);
        h = mix(h, w(self.addr) | u64::from(self.lease_secs) << 32);
        h = mix(h, u64::from(self.profile));
        h = mix(h, mac);
        h | 1
    }

    /// This entry for `addr`, with its digest set: what userspace writes.
    #[must_use]
    pub fn sealed(mut self, addr: [u8; 4]) -> Self {
        self.addr = addr;
        self.check = self.digest();
        self
    }

    /// Whether the entry is whole and answers for `addr`.
    #[inline(always)]
    #[expect(clippy::inline_always, reason = "called from XDP, where a call costs verifier budget")]
    #[must_use]
    pub fn holds(&self, addr: [u8; 4]) -> bool {
        self.addr == addr && self.check == self.digest()
    }
}

/// The two sizes of a profile's option block (54, 1, 3, 6, 15, the rest by code, END, zero
/// padding; see [`crate::layout`]): the ordinary one, and a long one for profiles with more
/// options (a client class's NTP servers, routes, vendor options, TFTP server and file: about
/// 200 bytes in all). Userspace picks the short one whenever the options fit it
/// ([`ReplyProfile::F_LONG`] clear), so the ordinary renewal copies and sends no more than
/// before. The long one is 208 bytes and not the 248 that would fill a 576-byte ACK: its ACK
/// (532 bytes of IP) grows a 342-byte request by 190 bytes, and a 328-byte one by 204, within
/// XDP's headroom (256 bytes less the kernel's 40-byte frame header), so the frame is grown at
/// the head in one helper call; with 248 it grew by 230 and every such renewal paid a failed
/// `bpf_xdp_adjust_head` before the tail one (as a 128-byte option 82 slot did, +53..95 ns).
pub const PROFILE_OPTS_LEN: usize = 96;
pub const PROFILE_LONG_OPTS_LEN: usize = 208;

/// What the fast path puts in an ACK for the leases of one profile. Written by userspace only.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ReplyProfile {
    /// Server identifier (option 54 and the reply's IPv4 source), network order.
    pub server_id: [u8; 4],
    /// Nonzero when this slot is configured; an unconfigured profile makes XDP pass.
    pub enabled: u32,
    /// Renewal (T1) and rebinding (T2) times, seconds, for a full-length grant. Shorter grants
    /// get T1 = grant/2 and T2 = 7/8 grant at most.
    pub t1_secs: u32,
    pub t2_secs: u32,
    /// `F_*` bits.
    pub flags: u32,
    /// Ones'-complement sum of `opts` as little-endian 32-bit words (it sits 4-aligned in the
    /// UDP datagram), so XDP adds it to the UDP checksum instead of summing the block. The
    /// bytes past a short block are zero, so the sum over the whole array is the block's.
    pub opts_sum: u32,
    /// The sum of `open_opts`, likewise.
    pub open_sum: u32,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, public so the struct can be built literally"
    )]
    pub _pad: u32,
    /// Pre-encoded options 54, 1, 3, 6, 15 ... followed by END (255) and zero padding, copied
    /// verbatim into every ACK: the first [`PROFILE_OPTS_LEN`] bytes, or all
    /// [`PROFILE_LONG_OPTS_LEN`] with [`ReplyProfile::F_LONG`]; zero past the block.
    pub opts: [u8; PROFILE_LONG_OPTS_LEN],
    /// `opts` with its END turned into PAD, for an ACK echoing option 82 (the echoed option
    /// and its END follow the block, `crate::layout`).
    pub open_opts: [u8; PROFILE_LONG_OPTS_LEN],
}

impl ReplyProfile {
    /// The block is the long one ([`PROFILE_LONG_OPTS_LEN`] bytes): the ACK is
    /// [`crate::layout::LONG_IP_LEN`] bytes long, [`crate::layout::LONG_RELAY_IP_LEN`] echoing
    /// option 82, which only a client allowing that much (option 57) gets from XDP.
    pub const F_LONG: u32 = 1;

    /// The block's length, as XDP copies it.
    #[must_use]
    pub const fn block_len(&self) -> usize {
        if self.flags & Self::F_LONG != 0 { PROFILE_LONG_OPTS_LEN } else { PROFILE_OPTS_LEN }
    }
}

/// One-slot control entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Control {
    /// Nonzero: XDP answers renewals. Zero: everything is passed to userspace (failover uses
    /// this whenever this server must not answer on its own).
    pub enabled: u32,
    /// `F_*` bits.
    pub flags: u32,
    /// Smallest grant, seconds, worth answering in the kernel; below it (or below the profile's
    /// T1) the renewal goes to userspace. Never below [`Control::MIN_GRANT_FLOOR`].
    pub min_grant_secs: u32,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, public so the struct can be built literally"
    )]
    pub _pad: u32,
    /// MAC of the interface the program is attached to: the ACK's Ethernet source (a broadcast
    /// REBINDING request's destination cannot be reused).
    pub if_mac: [u8; 6],
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, public so the struct can be built literally"
    )]
    pub _pad2: [u8; 2],
    /// How XDP tells the time; set by the loader, never by a setting.
    pub clock: KernelClock,
}

impl Control {
    /// Log a [`RenewEvent`] in [`LOG`] for every ACK (besides the in-place stamp).
    pub const F_EVENTS: u32 = 1;
    pub const MIN_GRANT_FLOOR: u32 = 60;
}

/// `CLOCK_MONOTONIC` for XDP without a helper call: `bpf_ktime_get_coarse_ns` costs a call and
/// return (~20 ns on the project's VMs, a tenth of a renewal), while `bpf_jiffies64` is inlined
/// by the verifier into one load. The kernel advances jiffies by one every `tick_ns` of
/// `CLOCK_MONOTONIC`, in the same tick that advances the coarse clock, so one reading of both
/// (`base_jiffies`, `base_ns`) taken together fixes the line between them for the whole boot.
///
/// All zero (never calibrated) is no clock: XDP then answers nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct KernelClock {
    /// `CLOCK_MONOTONIC_COARSE` ns read just after `base_jiffies`.
    pub base_ns: u64,
    pub base_jiffies: u64,
    /// The tick, ns (`clock_getres(CLOCK_MONOTONIC_COARSE)`: 4,000,000 at HZ=250).
    pub tick_ns: u64,
}

impl KernelClock {
    /// Bounds under which the product below cannot wrap (2^62): a reading 8.7 years after
    /// the base at HZ=1000 (35 at HZ=250), a tick of 16.7 ms (HZ=60) at most. Beyond them the
    /// reading is refused.
    const MAX_TICKS: u64 = 1 << 38;
    const MAX_TICK_NS: u64 = 1 << 24;
    pub const MARGIN_TICKS: u64 = 2;

    /// `CLOCK_MONOTONIC` ns at `jiffies`, never earlier than the coarse clock then reads. The
    /// coarse clock steps on the timekeeper's own grid, which drifts against the jiffies grid
    /// by the NTP frequency correction (a tick in about two days here), so the offset between
    /// the two wanders within a tick either way of the one at calibration; two ticks are added
    /// so that `now` errs late (by 1-3 ticks), which only shortens grants, never early. `None`
    /// without a clock or for a reading before the base.
    #[inline(always)]
    #[expect(clippy::inline_always, reason = "called from XDP, where a call costs verifier budget")]
    #[must_use]
    pub fn now_ns(&self, jiffies: u64) -> Option<u64> {
        let ticks = jiffies.checked_sub(self.base_jiffies)?;
        if self.tick_ns == 0 || self.tick_ns > Self::MAX_TICK_NS || ticks >= Self::MAX_TICKS {
            return None;
        }
        Some(self.base_ns.saturating_add((ticks + Self::MARGIN_TICKS) * self.tick_ns))
    }
}

/// Logged by XDP in [`LOG`] for every ACK it transmits: userspace persists the new expiry and
/// tells the failover partner. 32 bytes, two to a cache line, so that no event straddles two.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct RenewEvent {
    /// `CLOCK_MONOTONIC` ns at which the ACK was built.
    pub at_ns: u64,
    pub addr: [u8; 4],
    pub granted_secs: u32,
    pub chaddr: [u8; 6],
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, public so the struct can be built literally"
    )]
    pub _pad: [u8; 10],
}

/// One CPU's position in [`LOG`]. Each side writes only its own field, with one 8-byte store
/// into the shared mapping (never `bpf_map_update_elem`, which would rewrite both): XDP on
/// that CPU advances `head` after the event is written, userspace advances `tail` after it has
/// read the events before it. Both count events since the map was created; `head - tail` are
/// waiting, and XDP writes only while that is below [`LOG_SLOTS`]. The ordering this relies on
/// (an event's stores visible before the `head` store that follows them) is x86's (TSO), the
/// architecture the program is built for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct LogCursor {
    pub head: u64,
    pub tail: u64,
    /// A cache line per CPU: one CPU's renewals never take a line from another's.
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding, public so the struct can be built literally"
    )]
    pub _pad: [u64; 6],
}

const _: () = assert!(size_of::<LeaseEntry>() == 64);
const _: () = assert!(size_of::<ReplyProfile>() == 448);
const _: () = assert!(size_of::<Control>() == 48);
const _: () = assert!(size_of::<RenewEvent>() == 32);
const _: () = assert!(size_of::<LogCursor>() == 64);

#[cfg(feature = "user")]
mod user {
    // SAFETY: each type is repr(C), Copy, has no padding (bytemuck::Pod derive checks it), and
    // every bit pattern is valid.
    unsafe impl aya::Pod for super::LeaseEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ReplyProfile {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Control {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RenewEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LogCursor {}
}

/// Benchmark only: the request `xdhcp_bench` restores before every repetition, because
/// `BPF_PROG_TEST_RUN` hands each repetition the previous one's output (our own ACK).
pub const BENCH: &str = "XDHCP_BENCH";
pub const BENCH_FRAME_MAX: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BenchFrame {
    /// Bytes of `frame` in use.
    pub len: u32,
    /// Vary the client over this many leases (0 or 1: always the same client). Lease `i` is
    /// address `base + i` and MAC `02:00:` followed by `i` as four big-endian bytes.
    pub clients: u32,
    /// Repetitions so far; picks the next client.
    pub counter: u64,
    /// Frame offsets to patch per client (0: none): ciaddr, chaddr, client-id MAC part.
    pub ciaddr_off: u32,
    pub chaddr_off: u32,
    pub client_id_mac_off: u32,
    /// First client address, host order.
    pub base_addr: u32,
    /// Length of the ACK the request turns into; `xdhcp_bench_resize` grows back to it.
    pub ack_len: u32,
    /// Repetition `n` renews client `n * stride % clients`. Coprime with `clients`, so every
    /// lease comes round once a lap, and large, so consecutive renewals land far apart in the
    /// maps: real renewals arrive in no relation to the order leases were installed in, and a
    /// walk in that order would let the caches and the prefetcher flatter the figure.
    pub stride: u32,
    pub frame: [u8; BENCH_FRAME_MAX],
}

const _: () = assert!(size_of::<BenchFrame>() == 1064);

#[cfg(feature = "user")]
// SAFETY: repr(C), no padding (checked by the Pod derive), any bit pattern valid.
unsafe impl aya::Pod for BenchFrame {}

impl BenchFrame {
    /// The MAC of benchmark client `i`.
    #[must_use]
    pub const fn client_mac(i: u32) -> [u8; 6] {
        let b = i.to_be_bytes();
        [2, 0, b[0], b[1], b[2], b[3]]
    }
}

/// Load-generator only: the client side's XDP program counts and drops the renewal ACKs of an
/// `xdhcp-load` run (`xid >> 30 == LOAD_RENEW_PHASE`) while `enabled` is set, so counting them
/// costs no socket buffer and no stack traversal. Every `1 << sample_shift`-th one is passed
/// on, for latency.
pub const PEER_CTL: &str = "XDHCP_PEER_CTL";
pub const PEER_ACKS: &str = "XDHCP_PEER_ACKS";
pub const LOAD_RENEW_PHASE: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PeerCtl {
    pub enabled: u32,
    pub sample_shift: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), no padding (checked by the Pod derive), any bit pattern valid.
unsafe impl aya::Pod for PeerCtl {}

#[cfg(test)]
mod tests {
    use super::KernelClock;

    const TICK: u64 = 4_000_000;
    const CLOCK: KernelClock =
        KernelClock { base_ns: 55_000_000_000_000, base_jiffies: 4_308_000_000, tick_ns: TICK };

    #[test]
    fn the_clock_runs_two_ticks_ahead_of_its_base() {
        assert_eq!(CLOCK.now_ns(CLOCK.base_jiffies), Some(CLOCK.base_ns + 2 * TICK));
        // An hour of ticks later, an hour later (plus the margin).
        let hour = 3_600_000_000_000;
        let later = CLOCK.now_ns(CLOCK.base_jiffies + hour / TICK);
        assert_eq!(later, Some(CLOCK.base_ns + hour + 2 * TICK));
    }

    #[test]
    fn no_clock_tells_no_time() {
        assert_eq!(KernelClock::default().now_ns(4_308_000_000), None);
        // A reading from before the base (a clock pinned on another boot) is refused, not
        // wrapped around.
        assert_eq!(CLOCK.now_ns(CLOCK.base_jiffies - 1), None);
        let silly = KernelClock { tick_ns: 1 << 30, ..CLOCK };
        assert_eq!(silly.now_ns(CLOCK.base_jiffies), None);
    }

    #[test]
    fn readings_far_past_the_base_never_wrap_into_the_past() {
        assert_eq!(CLOCK.now_ns(CLOCK.base_jiffies + (1 << 38)), None);
        let late = CLOCK.now_ns(CLOCK.base_jiffies + (1 << 38) - 1).unwrap();
        assert!(late > CLOCK.base_ns);
        let end = KernelClock { base_ns: u64::MAX - 1, ..CLOCK };
        assert_eq!(end.now_ns(CLOCK.base_jiffies + 5), Some(u64::MAX));
    }
}

//! Reading the fast path's event log (`dhcp_common::maps::LOG`) in place.
//!
//! Both maps are `BPF_F_MMAPABLE` arrays mapped into this process, so draining is loads and one
//! store per CPU, with no system call: for each CPU, read its cursor's `head`, copy the events
//! from `tail` up to it, then store the new `tail`, which gives those slots back to XDP.
use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
    ptr::NonNull,
    sync::atomic::{Ordering, fence},
};

use anyhow::{Context as _, Result, bail, ensure};
use aya::{
    Ebpf,
    maps::{Map, MapData},
};
use dhcp_common::{LogCursor, RenewEvent, maps as m};

use super::maps::{pinned, take};

/// A shared mapping of one map's values, unmapped on drop.
pub(crate) struct Mapping {
    pub(crate) ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access goes through volatile loads and
// stores of whole fields, whichever thread makes them.
unsafe impl Send for Mapping {}

impl Mapping {
    pub(crate) fn new(data: &MapData, name: &str, len: usize, writable: bool) -> Result<Self> {
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks the length against
        // the map and the map's flags.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("mmap {name}"));
        }
        Ok(Self { ptr: NonNull::new(p.cast()).context("mmap returned null")?, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The consumer side of the event log. One per set of maps: two drains of the same log would
/// each see part of the events.
pub struct EventLog {
    events: Mapping,
    cursors: Mapping,
    cpus: u32,
    /// Slots per CPU, a power of two.
    slots: u32,
    /// Events given up because a cursor was out of range (only a writer other than XDP and
    /// this reader could cause it); the renewals they stood for are still stamped in their
    /// lease entries.
    pub skipped: u64,
}

fn array(map: Map, name: &str) -> Result<MapData> {
    match map {
        Map::Array(d) => Ok(d),
        _ => bail!("map {name} is not an ARRAY"),
    }
}

/// The slots per CPU of a log of `entries` over `cpus` cursors, as the program indexes it.
fn slots_per_cpu(entries: u32, cpus: u32) -> Result<u32> {
    let slots = entries / cpus.max(1);
    ensure!(
        cpus > 0 && entries == cpus * slots && m::log_slots_valid(slots),
        "{} has {entries} slots for {cpus} CPUs, not a power of two from {} to {} each",
        m::LOG,
        m::LOG_SLOTS_MIN,
        m::LOG_SLOTS_MAX
    );
    Ok(slots)
}

impl EventLog {
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        let mut open = |n| array(take(ebpf, n)?, n);
        Self::new(open(m::LOG)?, open(m::LOG_CURSORS)?)
    }

    pub fn open_pinned(dir: &Path) -> Result<Self> {
        let open = |n| array(pinned(dir, n)?, n);
        Self::new(open(m::LOG)?, open(m::LOG_CURSORS)?)
    }

    #[expect(clippy::needless_pass_by_value, reason = "takes the fds to close them once mapped")]
    fn new(log: MapData, cursors: MapData) -> Result<Self> {
        let (li, ci) = (log.info()?, cursors.info()?);
        let cpus = ci.max_entries();
        ensure!(
            li.value_size() as usize == size_of::<RenewEvent>()
                && ci.value_size() as usize == size_of::<LogCursor>(),
            "{} and {} do not have this build's layout",
            m::LOG,
            m::LOG_CURSORS
        );
        // The program was loaded with the slots per CPU these maps were made with.
        let slots = slots_per_cpu(li.max_entries(), cpus)?;
        let events =
            Mapping::new(&log, m::LOG, li.max_entries() as usize * size_of::<RenewEvent>(), false)?;
        let cursors =
            Mapping::new(&cursors, m::LOG_CURSORS, cpus as usize * size_of::<LogCursor>(), true)?;
        // The fds may close now: a mapping keeps its map alive.
        Ok(Self { events, cursors, cpus, slots, skipped: 0 })
    }

    #[expect(clippy::cast_ptr_alignment, reason = "the mapping is page-aligned (mmap)")]
    fn cursor(&self, cpu: u32) -> *mut LogCursor {
        // SAFETY: cpu < self.cpus, the mapping's length in cursors.
        unsafe { self.cursors.ptr.as_ptr().cast::<LogCursor>().add(cpu as usize) }
    }

    /// Events written and not yet drained per CPU, read from the pins with system calls and
    /// without mapping anything writable: for tools that only look (`xdhcp maps dump`).
    pub fn waiting_pinned(dir: &Path) -> Result<Vec<u64>> {
        let cursors: aya::maps::Array<MapData, LogCursor> =
            pinned(dir, m::LOG_CURSORS)?.try_into()?;
        (0..cursors.len())
            .map(|cpu| Ok(cursors.get(&cpu, 0).map(|c| c.head.wrapping_sub(c.tail))?))
            .collect()
    }

    /// Slots per CPU of the pinned log (read from the maps' sizes, nothing mapped).
    pub fn slots_pinned(dir: &Path) -> Result<u32> {
        let log = array(pinned(dir, m::LOG)?, m::LOG)?.info()?.max_entries();
        let cpus = array(pinned(dir, m::LOG_CURSORS)?, m::LOG_CURSORS)?.info()?.max_entries();
        slots_per_cpu(log, cpus)
    }

    /// Slots per CPU.
    #[must_use]
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Events written and not yet drained, per CPU.
    #[must_use]
    pub fn waiting(&self) -> Vec<u64> {
        (0..self.cpus)
            .map(|cpu| {
                let c = self.cursor(cpu);
                // SAFETY: whole-field volatile loads from the shared mapping.
                let (h, t) = unsafe {
                    ((&raw const (*c).head).read_volatile(), (&raw const (*c).tail).read_volatile())
                };
                h.wrapping_sub(t)
            })
            .collect()
    }

    /// Appends every event written so far, oldest first: each CPU's region is in order, and the
    /// CPUs' are merged by time, so a lease's renewals arrive in the order they were granted
    /// (its CLTT only moves forward).
    #[expect(
        clippy::cast_possible_truncation,
        reason = "waiting <= slots, a u32; seq is masked to a slot"
    )]
    pub fn drain(&mut self, out: &mut Vec<RenewEvent>) {
        let start = out.len();
        #[expect(clippy::cast_ptr_alignment, reason = "the mapping is page-aligned (mmap)")]
        let base = self.events.ptr.as_ptr().cast::<RenewEvent>();
        for cpu in 0..self.cpus {
            let c = self.cursor(cpu);
            // SAFETY: whole-field volatile loads and stores in the shared mapping; `tail` is
            // ours alone to write.
            unsafe {
                let head = (&raw const (*c).head).read_volatile();
                let tail = (&raw const (*c).tail).read_volatile();
                // The events before `head` were stored before it.
                fence(Ordering::Acquire);
                let waiting = head.wrapping_sub(tail);
                if waiting > u64::from(self.slots) {
                    tracing::warn!(cpu, head, tail, "event log cursor out of range; resynced");
                    self.skipped += waiting;
                } else {
                    out.reserve(waiting as usize);
                    for seq in tail..tail + waiting {
                        let slot = cpu * self.slots + (seq as u32 & (self.slots - 1));
                        out.push(base.add(slot as usize).read_volatile());
                    }
                }
                // The copies above are done before XDP may reuse their slots.
                fence(Ordering::Release);
                (&raw mut (*c).tail).write_volatile(head);
            }
        }
        // Sorted runs, one per CPU: the stable sort merges them in linear time.
        out[start..].sort_by_key(|e| e.at_ns);
    }
}

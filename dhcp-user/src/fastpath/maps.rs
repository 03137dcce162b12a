//! Typed access to the fast path's maps, from a loaded object or from their pins.
use std::{collections::BTreeMap, net::Ipv4Addr, path::Path};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{Array, Map, MapData, PerCpuArray},
};
use dhcp_common::{Control, KernelClock, LeaseEntry, ReplyProfile, Stat, maps as m};

use super::eventlog::Mapping;
use serde::Serialize;

pub struct FastPathMaps {
    pub leases: Array<MapData, LeaseEntry>,
    /// The lease table mapped into this process: slots are read and written with loads and
    /// stores, not a system call each (a cold start writes a million). A slot written while
    /// XDP reads it is a mixture, which its digest refuses, as with a system call's copy.
    table: Mapping,
    pub pages: Array<MapData, u32>,
    pub blocks: Array<MapData, u32>,
    /// What `pages` and `blocks` hold (/16 → page, /24 → first slot), as last read or written
    /// here.
    page_of: BTreeMap<u32, u32>,
    bases: BTreeMap<u32, u32>,
    /// Which slots of a /24 hold its leases (a bit each), for the blocks allocated or deleted
    /// from since the maps were opened (others are read from the map when first needed): a
    /// block whose last lease goes is given back, and so is a /16 page whose last block goes,
    /// so that a long-lived table follows the addresses in use, not every /24 it ever held.
    occupied: BTreeMap<u32, [u64; 4]>,
    profiles: Profiles,
    pub control: Array<MapData, Control>,
    pub stats: PerCpuArray<MapData, u64>,
}

/// The reply profiles. In another build's object from before them (`xdhcp-lab bench fastpath
/// --compare` against an older commit), the per-subnet table they replaced, `XDHCP_SUBNETS`,
/// written in its layout: [`ReplyProfile`]'s fields but for the flags and the long block.
enum Profiles {
    Table(Array<MapData, ReplyProfile>),
    Subnets(Array<MapData, [u8; SUBNETS_V1_VALUE]>),
}

const SUBNETS_V1: &str = "XDHCP_SUBNETS";
/// server id, enabled, T1, T2, a 96-byte block and its sum, the open block and its sum.
const SUBNETS_V1_VALUE: usize = 16 + 2 * (m::PROFILE_OPTS_LEN + 4);

impl Profiles {
    fn of_object(ebpf: &mut Ebpf) -> Result<Self> {
        if ebpf.map(m::PROFILES).is_none() && ebpf.map(SUBNETS_V1).is_some() {
            return Ok(Self::Subnets(take(ebpf, SUBNETS_V1)?.try_into()?));
        }
        Ok(Self::Table(take(ebpf, m::PROFILES)?.try_into()?))
    }

    fn set(&mut self, index: u32, p: &ReplyProfile) -> Result<()> {
        match self {
            Self::Table(t) => Ok(t.set(index, p, 0)?),
            Self::Subnets(t) => {
                anyhow::ensure!(
                    p.flags & ReplyProfile::F_LONG == 0,
                    "a long profile does not fit that build's subnet table"
                );
                let block = |b: &[u8; m::PROFILE_LONG_OPTS_LEN]| b[..m::PROFILE_OPTS_LEN].to_vec();
                let v: Vec<u8> = [
                    &p.server_id[..],
                    &p.enabled.to_ne_bytes(),
                    &p.t1_secs.to_ne_bytes(),
                    &p.t2_secs.to_ne_bytes(),
                    &block(&p.opts),
                    &p.opts_sum.to_ne_bytes(),
                    &block(&p.open_opts),
                    &p.open_sum.to_ne_bytes(),
                ]
                .concat();
                Ok(t.set(index, <[u8; SUBNETS_V1_VALUE]>::try_from(v.as_slice())?, 0)?)
            }
        }
    }
}

/// The first of `candidates` not in `used`.
fn lowest_free<'a>(
    used: impl Iterator<Item = &'a u32>,
    mut candidates: impl Iterator<Item = u32>,
) -> Option<u32> {
    let used: std::collections::HashSet<u32> = used.copied().collect();
    candidates.find(|c| !used.contains(c))
}

fn mapped(leases: &Array<MapData, LeaseEntry>) -> Result<Mapping> {
    let size = leases.len() as usize * std::mem::size_of::<LeaseEntry>();
    Mapping::new(aya::maps::IterableMap::map(leases), m::LEASES, size, true)
}

pub(crate) fn take(ebpf: &mut Ebpf, name: &str) -> Result<Map> {
    ebpf.take_map(name).with_context(|| format!("map {name} missing from the object"))
}

pub(crate) fn pinned(dir: &Path, name: &str) -> Result<Map> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| format!("open {}", path.display()))?;
    Ok(Map::from_map_data(data)?)
}

impl FastPathMaps {
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        let leases = take(ebpf, m::LEASES)?.try_into()?;
        Self {
            table: mapped(&leases)?,
            leases,
            pages: take(ebpf, m::PAGES)?.try_into()?,
            blocks: take(ebpf, m::BLOCKS)?.try_into()?,
            page_of: BTreeMap::new(),
            bases: BTreeMap::new(),
            occupied: BTreeMap::new(),
            profiles: Profiles::of_object(ebpf)?,
            control: take(ebpf, m::CONTROL)?.try_into()?,
            stats: take(ebpf, m::STATS)?.try_into()?,
        }
        .with_bases()
    }

    /// Opens the maps pinned in `dir`, whether or not a daemon runs.
    pub fn open_pinned(dir: &Path) -> Result<Self> {
        let leases = pinned(dir, m::LEASES)?.try_into()?;
        Self {
            table: mapped(&leases)?,
            leases,
            pages: pinned(dir, m::PAGES)?.try_into()?,
            blocks: pinned(dir, m::BLOCKS)?.try_into()?,
            page_of: BTreeMap::new(),
            bases: BTreeMap::new(),
            occupied: BTreeMap::new(),
            profiles: Profiles::Table(pinned(dir, m::PROFILES)?.try_into()?),
            control: pinned(dir, m::CONTROL)?.try_into()?,
            stats: pinned(dir, m::STATS)?.try_into()?,
        }
        .with_bases()
    }

    pub fn control(&self) -> Result<Control> {
        Ok(self.control.get(&0, 0)?)
    }

    /// Writes the settings of `c`; its clock is ignored, the control entry keeps the one the
    /// loader set ([`FastPathMaps::set_clock`]), so no setting can stop XDP's clock.
    pub fn set_control(&mut self, mut c: Control) -> Result<()> {
        c.clock = self.control()?.clock;
        Ok(self.control.set(0, c, 0)?)
    }

    pub fn set_clock(&mut self, clock: KernelClock) -> Result<()> {
        let mut c = self.control()?;
        c.clock = clock;
        Ok(self.control.set(0, c, 0)?)
    }

    fn with_bases(mut self) -> Result<Self> {
        self.read_bases()?;
        Ok(self)
    }

    fn read_bases(&mut self) -> Result<()> {
        self.page_of.clear();
        self.bases.clear();
        self.occupied.clear();
        for p16 in 0..self.pages.len() {
            let Some(page) = self.pages.get(&p16, 0).context("read the page map")?.checked_sub(1)
            else {
                continue;
            };
            self.page_of.insert(p16, page);
            for o in 0..m::BLOCK_SLOTS {
                let at = page * m::BLOCK_SLOTS + o;
                if let Some(base) =
                    self.blocks.get(&at, 0).context("read the block map")?.checked_sub(1)
                {
                    self.bases.insert(p16 << 8 | o, base);
                }
            }
        }
        Ok(())
    }

    /// The entry in slot `i` (< the table's length).
    fn read_slot(&self, i: u32) -> Result<LeaseEntry> {
        anyhow::ensure!(i < self.leases.len(), "slot {i} beyond the lease table");
        // SAFETY: i is within the mapping, whose length is the table's in entries; the
        // mapping is page-aligned and entries are 64 bytes, so the read is aligned.
        Ok(unsafe { self.slots().add(i as usize).read_volatile() })
    }

    fn write_slot(&mut self, i: u32, e: LeaseEntry) -> Result<()> {
        anyhow::ensure!(i < self.leases.len(), "slot {i} beyond the lease table");
        // SAFETY: as in read_slot; the mapping is writable.
        unsafe { self.slots().add(i as usize).write_volatile(e) };
        Ok(())
    }

    #[expect(clippy::cast_ptr_alignment, reason = "the mapping is page-aligned (mmap)")]
    fn slots(&self) -> *mut LeaseEntry {
        self.table.ptr.as_ptr().cast::<LeaseEntry>()
    }

    /// The slot of `addr` in [`m::LEASES`], if its block has one.
    #[must_use]
    pub fn slot(&self, addr: Ipv4Addr) -> Option<u32> {
        let a = u32::from(addr);
        self.bases.get(&(a >> 8)).map(|b| b + (a & 0xff))
    }

    /// The slot of `addr`, giving its /16 a page and its /24 the lowest free run of slots if
    /// they have none.
    ///
    /// One writer at a time: the tables are read when the maps are opened and kept up to date
    /// here. The daemon and the commands that write by hand take [`crate::fastpath::WriterLock`]
    /// before opening; the lab and tests that open pins themselves keep to one writer by
    /// construction. Two writers allocating at once could hand two blocks the same slots: that
    /// would cost the fast path for those addresses (each entry answers only for its own
    /// address), never a wrong answer.
    fn slot_or_allocate(&mut self, addr: Ipv4Addr) -> Result<u32> {
        if let Some(s) = self.slot(addr) {
            return Ok(s);
        }
        let a = u32::from(addr);
        let room = |what: &str, n: u32| {
            format!("no room for {addr}: all {n} {what} of the fast-path lease table are in use")
        };
        let page = if let Some(p) = self.page_of.get(&(a >> 16)) {
            *p
        } else if let Some(p) = self.pages.get(&(a >> 16), 0)?.checked_sub(1) {
            p
        } else {
            let n = self.blocks.len() / m::BLOCK_SLOTS;
            let p =
                lowest_free(self.page_of.values(), 0..n).with_context(|| room("/16 pages", n))?;
            self.pages.set(a >> 16, p + 1, 0).with_context(|| format!("add the page of {addr}"))?;
            p
        };
        self.page_of.insert(a >> 16, page);
        let at = page * m::BLOCK_SLOTS + ((a >> 8) & 0xff);
        let base = if let Some(b) = self.blocks.get(&at, 0)?.checked_sub(1) {
            b
        } else {
            let n = self.leases.len() / m::BLOCK_SLOTS;
            let b = lowest_free(self.bases.values(), (0..n).map(|i| i * m::BLOCK_SLOTS))
                .with_context(|| room("/24 blocks", n))?;
            self.blocks.set(at, b + 1, 0).with_context(|| format!("add the block of {addr}"))?;
            // Its slots were emptied when it was given back (or never held anything).
            self.occupied.insert(a >> 8, [0; 4]);
            b
        };
        self.bases.insert(a >> 8, base);
        Ok(base + (a & 0xff))
    }

    pub fn put_lease(&mut self, addr: Ipv4Addr, e: &LeaseEntry) -> Result<()> {
        let slot = self.slot_or_allocate(addr)?;
        self.write_slot(slot, e.sealed(addr.octets()))
            .with_context(|| format!("put lease {addr}"))?;
        // Only a block already counted is updated: one not read yet is counted from the map,
        // this lease included, when a delete first needs it (not at start-up, when the daemon
        // puts every lease it has again).
        let a = u32::from(addr);
        if let Some(bits) = self.occupied.get_mut(&(a >> 8)) {
            let (word, bit) = slot_bit(a);
            bits[word] |= bit;
        }
        Ok(())
    }

    /// Empties the slot of `addr`; an error if it held no lease for it. The last lease of a
    /// /24 gives its block back (and the last block of a /16 its page).
    pub fn delete_lease(&mut self, addr: Ipv4Addr) -> Result<()> {
        if self.lease(addr).is_none() {
            anyhow::bail!("delete lease {addr}: the fast path has none");
        }
        let slot = self.slot(addr).context("no slot")?;
        self.write_slot(slot, LeaseEntry::default())
            .with_context(|| format!("delete lease {addr}"))?;
        let a = u32::from(addr);
        let bits = self.occupancy(a >> 8)?;
        let (word, bit) = slot_bit(a);
        bits[word] &= !bit;
        if *bits == [0; 4] {
            self.free_block(a >> 8)?;
        }
        Ok(())
    }

    /// The occupancy of the /24 `prefix` (which has a block), read from the map the first
    /// time.
    fn occupancy(&mut self, prefix: u32) -> Result<&mut [u64; 4]> {
        if !self.occupied.contains_key(&prefix) {
            let base = *self.bases.get(&prefix).context("no block")?;
            let mut bits = [0u64; 4];
            for i in 0..m::BLOCK_SLOTS {
                let e = self.read_slot(base + i).context("read the lease map")?;
                let a = prefix << 8 | i;
                if e.holds(Ipv4Addr::from(a).octets()) {
                    let (word, bit) = slot_bit(a);
                    bits[word] |= bit;
                }
            }
            self.occupied.insert(prefix, bits);
        }
        self.occupied.get_mut(&prefix).context("no block")
    }

    /// Gives the block of the /24 `prefix` back (all its slots are empty), and its /16's page
    /// when no block is left in it. XDP may still hold the old block's base for a moment and
    /// find the slot handed to another /24 since: a slot answers only for its own address.
    fn free_block(&mut self, prefix: u32) -> Result<()> {
        let p16 = prefix >> 8;
        let page = *self.page_of.get(&p16).context("no page")?;
        self.blocks
            .set(page * m::BLOCK_SLOTS + (prefix & 0xff), 0, 0)
            .context("give a block back")?;
        self.bases.remove(&prefix);
        self.occupied.remove(&prefix);
        if self.bases.range(p16 << 8..=p16 << 8 | 0xff).next().is_none() {
            self.pages.set(p16, 0, 0).context("give a page back")?;
            self.page_of.remove(&p16);
        }
        Ok(())
    }

    #[must_use]
    pub fn lease(&self, addr: Ipv4Addr) -> Option<LeaseEntry> {
        let e = self.read_slot(self.slot(addr)?).ok()?;
        e.holds(addr.octets()).then_some(e)
    }

    /// Every lease entry with its address, in address order (blocks as read at open or added
    /// here since). XDP may be stamping an entry meanwhile: `holds` refuses a torn one.
    fn entries(&self) -> impl Iterator<Item = Result<(Ipv4Addr, LeaseEntry)>> + '_ {
        self.bases.iter().flat_map(move |(prefix, base)| {
            (0..m::BLOCK_SLOTS).filter_map(move |i| {
                let addr = Ipv4Addr::from(prefix << 8 | i);
                match self.read_slot(base + i) {
                    Ok(e) => e.holds(addr.octets()).then_some(Ok((addr, e))),
                    Err(err) => Some(Err(err)),
                }
            })
        })
    }

    /// The addresses of all lease entries, sorted.
    pub fn lease_addresses(&self) -> Result<Vec<Ipv4Addr>> {
        self.entries().map(|r| r.map(|(a, _)| a)).collect()
    }

    /// All lease entries, sorted by address.
    pub fn leases(&self) -> Result<Vec<(Ipv4Addr, LeaseEntry)>> {
        self.entries().collect()
    }

    /// Writes reply profile `index` (below [`m::PROFILES_MAX`]), which the leases naming it
    /// ([`LeaseEntry::profile`]) are answered with from then on.
    pub fn set_profile(&mut self, index: u32, p: &ReplyProfile) -> Result<()> {
        self.profiles.set(index, p).with_context(|| format!("set reply profile {index}"))
    }

    /// Whether this object has the reply profiles (another build's may have the per-subnet
    /// table before them, which holds no long block).
    #[must_use]
    pub fn has_profiles(&self) -> bool {
        matches!(self.profiles, Profiles::Table(_))
    }

    /// Counters summed over CPUs, in [`Stat`] order (those another build's object has, for
    /// one with fewer: `bench fastpath --compare`).
    pub fn stats(&self) -> Result<Counters> {
        let mut c = Counters::default();
        let len = self.stats.len();
        for s in Stat::ALL.iter().filter(|s| (**s as u32) < len) {
            let per_cpu = self.stats.get(&(*s as u32), 0)?;
            c.values.push((*s, per_cpu.iter().sum()));
        }
        Ok(c)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub values: Vec<(Stat, u64)>,
}

impl Counters {
    #[must_use]
    pub fn get(&self, s: Stat) -> u64 {
        self.values.iter().find(|(k, _)| *k == s).map_or(0, |(_, v)| *v)
    }

    /// Counts since `earlier`.
    #[must_use]
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters { values: self.values.iter().map(|(s, v)| (*s, v - earlier.get(*s))).collect() }
    }

    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.values.iter().map(|(s, v)| (s.name().to_owned(), (*v).into())).collect(),
        )
    }
}

/// A lease entry as shown by `xdhcp maps dump`.
#[derive(Serialize)]
pub struct LeaseView {
    pub addr: Ipv4Addr,
    pub chaddr: String,
    pub profile: u32,
    pub lease_secs: u32,
    pub client_id_digest: Option<String>,
    /// The digest of the option 82 on record, "slow-path" when the fast path leaves renewals
    /// with option 82 to the slow path, none when there is none on record.
    pub relay_info_digest: Option<String>,
    /// Seconds of committed grant left (negative: expired), relative to `now_ns`.
    pub grant_left_secs: i64,
    pub last_renewed_ago_secs: Option<i64>,
    pub last_renewed_secs: u32,
}

impl LeaseView {
    #[must_use]
    pub fn new(addr: Ipv4Addr, e: &LeaseEntry, now_ns: u64) -> Self {
        #[expect(clippy::cast_possible_truncation, reason = "monotonic ns, far below 2^63 apart")]
        let secs = |ns: u64| (i128::from(ns) - i128::from(now_ns)) as i64 / 1_000_000_000;
        Self {
            addr,
            chaddr: crate::packet::fmt_mac(&e.chaddr),
            profile: e.profile,
            lease_secs: e.lease_secs,
            client_id_digest: (e.flags & LeaseEntry::F_CLIENT_ID != 0)
                .then(|| format!("{:016x}", e.client_id_digest)),
            relay_info_digest: if e.flags & LeaseEntry::F_RELAY_INFO != 0 {
                Some(format!("{:016x}", e.relay_digest))
            } else if e.flags & LeaseEntry::F_RELAY_SLOW != 0 {
                Some("slow-path".into())
            } else {
                None
            },
            grant_left_secs: secs(e.grant_until_ns),
            last_renewed_ago_secs: (e.renewed_at_ns != 0).then(|| -secs(e.renewed_at_ns)),
            last_renewed_secs: e.renewed_secs,
        }
    }
}

/// Where the slot of address `a` sits in its /24's occupancy bits: the word and the bit.
fn slot_bit(a: u32) -> (usize, u64) {
    ((a as usize & 0xff) / 64, 1 << (a & 63))
}

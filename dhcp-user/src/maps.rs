//! Typed access to the fast path's maps, from a loaded object or from their pins.
use std::{net::Ipv4Addr, path::Path};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf},
};
use dhcp_common::{Control, LeaseEntry, LeaseKey, RenewEvent, Stat, SubnetReply, maps as m};
use serde::Serialize;

pub struct FastPathMaps {
    pub leases: HashMap<MapData, LeaseKey, LeaseEntry>,
    pub subnets: Array<MapData, SubnetReply>,
    pub control: Array<MapData, Control>,
    pub stats: PerCpuArray<MapData, u64>,
}

fn take(ebpf: &mut Ebpf, name: &str) -> Result<Map> {
    ebpf.take_map(name).with_context(|| format!("map {name} missing from the object"))
}

fn pinned(dir: &Path, name: &str) -> Result<Map> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| format!("open {}", path.display()))?;
    Ok(Map::from_map_data(data)?)
}

impl FastPathMaps {
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        Ok(Self {
            leases: take(ebpf, m::LEASES)?.try_into()?,
            subnets: take(ebpf, m::SUBNETS)?.try_into()?,
            control: take(ebpf, m::CONTROL)?.try_into()?,
            stats: take(ebpf, m::STATS)?.try_into()?,
        })
    }

    /// Opens the maps pinned in `dir`, whether or not a daemon runs.
    pub fn open_pinned(dir: &Path) -> Result<Self> {
        Ok(Self {
            leases: pinned(dir, m::LEASES)?.try_into()?,
            subnets: pinned(dir, m::SUBNETS)?.try_into()?,
            control: pinned(dir, m::CONTROL)?.try_into()?,
            stats: pinned(dir, m::STATS)?.try_into()?,
        })
    }

    pub fn control(&self) -> Result<Control> {
        Ok(self.control.get(&0, 0)?)
    }

    pub fn set_control(&mut self, c: Control) -> Result<()> {
        Ok(self.control.set(0, c, 0)?)
    }

    pub fn put_lease(&mut self, addr: Ipv4Addr, e: &LeaseEntry) -> Result<()> {
        self.leases
            .insert(LeaseKey { addr: addr.octets() }, e, 0)
            .with_context(|| format!("put lease {addr}"))
    }

    pub fn delete_lease(&mut self, addr: Ipv4Addr) -> Result<()> {
        self.leases
            .remove(&LeaseKey { addr: addr.octets() })
            .with_context(|| format!("delete lease {addr}"))
    }

    pub fn lease(&self, addr: Ipv4Addr) -> Option<LeaseEntry> {
        self.leases.get(&LeaseKey { addr: addr.octets() }, 0).ok()
    }

    /// All lease entries, sorted by address.
    pub fn leases(&self) -> Result<Vec<(Ipv4Addr, LeaseEntry)>> {
        let mut v = Vec::new();
        for kv in self.leases.iter() {
            let (k, e) = kv?;
            v.push((Ipv4Addr::from(k.addr), e));
        }
        v.sort_by_key(|(a, _)| *a);
        Ok(v)
    }

    pub fn set_subnet(&mut self, index: u32, s: &SubnetReply) -> Result<()> {
        self.subnets.set(index, s, 0).with_context(|| format!("set subnet {index}"))
    }

    /// Counters summed over CPUs, in [`Stat`] order.
    pub fn stats(&self) -> Result<Counters> {
        let mut c = Counters::default();
        for s in Stat::ALL {
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

/// The ring of [`RenewEvent`]s.
pub struct Events(pub RingBuf<MapData>);

impl Events {
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        Ok(Self(take(ebpf, m::EVENTS)?.try_into()?))
    }

    pub fn open_pinned(dir: &Path) -> Result<Self> {
        Ok(Self(pinned(dir, m::EVENTS)?.try_into()?))
    }

    /// Takes every event that is ready.
    pub fn drain(&mut self, out: &mut Vec<RenewEvent>) {
        while let Some(item) = self.0.next() {
            if let Ok(ev) = bytemuck::try_pod_read_unaligned::<RenewEvent>(&item) {
                out.push(ev);
            }
        }
    }
}

/// A lease entry as shown by `xdhcp maps dump`.
#[derive(Serialize)]
pub struct LeaseView {
    pub addr: Ipv4Addr,
    pub chaddr: String,
    pub subnet: u32,
    pub lease_secs: u32,
    pub client_id_digest: Option<String>,
    /// Seconds of committed grant left (negative: expired), relative to `now_ns`.
    pub grant_left_secs: i64,
    pub last_renewed_ago_secs: Option<i64>,
    pub last_renewed_secs: u32,
}

impl LeaseView {
    #[must_use]
    pub fn new(addr: Ipv4Addr, e: &LeaseEntry, now_ns: u64) -> Self {
        let secs = |ns: u64| (i128::from(ns) - i128::from(now_ns)) as i64 / 1_000_000_000;
        Self {
            addr,
            chaddr: crate::packet::fmt_mac(&e.chaddr),
            subnet: e.subnet,
            lease_secs: e.lease_secs,
            client_id_digest: (e.flags & LeaseEntry::F_CLIENT_ID != 0)
                .then(|| format!("{:016x}", e.client_id_digest)),
            grant_left_secs: secs(e.grant_until_ns),
            last_renewed_ago_secs: (e.renewed_at_ns != 0).then(|| -secs(e.renewed_at_ns)),
            last_renewed_secs: e.renewed_secs,
        }
    }
}

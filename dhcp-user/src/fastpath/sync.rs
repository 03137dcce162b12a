//! Keeps the kernel maps true to the store. Only the daemon calls this, and only with the map
//! operations of a turn that has committed what they write: a map entry's `grant_until_ns` is the committed
//! `held_until`, moved from unix time to the kernel's monotonic clock.
use std::net::Ipv4Addr;

use anyhow::Result;
use dhcp_common::{Control, LeaseEntry, RenewEvent, digest};
use tracing::warn;

use crate::{
    config::Config,
    core::Now,
    fastpath::{
        self, AttachMode, clock,
        eventlog::EventLog,
        maps::FastPathMaps,
        police::{self, PoliceMaps},
    },
    server::{FastPathLease, MapOp},
};

/// The kernel entry for a lease: `None` when its horizon has passed.
#[must_use]
pub fn entry(l: &FastPathLease, now: Now) -> Option<LeaseEntry> {
    let left = l.held_until.checked_sub(now.unix).filter(|s| *s > 0)?;
    let digest = l.client_id.as_deref().and_then(digest::client_id);
    // A client id the kernel cannot compare (too long) keeps the lease out of the fast path:
    // comparing only the MAC would let another identifier renew it.
    if l.client_id.is_some() && digest.is_none() {
        return None;
    }
    // Renewals carrying option 82 are answered only with the value on record, and only when
    // the fast path can echo it as the slow path does.
    let (relay_digest, relay_flag) = match l.relay_info.as_deref() {
        None => (0, 0),
        Some(r) if crate::relay::fast_path_eligible(r) => {
            (digest::relay_info(r).unwrap_or(0), LeaseEntry::F_RELAY_INFO)
        }
        Some(_) => (0, LeaseEntry::F_RELAY_SLOW),
    };
    let id_flag = if digest.is_some() { LeaseEntry::F_CLIENT_ID } else { 0 };
    Some(LeaseEntry {
        grant_until_ns: clock::grant_until_ns(now.mono_ns, left),
        client_id_digest: digest.unwrap_or(0),
        relay_digest,
        renewed_at_ns: 0,
        lease_secs: l.lease_secs,
        profile: l.profile,
        flags: id_flag | relay_flag,
        renewed_secs: 0,
        chaddr: l.chaddr,
        ..Default::default()
    })
}

/// What [`KernelMaps::reconcile`] did, summed over interfaces.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub put: usize,
    pub kept: usize,
    pub removed: usize,
}

/// Whether the pinned entry `pinned` grants what `wanted` (freshly computed from the store)
/// does. The horizon is computed from whole unix seconds, so two computations of the same
/// committed `held_until` differ by up to a second either way; anything further apart (a
/// stepped clock, a horizon the store moved) is written again.
#[must_use]
pub fn same_grant(pinned: &LeaseEntry, wanted: &LeaseEntry, addr: Ipv4Addr) -> bool {
    const SECOND: u64 = 1_000_000_000;
    let aligned = LeaseEntry {
        grant_until_ns: pinned.grant_until_ns,
        renewed_at_ns: pinned.renewed_at_ns,
        renewed_secs: pinned.renewed_secs,
        ..*wanted
    }
    .sealed(addr.octets());
    aligned == *pinned && pinned.grant_until_ns.abs_diff(wanted.grant_until_ns) <= SECOND
}

/// Writes every reply profile of `cfg` into the kernel's table. A profile whose options the
/// fast path cannot hold is written disabled: XDP passes its renewals to the slow path.
pub fn set_profiles(maps: &mut FastPathMaps, cfg: &Config) -> Result<()> {
    for (id, p) in cfg.profiles.iter() {
        let Some(s) = cfg.subnet(p.subnet) else { continue };
        let reply = match crate::config::model::fast_path_options(cfg.server_id, s, &p.options)
            .encode()
        {
            Ok(r) => r,
            Err(e) => {
                warn!(profile = id, subnet = %s.prefix, "the slow path renews these leases: {e}");
                <dhcp_common::ReplyProfile as bytemuck::Zeroable>::zeroed()
            }
        };
        maps.set_profile(id, &reply)?;
    }
    Ok(())
}

pub struct Iface {
    pub name: String,
    pub maps: FastPathMaps,
    pub events: EventLog,
    /// Leases that found no slot (the table is full): the slow path answers them.
    pub no_room: u64,
    warned: Option<std::time::Instant>,
    /// Held while the daemon runs: `xdhcp lease` and friends by hand, or a second daemon on
    /// this interface, are refused instead of writing the same maps.
    _writer: fastpath::WriterLock,
}

impl Iface {
    /// Writes one lease entry. A full table only costs speed: the lease is in the store and
    /// the slow path answers its client. Counted, and said once a minute.
    fn put(&mut self, addr: Ipv4Addr, e: &LeaseEntry) {
        let Err(err) = self.maps.put_lease(addr, e) else { return };
        self.no_room += 1;
        let now = std::time::Instant::now();
        if self.warned.is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_mins(1)) {
            self.warned = Some(now);
            warn!(
                iface = %self.name,
                addr = %addr,
                not_in_kernel = self.no_room,
                "fast path map update failed, so the slow path answers these clients: {err:#} \
                 (raise fast_path.lease_capacity, then `xdhcp detach` and restart)"
            );
        }
    }
}

/// How long a starting daemon waits for the writer lock of its interfaces.
const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The fast path of every interface. A lease goes into every interface's map: relayed clients
/// arrive on whichever uplink routes them.
pub struct KernelMaps {
    pub ifaces: Vec<Iface>,
}

impl KernelMaps {
    /// Attaches (or adopts the pinned) fast path on each interface and loads the subnets' reply
    /// data. The control entry stays off until [`KernelMaps::enable`].
    pub fn attach(cfg: &Config, mode: AttachMode) -> Result<Self> {
        let mut attached_now: Vec<String> = Vec::new();
        Self::attach_all(cfg, mode, &mut attached_now).inspect_err(|_| {
            // A start that fails leaves nothing behind: what this start pinned goes again.
            for iface in &attached_now {
                let _ = fastpath::detach(iface);
            }
        })
    }

    fn attach_all(cfg: &Config, mode: AttachMode, attached_now: &mut Vec<String>) -> Result<Self> {
        let mut ifaces = Vec::new();
        for name in &cfg.interfaces {
            // A predecessor that is still exiting (a restart) lets go within moments.
            let slots = Some(cfg.fast_path.event_log_slots);
            let cap = Some(cfg.fast_path.lease_capacity);
            let a = fastpath::attach(name, mode, false, slots, cap, WRITER_WAIT)?;
            let dir = fastpath::pin_dir(name);
            if a.new {
                attached_now.push(name.clone());
            }
            tracing::info!(iface = %name, mode = a.mode, adopted = !a.new, "fast path attached");
            let mut maps = FastPathMaps::open_pinned(&dir)?;
            set_profiles(&mut maps, cfg)?;
            let local = crate::packet_socket::interface_addr(name);
            PoliceMaps::open_pinned(&dir)?.set(&police::plan(cfg, local))?;
            let events = EventLog::open_pinned(&dir)?;
            ifaces.push(Iface {
                name: name.clone(),
                maps,
                events,
                no_room: 0,
                warned: None,
                _writer: a.writer,
            });
        }
        Ok(Self { ifaces })
    }

    /// Switches the fast path on (or off), with or without events.
    pub fn enable(&mut self, on: bool, events: bool) -> Result<()> {
        for i in &mut self.ifaces {
            let mut c = i.maps.control()?;
            c.enabled = u32::from(on);
            c.flags =
                if events { c.flags | Control::F_EVENTS } else { c.flags & !Control::F_EVENTS };
            i.maps.set_control(c)?;
        }
        Ok(())
    }

    /// Makes each map hold exactly `entries` (the store wins): at start, after a restart.
    /// An entry already pinned that says what the store says is left alone, stamps and all: a
    /// restart over a million unchanged leases writes none of them.
    pub fn reconcile(&mut self, entries: &[FastPathLease], now: Now) -> Result<Reconciled> {
        // Sorted once and searched: a million addresses cost 4 MB and a sort, where a hash
        // set of them took longer to build than the walk it serves.
        let mut want: Vec<Ipv4Addr> = entries.iter().map(|l| l.address).collect();
        want.sort_unstable();
        let mut r = Reconciled::default();
        for i in &mut self.ifaces {
            for addr in i.maps.lease_addresses()? {
                if want.binary_search(&addr).is_err() {
                    r.removed += usize::from(i.maps.delete_lease(addr).is_ok());
                }
            }
            for l in entries {
                let pinned = i.maps.lease(l.address);
                match entry(l, now) {
                    None if pinned.is_some() => {
                        r.removed += usize::from(i.maps.delete_lease(l.address).is_ok());
                    }
                    None => {}
                    Some(e) if pinned.is_some_and(|p| same_grant(&p, &e, l.address)) => r.kept += 1,
                    Some(e) => {
                        i.put(l.address, &e);
                        r.put += 1;
                    }
                }
            }
        }
        Ok(r)
    }

    fn upsert(&mut self, l: &FastPathLease, now: Now) -> bool {
        let Some(e) = entry(l, now) else {
            self.delete(l.address);
            return false;
        };
        for i in &mut self.ifaces {
            i.put(l.address, &e);
        }
        true
    }

    fn delete(&mut self, a: Ipv4Addr) {
        for i in &mut self.ifaces {
            let _ = i.maps.delete_lease(a);
        }
    }

    /// Applies the map updates of a committed batch.
    pub fn apply(&mut self, ops: &[MapOp], now: Now) {
        for op in ops {
            match op {
                MapOp::Upsert(l) => {
                    self.upsert(l, now);
                }
                MapOp::Delete(a) => self.delete(*a),
            }
        }
    }

    /// Every renewal the fast path logged since the last drain, oldest first (each interface's
    /// log comes merged by time; several interfaces are merged here).
    pub fn drain_events(&mut self, out: &mut Vec<RenewEvent>) {
        for i in &mut self.ifaces {
            i.events.drain(out);
        }
        if self.ifaces.len() > 1 {
            out.sort_by_key(|e| e.at_ns);
        }
    }
}

impl From<crate::config::AttachMode> for AttachMode {
    fn from(m: crate::config::AttachMode) -> Self {
        match m {
            crate::config::AttachMode::Auto => AttachMode::Auto,
            crate::config::AttachMode::Native => AttachMode::Native,
            crate::config::AttachMode::Generic => AttachMode::Generic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> FastPathLease {
        FastPathLease {
            address: Ipv4Addr::new(10, 0, 0, 7),
            chaddr: [2, 0, 0, 0, 0, 7],
            client_id: None,
            lease_secs: 3600,
            profile: 0,
            held_until: 1_700_003_600,
            relay_info: None,
        }
    }

    fn pinned(l: &FastPathLease, now: Now) -> LeaseEntry {
        entry(l, now).unwrap().sealed(l.address.octets())
    }

    #[test]
    fn a_restart_keeps_the_entry_it_would_write_again_and_rewrites_any_other() {
        let then = Now { unix: 1_700_000_000, mono_ns: 5_000_000_000_000 };
        let l = lease();
        let mut have = pinned(&l, then);
        // XDP renewed it meanwhile: its stamps are its own, not a difference.
        have.renewed_at_ns = then.mono_ns + 7;
        have.renewed_secs = 3600;
        // 40.6 s later by both clocks: the same horizon, computed from whole seconds.
        let later = Now { unix: then.unix + 40, mono_ns: then.mono_ns + 40_600_000_000 };
        assert!(same_grant(&have, &entry(&l, later).unwrap(), l.address));
        // The store moved the horizon; or the wall clock was stepped by a minute.
        let moved = FastPathLease { held_until: l.held_until + 5, ..lease() };
        assert!(!same_grant(&have, &entry(&moved, later).unwrap(), l.address));
        let stepped = Now { unix: later.unix + 60, ..later };
        assert!(!same_grant(&have, &entry(&l, stepped).unwrap(), l.address));
        // Another client, another lease time, another subnet.
        for other in [
            FastPathLease { chaddr: [2, 0, 0, 0, 0, 8], ..lease() },
            FastPathLease { lease_secs: 600, ..lease() },
            FastPathLease { profile: 1, ..lease() },
            FastPathLease { client_id: Some([1, 2, 0, 0, 0, 0, 7].into()), ..lease() },
        ] {
            assert!(!same_grant(&have, &entry(&other, later).unwrap(), l.address), "{other:?}");
        }
        // A torn entry (its digest does not match) is written again.
        let torn = LeaseEntry { lease_secs: 1, ..have };
        assert!(!same_grant(&torn, &entry(&l, later).unwrap(), l.address));
    }
}

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
    fastpath::{self, AttachMode, clock, eventlog::EventLog, maps::FastPathMaps},
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
        subnet: l.subnet,
        flags: id_flag | relay_flag,
        renewed_secs: 0,
        chaddr: l.chaddr,
        ..Default::default()
    })
}

pub struct Iface {
    pub name: String,
    pub maps: FastPathMaps,
    pub events: EventLog,
    /// Held while the daemon runs: `xdhcp lease` and friends by hand, or a second daemon on
    /// this interface, are refused instead of writing the same maps.
    _writer: fastpath::WriterLock,
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
        let mut ifaces = Vec::new();
        for name in &cfg.interfaces {
            // A predecessor that is still exiting (a restart) lets go within moments.
            let slots = Some(cfg.fast_path.event_log_slots);
            let a = fastpath::attach(name, mode, false, slots, WRITER_WAIT)?;
            let dir = fastpath::pin_dir(name);
            tracing::info!(iface = %name, mode = a.mode, adopted = !a.new, "fast path attached");
            let mut maps = FastPathMaps::open_pinned(&dir)?;
            for s in &cfg.subnets {
                maps.set_subnet(s.id.0, &s.fast_path_options(cfg.server_id).encode()?)?;
            }
            let events = EventLog::open_pinned(&dir)?;
            ifaces.push(Iface { name: name.clone(), maps, events, _writer: a.writer });
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
    pub fn reconcile(&mut self, entries: &[FastPathLease], now: Now) -> Result<(usize, usize)> {
        let want: std::collections::HashSet<Ipv4Addr> = entries.iter().map(|l| l.address).collect();
        let (mut put, mut removed) = (0, 0);
        for i in &mut self.ifaces {
            for (addr, _) in i.maps.leases()? {
                if !want.contains(&addr) {
                    i.maps.delete_lease(addr)?;
                    removed += 1;
                }
            }
        }
        for l in entries {
            put += usize::from(self.upsert(l, now));
        }
        Ok((put, removed))
    }

    fn upsert(&mut self, l: &FastPathLease, now: Now) -> bool {
        let Some(e) = entry(l, now) else {
            self.delete(l.address);
            return false;
        };
        for i in &mut self.ifaces {
            if let Err(err) = i.maps.put_lease(l.address, &e) {
                // A full map only costs speed: the slow path answers that client.
                warn!(iface = %i.name, addr = %l.address, "fast path map update failed: {err:#}");
            }
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

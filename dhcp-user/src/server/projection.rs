//! The fast path's view of a lease: what the kernel map holds for it, and the map updates that
//! follow committed changes. Pure functions of the config and the records, so the turn can
//! project a commit without borrowing the engine.
use std::net::Ipv4Addr;

use crate::config::Config;
use crate::store::{ClientId, Lease, LeaseChange, LeaseState};

use super::Server;

/// An active lease as the kernel map needs it; see `dhcp_common::LeaseEntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastPathLease {
    pub address: Ipv4Addr,
    pub chaddr: [u8; 6],
    /// Option 61's value, type byte included, when the lease was bound with one.
    pub client_id: Option<ClientId>,
    /// The option 82 value the slow path last acknowledged the client with, if any.
    pub relay_info: Option<Box<[u8]>>,
    /// The subnet's `lease_time`: what a fast-path renewal grants, before the horizon caps it.
    pub lease_secs: u32,
    /// Index of the lease's reply profile ([`crate::config::Profiles`]) in the kernel's table.
    pub profile: u32,
    /// Committed horizon, unix seconds; the caller converts it to the kernel's monotonic clock
    /// (see [`crate::fastpath::clock`]).
    pub held_until: u64,
}

/// A kernel map update following a committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOp {
    Upsert(FastPathLease),
    Delete(Ipv4Addr),
}

/// The kernel map entry for `l`, if the fast path may renew it at `now`.
#[must_use]
pub fn fast_path_entry(cfg: &Config, l: &Lease, now: u64) -> Option<FastPathLease> {
    if !cfg.fast_path.enabled
        || l.state != LeaseState::Active
        || l.expires_at <= now
        || l.held_until <= now
    {
        return None;
    }
    let s = cfg.subnet(cfg.subnet_containing(l.address)?)?;
    // A class not decided here would be decided by the renewal, which only the slow path
    // reads: with classes configured, such a lease is the slow path's until then.
    let class = match l.class.decided() {
        Some(c) => c,
        None if cfg.classes.is_empty() => None,
        None => return None,
    };
    Some(FastPathLease {
        address: l.address,
        chaddr: l.mac()?,
        client_id: l.client_id.clone(),
        relay_info: l.relay_info.clone(),
        lease_secs: s.lease_time,
        profile: cfg.profiles.lookup(s, l.address, class),
        held_until: l.held_until,
    })
}

/// The kernel map updates that follow committed `changes`.
#[must_use]
pub fn map_ops(cfg: &Config, changes: &[LeaseChange], now: u64) -> Vec<MapOp> {
    changes
        .iter()
        .map(|c| match c {
            LeaseChange::Put(l) => {
                fast_path_entry(cfg, l, now).map_or(MapOp::Delete(l.address), MapOp::Upsert)
            }
            LeaseChange::Remove(a) => MapOp::Delete(*a),
        })
        .collect()
}

impl Server {
    /// [`fast_path_entry`] under this engine's config.
    #[must_use]
    pub fn fast_path_entry(&self, l: &Lease, now: u64) -> Option<FastPathLease> {
        fast_path_entry(&self.cfg, l, now)
    }

    /// Every lease the kernel map should hold at `now` (for a full reconcile at start).
    pub fn fast_path_entries(&self, now: u64) -> impl Iterator<Item = FastPathLease> + '_ {
        self.ix.leases.values().filter_map(move |l| fast_path_entry(&self.cfg, l, now))
    }

    /// [`map_ops`] under this engine's config.
    #[must_use]
    pub fn map_ops(&self, changes: &[LeaseChange], now: u64) -> Vec<MapOp> {
        map_ops(&self.cfg, changes, now)
    }
}

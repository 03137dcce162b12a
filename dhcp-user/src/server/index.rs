//! The engine's in-memory view of the store, with the indexes allocation needs.
//!
//! Every record change goes through [`Index::put`], which keeps the indexes in step and yields
//! the [`LeaseChange`] for the store: the memory view and what gets committed cannot drift.
use std::collections::HashMap;
use std::{net::Ipv4Addr, num::NonZeroU64};

use super::records::Records;
use super::request::ClientKey;
use super::timeline::Timeline;
use crate::config::{Config, SubnetId};
use crate::store::{Lease, LeaseChange, LeaseState};

/// Never-used addresses of one pool are handed out in order from here.
#[derive(Debug, Clone)]
struct Cursor {
    next: u64,
    end: u64,
}

#[derive(Debug, Default)]
struct SubnetIndex {
    fresh: Vec<Cursor>,
    /// Addresses with a non-active record (or a lapsed offer), by the time they may go to a
    /// new client: oldest first, so a returning client likely finds its old address untouched.
    reusable: Timeline,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    /// Every record, by address and (those that bind one) by client and subnet.
    pub leases: Records,
    subnets: Vec<SubnetIndex>,
    /// When each active lease ends and each declined address leaves probation.
    pub timers: Timeline,
    /// Addresses reserved in the config, never allocated from pools to anyone else.
    pub reserved: HashMap<Ipv4Addr, SubnetId>,
    /// Record-less addresses in a `reusable` set (lapsed offers), so a new record can take
    /// them out again.
    loose: HashMap<Ipv4Addr, (usize, u64)>,
}

/// When a record's address may go to a different client: after everything the old client
/// may have been promised, including what the fast path could still grant (`held_until`).
pub(super) fn reuse_at(l: &Lease) -> Option<u64> {
    match l.state {
        LeaseState::Active => None,
        LeaseState::Abandoned => {
            Some(l.probation_until.map_or(0, NonZeroU64::get).max(l.held_until))
        }
        // Backup addresses are the failover secondary's free pool; the server's ownership rule
        // keeps the primary off them.
        LeaseState::Free
        | LeaseState::Backup
        | LeaseState::Expired
        | LeaseState::Released
        | LeaseState::Reset => Some(l.held_until.max(l.expires_at)),
    }
}

fn timer_of(l: &Lease) -> Option<u64> {
    match l.state {
        LeaseState::Active => Some(l.expires_at),
        LeaseState::Abandoned => l.probation_until.map(NonZeroU64::get),
        _ => None,
    }
}

fn binds_client(l: &Lease) -> bool {
    matches!(l.state, LeaseState::Active | LeaseState::Expired | LeaseState::Released)
}

impl Index {
    pub fn new(cfg: &Config) -> Self {
        let mut ix = Index {
            subnets: cfg
                .subnets
                .iter()
                .map(|s| SubnetIndex {
                    fresh: s
                        .pools
                        .iter()
                        .map(|p| Cursor {
                            next: u64::from(u32::from(p.start)),
                            end: u64::from(u32::from(p.end)),
                        })
                        .collect(),
                    reusable: Timeline::default(),
                })
                .collect(),
            ..Index::default()
        };
        for s in &cfg.subnets {
            for r in &s.reservations {
                ix.reserved.insert(r.address, s.id);
            }
        }
        ix
    }

    /// Every record of a store at once. Records in strictly increasing address order (as the
    /// store reads them) take the bulk path; anything else is put one by one.
    pub fn load_all(&mut self, cfg: &Config, leases: Vec<Lease>) {
        let in_order = leases.windows(2).all(|w| w[0].address < w[1].address);
        if !in_order || self.leases.values().next().is_some() || !self.loose.is_empty() {
            for l in leases {
                self.place(cfg, l);
            }
            return;
        }
        self.timers = leases.iter().filter_map(|l| Some((timer_of(l)?, l.address))).collect();
        let mut reusable: Vec<Vec<(u64, Ipv4Addr)>> = vec![Vec::new(); self.subnets.len()];
        for l in &leases {
            let in_pool = cfg.subnet(SubnetId(l.subnet)).is_some_and(|s| s.in_pool(l.address));
            if in_pool
                && !self.reserved.contains_key(&l.address)
                && let (Some(t), Some(r)) = (reuse_at(l), reusable.get_mut(l.subnet as usize))
            {
                r.push((t, l.address));
            }
        }
        for (si, r) in self.subnets.iter_mut().zip(reusable) {
            si.reusable = r.into_iter().collect();
        }
        self.leases = Records::bulk(leases, binds_client);
    }

    /// Replaces the record for `l.address`, keeping every index in step.
    pub fn put(&mut self, cfg: &Config, l: Lease) -> LeaseChange {
        self.place(cfg, l.clone());
        LeaseChange::Put(l)
    }

    fn place(&mut self, cfg: &Config, l: Lease) {
        let in_pool = cfg.subnet(SubnetId(l.subnet)).is_some_and(|s| s.in_pool(l.address));
        if let Some((s, t)) = self.loose.remove(&l.address)
            && let Some(si) = self.subnets.get_mut(s)
        {
            si.reusable.remove(t, l.address);
        }
        if let Some(old) = self.leases.get(l.address) {
            if let Some(t) = timer_of(old) {
                self.timers.remove(t, old.address);
            }
            if let (Some(t), Some(si)) = (reuse_at(old), self.subnets.get_mut(old.subnet as usize))
            {
                si.reusable.remove(t, old.address);
            }
        }
        if let Some(t) = timer_of(&l) {
            self.timers.insert(t, l.address);
        }
        if in_pool
            && !self.reserved.contains_key(&l.address)
            && let (Some(t), Some(si)) = (reuse_at(&l), self.subnets.get_mut(l.subnet as usize))
        {
            si.reusable.insert(t, l.address);
        }
        let binds = binds_client(&l);
        self.leases.put(l, binds);
    }

    /// The client's binding in one of `subnets` (a shared network's) whose address passes `ok`:
    /// its current lease before a previous one, the latest first (RFC 2131 §4.3.1).
    pub fn client_address(
        &self,
        subnets: &[SubnetId],
        key: &ClientKey,
        mut ok: impl FnMut(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        subnets
            .iter()
            .filter_map(|s| self.leases.of_client(s.0, key))
            .filter(|l| ok(l.address))
            .max_by_key(|l| (l.state == LeaseState::Active, l.cltt))
            .map(|l| l.address)
    }

    /// An address of `subnet`'s pools that no record mentions, passing `ok`. The cursor moves
    /// past what it returns: the caller holds the address in an offer and, if the offer lapses,
    /// hands it back through [`Index::give_back`].
    /// Only pools (by index in the subnet's sorted list) passing `pool` are looked in: an
    /// address is skipped for good only when `ok` refuses it.
    pub fn take_fresh(
        &mut self,
        subnet: SubnetId,
        pool: impl Fn(usize) -> bool,
        mut ok: impl FnMut(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let si = self.subnets.get_mut(subnet.index())?;
        for (k, c) in si.fresh.iter_mut().enumerate() {
            if !pool(k) {
                continue;
            }
            while c.next <= c.end {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "next <= end, which came from a u32"
                )]
                let a = Ipv4Addr::from(c.next as u32);
                if self.leases.contains(a) || self.reserved.contains_key(&a) {
                    c.next += 1;
                    continue;
                }
                if !ok(a) {
                    // Held by someone else's offer: it comes back through give_back if unused.
                    c.next += 1;
                    continue;
                }
                c.next += 1;
                return Some(a);
            }
        }
        None
    }

    /// The longest-unused address of `subnet` that may go to a new client at `now` and passes `ok`.
    pub fn take_reusable(
        &self,
        subnet: SubnetId,
        now: u64,
        mut ok: impl FnMut(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let si = self.subnets.get(subnet.index())?;
        si.reusable.due(now).find(|&a| ok(a))
    }

    /// A lapsed offer's address, if no record took it meanwhile, becomes reusable from `at`.
    pub fn give_back(&mut self, cfg: &Config, subnet: SubnetId, a: Ipv4Addr, at: u64) {
        if self.leases.contains(a) || self.reserved.contains_key(&a) {
            return;
        }
        if cfg.subnet(subnet).is_some_and(|s| s.in_pool(a))
            && let Some(si) = self.subnets.get_mut(subnet.index())
            && !self.loose.contains_key(&a)
        {
            si.reusable.insert(at, a);
            self.loose.insert(a, (subnet.index(), at));
        }
    }
}

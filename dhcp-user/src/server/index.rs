//! The engine's in-memory view of the store, with the indexes allocation needs.
//!
//! Every record change goes through [`Index::put`], which keeps the indexes in step and yields
//! the [`LeaseChange`] for the store: the memory view and what gets committed cannot drift.
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use super::records::Records;
use super::request::ClientKey;
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
    reusable: BTreeSet<(u64, Ipv4Addr)>,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    /// Every record, by address and (those that bind one) by client and subnet.
    pub leases: Records,
    subnets: Vec<SubnetIndex>,
    /// When each active lease ends and each declined address leaves probation.
    pub timers: BTreeSet<(u64, Ipv4Addr)>,
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
        LeaseState::Abandoned => Some(l.probation_until.unwrap_or(0).max(l.held_until)),
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
        LeaseState::Abandoned => l.probation_until,
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
                    reusable: BTreeSet::new(),
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

    /// Replaces the record for `l.address`, keeping every index in step.
    pub fn put(&mut self, cfg: &Config, l: Lease) -> LeaseChange {
        self.place(cfg, l.clone());
        LeaseChange::Put(l)
    }

    /// [`Index::put`] for a record read from the store: nothing to commit.
    pub fn load(&mut self, cfg: &Config, l: Lease) {
        self.place(cfg, l);
    }

    fn place(&mut self, cfg: &Config, l: Lease) {
        let in_pool = cfg.subnet(SubnetId(l.subnet)).is_some_and(|s| s.in_pool(l.address));
        if let Some((s, t)) = self.loose.remove(&l.address)
            && let Some(si) = self.subnets.get_mut(s)
        {
            si.reusable.remove(&(t, l.address));
        }
        if let Some(old) = self.leases.get(l.address) {
            if let Some(t) = timer_of(old) {
                self.timers.remove(&(t, old.address));
            }
            if let (Some(t), Some(si)) = (reuse_at(old), self.subnets.get_mut(old.subnet as usize))
            {
                si.reusable.remove(&(t, old.address));
            }
        }
        if let Some(t) = timer_of(&l) {
            self.timers.insert((t, l.address));
        }
        if in_pool
            && !self.reserved.contains_key(&l.address)
            && let (Some(t), Some(si)) = (reuse_at(&l), self.subnets.get_mut(l.subnet as usize))
        {
            si.reusable.insert((t, l.address));
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
        si.reusable.range(..=(now, Ipv4Addr::BROADCAST)).map(|&(_, a)| a).find(|&a| ok(a))
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
            si.reusable.insert((at, a));
            self.loose.insert(a, (subnet.index(), at));
        }
    }
}

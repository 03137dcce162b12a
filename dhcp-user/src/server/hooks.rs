//! What the failover glue calls: the relationship's verdict, a partner's records, its
//! acknowledgements, and the pool figures pool balancing works from.
use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::config::{RelationshipId, SubnetId};
use crate::store::{Lease, LeaseChange, LeaseState};

use super::request::ClientKey;
use super::{FailoverGate, Server};

impl Server {
    /// Relationship `rel`'s verdict from now on (see [`FailoverGate`]).
    pub fn set_failover_gate(&mut self, rel: RelationshipId, gate: FailoverGate) {
        if let Some(g) = self.failover.get_mut(rel.index()) {
            *g = gate;
        }
    }

    /// Replaces a record on the failover relationship's behalf (a partner's binding update, an
    /// address moved between the free and backup pools). An offer we made of that address to
    /// someone else no longer stands.
    pub fn put_failover_record(&mut self, now: u64, mut l: Lease) -> LeaseChange {
        if let Some(s) = self.cfg.subnet_containing(l.address) {
            l.subnet = s.0;
        }
        if let Some(o) = self.offers.get(l.address)
            && (l.state != LeaseState::Active || o.client != ClientKey::of_lease(&l))
        {
            self.forget_offer(l.address, now);
        }
        self.ix.put(&self.cfg, l)
    }

    /// A change of `a` made here is about to be committed and sent: until the partner
    /// acknowledges it, a restart must send it again.
    pub fn mark_unacked(&mut self, a: Ipv4Addr) {
        if let Some(l) = self.ix.leases.get_mut(a) {
            l.partner_acked = false;
        }
    }

    /// The partner has not heard of `a`'s record (a partner new to its pool): until it
    /// acknowledges, a restart sends it again and the MCLT rule grants from nothing.
    pub fn partner_forgets(&mut self, a: Ipv4Addr) -> Option<LeaseChange> {
        let mut l = self.ix.leases.get(a)?.clone();
        l.partner_acked = false;
        l.pet_acked = 0;
        Some(self.ix.put(&self.cfg, l))
    }

    /// The partner acknowledged an update of `a`: `pet`, if the update carried one, lets the
    /// fast path renew MCLT beyond it; `latest`, the partner has every change made here.
    pub fn failover_acked(
        &mut self,
        a: Ipv4Addr,
        pet: Option<u64>,
        latest: bool,
    ) -> Option<LeaseChange> {
        let mut l = self.ix.leases.get(a)?.clone();
        let pet = pet.filter(|p| *p > l.pet_acked);
        if pet.is_none() && (l.partner_acked || !latest) {
            return None;
        }
        l.partner_acked |= latest;
        let Some(pet) = pet else { return Some(self.ix.put(&self.cfg, l)) };
        l.pet_acked = pet;
        if l.state == LeaseState::Active
            && let Some(g) = self.gate(SubnetId(l.subnet))
            && let Some(s) = self.cfg.subnet(SubnetId(l.subnet))
        {
            let committed = l.expires_at.saturating_add(u64::from(self.horizon(s)));
            let limit = g.grant_limit(&l, l.expires_at);
            l.held_until = l.held_until.max(committed.min(limit));
        }
        Some(self.ix.put(&self.cfg, l))
    }

    /// Unused addresses of subnet `sid`'s pools in binding state `state` (FREE also counts an
    /// address with no record), highest first, at most `n`, none offered or reserved: what pool
    /// balancing moves to the partner. The top of a pool is what allocation reaches last, so
    /// these are the addresses least likely to have a client coming back for them.
    #[must_use]
    pub fn unused_addresses_from_top(
        &self,
        sid: SubnetId,
        state: LeaseState,
        n: usize,
    ) -> Vec<Ipv4Addr> {
        let Some(s) = self.cfg.subnet(sid) else { return Vec::new() };
        let mut out = Vec::new();
        for p in s.pools.iter().rev() {
            let (lo, hi) = (u32::from(p.start), u32::from(p.end));
            for a in (lo..=hi).rev().map(Ipv4Addr::from) {
                if out.len() >= n {
                    return out;
                }
                let matches = match self.ix.leases.get(a) {
                    None => state == LeaseState::Free,
                    Some(l) => l.state == state,
                };
                if matches && !self.ix.reserved.contains_key(&a) && !self.offers.contains_key(a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// Pool addresses of subnet `sid` by binding state; addresses without a record count as
    /// free (the primary's).
    #[must_use]
    pub fn pool_counts(&self, sid: SubnetId) -> HashMap<LeaseState, u64> {
        let mut counts: HashMap<LeaseState, u64> = HashMap::new();
        let Some(s) = self.cfg.subnet(sid) else { return counts };
        let mut recorded = 0;
        for l in self.ix.leases.values() {
            if s.in_pool(l.address) && !self.ix.reserved.contains_key(&l.address) {
                *counts.entry(l.state).or_default() += 1;
                recorded += 1;
            }
        }
        let reserved_in_pool = self.ix.reserved.keys().filter(|a| s.in_pool(**a)).count() as u64;
        let size: u64 = s.pools.iter().map(crate::config::Pool::size).sum();
        *counts.entry(LeaseState::Free).or_default() +=
            size.saturating_sub(recorded + reserved_in_pool);
        counts
    }
}

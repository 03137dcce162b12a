//! How records change without a client's request: leases and probations running out, a client
//! that is gone, and renewals the fast path answered on its own.
use std::net::Ipv4Addr;

use dhcp_failover::{Role, ServerState, mclt};

use crate::config::SubnetId;
use crate::store::{Lease, LeaseChange, LeaseState};

use super::Server;

/// How often a secondary in NORMAL looks again at a lease past its end that the primary has
/// not expired yet: should the relationship leave NORMAL, the secondary expires it itself.
const EXPIRY_RECHECK: u64 = 5;

impl Server {
    /// In NORMAL the primary expires the leases of a shared pool and the secondary waits for its
    /// EXPIRED, as ISC dhcpd's secondary does: a dhcpd primary rejects a secondary's expiry.
    fn primary_expires(&self, l: &Lease) -> bool {
        self.gate(SubnetId(l.subnet))
            .is_some_and(|g| g.role == Role::Secondary && g.state == ServerState::Normal)
    }

    /// `l`, whose client is gone (expired or released into `gone`), as it should be now: back
    /// in our free share if the partner never heard of the binding, or kept rewindable to its
    /// client while the partner cannot hear of its end.
    pub(super) fn client_gone(&mut self, mut l: Lease, gone: LeaseState) -> Lease {
        match l.rewind_state {
            Some(free @ (LeaseState::Free | LeaseState::Backup)) => {
                // held_until stays: the fast path may still answer the old client until then,
                // and reuse_at waits for it.
                l.state = free;
                l.clear_client();
                l.pet_sent = l.pet_acked;
                l.rewind_state = None;
                l.rewind_expiry = None;
                self.counters.rewound_to_free += 1;
            }
            Some(_) => l.state = gone,
            None => {
                if self.rewinds(SubnetId(l.subnet)) {
                    l.rewind_state = Some(LeaseState::Active);
                    l.rewind_expiry = std::num::NonZeroU64::new(l.expires_at);
                }
                l.state = gone;
            }
        }
        l
    }

    /// The kernel can no longer renew `a` for its old client: its map entry is gone, and the
    /// renewals it answered before that have been recorded. What `held_until` still held the
    /// address for is void, so a released or expired address is free for the next client now,
    /// not at the old lease's end plus the fast path's horizon. `None` when the record is bound
    /// again (a renewal the kernel answered brought it back) or holds nothing beyond now.
    pub fn kernel_let_go(&mut self, a: Ipv4Addr, now: u64) -> Option<LeaseChange> {
        let l = self.ix.leases.get(a)?;
        let until = l.expires_at.max(now);
        if l.state == LeaseState::Active || l.held_until <= until {
            return None;
        }
        let mut l = l.clone();
        l.held_until = until;
        Some(self.ix.put(&self.cfg, l))
    }

    /// Ends leases and probations due at `now` and lets lapsed offers go. Returns the changes
    /// to commit (followed by their [`Server::map_ops`]).
    pub fn expire(&mut self, now: u64) -> Vec<LeaseChange> {
        let mut out = Vec::new();
        let mut deferred = Vec::new();
        while let Some((t, a)) = self.ix.timers.first() {
            if t > now {
                break;
            }
            self.ix.timers.pop_first();
            let Some(mut l) = self.ix.leases.get(a).cloned() else { continue };
            match l.state {
                LeaseState::Active if l.expires_at <= now && self.primary_expires(&l) => {
                    deferred.push(a);
                    continue;
                }
                LeaseState::Active if l.expires_at <= now => {
                    l = self.client_gone(l, LeaseState::Expired);
                }
                LeaseState::Abandoned if l.probation_until.is_some_and(|p| p.get() <= now) => {
                    l.state = LeaseState::Free;
                    l.probation_until = None;
                    l.clear_client();
                }
                _ => continue,
            }
            l.stos = now;
            out.push(self.ix.put(&self.cfg, l));
        }
        for a in deferred {
            self.ix.timers.insert(now + EXPIRY_RECHECK, a);
        }
        for a in self.offers.lapsed(now) {
            self.forget_offer(a, now);
        }
        out
    }

    /// The earliest `now` at which [`Server::expire`] has something to do.
    #[must_use]
    pub fn next_timeout(&self) -> Option<u64> {
        let lease = self.ix.timers.first().map(|(t, _)| t);
        let offer = self.offers.first_until();
        lease.into_iter().chain(offer).min()
    }

    /// Records a renewal the fast path answered (an event from the kernel): the client was told
    /// its lease runs `granted_secs` from `now`. The horizon moves along so the next renewal can
    /// be answered in the kernel too. `None` when the event concerns no lease of that client
    /// (the address changed hands since: the event is stale).
    pub fn apply_fast_path_renewal(
        &mut self,
        now: u64,
        address: Ipv4Addr,
        chaddr: [u8; 6],
        granted_secs: u32,
    ) -> Option<LeaseChange> {
        let l = self.ix.leases.get(address)?;
        if l.mac() != Some(chaddr)
            || !matches!(l.state, LeaseState::Active | LeaseState::Expired | LeaseState::Released)
        {
            return None;
        }
        let s = self.cfg.subnet(SubnetId(l.subnet))?;
        let end = now.saturating_add(u64::from(granted_secs));
        let mut n = l.clone();
        if n.state != LeaseState::Active {
            n.state = LeaseState::Active;
            n.stos = now;
        }
        let told = n.expires_at;
        n.expires_at = n.expires_at.max(end);
        n.cltt = now;
        let horizon = u64::from(self.horizon(s));
        let mut held = n.expires_at.saturating_add(horizon);
        if let Some(g) = self.gate(SubnetId(n.subnet)) {
            // The partner hears of this renewal through a BNDUPD carrying this PET; until it
            // acknowledges, the horizon stays MCLT beyond what it already knows.
            let pet = mclt::potential_expiration(now, s.lease_time, granted_secs);
            n.pet_sent = n.pet_sent.max(pet);
            held = held.min(g.grant_limit(&n, told));
        } else if n.state == l.state && n.held_until >= end.saturating_add(horizon / 2) {
            // What XDP granted is already inside the committed horizon, which still reaches
            // half a horizon past it: nothing new needs to be durable. Record the renewal in
            // memory only, so the store writes O(leases / horizon), not O(renewals); after a
            // crash the lease counts as held until `held_until` anyway.
            let _ = self.ix.put(&self.cfg, n);
            return None;
        }
        n.held_until = n.held_until.max(held);
        Some(self.ix.put(&self.cfg, n))
    }
}

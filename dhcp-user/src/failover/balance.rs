//! Pool balancing (dhcpd's `pool_dobalance`, both ways): how each shared pool's free addresses
//! split between the two servers, and moving the surplus over in NORMAL.
use std::collections::HashMap;

use dhcp_failover::{Role, ServerState};
use tracing::{debug, info};

use super::{Actions, Failover};
use crate::{
    config::SubnetId,
    server::Server,
    store::{Lease, LeaseState},
};

/// What one balancing pass did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct BalanceRun {
    pub(super) moved: u64,
    /// Some pool's share here is short by more than twice the misbalance threshold.
    short: bool,
}

/// What pool balancing should do with one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolBalance {
    /// Free addresses to move from this server's share to the partner's.
    pub give: u64,
    /// This server's share is short enough to ask the partner for addresses (POOLREQ).
    pub short: bool,
}

/// dhcpd's arithmetic: `lts` ("leases to send") is half the difference between the shares;
/// moving `lts` addresses evens them. Nothing moves within `misbalance_pct` percent of the
/// pool's size, so that allocations on one side do not make the two trade addresses back
/// and forth; twice that short, this side asks.
#[must_use]
pub fn pool_balance(sh: Shares, pool_size: u64, misbalance_pct: u8) -> PoolBalance {
    let thresh = (pool_size * u64::from(misbalance_pct) + 50) / 100;
    let (mine, theirs) = (i128::from(sh.ours), i128::from(sh.partners));
    let lts = (mine - theirs) / 2;
    let give = if lts > i128::from(thresh) { u64::try_from(lts).unwrap_or(0) } else { 0 };
    PoolBalance { give, short: -lts > 2 * i128::from(thresh) }
}

/// One shared pool split by owner, as this server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Addresses free in this server's share (FREE on the primary, BACKUP on the secondary).
    pub ours: u64,
    /// Addresses free in the partner's share.
    pub partners: u64,
}

impl Failover {
    /// Pool `sid` split by owner (addresses without a record are the primary's).
    #[must_use]
    pub fn shares(&self, server: &Server, sid: SubnetId) -> Shares {
        self.shares_in(&server.pool_counts(sid))
    }

    /// [`Failover::shares`] from counts already taken with [`Server::pool_counts`] (which
    /// walks every lease record).
    pub(super) fn shares_in(&self, counts: &HashMap<LeaseState, u64>) -> Shares {
        let n = |st: LeaseState| counts.get(&st).copied().unwrap_or(0);
        let (free, backup) = (n(LeaseState::Free), n(LeaseState::Backup));
        match self.cfg.role {
            Role::Primary => Shares { ours: free, partners: backup },
            Role::Secondary => Shares { ours: backup, partners: free },
        }
    }

    /// Pool balancing in NORMAL (dhcpd's `pool_dobalance`, both ways): each server serves new
    /// clients from its own share when the two cannot talk, so each should hold about half of
    /// what is free. A server whose share exceeds the partner's by more than
    /// `max_lease_misbalance` percent of the pool moves the difference over (FREE → BACKUP on
    /// the primary, BACKUP → FREE on the secondary) by binding updates; one that is short by
    /// twice that asks the partner to do so at once (POOLREQ). The check runs every
    /// `min_balance` seconds while pools move, and backs off to `max_balance` while they stay
    /// balanced. Only the owner of an address ever moves it, and it stops using it before the
    /// partner hears of it, so a move can never give one address to two servers.
    pub(super) fn balance(&mut self, now: u64, server: &mut Server, out: &mut Actions) {
        if self.peer.state() != ServerState::Normal || now < self.next_balance {
            return;
        }
        let run = self.balance_pools(now, server, out);
        // Per pool: giving in one pool says nothing about another this server is short in.
        if run.short {
            debug!(
                relationship = %self.cfg.name,
                "failover: this server's share of free addresses is short; asking the partner \
                 to balance (POOLREQ)"
            );
            self.peer.request_pool(now);
        }
        let (min, max) = (u64::from(self.cfg.min_balance.max(1)), u64::from(self.cfg.max_balance));
        self.balance_every = if run.moved > 0 || run.short {
            min
        } else {
            self.balance_every.saturating_mul(2).clamp(min, max.max(min))
        };
        self.next_balance = now.saturating_add(self.balance_every);
    }

    /// One balancing pass over every shared pool; what moved and whether any pool is short.
    pub(super) fn balance_pools(
        &mut self,
        now: u64,
        server: &mut Server,
        out: &mut Actions,
    ) -> BalanceRun {
        let mut run = BalanceRun::default();
        if self.peer.state() != ServerState::Normal {
            return run;
        }
        let (ours, to) = match self.cfg.role {
            Role::Primary => (LeaseState::Free, LeaseState::Backup),
            Role::Secondary => (LeaseState::Backup, LeaseState::Free),
        };
        for &sid in &self.shared {
            let counts = server.pool_counts(sid);
            let sh = self.shares_in(&counts);
            let p = pool_balance(sh, counts.values().sum(), self.cfg.max_lease_misbalance);
            if p.give == 0 {
                run.short |= p.short;
                continue;
            }
            let n = usize::try_from(p.give).unwrap_or(usize::MAX);
            let moved = server.unused_addresses_from_top(sid, ours, n);
            info!(
                relationship = %self.cfg.name,
                subnet = sid.0,
                ours = sh.ours,
                partners = sh.partners,
                moving = moved.len(),
                "failover: balancing pool, moving free addresses to the partner"
            );
            run.moved += moved.len() as u64;
            for a in moved {
                let mut l =
                    server.lease(a).cloned().unwrap_or_else(|| Lease::new(a, to, sid.0, now));
                l.state = to;
                l.stos = now;
                out.changes.push(server.put_failover_record(now, l));
                out.local.push(a);
            }
        }
        self.counters.balanced_moved += run.moved;
        run
    }
}

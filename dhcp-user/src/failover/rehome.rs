//! Which of a relationship's leases its partner has heard of.
//!
//! The store's "the partner acknowledged this" (`partner_acked`, `pet_acked`) speaks of the
//! partner the address had at the time. Move a subnet to another relationship, rename a
//! relationship (a new name is a new partner, with no state), or widen a pool over addresses
//! that already have records, and the new partner has heard of none of them: sent nothing, it
//! would allocate the free ones it believes it has and never learn the bindings. So the
//! persisted state names the pool ranges it was written for, and at start every record in a
//! range it does not name is news: marked unacknowledged in the store (a crash before the
//! partner answers sends it again), its acknowledged PET forgotten (the MCLT rule then holds
//! the fast path to what this partner knows), and queued for the partner. The state names the
//! new ranges only once those marks are durable.
use std::net::Ipv4Addr;

use dhcp_failover::PersistedState;

use super::binding::encode_state;
use crate::server::Server;
use crate::store::LeaseChange;

pub type Ranges = Vec<(Ipv4Addr, Ipv4Addr)>;

/// What the stored state says of the ranges it was written for.
pub enum Stored {
    /// No readable state: nothing is vouched for.
    Nothing,
    /// A state written before it named its ranges: it vouches for the configuration's.
    Unnamed,
    Ranges(Ranges),
}

pub struct Rehome {
    /// The ranges the stored state was written for: their records' acknowledgements hold.
    durable: Ranges,
    /// The relationship's ranges in this configuration.
    current: Ranges,
    /// A readable state was stored. Without one the engine starts as a server that never ran
    /// failover, and writing its state early would make it resume as one that had: the new
    /// ranges wait for the engine's own first write.
    stored: bool,
    /// The stored state names no ranges (an older version wrote it, perhaps under no name):
    /// it is written again at once, named and naming them.
    rewrite: bool,
    phase: Phase,
}

enum Phase {
    Idle,
    /// Records to mark unacknowledged in the next commit.
    Due(Vec<Ipv4Addr>),
    /// Marked in the commit under way.
    Sent(Vec<Ipv4Addr>),
    /// The marks are durable (or there were none): the stored state is written again, naming
    /// `current`.
    Persist,
}

impl Rehome {
    #[must_use]
    pub fn new(current: Ranges, stored: Stored) -> Self {
        let had = !matches!(stored, Stored::Nothing);
        let rewrite = matches!(stored, Stored::Unnamed);
        let durable = match stored {
            Stored::Nothing => Vec::new(),
            Stored::Unnamed => current.clone(),
            Stored::Ranges(r) => r,
        };
        Self { durable, current, stored: had, rewrite, phase: Phase::Idle }
    }

    /// Whether the partner may have heard of a record of `a` (its acknowledgement holds).
    #[must_use]
    pub fn vouched(&self, a: Ipv4Addr) -> bool {
        within(&self.durable, a)
    }

    /// After the start's scan: `news`, the records [`Rehome::vouched`] did not cover.
    pub fn found(&mut self, news: Vec<Ipv4Addr>) {
        if news.is_empty() {
            self.vouch();
        } else {
            self.phase = Phase::Due(news);
        }
    }

    /// Every record of `current` is known to the partner or marked: the state may say so.
    fn vouch(&mut self) {
        self.phase = if self.durable == self.current && !self.rewrite {
            Phase::Idle
        } else if self.stored {
            Phase::Persist
        } else {
            self.durable.clone_from(&self.current);
            Phase::Idle
        };
    }

    /// The state as the store keeps it, naming the ranges it vouches for.
    #[must_use]
    pub fn encode(&self, p: &PersistedState) -> Vec<u8> {
        encode_state(p, &self.durable)
    }

    /// Changes to commit (the marks), or the state to write once they are durable.
    pub fn poll(
        &mut self,
        server: &mut Server,
        persisted: &PersistedState,
        changes: &mut Vec<LeaseChange>,
        persist: &mut Option<Vec<u8>>,
    ) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Due(news) => {
                changes.extend(news.iter().filter_map(|&a| server.partner_forgets(a)));
                self.phase = Phase::Sent(news);
            }
            Phase::Persist => {
                self.durable.clone_from(&self.current);
                self.rewrite = false;
                *persist = Some(self.encode(persisted));
            }
            other => self.phase = other,
        }
    }

    /// A commit succeeded. The first after the marks went out held them, unless it failed and
    /// the server was reloaded from the store: then they are marked again.
    pub fn committed(&mut self, server: &Server) {
        if let Phase::Sent(news) = &self.phase {
            if news.iter().all(|&a| server.lease(a).is_none_or(|l| !l.partner_acked)) {
                self.vouch();
            } else {
                self.phase = Phase::Due(news.clone());
            }
        }
    }
}

fn within(ranges: &[(Ipv4Addr, Ipv4Addr)], a: Ipv4Addr) -> bool {
    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&a))
}

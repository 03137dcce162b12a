//! Lease limits: how many addresses one access port (circuit-id, remote-id) or one hardware
//! address may hold at once, offers included (`[limits]`, and a class's own). A DISCOVER for a
//! new binding over a limit gets no offer, and a REQUEST for one no ACK: a looping CPE or a
//! random-MAC flood from one port takes that port's share, not the pool.
//!
//! Each key keeps the addresses it was given with the client they went to; a held address is
//! one still offered to (while the offer lasts) or bound to (active) that client. The list is
//! checked when the key asks for one more, so it never holds more than the limit of live
//! entries, and stale ones go then.
use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::config::model::Limits;
use crate::store::LeaseState;

use super::request::{Client, ClientKey};
use super::{DropReason, Server};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    CircuitId(Vec<u8>),
    RemoteId(Vec<u8>),
    Mac([u8; 6]),
}

impl LimitKey {
    /// Slot in [`super::Counters::limited`], and the name metrics use.
    pub const NAMES: [&'static str; 3] = ["circuit_id", "remote_id", "mac"];

    fn slot(&self) -> usize {
        match self {
            Self::CircuitId(_) => 0,
            Self::RemoteId(_) => 1,
            Self::Mac(_) => 2,
        }
    }

    #[must_use]
    pub fn kind(&self) -> &'static str {
        Self::NAMES[self.slot()]
    }

    #[must_use]
    pub fn value(&self) -> &[u8] {
        match self {
            Self::CircuitId(v) | Self::RemoteId(v) => v,
            Self::Mac(m) => m,
        }
    }
}

/// A request refused for a limit; the caller logs it (once a minute per key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitEvent {
    pub key: LimitKey,
    pub limit: u32,
    pub chaddr: Vec<u8>,
}

#[derive(Debug, Default)]
pub(super) struct Holdings {
    held: HashMap<LimitKey, Vec<(Ipv4Addr, ClientKey)>>,
    /// When each key was last reported, so a flood is one log line a minute per key.
    reported: HashMap<LimitKey, u64>,
    events: Vec<LimitEvent>,
    /// Entries added since the last sweep of keys no one asks about any more.
    added: usize,
}

const SWEEP_EVERY: usize = 1 << 14;
const REPORT_EVERY: u64 = 60;

impl Server {
    /// The limits that apply to `c`: its class's, each key the class does not set the file's.
    fn limits_for(&self, c: &Client) -> Limits {
        let global = self.cfg.limits;
        let class = c.class.and_then(|k| self.cfg.classes.get(usize::from(k.0)));
        class.and_then(|k| k.limits).map_or(global, |l| Limits {
            per_circuit_id: l.per_circuit_id.or(global.per_circuit_id),
            per_remote_id: l.per_remote_id.or(global.per_remote_id),
            per_mac: l.per_mac.or(global.per_mac),
        })
    }

    fn limit_keys(&self, c: &Client) -> Vec<(LimitKey, u32)> {
        let l = self.limits_for(c);
        let mut keys = Vec::new();
        if let (Some(n), Some(v)) = (l.per_circuit_id, &c.circuit_id) {
            keys.push((LimitKey::CircuitId(v.clone()), n));
        }
        if let (Some(n), Some(v)) = (l.per_remote_id, &c.remote_id) {
            keys.push((LimitKey::RemoteId(v.clone()), n));
        }
        if let (Some(n), Ok(m)) = (l.per_mac, <[u8; 6]>::try_from(c.chaddr.as_slice()))
            && c.htype == 1
        {
            keys.push((LimitKey::Mac(m), n));
        }
        keys
    }

    /// Whether `a` is still offered to or bound to `who` at `now`.
    fn still_held(&self, now: u64, a: Ipv4Addr, who: &ClientKey) -> bool {
        self.offers.get(a).is_some_and(|o| o.until > now && &o.client == who)
            || self.ix.leases.get(a).is_some_and(|l| {
                l.state == LeaseState::Active
                    && l.expires_at.max(l.held_until) > now
                    && &ClientKey::of_lease(l) == who
            })
    }

    /// Whether `c` may be given one more address (`a`, or a free one when `None`) that it
    /// does not hold yet: every limit of its keys has room.
    pub(super) fn within_limits(
        &mut self,
        now: u64,
        c: &Client,
        a: Option<Ipv4Addr>,
    ) -> Result<(), DropReason> {
        if a.is_some_and(|a| self.still_held(now, a, &c.key)) {
            return Ok(());
        }
        for (key, limit) in self.limit_keys(c) {
            let mut list = self.holdings.held.remove(&key).unwrap_or_default();
            list.retain(|(x, who)| self.still_held(now, *x, who));
            let full = list.len() >= limit as usize && !list.iter().any(|(_, w)| w == &c.key);
            if !list.is_empty() {
                self.holdings.held.insert(key.clone(), list);
            }
            if full {
                self.counters.limited[key.slot()] += 1;
                let h = &mut self.holdings;
                if h.reported.get(&key).is_none_or(|t| now >= t + REPORT_EVERY) {
                    h.reported.insert(key.clone(), now);
                    h.events.push(LimitEvent { key, limit, chaddr: c.chaddr.clone() });
                }
                return Err(DropReason::LeaseLimit);
            }
        }
        Ok(())
    }

    /// Records that `c` was offered or bound `a`, against each of its keys.
    pub(super) fn note_held(&mut self, now: u64, c: &Client, a: Ipv4Addr) {
        for (key, _) in self.limit_keys(c) {
            let list = self.holdings.held.entry(key).or_default();
            if !list.iter().any(|(x, who)| *x == a && who == &c.key) {
                list.push((a, c.key.clone()));
                self.holdings.added += 1;
            }
        }
        if self.holdings.added >= SWEEP_EVERY {
            self.holdings.added = 0;
            let mut held = std::mem::take(&mut self.holdings.held);
            held.retain(|_, list| {
                list.retain(|(x, who)| self.still_held(now, *x, who));
                !list.is_empty()
            });
            self.holdings.held = held;
            self.holdings.reported.retain(|_, t| now < *t + REPORT_EVERY);
        }
    }

    /// Requests refused for a limit since the last call, one per key a minute.
    pub fn take_limit_events(&mut self) -> Vec<LimitEvent> {
        std::mem::take(&mut self.holdings.events)
    }
}

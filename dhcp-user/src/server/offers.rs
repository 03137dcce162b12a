//! Pending offers, held in memory only: by address, and in the order they lapse, so that
//! expiry and the next timeout look at the oldest without walking them all (a DISCOVER flood
//! leaves as many offers as the pools have addresses).
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::config::SubnetId;

use super::request::ClientKey;

#[derive(Debug, Clone)]
pub(super) struct Offer {
    pub client: ClientKey,
    pub subnet: SubnetId,
    pub until: u64,
}

#[derive(Debug, Default)]
pub(super) struct Offers {
    by_addr: HashMap<Ipv4Addr, Offer>,
    by_until: BTreeSet<(u64, Ipv4Addr)>,
}

impl Offers {
    pub fn get(&self, a: Ipv4Addr) -> Option<&Offer> {
        self.by_addr.get(&a)
    }

    pub fn contains_key(&self, a: Ipv4Addr) -> bool {
        self.by_addr.contains_key(&a)
    }

    pub fn insert(&mut self, a: Ipv4Addr, o: Offer) {
        self.by_until.insert((o.until, a));
        if let Some(old) = self.by_addr.insert(a, o) {
            self.by_until.remove(&(old.until, a));
        }
    }

    pub fn remove(&mut self, a: Ipv4Addr) -> Option<Offer> {
        let o = self.by_addr.remove(&a)?;
        self.by_until.remove(&(o.until, a));
        Some(o)
    }

    /// When the first offer lapses.
    pub fn first_until(&self) -> Option<u64> {
        self.by_until.first().map(|&(t, _)| t)
    }

    /// Offers lapsed at `now`.
    pub fn lapsed(&self, now: u64) -> Vec<Ipv4Addr> {
        self.by_until.range(..=(now, Ipv4Addr::BROADCAST)).map(|&(_, a)| a).collect()
    }

    /// The oldest offer still standing of `subnet`, not to `except`.
    pub fn oldest_in(&self, subnet: SubnetId, now: u64, except: &ClientKey) -> Option<Ipv4Addr> {
        self.by_until.range((now + 1, Ipv4Addr::UNSPECIFIED)..).map(|&(_, a)| a).find(|a| {
            self.by_addr.get(a).is_some_and(|o| o.subnet == subnet && &o.client != except)
        })
    }
}

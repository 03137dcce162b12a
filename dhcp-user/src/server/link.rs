//! The client's link: the subnet a request was selected for and, when that subnet is part of a
//! shared network (`shared_network`), its siblings on the same link. A new client may be given
//! an address from any of them; an address keeps to its own subnet, whose options it gets.
use std::net::Ipv4Addr;

use dhcp_failover::Role;

use crate::config::{Config, Subnet, SubnetId};

use super::Server;
use super::request::Client;

/// The subnets of `sid`'s shared network, `sid` first, then the others in file order: the
/// order in which a new client on the link is given an address.
fn on_link(cfg: &Config, sid: SubnetId) -> impl Iterator<Item = SubnetId> + '_ {
    let others = cfg.link_of(sid).iter().copied().filter(move |&id| id != sid);
    std::iter::once(sid).chain(others)
}

impl Server {
    /// The subnet of `sid`'s shared network (`sid` itself when it is in none) that contains
    /// `a`: where an address the client asks for, or holds, lives.
    pub(super) fn sibling(&self, sid: SubnetId, a: Ipv4Addr) -> Option<&Subnet> {
        self.cfg
            .link_of(sid)
            .iter()
            .map(|id| &self.cfg.subnets[id.index()])
            .find(|s| s.prefix.contains(&a))
    }

    /// The client's reservations on `sid`'s link, in [`on_link`] order.
    pub(super) fn reservations_on_link<'a>(
        &'a self,
        sid: SubnetId,
        c: &'a Client,
    ) -> impl Iterator<Item = Ipv4Addr> + 'a {
        on_link(&self.cfg, sid)
            .filter_map(move |id| self.reservation_for(&self.cfg.subnets[id.index()], c))
    }

    /// An address for a new client `c` on `sid`'s link that nobody holds: from the first
    /// subnet in [`on_link`] order with room, as that subnet's failover gate allows.
    pub(super) fn free_address(&mut self, now: u64, sid: SubnetId, c: &Client) -> Option<Ipv4Addr> {
        for id in on_link(&self.cfg, sid) {
            // Addresses nobody used yet are the primary's: the secondary allocates only from
            // what the primary moved to its backup pool, until PARTNER-DOWN's MCLT has passed.
            let fresh_allowed =
                self.gate(id).is_none_or(|g| g.role == Role::Primary || g.may_allocate(None, now));
            let offers = &self.offers;
            let s = &self.cfg.subnets[id.index()];
            let fresh = if fresh_allowed {
                let pools = &s.pools;
                self.ix.take_fresh(
                    id,
                    |k| pools[k].admits(c.class),
                    |a| offers.get(a).is_none_or(|o| o.until <= now || o.client == c.key),
                )
            } else {
                None
            };
            let free = fresh
                .or_else(|| self.ix.take_reusable(id, now, |a| self.available_to(now, s, c, a)));
            if free.is_some() {
                return free;
            }
        }
        // Nothing free, and nothing bound that has ended: the oldest offer still standing
        // gives way. An offer only sets an address aside while its client decides, and a burst
        // of DISCOVERs (random MACs, or every CPE of an OLT at once) would otherwise hold every
        // address for `offer_hold` while the clients that will REQUEST wait; a client answers
        // its offer within a round trip, so what the burst cycles through is its own.
        for id in on_link(&self.cfg, sid) {
            let Some(a) = self.offers.oldest_in(id, now, &c.key) else { continue };
            let Some(o) = self.offers.remove(a) else { continue };
            if self.available_to(now, &self.cfg.subnets[id.index()], c, a) {
                if self.offer_of.get(&o.client) == Some(&a) {
                    self.offer_of.remove(&o.client);
                }
                self.counters.offers_reclaimed += 1;
                return Some(a);
            }
            // Not this client's to have (its class, the partner's share): the offer stands.
            self.offers.insert(a, o);
        }
        None
    }
}

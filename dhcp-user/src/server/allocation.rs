//! Which address may go to whom: reservations, pending offers, and the reuse rules.
use std::net::Ipv4Addr;

use crate::config::{Reservation, ReservationKey, Subnet, SubnetId};
use crate::store::{Lease, LeaseState};

use super::index::reuse_at;
use super::offers::Offer;
use super::request::{Client, ClientKey, Request};
use super::{DropReason, RxInfo, Server};

impl Server {
    pub(super) fn subnet_of_request(
        &self,
        req: &Request<'_>,
        rx: &RxInfo,
    ) -> Result<SubnetId, DropReason> {
        self.cfg
            .subnet_for(req.giaddr, req.link_selection, rx.local_addr)
            .ok_or(DropReason::NoSubnet)
    }

    #[expect(
        clippy::unused_self,
        reason = "a lookup in the server's view, kept beside its siblings"
    )]
    pub(super) fn reservation_for(&self, s: &Subnet, c: &Client) -> Option<Ipv4Addr> {
        Self::reservation_of(s, c).map(|r| r.address)
    }

    /// The reservation naming `c`; the more specific wins (client id, MAC, port).
    fn reservation_of<'s>(s: &'s Subnet, c: &Client) -> Option<&'s Reservation> {
        s.reservations.iter().filter(|r| c.matches(&r.key)).min_by_key(|r| r.key.rank())
    }

    /// The options of a reply to a client of `class` about `a` in `s`.
    pub(super) fn profile_options(
        &self,
        s: &Subnet,
        a: Ipv4Addr,
        class: Option<crate::config::ClassId>,
    ) -> &crate::config::Options {
        let id = self.cfg.profiles.lookup(s, a, class);
        &self.cfg.profiles.get(id).expect("lookup returns a profile it has").options
    }

    /// Whether `a` may be bound to `c` in `s` at `now`.
    pub(super) fn available_to(&self, now: u64, s: &Subnet, c: &Client, a: Ipv4Addr) -> bool {
        if !s.prefix.contains(&a) {
            return false;
        }
        let record = self.ix.leases.get(a);
        if self.ix.reserved.contains_key(&a) {
            let Some(r) = Self::reservation_of(s, c).filter(|r| r.address == a) else {
                return false;
            };
            // The port keeps its address when the device behind it is replaced: the binding
            // of the device that was on that very port ends, and the new one takes it.
            if let ReservationKey::Port { circuit_id, remote_id } = &r.key
                && let Some(l) = record.filter(|l| !c.owns(l) && l.state == LeaseState::Active)
            {
                let on = |want: &Option<Vec<u8>>, had: Option<&[u8]>| {
                    want.as_deref().is_none_or(|w| had == Some(w))
                };
                return on(circuit_id, l.circuit_id()) && on(remote_id, l.remote_id());
            }
        } else if !s.in_pool(a) {
            return false;
        } else if !s.admits(a, c.class)
            && !record.is_some_and(|l| c.owns(l) && l.state == LeaseState::Active)
        {
            // A binding is placed by its class; one already made is not moved out by it.
            return false;
        }
        if let Some(o) = self.offers.get(a)
            && o.until > now
            && o.client != c.key
        {
            return false;
        }
        // Even the same client gets an expired or released address back only as the ownership
        // rule allows: the partner may have been told (and acknowledged) that it is free, and
        // then the primary hands it out. Unless the end was never sent: then the partner still
        // holds the address as this client's (draft-12 §5.2.2).
        let partner_sees_client =
            |l: &Lease| l.state == LeaseState::Active || l.rewind_state == Some(LeaseState::Active);
        if let Some(g) = self.gate(s.id)
            && !record.is_some_and(|l| c.owns(l) && partner_sees_client(l))
            && !self.ix.reserved.contains_key(&a)
            && !g.may_allocate(record, now)
        {
            return false;
        }
        match record {
            None => true,
            Some(l) if c.owns(l) => true,
            Some(l) if l.state == LeaseState::Active => now >= l.expires_at.max(l.held_until),
            Some(l) => reuse_at(l).is_some_and(|t| t <= now),
        }
    }

    pub(super) fn hold_offer(
        &mut self,
        now: u64,
        subnet: SubnetId,
        client: ClientKey,
        a: Ipv4Addr,
    ) {
        if let Some(old) = self.offer_of.get(&client).copied()
            && old != a
        {
            self.forget_offer(old, now);
        }
        if let Some(prev) = self.offers.get(a)
            && prev.client != client
            && self.offer_of.get(&prev.client) == Some(&a)
        {
            // That client's offer lapsed (available_to checked): it no longer holds anything.
            self.offer_of.remove(&prev.client);
        }
        self.offers.insert(
            a,
            Offer { client: client.clone(), subnet, until: now + u64::from(self.cfg.offer_hold) },
        );
        self.offer_of.insert(client, a);
    }

    pub(super) fn forget_offer(&mut self, a: Ipv4Addr, now: u64) {
        if let Some(o) = self.offers.remove(a) {
            if self.offer_of.get(&o.client) == Some(&a) {
                self.offer_of.remove(&o.client);
            }
            self.ix.give_back(&self.cfg, o.subnet, a, now);
        }
    }
}

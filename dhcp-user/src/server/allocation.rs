//! Which address may go to whom: reservations, pending offers, and the reuse rules.
use std::net::Ipv4Addr;

use crate::config::{Subnet, SubnetId};
use crate::store::{Lease, LeaseState};

use super::index::reuse_at;
use super::request::{Client, ClientKey, Request};
use super::{DropReason, RxInfo, Server};

#[derive(Debug, Clone)]
pub(super) struct Offer {
    pub client: ClientKey,
    pub subnet: SubnetId,
    pub until: u64,
}

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
        // A client-id reservation is the more specific: it wins over a MAC one.
        let by = |want_id: bool| {
            s.reservations
                .iter()
                .find(|r| {
                    matches!(r.key, crate::config::ReservationKey::ClientId(_)) == want_id
                        && c.matches(&r.key)
                })
                .map(|r| r.address)
        };
        by(true).or_else(|| by(false))
    }

    /// Whether `a` may be bound to `c` in `s` at `now`.
    pub(super) fn available_to(&self, now: u64, s: &Subnet, c: &Client, a: Ipv4Addr) -> bool {
        if !s.prefix.contains(&a) {
            return false;
        }
        if self.ix.reserved.contains_key(&a) {
            if self.reservation_for(s, c) != Some(a) {
                return false;
            }
        } else if !s.in_pool(a) {
            return false;
        }
        if let Some(o) = self.offers.get(&a)
            && o.until > now
            && o.client != c.key
        {
            return false;
        }
        let record = self.ix.leases.get(a);
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
        if let Some(prev) = self.offers.get(&a)
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
        if let Some(o) = self.offers.remove(&a) {
            if self.offer_of.get(&o.client) == Some(&a) {
                self.offer_of.remove(&o.client);
            }
            self.ix.give_back(&self.cfg, o.subnet, a, now);
        }
    }
}

//! The RFC 2131 handlers, one per message type a server acts on, and the replies they build.
use std::{net::Ipv4Addr, num::NonZeroU64};

use dhcp_failover::{Role, engine::Service, load_balance};
use dhcproto::v4::{Message, MessageType};

use crate::config::SubnetId;
use crate::store::{Chaddr, ClientId, Lease, LeaseChange, LeaseClass, LeaseState};

use super::request::Request;
use super::{DropReason, Handled, Outcome, Reply, RxInfo, Server, reply};

impl Server {
    pub(super) fn discover(
        &mut self,
        now: u64,
        req: &Request<'_>,
        rx: &RxInfo,
    ) -> Result<Outcome, DropReason> {
        let sid = self.subnet_of_request(req, rx)?;
        if let Some(g) = self.gate(sid) {
            match g.service {
                Service::NotResponding | Service::RenewalsOnly => {
                    return Err(DropReason::FailoverNotResponding);
                }
                Service::LoadBalanced => {
                    let key = load_balance::client_key(
                        req.client.client_id.as_deref(),
                        &req.client.chaddr,
                    );
                    let primary = g.role == Role::Primary;
                    let secs = req.msg.secs();
                    if !load_balance::should_answer_discover(
                        &g.hba,
                        primary,
                        key,
                        secs,
                        g.load_balance_max_seconds,
                    ) {
                        return Err(DropReason::LoadBalancedToPeer);
                    }
                }
                Service::OwnPool | Service::PartnerDown => {}
            }
        }
        let c = &req.client;
        // The client's link is the selected subnet's shared network: what it holds or asks
        // for may be in any of its subnets, and is judged by its own.
        let ok =
            |a: Ipv4Addr| self.sibling(sid, a).is_some_and(|s| self.available_to(now, s, c, a));
        // RFC 2131 §4.3.1's order: the client's binding (a reservation, a pending offer, its
        // current or previous lease), then the address it asks for, then a free one.
        let known = self
            .reservations_on_link(sid, c)
            .find(|&a| ok(a))
            .or_else(|| self.offer_of.get(&c.key).copied().filter(|&a| ok(a)))
            .or_else(|| self.ix.client_address(self.cfg.link_of(sid), &c.key, ok))
            .or_else(|| req.requested.filter(|&a| ok(a)));
        // A binding the client does not hold yet counts against its port's and MAC's limits;
        // a reservation is the operator's own and does not.
        let reserved = self.reservations_on_link(sid, c).any(|r| Some(r) == known);
        if !reserved {
            self.within_limits(now, c, known)?;
        }
        let picked = known.or_else(|| self.free_address(now, sid, c));
        let Some(a) = picked else { return Err(DropReason::PoolExhausted) };
        let sid = self.sibling(sid, a).map_or(sid, |s| s.id);
        self.hold_offer(now, sid, c.key.clone(), a);
        self.note_held(now, c, a);
        let s = &self.cfg.subnets[sid.index()];
        let lease = self.lease_length(now, s, req, a).0;
        let opts = self.profile_options(s, a, c.class);
        let msg =
            reply::lease_reply(req, MessageType::Offer, self.cfg.server_id, s, opts, a, lease);
        Ok(self.reply(req, rx, msg, MessageType::Offer, a, Vec::new(), Handled::Offered(a)))
    }

    pub(super) fn request(
        &mut self,
        now: u64,
        req: &Request<'_>,
        rx: &RxInfo,
    ) -> Result<Outcome, DropReason> {
        let c = &req.client;
        // Renewals and rebinds are answered in every state that answers anyone (draft-12
        // §9.8.2); only new bindings need a state that may hand out addresses.
        let refuse = |sid: SubnetId, new_binding: bool| {
            self.gate(sid).is_some_and(|g| match g.service {
                Service::NotResponding => true,
                Service::RenewalsOnly => new_binding,
                _ => false,
            })
        };
        if let Some(server_id) = req.server_id {
            // SELECTING: the client answers one offer, naming its server.
            if server_id != self.cfg.server_id {
                if let Some(a) = self.offer_of.get(&c.key).copied() {
                    self.forget_offer(a, now);
                }
                return Err(DropReason::OtherServer);
            }
            let a = req.requested.or(req.ciaddr).ok_or(DropReason::MissingAddress)?;
            let sid = self.subnet_of_request(req, rx)?;
            if refuse(sid, true) {
                return Err(DropReason::FailoverNotResponding);
            }
            // Any subnet of the client's shared network: the offer may have come from any.
            let Some(s) = self.sibling(sid, a).filter(|s| self.available_to(now, s, c, a)) else {
                return Ok(self.nak(req, rx, "requested address is not available"));
            };
            let (sid, reserved) = (s.id, self.reservation_for(s, c) == Some(a));
            if !reserved {
                self.within_limits(now, c, Some(a))?;
            }
            self.circuit_rebinding(req, a);
            return Ok(self.ack(now, req, rx, sid, a));
        }
        if let Some(ci) = req.ciaddr {
            // RENEWING (unicast) or REBINDING (broadcast): ciaddr names the lease, and its
            // subnet, wherever the request was routed from.
            let sid = self.cfg.subnet_containing(ci).ok_or(DropReason::UnknownClient)?;
            if refuse(sid, false) {
                return Err(DropReason::FailoverNotResponding);
            }
            let s = &self.cfg.subnets[sid.index()];
            let record = self.ix.leases.get(ci);
            let known = record.is_some();
            let mine = record.is_some_and(|l| c.owns(l)) || self.reservation_for(s, c) == Some(ci);
            if mine && self.nothing_to_renew(now, sid, req, ci) {
                return Err(DropReason::FailoverNotResponding);
            }
            // A free address of the failover partner's share may be bound by the partner
            // without our knowing yet (an update on its way, or the two cut off): its client
            // is believed, not refused (draft-12 §3.1.2; ISC dhcpd: "lease owned by peer").
            let partners = record.is_some_and(|l| {
                matches!(l.state, LeaseState::Free | LeaseState::Backup)
                    && self.gate(sid).is_some_and(|g| !g.may_allocate(Some(l), now))
            });
            // A port reservation's address taken over by the device now on the port: the one
            // it replaced is told so, not renewed back (the newest binding wins).
            if mine && record.is_some_and(|l| l.state == LeaseState::Active && !c.owns(l)) {
                return Ok(self.nak(req, rx, "address is bound to another client"));
            }
            return match (mine, self.available_to(now, s, c, ci)) {
                (true, true) => match self.circuit_policy(req, rx, sid, ci) {
                    Some(refused) => refused,
                    None => Ok(self.ack(now, req, rx, sid, ci)),
                },
                (true, false) => Ok(self.nak(req, rx, "address is bound to another client")),
                (false, false) if known && !partners => {
                    Ok(self.nak(req, rx, "address is bound to another client"))
                }
                (false, _) => Err(DropReason::UnknownClient),
            };
        }
        let a = req.requested.ok_or(DropReason::MissingAddress)?;
        // INIT-REBOOT: the client checks that its remembered address is still good here.
        let sid = self.subnet_of_request(req, rx)?;
        if refuse(sid, false) {
            return Err(DropReason::FailoverNotResponding);
        }
        // Right if in any subnet of the client's shared network; the address keeps to its own.
        let Some(s) = self.sibling(sid, a) else {
            return Ok(self.nak(req, rx, "wrong network"));
        };
        let sid = s.id;
        let reserved = self.reservation_for(s, c);
        let mine = self.ix.leases.get(a).is_some_and(|l| c.owns(l)) || reserved == Some(a);
        if mine {
            if self.nothing_to_renew(now, sid, req, a) {
                return Err(DropReason::FailoverNotResponding);
            }
            if self.available_to(now, s, c, a) {
                if let Some(refused) = self.circuit_policy(req, rx, sid, a) {
                    return refused;
                }
                return Ok(self.ack(now, req, rx, sid, a));
            }
            return Ok(self.nak(req, rx, "address is bound to another client"));
        }
        if self.reservations_on_link(sid, c).next().is_some()
            || self.ix.client_address(self.cfg.link_of(sid), &c.key, |_| true).is_some()
        {
            return Ok(self.nak(req, rx, "not this client's address"));
        }
        Err(DropReason::UnknownClient)
    }

    #[expect(
        clippy::many_single_char_names,
        reason = "s, c, a: subnet, client, address, as everywhere in the server"
    )]
    fn ack(
        &mut self,
        now: u64,
        req: &Request<'_>,
        rx: &RxInfo,
        sid: SubnetId,
        a: Ipv4Addr,
    ) -> Outcome {
        let s = &self.cfg.subnets[sid.index()];
        let c = &req.client;
        let (lease, pet) = self.lease_length(now, s, req, a);
        let expires_at = now + u64::from(lease);
        let mut horizon = expires_at + u64::from(self.horizon(s));
        let old = self.ix.leases.get(a);
        let same = old.is_some_and(|l| c.owns(l));
        // A renewal keeps the class its binding was made with (the kernel renews it with that
        // class's profile); a binding being made takes the class of its request.
        let renewing = req.ciaddr.is_some() && req.server_id.is_none();
        let class = match old {
            Some(o) if same && renewing => o.class.decided().unwrap_or(c.class),
            _ => c.class,
        };
        if let (Some(g), Some(pet)) = (self.gate(sid), pet) {
            let told = old.filter(|_| same).map_or(0, |l| l.expires_at);
            let mut probe =
                old.cloned().unwrap_or_else(|| Lease::new(a, LeaseState::Free, sid.0, now));
            probe.pet_sent = probe.pet_sent.max(pet);
            horizon = horizon.min(g.grant_limit(&probe, told));
        }
        // The failover fields (PETs, rewind) describe the address, whoever holds it: kept.
        let mut l = old.cloned().unwrap_or_else(|| Lease::new(a, LeaseState::Active, sid.0, now));
        if !same || l.state != LeaseState::Active {
            l.stos = now;
        }
        // The kernel may hold a horizon from before: a committed horizon never shrinks.
        l.held_until = if same { l.held_until.max(horizon) } else { horizon };
        if req.hostname.is_some() || !same {
            l.hostname = req.hostname.as_deref().map(Box::from);
        }
        // The line it was acknowledged on: a request without option 82 (from a client of an L3
        // relay, renewing around it) leaves the one on record.
        if req.relay_info.is_some() || !same {
            l.relay_info = req.relay_info.as_deref().map(Box::from);
        }
        l.state = LeaseState::Active;
        l.htype = c.htype;
        l.chaddr = Chaddr::new(&c.chaddr);
        l.client_id = c.client_id.as_deref().map(ClientId::new);
        l.class = LeaseClass::of(class);
        l.subnet = sid.0;
        l.expires_at = expires_at;
        l.cltt = now;
        l.probation_until = None;
        if let Some(pet) = pet {
            l.pet_sent = l.pet_sent.max(pet);
        }
        if old.is_some_and(|o| {
            same && o.state != LeaseState::Active && o.rewind_state == Some(LeaseState::Active)
        }) {
            self.counters.rewound_to_active += 1;
        }
        // What the partner would be left believing if this binding ends before it hears of it:
        // our own free share, for a binding taken from it. A client back on the lease the
        // partner knows as its own needs nothing of the kind, and the partner may hear of the
        // renewal at once: its own updates about the client are judged against it.
        l.rewind_state = match old {
            _ if !self.rewinds(sid) => None,
            Some(o)
                if same
                    && matches!(o.rewind_state, Some(LeaseState::Free | LeaseState::Backup)) =>
            {
                o.rewind_state
            }
            None => Some(LeaseState::Free),
            Some(o) if matches!(o.state, LeaseState::Free | LeaseState::Backup) => Some(o.state),
            Some(_) => None,
        };
        l.rewind_expiry = match (l.rewind_state, old) {
            (None, _) => None,
            (Some(_), Some(o)) if same && o.rewind_expiry.is_some() => o.rewind_expiry,
            (Some(_), o) => NonZeroU64::new(o.map_or(now, |o| o.expires_at)),
        };
        // The address is bound now: whoever's offer it was (this client's, or a lapsed one)
        // is settled, and an offer this client held elsewhere goes back to the pool.
        if let Some(o) = self.offers.remove(a)
            && self.offer_of.get(&o.client) == Some(&a)
        {
            self.offer_of.remove(&o.client);
        }
        if let Some(other) = self.offer_of.get(&c.key).copied() {
            self.forget_offer(other, now);
        }
        let change = self.ix.put(&self.cfg, l);
        self.note_held(now, c, a);
        let s = &self.cfg.subnets[sid.index()];
        let opts = self.profile_options(s, a, class);
        let msg = reply::lease_reply(req, MessageType::Ack, self.cfg.server_id, s, opts, a, lease);
        self.reply(req, rx, msg, MessageType::Ack, a, vec![change], Handled::Acked(a))
    }

    pub(super) fn nak(&mut self, req: &Request<'_>, rx: &RxInfo, why: &str) -> Outcome {
        let msg = reply::nak(req, self.cfg.server_id, why);
        self.reply(
            req,
            rx,
            msg,
            MessageType::Nak,
            Ipv4Addr::UNSPECIFIED,
            Vec::new(),
            Handled::Nacked,
        )
    }

    #[expect(clippy::too_many_arguments, reason = "private assembly of an Outcome from its parts")]
    #[expect(clippy::unused_self, reason = "a method so every handler ends the same way")]
    fn reply(
        &self,
        req: &Request<'_>,
        rx: &RxInfo,
        msg: Message,
        kind: MessageType,
        yiaddr: Ipv4Addr,
        changes: Vec<LeaseChange>,
        result: Handled,
    ) -> Outcome {
        let dest = reply::dest(req, kind, yiaddr);
        let reply = Reply { msg, dest, ifindex: rx.ifindex, room: req.room.clone() };
        Outcome { reply: Some(reply), changes, result }
    }

    pub(super) fn decline(&mut self, now: u64, req: &Request<'_>) -> Result<Outcome, DropReason> {
        if req.server_id.is_some_and(|s| s != self.cfg.server_id) {
            return Err(DropReason::OtherServer);
        }
        let a = req.requested.ok_or(DropReason::MissingAddress)?;
        let mut l = match self.ix.leases.get(a) {
            Some(l) if req.client.owns(l) => l.clone(),
            // Out of service already: the failover partner heard the same broadcast DECLINE
            // first (ISC dhcpd abandons an address whichever server the client names) and its
            // ABANDONED took our client's record. Ours still goes out, with our probation: the
            // partner may yet take our ACTIVE, sent before the DECLINE, over its ABANDONED.
            Some(l) if l.state == LeaseState::Abandoned => l.clone(),
            // Anyone could otherwise take addresses out of service by declining them.
            _ => return Err(DropReason::NotTheirs),
        };
        l.state = LeaseState::Abandoned;
        l.stos = now;
        l.probation_until = NonZeroU64::new(now + u64::from(self.cfg.probation));
        let change = self.ix.put(&self.cfg, l);
        Ok(Outcome { reply: None, changes: vec![change], result: Handled::Declined(a) })
    }

    pub(super) fn release(&mut self, now: u64, req: &Request<'_>) -> Result<Outcome, DropReason> {
        if req.server_id.is_some_and(|s| s != self.cfg.server_id) {
            return Err(DropReason::OtherServer);
        }
        let a = req.ciaddr.ok_or(DropReason::MissingAddress)?;
        let mut l = match self.ix.leases.get(a) {
            Some(l) if req.client.owns(l) && l.state == LeaseState::Active => l.clone(),
            _ => return Err(DropReason::NotTheirs),
        };
        // held_until stays: the kernel may renew until the caller has deleted the map entry,
        // so the address waits for it before going to anyone else.
        l.stos = now;
        l.cltt = now;
        l.expires_at = l.expires_at.min(now);
        let l = self.client_gone(l, LeaseState::Released);
        let change = self.ix.put(&self.cfg, l);
        Ok(Outcome { reply: None, changes: vec![change], result: Handled::Released(a) })
    }

    pub(super) fn inform(&mut self, req: &Request<'_>, rx: &RxInfo) -> Result<Outcome, DropReason> {
        let sid = if let (None, Some(ci)) = (req.giaddr, req.ciaddr) {
            self.cfg.subnet_containing(ci).ok_or(DropReason::NoSubnet)?
        } else {
            // On a shared network, the options of the subnet the client's address is in.
            let sid = self.subnet_of_request(req, rx)?;
            req.ciaddr.and_then(|ci| self.sibling(sid, ci)).map_or(sid, |s| s.id)
        };
        let s = &self.cfg.subnets[sid.index()];
        let at = req.ciaddr.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let msg = reply::inform_ack(
            req,
            self.cfg.server_id,
            self.profile_options(s, at, req.client.class),
        );
        Ok(self.reply(
            req,
            rx,
            msg,
            MessageType::Ack,
            Ipv4Addr::UNSPECIFIED,
            Vec::new(),
            Handled::Informed,
        ))
    }
}

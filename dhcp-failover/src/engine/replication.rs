//! Binding replication: BNDUPD / BNDACK and the UPDREQ / UPDREQALL / UPDDONE handshake
//! (draft-12 §7.1–§7.5).

use std::collections::HashSet;

use super::{CommitId, Event, InFlight, Link, Peer, PendingAck, ServingRequest, wire_time};
use crate::messages::BindingAck;
use crate::options::{RejectReason, ServerState};
use crate::wire::Message;

impl Peer {
    /// The partner changed bindings. Each transaction is judged on its own (§6.3); accepted ones
    /// go to the store, and the BNDACK waits until the store says they are durable.
    pub(super) fn on_bndupd(&mut self, now: u64, msg: &Message) {
        if self.requested.is_some() {
            // The answer to our UPDREQ(ALL) is coming: it may take a while for a large pool.
            self.arm_update_request(now);
        }
        let mut acks = Vec::new();
        let mut accepted_any = false;
        let commit = CommitId(self.next_commit);
        for txn in msg.binding_updates() {
            let binding = match txn {
                Ok(b) => b,
                Err(incomplete) => {
                    acks.push(BindingAck::reject(
                        incomplete.ip,
                        RejectReason::MISSING_BINDING_INFO,
                        "binding status or client missing",
                    ));
                    continue;
                }
            };
            let ip = binding.ip;
            if !self.cfg.serves_address(ip) {
                acks.push(BindingAck::reject(
                    ip,
                    RejectReason::ILLEGAL_IP,
                    "address not in any failover pool",
                ));
                continue;
            }
            let ours = self.bindings.get(ip).map(|r| &r.binding);
            if self.primary_wins(ip, &binding) {
                if ours.is_some_and(|o| o.status == binding.status) {
                    // Both say the same (a broadcast DECLINE both servers heard): nothing to
                    // settle, nor to store over ours, which the secondary takes as it is.
                    acks.push(BindingAck::accept(ip));
                    continue;
                }
                acks.push(BindingAck::reject(
                    ip,
                    RejectReason::LESS_CRITICAL_BINDING,
                    "the primary's own update of this address crosses yours",
                ));
                continue;
            }
            if self.primary_expires(ours, &binding) {
                acks.push(BindingAck::reject(
                    ip,
                    RejectReason::FATAL_CONFLICT,
                    "in NORMAL the primary expires leases",
                ));
                continue;
            }
            let verdict = if self.secondary_yields(ip, &binding) {
                Ok(())
            } else {
                super::judge_update(ours, &binding, self.cfg.role, now)
            };
            match verdict {
                Ok(()) => {
                    self.bindings.accept_remote(binding.clone());
                    self.events.push_back(Event::ApplyBinding { binding, commit });
                    accepted_any = true;
                    acks.push(BindingAck::accept(ip));
                }
                Err(RejectReason::OUTDATED_BINDING)
                    if ours.is_some_and(|o| super::bindings::covers(o, &binding)) =>
                {
                    // Nothing to store: our durable binding already promises more.
                    acks.push(BindingAck::accept(ip));
                }
                Err(reason) => acks.push(BindingAck::reject(ip, reason, reject_text(reason))),
            }
        }
        if acks.is_empty() {
            // A BNDUPD without any address says nothing; there is nothing to acknowledge.
            return;
        }
        if accepted_any {
            self.next_commit += 1;
            self.pending_acks.push_back(PendingAck { xid: msg.xid, acks, commit });
        } else {
            self.send(now, Message::bndack(wire_time(now), msg.xid, &acks));
        }
    }

    /// The partner answered one of our BNDUPDs.
    pub(super) fn on_bndack(&mut self, msg: &Message) {
        let Some(pos) = self.in_flight.iter().position(|f| f.xid == msg.xid) else {
            // Stale (from before a reconnect) or bogus; nothing to update.
            return;
        };
        let sent = self.in_flight.swap_remove(pos);
        let acks = msg.binding_acks();
        let verdict = acks
            .iter()
            .find(|a| a.ip == sent.ip)
            .or_else(|| acks.first())
            .and_then(|a| a.reject.map(|r| (r, a.message.clone().unwrap_or_default())));
        if let Some(serving) = &mut self.serving {
            serving.waiting.remove(&sent.ip);
        }
        // Accepted or refused, the partner has now judged a version at least as new as the
        // one leaving PARTNER-DOWN waits for.
        if let Some(hand_back) = &mut self.hand_back
            && hand_back.get(&sent.ip).is_some_and(|v| sent.version >= *v)
        {
            hand_back.remove(&sent.ip);
        }
        match verdict {
            None => {
                let mut latest = false;
                if let Some(r) = self.bindings.get_mut(sent.ip) {
                    if let Some(pet) = sent.pet {
                        r.times.acked_pet = r.times.acked_pet.max(u64::from(pet));
                    }
                    if r.version == sent.version {
                        r.up_to_date = true;
                        latest = true;
                    }
                }
                self.events.push_back(Event::BindingAcked {
                    ip: sent.ip,
                    status: sent.status,
                    acked_pet: sent.pet,
                    latest,
                });
            }
            Some((reason, message)) => {
                self.events.push_back(Event::BindingRejected { ip: sent.ip, reason, message });
            }
        }
    }

    /// UPDREQ / UPDREQALL: send what the partner lacks and remember what must be acked before
    /// UPDDONE. A new request while one is being answered takes over its bookkeeping: ISC sends
    /// two UPDREQALLs back to back and expects a single UPDDONE, for the later one.
    pub(super) fn on_update_request(&mut self, xid: u32, all: bool) {
        if all {
            self.bindings.forget_partner_knowledge();
        }
        let sending = self.in_flight_versions();
        let mut waiting: HashSet<_> = self.bindings.enqueue_stale(&sending).into_iter().collect();
        waiting.extend(self.in_flight.iter().map(|f| f.ip));
        if let Some(previous) = self.serving.take() {
            waiting.extend(previous.waiting);
        }
        self.serving = Some(ServingRequest { xid, waiting });
    }

    /// Two updates of one address that cross on the wire would each be stored by the other
    /// side, and the two would swap states (a FREE for a BACKUP). Unless a client is bound,
    /// the primary's stands (ISC dhcpd's rule): it refuses the secondary's while its own is not
    /// yet acknowledged, and the secondary takes the primary's when it arrives.
    fn primary_wins(
        &self,
        ip: std::net::Ipv4Addr,
        theirs: &crate::messages::BindingUpdate,
    ) -> bool {
        self.cfg.role == super::Role::Primary
            && theirs.status != crate::options::BindingStatus::Active
            && self.bindings.get(ip).is_some_and(|r| !r.up_to_date)
    }

    /// The other half of [`Peer::primary_wins`]: the secondary takes the primary's update of an
    /// address no client holds here, over its own that crossed it. Judged on its own, an
    /// EXPIRED with an older CLTT against a RELEASED would be refused both ways, for good.
    fn secondary_yields(
        &self,
        ip: std::net::Ipv4Addr,
        theirs: &crate::messages::BindingUpdate,
    ) -> bool {
        use crate::options::BindingStatus::Active;
        self.cfg.role == super::Role::Secondary
            && theirs.status != Active
            && self.bindings.get(ip).is_some_and(|r| !r.up_to_date && r.binding.status != Active)
    }

    /// In NORMAL the primary expires the leases of the shared pools and the secondary does not
    /// (ISC dhcpd, both ways): an expiry the secondary made while the two were apart would,
    /// once accepted here, cross the primary's own later picture of the lease on the wire.
    /// The primary expires the lease itself, by the end it holds.
    fn primary_expires(
        &self,
        ours: Option<&crate::messages::BindingUpdate>,
        theirs: &crate::messages::BindingUpdate,
    ) -> bool {
        use crate::options::BindingStatus::{Active, Expired};
        self.cfg.role == super::Role::Primary
            && self.state == ServerState::Normal
            && theirs.status == Expired
            && ours.is_some_and(|o| o.status == Active)
    }

    pub(super) fn in_flight_versions(&self) -> HashSet<(std::net::Ipv4Addr, u64)> {
        self.in_flight.iter().map(|f| (f.ip, f.version)).collect()
    }

    /// Sends queued BNDUPDs while the partner's window has room.
    pub(super) fn pump_updates(&mut self, now: u64) {
        if self.link != Link::Up {
            return;
        }
        // Spontaneous updates only flow in NORMAL (and CONFLICT-DONE, where the primary is the
        // authority); in other states only what the partner asked for.
        let flowing = matches!(self.state, ServerState::Normal | ServerState::ConflictDone)
            || self.serving.is_some()
            || self.handing_back();
        if !flowing {
            return;
        }
        let window = usize::try_from(self.partner.max_unacked).unwrap_or(1);
        while self.in_flight.len() < window {
            let Some(ip) = self.bindings.next_to_send() else {
                break;
            };
            let Some(record) = self.bindings.get_mut(ip) else {
                continue;
            };
            let binding = record.binding.clone();
            if let Some(pet) = binding.potential_expiration {
                // §7.1.1: every PET ever sent counts once we go PARTNER-DOWN, acked or not.
                record.times.sent_pet = record.times.sent_pet.max(u64::from(pet));
            }
            let version = record.version;
            let xid = self.xid();
            self.in_flight.push(InFlight {
                xid,
                ip,
                version,
                status: binding.status,
                pet: binding.potential_expiration,
            });
            self.send(now, Message::bndupd(wire_time(now), xid, &binding));
        }
    }

    /// Sends UPDDONE once every address of the request has been answered.
    pub(super) fn finish_serving(&mut self, now: u64) {
        if self.link != Link::Up {
            return;
        }
        let Some(serving) = &mut self.serving else {
            return;
        };
        // An address the partner has meanwhile told us about itself no longer needs sending.
        let in_flight: HashSet<_> = self.in_flight.iter().map(|f| f.ip).collect();
        let bindings = &self.bindings;
        serving.waiting.retain(|ip| {
            in_flight.contains(ip) || bindings.get(*ip).is_some_and(|r| !r.up_to_date && r.queued)
        });
        if serving.waiting.is_empty() {
            let xid = serving.xid;
            self.serving = None;
            self.send(now, Message::upddone(wire_time(now), xid));
        }
    }
}

fn reject_text(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::FATAL_CONFLICT => "address in use by another client",
        RejectReason::OUTDATED_BINDING => "outdated binding information",
        RejectReason::LESS_CRITICAL_BINDING => "less critical binding information",
        RejectReason::IP_NOT_RESERVED => "address not reserved on this server",
        _ => "binding rejected",
    }
}

//! What the simulation checks after every turn and every step, and once settled: the oracle,
//! apart from the world it watches (`super`).
use std::collections::HashMap;
use std::net::Ipv4Addr;

use dhcp_failover::{MessageType as FoType, ServerState};

use super::*;

impl Sim {
    /// Every address of the pool, once no client holds any: FREE or BACKUP, the same on both.
    pub(super) fn check_liveness(&mut self) -> Result<(), String> {
        let state = |n: &Node, a: Ipv4Addr| n.disk.get(a).map_or(LeaseState::Free, |l| l.state);
        for k in 0..POOL {
            let a = Ipv4Addr::new(10, 0, 0, 100 + k);
            let (p, s) = (state(&self.nodes[0], a), state(&self.nodes[1], a));
            let free = |st: LeaseState| matches!(st, LeaseState::Free | LeaseState::Backup);
            if !free(p) || !free(s) || p != s {
                return Err(format!(
                    "settled, yet {a} is {p:?} on the primary and {s:?} on the secondary"
                ));
            }
            self.live_checked += 1;
        }
        Ok(())
    }

    /// What every turn must keep: nothing left undone, no userspace ACK beyond the MCLT rule,
    /// and nothing sent — ACK, BNDUPD or BNDACK — that the store does not hold as memory has it.
    #[expect(
        clippy::too_many_arguments,
        reason = "the turn, its inputs and the record before it: one check"
    )]
    pub(super) fn check_turn(
        &self,
        i: usize,
        now: u64,
        core: &Core,
        before: &HashMap<Ipv4Addr, u64>,
        state: Option<ServerState>,
        out: &Output<()>,
        after_news: bool,
    ) -> Result<(), String> {
        let disk = &self.nodes[i].disk;
        if out.commit_failed {
            return Err(format!("{}: a turn left changes uncommitted", ROLE[i]));
        }
        for r in out.replies.iter().filter(|r| is_ack(r)) {
            let a = r.msg.yiaddr();
            let lease = lease_of(&r.msg).unwrap_or(0);
            let mac = r.msg.chaddr().get(..6).unwrap_or_default().to_vec();
            // The MCLT rule, from the record as it stood before this decision.
            let mut horizon = before.get(&a).copied().unwrap_or(0);
            if after_news {
                let now_known =
                    core.server().lease(a).map_or(0, |l| l.pet_acked.max(l.pet_received));
                horizon = horizon.max(now_known);
            }
            let end = now + u64::from(lease);
            if lease > LEASE || end > horizon.max(now) + u64::from(MCLT) {
                return Err(format!(
                    "{} ({state:?}) acked {a} for {lease} s: horizon {horizon}, now {now}, \
                     ends {} s past horizon+MCLT",
                    ROLE[i],
                    end - horizon.max(now) - u64::from(MCLT)
                ));
            }
            // The record this ACK's decision wrote was committed in this turn; a later decision
            // of the same turn (the client's RELEASE) may have replaced it since.
            let durable = disk.journal.iter().flatten().any(|l| {
                l.address == a
                    && l.state == LeaseState::Active
                    && l.chaddr == mac
                    && l.expires_at >= end
            });
            if !durable {
                return Err(format!("{} acked {a} before it was durable", ROLE[i]));
            }
        }
        let durable = |a: Ipv4Addr| disk.get(a) == core.server().lease(a);
        for (_, c) in &out.link {
            if let PeerCmd::Send { bytes, .. } = c
                && let Ok(m) = dhcp_failover::decode(bytes)
            {
                let ips: Vec<Ipv4Addr> = match m.kind {
                    FoType::BndAck => m.binding_acks().iter().map(|a| a.ip).collect(),
                    FoType::BndUpd => m
                        .binding_updates()
                        .iter()
                        .filter_map(|b| b.as_ref().ok().map(|b| b.ip))
                        .collect(),
                    _ => Vec::new(),
                };
                if let Some(a) =
                    ips.into_iter().find(|a| !durable(*a) && core.server().lease(*a).is_some())
                {
                    return Err(format!(
                        "{} sent {:?} about {a} before it was durable",
                        ROLE[i], m.kind
                    ));
                }
            }
        }
        Ok(())
    }

    /// The trace of a replayed seed: state changes and every binding message.
    pub(super) fn trace_turn(
        &mut self,
        i: usize,
        now: u64,
        core: &Core,
        link: &[(crate::config::RelationshipId, PeerCmd)],
    ) {
        let mut lines = Vec::new();
        // XDHCP_SIM_WATCH=10.0.0.105: every change of that address's record on either side.
        if let Some(a) = std::env::var("XDHCP_SIM_WATCH").ok().and_then(|a| a.parse().ok()) {
            let seen = core.server().lease(a).map(|l| {
                format!(
                    "{:?} exp {} cltt {} held {} pet {}/{}/{} acked {} rewind {:?}",
                    l.state,
                    l.expires_at,
                    l.cltt,
                    l.held_until,
                    l.pet_sent,
                    l.pet_acked,
                    l.pet_received,
                    l.partner_acked,
                    l.rewind_state
                )
            });
            if seen != self.nodes[i].watched {
                lines.push(format!("{} watch {a}: {}", ROLE[i], seen.clone().unwrap_or_default()));
                self.nodes[i].watched = seen;
            }
        }
        if let Some(st) = core.failover().map(|f| f.peer().state())
            && self.nodes[i].traced_state != Some(st)
        {
            self.nodes[i].traced_state = Some(st);
            lines.push(format!("{} state {st:?} t={now}", ROLE[i]));
        }
        for (_, c) in link {
            let PeerCmd::Send { bytes, .. } = c else { continue };
            let Ok(m) = dhcp_failover::decode(bytes) else { continue };
            match m.kind {
                FoType::BndUpd => {
                    for b in m.binding_updates().into_iter().flatten() {
                        lines.push(format!(
                            "{} BNDUPD {} {:?} exp {:?} pet {:?} cltt {:?}",
                            ROLE[i],
                            b.ip,
                            b.status,
                            b.lease_expiration,
                            b.potential_expiration,
                            b.client_last_transaction
                        ));
                    }
                }
                FoType::BndAck => {
                    for a in m.binding_acks() {
                        lines.push(format!("{} BNDACK {} {:?}", ROLE[i], a.ip, a.reject));
                    }
                }
                k => lines.push(format!("{} sends {k:?}", ROLE[i])),
            }
        }
        for l in lines {
            self.log(|| l);
        }
    }

    /// Safety, after every step: no address promised to two clients for overlapping times,
    /// beyond what two clocks' skew allows.
    pub(super) fn check(&mut self) -> Result<(), String> {
        if let Some(e) = self.pending_failure.take() {
            return Err(e);
        }
        for (a, ps) in &mut self.promises {
            ps.retain(|p| p.until + TOLERANCE + 1 > self.now - 1000.min(self.now));
            for (x, p) in ps.iter().enumerate() {
                for q in &ps[x + 1..] {
                    if p.client != q.client
                        && p.from + TOLERANCE < q.until
                        && q.from + TOLERANCE < p.until
                    {
                        if p.excused || q.excused {
                            self.mistake.conflicts.insert((
                                *a,
                                p.from.min(q.from),
                                p.from.max(q.from),
                            ));
                            continue;
                        }
                        return Err(format!(
                            "{a} promised to c{} [{}, {}) by {} and to c{} [{}, {}) by {}",
                            p.client,
                            p.from - T0,
                            p.until - T0,
                            p.by,
                            q.client,
                            q.from - T0,
                            q.until - T0,
                            q.by
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

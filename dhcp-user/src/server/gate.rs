//! The failover relationship's say in answering clients ([`FailoverGate`]), and the rules that
//! follow from it for a lease's length and for how far the fast path may run.
use std::net::Ipv4Addr;

use dhcp_failover::{
    Role, ServerState,
    engine::Service,
    load_balance::Hba,
    mclt::{self, LeaseTimes},
};

use crate::config::{Subnet, SubnetId};
use crate::store::{Lease, LeaseState};

use super::Server;
use super::request::Request;

/// What a failover relationship allows right now, as far as answering clients goes. The
/// failover glue sets it whenever the relationship's state changes; it applies only to the
/// subnets shared in that relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverGate {
    pub role: Role,
    pub state: ServerState,
    pub service: Service,
    /// The MCLT in force (the secondary's is the primary's).
    pub mclt: u32,
    pub hba: Hba,
    pub load_balance_max_seconds: u16,
    /// When this server entered `state` (its STOS): PARTNER-DOWN counts the MCLT from here.
    pub since: u64,
}

impl FailoverGate {
    /// Where a relationship starts: nobody is answered until the partner has been heard from.
    #[must_use]
    pub fn starting(f: &crate::config::Failover) -> Self {
        FailoverGate {
            role: f.role,
            state: ServerState::Startup,
            service: Service::NotResponding,
            mclt: f.mclt,
            hba: f.hba,
            load_balance_max_seconds: f.load_balance_max_seconds,
            since: 0,
        }
    }

    /// Latest time the fast path may let `l` run to, by the MCLT rule: MCLT beyond what the
    /// partner acknowledged or told us. `told` is the lease end the partner may know of,
    /// which counts only while the servers cannot talk (draft-12 §9.9.2).
    #[must_use]
    pub fn grant_limit(&self, l: &Lease, told: u64) -> u64 {
        self.times(l, told).grant_horizon(self.state).saturating_add(u64::from(self.mclt))
    }

    #[expect(clippy::unused_self, reason = "a method so its callers read the same as grant_limit")]
    fn times(&self, l: &Lease, told: u64) -> LeaseTimes {
        LeaseTimes {
            lease_expiration: told,
            sent_pet: l.pet_sent,
            acked_pet: l.pet_acked,
            received_pet: l.pet_received,
        }
    }

    /// Whether this server may give `l`'s address (`None`: no record, an address nobody used
    /// yet) to a client that does not hold it at `now`. Free addresses are the primary's,
    /// backup ones the secondary's (draft-12 §5.11); anything bound, or on its way back to
    /// free, waits for the partner to hear of it, except in PARTNER-DOWN (see
    /// [`FailoverGate::takeover_at`]).
    pub(super) fn may_allocate(&self, l: Option<&Lease>, now: u64) -> bool {
        let own = match l.map(|l| l.state) {
            None | Some(LeaseState::Free) => self.role == Role::Primary,
            Some(LeaseState::Backup) => self.role == Role::Secondary,
            Some(_) => false,
        };
        own || self.takeover_at(l).is_some_and(|t| t <= now)
    }

    /// In PARTNER-DOWN, when an address this server does not own (the partner's free or
    /// backup share, or one that expired or was released without the partner acknowledging
    /// it) may go to a new client: MCLT beyond every time either side may have promised a
    /// client, and never before MCLT after entering PARTNER-DOWN (draft-12 §5.2.2, §9.4.2).
    /// The partner may have handed the address out just before it went silent, with a lease of
    /// at most that much. `None`: not in PARTNER-DOWN, or an address that never moves this way
    /// (active leases expire first; abandoned ones wait out their probation).
    #[must_use]
    pub fn takeover_at(&self, l: Option<&Lease>) -> Option<u64> {
        if self.service != Service::PartnerDown {
            return None;
        }
        let mclt = u64::from(self.mclt);
        match l {
            None => Some(self.since.saturating_add(mclt)),
            Some(l) => match l.state {
                LeaseState::Free
                | LeaseState::Backup
                | LeaseState::Expired
                | LeaseState::Released
                | LeaseState::Reset => {
                    let t =
                        self.times(l, l.expires_at).partner_down_reuse_at(self.since, self.mclt);
                    Some(t.max(l.held_until))
                }
                LeaseState::Active | LeaseState::Abandoned => None,
            },
        }
    }
}

impl Server {
    /// Whether `sid` is shared and the partner is unreachable, the one state where the
    /// partner's view of a binding is frozen and so can be rewound to (see [`Lease::rewind_state`]).
    pub(super) fn rewinds(&self, sid: SubnetId) -> bool {
        self.rewinding
            && self.gate(sid).is_some_and(|g| g.state == ServerState::CommunicationsInterrupted)
    }

    /// The gate that applies to subnet `sid`: its relationship's, none unless it is shared.
    pub(super) fn gate(&self, sid: SubnetId) -> Option<FailoverGate> {
        let r = self.cfg.subnet(sid)?.failover?;
        self.failover.get(r.index()).copied()
    }

    /// The lease to give (seconds) and, on a shared subnet, the potential expiration time to
    /// send the partner. On a shared subnet the lease is capped by the MCLT rule: at most MCLT
    /// beyond what the partner knows of the address (draft-12 §5.2.1).
    pub(super) fn lease_length(
        &self,
        now: u64,
        s: &Subnet,
        req: &Request<'_>,
        a: Ipv4Addr,
    ) -> (u32, Option<u64>) {
        let desired = s.lease_for(req.lease_time);
        let Some(g) = self.gate(s.id) else { return (desired, None) };
        let times = match self.ix.leases.get(a) {
            Some(l) if req.client.owns(l) => g.times(l, l.expires_at),
            Some(l) => g.times(l, 0),
            None => LeaseTimes::default(),
        };
        let horizon = times.grant_horizon(g.state);
        let lease = if g.state == ServerState::RecoverDone {
            // The partner is, or was until just now, in PARTNER-DOWN and reuses an address MCLT
            // past what it knows of it, whenever a client last renewed here: no lease may reach
            // beyond that, not even the MCLT every other state may always give.
            let end = horizon.saturating_add(u64::from(g.mclt));
            u32::try_from(end.saturating_sub(now)).unwrap_or(u32::MAX).min(desired)
        } else {
            mclt::max_client_lease(now, horizon, g.mclt, desired)
        };
        (lease, Some(mclt::potential_expiration(now, desired, lease)))
    }

    /// RECOVER-DONE has nothing to give this client (see [`Server::lease_length`]): better
    /// silence, so that it rebinds to the partner, than an ACK of no time.
    pub(super) fn nothing_to_renew(
        &self,
        now: u64,
        sid: SubnetId,
        req: &Request<'_>,
        a: Ipv4Addr,
    ) -> bool {
        let s = &self.cfg.subnets[sid.index()];
        self.gate(sid).is_some_and(|g| g.state == ServerState::RecoverDone)
            && self.lease_length(now, s, req, a).0 == 0
    }

    pub(super) fn horizon(&self, s: &Subnet) -> u32 {
        if self.cfg.fast_path.enabled {
            self.cfg.fast_path.horizon.unwrap_or(s.lease_time)
        } else {
            0
        }
    }
}

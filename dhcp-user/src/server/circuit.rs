//! The subscriber's line: a binding is acknowledged for the circuit-id (option 82 sub-option 1)
//! it was bound with, and a request that would keep it from another line meets the subnet's
//! `circuit_change` policy. XDP never answers such a request (its option 82 differs from the
//! one on record), so the slow path decides every one.
use std::net::Ipv4Addr;

use crate::config::{CircuitChange, SubnetId};
use crate::relay::AgentInfo;
use crate::store::{Lease, LeaseState};

use super::request::Request;
use super::{DropReason, Outcome, RxInfo, Server};

/// What was done about a request from another line than its binding's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitAction {
    /// `circuit_change = "nak"`: refused.
    Nak,
    /// `circuit_change = "ignore"`: no answer.
    Ignored,
    /// `circuit_change = "move"`: acknowledged, the new line recorded.
    Moved,
    /// A full exchange (DISCOVER, then REQUEST naming this server) bound the client on the new
    /// line, whatever the policy: that is how a client refused or ignored moves.
    Rebound,
}

impl CircuitAction {
    pub const ALL: [CircuitAction; 4] = [Self::Nak, Self::Ignored, Self::Moved, Self::Rebound];

    /// Stable name for metrics and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nak => "nak",
            Self::Ignored => "ignored",
            Self::Moved => "moved",
            Self::Rebound => "rebound",
        }
    }

    pub(super) fn slot(self) -> usize {
        Self::ALL.iter().position(|&a| a == self).unwrap_or(0)
    }
}

/// A request that named another circuit-id than its binding's, and what it got: for the log
/// (the caller drains them with [`Server::take_circuit_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitChangeEvent {
    pub address: Ipv4Addr,
    pub chaddr: Vec<u8>,
    /// The circuit-id on record.
    pub from: Vec<u8>,
    /// The request's (`None`: its option 82 has no circuit-id).
    pub to: Option<Vec<u8>>,
    pub action: CircuitAction,
}

/// The line `req` comes from, if it says, against the one active binding `l` was acknowledged
/// with: `Some((on record, requested))` when both are known and differ. A request without
/// option 82, or a binding with no circuit-id on record (bound without one, or before this
/// build recorded them), is not a change. Option 82 without a circuit-id, against a binding
/// that has one, is.
fn changed_line(req: &Request<'_>, l: &Lease) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if l.state != LeaseState::Active {
        return None;
    }
    let from = l.circuit_id()?;
    let to = AgentInfo::parse(req.relay_info.as_deref()?).circuit_id;
    (to != Some(from)).then(|| (from.to_vec(), to.map(<[u8]>::to_vec)))
}

impl Server {
    /// For a request that would keep the binding of `a` (RENEWING, REBINDING, INIT-REBOOT),
    /// owned by the client: `None` to go on and acknowledge (same line, nothing to compare, or
    /// the policy moves it), else what the policy answers instead.
    pub(super) fn circuit_policy(
        &mut self,
        req: &Request<'_>,
        rx: &RxInfo,
        sid: SubnetId,
        a: Ipv4Addr,
    ) -> Option<Result<Outcome, DropReason>> {
        let (from, to) = self.ix.leases.get(a).and_then(|l| changed_line(req, l))?;
        let policy = self.cfg.subnets[sid.index()].circuit_change;
        let action = match policy {
            CircuitChange::Nak => CircuitAction::Nak,
            CircuitChange::Ignore => CircuitAction::Ignored,
            CircuitChange::Move => CircuitAction::Moved,
        };
        self.circuit_changed(a, req, from, to, action);
        match policy {
            CircuitChange::Nak => {
                Some(Ok(self.nak(req, rx, "circuit-id differs from the binding's")))
            }
            CircuitChange::Ignore => Some(Err(DropReason::CircuitChanged)),
            CircuitChange::Move => None,
        }
    }

    /// A SELECTING request for the client's own active binding from another line: acknowledged
    /// (it answers our offer), and told.
    pub(super) fn circuit_rebinding(&mut self, req: &Request<'_>, a: Ipv4Addr) {
        let Some(l) = self.ix.leases.get(a).filter(|l| req.client.owns(l)) else { return };
        if let Some((from, to)) = changed_line(req, l) {
            self.circuit_changed(a, req, from, to, CircuitAction::Rebound);
        }
    }

    fn circuit_changed(
        &mut self,
        address: Ipv4Addr,
        req: &Request<'_>,
        from: Vec<u8>,
        to: Option<Vec<u8>>,
        action: CircuitAction,
    ) {
        self.counters.circuit_changes[action.slot()] += 1;
        let chaddr = req.client.chaddr.clone();
        self.circuit_changes.push(CircuitChangeEvent { address, chaddr, from, to, action });
    }

    /// The requests from another line since the last call, oldest first.
    pub fn take_circuit_changes(&mut self) -> Vec<CircuitChangeEvent> {
        std::mem::take(&mut self.circuit_changes)
    }
}

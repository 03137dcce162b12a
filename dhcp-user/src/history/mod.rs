//! The lease history: every lease event the turn committed (an offer made, a binding, a
//! renewal from either path, a release, a decline, an expiry, a binding the failover partner
//! sent), kept as JSON lines in a local file ([`file`]) and, when configured, sent on to a
//! PostgreSQL database the fleet shares ([`pg`]).
//!
//! The turn only notes events ([`RawEvent`], in [`crate::core::Output::history`]: identifiers
//! as the bytes the record holds); the daemon's writer describes them as text ([`LeaseEvent`]),
//! numbers them and writes them off the turn's thread ([`writer`]), so that neither a slow
//! disk, nor a database that is down, nor the formatting itself delays a reply: at the fast
//! path's renewal rate, formatting on the turn's thread took over half of it
//! (`cargo xtask bench history`).
pub mod file;
pub mod pg;
pub mod query;
#[cfg(test)]
mod tests;
pub mod writer;

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{
    core::control::{hex, printable},
    store::{Chaddr, ClientId, Lease, LeaseState},
};

/// What happened to the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Offered to a client (a DHCPOFFER sent); not a holding.
    Offer,
    /// A new binding: the address went to this client.
    Bind,
    /// The client's binding was extended.
    Renew,
    Release,
    Decline,
    Expire,
    /// The failover partner sent this binding, and it is now the record here.
    FailoverUpdate,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Bind => "bind",
            Self::Renew => "renew",
            Self::Release => "release",
            Self::Decline => "decline",
            Self::Expire => "expire",
            Self::FailoverUpdate => "failover-update",
        }
    }
}

/// Which path decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Userspace: a DHCP message the daemon answered, or an expiry.
    Slow,
    /// A renewal the XDP program answered in the kernel, from its event log.
    Xdp,
    /// The failover partner's binding update.
    Partner,
}

impl Via {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slow => "slow",
            Self::Xdp => "xdp",
            Self::Partner => "partner",
        }
    }
}

/// One lease event, as the turn decided and committed it. Identifiers are written as
/// `xdhcp leases` shows them: the MAC as `aa:bb:..`, the client id in hex, circuit-id and
/// remote-id as text when printable and `0x..` hex otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseEvent {
    /// Unix seconds (the turn's `now`; for a renewal XDP answered, when it answered).
    pub time: u64,
    pub kind: Kind,
    pub address: Ipv4Addr,
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// The record's state after the event (`active`, `released`...).
    pub state: String,
    /// End of the lease as told to the client (for an offer, of the lease offered).
    pub lease_end: u64,
    pub path: Via,
}

/// A lease event as the turn notes it: what [`LeaseEvent`] says, its identifiers still the
/// record's bytes (the client id inline, option 82 one copy), so that the turn's thread formats
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub time: u64,
    pub kind: Kind,
    pub address: Ipv4Addr,
    pub chaddr: Chaddr,
    pub client_id: Option<ClientId>,
    /// Option 82's value, circuit-id and remote-id inside.
    pub relay_info: Option<Box<[u8]>>,
    pub state: &'static str,
    pub lease_end: u64,
    pub path: Via,
}

impl RawEvent {
    /// The event `kind` of `l` as it now stands.
    #[must_use]
    pub fn of_lease(time: u64, kind: Kind, path: Via, l: &Lease) -> Self {
        Self {
            time,
            kind,
            address: l.address,
            chaddr: l.chaddr,
            client_id: l.client_id.clone(),
            relay_info: l.relay_info.clone(),
            state: l.state.as_str(),
            lease_end: l.expires_at,
            path,
        }
    }

    /// A DHCPOFFER, read from the reply itself: offers are held in memory, not as records,
    /// and the reply carries what the client is told (its client id and option 82 echoed,
    /// RFC 6842 and RFC 3046).
    #[must_use]
    pub fn of_offer(time: u64, address: Ipv4Addr, msg: &dhcproto::v4::Message) -> Self {
        use dhcproto::v4::{DhcpOption, OptionCode};
        let opts = msg.opts();
        let lease = match opts.get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(s)) => u64::from(*s),
            _ => 0,
        };
        let client_id = match opts.get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) => Some(ClientId::from(id.as_slice())),
            _ => None,
        };
        // The server echoes option 82 as the relay sent it, as raw bytes (`server::reply`).
        let relay_info = match opts.get(OptionCode::RelayAgentInformation) {
            Some(DhcpOption::Unknown(u)) => Some(u.data().into()),
            _ => None,
        };
        let hlen = usize::from(msg.hlen()).min(16);
        Self {
            time,
            kind: Kind::Offer,
            address,
            chaddr: Chaddr::new(msg.chaddr().get(..hlen).unwrap_or_default()),
            client_id,
            relay_info,
            state: "offered",
            lease_end: time.saturating_add(lease),
            path: Via::Slow,
        }
    }

    /// The event as the history writes it: identifiers as text.
    #[must_use]
    pub fn describe(&self) -> LeaseEvent {
        let agent = self.relay_info.as_deref().map(crate::relay::AgentInfo::parse);
        LeaseEvent {
            time: self.time,
            kind: self.kind,
            address: self.address,
            mac: crate::packet::fmt_hw(self.chaddr.as_slice()),
            client_id: self.client_id.as_deref().map(hex),
            circuit_id: agent.as_ref().and_then(|a| a.circuit_id).map(printable),
            remote_id: agent.as_ref().and_then(|a| a.remote_id).map(printable),
            state: self.state.to_owned(),
            lease_end: self.lease_end,
            path: self.path,
        }
    }
}

impl LeaseEvent {
    /// The event `kind` of `l` as it now stands.
    #[must_use]
    pub fn of_lease(time: u64, kind: Kind, path: Via, l: &Lease) -> Self {
        RawEvent::of_lease(time, kind, path, l).describe()
    }

    /// Whether this event leaves a client holding the address until `lease_end`.
    #[must_use]
    pub fn holds(&self) -> bool {
        match self.kind {
            Kind::Bind | Kind::Renew => true,
            Kind::FailoverUpdate => self.state == LeaseState::Active.as_str(),
            Kind::Offer | Kind::Release | Kind::Decline | Kind::Expire => false,
        }
    }
}

/// An event as the history keeps it: numbered by the node that wrote it. `id` is unique in the
/// fleet (`node:seq`, the sequence persisted across restarts), so that sending it twice to
/// PostgreSQL stores it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub node: String,
    pub seq: u64,
    #[serde(flatten)]
    pub event: LeaseEvent,
}

impl Record {
    #[must_use]
    pub fn new(node: &str, seq: u64, event: LeaseEvent) -> Self {
        Self { id: format!("{node}:{seq}"), node: node.to_owned(), seq, event }
    }
}

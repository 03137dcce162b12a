//! Configuration and persisted state of one failover relationship.

use std::net::Ipv4Addr;

use crate::load_balance::Hba;
use crate::options::ServerState;

/// Our side of the relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Primary,
    Secondary,
}

/// Settings of one failover relationship, named after ISC's `failover peer` statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub role: Role,
    /// `failover peer "<name>"`; must match the partner's exactly.
    pub relationship: String,
    /// Maximum client lead time. Authoritative on the primary; the secondary uses it only until
    /// the primary's CONNECT tells it otherwise (then the learned value is persisted).
    pub mclt: u32,
    /// Load-balancing split (ISC meaning: set bits are served by the primary). Sent by the
    /// primary; the secondary uses the one it receives.
    pub hba: Hba,
    /// Seconds of partner silence before we drop the connection; sent as our receive-timer.
    pub max_response_delay: u32,
    /// BNDUPDs we accept without acking; sent as max-unacked-bndupd.
    pub max_unacked_updates: u32,
    /// Sent as vendor-class-identifier.
    pub vendor_class: String,
    /// How long STARTUP waits for the partner (ISC: 15 s).
    pub startup_period: u32,
    /// How long a new connection may take to complete CONNECT / CONNECTACK (ISC: 15 s).
    pub connect_timeout: u32,
    /// Delay before the first reconnection attempt after losing the link (ISC: 5 s).
    pub reconnect_delay: u32,
    /// Interval between later attempts, and after a rejected connection (ISC: 90 s).
    pub reconnect_interval: u32,
    /// Safe period (draft-12 §10, ISC `auto-partner-down`): go PARTNER-DOWN after this long in
    /// COMMUNICATIONS-INTERRUPTED. `None` (the default) waits for an operator.
    pub auto_partner_down: Option<u32>,
    /// Largest clock difference accepted at CONNECT (ISC: 60 s).
    pub max_clock_skew: u32,
    /// Address ranges served by this relationship; a BNDUPD for any other address is rejected
    /// with reason 1. `None` accepts every address; `Some` of nothing accepts none (a
    /// relationship whose subnets have no pools has nothing to replicate).
    pub ranges: Option<Vec<(Ipv4Addr, Ipv4Addr)>>,
}

impl Config {
    /// A primary with ISC's defaults.
    #[must_use]
    pub fn primary(relationship: &str, mclt: u32, hba: Hba) -> Self {
        Self {
            role: Role::Primary,
            relationship: relationship.to_owned(),
            mclt,
            hba,
            max_response_delay: 20,
            max_unacked_updates: 100,
            vendor_class: concat!("xdhcp-", env!("CARGO_PKG_VERSION")).to_owned(),
            startup_period: 15,
            connect_timeout: 15,
            reconnect_delay: 5,
            reconnect_interval: 90,
            auto_partner_down: None,
            max_clock_skew: 60,
            ranges: None,
        }
    }

    /// A secondary with ISC's defaults; MCLT and HBA come from the primary.
    #[must_use]
    pub fn secondary(relationship: &str) -> Self {
        Self { role: Role::Secondary, ..Self::primary(relationship, 0, Hba::split(0)) }
    }

    pub(crate) fn serves_address(&self, ip: Ipv4Addr) -> bool {
        self.ranges.as_ref().is_none_or(|r| r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&ip)))
    }
}

/// What must survive a restart, handed out in [`crate::Event::Persist`] after every change and
/// given back to [`crate::Peer::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistedState {
    /// The state to resume; never STARTUP, PAUSED or SHUTDOWN (the state before those is kept).
    pub my_state: ServerState,
    pub my_state_since: u64,
    pub partner_state: Option<ServerState>,
    pub partner_state_since: u64,
    /// The MCLT in force (the secondary learns it from CONNECT and must keep using it even
    /// while it cannot reach the primary, draft-12 §7.8.2 step 7).
    pub mclt: u32,
    /// The HBA in force (the secondary's copy of what the primary sent).
    pub hba: Hba,
}

//! What the engine tells its caller about one request: where it came from, what was decided,
//! and the running totals for metrics.
use std::net::Ipv4Addr;

use crate::store::LeaseChange;

use super::Reply;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxInfo {
    /// Interface the request arrived on; replies that need L2 leave through it.
    pub ifindex: u32,
    /// That interface's IPv4 address: it selects the subnet of unrelayed requests.
    pub local_addr: Option<Ipv4Addr>,
}

/// What [`Server::handle`](super::Server::handle) decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// To be sent only once `changes` are committed.
    pub reply: Option<Reply>,
    pub changes: Vec<LeaseChange>,
    pub result: Handled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Offered(Ipv4Addr),
    Acked(Ipv4Addr),
    Nacked,
    Informed,
    Declined(Ipv4Addr),
    Released(Ipv4Addr),
    /// No reply, for this reason.
    Dropped(DropReason),
}

/// Why a request got no reply. Malformed requests and ones RFC 2131 says to ignore alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a BOOTP/DHCP message dhcproto can decode.
    Undecodable,
    /// op is not BOOTREQUEST.
    NotBootRequest,
    /// hlen over 16, or no usable identity (no client id and an all-zero chaddr).
    BadHardwareAddress,
    /// Option 61 shorter than a type byte and one byte of identifier.
    BadClientId,
    /// No option 53, or no DHCP magic cookie: plain BOOTP, which this server does not serve.
    NoMessageType,
    /// A message type a server does not act on (OFFER, ACK, lease query...).
    UnsupportedMessageType,
    /// A REQUEST, DECLINE or RELEASE without the address it is about.
    MissingAddress,
    /// No configured subnet matches the request's link.
    NoSubnet,
    /// The subnet has no address left for this client.
    PoolExhausted,
    /// Addressed to another server (option 54): in SELECTING, the client chose another offer.
    OtherServer,
    /// INIT-REBOOT, RENEWING or REBINDING from a client this server knows nothing about:
    /// RFC 2131 §4.3.2 says to stay silent, another server may know it.
    UnknownClient,
    /// DECLINE or RELEASE for an address that is not the sender's.
    NotTheirs,
    /// A DISCOVER whose hash bucket is the failover partner's (RFC 3074 load balancing).
    LoadBalancedToPeer,
    /// The failover state forbids answering this request (STARTUP, RECOVER, a partner that
    /// took over...): answering could hand out an address the partner also hands out.
    FailoverNotResponding,
    /// From another line (option 82 circuit-id) than the binding's, on a subnet with
    /// `circuit_change = "ignore"`.
    CircuitChanged,
    /// A new binding for a client whose access port (circuit-id, remote-id) or hardware
    /// address already holds as many addresses as `[limits]` allows.
    LeaseLimit,
}

impl DropReason {
    pub const ALL: [DropReason; 16] = [
        Self::Undecodable,
        Self::NotBootRequest,
        Self::BadHardwareAddress,
        Self::BadClientId,
        Self::NoMessageType,
        Self::UnsupportedMessageType,
        Self::MissingAddress,
        Self::NoSubnet,
        Self::PoolExhausted,
        Self::OtherServer,
        Self::UnknownClient,
        Self::NotTheirs,
        Self::LoadBalancedToPeer,
        Self::FailoverNotResponding,
        Self::CircuitChanged,
        Self::LeaseLimit,
    ];

    /// Stable name for metrics and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::NotBootRequest => "not_boot_request",
            Self::BadHardwareAddress => "bad_hardware_address",
            Self::BadClientId => "bad_client_id",
            Self::NoMessageType => "no_message_type",
            Self::UnsupportedMessageType => "unsupported_message_type",
            Self::MissingAddress => "missing_address",
            Self::NoSubnet => "no_subnet",
            Self::PoolExhausted => "pool_exhausted",
            Self::OtherServer => "other_server",
            Self::UnknownClient => "unknown_client",
            Self::NotTheirs => "not_theirs",
            Self::LoadBalancedToPeer => "load_balance_to_peer",
            Self::FailoverNotResponding => "failover_not_responding",
            Self::CircuitChanged => "circuit_changed",
            Self::LeaseLimit => "lease_limit",
        }
    }

    pub(super) fn slot(self) -> usize {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

/// Message types counted on receipt, in [`Counters::received`] order.
pub const RECEIVED_TYPES: [&str; 6] =
    ["discover", "request", "decline", "release", "inform", "other"];

/// Running totals, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Decodable requests by message type, see [`RECEIVED_TYPES`].
    pub received: [u64; 6],
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub informs: u64,
    pub declines: u64,
    pub releases: u64,
    /// By [`DropReason`], in [`DropReason::ALL`] order.
    pub dropped: [u64; 16],
    /// Requests from another line than their binding's, by what they got, in
    /// [`super::CircuitAction::ALL`] order.
    pub circuit_changes: [u64; 4],
    /// Leases that went straight back to this server's free share because the partner never
    /// heard of them (rewinding, draft-12 §5.2.2).
    pub rewound_to_free: u64,
    /// Expired or released leases given back to their own client because the partner still
    /// holds them as that client's.
    pub rewound_to_active: u64,
    /// Requests by the class they matched, in the config's order, then those in none: a class
    /// that never matches shows as a zero beside its name.
    pub classified: Vec<u64>,
    /// Offers that gave way to a new client because the pool had nothing else.
    pub offers_reclaimed: u64,
    /// Requests refused by a lease limit, by key ([`super::LimitKey::NAMES`] order).
    pub limited: [u64; 3],
}

impl Counters {
    #[must_use]
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.dropped[r.slot()]
    }
}

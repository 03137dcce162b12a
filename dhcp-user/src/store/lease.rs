//! The lease record as the store keeps it.
use std::{net::Ipv4Addr, num::NonZeroU64};

use dhcp_failover::BindingStatus;

use super::ClientId;

/// A hardware address as `chaddr` carries it (at most 16 bytes), kept in the record itself:
/// a `Vec` cost 24 bytes and an allocation of 32 more for each of a million six-byte MACs.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Chaddr {
    len: u8,
    bytes: [u8; 16],
}

impl Chaddr {
    /// The first 16 bytes of `b` (all `chaddr` has room for).
    #[must_use]
    pub fn new(b: &[u8]) -> Self {
        let mut c = Self::default();
        let n = b.len().min(16);
        c.bytes[..n].copy_from_slice(&b[..n]);
        c.len = u8::try_from(n).unwrap_or(16);
        c
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        self
    }
}

impl PartialEq<Vec<u8>> for Chaddr {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

impl std::ops::Deref for Chaddr {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Chaddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x?}", &**self)
    }
}

impl From<&[u8]> for Chaddr {
    fn from(b: &[u8]) -> Self {
        Self::new(b)
    }
}

impl<const N: usize> From<[u8; N]> for Chaddr {
    fn from(b: [u8; N]) -> Self {
        Self::new(&b)
    }
}

impl PartialEq<[u8]> for Chaddr {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Chaddr {
    fn eq(&self, other: &[u8; N]) -> bool {
        **self == other[..]
    }
}

/// Binding state of an address. The numbering is the failover protocol's binding-status
/// (draft-ietf-dhc-failover-12 §12.5, [`BindingStatus`], converted by `From` both ways), so the
/// store's integers mean the same thing on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LeaseState {
    /// Available to any client (after a failover RESET or an expiry the partner acknowledged).
    Free = 1,
    /// Bound to a client until `expires_at`.
    Active = 2,
    /// The client let its lease run out; it gets the address back first if it returns.
    Expired = 3,
    /// The client gave the address back (DHCPRELEASE); same preference as `Expired`.
    Released = 4,
    /// Some host other than the client uses the address (DHCPDECLINE): kept out of the pools
    /// until `probation_until`.
    Abandoned = 5,
    /// An operator reset the binding (failover).
    Reset = 6,
    /// Free, but in the failover secondary's share of the pool.
    Backup = 7,
}

impl LeaseState {
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Free,
            2 => Self::Active,
            3 => Self::Expired,
            4 => Self::Released,
            5 => Self::Abandoned,
            6 => Self::Reset,
            7 => Self::Backup,
            _ => return None,
        })
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Released => "released",
            Self::Abandoned => "abandoned",
            Self::Reset => "reset",
            Self::Backup => "backup",
        }
    }
}

// The two enumerations are the same list; spelling the match out, rather than going through the
// numbers, makes a variant added to one side a compile error instead of a silent fallback.
impl From<LeaseState> for BindingStatus {
    fn from(s: LeaseState) -> Self {
        match s {
            LeaseState::Free => Self::Free,
            LeaseState::Active => Self::Active,
            LeaseState::Expired => Self::Expired,
            LeaseState::Released => Self::Released,
            LeaseState::Abandoned => Self::Abandoned,
            LeaseState::Reset => Self::Reset,
            LeaseState::Backup => Self::Backup,
        }
    }
}

impl From<BindingStatus> for LeaseState {
    fn from(s: BindingStatus) -> Self {
        match s {
            BindingStatus::Free => Self::Free,
            BindingStatus::Active => Self::Active,
            BindingStatus::Expired => Self::Expired,
            BindingStatus::Released => Self::Released,
            BindingStatus::Abandoned => Self::Abandoned,
            BindingStatus::Reset => Self::Reset,
            BindingStatus::Backup => Self::Backup,
        }
    }
}

/// One address's binding. Times are unix seconds (wall clock), as the failover protocol
/// exchanges them; 0 means "never"/"unset" for the PET fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub state: LeaseState,
    /// Hardware type (`htype`) and address (`chaddr`, `hlen` bytes, at most 16).
    pub htype: u8,
    pub chaddr: Chaddr,
    /// Option 61's value, type byte included, when the client sent one.
    pub client_id: Option<ClientId>,
    /// Option 12, as the client sent it. Boxed, not a `String`: a million records, each
    /// 8 bytes smaller (most have none).
    pub hostname: Option<Box<str>>,
    /// Option 82's value (relay agent information, RFC 3046) of the request the slow path last
    /// acknowledged this binding with, as the relay or access node sent it: the subscriber's
    /// line (circuit-id) and remote-id are read from it ([`Lease::circuit_id`]). Kept when a
    /// request without option 82 renews the lease (an L3 relay's clients renew around it).
    pub relay_info: Option<Box<[u8]>>,
    /// Index of the subnet in the config the lease was made under.
    pub subnet: u32,
    /// End of the lease as told to the client.
    pub expires_at: u64,
    /// Client last transaction time.
    pub cltt: u64,
    /// The committed horizon: the fast path may renew this lease up to here without asking
    /// userspace, so nobody else may have the address before it passes. Never below
    /// `expires_at` for an active lease.
    pub held_until: u64,
    /// Potential expiration times: latest sent to, acknowledged by, and received from the
    /// failover partner (draft-12 §7.1.5).
    pub pet_sent: u64,
    pub pet_acked: u64,
    pub pet_received: u64,
    /// Start time of the current state.
    pub stos: u64,
    /// The state and expiry to return to if a failover update is rejected.
    pub rewind_state: Option<LeaseState>,
    /// Non-zero (time 0 is never one of these) so that the `Option` costs no tag word.
    pub rewind_expiry: Option<NonZeroU64>,
    /// For `Abandoned`: when the address may be offered again.
    pub probation_until: Option<NonZeroU64>,
    /// The failover partner has acknowledged this record's latest change made here (or the
    /// record came from it). A restarted server sends every record without it again: the PETs
    /// cannot tell, as a change of state alone (EXPIRED, RELEASED, FREE, BACKUP) moves none.
    pub partner_acked: bool,
    /// The client class the binding was made with here.
    pub class: LeaseClass,
}

/// The class a binding was made with, as this server decided it when the client bound: its
/// renewals keep it (and the reply profile that goes with it), in both paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LeaseClass {
    /// Not decided here (a record from the failover partner, or from before classes): the
    /// next request decides it, and the fast path leaves the lease to the slow path until then.
    #[default]
    Unknown,
    /// Decided: in no class.
    None,
    /// Decided: the config's class of this index.
    Class(u16),
}

impl LeaseClass {
    /// The class as decided, `None` inside for "in no class"; the outer `None` when undecided.
    #[must_use]
    pub fn decided(self) -> Option<Option<crate::config::ClassId>> {
        match self {
            Self::Unknown => None,
            Self::None => Some(None),
            Self::Class(k) => Some(Some(crate::config::ClassId(k))),
        }
    }

    #[must_use]
    pub fn of(class: Option<crate::config::ClassId>) -> Self {
        class.map_or(Self::None, |c| Self::Class(c.0))
    }
}

impl Lease {
    /// A record with every failover field unset.
    #[must_use]
    pub fn new(address: Ipv4Addr, state: LeaseState, subnet: u32, now: u64) -> Self {
        Self {
            address,
            state,
            htype: 1,
            chaddr: Chaddr::default(),
            client_id: None,
            hostname: None,
            relay_info: None,
            subnet,
            expires_at: now,
            cltt: now,
            held_until: now,
            pet_sent: 0,
            pet_acked: 0,
            pet_received: 0,
            stos: now,
            rewind_state: None,
            rewind_expiry: None,
            probation_until: None,
            partner_acked: true,
            class: LeaseClass::Unknown,
        }
    }

    /// Forgets who held the address (identity, hostname, line), for a record going back to free.
    /// The failover and horizon fields stay: they describe the address, not the client.
    pub fn clear_client(&mut self) {
        self.chaddr.clear();
        self.client_id = None;
        self.hostname = None;
        self.relay_info = None;
        self.class = LeaseClass::Unknown;
    }

    /// The circuit-id (option 82 sub-option 1) the binding was last acknowledged with.
    #[must_use]
    pub fn circuit_id(&self) -> Option<&[u8]> {
        crate::relay::AgentInfo::parse(self.relay_info.as_deref()?).circuit_id
    }

    /// The remote-id (option 82 sub-option 2) the binding was last acknowledged with.
    #[must_use]
    pub fn remote_id(&self) -> Option<&[u8]> {
        crate::relay::AgentInfo::parse(self.relay_info.as_deref()?).remote_id
    }

    /// The 6-byte MAC the kernel map keys on, when the hardware address is Ethernet.
    #[must_use]
    pub fn mac(&self) -> Option<[u8; 6]> {
        (self.htype == 1).then(|| (*self.chaddr).try_into().ok()).flatten()
    }
}

/// One write to the store. The server engine returns these; the store applies a batch of them
/// in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    /// Insert or replace the record for `lease.address`.
    Put(Lease),
    /// Forget an address entirely (an address no subnet contains any more).
    Remove(Ipv4Addr),
}

impl LeaseChange {
    #[must_use]
    pub fn address(&self) -> Ipv4Addr {
        match self {
            Self::Put(l) => l.address,
            Self::Remove(a) => *a,
        }
    }
}

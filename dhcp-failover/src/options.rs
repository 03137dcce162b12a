//! Failover options (draft-12 §12) and the small enumerations they carry.
//!
//! Every option is `{u16 code, u16 len, value}` in network byte order. Options we understand are
//! parsed into [`FoOption`] variants; anything else is kept as [`FoOption::Unknown`] with its raw
//! bytes, so a received frame re-encodes to exactly the bytes it came in as.

use std::net::Ipv4Addr;

use crate::error::WireError;

/// Option codes, named as in draft-12 §12 (numbers as in ISC `failover.h`).
pub mod code {
    pub const ADDRESSES_TRANSFERRED: u16 = 1;
    pub const ASSIGNED_IP_ADDRESS: u16 = 2;
    pub const BINDING_STATUS: u16 = 3;
    pub const CLIENT_IDENTIFIER: u16 = 4;
    pub const CLIENT_HARDWARE_ADDRESS: u16 = 5;
    pub const CLIENT_LAST_TRANSACTION_TIME: u16 = 6;
    pub const CLIENT_REPLY_OPTIONS: u16 = 7;
    pub const CLIENT_REQUEST_OPTIONS: u16 = 8;
    pub const DDNS: u16 = 9;
    pub const DELAYED_SERVICE: u16 = 10;
    pub const HASH_BUCKET_ASSIGNMENT: u16 = 11;
    pub const IP_FLAGS: u16 = 12;
    pub const LEASE_EXPIRATION_TIME: u16 = 13;
    pub const MAX_UNACKED_BNDUPD: u16 = 14;
    pub const MCLT: u16 = 15;
    pub const MESSAGE: u16 = 16;
    pub const MESSAGE_DIGEST: u16 = 17;
    pub const POTENTIAL_EXPIRATION_TIME: u16 = 18;
    pub const RECEIVE_TIMER: u16 = 19;
    pub const PROTOCOL_VERSION: u16 = 20;
    pub const REJECT_REASON: u16 = 21;
    pub const RELATIONSHIP_NAME: u16 = 22;
    pub const SERVER_FLAGS: u16 = 23;
    pub const SERVER_STATE: u16 = 24;
    pub const START_TIME_OF_STATE: u16 = 25;
    pub const TLS_REPLY: u16 = 26;
    pub const TLS_REQUEST: u16 = 27;
    pub const VENDOR_CLASS: u16 = 28;
    pub const VENDOR_OPTIONS: u16 = 29;
}

/// The only protocol version there is.
pub const PROTOCOL_VERSION: u8 = 1;

/// Server-flags bit 0: the sender is in STARTUP and the state it reports is its saved one.
pub const SERVER_FLAG_STARTUP: u8 = 0x01;

/// IP-flags bit 0: the address is reserved on the sender.
pub const IP_FLAG_RESERVED: u16 = 0x0001;
/// IP-flags bit 1: the lease belongs to a BOOTP client.
pub const IP_FLAG_BOOTP: u16 = 0x0002;

/// Binding status of one address (draft-12 §5.11, values from §12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingStatus {
    Free = 1,
    Active = 2,
    Expired = 3,
    Released = 4,
    Abandoned = 5,
    Reset = 6,
    Backup = 7,
}

impl BindingStatus {
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
}

/// Failover endpoint state (draft-12 §9, values from §12.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ServerState {
    Startup = 1,
    Normal = 2,
    CommunicationsInterrupted = 3,
    PartnerDown = 4,
    PotentialConflict = 5,
    Recover = 6,
    Paused = 7,
    Shutdown = 8,
    RecoverDone = 9,
    ResolutionInterrupted = 10,
    ConflictDone = 11,
    /// The draft gives RECOVER-WAIT no number; ISC dhcpd puts 254 on the wire.
    RecoverWait = 254,
}

impl ServerState {
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Startup,
            2 => Self::Normal,
            3 => Self::CommunicationsInterrupted,
            4 => Self::PartnerDown,
            5 => Self::PotentialConflict,
            6 => Self::Recover,
            7 => Self::Paused,
            8 => Self::Shutdown,
            9 => Self::RecoverDone,
            10 => Self::ResolutionInterrupted,
            11 => Self::ConflictDone,
            254 => Self::RecoverWait,
            _ => return None,
        })
    }

    /// The draft's (and ISC's log's) name of the state.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Normal => "normal",
            Self::CommunicationsInterrupted => "communications-interrupted",
            Self::PartnerDown => "partner-down",
            Self::PotentialConflict => "potential-conflict",
            Self::Recover => "recover",
            Self::Paused => "paused",
            Self::Shutdown => "shutdown",
            Self::RecoverDone => "recover-done",
            Self::ResolutionInterrupted => "resolution-interrupted",
            Self::ConflictDone => "conflict-done",
            Self::RecoverWait => "recover-wait",
        }
    }

    /// The states in which two servers are still sorting out a possible double allocation.
    #[must_use]
    pub fn is_conflict(self) -> bool {
        matches!(self, Self::PotentialConflict | Self::ResolutionInterrupted | Self::ConflictDone)
    }
}

/// Reject reason (draft-12 §12.21). A newtype rather than an enum because most of the space is
/// reserved and a partner may send any byte; we must be able to log and re-encode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RejectReason(pub u8);

impl RejectReason {
    pub const ILLEGAL_IP: Self = Self(1);
    pub const FATAL_CONFLICT: Self = Self(2);
    pub const MISSING_BINDING_INFO: Self = Self(3);
    pub const TIME_MISMATCH: Self = Self(4);
    pub const INVALID_MCLT: Self = Self(5);
    pub const UNKNOWN_CONNECT: Self = Self(6);
    pub const DUPLICATE_CONNECTION: Self = Self(7);
    pub const INVALID_PARTNER: Self = Self(8);
    pub const TLS_NOT_SUPPORTED: Self = Self(9);
    pub const TLS_NOT_CONFIGURED: Self = Self(10);
    pub const TLS_REQUIRED: Self = Self(11);
    pub const DIGEST_NOT_SUPPORTED: Self = Self(12);
    pub const DIGEST_NOT_CONFIGURED: Self = Self(13);
    pub const VERSION_MISMATCH: Self = Self(14);
    pub const OUTDATED_BINDING: Self = Self(15);
    pub const LESS_CRITICAL_BINDING: Self = Self(16);
    pub const NO_TRAFFIC: Self = Self(17);
    pub const HBA_CONFLICT: Self = Self(18);
    pub const IP_NOT_RESERVED: Self = Self(19);
    pub const DIGEST_MISMATCH: Self = Self(20);
    pub const MISSING_DIGEST: Self = Self(21);
    pub const UNKNOWN: Self = Self(254);
}

/// Client hardware address as the failover option carries it: the ARP hardware type byte
/// followed by the address (ISC sends `htype` + MAC, 7 bytes for Ethernet).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HwAddr {
    pub htype: u8,
    pub addr: Vec<u8>,
}

impl HwAddr {
    /// An Ethernet (htype 1) address.
    #[must_use]
    pub fn ethernet(mac: [u8; 6]) -> Self {
        Self { htype: 1, addr: mac.to_vec() }
    }
}

/// DDNS option (draft-12 §12.9): 16-bit flags and a DNS-encoded name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ddns {
    pub flags: u16,
    pub name: Vec<u8>,
}

/// Message digest option (draft-12 §12.17). Parsed so it round-trips; never produced, because
/// ISC neither verifies it nor accepts it where the draft puts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub kind: u8,
    pub digest: Vec<u8>,
}

/// One failover option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoOption {
    AddressesTransferred(u32),
    AssignedIp(Ipv4Addr),
    BindingStatus(BindingStatus),
    /// Raw contents of the client's DHCP option 61.
    ClientId(Vec<u8>),
    Chaddr(HwAddr),
    ClientLastTransactionTime(u32),
    /// Magic cookie plus DHCP options, kept raw.
    ClientReplyOptions(Vec<u8>),
    /// Magic cookie plus DHCP options, kept raw.
    ClientRequestOptions(Vec<u8>),
    Ddns(Ddns),
    DelayedService(u8),
    HashBucketAssignment([u8; 32]),
    /// Two bytes as ISC sends them (the draft's figure says length 1 but shows 16 bits).
    IpFlags(u16),
    LeaseExpirationTime(u32),
    MaxUnackedBndupd(u32),
    Mclt(u32),
    /// Human-readable text; bytes because nothing guarantees UTF-8.
    Message(Vec<u8>),
    MessageDigest(Digest),
    PotentialExpirationTime(u32),
    ReceiveTimer(u32),
    ProtocolVersion(u8),
    RejectReason(RejectReason),
    RelationshipName(Vec<u8>),
    ServerFlags(u8),
    ServerState(ServerState),
    StartTimeOfState(u32),
    TlsReply(u8),
    TlsRequest(u8),
    VendorClass(Vec<u8>),
    VendorOptions(Vec<u8>),
    Unknown {
        code: u16,
        data: Vec<u8>,
    },
}

fn exact<const N: usize>(code: u16, v: &[u8]) -> Result<[u8; N], WireError> {
    <[u8; N]>::try_from(v).map_err(|_| WireError::BadOptionLength { code, len: v.len() })
}

fn byte(code: u16, v: &[u8]) -> Result<u8, WireError> {
    exact::<1>(code, v).map(|[b]| b)
}

fn word(code: u16, v: &[u8]) -> Result<u32, WireError> {
    exact::<4>(code, v).map(u32::from_be_bytes)
}

impl FoOption {
    /// Parses one option value. `v` is exactly the `len` bytes that followed the option header.
    pub fn parse(code: u16, v: &[u8]) -> Result<Self, WireError> {
        use self::code as c;
        Ok(match code {
            c::ADDRESSES_TRANSFERRED => Self::AddressesTransferred(word(code, v)?),
            c::ASSIGNED_IP_ADDRESS => Self::AssignedIp(Ipv4Addr::from(exact::<4>(code, v)?)),
            c::BINDING_STATUS => {
                let b = byte(code, v)?;
                Self::BindingStatus(
                    BindingStatus::from_u8(b)
                        .ok_or(WireError::BadOptionValue { code, value: b })?,
                )
            }
            c::CLIENT_IDENTIFIER => Self::ClientId(v.to_vec()),
            c::CLIENT_HARDWARE_ADDRESS => match v.split_first() {
                Some((&htype, addr)) => Self::Chaddr(HwAddr { htype, addr: addr.to_vec() }),
                None => return Err(WireError::BadOptionLength { code, len: 0 }),
            },
            c::CLIENT_LAST_TRANSACTION_TIME => Self::ClientLastTransactionTime(word(code, v)?),
            c::CLIENT_REPLY_OPTIONS => Self::ClientReplyOptions(v.to_vec()),
            c::CLIENT_REQUEST_OPTIONS => Self::ClientRequestOptions(v.to_vec()),
            c::DDNS => match v {
                [hi, lo, name @ ..] => {
                    Self::Ddns(Ddns { flags: u16::from_be_bytes([*hi, *lo]), name: name.to_vec() })
                }
                _ => return Err(WireError::BadOptionLength { code, len: v.len() }),
            },
            c::DELAYED_SERVICE => Self::DelayedService(byte(code, v)?),
            c::HASH_BUCKET_ASSIGNMENT => Self::HashBucketAssignment(exact::<32>(code, v)?),
            c::IP_FLAGS => Self::IpFlags(u16::from_be_bytes(exact::<2>(code, v)?)),
            c::LEASE_EXPIRATION_TIME => Self::LeaseExpirationTime(word(code, v)?),
            c::MAX_UNACKED_BNDUPD => Self::MaxUnackedBndupd(word(code, v)?),
            c::MCLT => Self::Mclt(word(code, v)?),
            c::MESSAGE => Self::Message(v.to_vec()),
            c::MESSAGE_DIGEST => match v.split_first() {
                Some((&kind, digest)) => {
                    Self::MessageDigest(Digest { kind, digest: digest.to_vec() })
                }
                None => return Err(WireError::BadOptionLength { code, len: 0 }),
            },
            c::POTENTIAL_EXPIRATION_TIME => Self::PotentialExpirationTime(word(code, v)?),
            c::RECEIVE_TIMER => Self::ReceiveTimer(word(code, v)?),
            c::PROTOCOL_VERSION => Self::ProtocolVersion(byte(code, v)?),
            c::REJECT_REASON => Self::RejectReason(RejectReason(byte(code, v)?)),
            c::RELATIONSHIP_NAME => Self::RelationshipName(v.to_vec()),
            c::SERVER_FLAGS => Self::ServerFlags(byte(code, v)?),
            c::SERVER_STATE => {
                let b = byte(code, v)?;
                Self::ServerState(
                    ServerState::from_u8(b).ok_or(WireError::BadOptionValue { code, value: b })?,
                )
            }
            c::START_TIME_OF_STATE => Self::StartTimeOfState(word(code, v)?),
            c::TLS_REPLY => Self::TlsReply(byte(code, v)?),
            c::TLS_REQUEST => Self::TlsRequest(byte(code, v)?),
            c::VENDOR_CLASS => Self::VendorClass(v.to_vec()),
            c::VENDOR_OPTIONS => Self::VendorOptions(v.to_vec()),
            _ => Self::Unknown { code, data: v.to_vec() },
        })
    }

    #[must_use]
    pub fn code(&self) -> u16 {
        use self::code as c;
        match self {
            Self::AddressesTransferred(_) => c::ADDRESSES_TRANSFERRED,
            Self::AssignedIp(_) => c::ASSIGNED_IP_ADDRESS,
            Self::BindingStatus(_) => c::BINDING_STATUS,
            Self::ClientId(_) => c::CLIENT_IDENTIFIER,
            Self::Chaddr(_) => c::CLIENT_HARDWARE_ADDRESS,
            Self::ClientLastTransactionTime(_) => c::CLIENT_LAST_TRANSACTION_TIME,
            Self::ClientReplyOptions(_) => c::CLIENT_REPLY_OPTIONS,
            Self::ClientRequestOptions(_) => c::CLIENT_REQUEST_OPTIONS,
            Self::Ddns(_) => c::DDNS,
            Self::DelayedService(_) => c::DELAYED_SERVICE,
            Self::HashBucketAssignment(_) => c::HASH_BUCKET_ASSIGNMENT,
            Self::IpFlags(_) => c::IP_FLAGS,
            Self::LeaseExpirationTime(_) => c::LEASE_EXPIRATION_TIME,
            Self::MaxUnackedBndupd(_) => c::MAX_UNACKED_BNDUPD,
            Self::Mclt(_) => c::MCLT,
            Self::Message(_) => c::MESSAGE,
            Self::MessageDigest(_) => c::MESSAGE_DIGEST,
            Self::PotentialExpirationTime(_) => c::POTENTIAL_EXPIRATION_TIME,
            Self::ReceiveTimer(_) => c::RECEIVE_TIMER,
            Self::ProtocolVersion(_) => c::PROTOCOL_VERSION,
            Self::RejectReason(_) => c::REJECT_REASON,
            Self::RelationshipName(_) => c::RELATIONSHIP_NAME,
            Self::ServerFlags(_) => c::SERVER_FLAGS,
            Self::ServerState(_) => c::SERVER_STATE,
            Self::StartTimeOfState(_) => c::START_TIME_OF_STATE,
            Self::TlsReply(_) => c::TLS_REPLY,
            Self::TlsRequest(_) => c::TLS_REQUEST,
            Self::VendorClass(_) => c::VENDOR_CLASS,
            Self::VendorOptions(_) => c::VENDOR_OPTIONS,
            Self::Unknown { code, .. } => *code,
        }
    }

    /// Appends the option value (without the code/length header) to `out`.
    pub(crate) fn write_value(&self, out: &mut Vec<u8>) {
        match self {
            Self::AddressesTransferred(n)
            | Self::ClientLastTransactionTime(n)
            | Self::LeaseExpirationTime(n)
            | Self::MaxUnackedBndupd(n)
            | Self::Mclt(n)
            | Self::PotentialExpirationTime(n)
            | Self::ReceiveTimer(n)
            | Self::StartTimeOfState(n) => out.extend_from_slice(&n.to_be_bytes()),
            Self::AssignedIp(ip) => out.extend_from_slice(&ip.octets()),
            Self::BindingStatus(s) => out.push(*s as u8),
            Self::ClientId(b)
            | Self::ClientReplyOptions(b)
            | Self::ClientRequestOptions(b)
            | Self::Message(b)
            | Self::RelationshipName(b)
            | Self::VendorClass(b)
            | Self::VendorOptions(b)
            | Self::Unknown { data: b, .. } => out.extend_from_slice(b),
            Self::Chaddr(hw) => {
                out.push(hw.htype);
                out.extend_from_slice(&hw.addr);
            }
            Self::Ddns(d) => {
                out.extend_from_slice(&d.flags.to_be_bytes());
                out.extend_from_slice(&d.name);
            }
            Self::DelayedService(b)
            | Self::ProtocolVersion(b)
            | Self::ServerFlags(b)
            | Self::TlsReply(b)
            | Self::TlsRequest(b) => out.push(*b),
            Self::HashBucketAssignment(h) => out.extend_from_slice(h),
            Self::IpFlags(f) => out.extend_from_slice(&f.to_be_bytes()),
            Self::MessageDigest(d) => {
                out.push(d.kind);
                out.extend_from_slice(&d.digest);
            }
            Self::RejectReason(r) => out.push(r.0),
            Self::ServerState(s) => out.push(*s as u8),
        }
    }

    /// Length of the value in bytes.
    #[must_use]
    pub fn value_len(&self) -> usize {
        match self {
            Self::AddressesTransferred(_)
            | Self::ClientLastTransactionTime(_)
            | Self::LeaseExpirationTime(_)
            | Self::MaxUnackedBndupd(_)
            | Self::Mclt(_)
            | Self::PotentialExpirationTime(_)
            | Self::ReceiveTimer(_)
            | Self::StartTimeOfState(_)
            | Self::AssignedIp(_) => 4,
            Self::BindingStatus(_)
            | Self::DelayedService(_)
            | Self::ProtocolVersion(_)
            | Self::ServerFlags(_)
            | Self::TlsReply(_)
            | Self::TlsRequest(_)
            | Self::RejectReason(_)
            | Self::ServerState(_) => 1,
            Self::ClientId(b)
            | Self::ClientReplyOptions(b)
            | Self::ClientRequestOptions(b)
            | Self::Message(b)
            | Self::RelationshipName(b)
            | Self::VendorClass(b)
            | Self::VendorOptions(b)
            | Self::Unknown { data: b, .. } => b.len(),
            Self::Chaddr(hw) => 1 + hw.addr.len(),
            Self::Ddns(d) => 2 + d.name.len(),
            Self::HashBucketAssignment(_) => 32,
            Self::IpFlags(_) => 2,
            Self::MessageDigest(d) => 1 + d.digest.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_option_reencodes_to_the_bytes_it_was_parsed_from() {
        let samples: &[(u16, &[u8])] = &[
            (1, &[0, 0, 0, 9]),
            (2, &[10, 40, 0, 100]),
            (3, &[7]),
            (4, b"\x01\x00\x0c\x01\x02\x03\x04"),
            (5, &[1, 0, 0x0c, 1, 2, 3, 4]),
            (6, &[0x6b, 0, 0, 1]),
            (7, &[99, 130, 83, 99, 58, 4, 0, 0, 0, 30]),
            (8, &[99, 130, 83, 99, 12, 1, b'h']),
            (9, &[0, 5, 4, b'h', b'o', b's', b't', 0]),
            (10, &[3]),
            (11, &[0xff; 32]),
            (12, &[0, 2]),
            (13, &[0x6b, 0, 0, 2]),
            (14, &[0, 0, 0, 10]),
            (15, &[0, 0, 0, 60]),
            (16, b"hello"),
            (17, &[1, 0xaa, 0xbb]),
            (18, &[0x6b, 0, 0, 3]),
            (19, &[0, 0, 0, 30]),
            (20, &[1]),
            (21, &[15]),
            (22, b"f"),
            (23, &[1]),
            (24, &[254]),
            (25, &[0x6b, 0, 0, 4]),
            (26, &[0]),
            (27, &[0]),
            (28, b"isc-4.4.3-P1"),
            (29, &[0, 1, 0, 1, 7]),
            (4242, &[1, 2, 3]),
        ];
        for &(code, value) in samples {
            let opt = FoOption::parse(code, value).expect("sample must parse");
            assert_eq!(opt.code(), code);
            assert_eq!(opt.value_len(), value.len(), "length of option {code}");
            let mut out = Vec::new();
            opt.write_value(&mut out);
            assert_eq!(out, value, "option {code}");
        }
    }

    #[test]
    fn fixed_size_options_reject_other_lengths() {
        assert_eq!(
            FoOption::parse(code::MCLT, &[0, 60]),
            Err(WireError::BadOptionLength { code: code::MCLT, len: 2 })
        );
        assert_eq!(
            FoOption::parse(code::HASH_BUCKET_ASSIGNMENT, &[0; 31]),
            Err(WireError::BadOptionLength { code: code::HASH_BUCKET_ASSIGNMENT, len: 31 })
        );
        assert!(FoOption::parse(code::CLIENT_HARDWARE_ADDRESS, &[]).is_err());
    }

    #[test]
    fn unknown_states_and_statuses_are_rejected_but_recover_wait_254_is_known() {
        assert_eq!(
            FoOption::parse(code::SERVER_STATE, &[254]),
            Ok(FoOption::ServerState(ServerState::RecoverWait))
        );
        assert!(FoOption::parse(code::SERVER_STATE, &[12]).is_err());
        assert!(FoOption::parse(code::BINDING_STATUS, &[0]).is_err());
        assert!(FoOption::parse(code::BINDING_STATUS, &[8]).is_err());
    }
}

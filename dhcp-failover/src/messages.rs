//! Typed views of received messages and builders for the ones we send.
//!
//! Builders emit options in the order ISC dhcpd 4.4.3 does (checked byte for byte against the
//! captures in `tests/data`), so a trace of our traffic reads like ISC's. ISC-specific rules:
//! payload offset 12, one binding per BNDUPD, never a message digest, IP-flags as two bytes,
//! client-hardware-address as htype + address, TLS-request/TLS-reply always 0.

use std::net::Ipv4Addr;

use crate::options::{
    BindingStatus, FoOption, HwAddr, PROTOCOL_VERSION, RejectReason, ServerState,
};
use crate::wire::{Message, MessageType};

/// Longest free text we put in a message option; keeps every built message far below 2048 bytes.
pub const MAX_TEXT_LEN: usize = 255;

fn text(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len().min(MAX_TEXT_LEN)].to_vec()
}

/// One binding update transaction: everything a BNDUPD says about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingUpdate {
    pub ip: Ipv4Addr,
    pub status: BindingStatus,
    /// Raw DHCP option 61 of the client, if it sent one.
    pub client_id: Option<Vec<u8>>,
    pub chaddr: Option<HwAddr>,
    /// Lease end the client was given (absolute, unix seconds).
    pub lease_expiration: Option<u32>,
    /// Potential expiration time (PET): what the sender asks the partner to assume the lease
    /// may be extended to.
    pub potential_expiration: Option<u32>,
    /// When the binding entered `status`.
    pub start_time_of_state: Option<u32>,
    /// Client last transaction time (CLTT).
    pub client_last_transaction: Option<u32>,
    /// IP-flags; ISC omits the option when no flag is set, and so do we.
    pub ip_flags: Option<u16>,
    /// Options we carry but do not interpret (DDNS, client request/reply options, unknown
    /// ones), in wire order after the ones above.
    pub other: Vec<FoOption>,
}

impl BindingUpdate {
    /// A binding with nothing but address and status.
    #[must_use]
    pub fn new(ip: Ipv4Addr, status: BindingStatus) -> Self {
        Self {
            ip,
            status,
            client_id: None,
            chaddr: None,
            lease_expiration: None,
            potential_expiration: None,
            start_time_of_state: None,
            client_last_transaction: None,
            ip_flags: None,
            other: Vec::new(),
        }
    }

    fn push_options(&self, out: &mut Vec<FoOption>) {
        out.push(FoOption::AssignedIp(self.ip));
        out.push(FoOption::BindingStatus(self.status));
        if let Some(id) = &self.client_id {
            out.push(FoOption::ClientId(id.clone()));
        }
        if let Some(hw) = &self.chaddr {
            out.push(FoOption::Chaddr(hw.clone()));
        }
        if let Some(t) = self.lease_expiration {
            out.push(FoOption::LeaseExpirationTime(t));
        }
        if let Some(t) = self.potential_expiration {
            out.push(FoOption::PotentialExpirationTime(t));
        }
        if let Some(t) = self.start_time_of_state {
            out.push(FoOption::StartTimeOfState(t));
        }
        if let Some(t) = self.client_last_transaction {
            out.push(FoOption::ClientLastTransactionTime(t));
        }
        if let Some(f) = self.ip_flags.filter(|f| *f != 0) {
            out.push(FoOption::IpFlags(f));
        }
        out.extend(self.other.iter().cloned());
    }

    /// True if both name the same client: by client identifier when both have one, otherwise by
    /// hardware address.
    #[must_use]
    pub fn same_client(&self, other: &Self) -> bool {
        match (&self.client_id, &other.client_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.chaddr == other.chaddr,
        }
    }
}

/// A binding transaction in a received BNDUPD that lacks what its status requires. It must be
/// answered with reject reason 3 rather than tearing down the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncompleteBinding {
    pub ip: Ipv4Addr,
}

/// One entry of a BNDACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingAck {
    pub ip: Ipv4Addr,
    /// `None` means accepted.
    pub reject: Option<RejectReason>,
    pub message: Option<Vec<u8>>,
}

impl BindingAck {
    #[must_use]
    pub fn accept(ip: Ipv4Addr) -> Self {
        Self { ip, reject: None, message: None }
    }

    #[must_use]
    pub fn reject(ip: Ipv4Addr, reason: RejectReason, message: &str) -> Self {
        Self { ip, reject: Some(reason), message: Some(text(message.as_bytes())) }
    }
}

/// What the primary announces in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectInfo {
    pub relationship: Vec<u8>,
    /// BNDUPDs the sender will accept without an ack.
    pub max_unacked: u32,
    /// Seconds of silence after which the sender gives up on the connection.
    pub receive_timer: u32,
    pub vendor_class: Vec<u8>,
    pub mclt: u32,
    /// Hash bucket assignment in ISC's meaning (a set bit: the primary serves the bucket).
    pub hba: [u8; 32],
}

/// What the secondary answers in an accepting CONNECTACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectAckInfo {
    pub relationship: Vec<u8>,
    pub max_unacked: u32,
    pub receive_timer: u32,
    pub vendor_class: Vec<u8>,
}

impl Message {
    /// CONNECT: name, max-unacked, receive-timer, vendor-class, version, TLS-request 0, MCLT, HBA.
    #[must_use]
    pub fn connect(time: u32, xid: u32, info: &ConnectInfo) -> Self {
        let mut m = Self::new(MessageType::Connect, time, xid);
        m.options = vec![
            FoOption::RelationshipName(text(&info.relationship)),
            FoOption::MaxUnackedBndupd(info.max_unacked),
            FoOption::ReceiveTimer(info.receive_timer),
            FoOption::VendorClass(text(&info.vendor_class)),
            FoOption::ProtocolVersion(PROTOCOL_VERSION),
            FoOption::TlsRequest(0),
            FoOption::Mclt(info.mclt),
            FoOption::HashBucketAssignment(info.hba),
        ];
        m
    }

    /// Accepting CONNECTACK: name, max-unacked, receive-timer, vendor-class, version, TLS-reply 0.
    #[must_use]
    pub fn connect_ack(time: u32, xid: u32, info: &ConnectAckInfo) -> Self {
        let mut m = Self::new(MessageType::ConnectAck, time, xid);
        m.options = vec![
            FoOption::RelationshipName(text(&info.relationship)),
            FoOption::MaxUnackedBndupd(info.max_unacked),
            FoOption::ReceiveTimer(info.receive_timer),
            FoOption::VendorClass(text(&info.vendor_class)),
            FoOption::ProtocolVersion(PROTOCOL_VERSION),
            FoOption::TlsReply(0),
        ];
        m
    }

    /// Rejecting CONNECTACK (draft-12 Table 7.9-1: no max-unacked, receive-timer or vendor-class).
    #[must_use]
    pub fn connect_reject(
        time: u32,
        xid: u32,
        relationship: &[u8],
        reason: RejectReason,
        message: &str,
    ) -> Self {
        let mut m = Self::new(MessageType::ConnectAck, time, xid);
        m.options = vec![
            FoOption::RelationshipName(text(relationship)),
            FoOption::ProtocolVersion(PROTOCOL_VERSION),
            FoOption::TlsReply(0),
            FoOption::RejectReason(reason),
            FoOption::Message(text(message.as_bytes())),
        ];
        m
    }

    /// STATE: server-state, server-flags, start-time-of-state.
    #[must_use]
    pub fn state(time: u32, xid: u32, state: ServerState, flags: u8, since: u32) -> Self {
        let mut m = Self::new(MessageType::State, time, xid);
        m.options = vec![
            FoOption::ServerState(state),
            FoOption::ServerFlags(flags),
            FoOption::StartTimeOfState(since),
        ];
        m
    }

    /// BNDUPD for one binding (ISC closes the connection on the repeated options a batch needs).
    #[must_use]
    pub fn bndupd(time: u32, xid: u32, binding: &BindingUpdate) -> Self {
        let mut m = Self::new(MessageType::BndUpd, time, xid);
        binding.push_options(&mut m.options);
        m
    }

    /// BNDACK answering every transaction of one BNDUPD. Accepted entries carry only the address:
    /// ISC 4.4.3 tests the option *code* of PET where it means its bit, so any other option
    /// (client-id, for one) can make it zero the lease's acked PET.
    #[must_use]
    pub fn bndack(time: u32, xid: u32, acks: &[BindingAck]) -> Self {
        let mut m = Self::new(MessageType::BndAck, time, xid);
        for ack in acks {
            m.options.push(FoOption::AssignedIp(ack.ip));
            if let Some(reason) = ack.reject {
                m.options.push(FoOption::RejectReason(reason));
                if let Some(msg) = &ack.message {
                    m.options.push(FoOption::Message(text(msg)));
                }
            }
        }
        m
    }

    #[must_use]
    pub fn updreq(time: u32, xid: u32) -> Self {
        Self::new(MessageType::UpdReq, time, xid)
    }

    #[must_use]
    pub fn updreqall(time: u32, xid: u32) -> Self {
        Self::new(MessageType::UpdReqAll, time, xid)
    }

    /// UPDDONE; `xid` must be the one of the UPDREQ/UPDREQALL it completes.
    #[must_use]
    pub fn upddone(time: u32, xid: u32) -> Self {
        Self::new(MessageType::UpdDone, time, xid)
    }

    #[must_use]
    pub fn poolreq(time: u32, xid: u32) -> Self {
        Self::new(MessageType::PoolReq, time, xid)
    }

    #[must_use]
    pub fn poolresp(time: u32, xid: u32, transferred: u32) -> Self {
        let mut m = Self::new(MessageType::PoolResp, time, xid);
        m.options.push(FoOption::AddressesTransferred(transferred));
        m
    }

    #[must_use]
    pub fn contact(time: u32, xid: u32) -> Self {
        Self::new(MessageType::Contact, time, xid)
    }

    #[must_use]
    pub fn disconnect(time: u32, xid: u32, reason: RejectReason, message: &str) -> Self {
        let mut m = Self::new(MessageType::Disconnect, time, xid);
        m.options =
            vec![FoOption::RejectReason(reason), FoOption::Message(text(message.as_bytes()))];
        m
    }
}

macro_rules! getter {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(&self) -> Option<$ty> {
            self.options.iter().find_map(|o| match o {
                FoOption::$variant(v) => Some(*v),
                _ => None,
            })
        }
    };
    ($(#[$doc:meta])* $name:ident, $variant:ident, ref $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(&self) -> Option<&$ty> {
            self.options.iter().find_map(|o| match o {
                FoOption::$variant(v) => Some(v.as_ref()),
                _ => None,
            })
        }
    };
}

/// Message-level getters. Each returns the first occurrence; outside BNDUPD/BNDACK the decoder
/// guarantees there is at most one.
impl Message {
    getter!(relationship_name, RelationshipName, ref [u8]);
    getter!(max_unacked, MaxUnackedBndupd, u32);
    getter!(receive_timer, ReceiveTimer, u32);
    getter!(vendor_class, VendorClass, ref [u8]);
    getter!(protocol_version, ProtocolVersion, u8);
    getter!(tls_request, TlsRequest, u8);
    getter!(tls_reply, TlsReply, u8);
    getter!(mclt, Mclt, u32);
    getter!(hba, HashBucketAssignment, [u8; 32]);
    getter!(reject_reason, RejectReason, RejectReason);
    getter!(message_text, Message, ref [u8]);
    getter!(server_state, ServerState, ServerState);
    getter!(server_flags, ServerFlags, u8);
    getter!(start_time_of_state, StartTimeOfState, u32);
    getter!(addresses_transferred, AddressesTransferred, u32);

    /// Options grouped per assigned-IP-address, the batching unit of BNDUPD/BNDACK (§6.3).
    /// Options before the first address (a digest, say) are not part of any group.
    fn address_groups(&self) -> impl Iterator<Item = (Ipv4Addr, &[FoOption])> {
        let starts: Vec<usize> = self
            .options
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, FoOption::AssignedIp(_)))
            .map(|(i, _)| i)
            .collect();
        let ends: Vec<usize> =
            starts.iter().skip(1).copied().chain(std::iter::once(self.options.len())).collect();
        starts.into_iter().zip(ends).filter_map(|(s, e)| {
            let group = self.options.get(s..e)?;
            match group.first() {
                Some(FoOption::AssignedIp(ip)) => Some((*ip, &group[1..])),
                _ => None,
            }
        })
    }

    /// The binding transactions of a BNDUPD. A transaction missing its status, or an ACTIVE,
    /// EXPIRED or RELEASED one without a hardware address (ISC's requirement), comes back as
    /// [`IncompleteBinding`].
    #[must_use]
    pub fn binding_updates(&self) -> Vec<Result<BindingUpdate, IncompleteBinding>> {
        self.address_groups().map(|(ip, opts)| parse_binding(ip, opts)).collect()
    }

    /// The entries of a BNDACK.
    #[must_use]
    pub fn binding_acks(&self) -> Vec<BindingAck> {
        self.address_groups()
            .map(|(ip, opts)| {
                let mut ack = BindingAck::accept(ip);
                for o in opts {
                    match o {
                        FoOption::RejectReason(r) => ack.reject = Some(*r),
                        FoOption::Message(m) => ack.message = Some(m.clone()),
                        _ => {}
                    }
                }
                ack
            })
            .collect()
    }
}

fn parse_binding(ip: Ipv4Addr, opts: &[FoOption]) -> Result<BindingUpdate, IncompleteBinding> {
    let mut status = None;
    let mut b = BindingUpdate::new(ip, BindingStatus::Free);
    for o in opts {
        match o {
            FoOption::BindingStatus(s) => status = Some(*s),
            FoOption::ClientId(id) => b.client_id = Some(id.clone()),
            FoOption::Chaddr(hw) => b.chaddr = Some(hw.clone()),
            FoOption::LeaseExpirationTime(t) => b.lease_expiration = Some(*t),
            FoOption::PotentialExpirationTime(t) => b.potential_expiration = Some(*t),
            FoOption::StartTimeOfState(t) => b.start_time_of_state = Some(*t),
            FoOption::ClientLastTransactionTime(t) => b.client_last_transaction = Some(*t),
            FoOption::IpFlags(f) => b.ip_flags = Some(*f),
            other => b.other.push(other.clone()),
        }
    }
    let status = status.ok_or(IncompleteBinding { ip })?;
    let needs_client =
        matches!(status, BindingStatus::Active | BindingStatus::Expired | BindingStatus::Released);
    if needs_client && b.chaddr.is_none() {
        return Err(IncompleteBinding { ip });
    }
    b.status = status;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, encode};

    fn active(ip: Ipv4Addr) -> BindingUpdate {
        BindingUpdate {
            client_id: Some(vec![1, 0, 0x0c, 1, 2, 3, 6]),
            chaddr: Some(HwAddr::ethernet([0, 0x0c, 1, 2, 3, 6])),
            lease_expiration: Some(1_795_574_725),
            potential_expiration: Some(1_795_575_295),
            start_time_of_state: Some(1_795_574_665),
            client_last_transaction: Some(1_795_574_665),
            ..BindingUpdate::new(ip, BindingStatus::Active)
        }
    }

    #[test]
    fn a_bndupd_reads_back_as_the_binding_it_was_built_from() {
        let b = active(Ipv4Addr::new(10, 40, 0, 149));
        let m = decode(&encode(&Message::bndupd(1, 2, &b)).unwrap()).unwrap();
        assert_eq!(m.binding_updates(), vec![Ok(b)]);
    }

    #[test]
    fn zero_ip_flags_are_left_out_like_isc_does() {
        let mut b = BindingUpdate::new(Ipv4Addr::new(10, 0, 0, 1), BindingStatus::Free);
        b.ip_flags = Some(0);
        assert_eq!(Message::bndupd(0, 0, &b).options.len(), 2);
        b.ip_flags = Some(crate::options::IP_FLAG_RESERVED);
        assert_eq!(Message::bndupd(0, 0, &b).options.len(), 3);
    }

    #[test]
    fn an_active_binding_without_hardware_address_is_incomplete_not_fatal() {
        let mut b = active(Ipv4Addr::new(10, 0, 0, 1));
        b.chaddr = None;
        let m = Message::bndupd(0, 0, &b);
        assert_eq!(
            m.binding_updates(),
            vec![Err(IncompleteBinding { ip: Ipv4Addr::new(10, 0, 0, 1) })]
        );
        let mut no_status = Message::new(MessageType::BndUpd, 0, 0);
        no_status.options.push(FoOption::AssignedIp(b.ip));
        assert!(no_status.binding_updates()[0].is_err());
    }

    #[test]
    fn a_batched_bndack_reports_each_address() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let acks = vec![
            BindingAck::accept(a),
            BindingAck::reject(b, RejectReason::OUTDATED_BINDING, "older"),
        ];
        let m = decode(&encode(&Message::bndack(0, 9, &acks)).unwrap()).unwrap();
        assert_eq!(m.binding_acks(), acks);
    }

    #[test]
    fn long_texts_are_cut_so_messages_stay_encodable() {
        let m = Message::disconnect(0, 0, RejectReason::UNKNOWN, &"x".repeat(5000));
        assert_eq!(m.message_text().map(<[u8]>::len), Some(MAX_TEXT_LEN));
        assert!(encode(&m).is_ok());
    }
}

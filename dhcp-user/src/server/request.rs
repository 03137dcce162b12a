//! What a request says, read once and checked, so the decision code never touches a field the
//! wire could have made inconsistent.
use std::net::Ipv4Addr;

use dhcproto::{
    Encodable as _,
    v4::{DhcpOption, Message, MessageType, Opcode, OptionCode},
};

use super::DropReason;
use crate::config::{ClassId, ReservationKey, classes::Traits};
use crate::packet::ReplyRoom;
use crate::store::Lease;

/// How a client is told apart from others (RFC 2131 §4.2): its client identifier when it
/// sends one, else its hardware address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Id(Vec<u8>),
    Hw(u8, Vec<u8>),
}

impl ClientKey {
    #[must_use]
    pub fn of_lease(l: &Lease) -> Self {
        match &l.client_id {
            Some(id) => Self::Id(id.to_vec()),
            None => Self::Hw(l.htype, l.chaddr.to_vec()),
        }
    }
}

/// The requesting client as far as identity goes.
#[derive(Debug, Clone)]
pub struct Client {
    pub key: ClientKey,
    pub htype: u8,
    pub chaddr: Vec<u8>,
    pub client_id: Option<Vec<u8>>,
    /// The access port the request came through (option 82 sub-options 1 and 2).
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
    /// The class the reply is made for: the one its binding was made with for a renewal,
    /// else the first the request matches ([`crate::config::classes::classify`]).
    pub class: Option<ClassId>,
}

impl Client {
    /// Whether a reservation names this client: by client identifier, or by the Ethernet
    /// address whatever identifier the client sends.
    #[must_use]
    pub fn matches(&self, r: &ReservationKey) -> bool {
        match r {
            ReservationKey::ClientId(id) => self.client_id.as_ref() == Some(id),
            ReservationKey::Mac(m) => self.htype == 1 && self.chaddr == m,
            ReservationKey::Port { circuit_id, remote_id } => {
                let same =
                    |want: &Option<Vec<u8>>, have: &Option<Vec<u8>>| want.is_none() || want == have;
                same(circuit_id, &self.circuit_id) && same(remote_id, &self.remote_id)
            }
        }
    }

    /// Whether `l` is this client's binding. A declined address is nobody's.
    #[must_use]
    pub fn owns(&self, l: &Lease) -> bool {
        l.state != crate::store::LeaseState::Abandoned && ClientKey::of_lease(l) == self.key
    }
}

/// A checked request.
#[derive(Debug)]
pub struct Request<'m> {
    pub msg: &'m Message,
    pub kind: MessageType,
    pub client: Client,
    pub ciaddr: Option<Ipv4Addr>,
    pub giaddr: Option<Ipv4Addr>,
    pub requested: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub lease_time: Option<u32>,
    pub hostname: Option<String>,
    /// Option 82's value as the relay sent it, echoed verbatim in replies (RFC 3046 §2.2).
    pub relay_info: Option<Vec<u8>>,
    pub link_selection: Option<Ipv4Addr>,
    /// Options 60 and 77 as sent, for classes.
    pub vendor_class: Option<Vec<u8>>,
    pub user_class: Option<Vec<u8>>,
    /// How long a reply may be (option 57) and what it keeps first (option 55).
    pub room: ReplyRoom,
}

fn nonzero(a: Ipv4Addr) -> Option<Ipv4Addr> {
    (!a.is_unspecified()).then_some(a)
}

impl<'m> Request<'m> {
    pub fn parse(msg: &'m Message) -> Result<Self, DropReason> {
        if msg.opcode() != Opcode::BootRequest {
            return Err(DropReason::NotBootRequest);
        }
        // dhcproto keeps the wire's hlen and slices chaddr with it: check before any chaddr().
        let hlen = usize::from(msg.hlen());
        if hlen > 16 {
            return Err(DropReason::BadHardwareAddress);
        }
        let opts = msg.opts();
        let kind = opts.msg_type().ok_or(DropReason::NoMessageType)?;
        let client_id = match opts.get(OptionCode::ClientIdentifier) {
            // RFC 2132 §9.14: at least a type byte and one byte of identifier.
            Some(DhcpOption::ClientIdentifier(id)) if id.len() >= 2 => Some(id.clone()),
            Some(_) => return Err(DropReason::BadClientId),
            None => None,
        };
        let htype = u8::from(msg.htype());
        let chaddr = msg.chaddr().to_vec();
        if client_id.is_none() && chaddr.iter().all(|&b| b == 0) {
            return Err(DropReason::BadHardwareAddress);
        }
        let key = match &client_id {
            Some(id) => ClientKey::Id(id.clone()),
            None => ClientKey::Hw(htype, chaddr.clone()),
        };
        let addr = |code| match opts.get(code) {
            Some(DhcpOption::RequestedIpAddress(a) | DhcpOption::ServerIdentifier(a)) => {
                nonzero(*a)
            }
            _ => None,
        };
        let relay_info = opts.get(OptionCode::RelayAgentInformation).and_then(relay_bytes);
        let agent = relay_info.as_deref().map(crate::relay::AgentInfo::parse);
        let link_selection =
            agent.as_ref().and_then(|a| a.link_selection).map(Ipv4Addr::from).and_then(nonzero);
        let circuit_id = agent.as_ref().and_then(|a| a.circuit_id).map(<[u8]>::to_vec);
        let remote_id = agent.as_ref().and_then(|a| a.remote_id).map(<[u8]>::to_vec);
        Ok(Request {
            msg,
            kind,
            client: Client { key, htype, chaddr, client_id, circuit_id, remote_id, class: None },
            ciaddr: nonzero(msg.ciaddr()),
            giaddr: nonzero(msg.giaddr()),
            requested: addr(OptionCode::RequestedIpAddress),
            server_id: addr(OptionCode::ServerIdentifier),
            lease_time: match opts.get(OptionCode::AddressLeaseTime) {
                Some(DhcpOption::AddressLeaseTime(t)) => Some(*t),
                _ => None,
            },
            hostname: match opts.get(OptionCode::Hostname) {
                Some(DhcpOption::Hostname(h)) if !h.is_empty() => Some(h.clone()),
                _ => None,
            },
            relay_info,
            link_selection,
            vendor_class: match opts.get(OptionCode::ClassIdentifier) {
                Some(DhcpOption::ClassIdentifier(v)) => Some(v.clone()),
                _ => None,
            },
            user_class: match opts.get(OptionCode::UserClass) {
                Some(DhcpOption::UserClass(v)) => Some(v.clone()),
                _ => None,
            },
            room: ReplyRoom {
                max_ip_len: dhcp_common::layout::max_reply_ip_len(
                    match opts.get(OptionCode::MaxMessageSize) {
                        Some(DhcpOption::MaxMessageSize(n)) => Some(*n),
                        _ => None,
                    },
                ),
                requested: match opts.get(OptionCode::ParameterRequestList) {
                    Some(DhcpOption::ParameterRequestList(l)) => {
                        l.iter().map(|c| u8::from(*c)).collect()
                    }
                    _ => Vec::new(),
                },
            },
        })
    }

    /// What classes are matched on.
    #[must_use]
    pub fn traits(&self) -> Traits<'_> {
        Traits {
            vendor_class: self.vendor_class.as_deref(),
            user_class: self.user_class.as_deref(),
            circuit_id: self.client.circuit_id.as_deref(),
            remote_id: self.client.remote_id.as_deref(),
            mac: (self.client.htype == 1 && self.client.chaddr.len() == 6)
                .then_some(self.client.chaddr.as_slice()),
        }
    }
}

/// Option 82's value as bytes. [`super::Server::handle_bytes`] puts the bytes from the wire in
/// the message (an unknown option of code 82); a message built here, by tests, carries
/// dhcproto's decoded form, whose encoding is what it would have sent.
fn relay_bytes(o: &DhcpOption) -> Option<Vec<u8>> {
    match o {
        DhcpOption::Unknown(u) => Some(u.data().to_vec()),
        DhcpOption::RelayAgentInformation(info) => info.to_vec().ok(),
        _ => None,
    }
}

/// `payload` as if its overloaded fields' options (option 52, RFC 2131 §4.1, RFC 2132 §9.3) were
/// in its options field: the options field's options, then those of `file` (option 52 = 1 or
/// 3), then those of `sname` (2 or 3), in the order RFC 2131 has them read, each field's up to
/// its END (or its end, or an option running past it); option 52 itself left out and the
/// fields it names cleared. dhcproto 0.15 reads neither field for options (it keeps their bytes
/// up to a zero as a server or file name), so an address or identifier there (option 50 in
/// `file`, say) would otherwise go unseen. `None` without overload: the payload is read as it
/// is.
pub(super) fn unfold_overload(payload: &[u8]) -> Option<Vec<u8>> {
    use dhcp_common::bootp::{
        FILE, FILE_LEN, OPT_END, OPT_OVERLOAD, OPT_PAD, OPTIONS, SNAME, SNAME_LEN,
    };
    // The options of `area`, code and length checked, up to END; option 52's value.
    fn walk(area: &[u8], out: &mut Vec<u8>) -> Option<u8> {
        let mut overload = None;
        let mut o = 0;
        while let Some(&code) = area.get(o) {
            match code {
                OPT_END => break,
                OPT_PAD => o += 1,
                _ => {
                    let Some(opt) =
                        area.get(o + 1).and_then(|len| area.get(o..o + 2 + usize::from(*len)))
                    else {
                        break;
                    };
                    if code == OPT_OVERLOAD {
                        overload = overload.or(opt.get(2).copied().filter(|_| opt.len() == 3));
                    } else {
                        out.extend_from_slice(opt);
                    }
                    o += opt.len();
                }
            }
        }
        overload
    }
    let mut opts = Vec::new();
    let overload = walk(payload.get(OPTIONS..)?, &mut opts).filter(|v| (1..=3).contains(v))?;
    let mut head = payload[..OPTIONS].to_vec();
    for (bit, at, len) in [(1, FILE, FILE_LEN), (2, SNAME, SNAME_LEN)] {
        if overload & bit != 0 {
            walk(&payload[at..at + len], &mut opts);
            head[at..at + len].fill(0);
        }
    }
    head.extend_from_slice(&opts);
    head.push(OPT_END);
    Some(head)
}

/// Whether dhcproto 0.15 can decode `payload` without tripping one of its own assertions.
///
/// Its decoder `debug_assert!`s the length of a few options and subtracts from others' lengths
/// unchecked; both panic in debug builds on a crafted packet. Options are checked as dhcproto
/// sees them: consecutive instances of one code concatenated (RFC 3396).
pub(super) fn dhcproto_safe(payload: &[u8]) -> bool {
    const OPTIONS_AT: usize = 240;
    let Some(mut rest) = payload.get(OPTIONS_AT..) else { return true };
    let ok = |code: u8, len: usize| match code {
        80 => len == 0,
        81 => len >= 3,
        94 => len == 3,
        151 => len >= 1,
        152..=155 => len == 4,
        _ => true,
    };
    let mut run: Option<(u8, usize)> = None;
    loop {
        match rest {
            [] | [255 | 0, ..] => return run.is_none_or(|(c, l)| ok(c, l)),
            [code, len, tail @ ..] => {
                let len = usize::from(*len);
                run = match run {
                    Some((c, l)) if c == *code => Some((c, l + len)),
                    Some((c, l)) if !ok(c, l) => return false,
                    _ => Some((*code, len)),
                };
                // A truncated option is dhcproto's to reject, and it does so without panicking.
                let Some(next) = tail.get(len..) else { return true };
                rest = next;
            }
            [_] => return true,
        }
    }
}

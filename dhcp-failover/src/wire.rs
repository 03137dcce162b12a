//! Message codec: the 12-byte header and the option list (draft-12 §6).
//!
//! ```text
//! len u16 (includes the header) | type u8 | payload offset u8 | time u32 | xid u32 | options…
//! ```
//!
//! A decoded [`Message`] keeps its options in wire order, unknown ones as raw bytes, and any
//! header bytes between byte 12 and the payload offset, so `encode(decode(frame)) == frame` for
//! every frame `decode` accepts.

use std::collections::HashSet;

pub use crate::error::WireError;
use crate::options::{FoOption, code};

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;
/// Largest message the draft allows (§6.1), header included.
pub const MAX_MESSAGE_LEN: usize = 2048;
/// The payload offset we send. The draft's text says 8, which would put the options on top of
/// `time` and `xid`; ISC sends 12 and mis-parses anything smaller.
pub const PAYLOAD_OFFSET: u8 = 12;

/// The twelve message types of draft-12 §6.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    PoolReq = 1,
    PoolResp = 2,
    BndUpd = 3,
    BndAck = 4,
    Connect = 5,
    ConnectAck = 6,
    UpdReqAll = 7,
    UpdDone = 8,
    UpdReq = 9,
    State = 10,
    Contact = 11,
    Disconnect = 12,
}

impl MessageType {
    pub const ALL: [Self; 12] = [
        Self::PoolReq,
        Self::PoolResp,
        Self::BndUpd,
        Self::BndAck,
        Self::Connect,
        Self::ConnectAck,
        Self::UpdReqAll,
        Self::UpdDone,
        Self::UpdReq,
        Self::State,
        Self::Contact,
        Self::Disconnect,
    ];

    #[must_use]
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v).checked_sub(1)?).copied()
    }

    /// BNDUPD and BNDACK may batch several bindings, each opened by an assigned-IP-address
    /// option, so an option may repeat there once per binding (draft-12 §6.3).
    #[must_use]
    pub fn is_batchable(self) -> bool {
        matches!(self, Self::BndUpd | Self::BndAck)
    }
}

/// One failover message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageType,
    /// Sender's wall clock, unix seconds.
    pub time: u32,
    pub xid: u32,
    /// Header bytes a sender placed between byte 12 and its payload offset. Always empty in what
    /// we build; kept so received frames re-encode unchanged.
    pub extra_header: Vec<u8>,
    /// Options in wire order.
    pub options: Vec<FoOption>,
}

impl Message {
    /// A message without options.
    #[must_use]
    pub fn new(kind: MessageType, time: u32, xid: u32) -> Self {
        Self { kind, time, xid, extra_header: Vec::new(), options: Vec::new() }
    }

    /// Size of the encoded frame.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + self.extra_header.len()
            + self.options.iter().map(|o| 4 + o.value_len()).sum::<usize>()
    }
}

/// Decodes exactly one frame.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    let declared = frame_len(frame)?;
    if declared > MAX_MESSAGE_LEN {
        return Err(WireError::Oversized(declared));
    }
    if declared < HEADER_LEN || declared != frame.len() {
        if declared > frame.len() {
            return Err(WireError::Truncated { have: frame.len(), need: declared });
        }
        return Err(WireError::BadLength { declared, actual: frame.len() });
    }
    let kind = MessageType::from_u8(frame[2]).ok_or(WireError::UnknownMessageType(frame[2]))?;
    let offset = frame[3];
    if usize::from(offset) < HEADER_LEN || usize::from(offset) > frame.len() {
        return Err(WireError::BadPayloadOffset { offset, len: frame.len() });
    }
    let time = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let xid = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
    let extra_header = frame[HEADER_LEN..usize::from(offset)].to_vec();
    let options = decode_options(kind, &frame[usize::from(offset)..])?;
    Ok(Message { kind, time, xid, extra_header, options })
}

/// Reads the length field; used by the stream framer too.
pub(crate) fn frame_len(bytes: &[u8]) -> Result<usize, WireError> {
    match bytes {
        [hi, lo, ..] if bytes.len() >= HEADER_LEN => {
            Ok(usize::from(u16::from_be_bytes([*hi, *lo])))
        }
        _ => Err(WireError::Truncated { have: bytes.len(), need: HEADER_LEN }),
    }
}

fn decode_options(kind: MessageType, mut rest: &[u8]) -> Result<Vec<FoOption>, WireError> {
    let mut options = Vec::new();
    // Draft-12 §6.2: a repeated option is an error, except that in BNDUPD/BNDACK each
    // assigned-IP-address opens a new binding in which options may appear again.
    let mut seen = HashSet::new();
    while !rest.is_empty() {
        let [c0, c1, l0, l1, tail @ ..] = rest else {
            return Err(WireError::BadOptionLength {
                code: match rest {
                    [c0, c1, ..] => u16::from_be_bytes([*c0, *c1]),
                    _ => 0,
                },
                len: rest.len(),
            });
        };
        let code = u16::from_be_bytes([*c0, *c1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some((value, after)) = tail.split_at_checked(len) else {
            return Err(WireError::BadOptionLength { code, len });
        };
        if kind.is_batchable() && code == code::ASSIGNED_IP_ADDRESS {
            seen.clear();
        }
        if !seen.insert(code) {
            return Err(WireError::RepeatedOption(code));
        }
        options.push(FoOption::parse(code, value)?);
        rest = after;
    }
    Ok(options)
}

/// Encodes a message. Fails only if it would not fit the draft's 2048-byte limit (or an option
/// value exceeds 65535 bytes, which implies the same); the builders in [`crate::messages`] never
/// produce such a message.
pub fn encode(msg: &Message) -> Result<Vec<u8>, WireError> {
    let len = msg.encoded_len();
    if len > MAX_MESSAGE_LEN {
        return Err(WireError::Oversized(len));
    }
    let offset = u8::try_from(HEADER_LEN + msg.extra_header.len())
        .map_err(|_| WireError::BadPayloadOffset { offset: u8::MAX, len })?;
    let mut out = Vec::with_capacity(len);
    // Both conversions hold because len <= 2048 was checked above.
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    out.push(msg.kind as u8);
    out.push(offset);
    out.extend_from_slice(&msg.time.to_be_bytes());
    out.extend_from_slice(&msg.xid.to_be_bytes());
    out.extend_from_slice(&msg.extra_header);
    for opt in &msg.options {
        out.extend_from_slice(&opt.code().to_be_bytes());
        let vlen = u16::try_from(opt.value_len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&vlen.to_be_bytes());
        opt.write_value(&mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn frame(kind: u8, offset: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(HEADER_LEN + payload.len()).unwrap();
        let mut f = len.to_be_bytes().to_vec();
        f.extend_from_slice(&[kind, offset, 0x6b, 0, 0, 1, 0, 0, 0, 7]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_contact_is_just_a_header() {
        let m = decode(&frame(11, 12, &[])).unwrap();
        assert_eq!(m.kind, MessageType::Contact);
        assert_eq!(m.time, 0x6b00_0001);
        assert_eq!(m.xid, 7);
        assert!(m.options.is_empty());
    }

    #[test]
    fn header_errors_are_typed() {
        assert!(matches!(decode(&[0, 12, 11]), Err(WireError::Truncated { .. })));
        let mut long = frame(11, 12, &[]);
        long[0..2].copy_from_slice(&2049u16.to_be_bytes());
        assert_eq!(decode(&long), Err(WireError::Oversized(2049)));
        let mut short = frame(11, 12, &[]);
        short[1] = 11;
        assert!(matches!(decode(&short), Err(WireError::BadLength { .. })));
        let mut trailing = frame(11, 12, &[]);
        trailing.push(0);
        assert!(matches!(decode(&trailing), Err(WireError::BadLength { .. })));
        assert!(matches!(decode(&frame(11, 8, &[])), Err(WireError::BadPayloadOffset { .. })));
        assert!(matches!(decode(&frame(11, 13, &[])), Err(WireError::BadPayloadOffset { .. })));
        assert_eq!(decode(&frame(13, 12, &[])), Err(WireError::UnknownMessageType(13)));
        assert!(decode(&frame(200, 12, &[])).unwrap_err().is_ignorable());
        assert!(!decode(&frame(0, 12, &[])).unwrap_err().is_ignorable());
    }

    #[test]
    fn option_errors_are_typed() {
        let mclt = [0, 15, 0, 4, 0, 0, 0, 60];
        let twice = [mclt, mclt].concat();
        assert_eq!(decode(&frame(5, 12, &twice)), Err(WireError::RepeatedOption(15)));
        assert!(matches!(
            decode(&frame(5, 12, &[0, 15, 0, 9, 0])),
            Err(WireError::BadOptionLength { code: 15, .. })
        ));
        assert!(matches!(
            decode(&frame(5, 12, &[0, 15, 0])),
            Err(WireError::BadOptionLength { .. })
        ));
    }

    #[test]
    fn batched_bndupd_may_repeat_options_per_address_but_not_within_one() {
        let ip = |last: u8| [0, 2, 0, 4, 10, 0, 0, last];
        let free = [0, 3, 0, 1, 1];
        let two = [&ip(1)[..], &free, &ip(2), &free].concat();
        let m = decode(&frame(3, 12, &two)).unwrap();
        assert_eq!(m.options.len(), 4);
        assert_eq!(m.options[2], FoOption::AssignedIp(Ipv4Addr::new(10, 0, 0, 2)));
        let dup = [&ip(1)[..], &free, &free].concat();
        assert_eq!(decode(&frame(3, 12, &dup)), Err(WireError::RepeatedOption(3)));
        // Outside BNDUPD/BNDACK an address does not reset the rule.
        assert_eq!(
            decode(&frame(10, 12, &[&ip(1)[..], &ip(2)].concat())),
            Err(WireError::RepeatedOption(2))
        );
    }

    #[test]
    fn extra_header_bytes_survive_a_round_trip() {
        let f = frame(11, 14, &[0xde, 0xad]);
        let m = decode(&f).unwrap();
        assert_eq!(m.extra_header, [0xde, 0xad]);
        assert_eq!(encode(&m).unwrap(), f);
    }

    #[test]
    fn encoding_refuses_what_the_partner_could_not_accept() {
        let mut m = Message::new(MessageType::State, 0, 0);
        m.options.push(FoOption::Message(vec![b'x'; MAX_MESSAGE_LEN]));
        assert!(matches!(encode(&m), Err(WireError::Oversized(_))));
    }
}

//! Option 82, relay agent information (RFC 3046), as the server handles it: the raw bytes a
//! relay or an access node sent, echoed unchanged as the last option of the reply (§2.2), and
//! the sub-options read from them — circuit-id and remote-id (the subscriber's line), link
//! selection (RFC 3527), server identifier override (RFC 5107).
//!
//! The server keeps option 82 as bytes, never as a decoded map: dhcproto's decoder keeps its
//! sub-options sorted by code and drops repeats and whatever follows a malformed one, so a
//! reply built from it would not carry the option the relay sent. Pure functions; the slow path,
//! the fast path's map entries, the load generator and the tests share them.
use dhcp_common::maps::RELAY_INFO_MAX;

pub const OPTION: u8 = dhcp_common::bootp::OPT_RELAY_AGENT;
pub const CIRCUIT_ID: u8 = 1;
pub const REMOTE_ID: u8 = 2;
pub const LINK_SELECTION: u8 = 5;
pub const SERVER_ID_OVERRIDE: u8 = 11;

/// What a request's option 82 says, read from its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentInfo<'a> {
    pub circuit_id: Option<&'a [u8]>,
    pub remote_id: Option<&'a [u8]>,
    /// The address of sub-option 5 when it is four bytes.
    pub link_selection: Option<[u8; 4]>,
    /// Sub-option 11 is present (any length).
    pub server_id_override: bool,
    /// Every sub-option's length fits, none is repeated, and nothing is left over.
    pub well_formed: bool,
}

impl<'a> AgentInfo<'a> {
    /// Reads the sub-options of an option 82 value. A sub-option whose length runs past the end
    /// ends the reading (what came before it counts); of a repeated sub-option the first counts.
    #[must_use]
    pub fn parse(raw: &'a [u8]) -> Self {
        let mut info = AgentInfo { well_formed: true, ..AgentInfo::default() };
        let mut seen = [false; 256];
        let mut rest = raw;
        while !rest.is_empty() {
            let [code, len, tail @ ..] = rest else {
                info.well_formed = false;
                break;
            };
            let Some(value) = tail.get(..usize::from(*len)) else {
                info.well_formed = false;
                break;
            };
            rest = &tail[value.len()..];
            if std::mem::replace(&mut seen[usize::from(*code)], true) {
                info.well_formed = false;
                continue;
            }
            match *code {
                CIRCUIT_ID => info.circuit_id = Some(value),
                REMOTE_ID => info.remote_id = Some(value),
                LINK_SELECTION => info.link_selection = value.try_into().ok(),
                SERVER_ID_OVERRIDE => info.server_id_override = true,
                _ => {}
            }
        }
        info
    }
}

/// Whether XDP may answer renewals that carry exactly `raw` as option 82: short enough for its
/// fixed slot, well formed, and without the two sub-options that ask the server for more than
/// an echo (link selection, server identifier override), which the slow path keeps.
#[must_use]
pub fn fast_path_eligible(raw: &[u8]) -> bool {
    let info = AgentInfo::parse(raw);
    raw.len() <= RELAY_INFO_MAX
        && info.well_formed
        && !info.server_id_override
        && !raw_has(raw, LINK_SELECTION)
}

fn raw_has(raw: &[u8], code: u8) -> bool {
    let mut rest = raw;
    while let [c, len, tail @ ..] = rest {
        if *c == code {
            return true;
        }
        rest = tail.get(usize::from(*len)..).unwrap_or_default();
    }
    false
}

/// An option 82 value from sub-options, in the order given (what an access node would add).
///
/// # Panics
/// When a sub-option is longer than 255 bytes.
#[must_use]
pub fn encode(subs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (code, value) in subs {
        v.push(*code);
        v.push(u8::try_from(value.len()).expect("a sub-option of at most 255 bytes"));
        v.extend_from_slice(value);
    }
    v
}

/// The option 82 value of a BOOTP payload as dhcproto decodes the message: consecutive
/// instances concatenated (RFC 3396), a later run replacing an earlier one, and nothing from
/// an option that runs past the payload or from any option after it.
#[must_use]
pub fn from_payload(payload: &[u8]) -> Option<Vec<u8>> {
    const OPTIONS_AT: usize = dhcp_common::bootp::OPTIONS;
    let mut rest = payload.get(OPTIONS_AT..)?;
    let mut found: Option<Vec<u8>> = None;
    // The run of consecutive 82s being read.
    let mut run: Option<Vec<u8>> = None;
    loop {
        match rest {
            [] | [255, ..] => break,
            [0, tail @ ..] => {
                // PAD ends a run as another option does (dhcproto decodes what it has read).
                found = run.take().or(found);
                rest = tail;
            }
            [code, len, tail @ ..] if tail.len() >= usize::from(*len) => {
                let (value, next) = tail.split_at(usize::from(*len));
                if *code == OPTION {
                    run.get_or_insert_with(Vec::new).extend_from_slice(value);
                } else {
                    found = run.take().or(found);
                }
                rest = next;
            }
            // An option running past the payload: dhcproto stops there. One of another code
            // lets the run before it be decoded first; another 82 fails the whole run.
            [code, ..] => {
                if *code != OPTION {
                    found = run.take().or(found);
                }
                return found;
            }
        }
    }
    run.or(found)
}

#[cfg(test)]
mod tests {
    use dhcproto::{
        Decodable as _, Encodable as _,
        v4::{DhcpOption, Message, OptionCode, relay::RelayAgentInformation},
    };

    use super::*;

    fn message_with(opts: &[u8]) -> Vec<u8> {
        let mut m = Message::default();
        m.opts_mut().insert(DhcpOption::MessageType(dhcproto::v4::MessageType::Request));
        let mut p = m.to_vec().unwrap();
        p.truncate(dhcp_common::bootp::OPTIONS);
        p.extend_from_slice(opts);
        p
    }

    #[test]
    fn sub_options_are_read_from_the_bytes_in_their_order() {
        let raw = encode(&[(REMOTE_ID, b"cpe-7"), (CIRCUIT_ID, b"olt1 eth 1/1/3:100"), (9, b"v")]);
        let i = AgentInfo::parse(&raw);
        assert_eq!(i.circuit_id, Some(&b"olt1 eth 1/1/3:100"[..]));
        assert_eq!(i.remote_id, Some(&b"cpe-7"[..]));
        assert!(i.well_formed && !i.server_id_override && i.link_selection.is_none());
        assert!(fast_path_eligible(&raw));
    }

    #[test]
    fn lying_lengths_repeats_and_the_two_requests_stay_with_the_slow_path() {
        // A sub-option claiming more than is there: what came before still counts.
        let mut lying = encode(&[(CIRCUIT_ID, b"port-1")]);
        lying.extend_from_slice(&[REMOTE_ID, 40, b'x']);
        let i = AgentInfo::parse(&lying);
        assert_eq!(i.circuit_id, Some(&b"port-1"[..]));
        assert_eq!(i.remote_id, None);
        assert!(!i.well_formed && !fast_path_eligible(&lying));
        // A lone trailing byte.
        let mut odd = encode(&[(CIRCUIT_ID, b"p")]);
        odd.push(2);
        assert!(!AgentInfo::parse(&odd).well_formed);
        // Repeated: the first counts.
        let twice = encode(&[(CIRCUIT_ID, b"a"), (CIRCUIT_ID, b"b")]);
        assert_eq!(AgentInfo::parse(&twice).circuit_id, Some(&b"a"[..]));
        assert!(!fast_path_eligible(&twice));
        // Link selection (any length) and server identifier override.
        for sub in [(LINK_SELECTION, &[10u8, 2, 0, 0][..]), (LINK_SELECTION, &[1][..])] {
            let raw = encode(&[(CIRCUIT_ID, b"p"), sub]);
            assert!(!fast_path_eligible(&raw), "{raw:?}");
        }
        let ls = encode(&[(LINK_SELECTION, &[10, 2, 0, 0])]);
        assert_eq!(AgentInfo::parse(&ls).link_selection, Some([10, 2, 0, 0]));
        let sio = encode(&[(SERVER_ID_OVERRIDE, &[10, 0, 0, 1])]);
        assert!(AgentInfo::parse(&sio).server_id_override && !fast_path_eligible(&sio));
        // Longer than the fast path's slot.
        let long = encode(&[(CIRCUIT_ID, &[b'c'; 200])]);
        assert!(AgentInfo::parse(&long).well_formed && !fast_path_eligible(&long));
        let fits = encode(&[(CIRCUIT_ID, &[b'c'; RELAY_INFO_MAX - 2])]);
        assert!(fast_path_eligible(&fits));
        // Empty: nothing to say, nothing wrong.
        assert!(AgentInfo::parse(&[]).well_formed && fast_path_eligible(&[]));
    }

    #[test]
    fn the_payloads_option_82_is_found_as_dhcproto_finds_it() {
        let a = encode(&[(CIRCUIT_ID, b"port-1"), (REMOTE_ID, b"r")]);
        let mut opts = vec![53, 1, 3, 82, u8::try_from(a.len()).unwrap()];
        opts.extend_from_slice(&a);
        opts.push(255);
        assert_eq!(from_payload(&message_with(&opts)), Some(a.clone()));
        // Split in two consecutive instances: concatenated.
        let mut split = vec![53, 1, 3, 82, 3];
        split.extend_from_slice(&a[..3]);
        split.extend_from_slice(&[82, u8::try_from(a.len() - 3).unwrap()]);
        split.extend_from_slice(&a[3..]);
        split.push(255);
        assert_eq!(from_payload(&message_with(&split)), Some(a.clone()));
        // Two runs apart: the later one, as dhcproto's map keeps it.
        let sep = [82, 1, b'x', 12, 1, b'h', 82, 1, b'y', 255];
        assert_eq!(from_payload(&message_with(&sep)), Some(vec![b'y']));
        // Running past the payload: nothing.
        assert_eq!(from_payload(&message_with(&[53, 1, 3, 82, 40, 1, 2])), None);
        assert_eq!(from_payload(&message_with(&[53, 1, 3])), None);
    }

    #[test]
    fn random_payloads_have_option_82_exactly_when_dhcproto_sees_one() {
        // Options whose values dhcproto takes as bytes whatever they hold (it stops at the
        // first option it cannot decode as its type, which `Server::handle_bytes` allows for
        // by using these bytes only when they decode to what dhcproto decoded).
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut byte = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        };
        let mut seen = 0;
        for _ in 0..20_000 {
            let mut opts = Vec::new();
            for _ in 0..byte() % 8 {
                match byte() % 8 {
                    0 => opts.push(0),
                    1 => opts.push(255),
                    k => {
                        opts.push([82, 82, 82, 43, 60, 77, 230][usize::from(k) - 1]);
                        let len = byte() % 12;
                        opts.push(len);
                        opts.extend((0..len).map(|_| byte()));
                    }
                }
            }
            // Now and then cut short, mid-option.
            if byte() % 4 == 0 {
                opts.truncate(usize::from(byte()) % (opts.len() + 1));
            }
            let p = message_with(&opts);
            let Ok(m) = Message::from_bytes(&p) else { continue };
            let theirs = match m.opts().get(OptionCode::RelayAgentInformation) {
                Some(DhcpOption::RelayAgentInformation(i)) => Some(i.clone()),
                _ => None,
            };
            let ours = from_payload(&p);
            assert_eq!(ours.is_some(), theirs.is_some(), "options {opts:?}");
            if let (Some(raw), Some(theirs)) = (ours, theirs) {
                let decoded = RelayAgentInformation::from_bytes(&raw).unwrap();
                assert_eq!(decoded, theirs, "options {opts:?}");
                seen += 1;
            }
        }
        assert!(seen > 1000, "only {seen} payloads with option 82");
    }
}

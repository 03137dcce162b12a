//! How long a reply may be (option 57), what goes into `file` and `sname` when it is longer
//! (option 52), what is left out, and requests whose options are in those fields.
use dhcproto::{Decodable as _, Encodable as _};

use super::*;
use crate::packet::{ReplyRoom, encode_reply, insert_last_option};
use crate::relay;

/// The options a client reads from `payload`: the options field, then `file` and `sname` where
/// option 52 says (RFC 2131 §4.1), each up to its END.
fn read_options(payload: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let flat = request::unfold_overload(payload).unwrap_or_else(|| payload.to_vec());
    super::circuit::wire_options(&flat)
}

fn codes(opts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    opts.iter().map(|(c, _)| *c).collect()
}

/// A relayed DISCOVER (giaddr in subnet 0's prefix, which has routers, DNS and a domain) with a
/// 100-byte client identifier and 250 bytes of option 82, and `more` options of its own.
fn big_discover(more: &[DhcpOption]) -> (Vec<u8>, Vec<u8>) {
    let mut id = vec![0];
    id.extend((1..100).map(|i: u8| i));
    let c = Client { client_id: Some(id), ..Client::new(9) };
    let mut m = c.discover();
    m.set_giaddr(ip("10.0.0.2"));
    for o in more {
        m.opts_mut().insert(o.clone());
    }
    let raw = relay::encode(&[(relay::CIRCUIT_ID, &[b'c'; 248])]);
    assert_eq!(raw.len(), 250);
    (insert_last_option(&m.to_vec().unwrap(), 82, &raw), raw)
}

#[test]
fn a_reply_too_long_for_576_bytes_overflows_into_file_and_sname_with_option_82_last() {
    let mut s = server();
    let (req, raw) = big_discover(&[]);
    let o = s.handle_bytes(T0, &req, &direct());
    let Handled::Offered(_) = o.result else { panic!("{:?}", o.result) };
    let r = reply(&o);
    assert_eq!(r.room, ReplyRoom::default(), "no option 57: 576 bytes");
    // Without a limit it would take 681 bytes of IP.
    let unbounded = encode_reply(&r.msg, &ReplyRoom { max_ip_len: 65_535, ..r.room.clone() });
    assert_eq!(28 + unbounded.len(), 681);
    let bytes = encode_reply(&r.msg, &r.room);
    assert_eq!(28 + bytes.len(), 569, "bytes of IP");
    // `file`: the client identifier and the domain name, which did not fit the options field.
    let mut file = vec![0u8; 240];
    file.extend_from_slice(&bytes[108..236]);
    assert_eq!(codes(&super::circuit::wire_options(&file)), [61, 15]);
    assert!(bytes[44..108].iter().all(|b| *b == 0), "sname unused");
    // The options field: option 82 last, intact, just before END, and option 52 before it.
    let main = super::circuit::wire_options(&bytes);
    assert_eq!(main.last(), Some(&(82, raw.clone())));
    assert_eq!(*bytes.last().unwrap(), 255);
    assert_eq!(main[main.len() - 2], (52, vec![1]), "the file field only: {main:?}");
    // A client reading all three fields reads every option, each once, essentials in place.
    let read = read_options(&bytes);
    let mut got = codes(&read);
    got.sort_unstable();
    assert_eq!(got, [1, 3, 6, 15, 51, 53, 54, 58, 59, 61, 82]);
    assert_eq!(read.iter().find(|o| o.0 == 61).unwrap().1.len(), 100);
    // And so does dhcproto, the client's way, once the fields are unfolded.
    let flat = request::unfold_overload(&bytes).unwrap();
    let m = Message::from_bytes(&flat).unwrap();
    assert_eq!(m.opts().get(OptionCode::DomainName), r.msg.opts().get(OptionCode::DomainName));
    // The header outside the fields is the unbounded reply's.
    assert_eq!(bytes[..44], unbounded[..44]);
}

#[test]
fn option_57_lets_a_reply_be_longer_and_a_value_below_576_counts_as_576() {
    let mut s = server();
    for (v, fits) in [(1500u16, true), (681, true), (680, false), (300, false)] {
        let (req, _) = big_discover(&[DhcpOption::MaxMessageSize(v)]);
        let o = s.handle_bytes(T0, &req, &direct());
        let r = reply(&o);
        assert_eq!(r.room.max_ip_len, usize::from(v).max(576));
        let bytes = encode_reply(&r.msg, &r.room);
        let overloaded = codes(&super::circuit::wire_options(&bytes)).contains(&52);
        assert_eq!(!overloaded, fits, "option 57 = {v}");
        assert!(28 + bytes.len() <= r.room.max_ip_len, "option 57 = {v}");
    }
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, o, r, m: server, outcome, reply, message")]
fn what_fits_nowhere_is_left_out_essentials_first_then_the_clients_order_then_by_code() {
    let mut s = server();
    let asked = vec![OptionCode::from(121), OptionCode::Router, OptionCode::from(43)];
    let (req, raw) = big_discover(&[DhcpOption::ParameterRequestList(asked)]);
    let o = s.handle_bytes(T0, &req, &direct());
    let r = reply(&o);
    assert_eq!(r.room.requested, [121, 3, 43]);
    let mut m = r.msg.clone();
    // A client class's options, 50 bytes each: more than the fields hold.
    for code in [42u8, 43, 66, 67, 121] {
        let v = UnknownOption::new(OptionCode::from(code), vec![code; 50]);
        m.opts_mut().insert(DhcpOption::Unknown(v));
    }
    let bytes = encode_reply(&m, &r.room);
    assert!(28 + bytes.len() <= 576, "{} bytes of IP", 28 + bytes.len());
    let read = codes(&read_options(&bytes));
    for kept in [53, 54, 51, 58, 59, 1, 61, 82] {
        assert!(read.contains(&kept), "essential option {kept} kept: {read:?}");
    }
    // After option 82 (252 bytes) and the other essentials, the options field has 19 bytes
    // left, and 61 (102) goes into `file`; then the client's order: 121 (52) fits only
    // `sname`, 3 the options field, 43 nowhere; then by code 6 and 15 still fit, 42, 66 and 67
    // do not.
    assert!(read.contains(&121) && read.contains(&3), "{read:?}");
    for left_out in [42, 43, 66, 67] {
        assert!(!read.contains(&left_out), "{left_out} left out: {read:?}");
    }
    assert_eq!(super::circuit::wire_options(&bytes).last(), Some(&(82, raw)));
    // With room enough, none is left out, and nothing is overloaded.
    let room = ReplyRoom { max_ip_len: 1500, ..r.room.clone() };
    let bytes = encode_reply(&m, &room);
    assert_eq!(codes(&super::circuit::wire_options(&bytes)).len(), 16);
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, o, p: server, client, address, ...")]
fn options_in_file_and_sname_count_when_option_52_says_they_are_there() {
    let mut s = server();
    let c = Client::new(3);
    let a = c.dora(&mut s, T0);
    // INIT-REBOOT with its requested address in `file` (52 = 1), or in `sname` (52 = 2): read
    // as if in the options field, the client's own lease acknowledged.
    let bare = c.msg(MessageType::Request, Ipv4Addr::UNSPECIFIED).to_vec().unwrap();
    for (overload, at) in [(1u8, dhcp_common::bootp::FILE), (2, dhcp_common::bootp::SNAME)] {
        let mut p = insert_last_option(&bare, 52, &[overload]);
        p[at..at + 7].copy_from_slice(&[
            50,
            4,
            a.octets()[0],
            a.octets()[1],
            a.octets()[2],
            a.octets()[3],
            255,
        ]);
        let o = s.handle_bytes(T0 + 10, &p, &direct());
        assert_eq!(o.result, Handled::Acked(a), "option 52 = {overload}");
        // Without option 52 the field is a name, not options: no requested address.
        let mut p = bare.clone();
        p[at..at + 7].copy_from_slice(&[
            50,
            4,
            a.octets()[0],
            a.octets()[1],
            a.octets()[2],
            a.octets()[3],
            255,
        ]);
        let o = s.handle_bytes(T0 + 10, &p, &direct());
        assert_eq!(o.result, Handled::Dropped(DropReason::MissingAddress));
    }
    // Both fields, `file` read before `sname`: an option in both is concatenated in that
    // order (RFC 3396), as in one field; a field without END ends at its end.
    let mut p = insert_last_option(&bare, 52, &[3]);
    let f = dhcp_common::bootp::FILE;
    p[f..f + 4].copy_from_slice(&[12, 2, b'a', b'b']);
    let n = dhcp_common::bootp::SNAME;
    p[n..n + 64].fill(0);
    p[n..n + 4].copy_from_slice(&[12, 2, b'c', b'd']);
    p[n + 4..n + 64].fill(b'x');
    let flat = request::unfold_overload(&p).unwrap();
    let m = Message::from_bytes(&flat).unwrap();
    assert_eq!(m.opts().get(OptionCode::Hostname), Some(&DhcpOption::Hostname("abcd".into())));
    assert!(m.sname().is_none() && m.fname().is_none(), "the fields held options, not names");
    assert!(m.opts().get(OptionCode::OptionOverload).is_none());
}

#[test]
fn a_message_without_the_magic_cookie_is_bootp_and_gets_no_reply() {
    let mut s = server();
    let mut req = Client::new(9).discover().to_vec().unwrap();
    let Handled::Offered(_) = s.handle_bytes(T0, &req, &direct()).result else { panic!() };
    req[238] ^= 0xff;
    let o = s.handle_bytes(T0, &req, &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::NoMessageType));
    // Cut short of the cookie: not a message at all.
    assert_eq!(
        s.handle_bytes(T0, &req[..200], &direct()).result,
        Handled::Dropped(DropReason::Undecodable)
    );
}

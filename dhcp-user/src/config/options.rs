//! DHCP options as the config names them: by RFC 2132 / IANA name or by code, each with a
//! typed value that is encoded here, once, into the bytes both paths send.
//!
//! ```toml
//! [subnet.options]
//! ntp-servers = ["192.0.2.1", "192.0.2.2"]
//! classless-static-routes = [{ prefix = "10.0.0.0/8", router = "100.64.0.1" }]
//! vendor-encapsulated-options = { 1 = "http://acs.isp.example:7547/" }
//! 224 = { hex = "01:02:03" }
//! ```
use std::{collections::BTreeMap, net::Ipv4Addr};

use toml::Value;

/// How an option's value is written in the file and encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Addr,
    Addrs,
    U8,
    U16,
    U32,
    I32,
    Flag,
    Text,
    /// RFC 3397: domain names in DNS wire format (without compression).
    Domains,
    /// RFC 3442 (also Microsoft's 249): destination prefixes and their routers.
    Routes,
    /// Option 43: sub-options `code = value`, each text, hex or addresses.
    Vendor,
    /// Option 125 (RFC 3925): per enterprise number, its sub-options as for 43.
    Vivso,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Addr => "an IPv4 address",
            Kind::Addrs => "a list of IPv4 addresses",
            Kind::U8 => "an integer from 0 to 255",
            Kind::U16 => "an integer from 0 to 65535",
            Kind::U32 => "an integer from 0 to 4294967295",
            Kind::I32 => "a signed 32-bit integer",
            Kind::Flag => "true or false",
            Kind::Text => "a string",
            Kind::Domains => "a list of domain names",
            Kind::Routes => "a list of { prefix = \"a.b.c.d/n\", router = \"a.b.c.d\" }",
            Kind::Vendor => "a table of sub-options, e.g. { 1 = \"text\", 2 = { hex = \"0102\" } }",
            Kind::Vivso => "a table of enterprise numbers, each a table of sub-options",
        }
    }
}

/// The options the file may name, RFC 2132's names as ISC dhcpd and Kea spell them.
pub const CATALOGUE: &[(u8, &str, Kind)] = &[
    (2, "time-offset", Kind::I32),
    (3, "routers", Kind::Addrs),
    (4, "time-servers", Kind::Addrs),
    (6, "domain-name-servers", Kind::Addrs),
    (7, "log-servers", Kind::Addrs),
    (12, "host-name", Kind::Text),
    (15, "domain-name", Kind::Text),
    (19, "ip-forwarding", Kind::Flag),
    (23, "default-ip-ttl", Kind::U8),
    (26, "interface-mtu", Kind::U16),
    (28, "broadcast-address", Kind::Addr),
    (33, "static-routes", Kind::Addrs),
    (40, "nis-domain", Kind::Text),
    (41, "nis-servers", Kind::Addrs),
    (42, "ntp-servers", Kind::Addrs),
    (43, "vendor-encapsulated-options", Kind::Vendor),
    (44, "netbios-name-servers", Kind::Addrs),
    (46, "netbios-node-type", Kind::U8),
    (60, "vendor-class-identifier", Kind::Text),
    (66, "tftp-server-name", Kind::Text),
    (67, "bootfile-name", Kind::Text),
    (69, "smtp-server", Kind::Addrs),
    (72, "www-server", Kind::Addrs),
    (100, "pcode", Kind::Text),
    (101, "tcode", Kind::Text),
    (114, "captive-portal", Kind::Text),
    (119, "domain-search", Kind::Domains),
    (121, "classless-static-routes", Kind::Routes),
    (125, "vivso", Kind::Vivso),
    (138, "capwap-ac", Kind::Addrs),
    (150, "tftp-server-address", Kind::Addrs),
    (249, "ms-classless-static-routes", Kind::Routes),
    (252, "wpad", Kind::Text),
];

/// Options the server sets itself (or the client's), which a config cannot set: the reply
/// would contradict the server's own decision.
fn reserved(code: u8) -> Option<&'static str> {
    Some(match code {
        0 | 255 => "is PAD/END, not an option",
        1 => "the subnet mask comes from the subnet's prefix",
        50 | 53 | 54 | 55 | 57 | 61 | 82 | 118 => "is set by the server or the client per message",
        51 | 58 | 59 => "lease times come from lease_time, t1 and t2",
        52 => "option overload is the server's to use",
        _ => return None,
    })
}

/// The code and kind of an option key: a catalogue name, or a code (with its catalogue kind
/// when it has one).
pub fn lookup(key: &str) -> Result<(u8, Option<Kind>), String> {
    let Ok(code) = key.parse::<u16>() else {
        let Some((c, _, k)) = CATALOGUE.iter().find(|(_, n, _)| *n == key) else {
            return Err("is not an option name this server knows; write its code with a typed \
                 value ({ type = \"addresses\", value = [...] }) or { hex = \"...\" }"
                .into());
        };
        return check_reserved(*c).map(|()| (*c, Some(*k)));
    };
    let code =
        u8::try_from(code).map_err(|_| format!("{code} is not an option code (1 to 254)"))?;
    check_reserved(code)?;
    Ok((code, CATALOGUE.iter().find(|(c, _, _)| *c == code).map(|(_, _, k)| *k)))
}

fn check_reserved(code: u8) -> Result<(), String> {
    match reserved(code) {
        Some(why) => Err(format!("option {code} cannot be configured: {why}")),
        None => Ok(()),
    }
}

/// The catalogue name of `code`, for messages and listings.
#[must_use]
pub fn name_of(code: u8) -> Option<&'static str> {
    CATALOGUE.iter().find(|(c, _, _)| *c == code).map(|(_, n, _)| *n)
}

fn kind_named(t: &str) -> Option<Kind> {
    Some(match t {
        "address" => Kind::Addr,
        "addresses" => Kind::Addrs,
        "u8" => Kind::U8,
        "u16" => Kind::U16,
        "u32" => Kind::U32,
        "i32" => Kind::I32,
        "flag" => Kind::Flag,
        "string" => Kind::Text,
        "domains" => Kind::Domains,
        "routes" => Kind::Routes,
        "vendor" => Kind::Vendor,
        _ => return None,
    })
}

/// An options table (`[… .options]`), encoded: code to value bytes. A value over 255 bytes is
/// kept whole here and split into instances when sent (RFC 3396). Errors name the key within
/// the table.
pub fn encode_table(t: &toml::Table) -> Result<BTreeMap<u8, Vec<u8>>, (String, String)> {
    let mut out = BTreeMap::new();
    for (key, v) in t {
        let (code, kind) = lookup(key).map_err(|m| (key.clone(), m))?;
        let bytes = encode_value(code, kind, v).map_err(|m| (key.clone(), m))?;
        if out.insert(code, bytes).is_some() {
            return Err((key.clone(), format!("option {code} is set twice in this table")));
        }
    }
    Ok(out)
}

fn encode_value(code: u8, kind: Option<Kind>, v: &Value) -> Result<Vec<u8>, String> {
    if let Value::Table(t) = v {
        if let Some(h) = t.get("hex") {
            if t.len() != 1 {
                return Err("a { hex = \"...\" } value has no other keys".into());
            }
            return hex(h);
        }
        if let (Some(Value::String(ty)), Some(value)) = (t.get("type"), t.get("value")) {
            if t.len() != 2 {
                return Err("a typed value has exactly the keys type and value".into());
            }
            let k = kind_named(ty).ok_or_else(|| {
                format!(
                    "{ty:?} is not a type (address, addresses, u8, u16, u32, i32, flag, \
                     string, domains, routes, vendor)"
                )
            })?;
            return encode(k, value);
        }
    }
    let Some(kind) = kind else {
        return Err(format!(
            "option {code} has no known type: write {{ type = \"...\", value = ... }} or \
             {{ hex = \"...\" }}"
        ));
    };
    encode(kind, v)
}

fn hex(v: &Value) -> Result<Vec<u8>, String> {
    let Value::String(s) = v else { return Err("hex is a string such as \"01:aa:bb\"".into()) };
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b':' && b != b' ').collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{s:?} is not hex bytes (an odd number of digits)"));
    }
    digits
        .chunks(2)
        .map(|p| std::str::from_utf8(p).ok().and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| format!("{s:?} is not hex bytes"))
}

fn addr(v: &Value) -> Option<Ipv4Addr> {
    v.as_str()?.trim().parse().ok()
}

fn int(v: &Value, lo: i64, hi: i64) -> Option<i64> {
    v.as_integer().filter(|i| (lo..=hi).contains(i))
}

/// `v` encoded as `kind`.
pub fn encode(kind: Kind, v: &Value) -> Result<Vec<u8>, String> {
    let bad = || format!("{v} is not {}", kind.describe());
    let list = |v: &Value| -> Vec<Value> {
        match v {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        }
    };
    let out = match kind {
        Kind::Addr => addr(v).ok_or_else(bad)?.octets().to_vec(),
        Kind::Addrs => {
            let items = list(v);
            if items.is_empty() {
                return Err("lists no address".into());
            }
            let mut out = Vec::with_capacity(4 * items.len());
            for item in &items {
                out.extend(
                    addr(item).ok_or_else(|| format!("{item} is not an IPv4 address"))?.octets(),
                );
            }
            out
        }
        Kind::U8 => vec![u8::try_from(int(v, 0, 255).ok_or_else(bad)?).map_err(|_| bad())?],
        Kind::U16 => u16::try_from(int(v, 0, 65_535).ok_or_else(bad)?)
            .map_err(|_| bad())?
            .to_be_bytes()
            .to_vec(),
        Kind::U32 => u32::try_from(int(v, 0, i64::from(u32::MAX)).ok_or_else(bad)?)
            .map_err(|_| bad())?
            .to_be_bytes()
            .to_vec(),
        Kind::I32 => {
            i32::try_from(int(v, i64::from(i32::MIN), i64::from(i32::MAX)).ok_or_else(bad)?)
                .map_err(|_| bad())?
                .to_be_bytes()
                .to_vec()
        }
        Kind::Flag => vec![u8::from(v.as_bool().ok_or_else(bad)?)],
        Kind::Text => {
            let s = v.as_str().ok_or_else(bad)?;
            if s.is_empty() {
                return Err("is empty".into());
            }
            s.as_bytes().to_vec()
        }
        Kind::Domains => {
            let mut out = Vec::new();
            let items = list(v);
            if items.is_empty() {
                return Err("lists no domain".into());
            }
            for item in &items {
                let d = item.as_str().ok_or_else(|| format!("{item} is not a domain name"))?;
                dns_name(d, &mut out)?;
            }
            out
        }
        Kind::Routes => {
            let mut out = Vec::new();
            for item in &list(v) {
                route(item, &mut out)?;
            }
            if out.is_empty() {
                return Err("lists no route".into());
            }
            out
        }
        Kind::Vendor => suboptions(v)?,
        Kind::Vivso => {
            let t = v.as_table().ok_or_else(bad)?;
            let mut out = Vec::new();
            for (ent, subs) in t {
                let e: u32 =
                    ent.parse().map_err(|_| format!("{ent} is not an enterprise number"))?;
                let data = suboptions(subs).map_err(|m| format!("{ent}: {m}"))?;
                let len = u8::try_from(data.len())
                    .map_err(|_| format!("{ent}: sub-options take more than 255 bytes"))?;
                out.extend(e.to_be_bytes());
                out.push(len);
                out.extend(data);
            }
            out
        }
    };
    Ok(out)
}

/// RFC 1035 §3.1 wire form of `d`, appended.
fn dns_name(d: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let d = d.trim_end_matches('.');
    if d.is_empty() || d.len() > 253 {
        return Err(format!("{d:?} is not a domain name"));
    }
    for label in d.split('.') {
        let len = u8::try_from(label.len()).ok().filter(|l| (1..=63).contains(l));
        let Some(len) = len else {
            return Err(format!("{d:?} has an empty label or one over 63 characters"));
        };
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// RFC 3442 §2: the prefix length, the significant octets of the destination, the router.
fn route(v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let bad = || format!("{v} is not {}", Kind::Routes.describe());
    let (prefix, router) = match v {
        Value::Table(t) if t.len() == 2 => (t.get("prefix"), t.get("router")),
        _ => return Err(bad()),
    };
    let prefix: ipnet::Ipv4Net =
        prefix.and_then(Value::as_str).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let router = router.and_then(addr).ok_or_else(bad)?;
    if prefix.addr() != prefix.network() {
        return Err(format!("{prefix} has host bits set"));
    }
    let len = prefix.prefix_len();
    out.push(len);
    out.extend_from_slice(&prefix.network().octets()[..usize::from(len.div_ceil(8))]);
    out.extend(router.octets());
    Ok(())
}

/// Option 43's (and 125's) sub-options: `code = value`, a value text, `{ hex = … }` or a
/// list of addresses.
fn suboptions(v: &Value) -> Result<Vec<u8>, String> {
    let t = v.as_table().ok_or_else(|| format!("{v} is not {}", Kind::Vendor.describe()))?;
    let mut subs: Vec<(u8, Vec<u8>)> = Vec::new();
    for (k, sv) in t {
        let code = k
            .parse::<u8>()
            .ok()
            .filter(|c| (1..=254).contains(c))
            .ok_or_else(|| format!("{k} is not a sub-option code (1 to 254)"))?;
        let data = match sv {
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Table(h) if h.len() == 1 && h.contains_key("hex") => hex(&h["hex"])?,
            Value::Array(_) => encode(Kind::Addrs, sv)?,
            _ => return Err(format!("{k}: {sv} is not text, {{ hex = \"...\" }} or addresses")),
        };
        if data.len() > 255 {
            return Err(format!("sub-option {code} has more than 255 bytes"));
        }
        subs.push((code, data));
    }
    subs.sort_by_key(|(c, _)| *c);
    let mut out = Vec::new();
    for (code, data) in subs {
        out.push(code);
        out.push(u8::try_from(data.len()).expect("checked above"));
        out.extend(data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Vec<u8>, String> {
        let t: toml::Table = toml::from_str(text).unwrap();
        encode_table(&t).map(|m| m.into_values().next().unwrap()).map_err(|(_, m)| m)
    }

    #[test]
    fn typed_values_encode_as_their_rfcs_say() {
        assert_eq!(
            one(r#"ntp-servers = ["10.0.0.1", "10.0.0.2"]"#).unwrap(),
            [10, 0, 0, 1, 10, 0, 0, 2]
        );
        assert_eq!(one("interface-mtu = 1492").unwrap(), [0x05, 0xd4]);
        assert_eq!(one("time-offset = -3600").unwrap(), (-3600i32).to_be_bytes());
        assert_eq!(one("ip-forwarding = false").unwrap(), [0]);
        assert_eq!(one(r#"tftp-server-name = "tftp.isp""#).unwrap(), b"tftp.isp");
        // RFC 3397 §2's example, without compression.
        assert_eq!(
            one(r#"domain-search = ["eng.apple.com", "marketing.apple.com"]"#).unwrap(),
            b"\x03eng\x05apple\x03com\x00\x09marketing\x05apple\x03com\x00"
        );
        // RFC 3442 §2: 10.17/16 via 10.0.0.1 takes 2 octets of destination, 0/0 none.
        assert_eq!(
            one(r#"classless-static-routes = [{ prefix = "10.17.0.0/16", router = "10.0.0.1" },
                                               { prefix = "0.0.0.0/0", router = "10.0.0.2" }]"#)
            .unwrap(),
            [16, 10, 17, 10, 0, 0, 1, 0, 10, 0, 0, 2]
        );
        assert_eq!(
            one(r#"vendor-encapsulated-options = { 2 = { hex = "0a0b" }, 1 = "acs" }"#).unwrap(),
            [1, 3, b'a', b'c', b's', 2, 2, 0x0a, 0x0b]
        );
        assert_eq!(
            one(r#"vivso = { 3561 = { 1 = "ab" } }"#).unwrap(),
            [0, 0, 0x0d, 0xe9, 4, 1, 2, b'a', b'b']
        );
        assert_eq!(one(r#"224 = { hex = "01:02" }"#).unwrap(), [1, 2]);
        assert_eq!(one(r#"224 = { type = "u16", value = 7 }"#).unwrap(), [0, 7]);
        assert_eq!(one(r#"42 = "10.0.0.9""#).unwrap(), [10, 0, 0, 9]);
    }

    #[test]
    fn values_that_cannot_be_sent_are_refused_with_the_reason() {
        let e = one(r#"ntp-servers = ["10.0.0.300"]"#).unwrap_err();
        assert!(e.contains("not an IPv4 address"), "{e}");
        assert!(one("interface-mtu = 70000").unwrap_err().contains("0 to 65535"));
        assert!(one("224 = 5").unwrap_err().contains("no known type"));
        assert!(one("51 = 5").unwrap_err().contains("lease_time"));
        assert!(one("subnet-mask = 5").unwrap_err().contains("not an option name"));
        assert!(one("300 = 5").unwrap_err().contains("not an option code"));
        let e =
            one(r#"classless-static-routes = [{ prefix = "10.1.0.0/8", router = "10.0.0.1" }]"#)
                .unwrap_err();
        assert!(e.contains("host bits"), "{e}");
        assert!(one(r#"domain-search = ["a..b"]"#).unwrap_err().contains("empty label"));
    }
}

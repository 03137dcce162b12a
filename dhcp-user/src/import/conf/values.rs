//! Option values: dhcpd's option types, the options dhcpd knows by name, the ones a file
//! defines (`option NAME code N = TYPE;`, `option space`), and a value's tokens read as its
//! type and written as xdhcp's options table writes it (docs/config.md, "Options").
use std::{collections::HashMap, net::Ipv4Addr};

use toml::Value;

use super::super::lex::{Tok, Token};
use super::Why;
use crate::config::options::{self, Kind};

/// What `option NAME code N = TYPE;` may say, as far as a value can be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum IscType {
    Ip,
    Ips,
    Text,
    /// `string`: quoted text or colon hex, bytes either way.
    Bytes,
    Unsigned(u8),
    Signed(u8),
    Bool,
    Domains,
    /// `array of integer 8`: bytes written as numbers; options 121 and 249 read them as
    /// RFC 3442 routes.
    Octets,
    /// ISC's option 33: `a.b.c.d e.f.g.h, ...` destination and router pairs.
    IpPairs,
    /// `encapsulate SPACE`.
    Encapsulate(String),
    /// Records, arrays of other types: dhcpd reads them, this importer does not.
    Other(String),
}

/// dhcpd's own names for the options xdhcp's catalogue has (dhcp-options(5)), and the few
/// it treats as the server's: those are refused with xdhcp's reason by [`options::lookup`].
const BUILTIN: &[(&str, u8, IscType)] = &[
    ("subnet-mask", 1, IscType::Ip),
    ("time-offset", 2, IscType::Signed(32)),
    ("routers", 3, IscType::Ips),
    ("time-servers", 4, IscType::Ips),
    ("domain-name-servers", 6, IscType::Ips),
    ("log-servers", 7, IscType::Ips),
    ("host-name", 12, IscType::Text),
    ("domain-name", 15, IscType::Text),
    ("ip-forwarding", 19, IscType::Bool),
    ("default-ip-ttl", 23, IscType::Unsigned(8)),
    ("interface-mtu", 26, IscType::Unsigned(16)),
    ("broadcast-address", 28, IscType::Ip),
    ("static-routes", 33, IscType::IpPairs),
    ("nis-domain", 40, IscType::Text),
    ("nis-servers", 41, IscType::Ips),
    ("ntp-servers", 42, IscType::Ips),
    ("vendor-encapsulated-options", 43, IscType::Bytes),
    ("netbios-name-servers", 44, IscType::Ips),
    ("netbios-node-type", 46, IscType::Unsigned(8)),
    ("dhcp-lease-time", 51, IscType::Unsigned(32)),
    ("dhcp-server-identifier", 54, IscType::Ip),
    ("dhcp-renewal-time", 58, IscType::Unsigned(32)),
    ("dhcp-rebinding-time", 59, IscType::Unsigned(32)),
    ("vendor-class-identifier", 60, IscType::Bytes),
    ("dhcp-client-identifier", 61, IscType::Bytes),
    ("tftp-server-name", 66, IscType::Text),
    ("bootfile-name", 67, IscType::Text),
    ("smtp-server", 69, IscType::Ips),
    ("www-server", 72, IscType::Ips),
    ("pcode", 100, IscType::Text),
    ("tcode", 101, IscType::Text),
    // dhcpd's name from before RFC 8910 gave code 114 to the captive portal URI.
    ("default-url", 114, IscType::Text),
    ("domain-search", 119, IscType::Domains),
    ("vivso", 125, IscType::Bytes),
];

#[derive(Debug, Clone)]
pub(super) struct Def {
    pub code: u32,
    pub ty: IscType,
}

/// A space declared with `option space`; `None` when its codes or lengths are wider than a
/// byte, which xdhcp's sub-options are not.
#[derive(Debug, Clone, Default)]
pub(super) struct Space {
    pub narrow: bool,
    /// The enterprise number when `option vsio.NAME code N = encapsulate SPACE;` carries it
    /// in option 125.
    pub enterprise: Option<u32>,
}

/// The options a file can name: dhcpd's own and the ones it defines, by full name
/// (`tr069.acs-url` for a space's).
#[derive(Debug, Default)]
pub(super) struct Defs {
    pub names: HashMap<String, Def>,
    pub spaces: HashMap<String, Space>,
}

impl Defs {
    pub(super) fn new() -> Self {
        let names = BUILTIN
            .iter()
            .map(|(n, c, t)| ((*n).to_owned(), Def { code: u32::from(*c), ty: t.clone() }))
            .collect();
        Defs { names, spaces: HashMap::new() }
    }
}

/// The words of a type: `ip-address`, `array of integer 8`, `encapsulate tr069`, ...
pub(super) fn parse_type(words: &[Token]) -> IscType {
    let w: Vec<String> = words
        .iter()
        .map(|t| match &t.tok {
            Tok::Word(w) => w.to_ascii_lowercase(),
            Tok::Str(s) => String::from_utf8_lossy(s).into_owned(),
            Tok::Punct(c) => c.to_string(),
        })
        .collect();
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let int = |bits: &str| bits.parse::<u8>().ok().filter(|b| [8, 16, 32].contains(b));
    match w.as_slice() {
        ["ip-address"] => IscType::Ip,
        ["array", "of", "ip-address"] => IscType::Ips,
        ["text"] => IscType::Text,
        ["string"] => IscType::Bytes,
        ["boolean"] => IscType::Bool,
        ["domain-list"] | ["domain-list", "compressed"] => IscType::Domains,
        ["integer" | "unsigned", b] | ["unsigned", "integer", b] if int(b).is_some() => {
            IscType::Unsigned(int(b).unwrap_or(8))
        }
        ["signed", "integer", b] if int(b).is_some() => IscType::Signed(int(b).unwrap_or(8)),
        ["array", "of", "integer" | "unsigned", "8"]
        | ["array", "of", "unsigned", "integer", "8"] => IscType::Octets,
        ["encapsulate", space] => IscType::Encapsulate((*space).to_owned()),
        _ => IscType::Other(w.join(" ")),
    }
}

/// A value read from its tokens: what xdhcp's encoder takes for `kind`.
pub(super) struct Read {
    pub kind: Kind,
    pub value: Value,
    /// The bytes the value goes out as, for sub-options and `{ hex }`.
    pub bytes: Vec<u8>,
}

/// Reads `toks` (everything after the option's name) as `ty`. `Err` is why it cannot be
/// translated; a value dhcpd would reject too is a [`Why::Malformed`].
#[expect(clippy::too_many_lines, reason = "one arm per dhcpd type, each short")]
pub(super) fn read(ty: &IscType, toks: &[Token]) -> Result<Read, Why> {
    if toks.first().is_some_and(|t| t.is_punct('=')) {
        return Err(Why::No(
            "a value computed by an expression: xdhcp's options are fixed values".into(),
        ));
    }
    if toks.is_empty() {
        return Err(Why::Malformed("expected the option's value before `;`".into()));
    }
    let owned = split_commas(toks)?;
    let items: Vec<&[Token]> = owned.iter().map(Vec::as_slice).collect();
    let one = || -> Result<&Token, Why> {
        match items.as_slice() {
            [[t]] => Ok(t),
            [[_, t, ..], ..] | [_, [t, ..], ..] => {
                Err(Why::Malformed(format!("expected `;` after the value, found {}", t.show())))
            }
            _ => Err(Why::Malformed("expected one value".into())),
        }
    };
    Ok(match ty {
        IscType::Ip => {
            let a = ip(one()?)?;
            Read { kind: Kind::Addr, value: Value::String(a.to_string()), bytes: a.octets().into() }
        }
        IscType::Ips => {
            let mut addrs = Vec::new();
            for item in &items {
                let [t] = item else { return Err(extra(item)) };
                addrs.push(ip(t)?);
            }
            Read {
                kind: Kind::Addrs,
                bytes: addrs.iter().flat_map(Ipv4Addr::octets).collect(),
                value: Value::Array(addrs.iter().map(|a| Value::String(a.to_string())).collect()),
            }
        }
        IscType::Text => {
            let t = one()?;
            let Tok::Str(s) = &t.tok else {
                return Err(Why::Malformed(format!(
                    "expected a quoted string, found {}",
                    t.show()
                )));
            };
            text_or_hex(s.clone())
        }
        IscType::Bytes => {
            let b = bytes(one()?)?;
            text_or_hex(b)
        }
        IscType::Unsigned(bits) | IscType::Signed(bits) => {
            let t = one()?;
            let signed = matches!(ty, IscType::Signed(_));
            let v = t
                .word()
                .and_then(|w| w.parse::<i64>().ok())
                .filter(|v| fits(*v, *bits, signed))
                .ok_or_else(|| {
                    Why::Malformed(format!(
                        "{} is not a{} {bits}-bit integer",
                        t.show(),
                        if signed { " signed" } else { "n unsigned" }
                    ))
                })?;
            let be = v.to_be_bytes();
            let bytes = be[8 - usize::from(bits / 8)..].to_vec();
            let kind = match (bits, signed) {
                (8, false) => Kind::U8,
                (16, false) => Kind::U16,
                (32, false) => Kind::U32,
                (32, true) => Kind::I32,
                // No typed form for the short signed integers: their bytes are the value.
                _ => return Ok(hex_read(bytes)),
            };
            Read { kind, value: Value::Integer(v), bytes }
        }
        IscType::Bool => {
            let t = one()?;
            let v = match t.word().map(str::to_ascii_lowercase).as_deref() {
                Some("true" | "on") => true,
                Some("false" | "off") => false,
                _ => return Err(Why::Malformed(format!("{} is not true or false", t.show()))),
            };
            Read { kind: Kind::Flag, value: Value::Boolean(v), bytes: vec![u8::from(v)] }
        }
        IscType::Domains => {
            let mut names = Vec::new();
            for item in &items {
                let [Token { tok: Tok::Str(s), .. }] = item else {
                    return Err(Why::Malformed(
                        "expected quoted domain names, a comma between".into(),
                    ));
                };
                names.push(Value::String(String::from_utf8_lossy(s).into_owned()));
            }
            let value = Value::Array(names);
            let bytes = options::encode(Kind::Domains, &value).map_err(Why::Malformed)?;
            Read { kind: Kind::Domains, value, bytes }
        }
        IscType::Octets => {
            let mut out = Vec::new();
            for item in &items {
                let [t] = item else { return Err(extra(item)) };
                let b = t.word().and_then(|w| w.parse::<u8>().ok()).ok_or_else(|| {
                    Why::Malformed(format!("{} is not an integer from 0 to 255", t.show()))
                })?;
                out.push(b);
            }
            hex_read(out)
        }
        IscType::IpPairs => {
            let mut addrs = Vec::new();
            for item in &items {
                let [d, r] = item else {
                    return Err(Why::Malformed(
                        "expected destination and router pairs: 10.0.0.0 10.0.0.1, ...".into(),
                    ));
                };
                addrs.extend([ip(d)?, ip(r)?]);
            }
            Read {
                kind: Kind::Addrs,
                bytes: addrs.iter().flat_map(Ipv4Addr::octets).collect(),
                value: Value::Array(addrs.iter().map(|a| Value::String(a.to_string())).collect()),
            }
        }
        IscType::Encapsulate(s) => {
            return Err(Why::No(format!(
                "an option encapsulating space {s} is set through the options of that space"
            )));
        }
        IscType::Other(t) => {
            return Err(Why::No(format!("values of type `{t}` are not translated")));
        }
    })
}

/// RFC 3442's encoding, as `array of integer 8` spells it, read back into routes.
pub(super) fn routes(bytes: &[u8]) -> Result<Value, Why> {
    let bad = |m: &str| Why::Malformed(format!("not RFC 3442 classless routes: {m}"));
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some((&len, tail)) = rest.split_first() {
        if len > 32 {
            return Err(bad(&format!("a prefix length of {len}")));
        }
        let n = usize::from(len.div_ceil(8));
        if tail.len() < n + 4 {
            return Err(bad("the last route is cut short"));
        }
        let mut dest = [0u8; 4];
        dest[..n].copy_from_slice(&tail[..n]);
        let router = Ipv4Addr::new(tail[n], tail[n + 1], tail[n + 2], tail[n + 3]);
        let mut route = toml::Table::new();
        route.insert("prefix".into(), Value::String(format!("{}/{len}", Ipv4Addr::from(dest))));
        route.insert("router".into(), Value::String(router.to_string()));
        out.push(Value::Table(route));
        rest = &tail[n + 4..];
    }
    if out.is_empty() {
        return Err(bad("no route"));
    }
    Ok(Value::Array(out))
}

/// The value for xdhcp's key of `code`: plain where the catalogue's kind is the value's,
/// typed (`{ type, value }`) or `{ hex }` otherwise.
pub(super) fn for_code(code: u8, r: Read) -> Value {
    let catalogue = options::lookup(&code.to_string()).ok().and_then(|(_, k)| k);
    let same =
        catalogue == Some(r.kind) || (catalogue == Some(Kind::Addrs) && r.kind == Kind::Addr);
    if same {
        return r.value;
    }
    let ty = match r.kind {
        Kind::Addr => "address",
        Kind::Addrs => "addresses",
        Kind::U8 => "u8",
        Kind::U16 => "u16",
        Kind::U32 => "u32",
        Kind::I32 => "i32",
        Kind::Flag => "flag",
        Kind::Domains => "domains",
        Kind::Routes => "routes",
        Kind::Text if catalogue.is_none() => "string",
        _ => return hex(&r.bytes),
    };
    let mut t = toml::Table::new();
    t.insert("type".into(), Value::String(ty.into()));
    t.insert("value".into(), r.value);
    Value::Table(t)
}

/// A sub-option's value (43, 125): text, addresses, or hex.
pub(super) fn sub_value(r: Read) -> Value {
    match r.kind {
        Kind::Text | Kind::Addrs => r.value,
        Kind::Addr => Value::Array(vec![r.value]),
        _ => hex(&r.bytes),
    }
}

pub(super) fn hex(bytes: &[u8]) -> Value {
    let s: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut t = toml::Table::new();
    t.insert("hex".into(), Value::String(s.join(":")));
    Value::Table(t)
}

fn hex_read(bytes: Vec<u8>) -> Read {
    Read { kind: Kind::Vendor, value: hex(&bytes), bytes }
}

fn text_or_hex(b: Vec<u8>) -> Read {
    match String::from_utf8(b) {
        Ok(s) if !s.is_empty() && !s.contains('\0') => {
            Read { kind: Kind::Text, bytes: s.clone().into_bytes(), value: Value::String(s) }
        }
        Ok(s) => hex_read(s.into_bytes()),
        Err(e) => hex_read(e.into_bytes()),
    }
}

fn fits(v: i64, bits: u8, signed: bool) -> bool {
    let bits = u32::from(bits);
    if signed {
        let lim = 1i64 << (bits - 1);
        (-lim..lim).contains(&v)
    } else {
        (0..1i64 << bits).contains(&v)
    }
}

fn extra(item: &[Token]) -> Why {
    let t = item.get(1).unwrap_or(&item[0]);
    Why::Malformed(format!("expected `,` or `;`, found {}", t.show()))
}

fn split_commas(toks: &[Token]) -> Result<Vec<Vec<Token>>, Why> {
    let mut out = vec![Vec::new()];
    for t in toks {
        if t.is_punct(',') {
            out.push(Vec::new());
        } else {
            out.last_mut().expect("never empty").push(t.clone());
        }
    }
    if out.iter().any(Vec::is_empty) {
        return Err(Why::Malformed("a value is missing around a `,`".into()));
    }
    Ok(out)
}

/// An IPv4 address; a host name is valid dhcpd (resolved when it starts) but not a value
/// xdhcp can hold.
pub(super) fn ip(t: &Token) -> Result<Ipv4Addr, Why> {
    let Some(w) = t.word() else {
        return Err(Why::Malformed(format!("expected an IPv4 address, found {}", t.show())));
    };
    if let Ok(a) = w.parse() {
        return Ok(a);
    }
    if w.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(Why::Malformed(format!("{w} is not an IPv4 address")));
    }
    Err(Why::No(format!(
        "{w} is a host name, which dhcpd looks up when it starts; xdhcp needs the address"
    )))
}

/// Bytes written as a quoted string or as colon hex (`1:2:3`, `01:aa:bb`).
pub(super) fn bytes(t: &Token) -> Result<Vec<u8>, Why> {
    match &t.tok {
        Tok::Str(s) => Ok(s.clone()),
        Tok::Word(w) => w
            .split(':')
            .map(|p| (1..=2).contains(&p.len()).then(|| u8::from_str_radix(p, 16).ok()).flatten())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| Why::Malformed(format!("{w} is not colon-separated hex bytes"))),
        Tok::Punct(_) => {
            Err(Why::Malformed(format!("expected a string or hex bytes, found {}", t.show())))
        }
    }
}

//! dhcpd.leases as ISC dhcpd 4.4 writes it, read into plain records: one per `lease` block, the
//! last one for an address winning (dhcpd appends, and reads its file the same way). The file
//! is read into statements by the importers' shared tree; everything but `lease` blocks
//! (`failover peer … state`, `host` blocks, `server-duid`, IPv6 entries) is skipped, and so is
//! any statement inside a lease that says nothing the store keeps.
use std::{collections::BTreeMap, net::Ipv4Addr};

use crate::import::{
    Loc, SyntaxError,
    lex::{Tok, Token},
    tree::{self, Stmt},
};

/// What one `lease` block says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhcpdLease {
    /// Where the block starts.
    pub line: u32,
    /// `binding state` and `rewind binding state`, as written.
    pub binding: Option<String>,
    pub rewind: Option<String>,
    /// Unix seconds; `ends never` is `Some(None)`.
    pub starts: Option<u64>,
    pub ends: Option<Option<u64>>,
    pub tstp: Option<u64>,
    pub tsfp: Option<u64>,
    pub atsfp: Option<u64>,
    pub cltt: Option<u64>,
    pub hardware: Option<Vec<u8>>,
    pub uid: Option<Vec<u8>>,
    pub hostname: Option<String>,
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
}

/// Every lease of `text` (read as the file `file`), by address; a later block for an address
/// replaces the earlier.
pub fn parse(text: &str, file: &str) -> Result<BTreeMap<Ipv4Addr, DhcpdLease>, SyntaxError> {
    let mut out = BTreeMap::new();
    for s in tree::parse_text(text, file)? {
        if !s.starts(&["lease"]) {
            continue;
        }
        let (address, l) = lease(&s)?;
        out.insert(address, l);
    }
    Ok(out)
}

fn lease(s: &Stmt) -> Result<(Ipv4Addr, DhcpdLease), SyntaxError> {
    let at = s.loc();
    let address = match &s.words[1..] {
        [a] => a.word().and_then(|w| w.parse::<Ipv4Addr>().ok()),
        _ => None,
    }
    .ok_or_else(|| {
        SyntaxError::at(at, "expected an IPv4 address after `lease` (an IPv6 lease?)")
    })?;
    let block =
        s.block.as_ref().ok_or_else(|| SyntaxError::at(at, "expected `{` after the address"))?;
    let mut l = DhcpdLease { line: at.line, ..DhcpdLease::default() };
    for st in block {
        let w = &st.words;
        let at = st.loc();
        let key = w[0].word().unwrap_or("").to_ascii_lowercase();
        match key.as_str() {
            "starts" => {
                l.starts = Some(
                    time(at, &w[1..])?
                        .ok_or_else(|| SyntaxError::at(at, "a lease cannot start `never`"))?,
                );
            }
            "ends" => l.ends = Some(time(at, &w[1..])?),
            "tstp" => l.tstp = time(at, &w[1..])?,
            "tsfp" => l.tsfp = time(at, &w[1..])?,
            "atsfp" => l.atsfp = time(at, &w[1..])?,
            "cltt" => l.cltt = time(at, &w[1..])?,
            "binding" => l.binding = Some(binding_state(at, &w[1..])?),
            "rewind" if st.starts(&["rewind", "binding"]) => {
                l.rewind = Some(binding_state(at, &w[2..])?);
            }
            "hardware" => l.hardware = Some(hardware(at, &w[1..])?),
            "uid" => l.uid = Some(bytes(at, &w[1..], "a client identifier")?),
            "client-hostname" => match &w[1..] {
                [Token { tok: Tok::Str(s), .. }] => {
                    l.hostname = Some(String::from_utf8_lossy(s).into_owned());
                }
                _ => return Err(SyntaxError::at(at, "expected a quoted host name")),
            },
            "option" if st.starts(&["option", "agent.circuit-id"]) => {
                l.circuit_id = Some(bytes(at, &w[2..], "a circuit-id")?);
            }
            "option" if st.starts(&["option", "agent.remote-id"]) => {
                l.remote_id = Some(bytes(at, &w[2..], "a remote-id")?);
            }
            _ => {}
        }
    }
    Ok((address, l))
}

/// `state free` (what follows `binding`).
fn binding_state(at: &Loc, w: &[Token]) -> Result<String, SyntaxError> {
    match w {
        [s, v] if s.is("state") => v.word().map(str::to_ascii_lowercase),
        _ => None,
    }
    .ok_or_else(|| SyntaxError::at(at, "expected `binding state` and a state"))
}

fn hardware(at: &Loc, w: &[Token]) -> Result<Vec<u8>, SyntaxError> {
    match w {
        [kind, _] if !kind.is("ethernet") => {
            Err(SyntaxError::at(at, format!("hardware {}: only ethernet is served", kind.show())))
        }
        [_, mac] => mac
            .word()
            .and_then(hex_bytes)
            .ok_or_else(|| SyntaxError::at(at, format!("{} is not a MAC address", mac.show()))),
        _ => Err(SyntaxError::at(at, "expected `hardware ethernet` and a MAC address")),
    }
}

/// A quoted string (octal escapes as dhcpd writes them) or colon-separated hex.
fn bytes(at: &Loc, w: &[Token], what: &str) -> Result<Vec<u8>, SyntaxError> {
    match w {
        [Token { tok: Tok::Str(s), .. }] => Some(s.clone()),
        [t] => t.word().and_then(hex_bytes),
        _ => None,
    }
    .ok_or_else(|| SyntaxError::at(at, format!("expected {what}: a quoted string or hex")))
}

/// `1:2:a0:ff`: bytes as hex, one or two digits each.
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    s.split(':')
        .map(|b| (!b.is_empty() && b.len() <= 2).then(|| u8::from_str_radix(b, 16).ok()).flatten())
        .collect()
}

/// `W YYYY/MM/DD HH:MM:SS` (UTC, the weekday ignored), `epoch N` or `never`.
fn time(at: &Loc, w: &[Token]) -> Result<Option<u64>, SyntaxError> {
    let bad =
        || SyntaxError::at(at, "expected a time: `W YYYY/MM/DD HH:MM:SS`, `epoch N` or `never`");
    match w {
        [n] if n.is("never") => Ok(None),
        [e, n] if e.is("epoch") => Ok(Some(n.word().and_then(|n| n.parse().ok()).ok_or_else(bad)?)),
        // The weekday, the date (words and `/`), the time of day.
        [_, date @ .., clock] => {
            let date: String = date
                .iter()
                .map(|t| match &t.tok {
                    Tok::Word(w) => w.clone(),
                    Tok::Punct(c) => c.to_string(),
                    Tok::Str(_) => "\"".into(),
                })
                .collect();
            let clock = clock.word().ok_or_else(bad)?;
            civil(&date, clock).map(Some).ok_or_else(|| {
                SyntaxError::at(at, format!("{date} {clock} is not a date and time"))
            })
        }
        _ => Err(bad()),
    }
}

/// Unix seconds of a UTC date and time of day.
fn civil(date: &str, clock: &str) -> Option<u64> {
    let d: Vec<u32> = date.split('/').map(str::parse).collect::<Result<_, _>>().ok()?;
    let c: Vec<u32> = clock.split(':').map(str::parse).collect::<Result<_, _>>().ok()?;
    let (&[y, m, day], &[hh, mm, ss]) = (&d[..], &c[..]) else { return None };
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 60
    {
        return None;
    }
    // Days from 1970-01-01 (the proleptic Gregorian calendar, March-based years).
    let (y, m) = (i64::from(if m <= 2 { y - 1 } else { y }), i64::from(m));
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hh * 3600 + mm * 60 + ss);
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_unix_seconds() {
        assert_eq!(civil("1970/01/01", "00:00:00"), Some(0));
        assert_eq!(civil("2000/03/01", "00:00:00"), Some(951_868_800));
        assert_eq!(civil("2026/12/02", "07:30:15"), Some(1_796_196_615));
        assert_eq!(civil("2024/02/29", "12:00:00"), Some(1_709_208_000));
        assert_eq!(civil("2026/13/01", "00:00:00"), None);
        assert_eq!(civil("2026/12", "00:00:00"), None);
    }

    #[test]
    fn hex_is_one_or_two_digits_a_byte() {
        assert_eq!(hex_bytes("1:0:5e:ff"), Some(vec![1, 0, 0x5e, 0xff]));
        assert_eq!(hex_bytes("1::2"), None);
        assert_eq!(hex_bytes("123"), None);
        assert_eq!(hex_bytes("zz"), None);
    }
}

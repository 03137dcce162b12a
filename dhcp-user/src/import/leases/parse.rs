//! dhcpd.leases as ISC dhcpd 4.4 writes it, read into plain records: one per `lease` block, the
//! last one for an address winning (dhcpd appends, and reads its file the same way). Everything
//! else in the file (`failover peer … state`, `host` blocks, `server-duid`, IPv6 entries) is
//! skipped whole; so is any statement inside a lease that says nothing the store keeps.
use std::{collections::BTreeMap, net::Ipv4Addr};

use super::lex::{Lexer, Token};

/// A syntax error, with the line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

pub(super) fn error<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { line, message: message.into() })
}

/// What one `lease` block says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhcpdLease {
    /// Where the block starts.
    pub line: usize,
    pub address: Option<Ipv4Addr>,
    /// `binding state`, `next binding state`, `rewind binding state`, as written.
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

/// Every lease of `text`, by address; the later block for an address replaces the earlier.
pub fn parse(text: &str) -> Result<BTreeMap<Ipv4Addr, DhcpdLease>, ParseError> {
    let mut lx = Lexer::new(text);
    let mut out = BTreeMap::new();
    while let Some((line, t)) = lx.next()? {
        match t {
            Token::Word(w) if w == "lease" => {
                let l = lease(&mut lx, line)?;
                if let Some(a) = l.address {
                    out.insert(a, l);
                }
            }
            // A statement or block of no interest here, ended by `;` or by its block.
            _ => skip_statement(&mut lx, line)?,
        }
    }
    Ok(out)
}

fn lease(lx: &mut Lexer<'_>, line: usize) -> Result<DhcpdLease, ParseError> {
    let (at, addr) = lx.word("the leased address")?;
    let address = addr
        .parse::<Ipv4Addr>()
        .or_else(|_| error(at, format!("{addr:?} is not an IPv4 address (an IPv6 lease?)")))?;
    lx.expect(&Token::LBrace, "{ after the address")?;
    let mut l = DhcpdLease { line, address: Some(address), ..DhcpdLease::default() };
    loop {
        let Some((at, t)) = lx.next()? else {
            return error(line, "the lease block is not closed (a truncated file?)");
        };
        let Token::Word(w) = t else {
            if t == Token::RBrace {
                return Ok(l);
            }
            return error(at, format!("expected a statement, found {t}"));
        };
        match w.as_str() {
            "starts" => l.starts = Some(time(lx)?.ok_or_else(never(at))?),
            "ends" => l.ends = Some(time(lx)?),
            "tstp" => l.tstp = time(lx)?,
            "tsfp" => l.tsfp = time(lx)?,
            "atsfp" => l.atsfp = time(lx)?,
            "cltt" => l.cltt = time(lx)?,
            "binding" => l.binding = Some(binding_state(lx)?),
            "next" => {
                lx.expect_word("binding")?;
                binding_state(lx)?;
            }
            "rewind" => {
                lx.expect_word("binding")?;
                l.rewind = Some(binding_state(lx)?);
            }
            "hardware" => {
                let (at, kind) = lx.word("a hardware type")?;
                if kind != "ethernet" {
                    return error(at, format!("hardware {kind}: only ethernet is served"));
                }
                let (at, mac) = lx.word("a MAC address")?;
                l.hardware = Some(hex_bytes(&mac).ok_or_else(|| bad(at, "MAC address", &mac))?);
                lx.semicolon()?;
            }
            "uid" => l.uid = Some(bytes(lx, "a client identifier")?),
            "client-hostname" => {
                let (at, t) = lx.next_or("a host name")?;
                let Token::Str(s) = t else { return error(at, "client-hostname takes a string") };
                l.hostname = Some(String::from_utf8_lossy(&s).into_owned());
                lx.semicolon()?;
            }
            "option" => {
                let (_, name) = lx.word("an option name")?;
                match name.as_str() {
                    "agent.circuit-id" => l.circuit_id = Some(bytes(lx, "a circuit-id")?),
                    "agent.remote-id" => l.remote_id = Some(bytes(lx, "a remote-id")?),
                    _ => skip_statement(lx, at)?,
                }
            }
            _ => skip_statement(lx, at)?,
        }
    }
}

fn never(at: usize) -> impl FnOnce() -> ParseError {
    move || ParseError { line: at, message: "a lease cannot start `never`".into() }
}

fn bad(at: usize, what: &str, got: &str) -> ParseError {
    ParseError { line: at, message: format!("{got:?} is not a {what}") }
}

/// `free`, `active`, … after `binding state`, and its `;`.
fn binding_state(lx: &mut Lexer<'_>) -> Result<String, ParseError> {
    lx.expect_word("state")?;
    let (_, s) = lx.word("a binding state")?;
    lx.semicolon()?;
    Ok(s)
}

/// A quoted string (octal escapes as dhcpd writes them) or colon-separated hex, and its `;`.
fn bytes(lx: &mut Lexer<'_>, what: &str) -> Result<Vec<u8>, ParseError> {
    let (at, t) = lx.next_or(what)?;
    let v = match t {
        Token::Str(s) => s,
        Token::Word(w) => hex_bytes(&w).ok_or_else(|| bad(at, what, &w))?,
        t => return error(at, format!("expected {what}, found {t}")),
    };
    lx.semicolon()?;
    Ok(v)
}

/// `1:2:a0:ff`: bytes as hex, one or two digits each.
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    s.split(':')
        .map(|b| (!b.is_empty() && b.len() <= 2).then(|| u8::from_str_radix(b, 16).ok()).flatten())
        .collect()
}

/// `W YYYY/MM/DD HH:MM:SS;` (UTC, the weekday ignored), `epoch N;` or `never;`.
fn time(lx: &mut Lexer<'_>) -> Result<Option<u64>, ParseError> {
    let (at, first) = lx.word("a time")?;
    let t = match first.as_str() {
        "never" => None,
        "epoch" => {
            let (at, n) = lx.word("seconds since the epoch")?;
            Some(n.parse().map_err(|_| bad(at, "number of seconds", &n))?)
        }
        _ => {
            let (_, date) = lx.word("a date (YYYY/MM/DD)")?;
            let (_, clock) = lx.word("a time of day (HH:MM:SS)")?;
            Some(civil(&date, &clock).ok_or_else(|| bad(at, "date and time", &date))?)
        }
    };
    lx.semicolon()?;
    Ok(t)
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

/// Skips what follows a statement's first word: up to its `;`, or its whole `{ … }` block.
fn skip_statement(lx: &mut Lexer<'_>, line: usize) -> Result<(), ParseError> {
    let mut depth = 0usize;
    loop {
        let Some((_, t)) = lx.next()? else {
            return error(line, "this statement is not ended (a truncated file?)");
        };
        match t {
            Token::Semi if depth == 0 => return Ok(()),
            Token::LBrace => depth += 1,
            Token::RBrace if depth == 0 => return error(line, "a `}` with no block open"),
            Token::RBrace => {
                depth -= 1;
                if depth == 0 {
                    // A block may or may not be followed by `;`: dhcpd writes none.
                    if lx.peek_is(&Token::Semi) {
                        lx.next()?;
                    }
                    return Ok(());
                }
            }
            _ => {}
        }
    }
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

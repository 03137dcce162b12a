//! `class` match expressions in the forms xdhcp's `[[class]]` conditions can say: a field
//! equal to a value, or beginning with it (`substring(FIELD, 0, N)` with an N-byte value),
//! several joined by `and`. The fields are options 60 and 77, option 82's circuit-id and
//! remote-id, and the hardware address (as a prefix: an OUI).
use super::super::lex::{Tok, Token};
use super::Why;
use super::values::bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    VendorClass,
    UserClass,
    CircuitId,
    RemoteId,
    /// `hardware`: the type byte, then the address.
    Hardware,
}

impl Field {
    /// xdhcp's key for this field's condition.
    pub(super) fn key(self, prefix: bool) -> &'static str {
        match (self, prefix) {
            (Field::VendorClass, false) => "vendor_class",
            (Field::VendorClass, true) => "vendor_class_prefix",
            (Field::UserClass, false) => "user_class",
            (Field::UserClass, true) => "user_class_prefix",
            (Field::CircuitId, false) => "circuit_id",
            (Field::CircuitId, true) => "circuit_id_prefix",
            (Field::RemoteId, false) => "remote_id",
            (Field::RemoteId, true) => "remote_id_prefix",
            (Field::Hardware, _) => "mac_prefix",
        }
    }
}

/// What is compared: a field, whole or its first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Subject {
    pub field: Field,
    /// `substring(FIELD, 0, len)` (or `(hardware, 1, len)`).
    pub len: Option<usize>,
}

/// One condition, ready for xdhcp: its key and the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cond {
    pub key: &'static str,
    pub value: Vec<u8>,
}

/// `match if EXPR;` read into conditions that must all hold.
pub(super) fn match_if(toks: &[Token]) -> Result<Vec<Cond>, Why> {
    let mut p = Cursor { toks, at: 0 };
    let conds = p.conjunction()?;
    if let Some(t) = p.peek() {
        return Err(unsupported(t));
    }
    let mut keys: Vec<&str> = conds.iter().map(|c| c.key).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(Why::No(
            "compares one field twice; an xdhcp class has one condition per field".into(),
        ));
    }
    Ok(conds)
}

/// `match EXPR;` of a class whose subclasses give the values: the field compared.
pub(super) fn match_subject(toks: &[Token]) -> Result<Subject, Why> {
    let mut p = Cursor { toks, at: 0 };
    let s = p.subject()?;
    if let Some(t) = p.peek() {
        return Err(unsupported(t));
    }
    Ok(s)
}

/// The condition of `subclass "parent" VALUE;` for a parent matching `s`.
pub(super) fn subclass(s: Subject, value: &Token) -> Result<Cond, Why> {
    cond(s, bytes(value)?)
}

fn cond(s: Subject, value: Vec<u8>) -> Result<Cond, Why> {
    if value.is_empty() {
        return Err(Why::No("compares with an empty value".into()));
    }
    match (s.field, s.len) {
        (Field::Hardware, None) => {
            // `hardware = 1:aa:bb:cc:dd:ee:ff`: Ethernet's type byte, then the whole address.
            match value.split_first() {
                Some((1, mac)) if mac.len() == 6 => {
                    Ok(Cond { key: "mac_prefix", value: mac.into() })
                }
                _ => Err(Why::No(
                    "compares the hardware address with something other than an Ethernet address \
                     (1:aa:bb:cc:dd:ee:ff)"
                        .into(),
                )),
            }
        }
        (Field::Hardware, Some(n)) if n == value.len() && n <= 6 => {
            Ok(Cond { key: "mac_prefix", value })
        }
        (f, None) => Ok(Cond { key: f.key(false), value }),
        (f, Some(n)) if n == value.len() => Ok(Cond { key: f.key(true), value }),
        (_, Some(n)) => Err(Why::No(format!(
            "compares the first {n} bytes with a {}-byte value; xdhcp compares a prefix as long \
             as its value",
            value.len()
        ))),
    }
}

fn unsupported(t: &Token) -> Why {
    Why::No(format!(
        "{} in a match expression: xdhcp's classes compare options 60, 77, 82's circuit-id and \
         remote-id, or the hardware address with a value (whole or as a prefix), joined by `and`",
        t.show()
    ))
}

struct Cursor<'a> {
    toks: &'a [Token],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Result<&'a Token, Why> {
        let t = self
            .toks
            .get(self.at)
            .ok_or_else(|| Why::Malformed("the match expression ends too early".into()))?;
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, c: char) -> Result<(), Why> {
        let t = self.next()?;
        if t.is_punct(c) {
            Ok(())
        } else {
            Err(Why::Malformed(format!("expected `{c}`, found {}", t.show())))
        }
    }

    fn conjunction(&mut self) -> Result<Vec<Cond>, Why> {
        let mut out = self.term()?;
        while let Some(t) = self.peek() {
            if t.is("and") {
                self.at += 1;
                out.extend(self.term()?);
            } else if t.is("or") {
                return Err(Why::No(
                    "`or` in a match expression: an xdhcp class's conditions must all hold (write \
                     one class per alternative)"
                        .into(),
                ));
            } else {
                break;
            }
        }
        Ok(out)
    }

    fn term(&mut self) -> Result<Vec<Cond>, Why> {
        if self.peek().is_some_and(|t| t.is_punct('(')) {
            self.at += 1;
            let inner = self.conjunction()?;
            self.expect(')')?;
            return Ok(inner);
        }
        let s = self.subject()?;
        let t = self.next()?;
        if !t.is_punct('=') {
            return Err(unsupported(t));
        }
        let v = self.next()?;
        if !matches!(v.tok, Tok::Str(_) | Tok::Word(_)) {
            return Err(Why::Malformed(format!("expected a value after `=`, found {}", v.show())));
        }
        Ok(vec![cond(s, bytes(v)?)?])
    }

    fn subject(&mut self) -> Result<Subject, Why> {
        let t = self.next()?;
        if t.is("substring") {
            self.expect('(')?;
            let inner = self.subject()?;
            if inner.len.is_some() {
                return Err(unsupported(t));
            }
            self.expect(',')?;
            let off = self.number()?;
            self.expect(',')?;
            let len = self.number()?;
            self.expect(')')?;
            let want = usize::from(inner.field == Field::Hardware);
            if off != want {
                return Err(Why::No(format!(
                    "compares bytes from offset {off}; xdhcp compares a value's beginning{}",
                    if inner.field == Field::Hardware { " (offset 1 of hardware)" } else { "" }
                )));
            }
            return Ok(Subject { field: inner.field, len: Some(len) });
        }
        if t.is("hardware") {
            return Ok(Subject { field: Field::Hardware, len: None });
        }
        if t.is("option") {
            let name = self.next()?;
            let field = match name.word().map(str::to_ascii_lowercase).as_deref() {
                Some("vendor-class-identifier") => Field::VendorClass,
                Some("user-class") => Field::UserClass,
                Some("agent.circuit-id") => Field::CircuitId,
                Some("agent.remote-id") => Field::RemoteId,
                _ => return Err(unsupported(name)),
            };
            return Ok(Subject { field, len: None });
        }
        Err(unsupported(t))
    }

    fn number(&mut self) -> Result<usize, Why> {
        let t = self.next()?;
        t.word()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| Why::Malformed(format!("expected a number, found {}", t.show())))
    }
}

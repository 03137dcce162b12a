//! The tokens of dhcpd.leases: words (names, addresses, hex, dates), quoted strings with
//! dhcpd's escapes, `;`, `{`, `}` and `=`; `#` comments to the end of the line.
use std::fmt;

use super::parse::{ParseError, error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word(String),
    /// A quoted string's bytes, escapes decoded (`\"`, `\\`, `\n`, `\t`, octal `\ooo`, `\xHH`).
    Str(Vec<u8>),
    Semi,
    LBrace,
    RBrace,
    Eq,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w:?}"),
            Token::Str(_) => f.write_str("a string"),
            Token::Semi => f.write_str("`;`"),
            Token::LBrace => f.write_str("`{`"),
            Token::RBrace => f.write_str("`}`"),
            Token::Eq => f.write_str("`=`"),
        }
    }
}

pub struct Lexer<'a> {
    s: &'a [u8],
    at: usize,
    line: usize,
    peeked: Option<(usize, Token)>,
}

impl<'a> Lexer<'a> {
    #[must_use]
    pub fn new(text: &'a str) -> Self {
        Self { s: text.as_bytes(), at: 0, line: 1, peeked: None }
    }

    /// The next token and its line; `None` at the end.
    pub fn next(&mut self) -> Result<Option<(usize, Token)>, ParseError> {
        if let Some(p) = self.peeked.take() {
            return Ok(Some(p));
        }
        self.scan()
    }

    pub fn peek_is(&mut self, t: &Token) -> bool {
        if self.peeked.is_none() {
            self.peeked = self.scan().ok().flatten();
        }
        self.peeked.as_ref().is_some_and(|(_, p)| p == t)
    }

    /// The next token, which must be there.
    pub fn next_or(&mut self, what: &str) -> Result<(usize, Token), ParseError> {
        match self.next()? {
            Some(t) => Ok(t),
            None => error(self.line, format!("the file ends where {what} was expected")),
        }
    }

    pub fn word(&mut self, what: &str) -> Result<(usize, String), ParseError> {
        match self.next_or(what)? {
            (at, Token::Word(w)) => Ok((at, w)),
            (at, t) => error(at, format!("expected {what}, found {t}")),
        }
    }

    pub fn expect(&mut self, want: &Token, what: &str) -> Result<(), ParseError> {
        match self.next_or(what)? {
            (_, t) if t == *want => Ok(()),
            (at, t) => error(at, format!("expected {what}, found {t}")),
        }
    }

    pub fn expect_word(&mut self, want: &str) -> Result<(), ParseError> {
        match self.word(want)? {
            (_, w) if w == want => Ok(()),
            (at, w) => error(at, format!("expected {want:?}, found {w:?}")),
        }
    }

    pub fn semicolon(&mut self) -> Result<(), ParseError> {
        self.expect(&Token::Semi, "`;`")
    }

    fn scan(&mut self) -> Result<Option<(usize, Token)>, ParseError> {
        loop {
            let Some(&c) = self.s.get(self.at) else { return Ok(None) };
            match c {
                b'\n' => {
                    self.line += 1;
                    self.at += 1;
                }
                b' ' | b'\t' | b'\r' => self.at += 1,
                b'#' => {
                    while self.s.get(self.at).is_some_and(|c| *c != b'\n') {
                        self.at += 1;
                    }
                }
                _ => break,
            }
        }
        let line = self.line;
        let c = self.s[self.at];
        let one = |t| Some((line, t));
        let t = match c {
            b';' => one(Token::Semi),
            b'{' => one(Token::LBrace),
            b'}' => one(Token::RBrace),
            b'=' => one(Token::Eq),
            b'"' => return self.string(line).map(|s| Some((line, Token::Str(s)))),
            _ => {
                let start = self.at;
                while self.s.get(self.at).is_some_and(|c| {
                    !c.is_ascii_whitespace()
                        && !matches!(c, b';' | b'{' | b'}' | b'=' | b'"' | b'#')
                }) {
                    self.at += 1;
                }
                let w = String::from_utf8_lossy(&self.s[start..self.at]).into_owned();
                return Ok(Some((line, Token::Word(w))));
            }
        };
        self.at += 1;
        Ok(t)
    }

    fn string(&mut self, line: usize) -> Result<Vec<u8>, ParseError> {
        let mut out = Vec::new();
        self.at += 1;
        loop {
            let Some(&c) = self.s.get(self.at) else {
                return error(line, "a quoted string is not closed");
            };
            self.at += 1;
            match c {
                b'"' => return Ok(out),
                b'\n' => {
                    self.line += 1;
                    out.push(c);
                }
                b'\\' => out.push(self.escape(line)?),
                _ => out.push(c),
            }
        }
    }

    fn escape(&mut self, line: usize) -> Result<u8, ParseError> {
        let Some(&c) = self.s.get(self.at) else {
            return error(line, "a quoted string ends in a lone `\\`");
        };
        self.at += 1;
        let digits = |lx: &mut Self, radix: u32, max: usize| {
            let start = lx.at - usize::from(radix == 8);
            let mut end = start;
            while end - start < max && lx.s.get(end).is_some_and(|d| (*d as char).is_digit(radix)) {
                end += 1;
            }
            lx.at = end;
            let text = std::str::from_utf8(&lx.s[start..end]).unwrap_or("");
            u32::from_str_radix(text, radix).ok().and_then(|v| u8::try_from(v).ok())
        };
        let v = match c {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'0'..=b'7' => digits(self, 8, 3),
            b'x' => digits(self, 16, 2),
            c => Some(c),
        };
        v.map_or_else(|| error(line, "a bad escape in a quoted string"), Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<Token> {
        let mut lx = Lexer::new(text);
        std::iter::from_fn(|| lx.next().unwrap().map(|(_, t)| t)).collect()
    }

    #[test]
    fn strings_decode_dhcpds_escapes() {
        assert_eq!(
            all(r#"uid "\001\000\021\"3DU"; # the client id"#),
            [
                Token::Word("uid".into()),
                Token::Str(vec![1, 0, 0o21, b'"', b'3', b'D', b'U']),
                Token::Semi
            ]
        );
        assert_eq!(all(r#""\x41\\b""#), [Token::Str(b"A\\b".to_vec())]);
    }

    #[test]
    fn lines_are_counted_and_a_string_left_open_is_an_error() {
        let mut lx = Lexer::new("a;\n# note\n  b {\n}");
        let lines: Vec<usize> = std::iter::from_fn(|| lx.next().unwrap().map(|(l, _)| l)).collect();
        assert_eq!(lines, [1, 1, 3, 3, 4]);
        let e = Lexer::new("x\n\"open").next().and_then(|_| Lexer::new("\n\"open").next());
        assert_eq!(e.unwrap_err().line, 2);
    }
}

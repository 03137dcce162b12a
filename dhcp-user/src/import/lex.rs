//! dhcpd's lexical syntax: `#` comments to the end of the line, quoted strings with escapes,
//! punctuation, and words.
//!
//! A word is a run of letters, digits and `_ - . :`, which covers keywords, numbers, IPv4
//! addresses, host names, option names with their space (`agent.circuit-id`) and colon hex
//! (`1:2:3`, `00:1a:2b:3c:4d:5e`) alike: dhcpd tells them apart by where they stand, and so
//! does the parser here.
use std::sync::Arc;

use super::{Loc, SyntaxError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Word(String),
    /// A quoted string's bytes, escapes resolved (`\101` may make them other than UTF-8).
    Str(Vec<u8>),
    Punct(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub loc: Loc,
}

impl Token {
    pub(crate) fn word(&self) -> Option<&str> {
        match &self.tok {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }

    pub(crate) fn is(&self, w: &str) -> bool {
        self.word().is_some_and(|x| x.eq_ignore_ascii_case(w))
    }

    pub(crate) fn is_punct(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }

    /// How the token reads in a message.
    pub(crate) fn show(&self) -> String {
        match &self.tok {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(s) => format!("{:?}", String::from_utf8_lossy(s)),
            Tok::Punct(c) => format!("`{c}`"),
        }
    }
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// The tokens of `text`, each with its line in `file`. The only lexical error is a string
/// left open.
pub(crate) fn lex(text: &str, file: &Arc<str>) -> Result<Vec<Token>, SyntaxError> {
    let mut out = Vec::new();
    let mut line = 1u32;
    let mut chars = text.chars().peekable();
    let loc = |line| Loc { file: file.clone(), line };
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '"' => {
                let start = line;
                let mut s = Vec::new();
                loop {
                    let Some(c) = chars.next() else {
                        return Err(SyntaxError::at(
                            &loc(start),
                            "a quoted string is not closed: expected a closing `\"`",
                        ));
                    };
                    match c {
                        '"' => break,
                        '\\' => escape(&mut chars, &mut s, &mut line),
                        '\n' => {
                            line += 1;
                            s.push(b'\n');
                        }
                        c => s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                out.push(Token { tok: Tok::Str(s), loc: loc(start) });
            }
            c if word_char(c) => {
                let mut w = String::from(c);
                while let Some(c) = chars.next_if(|&c| word_char(c)) {
                    w.push(c);
                }
                out.push(Token { tok: Tok::Word(w), loc: loc(line) });
            }
            c => out.push(Token { tok: Tok::Punct(c), loc: loc(line) }),
        }
    }
    Ok(out)
}

/// One escape after a backslash: `\n \t \r`, octal `\101`, hex `\x41`, or the character
/// itself (`\" \\`).
fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, s: &mut Vec<u8>, line: &mut u32) {
    let Some(c) = chars.next() else { return };
    let digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, first, radix, max| {
        let mut v = first;
        for _ in 1..max {
            match chars.peek().and_then(|c| c.to_digit(radix)) {
                Some(d) => {
                    v = v * radix + d;
                    chars.next();
                }
                None => break,
            }
        }
        v
    };
    match c {
        'n' => s.push(b'\n'),
        't' => s.push(b'\t'),
        'r' => s.push(b'\r'),
        '0'..='7' => {
            let v = digits(chars, c.to_digit(8).unwrap_or(0), 8, 3);
            s.push(u8::try_from(v).unwrap_or(u8::MAX));
        }
        'x' => match chars.peek().and_then(|c| c.to_digit(16)) {
            Some(d) => {
                chars.next();
                s.push(u8::try_from(digits(chars, d, 16, 2)).unwrap_or(u8::MAX));
            }
            None => s.push(b'x'),
        },
        '\n' => *line += 1,
        c => s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        lex(text, &Arc::from("t.conf")).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_strings_and_punctuation_come_apart_as_dhcpd_reads_them() {
        let w = |s: &str| Tok::Word(s.into());
        assert_eq!(
            toks(
                "option agent.circuit-id \"a\\\"b\\101\\x42\"; # gone\nhardware ethernet 0:1a:2b:3c:4d:5e;"
            ),
            [
                w("option"),
                w("agent.circuit-id"),
                Tok::Str(b"a\"bAB".to_vec()),
                Tok::Punct(';'),
                w("hardware"),
                w("ethernet"),
                w("0:1a:2b:3c:4d:5e"),
                Tok::Punct(';'),
            ]
        );
        assert_eq!(
            toks("substring(hardware,1,3)={"),
            [
                w("substring"),
                Tok::Punct('('),
                w("hardware"),
                Tok::Punct(','),
                w("1"),
                Tok::Punct(','),
                w("3"),
                Tok::Punct(')'),
                Tok::Punct('='),
                Tok::Punct('{'),
            ]
        );
    }

    #[test]
    fn lines_are_counted_through_comments_and_strings() {
        let t = lex("a;\n# c\n\"x\ny\" b\n c", &Arc::from("f")).unwrap();
        let lines: Vec<u32> = t.iter().map(|t| t.loc.line).collect();
        assert_eq!(lines, [1, 1, 3, 4, 5]);
    }

    #[test]
    fn an_open_string_is_an_error_at_the_line_it_opened() {
        let e = lex("a;\nb \"open\n\n", &Arc::from("f.conf")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.conf:2: a quoted string is not closed: expected a closing `\"`"
        );
    }
}

//! Tokens grouped into statements: words up to a `;`, or up to a `{ ... }` block of further
//! statements. This is all the structure dhcpd's files have in common; what a statement means
//! is for the importer of each file kind to say.
//!
//! `include "file";` is followed here (when asked), relative to the including file, so an
//! importer sees one tree whose every statement still names its own file and line.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    Loc, SyntaxError,
    lex::{Tok, Token, lex},
};

#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    /// Never empty.
    pub words: Vec<Token>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    pub(crate) fn loc(&self) -> &Loc {
        &self.words[0].loc
    }

    /// Whether the statement begins with these words (case-insensitively, as dhcpd reads
    /// keywords).
    pub(crate) fn starts(&self, words: &[&str]) -> bool {
        words.len() <= self.words.len() && words.iter().zip(&self.words).all(|(w, t)| t.is(w))
    }

    /// The statement as written, shortened, for messages.
    pub(crate) fn show(&self) -> String {
        let mut s = String::new();
        for t in self.words.iter().take(6) {
            if !s.is_empty() && !matches!(t.tok, Tok::Punct(',' | ')')) && !s.ends_with('(') {
                s.push(' ');
            }
            match &t.tok {
                Tok::Word(w) => s.push_str(w),
                Tok::Str(b) => {
                    let _ = write!(s, "{:?}", String::from_utf8_lossy(b));
                }
                Tok::Punct(c) => s.push(*c),
            }
        }
        if self.words.len() > 6 {
            s.push_str(" ...");
        }
        s
    }
}

/// Includes nested deeper than this are a loop (dhcpd has no guard; a file including itself
/// would recurse until it runs out of descriptors).
const INCLUDE_DEPTH: usize = 16;

/// The statements of the file at `path`; with `includes`, `include` statements are replaced by
/// the statements of the file they name.
pub(crate) fn parse_file(path: &Path, includes: bool) -> Result<Vec<Stmt>, SyntaxError> {
    read(path, includes, 0)
}

/// The statements of `text`, named as from `file` (no includes: a lease file has none).
pub(crate) fn parse_text(text: &str, file: &str) -> Result<Vec<Stmt>, SyntaxError> {
    let file: Arc<str> = Arc::from(file);
    let tokens = lex(text, &file)?;
    let end = Loc { file, line: u32::try_from(text.lines().count().max(1)).unwrap_or(u32::MAX) };
    Parser { tokens: tokens.into_iter().peekable(), end }.block(None)
}

fn read(path: &Path, includes: bool, depth: usize) -> Result<Vec<Stmt>, SyntaxError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| SyntaxError::Read { file: file.clone(), source })?;
    let stmts = parse_text(&text, &file)?;
    if !includes {
        return Ok(stmts);
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    expand(stmts, &dir, depth)
}

fn expand(stmts: Vec<Stmt>, dir: &Path, depth: usize) -> Result<Vec<Stmt>, SyntaxError> {
    let mut out = Vec::with_capacity(stmts.len());
    for mut s in stmts {
        if !s.starts(&["include"]) {
            if let Some(b) = s.block.take() {
                s.block = Some(expand(b, dir, depth)?);
            }
            out.push(s);
            continue;
        }
        let (Some(Tok::Str(name)), 2, None) =
            (s.words.get(1).map(|t| &t.tok), s.words.len(), &s.block)
        else {
            return Err(SyntaxError::at(s.loc(), "expected a quoted file name: include \"file\";"));
        };
        if depth >= INCLUDE_DEPTH {
            return Err(SyntaxError::at(
                s.loc(),
                format!("includes nest deeper than {INCLUDE_DEPTH} files: a file includes itself"),
            ));
        }
        let name = PathBuf::from(String::from_utf8_lossy(name).into_owned());
        let path = if name.is_absolute() { name } else { dir.join(name) };
        let inner = read(&path, true, depth + 1).map_err(|e| match e {
            SyntaxError::Read { file, source } => {
                SyntaxError::at(s.loc(), format!("cannot read the included file {file}: {source}"))
            }
            e @ SyntaxError::At { .. } => e,
        })?;
        out.extend(inner);
    }
    Ok(out)
}

struct Parser {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
    /// Where the input ends, for "expected ... at the end of the file".
    end: Loc,
}

impl Parser {
    /// Statements up to the `}` closing the block opened at `open` (or the end of the file at
    /// the top level).
    fn block(&mut self, open: Option<&Loc>) -> Result<Vec<Stmt>, SyntaxError> {
        let mut out = Vec::new();
        let mut words: Vec<Token> = Vec::new();
        loop {
            let Some(t) = self.tokens.next() else {
                if let Some(open) = open {
                    return Err(SyntaxError::at(
                        &self.end,
                        format!(
                            "unexpected end of file: expected `}}` to close the block opened at \
                             line {}",
                            open.line
                        ),
                    ));
                }
                if let Some(last) = words.last() {
                    return Err(SyntaxError::at(
                        &last.loc,
                        format!("unexpected end of file: expected `;` after {}", last.show()),
                    ));
                }
                return Ok(out);
            };
            match t.tok {
                Tok::Punct(';') => {
                    if !words.is_empty() {
                        out.push(Stmt { words: std::mem::take(&mut words), block: None });
                    }
                }
                Tok::Punct('{') => {
                    if words.is_empty() {
                        return Err(SyntaxError::at(&t.loc, "a block `{` must follow a statement"));
                    }
                    let block = self.block(Some(&t.loc))?;
                    out.push(Stmt { words: std::mem::take(&mut words), block: Some(block) });
                }
                Tok::Punct('}') => {
                    if let Some(last) = words.last() {
                        return Err(SyntaxError::at(
                            &t.loc,
                            format!("expected `;` after {} before `}}`", last.show()),
                        ));
                    }
                    if open.is_none() {
                        return Err(SyntaxError::at(&t.loc, "`}` closes no block"));
                    }
                    return Ok(out);
                }
                _ => words.push(t),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Stmt>, SyntaxError> {
        let dir = std::env::temp_dir().join(format!("xdhcp-tree-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.conf");
        std::fs::write(&path, text).unwrap();
        parse_file(&path, true)
    }

    #[test]
    fn blocks_nest_and_statements_end_at_semicolons() {
        let s = parse("a 1;\nsubnet x {\n pool { range 1 2; }\n b;\n}\nc;").unwrap();
        assert_eq!(s.len(), 3);
        let inner = s[1].block.as_ref().unwrap();
        assert!(inner[0].starts(&["pool"]));
        assert_eq!(inner[0].block.as_ref().unwrap()[0].show(), "range 1 2");
        assert_eq!(inner[1].loc().line, 4);
    }

    #[test]
    fn truncated_input_names_what_was_expected() {
        let e = parse("subnet x {\n range 1 2\n}\n").unwrap_err().to_string();
        assert!(e.ends_with("t.conf:3: expected `;` after `2` before `}`"), "{e}");
        let e = parse("subnet x {\n range 1 2;\n").unwrap_err().to_string();
        assert!(
            e.contains(
                "t.conf:2: unexpected end of file: expected `}` to close the block opened at line 1"
            ),
            "{e}"
        );
        let e = parse("a;\n}\n").unwrap_err().to_string();
        assert!(e.ends_with("t.conf:2: `}` closes no block"), "{e}");
        let e = parse("a b").unwrap_err().to_string();
        assert!(e.ends_with("t.conf:1: unexpected end of file: expected `;` after `b`"), "{e}");
    }
}

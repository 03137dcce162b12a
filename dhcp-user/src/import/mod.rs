//! Importers from ISC dhcpd's files into xdhcp's.
//!
//! dhcpd.conf and dhcpd.leases share one lexical syntax (comments, quoted strings, colon
//! hex, statements ending in `;`, blocks in braces), so the lexer ([`lex`]) and the statement
//! tree ([`tree`]) are shared; each file kind has its own module that interprets the tree:
//! [`conf`] for dhcpd.conf, [`leases`] for dhcpd.leases. Every position is a [`Loc`], so whatever an importer refuses or
//! finds wrong names the file and line it came from.
use std::{fmt, sync::Arc};

pub mod conf;
pub mod leases;
pub(crate) mod lex;
pub(crate) mod tree;

/// A file and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Input an importer cannot read at all: the file is missing, or dhcpd itself would refuse
/// it. Nothing is translated from such input.
#[derive(Debug, thiserror::Error)]
pub enum SyntaxError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{loc}: {message}")]
    At { loc: Loc, message: String },
}

impl SyntaxError {
    pub(crate) fn at(loc: &Loc, message: impl Into<String>) -> Self {
        SyntaxError::At { loc: loc.clone(), message: message.into() }
    }
}

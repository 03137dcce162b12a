//! `xdhcp import dhcpd-conf`: an ISC dhcpd 4.4 dhcpd.conf translated into xdhcp's TOML.
//!
//! Three steps, each its own module: the statement tree ([`super::tree`], includes followed)
//! is walked scope by scope into declarations ([`walk`], with option values in [`values`],
//! class expressions in [`classes`] and the failover peer in [`failover`]); the declarations
//! are written as xdhcp's wire config ([`emit`]); and that text must pass xdhcp's own
//! validation ([`Config::from_toml`]) before it is returned. A validation error is reported
//! against the dhcpd.conf line the offending table came from.
//!
//! What dhcpd itself would reject is an error ([`ImportError::Syntax`]): nothing is
//! translated. What dhcpd accepts but xdhcp cannot do is listed ([`Untranslated`]) with its
//! file, line and reason; the caller decides whether a translation without it will do.
use std::{fmt, net::Ipv4Addr, path::Path};

use super::{Loc, SyntaxError};
use crate::config::{Config, ConfigError};

mod classes;
mod emit;
mod failover;
mod scope;
mod values;
mod walk;

#[cfg(test)]
mod tests;

/// What the importer needs that a dhcpd.conf does not say: dhcpd takes its interfaces from
/// its command line, and its server identifier from the interface a request arrives on.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub interfaces: Vec<String>,
    /// Overrides `server-identifier` and the failover peer's `address`.
    pub server_id: Option<Ipv4Addr>,
}

/// A statement dhcpd accepts that has no xdhcp translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslated {
    pub loc: Loc,
    /// The statement's first words, as written.
    pub statement: String,
    pub why: String,
}

impl fmt::Display for Untranslated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.loc, self.statement, self.why)
    }
}

/// A translated file: the TOML, the validated config it makes, and what was left out.
#[derive(Debug)]
pub struct Translation {
    pub toml: String,
    pub config: Config,
    pub untranslated: Vec<Untranslated>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input is not a dhcpd.conf dhcpd would run.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// The translation breaks one of xdhcp's rules (a pool overlapping another, too many
    /// classes, ...): reported against the declaration it came from.
    #[error("{}{key}: {message}", loc.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Invalid { loc: Option<Loc>, key: String, message: String },
    /// Something xdhcp needs that the file does not say.
    #[error("{0}")]
    Missing(String),
}

/// Why one statement is not translated: dhcpd's own error ([`Why::Malformed`]), or xdhcp
/// has nothing that does what it does ([`Why::No`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Why {
    Malformed(String),
    No(String),
}

/// Translates the dhcpd.conf at `path` (and the files it includes).
pub fn translate(path: &Path, inputs: &Inputs) -> Result<Translation, ImportError> {
    let stmts = super::tree::parse_file(path, true)?;
    let mut model = walk::walk(&stmts)?;
    let emitted = emit::emit(&mut model, inputs)?;
    let config = Config::from_toml(&emitted.toml, "the translation").map_err(|e| match e {
        ConfigError::Invalid { key, message, .. } => {
            let key = key.unwrap_or_default();
            ImportError::Invalid { loc: emitted.origin_of(&key), key, message }
        }
        e @ ConfigError::Read { .. } => ImportError::Missing(e.to_string()),
    })?;
    Ok(Translation { toml: emitted.toml, config, untranslated: model.untranslated })
}

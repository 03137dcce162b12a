//! The TOML config file: [`Config::load`] reads, parses and validates it.
//!
//! Two layers, as in [`wire`] (the file's shape, serde) and [`model`] (the validated
//! [`Config`], made by a pure `TryFrom`). Every key is documented in `docs/config.md`.
//! Errors name the file, the line and the key:
//!
//! ```text
//! xdhcp.toml:14: subnet[1].pools[0].end: 10.0.1.300 is not an IPv4 address
//! ```
use std::{fmt, path::Path};

pub mod classes;
mod failover;
pub mod history;
pub mod host;
pub mod model;
pub mod options;
pub mod police;
pub mod profiles;
mod spans;
pub mod wire;

pub use classes::{Class, ClassId};
pub use host::Host;
pub use model::{
    AttachMode, CircuitChange, Config, FAILOVER_PORT, Failover, FastPath, Options, Pool,
    RelationshipId, Reservation, ReservationKey, Subnet, SubnetId, ValidationError,
};
pub use profiles::{Profile, Profiles};

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", Located(self))]
    Invalid {
        file: String,
        /// 1-based; `None` when the key does not appear in the file (a required key missing).
        line: Option<usize>,
        /// Dotted path with array indices, e.g. `subnet[1].pools[0].end`.
        key: Option<String>,
        message: String,
    },
}

struct Located<'a>(&'a ConfigError);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ConfigError::Invalid { file, line, key, message } = self.0 else { return Ok(()) };
        write!(f, "{file}")?;
        if let Some(l) = line {
            write!(f, ":{l}")?;
        }
        if let Some(k) = key {
            write!(f, ": {k}")?;
        }
        write!(f, ": {message}")
    }
}

impl Config {
    /// Reads and validates the file at `path`. Errors name `path` as given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        Config::from_toml(&text, &file)
    }

    /// [`Config::load`], and what the config names on this host ([`Host`]: the group, the
    /// failover link's TLS files), checked: what the daemon and `xdhcp check` use.
    pub fn load_on_host(path: &Path) -> Result<(Config, Host), ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        let cfg = Config::from_toml(&text, &file)?;
        let host = Host::resolve(&cfg).map_err(|v| ConfigError::Invalid {
            line: spans::SpanIndex::new(&text).line_of_path(&v.key),
            key: Some(v.key),
            message: v.message,
            file,
        })?;
        Ok((cfg, host))
    }

    /// Parses and validates `text`; `file` is only used in error messages.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        let index = spans::SpanIndex::new(text);
        let invalid = |line, key: Option<&str>, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            line,
            key: key.map(str::to_owned),
            message,
        };
        let wire: wire::Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| s.start);
            let key = at.and_then(|a| index.path_at(a));
            invalid(at.map(|a| index.line_of(a)), key, e.message().trim_end().to_owned())
        })?;
        Config::try_from(wire)
            .map_err(|v| invalid(index.line_of_path(&v.key), Some(&v.key), v.message))
    }
}

#[cfg(test)]
mod tests;

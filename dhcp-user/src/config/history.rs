//! `[history]` and `[history.postgres]`: where the lease history is written, how far the
//! local files may grow, and the fleet's PostgreSQL database it is sent to.
use std::{net::Ipv4Addr, path::Path, str::FromStr as _};

use serde::Deserialize;

use super::model::{ValidationError, err};
use crate::history::file::Rotation;

/// `[history]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireHistory {
    pub file: Option<std::path::PathBuf>,
    pub max_size: Option<u64>,
    pub keep: Option<u32>,
    pub node: Option<String>,
    pub postgres: Option<WirePostgres>,
}

/// `[history.postgres]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WirePostgres {
    pub url: Option<String>,
    pub table: Option<String>,
}

/// `[history]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub rotation: Rotation,
    /// This server's name in the fleet's history; its events' ids are `node:seq`.
    pub node: String,
    pub postgres: Option<Postgres>,
}

/// `[history.postgres]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postgres {
    /// A libpq key=value string or a `postgresql://` URL, as `tokio-postgres` reads them.
    pub url: String,
    pub table: String,
}

pub const DEFAULT_FILE: &str = "history.jsonl";
pub const DEFAULT_MAX_SIZE: u64 = 64 * 1024 * 1024;
pub const DEFAULT_KEEP: u32 = 8;
pub const DEFAULT_TABLE: &str = "lease_history";
/// Below this a file would rotate every few events.
const MIN_SIZE: u64 = 4096;
const KEEP_MAX: u32 = 1000;
const NODE_MAX: usize = 64;

pub(super) fn history(
    w: Option<WireHistory>,
    state_dir: &Path,
    server_id: Ipv4Addr,
) -> Result<Option<History>, ValidationError> {
    let Some(w) = w else { return Ok(None) };
    let max_size = w.max_size.unwrap_or(DEFAULT_MAX_SIZE);
    if max_size < MIN_SIZE {
        return err("history.max_size", format!("at least {MIN_SIZE} bytes"));
    }
    let keep = w.keep.unwrap_or(DEFAULT_KEEP);
    if keep > KEEP_MAX {
        return err("history.keep", format!("at most {KEEP_MAX} files"));
    }
    let node = w.node.unwrap_or_else(|| server_id.to_string());
    if node.is_empty() || node.len() > NODE_MAX || node.chars().any(char::is_control) {
        return err("history.node", format!("1 to {NODE_MAX} printable characters"));
    }
    let path = match w.file {
        Some(f) if f.as_os_str().is_empty() => return err("history.file", "empty path"),
        Some(f) if f.is_relative() => state_dir.join(f),
        Some(f) => f,
        None => state_dir.join(DEFAULT_FILE),
    };
    let postgres = match w.postgres {
        None => None,
        Some(p) => Some(postgres(p)?),
    };
    Ok(Some(History { rotation: Rotation { path, max_size, keep }, node, postgres }))
}

fn postgres(w: WirePostgres) -> Result<Postgres, ValidationError> {
    let Some(url) = w.url else {
        return err(
            "history.postgres.url",
            "missing: the database, as \"host=... port=... user=... dbname=...\"",
        );
    };
    if let Err(e) = postgres::Config::from_str(&url) {
        return err("history.postgres.url", format!("not a PostgreSQL connection string: {e}"));
    }
    let table = w.table.unwrap_or_else(|| DEFAULT_TABLE.to_owned());
    let ident = table.len() <= 63
        && table.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ident {
        return err(
            "history.postgres.table",
            "a plain lower-case SQL name (a-z, 0-9, _; at most 63 characters)",
        );
    }
    Ok(Postgres { url, table })
}

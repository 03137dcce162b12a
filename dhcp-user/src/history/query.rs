//! `xdhcp history`: which events match, and who held an address at a given time. The same
//! answer from the local file and from PostgreSQL: the database only narrows the rows.
use std::net::Ipv4Addr;

use super::{Kind, Record};

/// What to look for: one of the three keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Addr(Ipv4Addr),
    /// As `aa:bb:cc:dd:ee:ff`, any case.
    Mac(String),
    /// As shown: the text, or `0x` and its bytes in hex.
    Circuit(String),
}

impl Key {
    #[must_use]
    pub fn matches(&self, r: &Record) -> bool {
        match self {
            Self::Addr(a) => r.event.address == *a,
            Self::Mac(m) => r.event.mac.eq_ignore_ascii_case(m),
            Self::Circuit(c) => r.event.circuit_id.as_deref() == Some(c.as_str()),
        }
    }
}

/// Events in the order they happened: by time, and within a node by its sequence.
pub fn sort(records: &mut [Record]) {
    records.sort_by(|a, b| (a.event.time, &a.node, a.seq).cmp(&(b.event.time, &b.node, b.seq)));
}

/// Who held the address at `at`, from its events in order ([`sort`]): the last event at or
/// before `at` that changed the binding (offers do not), if it left a client holding the
/// address past `at`. A release, decline or expiry after the binding ends the holding; a
/// binding that simply ran out does too.
#[must_use]
pub fn held_at(events: &[Record], at: u64) -> Option<&Record> {
    events
        .iter()
        .rfind(|r| r.event.time <= at && r.event.kind != Kind::Offer)
        .filter(|r| r.event.holds() && r.event.lease_end > at)
}

/// Unix seconds from `s`: plain seconds, or UTC as `YYYY-MM-DDTHH:MM:SS` (a trailing `Z`, a
/// space for the `T`).
pub fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let bad = || format!("{s:?}: expected unix seconds or UTC as 2026-12-02T14:00:00Z");
    let utc = s.trim_end_matches('Z');
    let (date, clock) = utc.split_once(['T', ' ']).ok_or_else(bad)?;
    let num = |part: Option<&str>| part.and_then(|x| x.parse::<u64>().ok()).ok_or_else(bad);
    let mut ymd = date.split('-');
    let (year, month, day) = (num(ymd.next())?, num(ymd.next())?, num(ymd.next())?);
    let mut hms = clock.split(':');
    let (hour, min) = (num(hms.next())?, num(hms.next())?);
    let sec = hms.next().map_or(Ok(0), |x| num(Some(x)))?;
    let date_ok = (1..=12).contains(&month) && (1..=31).contains(&day) && year >= 1970;
    if ymd.next().is_some() || !date_ok || hour > 23 || min > 59 || sec > 60 {
        return Err(bad());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the usual era-based count).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Where `xdhcp history` reads.
#[derive(Debug, Clone)]
pub enum Source {
    Files(super::file::Rotation),
    Postgres { url: String, table: String },
}

impl Source {
    /// A config's history: its database when it has one (the fleet's), else its files.
    pub fn of_config(cfg: &crate::config::Config) -> Result<Self, String> {
        let h = cfg.history.as_ref().ok_or("the config has no [history]")?;
        Ok(match &h.postgres {
            Some(p) => Self::Postgres { url: p.url.clone(), table: p.table.clone() },
            None => Self::Files(h.rotation.clone()),
        })
    }

    /// A history file named on the command line, and whatever rotated files it has.
    #[must_use]
    pub fn file(path: std::path::PathBuf) -> Self {
        Self::Files(super::file::Rotation { path, max_size: u64::MAX, keep: 1000 })
    }
}

/// The events of `key`, in order; with `at` (an address), only the one that held it then.
pub fn lookup(src: &Source, key: &Key, at: Option<u64>) -> anyhow::Result<Vec<Record>> {
    use anyhow::Context as _;
    let mut events = match src {
        Source::Files(rot) => {
            if rot.files().is_empty() {
                anyhow::bail!("{}: no history file there", rot.path.display());
            }
            let all = super::file::read_all(rot)
                .with_context(|| format!("read {}", rot.path.display()))?;
            let mut v: Vec<Record> = all.into_iter().filter(|r| key.matches(r)).collect();
            sort(&mut v);
            v
        }
        Source::Postgres { url, table } => super::pg::query(url, table, key, at)?,
    };
    if let Some(t) = at {
        return Ok(held_at(&events, t).cloned().into_iter().collect());
    }
    events.retain(|r| key.matches(r));
    Ok(events)
}

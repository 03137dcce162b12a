//! `xdhcp import dhcpd-leases`: an ISC dhcpd 4.4 lease file into an empty xdhcp store, each
//! binding under the subnet of the xdhcp config that holds its address. dhcpd's times are kept
//! as they are (`ends` is the lease's end and its horizon: nothing longer is promised here than
//! dhcpd promised), and so are its failover times: `tstp` (the expiry sent to the partner),
//! `tsfp` (the one it acknowledged) and `atsfp` (the one it sent). Nothing is written unless
//! every lease is understood, or the caller says to leave out the ones that are not.
use std::{collections::BTreeMap, net::Ipv4Addr, path::Path};

use anyhow::{Context as _, Result, bail};

use crate::config::Config;
use crate::store::{Chaddr, Lease, LeaseChange, LeaseState, LeaseStore};

pub mod parse;

pub use parse::DhcpdLease;

/// A lease the store cannot take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: u32,
    pub address: Ipv4Addr,
    pub why: String,
}

/// The records to write, and the leases left out.
#[derive(Debug, Default)]
pub struct Translated {
    pub records: Vec<Lease>,
    pub refused: Vec<Refusal>,
}

/// dhcpd's binding states, as the store names them; `bootp` and `reserved` have no equal.
fn state(s: &str) -> Option<LeaseState> {
    Some(match s {
        "free" => LeaseState::Free,
        "active" => LeaseState::Active,
        "expired" => LeaseState::Expired,
        "released" => LeaseState::Released,
        "abandoned" => LeaseState::Abandoned,
        "reset" => LeaseState::Reset,
        "backup" => LeaseState::Backup,
        _ => return None,
    })
}

/// The store's records for `leases` under `cfg` (pure: the caller writes them).
#[must_use]
pub fn translate(cfg: &Config, leases: &BTreeMap<Ipv4Addr, DhcpdLease>) -> Translated {
    let mut t = Translated::default();
    for (&address, l) in leases {
        match record(cfg, address, l) {
            Ok(r) => t.records.push(r),
            Err(why) => t.refused.push(Refusal { line: l.line, address, why }),
        }
    }
    t
}

fn record(cfg: &Config, address: Ipv4Addr, l: &DhcpdLease) -> Result<Lease, String> {
    let binding = l.binding.as_deref().unwrap_or("free");
    let st = state(binding).ok_or_else(|| format!("binding state {binding} is not served here"))?;
    let subnet = cfg
        .subnet_containing(address)
        .ok_or_else(|| "no subnet of the config holds this address".to_owned())?;
    let starts = l.starts.unwrap_or(0);
    // `ends never`: an infinite lease, kept to the end of what the store's times reach.
    let ends = l.ends.map_or(starts, |e| e.unwrap_or(u64::from(u32::MAX)));
    let mut r = Lease::new(address, st, subnet.0, starts);
    if let Some(hw) = &l.hardware {
        r.chaddr = Chaddr::new(hw);
    } else if st == LeaseState::Active {
        return Err("an active lease without `hardware ethernet`".into());
    }
    r.client_id = l.uid.as_deref().filter(|u| !u.is_empty()).map(crate::store::ClientId::new);
    r.hostname = l.hostname.as_deref().map(Box::from);
    let subs: Vec<(u8, &[u8])> =
        [(crate::relay::CIRCUIT_ID, &l.circuit_id), (crate::relay::REMOTE_ID, &l.remote_id)]
            .into_iter()
            .filter_map(|(c, v)| v.as_deref().map(|v| (c, v)))
            .collect();
    if subs.iter().any(|(_, v)| v.len() > 255) {
        return Err("a circuit-id or remote-id longer than 255 bytes".into());
    }
    r.relay_info = (!subs.is_empty()).then(|| crate::relay::encode(&subs).into());
    r.expires_at = ends;
    r.held_until = ends;
    r.cltt = l.cltt.unwrap_or(starts);
    r.pet_sent = l.tstp.unwrap_or(0);
    r.pet_acked = l.tsfp.unwrap_or(0);
    r.pet_received = l.atsfp.unwrap_or(0);
    r.rewind_state = l.rewind.as_deref().and_then(state);
    if st == LeaseState::Abandoned {
        r.probation_until = std::num::NonZeroU64::new(ends);
    }
    // Acknowledged by dhcpd's partner when what it last sent is what the partner took; either
    // way a failover partner is sent what it has not acknowledged once the relationship runs.
    r.partner_acked = r.pet_sent <= r.pet_acked;
    Ok(r)
}

/// What the import did.
#[derive(Debug, Default)]
pub struct Imported {
    pub written: usize,
    pub by_state: BTreeMap<&'static str, usize>,
    pub refused: Vec<Refusal>,
}

/// Reads `leases_file` and writes its bindings into the store of `cfg` (which must be empty
/// and owned by nobody else). `skip_refused`: write the rest when some are refused.
pub fn import(cfg: &Config, leases_file: &Path, skip_refused: bool) -> Result<Imported> {
    let text = std::fs::read_to_string(leases_file)
        .with_context(|| format!("read {}", leases_file.display()))?;
    let leases = parse::parse(&text, &leases_file.display().to_string())?;
    let t = translate(cfg, &leases);
    if !t.refused.is_empty() && !skip_refused {
        let list: Vec<String> = t
            .refused
            .iter()
            .map(|r| format!("{}:{}: {}: {}", leases_file.display(), r.line, r.address, r.why))
            .collect();
        bail!(
            "{} of {} leases cannot be imported (nothing was written; --skip-refused writes the \
             rest):\n{}",
            t.refused.len(),
            leases.len(),
            list.join("\n")
        );
    }
    let _owner = crate::store::lock(&cfg.state_dir, std::time::Duration::ZERO)?;
    let mut store = LeaseStore::open(&cfg.state_dir)?;
    store.set_class_names(cfg.classes.iter().map(|c| c.name.clone()).collect());
    let held = store.load_all()?.len();
    if held > 0 {
        bail!(
            "the store in {} already holds {held} records: import into an empty store (a new \
             state_dir)",
            cfg.state_dir.display()
        );
    }
    let changes: Vec<LeaseChange> = t.records.iter().cloned().map(LeaseChange::Put).collect();
    store.commit(&changes)?;
    let mut by_state = BTreeMap::new();
    for r in &t.records {
        *by_state.entry(r.state.as_str()).or_insert(0) += 1;
    }
    Ok(Imported { written: t.records.len(), by_state, refused: t.refused })
}

#[cfg(test)]
mod tests;

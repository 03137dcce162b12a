//! The control socket's requests and their answers, decided from the state the core owns
//! between two batches. The socket itself is the daemon's (`daemon::ctl`).
use std::{fmt::Write as _, net::Ipv4Addr, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Core, Now};
use crate::{packet, server::RECEIVED_TYPES, store::LeaseState};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Leases {
        #[serde(default)]
        addr: Option<Ipv4Addr>,
        #[serde(default)]
        mac: Option<String>,
        /// Only bindings whose option 82 circuit-id is exactly this (see [`printable`] for how
        /// bytes are written; the written form matches too).
        #[serde(default)]
        circuit_id: Option<String>,
        #[serde(default)]
        remote_id: Option<String>,
    },
    Stats,
    /// Prometheus text exposition.
    Metrics,
    /// The failover relationship: both states, STOS, MCLT, updates, pools.
    FailoverStatus,
    /// The operator declares the partner down. `confirm` must be set: taking over a partner
    /// that is in fact running can give one address to two clients.
    FailoverPartnerDown {
        #[serde(default)]
        confirm: bool,
    },
}

/// What the driver measured outside the turn, for `stats` and `metrics`: the kernel's counters
/// and how long the store takes to commit.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Each interface's fast-path counters, by interface name.
    pub fast_path: serde_json::Map<String, Value>,
    pub store: CommitStats,
}

/// Store commit latency.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitStats {
    pub commits: u64,
    pub changes: u64,
    pub total: Duration,
    pub max: Duration,
}

impl CommitStats {
    /// One more commit of `changes` changes that took `took`.
    pub fn record(&mut self, changes: usize, took: Duration) {
        self.commits += 1;
        self.changes += changes as u64;
        self.total += took;
        self.max = self.max.max(took);
    }
}

pub(super) fn answer(core: &Core, req: &Request, now: Now, measured: &Measured) -> Value {
    match req {
        Request::Leases { addr, mac, circuit_id, remote_id } => {
            let mac = mac.as_deref().and_then(packet::parse_mac);
            let id_matches = |want: &Option<String>, have: Option<&[u8]>| {
                want.as_ref().is_none_or(|w| have.is_some_and(|h| matches_id(w, h)))
            };
            let leases: Vec<Value> = core
                .server()
                .leases()
                .filter(|l| addr.is_none_or(|a| a == l.address))
                .filter(|l| mac.is_none_or(|m| l.mac() == Some(m)))
                .filter(|l| id_matches(circuit_id, l.circuit_id()))
                .filter(|l| id_matches(remote_id, l.remote_id()))
                .map(|l| {
                    json!({
                        "address": l.address,
                        "state": l.state.as_str(),
                        "mac": l.mac().map(|m| packet::fmt_mac(&m)),
                        "client_id": l.client_id.as_ref().map(|c| hex(c)),
                        "hostname": l.hostname,
                        "circuit_id": l.circuit_id().map(printable),
                        "remote_id": l.remote_id().map(printable),
                        "relay_info": l.relay_info.as_ref().map(|r| hex(r)),
                        "subnet": l.subnet,
                        "expires_in": l.expires_at.cast_signed() - now.unix.cast_signed(),
                        "held_for": l.held_until.cast_signed() - now.unix.cast_signed(),
                        "cltt": l.cltt,
                        "expires_at": l.expires_at,
                        "pet_sent": l.pet_sent,
                        "pet_acked": l.pet_acked,
                        "pet_received": l.pet_received,
                    })
                })
                .collect();
            json!({ "leases": leases })
        }
        Request::Stats => stats(core, measured),
        Request::Metrics => json!({ "text": metrics(core, measured) }),
        Request::FailoverStatus | Request::FailoverPartnerDown { .. } => match core.failover() {
            Some(f) => f.status(core.server(), now.unix),
            None => json!({"error": "no [failover] relationship is configured"}),
        },
    }
}

/// A circuit-id or remote-id as text: as it is when it is printable ASCII (what access nodes
/// mostly send, "olt1 eth 1/1/3:100"), else `0x` and hex.
#[must_use]
pub fn printable(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)) && !b.starts_with(b"0x") {
        String::from_utf8_lossy(b).into_owned()
    } else {
        format!("0x{}", hex(b))
    }
}

/// Whether `want`, as an operator typed it, names `id`: its printable form, or its bytes in hex
/// (`0x0a0b`, or `0a:0b`), case-insensitively for the hex.
fn matches_id(want: &str, id: &[u8]) -> bool {
    if want == printable(id) || want.as_bytes() == id {
        return true;
    }
    let digits: String = want.trim_start_matches("0x").chars().filter(|c| *c != ':').collect();
    digits.eq_ignore_ascii_case(&hex(id))
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn stats(core: &Core, measured: &Measured) -> Value {
    let c = core.server().counters();
    let received: serde_json::Map<String, Value> =
        RECEIVED_TYPES.iter().zip(c.received).map(|(t, n)| ((*t).to_owned(), n.into())).collect();
    let dropped: serde_json::Map<String, Value> = crate::server::DropReason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), c.dropped(*r).into()))
        .collect();
    let circuit_changes: serde_json::Map<String, Value> = crate::server::CircuitAction::ALL
        .iter()
        .zip(c.circuit_changes)
        .map(|(a, n)| (a.as_str().to_owned(), n.into()))
        .collect();
    let m = &measured.store;
    json!({
        "received": received,
        "sent": { "offer": c.offers, "ack": c.acks, "nak": c.naks, "inform_ack": c.informs },
        "declines": c.declines,
        "releases": c.releases,
        "dropped": dropped,
        "circuit_changes": circuit_changes,
        "fast_path_renewals_recorded": core.fast_path_renewals(),
        "fast_path": measured.fast_path,
        "store": {
            "commits": m.commits,
            "changes": m.changes,
            "mean_commit_us": micros(m.total).checked_div(m.commits).unwrap_or(0),
            "max_commit_us": micros(m.max),
        },
        "pools": pools(core),
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn pools(core: &Core) -> Vec<Value> {
    core.config()
        .subnets
        .iter()
        .map(|s| {
            let size: u64 = s.pools.iter().map(crate::config::Pool::size).sum();
            let active = core
                .server()
                .leases()
                .filter(|l| l.subnet == s.id.0 && l.state == LeaseState::Active)
                .filter(|l| s.pools.iter().any(|p| p.start <= l.address && l.address <= p.end))
                .count();
            json!({ "subnet": s.prefix.to_string(), "size": size, "active": active })
        })
        .collect()
}

fn metrics(core: &Core, measured: &Measured) -> String {
    let v = stats(core, measured);
    let mut out = String::new();
    let mut line = |name: &str, labels: &str, val: &Value| {
        if let Some(n) = val.as_i64() {
            let _ = writeln!(out, "{name}{labels} {n}");
        } else if let Some(n) = val.as_u64() {
            let _ = writeln!(out, "{name}{labels} {n}");
        }
    };
    for (k, n) in v["received"].as_object().into_iter().flatten() {
        line("xdhcp_received_total", &format!("{{type=\"{k}\"}}"), n);
    }
    for (k, n) in v["sent"].as_object().into_iter().flatten() {
        line("xdhcp_sent_total", &format!("{{type=\"{k}\"}}"), n);
    }
    for (k, n) in v["dropped"].as_object().into_iter().flatten() {
        line("xdhcp_dropped_total", &format!("{{reason=\"{k}\"}}"), n);
    }
    for (k, n) in v["circuit_changes"].as_object().into_iter().flatten() {
        line("xdhcp_circuit_changes_total", &format!("{{action=\"{k}\"}}"), n);
    }
    for (iface, counters) in v["fast_path"].as_object().into_iter().flatten() {
        for (k, n) in counters.as_object().into_iter().flatten() {
            line(
                "xdhcp_fast_path_packets_total",
                &format!("{{iface=\"{iface}\",outcome=\"{k}\"}}"),
                n,
            );
        }
    }
    line("xdhcp_fast_path_renewals_recorded_total", "", &v["fast_path_renewals_recorded"]);
    line("xdhcp_store_commits_total", "", &v["store"]["commits"]);
    line("xdhcp_store_commit_mean_microseconds", "", &v["store"]["mean_commit_us"]);
    line("xdhcp_store_commit_max_microseconds", "", &v["store"]["max_commit_us"]);
    if let Some(f) = core.failover() {
        let st = f.status(core.server(), 0);
        for (side, k) in [("self", "my_state"), ("partner", "partner_state")] {
            let state = st[k].as_str().unwrap_or("unknown");
            line(
                "xdhcp_failover_state",
                &format!("{{side=\"{side}\",state=\"{state}\"}}"),
                &1.into(),
            );
        }
        for k in [
            "updates_unacked",
            "updates_queued",
            "updates_sent_total",
            "acks_received_total",
            "rejects_received_total",
            "refused_share_exhausted_total",
            "balanced_moved_total",
        ] {
            line(&format!("xdhcp_failover_{k}"), "", &st[k]);
        }
        line("xdhcp_failover_partner_clock_offset_seconds", "", &st["partner_clock_offset_secs"]);
        for p in st["pools"].as_array().into_iter().flatten() {
            let subnet = p["subnet"].as_str().unwrap_or("");
            for (owner, k) in [("self", "share_ours_free"), ("partner", "share_partner_free")] {
                line(
                    "xdhcp_failover_share_free",
                    &format!("{{subnet=\"{subnet}\",owner=\"{owner}\"}}"),
                    &p[k],
                );
            }
        }
    }
    for p in v["pools"].as_array().into_iter().flatten() {
        let l = format!("{{subnet=\"{}\"}}", p["subnet"].as_str().unwrap_or(""));
        line("xdhcp_pool_size", &l, &p["size"]);
        line("xdhcp_pool_active", &l, &p["active"]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_and_remote_ids_are_shown_as_text_or_hex_and_matched_either_way() {
        assert_eq!(printable(b"olt1 eth 1/1/3:100"), "olt1 eth 1/1/3:100");
        assert_eq!(printable(&[0, 1, 0xab]), "0x0001ab");
        // Text that would read as hex is shown as hex, so the two never mix.
        assert_eq!(printable(b"0x12"), "0x30783132");
        assert_eq!(printable(b""), "0x");
        assert!(matches_id("olt1 eth 1/1/3:100", b"olt1 eth 1/1/3:100"));
        assert!(matches_id("0x0001AB", &[0, 1, 0xab]));
        assert!(matches_id("00:01:ab", &[0, 1, 0xab]));
        assert!(!matches_id("olt1 eth 1/1/3:10", b"olt1 eth 1/1/3:100"));
        assert!(!matches_id("0x0001ac", &[0, 1, 0xab]));
    }
}

//! The control socket's requests and their answers, decided from the state the core owns
//! between two batches. The socket itself is the daemon's (`daemon::ctl`).
use std::{fmt::Write as _, net::Ipv4Addr, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Core, Now};
use crate::failover::Failover;
use crate::{packet, server::RECEIVED_TYPES, store::LeaseState};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Boxed: a query is larger than every other input the turn takes.
    Leases(Box<LeaseQuery>),
    Stats,
    /// Prometheus text exposition.
    Metrics,
    /// A failover relationship: both states, STOS, MCLT, updates, pools. With none named,
    /// the only one, or all of them (`relationships`) when there are several.
    FailoverStatus {
        #[serde(default)]
        relationship: Option<String>,
    },
    /// The operator declares the partner of one relationship down (it must be named when
    /// there are several). `confirm` must be set: taking over a partner that is in fact
    /// running can give one address to two clients.
    FailoverPartnerDown {
        #[serde(default)]
        confirm: bool,
        #[serde(default)]
        relationship: Option<String>,
    },
}

/// `xdhcp leases`: a lookup by address, hardware address or client identifier from an index,
/// or a page of every record in address order; or, with `count`, the records by state and
/// subnet. One answer holds at most [`PAGE_MAX`] records, so that a listing of a million is
/// many short turns, not one long one; `next` says where the following page starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseQuery {
    #[serde(default)]
    pub addr: Option<Ipv4Addr>,
    #[serde(default)]
    pub mac: Option<String>,
    /// Hex, type byte included (as `xdhcp leases` shows it).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Only bindings whose option 82 circuit-id is exactly this (see [`printable`] for how
    /// bytes are written; the written form matches too).
    #[serde(default)]
    pub circuit_id: Option<String>,
    #[serde(default)]
    pub remote_id: Option<String>,
    /// Only bindings made for this client class (its name; `""`: in none).
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// Only records after this address.
    #[serde(default)]
    pub after: Option<Ipv4Addr>,
    /// At most this many records (and never more than [`PAGE_MAX`]).
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub count: bool,
}

/// Most records in one answer.
pub const PAGE_MAX: usize = 10_000;

/// What the driver measured outside the turn, for `stats` and `metrics`: the kernel's counters
/// and how long the store takes to commit.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Each interface's fast-path counters, by interface name.
    pub fast_path: serde_json::Map<String, Value>,
    /// Each interface's kernel lease table: its capacity, and the leases that found no slot.
    pub lease_tables: serde_json::Map<String, Value>,
    pub store: CommitStats,
    /// DHCP datagrams the daemon's full queues dropped: requests, DISCOVERs.
    pub overload_dropped: [u64; 2],
    /// Each interface's keys XDP's policing refused most (`fastpath::police::Offender`s).
    pub policed_top: serde_json::Map<String, Value>,
    /// Each relationship's link and what it refused, by [`crate::config::RelationshipId`].
    pub failover_link: Vec<LinkMeasure>,
    /// The lease history's writer and PostgreSQL sender (`history::writer::Stats`); null
    /// without `[history]`.
    pub history: Value,
}

/// The failover link as its I/O task counts it (`daemon::strangers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkMeasure {
    /// The link runs over TLS.
    pub tls: bool,
    /// Connections from an address other than the partner's.
    pub refused_strangers: u64,
    /// Connections whose TLS handshake failed, accepted or made.
    pub refused_handshakes: u64,
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
        Request::Leases(q) => leases(core, q, now),
        Request::Stats => stats(core, measured),
        Request::Metrics => json!({ "text": metrics(core, measured) }),
        Request::FailoverStatus { relationship: None } if core.relationships().count() > 1 => {
            let all: Vec<Value> = core
                .relationships()
                .map(|f| failover_status(core, f, now.unix, measured))
                .collect();
            json!({ "relationships": all })
        }
        Request::FailoverStatus { relationship: name }
        | Request::FailoverPartnerDown { relationship: name, .. } => {
            match core.relationship(name.as_deref()) {
                Ok(f) => failover_status(core, f, now.unix, measured),
                Err(e) => json!({ "error": e }),
            }
        }
    }
}

/// A relationship's status, with what its link refused.
fn failover_status(core: &Core, f: &Failover, now: u64, measured: &Measured) -> Value {
    let mut st = f.status(core.server(), now);
    let link = measured.failover_link.get(f.id().index()).copied().unwrap_or_default();
    st["link_tls"] = json!(link.tls);
    st["link_refused_strangers_total"] = json!(link.refused_strangers);
    st["link_refused_handshakes_total"] = json!(link.refused_handshakes);
    st
}

fn leases(core: &Core, q: &LeaseQuery, now: Now) -> Value {
    use crate::store::Lease;
    let bad = |what: &str| json!({ "error": what });
    let mac = match q.mac.as_deref().map(packet::parse_mac) {
        Some(None) => return bad("mac: expected six hex bytes, aa:bb:cc:dd:ee:ff"),
        m => m.flatten(),
    };
    let client_id = match q.client_id.as_deref().map(unhex) {
        Some(None) => return bad("client_id: expected hex bytes"),
        id => id.flatten(),
    };
    let state = match q.state.as_deref() {
        Some(st) => match (1..=7).filter_map(LeaseState::from_u8).find(|x| x.as_str() == st) {
            Some(x) => Some(x),
            None => {
                return bad(
                    "state: one of free, active, expired, released, abandoned, reset, backup",
                );
            }
        },
        None => None,
    };
    let classes = &core.server().config().classes;
    let class = match q.class.as_deref() {
        None => None,
        Some("") => Some(crate::store::LeaseClass::None),
        Some(n) => match classes.iter().find(|c| c.name == n) {
            Some(c) => Some(crate::store::LeaseClass::Class(c.id.0)),
            None => return bad("class: not a [[class]] name of the config (\"\" for none)"),
        },
    };
    let id_matches = |want: &Option<String>, have: Option<&[u8]>| {
        want.as_ref().is_none_or(|w| have.is_some_and(|h| matches_id(w, h)))
    };
    let records = core.server().records();
    if q.count {
        return count(core, records.values());
    }
    let keep = |l: &&Lease| {
        addr_ok(q, l.address)
            && mac.is_none_or(|m| l.mac() == Some(m))
            && client_id.as_ref().is_none_or(|id| l.client_id.as_deref() == Some(&id[..]))
            && state.is_none_or(|s| l.state == s)
            && id_matches(&q.circuit_id, l.circuit_id())
            && id_matches(&q.remote_id, l.remote_id())
            && class.is_none_or(|c| l.class == c)
    };
    // At least one: a page of none could say where the next one starts only by panicking.
    let limit = q.limit.unwrap_or(PAGE_MAX).clamp(1, PAGE_MAX);
    // The narrowest index the query names; whole scans only in address order, by pages.
    let mut found: Vec<&Lease> = if let Some(a) = q.addr {
        records.get(a).into_iter().filter(keep).collect()
    } else if let Some(m) = &mac {
        records.with_chaddr(m).filter(keep).collect()
    } else if let Some(id) = &client_id {
        records.with_client_id(id).filter(keep).collect()
    } else {
        records.from_address(q.after).filter(keep).take(limit + 1).collect()
    };
    found.sort_by_key(|l| l.address);
    let next = (found.len() > limit).then(|| found[limit - 1].address);
    found.truncate(limit);
    let leases: Vec<Value> =
        found.into_iter().map(|l| lease_json(l, now, &core.server().config().classes)).collect();
    json!({ "leases": leases, "next": next })
}

fn addr_ok(q: &LeaseQuery, a: Ipv4Addr) -> bool {
    q.after.is_none_or(|after| a > after)
}

fn lease_json(l: &crate::store::Lease, now: Now, classes: &[crate::config::Class]) -> Value {
    json!({
        "address": l.address,
        "state": l.state.as_str(),
        "mac": l.mac().map(|m| packet::fmt_mac(&m)),
        "client_id": l.client_id.as_ref().map(|c| hex(c)),
        "hostname": l.hostname,
        "circuit_id": l.circuit_id().map(printable),
        "remote_id": l.remote_id().map(printable),
        "relay_info": l.relay_info.as_ref().map(|r| hex(r)),
        "class": match l.class {
            crate::store::LeaseClass::Unknown => Value::Null,
            crate::store::LeaseClass::None => json!(""),
            crate::store::LeaseClass::Class(k) => json!(classes.get(usize::from(k)).map(|c| c.name.as_str())),
        },
        "subnet": l.subnet,
        "expires_in": l.expires_at.cast_signed() - now.unix.cast_signed(),
        "held_for": l.held_until.cast_signed() - now.unix.cast_signed(),
        "cltt": l.cltt,
        "expires_at": l.expires_at,
        "pet_sent": l.pet_sent,
        "pet_acked": l.pet_acked,
        "pet_received": l.pet_received,
    })
}

/// Records by state, overall and per subnet (by prefix).
fn count<'a>(core: &Core, records: impl Iterator<Item = &'a crate::store::Lease>) -> Value {
    let mut total = 0u64;
    let mut by_state = serde_json::Map::new();
    let mut by_subnet: serde_json::Map<String, Value> = serde_json::Map::new();
    let bump = |m: &mut serde_json::Map<String, Value>, k: &str| {
        let n = m.get(k).and_then(Value::as_u64).unwrap_or(0);
        m.insert(k.to_owned(), json!(n + 1));
    };
    for l in records {
        total += 1;
        bump(&mut by_state, l.state.as_str());
        let name = core
            .server()
            .config()
            .subnet(crate::config::SubnetId(l.subnet))
            .map_or_else(|| "none".to_owned(), |s| s.prefix.to_string());
        let entry = by_subnet.entry(name).or_insert_with(|| json!({}));
        if let Some(m) = entry.as_object_mut() {
            bump(m, l.state.as_str());
        }
    }
    json!({ "count": { "total": total, "by_state": by_state, "by_subnet": by_subnet } })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| *c != ':').collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
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

#[must_use]
pub fn hex(b: &[u8]) -> String {
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
    let classes = &core.server().config().classes;
    let classified: serde_json::Map<String, Value> = classes
        .iter()
        .map(|k| k.name.clone())
        .chain(std::iter::once(String::new()))
        .zip(c.classified.iter().copied())
        .map(|(name, n)| (name, n.into()))
        .collect();
    let m = &measured.store;
    json!({
        "received": received,
        "sent": { "offer": c.offers, "ack": c.acks, "nak": c.naks, "inform_ack": c.informs },
        "declines": c.declines,
        "offers_reclaimed": c.offers_reclaimed,
        "releases": c.releases,
        "dropped": dropped,
        "circuit_changes": circuit_changes,
        // By class name; "" is the requests in none.
        "classified": classified,
        "overload_dropped": { "request": measured.overload_dropped[0], "discover": measured.overload_dropped[1] },
        "lease_limited": crate::server::LimitKey::NAMES
            .iter()
            .zip(c.limited)
            .map(|(k, n)| ((*k).to_owned(), Value::from(n)))
            .collect::<serde_json::Map<String, Value>>(),
        "fast_path_renewals_recorded": core.fast_path_renewals(),
        "fast_path": measured.fast_path,
        "lease_tables": measured.lease_tables,
        "policed_top": measured.policed_top,
        "history": measured.history,
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

/// A Prometheus label value: backslash, quote and newline escaped (circuit-ids are quoted).
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The history's counters (`xdhcp_history_written`...), and its database's.
fn history_metrics(h: &Value, line: &mut impl FnMut(&str, &str, &Value)) {
    for (prefix, v) in [("history", h), ("history_postgres", &h["postgres"])] {
        for (k, n) in v.as_object().into_iter().flatten() {
            line(&format!("xdhcp_{prefix}_{k}"), "", n);
        }
    }
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
    for (k, n) in v["overload_dropped"].as_object().into_iter().flatten() {
        line("xdhcp_overload_dropped_total", &format!("{{queue=\"{k}\"}}"), n);
    }
    for (k, n) in v["lease_limited"].as_object().into_iter().flatten() {
        line("xdhcp_lease_limited_total", &format!("{{key=\"{k}\"}}"), n);
    }
    history_metrics(&v["history"], &mut line);
    for (k, n) in v["classified"].as_object().into_iter().flatten() {
        line("xdhcp_class_requests_total", &format!("{{class=\"{k}\"}}"), n);
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
    for (iface, top) in v["policed_top"].as_object().into_iter().flatten() {
        for o in top.as_array().into_iter().flatten() {
            let (kind, key) = (o["kind"].as_str().unwrap_or(""), o["key"].as_str().unwrap_or(""));
            let labels =
                format!("{{iface=\"{iface}\",kind=\"{kind}\",key=\"{}\"}}", label_value(key));
            line("xdhcp_policed_top_dropped", &labels, &o["dropped"]);
        }
    }
    for (iface, t) in v["lease_tables"].as_object().into_iter().flatten() {
        let l = format!("{{iface=\"{iface}\"}}");
        line("xdhcp_fast_path_lease_capacity", &l, &t["lease_capacity"]);
        line("xdhcp_fast_path_leases_without_slot", &l, &t["leases_without_slot"]);
    }
    line("xdhcp_offers_reclaimed_total", "", &v["offers_reclaimed"]);
    line("xdhcp_fast_path_renewals_recorded_total", "", &v["fast_path_renewals_recorded"]);
    line("xdhcp_store_commits_total", "", &v["store"]["commits"]);
    line("xdhcp_store_commit_mean_microseconds", "", &v["store"]["mean_commit_us"]);
    line("xdhcp_store_commit_max_microseconds", "", &v["store"]["max_commit_us"]);
    for f in core.relationships() {
        failover_metrics(&failover_status(core, f, 0, measured), &mut line);
    }
    for p in v["pools"].as_array().into_iter().flatten() {
        let l = format!("{{subnet=\"{}\"}}", p["subnet"].as_str().unwrap_or(""));
        line("xdhcp_pool_size", &l, &p["size"]);
        line("xdhcp_pool_active", &l, &p["active"]);
    }
    out
}

/// A relationship's lines of [`metrics`], from its status `st`, each labelled with its name.
fn failover_metrics(st: &Value, line: &mut impl FnMut(&str, &str, &Value)) {
    let rel = label_value(st["relationship"].as_str().unwrap_or(""));
    let rel = format!("relationship=\"{rel}\"");
    for (side, k) in [("self", "my_state"), ("partner", "partner_state")] {
        let state = st[k].as_str().unwrap_or("unknown");
        line(
            "xdhcp_failover_state",
            &format!("{{{rel},side=\"{side}\",state=\"{state}\"}}"),
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
        line(&format!("xdhcp_failover_{k}"), &format!("{{{rel}}}"), &st[k]);
    }
    for (reason, k) in [
        ("stranger", "link_refused_strangers_total"),
        ("handshake", "link_refused_handshakes_total"),
    ] {
        let labels = format!("{{{rel},reason=\"{reason}\"}}");
        line("xdhcp_failover_link_refused_total", &labels, &st[k]);
    }
    line(
        "xdhcp_failover_partner_clock_offset_seconds",
        &format!("{{{rel}}}"),
        &st["partner_clock_offset_secs"],
    );
    for p in st["pools"].as_array().into_iter().flatten() {
        let subnet = p["subnet"].as_str().unwrap_or("");
        for (owner, k) in [("self", "share_ours_free"), ("partner", "share_partner_free")] {
            line(
                "xdhcp_failover_share_free",
                &format!("{{{rel},subnet=\"{subnet}\",owner=\"{owner}\"}}"),
                &p[k],
            );
        }
    }
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

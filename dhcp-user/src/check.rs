//! `xdhcp check --config FILE`: what a valid config would serve, as text, so an operator can
//! read back what the server understood before starting it (as `dhcpd -t` and
//! `kea-dhcp4 -t` are used).
use std::fmt::Write as _;

use dhcp_failover::Role;

use crate::config::{Config, classes::Condition, classes::Pattern};

/// The summary `xdhcp check` prints for `c`.
#[must_use]
pub fn summary(c: &Config) -> String {
    let mut s = String::new();
    let reservations: usize = c.subnets.iter().map(|s| s.reservations.len()).sum();
    let dynamic: u64 = c.subnets.iter().flat_map(|s| &s.pools).map(crate::config::Pool::size).sum();
    let _ = writeln!(
        s,
        "config OK: {} subnet(s), {} pool address(es), {} class(es), {} reservation(s)",
        c.subnets.len(),
        dynamic,
        c.classes.len(),
        reservations
    );
    let _ = writeln!(s, "server {} on {}", c.server_id, c.interfaces.join(", "));
    for f in &c.failover {
        let role = match f.role {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        };
        let _ = write!(
            s,
            "failover {:?}: {role}, {}:{} <-> peer {}:{}, max-response-delay {} s",
            f.name, f.address, f.port, f.peer_address, f.peer_port, f.max_response_delay
        );
        if f.role == Role::Primary {
            let buckets: u32 = f.hba.0.iter().map(|b| b.count_ones()).sum();
            let _ = write!(s, ", mclt {} s, {buckets}/256 hash buckets ours", f.mclt);
        }
        let _ = writeln!(s, ", load balance max {} s", f.load_balance_max_seconds);
        match &f.tls {
            Some(t) => {
                let name = t.peer_name.clone().unwrap_or_else(|| f.peer_address.to_string());
                let _ = writeln!(
                    s,
                    "  link: TLS 1.3, the partner's certificate from {} naming {name}",
                    t.ca.display()
                );
            }
            None => s.push_str("  link: plain TCP (protect it: docs/failover.md)\n"),
        }
    }
    for sub in &c.subnets {
        let _ = write!(s, "subnet[{}] {}", sub.id.0, sub.prefix);
        if let Some(n) = &sub.shared_network {
            let _ = write!(s, " (shared network {n:?})");
        }
        let _ = write!(
            s,
            ": lease {} s (min {}, max {}), t1 {} s, t2 {} s",
            sub.lease_time, sub.min_lease, sub.max_lease, sub.t1, sub.t2
        );
        if let Some(r) = sub.failover {
            let name = &c.failover[r.index()].name;
            let _ = write!(s, ", shared in failover {name:?}");
        }
        s.push('\n');
        for p in &sub.pools {
            let _ = write!(s, "  pool {} - {}: {} address(es)", p.start, p.end, p.size());
            let names = |set: crate::config::classes::ClassSet| {
                c.classes
                    .iter()
                    .filter(|k| set.contains(k.id))
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !p.allow.is_empty() {
                let _ = write!(s, ", allow {}", names(p.allow));
            }
            if !p.deny.is_empty() {
                let _ = write!(s, ", deny {}", names(p.deny));
            }
            s.push('\n');
        }
        if !sub.reservations.is_empty() {
            let _ = writeln!(s, "  {} reservation(s)", sub.reservations.len());
        }
    }
    for k in &c.classes {
        let conds: Vec<String> = k.conditions.iter().map(condition).collect();
        let _ = writeln!(s, "class {:?}: {}", k.name, conds.join(" and "));
    }
    s
}

fn condition(c: &Condition) -> String {
    let pat = |what: &str, p: &Pattern| {
        let v = match std::str::from_utf8(&p.bytes) {
            Ok(t) if t.chars().all(|c| !c.is_control()) => format!("{t:?}"),
            _ => hex(&p.bytes),
        };
        format!("{what} {} {v}", if p.prefix { "begins with" } else { "is" })
    };
    match c {
        Condition::VendorClass(p) => pat("vendor class", p),
        Condition::UserClass(p) => pat("user class", p),
        Condition::CircuitId(p) => pat("circuit-id", p),
        Condition::RemoteId(p) => pat("remote-id", p),
        Condition::MacPrefix(m) => format!("MAC begins with {}", hex(m)),
    }
}

fn hex(b: &[u8]) -> String {
    crate::packet::fmt_hw(b)
}

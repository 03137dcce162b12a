//! What the failover tests check once the clients are done: each store's record of every pool
//! address (xdhcp's over its control socket, dhcpd's in its lease file), whether the two agree,
//! whether any address is stuck or bound to two clients, and whether any log shows a reject.
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    hash::BuildHasher,
    net::Ipv4Addr,
    time::Duration,
};

use super::{Dhcpd, PairConfig, Xdhcp, in_state, isc_leases, num, tail, wait_for};

/// Address → state (`free`, `backup`, `active`, ...) of every address of a pool.
pub type States = HashMap<Ipv4Addr, String>;

/// An xdhcp store's records of `pair`'s pool: address → state. A pool address without a
/// record is FREE (the primary's, never handed out), as the pool counts take it.
///
/// # Panics
/// When `x` does not answer the lease query.
#[must_use]
pub fn xdhcp_states(pair: &PairConfig, x: &Xdhcp) -> States {
    let mut states: States = pair.pool().map(|a| (a, "free".to_owned())).collect();
    states.extend(
        x.leases().unwrap().iter().filter_map(|l| {
            Some((l["address"].as_str()?.parse().ok()?, l["state"].as_str()?.into()))
        }),
    );
    states
}

/// The `binding state` of one lease block of an ISC lease file.
#[must_use]
pub fn binding_state(block: &str) -> Option<&str> {
    block
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("binding state ").map(|s| s.trim_end_matches(';')))
}

/// dhcpd's lease file: address → binding state (an address dhcpd never wrote is missing).
#[must_use]
pub fn isc_states(d: &Dhcpd) -> States {
    isc_leases(&d.lease_file())
        .into_iter()
        .map(|(a, b)| (a, binding_state(&b).unwrap_or("").to_owned()))
        .collect()
}

/// dhcpd's lease file: address → (binding state, MAC if any).
#[must_use]
pub fn isc_records(d: &Dhcpd) -> HashMap<Ipv4Addr, (String, Option<String>)> {
    isc_leases(&d.lease_file())
        .into_iter()
        .map(|(a, b)| {
            let mac = b.lines().map(str::trim).find_map(|l| {
                l.strip_prefix("hardware ethernet ").map(|m| m.trim_end_matches(';').to_owned())
            });
            (a, (binding_state(&b).unwrap_or("").to_owned(), mac))
        })
        .collect()
}

/// dhcpd's ACTIVE bindings: address → MAC.
#[must_use]
pub fn isc_active(d: &Dhcpd) -> HashMap<Ipv4Addr, String> {
    isc_records(d)
        .into_iter()
        .filter(|(_, r)| r.0 == "active")
        .filter_map(|(a, r)| Some((a, r.1?)))
        .collect()
}

/// What the tests expect of some addresses once everything has settled (`active` for those
/// clients still hold, `abandoned` for those declined and not given back); every other pool
/// address is FREE or BACKUP.
pub type Expected = HashMap<Ipv4Addr, &'static str>;

/// The pool's addresses in `states` that are neither FREE nor BACKUP, or not in the state
/// `expect` says, as "address state" lines.
#[must_use]
pub fn not_free(pair: &PairConfig, states: &States, expect: &Expected) -> Vec<String> {
    pair.pool()
        .filter_map(|a| {
            let s = states.get(&a).map(String::as_str);
            let ok = match expect.get(&a) {
                Some(e) => s == Some(*e),
                None => matches!(s, Some("free" | "backup")),
            };
            (!ok).then(|| format!("{a} {}", s.unwrap_or("missing")))
        })
        .collect()
}

/// Waits until both sides' `states` (`sides`: a name and how to read its store) have every
/// pool address FREE or BACKUP, or as `expect` says, and agree; `diag` says more on failure,
/// given the addresses that are not so.
///
/// # Panics
/// When that does not happen within `timeout`.
pub fn wait_settled(
    pair: &PairConfig,
    sides: [(&str, &dyn Fn() -> States); 2],
    expect: &Expected,
    timeout: Duration,
    diag: &dyn Fn(&[Ipv4Addr]) -> String,
) {
    let [(an, a), (bn, b)] = sides;
    let mut last = String::new();
    let mut stuck = Vec::new();
    let settled = wait_for("every address FREE or BACKUP on both", timeout, || {
        let (sa, sb) = (a(), b());
        let (na, nb) = (not_free(pair, &sa, expect), not_free(pair, &sb, expect));
        let differ: Vec<Ipv4Addr> = pair.pool().filter(|x| sa.get(x) != sb.get(x)).collect();
        let shown: Vec<String> =
            differ.iter().map(|x| format!("{x} {:?}/{:?}", sa.get(x), sb.get(x))).collect();
        last = format!("{an}: {na:?}\n{bn}: {nb:?}\ndiffer ({an}/{bn}): {shown:?}");
        stuck = na
            .iter()
            .chain(&nb)
            .filter_map(|s| s.split(' ').next()?.parse().ok())
            .chain(differ.iter().copied())
            .collect();
        Ok((na.is_empty() && nb.is_empty() && differ.is_empty()).then_some(()))
    });
    if let Err(e) = settled {
        panic!("{e:#}\n{last}\n{}", diag(&stuck));
    }
}

/// The lines of `log` about one of `addrs`.
#[must_use]
pub fn lines_about(log: &str, addrs: &[Ipv4Addr]) -> String {
    let words: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    log.lines()
        .filter(|l| {
            words.iter().any(|a| {
                l.match_indices(a.as_str())
                    .any(|(i, _)| !l[i + a.len()..].starts_with(|c: char| c.is_ascii_digit()))
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The status and the log's end of `x`, for a failure message.
#[must_use]
pub fn xdhcp_diag(who: &str, x: &Xdhcp) -> String {
    format!(
        "{who}'s status: {}\n{who}'s log:\n{}",
        x.failover().map_or_else(|e| format!("{e:#}"), |v| v.to_string()),
        log_tail(x, 40)
    )
}

/// [`wait_settled`] for an xdhcp pair: every address FREE or BACKUP on both (or as `expect`
/// says), both stores the same.
pub fn wait_pair_settled(
    pair: &PairConfig,
    p: &Xdhcp,
    s: &Xdhcp,
    expect: &Expected,
    timeout: Duration,
) {
    wait_settled(
        pair,
        [("primary", &|| xdhcp_states(pair, p)), ("secondary", &|| xdhcp_states(pair, s))],
        expect,
        timeout,
        &|stuck| {
            format!(
                "{}\n{}\nthe primary's lines about {stuck:?}:\n{}\nthe secondary's:\n{}",
                xdhcp_diag("primary", p),
                xdhcp_diag("secondary", s),
                lines_about(&p.log_text(), stuck),
                lines_about(&s.log_text(), stuck)
            )
        },
    );
}

/// [`wait_settled`] for xdhcp and dhcpd.
pub fn wait_isc_settled(
    pair: &PairConfig,
    x: &Xdhcp,
    d: &Dhcpd,
    expect: &Expected,
    timeout: Duration,
) {
    wait_settled(
        pair,
        [("xdhcp", &|| xdhcp_states(pair, x)), ("dhcpd", &|| isc_states(d))],
        expect,
        timeout,
        &|stuck| {
            format!(
                "{}\ndhcpd's log:\n{}\nxdhcp's lines about {stuck:?}:\n{}\ndhcpd's:\n{}",
                xdhcp_diag("xdhcp", x),
                tail(&d.log_text(), 40),
                lines_about(&x.log_text(), stuck),
                lines_about(&d.log_text(), stuck)
            )
        },
    );
}

/// `x`'s failover pool counts once everything settled as `expect` says: that many ACTIVE and
/// ABANDONED, none EXPIRED, RELEASED or RESET, and all the others FREE or BACKUP.
///
/// # Panics
/// When they are not so.
pub fn assert_pool_counts(pair: &PairConfig, x: &Xdhcp, expect: &Expected) {
    let st = x.failover().unwrap();
    let p = &st["pools"][0];
    let count = |s: &str| expect.values().filter(|e| **e == s).count() as u64;
    for k in ["active", "expired", "released", "abandoned", "reset"] {
        assert_eq!(num(p, k), count(k), "{k}: {st}");
    }
    let unbound = pair.pool_size() - expect.len() as u64;
    assert_eq!(num(p, "free_primary") + num(p, "backup_secondary"), unbound, "{st}");
}

/// The last `n` lines of an xdhcp log that are not keep-alives.
#[must_use]
pub fn log_tail(x: &Xdhcp, n: usize) -> String {
    let log = x.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" Contact xid ")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Lines of `log` that mention a reject.
#[must_use]
pub fn rejects(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.to_ascii_lowercase().contains("reject")).collect()
}

/// No reject in `x`'s log (it shows the acks it sent and received) or counters. On failure,
/// every line of its log and of `partner_log` that names a rejected address.
///
/// # Panics
/// When there is one.
pub fn assert_no_reject(who: &str, x: &Xdhcp, partner_log: Option<&str>) {
    let log = x.log_text();
    let r = rejects(&log);
    if !r.is_empty() {
        let addrs: BTreeSet<&str> = r
            .iter()
            .flat_map(|l| l.split(|c: char| !(c.is_ascii_digit() || c == '.')))
            .filter(|w| w.parse::<Ipv4Addr>().is_ok_and(|a| a.octets()[3] >= 100))
            .collect();
        let about = |text: &str| {
            text.lines()
                .filter(|l| {
                    addrs.iter().any(|a| {
                        l.contains(&format!("{a} "))
                            || l.contains(&format!("{a}:"))
                            || l.ends_with(a)
                    })
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{who} logged rejects:\n{}\n\n{who}'s lines about {addrs:?}:\n{}\n\npartner's lines \
             about them:\n{}",
            r.join("\n"),
            about(&log),
            partner_log.map(about).unwrap_or_default()
        );
    }
    let st = x.failover().unwrap();
    assert_eq!(num(&st, "rejects_received_total"), 0, "{who}: {st}");
    assert!(log.contains("failover: received"), "{who}'s log has no failover lines:\n{log}");
}

/// No reject in dhcpd's log.
///
/// # Panics
/// When there is one.
pub fn assert_no_isc_reject(d: &Dhcpd) {
    let log = d.log_text();
    let r = rejects(&log);
    assert!(r.is_empty(), "dhcpd logged rejects:\n{}", r.join("\n"));
}

/// Addresses two stores (address: MAC) bind to different clients.
#[must_use]
pub fn double_bound<S: BuildHasher>(
    a: &HashMap<Ipv4Addr, String, S>,
    b: &HashMap<Ipv4Addr, String, S>,
) -> Vec<String> {
    a.iter()
        .filter_map(|(addr, m)| {
            b.get(addr).filter(|n| *n != m).map(|n| format!("{addr}: {m} / {n}"))
        })
        .collect()
}

/// No client holds two addresses in `store` (address: MAC).
///
/// # Panics
/// When one does.
pub fn assert_one_address_per_client<S: BuildHasher>(store: &HashMap<Ipv4Addr, String, S>) {
    let mut holders: HashMap<&String, Ipv4Addr> = HashMap::new();
    for (a, m) in store {
        if let Some(b) = holders.insert(m, *a) {
            panic!("{m} holds {a} and {b}");
        }
    }
}

/// The secondary's share (BACKUP), once both databases agree on it and it has stayed the same
/// for a poll: exactly `half` addresses when xdhcp is the primary and balances, whatever
/// dhcpd's balancing decided when it is (`None`).
///
/// # Panics
/// When they do not agree within 30 s.
#[must_use]
pub fn agreed_backup_share(x: &Xdhcp, d: &Dhcpd, half: Option<u64>) -> HashSet<Ipv4Addr> {
    let mut last = 0;
    wait_for("the secondary's share in both databases", Duration::from_secs(30), || {
        let backup = in_state(x, "backup");
        let isc = isc_records(d);
        let agreed = !backup.is_empty()
            && half.is_none_or(|h| backup.len() as u64 == h)
            && backup.iter().all(|a| isc.get(a).is_some_and(|r| r.0 == "backup"))
            && isc.values().filter(|r| r.0 == "backup").count() == backup.len();
        let settled = agreed && backup.len() == last;
        last = if agreed { backup.len() } else { 0 };
        Ok(settled.then_some(backup))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", tail(&d.log_text(), 40)))
}

/// The reject lines of `log` (xdhcp's or dhcpd's) other than reason 16 ("less critical
/// binding information") about one of `crossing`: the rule for two updates of one address
/// that cross on the wire, which both servers apply (ISC dhcpd's `failover_lease_is_better`)
/// when both heard the same broadcast DECLINE.
#[must_use]
pub fn rejects_but_crossings<'a>(log: &'a str, crossing: &[Ipv4Addr]) -> Vec<&'a str> {
    rejects(log)
        .into_iter()
        .filter(|l| {
            let about = crossing.iter().any(|a| {
                l.contains(&format!("[{a} rejected 16]"))
                    || l.contains(&format!("our update for {a}: reason 16 "))
                    || (l.contains(&format!("bind update on {a} "))
                        && (l.contains("less critical") || l.contains("crosses yours")))
            });
            !about
        })
        .collect()
}

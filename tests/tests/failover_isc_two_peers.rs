//! One xdhcp and one ISC dhcpd holding two failover relationships with each other: "east",
//! xdhcp the primary and dhcpd the secondary, and "west", dhcpd the primary and xdhcp the
//! secondary. dhcpd has two `failover peer` declarations, each pool naming its own.
//!
//! Each relationship serves one subnet, and each subnet is a link of its own: a client's
//! subnet is the one of the interface its broadcast arrives on, and two subnets on one link
//! would be a shared network, which xdhcp (as the draft) keeps in one relationship. So there
//! are two segments, and both servers have an interface on each: 10.70.0.0/24 is east's,
//! 10.71.0.0/24 west's. Both relationships' links run between the same two addresses (the
//! servers' on the east segment), east on port 647 and west on 648 at both ends: the partner
//! host is the same, so the port alone tells the relationships apart, on either side.
//!
//! Both reach NORMAL, clients of both subnets are bound and known to both servers; dhcpd is
//! killed (SIGKILL: it says nothing to either relationship), and both of xdhcp's relationships
//! go COMMUNICATIONS-INTERRUPTED; the operator declares dhcpd down for west only, and only
//! west goes PARTNER-DOWN. dhcpd comes back on its lease file: east resumes, west recovers
//! through xdhcp, and both are NORMAL again, both servers knowing every binding and no address
//! bound to two clients.
use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use dhcp_lab::lab;
use integration::{
    failover_lab::{
        Dhcpd, Segment, Xdhcp, active, assert_one_address_per_client, dora_clients, double_bound,
        in_state, isc_active, isc_records, lines_about, log_tail, num, rejects_but_crossings, tail,
        wait_for,
    },
    fixture::root_required,
};
use xdhcp::daemon::ctl::Request;

/// East's subnet 10.70.0.0/24 (xdhcp primary), west's 10.71.0.0/24 (dhcpd primary).
const EAST: u8 = 70;
const WEST: u8 = 71;
/// Each pool: .100 to .119.
const POOL_END: u8 = 119;
const POOL: u64 = 20;
/// Short, to keep the test bounded: it is dhcpd's time in RECOVER-WAIT when it comes back.
const MCLT: u64 = 30;
/// Clients bound in each subnet before the crash.
const CLIENTS: u32 = 6;

/// Not a test: the server process of the test below ([`Xdhcp::spawn`]).
#[test]
fn daemon_process() {
    lab::daemon_child();
}

const fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, net, 0, host)
}

const fn mac(net: u8, host: u8) -> [u8; 6] {
    [0x02, net, 0, 0, 0, host]
}

/// xdhcp (.1 on east's segment, .2 on west's): east's primary and west's secondary, both
/// relationships from 10.70.0.1 to dhcpd's 10.70.0.2, east on 647 and west on 648. `west_if`
/// is its interface on west's segment.
fn xdhcp_config(west_if: &str) -> String {
    let (me, peer) = (ip(EAST, 1), ip(EAST, 2));
    format!(
        r#"interfaces = ["IFACE", "{west_if}"]
server_id = "{me}"
state_dir = "STATE"
control_socket = "SOCKET"

[fast_path]
attach_mode = "native"

[[failover]]
name = "east"
role = "primary"
address = "{me}"
port = 647
peer_address = "{peer}"
peer_port = 647
max_response_delay = 5
max_unacked_updates = 10
load_balance_max_seconds = 60
mclt = {MCLT}
split = 128

[[failover]]
name = "west"
role = "secondary"
address = "{me}"
port = 648
peer_address = "{peer}"
peer_port = 648
max_response_delay = 5
max_unacked_updates = 10
load_balance_max_seconds = 60

[[subnet]]
prefix = "10.{EAST}.0.0/24"
pools = [{{ start = "10.{EAST}.0.100", end = "10.{EAST}.0.{POOL_END}" }}]
lease_time = 600
failover = "east"

[[subnet]]
prefix = "10.{WEST}.0.0/24"
pools = [{{ start = "10.{WEST}.0.100", end = "10.{WEST}.0.{POOL_END}" }}]
lease_time = 600
failover = "west"
"#
    )
}

/// dhcpd (.2 on east's segment, .1 on west's): east's secondary and west's primary, the
/// mirror of [`xdhcp_config`]. It acknowledges once 10 updates are pending (or after 2 s).
/// `dhcp-cache-threshold 0`: a client asking again within a quarter of its lease would get
/// its lease unchanged, and the test asks again to get the full lease time.
fn dhcpd_config() -> String {
    let (me, peer) = (ip(EAST, 2), ip(EAST, 1));
    let peer_block = |name: &str, port: u16, role: &str| {
        let primary_only = if role == "primary" {
            format!("  mclt {MCLT};\n  split 128;\n")
        } else {
            String::new()
        };
        format!(
            r#"failover peer "{name}" {{
  {role};
  address {me};
  port {port};
  peer address {peer};
  peer port {port};
  max-response-delay 5;
  max-unacked-updates 10;
  load balance max seconds 60;
{primary_only}}}
"#
        )
    };
    let subnet = |net: u8, name: &str| {
        format!(
            r#"subnet 10.{net}.0.0 netmask 255.255.255.0 {{
  pool {{
    failover peer "{name}";
    range 10.{net}.0.100 10.{net}.0.{POOL_END};
  }}
}}
"#
        )
    };
    format!(
        "ddns-update-style none;\nauthoritative;\ndefault-lease-time 600;\nmax-lease-time 600;\n\
         dhcp-cache-threshold 0;\n\n\
         {}\n{}\n{}\n{}",
        peer_block("east", 647, "secondary"),
        peer_block("west", 648, "primary"),
        subnet(EAST, "east"),
        subnet(WEST, "west"),
    )
}

/// Each of xdhcp's relationships by name: (its state, the partner's).
fn relationships(x: &Xdhcp) -> anyhow::Result<BTreeMap<String, (String, String)>> {
    let v = x.failover()?;
    let list = v["relationships"].as_array().with_context(|| format!("no relationships: {v}"))?;
    Ok(list
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("?").to_owned();
            (s("relationship"), (s("my_state"), s("partner_state")))
        })
        .collect())
}

/// Waits until xdhcp's east and west are in `east` and `west` (its own states).
fn wait_states(x: &Xdhcp, east: &str, west: &str, timeout: Duration) {
    let mut last = BTreeMap::new();
    wait_for(&format!("east {east}, west {west}"), timeout, || {
        last = relationships(x)?;
        let is = |n: &str, s: &str| last.get(n).is_some_and(|r| r.0 == s);
        Ok((is("east", east) && is("west", west)).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nxdhcp's relationships: {last:?}\n{}", log_tail(x, 40)));
}

/// Waits until both of xdhcp's relationships and their partner are NORMAL, and dhcpd's log
/// after its first `since` bytes says it moved to NORMAL in each.
fn wait_all_normal(x: &Xdhcp, d: &Dhcpd, since: usize, timeout: Duration) {
    let mut last = BTreeMap::new();
    wait_for("both relationships NORMAL on both servers", timeout, || {
        last = relationships(x)?;
        let xdhcp_normal = ["east", "west"].iter().all(|n| {
            last.get(*n).is_some_and(|(me, partner)| me == "normal" && partner == "normal")
        });
        let log = d.log_text();
        let recent = log.get(since..).unwrap_or_default();
        let dhcpd_normal = ["east", "west"].iter().all(|n| {
            recent.lines().any(|l| {
                l.contains(&format!("failover peer {n}: I move from")) && l.ends_with(" to normal")
            })
        });
        Ok((xdhcp_normal && dhcpd_normal).then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nxdhcp's relationships: {last:?}\n{}\ndhcpd's log:\n{}",
            log_tail(x, 40),
            tail(&d.log_text(), 40)
        )
    });
}

/// The bindings of `subnet` in a store (address: MAC).
fn in_subnet(store: &HashMap<Ipv4Addr, String>, net: u8) -> HashMap<Ipv4Addr, String> {
    store.iter().filter(|(a, _)| a.octets()[1] == net).map(|(a, m)| (*a, m.clone())).collect()
}

/// Waits until xdhcp's and dhcpd's ACTIVE bindings are the same, at least `min` in each
/// subnet, and returns them.
fn wait_same_bindings(x: &Xdhcp, d: &Dhcpd, min: usize) -> HashMap<Ipv4Addr, String> {
    let mut differ = String::new();
    wait_for("the same bindings on both servers", Duration::from_secs(30), || {
        let (ours, theirs) = (active(x), isc_active(d));
        let clash = double_bound(&ours, &theirs);
        assert!(clash.is_empty(), "an address bound to two clients: {clash:?}");
        differ = format!("xdhcp: {ours:?}\ndhcpd: {theirs:?}");
        let enough = [EAST, WEST].iter().all(|n| in_subnet(&ours, *n).len() >= min);
        Ok((enough && ours == theirs).then_some(ours))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{differ}\ndhcpd's log:\n{}", tail(&d.log_text(), 40)))
}

/// Takes a pinned fast path off an interface the harness does not know of (xdhcp's second).
struct Unpin(String);

impl Drop for Unpin {
    fn drop(&mut self) {
        let _ = xdhcp::fastpath::detach(&self.0);
    }
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario, NORMAL to crash to NORMAL, read top to bottom"
)]
fn dhcpd_with_two_relationships_crashes_partner_down_on_west_leaves_east_interrupted_and_both_recover()
 {
    root_required();
    let t0 = Instant::now();
    let mut east = Segment::new().unwrap();
    let mut west = Segment::new().unwrap();
    let xa = east.port("xd", mac(EAST, 1), Some(ip(EAST, 1))).unwrap();
    let da = east.port("isc", mac(EAST, 2), Some(ip(EAST, 2))).unwrap();
    let x_west = west.attach(&xa, mac(WEST, 2), ip(WEST, 2)).unwrap();
    let d_west = west.attach(&da, mac(WEST, 1), ip(WEST, 1)).unwrap();
    let east_clients = east.port("ce", mac(EAST, 3), None).unwrap();
    let west_clients = west.port("cw", mac(WEST, 3), None).unwrap();
    // Dropped after the server, which leaves its fast path pinned on both interfaces.
    let _unpin = Unpin(x_west.clone());
    let x = Xdhcp::spawn(&xa, &xdhcp_config(&x_west)).unwrap();
    let dconf = dhcpd_config();
    let d = Dhcpd::start_on(&da, &[&d_west], &dconf, None).unwrap();

    wait_all_normal(&x, &d, 0, Duration::from_secs(90));
    let normal_in = t0.elapsed();
    // Each primary gives its secondary half the pool before a client of the secondary's
    // hash buckets can be served: xdhcp balances east to exactly half, west is dhcpd's to
    // balance.
    wait_for("each secondary's share in both stores", Duration::from_secs(30), || {
        let backup: Vec<Ipv4Addr> = x
            .leases()?
            .iter()
            .filter(|l| l["state"] == "backup")
            .filter_map(|l| l["address"].as_str()?.parse().ok())
            .collect();
        let isc = isc_records(&d);
        let count = |net: u8| backup.iter().filter(|a| a.octets()[1] == net).count() as u64;
        let agreed = backup.iter().all(|a| isc.get(a).is_some_and(|r| r.0 == "backup"))
            && isc.values().filter(|r| r.0 == "backup").count() == backup.len();
        Ok((agreed && count(EAST) == POOL / 2 && count(WEST) > 0).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\ndhcpd's log:\n{}", tail(&d.log_text(), 40)));

    // Clients on both links, each served by whichever server its hash bucket says, and each
    // binding sent to the other server over its own subnet's relationship.
    for (port, seed) in [(&east_clients, 1), (&west_clients, 2)] {
        let bound = dora_clients(port, CLIENTS, seed, Duration::from_secs(20)).unwrap();
        assert_eq!(bound, u64::from(CLIENTS), "clients bound on {}", port.iface);
    }
    let first = wait_same_bindings(&x, &d, CLIENTS as usize);
    for net in [EAST, WEST] {
        assert_eq!(in_subnet(&first, net).len(), CLIENTS as usize, "{first:?}");
    }
    // Those first leases last the MCLT (the partner knew nothing of them) and would run out
    // during the test. Now that both servers know them, the same clients asking again get
    // their own address for the full lease time.
    for (port, seed) in [(&east_clients, 1), (&west_clients, 2)] {
        let bound = dora_clients(port, CLIENTS, seed, Duration::from_secs(20)).unwrap();
        assert_eq!(bound, u64::from(CLIENTS), "clients bound again on {}", port.iface);
    }
    let before = wait_same_bindings(&x, &d, CLIENTS as usize);
    assert_eq!(before, first, "a client moved to another address");
    // Each relationship runs between the same two addresses, told apart by the port.
    let rels = x.failover().unwrap();
    for (k, (rel, peer)) in
        [("east", "10.70.0.2:647"), ("west", "10.70.0.2:648")].iter().enumerate()
    {
        assert_eq!(rels["relationships"][k]["relationship"], *rel, "{rels}");
        assert_eq!(rels["relationships"][k]["peer"], *peer, "{rels}");
    }
    // xdhcp's share of each pool: the BACKUP addresses of west's, where it is the secondary;
    // east's BACKUP ones are dhcpd's.
    let backup = in_state(&x, "backup");
    let short: Vec<String> = x
        .leases()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "active" && l["expires_in"].as_i64() < Some(500))
        .map(|l| format!("{} in {} s", l["address"], l["expires_in"]))
        .collect();
    assert!(short.is_empty(), "leases still about MCLT long: {short:?}");
    eprintln!(
        "isc two peers: both relationships NORMAL in {:.1} s; {} bindings on both servers",
        normal_in.as_secs_f64(),
        before.len()
    );

    // dhcpd dies without a word on either link.
    let ddir = d.crash();
    let crashed = Instant::now();
    wait_states(
        &x,
        "communications-interrupted",
        "communications-interrupted",
        Duration::from_secs(30),
    );
    let interrupted_in = crashed.elapsed();

    // The operator declares dhcpd down for west only.
    let declared = x
        .ask(&Request::FailoverPartnerDown { confirm: true, relationship: Some("west".into()) })
        .unwrap();
    assert_eq!(declared["status"]["relationship"], "west", "{declared}");
    assert_eq!(declared["status"]["my_state"], "partner-down", "{declared}");
    let usable_in = num(&declared, "usable_in_secs");
    assert!((MCLT - 2..=MCLT).contains(&usable_in), "{declared}");
    wait_states(&x, "communications-interrupted", "partner-down", Duration::from_secs(5));
    // And east stays so: a partner-down on one relationship is no news to the other.
    std::thread::sleep(Duration::from_secs(2));
    let after = relationships(&x).unwrap();
    assert_eq!(after["east"].0, "communications-interrupted", "{after:?}");
    assert_eq!(after["west"].0, "partner-down", "{after:?}");
    let metrics = x.ask(&Request::Metrics).unwrap();
    let text = metrics["text"].as_str().unwrap_or_default();
    for (rel, state) in [("east", "communications-interrupted"), ("west", "partner-down")] {
        let want = format!(
            "xdhcp_failover_state{{relationship=\"{rel}\",side=\"self\",state=\"{state}\"}} 1"
        );
        assert!(text.lines().any(|l| l == want), "no {want:?} in:\n{text}");
    }

    // New clients on both links meanwhile: xdhcp alone answers, each from its own share of its
    // subnet's pool (east's FREE addresses, as the primary; west's BACKUP ones, as the
    // secondary), since west's STOS+MCLT is still ahead.
    let mut outage = HashMap::new();
    for (port, seed, net) in [(&east_clients, 3, EAST), (&west_clients, 4, WEST)] {
        let before_them = active(&x);
        let bound = dora_clients(port, 2, seed, Duration::from_secs(10)).unwrap();
        assert_eq!(bound, 2, "new clients bound on {}", port.iface);
        for (a, m) in active(&x).into_iter().filter(|(a, _)| !before_them.contains_key(a)) {
            assert_eq!(a.octets()[1], net, "{a} for a client on 10.{net}.0.0/24");
            assert_eq!(
                backup.contains(&a),
                net == WEST,
                "{a}: not from xdhcp's own share of 10.{net}.0.0/24"
            );
            outage.insert(a, m);
        }
    }
    assert_eq!(outage.len(), 4, "{outage:?}");
    eprintln!(
        "isc two peers: dhcpd killed; both COMMUNICATIONS-INTERRUPTED in {:.1} s, west alone \
         PARTNER-DOWN",
        interrupted_in.as_secs_f64()
    );

    // dhcpd comes back on its lease file. East: it and xdhcp pick up where the link broke.
    // West: xdhcp is in PARTNER-DOWN, so dhcpd recovers (RECOVER, RECOVER-WAIT for the MCLT,
    // RECOVER-DONE) before both go NORMAL.
    let back = Instant::now();
    let log_before = std::fs::read_to_string(ddir.path().join("dhcpd.log")).unwrap();
    let d = Dhcpd::start_on(&da, &[&d_west], &dconf, Some(ddir)).unwrap();
    wait_all_normal(&x, &d, log_before.len(), Duration::from_secs(MCLT + 60));
    let since = d.log_text().get(log_before.len()..).unwrap_or_default().to_owned();
    assert!(
        since.contains("failover peer west: I move from startup to recover"),
        "dhcpd did not recover west through xdhcp's PARTNER-DOWN:\n{since}"
    );
    assert!(
        !since.contains("failover peer east: I move from startup to recover"),
        "dhcpd recovered east, which xdhcp never declared down:\n{since}"
    );
    let recovered_in = back.elapsed();
    // dhcpd learnt what xdhcp bound while it was away: west's by asking for everything
    // (UPDREQALL) in RECOVER, east's from xdhcp's queue of updates once reconnected.
    wait_for("the outage's bindings in dhcpd's lease file", Duration::from_secs(20), || {
        let isc = isc_records(&d);
        let missing: Vec<_> = outage
            .iter()
            .filter(|(a, m)| isc.get(a).and_then(|r| r.1.as_ref()) != Some(m))
            .collect();
        Ok(missing.is_empty().then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{outage:?}\nlease file:\n{}", tail(&d.lease_file(), 40)));
    // Only west went through PARTNER-DOWN, on either side.
    let xlog = x.log_text();
    assert!(
        xlog.contains("I move from CommunicationsInterrupted to PartnerDown relationship=west"),
        "{}",
        log_tail(&x, 40)
    );
    assert!(
        !xlog.contains("to PartnerDown relationship=east"),
        "east went PARTNER-DOWN:\n{}",
        log_tail(&x, 40)
    );
    assert!(
        !since.contains(
            "failover peer east: peer moves from communications-interrupted to partner-down"
        ),
        "dhcpd heard east was PARTNER-DOWN:\n{since}"
    );

    // Both servers know every binding, and none is bound to two clients.
    let end = wait_same_bindings(&x, &d, CLIENTS as usize);
    for (a, m) in &before {
        assert_eq!(end.get(a), Some(m), "{a} lost its client across the crash: {end:?}");
    }
    assert!(double_bound(&end, &isc_active(&d)).is_empty());
    assert_one_address_per_client(&end);
    // No update was refused, but where both servers acknowledged one client's second
    // REQUEST: dhcpd answers a REQUEST naming xdhcp's server identifier when the lease is
    // already that client's, so both send the binding and the two updates cross, and the
    // receiver of the later one refuses it as less critical (reason 16), harmlessly: it is
    // the same binding.
    let crossing: Vec<Ipv4Addr> = first.keys().copied().collect();
    let dlog = d.log_text();
    for (who, log) in [("xdhcp", &xlog), ("dhcpd", &dlog)] {
        let r = rejects_but_crossings(log, &crossing);
        if !r.is_empty() {
            let all: Vec<Ipv4Addr> = before.keys().chain(outage.keys()).copied().collect();
            panic!(
                "{who} logged rejects:\n{}\nxdhcp about {all:?}:\n{}\ndhcpd:\n{}",
                r.join("\n"),
                lines_about(&xlog, &all),
                lines_about(&dlog, &all)
            );
        }
    }
    eprintln!(
        "isc two peers: dhcpd back, both relationships NORMAL {:.1} s later; {} bindings on \
         both, no duplicates; {:.1} s in all",
        recovered_in.as_secs_f64(),
        end.len(),
        t0.elapsed().as_secs_f64()
    );
}

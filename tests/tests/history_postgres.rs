//! The lease history in a real PostgreSQL: `xdhcp run` servers with real clients (each on its
//! own LAN of network namespaces, as in `server_clients`) write their history to local files
//! and send it to one scratch PostgreSQL cluster the test starts ([`Postgres`]). Two nodes'
//! events are found there in one place, a renewal XDP answered among them marked `xdp`; the
//! database killed with SIGKILL mid-run and started again ends with every event of the local
//! file exactly once.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    time::Duration,
};

use dhcp_lab::lab::{self, ClientKind, Daemon, Lan, Launcher, Port, ServerConfig, retry_for};
use integration::{fixture::root_required, postgres::Postgres};
use serde_json::Value;
use xdhcp::history::{
    Kind, Via,
    file::{Rotation, read_all},
    query::{Key, Source, lookup},
};

const BOUND_WITHIN: Duration = Duration::from_secs(30);
/// dhclient renews at T1 (10 s).
const RENEWALS_WITHIN: Duration = Duration::from_secs(50);
const SENT_WITHIN: Duration = Duration::from_secs(30);

/// Not a test: the server process of the other tests (see `server_clients`).
#[test]
fn daemon_process() {
    lab::daemon_child();
}

fn launcher() -> Launcher {
    Launcher::this_test_binary("daemon_process").unwrap()
}

fn history_config(node: &str, url: &str) -> ServerConfig {
    ServerConfig {
        extra: format!("[history]\nnode = \"{node}\"\n[history.postgres]\nurl = \"{url}\"\n"),
        ..ServerConfig::default()
    }
}

fn client(lan: &Lan, kind: ClientKind) -> Port {
    if let Err(e) = kind.locate() {
        panic!("{e:#}");
    }
    let mut p = lan.port(kind.name(), None).expect("a port on the LAN");
    p.start_client(kind).expect("start the client");
    p
}

/// The client's address once bound, after `renewals` renewals.
fn bound_and_renewed(p: &mut Port, renewals: usize) -> Ipv4Addr {
    let c = p.client().unwrap();
    let b = c.wait_bound(BOUND_WITHIN).unwrap_or_else(|e| panic!("{e:#}"));
    if renewals > 0 {
        c.wait_renewals(renewals, RENEWALS_WITHIN).unwrap_or_else(|e| panic!("{e:#}"));
    }
    b.ip.expect("the hook logs the address")
}

fn history_stats(d: &Daemon) -> Value {
    d.stats().expect("xdhcp stats")["history"].clone()
}

/// Waits until the server has sent everything it wrote.
fn all_sent(d: &Daemon) -> Value {
    retry_for("the history to reach PostgreSQL", SENT_WITHIN, || {
        let h = history_stats(d);
        let done = h["postgres"]["queued"] == 0 && h["last_seq"].as_u64() > Some(0);
        Ok(done.then_some(h))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", d.log_tail(30)))
}

/// `(node, kind, path, address)` of every row, in order.
fn rows(pg: &Postgres) -> Vec<(String, String, String, String)> {
    let mut c = pg.client().unwrap();
    c.query(
        "SELECT node, kind, path, host(address) FROM lease_history ORDER BY time, node, seq",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

fn local_file(d: &Daemon) -> Rotation {
    Rotation { path: d.state_dir.join("history.jsonl"), max_size: u64::MAX, keep: 8 }
}

#[test]
fn two_nodes_history_is_in_one_database_with_the_xdp_renewals_marked() {
    root_required();
    let pg = Postgres::start().expect("start PostgreSQL");
    let url = pg.url();
    let lans: Vec<Lan> = (0..2).map(|_| Lan::new().expect("build the LAN")).collect();
    let nodes = ["node-a", "node-b"];
    let daemons: Vec<Daemon> = lans
        .iter()
        .zip(nodes)
        .map(|(lan, n)| Daemon::start(lan, &history_config(n, &url), launcher()).unwrap())
        .collect();
    let mut ports: Vec<Port> = lans.iter().map(|l| client(l, ClientKind::Dhclient)).collect();
    let addrs: Vec<Ipv4Addr> = ports.iter_mut().map(|p| bound_and_renewed(p, 1)).collect();
    for d in &daemons {
        let h = all_sent(d);
        assert!(h["postgres"]["failed"] == 0 && h["dropped"] == 0, "{h}");
    }
    // One place: both nodes' DORA and the renewal XDP answered, with the path that answered.
    let all = rows(&pg);
    for (node, a) in nodes.iter().zip(&addrs) {
        let of = |kind: &str, path: &str| {
            all.iter().any(|r| r.0 == *node && r.1 == kind && r.2 == path && r.3 == a.to_string())
        };
        assert!(of("offer", "slow") && of("bind", "slow"), "{node}: {all:#?}");
        assert!(of("renew", "xdp"), "{node}: no XDP renewal of {a}: {all:#?}");
    }
    // `xdhcp history --postgres`: who held node-a's address now, from the fleet's table.
    let src = Source::Postgres { url: url.clone(), table: "lease_history".into() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let held = lookup(&src, &Key::Addr(addrs[0]), Some(now.as_secs())).unwrap();
    assert_eq!(held.len(), 1, "{held:#?}");
    assert!(matches!(held[0].event.kind, Kind::Bind | Kind::Renew), "{held:#?}");
    // The same events in the node's own file.
    let local = lookup(&Source::Files(local_file(&daemons[0])), &Key::Addr(addrs[0]), None);
    let local = local.unwrap();
    assert!(local.iter().any(|r| r.event.path == Via::Xdp), "{local:#?}");
    let from_pg = lookup(&src, &Key::Addr(addrs[0]), None).unwrap();
    assert_eq!(from_pg.iter().filter(|r| r.node == "node-a").count(), local.len());
    drop(ports);
    drop(daemons);
}

#[test]
fn postgres_killed_mid_run_and_restarted_loses_no_event_and_stores_none_twice() {
    root_required();
    let mut pg = Postgres::start().expect("start PostgreSQL");
    let lan = Lan::new().expect("build the LAN");
    let d = Daemon::start(&lan, &history_config("edge", &pg.url()), launcher()).unwrap();
    let mut first = client(&lan, ClientKind::Dhclient);
    bound_and_renewed(&mut first, 0);
    all_sent(&d);

    // The database dies; the server serves on: a new client leases, the first renews via XDP.
    pg.kill().unwrap();
    let mut second = client(&lan, ClientKind::Udhcpc);
    bound_and_renewed(&mut second, 0);
    bound_and_renewed(&mut first, 1);
    let down = retry_for("the server to notice the database is gone", SENT_WITHIN, || {
        let h = history_stats(&d);
        Ok((h["postgres"]["queued"].as_u64() > Some(0)
            && h["postgres"]["failed"].as_u64() > Some(0))
        .then_some(h))
    })
    .unwrap();
    assert_eq!(down["postgres"]["connected"], false, "{down}");
    assert!(down["postgres"]["error"].is_string(), "{down}");

    pg.restart().unwrap();
    let h = all_sent(&d);
    assert_eq!(h["postgres"]["lost"], 0, "{h}");
    // Every record of the local file is in the table exactly once, and nothing else is.
    let file = read_all(&local_file(&d)).unwrap();
    let mut c = pg.client().unwrap();
    let stored: BTreeMap<String, i64> = c
        .query("SELECT id, count(*) FROM lease_history GROUP BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ids: BTreeSet<&String> = file.iter().map(|r| &r.id).collect();
    assert_eq!(stored.keys().collect::<BTreeSet<_>>(), ids);
    assert!(stored.values().all(|n| *n == 1), "{stored:?}");
    assert!(file.iter().any(|r| r.event.kind == Kind::Renew && r.event.path == Via::Xdp));
    let seqs: Vec<u64> = file.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=file.len() as u64).collect::<Vec<_>>(), "numbered without a gap");
    drop((first, second, d));
}

#[test]
fn a_table_postgres_refuses_and_a_history_file_that_cannot_be_written_are_said_and_dhcp_goes_on() {
    root_required();
    let pg = Postgres::start().expect("start PostgreSQL");
    // Someone else's table of the same name: the history's indexes cannot be made on it.
    pg.client().unwrap().batch_execute("CREATE TABLE lease_history (id integer)").unwrap();
    let lan = Lan::new().expect("build the LAN");
    let mut cfg = history_config("edge", &pg.url());
    // A path under a character device: not even root can create it.
    cfg.extra = cfg.extra.replace("[history]\n", "[history]\nfile = \"/dev/null/history.jsonl\"\n");
    let d = Daemon::start(&lan, &cfg, launcher()).unwrap();
    let mut p = client(&lan, ClientKind::Dhclient);
    let a = bound_and_renewed(&mut p, 0);
    assert_eq!(d.lease(a).unwrap().map(|l| l["state"].clone()), Some("active".into()));
    let h = retry_for("both problems in xdhcp stats", SENT_WITHIN, || {
        let h = history_stats(&d);
        let file = h["write_failed"].as_u64() > Some(0);
        let table = h["postgres"]["error"].as_str().is_some_and(|e| e.contains("address"));
        Ok((file && table).then_some(h))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", d.log_tail(30)));
    assert!(h["file_error"].as_str().is_some_and(|e| e.contains("/dev/null/history.jsonl")), "{h}");
    assert_eq!(h["postgres"]["connected"], false, "{h}");
    let log = d.log();
    assert!(log.contains("the lease history cannot be written"), "{log}");
    assert!(log.contains("lease history: PostgreSQL connect or create the table"), "{log}");
    drop((p, d));
}

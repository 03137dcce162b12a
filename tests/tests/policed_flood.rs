//! A DISCOVER flood from one access port against the real server with policing on: the known
//! clients' renewals are all answered, the flood gets no more through than its port's bucket
//! lets by, the pool keeps serving new clients, and the offender is named in the server's
//! stats and metrics. Not timed: the counts are the bucket's, whatever the machine's speed.
use std::{
    thread,
    time::{Duration, Instant},
};

use dhcp_lab::{
    lab::{self, Daemon, Lan, Launcher, ServerConfig, netns_list, wait_for},
    load::{self, Agent, LoadOptions},
};
use integration::fixture::root_required;
use xdhcp::daemon::ctl;

/// Not a test: the server process of the test below.
#[test]
fn daemon_process() {
    lab::daemon_child();
}

const KNOWN: u32 = 20;
const LATE: u32 = 20;
/// The flood's port: 2 messages a second, 4 at once.
const PORT_RATE: u64 = 2;
const PORT_BURST: u64 = 4;
const FLOOD_SECS: u64 = 5;

fn opts(iface: &str, clients: u32, seed: u16, circuit: &str) -> LoadOptions {
    LoadOptions {
        iface: iface.to_owned(),
        clients,
        renewals: 0,
        rate: 0,
        duration: Duration::from_mins(1),
        window: 16,
        seed,
        relay: None,
        // A layer-2 access node's option 82 (giaddr 0), on renewals too.
        agent: Agent { circuit_id: Some(circuit.to_owned()), ..Agent::default() },
        assume_bound: None,
        progress: false,
    }
}

#[test]
fn a_policed_flood_leaves_every_renewal_answered_and_the_pool_serving() {
    root_required();
    let cfg = ServerConfig {
        lease_secs: 600,
        t1_secs: 300,
        t2_secs: 525,
        extra: format!("[police]\nport = {{ rate = {PORT_RATE}, burst = {PORT_BURST} }}\n"),
        ..ServerConfig::default()
    };
    let lan = Lan::new().expect("build the LAN");
    let launcher = Launcher::TestHarness {
        exe: std::env::current_exe().expect("path of the test binary"),
        test: "daemon_process".into(),
    };
    let daemon = Daemon::start(&lan, &cfg, launcher).expect("start xdhcp run");
    let known_port = lan.port("known", None).unwrap();
    let flood_port = lan.port("flood", None).unwrap();
    let late_port = lan.port("late", None).unwrap();
    let names = lan.namespaces();

    // The known clients, each on its own line, bind and then renew 20 times a second for
    // ten seconds; a second after they start, the flood runs for five.
    let known_opts = LoadOptions {
        renewals: 200,
        rate: 20,
        ..opts(&known_port.iface, KNOWN, 21, "known 1/1/{i}")
    };
    let flood_opts = LoadOptions {
        duration: Duration::from_secs(FLOOD_SECS),
        ..opts(&flood_port.iface, 1_000_000, 22, "flood 9/9/9")
    };
    let (known, flood) = thread::scope(|s| {
        let known = s.spawn(|| known_port.ns.run(|| load::run(&known_opts)));
        thread::sleep(Duration::from_secs(1));
        let flood = s.spawn(|| flood_port.ns.run(|| load::flood(&flood_opts)));
        (known.join().unwrap(), flood.join().unwrap())
    });
    let (known, flood) = (known.expect("the known clients' run"), flood.expect("the flood"));
    println!("known: {known:?}\nflood: {flood:?}");
    assert_eq!(known.bound, u64::from(KNOWN));
    assert_eq!(known.renewal_acks, known.renewals_sent, "every renewal answered");
    assert!(known.renewals_sent >= 200);
    // Its DISCOVERs and REQUESTs share the port's bucket: the burst, then the rate.
    let secs = Duration::from_secs_f64(flood.secs).as_secs() + 2;
    let through = PORT_BURST + PORT_RATE * secs;
    assert!(flood.discovers_sent > 10 * through, "the flood ran: {flood:?}");
    assert!(flood.offers <= through, "{} offers past a bucket of {through}", flood.offers);

    // New clients still get addresses.
    let late = opts(&late_port.iface, LATE, 23, "late 2/2/{i}");
    let late = late_port.ns.run(|| load::run(&late)).expect("the late clients' run");
    assert_eq!(late.bound, u64::from(LATE));

    // The kernel counted the drops, and the server names the port.
    let s = daemon.stats().unwrap();
    let dropped = s["fast_path"][&lan.server_if]["drop_policed_port"].as_u64().unwrap();
    assert!(dropped + through >= flood.discovers_sent, "{dropped} dropped: {s}");
    let started = Instant::now();
    let metrics = wait_for("the offender in the metrics", Duration::from_secs(15), || {
        let m = daemon.ctl(&ctl::Request::Metrics)?;
        let text = m["text"].as_str().unwrap_or_default().to_owned();
        Ok(text.contains("xdhcp_policed_top_dropped").then_some(text))
    })
    .unwrap();
    let line = metrics.lines().find(|l| l.starts_with("xdhcp_policed_top_dropped")).unwrap();
    assert!(line.contains(r#"kind="port""#) && line.contains(r#"circuit-id \"flood 9/9/9\""#));
    println!("{line} (after {:?})", started.elapsed());

    drop(daemon);
    drop((known_port, flood_port, late_port));
    drop(lan);
    let left: Vec<String> =
        netns_list().unwrap().into_iter().filter(|n| names.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

//! The demo (`cargo xtask lab`): `xdhcp run` serving a LAN of namespaces, udhcpc, dhclient and
//! dhcpcd each leasing from its slow path and renewing through XDP, and a summary that checks
//! the store's leases against the fast path's counters.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Result, bail, ensure};
use dhcp_common::{LeaseEntry, Stat};
use xdhcp::{
    fastpath::{self, AttachMode},
    packet, table,
};

use super::{
    clients::{ClientEvent, ClientKind, EventKind},
    daemon::{Daemon, Launcher, beside_this_program},
    lan::{LAN_PREFIX, LAN_SERVER, Lan, ServerConfig},
    netns::netns_list,
    process::{POLL, catch_interrupts, interrupted, require_root},
};

/// Options of `xdhcp-lab demo`.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoOptions {
    /// Client to run (repeatable; default: udhcpc, dhclient and dhcpcd).
    #[arg(long = "client", value_enum)]
    pub clients: Vec<ClientKind>,
    /// Renewals every client must complete through XDP.
    #[arg(long, default_value_t = 2)]
    pub renewals: usize,
    /// Give up (and tear down) after this many seconds.
    #[arg(long, default_value_t = 85)]
    pub timeout_secs: u64,
    /// How the server attaches the fast path to its veth.
    #[arg(long, value_enum, default_value = "native")]
    pub mode: AttachMode,
    /// The `xdhcp` binary that serves the lab (default: the one beside this program).
    #[arg(long, value_name = "PATH")]
    pub xdhcp: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            clients: vec![],
            renewals: 2,
            timeout_secs: 85,
            mode: AttachMode::Native,
            xdhcp: None,
        }
    }
}

/// `xdhcp-lab demo`: a LAN of network namespaces, `xdhcp run` serving it with XDP on
/// its veth, and udhcpc, dhclient and dhcpcd each on a port of its own. Every client gets its
/// lease from the server's slow path and renews through XDP; the summary shows the store's
/// leases (from the control socket) beside the fast path's counters. Everything is torn down
/// on return, also on error and Ctrl-C.
pub fn run_demo(opts: &DemoOptions) -> Result<()> {
    require_root()?;
    let mut kinds: Vec<ClientKind> = Vec::new();
    for k in if opts.clients.is_empty() { &ClientKind::ALL[..] } else { &opts.clients[..] } {
        if !kinds.contains(k) {
            kinds.push(*k);
        }
    }
    for k in &kinds {
        k.locate()?;
    }
    let exe = match &opts.xdhcp {
        Some(p) => p.clone(),
        None => beside_this_program("xdhcp")?,
    };
    ensure!(opts.renewals >= 1, "--renewals must be at least 1");
    catch_interrupts();
    let t0 = Instant::now();
    let mut names = Vec::new();
    let mut pins = String::new();
    let result = demo(opts, &exe, &kinds, t0, &mut names, &mut pins);
    let leftover: Vec<String> =
        netns_list().unwrap_or_default().into_iter().filter(|n| names.contains(n)).collect();
    let pinned = !pins.is_empty() && fastpath::pin_dir(&pins).exists();
    if leftover.is_empty() && !pinned {
        println!(
            "[{:5.1}s] torn down: server stopped, {} namespaces deleted, pins removed",
            t0.elapsed().as_secs_f64(),
            names.len()
        );
    } else {
        eprintln!("xdhcp lab: left behind: namespaces {leftover:?}, pins of {pins}: {pinned}");
    }
    if interrupted() {
        bail!("interrupted");
    }
    result
}

#[expect(
    clippy::too_many_lines,
    reason = "the demo's steps in the order the user watches them; split, the story scatters"
)]
fn demo(
    opts: &DemoOptions,
    exe: &Path,
    kinds: &[ClientKind],
    t0: Instant,
    names: &mut Vec<String>,
    pins: &mut String,
) -> Result<()> {
    let deadline = t0 + Duration::from_secs(opts.timeout_secs);
    let at = || t0.elapsed().as_secs_f64();
    let cfg = ServerConfig { attach_mode: opts.mode, ..ServerConfig::default() };
    let lan = Lan::new()?;
    names.extend(lan.namespaces());
    pins.clone_from(&lan.server_if);
    let daemon = Daemon::start(&lan, &cfg, Launcher::Exe(exe.to_owned()))?;
    println!(
        "[{:5.1}s] xdhcp run (pid {}) serves 10.99.0.0/{LAN_PREFIX} as {LAN_SERVER} on {} in \
         namespace {}, XDP in {} mode; leases {} s, T1 {} s, T2 {} s; store {}",
        at(),
        daemon.pid().unwrap_or(0),
        lan.server_if,
        lan.server.name(),
        format!("{:?}", cfg.attach_mode).to_lowercase(),
        cfg.lease_secs,
        cfg.t1_secs,
        cfg.t2_secs,
        daemon.state_dir.display(),
    );
    let mut daemon = daemon;
    let before = lan.fast_path_stats()?;
    let mut ports = Vec::new();
    for k in kinds {
        let mut p = lan.port(k.name(), None)?;
        names.push(p.ns.name().to_owned());
        p.start_client(*k)?;
        println!(
            "[{:5.1}s] {k}: namespace {}, {} ({}) on the LAN's bridge",
            at(),
            p.ns.name(),
            p.iface,
            packet::fmt_mac(&p.mac)
        );
        ports.push(p);
    }
    let mut shown = vec![0usize; ports.len()];
    loop {
        daemon.check_running()?;
        let acks = lan.fast_path_stats()?.since(&before).get(Stat::Ack);
        let mut done = true;
        for (i, p) in ports.iter_mut().enumerate() {
            let c = p.client()?;
            c.check_running()?;
            let events = c.events();
            for e in &events[shown[i]..] {
                let source = match e.kind {
                    EventKind::Bound => " (xdhcp's slow path)".to_owned(),
                    EventKind::Renew | EventKind::Rebind => {
                        format!(" (XDP ACKs on the server's veth so far: {acks})")
                    }
                    EventKind::Other => String::new(),
                };
                let detail = match (e.ip, e.lease_secs) {
                    (Some(a), Some(l)) => format!(" {a} lease {l} s"),
                    _ => String::new(),
                };
                println!("[{:5.1}s] {}: {}{detail}{source}", at(), c.kind(), e.reason);
            }
            shown[i] = events.len();
            let (bound, renewals) = c.lease_history();
            done &= bound.is_some() && renewals.len() >= opts.renewals;
        }
        if done {
            break;
        }
        ensure!(!interrupted(), "interrupted");
        if Instant::now() >= deadline {
            let mut msg = String::new();
            for p in &mut ports {
                let c = p.client()?;
                let (b, r) = c.lease_history();
                let _ = write!(
                    msg,
                    "\n{}: {}, {} renewal(s); output:\n{}",
                    c.kind(),
                    if b.is_some() { "bound" } else { "no lease" },
                    r.len(),
                    c.output_tail(10)
                );
            }
            bail!(
                "timed out after {} s{msg}\nxdhcp log:\n{}",
                opts.timeout_secs,
                daemon.log_tail(20)
            );
        }
        thread::sleep(POLL);
    }
    for p in &mut ports {
        p.stop_client()?;
    }
    // The events of the last renewals reach the store within a tick of the daemon's loop.
    thread::sleep(Duration::from_millis(300));
    let counters = lan.fast_path_stats()?.since(&before);
    let stats = daemon.stats()?;
    let leases = daemon.leases()?;
    let maps = lan.fast_path()?;
    println!();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let (mut renewals_total, mut requests_total) = (0u64, 0u64);
    for p in &mut ports {
        let mac = p.mac;
        let c = p.client()?;
        let kind = c.kind();
        let (bound, renewals) = c.lease_history();
        let requests = c.renewal_requests();
        renewals_total += renewals.len() as u64;
        requests_total += requests as u64;
        let addr = bound.as_ref().and_then(|b| b.ip);
        let record = leases
            .iter()
            .find(|l| Some(l["address"].as_str()) == Some(addr.map(|a| a.to_string()).as_deref()));
        let entry = addr.and_then(|a| maps.lease(a));
        let p = lease_problems(
            &cfg,
            mac,
            bound.as_ref(),
            &renewals,
            record,
            entry.as_ref(),
            opts.renewals,
        );
        let field = |k: &str| record.map_or("-".to_owned(), |l| json_text(&l[k]));
        rows.push(vec![
            kind.to_string(),
            packet::fmt_mac(&mac),
            addr.map_or("-".into(), |a| a.to_string()),
            field("state"),
            field("expires_in"),
            field("held_for"),
            renewals.len().to_string(),
            requests.to_string(),
            record.and_then(|l| l["cltt"].as_u64()).map_or("-".into(), |t| {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                format!("{} s ago", now.saturating_sub(t))
            }),
            if p.is_empty() { "ok" } else { "FAILED" }.to_owned(),
        ]);
        problems.extend(p.into_iter().map(|p| format!("{kind}: {p}")));
    }
    println!("leases (xdhcp leases, from the control socket) and each client's renewals:");
    print!(
        "{}",
        table::render(
            &[
                "CLIENT",
                "MAC",
                "ADDRESS",
                "STATE",
                "EXPIRES_IN_S",
                "HELD_FOR_S",
                "RENEWALS",
                "REQUESTS",
                "CLTT",
                "VERDICT"
            ],
            &rows
        )
    );
    let xdp_acks = counters.get(Stat::Ack);
    let slow_acks = stats["sent"]["ack"].as_u64().unwrap_or(0);
    let recorded = stats["fast_path_renewals_recorded"].as_u64().unwrap_or(0);
    println!(
        "\nslow path (xdhcp run): {} DISCOVER, {} REQUEST received; {} OFFER, {slow_acks} ACK, \
         {} NAK sent; {} store commits, mean {} us",
        stats["received"]["discover"],
        stats["received"]["request"],
        stats["sent"]["offer"],
        stats["sent"]["nak"],
        stats["store"]["commits"],
        stats["store"]["mean_commit_us"],
    );
    println!(
        "fast path (XDP on {}): {xdp_acks} ACKs for {requests_total} renewal requests the clients \
         sent ({renewals_total} renewals they logged); {recorded} reported to the server, which \
         writes the store only when a lease's committed horizon must move",
        lan.server_if
    );
    let nz: Vec<String> = counters
        .values
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{}={v}", k.name()))
        .collect();
    println!("fast-path counters during the run (nonzero): {}", nz.join(" "));
    if xdp_acks != requests_total {
        problems.push(format!("{xdp_acks} XDP ACKs for {requests_total} renewal requests"));
    }
    if slow_acks != kinds.len() as u64 {
        problems.push(format!(
            "the slow path sent {slow_acks} ACKs for {} first leases: renewals reached userspace",
            kinds.len()
        ));
    }
    if recorded != xdp_acks {
        problems.push(format!("{recorded} of {xdp_acks} XDP renewals reported to the server"));
    }
    if xdp_acks > renewals_total {
        println!(
            "\nmore XDP ACKs than renewals: on veth the ACK to a unicast renewal arrives while \
             udhcpc is still inside send(); it sends from a short-lived socket that then takes \
             the ACK and is closed, and renews with the ACK to its broadcast retry instead"
        );
    }
    ensure!(problems.is_empty(), "the run does not show what it should:\n{}", problems.join("\n"));
    println!(
        "\nevery first lease came from the slow path and was committed to the store; every \
         renewal was answered by XDP (XDP ACKs = renewal requests, no ACK from userspace after \
         the first leases) and reported to the server (CLTT)"
    );
    drop(ports);
    daemon.kill(libc::SIGTERM)?;
    Ok(())
}

/// What contradicts "this client got its lease from the server, the store holds it, and the
/// client's renewals were answered by XDP"; empty when the run proves it.
fn lease_problems(
    cfg: &ServerConfig,
    mac: [u8; 6],
    bound: Option<&ClientEvent>,
    renewals: &[ClientEvent],
    record: Option<&serde_json::Value>,
    entry: Option<&LeaseEntry>,
    min_renewals: usize,
) -> Vec<String> {
    let mut p = Vec::new();
    let Some(b) = bound else { return vec!["no lease".into()] };
    if b.lease_secs != Some(cfg.lease_secs) {
        p.push(format!("first lease {b:?} is not the server's {} s", cfg.lease_secs));
    }
    if renewals.len() < min_renewals {
        p.push(format!("{} renewal(s), wanted {min_renewals}", renewals.len()));
    }
    for r in renewals {
        if r.ip != b.ip || r.lease_secs != Some(cfg.lease_secs) {
            p.push(format!("renewal {r:?} does not renew {:?} for {} s", b.ip, cfg.lease_secs));
        }
    }
    match record {
        Some(l) if l["state"] == "active" && l["mac"] == packet::fmt_mac(&mac) => {
            // The server learns of XDP's renewals from its events: the client's last
            // transaction time is then that of its last renewal. It rounds down to whole
            // seconds, twice (its clock, then the event's age), and the client's hook runs a
            // moment after the ACK: hence the slack.
            #[expect(clippy::cast_precision_loss, reason = "Unix seconds, far below 2^52")]
            let cltt = l["cltt"].as_u64().unwrap_or(0) as f64;
            if let Some(last) = renewals.last()
                && cltt + 3.0 < last.at
            {
                p.push(format!(
                    "the server's CLTT {cltt} predates the last renewal at {}",
                    last.at
                ));
            }
        }
        other => p.push(format!("the server's record is {other:?}")),
    }
    match entry {
        Some(e) if e.chaddr == mac => {}
        other => p.push(format!("the kernel map's entry is {other:?}")),
    }
    p
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use dhcp_common::{Control, LeaseEntry, digest};
use xdhcp::{
    cli::{Cli, Cmd, FailoverCmd, ImportCmd, LeaseCmd, LeasePut, MapsCmd, SubnetArgs},
    daemon::ctl,
    fastpath::{
        self, clock,
        maps::{FastPathMaps, LeaseView},
        subnet,
    },
    packet, table,
};

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("xdhcp: {e:#}");
        std::process::exit(1);
    }
}

/// Nothing is written unless the whole translation is accepted: a half-written config is
/// worse than none.
fn import_dhcpd_conf(
    file: &std::path::Path,
    out: Option<&std::path::Path>,
    accept_untranslated: bool,
    interfaces: Vec<String>,
    server_id: Option<Ipv4Addr>,
) -> Result<()> {
    use xdhcp::import::conf;
    let t = conf::translate(file, &conf::Inputs { interfaces, server_id })?;
    for u in &t.untranslated {
        eprintln!("not translated: {u}");
    }
    if !t.untranslated.is_empty() && !accept_untranslated {
        bail!(
            "{} statement(s) not translated; nothing written (--accept-untranslated writes the \
             translation without them)",
            t.untranslated.len()
        );
    }
    match out {
        Some(p) => {
            std::fs::write(p, &t.toml).with_context(|| format!("writing {}", p.display()))?;
        }
        None => print!("{}", t.toml),
    }
    Ok(())
}

/// `xdhcp history`: the matching events as JSON lines; with --at, the holder or a message.
fn history(h: &xdhcp::cli::HistoryArgs) -> Result<()> {
    use xdhcp::history::query::{self, Key, Source};
    let src = match (&h.postgres, &h.file, &h.config) {
        (Some(url), _, _) => Source::Postgres { url: url.clone(), table: h.table.clone() },
        (_, Some(f), _) => Source::file(f.clone()),
        (_, _, Some(c)) => Source::of_config(&xdhcp::config::Config::load(c)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", c.display()))?,
        _ => anyhow::bail!("give --postgres, --file or --config"),
    };
    let key = match (h.addr, &h.mac, &h.circuit) {
        (Some(a), _, _) => Key::Addr(a),
        (_, Some(m), _) => Key::Mac(m.to_lowercase()),
        (_, _, Some(c)) => Key::Circuit(c.clone()),
        _ => anyhow::bail!("give --addr, --mac or --circuit"),
    };
    if h.at.is_some() && h.addr.is_none() {
        anyhow::bail!("--at answers who held an address: give it with --addr");
    }
    let at = h.at.as_deref().map(query::parse_time).transpose().map_err(anyhow::Error::msg)?;
    let found = query::lookup(&src, &key, at)?;
    if let (Some(t), true) = (at, found.is_empty()) {
        anyhow::bail!("nobody held {} at {t}", h.addr.map(|a| a.to_string()).unwrap_or_default());
    }
    for r in found {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

#[expect(clippy::too_many_lines, reason = "one arm per subcommand")]
fn run(cli: Cli) -> Result<()> {
    if let Some(ns) = &cli.netns {
        fastpath::enter_netns(ns)?;
    }
    match cli.cmd {
        Cmd::Attach { iface, peer: true, .. } => {
            fastpath::attach_peer(&iface)?;
            println!("attached the do-nothing peer program to {iface}");
        }
        Cmd::Attach { iface, mode, disabled, peer: false } => {
            let a = fastpath::attach(&iface, mode, !disabled, None, None, Duration::ZERO)?;
            let how = if a.new { "attached" } else { "adopted the pinned fast path on" };
            println!(
                "{how} {} ({} mode), pinned under {}",
                a.iface,
                a.mode,
                fastpath::pin_dir(&iface).display()
            );
        }
        Cmd::Detach { iface } => {
            fastpath::detach(&iface)?;
            println!("detached the fast path from {iface} and removed its pins");
        }
        Cmd::Maps { cmd: MapsCmd::Dump { iface, json } } => dump(iface, json)?,
        Cmd::Stats { iface, json, socket } => {
            if let Some(sock) = socket {
                let v = ctl::request(&sock, &ctl::Request::Stats)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            stats(iface, json)?;
        }
        Cmd::Run { config } => xdhcp::daemon::run(&config)?,
        Cmd::History(h) => history(&h)?,
        Cmd::Check { config } => {
            let (c, _) = xdhcp::config::Config::load_on_host(&config)?;
            print!("{}", xdhcp::check::summary(&c));
        }
        Cmd::Import {
            cmd: ImportCmd::DhcpdConf { file, out, accept_untranslated, interfaces, server_id },
        } => import_dhcpd_conf(&file, out.as_deref(), accept_untranslated, interfaces, server_id)?,
        Cmd::Import { cmd: ImportCmd::DhcpdLeases { file, config, skip_refused } } => {
            import_dhcpd_leases(&file, &config, skip_refused)?;
        }
        Cmd::Leases {
            addr,
            mac,
            circuit_id,
            remote_id,
            class,
            client_id,
            state,
            after,
            limit,
            count,
            json,
            jsonl,
            socket,
        } => {
            let q = ctl::LeaseQuery {
                addr,
                mac,
                client_id,
                circuit_id,
                remote_id,
                class,
                state,
                after,
                limit,
                count,
            };
            let print = match (json, jsonl) {
                (true, _) => Print::Json,
                (_, true) => Print::JsonLines,
                _ => Print::Table,
            };
            leases(&socket, q, print)?;
        }
        Cmd::Metrics { socket } => {
            let v = ctl::request(&socket, &ctl::Request::Metrics)?;
            print!("{}", v["text"].as_str().unwrap_or_default());
        }
        Cmd::Failover { cmd: FailoverCmd::Status { json, relationship, socket } } => {
            failover_status(&socket, json, relationship)?;
        }
        Cmd::Failover {
            cmd: FailoverCmd::PartnerDown { yes_partner_is_down, relationship, socket },
        } => {
            failover_partner_down(&socket, yes_partner_is_down, relationship)?;
        }
        Cmd::Lease { cmd: LeaseCmd::Put(p) } => lease_put(&p)?,
        Cmd::Lease { cmd: LeaseCmd::Del { iface, addr } } => {
            let (mut maps, _lock) = open_to_write(&iface)?;
            maps.delete_lease(addr)?;
        }
        Cmd::Subnet(s) => subnet_set(&s)?,
        Cmd::Control { iface, enable, disable, events, min_grant } => {
            let mut m = open(&iface)?;
            let mut c = m.control()?;
            if enable || disable {
                c.enabled = u32::from(enable);
            }
            if let Some(e) = events {
                c.flags =
                    if e { c.flags | Control::F_EVENTS } else { c.flags & !Control::F_EVENTS };
            }
            if let Some(g) = min_grant {
                c.min_grant_secs = g.max(Control::MIN_GRANT_FLOOR);
            }
            m.set_control(c)?;
            println!("{iface}: fast path {}", if c.enabled != 0 { "on" } else { "off" });
        }
    }
    Ok(())
}

fn open(iface: &str) -> Result<FastPathMaps> {
    fastpath::ensure_bpffs()?;
    FastPathMaps::open_pinned(&fastpath::pin_dir(iface)).with_context(|| not_pinned(iface))
}

fn not_pinned(iface: &str) -> String {
    format!("no fast path pinned for {iface} (xdhcp attach --iface {iface})")
}

/// [`open`] for a change by hand: refused while another writer (the daemon serving `iface`)
/// holds the maps. The lock is taken before the maps are read, so the tables this process
/// allocates from are the current ones.
fn open_to_write(iface: &str) -> Result<(FastPathMaps, fastpath::WriterLock)> {
    fastpath::ensure_bpffs()?;
    let dir = fastpath::pin_dir(iface);
    if !dir.is_dir() {
        bail!(not_pinned(iface));
    }
    let lock = fastpath::lock_writer(iface, Duration::ZERO)?;
    let maps = FastPathMaps::open_pinned(&dir).with_context(|| not_pinned(iface))?;
    Ok((maps, lock))
}

fn interfaces(iface: Option<String>) -> Result<Vec<String>> {
    fastpath::ensure_bpffs()?;
    let all = iface.map_or_else(fastpath::pinned_interfaces, |i| vec![i]);
    if all.is_empty() {
        bail!("no fast path is pinned under {}", fastpath::PIN_ROOT);
    }
    Ok(all)
}

/// What the lease table of `capacity` slots costs the kernel: its slots, and the two arrays
/// that lead from an address to its slot.
fn table_bytes(capacity: u32) -> u64 {
    use dhcp_common::maps as m;
    let slot = std::mem::size_of::<dhcp_common::LeaseEntry>() as u64;
    u64::from(capacity) * slot + 4 * u64::from(m::PAGES_LEN + m::BLOCKS_LEN)
}

fn dump(iface: Option<String>, json: bool) -> Result<()> {
    let now = clock::monotonic_ns();
    let mut out = serde_json::Map::new();
    for i in interfaces(iface)? {
        let m = open(&i)?;
        let c = m.control()?;
        let leases: Vec<LeaseView> =
            m.leases()?.iter().map(|(a, e)| LeaseView::new(*a, e, now)).collect();
        let pins = fastpath::pin_dir(&i);
        let waiting: u64 = xdhcp::fastpath::eventlog::EventLog::waiting_pinned(&pins)?.iter().sum();
        let slots = xdhcp::fastpath::eventlog::EventLog::slots_pinned(&pins)?;
        let capacity = m.leases.len();
        let table_bytes = table_bytes(capacity);
        if json {
            out.insert(
                i.clone(),
                serde_json::json!({
                    "control": {
                        "enabled": c.enabled != 0,
                        "events": c.flags & Control::F_EVENTS != 0,
                        "events_waiting": waiting,
                        "event_log_slots_per_cpu": slots,
                        "min_grant_secs": c.min_grant_secs,
                        "if_mac": packet::fmt_mac(&c.if_mac),
                        "clock": {
                            "tick_ns": c.clock.tick_ns,
                            "base_jiffies": c.clock.base_jiffies,
                            "base_ns": c.clock.base_ns,
                        },
                    },
                    "lease_table": {
                        "capacity": capacity,
                        "in_use": leases.len(),
                        "kernel_bytes": table_bytes,
                    },
                    "leases": leases,
                }),
            );
            continue;
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "a tick is a few million ns, far below 2^52"
        )]
        let clock = match c.clock.tick_ns {
            0 => "no clock (XDP answers nothing; attach again)".to_owned(),
            t => format!("clock tick {} ms", t as f64 / 1e6),
        };
        println!(
            "{i}: fast path {}, events {} ({waiting} waiting, {slots} slots per CPU), min grant {} \
             s, {clock}, {} lease(s) of {capacity} ({} MiB of kernel memory)",
            if c.enabled != 0 { "on" } else { "off" },
            if c.flags & Control::F_EVENTS != 0 { "on" } else { "off" },
            c.min_grant_secs,
            leases.len(),
            table_bytes >> 20
        );
        let rows: Vec<Vec<String>> = leases
            .iter()
            .map(|l| {
                vec![
                    l.addr.to_string(),
                    l.chaddr.clone(),
                    l.profile.to_string(),
                    l.lease_secs.to_string(),
                    l.grant_left_secs.to_string(),
                    l.client_id_digest.clone().unwrap_or_else(|| "-".into()),
                    l.relay_info_digest.clone().unwrap_or_else(|| "-".into()),
                    l.last_renewed_ago_secs.map_or_else(
                        || "never".into(),
                        |a| format!("{a} s ago for {} s", l.last_renewed_secs),
                    ),
                ]
            })
            .collect();
        print!(
            "{}",
            table::render(
                &[
                    "ADDRESS",
                    "CHADDR",
                    "PROFILE",
                    "LEASE_S",
                    "GRANT_LEFT_S",
                    "CLIENT_ID_DIGEST",
                    "OPT82_DIGEST",
                    "LAST_XDP_ACK"
                ],
                &rows
            )
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

/// How `xdhcp leases` prints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Print {
    Table,
    Json,
    JsonLines,
}

fn leases(socket: &std::path::Path, mut q: ctl::LeaseQuery, print: Print) -> Result<()> {
    let ask = |q: &ctl::LeaseQuery| -> Result<serde_json::Value> {
        let v = ctl::request(socket, &ctl::Request::Leases(Box::new(q.clone())))?;
        if let Some(e) = v.get("error") {
            anyhow::bail!("xdhcp leases: {}", e.as_str().unwrap_or_default());
        }
        Ok(v)
    };
    if q.count {
        return lease_counts(&ask(&q)?["count"], print);
    }
    // Page by page: each is one short turn of the server's, between which it serves.
    let mut left = q.limit;
    let mut all = Vec::new();
    while left != Some(0) {
        q.limit = Some(left.unwrap_or(ctl::PAGE_MAX).min(ctl::PAGE_MAX));
        let v = ask(&q)?;
        let page = v["leases"].as_array().cloned().unwrap_or_default();
        if let Some(l) = &mut left {
            *l = l.saturating_sub(page.len());
        }
        if print == Print::JsonLines {
            for l in &page {
                println!("{l}");
            }
        } else {
            all.extend(page);
        }
        match v["next"].as_str().and_then(|a| a.parse().ok()) {
            Some(a) if left != Some(0) => q.after = Some(a),
            _ => break,
        }
    }
    match print {
        Print::JsonLines => {}
        Print::Json => println!("{}", serde_json::to_string_pretty(&all)?),
        Print::Table => {
            const COLUMNS: [&str; 10] = [
                "address",
                "state",
                "mac",
                "client_id",
                "hostname",
                "circuit_id",
                "remote_id",
                "class",
                "expires_in",
                "held_for",
            ];
            let rows: Vec<Vec<String>> =
                all.iter().map(|l| COLUMNS.iter().map(|k| cell(&l[*k])).collect()).collect();
            let head = [
                "ADDRESS",
                "STATE",
                "MAC",
                "CLIENT_ID",
                "HOSTNAME",
                "CIRCUIT_ID",
                "REMOTE_ID",
                "CLASS",
                "EXPIRES_IN_S",
                "HELD_FOR_S",
            ];
            print!("{}", table::render(&head, &rows));
        }
    }
    Ok(())
}

fn cell(x: &serde_json::Value) -> String {
    match x {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `xdhcp leases --count`: a row per subnet, a column per state.
fn lease_counts(c: &serde_json::Value, print: Print) -> Result<()> {
    const STATES: [&str; 7] =
        ["active", "free", "backup", "expired", "released", "abandoned", "reset"];
    if print != Print::Table {
        println!("{}", serde_json::to_string_pretty(c)?);
        return Ok(());
    }
    let row = |name: &str, m: &serde_json::Value| -> Vec<String> {
        let mut r = vec![name.to_owned()];
        r.extend(STATES.iter().map(|s| m[*s].as_u64().unwrap_or(0).to_string()));
        r
    };
    let mut rows: Vec<Vec<String>> =
        c["by_subnet"].as_object().into_iter().flatten().map(|(name, m)| row(name, m)).collect();
    rows.push(row("all", &c["by_state"]));
    let mut head = vec!["SUBNET"];
    head.extend(["ACTIVE", "FREE", "BACKUP", "EXPIRED", "RELEASED", "ABANDONED", "RESET"]);
    print!("{}", table::render(&head, &rows));
    println!("{} records", c["total"].as_u64().unwrap_or(0));
    Ok(())
}

fn import_dhcpd_leases(
    file: &std::path::Path,
    config: &std::path::Path,
    skip_refused: bool,
) -> Result<()> {
    let cfg = xdhcp::config::Config::load(config)?;
    let done = xdhcp::import::leases::import(&cfg, file, skip_refused)?;
    for r in &done.refused {
        eprintln!("{}:{}: {}: left out: {}", file.display(), r.line, r.address, r.why);
    }
    let states: Vec<String> = done.by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "{} leases written to {} ({})",
        done.written,
        cfg.state_dir.display(),
        states.join(", ")
    );
    Ok(())
}

/// Offenders shown by `xdhcp stats`.
const TOP_OFFENDERS: usize = 10;

fn stats(iface: Option<String>, json: bool) -> Result<()> {
    let mut out = serde_json::Map::new();
    for i in interfaces(iface)? {
        let c = open(&i)?.stats()?;
        // Pins of a build from before policing (a daemon not yet upgraded) have no buckets:
        // their counters still show.
        let top = fastpath::police::PoliceMaps::open_pinned(&fastpath::pin_dir(&i))
            .and_then(|p| p.offenders(TOP_OFFENDERS))
            .unwrap_or_else(|e| {
                eprintln!("{i}: no policing to show ({e:#})");
                Vec::new()
            });
        if json {
            let mut v = c.to_json();
            v["policed_top"] = serde_json::to_value(&top)?;
            out.insert(i, v);
        } else {
            println!("{i}:");
            let rows: Vec<Vec<String>> =
                c.values.iter().map(|(s, v)| vec![s.name().to_owned(), v.to_string()]).collect();
            print!("{}", table::render(&["COUNTER", "PACKETS"], &rows));
            if !top.is_empty() {
                println!("top policed:");
                let rows: Vec<Vec<String>> = top
                    .iter()
                    .map(|o| {
                        let d = o.dropped.to_string();
                        vec![o.kind.to_owned(), o.key.clone(), d, o.passed.to_string()]
                    })
                    .collect();
                print!("{}", table::render(&["KEY", "WHO", "DROPPED", "PASSED"], &rows));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

fn parse_hex(s: &str) -> Result<Vec<u8>> {
    let s = s.trim_start_matches("0x").replace(':', "");
    if !s.len().is_multiple_of(2) {
        bail!("hex string {s:?} has an odd number of digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).with_context(|| format!("bad hex {s:?}")))
        .collect()
}

fn lease_put(p: &LeasePut) -> Result<()> {
    let mac = packet::parse_mac(&p.mac).with_context(|| format!("bad MAC {:?}", p.mac))?;
    let digest = match &p.client_id {
        Some(h) => Some(
            digest::client_id(&parse_hex(h)?)
                .context("client id must be 1 to 32 bytes for the fast path")?,
        ),
        None => None,
    };
    let relay = match &p.relay_info {
        Some(h) => {
            let raw = parse_hex(h)?;
            anyhow::ensure!(
                xdhcp::relay::fast_path_eligible(&raw),
                "option 82 must be at most {} bytes of well-formed sub-options, without link \
                 selection or server identifier override, for the fast path",
                dhcp_common::maps::RELAY_INFO_MAX
            );
            digest::relay_info(&raw)
        }
        None => None,
    };
    let e = LeaseEntry {
        grant_until_ns: clock::grant_until_ns(clock::monotonic_ns(), p.grant_secs),
        client_id_digest: digest.unwrap_or(0),
        relay_digest: relay.unwrap_or(0),
        renewed_at_ns: 0,
        lease_secs: p.lease_secs,
        profile: p.profile,
        flags: if digest.is_some() { LeaseEntry::F_CLIENT_ID } else { 0 }
            | if relay.is_some() { LeaseEntry::F_RELAY_INFO } else { 0 },
        renewed_secs: 0,
        chaddr: mac,
        ..Default::default()
    };
    let (mut maps, _lock) = open_to_write(&p.iface)?;
    maps.put_lease(p.addr, &e)?;
    println!(
        "{}: lease {} for {} ({} s, grantable for {} s)",
        p.iface, p.addr, p.mac, p.lease_secs, p.grant_secs
    );
    Ok(())
}

fn subnet_set(s: &SubnetArgs) -> Result<()> {
    let reply = subnet::SubnetOptions {
        server_id: s.server_id,
        mask: s.mask,
        routers: s.router.clone(),
        dns: s.dns.clone(),
        domain: s.domain.clone(),
        t1_secs: s.t1,
        t2_secs: s.t2,
        extra: vec![],
    }
    .encode()?;
    let (mut maps, _lock) = open_to_write(&s.iface)?;
    maps.set_profile(s.index, &reply)?;
    println!(
        "{}: reply profile {} ({} block) replies from {}",
        s.iface,
        s.index,
        if reply.flags & dhcp_common::ReplyProfile::F_LONG != 0 { "long" } else { "short" },
        Ipv4Addr::from(reply.server_id)
    );
    Ok(())
}

fn failover_partner_down(
    socket: &std::path::Path,
    confirm: bool,
    relationship: Option<String>,
) -> Result<()> {
    if !confirm {
        anyhow::bail!(
            "refusing without --yes-partner-is-down: check first that the partner is really \
             down (not just unreachable from here); two servers in partner-down can give one \
             address to two clients"
        );
    }
    let v = ctl::request(socket, &ctl::Request::FailoverPartnerDown { confirm, relationship })?;
    let at = v["partner_addresses_usable_at"].as_u64().unwrap_or(0);
    println!(
        "partner-down: this server now serves every client; the partner's free addresses \
         become usable in {} s (STOS+MCLT, unix time {at})",
        v["usable_in_secs"].as_u64().unwrap_or(0)
    );
    Ok(())
}

fn failover_status(
    socket: &std::path::Path,
    json: bool,
    relationship: Option<String>,
) -> Result<()> {
    let v = ctl::request(socket, &ctl::Request::FailoverStatus { relationship })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match v["relationships"].as_array() {
        Some(all) => {
            for (i, st) in all.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_relationship(st);
            }
        }
        None => print_relationship(&v),
    }
    Ok(())
}

/// One relationship's `failover status`, for a person.
fn print_relationship(v: &serde_json::Value) {
    let s = |k: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!("relationship {} ({}), partner {}", s("relationship"), s("role"), s("peer"));
    println!(
        "  this server: {} since {} ({} s); partner: {} since {}",
        s("my_state"),
        s("my_stos"),
        s("my_state_for_secs"),
        s("partner_state"),
        s("partner_stos")
    );
    println!(
        "  communicating: {}, serving: {}, fast path allowed: {}, MCLT {} s",
        s("communicating"),
        s("service"),
        s("fast_path_allowed"),
        s("mclt")
    );
    println!(
        "  updates: {} unacked, {} queued; {} sent, {} acked, {} rejected; {} partner bindings applied",
        s("updates_unacked"),
        s("updates_queued"),
        s("updates_sent_total"),
        s("acks_received_total"),
        s("rejects_received_total"),
        s("bindings_applied_total")
    );
    if let Some(at) = v["partner_addresses_usable_at"].as_u64() {
        println!("  partner-down: the partner's free addresses are usable from unix time {at}");
    }
    println!(
        "  link: {}; refused {} connections from strangers, {} failed TLS handshakes",
        if v["link_tls"] == true { "TLS 1.3" } else { "plain TCP" },
        s("link_refused_strangers_total"),
        s("link_refused_handshakes_total")
    );
    println!(
        "  new clients refused because this server's share was used up: {}",
        s("refused_share_exhausted_total")
    );
    let next =
        v["next_balance_at"].as_u64().map_or(String::new(), |t| format!("; next pass at {t}"));
    println!(
        "  pool balancing: {} free addresses moved to the partner{next}",
        s("balanced_moved_total")
    );
    let cols = [
        "subnet",
        "share_ours_free",
        "share_partner_free",
        "free_primary",
        "backup_secondary",
        "active",
        "expired",
        "released",
        "abandoned",
        "reset",
    ];
    let rows: Vec<Vec<String>> = v["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| cols.iter().map(|k| p[*k].to_string().trim_matches('"').to_owned()).collect())
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "SUBNET",
                "OURS FREE",
                "PARTNER'S FREE",
                "FREE(PRIMARY)",
                "BACKUP(SECONDARY)",
                "ACTIVE",
                "EXPIRED",
                "RELEASED",
                "ABANDONED",
                "RESET"
            ],
            &rows
        )
    );
}

//! `cargo xtask bench flood`: a DISCOVER flood from one access port while known clients renew
//! and new ones arrive, on the e2e lab (one veth pair between two namespaces), for xdhcp
//! (with lease limits alone, then also with policing in XDP) and Kea in one run. Three load generators at once, each as its own relay agent (its own
//! address on the client side): 1,000 known clients, each on its own line, renewing at a
//! steady rate; a flood of DISCOVERs from ever new MACs behind one line (a starvation attack,
//! or a looping CPE), each OFFER taken up; and 100 new legitimate clients arriving while it
//! runs. Every generator is bounded in count and time, and only the lab's namespaces see it.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use std::fmt::Write as _;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::e2e::{Kind, Lab, RELAY_IP, SERVER_IP, Setup};
use crate::load::{FloodSummary, Summary};

pub struct Options {
    pub xdhcp: PathBuf,
    pub load: PathBuf,
    pub out_dir: PathBuf,
    /// How long the known clients renew; the flood runs inside it.
    pub secs: u64,
    /// Renewals per second of the known clients.
    pub renew_rate: u64,
    /// The flood's DISCOVERs per second (0: as fast as the generator can).
    pub flood_rate: u64,
}

const KNOWN: u32 = 1000;
const NEW: u32 = 100;
/// 2,048 addresses.
const POOL_END: Ipv4Addr = Ipv4Addr::new(10, 65, 7, 255);
const FLOOD_RELAY: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 3);
const NEW_RELAY: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 4);
/// At most this many DISCOVERs, whatever the rate: more than the generator sends in the
/// flood's time (it reaches some 400,000 a second here), so the flood lasts all of it.
const FLOOD_MAX: u32 = 50_000_000;

#[derive(Debug, Serialize)]
pub struct Row {
    pub server: Kind,
    /// xdhcp with [`POLICE`]: the flood policed in XDP.
    pub policed: bool,
    /// Messages XDP's policing dropped (xdhcp only).
    pub xdp_policed_drops: u64,
    /// ACKs XDP sent over the run (xdhcp only): the known clients' renewals it answered,
    /// whether or not the generator saw every one of them come back.
    pub xdp_acks: u64,
    /// Share of the known clients' renewals answered.
    pub known_renewals_answered: f64,
    pub known_renewals_sent: u64,
    /// Share of the new legitimate clients that got a lease.
    pub new_clients_served: f64,
    /// Addresses the flood obtained, of the pool's 2,048.
    pub flood_addresses: u64,
    /// OFFERs the flood's DISCOVERs got back.
    pub flood_offers: u64,
    pub flood_discovers_sent: u64,
    pub flood_rate_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct FloodReport {
    pub secs: u64,
    pub renew_rate: u64,
    pub pool: u32,
    /// xdhcp's limit per access port (`[limits] leases_per_circuit_id`).
    pub xdhcp_leases_per_circuit_id: u32,
    /// The policed row's `[police]`.
    pub xdhcp_police: &'static str,
    pub rows: Vec<Row>,
}

const PER_PORT: u32 = 4;
/// What an operator might set at an access edge: a line may send 10 messages a second that
/// XDP does not answer, 20 at once (a CPE's DORA is 2, a whole OLT's reboot one per line).
const POLICE: &str = "[police]\nport = { rate = 10, burst = 20 }\nmac = { rate = 5, burst = 10 }\n";

fn spawn_load(lab: &Lab, load: &Path, args: &[String], out: &Path) -> Result<Child> {
    let _ = std::fs::remove_file(out);
    Command::new(load)
        .args(["--netns", lab.cli.name(), "--iface", &lab.veth.b.name, "--quiet", "--out"])
        .arg(out)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start xdhcp-load")
}

fn finish<T: serde::de::DeserializeOwned>(mut c: Child, out: &Path) -> Result<T> {
    let st = c.wait()?;
    if !st.success() {
        bail!("xdhcp-load failed ({st}); its summary would be at {}", out.display());
    }
    Ok(serde_json::from_slice(&std::fs::read(out)?)?)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn row(lab: &Lab, o: &Options, kind: Kind, policed: bool) -> Result<Row> {
    let police = if policed { POLICE } else { "" };
    let setup = Setup {
        pool_end: POOL_END,
        xdhcp_extra: format!("[limits]\nleases_per_circuit_id = {PER_PORT}\n{police}"),
    };
    let _server = lab.start_with(kind, &o.xdhcp, &o.load, &setup)?;
    let server = SERVER_IP.to_string();
    let work = &lab.work;
    let (known_out, flood_out, new_out) =
        (work.join("known.json"), work.join("flood.json"), work.join("new.json"));
    let renewals = (o.renew_rate * o.secs).to_string();
    let mut known_args = strings(&["--clients", &KNOWN.to_string(), "--renewals", &renewals]);
    known_args.extend(strings(&["--rate", &o.renew_rate.to_string(), "--seed", "11"]));
    known_args.extend(strings(&["--relay", &RELAY_IP.to_string(), "--server", &server]));
    known_args.extend(strings(&["--circuit-id", "olt1 1/1/{i}:100"]));
    known_args.extend(strings(&["--duration", &(o.secs + 30).to_string()]));
    let known = spawn_load(lab, &o.load, &known_args, &known_out)?;
    // The known clients bind first (a second or two), then the flood starts, then the new ones.
    std::thread::sleep(Duration::from_secs(3));
    let flood_secs = o.secs.saturating_sub(4).max(2);
    let mut flood_args = strings(&["--flood", "--clients", &FLOOD_MAX.to_string(), "--seed", "12"]);
    flood_args.extend(strings(&["--rate", &o.flood_rate.to_string()]));
    flood_args.extend(strings(&["--relay", &FLOOD_RELAY.to_string(), "--server", &server]));
    flood_args.extend(strings(&[
        "--circuit-id",
        "olt9 9/9/9:999",
        "--duration",
        &flood_secs.to_string(),
    ]));
    let flood = spawn_load(lab, &o.load, &flood_args, &flood_out)?;
    std::thread::sleep(Duration::from_secs(1));
    let mut new_args = strings(&["--clients", &NEW.to_string(), "--window", "4", "--seed", "13"]);
    new_args.extend(strings(&["--relay", &NEW_RELAY.to_string(), "--server", &server]));
    new_args.extend(strings(&["--circuit-id", "olt2 2/2/{i}:200"]));
    new_args.extend(strings(&["--duration", &flood_secs.saturating_sub(1).max(1).to_string()]));
    let new = spawn_load(lab, &o.load, &new_args, &new_out)?;
    // A generator that got no lease at all exits with an error: for the new clients that is
    // a figure (none served), not a failed run.
    let new: Summary = finish(new, &new_out).unwrap_or_default();
    let flood: FloodSummary = finish(flood, &flood_out)?;
    let known: Summary = finish(known, &known_out)?;
    let (xdp_acks, xdp_policed_drops) = if kind == Kind::Kea { (0, 0) } else { xdp_counts(lab)? };
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let r = Row {
        server: kind,
        policed,
        xdp_policed_drops,
        xdp_acks,
        known_renewals_answered: known.renewal_acks as f64 / known.renewals_sent.max(1) as f64,
        known_renewals_sent: known.renewals_sent,
        new_clients_served: new.bound as f64 / f64::from(NEW),
        flood_addresses: flood.bound,
        flood_offers: flood.offers,
        flood_discovers_sent: flood.discovers_sent,
        flood_rate_per_s: flood.sent_per_s,
    };
    eprintln!("{kind:?}: {r:?}");
    Ok(r)
}

/// What XDP has counted on the server's interface so far: its ACKs, and the messages its
/// policing dropped.
fn xdp_counts(lab: &Lab) -> Result<(u64, u64)> {
    use dhcp_common::Stat;
    let dir = xdhcp::fastpath::pin_dir(&lab.veth.a.name);
    let c = xdhcp::fastpath::maps::FastPathMaps::open_pinned(&dir)?.stats()?;
    let policed = Stat::POLICED.iter().map(|s| c.get(*s)).sum();
    Ok((c.get(Stat::Ack), policed))
}

pub fn flood(o: &Options) -> Result<FloodReport> {
    let lab = Lab::new()?;
    for a in [FLOOD_RELAY, NEW_RELAY] {
        lab.cli.ip(&["addr", "add", &format!("{a}/10"), "dev", &lab.veth.b.name])?;
    }
    let mut rows = Vec::new();
    for (kind, policed) in [(Kind::XdhcpFast, false), (Kind::XdhcpFast, true), (Kind::Kea, false)] {
        rows.push(row(&lab, o, kind, policed)?);
    }
    let r = FloodReport {
        secs: o.secs,
        renew_rate: o.renew_rate,
        pool: 2048,
        xdhcp_leases_per_circuit_id: PER_PORT,
        xdhcp_police: POLICE,
        rows,
    };
    super::write_report(&o.out_dir, "flood", &r, &chart(&r))?;
    Ok(r)
}

/// Three groups of bars (renewals answered, new clients served, pool taken by the flood), a
/// bar per server, on a 0-100 % scale.
#[expect(clippy::cast_precision_loss, reason = "bar indices and counts, far below 2^52")]
fn chart(r: &FloodReport) -> String {
    let groups: [(&str, Vec<f64>); 3] = [
        ("known renewals answered", r.rows.iter().map(|x| x.known_renewals_answered).collect()),
        ("new clients served", r.rows.iter().map(|x| x.new_clients_served).collect()),
        (
            "pool taken by the flood",
            r.rows.iter().map(|x| x.flood_addresses as f64 / f64::from(r.pool)).collect(),
        ),
    ];
    let colors = ["#2b7bba", "#2ba35a", "#d9822b"];
    let (w, h, top, bottom) = (720.0, 360.0, 40.0, 300.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\"><rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/><text x=\"10\" y=\"20\" font-size=\"14\">A DISCOVER flood from one \
         port, {}s: xdhcp (blue), xdhcp policed in XDP (green), Kea (orange)</text>",
        r.secs
    );
    for (g, (name, vals)) in groups.iter().enumerate() {
        let x0 = 40.0 + g as f64 * 230.0;
        for (k, v) in vals.iter().enumerate() {
            let bh = (bottom - top) * v.clamp(0.0, 1.0);
            let x = x0 + k as f64 * 66.0;
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{}\" width=\"60\" height=\"{bh}\" fill=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.1} %</text>",
                bottom - bh,
                colors[k % colors.len()],
                x + 30.0,
                bottom - bh - 4.0,
                v * 100.0
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{name}</text>",
            x0 + 96.0,
            bottom + 20.0
        );
    }
    svg + "</svg>"
}

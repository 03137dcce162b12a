//! `xdhcp-load`: a `DHCPv4` load generator for any server.
use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use clap::Parser;
use dhcp_lab::load::{self, LoadOptions};
use xdhcp::packet::Vlan;

/// DHCPv4 load generator: simulated clients on one interface get leases (DORA), then renew
/// them, against any DHCPv4 server on that link.
///
/// Every client has its own MAC (from --seed) and client identifier (1 + MAC). Frames are sent
/// and received whole on a packet socket, so the clients need no addresses and replies are
/// counted before the IP stack sees them. Needs root (CAP_NET_RAW). It sends only on --iface:
/// point it at a test network (a veth into a namespace), never at a production one.
///
/// Phase 1, DORA: up to --window clients in flight; a client that has not moved on within a
/// second (a lost OFFER or ACK, a NAK) starts over. Phase 2, only with --renewals N: N
/// RENEWING requests, unicast to the server that bound each client, cycling over the bound
/// clients, at --rate per second or as fast as the socket takes them.
///
/// With --circuit-id/--remote-id every message of every client carries option 82, per
/// client, added last: by the relay (--relay), or by a layer-2 access node (giaddr 0).
///
/// Prints a JSON summary on stdout: clients bound and DORA/s; renewals sent, ACKed, ACKed per
/// second and lost; latency percentiles (µs, log2 buckets). Progress goes to stderr.
#[expect(
    clippy::doc_markdown,
    reason = "clap prints these doc comments as --help text, where backticks would show literally"
)]
#[derive(Parser, Debug)]
#[command(name = "xdhcp-load", version, verbatim_doc_comment)]
struct Args {
    /// Interface to send on (in the network namespace of --netns, if given).
    #[arg(long)]
    iface: String,
    /// Run inside this network namespace (from `ip netns add`).
    #[arg(long)]
    netns: Option<String>,
    /// Simulated clients (at most 2^30 - 1).
    #[arg(long, default_value_t = 1000)]
    clients: u32,
    /// Renewals to send in all after the DORA phase; 0: DORA only.
    #[arg(long, default_value_t = 0)]
    renewals: u64,
    /// Renewals per second; 0: as fast as the socket takes them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Hard stop for the whole run, seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// DORAs in flight at once.
    #[arg(long, default_value_t = 64)]
    window: u32,
    /// Sets the clients' MACs: a run with another seed is another population, the same seed
    /// the same clients again.
    #[arg(long, default_value_t = 1)]
    seed: u16,
    /// Act as a relay agent with this address (which --iface must have): requests carry it as
    /// giaddr and go to --server's port 67, so the server answers without ARP for addresses
    /// the simulated clients do not hold (as perfdhcp does).
    #[arg(long, requires = "server", value_name = "GIADDR")]
    relay: Option<Ipv4Addr>,
    /// The server a relay (--relay) sends to.
    #[arg(long, requires = "relay")]
    server: Option<Ipv4Addr>,
    /// Add option 82 to every message with this circuit-id ({i}: the client's index, {mac}:
    /// its MAC), e.g. "olt1 eth 1/1/{i}:100". With --relay as that relay; without, as a
    /// layer-2 access node (giaddr 0), renewals included.
    #[arg(long, value_name = "TEMPLATE")]
    circuit_id: Option<String>,
    /// Tag every frame with this VLAN id; given twice, QinQ (the first the 802.1ad S-tag, the
    /// second the 802.1Q C-tag), as an access node's uplink carries subscribers.
    #[arg(long = "vlan", value_name = "ID", value_parser = clap::value_parser!(u16).range(1..4095))]
    vlans: Vec<u16>,
    /// Option 82's remote-id, as --circuit-id.
    #[arg(long, value_name = "TEMPLATE")]
    remote_id: Option<String>,
    /// Skip the DORA phase: client i already holds this address + i (from --server), and
    /// only renews it. Leases must exist, or the server must answer without them.
    #[arg(long, value_name = "FIRST_ADDRESS")]
    assume_bound: Option<Ipv4Addr>,
    /// Flood instead: --clients DISCOVERs, each from another new client, at --rate (0: as
    /// fast as the socket takes them), none retransmitted, each OFFER taken up; bounded by
    /// --duration. Prints what the flood obtained.
    #[arg(long)]
    flood: bool,
    /// Also write the JSON summary to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("xdhcp-load: {e:#}");
        std::process::exit(1);
    }
}

fn run(a: Args) -> Result<()> {
    if let Some(ns) = &a.netns {
        xdhcp::fastpath::enter_netns(ns)?;
    }
    let opts = LoadOptions {
        iface: a.iface,
        clients: a.clients,
        renewals: a.renewals,
        rate: a.rate,
        duration: Duration::from_secs(a.duration),
        window: a.window,
        seed: a.seed,
        relay: a.relay.zip(a.server),
        agent: load::Agent {
            circuit_id: a.circuit_id,
            remote_id: a.remote_id,
            vlans: match a.vlans.as_slice() {
                [] => vec![],
                [c] => vec![Vlan::dot1q(*c)],
                [s, c] => vec![Vlan::dot1ad(*s), Vlan::dot1q(*c)],
                _ => anyhow::bail!("--vlan: at most two tags (S-tag, then C-tag)"),
            },
        },
        assume_bound: a.assume_bound,
        progress: !a.quiet,
    };
    let json = if a.flood {
        serde_json::to_string_pretty(&load::flood(&opts)?)?
    } else {
        serde_json::to_string_pretty(&load::run(&opts)?)?
    };
    println!("{json}");
    if let Some(p) = a.out {
        std::fs::write(&p, json + "\n").with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}

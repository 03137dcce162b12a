//! `xdhcp-lab bench history`: what the lease history costs at the fast path's renewal rate.
//!
//! Every renewal XDP answers reaches the turn through the event log and becomes a history
//! event, so the history is at its busiest exactly when the server is. Two questions, each
//! answered against a yardstick timed in the same run:
//!
//! * the turn: renewals drained per second with `[history]` and without, the same batches in
//!   alternating rounds (the ratio is the history's share of the turn thread);
//! * the writer: events appended to the rotated file per second, against writing the same bytes
//!   to a file in the same directory with nothing else to do (the ratio is the formatting and
//!   bookkeeping over the disk's own speed), and against the turn's rate (below 1, a sustained
//!   peak fills the writer's queue and events are dropped, counted).
use std::{
    io::Write as _,
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use dhcp_common::RenewEvent;
use serde_json::{Value, json};
use xdhcp::{
    config::Config,
    core::{Core, Input, MemStore, Now, Output},
    history::RawEvent,
    store::{Chaddr, ClientId, Lease, LeaseState},
};

const T0: u64 = 1_700_000_000;
/// Leases renewed each round: a busy node's renewals over a few seconds.
const LEASES: u32 = 100_000;
/// The daemon's batch: the renewals drained in one turn at most.
const BATCH: u32 = 1024;
const ROUNDS: usize = 5;

fn config(dir: Option<&Path>) -> Result<Config> {
    let history = dir.map_or(String::new(), |d| {
        format!("\n[history]\nfile = \"{}\"\nmax_size = 67108864\nkeep = 4\n", d.display())
    });
    let text = format!(
        "interfaces = [\"eth1\"]\nserver_id = \"10.0.0.1\"\n\n[fast_path]\nhorizon = \"2h\"\n\n\
         [[subnet]]\nprefix = \"10.128.0.0/14\"\n\
         pools = [{{ start = \"10.128.0.10\", end = \"10.131.255.250\" }}]\n\
         lease_time = 3600\n{history}"
    );
    Ok(Config::from_toml(&text, "bench-history.toml")?)
}

fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 10)) + i)
}

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [2, 0, b[0], b[1], b[2], b[3]]
}

/// Every lease bound with a client id and option 82 (what makes an event's strings), held
/// far enough ahead that a renewal needs no commit: the turn's cheapest case, so the
/// history's share of it is at its largest.
fn store() -> MemStore {
    let mut s = MemStore::default();
    for i in 0..LEASES {
        let a = addr(i);
        let mut l = Lease::new(a, LeaseState::Active, 0, T0);
        l.htype = 1;
        l.chaddr = Chaddr::new(&mac(i));
        let mut id = vec![1];
        id.extend_from_slice(&mac(i));
        l.client_id = Some(ClientId::from(id.as_slice()));
        let circuit = format!("olt1 eth 1/{}/{}:100", i / 64 % 16, i % 64);
        let mut ri = vec![1, u8::try_from(circuit.len()).unwrap_or(0)];
        ri.extend_from_slice(circuit.as_bytes());
        ri.extend_from_slice(&[2, 6]);
        ri.extend_from_slice(&mac(i));
        l.relay_info = Some(ri.into_boxed_slice());
        l.expires_at = T0 + 3600;
        l.held_until = T0 + 3 * 3600;
        l.cltt = T0;
        l.stos = T0;
        s.leases.insert(a, l);
    }
    s
}

/// One round: every lease's renewal drained in batches, as the daemon drains the event log.
/// Seconds taken, and the history events of the round.
fn round(core: &mut Core, store: &mut MemStore, at: u64) -> (f64, Vec<RawEvent>) {
    let mut events = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while i < LEASES {
        let end = (i + BATCH).min(LEASES);
        let inputs: Vec<Input<()>> = (i..end)
            .map(|n| {
                Input::Renewed(RenewEvent {
                    at_ns: Now::at(at).mono_ns,
                    addr: addr(n).octets(),
                    granted_secs: 3600,
                    chaddr: mac(n),
                    _pad: [0; 10],
                })
            })
            .collect();
        let mut out: Output<()> = core.turn(Now::at(at), inputs, store);
        events.append(&mut out.history);
        i = end;
    }
    (started.elapsed().as_secs_f64(), events)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The history writer's rate over `events`, and the yardstick's: the same bytes written to a
/// file in the same directory by one `write_all` per turn's worth.
fn writer_rate(dir: &Path, cfg: &Config, events: &[RawEvent]) -> Result<(f64, f64, u64)> {
    let hist = cfg.history.as_ref().context("the config has [history]")?;
    let mut w = xdhcp::history::writer::Writer::start(hist)?;
    let started = Instant::now();
    for chunk in events.chunks(BATCH as usize) {
        w.record(chunk.to_vec());
    }
    let stats = w.stats.clone();
    // Dropping the writer waits for what is queued to be written.
    drop(w);
    let took = started.elapsed().as_secs_f64();
    let written = stats.written.load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(
        written == events.len() as u64,
        "the writer wrote {written} of {} events (dropped {})",
        events.len(),
        stats.dropped.load(std::sync::atomic::Ordering::Relaxed)
    );
    let bytes: u64 = hist
        .rotation
        .files()
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    // The yardstick: the same number of bytes, as lines of the same length, one write a batch.
    let line = bytes / events.len().max(1) as u64;
    let block = vec![b'x'; usize::try_from(line).unwrap_or(200) * BATCH as usize];
    let raw_path = dir.join("raw.jsonl");
    let mut f = std::fs::File::create(&raw_path)?;
    let started = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64);
        f.write_all(&block[..usize::try_from(n).unwrap_or(block.len())])?;
        left -= n;
    }
    f.flush()?;
    drop(f);
    let raw = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&raw_path);
    Ok((took, raw, bytes))
}

#[expect(clippy::cast_precision_loss, reason = "counts of events, far below 2^52")]
pub fn history(scratch: &Path) -> Result<Value> {
    std::fs::create_dir_all(scratch)?;
    let file = scratch.join("history.jsonl");
    for f in std::fs::read_dir(scratch)?.flatten() {
        let _ = std::fs::remove_file(f.path());
    }
    let (plain_cfg, hist_cfg) = (config(None)?, config(Some(&file))?);
    let (mut plain_store, mut hist_store) = (store(), store());
    let mut plain = Core::new(plain_cfg, &plain_store, T0)?;
    let mut hist = Core::new(hist_cfg.clone(), &hist_store, T0)?;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let mut events = Vec::new();
    for r in 0..ROUNDS {
        // A second apart, so that every round's renewals are news.
        let at = T0 + 60 + r as u64;
        let (t, _) = round(&mut plain, &mut plain_store, at);
        without.push(t);
        let (t, ev) = round(&mut hist, &mut hist_store, at);
        with.push(t);
        events = ev;
    }
    anyhow::ensure!(events.len() == LEASES as usize, "{} history events a round", events.len());
    let (without, with) = (median(without), median(with));
    let (took, raw, bytes) = writer_rate(scratch, &hist_cfg, &events)?;
    let n = f64::from(LEASES);
    let turn_rate = n / with;
    let writer = n / took;
    Ok(json!({
        "leases": LEASES,
        "batch": BATCH,
        "rounds": ROUNDS,
        "turn_renewals_per_s_without_history": (n / without).round(),
        "turn_renewals_per_s_with_history": turn_rate.round(),
        "history_share_of_turn": ((with - without) / with * 1000.0).round() / 1000.0,
        "turn_time_ratio_with_to_without": (with / without * 1000.0).round() / 1000.0,
        "writer_events_per_s": writer.round(),
        "writer_bytes_per_event": bytes / u64::from(LEASES),
        "raw_write_seconds": (raw * 1e6).round() / 1e6,
        "writer_seconds": (took * 1e6).round() / 1e6,
        "writer_time_ratio_to_raw_write": (took / raw.max(1e-9) * 100.0).round() / 100.0,
        "writer_to_turn_rate_ratio": (writer / turn_rate * 1000.0).round() / 1000.0,
        "writer_queue_turns": xdhcp::history::writer::CHANNEL_TURNS,
        "queue_holds_seconds_of_peak": (xdhcp::history::writer::CHANNEL_TURNS as f64
            * f64::from(BATCH)
            / (turn_rate - writer).max(1e-9))
        .min(Duration::from_hours(24).as_secs_f64())
        .round(),
    }))
}

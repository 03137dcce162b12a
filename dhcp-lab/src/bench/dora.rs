//! The e2e benchmark's primary DORA row: `xdhcp-load` in relay mode binding N clients (50,000
//! by default) against xdhcp's slow path and against Kea, each from an empty store, with a
//! window of DORAs in flight (a closed loop: a DORA starts when one ends, and a client that
//! has not moved on within a second starts over). perfdhcp tops out near 11,000 DORA/s on the
//! project's VMs, below what xdhcp answers; one `xdhcp-load` thread reaches further, and this
//! row measures how busy it was, so that every figure says what bounds it.
//!
//! Per trial: the generator's CPU time (its rusage, from wait4), the server's busiest thread's
//! and the whole machine's (`/proc`), over the trial's wall time. Bounded: N clients, a
//! 60-second deadline per trial, three windows per server.
use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::e2e::{Kind, Lab, Options, RELAY_IP, SERVER_IP};
use crate::load::Summary;

/// DORAs in flight, tried in turn: the best is the server's figure. Kea queues at most 64
/// packets a thread (`packet-queue-size`), xdhcp takes up to 512 requests a turn.
pub const WINDOWS: [u32; 3] = [32, 128, 512];
/// Hard stop for one trial.
const TRIAL_LIMIT: Duration = Duration::from_mins(1);
/// A thread at least this busy over a trial is what bounds it.
const BUSY: f64 = 0.85;

#[derive(Debug, Serialize)]
pub struct DoraTrial {
    pub server: Kind,
    pub window: u32,
    pub clients: u32,
    pub bound: u64,
    pub naks: u64,
    pub dora_per_s: f64,
    pub secs: f64,
    /// CPU time over wall time, in cores: the load generator (one thread), the server's
    /// busiest thread, the server in all, and the whole machine (two cores here).
    pub generator_cpu: f64,
    pub server_thread_cpu: f64,
    pub server_cpu: f64,
    pub machine_cpu: f64,
    /// Of the machine's time, what the hypervisor gave to others (steal), in cores.
    pub machine_steal: f64,
    /// xdhcp: the share of the trial its turn spent in the store's commits (SQLite and the
    /// fsync; from its control socket's `stats`); `None` for Kea.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_share: Option<f64>,
    /// What bounds the figure (see [`bound_by`]).
    pub bound_by: String,
}

/// A server's row: its best trial.
#[derive(Debug, Serialize)]
pub struct DoraRow {
    pub server: Kind,
    pub dora_per_s: u64,
    pub window: u32,
    pub bound_by: String,
    pub generator_limited: bool,
}

/// CPU ticks (user + system) of every thread of `pid`, by thread id.
fn thread_ticks(pid: u32) -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return vec![] };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // Fields after the command name (which may hold spaces, so after its closing paren):
        // state is field 3, utime and stime fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        Some((tid, f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?))
    })
    .collect()
}

/// Busy and stolen ticks of the whole machine (`/proc/stat`'s first line: user, nice,
/// system, idle, iowait, irq, softirq, steal, ...; busy is all but idle and iowait).
fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let total: u64 = v.iter().take(8).sum();
    (total - at(3) - at(4), at(7))
}

/// Microseconds xdhcp's turn has spent committing since it started (`stats`: commits times
/// their mean).
fn commit_micros(lab: &Lab) -> Option<u64> {
    let v = xdhcp::daemon::ctl::request(
        &lab.work.join("state/ctl.sock"),
        &xdhcp::daemon::ctl::Request::Stats,
    )
    .ok()?;
    Some(v["store"]["commits"].as_u64()? * v["store"]["mean_commit_us"].as_u64()?)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    #[expect(clippy::cast_precision_loss, reason = "ticks per second: 100")]
    if t > 0 { t as f64 } else { 100.0 }
}

/// The busiest thread's ticks between two samples, and all threads' ticks.
fn server_delta(before: &[(u32, u64)], after: &[(u32, u64)]) -> (u64, u64) {
    let d = |(tid, t): &(u32, u64)| {
        t - before.iter().find(|(b, _)| b == tid).map_or(0, |(_, bt)| *bt).min(*t)
    };
    let ds: Vec<u64> = after.iter().map(d).collect();
    (ds.iter().copied().max().unwrap_or(0), ds.iter().sum())
}

/// What a trial's figure is bounded by, from how busy each side was (in cores) and, for
/// xdhcp, the share of the time its turn waited in commits.
#[must_use]
pub fn bound_by(
    generator: f64,
    server_thread: f64,
    machine: f64,
    cores: f64,
    commit_share: Option<f64>,
) -> String {
    if generator >= BUSY {
        format!("load generator (xdhcp-load's thread {:.0} % busy)", generator * 100.0)
    } else if server_thread >= BUSY {
        format!("server (its busiest thread {:.0} % busy)", server_thread * 100.0)
    } else if machine >= BUSY * cores {
        format!(
            "both cores (machine {:.0} % busy; generator {:.0} %, server's thread {:.0} %)",
            machine / cores * 100.0,
            generator * 100.0,
            server_thread * 100.0
        )
    } else if let Some(c) = commit_share.filter(|c| *c >= 0.25) {
        format!(
            "commit latency (the turn in its commits {:.0} % of the time, its thread {:.0} % \
             busy; generator {:.0} %)",
            c * 100.0,
            server_thread * 100.0,
            generator * 100.0
        )
    } else {
        format!(
            "neither side's CPU (generator {:.0} %, server's thread {:.0} %): the round trip \
             over the window",
            generator * 100.0,
            server_thread * 100.0
        )
    }
}

/// `xdhcp-load` binding `clients` with `window` in flight; its summary and CPU seconds.
fn run_load(
    lab: &Lab,
    load: &Path,
    clients: u32,
    window: u32,
    seed: u16,
) -> Result<(Summary, f64)> {
    let out = lab.work.join("dora-load.json");
    let _ = std::fs::remove_file(&out);
    let mut child = std::process::Command::new(load)
        .args(["--netns", lab.cli.name(), "--iface", &lab.veth.b.name])
        .args(["--clients", &clients.to_string(), "--renewals", "0", "--rate", "0"])
        .args(["--window", &window.to_string()])
        .args(["--duration", &TRIAL_LIMIT.as_secs().to_string()])
        .args(["--relay", &RELAY_IP.to_string(), "--server", &SERVER_IP.to_string()])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start xdhcp-load")?;
    let pid = crate::lab::process::pid(child.id());
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, once; its status and rusage land in locals.
    let rc = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut ru) };
    if rc != pid {
        let _ = child.kill();
        bail!("wait4 xdhcp-load: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("xdhcp-load failed (wait status {status})");
    }
    #[expect(clippy::cast_precision_loss, reason = "CPU seconds and microseconds, small")]
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
    Ok((serde_json::from_slice(&std::fs::read(&out)?)?, cpu))
}

/// One trial: a fresh `kind`, `clients` bound with `window` in flight.
#[expect(clippy::cast_precision_loss, reason = "ticks and seconds, far below 2^52")]
fn trial(lab: &Lab, o: &Options, kind: Kind, window: u32) -> Result<DoraTrial> {
    let server = lab.start(kind, &o.xdhcp, &o.load)?;
    let spid = server.0.id();
    let xdhcp = kind != Kind::Kea;
    let c0 = if xdhcp { commit_micros(lab) } else { None };
    let (s0, m0, t0) = (thread_ticks(spid), machine_ticks(), Instant::now());
    let seed = u16::try_from(window % 60_000 + 7).unwrap_or(7);
    let (sum, gen_cpu) = run_load(lab, &o.load, o.dora_clients, window, seed)?;
    let secs = t0.elapsed().as_secs_f64();
    let (s1, m1) = (thread_ticks(spid), machine_ticks());
    let c1 = if xdhcp { commit_micros(lab) } else { None };
    drop(server);
    let commit_share = c0.zip(c1).map(|(a, b)| (b.saturating_sub(a)) as f64 / 1e6 / secs);
    let tck = clk_tck();
    let (busiest, all) = server_delta(&s0, &s1);
    let (server_thread_cpu, server_cpu) = (busiest as f64 / tck / secs, all as f64 / tck / secs);
    let machine_cpu = (m1.0 - m0.0) as f64 / tck / secs;
    let machine_steal = (m1.1 - m0.1) as f64 / tck / secs;
    let generator_cpu = gen_cpu / secs;
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let t = DoraTrial {
        server: kind,
        window,
        clients: o.dora_clients,
        bound: sum.bound,
        naks: sum.naks,
        dora_per_s: sum.dora_per_s,
        secs: sum.dora_secs,
        generator_cpu,
        server_thread_cpu,
        server_cpu,
        machine_cpu,
        machine_steal,
        commit_share,
        bound_by: bound_by(generator_cpu, server_thread_cpu, machine_cpu, cores, commit_share),
    };
    eprintln!(
        "{kind:?} DORA by xdhcp-load, window {window}: {}/{} bound, {:.0}/s; {}",
        t.bound, t.clients, t.dora_per_s, t.bound_by
    );
    Ok(t)
}

/// `kind`'s DORA row: every window in [`WINDOWS`], the best trial that bound every client.
pub(super) fn row(
    lab: &Lab,
    o: &Options,
    kind: Kind,
    trials: &mut Vec<DoraTrial>,
) -> Result<DoraRow> {
    let mut best: Option<(f64, DoraRow)> = None;
    for window in WINDOWS {
        let t = trial(lab, o, kind, window)?;
        let ok = t.bound == u64::from(t.clients);
        if ok && best.as_ref().is_none_or(|(b, _)| t.dora_per_s > *b) {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "DORAs per second: nonnegative, far below u64::MAX"
            )]
            let per_s = t.dora_per_s.round() as u64;
            let row = DoraRow {
                server: kind,
                dora_per_s: per_s,
                window,
                generator_limited: t.bound_by.starts_with("load generator"),
                bound_by: t.bound_by.clone(),
            };
            best = Some((t.dora_per_s, row));
        }
        trials.push(t);
    }
    best.map(|(_, r)| r)
        .with_context(|| format!("{kind:?}: no window bound all {} clients", o.dora_clients))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_side_is_named() {
        assert!(bound_by(0.95, 0.5, 1.5, 2.0, None).starts_with("load generator"));
        assert!(bound_by(0.5, 0.9, 1.5, 2.0, Some(0.5)).starts_with("server"));
        assert!(bound_by(0.6, 0.6, 1.9, 2.0, None).starts_with("both cores"));
        assert!(bound_by(0.2, 0.6, 1.0, 2.0, Some(0.4)).starts_with("commit latency"));
        assert!(bound_by(0.2, 0.3, 0.6, 2.0, Some(0.1)).starts_with("neither"));
    }

    #[test]
    fn the_busiest_thread_counts_only_this_trial() {
        let (before, after) = (vec![(1, 100), (2, 50)], vec![(1, 130), (2, 250), (3, 10)]);
        assert_eq!(server_delta(&before, &after), (200, 240));
    }
}

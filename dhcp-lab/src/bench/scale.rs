//! `xdhcp-lab bench scale`: one `xdhcp run` (fast path on) on the e2e veth lab, filled with N
//! clients by `xdhcp-load` in relay mode, for each N asked (10 k, 100 k, 1 M by default):
//! DORA/s and renewals/s through XDP; the daemon's resident memory per lease (a start over
//! the full store against a start over an empty one); how long a restart takes to serve with
//! the pins kept (after SIGKILL) and without them (cold); and how long `xdhcp leases` takes
//! to answer a lookup by address and by MAC, a count, and a page of 10,000.
//!
//! Every loop is bounded (N clients, N renewals, timeouts on each wait); only the lab's
//! namespaces see traffic.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use xdhcp::{daemon::ctl, fastpath};

use super::e2e::{Lab, RELAY_IP, Running, SERVER_IP};
use crate::load::Summary;

pub struct Options {
    pub xdhcp: PathBuf,
    pub load: PathBuf,
    pub out_dir: PathBuf,
    pub sizes: Vec<u32>,
}

#[derive(Debug, Serialize)]
pub struct Point {
    pub clients: u32,
    pub bound: u64,
    pub dora_per_s: f64,
    pub renew_acked_per_s: f64,
    pub renew_loss: f64,
    /// Resident memory of a daemon started over the empty store and over the full one.
    pub rss_empty_kib: u64,
    pub rss_full_kib: u64,
    pub rss_bytes_per_lease: f64,
    /// Start to the control socket's first answer (the daemon serves from then on).
    pub restart_pinned_secs: f64,
    pub restart_cold_secs: f64,
    /// What the pinned restart's reconcile wrote, kept and removed.
    pub reconcile_pinned: String,
    pub lookup_addr_ms: f64,
    pub lookup_mac_ms: f64,
    pub count_ms: f64,
    pub page_10k_ms: f64,
    pub store_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct ScaleReport {
    pub points: Vec<Point>,
}

fn config(lab: &Lab, state: &Path) -> String {
    format!(
        r#"interfaces = ["{iface}"]
server_id = "{SERVER_IP}"
state_dir = "{state}"
control_socket = "{state}/ctl.sock"
[fast_path]
lease_capacity = 2097152
[[subnet]]
prefix = "10.64.0.0/10"
pools = [{{ start = "10.65.0.0", end = "10.127.255.254" }}]
routers = ["{SERVER_IP}"]
dns = ["{SERVER_IP}"]
lease_time = 3600
"#,
        iface = lab.veth.a.name,
        state = state.display()
    )
}

fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

struct Bench<'a> {
    lab: &'a Lab,
    o: &'a Options,
    state: PathBuf,
    socket: PathBuf,
}

impl Bench<'_> {
    /// Starts the daemon over the current state; returns it once the control socket answers,
    /// with the seconds that took.
    fn start(&self) -> Result<(Running, f64)> {
        let cfg = self.lab.work.join("scale.toml");
        std::fs::write(&cfg, config(self.lab, &self.state))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.lab.work.join("scale.log"))?;
        let t = Instant::now();
        let child = Command::new(&self.o.xdhcp)
            .args(["--netns", self.lab.srv.name(), "run", "--config"])
            .arg(&cfg)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start xdhcp run")?;
        let mut running = Running(child);
        loop {
            if let Ok(Some(st)) = running.0.try_wait() {
                bail!("xdhcp exited ({st}); see {}", self.lab.work.join("scale.log").display());
            }
            if ctl::request(&self.socket, &ctl::Request::Stats).is_ok() {
                return Ok((running, t.elapsed().as_secs_f64()));
            }
            if t.elapsed() > Duration::from_mins(1) {
                bail!("xdhcp did not answer its control socket within 60 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(r: Running) -> Result<()> {
        let mut r = std::mem::ManuallyDrop::new(r);
        r.0.kill()?;
        r.0.wait()?;
        Ok(())
    }

    fn load(&self, clients: u32, renewals: u64) -> Result<Summary> {
        let out = self.lab.work.join("scale-load.json");
        let _ = std::fs::remove_file(&out);
        let secs = 120 + u64::from(clients) / 5_000;
        let st = Command::new(&self.o.load)
            .args(["--netns", self.lab.cli.name(), "--iface", &self.lab.veth.b.name])
            .args(["--clients", &clients.to_string(), "--renewals", &renewals.to_string()])
            .args(["--duration", &secs.to_string()])
            .args(["--relay", &RELAY_IP.to_string(), "--server", &SERVER_IP.to_string()])
            .args(["--seed", "7", "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("xdhcp-load failed: {st}");
        }
        Ok(serde_json::from_slice(&std::fs::read(&out)?)?)
    }

    /// Milliseconds `xdhcp leases ARGS` takes, the CLI's whole round trip (median of three).
    fn query_ms(&self, args: &[&str]) -> Result<f64> {
        let mut t: Vec<f64> = (0..3)
            .map(|_| {
                let start = Instant::now();
                let st = Command::new(&self.o.xdhcp)
                    .arg("leases")
                    .args(args)
                    .arg("--socket")
                    .arg(&self.socket)
                    .stdout(Stdio::null())
                    .status()?;
                if !st.success() {
                    bail!("xdhcp leases {args:?} failed: {st}");
                }
                Ok(start.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_>>()?;
        t.sort_by(f64::total_cmp);
        Ok(t[1])
    }

    fn reconcile_line(&self) -> String {
        let log = std::fs::read_to_string(self.lab.work.join("scale.log")).unwrap_or_default();
        log.lines()
            .rev()
            .find(|l| l.contains("kernel lease maps reconciled"))
            .map(|l| {
                l.split_whitespace()
                    .filter(|w| ["put=", "kept=", "removed="].iter().any(|k| w.starts_with(k)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    fn point(&self, n: u32) -> Result<Point> {
        let _ = std::fs::remove_dir_all(&self.state);
        std::fs::create_dir_all(&self.state)?;
        let _ = fastpath::detach(&self.lab.veth.a.name);
        let (empty, _) = self.start()?;
        let rss_empty_kib = rss_kib(empty.0.id())?;
        let s = self.load(n, u64::from(n))?;
        eprintln!(
            "scale {n}: {} bound, {:.0} DORA/s, {:.0} renewals/s through XDP",
            s.bound, s.dora_per_s, s.renew_acked_per_s
        );
        Self::kill(empty)?;
        // kill -9 with the pins kept: the new daemon finds every entry as it should be.
        let (full, restart_pinned_secs) = self.start()?;
        let rss_full_kib = rss_kib(full.0.id())?;
        let reconcile_pinned = self.reconcile_line();
        let addr = "10.65.0.9";
        let mac = ctl::request(
            &self.socket,
            &ctl::Request::Leases(Box::new(ctl::LeaseQuery {
                addr: Some(addr.parse()?),
                ..Default::default()
            })),
        )?["leases"][0]["mac"]
            .as_str()
            .unwrap_or("02:00:00:00:00:00")
            .to_owned();
        let lookup_addr_ms = self.query_ms(&["--addr", addr])?;
        let lookup_mac_ms = self.query_ms(&["--mac", &mac])?;
        let count_ms = self.query_ms(&["--count"])?;
        let page_10k_ms = self.query_ms(&["--limit", "10000", "--jsonl"])?;
        Self::kill(full)?;
        // Cold: no pins, every entry written anew.
        fastpath::detach(&self.lab.veth.a.name)?;
        let (cold, restart_cold_secs) = self.start()?;
        drop(cold);
        let store_bytes = std::fs::metadata(self.state.join("leases.db")).map_or(0, |m| m.len());
        #[expect(clippy::cast_precision_loss, reason = "KiB and lease counts, far below 2^52")]
        let per_lease = (rss_full_kib.saturating_sub(rss_empty_kib) * 1024) as f64 / f64::from(n);
        Ok(Point {
            clients: n,
            bound: s.bound,
            dora_per_s: s.dora_per_s,
            renew_acked_per_s: s.renew_acked_per_s,
            renew_loss: s.renew_loss,
            rss_empty_kib,
            rss_full_kib,
            rss_bytes_per_lease: per_lease,
            restart_pinned_secs,
            restart_cold_secs,
            reconcile_pinned,
            lookup_addr_ms,
            lookup_mac_ms,
            count_ms,
            page_10k_ms,
            store_bytes,
        })
    }
}

pub fn scale(o: &Options) -> Result<ScaleReport> {
    let lab = Lab::new()?;
    let state = lab.work.join("scale-state");
    let b = Bench { lab: &lab, o, socket: state.join("ctl.sock"), state };
    let mut points = Vec::new();
    for &n in &o.sizes {
        let p = b.point(n)?;
        eprintln!("{}", serde_json::to_string(&p)?);
        points.push(p);
    }
    let r = ScaleReport { points };
    super::write_report(&o.out_dir, "scale", &r, &chart(&r))?;
    Ok(r)
}

/// One small panel per figure, each against N on a log scale.
#[expect(clippy::cast_precision_loss, reason = "counts and indices, far below 2^52")]
fn chart(r: &ScaleReport) -> String {
    type Get = fn(&Point) -> f64;
    let panels: [(&str, Get); 6] = [
        ("DORA/s", |p| p.dora_per_s),
        ("renewals/s (XDP)", |p| p.renew_acked_per_s),
        ("RSS bytes per lease", |p| p.rss_bytes_per_lease),
        ("restart, pins kept (s)", |p| p.restart_pinned_secs),
        ("restart, cold (s)", |p| p.restart_cold_secs),
        ("lookup by MAC (ms)", |p| p.lookup_mac_ms),
    ];
    let (pw, ph) = (250.0, 170.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="14">xdhcp at N leases (x: N, log scale)</text>"#,
        3.0 * pw + 20.0,
        2.0 * ph + 40.0
    );
    let ns: Vec<f64> = r.points.iter().map(|p| f64::from(p.clients).log10()).collect();
    let (lo, hi) = (
        ns.iter().copied().fold(f64::MAX, f64::min),
        ns.iter().copied().fold(f64::MIN, f64::max).max(1.0),
    );
    for (k, (title, get)) in panels.iter().enumerate() {
        let (ox, oy) = (10.0 + (k % 3) as f64 * pw, 30.0 + (k / 3) as f64 * ph);
        let vals: Vec<f64> = r.points.iter().map(get).collect();
        let top = vals.iter().copied().fold(0.0, f64::max).max(1e-9);
        let x = |n: f64| ox + 30.0 + (pw - 60.0) * if hi > lo { (n - lo) / (hi - lo) } else { 0.5 };
        let y = |v: f64| oy + ph - 30.0 - (ph - 60.0) * (v / top);
        let _ = write!(s, r#"<text x="{:.1}" y="{:.1}">{title}</text>"#, ox + 30.0, oy + 14.0);
        let pts: Vec<String> =
            ns.iter().zip(&vals).map(|(n, v)| format!("{:.1},{:.1}", x(*n), y(*v))).collect();
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="#1b7837" stroke-width="2" points="{}"/>"##,
            pts.join(" ")
        );
        for ((n, v), p) in ns.iter().zip(&vals).zip(&r.points) {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1b7837"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#666">{}</text>"##,
                x(*n),
                y(*v),
                x(*n),
                y(*v) - 6.0,
                if *v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") },
                x(*n),
                oy + ph - 14.0,
                p.clients
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

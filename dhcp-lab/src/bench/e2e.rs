//! `xdhcp-lab bench e2e`: xdhcp with the fast path, xdhcp without it, and Kea 2.2 (memfile,
//! multi-threaded), one after the other on the same veth lab. DORA/s two ways: `xdhcp-load`
//! binding 50,000 clients with a window of DORAs in flight (the primary row, [`super::dora`],
//! which says what bounds each figure), and perfdhcp pushed to the highest rate it sustains
//! with at most 1 % unanswered. Renewals/s by `xdhcp-load` (relayed renewals, as perfdhcp
//! sends them), pushed the same way. A rate figure is the answered rate of the best passing
//! trial, and a trial passes only if the load generator actually reached the rate asked for:
//! when it is the bottleneck, the report says so (`load_generator_limited`).
//!
//! One more row: xdhcp with the fast path, renewals carrying option 82 (each client's own
//! circuit-id and remote-id, added by the relay): a trial passes only if XDP's own ACK counter
//! rose by exactly the renewals sent, so every one was answered in the kernel.
//!
//! Every server starts from an empty store for every trial, so no trial inherits another's
//! leases. Only the lab's namespaces see any traffic.
use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use xdhcp::fastpath;

use crate::{
    lab::{NetNs, VethEnd, VethPair},
    load::Summary,
};

pub(super) const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
pub(super) const RELAY_IP: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 2);
/// Rates are accepted when at most this share of requests goes unanswered.
const MAX_LOSS: f64 = 0.01;

/// The rows a run may be limited to (`--only`); all by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Row {
    /// XDP renewals carrying option 82.
    Opt82,
    /// DORA/s by `xdhcp-load`: xdhcp's slow path and Kea.
    DoraLoad,
    /// DORA/s by perfdhcp: every server.
    DoraPerfdhcp,
    /// Renewals/s: every server.
    Renew,
    /// The lab's ceiling (a bare XDP bounce).
    Ceiling,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    XdhcpFast,
    XdhcpSlow,
    Kea,
    /// `xdhcp_bounce`, the lab's ceiling.
    Ceiling,
}

#[derive(Debug, Serialize)]
pub struct Trial {
    pub server: Kind,
    pub test: &'static str,
    pub rate: u64,
    pub answered_per_s: f64,
    pub loss: f64,
    pub ok: bool,
    /// Renewal trials with option 82: renewals sent, and XDP's ACK counter over the trial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewals_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xdp_acks: Option<u64>,
    /// perfdhcp trials: replies its own socket dropped (UDP `RcvbufErrors` in the client's
    /// namespace over the trial), which the loss includes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_dropped: Option<u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct E2eReport {
    pub xdhcp_renew_per_s: u64,
    /// The same, every renewal carrying option 82 (circuit-id and remote-id), every one
    /// answered by XDP.
    pub xdhcp_renew_opt82_per_s: u64,
    pub xdhcp_slow_renew_per_s: u64,
    pub kea_renew_per_s: u64,
    /// DORA/s by `xdhcp-load` (the primary DORA row): xdhcp's slow path, every lease
    /// committed before its ACK, and Kea; their ratio; what bounds each.
    pub xdhcp_slow_dora_load_per_s: u64,
    pub kea_dora_load_per_s: u64,
    pub dora_load_xdhcp_over_kea: f64,
    pub dora_load: Vec<super::dora::DoraRow>,
    pub dora_load_trials: Vec<super::dora::DoraTrial>,
    /// DORA/s by perfdhcp.
    pub xdhcp_dora_per_s: u64,
    pub xdhcp_slow_dora_per_s: u64,
    pub kea_dora_per_s: u64,
    /// Renewals per second a bare XDP program that bounces every request answers on the same
    /// chain with the same generator: what the lab can carry.
    pub ceiling_renew_per_s: u64,
    /// `xdhcp_renew_per_s` over the ceiling.
    pub xdhcp_share_of_ceiling: f64,
    /// `xdhcp_renew_opt82_per_s` over `xdhcp_renew_per_s` (target: at least 0.9).
    pub opt82_over_plain: f64,
    pub max_loss: f64,
    pub trial_secs: u64,
    /// Servers whose search ended because the load generator could not send the rate asked
    /// for, not because the server dropped requests: their figure is a lower bound.
    pub load_generator_limited: Vec<String>,
    pub trials: Vec<Trial>,
}

pub struct Options {
    /// The server binary (`xdhcp run`).
    pub xdhcp: PathBuf,
    /// The load generator binary (`xdhcp-load`).
    pub load: PathBuf,
    pub out_dir: PathBuf,
    pub trial_secs: u64,
    /// Highest rate tried, per second.
    pub max_rate: u64,
    pub clients: u32,
    /// Only the XDP renewal rows: plain, with option 82, and the lab's ceiling.
    pub fast_only: bool,
    /// Clients the `xdhcp-load` DORA row binds.
    pub dora_clients: u32,
    /// Only these rows (empty: all).
    pub only: Vec<Row>,
}

impl Options {
    fn runs(&self, row: Row) -> bool {
        self.only.is_empty() || self.only.contains(&row)
    }
}

pub(super) struct Lab {
    pub(super) srv: NetNs,
    pub(super) cli: NetNs,
    pub(super) veth: VethPair,
    pub(super) work: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = fastpath::detach(&self.veth.a.name);
        let _ = fastpath::detach(&self.veth.b.name);
    }
}

/// A server process, stopped on drop.
pub(super) struct Running(pub(super) Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(crate::lab::process::pid(self.0.id()), libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Lab {
    pub(super) fn new() -> Result<Self> {
        let srv = NetNs::new("bench-srv")?;
        let cli = NetNs::new("bench-cli")?;
        let seq = std::process::id() % 10_000;
        let veth = VethPair::new(
            &srv,
            VethEnd {
                name: format!("xbs{seq}"),
                mac: [2, 0x64, 0, 0, 0, 1],
                addr: Some((SERVER_IP, 10)),
            },
            &cli,
            VethEnd {
                name: format!("xbc{seq}"),
                mac: [2, 0x64, 0, 0, 0, 2],
                addr: Some((RELAY_IP, 10)),
            },
        )?;
        let b = veth.b.name.clone();
        cli.run(move || fastpath::attach_peer(&b))?;
        let work = std::env::temp_dir().join(format!("xdhcp-bench-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        Ok(Self { srv, cli, veth, work })
    }

    pub(super) fn start(&self, kind: Kind, xdhcp: &Path, load: &Path) -> Result<Running> {
        self.start_with(kind, xdhcp, load, &Setup::default())
    }

    /// [`Lab::start`] with another pool, and more of xdhcp's config.
    pub(super) fn start_with(
        &self,
        kind: Kind,
        xdhcp: &Path,
        load: &Path,
        setup: &Setup,
    ) -> Result<Running> {
        let state = self.work.join("state");
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state)?;
        let log = std::fs::File::create(self.work.join(format!("{kind:?}.log")))?;
        let child = if kind == Kind::Kea {
            let cfg = self.work.join("kea.json");
            std::fs::write(&cfg, kea_config(&self.veth.a.name, &state, setup))?;
            self.srv
                .exec("kea-dhcp4")
                .arg("-c")
                .arg(&cfg)
                .env("KEA_PIDFILE_DIR", &state)
                .env("KEA_LOCKFILE_DIR", &state)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("start kea-dhcp4 (apt package kea-dhcp4-server)")?
        } else {
            let _ = fastpath::detach(&self.veth.a.name);
            let cfg = self.work.join("xdhcp.toml");
            let fast = kind == Kind::XdhcpFast;
            std::fs::write(&cfg, xdhcp_config(&self.veth.a.name, &state, fast, setup))?;
            Command::new(xdhcp)
                .args(["--netns", self.srv.name(), "run", "--config"])
                .arg(&cfg)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("start xdhcp run")?
        };
        let mut running = Running(child);
        // Ready when a DHCP request gets an answer: one client, one DORA.
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = running.0.try_wait() {
                let log = std::fs::read_to_string(self.work.join(format!("{kind:?}.log")))
                    .unwrap_or_default();
                bail!("{kind:?} exited ({st}): {}", log.trim());
            }
            if self.load(load, 1, 0, 0, 2, &[]).is_ok_and(|s| s.bound == 1) {
                return Ok(running);
            }
            if t.elapsed() > Duration::from_secs(20) {
                bail!("{kind:?} did not answer within 20 s (see {})", self.work.display());
            }
        }
    }

    fn load(
        &self,
        load: &Path,
        clients: u32,
        renewals: u64,
        rate: u64,
        secs: u64,
        extra: &[&str],
    ) -> Result<Summary> {
        let out = self.work.join("load.json");
        let _ = std::fs::remove_file(&out);
        let st = Command::new(load)
            .args(["--netns", self.cli.name(), "--iface", &self.veth.b.name])
            .args(["--clients", &clients.to_string(), "--renewals", &renewals.to_string()])
            .args(["--rate", &rate.to_string(), "--duration", &secs.to_string()])
            .args(["--relay", &RELAY_IP.to_string(), "--server", &SERVER_IP.to_string()])
            .args(extra)
            .args(["--seed", &(rate % 60_000 + 1).to_string(), "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("xdhcp-load failed: {st}");
        }
        Ok(serde_json::from_slice(&std::fs::read(&out)?)?)
    }

    /// perfdhcp at `rate` DORAs per second: answered per second, the unanswered share of the
    /// worse exchange, and how many replies perfdhcp's own socket dropped.
    fn perfdhcp(&self, rate: u64, secs: u64) -> Result<Perf> {
        let dropped_before = udp_rcvbuf_errors(&self.cli)?;
        // -W: after the test period, perfdhcp waits up to its drop time (1 s) for the replies
        // still on their way. Without it every request in flight when the period ended counted
        // as lost: the exchanges' latency over the trial's length (108 ms is 3.6 % of a
        // 3-second trial, at any rate), though the server answered every request.
        let out = self
            .cli
            .exec("perfdhcp")
            .args(["-4", "-l", &self.veth.b.name, "-r", &rate.to_string()])
            .args(["-R", &(rate * secs * 2).to_string(), "-p", &secs.to_string()])
            .args(["-W", "1000000"])
            .arg(SERVER_IP.to_string())
            .output()
            .context("run perfdhcp (apt package kea-admin)")?;
        let generator_dropped = udp_rcvbuf_errors(&self.cli)?.saturating_sub(dropped_before);
        let text = String::from_utf8_lossy(&out.stdout);
        let nums = |key: &str| -> Vec<f64> {
            text.lines()
                .filter_map(|l| l.strip_prefix(key))
                .filter_map(|v| v.trim().parse().ok())
                .collect()
        };
        let (sent, recv) = (nums("sent packets:"), nums("received packets:"));
        if sent.len() < 2 || recv.len() < 2 {
            bail!("perfdhcp printed no statistics: {text}");
        }
        // The REQUEST-ACK exchange completes a DORA.
        let loss = (0..2).map(|i| 1.0 - recv[i] / sent[i].max(1.0)).fold(0.0, f64::max);
        #[expect(clippy::cast_precision_loss, reason = "a trial's seconds, far below 2^52")]
        let per_s = recv[1] / secs as f64;
        #[expect(clippy::cast_precision_loss, reason = "packet counts, far below 2^52")]
        let generator_limited = generator_dropped > 0
            && 2.0 * generator_dropped as f64 >= (0..2).map(|i| sent[i] - recv[i]).sum::<f64>();
        Ok(Perf { per_s, loss, generator_dropped, generator_limited })
    }
}

/// One perfdhcp trial.
struct Perf {
    per_s: f64,
    loss: f64,
    generator_dropped: u64,
    /// perfdhcp's socket dropped at least half of what went unanswered: the loss is the
    /// generator's (it could not read its replies as fast as they came), not the server's.
    generator_limited: bool,
}

/// UDP datagrams dropped at full receive buffers in `ns` (`RcvbufErrors`, /proc/net/snmp).
fn udp_rcvbuf_errors(ns: &NetNs) -> Result<u64> {
    let out = ns.exec("cat").arg("/proc/net/snmp").output().context("read /proc/net/snmp")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        bail!("no Udp lines in /proc/net/snmp");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .context("no RcvbufErrors in /proc/net/snmp")
}

/// What a lab's servers serve: the pool's last address (from 10.65.0.0), and TOML appended
/// to xdhcp's config.
pub(super) struct Setup {
    pub pool_end: Ipv4Addr,
    pub xdhcp_extra: String,
}

impl Default for Setup {
    fn default() -> Self {
        Self { pool_end: Ipv4Addr::new(10, 127, 255, 254), xdhcp_extra: String::new() }
    }
}

fn xdhcp_config(iface: &str, state: &Path, fast: bool, setup: &Setup) -> String {
    let extra = &setup.xdhcp_extra;
    let end = setup.pool_end;
    format!(
        r#"interfaces = ["{iface}"]
server_id = "{SERVER_IP}"
state_dir = "{state}"
control_socket = "{state}/ctl.sock"
[fast_path]
enabled = {fast}
[[subnet]]
prefix = "10.64.0.0/10"
pools = [{{ start = "10.65.0.0", end = "{end}" }}]
routers = ["{SERVER_IP}"]
dns = ["{SERVER_IP}"]
lease_time = 3600
{extra}
"#,
        state = state.display()
    )
}

fn kea_config(iface: &str, state: &Path, setup: &Setup) -> String {
    let end = setup.pool_end;
    format!(
        r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "{iface}" ], "dhcp-socket-type": "raw" }},
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{state}/kea-leases.csv", "lfc-interval": 0 }},
  "multi-threading": {{ "enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64 }},
  "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 3150,
  "subnet4": [ {{ "subnet": "10.64.0.0/10", "pools": [ {{ "pool": "10.65.0.0 - {end}" }} ],
    "option-data": [ {{ "name": "routers", "data": "{SERVER_IP}" }}, {{ "name": "domain-name-servers", "data": "{SERVER_IP}" }} ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "output_options": [ {{ "output": "stdout" }} ], "severity": "WARN" }} ]
}} }}"#,
        state = state.display()
    )
}

/// A trial counts only if the load reached at least this share of the rate asked for: a load
/// generator that cannot keep up must not let a server pass a rate it never saw.
const MIN_ACHIEVED: f64 = 0.95;

/// The highest answered rate among trials that kept loss within [`MAX_LOSS`] at (nearly) the
/// rate asked for: doubling the rate, then bisecting. `trial` returns (answered per second,
/// whether it passed).
fn search(max_rate: u64, mut trial: impl FnMut(u64) -> Result<(f64, bool)>) -> Result<u64> {
    let (mut good, mut best, mut bad) = (0u64, 0f64, None);
    let mut rate = 1000;
    let mut pass = |rate: u64, best: &mut f64| -> Result<bool> {
        let (answered, ok) = trial(rate)?;
        #[expect(clippy::cast_precision_loss, reason = "rates far below 2^52 per second")]
        let ok = ok && answered >= MIN_ACHIEVED * rate as f64 * (1.0 - MAX_LOSS);
        if ok {
            *best = best.max(answered);
        }
        Ok(ok)
    };
    while rate <= max_rate {
        if pass(rate, &mut best)? {
            good = rate;
            rate *= 2;
        } else {
            bad = Some(rate);
            break;
        }
    }
    if let Some(mut hi) = bad {
        for _ in 0..3 {
            let mid = good.midpoint(hi);
            if mid <= good || hi - good < hi / 20 {
                break;
            }
            if pass(mid, &mut best)? {
                good = mid;
            } else {
                hi = mid;
            }
        }
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "best is a rate answered per second: nonnegative, far below u64::MAX"
    )]
    let best = best.round() as u64;
    Ok(best)
}

impl Lab {
    /// XDP's ACK counter on the server's interface.
    fn xdp_acks(&self) -> Result<u64> {
        let maps = xdhcp::fastpath::maps::FastPathMaps::open_pinned(&fastpath::pin_dir(
            &self.veth.a.name,
        ))?;
        Ok(maps.stats()?.get(dhcp_common::Stat::Ack))
    }
}

/// The option 82 row: xdhcp's fast path, every renewal carrying its client's option 82.
/// Option 82 as the load generator adds it: the client's line and its CPE.
const OPT82: &[&str] = &["--circuit-id", "olt1 eth 1/1/{i}:100", "--remote-id", "cpe-{i}"];

/// The lab's ceiling: the same generator renewing against `xdhcp_bounce`, which answers every
/// request with the least work an answer takes, on the same chain. No DORA: it holds no leases.
fn ceiling_row(lab: &Lab, o: &Options, r: &mut E2eReport) -> Result<u64> {
    let iface = lab.veth.a.name.clone();
    let _ = fastpath::detach(&iface);
    lab.srv.run(|| fastpath::attach_bounce(&iface))?;
    let mut limited = false;
    let best = search(o.max_rate, |rate| {
        let first = ["--assume-bound", "10.100.0.10"];
        let s = lab.load(&o.load, o.clients, rate * o.trial_secs, rate, o.trial_secs + 30, &first);
        let s = s?;
        let ok = s.renew_loss <= MAX_LOSS;
        #[expect(clippy::cast_precision_loss, reason = "rates far below 2^52 per second")]
        let short = s.renew_sent_per_s < MIN_ACHIEVED * rate as f64;
        limited = ok && short;
        eprintln!(
            "bare XDP bounce, rate {rate}: {:.0}/s answered, loss {:.2} %",
            s.renew_acked_per_s,
            s.renew_loss * 100.0
        );
        r.trials.push(Trial {
            server: Kind::Ceiling,
            test: "renew",
            rate,
            answered_per_s: s.renew_acked_per_s,
            loss: s.renew_loss,
            ok,
            renewals_sent: Some(s.renewals_sent),
            xdp_acks: None,
            generator_dropped: None,
        });
        Ok((s.renew_acked_per_s, ok))
    });
    let _ = fastpath::detach(&iface);
    if limited {
        r.load_generator_limited.push("bare XDP bounce".into());
    }
    best
}

/// Renewals per second `kind` answers (xdhcp-load renewing after its DORA phase).
fn renew_row(lab: &Lab, o: &Options, kind: Kind, r: &mut E2eReport) -> Result<u64> {
    let mut limited = false;
    let best = search(o.max_rate, |rate| {
        let _server = lab.start(kind, &o.xdhcp, &o.load)?;
        let s = lab.load(&o.load, o.clients, rate * o.trial_secs, rate, o.trial_secs + 30, &[])?;
        let ok = s.bound == u64::from(o.clients) && s.renew_loss <= MAX_LOSS;
        // Everything sent was answered, but less was sent than asked for.
        #[expect(clippy::cast_precision_loss, reason = "rates far below 2^52 per second")]
        let short = s.renew_sent_per_s < MIN_ACHIEVED * rate as f64;
        limited = ok && short;
        eprintln!(
            "{kind:?} renew rate {rate}: {:.0}/s answered, loss {:.2} %",
            s.renew_acked_per_s,
            s.renew_loss * 100.0
        );
        r.trials.push(Trial {
            server: kind,
            test: "renew",
            rate,
            answered_per_s: s.renew_acked_per_s,
            loss: s.renew_loss,
            ok,
            renewals_sent: None,
            xdp_acks: None,
            generator_dropped: None,
        });
        Ok((s.renew_acked_per_s, ok))
    })?;
    if limited {
        r.load_generator_limited.push(format!("{kind:?}"));
    }
    Ok(best)
}

/// The ceiling row, and the two ratios the report is read by.
#[expect(clippy::cast_precision_loss, reason = "rates far below 2^52 per second")]
fn ceiling(lab: &Lab, o: &Options, r: &mut E2eReport) -> Result<()> {
    r.ceiling_renew_per_s = ceiling_row(lab, o, r)?;
    r.xdhcp_share_of_ceiling = r.xdhcp_renew_per_s as f64 / r.ceiling_renew_per_s.max(1) as f64;
    r.opt82_over_plain = r.xdhcp_renew_opt82_per_s as f64 / r.xdhcp_renew_per_s.max(1) as f64;
    Ok(())
}

fn opt82_row(lab: &Lab, o: &Options, r: &mut E2eReport) -> Result<u64> {
    let mut limited = false;
    let best = search(o.max_rate, |rate| {
        let _server = lab.start(Kind::XdhcpFast, &o.xdhcp, &o.load)?;
        let before = lab.xdp_acks()?;
        let s =
            lab.load(&o.load, o.clients, rate * o.trial_secs, rate, o.trial_secs + 30, OPT82)?;
        let acks = lab.xdp_acks()? - before;
        let ok =
            s.bound == u64::from(o.clients) && s.renew_loss <= MAX_LOSS && acks == s.renewals_sent;
        #[expect(clippy::cast_precision_loss, reason = "rates far below 2^52 per second")]
        let short = s.renew_sent_per_s < MIN_ACHIEVED * rate as f64;
        limited = ok && short;
        eprintln!(
            "XdhcpFast renew with option 82, rate {rate}: {:.0}/s answered, loss {:.2} %, {acks} \
             XDP ACKs for {} sent",
            s.renew_acked_per_s,
            s.renew_loss * 100.0,
            s.renewals_sent
        );
        r.trials.push(Trial {
            server: Kind::XdhcpFast,
            test: "renew_opt82",
            rate,
            answered_per_s: s.renew_acked_per_s,
            loss: s.renew_loss,
            ok,
            renewals_sent: Some(s.renewals_sent),
            xdp_acks: Some(acks),
            generator_dropped: None,
        });
        Ok((s.renew_acked_per_s, ok))
    })?;
    if limited {
        r.load_generator_limited.push("XdhcpFast (option 82)".into());
    }
    Ok(best)
}

pub fn e2e(o: &Options) -> Result<E2eReport> {
    let lab = Lab::new()?;
    let mut r = E2eReport { max_loss: MAX_LOSS, trial_secs: o.trial_secs, ..E2eReport::default() };
    if o.runs(Row::Opt82) {
        r.xdhcp_renew_opt82_per_s = opt82_row(&lab, o, &mut r)?;
    }
    if o.fast_only {
        r.xdhcp_renew_per_s = renew_row(&lab, o, Kind::XdhcpFast, &mut r)?;
        ceiling(&lab, o, &mut r)?;
        std::fs::create_dir_all(&o.out_dir)?;
        std::fs::write(o.out_dir.join("e2e-fast.json"), serde_json::to_string_pretty(&r)? + "\n")?;
        return Ok(r);
    }
    if o.runs(Row::DoraLoad) {
        dora_load(&lab, o, &mut r)?;
    }
    for kind in [Kind::XdhcpFast, Kind::XdhcpSlow, Kind::Kea] {
        let dora = if o.runs(Row::DoraPerfdhcp) { perfdhcp_row(&lab, o, kind, &mut r)? } else { 0 };
        let renew = if o.runs(Row::Renew) { renew_row(&lab, o, kind, &mut r)? } else { 0 };
        let (d, n) = match kind {
            Kind::XdhcpFast => (&mut r.xdhcp_dora_per_s, &mut r.xdhcp_renew_per_s),
            Kind::XdhcpSlow => (&mut r.xdhcp_slow_dora_per_s, &mut r.xdhcp_slow_renew_per_s),
            Kind::Kea => (&mut r.kea_dora_per_s, &mut r.kea_renew_per_s),
            Kind::Ceiling => continue,
        };
        (*d, *n) = (dora, renew);
    }
    if o.runs(Row::Ceiling) {
        ceiling(&lab, o, &mut r)?;
    }
    // A run of some rows leaves the full run's report and chart alone.
    let name = if o.only.is_empty() { "e2e" } else { "e2e-only" };
    super::write_report(&o.out_dir, name, &r, &chart(&r))?;
    Ok(r)
}

/// The primary DORA row: `xdhcp-load` against xdhcp's slow path and Kea, and their ratio.
#[expect(clippy::cast_precision_loss, reason = "rates far below 2^52 per second")]
fn dora_load(lab: &Lab, o: &Options, r: &mut E2eReport) -> Result<()> {
    for kind in [Kind::XdhcpSlow, Kind::Kea] {
        let row = super::dora::row(lab, o, kind, &mut r.dora_load_trials)?;
        if row.generator_limited {
            r.load_generator_limited.push(format!("{kind:?} (DORA, xdhcp-load)"));
        }
        match kind {
            Kind::XdhcpSlow => r.xdhcp_slow_dora_load_per_s = row.dora_per_s,
            _ => r.kea_dora_load_per_s = row.dora_per_s,
        }
        r.dora_load.push(row);
    }
    r.dora_load_xdhcp_over_kea =
        r.xdhcp_slow_dora_load_per_s as f64 / r.kea_dora_load_per_s.max(1) as f64;
    Ok(())
}

/// DORA/s by perfdhcp, pushed to the highest rate with at most [`MAX_LOSS`] unanswered. The
/// search ends at a trial that lost too much; when perfdhcp's own socket dropped most of what
/// went unanswered there, the figure is perfdhcp's limit, not the server's.
fn perfdhcp_row(lab: &Lab, o: &Options, kind: Kind, r: &mut E2eReport) -> Result<u64> {
    let mut limited = false;
    let dora = search(o.max_rate, |rate| {
        let _server = lab.start(kind, &o.xdhcp, &o.load)?;
        let p = lab.perfdhcp(rate, o.trial_secs)?;
        let ok = p.loss <= MAX_LOSS;
        limited |= !ok && p.generator_limited;
        eprintln!(
            "{kind:?} dora rate {rate}: {:.0}/s answered, loss {:.2} %, {} replies dropped by \
             perfdhcp's socket",
            p.per_s,
            p.loss * 100.0,
            p.generator_dropped
        );
        r.trials.push(Trial {
            server: kind,
            test: "dora",
            rate,
            answered_per_s: p.per_s,
            loss: p.loss,
            ok,
            renewals_sent: None,
            xdp_acks: None,
            generator_dropped: Some(p.generator_dropped),
        });
        Ok((p.per_s, ok))
    })?;
    if limited {
        r.load_generator_limited.push(format!("{kind:?} (DORA, perfdhcp)"));
    }
    Ok(dora)
}

/// Two groups of bars (DORA/s, renewals/s) on a log scale, one bar per server.
#[expect(clippy::many_single_char_names, reason = "x, y, w, h: the SVG attributes they fill")]
#[expect(clippy::cast_precision_loss, reason = "rates and bar indices, far below 2^52")]
fn chart(r: &E2eReport) -> String {
    // 0: not measured (xdhcp-load's DORA row has no fast-path bar: DORA is the slow path's).
    let groups = [
        ("DORA/s (xdhcp-load)", [0, r.xdhcp_slow_dora_load_per_s, r.kea_dora_load_per_s]),
        ("DORA/s (perfdhcp)", [r.xdhcp_dora_per_s, r.xdhcp_slow_dora_per_s, r.kea_dora_per_s]),
        (
            "renewals/s (xdhcp-load)",
            [r.xdhcp_renew_per_s, r.xdhcp_slow_renew_per_s, r.kea_renew_per_s],
        ),
    ];
    let names = ["xdhcp, XDP fast path", "xdhcp, slow path only", "Kea 2.2 memfile MT"];
    let colors = ["#1b7837", "#7fbf7b", "#762a83"];
    let top = groups.iter().flat_map(|g| g.1).max().unwrap_or(1).max(10) as f64;
    let (w, h, base, plot_h) = (1110.0, 420.0, 360.0, 300.0);
    let y = |v: u64| base - plot_h * ((v.max(1) as f64).log10() / top.log10());
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="20" y="24" font-size="16">xdhcp vs Kea on a veth pair, highest rate with &lt;= 1 % unanswered (log scale)</text>"#
    );
    for (gi, (label, vals)) in groups.iter().enumerate() {
        let gx = 60.0 + gi as f64 * 350.0;
        for (i, v) in vals.iter().enumerate().filter(|(_, v)| **v > 0) {
            let x = gx + i as f64 * 90.0;
            let _ = write!(
                s,
                r#"<rect x="{x}" y="{:.1}" width="70" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{v}</text>"#,
                y(*v),
                base - y(*v),
                colors[i],
                x + 35.0,
                y(*v) - 4.0
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            gx + 125.0,
            base + 20.0
        );
    }
    for (i, n) in names.iter().enumerate() {
        let x = 60.0 + i as f64 * 230.0;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{n}</text>"#,
            h - 28.0,
            colors[i],
            x + 18.0,
            h - 18.0
        );
    }
    s.push_str("</svg>\n");
    s
}

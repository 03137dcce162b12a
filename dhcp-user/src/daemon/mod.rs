//! `xdhcp run`: the server process, a thin driver around [`crate::core::Core`]. Socket readers,
//! the control socket and the failover link only queue inputs; one task takes what is queued
//! (up to [`BATCH`]) with the renewals the fast path logged, runs the core's turn, and then
//! does what it says: kernel-map updates first, then replies, partner messages and answers.
//! The turn has already committed everything they depend on.
pub mod ctl;
mod net;
mod peer;
mod queue;
mod strangers;

use std::{
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::{
    access::Access,
    config::Config,
    core::{
        Core, Durable, DurableError, Input, Now, Output,
        control::{CommitStats, Measured},
    },
    fastpath::sync::KernelMaps,
    server::{Dest, Reply, RxInfo},
    store::{Lease, LeaseChange, LeaseStore},
};

/// Most inputs decided and committed together.
const BATCH: usize = 512;
/// How long a stopping daemon lets the failover link write its last words.
const STOP_GRACE: Duration = Duration::from_millis(300);
/// How often the fast path's renewal events are drained (the log holds 65,536 per CPU by
/// default: ~65 ms of renewals at 1 M/s on one CPU).
const EVENT_TICK: Duration = Duration::from_millis(10);
/// How often overload (datagrams dropped at full queues) is logged while it lasts.
const OVERLOAD_REPORT: Duration = Duration::from_secs(10);

/// The SQLite store, with how long its commits take (for `stats` and `metrics`).
struct TimedStore {
    store: LeaseStore,
    stats: CommitStats,
}

impl Durable for TimedStore {
    fn commit(&mut self, changes: &[LeaseChange]) -> Result<(), DurableError> {
        let t = Instant::now();
        Durable::commit(&mut self.store, changes)?;
        self.stats.record(changes.len(), t.elapsed());
        Ok(())
    }

    fn load_all(&self) -> Result<Vec<Lease>, DurableError> {
        Durable::load_all(&self.store)
    }

    fn failover_state(&self, name: &str, sole: bool) -> Result<Option<Vec<u8>>, DurableError> {
        self.store.failover_state(name, sole)
    }

    fn put_failover_state(&mut self, name: &str, blob: &[u8]) -> Result<(), DurableError> {
        Durable::put_failover_state(&mut self.store, name, blob)
    }
}

/// The daemon: the core, and the I/O it drives.
struct Daemon {
    core: Core,
    store: TimedStore,
    kmaps: Option<KernelMaps>,
    socks: Vec<Arc<net::IfaceSockets>>,
    /// Each relationship's link, by [`crate::config::RelationshipId`].
    links: Vec<peer::Spawned>,
    /// Each relationship's TLS, until its link takes it.
    peer_tls: Vec<Option<crate::tls::PeerTls>>,
    /// Who may use the control socket.
    access: Access,
    events: Vec<dhcp_common::RenewEvent>,
    /// The DHCP queues' drop counters (see [`queue`]).
    intake: Arc<queue::Intake>,
    /// The drops last reported, and when.
    reported: ([u64; 2], Instant),
    /// The keys XDP's policing refused most, ranked off the loop.
    offenders: Option<crate::fastpath::police::Watch>,
    /// `[history]`: where each turn's lease events go.
    history: Option<crate::history::writer::Writer>,
}

/// How long a starting daemon waits for the store's previous owner to let go (a restart).
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn run(config: &Path) -> Result<()> {
    run_until(config, None)
}

/// [`run`], also returning when `stop` fires (or its sender goes away): for running servers
/// inside a test process, one thread each, in the thread's network namespace.
pub fn run_until(config: &Path, stop: Option<oneshot::Receiver<()>>) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a terminal: a log file or journald gets plain `key=value` lines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
    let (cfg, host) = Config::load_on_host(config)?;
    let access = Access { gid: host.gid };
    access
        .dir(&cfg.state_dir)
        .with_context(|| format!("create state_dir {}", cfg.state_dir.display()))?;
    // Held until this function returns: one owner of the lease state.
    let _owner = crate::store::lock(&cfg.state_dir, STORE_WAIT)?;
    let store = LeaseStore::open_with(&cfg.state_dir, access)?;
    let mut store = TimedStore { store, stats: CommitStats::default() };
    store.store.set_class_names(cfg.classes.iter().map(|c| c.name.clone()).collect());
    let now = Now::read();
    let core = Core::new(cfg.clone(), &store, now.unix).context("load the lease store")?;
    info!(
        leases = core.server().leases().count(),
        store = %store.store.path().display(),
        "lease store opened"
    );
    let kmaps = if cfg.fast_path.enabled {
        let mut k = KernelMaps::attach(&cfg, cfg.fast_path.attach_mode.into())?;
        let r = k.reconcile(&core.fast_path_entries(now.unix), now)?;
        info!(
            put = r.put,
            kept = r.kept,
            removed = r.removed,
            "kernel lease maps reconciled with the store"
        );
        // With failover, the fast path waits for the relationship to allow answering.
        k.enable(core.fast_path_allowed(), cfg.fast_path.events)?;
        Some(k)
    } else {
        None
    };
    // Loading a large store and reconciling the maps leave megabytes of freed temporaries
    // (rows, entries, lookup sets) in the allocator's arenas: hand them back before serving.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let history = cfg
        .history
        .as_ref()
        .map(crate::history::writer::Writer::start)
        .transpose()
        .context("start the lease history's threads")?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut socks = Vec::new();
        for name in &cfg.interfaces {
            socks.push(Arc::new(net::IfaceSockets::open(name)?));
        }
        let (intake, outlets) = queue::intake();
        let offenders = match &kmaps {
            Some(_) => Some(crate::fastpath::police::Watch::spawn(&cfg.interfaces)?),
            None => None,
        };
        let mut d = Daemon {
            offenders,
            core,
            store,
            kmaps,
            socks,
            links: Vec::new(),
            peer_tls: host.peer_tls,
            access,
            events: Vec::new(),
            intake: Arc::new(intake),
            reported: ([0; 2], Instant::now()),
            history,
        };
        d.serve(stop, outlets).await
    })
}

impl Daemon {
    async fn serve(
        &mut self,
        mut stop: Option<oneshot::Receiver<()>>,
        mut q: queue::Outlets,
    ) -> Result<()> {
        // The control socket, metrics and the failover link: never behind DHCP traffic.
        let (tx, mut rx) = mpsc::channel::<Input<ctl::ReplyTo>>(8192);
        for s in &self.socks {
            let (s, intake) = (s.clone(), self.intake.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match s.udp.recv_from(&mut buf).await {
                        Ok((n, SocketAddr::V4(_))) => {
                            let rx = RxInfo { ifindex: s.ifindex, local_addr: s.addr };
                            let class = queue::classify(&buf[..n]);
                            let input = Input::Dhcp { rx, bytes: buf[..n].to_vec() };
                            if !intake.offer(class, input) {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => warn!(iface = %s.name, "receive: {e}"),
                    }
                }
            });
        }
        let cfg = self.core.config().clone();
        let _ctl = ctl::listen(&cfg.control_socket, self.access, tx.clone())?;
        let _metrics = cfg.metrics_listen.map(|a| ctl::serve_metrics(a, tx.clone())).transpose()?;
        self.links = peer::spawn_all(&cfg, std::mem::take(&mut self.peer_tls), &tx)?;
        info!(interfaces = ?cfg.interfaces, control = %cfg.control_socket.display(), "serving");
        let mut tick = tokio::time::interval(EVENT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            // Stopping first, then the control socket and the link, then requests, then
            // DISCOVERs: none of them waits behind a flood of the next.
            let first = tokio::select! {
                biased;
                _ = term.recv() => {
                    self.stop_gracefully().await;
                    break;
                }
                () = async {
                    match &mut stop {
                        Some(r) => { let _ = r.await; }
                        None => std::future::pending::<()>().await,
                    }
                } => break,
                _ = tokio::signal::ctrl_c() => {
                    self.stop_gracefully().await;
                    break;
                }
                i = rx.recv() => i,
                i = q.request.recv() => i,
                i = q.discover.recv() => i,
                _ = tick.tick() => None,
            };
            self.report_overload();
            let mut batch: Vec<_> = first.into_iter().collect();
            for queue in [&mut rx, &mut q.request, &mut q.discover] {
                while batch.len() < BATCH {
                    match queue.try_recv() {
                        Ok(i) => batch.push(i),
                        Err(_) => break,
                    }
                }
            }
            self.turn(batch).await;
        }
        // The pinned fast path keeps answering renewals within the committed horizon while
        // no daemon runs; the next one adopts it. `xdhcp detach` removes it for good.
        info!("stopping; the fast path stays attached and pinned");
        Ok(())
    }

    async fn turn(&mut self, mut batch: Vec<Input<ctl::ReplyTo>>) {
        let now = Now::read();
        if let Some(k) = &mut self.kmaps {
            self.events.clear();
            k.drain_events(&mut self.events);
            batch.extend(self.events.iter().copied().map(Input::Renewed));
        }
        for input in &mut batch {
            if let Input::Control {
                req:
                    ctl::Request::Stats | ctl::Request::Metrics | ctl::Request::FailoverStatus { .. },
                measured,
                ..
            } = input
            {
                *measured = self.measure();
            }
        }
        let out = self.core.turn(now, batch, &mut self.store);
        self.apply(now, out).await;
    }

    /// Does what the turn decided, in its order: the kernel first, so that no reply is ahead
    /// of the map it relies on.
    async fn apply(&mut self, now: Now, out: Output<ctl::ReplyTo>) {
        if let Some(k) = &mut self.kmaps {
            k.apply(&out.map_ops, now);
            if let Some(on) = out.fast_path
                && let Err(e) = k.enable(on, self.core.config().fast_path.events)
            {
                error!("switching the fast path {}: {e:#}", if on { "on" } else { "off" });
            }
        }
        for r in &out.replies {
            if let Err(e) = self.send(r).await {
                warn!("reply to {:?}: {e:#}", r.dest);
            }
        }
        for (rel, c) in out.link {
            if let Some(link) = self.links.get(rel.index()) {
                let _ = link.cmds.send(c);
            }
        }
        for (reply, answer) in out.answers {
            let _ = reply.send(answer);
        }
        // Last: the history is told after everyone the turn answered.
        if let Some(h) = &mut self.history {
            h.record(out.history);
        }
    }

    /// SIGTERM: the partner hears that this server pauses, and the link gets a moment to
    /// write it before the process ends.
    async fn stop_gracefully(&mut self) {
        let now = Now::read();
        let out = self.core.stop(now, &mut self.store);
        let told = !out.link.is_empty();
        self.apply(now, out).await;
        if told {
            tokio::time::sleep(STOP_GRACE).await;
        }
    }

    /// Datagrams the full queues dropped, said at most every ten seconds while it goes on.
    #[expect(clippy::cast_precision_loss, reason = "counts of datagrams, far below 2^52")]
    fn report_overload(&mut self) {
        let (before, at) = self.reported;
        let secs = at.elapsed().as_secs_f64();
        if secs < OVERLOAD_REPORT.as_secs_f64() {
            return;
        }
        let now = self.intake.dropped();
        if now != before {
            let rate = |k: usize| (now[k] - before[k]) as f64 / secs;
            warn!(
                requests_dropped_per_s = format!("{:.0}", rate(0)),
                discovers_dropped_per_s = format!("{:.0}", rate(1)),
                queue_depth = queue::DEPTH,
                "overloaded: datagrams dropped because the daemon's queues were full (requests \
                 of known clients are served before new DISCOVERs)"
            );
        }
        self.reported = (now, Instant::now());
    }

    /// What `stats` and `metrics` report from outside the core.
    fn measure(&self) -> Measured {
        let mut m = Measured {
            store: self.store.stats,
            overload_dropped: self.intake.dropped(),
            failover_link: self.links.iter().map(|l| l.counters.read()).collect(),
            history: self.history.as_ref().map_or(serde_json::Value::Null, |h| h.stats.to_json()),
            ..Measured::default()
        };
        for i in self.kmaps.iter().flat_map(|k| &k.ifaces) {
            if let Ok(s) = i.maps.stats() {
                m.fast_path.insert(i.name.clone(), s.to_json());
            }
            let table = serde_json::json!({
                "lease_capacity": i.maps.leases.len(),
                "leases_without_slot": i.no_room,
            });
            m.lease_tables.insert(i.name.clone(), table);
        }
        for (iface, top) in self.offenders.iter().flat_map(crate::fastpath::police::Watch::latest) {
            m.policed_top.insert(iface, serde_json::to_value(top).unwrap_or_default());
        }
        m
    }

    async fn send(&self, r: &Reply) -> Result<()> {
        let s = self
            .socks
            .iter()
            .find(|s| s.ifindex == r.ifindex)
            .context("reply for an interface we do not serve")?;
        let bytes = crate::packet::encode_reply(&r.msg, &r.room);
        match r.dest {
            Dest::UnicastL2 { ip, mac } => s.send_l2(&bytes, self.core.config().server_id, ip, mac),
            _ => s.send_udp(&bytes, r.dest.socket_addr()).await,
        }
    }
}

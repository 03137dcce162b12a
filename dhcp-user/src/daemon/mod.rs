//! `xdhcp run`: the server process. One task — the core — owns the lease store, the decision
//! engine and the kernel maps; socket readers and the control socket only send it messages.
//!
//! Every turn of the core: take what is queued (requests, up to [`BATCH`]), fold in the
//! renewals the fast path reported, decide, commit everything in one transaction (group
//! commit), apply the committed changes to the kernel maps, and only then send the replies.
//! An ACK is never ahead of the store, from either path.
pub mod ctl;
mod mapsync;
mod net;
mod peer;

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use dhcproto::Encodable as _;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

pub use mapsync::Now;

use crate::{
    config::Config,
    failover::{self, Failover, LinkCmd},
    server::{Dest, Reply, RxInfo, Server},
    store::{LeaseChange, LeaseStore},
};

/// Most requests decided and committed together.
const BATCH: usize = 512;
/// How often the fast path's renewal events are drained (the log holds 65,536 per CPU by
/// default: ~65 ms of renewals at 1 M/s on one CPU).
const EVENT_TICK: Duration = Duration::from_millis(10);

enum Input {
    Dhcp { iface: usize, src: SocketAddrV4, bytes: Vec<u8> },
    Ctl { req: ctl::Request, reply: oneshot::Sender<serde_json::Value> },
    Peer(peer::LinkEvent),
}

/// Store commit latency, for metrics.
#[derive(Default)]
struct CommitStats {
    commits: u64,
    changes: u64,
    total: Duration,
    max: Duration,
}

struct Core {
    cfg: Config,
    store: LeaseStore,
    server: Server,
    kmaps: Option<mapsync::KernelMaps>,
    socks: Vec<Arc<net::IfaceSockets>>,
    commits: CommitStats,
    fast_path_renewals: u64,
    events: Vec<dhcp_common::RenewEvent>,
    failover: Option<FailoverLink>,
}

/// The failover relationship as the core holds it: the glue, and the link it drives.
struct FailoverLink {
    fo: Failover,
    link: Option<mpsc::UnboundedSender<peer::PeerCmd>>,
    /// The connection the engine is on, if any: commands for older ones are dropped.
    link_id: Option<u64>,
}

/// What one turn has decided and not yet made durable or sent.
#[derive(Default)]
struct Pending {
    changes: Vec<LeaseChange>,
    /// Addresses this server changed: the failover partner hears of them once committed.
    local: Vec<Ipv4Addr>,
    commit: Option<dhcp_failover::engine::CommitId>,
    link: Vec<LinkCmd>,
    gate_changed: bool,
}

pub fn run(config: &Path) -> Result<()> {
    run_until(config, None)
}

/// [`run`], also returning when `stop` fires (or its sender goes away): for running servers
/// inside a test process, one thread each, in the thread's network namespace.
pub fn run_until(config: &Path, stop: Option<oneshot::Receiver<()>>) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
    let cfg = Config::load(config)?;
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("create state_dir {}", cfg.state_dir.display()))?;
    let store = LeaseStore::open(&cfg.state_dir)?;
    let leases = store.load_all()?;
    info!(leases = leases.len(), store = %store.path().display(), "lease store opened");
    let now = Now::read();
    let blob = store.get_failover_state()?;
    let fo = Failover::new(&cfg, blob.as_deref(), &leases, now.unix);
    let server = Server::new(cfg.clone(), leases);
    let kmaps = if cfg.fast_path.enabled {
        let mut k = mapsync::KernelMaps::attach(&cfg, cfg.fast_path.attach_mode.into())?;
        let entries: Vec<_> = server.fast_path_entries(now.unix).collect();
        let (put, removed) = k.reconcile(&entries, now)?;
        info!(put, removed, "kernel lease maps reconciled with the store");
        // With failover, the fast path waits for the relationship to allow answering.
        k.enable(fo.is_none(), cfg.fast_path.events)?;
        Some(k)
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut socks = Vec::new();
        for name in &cfg.interfaces {
            socks.push(Arc::new(net::IfaceSockets::open(name)?));
        }
        let mut core = Core {
            cfg,
            store,
            server,
            kmaps,
            socks,
            commits: CommitStats::default(),
            fast_path_renewals: 0,
            events: Vec::new(),
            failover: fo.map(|fo| FailoverLink { fo, link: None, link_id: None }),
        };
        core.serve(stop).await
    })
}

impl Core {
    async fn serve(&mut self, mut stop: Option<oneshot::Receiver<()>>) -> Result<()> {
        let (tx, mut rx) = mpsc::channel::<Input>(8192);
        for (i, s) in self.socks.iter().enumerate() {
            let (s, tx) = (s.clone(), tx.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match s.udp.recv_from(&mut buf).await {
                        Ok((n, SocketAddr::V4(src))) => {
                            let input = Input::Dhcp { iface: i, src, bytes: buf[..n].to_vec() };
                            if tx.send(input).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => warn!(iface = %s.name, "receive: {e}"),
                    }
                }
            });
        }
        let _ctl = ctl::listen(&self.cfg.control_socket, tx.clone())?;
        let _metrics =
            self.cfg.metrics_listen.map(|a| ctl::serve_metrics(a, tx.clone())).transpose()?;
        if let (Some(f), Some(fc)) = (&mut self.failover, &self.cfg.failover) {
            f.link = Some(peer::spawn(fc, tx.clone())?);
        }
        info!(
            interfaces = ?self.cfg.interfaces,
            control = %self.cfg.control_socket.display(),
            "serving"
        );
        let mut tick = tokio::time::interval(EVENT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            let first = tokio::select! {
                i = rx.recv() => i,
                _ = tick.tick() => None,
                _ = term.recv() => break,
                _ = async {
                    match &mut stop {
                        Some(r) => { let _ = r.await; }
                        None => std::future::pending::<()>().await,
                    }
                } => break,
                _ = tokio::signal::ctrl_c() => break,
            };
            let mut batch: Vec<Input> = first.into_iter().collect();
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(i) => batch.push(i),
                    Err(_) => break,
                }
            }
            self.turn(batch).await;
        }
        // The pinned fast path keeps answering renewals within the committed horizon while
        // no daemon runs; the next one adopts it. `xdhcp detach` removes it for good.
        info!("stopping; the fast path stays attached and pinned");
        Ok(())
    }

    async fn turn(&mut self, batch: Vec<Input>) {
        let now = Now::read();
        let mut p = Pending::default();
        let mut replies: Vec<Reply> = Vec::new();
        let mut ctls = Vec::new();

        // The partner's news first: the server then decides this batch under the failover
        // state it brings.
        let mut requests = Vec::with_capacity(batch.len());
        let mut decided = Vec::new();
        for input in batch {
            match input {
                Input::Peer(ev) => self.link_event(now, ev),
                // Before the poll below, so its persisted state is written in this turn and
                // the answer goes out only after that.
                Input::Ctl { req: ctl::Request::FailoverPartnerDown { confirm }, reply } => {
                    decided.push((self.partner_down(now, confirm), reply));
                }
                other => requests.push(other),
            }
        }
        self.failover_poll(now, &mut p);

        // Renewals XDP answered first: an expiry below must not undo one it already granted.
        if let Some(k) = &mut self.kmaps {
            self.events.clear();
            k.drain_events(&mut self.events);
            for ev in &self.events {
                let at = now.unix_of(ev.at_ns);
                let addr = Ipv4Addr::from(ev.addr);
                if let Some(c) =
                    self.server.apply_fast_path_renewal(at, addr, ev.chaddr, ev.granted_secs)
                {
                    p.local.push(c.address());
                    p.changes.push(c);
                }
            }
            self.fast_path_renewals += self.events.len() as u64;
        }
        for input in requests {
            match input {
                Input::Dhcp { iface, src, bytes } => {
                    let s = &self.socks[iface];
                    let rx =
                        RxInfo { ifindex: s.ifindex, local_addr: s.addr, src, src_mac: [0; 6] };
                    let out = self.server.handle_bytes(now.unix, &bytes, &rx);
                    p.local.extend(out.changes.iter().map(LeaseChange::address));
                    p.changes.extend(out.changes);
                    replies.extend(out.reply);
                }
                Input::Ctl { req, reply } => ctls.push((req, reply)),
                Input::Peer(_) => {}
            }
        }
        if self.server.next_timeout().is_some_and(|t| t <= now.unix) {
            let expired = self.server.expire(now.unix);
            p.local.extend(expired.iter().map(LeaseChange::address));
            p.changes.extend(expired);
        }

        // Commit, then tell the partner; what that brings (acks of a balance move...) is
        // committed in a further round. Four rounds are plenty: only a second poll can add
        // changes, and only through the pool balance, which runs at most once per turn.
        for _ in 0..4 {
            if p.changes.is_empty() && p.local.is_empty() && p.commit.is_none() {
                break;
            }
            let changes = std::mem::take(&mut p.changes);
            if self.commit(now, &changes) {
                if let Some(f) = &mut self.failover {
                    f.fo.committed(now.unix, &self.server, p.commit.take(), p.local.drain(..));
                }
            } else {
                replies.clear();
                p.local.clear();
                p.commit = None;
            }
            p.local.clear();
            self.failover_poll(now, &mut p);
        }
        if p.gate_changed {
            self.switch_fast_path();
        }
        for r in replies {
            if let Err(e) = self.send(&r).await {
                warn!("reply to {:?}: {e:#}", r.dest);
            }
        }
        self.send_link(std::mem::take(&mut p.link));
        for (req, reply) in ctls {
            let _ = reply.send(ctl::answer(self, &req, now));
        }
        for (mut answer, reply) in decided {
            if answer.get("error").is_none()
                && let Some(f) = &self.failover
            {
                answer["status"] = f.fo.status(&self.server, now.unix);
            }
            let _ = reply.send(answer);
        }
    }

    /// `xdhcp failover partner-down`.
    fn partner_down(&mut self, now: Now, confirm: bool) -> serde_json::Value {
        let Some(f) = &mut self.failover else {
            return serde_json::json!({"error": "no [failover] relationship is configured"});
        };
        if !confirm {
            return serde_json::json!({"error": "not confirmed: PARTNER-DOWN while the partner \
                still serves clients can give one address to two of them; repeat with \
                --yes-partner-is-down once you know it is down"});
        }
        match f.fo.partner_down(now.unix) {
            Ok(at) => serde_json::json!({
                "partner_down": true,
                "partner_addresses_usable_at": at,
                "usable_in_secs": at.saturating_sub(now.unix),
            }),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        }
    }

    /// Commits `changes` and mirrors them into the kernel maps; false if the store refused
    /// (then nothing of the batch may be acknowledged to anyone).
    fn commit(&mut self, now: Now, changes: &[LeaseChange]) -> bool {
        if changes.is_empty() {
            return true;
        }
        let t = Instant::now();
        if let Err(e) = self.store.commit(changes) {
            // Nothing of this batch may be sent, and the engine is ahead of the store:
            // start it again from what is durable.
            error!("lease store commit failed, replies and acks withheld: {e:#}");
            match self.store.load_all() {
                Ok(l) => {
                    self.server = Server::new(self.cfg.clone(), l);
                    if let Some(f) = &self.failover {
                        self.server.set_failover_gate(f.fo.gate());
                    }
                }
                Err(e) => error!("reloading the store failed too: {e:#}"),
            }
            return false;
        }
        let d = t.elapsed();
        self.commits.commits += 1;
        self.commits.changes += changes.len() as u64;
        self.commits.total += d;
        self.commits.max = self.commits.max.max(d);
        if let Some(k) = &mut self.kmaps {
            k.apply(&self.server.map_ops(changes, now.unix), now);
        }
        true
    }

    fn link_event(&mut self, now: Now, ev: peer::LinkEvent) {
        let Some(f) = &mut self.failover else { return };
        match ev {
            peer::LinkEvent::Up { id } => {
                f.link_id = Some(id);
                f.fo.link_up(now.unix);
            }
            peer::LinkEvent::Message { id, msg } if f.link_id == Some(id) => {
                f.fo.message(now.unix, msg);
            }
            peer::LinkEvent::Message { .. } => {}
            peer::LinkEvent::Down { id } if f.link_id == Some(id) => {
                f.link_id = None;
                f.fo.link_down(now.unix);
            }
            peer::LinkEvent::Down { .. } => {}
        }
    }

    /// Runs the failover engine's timers and collects what it has to say into `p`; writes its
    /// state at once, before anything that reveals it is sent.
    fn failover_poll(&mut self, now: Now, p: &mut Pending) {
        let Some(f) = &mut self.failover else { return };
        f.fo.tick(now.unix);
        let mut acts = failover::Actions::default();
        f.fo.poll(now.unix, &mut self.server, &mut acts);
        if let Some(blob) = acts.persist.take()
            && let Err(e) = self.store.put_failover_state(&blob)
        {
            error!("writing the failover state failed: {e:#}");
        }
        p.changes.append(&mut acts.changes);
        p.local.append(&mut acts.local);
        if acts.commit.is_some() {
            p.commit = acts.commit;
        }
        p.link.append(&mut acts.link);
        p.gate_changed |= acts.gate_changed;
    }

    /// The fast path answers only in failover states that let this server answer.
    fn switch_fast_path(&mut self) {
        let (Some(f), Some(k)) = (&self.failover, &mut self.kmaps) else { return };
        let on = f.fo.fast_path_allowed();
        match k.enable(on, self.cfg.fast_path.events) {
            Ok(()) => info!(
                "fast path {} (failover {:?})",
                if on { "on" } else { "off" },
                f.fo.gate().state
            ),
            Err(e) => error!("switching the fast path {}: {e:#}", if on { "on" } else { "off" }),
        }
    }

    fn send_link(&mut self, cmds: Vec<LinkCmd>) {
        let Some(f) = &mut self.failover else { return };
        let Some(link) = &f.link else { return };
        for c in cmds {
            let cmd = match c {
                LinkCmd::Connect => peer::PeerCmd::Connect,
                LinkCmd::Send(bytes) => match f.link_id {
                    Some(id) => peer::PeerCmd::Send { id, bytes },
                    None => continue,
                },
                LinkCmd::Close => match f.link_id.take() {
                    Some(id) => peer::PeerCmd::Close { id },
                    None => continue,
                },
            };
            let _ = link.send(cmd);
        }
    }

    async fn send(&self, r: &Reply) -> Result<()> {
        let s = self
            .socks
            .iter()
            .find(|s| s.ifindex == r.ifindex)
            .context("reply for an interface we do not serve")?;
        let bytes = r.msg.to_vec().context("encode the reply")?;
        match r.dest {
            Dest::UnicastL2 { ip, mac } => s.send_l2(&bytes, self.cfg.server_id, ip, mac),
            _ => s.send_udp(&bytes, r.dest.socket_addr()).await,
        }
    }
}

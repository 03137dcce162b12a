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
    server::{Dest, Reply, RxInfo, Server},
    store::{LeaseChange, LeaseStore},
};

/// Most requests decided and committed together.
const BATCH: usize = 512;
/// How often the fast path's renewal events are drained (the ring holds ~87 K events).
const EVENT_TICK: Duration = Duration::from_millis(10);

enum Input {
    Dhcp { iface: usize, src: SocketAddrV4, bytes: Vec<u8> },
    Ctl { req: ctl::Request, reply: oneshot::Sender<serde_json::Value> },
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
}

pub fn run(config: &Path) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
    let cfg = Config::load(config)?;
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("create state_dir {}", cfg.state_dir.display()))?;
    let store = LeaseStore::open(&cfg.state_dir)?;
    let leases = store.load_all()?;
    info!(leases = leases.len(), store = %store.path().display(), "lease store opened");
    let server = Server::new(cfg.clone(), leases);
    let now = Now::read();
    let kmaps = if cfg.fast_path.enabled {
        let mut k = mapsync::KernelMaps::attach(&cfg, cfg.fast_path.attach_mode.into())?;
        let entries: Vec<_> = server.fast_path_entries(now.unix).collect();
        let (put, removed) = k.reconcile(&entries, now)?;
        info!(put, removed, "kernel lease maps reconciled with the store");
        k.enable(true, cfg.fast_path.events)?;
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
        };
        core.serve().await
    })
}

impl Core {
    async fn serve(&mut self) -> Result<()> {
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
        let mut changes: Vec<LeaseChange> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut ctls = Vec::new();

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
                    changes.push(c);
                }
            }
            self.fast_path_renewals += self.events.len() as u64;
        }
        for input in batch {
            match input {
                Input::Dhcp { iface, src, bytes } => {
                    let s = &self.socks[iface];
                    let rx = RxInfo {
                        ifindex: s.ifindex,
                        local_addr: s.addr,
                        src,
                        src_mac: [0; 6],
                    };
                    let out = self.server.handle_bytes(now.unix, &bytes, &rx);
                    changes.extend(out.changes);
                    replies.extend(out.reply);
                }
                Input::Ctl { req, reply } => ctls.push((req, reply)),
            }
        }
        if self.server.next_timeout().is_some_and(|t| t <= now.unix) {
            changes.extend(self.server.expire(now.unix));
        }

        if !changes.is_empty() {
            let t = Instant::now();
            if let Err(e) = self.store.commit(&changes) {
                // Nothing of this batch may be sent, and the engine is ahead of the store:
                // start it again from what is durable.
                error!("lease store commit failed, {} replies withheld: {e:#}", replies.len());
                match self.store.load_all() {
                    Ok(l) => self.server = Server::new(self.cfg.clone(), l),
                    Err(e) => error!("reloading the store failed too: {e:#}"),
                }
                replies.clear();
                changes.clear();
            }
            let d = t.elapsed();
            self.commits.commits += 1;
            self.commits.changes += changes.len() as u64;
            self.commits.total += d;
            self.commits.max = self.commits.max.max(d);
            if let Some(k) = &mut self.kmaps {
                k.apply(&self.server.map_ops(&changes, now.unix), now);
            }
        }
        for r in replies {
            if let Err(e) = self.send(&r).await {
                warn!("reply to {:?}: {e:#}", r.dest);
            }
        }
        for (req, reply) in ctls {
            let _ = reply.send(ctl::answer(self, &req, now));
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

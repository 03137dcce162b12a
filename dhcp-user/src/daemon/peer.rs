//! The TCP side of failover: listening for the partners and connecting to them (port 647),
//! framing, and keeping exactly one connection for each relationship's engine.
//!
//! Each relationship has its own link task. A listener (one per `address` and `port`) hands a
//! connection to the relationship whose `peer_address` it comes from, so a hub serves all its
//! edges on one port; the config refuses two relationships that share both.
//!
//! The engine handles one connection at a time, yet both servers connect to each other, so two
//! connections often come up at once and the servers must agree on which one to keep:
//!
//! * the primary hands the engine the first connection that comes up (the engine sends CONNECT
//!   on it); should the partner close that one before answering, the next one takes its place;
//! * the secondary hands the engine the first connection on which a CONNECT arrives, which is
//!   by construction the one the primary chose.
//!
//! Other connections stay open but unread until the chosen one carries traffic, then they are
//! closed. Everything here is I/O; decisions stay in the core task, which this task talks to by
//! channel: [`LinkEvent`]s in, [`PeerCmd`]s out. Link ids keep a message meant for a connection
//! that has since been replaced from being written to its successor.
//!
//! With `tls` configured, a connection is a candidate only once its TLS handshake has passed
//! ([`crate::tls`]); the handshakes run beside the link's loop, never in it. Connections from
//! strangers and failed handshakes are refused and counted ([`super::strangers`]).
use std::{
    net::{SocketAddr, SocketAddrV4},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use dhcp_failover::{FrameDecoder, Message, MessageType, Role};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadHalf, WriteHalf},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};
use tracing::{debug, info, warn};

use super::strangers::{LinkCounters, REPORT_EVERY, Refusal, Refusals};
use crate::config::{Config, RelationshipId};
use crate::core::{Input, LinkEvent, PeerCmd};
use crate::tls::PeerTls;

/// A connection attempt that takes longer than this is given up; the engine asks again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A partner that does not take our bytes for this long is as good as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections kept while choosing; a further one replaces the oldest idle one.
const MAX_CANDIDATES: usize = 4;
/// Frames decoded from one read at most; a 4 KiB read holds at most 341 twelve-byte frames.
const FRAMES_PER_READ: usize = 1024;
/// A TLS handshake that takes longer than this is refused: the partner's takes milliseconds.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes of accepted connections under way at once; one more is refused.
const MAX_HANDSHAKES: usize = 4;

/// A connection to the partner: a TCP stream, or TLS over one.
trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}
type Stream = Box<dyn Io>;

enum ConnEvent {
    /// Our connection is up (and through its handshake), or is not.
    Connected(Result<(Stream, SocketAddr), ConnectError>),
    /// The partner's connection has passed its handshake, or failed it.
    Accepted(Result<(Stream, SocketAddr), (SocketAddr, String)>),
    Frame {
        id: u64,
        msg: Message,
    },
    Closed {
        id: u64,
        why: String,
    },
}

enum ConnectError {
    /// No TCP connection: the partner is not there (yet).
    Tcp(String),
    Handshake(SocketAddr, String),
}

struct Conn {
    id: u64,
    writer: WriteHalf<Stream>,
    reader: JoinHandle<()>,
    peer: SocketAddr,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One relationship's link: how the core talks to it, and what it refused.
pub(super) struct Spawned {
    pub cmds: mpsc::UnboundedSender<PeerCmd>,
    pub counters: Arc<LinkCounters>,
}

/// Binds the listeners and starts one link task per relationship, by [`RelationshipId`].
/// Relationships with the same `address` and `port` share one listener, which hands each
/// connection to the relationship whose `peer_address` it comes from.
pub(super) fn spawn_all<R: Send + 'static>(
    cfg: &Config,
    mut tls: Vec<Option<PeerTls>>,
    to_core: &mpsc::Sender<Input<R>>,
) -> Result<Vec<Spawned>> {
    tls.resize_with(cfg.failover.len(), || None);
    let mut out: Vec<Spawned> = Vec::new();
    let mut listeners: Vec<Listener> = Vec::new();
    for ((rel, f), tls) in cfg.relationships().zip(tls) {
        let local = SocketAddrV4::new(f.address, f.port);
        let (accepted_tx, accepted_rx) = mpsc::unbounded_channel();
        let counters = if let Some(l) = listeners.iter_mut().find(|l| l.local == local) {
            l.routes.push((f.peer_address, accepted_tx));
            LinkCounters::sharing_listener(tls.is_some(), &l.counters)
        } else {
            let counters = LinkCounters::new(tls.is_some());
            let routes = vec![(f.peer_address, accepted_tx)];
            let key = f.key.clone();
            listeners.push(Listener { local, key, routes, counters: counters.clone() });
            counters
        };
        info!(
            relationship = %f.name,
            listen = %local,
            peer = %SocketAddrV4::new(f.peer_address, f.peer_port),
            tls = tls.is_some(),
            "failover link ready"
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let link = Link {
            rel,
            name: f.name.clone(),
            tls,
            refusals: Refusals::new(counters.clone()),
            handshaking: 0,
            role: f.role,
            local: f.address,
            peer: SocketAddrV4::new(f.peer_address, f.peer_port),
            to_core: to_core.clone(),
            candidates: Vec::new(),
            active: None,
            connecting: false,
            next_id: 0,
        };
        tokio::spawn(link.run(accepted_rx, rx));
        out.push(Spawned { cmds: tx, counters });
    }
    for Listener { local, key, routes, counters } in listeners {
        let sock = TcpSocket::new_v4()?;
        sock.set_reuseaddr(true)?;
        sock.bind(local.into())
            .with_context(|| format!("bind the failover listener on {local} ({key}.address)"))?;
        tokio::spawn(listen(sock.listen(16)?, routes, Refusals::new(counters)));
    }
    Ok(out)
}

/// A failover port, and the relationships that listen on it.
struct Listener {
    local: SocketAddrV4,
    /// The first relationship's config key (`failover[2]`), for a bind error.
    key: String,
    routes: Vec<(std::net::Ipv4Addr, Accepted)>,
    /// The first relationship's: the one that holds the port's stranger count.
    counters: Arc<LinkCounters>,
}

/// Where a listener hands a relationship the connections from its partner's address.
type Accepted = mpsc::UnboundedSender<(TcpStream, SocketAddr)>;

/// Accepts connections on one failover port. ISC accepts only its configured peer addresses;
/// so do we, so that a stray client cannot take a partner's place.
async fn listen(
    listener: TcpListener,
    mut routes: Vec<(std::net::Ipv4Addr, Accepted)>,
    mut refusals: Refusals,
) {
    let mut report = tokio::time::interval(REPORT_EVERY);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            acc = listener.accept() => match acc {
                Ok((s, from)) => {
                    if let Some(i) = routes.iter().position(|(peer, _)| from.ip() == *peer) {
                        // A relationship whose link task has ended takes no more connections;
                        // the others on this port go on taking theirs.
                        if routes[i].1.send((s, from)).is_err() {
                            routes.swap_remove(i);
                            if routes.is_empty() {
                                return;
                            }
                        }
                    } else {
                        let why = "not a peer address";
                        let now = Instant::now();
                        if let Some(line) = refusals.handle_refused(now, Refusal::Stranger, from, why) {
                            warn!("failover: {line}");
                        } else {
                            debug!(%from, "failover: refused a connection: {why}");
                        }
                    }
                }
                Err(e) => warn!("failover: accept: {e}"),
            },
            _ = report.tick() => {
                if let Some(line) = refusals.poll_report(Instant::now()) {
                    warn!("failover: {line}");
                }
            }
        }
    }
}

struct Link<R> {
    rel: RelationshipId,
    /// The relationship's name, for the log.
    name: String,
    tls: Option<PeerTls>,
    refusals: Refusals,
    /// Accepted connections in their TLS handshake.
    handshaking: usize,
    role: Role,
    local: std::net::Ipv4Addr,
    peer: SocketAddrV4,
    to_core: mpsc::Sender<Input<R>>,
    candidates: Vec<Conn>,
    active: Option<u64>,
    connecting: bool,
    next_id: u64,
}

impl<R: Send + 'static> Link<R> {
    async fn run(
        mut self,
        mut accepted: mpsc::UnboundedReceiver<(TcpStream, SocketAddr)>,
        mut cmds: mpsc::UnboundedReceiver<PeerCmd>,
    ) {
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<ConnEvent>();
        let mut listening = true;
        let mut report = tokio::time::interval(REPORT_EVERY);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // The listener gone, this link still connects out to its partner.
                acc = accepted.recv(), if listening => match acc {
                    Some((s, from)) => self.accepted(s, from, &ev_tx).await,
                    None => listening = false,
                },
                _ = report.tick() => {
                    if let Some(line) = self.refusals.poll_report(Instant::now()) {
                        warn!(relationship = %self.name, "failover: {line}");
                    }
                }
                cmd = cmds.recv() => match cmd {
                    None => return,
                    Some(c) => self.command(c, &ev_tx).await,
                },
                ev = ev_rx.recv() => match ev {
                    None => return,
                    Some(e) => self.conn_event(e, &ev_tx).await,
                },
            }
        }
    }

    fn refused(&mut self, kind: Refusal, from: SocketAddr, why: &str) {
        if let Some(line) = self.refusals.handle_refused(Instant::now(), kind, from, why) {
            warn!(relationship = %self.name, "failover: {line}");
        } else {
            debug!(relationship = %self.name, %from, "failover: refused a connection: {why}");
        }
    }

    /// A connection from the partner's address: a candidate now, or once through TLS.
    async fn accepted(
        &mut self,
        s: TcpStream,
        from: SocketAddr,
        ev_tx: &mpsc::UnboundedSender<ConnEvent>,
    ) {
        let _ = s.set_nodelay(true);
        let Some(tls) = &self.tls else {
            self.add(Box::new(s), from, ev_tx).await;
            return;
        };
        if self.handshaking >= MAX_HANDSHAKES {
            self.refused(Refusal::Handshake, from, "too many TLS handshakes at once");
            return;
        }
        self.handshaking += 1;
        let (acceptor, tx) = (tls.acceptor.clone(), ev_tx.clone());
        tokio::spawn(async move {
            let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s)).await;
            let ev = match done {
                Ok(Ok(t)) => Ok((Box::new(t) as Stream, from)),
                Ok(Err(e)) => Err((from, handshake_failed(&e))),
                Err(_) => Err((from, "TLS handshake timed out".to_owned())),
            };
            let _ = tx.send(ConnEvent::Accepted(ev));
        });
    }

    async fn tell(&self, ev: LinkEvent) {
        let _ = self.to_core.send(Input::Link(self.rel, ev)).await;
    }

    async fn command(&mut self, c: PeerCmd, ev_tx: &mpsc::UnboundedSender<ConnEvent>) {
        match c {
            PeerCmd::Connect => {
                if self.active.is_some() || self.connecting {
                    return;
                }
                self.connecting = true;
                let (local, peer, tx) = (self.local, self.peer, ev_tx.clone());
                let tls = self.tls.clone();
                tokio::spawn(async move {
                    let _ = tx.send(ConnEvent::Connected(connect(local, peer, tls).await));
                });
            }
            PeerCmd::Send { id, bytes } => {
                if self.active != Some(id) {
                    return;
                }
                let Some(c) = self.candidates.iter_mut().find(|c| c.id == id) else { return };
                let done = tokio::time::timeout(WRITE_TIMEOUT, c.writer.write_all(&bytes)).await;
                if !matches!(done, Ok(Ok(()))) {
                    warn!(
                        relationship = %self.name,
                        "failover: writing to the partner failed; dropping the connection"
                    );
                    self.drop_conn(id);
                    self.active = None;
                    self.tell(LinkEvent::Down { id }).await;
                    self.promote_next().await;
                }
            }
            PeerCmd::Close { id } => {
                if self.active == Some(id) {
                    if let Some(c) = self.candidates.iter_mut().find(|c| c.id == id) {
                        let _ = c.writer.shutdown().await;
                    }
                    self.drop_conn(id);
                    self.active = None;
                }
            }
        }
    }

    async fn conn_event(&mut self, e: ConnEvent, ev_tx: &mpsc::UnboundedSender<ConnEvent>) {
        match e {
            ConnEvent::Connected(done) => {
                self.connecting = false;
                match done {
                    Ok((s, peer)) => self.add(s, peer, ev_tx).await,
                    Err(ConnectError::Tcp(why)) => {
                        debug!(relationship = %self.name, peer = %self.peer, "failover: connect failed: {why}");
                    }
                    Err(ConnectError::Handshake(peer, why)) => {
                        self.refused(Refusal::Handshake, peer, &why);
                    }
                }
            }
            ConnEvent::Accepted(done) => {
                self.handshaking = self.handshaking.saturating_sub(1);
                match done {
                    Ok((s, peer)) => self.add(s, peer, ev_tx).await,
                    Err((from, why)) => self.refused(Refusal::Handshake, from, &why),
                }
            }
            ConnEvent::Frame { id, msg } => {
                if self.active == Some(id) {
                    // The chosen connection carries traffic: the others are not needed.
                    self.close_others(id);
                    self.tell(LinkEvent::Message { id, msg }).await;
                } else if self.active.is_none()
                    && self.role == Role::Secondary
                    && msg.kind == MessageType::Connect
                {
                    self.active = Some(id);
                    self.close_others(id);
                    info!(
                        relationship = %self.name,
                        peer = ?self.conn_peer(id),
                        "failover: partner connected"
                    );
                    self.tell(LinkEvent::Up { id }).await;
                    self.tell(LinkEvent::Message { id, msg }).await;
                }
            }
            ConnEvent::Closed { id, why } => {
                if !self.candidates.iter().any(|c| c.id == id) {
                    return;
                }
                self.drop_conn(id);
                if self.active == Some(id) {
                    info!(relationship = %self.name, "failover: connection to the partner lost: {why}");
                    self.active = None;
                    self.tell(LinkEvent::Down { id }).await;
                    self.promote_next().await;
                }
            }
        }
    }

    fn conn_peer(&self, id: u64) -> Option<std::net::SocketAddr> {
        self.candidates.iter().find(|c| c.id == id).map(|c| c.peer)
    }

    async fn add(&mut self, s: Stream, peer: SocketAddr, ev_tx: &mpsc::UnboundedSender<ConnEvent>) {
        if self.candidates.len() >= MAX_CANDIDATES {
            // Make room by dropping the oldest idle one: a partner that opened connections and
            // went quiet must not lock out the one it opens next.
            let Some(pos) = self.candidates.iter().position(|c| Some(c.id) != self.active) else {
                return;
            };
            self.candidates.remove(pos);
        }
        let id = self.next_id;
        self.next_id += 1;
        let (r, w) = tokio::io::split(s);
        let reader = tokio::spawn(read_frames(id, r, ev_tx.clone()));
        self.candidates.push(Conn { id, writer: w, reader, peer });
        if self.role == Role::Primary && self.active.is_none() {
            self.active = Some(id);
            info!(relationship = %self.name, %peer, "failover: connected to the partner");
            self.tell(LinkEvent::Up { id }).await;
        }
    }

    /// The primary's chosen connection went away before carrying traffic: try the next one.
    async fn promote_next(&mut self) {
        if self.role != Role::Primary || self.active.is_some() {
            return;
        }
        if let Some(id) = self.candidates.first().map(|c| c.id) {
            self.active = Some(id);
            self.tell(LinkEvent::Up { id }).await;
        }
    }

    fn drop_conn(&mut self, id: u64) {
        self.candidates.retain(|c| c.id != id);
    }

    fn close_others(&mut self, keep: u64) {
        self.candidates.retain(|c| c.id == keep);
    }
}

/// Our connection to the partner, through its TLS handshake when the link has TLS.
async fn connect(
    local: std::net::Ipv4Addr,
    peer: SocketAddrV4,
    tls: Option<PeerTls>,
) -> Result<(Stream, SocketAddr), ConnectError> {
    let s = connect_tcp(local, peer).await.map_err(|e| ConnectError::Tcp(format!("{e:#}")))?;
    let _ = s.set_nodelay(true);
    let to = SocketAddr::V4(peer);
    let Some(tls) = tls else { return Ok((Box::new(s), to)) };
    let done =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.connector.connect(tls.peer_name.clone(), s))
            .await;
    match done {
        Ok(Ok(t)) => Ok((Box::new(t), to)),
        Ok(Err(e)) => Err(ConnectError::Handshake(to, handshake_failed(&e))),
        Err(_) => Err(ConnectError::Handshake(to, "TLS handshake timed out".to_owned())),
    }
}

fn handshake_failed(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        // What a partner without `tls` does with our handshake: it is not a failover message.
        "TLS handshake: the partner closed the connection (is its tls configured?)".to_owned()
    } else {
        format!("TLS handshake: {e}")
    }
}

async fn connect_tcp(local: std::net::Ipv4Addr, peer: SocketAddrV4) -> Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    // From our failover address: the partner accepts connections from its peer address only.
    sock.bind(SocketAddrV4::new(local, 0).into())
        .with_context(|| format!("bind {local} for the connection to the partner"))?;
    let s = tokio::time::timeout(CONNECT_TIMEOUT, sock.connect(peer.into()))
        .await
        .context("timed out")??;
    Ok(s)
}

async fn read_frames(id: u64, mut r: ReadHalf<Stream>, tx: mpsc::UnboundedSender<ConnEvent>) {
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    let why = loop {
        let n = match r.read(&mut buf).await {
            Ok(0) => break "closed by the partner".to_owned(),
            Ok(n) => n,
            Err(e) => break format!("read: {e}"),
        };
        dec.push(&buf[..n]);
        let mut failed = None;
        for _ in 0..FRAMES_PER_READ {
            match dec.pop_message() {
                Ok(Some(msg)) => {
                    if tx.send(ConnEvent::Frame { id, msg }).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_ignorable() => debug!("failover: ignoring a frame: {e}"),
                Err(e) => {
                    failed = Some(format!("undecodable message from the partner: {e}"));
                    break;
                }
            }
        }
        if let Some(why) = failed {
            break why;
        }
    };
    let _ = tx.send(ConnEvent::Closed { id, why });
}

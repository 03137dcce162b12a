//! The one turn of the server: `now` and a batch of inputs in; replies, kernel-map operations,
//! messages for the partner and answers out, with every lease change made durable through
//! [`Durable`] before anything that depends on it leaves.
//!
//! The daemon, the failover simulation, the pair tests and the benchmarks all drive this same
//! [`Core::turn`]; none of them copies it. Within a turn, in this order:
//!
//! 1. the partner's news (link events, messages), and an operator's PARTNER-DOWN, so that the
//!    batch is decided under the failover state they bring;
//! 2. the failover engine's timers and its own changes;
//! 3. renewals XDP already answered (an expiry below must not undo one it granted);
//! 4. DHCP requests, then expiry when it is due;
//! 5. commit, then tell the failover glue what is durable, and poll it again — what that
//!    brings (a balance move, acks) is committed in a further round;
//! 6. only then replies, partner messages and control answers are handed out.
//!
//! A commit that fails withholds every reply of the turn and restarts the engine from what is
//! durable: an ACK is never ahead of the store, from either path.
pub mod control;
pub mod durable;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

use dhcp_common::RenewEvent;
use serde_json::Value;
use tracing::{error, info, warn};

pub use control::{LeaseQuery, Measured, PAGE_MAX, Request};
pub use durable::{Durable, DurableError, MemStore};

use crate::{
    config::{Config, RelationshipId},
    failover::{self, Failover, LinkCmd},
    history::{Kind, RawEvent, Via},
    server::{FastPathLease, Handled, MapOp, Reply, RxInfo, Server},
    store::{LeaseChange, LeaseState},
};

/// One instant read on both clocks: conversions between them use the same pair.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub unix: u64,
    pub mono_ns: u64,
}

impl Now {
    /// The clocks as they are: for the daemon. The simulation and tests make their own.
    #[must_use]
    pub fn read() -> Self {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self { unix, mono_ns: crate::fastpath::clock::monotonic_ns() }
    }

    /// An instant whose monotonic clock is unix time in nanoseconds: simulated time.
    #[must_use]
    pub fn at(unix: u64) -> Self {
        Self { unix, mono_ns: unix.saturating_mul(1_000_000_000) }
    }

    /// Unix seconds of a monotonic instant (an event's timestamp), rounded down.
    #[must_use]
    pub fn unix_of(&self, mono_ns: u64) -> u64 {
        self.unix.saturating_sub(self.mono_ns.saturating_sub(mono_ns).div_ceil(1_000_000_000))
    }
}

/// What the failover link reports. Ids tell one connection from the next, so that a message
/// meant for a replaced connection never reaches its successor.
#[derive(Debug)]
pub enum LinkEvent {
    Up { id: u64 },
    Message { id: u64, msg: dhcp_failover::Message },
    Down { id: u64 },
}

/// What the turn asks of the failover link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCmd {
    Connect,
    Send { id: u64, bytes: Vec<u8> },
    Close { id: u64 },
}

/// One thing for the turn to handle. `R` is how the driver will answer a control request (a
/// channel in the daemon, anything in a test); the turn only hands it back with the answer.
#[derive(Debug)]
pub enum Input<R> {
    /// A DHCP message as it came off a socket.
    Dhcp {
        rx: RxInfo,
        bytes: Vec<u8>,
    },
    /// A renewal XDP answered, from the fast path's event log.
    Renewed(RenewEvent),
    /// What relationship `.0`'s link reports.
    Link(RelationshipId, LinkEvent),
    Control {
        req: Request,
        reply: R,
        measured: Measured,
    },
}

/// What one turn decided, all of it already durable.
#[derive(Debug)]
pub struct Output<R> {
    /// To send.
    pub replies: Vec<Reply>,
    /// What became of each DHCP input, in input order.
    pub handled: Vec<Handled>,
    /// Kernel-map updates of what was committed, in commit order.
    pub map_ops: Vec<MapOp>,
    /// The fast path is to be switched on (or off): the failover state changed.
    pub fast_path: Option<bool>,
    /// For each relationship's link, by id.
    pub link: Vec<(RelationshipId, PeerCmd)>,
    pub answers: Vec<(R, Value)>,
    /// The store refused a commit: nothing of the turn's DHCP decisions was sent.
    pub commit_failed: bool,
    /// The lease history's events of what the turn committed, when `[history]` is configured;
    /// none from a turn whose commit failed.
    pub history: Vec<RawEvent>,
}

impl<R> Default for Output<R> {
    fn default() -> Self {
        Self {
            replies: Vec::new(),
            handled: Vec::new(),
            map_ops: Vec::new(),
            fast_path: None,
            link: Vec::new(),
            answers: Vec::new(),
            commit_failed: false,
            history: Vec::new(),
        }
    }
}

/// A failover relationship as the core holds it: the glue, and which connection it is on.
struct Relationship {
    fo: Failover,
    link_id: Option<u64>,
    /// The relationship's state as last changed, until the store has taken it: nothing goes to
    /// the partner meanwhile, as a STATE message would reveal a state a restart could forget.
    unsaved: Option<Vec<u8>>,
}

/// Decided this turn and not yet durable.
#[derive(Default)]
struct Pending {
    changes: Vec<LeaseChange>,
    /// Addresses this server changed: the failover partner hears of them once committed.
    local: Vec<Ipv4Addr>,
    /// Per relationship, the partner's bindings up to here are among `changes`.
    commits: Vec<(RelationshipId, dhcp_failover::engine::CommitId)>,
    gate_changed: bool,
    /// The history's events of these changes (and of renewals XDP answered that need none).
    history: Vec<RawEvent>,
}

/// The lease state's one owner: the DHCP engine and the failover glue, and what it counts.
pub struct Core {
    cfg: Config,
    server: Server,
    /// The relationships, by [`RelationshipId`].
    failover: Vec<Relationship>,
    fast_path_renewals: u64,
    turns: u64,
    /// Addresses whose kernel entry a turn deleted while no client held them, with that turn:
    /// two turns on, every renewal the kernel answered before the delete has been drained.
    letting_go: Vec<(Ipv4Addr, u64)>,
}

/// Turns between deleting an address's kernel entry and voiding its hold: the driver applies
/// the delete after one turn and drains the log at the start of the next, and a renewal XDP
/// was answering at the very moment of the delete is logged by the one after.
const LET_GO_TURNS: u64 = 2;

/// At most this many commit rounds a turn: only a poll after a commit adds changes, and only
/// through pool balancing, which runs at most once a turn.
const COMMIT_ROUNDS: usize = 4;

impl Core {
    /// The server as `store` left it: its leases and each relationship's persisted state.
    pub fn new(cfg: Config, store: &impl Durable, now: u64) -> Result<Self, DurableError> {
        let leases = store.load_all()?;
        let sole = cfg.failover.len() == 1;
        let mut failover = Vec::with_capacity(cfg.failover.len());
        for (rel, f) in cfg.relationships() {
            let blob = store.failover_state(&f.name, sole)?;
            let fo = Failover::new(&cfg, rel, blob.as_deref(), &leases, now);
            failover.push(Relationship { fo, link_id: None, unsaved: None });
        }
        // The driver makes the kernel hold only what the store says is bound before the first
        // turn: whatever else a record still holds is let go as after a delete.
        let letting_go = leases
            .iter()
            .filter(|l| l.state != LeaseState::Active && l.held_until > now)
            .map(|l| (l.address, 0))
            .collect();
        let server = Server::new(cfg.clone(), leases);
        Ok(Self { cfg, server, failover, fast_path_renewals: 0, turns: 0, letting_go })
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    #[must_use]
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The first relationship: the only one of a pair.
    #[must_use]
    pub fn failover(&self) -> Option<&Failover> {
        self.failover.first().map(|f| &f.fo)
    }

    /// Every relationship, in the config's order.
    pub fn relationships(&self) -> impl Iterator<Item = &Failover> {
        self.failover.iter().map(|f| &f.fo)
    }

    /// The relationship named `name`; with none named, the only one there is. The error says
    /// what to name.
    pub fn relationship(&self, name: Option<&str>) -> Result<&Failover, String> {
        let names =
            || self.relationships().map(|f| format!("{:?}", f.config().name)).collect::<Vec<_>>();
        match (name, self.failover.len()) {
            (_, 0) => Err("no [failover] relationship is configured".into()),
            (None, 1) => Ok(&self.failover[0].fo),
            (None, _) => Err(format!(
                "there are several failover relationships: name one with --relationship ({})",
                names().join(", ")
            )),
            (Some(n), _) => self.relationships().find(|f| f.config().name == n).ok_or_else(|| {
                format!(
                    "no failover relationship is named {n:?} (there are {})",
                    names().join(", ")
                )
            }),
        }
    }

    /// Turns rewinding (draft-12 §5.2.2) on or off, for comparing the two.
    pub fn set_rewinding(&mut self, on: bool) {
        self.server.set_rewinding(on);
    }

    /// Renewals the fast path answered and the turn recorded.
    #[must_use]
    pub fn fast_path_renewals(&self) -> u64 {
        self.fast_path_renewals
    }

    /// Whether the fast path may answer now. A server with a partner starts with it off: it
    /// waits for the relationship to allow answering. With several, every one must: the
    /// kernel's switch is one for all subnets, and the slow path answers meanwhile.
    #[must_use]
    pub fn fast_path_allowed(&self) -> bool {
        self.relationships().all(Failover::fast_path_allowed)
    }

    /// Every lease the kernel map should hold at `now` (a full reconcile at start).
    #[must_use]
    pub fn fast_path_entries(&self, now: u64) -> Vec<FastPathLease> {
        self.server.fast_path_entries(now).collect()
    }

    /// The server is going away (SIGTERM): the partner is told it pauses (PAUSED, draft-12
    /// §9.10), so it goes to COMMUNICATIONS-INTERRUPTED at once instead of after its timers,
    /// and the link is closed. PAUSED, not SHUTDOWN: a stop is most often a restart, and
    /// SHUTDOWN would let the partner take over the whole pool.
    pub fn stop<R>(&mut self, now: Now, store: &mut impl Durable) -> Output<R> {
        for f in &mut self.failover {
            f.fo.command(now.unix, dhcp_failover::engine::Command::Pause);
        }
        self.turn(now, Vec::new(), store)
    }

    /// One turn; see the module doc for its order.
    pub fn turn<R>(
        &mut self,
        now: Now,
        inputs: Vec<Input<R>>,
        store: &mut impl Durable,
    ) -> Output<R> {
        self.turns += 1;
        let mut out = Output::default();
        let mut p = Pending::default();
        let mut decided = Vec::new();
        let mut rest = Vec::with_capacity(inputs.len());
        for input in inputs {
            match input {
                Input::Link(rel, ev) => self.link_event(now.unix, rel, ev),
                // Before the poll below, so that its persisted state is written in this turn
                // and the answer goes out only after that.
                Input::Control {
                    req: Request::FailoverPartnerDown { confirm, relationship },
                    reply,
                    ..
                } => {
                    let answer = self.partner_down(now.unix, confirm, relationship.as_deref());
                    decided.push((answer, relationship, reply));
                }
                other => rest.push(other),
            }
        }
        self.failover_poll(now.unix, &mut p, store, &mut out);

        let mut controls = Vec::new();
        let mut requests = Vec::new();
        for input in rest {
            match input {
                Input::Renewed(ev) => self.fast_path_renewal(now, &ev, &mut p),
                Input::Dhcp { rx, bytes } => requests.push((rx, bytes)),
                Input::Control { req, reply, measured } => controls.push((req, reply, measured)),
                Input::Link(..) => {}
            }
        }
        self.let_go(now.unix, &mut p);
        for (rx, bytes) in requests {
            let o = self.server.handle_bytes(now.unix, &bytes, &rx);
            if self.keeps_history() {
                p.history.extend(self.handled_event(now.unix, &o));
            }
            self.log_circuit_changes();
            self.log_limits();
            p.local.extend(o.changes.iter().map(LeaseChange::address));
            p.changes.extend(o.changes);
            out.replies.extend(o.reply);
            out.handled.push(o.result);
        }
        self.expire_due(now.unix, &mut p);

        for _ in 0..COMMIT_ROUNDS {
            if p.changes.is_empty() && p.local.is_empty() && p.commits.is_empty() {
                break;
            }
            let mut changes = std::mem::take(&mut p.changes);
            self.mark_unacked(&mut changes, &p.local);
            let commits = std::mem::take(&mut p.commits);
            if self.commit(now.unix, &changes, store, &mut out) {
                for f in &mut self.failover {
                    let id = f.fo.id();
                    let c = commits.iter().rev().find(|(r, _)| *r == id).map(|(_, c)| *c);
                    f.fo.committed(now.unix, &self.server, c, p.local.iter().copied());
                }
            } else {
                out.replies.clear();
                out.commit_failed = true;
            }
            p.local.clear();
            self.failover_poll(now.unix, &mut p, store, &mut out);
        }
        if !p.changes.is_empty() {
            // The rounds are bounded by construction; should that ever change, what is left
            // is decided but not durable, and must not be acted on.
            error!(left = p.changes.len(), "lease changes left uncommitted after the last round");
            self.reload(store);
            out.replies.clear();
            out.commit_failed = true;
        }
        if !out.commit_failed {
            out.history = std::mem::take(&mut p.history);
        }
        if p.gate_changed {
            out.fast_path = Some(self.fast_path_allowed());
            let states: Vec<String> = self
                .relationships()
                .map(|f| format!("{} {:?}", f.config().name, f.gate().state))
                .collect();
            info!(
                "fast path {} (failover: {})",
                if self.fast_path_allowed() { "on" } else { "off" },
                states.join(", ")
            );
        }
        for (req, reply, measured) in controls {
            out.answers.push((reply, control::answer(self, &req, now, &measured)));
        }
        for (mut answer, name, reply) in decided {
            if answer.get("error").is_none()
                && let Ok(f) = self.relationship(name.as_deref())
            {
                answer["status"] = f.status(&self.server, now.unix);
            }
            out.answers.push((reply, answer));
        }
        out
    }

    /// `[history]` is configured: the turn describes its lease events.
    fn keeps_history(&self) -> bool {
        self.cfg.history.is_some()
    }

    /// A renewal XDP answered, recorded as of when it answered.
    fn fast_path_renewal(&mut self, now: Now, ev: &RenewEvent, p: &mut Pending) {
        let at = now.unix_of(ev.at_ns);
        let addr = Ipv4Addr::from(ev.addr);
        self.fast_path_renewals += 1;
        if let Some(c) = self.server.apply_fast_path_renewal(at, addr, ev.chaddr, ev.granted_secs) {
            p.local.push(c.address());
            p.changes.push(c);
        }
        // Taken, whether or not it needed a commit: the record is now the client's, active.
        if self.keeps_history()
            && let Some(l) = self.server.lease(addr)
            && l.state == LeaseState::Active
            && l.mac() == Some(ev.chaddr)
        {
            p.history.push(RawEvent::of_lease(at, Kind::Renew, Via::Xdp, l));
        }
    }

    /// Leases (and offers, and probations) that ran out by `now`.
    fn expire_due(&mut self, now: u64, p: &mut Pending) {
        if self.server.next_timeout().is_none_or(|t| t > now) {
            return;
        }
        let expired = self.server.expire(now);
        if self.keeps_history() {
            p.history.extend(expired.iter().filter_map(|c| match c {
                // Not a probation ending (Abandoned to Free): that held no client.
                LeaseChange::Put(l) if l.state == LeaseState::Expired => {
                    Some(RawEvent::of_lease(now, Kind::Expire, Via::Slow, l))
                }
                _ => None,
            }));
        }
        p.local.extend(expired.iter().map(LeaseChange::address));
        p.changes.extend(expired);
    }

    /// The history's event of one DHCP request, read from what the server decided and the
    /// record it left: a binding whose state started now is new, else it was renewed.
    fn handled_event(&self, now: u64, o: &crate::server::Outcome) -> Option<RawEvent> {
        let (kind, a) = match o.result {
            Handled::Offered(a) => {
                return o.reply.as_ref().map(|r| RawEvent::of_offer(now, a, &r.msg));
            }
            Handled::Acked(a) => {
                let l = self.server.lease(a)?;
                (if l.stos == now { Kind::Bind } else { Kind::Renew }, a)
            }
            Handled::Declined(a) => (Kind::Decline, a),
            Handled::Released(a) => (Kind::Release, a),
            Handled::Nacked | Handled::Informed | Handled::Dropped(_) => return None,
        };
        Some(RawEvent::of_lease(now, kind, Via::Slow, self.server.lease(a)?))
    }

    /// Each request from another line than its binding's (option 82 circuit-id), and what
    /// the subnet's `circuit_change` made of it.
    fn log_circuit_changes(&mut self) {
        for c in self.server.take_circuit_changes() {
            info!(
                addr = %c.address,
                chaddr = %control::hex(&c.chaddr),
                from = %control::printable(&c.from),
                to = %c.to.as_deref().map_or_else(|| "(none)".into(), control::printable),
                action = c.action.as_str(),
                "a request named another circuit-id than its binding's"
            );
        }
    }

    /// Requests refused by a lease limit: one line per key a minute, however hard it floods.
    fn log_limits(&mut self) {
        for e in self.server.take_limit_events() {
            warn!(
                key = e.key.kind(),
                value = %control::printable(e.key.value()),
                limit = e.limit,
                chaddr = %control::hex(&e.chaddr),
                "a new binding over a lease limit was refused (counted in lease_limited; \
                 logged once a minute per key)"
            );
        }
    }

    /// `xdhcp failover partner-down`, for the relationship named (or the only one).
    fn partner_down(&mut self, now: u64, confirm: bool, name: Option<&str>) -> Value {
        let rel = match self.relationship(name) {
            Ok(f) => f.id(),
            Err(e) => return serde_json::json!({ "error": e }),
        };
        let f = &mut self.failover[rel.index()];
        if !confirm {
            return serde_json::json!({"error": "not confirmed: PARTNER-DOWN while the partner \
                still serves clients can give one address to two of them; repeat with \
                --yes-partner-is-down once you know it is down"});
        }
        match f.fo.partner_down(now) {
            Ok(at) => serde_json::json!({
                "partner_down": true,
                "partner_addresses_usable_at": at,
                "usable_in_secs": at.saturating_sub(now),
            }),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        }
    }

    /// Commits `changes` and queues their kernel-map updates; false if the store refused
    /// (then nothing of the batch may be acknowledged to anyone).
    fn commit<R>(
        &mut self,
        now: u64,
        changes: &[LeaseChange],
        store: &mut impl Durable,
        out: &mut Output<R>,
    ) -> bool {
        if changes.is_empty() {
            return true;
        }
        if let Err(e) = store.commit(changes) {
            error!("lease store commit failed, replies and acks withheld: {e:#}");
            self.reload(store);
            return false;
        }
        let ops = self.server.map_ops(changes, now);
        for op in &ops {
            if let MapOp::Delete(a) = op
                && self.server.lease(*a).is_some_and(|l| l.state != LeaseState::Active)
            {
                self.letting_go.push((*a, self.turns));
            }
        }
        out.map_ops.extend(ops);
        true
    }

    /// The records of `local` addresses are committed as not yet acknowledged by the partner,
    /// in the same transaction as the change itself: a kill -9 before the BNDACK leaves the
    /// store saying what a restart must send again.
    fn mark_unacked(&mut self, changes: &mut [LeaseChange], local: &[Ipv4Addr]) {
        if self.failover.is_empty() || local.is_empty() {
            return;
        }
        let local: std::collections::HashSet<_> = local.iter().copied().collect();
        for c in changes {
            if let LeaseChange::Put(l) = c
                && local.contains(&l.address)
            {
                l.partner_acked = false;
                self.server.mark_unacked(l.address);
            }
        }
    }

    /// Voids the hold of every address whose kernel entry went [`LET_GO_TURNS`] ago; see
    /// [`Server::kernel_let_go`]. Not news for the partner: it is this server's fast path only.
    fn let_go(&mut self, now: u64, p: &mut Pending) {
        let due = self.turns.saturating_sub(LET_GO_TURNS);
        let (ready, waiting) = std::mem::take(&mut self.letting_go)
            .into_iter()
            .partition::<Vec<_>, _>(|&(_, t)| t <= due);
        self.letting_go = waiting;
        for (a, _) in ready {
            p.changes.extend(self.server.kernel_let_go(a, now));
        }
    }

    /// The engine is ahead of the store: start it again from what is durable.
    fn reload(&mut self, store: &impl Durable) {
        match store.load_all() {
            Ok(l) => {
                self.server = Server::new(self.cfg.clone(), l);
                for f in &self.failover {
                    self.server.set_failover_gate(f.fo.id(), f.fo.gate());
                }
            }
            Err(e) => error!("reloading the store failed too: {e:#}"),
        }
    }

    fn link_event(&mut self, now: u64, rel: RelationshipId, ev: LinkEvent) {
        let Some(f) = self.failover.get_mut(rel.index()) else { return };
        match ev {
            LinkEvent::Up { id } => {
                f.link_id = Some(id);
                f.fo.link_up(now);
            }
            LinkEvent::Message { id, msg } if f.link_id == Some(id) => f.fo.message(now, msg),
            LinkEvent::Down { id } if f.link_id == Some(id) => {
                f.link_id = None;
                f.fo.link_down(now);
            }
            LinkEvent::Message { .. } | LinkEvent::Down { .. } => {}
        }
    }

    /// Runs the failover engine's timers and collects what it has to say; writes its state at
    /// once, before anything that reveals it is sent.
    fn failover_poll<R>(
        &mut self,
        now: u64,
        p: &mut Pending,
        store: &mut impl Durable,
        out: &mut Output<R>,
    ) {
        let history = self.cfg.history.is_some();
        for f in &mut self.failover {
            Self::poll_relationship(f, &mut self.server, history, now, p, store, out);
        }
    }

    fn poll_relationship<R>(
        f: &mut Relationship,
        server: &mut Server,
        history: bool,
        now: u64,
        p: &mut Pending,
        store: &mut impl Durable,
        out: &mut Output<R>,
    ) {
        let rel = f.fo.id();
        f.fo.tick(now);
        let mut acts = failover::Actions::default();
        f.fo.poll(now, server, &mut acts);
        if let Some(blob) = acts.persist.take() {
            f.unsaved = Some(blob);
        }
        if let Some(blob) = &f.unsaved {
            match store.put_failover_state(&f.fo.config().name, blob) {
                Ok(()) => f.unsaved = None,
                Err(e) => error!(
                    relationship = %f.fo.config().name,
                    "writing the failover state failed; nothing goes to the partner until it \
                     is written: {e:#}"
                ),
            }
        }
        if f.unsaved.is_some() {
            // What the engine meant to say is lost with this connection; closing it makes the
            // partner start over with us once the state is durable.
            acts.link.clear();
            if let Some(id) = f.link_id.take() {
                out.link.push((rel, PeerCmd::Close { id }));
                f.fo.link_down(now);
            }
        }
        if history {
            for a in &acts.received {
                // Pool balancing's moves (FREE, BACKUP, no client) are not lease history.
                let l = acts.changes.iter().rev().find_map(|c| match c {
                    LeaseChange::Put(l) if l.address == *a && !l.chaddr.is_empty() => Some(l),
                    _ => None,
                });
                p.history.extend(
                    l.map(|l| RawEvent::of_lease(now, Kind::FailoverUpdate, Via::Partner, l)),
                );
            }
        }
        p.changes.append(&mut acts.changes);
        p.local.append(&mut acts.local);
        if let Some(c) = acts.commit {
            p.commits.push((rel, c));
        }
        p.gate_changed |= acts.gate_changed;
        for c in acts.link {
            let cmd = match c {
                LinkCmd::Connect => PeerCmd::Connect,
                LinkCmd::Send(bytes) => match f.link_id {
                    Some(id) => PeerCmd::Send { id, bytes },
                    None => continue,
                },
                LinkCmd::Close => match f.link_id.take() {
                    Some(id) => PeerCmd::Close { id },
                    None => continue,
                },
            };
            out.link.push((rel, cmd));
        }
    }
}

//! The failover endpoint of one relationship, as a sans-IO state machine.
//!
//! Inputs carry `now` (unix seconds); outputs are pulled. After every `handle_*` call the driver
//! drains [`Peer::poll_event`] and then [`Peer::poll_transmit`], and sleeps until
//! [`Peer::poll_timeout`]. Every input is total: a malformed or unexpected message from the
//! partner ends the connection (with DISCONNECT where the draft wants one), never the process.
//!
//! One `Peer` drives one TCP connection at a time. ISC's secondary keeps the first connection on
//! which it can talk to the primary and closes any other (in `tests/data/isc-failover-fresh.pcap`
//! both sides connect at once, the primary sends CONNECT on both, and the secondary answers on
//! the one it opened and closes the primary's); a driver should do the same: hand the engine the
//! first connection that comes up and close later ones.

mod bindings;
mod config;
mod event;
mod handshake;
mod replication;
mod timer;
pub mod transitions;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;

pub use bindings::{EXPIRY_SLACK, covers, judge_update};
pub use config::{Config, PersistedState, Role};
pub use event::{Command, CommitId, Event, Service};

use bindings::BindingTable;
use timer::{Timer, TimerTable};

use crate::load_balance::Hba;
use crate::mclt::LeaseTimes;
use crate::messages::{BindingAck, BindingUpdate};
use crate::options::{RejectReason, SERVER_FLAG_STARTUP, ServerState};
use crate::wire::{Message, MessageType};

/// Where the current connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down,
    /// Secondary: TCP is up, waiting for the primary's CONNECT.
    AwaitConnect,
    /// Primary: CONNECT sent with this xid.
    AwaitConnectAck {
        xid: u32,
    },
    /// CONNECT/CONNECTACK done; the partner's STATE has not arrived yet.
    AwaitState,
    /// Communications OK (draft-12 §8.3).
    Up,
}

impl Link {
    fn is_established(self) -> bool {
        matches!(self, Self::AwaitState | Self::Up)
    }
}

/// What we know about the partner.
#[derive(Debug, Clone)]
struct Partner {
    state: Option<ServerState>,
    startup: bool,
    since: u64,
    /// Its max-unacked-bndupd: our send window.
    max_unacked: u32,
    /// Its receive-timer: we must send something at least this often.
    receive_timer: u32,
    vendor_class: Vec<u8>,
    /// Its clock minus ours, from the time field of its last message (§5.10).
    clock_offset: Option<i64>,
    /// The last connection ended on a clock-skew refusal, either way: the partner is alive.
    refused_for_skew: bool,
}

/// An update request from the partner being answered.
#[derive(Debug)]
struct ServingRequest {
    xid: u32,
    /// Addresses that must be answered by a BNDACK before UPDDONE may go out (§7.3.2).
    waiting: HashSet<Ipv4Addr>,
}

/// A BNDUPD of ours awaiting its BNDACK.
#[derive(Debug, Clone)]
struct InFlight {
    xid: u32,
    ip: Ipv4Addr,
    version: u64,
    status: crate::options::BindingStatus,
    pet: Option<u32>,
}

/// A BNDACK waiting for its bindings to reach stable storage.
#[derive(Debug)]
struct PendingAck {
    xid: u32,
    acks: Vec<BindingAck>,
    commit: CommitId,
}

/// Whether closing sends a DISCONNECT first (only meaningful on an established connection,
/// the only kind the draft sends it on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Farewell {
    Silent,
    Disconnect,
}

/// How soon to reconnect after closing. A refused connection is likely to be refused again at
/// once, so the draft asks for a pause of a minute or two (§7.9, §7.12); a lost one is retried
/// quickly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Soon,
    Later,
}

/// Largest send window we honour, whatever the partner advertises: it bounds our memory.
const MAX_WINDOW: u32 = 1024;

/// One failover endpoint.
#[derive(Debug)]
pub struct Peer {
    cfg: Config,
    state: ServerState,
    since: u64,
    /// The state to return to after STARTUP, and the one persisted while PAUSED or SHUTDOWN.
    resume: ServerState,
    /// What STARTUP announces (with the STARTUP flag): the saved state as stored, before the
    /// communications-failed adjustment that `resume` has had. ISC does the same.
    saved: ServerState,
    resume_since: u64,
    /// `saved` is a state this server was in before it stopped, since `resume_since`: going
    /// back to it after STARTUP is no new state (its STOS, and the MCLT and auto-partner-down
    /// timers that count from it, go on).
    saved_was_mine: bool,
    /// When RECOVER-WAIT's MCLT starts counting (§9.6.2): when we entered RECOVER, or for a
    /// server without saved state, when it started (ISC's choice: the partner may remember us
    /// even if our disk does not).
    recover_basis: u64,
    mclt: u32,
    hba: Hba,
    partner: Partner,
    link: Link,
    next_xid: u32,
    timers: TimerTable,
    transmits: VecDeque<Message>,
    events: VecDeque<Event>,
    bindings: BindingTable,
    in_flight: Vec<InFlight>,
    serving: Option<ServingRequest>,
    /// Leaving PARTNER-DOWN: each address the partner had not acknowledged when it reported
    /// RECOVER-DONE, with our version then. NORMAL waits for these only, not for changes made
    /// since (renewals go on meanwhile, and would otherwise hold the handover off for good).
    hand_back: Option<HashMap<Ipv4Addr, u64>>,
    /// Our outstanding UPDREQ / UPDREQALL.
    requested: Option<u32>,
    pending_acks: VecDeque<PendingAck>,
    next_commit: u64,
}

/// Wire times are u32; `now` beyond 2106 is clamped rather than wrapped.
fn wire_time(now: u64) -> u32 {
    u32::try_from(now).unwrap_or(u32::MAX)
}

impl Peer {
    /// Starts a relationship in STARTUP. `persisted` is the last [`Event::Persist`], or `None`
    /// for a server that never ran failover (it will recover its database from the partner).
    #[must_use]
    pub fn new(cfg: Config, persisted: Option<PersistedState>, now: u64) -> Self {
        let resume = transitions::resume_state(persisted.map(|p| p.my_state));
        let saved = match persisted.map(|p| p.my_state) {
            Some(ServerState::Startup | ServerState::Paused | ServerState::Shutdown) | None => {
                resume
            }
            Some(s) => s,
        };
        let resume_since = persisted.map_or(now, |p| p.my_state_since);
        let saved_was_mine = persisted.is_some_and(|p| {
            !matches!(
                p.my_state,
                ServerState::Startup | ServerState::Paused | ServerState::Shutdown
            )
        });
        let recover_basis = match persisted {
            Some(p) if p.my_state == ServerState::Recover => p.my_state_since,
            _ => now,
        };
        let (mclt, hba) = match (cfg.role, persisted) {
            (Role::Secondary, Some(p)) => (p.mclt, p.hba),
            _ => (cfg.mclt, cfg.hba),
        };
        let mut timers = TimerTable::default();
        timers.set(Timer::Startup, now.saturating_add(u64::from(cfg.startup_period)));
        timers.set(Timer::Reconnect, now.saturating_add(u64::from(cfg.reconnect_delay)));
        // Connect right away; if that fails, the reconnect timer asks again.
        let events = VecDeque::from([Event::Connect]);
        Self {
            partner: Partner {
                state: persisted.and_then(|p| p.partner_state),
                startup: false,
                since: persisted.map_or(0, |p| p.partner_state_since),
                max_unacked: 1,
                receive_timer: cfg.max_response_delay,
                vendor_class: Vec::new(),
                clock_offset: None,
                refused_for_skew: false,
            },
            cfg,
            state: ServerState::Startup,
            since: now,
            resume,
            saved,
            resume_since,
            saved_was_mine,
            recover_basis,
            mclt,
            hba,
            link: Link::Down,
            next_xid: 0,
            timers,
            transmits: VecDeque::new(),
            events,
            bindings: BindingTable::default(),
            in_flight: Vec::new(),
            serving: None,
            hand_back: None,
            requested: None,
            pending_acks: VecDeque::new(),
            next_commit: 0,
        }
    }

    /// Loads a binding from stable storage (at startup, before the first connection).
    /// `partner_has_it` says whether the partner acknowledged this version; if not, it is sent
    /// once the servers are in NORMAL or the partner asks for updates.
    pub fn restore_binding(
        &mut self,
        binding: BindingUpdate,
        times: LeaseTimes,
        partner_has_it: bool,
    ) {
        self.bindings.restore(binding, times, partner_has_it);
    }

    // ---- inputs -------------------------------------------------------------------------

    /// A TCP connection to the partner is up (either direction). Replaces any current one.
    pub fn handle_connected(&mut self, now: u64) {
        if self.link != Link::Down {
            self.transmits.clear();
            self.link_down(now, self.cfg.reconnect_delay);
        }
        self.timers.stop(Timer::Reconnect);
        self.timers.set(Timer::Handshake, now.saturating_add(u64::from(self.cfg.connect_timeout)));
        match self.cfg.role {
            Role::Primary => {
                let xid = self.xid();
                let info = self.connect_info();
                self.link = Link::AwaitConnectAck { xid };
                self.transmits.push_back(Message::connect(wire_time(now), xid, &info));
            }
            Role::Secondary => self.link = Link::AwaitConnect,
        }
        self.drive(now);
    }

    /// The TCP connection closed or failed. Spurious calls are no-ops.
    pub fn handle_disconnected(&mut self, now: u64) {
        if self.link == Link::Down {
            return;
        }
        // Whatever was queued for the dead connection cannot be sent; requests and acks do not
        // survive a connection (their xids were only unique on it).
        self.transmits.clear();
        self.link_down(now, self.cfg.reconnect_delay);
        self.drive(now);
    }

    /// A message from the partner.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the engine is handed each message once; callers build it to give it away"
    )]
    pub fn handle_message(&mut self, now: u64, msg: Message) {
        if self.link == Link::Down {
            return;
        }
        self.partner.clock_offset =
            Some(i64::from(msg.time) - i64::try_from(now).unwrap_or(i64::MAX));
        if self.link.is_established() {
            self.arm_receive(now);
        }
        match (msg.kind, self.link) {
            (MessageType::Disconnect, _) => {
                self.events.push_back(Event::PartnerDisconnected {
                    reason: msg.reject_reason(),
                    message: msg.message_text().unwrap_or_default().to_vec(),
                });
                self.close(
                    now,
                    RejectReason::UNKNOWN,
                    "partner disconnected",
                    Farewell::Silent,
                    Retry::Later,
                );
            }
            (MessageType::Connect, Link::AwaitConnect) => self.on_connect(now, &msg),
            (MessageType::ConnectAck, Link::AwaitConnectAck { xid }) => {
                self.on_connect_ack(now, &msg, xid);
            }
            (_, Link::AwaitConnect | Link::AwaitConnectAck { .. })
            | (MessageType::Connect | MessageType::ConnectAck, _) => {
                let text = format!("unexpected {:?} on this connection", msg.kind);
                self.close(now, RejectReason::UNKNOWN, &text, Farewell::Disconnect, Retry::Later);
            }
            (MessageType::State, _) => self.on_state(now, &msg),
            (MessageType::BndUpd, _) => self.on_bndupd(now, &msg),
            (MessageType::BndAck, _) => self.on_bndack(&msg),
            (MessageType::UpdReq, _) => self.on_update_request(msg.xid, false),
            (MessageType::UpdReqAll, _) => self.on_update_request(msg.xid, true),
            (MessageType::UpdDone, _) => self.on_upddone(now),
            // Either side may be short of free addresses: the primary asks for BACKUP ones to
            // go back to FREE, the secondary for FREE ones to become BACKUP (ISC balances both
            // ways too). Whoever holds the surplus decides what to move.
            (MessageType::PoolReq, _) => {
                self.events.push_back(Event::PoolRequested { xid: msg.xid });
            }
            (MessageType::PoolResp, _) => self.events.push_back(Event::PoolResponse {
                transferred: msg.addresses_transferred().unwrap_or(0),
            }),
            (MessageType::Contact, _) => {}
        }
        self.drive(now);
    }

    /// Run whatever is due. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: u64) {
        for timer in Timer::ALL {
            if self.timers.take_expired(timer, now) {
                self.on_timer(now, timer);
            }
        }
        self.drive(now);
    }

    /// This server changed a lease: the partner must be told (a BNDUPD is queued and sent as the
    /// partner's max-unacked-bndupd window allows). Set `potential_expiration` with
    /// [`crate::mclt::potential_expiration`]. ACTIVE, EXPIRED and RELEASED bindings need a
    /// `chaddr`: ISC rejects them without one (reason 3).
    pub fn handle_local_binding(&mut self, now: u64, binding: BindingUpdate) {
        self.bindings.local_update(binding);
        self.drive(now);
    }

    /// Every [`Event::ApplyBinding`] up to and including `commit` is on stable storage.
    pub fn handle_committed(&mut self, now: u64, commit: CommitId) {
        while self.pending_acks.front().is_some_and(|p| p.commit <= commit) {
            if let Some(p) = self.pending_acks.pop_front() {
                self.send(now, Message::bndack(wire_time(now), p.xid, &p.acks));
            }
        }
        self.drive(now);
    }

    /// Answers an [`Event::PoolRequested`].
    pub fn handle_pool_response(&mut self, now: u64, xid: u32, transferred: u32) {
        if self.link.is_established() {
            self.send(now, Message::poolresp(wire_time(now), xid, transferred));
        }
        self.drive(now);
    }

    /// This server's share of free addresses is well below the partner's: ask it to balance
    /// now rather than at its next balancing run (POOLREQ). Only in NORMAL, where the partner
    /// balances; the answer comes back as [`Event::PoolResponse`].
    pub fn request_pool(&mut self, now: u64) {
        if self.link.is_established() && self.state == ServerState::Normal {
            let xid = self.xid();
            self.send(now, Message::poolreq(wire_time(now), xid));
        }
        self.drive(now);
    }

    /// An operator command.
    pub fn handle_command(&mut self, now: u64, command: Command) {
        match command {
            Command::PartnerDown => {
                // A server that is still rebuilding its database must not take over alone.
                let allowed = !matches!(
                    self.state,
                    ServerState::Startup
                        | ServerState::Recover
                        | ServerState::RecoverWait
                        | ServerState::RecoverDone
                        | ServerState::Paused
                        | ServerState::Shutdown
                );
                if allowed {
                    self.set_state(now, ServerState::PartnerDown);
                }
            }
            Command::Pause | Command::Shutdown => {
                if !matches!(self.state, ServerState::Paused | ServerState::Shutdown) {
                    if self.state != ServerState::Startup {
                        self.resume = self.state;
                        self.resume_since = self.since;
                    }
                    let to = if command == Command::Pause {
                        ServerState::Paused
                    } else {
                        ServerState::Shutdown
                    };
                    self.set_state(now, to);
                    // §9.13: a pausing server closes the connection after saying so; a
                    // shutting-down one lingers to see whether the partner goes PARTNER-DOWN.
                    if to == ServerState::Paused && self.link != Link::Down {
                        self.close(
                            now,
                            RejectReason::UNKNOWN,
                            "paused",
                            Farewell::Disconnect,
                            Retry::Soon,
                        );
                    }
                }
            }
        }
        self.drive(now);
    }

    // ---- outputs ------------------------------------------------------------------------

    /// Next message to encode and write to the connection.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmits.pop_front()
    }

    /// Next thing the driver must do.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Peer::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next()
    }

    // ---- queries ------------------------------------------------------------------------

    #[must_use]
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The partner's clock minus ours, in seconds, from its last message's time field.
    #[must_use]
    pub fn partner_clock_offset(&self) -> Option<i64> {
        self.partner.clock_offset
    }

    /// The last connection was refused because the two clocks are too far apart.
    #[must_use]
    pub fn refused_for_skew(&self) -> bool {
        self.partner.refused_for_skew
    }

    /// The partner's last reported state (its saved state while it is in STARTUP).
    #[must_use]
    pub fn partner_state(&self) -> Option<ServerState> {
        self.partner.state
    }

    /// Communications OK: CONNECT/CONNECTACK exchanged and the partner's STATE received.
    #[must_use]
    pub fn is_communicating(&self) -> bool {
        self.link == Link::Up
    }

    /// The MCLT in force (on the secondary: the primary's).
    #[must_use]
    pub fn mclt(&self) -> u32 {
        self.mclt
    }

    /// The HBA in force, ISC meaning (set bits: primary serves).
    #[must_use]
    pub fn hba(&self) -> Hba {
        self.hba
    }

    /// The partner's vendor-class-identifier (ISC sends `isc-<version>`).
    #[must_use]
    pub fn partner_vendor_class(&self) -> &[u8] {
        &self.partner.vendor_class
    }

    /// Which clients we may answer now.
    #[must_use]
    pub fn service(&self) -> Service {
        let partner_demands_silence = self.link == Link::Up
            && !self.partner.startup
            && self.partner.state.is_some_and(|p| p == ServerState::PartnerDown || p.is_conflict());
        match self.state {
            ServerState::ConflictDone => Service::OwnPool,
            _ if partner_demands_silence => Service::NotResponding,
            ServerState::Normal => Service::LoadBalanced,
            ServerState::CommunicationsInterrupted | ServerState::ResolutionInterrupted => {
                Service::OwnPool
            }
            // Handing back to a partner about to serve its own share again: an address of
            // its share bound now might be unknown to it when both are NORMAL.
            ServerState::PartnerDown if self.handing_back_to_ready_partner() => Service::OwnPool,
            ServerState::PartnerDown => Service::PartnerDown,
            ServerState::RecoverDone => Service::RenewalsOnly,
            _ => Service::NotResponding,
        }
    }

    /// The failover times of an address, for lease-time decisions ([`crate::mclt`]).
    #[must_use]
    pub fn lease_times(&self, ip: Ipv4Addr) -> Option<LeaseTimes> {
        self.bindings.get(ip).map(|r| r.times)
    }

    /// BNDUPDs sent and not yet acknowledged.
    #[must_use]
    pub fn updates_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// BNDUPDs the partner accepts unacknowledged (its max-unacked-bndupd), once connected.
    #[must_use]
    pub fn partner_window(&self) -> u32 {
        self.partner.max_unacked
    }

    /// Addresses waiting for a BNDUPD slot.
    #[must_use]
    pub fn updates_queued(&self) -> usize {
        self.bindings.queued()
    }

    /// What to persist now (also emitted as [`Event::Persist`] on every change).
    #[must_use]
    pub fn persisted(&self) -> PersistedState {
        let (my_state, my_state_since) = match self.state {
            ServerState::Startup | ServerState::Paused | ServerState::Shutdown => {
                (self.resume, self.resume_since)
            }
            s => (s, self.since),
        };
        PersistedState {
            my_state,
            my_state_since,
            partner_state: self.partner.state,
            partner_state_since: self.partner.since,
            mclt: self.mclt,
            hba: self.hba,
        }
    }

    // ---- internals ----------------------------------------------------------------------

    fn xid(&mut self) -> u32 {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        xid
    }

    /// Queues a message on an established connection and restarts tSend.
    fn send(&mut self, now: u64, msg: Message) {
        self.transmits.push_back(msg);
        if self.link.is_established() {
            // ISC sends CONTACT a third of the partner's receive-timer after its last message.
            let every = (self.partner.receive_timer / 3).max(1);
            self.timers.set(Timer::Send, now.saturating_add(u64::from(every)));
        }
    }

    fn arm_receive(&mut self, now: u64) {
        self.timers.set(Timer::Receive, now.saturating_add(u64::from(self.cfg.max_response_delay)));
    }

    fn send_state(&mut self, now: u64) {
        let (state, flags, since) = if self.state == ServerState::Startup {
            (self.saved, SERVER_FLAG_STARTUP, self.resume_since)
        } else {
            (self.state, 0, self.since)
        };
        let xid = self.xid();
        let msg = Message::state(wire_time(now), xid, state, flags, wire_time(since));
        self.send(now, msg);
    }

    fn persist(&mut self) {
        self.events.push_back(Event::Persist(self.persisted()));
    }

    fn set_state(&mut self, now: u64, to: ServerState) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.hand_back = None;
        self.since = if from == ServerState::Startup && to == self.saved && self.saved_was_mine {
            self.resume_since
        } else {
            now
        };
        self.events.push_back(Event::StateChanged { from, to });
        self.persist();
        if self.link.is_established() {
            self.send_state(now);
        }
        if from == ServerState::Startup {
            self.timers.stop(Timer::Startup);
        }
        match to {
            ServerState::Recover if from != ServerState::Startup => self.recover_basis = now,
            ServerState::RecoverWait => {
                let until = self.recover_basis.saturating_add(u64::from(self.mclt));
                self.timers.set(Timer::RecoverWait, until);
            }
            // §9.8.1: whatever the partner has not acknowledged goes out now.
            ServerState::Normal => {
                let sending = self.in_flight_versions();
                self.bindings.enqueue_stale(&sending);
            }
            _ => {}
        }
        if to != ServerState::RecoverWait {
            self.timers.stop(Timer::RecoverWait);
        }
        match (to, self.cfg.auto_partner_down) {
            (ServerState::CommunicationsInterrupted, Some(safe)) => {
                let at = self.since.saturating_add(u64::from(safe)).max(now);
                self.timers.set(Timer::AutoPartnerDown, at);
            }
            _ => self.timers.stop(Timer::AutoPartnerDown),
        }
    }

    fn on_timer(&mut self, now: u64, timer: Timer) {
        match timer {
            Timer::Startup => {
                if self.state == ServerState::Startup {
                    // §9.3.2 step 6: serve from the saved state rather than not at all.
                    self.set_state(now, self.resume);
                }
            }
            Timer::Receive => {
                if self.link.is_established() {
                    let text = "no traffic from partner";
                    self.close(
                        now,
                        RejectReason::NO_TRAFFIC,
                        text,
                        Farewell::Disconnect,
                        Retry::Soon,
                    );
                }
            }
            Timer::UpdateRequest => {
                if self.requested.is_some() && self.link.is_established() {
                    let text = "no UPDDONE for our update request";
                    self.close(now, RejectReason::UNKNOWN, text, Farewell::Disconnect, Retry::Soon);
                }
            }
            Timer::Send => {
                if self.link.is_established() {
                    let xid = self.xid();
                    self.send(now, Message::contact(wire_time(now), xid));
                }
            }
            Timer::Handshake => {
                if matches!(self.link, Link::AwaitConnect | Link::AwaitConnectAck { .. }) {
                    let text = "connect timed out";
                    self.close(now, RejectReason::UNKNOWN, text, Farewell::Silent, Retry::Soon);
                }
            }
            Timer::Reconnect => {
                if self.link == Link::Down {
                    self.events.push_back(Event::Connect);
                    self.timers.set(
                        Timer::Reconnect,
                        now.saturating_add(u64::from(self.cfg.reconnect_interval)),
                    );
                }
            }
            Timer::RecoverWait => {
                if self.state == ServerState::RecoverWait {
                    self.set_state(now, ServerState::RecoverDone);
                }
            }
            Timer::AutoPartnerDown => {
                // A partner whose CONNECT (or answer) was refused for its clock is alive: taking
                // over from it would put both servers in PARTNER-DOWN. Wait another period.
                if self.partner.refused_for_skew
                    && let Some(safe) = self.cfg.auto_partner_down
                {
                    self.timers.set(Timer::AutoPartnerDown, now.saturating_add(u64::from(safe)));
                } else if self.state == ServerState::CommunicationsInterrupted {
                    self.set_state(now, ServerState::PartnerDown);
                }
            }
        }
    }

    /// Ends the connection from our side.
    fn close(&mut self, now: u64, reason: RejectReason, text: &str, bye: Farewell, retry: Retry) {
        if self.link == Link::Down {
            return;
        }
        if bye == Farewell::Disconnect && self.link.is_established() {
            let xid = self.xid();
            self.transmits.push_back(Message::disconnect(wire_time(now), xid, reason, text));
        }
        self.events.push_back(Event::Close { reason, message: text.to_owned() });
        let delay = match retry {
            Retry::Soon => self.cfg.reconnect_delay,
            Retry::Later => self.cfg.reconnect_interval,
        };
        self.link_down(now, delay);
    }

    fn link_down(&mut self, now: u64, reconnect_after: u32) {
        let was_up = self.link == Link::Up;
        self.link = Link::Down;
        for t in [Timer::Receive, Timer::Send, Timer::Handshake] {
            self.timers.stop(t);
        }
        for f in std::mem::take(&mut self.in_flight) {
            self.bindings.enqueue(f.ip);
        }
        self.pending_acks.clear();
        self.serving = None;
        self.hand_back = None;
        self.requested = None;
        if was_up {
            self.events.push_back(Event::Communications { ok: false });
        }
        self.set_state(now, transitions::on_communications_failed(self.state));
        // A paused server is on its way out; it comes back by restarting, not by reconnecting.
        if self.state != ServerState::Paused {
            self.timers.set(Timer::Reconnect, now.saturating_add(u64::from(reconnect_after)));
        }
    }

    fn on_state(&mut self, now: u64, msg: &Message) {
        let Some(state) = msg.server_state() else {
            let text = "STATE without server-state";
            self.close(now, RejectReason::UNKNOWN, text, Farewell::Disconnect, Retry::Later);
            return;
        };
        let startup = msg.server_flags().unwrap_or(0) & SERVER_FLAG_STARTUP != 0;
        let since = msg.start_time_of_state().unwrap_or(msg.time);
        let changed = self.partner.state != Some(state) || self.partner.startup != startup;
        self.partner.state = Some(state);
        self.partner.startup = startup;
        self.partner.since = u64::from(since);
        // §9.14.2: the partner took over while we were shutting down, so whatever we hold will
        // be stale when we come back.
        if self.state == ServerState::Shutdown && state == ServerState::PartnerDown {
            self.resume = ServerState::Recover;
            self.resume_since = now;
        }
        if changed {
            self.events.push_back(Event::PartnerState { state, startup, since });
            self.persist();
        }
        if self.link == Link::AwaitState {
            self.link = Link::Up;
            self.events.push_back(Event::Communications { ok: true });
        }
    }

    /// Level-triggered follow-up after every input: state reactions, requests, sending.
    fn drive(&mut self, now: u64) {
        // Each pass can change our state, which can enable another reaction; the state graph
        // has no cycle longer than this, so the bound only guards against a bug looping forever.
        for _ in 0..8 {
            let before = self.state;
            self.react_to_partner(now);
            if self.state == before {
                break;
            }
        }
        self.issue_update_request(now);
        self.pump_updates(now);
        self.finish_serving(now);
    }

    fn react_to_partner(&mut self, now: u64) {
        if self.link != Link::Up {
            return;
        }
        let Some(partner) = self.partner.state else {
            return;
        };
        if self.state == ServerState::Startup {
            // §9.3.2 step 5: a partner that went PARTNER-DOWN while we were away may have handed
            // out our addresses; take its database rather than trusting ours (ISC: RECOVER).
            let to = if partner == ServerState::PartnerDown {
                ServerState::Recover
            } else {
                self.resume
            };
            if to == ServerState::Recover && self.resume != ServerState::Recover {
                self.recover_basis = now;
            }
            self.set_state(now, to);
            return;
        }
        // §9.4.3: states reported during the partner's STARTUP are provisional.
        if self.partner.startup {
            return;
        }
        if let Some(to) = transitions::on_partner_state(self.state, partner) {
            // A server leaving PARTNER-DOWN may have bound addresses of the partner's that the
            // partner has not heard of (after its UPDDONE). Were the link to fail right after
            // NORMAL, the partner would hand them out again from its own pool: so NORMAL waits
            // until the partner has acknowledged every one.
            if self.handing_back() && to == ServerState::Normal && !self.handed_back() {
                return;
            }
            self.set_state(now, to);
        }
    }

    /// PARTNER-DOWN with a partner rebuilding its database: our bindings flow to it
    /// unasked, so that it knows them all before either of us is NORMAL.
    fn handing_back(&self) -> bool {
        self.state == ServerState::PartnerDown
            && !self.partner.startup
            && matches!(
                self.partner.state,
                Some(ServerState::Recover | ServerState::RecoverWait | ServerState::RecoverDone)
            )
    }

    /// The partner, ready in RECOVER-DONE, has acknowledged (or itself sent) every binding we
    /// had not told it of when it got there. New clients meanwhile get addresses only from our
    /// own share ([`Peer::service`]), so nothing it could hand out again joins the list later.
    fn handed_back(&mut self) -> bool {
        let bindings = &self.bindings;
        let in_flight = &self.in_flight;
        let pending = self.hand_back.get_or_insert_with(|| {
            bindings.unacked_versions(&in_flight.iter().map(|f| f.ip).collect())
        });
        pending.retain(|ip, _| bindings.get(*ip).is_some_and(|r| !r.up_to_date));
        pending.is_empty()
    }

    fn handing_back_to_ready_partner(&self) -> bool {
        self.handing_back()
            && self.link == Link::Up
            && self.partner.state == Some(ServerState::RecoverDone)
    }

    /// A partner answering an UPDREQ(ALL) sends bindings and then UPDDONE; one that falls
    /// silent on it for twice the max-response-delay (while CONTACTs keep the link up) would
    /// keep this server in RECOVER for good. §9.5.2 re-issues the request on a new connection.
    pub(super) fn arm_update_request(&mut self, now: u64) {
        let wait = u64::from(self.cfg.max_response_delay).saturating_mul(2);
        self.timers.set(Timer::UpdateRequest, now.saturating_add(wait));
    }

    fn on_upddone(&mut self, now: u64) {
        // ISC sends UPDREQALL twice at startup and answers only the last, with its xid; any
        // UPDDONE while we have a request out completes it.
        if self.requested.take().is_none() {
            return;
        }
        self.timers.stop(Timer::UpdateRequest);
        match (self.state, self.cfg.role) {
            (ServerState::Recover, _) => {
                let until = self.recover_basis.saturating_add(u64::from(self.mclt));
                // §9.6.2 / ISC: no wait if it is already over, or if the partner is itself new
                // (then nothing we might have handed out before can be unknown to it).
                let partner_fresh = matches!(
                    self.partner.state,
                    Some(ServerState::Recover | ServerState::RecoverDone)
                );
                let to = if until <= now || partner_fresh {
                    ServerState::RecoverDone
                } else {
                    ServerState::RecoverWait
                };
                self.set_state(now, to);
            }
            (ServerState::PotentialConflict, Role::Primary) => {
                self.set_state(now, ServerState::ConflictDone);
            }
            (ServerState::PotentialConflict, Role::Secondary) => {
                self.set_state(now, ServerState::Normal);
            }
            _ => {}
        }
    }

    fn issue_update_request(&mut self, now: u64) {
        if self.link != Link::Up || self.requested.is_some() || self.partner.startup {
            return;
        }
        let Some(partner) = self.partner.state else {
            return;
        };
        let all = match (self.state, self.cfg.role) {
            // ISC always asks for everything in RECOVER, so do we: cheaper than being wrong
            // about what the partner thinks we have.
            (ServerState::Recover, _) if !partner.is_conflict() => true,
            (ServerState::PotentialConflict, Role::Primary) => false,
            (ServerState::PotentialConflict, Role::Secondary)
                if partner == ServerState::ConflictDone =>
            {
                false
            }
            _ => return,
        };
        let xid = self.xid();
        let t = wire_time(now);
        self.requested = Some(xid);
        self.arm_update_request(now);
        let msg = if all { Message::updreqall(t, xid) } else { Message::updreq(t, xid) };
        self.send(now, msg);
    }
}

#[cfg(test)]
mod tests;

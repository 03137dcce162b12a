//! Glue between the failover engine ([`dhcp_failover::Peer`]) and the DHCP server.
//!
//! Sans-IO like both sides it joins: the core's turn ([`crate::core::Core::turn`]) feeds it
//! link events, partner messages and the clock, and it hands back lease changes to commit,
//! state to persist and bytes to write. The turn's contract with it:
//!
//! 1. feed inputs ([`Failover::link_up`], [`Failover::message`], ...), then [`Failover::poll`]
//!    *before* deciding DHCP requests, so the server decides under the current
//!    [`FailoverGate`];
//! 2. commit [`Actions::changes`] together with the DHCP decisions, write
//!    [`Actions::persist`];
//! 3. only then call [`Failover::committed`] with the addresses this server changed: the
//!    partner hears of a binding once it is durable here, and our BNDACKs for the partner's
//!    bindings go out once those are durable (draft-12 §5.2.1);
//! 4. poll again and write [`Actions::link`] to the connection.
//!
//! Which lease changes become BNDUPDs is decided here: every change this server makes to an
//! address of a shared subnet (a DHCP decision, a fast-path renewal, an expiry, a move between
//! the free and backup pools), never one that came from the partner.
//!
//! Beside this file: `binding` (a record as a BNDUPD and back, the persisted state),
//! `balance` (how the free addresses split between the two, and moving them in NORMAL) and
//! `rehome` (records a partner new to their pool must be sent).
use std::{
    collections::{BTreeSet, HashMap},
    net::Ipv4Addr,
    path::PathBuf,
};

use dhcp_failover::{
    BindingStatus, Event, Peer, Role, ServerState,
    engine::{CommitId, Config as PeerConfig, Service},
    mclt::LeaseTimes,
};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::{
    config::{Config, RelationshipId, SubnetId},
    server::{DropReason, FailoverGate, Server},
    store::{Lease, LeaseChange, LeaseState},
};

mod balance;
mod binding;
mod rehome;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use balance::{PoolBalance, Shares, pool_balance};
pub use binding::{binding_of, decode_ranges, decode_state, encode_state, lease_from_binding};
use binding::{free_record, wire};

/// What the link to the partner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCmd {
    /// Open a connection if none is up.
    Connect,
    /// Write an encoded message on the current connection.
    Send(Vec<u8>),
    /// Close the current connection (after what was queued before).
    Close,
}

/// What the core must do after [`Failover::poll`].
#[derive(Debug, Default)]
pub struct Actions {
    /// Lease changes to commit in this turn's transaction.
    pub changes: Vec<LeaseChange>,
    /// Addresses among `changes` that this server changed (the partner must hear of them).
    pub local: Vec<Ipv4Addr>,
    /// Addresses among `changes` whose binding the partner sent (BNDUPD) and this server took:
    /// the lease history's failover updates.
    pub received: Vec<Ipv4Addr>,
    /// The failover state to write, when it changed.
    pub persist: Option<Vec<u8>>,
    /// Bindings of the partner up to here are in `changes`: report it to
    /// [`Failover::committed`] once they are durable.
    pub commit: Option<CommitId>,
    pub link: Vec<LinkCmd>,
    /// The server's [`FailoverGate`] changed: the fast path may have to be switched.
    pub gate_changed: bool,
}

/// Counters for `xdhcp failover status` and metrics.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub updates_queued_total: u64,
    pub acks_received: u64,
    pub rejects_received: u64,
    pub bindings_applied: u64,
    /// DISCOVERs refused because this server's share of a pool was used up while the
    /// partner's share still had addresses (COMMUNICATIONS-INTERRUPTED, or PARTNER-DOWN
    /// before STOS+MCLT).
    pub refused_share_exhausted: u64,
    /// Free addresses this server handed to the partner by pool balancing.
    pub balanced_moved: u64,
}

/// How often the "share used up" warning may repeat per pool: often enough that an operator
/// tailing the log sees it, rarely enough that a flood of DISCOVERs does not bury the log.
pub const SHARE_WARNING_EVERY: u64 = 300;

/// The partner's clock this far from ours (seconds) is worth an operator's attention: the
/// default `max_clock_skew` refuses connections at 60.
pub const CLOCK_OFFSET_WARNING: u64 = 10;

/// Why an operator's PARTNER-DOWN was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartnerDownRefused {
    #[error("the partner is connected and talking to this server (it reports {0}); it is not down")]
    PartnerTalking(&'static str),
    #[error(
        "this server is in {0}: it is still rebuilding its own database or stopping, and may \
         not take over alone"
    )]
    NotNow(&'static str),
}

pub struct Failover {
    rel: RelationshipId,
    peer: Peer,
    cfg: crate::config::Failover,
    shared: Vec<SubnetId>,
    gate: FailoverGate,
    /// When the next pool balancing pass is due, and the interval it backs off with.
    next_balance: u64,
    balance_every: u64,
    counters: Counters,
    /// The control socket, for the command the share warning tells the operator to run.
    control_socket: PathBuf,
    /// The server's pool-exhausted drop count at the last poll: new drops are looked at once.
    exhausted_seen: u64,
    /// Per pool, when the share warning was last logged.
    share_warned: HashMap<SubnetId, u64>,
    /// PARTNER-DOWN's takeover time was announced in the log.
    takeover_announced: bool,
    /// When the clock-offset warning was last logged.
    clock_warned: Option<u64>,
    /// Addresses whose changes the partner has not been told, so that they can still rewind
    /// (draft-12 §5.2.2): the engine hears of them only after COMMUNICATIONS-INTERRUPTED, once
    /// the store no longer says they may rewind. Telling the engine earlier would be telling
    /// the partner, which may happen at any reconnection, before this server has noticed.
    held: BTreeSet<Ipv4Addr>,
    rehome: rehome::Rehome,
}

/// One line per message for `RUST_LOG=debug`: what a packet capture would show an operator
/// first (type, xid, the addresses of binding updates and acks, reject reasons).
fn describe(m: &dhcp_failover::Message) -> String {
    use dhcp_failover::MessageType;
    use std::fmt::Write;
    let mut s = format!("{:?} xid {}", m.kind, m.xid);
    let updates = if m.kind == MessageType::BndUpd { m.binding_updates() } else { Vec::new() };
    let acks = if m.kind == MessageType::BndAck { m.binding_acks() } else { Vec::new() };
    for b in updates {
        match b {
            Ok(b) => {
                let _ = write!(s, " [{} {:?}", b.ip, b.status);
                if let Some(e) = b.lease_expiration {
                    let _ = write!(s, " ends {e}");
                }
                if let Some(p) = b.potential_expiration {
                    let _ = write!(s, " pet {p}");
                }
                s.push(']');
            }
            Err(e) => {
                let _ = write!(s, " [{} incomplete]", e.ip);
            }
        }
    }
    for a in acks {
        match a.reject {
            None => {
                let _ = write!(s, " [{} ok]", a.ip);
            }
            Some(r) => {
                let _ = write!(s, " [{} rejected {}]", a.ip, r.0);
            }
        }
    }
    s
}

fn peer_config(cfg: &Config, rel: RelationshipId, f: &crate::config::Failover) -> PeerConfig {
    let mut pc = match f.role {
        Role::Primary => PeerConfig::primary(&f.name, f.mclt, f.hba),
        Role::Secondary => PeerConfig::secondary(&f.name),
    };
    pc.max_response_delay = f.max_response_delay;
    pc.max_unacked_updates = f.max_unacked_updates;
    pc.auto_partner_down = f.auto_partner_down;
    pc.ranges =
        Some(cfg.shared_in(rel).flat_map(|s| s.pools.iter().map(|p| (p.start, p.end))).collect());
    pc
}

impl Failover {
    /// Relationship `rel` of `cfg`, resumed from its persisted `blob` and the leases in the
    /// store (only those of the subnets it shares are its business).
    #[must_use]
    pub fn new(
        cfg: &Config,
        rel: RelationshipId,
        blob: Option<&[u8]>,
        leases: &[Lease],
        now: u64,
    ) -> Self {
        let f = cfg.failover[rel.index()].clone();
        let persisted = blob.and_then(decode_state);
        if blob.is_some() && persisted.is_none() {
            warn!(
                relationship = %f.name,
                "the stored failover state does not read; recovering from the partner"
            );
        }
        let pc = peer_config(cfg, rel, &f);
        let stored = match (persisted, blob.and_then(decode_ranges)) {
            (None, _) => rehome::Stored::Nothing,
            (Some(_), None) => rehome::Stored::Unnamed,
            (Some(_), Some(r)) => rehome::Stored::Ranges(r),
        };
        let mut rehome = rehome::Rehome::new(pc.ranges.clone().unwrap_or_default(), stored);
        let mut peer = Peer::new(pc, persisted, now);
        let mut held = BTreeSet::new();
        let mut news = Vec::new();
        let shared: Vec<SubnetId> = cfg.shared_in(rel).map(|s| s.id).collect();
        for l in leases {
            let Some(sid) = cfg.subnet_containing(l.address) else { continue };
            if !shared.contains(&sid) || !cfg.subnets[sid.index()].in_pool(l.address) {
                continue;
            }
            if l.rewind_state.is_some() {
                held.insert(l.address);
                continue;
            }
            let vouched = rehome.vouched(l.address);
            let times = LeaseTimes {
                lease_expiration: l.expires_at,
                sent_pet: l.pet_sent,
                acked_pet: if vouched { l.pet_acked } else { 0 },
                received_pet: l.pet_received,
            };
            if !vouched {
                news.push(l.address);
            }
            // What the partner never acknowledged is sent again; it takes a repeat as one.
            peer.restore_binding(binding_of(l), times, l.partner_acked && vouched);
        }
        if !news.is_empty() {
            info!(
                relationship = %f.name,
                records = news.len(),
                "failover: records in pools this relationship's stored state does not name                  (a subnet moved to it, a new name or a wider pool) go to the partner"
            );
        }
        rehome.found(news);
        let gate = FailoverGate::starting(&f);
        Self {
            rel,
            peer,
            cfg: f,
            shared,
            gate,
            next_balance: 0,
            balance_every: 0,
            counters: Counters::default(),
            control_socket: cfg.control_socket.clone(),
            exhausted_seen: 0,
            share_warned: HashMap::new(),
            takeover_announced: false,
            clock_warned: None,
            held,
            rehome,
        }
    }

    /// Which of the config's relationships this is.
    #[must_use]
    pub fn id(&self) -> RelationshipId {
        self.rel
    }

    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    #[must_use]
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    #[must_use]
    pub fn config(&self) -> &crate::config::Failover {
        &self.cfg
    }

    pub fn link_up(&mut self, now: u64) {
        self.peer.handle_connected(now);
    }

    pub fn link_down(&mut self, now: u64) {
        self.peer.handle_disconnected(now);
    }

    pub fn message(&mut self, now: u64, msg: dhcp_failover::Message) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            debug!(relationship = %self.cfg.name, "failover: received {}", describe(&msg));
        }
        self.peer.handle_message(now, msg);
    }

    /// Runs the engine's timers if one is due.
    pub fn tick(&mut self, now: u64) {
        if self.peer.poll_timeout().is_some_and(|t| t <= now) {
            self.peer.handle_timeout(now);
        }
    }

    pub fn command(&mut self, now: u64, c: dhcp_failover::engine::Command) {
        self.peer.handle_command(now, c);
    }

    /// The operator says the partner is down (`xdhcp failover partner-down`). Refused while
    /// the partner is demonstrably up, since two servers in PARTNER-DOWN can hand one address
    /// to two clients, and in states where the engine may not take over. Returns when the
    /// partner's addresses become usable (STOS+MCLT).
    pub fn partner_down(&mut self, now: u64) -> Result<u64, PartnerDownRefused> {
        if self.peer.is_communicating() {
            let p = self.peer.partner_state().map_or("no state yet", ServerState::name);
            return Err(PartnerDownRefused::PartnerTalking(p));
        }
        if self.peer.state() != ServerState::PartnerDown {
            self.peer.handle_command(now, dhcp_failover::engine::Command::PartnerDown);
        }
        if self.peer.state() != ServerState::PartnerDown {
            return Err(PartnerDownRefused::NotNow(self.peer.state().name()));
        }
        warn!(
            relationship = %self.cfg.name,
            "failover: PARTNER-DOWN declared by the operator"
        );
        Ok(self.takeover_time())
    }

    /// In PARTNER-DOWN, when the partner's never-used free addresses become usable: STOS+MCLT.
    #[must_use]
    pub fn takeover_time(&self) -> u64 {
        self.peer.persisted().my_state_since.saturating_add(u64::from(self.peer.mclt()))
    }

    /// New clients were refused for want of an address: if the reason is that the rest of a
    /// pool is the partner's, say so in a form an operator can act on (ISC's bare "peer holds
    /// all free leases" is the question this answers), at most every
    /// [`SHARE_WARNING_EVERY`] seconds per pool.
    /// Draft-12 §5.10: every message carries the sender's clock. Lease times cross the wire as
    /// absolute times, so an offset between the two clocks shifts every lease the partner
    /// hears of; past `max_clock_skew` a new connection is refused. Warn well before that, at
    /// most every [`SHARE_WARNING_EVERY`] seconds while it lasts.
    fn watch_clock(&mut self, now: u64) {
        let Some(offset) = self.peer.partner_clock_offset() else { return };
        if offset.unsigned_abs() < CLOCK_OFFSET_WARNING {
            self.clock_warned = None;
            return;
        }
        if self.clock_warned.is_some_and(|t| now < t + SHARE_WARNING_EVERY) {
            return;
        }
        self.clock_warned = Some(now);
        warn!(
            relationship = %self.cfg.name,
            offset_secs = offset,
            "failover: the partner's clock is {} s {} ours; leases it hears of shift by as \
             much, and a new connection is refused past max_clock_skew: fix NTP on both",
            offset.unsigned_abs(),
            if offset > 0 { "ahead of" } else { "behind" }
        );
    }

    fn watch_shares(&mut self, now: u64, server: &Server) {
        let drops = server.counters().dropped(DropReason::PoolExhausted);
        let new = drops.saturating_sub(self.exhausted_seen);
        self.exhausted_seen = drops;
        let service = self.peer.service();
        let takeover = self.takeover_time();
        let waiting = match service {
            Service::OwnPool => true,
            Service::PartnerDown => now < takeover,
            _ => false,
        };
        if new == 0 || !waiting {
            return;
        }
        let mut counted = false;
        for sid in self.shared.clone() {
            let sh = self.shares(server, sid);
            if sh.ours > 0 || sh.partners == 0 {
                continue;
            }
            if !counted {
                self.counters.refused_share_exhausted += new;
                counted = true;
            }
            if self.share_warned.get(&sid).is_some_and(|t| now < t + SHARE_WARNING_EVERY) {
                continue;
            }
            self.share_warned.insert(sid, now);
            let pool = server.config().subnet(sid).map_or(String::new(), |s| s.prefix.to_string());
            let mine = match self.cfg.role {
                Role::Primary => "the primary's FREE addresses",
                Role::Secondary => "the secondary's BACKUP addresses",
            };
            let refused = self.counters.refused_share_exhausted;
            let socket = self.control_socket.display();
            let mclt = self.peer.mclt();
            let name = &self.cfg.name;
            if service == Service::OwnPool {
                warn!(
                    relationship = %self.cfg.name,
                    pool = %pool,
                    partner_free = sh.partners,
                    refused,
                    "failover: pool {pool}: this server's share ({mine}) is used up and new \
                     clients are refused; the partner holds {} free addresses, which this server \
                     may not use while it only knows that communications are interrupted. If \
                     the partner is really down (not just unreachable), declare it with \
                     `xdhcp failover partner-down --socket {socket} --relationship {name} \
                     --yes-partner-is-down`: \
                     its addresses become usable here MCLT ({mclt} s) after that \
                     (STOS+MCLT). {refused} DISCOVERs refused so far.",
                    sh.partners
                );
            } else {
                warn!(
                    relationship = %self.cfg.name,
                    pool = %pool,
                    partner_free = sh.partners,
                    refused,
                    usable_in = takeover.saturating_sub(now),
                    "failover: pool {pool}: this server's share ({mine}) is used up; in \
                     PARTNER-DOWN the partner's {} free addresses become usable in {} s \
                     (STOS+MCLT, at unix time {takeover}). {refused} DISCOVERs refused so far.",
                    sh.partners,
                    takeover.saturating_sub(now)
                );
            }
        }
    }

    /// Logs once per PARTNER-DOWN when the partner's addresses become usable.
    fn announce_takeover(&mut self, now: u64) {
        if self.peer.state() != ServerState::PartnerDown {
            self.takeover_announced = false;
            return;
        }
        if !self.takeover_announced && now >= self.takeover_time() {
            self.takeover_announced = true;
            info!(
                relationship = %self.cfg.name,
                "failover: PARTNER-DOWN for MCLT ({} s): the partner's free addresses are usable \
                 now, and expired or released ones as each one's own MCLT passes",
                self.peer.mclt()
            );
        }
    }

    /// Whether `a` is an address of a shared pool.
    fn shared_pool(&self, server: &Server, a: Ipv4Addr) -> bool {
        let cfg = server.config();
        cfg.subnet_containing(a)
            .is_some_and(|sid| self.shared.contains(&sid) && cfg.subnets[sid.index()].in_pool(a))
    }

    /// Acts on everything the engine has to say; see the module doc for what the caller does
    /// with `out`.
    pub fn poll(&mut self, now: u64, server: &mut Server, out: &mut Actions) {
        // Each event is handled once and the engine produces new ones only on input, so this
        // drains; the bound is a guard against a bug, not a limit on real traffic.
        for _ in 0..1_000_000 {
            let Some(ev) = self.peer.poll_event() else { break };
            self.on_event(now, server, ev, out);
        }
        let persisted = self.peer.persisted();
        self.rehome.poll(server, &persisted, &mut out.changes, &mut out.persist);
        self.release_held(now, server, out);
        self.update_gate(server, out);
        self.watch_shares(now, server);
        self.watch_clock(now);
        self.announce_takeover(now);
        self.balance(now, server, out);
        for _ in 0..1_000_000 {
            let Some(msg) = self.peer.poll_transmit() else { break };
            if tracing::enabled!(tracing::Level::DEBUG) {
                debug!(relationship = %self.cfg.name, "failover: sending {}", describe(&msg));
            }
            match dhcp_failover::encode(&msg) {
                Ok(bytes) => out.link.push(LinkCmd::Send(bytes)),
                // Only our own builders make messages, so this is a bug; dropping the message
                // is recoverable (the partner times out and resyncs), a panic is not.
                Err(e) => warn!("failover: cannot encode our {:?}: {e}", msg.kind),
            }
        }
    }

    #[expect(clippy::too_many_lines, reason = "one arm per engine event, each short")]
    fn on_event(&mut self, now: u64, server: &mut Server, ev: Event, out: &mut Actions) {
        let name = &self.cfg.name;
        match ev {
            Event::StateChanged { from, to } => {
                info!(relationship = %name, "failover: I move from {from:?} to {to:?}");
                if to == ServerState::Normal {
                    self.next_balance = now;
                    self.balance_every = 0;
                }
                if to == ServerState::CommunicationsInterrupted {
                    // §9.9.1 asks for an alarm; what happens next depends on the operator.
                    let auto = self.cfg.auto_partner_down.map_or_else(
                        || "auto-partner-down is off".to_owned(),
                        |s| format!("auto-partner-down in {s} s"),
                    );
                    warn!(
                        relationship = %name,
                        "failover: cannot reach the partner; serving new clients from this \
                         server's own share only, renewing everyone within MCLT ({auto})"
                    );
                }
                if to == ServerState::PartnerDown {
                    let at = now.saturating_add(u64::from(self.peer.mclt()));
                    warn!(
                        relationship = %name,
                        "failover: PARTNER-DOWN (from {from:?}): the partner's addresses become \
                         usable at unix time {at} (STOS+MCLT, in {} s)",
                        self.peer.mclt()
                    );
                }
            }
            Event::PartnerState { state, startup, .. } => {
                info!(relationship = %name, startup, "failover: partner is in {state:?}");
            }
            Event::Communications { ok } => {
                info!(relationship = %name, "failover: communications {}", if ok { "OK" } else { "lost" });
                // ISC acknowledges once half of *our* max-unacked-updates are pending, or
                // after 2 s; we never have more in flight than *its* value. Mismatched, the
                // updates trickle at one window per 2 s (5 a second with dhcpd's usual 10).
                let theirs = self.peer.partner_window();
                if ok && self.cfg.max_unacked_updates > theirs.saturating_mul(2) {
                    warn!(
                        relationship = %name,
                        ours = self.cfg.max_unacked_updates,
                        theirs,
                        "failover: the partner takes {theirs} unacknowledged updates and we \
                         advertise {}: a partner that acknowledges in batches (ISC dhcpd) \
                         will answer ours only every 2 s; set max_unacked_updates to the \
                         partner's value",
                        self.cfg.max_unacked_updates
                    );
                }
            }
            Event::Persist(p) => out.persist = Some(self.rehome.encode(&p)),
            Event::ApplyBinding { binding, commit } => {
                out.commit = Some(commit);
                let cfg = server.config();
                // The engine takes only addresses of this relationship's pools (it is told
                // them); a subnet of another relationship is never written from this partner.
                let Some(sid) = cfg.subnet_containing(binding.ip) else { return };
                if !self.shared_pool(server, binding.ip) {
                    return;
                }
                // A binding we took from our own free share while cut off, which the engine
                // has not heard of yet, against the partner's word that the address is free:
                // that is all the partner ever knew of it, and our binding goes out next.
                let partner_free =
                    matches!(binding.status, BindingStatus::Free | BindingStatus::Backup);
                if partner_free
                    && self.held.contains(&binding.ip)
                    && server.lease(binding.ip).is_some_and(|l| {
                        l.state == LeaseState::Active
                            && matches!(l.rewind_state, Some(LeaseState::Free | LeaseState::Backup))
                    })
                {
                    return;
                }
                let mut l = lease_from_binding(server.lease(binding.ip), &binding, sid.0, now);
                // §5.11: the server returning the BNDACK for an EXPIRED, RELEASED or RESET
                // address sets it FREE as part of processing the update; the partner does the
                // same on our BNDACK, so neither tells the other. An update of ours that
                // crossed this one is refused by the partner if it is the primary (ISC dhcpd
                // and xdhcp alike); were we the primary, the engine would have refused theirs.
                if matches!(
                    binding.status,
                    BindingStatus::Expired | BindingStatus::Released | BindingStatus::Reset
                ) {
                    free_record(&mut l, now);
                }
                // We kept a later end of our client's lease than the partner's: the engine and
                // the partner must judge later updates against ours.
                let kept_ours = l.state == LeaseState::Active
                    && binding.lease_expiration.is_some_and(|e| u64::from(e) < l.expires_at);
                if kept_ours {
                    out.local.push(binding.ip);
                }
                out.changes.push(server.put_failover_record(now, l));
                out.received.push(binding.ip);
                self.counters.bindings_applied += 1;
            }
            Event::BindingAcked { ip, status, acked_pet, latest } => {
                self.counters.acks_received += 1;
                if let Some(c) = server.failover_acked(ip, acked_pet.map(u64::from), latest) {
                    out.changes.push(c);
                }
                // §5.11: upon the BNDACK of an EXPIRED, RELEASED or RESET update, the server
                // that sent it sets the address FREE, in either role; the partner did so when
                // it acknowledged (ISC dhcpd too, both ways), so neither sends a FREE.
                let freed = matches!(
                    status,
                    BindingStatus::Expired | BindingStatus::Released | BindingStatus::Reset
                );
                if freed
                    && let Some(l) = server.lease(ip)
                    && BindingStatus::from(l.state) == status
                {
                    let mut f = l.clone();
                    free_record(&mut f, now);
                    out.changes.push(server.put_failover_record(now, f));
                }
            }
            Event::BindingRejected { ip, reason, message } => {
                self.counters.rejects_received += 1;
                warn!(
                    relationship = %name,
                    "failover: partner rejected our update for {ip}: reason {} ({})",
                    reason.0,
                    String::from_utf8_lossy(&message)
                );
            }
            Event::PoolRequested { xid } => {
                // The partner is short: balance now instead of at the next pass. Outside
                // NORMAL nothing moves and the answer is an honest 0.
                let run = self.balance_pools(now, server, out);
                // A partner short for good (both shares used up) asks at every balancing
                // interval: only a POOLREQ that moved something is news for the log.
                if run.moved > 0 {
                    info!(
                        relationship = %self.cfg.name,
                        moved = run.moved,
                        "failover: the partner asked for free addresses (POOLREQ)"
                    );
                } else {
                    debug!(
                        relationship = %self.cfg.name,
                        "failover: the partner asked for free addresses (POOLREQ); none to give"
                    );
                }
                self.peer.handle_pool_response(now, xid, wire(run.moved));
            }
            Event::PoolResponse { transferred } if transferred > 0 => {
                info!(relationship = %name, transferred, "failover: pool response");
            }
            Event::PoolResponse { .. } => {
                debug!(relationship = %name, "failover: pool response, nothing transferred");
            }
            Event::Connect => out.link.push(LinkCmd::Connect),
            Event::Close { reason, message } => {
                info!(relationship = %name, "failover: closing the connection: {message} (reason {})", reason.0);
                out.link.push(LinkCmd::Close);
            }
            Event::PartnerDisconnected { reason, message } => {
                warn!(
                    relationship = %name,
                    "failover: partner ended the connection: {} (reason {:?})",
                    String::from_utf8_lossy(&message),
                    reason.map(|r| r.0)
                );
            }
        }
    }

    fn update_gate(&mut self, server: &mut Server, out: &mut Actions) {
        let gate = FailoverGate {
            role: self.cfg.role,
            state: self.peer.state(),
            service: self.peer.service(),
            mclt: self.peer.mclt(),
            hba: self.peer.hba(),
            load_balance_max_seconds: self.cfg.load_balance_max_seconds,
            since: self.peer.persisted().my_state_since,
        };
        if gate != self.gate {
            self.gate = gate;
            server.set_failover_gate(self.rel, gate);
            out.gate_changed = true;
        }
    }

    /// The gate the server decides under.
    #[must_use]
    pub fn gate(&self) -> FailoverGate {
        self.gate
    }

    /// Whether the XDP fast path may answer: not in states where this server must be silent.
    #[must_use]
    pub fn fast_path_allowed(&self) -> bool {
        self.gate.service != Service::NotResponding
    }

    /// Out of COMMUNICATIONS-INTERRUPTED the partner is about to hear of every binding, so none
    /// may rewind any more: the store must say so (this turn's changes) before the engine
    /// gets them (in [`Failover::committed`]), or a restart could rewind one the partner knows.
    fn release_held(&mut self, now: u64, server: &mut Server, out: &mut Actions) {
        if self.held.is_empty() || self.peer.state() == ServerState::CommunicationsInterrupted {
            return;
        }
        for a in std::mem::take(&mut self.held) {
            let Some(l) = server.lease(a) else { continue };
            if l.rewind_state.is_none() {
                continue;
            }
            let mut l = l.clone();
            l.rewind_state = None;
            l.rewind_expiry = None;
            out.changes.push(server.put_failover_record(now, l));
            out.local.push(a);
        }
    }

    /// Bindings this server changed that the partner will not hear of while they may rewind.
    #[must_use]
    pub fn updates_held(&self) -> usize {
        self.held.len()
    }

    /// The changes of this turn are durable: acknowledge the partner's bindings and tell it
    /// about ours. `local` are the addresses this server changed (DHCP decisions, fast-path
    /// renewals, expiries, and [`Actions::local`]).
    pub fn committed(
        &mut self,
        now: u64,
        server: &Server,
        commit: Option<CommitId>,
        local: impl IntoIterator<Item = Ipv4Addr>,
    ) {
        if let Some(c) = commit {
            self.peer.handle_committed(now, c);
        }
        self.rehome.committed(server);
        let addrs: BTreeSet<Ipv4Addr> = local.into_iter().collect();
        for a in addrs {
            if !self.shared_pool(server, a) {
                continue;
            }
            let ours_free = match self.cfg.role {
                Role::Primary => LeaseState::Free,
                Role::Secondary => LeaseState::Backup,
            };
            if let Some(l) = server.lease(a) {
                if l.rewind_state.is_some() {
                    self.held.insert(a);
                    continue;
                }
                // Rewound to our free share: the partner already believes exactly that.
                if self.held.remove(&a) && l.state == ours_free {
                    continue;
                }
                self.peer.handle_local_binding(now, binding_of(l));
                self.counters.updates_queued_total += 1;
            }
        }
    }

    /// `xdhcp failover status`: both states, STOS, MCLT, the update window and who owns what.
    #[must_use]
    pub fn status(&self, server: &Server, now: u64) -> Value {
        let p = self.peer.persisted();
        let pools: Vec<Value> = self
            .shared
            .iter()
            .filter_map(|sid| {
                let s = server.config().subnet(*sid)?;
                let c = server.pool_counts(*sid);
                let n = |st: LeaseState| c.get(&st).copied().unwrap_or(0);
                let sh = self.shares_in(&c);
                Some(json!({
                    "share_ours_free": sh.ours,
                    "share_partner_free": sh.partners,
                    "subnet": s.prefix.to_string(),
                    "free_primary": n(LeaseState::Free),
                    "backup_secondary": n(LeaseState::Backup),
                    "active": n(LeaseState::Active),
                    "expired": n(LeaseState::Expired),
                    "released": n(LeaseState::Released),
                    "abandoned": n(LeaseState::Abandoned),
                    "reset": n(LeaseState::Reset),
                }))
            })
            .collect();
        json!({
            "relationship": self.cfg.name,
            "role": match self.cfg.role { Role::Primary => "primary", Role::Secondary => "secondary" },
            "peer": format!("{}:{}", self.cfg.peer_address, self.cfg.peer_port),
            "communicating": self.peer.is_communicating(),
            "my_state": self.peer.state().name(),
            "my_stos": p.my_state_since,
            "my_state_for_secs": now.saturating_sub(p.my_state_since),
            "partner_state": p.partner_state.map(ServerState::name),
            "partner_stos": p.partner_state_since,
            "partner_clock_offset_secs": self.peer.partner_clock_offset(),
            "refused_for_clock_skew": self.peer.refused_for_skew(),
            "service": format!("{:?}", self.peer.service()),
            "mclt": self.peer.mclt(),
            "updates_unacked": self.peer.updates_in_flight(),
            "updates_queued": self.peer.updates_queued(),
            "updates_held_rewindable": self.held.len(),
            "updates_sent_total": self.counters.updates_queued_total,
            "acks_received_total": self.counters.acks_received,
            "rejects_received_total": self.counters.rejects_received,
            "bindings_applied_total": self.counters.bindings_applied,
            "refused_share_exhausted_total": self.counters.refused_share_exhausted,
            "balanced_moved_total": self.counters.balanced_moved,
            "next_balance_at": (self.peer.state() == ServerState::Normal).then_some(self.next_balance),
            "partner_addresses_usable_at": (self.peer.state() == ServerState::PartnerDown)
                .then(|| self.takeover_time()),
            "partner_vendor_class": String::from_utf8_lossy(self.peer.partner_vendor_class()),
            "fast_path_allowed": self.fast_path_allowed(),
            "pools": pools,
        })
    }
}

//! Two engines talking over a simulated link, in simulated time (after quinn-proto's `Pair`).
//!
//! Every message really goes through `encode`, a [`FrameDecoder`] and `decode`, so these
//! scenarios exercise the codec too. The link delivers in order after `latency` seconds, can be
//! partitioned (everything silently lost, no new connections: what a dead switch looks like to
//! TCP), and can drop chosen messages.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use super::*;
use crate::framing::FrameDecoder;
use crate::mclt;
use crate::options::{BindingStatus, HwAddr};
use crate::wire::{self, MessageType};

const T0: u64 = 1_795_574_681;
const MCLT: u32 = 60;

/// The lease store and log of one side.
struct Side {
    peer: Peer,
    name: &'static str,
    /// What the store holds after applying the partner's updates.
    store: HashMap<Ipv4Addr, BindingUpdate>,
    persisted: Option<PersistedState>,
    events: Vec<Event>,
    sent: Vec<Message>,
    wants_connect: bool,
    /// A slow store: received bindings are applied but not yet durable, so no BNDACK.
    hold_commits: bool,
    uncommitted: Option<CommitId>,
    decoder: FrameDecoder,
}

impl Side {
    fn new(peer: Peer, name: &'static str) -> Self {
        Self {
            peer,
            name,
            store: HashMap::new(),
            persisted: None,
            events: Vec::new(),
            sent: Vec::new(),
            wants_connect: false,
            hold_commits: false,
            uncommitted: None,
            decoder: FrameDecoder::new(),
        }
    }

    fn states(&self) -> Vec<ServerState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }

    fn sent_count(&self, kind: MessageType) -> usize {
        self.sent.iter().filter(|m| m.kind == kind).count()
    }

    fn commit(&mut self, now: u64) {
        if let Some(id) = self.uncommitted.take() {
            self.peer.handle_committed(now, id);
        }
    }
}

enum Delivery {
    Bytes(Vec<u8>),
    Closed,
}

struct InTransit {
    at: u64,
    to_secondary: bool,
    connection: u64,
    what: Delivery,
}

struct Pair {
    time: u64,
    latency: u64,
    primary: Side,
    secondary: Side,
    connected: bool,
    connection: u64,
    partitioned: bool,
    /// Drop the next messages of these types, whichever side sends them.
    drop_kinds: Vec<MessageType>,
    link: VecDeque<InTransit>,
    /// Most BNDUPDs the primary ever had unacknowledged.
    primary_peak_in_flight: usize,
}

fn primary_config() -> Config {
    Config {
        max_response_delay: 30,
        max_unacked_updates: 10,
        ..Config::primary("f", MCLT, Hba::split(128))
    }
}

fn secondary_config() -> Config {
    Config { max_response_delay: 30, max_unacked_updates: 10, ..Config::secondary("f") }
}

impl Pair {
    fn new(primary: Option<PersistedState>, secondary: Option<PersistedState>) -> Self {
        Self::with(primary_config(), primary, secondary_config(), secondary)
    }

    fn with(
        pcfg: Config,
        primary: Option<PersistedState>,
        scfg: Config,
        secondary: Option<PersistedState>,
    ) -> Self {
        let mut pair = Self {
            time: T0,
            latency: 0,
            primary: Side::new(Peer::new(pcfg, primary, T0), "primary"),
            secondary: Side::new(Peer::new(scfg, secondary, T0), "secondary"),
            connected: false,
            connection: 0,
            partitioned: false,
            drop_kinds: Vec::new(),
            link: VecDeque::new(),
            primary_peak_in_flight: 0,
        };
        pair.drain();
        pair
    }

    fn side(&mut self, secondary: bool) -> &mut Side {
        if secondary { &mut self.secondary } else { &mut self.primary }
    }

    /// Collects every output of both sides until neither has anything left.
    fn drain(&mut self) {
        loop {
            let mut progress = false;
            for from_secondary in [false, true] {
                progress |= self.drain_side(from_secondary);
            }
            if !self.connected
                && !self.partitioned
                && (self.primary.wants_connect || self.secondary.wants_connect)
            {
                self.connected = true;
                self.connection += 1;
                self.primary.wants_connect = false;
                self.secondary.wants_connect = false;
                self.primary.peer.handle_connected(self.time);
                self.secondary.peer.handle_connected(self.time);
                progress = true;
            }
            self.primary_peak_in_flight =
                self.primary_peak_in_flight.max(self.primary.peer.updates_in_flight());
            if !progress {
                break;
            }
        }
    }

    fn drain_side(&mut self, from_secondary: bool) -> bool {
        let now = self.time;
        let mut progress = false;
        let mut closed = false;
        {
            let side = self.side(from_secondary);
            while let Some(ev) = side.peer.poll_event() {
                progress = true;
                match &ev {
                    Event::Connect => side.wants_connect = true,
                    Event::Close { .. } => closed = true,
                    Event::Persist(p) => side.persisted = Some(*p),
                    Event::ApplyBinding { binding, commit } => {
                        side.store.insert(binding.ip, binding.clone());
                        side.uncommitted = Some(*commit);
                    }
                    _ => {}
                }
                side.events.push(ev);
            }
            if !side.hold_commits && side.uncommitted.is_some() {
                side.commit(now);
                progress = true;
            }
        }
        let mut outgoing = Vec::new();
        while let Some(msg) = self.side(from_secondary).peer.poll_transmit() {
            outgoing.push(msg);
        }
        for msg in outgoing {
            progress = true;
            let bytes = wire::encode(&msg).expect("engine messages encode");
            let dropped = match self.drop_kinds.iter().position(|k| *k == msg.kind) {
                Some(i) => {
                    self.drop_kinds.remove(i);
                    true
                }
                None => false,
            };
            self.side(from_secondary).sent.push(msg);
            if self.connected && !self.partitioned && !dropped {
                self.link.push_back(InTransit {
                    at: self.time + self.latency,
                    to_secondary: !from_secondary,
                    connection: self.connection,
                    what: Delivery::Bytes(bytes),
                });
            }
        }
        if closed && self.connected {
            // TCP tells the other end (unless the network is gone, then only its own timer can).
            if !self.partitioned {
                self.link.push_back(InTransit {
                    at: self.time + self.latency,
                    to_secondary: !from_secondary,
                    connection: self.connection,
                    what: Delivery::Closed,
                });
            }
            self.connected = false;
        }
        progress
    }

    fn next_wakeup(&self) -> Option<u64> {
        [
            self.link.front().map(|t| t.at),
            self.primary.peer.poll_timeout(),
            self.secondary.peer.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances simulated time to the next event (bounded by `limit`) and handles it.
    fn step(&mut self, limit: u64) -> bool {
        let Some(at) = self.next_wakeup().filter(|at| *at <= limit) else {
            return false;
        };
        self.time = self.time.max(at);
        let now = self.time;
        while self.link.front().is_some_and(|t| t.at <= now) {
            let Some(t) = self.link.pop_front() else {
                break;
            };
            let stale = t.connection != self.connection;
            let side = self.side(t.to_secondary);
            match t.what {
                Delivery::Bytes(bytes) if !stale => {
                    side.decoder.push(&bytes);
                    while let Ok(Some(msg)) = side.decoder.pop_message() {
                        side.peer.handle_message(now, msg);
                    }
                }
                Delivery::Closed if !stale => {
                    side.decoder = FrameDecoder::new();
                    side.peer.handle_disconnected(now);
                }
                _ => {}
            }
            self.drain();
        }
        for secondary in [false, true] {
            if self.side(secondary).peer.poll_timeout().is_some_and(|t| t <= now) {
                self.side(secondary).peer.handle_timeout(now);
            }
        }
        self.drain();
        true
    }

    /// Runs for `secs` seconds of simulated time.
    fn run(&mut self, secs: u64) {
        let end = self.time + secs;
        for _ in 0..100_000 {
            if !self.step(end) {
                self.time = end;
                return;
            }
        }
        panic!("the pair did not settle: livelock?");
    }

    /// Steps until `done` holds; returns the time it first did.
    fn run_until(&mut self, done: impl Fn(&Self) -> bool) -> u64 {
        for _ in 0..100_000 {
            if done(self) {
                return self.time;
            }
            assert!(self.step(u64::MAX), "nothing left to happen");
        }
        panic!("condition never reached");
    }

    fn partition(&mut self) {
        self.partitioned = true;
        self.link.clear();
    }

    fn heal(&mut self) {
        self.partitioned = false;
        // The old connection died silently; whatever its owners believe, it carries nothing.
        if self.connected {
            self.connected = false;
        }
        self.drain();
    }

    fn both(&self) -> (ServerState, ServerState) {
        (self.primary.peer.state(), self.secondary.peer.state())
    }
}

fn active(last: u8, now: u64) -> BindingUpdate {
    let desired = 600;
    let actual = mclt::max_client_lease(now, 0, MCLT, desired);
    BindingUpdate {
        client_id: Some(vec![1, 0, 0x0c, 1, 2, 3, last]),
        chaddr: Some(HwAddr::ethernet([0, 0x0c, 1, 2, 3, last])),
        lease_expiration: Some(wire_time(now + u64::from(actual))),
        potential_expiration: Some(wire_time(mclt::potential_expiration(now, desired, actual))),
        start_time_of_state: Some(wire_time(now)),
        client_last_transaction: Some(wire_time(now)),
        ..BindingUpdate::new(Ipv4Addr::new(10, 40, 0, last), BindingStatus::Active)
    }
}

fn persisted(state: ServerState, since: u64) -> PersistedState {
    PersistedState {
        my_state: state,
        my_state_since: since,
        partner_state: None,
        partner_state_since: 0,
        mclt: MCLT,
        hba: Hba::split(128),
    }
}

fn normal_pair() -> Pair {
    let mut pair = Pair::new(None, None);
    pair.run(30);
    assert_eq!(pair.both(), (ServerState::Normal, ServerState::Normal));
    pair
}

// ---- scenarios ------------------------------------------------------------------------------

#[test]
fn startup_reaches_normal_on_both() {
    use ServerState::*;
    let mut pair = Pair::new(None, None);
    pair.run(30);
    assert_eq!(pair.both(), (Normal, Normal));
    // Two servers without a database each recover from the other; since the partner is new
    // too, neither waits out the MCLT in RECOVER-WAIT.
    for side in [&pair.primary, &pair.secondary] {
        assert_eq!(side.states(), [Recover, RecoverDone, Normal], "{}", side.name);
        assert_eq!(side.sent_count(MessageType::UpdReqAll), 1, "{}", side.name);
        assert_eq!(side.sent_count(MessageType::UpdDone), 1, "{}", side.name);
        assert_eq!(side.persisted.map(|p| p.my_state), Some(Normal));
        assert!(side.peer.is_communicating());
    }
    // Only the primary connects at the protocol level; the secondary learned the relationship's
    // parameters from its CONNECT and must persist them.
    assert_eq!(pair.primary.sent_count(MessageType::Connect), 1);
    assert_eq!(pair.secondary.sent_count(MessageType::ConnectAck), 1);
    assert_eq!(pair.secondary.peer.mclt(), MCLT);
    assert_eq!(pair.secondary.persisted.map(|p| p.hba), Some(Hba::split(128)));
    // The first STATE each sends carries the STARTUP flag with the saved state.
    let first_state = &pair.primary.sent[1];
    assert_eq!(first_state.kind, MessageType::State);
    assert_eq!(first_state.server_flags(), Some(SERVER_FLAG_STARTUP));
    assert_eq!(first_state.server_state(), Some(Recover));
    assert_eq!(pair.primary.peer.service(), Service::LoadBalanced);
}

#[test]
fn binding_replicated_both_ways_and_acked() {
    let mut pair = normal_pair();
    let now = pair.time;
    let from_primary = active(10, now);
    let from_secondary = active(200, now);
    pair.primary.peer.handle_local_binding(now, from_primary.clone());
    pair.secondary.peer.handle_local_binding(now, from_secondary.clone());
    pair.drain();
    pair.run(1);

    assert_eq!(pair.secondary.store.get(&from_primary.ip), Some(&from_primary));
    assert_eq!(pair.primary.store.get(&from_secondary.ip), Some(&from_secondary));
    for (side, b) in [(&pair.primary, &from_primary), (&pair.secondary, &from_secondary)] {
        let acked = side.events.iter().find_map(|e| match e {
            Event::BindingAcked { ip, acked_pet, .. } if *ip == b.ip => Some(*acked_pet),
            _ => None,
        });
        assert_eq!(acked, Some(b.potential_expiration), "{}", side.name);
        let times = side.peer.lease_times(b.ip).unwrap();
        assert_eq!(times.acked_pet, u64::from(b.potential_expiration.unwrap()));
        assert_eq!(side.peer.updates_in_flight(), 0);
    }
    // The receiver remembers the PET it acked: it may renew the client up to PET + MCLT.
    let times = pair.secondary.peer.lease_times(from_primary.ip).unwrap();
    assert_eq!(times.received_pet, u64::from(from_primary.potential_expiration.unwrap()));
    // A received binding is never echoed back.
    assert_eq!(pair.secondary.sent_count(MessageType::BndUpd), 1);
}

#[test]
fn partner_silent_beyond_max_response_delay_interrupts_communications() {
    use ServerState::CommunicationsInterrupted as Ci;
    let mut pair = normal_pair();
    pair.partition();
    // Keepalives keep the receive timers fresh until the partition; half the delay later
    // nothing has fired yet.
    pair.run(15);
    assert_eq!(pair.both(), (ServerState::Normal, ServerState::Normal));
    pair.run(16);
    assert_eq!(pair.both(), (Ci, Ci));
    for side in [&pair.primary, &pair.secondary] {
        assert!(side.events.iter().any(|e| matches!(
            e,
            Event::Close { reason, .. } if *reason == RejectReason::NO_TRAFFIC
        )));
        assert!(!side.peer.is_communicating());
        // Interrupted servers keep serving, from their own pools only.
        assert_eq!(side.peer.service(), Service::OwnPool);
    }
    // Without a safe period configured nobody goes PARTNER-DOWN on its own (the seed's
    // "peer holds all free leases" situation is the operator's call).
    pair.run(3600);
    assert_eq!(pair.both(), (Ci, Ci));
}

#[test]
fn reconnect_returns_to_normal_and_flushes_what_changed_meanwhile() {
    let mut pair = normal_pair();
    pair.partition();
    pair.run(40);
    let now = pair.time;
    let during = active(20, now);
    pair.primary.peer.handle_local_binding(now, during.clone());
    pair.drain();
    assert_eq!(pair.primary.peer.updates_in_flight(), 0, "nothing is sent while interrupted");

    pair.heal();
    pair.run(10);
    assert_eq!(pair.both(), (ServerState::Normal, ServerState::Normal));
    assert_eq!(pair.secondary.store.get(&during.ip), Some(&during));
    assert!(pair.primary.peer.lease_times(during.ip).unwrap().acked_pet > 0);
    assert_eq!(pair.primary.sent_count(MessageType::Connect), 2);
}

#[test]
fn window_of_max_unacked_updates_is_respected() {
    let mut pair = normal_pair();
    pair.secondary.hold_commits = true;
    let now = pair.time;
    for last in 100..125 {
        pair.primary.peer.handle_local_binding(now, active(last, now));
    }
    pair.drain();
    pair.run(1);
    // The secondary advertised max-unacked-bndupd 10 and its store has not committed yet.
    assert_eq!(pair.primary.peer.updates_in_flight(), 10);
    assert_eq!(pair.primary.peer.updates_queued(), 15);
    assert_eq!(pair.secondary.store.len(), 10);
    assert_eq!(pair.secondary.sent_count(MessageType::BndAck), 0, "no ack before commit");

    pair.secondary.hold_commits = false;
    pair.secondary.commit(pair.time);
    pair.drain();
    pair.run(1);
    assert_eq!(pair.secondary.store.len(), 25);
    assert_eq!(pair.primary.peer.updates_in_flight(), 0);
    assert_eq!(pair.primary_peak_in_flight, 10);
}

#[test]
fn keepalives_flow_at_a_third_of_the_partners_receive_timer() {
    let mut pair = normal_pair();
    let before = pair.primary.sent_count(MessageType::Contact);
    pair.run(300);
    let contacts = pair.primary.sent_count(MessageType::Contact) - before;
    // receive-timer 30 → a CONTACT every 10 s of silence.
    assert!((29..=31).contains(&contacts), "{contacts}");
    assert_eq!(pair.both(), (ServerState::Normal, ServerState::Normal));
}

#[test]
fn a_restarted_server_without_its_partner_resumes_interrupted_after_startup() {
    use ServerState::CommunicationsInterrupted as Ci;
    let saved = persisted(ServerState::Normal, T0 - 3600);
    let mut pair = Pair::new(Some(saved), Some(saved));
    pair.partition();
    pair.run(14);
    assert_eq!(pair.primary.peer.state(), ServerState::Startup);
    assert_eq!(pair.primary.peer.service(), Service::NotResponding);
    pair.run(2);
    assert_eq!(pair.both(), (Ci, Ci));
}

#[test]
fn a_partner_down_survivor_that_restarts_keeps_its_stos_and_takes_over_no_later() {
    let since = T0 - 50;
    let mut pair = Pair::new(Some(persisted(ServerState::PartnerDown, since)), None);
    pair.partition();
    pair.run(20);
    assert_eq!(pair.primary.peer.state(), ServerState::PartnerDown);
    assert_eq!(pair.primary.peer.persisted().my_state_since, since, "no fresh STOS");
}

#[test]
fn a_restarted_server_in_communications_interrupted_keeps_counting_to_auto_partner_down() {
    let cfg = Config { auto_partner_down: Some(120), ..primary_config() };
    let saved = persisted(ServerState::CommunicationsInterrupted, T0 - 100);
    let mut pair = Pair::with(cfg, Some(saved), secondary_config(), None);
    pair.partition();
    // 100 s of it before the restart: PARTNER-DOWN 20 s after, not 120.
    let at = pair.run_until(|p| p.primary.peer.state() == ServerState::PartnerDown);
    assert!(at <= T0 + 21, "took over at {}", at - T0);
}

#[test]
fn a_lost_upddone_costs_a_reconnection_not_a_server_stuck_in_recover() {
    let mut pair = Pair::new(Some(persisted(ServerState::Normal, T0 - 3600)), None);
    // The secondary lost its disk and asks for everything; the UPDDONE that ends the answer
    // never arrives, while CONTACTs keep the connection up.
    pair.drop_kinds.push(MessageType::UpdDone);
    let wait = 2 * u64::from(secondary_config().max_response_delay);
    pair.run(wait / 2);
    assert_eq!(pair.secondary.peer.state(), ServerState::Recover);
    let at = pair.run_until(|p| p.both() == (ServerState::Normal, ServerState::Normal));
    assert!(at <= T0 + wait + 120, "NORMAL only at +{}", at - T0);
    assert!(pair.secondary.sent_count(MessageType::UpdReqAll) >= 2, "asked again");
}

#[test]
fn a_new_server_alone_stays_in_recover_and_serves_nobody() {
    let mut pair = Pair::new(None, None);
    pair.partition();
    pair.run(600);
    assert_eq!(pair.both(), (ServerState::Recover, ServerState::Recover));
    assert_eq!(pair.primary.peer.service(), Service::NotResponding);
    // It keeps trying to connect.
    let connects = pair.primary.events.iter().filter(|e| matches!(e, Event::Connect)).count();
    assert!(connects >= 2);
}

#[test]
fn the_safe_period_moves_an_interrupted_server_to_partner_down() {
    let pcfg = Config { auto_partner_down: Some(120), ..primary_config() };
    let mut pair = Pair::with(pcfg, None, secondary_config(), None);
    pair.run(30);
    pair.partition();
    let interrupted_at =
        pair.run_until(|p| p.primary.peer.state() == ServerState::CommunicationsInterrupted);
    pair.run(interrupted_at + 119 - pair.time);
    assert_eq!(pair.primary.peer.state(), ServerState::CommunicationsInterrupted);
    pair.run(1);
    assert_eq!(pair.primary.peer.state(), ServerState::PartnerDown);
    assert_eq!(pair.primary.peer.service(), Service::PartnerDown);
}

#[test]
fn a_server_back_from_the_dead_recovers_from_a_partner_down_partner() {
    use ServerState::*;
    // The secondary went PARTNER-DOWN while the primary was away; the primary lost its disk.
    let mut pair = Pair::new(None, Some(persisted(ServerState::PartnerDown, T0 - 600)));
    let kept = active(30, T0 - 300);
    pair.secondary.peer.restore_binding(kept.clone(), LeaseTimes::default(), false);
    pair.run(5);
    // The primary got everything but, its partner knowing it from before (it would not be
    // PARTNER-DOWN otherwise), must wait MCLT in RECOVER-WAIT for clients it might have served
    // before its crash.
    assert_eq!(pair.primary.store.get(&kept.ip), Some(&kept));
    assert_eq!(pair.both(), (RecoverWait, PartnerDown));
    assert_eq!(pair.primary.peer.service(), Service::NotResponding);
    pair.run(u64::from(MCLT) - 10);
    assert_eq!(pair.both(), (RecoverWait, PartnerDown));
    pair.run(10);
    assert_eq!(pair.both(), (Normal, Normal));
    assert_eq!(pair.primary.states(), [Recover, RecoverWait, RecoverDone, Normal]);
}

#[test]
fn a_partner_down_server_busy_renewing_still_hands_back_to_its_recovered_partner() {
    use ServerState::*;
    // As above, but the link takes a second each way and the PARTNER-DOWN secondary renews a
    // client every second: whenever it looks, an update of its is unacknowledged.
    let mut pair = Pair::new(None, Some(persisted(PartnerDown, T0 - 600)));
    pair.latency = 1;
    let kept = active(31, T0 - 300);
    pair.secondary.peer.restore_binding(kept.clone(), LeaseTimes::default(), false);
    let done_at = pair.run_until(|p| p.primary.peer.state() == RecoverDone);
    let mut renewed = kept;
    let mut services = Vec::new();
    for _ in 0..120 {
        services.push(pair.secondary.peer.service());
        let now = pair.time;
        renewed = BindingUpdate { client_last_transaction: Some(wire_time(now)), ..renewed };
        pair.secondary.peer.handle_local_binding(now, renewed.clone());
        pair.drain();
        pair.run(1);
        if pair.both() == (Normal, Normal) {
            break;
        }
    }
    assert_eq!(pair.both(), (Normal, Normal), "stalled since {done_at}");
    assert!(pair.time <= done_at + 10, "handed back at {}, ready at {done_at}", pair.time);
    // While it handed back it took new clients only from its own share.
    assert!(services.contains(&Service::OwnPool), "{services:?}");
    assert!(
        !services[services.iter().position(|s| *s == Service::OwnPool).unwrap()..]
            .contains(&Service::PartnerDown)
    );
}

#[test]
fn a_potential_conflict_is_resolved_primary_first() {
    use ServerState::*;
    // Both ran on alone: the primary interrupted, the secondary (wrongly) PARTNER-DOWN.
    let mut pair = Pair::new(
        Some(persisted(ServerState::CommunicationsInterrupted, T0 - 900)),
        Some(persisted(ServerState::PartnerDown, T0 - 900)),
    );
    pair.partition();
    pair.run(20);
    let now = pair.time;
    let on_secondary = active(40, now);
    pair.secondary.peer.handle_local_binding(now, on_secondary.clone());
    pair.heal();
    pair.run(10);
    assert_eq!(pair.both(), (Normal, Normal));
    assert_eq!(
        pair.primary.states(),
        [CommunicationsInterrupted, PotentialConflict, ConflictDone, Normal]
    );
    assert_eq!(pair.secondary.states(), [PartnerDown, PotentialConflict, Normal]);
    // Each side asked the other for what it had missed: the primary first.
    assert_eq!(pair.primary.sent_count(MessageType::UpdReq), 1);
    assert_eq!(pair.secondary.sent_count(MessageType::UpdReq), 1);
    assert_eq!(pair.primary.store.get(&on_secondary.ip), Some(&on_secondary));
}

#[test]
fn a_wrong_relationship_name_is_refused_and_retried_slowly() {
    let mut pair = Pair::with(primary_config(), None, Config::secondary("g"), None);
    pair.run(5);
    let refused = pair.primary.events.iter().find_map(|e| match e {
        Event::PartnerDisconnected { reason, .. } => *reason,
        _ => None,
    });
    assert_eq!(refused, Some(RejectReason::INVALID_PARTNER));
    assert!(!pair.primary.peer.is_communicating());
    pair.run(60);
    assert_eq!(pair.primary.sent_count(MessageType::Connect), 1, "no retry within a minute");
    pair.run(60);
    assert_eq!(pair.primary.sent_count(MessageType::Connect), 2);
}

#[test]
fn pause_and_shutdown_are_announced_to_the_partner() {
    let mut pair = normal_pair();
    let now = pair.time;
    pair.secondary.peer.handle_command(now, Command::Pause);
    pair.drain();
    pair.run(1);
    assert_eq!(pair.primary.peer.state(), ServerState::CommunicationsInterrupted);
    assert_eq!(pair.secondary.peer.state(), ServerState::Paused);
    // The paused server still persists the state to come back to.
    assert_eq!(pair.secondary.persisted.map(|p| p.my_state), Some(ServerState::Normal));

    let mut pair = normal_pair();
    let now = pair.time;
    pair.secondary.peer.handle_command(now, Command::Shutdown);
    pair.drain();
    pair.run(1);
    assert_eq!(pair.primary.peer.state(), ServerState::PartnerDown);
    // The partner took over, so the shut-down server must come back in RECOVER.
    assert_eq!(pair.secondary.persisted.map(|p| p.my_state), Some(ServerState::Recover));
}

#[test]
fn a_lost_bndack_is_made_good_by_the_next_connection() {
    let mut pair = normal_pair();
    pair.drop_kinds.push(MessageType::BndAck);
    let now = pair.time;
    let b = active(50, now);
    pair.primary.peer.handle_local_binding(now, b.clone());
    pair.drain();
    pair.run(5);
    assert_eq!(pair.primary.peer.updates_in_flight(), 1);
    // Break the connection; the update goes out again on the next one.
    pair.partition();
    pair.run(40);
    pair.heal();
    pair.run(10);
    assert_eq!(pair.both(), (ServerState::Normal, ServerState::Normal));
    assert_eq!(pair.primary.peer.updates_in_flight(), 0);
    assert!(pair.primary.peer.lease_times(b.ip).unwrap().acked_pet > 0);
}

// ---- single-engine scripts (the partner's side written out by hand, as ISC sends it) --------

fn script(role: Role) -> Peer {
    let cfg = match role {
        Role::Primary => primary_config(),
        Role::Secondary => secondary_config(),
    };
    let mut p = Peer::new(cfg, None, T0);
    while p.poll_event().is_some() {}
    p
}

fn drain_transmits(p: &mut Peer) -> Vec<Message> {
    std::iter::from_fn(|| p.poll_transmit()).collect()
}

fn isc_connect(time: u32) -> Message {
    Message::connect(
        time,
        0,
        &crate::messages::ConnectInfo {
            relationship: b"f".to_vec(),
            max_unacked: 10,
            receive_timer: 30,
            vendor_class: b"isc-4.4.3-P1".to_vec(),
            mclt: MCLT,
            hba: Hba::split(128).0,
        },
    )
}

#[test]
fn a_connect_from_a_skewed_clock_is_refused() {
    let mut sec = script(Role::Secondary);
    sec.handle_connected(T0);
    sec.handle_message(T0, isc_connect(wire_time(T0 + 61)));
    let out = drain_transmits(&mut sec);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, MessageType::ConnectAck);
    assert_eq!(out[0].reject_reason(), Some(RejectReason::TIME_MISMATCH));
    assert!(!sec.is_communicating());

    let mut sec = script(Role::Secondary);
    sec.handle_connected(T0);
    sec.handle_message(T0, isc_connect(wire_time(T0 + 60)));
    let out = drain_transmits(&mut sec);
    assert_eq!(
        out.iter().map(|m| m.kind).collect::<Vec<_>>(),
        [MessageType::ConnectAck, MessageType::State]
    );
    assert_eq!(out[0].reject_reason(), None);
    assert_eq!(sec.partner_vendor_class(), b"isc-4.4.3-P1");
}

#[test]
fn a_partner_refused_for_its_clock_is_alive_and_not_taken_over_automatically() {
    let cfg = Config { auto_partner_down: Some(100), ..secondary_config() };
    let saved = persisted(ServerState::CommunicationsInterrupted, T0);
    let mut sec = Peer::new(cfg, Some(saved), T0);
    let mut now = T0;
    let mut run_to = |sec: &mut Peer, until: u64| {
        while now < until {
            now += 1;
            sec.handle_timeout(now);
            while sec.poll_event().is_some() {}
            drain_transmits(sec);
        }
    };
    run_to(&mut sec, T0 + 30);
    assert_eq!(sec.state(), ServerState::CommunicationsInterrupted);
    // The primary calls with its clock 90 s ahead: refused, but it is there.
    sec.handle_connected(T0 + 30);
    sec.handle_message(T0 + 30, isc_connect(wire_time(T0 + 120)));
    assert!(sec.refused_for_skew());
    assert_eq!(sec.partner_clock_offset(), Some(90), "the offset is what the message said");
    run_to(&mut sec, T0 + 400);
    assert_eq!(sec.state(), ServerState::CommunicationsInterrupted, "not PARTNER-DOWN");
}

#[test]
fn iscs_double_updreqall_gets_every_binding_and_one_upddone() {
    // As in tests/data/isc-failover-fresh.pcap: a fresh ISC secondary reports RECOVER and sends
    // UPDREQALL twice; it wants all bindings and then a single UPDDONE with the later xid.
    let mut pri = script(Role::Primary);
    for last in 100..112 {
        let free = BindingUpdate::new(Ipv4Addr::new(10, 40, 0, last), BindingStatus::Free);
        pri.restore_binding(free, LeaseTimes::default(), true);
    }
    pri.handle_connected(T0);
    let connect = drain_transmits(&mut pri).remove(0);
    let t = wire_time(T0);
    let ack = Message::connect_ack(
        t,
        connect.xid,
        &crate::messages::ConnectAckInfo {
            relationship: b"f".to_vec(),
            max_unacked: 10,
            receive_timer: 30,
            vendor_class: b"isc-4.4.3-P1".to_vec(),
        },
    );
    pri.handle_message(T0, ack);
    pri.handle_message(T0, Message::state(t, 0, ServerState::Recover, 1, t - 5));
    pri.handle_message(T0, Message::state(t, 1, ServerState::Recover, 0, t - 5));
    pri.handle_message(T0, Message::updreqall(t, 2));
    pri.handle_message(T0, Message::updreqall(t, 3));
    let mut sent = drain_transmits(&mut pri);
    let mut acked = 0;
    for _ in 0..5 {
        let updates: Vec<Message> =
            sent.iter().filter(|m| m.kind == MessageType::BndUpd).cloned().collect();
        assert!(updates.len() <= 10, "window of 10 exceeded");
        for u in &updates {
            let ip = u.binding_updates()[0].as_ref().unwrap().ip;
            pri.handle_message(T0, Message::bndack(t, u.xid, &[BindingAck::accept(ip)]));
            acked += 1;
        }
        sent = drain_transmits(&mut pri);
        if let Some(done) = sent.iter().find(|m| m.kind == MessageType::UpdDone) {
            assert_eq!(done.xid, 3);
            assert_eq!(acked, 12);
            assert_eq!(sent.iter().filter(|m| m.kind == MessageType::UpdDone).count(), 1);
            return;
        }
    }
    panic!("no UPDDONE");
}

#[test]
fn an_incomplete_binding_is_rejected_without_dropping_the_link() {
    let mut sec = script(Role::Secondary);
    sec.handle_connected(T0);
    sec.handle_message(T0, isc_connect(wire_time(T0)));
    let t = wire_time(T0);
    sec.handle_message(T0, Message::state(t, 1, ServerState::Normal, 0, t));
    drain_transmits(&mut sec);
    let mut no_client = BindingUpdate::new(Ipv4Addr::new(10, 40, 0, 7), BindingStatus::Active);
    no_client.lease_expiration = Some(t + 60);
    sec.handle_message(T0, Message::bndupd(t, 9, &no_client));
    let out = drain_transmits(&mut sec);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, MessageType::BndAck);
    assert_eq!(out[0].binding_acks()[0].reject, Some(RejectReason::MISSING_BINDING_INFO));
    assert!(sec.is_communicating());
}

#[test]
fn the_same_abandonment_from_both_servers_is_no_conflict() {
    // A DECLINE is broadcast: both servers hear it, and ISC dhcpd abandons the address even
    // when the client names the other server. The two ABANDONED updates cross on the wire.
    let mut pair = normal_pair();
    let now = pair.time;
    let abandoned = BindingUpdate {
        start_time_of_state: Some(wire_time(now)),
        ..BindingUpdate::new(Ipv4Addr::new(10, 40, 0, 7), BindingStatus::Abandoned)
    };
    pair.primary.peer.handle_local_binding(now, abandoned.clone());
    pair.secondary.peer.handle_local_binding(now, abandoned.clone());
    pair.drain();
    pair.run(1);
    for side in [&pair.primary, &pair.secondary] {
        let rejected: Vec<_> =
            side.events.iter().filter(|e| matches!(e, Event::BindingRejected { .. })).collect();
        assert!(rejected.is_empty(), "{}: {rejected:?}", side.name);
        assert_eq!(side.peer.updates_in_flight(), 0, "{}", side.name);
    }
    // The secondary takes the primary's; the primary, saying the same already, stores nothing.
    assert_eq!(pair.secondary.store.get(&abandoned.ip), Some(&abandoned));
    assert_eq!(pair.primary.store.get(&abandoned.ip), None);
}

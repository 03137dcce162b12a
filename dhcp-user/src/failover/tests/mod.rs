//! Scenarios of two servers sharing a pool, in memory: a primary and a secondary, each a
//! DHCP engine with its failover glue and a map standing in for its store, joined by a link
//! that carries the encoded messages. The clock is a number the test moves.
use std::net::Ipv4Addr;

use dhcp_failover::{
    PersistedState, ServerState,
    load_balance::{self, Hba},
};
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};

use dhcp_common::RenewEvent;

use super::*;
use crate::core::{Core, Input, LinkEvent, Measured, MemStore, Now, Output, PeerCmd, Request};
use crate::server::{DropReason, Handled, Outcome, RxInfo};
use serde_json::Value;

const T0: u64 = 1_700_000_000;
const MCLT: u32 = 300;
const LEASE: u32 = 3600;

fn config(role: &str) -> Config {
    config_with(role, "")
}

/// The pair's config with `more` added to `[failover]`.
fn config_with(role: &str, more: &str) -> Config {
    let (me, peer, extra) = match role {
        "primary" => ("10.0.0.1", "10.0.0.2", "mclt = 300\nsplit = 128\n"),
        _ => ("10.0.0.2", "10.0.0.1", ""),
    };
    let extra = format!("{extra}{more}");
    let text = format!(
        r#"interfaces = ["eth1"]
server_id = "{me}"

[failover]
name = "pair"
role = "{role}"
address = "{me}"
peer_address = "{peer}"
load_balance_max_seconds = 3
{extra}
[[subnet]]
prefix = "10.0.0.0/24"
pools = [{{ start = "10.0.0.100", end = "10.0.0.119" }}]
lease_time = {LEASE}
failover = true
"#
    );
    Config::from_toml(&text, "test.toml").unwrap()
}

/// One server: the core and its turn, as the daemon runs them, over a store in memory.
struct Side {
    core: Core,
    store: MemStore,
    /// What the turns said to the partner link, not yet carried.
    outbox: Vec<PeerCmd>,
    /// The partner's news for the next turn.
    inbox: Vec<LinkEvent>,
    /// The connection this side is on.
    link: Option<u64>,
    /// The lease history its turns described (with `[history]` configured).
    history: Vec<crate::history::LeaseEvent>,
}

impl Side {
    fn new(role: &str) -> Self {
        Self::with(config(role))
    }

    fn with(cfg: Config) -> Self {
        Self::from_store(cfg, MemStore::default(), T0)
    }

    /// The daemon starting on what `store` holds (after a crash: what was committed).
    fn from_store(cfg: Config, store: MemStore, now: u64) -> Self {
        let core = Core::new(cfg, &store, now).unwrap();
        Side { core, store, outbox: Vec::new(), inbox: Vec::new(), link: None, history: Vec::new() }
    }

    fn fo(&self) -> &Failover {
        self.core.failover().expect("a failover relationship")
    }

    fn server(&self) -> &Server {
        self.core.server()
    }

    /// One turn with `inputs` and the partner's news queued for it.
    fn turn(&mut self, now: u64, inputs: Vec<Input<()>>) -> Output<()> {
        let mut all: Vec<Input<()>> = self
            .inbox
            .drain(..)
            .map(|e| Input::Link(crate::config::RelationshipId(0), e))
            .collect();
        all.extend(inputs);
        let mut out = self.core.turn(Now::at(now), all, &mut self.store);
        self.outbox.extend(out.link.drain(..).map(|(_, c)| c));
        self.history.extend(out.history.iter().map(crate::history::RawEvent::describe));
        out
    }

    /// A DHCP request through the turn.
    fn dhcp(&mut self, now: u64, m: &Message) -> Outcome {
        let rx = rx(self.server().config().server_id);
        let bytes = dhcproto::Encodable::to_vec(m).unwrap();
        let mut out = self.turn(now, vec![Input::Dhcp { rx, bytes }]);
        Outcome { reply: out.replies.pop(), changes: Vec::new(), result: out.handled[0] }
    }

    /// A renewal XDP answered at `at`, as its event reaches the turn.
    fn renewed(&mut self, at: u64, a: Ipv4Addr, mac: [u8; 6], secs: u32) {
        let ev = RenewEvent {
            at_ns: Now::at(at).mono_ns,
            addr: a.octets(),
            granted_secs: secs,
            chaddr: mac,
            _pad: [0; 10],
        };
        self.turn(at, vec![Input::Renewed(ev)]);
    }

    /// `xdhcp failover partner-down --yes-partner-is-down`: when the partner's addresses
    /// become usable, or why not.
    fn partner_down(&mut self, now: u64) -> Result<u64, String> {
        let req = Request::FailoverPartnerDown { confirm: true, relationship: None };
        let out =
            self.turn(now, vec![Input::Control { req, reply: (), measured: Measured::default() }]);
        let v = &out.answers[0].1;
        match v.get("error") {
            Some(e) => Err(e.as_str().unwrap_or_default().to_owned()),
            None => Ok(v["partner_addresses_usable_at"].as_u64().unwrap()),
        }
    }

    /// The connection is gone (reset, or the partner died): the turn hears of it.
    fn link_down(&mut self, now: u64) {
        if let Some(id) = self.link.take() {
            self.inbox.push(LinkEvent::Down { id });
        }
        self.turn(now, Vec::new());
    }

    fn lease(&self, a: Ipv4Addr) -> &Lease {
        self.store.get(a).unwrap_or_else(|| panic!("{a} is not in the store"))
    }
}

struct Pair {
    p: Side,
    s: Side,
    now: u64,
    conns: u64,
}

impl Pair {
    fn new() -> Self {
        Self::of(Side::new("primary"), Side::new("secondary"))
    }

    fn of(p: Side, s: Side) -> Self {
        Pair { p, s, now: T0, conns: 0 }
    }

    /// Carries messages both ways until neither side has anything to say.
    fn exchange(&mut self) {
        for _ in 0..1000 {
            let now = self.now;
            self.p.turn(now, Vec::new());
            self.s.turn(now, Vec::new());
            let from_p = std::mem::take(&mut self.p.outbox);
            let from_s = std::mem::take(&mut self.s.outbox);
            if from_p.is_empty() && from_s.is_empty() {
                return;
            }
            for (cmds, to_primary) in [(from_p, false), (from_s, true)] {
                for c in cmds {
                    self.carry(c, to_primary);
                }
            }
        }
        panic!("the servers never stopped talking");
    }

    fn carry(&mut self, c: PeerCmd, to_primary: bool) {
        match c {
            PeerCmd::Connect if self.p.link.is_none() && self.s.link.is_none() => {
                self.conns += 1;
                let id = self.conns;
                for side in [&mut self.p, &mut self.s] {
                    side.link = Some(id);
                    side.inbox.push(LinkEvent::Up { id });
                }
            }
            PeerCmd::Connect => {}
            PeerCmd::Close { id } => {
                for side in [&mut self.p, &mut self.s] {
                    if side.link == Some(id) {
                        side.link = None;
                        side.inbox.push(LinkEvent::Down { id });
                    }
                }
            }
            PeerCmd::Send { id, bytes } => {
                let msg = dhcp_failover::decode(&bytes).unwrap();
                let to = if to_primary { &mut self.p } else { &mut self.s };
                if to.link == Some(id) {
                    to.inbox.push(LinkEvent::Message { id, msg });
                }
            }
        }
    }

    /// Lets `secs` pass, a second at a time, exchanging as it goes.
    fn run_for(&mut self, secs: u64) {
        for _ in 0..secs {
            self.now += 1;
            self.exchange();
        }
    }

    fn normal(&mut self) {
        self.exchange();
        for _ in 0..120 {
            if self.p.fo().peer().state() == ServerState::Normal
                && self.s.fo().peer().state() == ServerState::Normal
            {
                self.exchange();
                return;
            }
            self.run_for(1);
        }
        panic!(
            "no NORMAL: primary {:?}, secondary {:?}",
            self.p.fo().peer().state(),
            self.s.fo().peer().state()
        );
    }
}

fn rx(server: Ipv4Addr) -> RxInfo {
    RxInfo { ifindex: 2, local_addr: Some(server) }
}

fn msg(mac: [u8; 6], kind: MessageType, ciaddr: Ipv4Addr) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0x77, ciaddr, z, z, z, &mac);
    m.set_opcode(Opcode::BootRequest);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m
}

fn select(mac: [u8; 6], server: Ipv4Addr, a: Ipv4Addr) -> Message {
    let mut m = msg(mac, MessageType::Request, Ipv4Addr::UNSPECIFIED);
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    m
}

fn lease_time(o: &Outcome) -> u32 {
    let r = o.reply.as_ref().unwrap_or_else(|| panic!("no reply: {:?}", o.result));
    match r.msg.opts().get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        other => panic!("no lease time: {other:?}"),
    }
}

/// A MAC whose RFC 3074 bucket the primary (or the secondary) serves under split 128.
fn mac_for(primary: bool, n: u8) -> [u8; 6] {
    let hba = load_balance::Hba::split(128);
    (0..=255u8)
        .map(|i| [2, 0, 0, n, 0, i])
        .find(|m| hba.serves(primary, load_balance::bucket(m)))
        .unwrap()
}

/// DISCOVER and REQUEST at `side`; the address and the ACK's lease time.
fn dora(side: &mut Side, now: u64, mac: [u8; 6]) -> (Ipv4Addr, u32) {
    let o = side.dhcp(now, &msg(mac, MessageType::Discover, Ipv4Addr::UNSPECIFIED));
    let Handled::Offered(a) = o.result else { panic!("no offer: {:?}", o.result) };
    let sid = side.server().config().server_id;
    let o = side.dhcp(now, &select(mac, sid, a));
    assert_eq!(o.result, Handled::Acked(a));
    (a, lease_time(&o))
}

#[test]
fn a_binding_the_partner_sent_is_in_the_history_as_a_failover_update() {
    use crate::history::{Kind, Via};
    let more = "\n[history]\nfile = \"/nonexistent/history.jsonl\"\n";
    let (p, s) = (config_with("primary", more), config_with("secondary", more));
    let mut pair = Pair::of(Side::with(p), Side::with(s));
    pair.normal();
    assert!(pair.s.history.is_empty(), "pool balancing is not lease history");
    let mac = mac_for(true, 3);
    let (a, _) = dora(&mut pair.p, pair.now, mac);
    pair.exchange();
    let of = |side: &Side| -> Vec<(Kind, Via, String)> {
        let e = side.history.iter().filter(|e| e.address == a);
        e.map(|e| (e.kind, e.path, e.state.clone())).collect()
    };
    assert_eq!(
        of(&pair.p),
        [(Kind::Offer, Via::Slow, "offered".into()), (Kind::Bind, Via::Slow, "active".into())]
    );
    assert_eq!(of(&pair.s), [(Kind::FailoverUpdate, Via::Partner, "active".into())]);
    assert_eq!(pair.s.history[0].mac, crate::packet::fmt_mac(&mac));
}

#[test]
fn nothing_is_answered_and_the_fast_path_stays_off_until_the_partner_is_heard() {
    let mut p = Side::new("primary");
    p.turn(T0, Vec::new());
    assert!(!p.fo().fast_path_allowed());
    let o = p.dhcp(T0, &msg(mac_for(true, 1), MessageType::Discover, Ipv4Addr::UNSPECIFIED));
    assert_eq!(o.result, Handled::Dropped(DropReason::FailoverNotResponding));
}

#[test]
fn a_fresh_pair_reaches_normal_and_the_secondary_gets_half_the_free_pool() {
    let mut pair = Pair::new();
    pair.normal();
    assert!(pair.p.fo().fast_path_allowed() && pair.s.fo().fast_path_allowed());
    let backup =
        |side: &Side| side.store.leases.values().filter(|l| l.state == LeaseState::Backup).count();
    assert_eq!(backup(&pair.p), 10);
    assert_eq!(backup(&pair.s), 10, "the secondary stores what the primary moved");
    // Both persisted their state: a restart resumes NORMAL rather than recovering.
    let saved = decode_state(pair.s.store.failover.values().next().unwrap()).unwrap();
    assert_eq!(saved.my_state, ServerState::Normal);
    assert_eq!(saved.mclt, MCLT, "the secondary keeps the primary's MCLT");
}

#[test]
fn a_new_lease_is_capped_at_the_mclt_replicated_and_its_acked_pet_opens_the_fast_path() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now;
    let mac = mac_for(true, 2);
    let (a, lease) = dora(&mut pair.p, now, mac);
    assert_eq!(lease, MCLT, "the partner knows nothing of this address yet");
    let l = pair.p.lease(a).clone();
    assert_eq!(l.pet_sent, now + u64::from(LEASE) + u64::from(MCLT / 2));
    assert_eq!(l.pet_acked, 0);
    assert!(
        pair.p.server().fast_path_entry(&l, now).is_none(),
        "before the BNDACK the MCLT rule leaves the kernel nothing to grant"
    );

    pair.exchange();
    let theirs = pair.s.lease(a);
    assert_eq!(theirs.state, LeaseState::Active);
    assert_eq!(theirs.chaddr, mac.to_vec());
    assert_eq!(theirs.expires_at, now + u64::from(MCLT));
    assert_eq!(theirs.pet_received, l.pet_sent);

    let ours = pair.p.lease(a);
    assert_eq!(ours.pet_acked, l.pet_sent, "the BNDACK raised the acknowledged PET");
    let e = pair.p.server().fast_path_entry(ours, now).expect("on the fast path now");
    assert_eq!(e.held_until, ours.expires_at + u64::from(LEASE));
    assert!(e.held_until <= ours.pet_acked + u64::from(MCLT));

    // At T1 the renewal gets the full lease: the partner has acknowledged enough.
    let t1 = now + u64::from(MCLT / 2);
    let o = pair.p.dhcp(t1, &msg(mac, MessageType::Request, a));
    assert_eq!(o.result, Handled::Acked(a));
    assert_eq!(lease_time(&o), LEASE);
}

#[test]
fn a_fast_path_renewal_sends_a_new_pet_and_its_ack_raises_the_horizon() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(true, 3);
    let (a, _) = dora(&mut pair.p, pair.now, mac);
    pair.exchange();
    let before = pair.p.lease(a).clone();

    pair.run_for(100);
    let at = pair.now;
    pair.p.renewed(at, a, mac, LEASE);
    let renewed = pair.p.lease(a).clone();
    let pet = at + u64::from(LEASE) + u64::from(LEASE / 2);
    assert_eq!(renewed.pet_sent, pet);
    assert!(renewed.held_until <= before.pet_acked + u64::from(MCLT));

    pair.exchange();
    assert_eq!(pair.s.lease(a).pet_received, pet, "the partner's store has the new PET");
    assert_eq!(pair.s.lease(a).expires_at, at + u64::from(LEASE));
    let acked = pair.p.lease(a);
    assert_eq!(acked.pet_acked, pet);
    assert!(acked.held_until > renewed.held_until, "the grant horizon rose with the BNDACK");
}

#[test]
fn discovers_are_shared_by_hash_and_each_server_allocates_from_its_own_pool() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now;
    let theirs = mac_for(false, 4);
    let o = pair.p.dhcp(now, &msg(theirs, MessageType::Discover, Ipv4Addr::UNSPECIFIED));
    assert_eq!(o.result, Handled::Dropped(DropReason::LoadBalancedToPeer));
    let (a, _) = dora(&mut pair.s, now, theirs);
    let was = pair.p.lease(a).state;
    assert_eq!(was, LeaseState::Backup, "the secondary used an address the primary gave it");
    pair.exchange();
    assert_eq!(pair.p.lease(a).state, LeaseState::Active, "and the primary heard of it");

    // A client that has waited past load_balance_max_seconds is answered by whoever hears it.
    let mut late = msg(theirs, MessageType::Discover, Ipv4Addr::UNSPECIFIED);
    late.set_secs(10);
    let o = pair.p.dhcp(now, &late);
    assert!(matches!(o.result, Handled::Offered(_)), "{:?}", o.result);
}

#[test]
fn the_persisted_state_reads_back() {
    let p = PersistedState {
        my_state: ServerState::CommunicationsInterrupted,
        my_state_since: T0,
        partner_state: Some(ServerState::Normal),
        partner_state_since: T0 - 5,
        mclt: MCLT,
        hba: Hba::split(100),
    };
    let pool = (Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 29));
    let blob = encode_state(&p, &[pool]);
    assert_eq!(decode_state(&blob), Some(p));
    assert_eq!(decode_ranges(&blob), Some(vec![pool]));
    assert_eq!(decode_state(b"{not json"), None);
}

#[test]
fn a_client_rebinding_an_address_of_the_partners_share_is_not_refused() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now;
    // The secondary binds a client from its share; the primary has not heard of it yet (the
    // update is on its way, or the two are cut off).
    let mac = mac_for(false, 7);
    let (a, _) = dora(&mut pair.s, now, mac);
    assert_eq!(pair.p.lease(a).state, LeaseState::Backup);
    // The client rebinds (its server silent): the primary must not NAK what the partner may
    // have bound, as ISC dhcpd does not ("lease owned by peer").
    let o = pair.p.dhcp(now + 1, &msg(mac, MessageType::Request, a));
    assert_eq!(o.result, Handled::Dropped(DropReason::UnknownClient), "{:?}", o.reply);
}

#[test]
fn an_abandoned_address_tells_the_partner_when_its_probation_ends() {
    let a = Ipv4Addr::new(10, 0, 0, 100);
    let mut l = crate::store::Lease::new(a, crate::store::LeaseState::Abandoned, 0, T0);
    l.probation_until = std::num::NonZeroU64::new(T0 + 3600);
    let b = binding_of(&l);
    assert_eq!(b.status, dhcp_failover::BindingStatus::Abandoned);
    // ISC dhcpd frees an ABANDONED address at its end, and keeps the old lease's without one.
    assert_eq!(b.lease_expiration, Some(u32::try_from(T0 + 3600).unwrap()));
    assert_eq!((b.chaddr, b.client_id), (None, None), "no client on ABANDONED (draft-12 §7.1.1)");
    // What the partner abandoned has no probation here: nothing to tell.
    l.probation_until = None;
    assert_eq!(binding_of(&l).lease_expiration, None);
}

#[test]
fn a_restarted_server_resumes_its_state_and_resends_what_the_partner_never_acknowledged() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now;
    let mac = mac_for(true, 5);
    // The lease is committed, then the primary dies before its BNDUPD goes out.
    let (a, _) = dora(&mut pair.p, now, mac);
    assert_eq!(pair.p.lease(a).pet_acked, 0);

    pair.p = Side::from_store(config("primary"), pair.p.store.clone(), now);
    pair.s.link_down(now);
    pair.normal();
    assert!(pair.s.store.get(a).is_some_and(|l| l.state == LeaseState::Active));
    assert_eq!(pair.p.lease(a).pet_acked, pair.p.lease(a).pet_sent);
}

/// The link to the partner is gone and stays gone: the partner died, or the network between
/// the two did. Only `side` runs from here on.
fn lose_partner(side: &mut Side, now: u64) {
    side.link_down(now);
    side.outbox.clear();
}

/// `side` alone, its timers run and everything it wants to say to the partner dropped.
fn alone(side: &mut Side, now: u64) {
    side.turn(now, Vec::new());
    side.outbox.clear();
}

fn discover(side: &mut Side, now: u64, mac: [u8; 6]) -> Handled {
    side.dhcp(now, &msg(mac, MessageType::Discover, Ipv4Addr::UNSPECIFIED)).result
}

/// A MAC for new client number `n` of a scenario (any hash bucket).
fn client(n: u16) -> [u8; 6] {
    let [hi, lo] = n.to_be_bytes();
    [2, 0xcc, 0, 0, hi, lo]
}

mod balance;
mod cut_off;
mod hub;
mod lifecycle;
mod shared_network;

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
        Side { core, store, outbox: Vec::new(), inbox: Vec::new(), link: None }
    }

    fn fo(&self) -> &Failover {
        self.core.failover().expect("a failover relationship")
    }

    fn server(&self) -> &Server {
        self.core.server()
    }

    /// One turn with `inputs` and the partner's news queued for it.
    fn turn(&mut self, now: u64, inputs: Vec<Input<()>>) -> Output<()> {
        let mut all: Vec<Input<()>> = self.inbox.drain(..).map(Input::Link).collect();
        all.extend(inputs);
        let mut out = self.core.turn(Now::at(now), all, &mut self.store);
        self.outbox.append(&mut out.link);
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
        let req = Request::FailoverPartnerDown { confirm: true };
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
    let saved = decode_state(pair.s.store.failover.as_ref().unwrap()).unwrap();
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
    assert_eq!(decode_state(&encode_state(&p)), Some(p));
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
    l.probation_until = Some(T0 + 3600);
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

#[test]
fn primary_dies_and_the_secondary_serves_only_its_backup_share_then_says_what_would_help() {
    let mut pair = Pair::new();
    pair.normal();
    // The primary leases three addresses and tells the secondary, then dies.
    let leased: Vec<Ipv4Addr> =
        (0..3).map(|i| dora(&mut pair.p, pair.now, mac_for(true, 10 + i)).0).collect();
    pair.exchange();
    let now = pair.now + 1;
    lose_partner(&mut pair.s, now);
    assert_eq!(pair.s.fo().peer().state(), ServerState::CommunicationsInterrupted);
    assert!(pair.s.fo().fast_path_allowed(), "renewals go on in the kernel too");

    let mut got = Vec::new();
    for n in 0..10 {
        let (a, lease) = dora(&mut pair.s, now, client(n));
        assert!(lease <= MCLT, "a new client gets at most MCLT: {lease}");
        got.push(a);
    }
    assert!(
        got.iter().all(|a| pair.p.lease(*a).state == LeaseState::Backup),
        "every address came from the secondary's own share: {got:?}"
    );
    assert_eq!(discover(&mut pair.s, now, client(10)), Handled::Dropped(DropReason::PoolExhausted));
    alone(&mut pair.s, now);
    let st = pair.s.fo().status(pair.s.server(), now);
    assert_eq!(st["refused_share_exhausted_total"], 1, "{st}");
    assert_eq!(st["pools"][0]["share_ours_free"], 0, "{st}");
    assert_eq!(
        st["pools"][0]["share_partner_free"],
        10 - leased.len() as u64,
        "the partner's share: what it had, less what it leased: {st}"
    );
    assert_eq!(st["partner_addresses_usable_at"], Value::Null, "{st}");
}

#[test]
fn the_partner_still_talking_is_not_declared_down() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now;
    let e = pair.s.partner_down(now).unwrap_err();
    assert_eq!(e, PartnerDownRefused::PartnerTalking("normal").to_string());
    assert_eq!(pair.s.fo().peer().state(), ServerState::Normal);
}

#[test]
fn partner_down_takes_the_partners_free_addresses_at_stos_plus_mclt_and_not_a_second_sooner() {
    let mut pair = Pair::new();
    pair.normal();
    // One client of the primary's, known to the secondary, whose lease will run out.
    let (theirs, _) = dora(&mut pair.p, pair.now, mac_for(true, 20));
    pair.exchange();
    let known = pair.s.lease(theirs).clone();
    assert_eq!(known.state, LeaseState::Active);

    let now = pair.now + 1;
    lose_partner(&mut pair.s, now);
    for n in 0..10 {
        dora(&mut pair.s, now, client(n));
    }
    let pd = now + 5;
    alone(&mut pair.s, pd);
    let usable_at = pair.s.partner_down(pd).unwrap();
    alone(&mut pair.s, pd);
    assert_eq!(usable_at, pd + u64::from(MCLT));
    assert_eq!(pair.s.fo().peer().state(), ServerState::PartnerDown);
    assert_eq!(pair.s.partner_down(pd + 1), Ok(usable_at), "declaring it twice changes nothing");

    // A second before STOS+MCLT: still only its own share, which is used up.
    let before = usable_at - 1;
    alone(&mut pair.s, before);
    assert_eq!(
        discover(&mut pair.s, before, client(100)),
        Handled::Dropped(DropReason::PoolExhausted)
    );
    // At STOS+MCLT every free address of the partner's is usable.
    alone(&mut pair.s, usable_at);
    let mut taken = Vec::new();
    for n in 0..9 {
        let (a, lease) = dora(&mut pair.s, usable_at, client(200 + n));
        assert!(lease <= MCLT, "{lease}");
        taken.push(a);
    }
    assert!(!taken.contains(&theirs));
    assert!(taken.iter().all(|a| pair.p.store.get(*a).is_none_or(|l| l.state == LeaseState::Free)));

    // The primary's client's address is reclaimed only MCLT past everything it may have been
    // promised (its expiry and the PETs), not at STOS+MCLT.
    let reuse = known.expires_at.max(known.pet_received).max(known.pet_sent) + u64::from(MCLT);
    assert!(reuse > usable_at);
    for t in [usable_at + 1, reuse - 1] {
        alone(&mut pair.s, t);
        assert_eq!(
            discover(&mut pair.s, t, client(300)),
            Handled::Dropped(DropReason::PoolExhausted),
            "at {t}, reuse at {reuse}"
        );
    }
    alone(&mut pair.s, reuse);
    assert_eq!(pair.s.lease(theirs).state, LeaseState::Expired);
    assert_eq!(dora(&mut pair.s, reuse, client(300)).0, theirs);
}

#[test]
fn auto_partner_down_follows_the_configured_time_in_communications_interrupted() {
    let mut pair = Pair::of(
        Side::new("primary"),
        Side::with(config_with("secondary", "auto_partner_down = 600\n")),
    );
    pair.normal();
    let cut = pair.now;
    lose_partner(&mut pair.s, cut);
    alone(&mut pair.s, cut + 599);
    assert_eq!(pair.s.fo().peer().state(), ServerState::CommunicationsInterrupted);
    alone(&mut pair.s, cut + 600);
    assert_eq!(pair.s.fo().peer().state(), ServerState::PartnerDown);
    // The MCLT counts from entering PARTNER-DOWN, not from losing the partner.
    assert_eq!(pair.s.fo().takeover_time(), cut + 600 + u64::from(MCLT));
    let early = cut + 600 + u64::from(MCLT) - 1;
    alone(&mut pair.s, early);
    for n in 0..10 {
        dora(&mut pair.s, early, client(n));
    }
    assert_eq!(
        discover(&mut pair.s, early, client(50)),
        Handled::Dropped(DropReason::PoolExhausted)
    );
    let at = early + 1;
    alone(&mut pair.s, at);
    assert!(matches!(discover(&mut pair.s, at, client(50)), Handled::Offered(_)));
}

#[test]
fn in_communications_interrupted_the_survivor_renews_the_partners_clients_within_mclt() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(true, 30);
    let (a, _) = dora(&mut pair.p, pair.now, mac);
    pair.exchange();
    // Renewed once at the primary with the full lease; the secondary hears of it.
    let t1 = pair.now + u64::from(MCLT / 2);
    pair.run_for(t1 - pair.now);
    let o = pair.p.dhcp(t1, &msg(mac, MessageType::Request, a));
    assert_eq!(lease_time(&o), LEASE);
    pair.exchange();
    let known = pair.s.lease(a).clone();

    let now = t1 + 10;
    lose_partner(&mut pair.s, now);
    let o = pair.s.dhcp(now, &msg(mac, MessageType::Request, a));
    assert_eq!(o.result, Handled::Acked(a), "renewed whoever gave it out");
    let horizon = known.pet_received.max(known.pet_acked).max(known.expires_at);
    let lease = u64::from(lease_time(&o));
    assert!(now + lease <= horizon + u64::from(MCLT), "{now} + {lease} vs {horizon}");
    // The kernel's horizon obeys the same rule.
    let l = pair.s.lease(a);
    assert!(l.held_until <= horizon.max(known.expires_at) + u64::from(MCLT));
}

#[test]
fn cut_off_the_secondary_rewinds_a_lease_nobody_else_heard_of_and_serves_a_new_client_with_it() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now + 1;
    lose_partner(&mut pair.s, now);
    // Ten clients take the whole backup share while the primary is unreachable.
    let got: Vec<Ipv4Addr> = (0..10).map(|n| dora(&mut pair.s, now, client(n)).0).collect();
    assert_eq!(discover(&mut pair.s, now, client(10)), Handled::Dropped(DropReason::PoolExhausted));
    let first = pair.s.lease(got[0]).clone();
    assert_eq!(first.rewind_state, Some(LeaseState::Backup), "persisted with the binding");
    alone(&mut pair.s, now);
    assert_eq!(pair.s.fo().updates_held(), 10, "the primary must not hear of them yet");

    // One leaves; the primary never knew it was there, so its address is the secondary's again.
    let released = pair.s.dhcp(now + 10, &msg(client(0), MessageType::Release, got[0]));
    assert_eq!(released.result, Handled::Released(got[0]));
    alone(&mut pair.s, now + 10);
    assert_eq!(pair.s.lease(got[0]).state, LeaseState::Backup);
    let (again, _) = dora(&mut pair.s, now + 10, client(10));
    assert_eq!(again, got[0], "the newcomer gets the rewound address");
    assert_eq!(pair.s.server().counters().rewound_to_free, 1);
}

#[test]
fn cut_off_an_expired_client_gets_its_lease_back_and_reconnection_unwinds_every_rewind() {
    let mut pair = Pair::new();
    pair.normal();
    let (a, _) = dora(&mut pair.s, pair.now, mac_for(false, 1));
    pair.exchange();
    let now = pair.now + 1;
    lose_partner(&mut pair.s, now);
    lose_partner(&mut pair.p, now);
    // The lease the primary acknowledged runs out while the two cannot talk.
    let end = pair.s.lease(a).expires_at;
    alone(&mut pair.s, end);
    let l = pair.s.lease(a);
    assert_eq!((l.state, l.rewind_state), (LeaseState::Expired, Some(LeaseState::Active)));
    // Its client returns: the primary still holds the address as that client's.
    let acked = pair.s.lease(a).pet_acked;
    let (back, lease) = dora(&mut pair.s, end + 5, mac_for(false, 1));
    assert_eq!(back, a);
    let until = end + 5 + u64::from(lease);
    assert!(until <= acked + u64::from(MCLT), "still within the MCLT rule: {until} vs {acked}");
    assert_eq!(pair.s.server().counters().rewound_to_active, 1);

    // A newcomer's lease from the share, then the link comes back: the store loses the
    // rewind before the primary hears of the binding.
    let (b, _) = dora(&mut pair.s, end + 6, client(1));
    assert_eq!(pair.s.lease(b).rewind_state, Some(LeaseState::Backup));
    pair.now = end + 10;
    pair.normal();
    assert_eq!(pair.s.lease(b).rewind_state, None);
    assert_eq!(pair.s.fo().updates_held(), 0);
    assert_eq!(pair.p.lease(b).state, LeaseState::Active, "the primary knows it now");
}

/// Free addresses each side of `pair` counts as (primary's FREE, secondary's BACKUP), as the
/// store of `side` holds them.
fn split_seen_by(side: &Side) -> (u64, u64) {
    split_of(side, 0)
}

/// `n` new clients of the primary's (or the secondary's) hash buckets lease at that server,
/// MACs numbered from `first`, and the partner hears of it.
fn new_clients(pair: &mut Pair, primary: bool, first: u8, n: u8) {
    let now = pair.now;
    let side = if primary { &mut pair.p } else { &mut pair.s };
    for k in first..first + n {
        dora(side, now, mac_for(primary, k));
    }
    pair.exchange();
}

#[test]
fn balancing_arithmetic_evens_a_misbalance_and_leaves_a_small_one_alone() {
    let b = |ours, partners| pool_balance(Shares { ours, partners }, 100, 15);
    assert_eq!(b(50, 50), PoolBalance { give: 0, short: false });
    assert_eq!(b(100, 0), PoolBalance { give: 50, short: false }, "the first split");
    assert_eq!(b(60, 30), PoolBalance { give: 0, short: false }, "15 over: within the threshold");
    assert_eq!(
        b(70, 30),
        PoolBalance { give: 20, short: false },
        "evened out, not to the threshold"
    );
    assert_eq!(b(10, 70), PoolBalance { give: 0, short: false }, "30 short: the partner's job");
    assert_eq!(b(0, 62), PoolBalance { give: 0, short: true }, "31 short: ask for a POOLREQ");
    // After a move neither side sees a reason to move anything back.
    let after = b(50, 20 + 30);
    assert_eq!(after.give, 0);
    // A tiny pool still splits.
    assert_eq!(pool_balance(Shares { ours: 2, partners: 0 }, 2, 15).give, 1);
}

#[test]
fn the_secondary_uses_up_most_of_its_share_and_the_primary_tops_it_up_at_the_next_pass() {
    let mut pair = Pair::new();
    pair.normal();
    assert_eq!(split_seen_by(&pair.p), (10, 10));
    new_clients(&mut pair, false, 40, 8);
    assert_eq!(split_seen_by(&pair.p), (10, 2));
    // Within min_balance (60 s) of the last move nothing happens; then the primary evens the
    // pool (misbalance 4 > 15 % of 20).
    pair.run_for(30);
    assert_eq!(split_seen_by(&pair.s), (10, 2));
    pair.run_for(31);
    assert_eq!(split_seen_by(&pair.p), (6, 6));
    assert_eq!(split_seen_by(&pair.s), (6, 6), "the secondary stored the moves");
    // The secondary can serve new clients again, from what it was given.
    let (a, _) = dora(&mut pair.s, pair.now, mac_for(false, 60));
    assert_eq!(pair.p.lease(a).state, LeaseState::Backup);
    let st = pair.p.fo().status(pair.p.server(), pair.now);
    assert_eq!(st["balanced_moved_total"], 14, "10 at the first split, 4 now: {st}");
}

#[test]
fn the_primary_runs_low_and_the_secondary_gives_back_backup_addresses_it_does_not_need() {
    let mut pair = Pair::new();
    pair.normal();
    new_clients(&mut pair, true, 40, 8);
    assert_eq!(split_seen_by(&pair.s), (2, 10));
    pair.run_for(61);
    assert_eq!(split_seen_by(&pair.s), (6, 6));
    assert_eq!(split_seen_by(&pair.p), (6, 6));
    // What came back is the top of the secondary's share, never used, and the primary's now.
    for a in [119, 118, 117, 116].map(|h| Ipv4Addr::new(10, 0, 0, h)) {
        assert_eq!(pair.p.lease(a).state, LeaseState::Free, "{a}");
        assert_eq!(pair.s.lease(a).state, LeaseState::Free, "{a}");
    }
    new_clients(&mut pair, true, 50, 6);
    assert_eq!(split_seen_by(&pair.s), (0, 6), "the primary served 6 more from what came back");
    assert_eq!(
        discover(&mut pair.p, pair.now, mac_for(true, 70)),
        Handled::Dropped(DropReason::PoolExhausted),
        "the primary's share is used up; the secondary's 6 stay its own until the next pass"
    );
}

#[test]
fn a_server_short_of_addresses_asks_with_poolreq_and_the_partner_moves_them_at_once() {
    // The primary balances on its own only every 10 minutes; the secondary checks every 60 s.
    let strict = "max_lease_misbalance = 5\n";
    let mut pair = Pair::of(
        Side::with(config_with("primary", &format!("{strict}min_balance = 600\n"))),
        Side::with(config_with("secondary", strict)),
    );
    pair.normal();
    new_clients(&mut pair, false, 40, 6);
    assert_eq!(split_seen_by(&pair.s), (10, 4), "3 short, threshold 1: the secondary asks");
    pair.run_for(61);
    assert_eq!(split_seen_by(&pair.s), (7, 7), "moved on the POOLREQ, not at the primary's pass");
    assert_eq!(split_seen_by(&pair.p), (7, 7));
}

/// Free addresses of subnet `sid` as (primary's FREE, secondary's BACKUP) in `side`'s store.
fn split_of(side: &Side, sid: u32) -> (u64, u64) {
    let sh = side.fo().shares(side.server(), SubnetId(sid));
    match side.fo().config().role {
        Role::Primary => (sh.ours, sh.partners),
        Role::Secondary => (sh.partners, sh.ours),
    }
}

/// Like [`dora`], for a client behind a relay at `giaddr`.
fn dora_relayed(side: &mut Side, now: u64, mac: [u8; 6], giaddr: Ipv4Addr) -> Ipv4Addr {
    let mut m = msg(mac, MessageType::Discover, Ipv4Addr::UNSPECIFIED);
    m.set_giaddr(giaddr);
    let o = side.dhcp(now, &m);
    let Handled::Offered(a) = o.result else { panic!("no offer: {:?}", o.result) };
    let mut m = select(mac, side.server().config().server_id, a);
    m.set_giaddr(giaddr);
    assert_eq!(side.dhcp(now, &m).result, Handled::Acked(a));
    a
}

#[test]
fn a_server_short_in_one_pool_asks_with_poolreq_even_while_it_gives_in_another() {
    // Two shared subnets; the primary balances on its own only every 10 minutes. The relayed
    // one comes first in the file, so it is subnet 0 and the clients' own one subnet 1.
    let relayed = r#"
[[subnet]]
prefix = "10.0.1.0/24"
pools = [{ start = "10.0.1.100", end = "10.0.1.119" }]
lease_time = 3600
failover = true
"#;
    let strict = "max_lease_misbalance = 5\n";
    let mut pair = Pair::of(
        Side::with(config_with("primary", &format!("{strict}min_balance = 600\n{relayed}"))),
        Side::with(config_with("secondary", &format!("{strict}{relayed}"))),
    );
    pair.normal();
    assert_eq!(split_of(&pair.s, 0), (10, 10));
    // The secondary runs low in its clients' subnet; the primary uses up its share of the
    // relayed one.
    new_clients(&mut pair, false, 40, 6);
    let relay = Ipv4Addr::new(10, 0, 1, 1);
    for k in 80..88 {
        dora_relayed(&mut pair.p, pair.now, mac_for(true, k), relay);
    }
    pair.exchange();
    assert_eq!(split_of(&pair.s, 1), (10, 4), "short in its clients' subnet");
    assert_eq!(split_of(&pair.s, 0), (2, 10), "holding too much of the relayed one");
    pair.run_for(61);
    // The secondary's pass gives in the relayed subnet, and its POOLREQ has the primary even
    // out the other at once rather than at its own pass ten minutes on.
    assert_eq!(split_of(&pair.s, 0), (6, 6));
    assert_eq!(split_of(&pair.s, 1), (7, 7), "moved on the POOLREQ");
    assert_eq!(split_of(&pair.p, 1), (7, 7));
}

#[test]
fn nothing_moves_outside_normal() {
    let mut pair = Pair::new();
    pair.normal();
    new_clients(&mut pair, false, 40, 8);
    lose_partner(&mut pair.p, pair.now);
    for _ in 0..120 {
        pair.now += 1;
        alone(&mut pair.p, pair.now);
    }
    assert_eq!(split_seen_by(&pair.p), (10, 2), "a cut-off primary keeps its share");
}

/// Rejects the side received for its own updates: a pair that agrees has none.
fn rejects(side: &Side) -> u64 {
    side.fo().counters().rejects_received
}

#[test]
fn the_secondary_releases_and_both_servers_free_the_address() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(false, 1);
    let (a, _) = dora(&mut pair.s, pair.now, mac);
    pair.exchange();
    assert_eq!(pair.p.lease(a).state, LeaseState::Active);
    pair.run_for(5);
    let o = pair.s.dhcp(pair.now, &msg(mac, MessageType::Release, a));
    assert_eq!(o.result, Handled::Released(a));
    pair.exchange();
    // §5.11: the primary frees it acknowledging the RELEASED, the secondary on the BNDACK.
    assert_eq!(pair.p.lease(a).state, LeaseState::Free);
    assert_eq!(pair.s.lease(a).state, LeaseState::Free);
    assert_eq!(rejects(&pair.p) + rejects(&pair.s), 0);
}

#[test]
fn a_release_in_the_second_of_its_ack_is_accepted_by_the_partner() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(false, 2);
    let (a, _) = dora(&mut pair.s, pair.now, mac);
    pair.exchange();
    // The same second: the RELEASED carries the CLTT the partner already has.
    pair.s.dhcp(pair.now, &msg(mac, MessageType::Release, a));
    pair.exchange();
    assert_eq!(rejects(&pair.s), 0, "the primary took the release as news, not as outdated");
    assert_eq!(
        (pair.p.lease(a).state, pair.s.lease(a).state),
        (LeaseState::Free, LeaseState::Free)
    );
}

#[test]
fn in_normal_the_secondary_leaves_expiry_to_the_primary_and_both_free_the_address() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(false, 3);
    let (a, lease) = dora(&mut pair.s, pair.now, mac);
    pair.exchange();
    let end = pair.now + u64::from(lease);
    pair.run_for(u64::from(lease) - 1);
    // Past the end, the secondary alone: it does not expire the lease itself (a dhcpd primary
    // refuses a secondary's expiry in NORMAL), nor tell the partner anything.
    pair.s.turn(end + 1, Vec::new());
    assert_eq!(pair.s.fo().peer().state(), ServerState::Normal);
    assert_eq!(pair.s.lease(a).state, LeaseState::Active);
    let updates = pair.s.outbox.iter().filter(|c| match c {
        PeerCmd::Send { bytes, .. } => {
            dhcp_failover::decode(bytes).unwrap().kind == dhcp_failover::MessageType::BndUpd
        }
        _ => false,
    });
    assert_eq!(updates.count(), 0);
    // The primary expires it; the secondary frees it acknowledging, the primary on the BNDACK.
    pair.now = end + 1;
    pair.exchange();
    pair.run_for(2);
    assert_eq!(pair.p.lease(a).state, LeaseState::Free);
    assert_eq!(pair.s.lease(a).state, LeaseState::Free);
    assert_eq!(rejects(&pair.p) + rejects(&pair.s), 0);
}

#[test]
fn a_release_committed_just_before_a_kill_9_reaches_the_partner_after_the_restart() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(true, 4);
    let (a, _) = dora(&mut pair.p, pair.now, mac);
    pair.exchange();
    assert!(pair.p.lease(a).partner_acked);
    // The client leaves; the primary commits the release and dies before sending it. A change
    // of state alone moves no PET, so only the record's own flag says the partner lacks it.
    pair.run_for(10);
    let now = pair.now;
    pair.p.dhcp(now, &msg(mac, MessageType::Release, a));
    assert_eq!(pair.p.lease(a).state, LeaseState::Released);
    assert!(!pair.p.lease(a).partner_acked, "committed as news the partner lacks");
    pair.p = Side::from_store(config("primary"), pair.p.store.clone(), now);
    pair.s.link_down(now);
    pair.normal();
    assert_eq!(pair.s.lease(a).state, LeaseState::Free, "the RELEASED was sent again");
    assert_eq!(pair.p.lease(a).state, LeaseState::Free);
}

#[test]
fn a_declined_address_comes_back_on_both_servers_after_its_probation() {
    let mut pair = Pair::new();
    pair.normal();
    let mac = mac_for(true, 5);
    let (a, _) = dora(&mut pair.p, pair.now, mac);
    pair.exchange();
    let mut decline = msg(mac, MessageType::Decline, Ipv4Addr::UNSPECIFIED);
    decline.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    decline.opts_mut().insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(pair.p.dhcp(pair.now, &decline).result, Handled::Declined(a));
    pair.exchange();
    assert_eq!(pair.s.lease(a).state, LeaseState::Abandoned);
    // An hour's probation later the primary frees it, and the secondary takes its word.
    pair.run_for(3601);
    assert_eq!(pair.p.lease(a).state, LeaseState::Free);
    assert_eq!(pair.s.lease(a).state, LeaseState::Free);
    assert_eq!(rejects(&pair.p), 0, "the FREE came after the abandonment, and was taken");
}

#[test]
fn a_state_the_store_would_not_take_is_not_told_to_the_partner() {
    let mut pair = Pair::new();
    // The primary's disk refuses the relationship's state from the start: it must not tell the
    // secondary of a state a restart would not know.
    pair.p.store.fail_state_writes = true;
    pair.run_for(30);
    assert_ne!(pair.s.fo().peer().state(), ServerState::Normal);
    assert!(pair.p.store.failover.is_none());
    // The disk recovers: the state is written, and the two reach NORMAL.
    pair.p.store.fail_state_writes = false;
    pair.normal();
    let saved = decode_state(pair.p.store.failover.as_ref().unwrap()).unwrap();
    assert_eq!(saved.my_state, ServerState::Normal);
}

#[test]
fn a_server_stopped_tells_its_partner_it_pauses_and_the_partner_stops_waiting_for_it() {
    let mut pair = Pair::new();
    pair.normal();
    let now = pair.now;
    let mut out: Output<()> = pair.p.core.stop(Now::at(now), &mut pair.p.store);
    pair.p.outbox.append(&mut out.link);
    // No time passes: the partner does not wait out its timers to know.
    pair.exchange();
    assert_eq!(pair.s.fo().peer().state(), ServerState::CommunicationsInterrupted);
    assert_eq!(pair.p.fo().peer().state(), ServerState::Paused);
}

#[test]
fn the_status_and_the_metrics_show_the_partners_clock_offset() {
    let mut pair = Pair::new();
    pair.normal();
    let st = pair.p.fo().status(pair.p.server(), pair.now);
    assert_eq!(st["partner_clock_offset_secs"], 0, "{st}");
    assert_eq!(st["refused_for_clock_skew"], false);
    let req = Request::Metrics;
    let out = pair
        .p
        .turn(pair.now, vec![Input::Control { req, reply: (), measured: Measured::default() }]);
    let text = out.answers[0].1["text"].as_str().unwrap().to_owned();
    assert!(text.contains("xdhcp_failover_partner_clock_offset_seconds 0\n"), "{text}");
}

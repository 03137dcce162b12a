//! A hub and two edges, in memory: each edge the primary of its own subnet, the hub the
//! secondary of both, each relationship on a link of its own. What happens to one edge must
//! change only its relationship.
use std::{collections::BTreeMap, fmt::Write as _};

use super::*;
use crate::config::RelationshipId;

/// Each edge's relayed access network: requests come through this relay address.
const RELAY: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 2, 0, 1)];
const EDGE_IP: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
const HUB_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const NAMES: [&str; 2] = ["edge-a", "edge-b"];

fn subnet(n: usize, name: &str) -> String {
    let net = n + 1;
    format!(
        "[[subnet]]\nprefix = \"10.{net}.0.0/24\"\n\
         pools = [{{ start = \"10.{net}.0.100\", end = \"10.{net}.0.119\" }}]\n\
         lease_time = {LEASE}\nfailover = \"{name}\"\n"
    )
}

fn edge_config(n: usize) -> Config {
    let (me, name) = (EDGE_IP[n], NAMES[n]);
    let text = format!(
        "interfaces = [\"eth1\"]\nserver_id = \"{me}\"\n\n\
         [[failover]]\nname = \"{name}\"\nrole = \"primary\"\naddress = \"{me}\"\n\
         peer_address = \"{HUB_IP}\"\nmclt = {MCLT}\nsplit = 128\n\n{}",
        subnet(n, name)
    );
    Config::from_toml(&text, "edge.toml").unwrap()
}

fn hub_config() -> Config {
    let mut text = format!("interfaces = [\"eth1\"]\nserver_id = \"{HUB_IP}\"\n\n");
    for (name, edge) in NAMES.iter().zip(EDGE_IP) {
        let _ = write!(
            text,
            "[[failover]]\nname = \"{name}\"\nrole = \"secondary\"\naddress = \"{HUB_IP}\"\n\
             peer_address = \"{edge}\"\n\n"
        );
    }
    for (n, name) in NAMES.iter().enumerate() {
        text += &subnet(n, name);
    }
    Config::from_toml(&text, "hub.toml").unwrap()
}

struct Node {
    core: Core,
    store: MemStore,
    inbox: Vec<(RelationshipId, LinkEvent)>,
    alive: bool,
}

impl Node {
    fn new(cfg: Config) -> Self {
        let store = MemStore::default();
        Node { core: Core::new(cfg, &store, T0).unwrap(), store, inbox: Vec::new(), alive: true }
    }

    fn state(&self, name: &str) -> ServerState {
        self.core.relationship(Some(name)).unwrap().peer().state()
    }
}

/// The fleet: node 0 and 1 the edges, 2 the hub; a wire per relationship.
struct Fleet {
    nodes: Vec<Node>,
    /// Each relationship's two ends and its connection.
    wires: Vec<(Ends, Option<u64>)>,
    now: u64,
    conns: u64,
}

const HUB: usize = 2;

/// A relationship's two ends: a node, and the relationship's id there.
type Ends = [(usize, RelationshipId); 2];

impl Fleet {
    fn new() -> Self {
        let nodes =
            vec![Node::new(edge_config(0)), Node::new(edge_config(1)), Node::new(hub_config())];
        let wires = (0..2)
            .map(|n| {
                let r = RelationshipId(u16::try_from(n).unwrap());
                ([(n, RelationshipId(0)), (HUB, r)], None)
            })
            .collect();
        Fleet { nodes, wires, now: T0, conns: 0 }
    }

    /// Every live node takes a turn and its link commands are carried, until all are quiet.
    fn exchange(&mut self) {
        for _ in 0..1000 {
            let mut said = Vec::new();
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if !node.alive {
                    continue;
                }
                let inputs = node.inbox.drain(..).map(|(r, e)| Input::Link(r, e)).collect();
                let out: Output<()> = node.core.turn(Now::at(self.now), inputs, &mut node.store);
                said.extend(out.link.into_iter().map(|(r, c)| (i, r, c)));
            }
            if said.is_empty() {
                return;
            }
            for (i, r, c) in said {
                self.carry(i, r, c);
            }
        }
        panic!("the servers never stopped talking");
    }

    fn carry(&mut self, from: usize, rel: RelationshipId, c: PeerCmd) {
        let Some(w) = self.wires.iter().position(|(ends, _)| ends.contains(&(from, rel))) else {
            panic!("node {from} spoke on relationship {rel:?}, which has no wire");
        };
        let (ends, conn) = self.wires[w];
        let other = if ends[0] == (from, rel) { ends[1] } else { ends[0] };
        match c {
            PeerCmd::Connect if conn.is_none() && self.nodes[other.0].alive => {
                self.conns += 1;
                self.wires[w].1 = Some(self.conns);
                for (n, r) in ends {
                    self.nodes[n].inbox.push((r, LinkEvent::Up { id: self.conns }));
                }
            }
            PeerCmd::Close { id } if conn == Some(id) => {
                self.wires[w].1 = None;
                for (n, r) in ends {
                    self.nodes[n].inbox.push((r, LinkEvent::Down { id }));
                }
            }
            PeerCmd::Send { id, bytes } if conn == Some(id) => {
                let msg = dhcp_failover::decode(&bytes).unwrap();
                self.nodes[other.0].inbox.push((other.1, LinkEvent::Message { id, msg }));
            }
            // A connection already gone, or one to a node that is not there.
            _ => {}
        }
    }

    fn run_for(&mut self, secs: u64) {
        for _ in 0..secs {
            self.now += 1;
            self.exchange();
        }
    }

    /// A node dies: it takes no more turns, and its partners' links go down.
    fn kill(&mut self, n: usize) {
        self.nodes[n].alive = false;
        for (ends, conn) in &mut self.wires {
            let Some(id) = *conn else { continue };
            if ends.iter().any(|(m, _)| *m == n) {
                *conn = None;
                for (m, r) in *ends {
                    self.nodes[m].inbox.push((r, LinkEvent::Down { id }));
                }
            }
        }
        self.exchange();
    }

    fn all_normal(&self) -> bool {
        (0..2).all(|n| {
            self.nodes[n].state(NAMES[n]) == ServerState::Normal
                && self.nodes[HUB].state(NAMES[n]) == ServerState::Normal
        })
    }

    fn normal(&mut self) {
        self.exchange();
        for _ in 0..120 {
            if self.all_normal() {
                return;
            }
            self.run_for(1);
        }
        panic!("no NORMAL everywhere: {:?}", self.states());
    }

    fn states(&self) -> Vec<(usize, &'static str, ServerState)> {
        let mut v = Vec::new();
        for (n, name) in NAMES.iter().enumerate() {
            v.push((n, *name, self.nodes[n].state(name)));
            v.push((HUB, *name, self.nodes[HUB].state(name)));
        }
        v
    }

    /// A request at node `at` through its turn: the reply, if any, and what became of it. What
    /// the turn said to its partners is carried.
    fn dhcp(&mut self, at: usize, m: &Message) -> Outcome {
        let node = &mut self.nodes[at];
        let rx = rx(node.core.config().server_id);
        let input = Input::Dhcp { rx, bytes: dhcproto::Encodable::to_vec(m).unwrap() };
        let mut out: Output<()> = node.core.turn(Now::at(self.now), vec![input], &mut node.store);
        for (r, c) in std::mem::take(&mut out.link) {
            self.carry(at, r, c);
        }
        Outcome { reply: out.replies.pop(), changes: Vec::new(), result: out.handled[0] }
    }

    /// DISCOVER and REQUEST of `mac` on edge `e`'s access network, at node `at`.
    fn dora(&mut self, at: usize, e: usize, mac: [u8; 6]) -> Result<(Ipv4Addr, u32), Handled> {
        let discover = relayed(msg(mac, MessageType::Discover, Ipv4Addr::UNSPECIFIED), e);
        let o = self.dhcp(at, &discover);
        let Handled::Offered(a) = o.result else { return Err(o.result) };
        let sid = self.nodes[at].core.config().server_id;
        let o = self.dhcp(at, &relayed(select(mac, sid, a), e));
        assert_eq!(o.result, Handled::Acked(a));
        let t = lease_time(&o);
        self.exchange();
        Ok((a, t))
    }

    /// Addresses active on node `n`, with their client's MAC.
    fn active(&self, n: usize) -> BTreeMap<Ipv4Addr, Option<[u8; 6]>> {
        let leases = self.nodes[n].store.leases.values();
        leases.filter(|l| l.state == LeaseState::Active).map(|l| (l.address, l.mac())).collect()
    }
}

fn relayed(mut m: Message, edge: usize) -> Message {
    m.set_giaddr(RELAY[edge]);
    m
}

fn on(edge: usize, a: Ipv4Addr) -> bool {
    a.octets()[1] == u8::try_from(edge + 1).unwrap()
}

#[test]
fn one_edge_dies_the_hub_serves_its_clients_by_the_rules_and_the_other_pair_is_untouched() {
    let mut fleet = Fleet::new();
    fleet.normal();
    // Each relationship balanced its own pool: the hub holds half of each edge's free share,
    // and keeps each relationship's state under its name.
    let backup = |fleet: &Fleet, e: usize| {
        let hub = fleet.nodes[HUB].store.leases.values();
        hub.filter(|l| l.state == LeaseState::Backup && on(e, l.address)).count()
    };
    assert_eq!((backup(&fleet, 0), backup(&fleet, 1)), (10, 10));
    let kept: Vec<&String> = fleet.nodes[HUB].store.failover.keys().collect();
    assert_eq!(kept, ["edge-a", "edge-b"]);

    // A subscriber of edge-a binds there; the hub hears of it over edge-a's relationship only.
    let mac = mac_for(true, 1);
    let (addr_a, _) = fleet.dora(0, 0, mac).unwrap();
    assert!(on(0, addr_a));
    assert_eq!(fleet.active(HUB).get(&addr_a), Some(&Some(mac)));
    let edge_a_last = fleet.active(0);

    fleet.kill(0);
    fleet.run_for(5);
    assert_eq!(fleet.nodes[HUB].state("edge-a"), ServerState::CommunicationsInterrupted);
    assert_eq!(fleet.nodes[HUB].state("edge-b"), ServerState::Normal, "{:?}", fleet.states());
    assert_eq!(fleet.nodes[1].state("edge-b"), ServerState::Normal);
    assert!(fleet.nodes[HUB].core.fast_path_allowed(), "cut off is no reason for silence");

    // Edge-a's subscriber rebinds at the hub: renewed, within the MCLT rule.
    let rebind = relayed(msg(mac, MessageType::Request, addr_a), 0);
    let rebound = fleet.dhcp(HUB, &rebind);
    assert_eq!(rebound.result, Handled::Acked(addr_a));
    // At most MCLT past what edge-a said it might extend the lease to (its potential
    // expiration, which the hub acknowledged): edge-a waits that long before reusing it.
    let told = fleet.nodes[HUB].store.get(addr_a).unwrap().pet_received;
    let limit = told + u64::from(MCLT) - fleet.now;
    assert!(
        u64::from(lease_time(&rebound)) <= limit,
        "{} s: past the MCLT rule",
        lease_time(&rebound)
    );
    // A new subscriber of edge-a, even one of edge-a's hash buckets, gets one of the hub's own
    // (backup) addresses: the hub may not touch edge-a's free share while only cut off.
    let (addr_b, _) = fleet.dora(HUB, 0, mac_for(true, 2)).unwrap();
    assert!(on(0, addr_b));
    // Edge-b's pair goes on as before: a new subscriber there binds at edge-b, the hub hears.
    let mac_b = mac_for(true, 3);
    let (addr_c, _) = fleet.dora(1, 1, mac_b).unwrap();
    assert!(on(1, addr_c));
    assert_eq!(fleet.active(HUB).get(&addr_c), Some(&Some(mac_b)));

    // PARTNER-DOWN names its relationship: with two, the operator must say which.
    let ask = |fleet: &mut Fleet, relationship: Option<&str>| {
        let req = Request::FailoverPartnerDown {
            confirm: true,
            relationship: relationship.map(str::to_owned),
        };
        let input = Input::Control { req, reply: (), measured: Measured::default() };
        let hub = &mut fleet.nodes[HUB];
        let out: Output<()> = hub.core.turn(Now::at(fleet.now), vec![input], &mut hub.store);
        for (r, c) in out.link {
            fleet.carry(HUB, r, c);
        }
        out.answers[0].1.clone()
    };
    let vague = ask(&mut fleet, None);
    assert!(vague["error"].as_str().unwrap().contains("several"), "{vague}");
    let declared = ask(&mut fleet, Some("edge-a"));
    let usable_at = declared["partner_addresses_usable_at"].as_u64().unwrap();
    assert_eq!(usable_at, fleet.now + u64::from(MCLT));
    fleet.exchange();
    assert_eq!(fleet.nodes[HUB].state("edge-a"), ServerState::PartnerDown);
    assert_eq!(fleet.nodes[HUB].state("edge-b"), ServerState::Normal);

    // Past STOS+MCLT, edge-a's free share is the hub's too: more subscribers than the hub's own
    // share had left all bind.
    fleet.run_for(u64::from(MCLT) + 1);
    let mut got = Vec::new();
    for n in 10..25 {
        let (addr, _) = fleet.dora(HUB, 0, mac_for(n % 2 == 0, n)).unwrap_or_else(|h| {
            panic!("subscriber {n} of edge-a: {h:?}; hub {:?}", fleet.states())
        });
        got.push(addr);
    }
    assert!(got.iter().all(|x| on(0, *x)));
    assert_eq!(fleet.nodes[HUB].state("edge-b"), ServerState::Normal, "{:?}", fleet.states());

    // Safety: nobody's address went to another client, on any server.
    let hub = fleet.active(HUB);
    for (addr, owner) in edge_a_last.iter().chain(&fleet.active(1)) {
        if let Some(h) = hub.get(addr) {
            assert_eq!(h, owner, "{addr} is bound to two clients");
        }
    }
}

/// Edge-b's pair, after edge-a retired and its subnet moved to edge-b: edge-b serves both
/// subnets, the hub has one relationship, `edge-b`, for both.
fn merged_configs() -> (Config, Config) {
    let (me, name) = (EDGE_IP[1], NAMES[1]);
    let edge = format!(
        "interfaces = [\"eth1\"]\nserver_id = \"{me}\"\n\n\
         [[failover]]\nname = \"{name}\"\nrole = \"primary\"\naddress = \"{me}\"\n\
         peer_address = \"{HUB_IP}\"\nmclt = {MCLT}\nsplit = 128\n\n{}{}",
        subnet(0, name),
        subnet(1, name)
    );
    let hub = format!(
        "interfaces = [\"eth1\"]\nserver_id = \"{HUB_IP}\"\n\n\
         [[failover]]\nname = \"{name}\"\nrole = \"secondary\"\naddress = \"{HUB_IP}\"\n\
         peer_address = \"{me}\"\n\n{}{}",
        subnet(0, name),
        subnet(1, name)
    );
    (Config::from_toml(&edge, "edge.toml").unwrap(), Config::from_toml(&hub, "hub.toml").unwrap())
}

impl Node {
    /// The process starts again, on `cfg`, from what its store kept.
    fn restart(&mut self, cfg: Config) {
        self.core = Core::new(cfg, &self.store, T0).unwrap();
        self.inbox.clear();
        self.alive = true;
    }
}

#[test]
fn a_subnet_moved_to_another_relationship_is_told_to_its_new_partner() {
    let mut fleet = Fleet::new();
    fleet.normal();
    let mac = mac_for(true, 1);
    let (a, _) = fleet.dora(0, 0, mac).unwrap();
    assert!(on(0, a));
    let hub_backup = |fleet: &Fleet| -> Vec<Ipv4Addr> {
        let hub = fleet.nodes[HUB].store.leases.values();
        hub.filter(|l| l.state == LeaseState::Backup && on(0, l.address))
            .map(|l| l.address)
            .collect()
    };
    let backup = hub_backup(&fleet);
    assert_eq!(backup.len(), 10);

    // Edge-a retires; its subnet joins edge-b's relationship, on both servers of that pair.
    fleet.kill(0);
    let (edge_cfg, hub_cfg) = merged_configs();
    fleet.nodes[1].restart(edge_cfg);
    fleet.nodes[HUB].restart(hub_cfg);
    fleet.wires = vec![([(1, RelationshipId(0)), (HUB, RelationshipId(0))], None)];
    // The hub's first turn marks its records of subnet 1 as news for edge-b, in the store.
    let hub = &mut fleet.nodes[HUB];
    let out: Output<()> = hub.core.turn(Now::at(fleet.now), Vec::new(), &mut hub.store);
    let stored = hub.store.get(a).unwrap();
    assert!(!stored.partner_acked && stored.pet_acked == 0, "{stored:?}");
    for (r, c) in out.link {
        fleet.carry(HUB, r, c);
    }
    fleet.exchange();
    for _ in 0..120 {
        if fleet.nodes[1].state("edge-b") == ServerState::Normal
            && fleet.nodes[HUB].state("edge-b") == ServerState::Normal
        {
            break;
        }
        fleet.run_for(1);
    }
    fleet.run_for(5);

    // Edge-b, which never saw subnet 1, now knows its bound client and the hub's share of it.
    assert_eq!(fleet.active(1).get(&a), Some(&Some(mac)), "the binding reached edge-b");
    let theirs: Vec<Ipv4Addr> = fleet.nodes[1]
        .store
        .leases
        .values()
        .filter(|l| l.state == LeaseState::Backup && on(0, l.address))
        .map(|l| l.address)
        .collect();
    for b in &backup {
        assert!(theirs.contains(b) || !hub_backup(&fleet).contains(b), "{b}: two owners");
    }
    assert!(fleet.nodes[HUB].store.get(a).unwrap().partner_acked, "edge-b acknowledged it");

    // The hub's state now names subnet 1's pool: the next start has no news to send.
    let blob = &fleet.nodes[HUB].store.failover["edge-b"];
    let ranges = crate::failover::decode_ranges(blob).unwrap();
    assert!(ranges.iter().any(|(lo, hi)| on(0, *lo) && on(0, *hi)), "{ranges:?}");
    let (_, hub_cfg) = merged_configs();
    fleet.nodes[HUB].restart(hub_cfg);
    assert!(fleet.nodes[HUB].store.get(a).unwrap().partner_acked);
}

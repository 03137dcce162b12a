//! `xdhcp-lab bench endurance`: how long a failover primary cut off from its partner keeps a
//! steady client population served, with and without rewinding (draft-12 §5.2.2).
//!
//! Sans-IO and on simulated time: the server's own turn ([`Core::turn`]) over a store in
//! memory, resumed in COMMUNICATIONS-INTERRUPTED with half the pool in the partner's backup
//! share, as after a NORMAL period's balancing. Clients arrive, renew at half their lease, and leave (half of
//! them with a RELEASE, half by going silent), so as many are present at any time. The figure
//! is the simulated time until the first new client finds no address in our share.
use std::net::Ipv4Addr;

use dhcp_failover::{PersistedState, ServerState, load_balance::Hba};
use dhcproto::{
    Encodable as _,
    v4::{DhcpOption, Message, MessageType, Opcode, OptionCode},
};
use serde_json::{Value, json};

use xdhcp::{
    config::Config,
    core::{Core, Input, MemStore, Now},
    failover::encode_state,
    server::{DropReason, Handled, RxInfo},
    store::{Lease, LeaseState},
};

const T0: u64 = 1_700_000_000;
const POOL: u32 = 200;
const LEASE: u32 = 3600;
const MCLT: u32 = 3600;
const STEP: u64 = 60;
/// Beyond this the survivor is taken to serve its population indefinitely.
const HORIZON_HOURS: u64 = 24 * 30;

fn config() -> Config {
    let last = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 10)) + POOL - 1);
    let text = format!(
        r#"interfaces = ["eth1"]
server_id = "10.0.0.1"

[failover]
name = "endurance"
role = "primary"
address = "10.0.0.1"
peer_address = "10.0.0.2"
mclt = {MCLT}
split = 128

[[subnet]]
prefix = "10.0.0.0/16"
pools = [{{ start = "10.0.0.10", end = "{last}" }}]
lease_time = {LEASE}
failover = true
"#
    );
    Config::from_toml(&text, "endurance.toml").unwrap_or_else(|e| panic!("bench config: {e}"))
}

struct Present {
    mac: [u8; 6],
    addr: Ipv4Addr,
    renew_at: u64,
    leaves_at: u64,
    releases: bool,
}

fn msg(mac: [u8; 6], kind: MessageType, ciaddr: Ipv4Addr) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0x55, ciaddr, z, z, z, &mac);
    m.set_opcode(Opcode::BootRequest);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m
}

/// splitmix64, so every run of the benchmark sees the same population.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// One client's request through the server's turn: what became of it, and the lease an ACK
/// gave (seconds).
fn ask(core: &mut Core, store: &mut MemStore, now: u64, m: &Message) -> (Handled, Option<u64>) {
    let rx = RxInfo { ifindex: 2, local_addr: Some(core.config().server_id) };
    let bytes = m.to_vec().unwrap_or_default();
    let out = core.turn(Now::at(now), vec![Input::<()>::Dhcp { rx, bytes }], store);
    let secs =
        out.replies.first().and_then(|r| match r.msg.opts().get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(t)) => Some(u64::from(*t)),
            _ => None,
        });
    (out.handled.first().copied().unwrap_or(Handled::Dropped(DropReason::Undecodable)), secs)
}

/// One run: `population` clients present at a time, each staying 1 to 3 hours.
///
/// # Panics
/// If the benchmark's own configuration is refused (a bug in this file, not a result).
#[must_use]
pub fn run(population: u32, rewinding: bool) -> Value {
    let cfg = config();
    // What balancing left: the upper half of the pool in the secondary's backup share.
    let mut store = MemStore::default();
    for i in POOL / 2..POOL {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 10)) + i);
        store.leases.insert(a, Lease::new(a, LeaseState::Backup, 0, T0));
    }
    let first = Ipv4Addr::new(10, 0, 0, 10);
    let pool = (first, Ipv4Addr::from(u32::from(first) + POOL - 1));
    let persisted = PersistedState {
        my_state: ServerState::CommunicationsInterrupted,
        my_state_since: T0,
        partner_state: Some(ServerState::Normal),
        partner_state_since: T0,
        mclt: MCLT,
        hba: Hba::split(128),
    };
    let state = encode_state(&persisted, &[pool]);
    store.failover.insert("endurance".to_owned(), state);
    let mut core = Core::new(cfg.clone(), &store, T0).unwrap_or_else(|e| panic!("{e}"));
    core.set_rewinding(rewinding);
    let mut rng = Rng(7);
    let mut present: Vec<Present> = Vec::new();
    let (mut arrivals, mut next_mac) = (0u64, 0u32);
    let mut now = T0;
    let mut refused_at = None;
    let mut not_serving = 0u64;
    while now < T0 + HORIZON_HOURS * 3600 && refused_at.is_none() {
        now += STEP;
        // Timers and expiry: a turn with nothing to read.
        core.turn(Now::at(now), Vec::<Input<()>>::new(), &mut store);
        for p in &mut present {
            if p.renew_at <= now && p.leaves_at > now {
                let renewal = msg(p.mac, MessageType::Request, p.addr);
                let (_, secs) = ask(&mut core, &mut store, now, &renewal);
                p.renew_at = now + secs.unwrap_or(STEP) / 2;
            }
        }
        for p in present.iter().filter(|p| p.leaves_at <= now && p.releases) {
            ask(&mut core, &mut store, now, &msg(p.mac, MessageType::Release, p.addr));
        }
        present.retain(|p| p.leaves_at > now);
        while present.len() < population as usize {
            next_mac += 1;
            let mut mac = [2, 0xee, 0, 0, 0, 0];
            mac[2..].copy_from_slice(&next_mac.to_be_bytes());
            arrivals += 1;
            let discover = msg(mac, MessageType::Discover, Ipv4Addr::UNSPECIFIED);
            let (Handled::Offered(a), _) = ask(&mut core, &mut store, now, &discover) else {
                refused_at = Some(now);
                break;
            };
            let mut req = msg(mac, MessageType::Request, Ipv4Addr::UNSPECIFIED);
            req.opts_mut().insert(DhcpOption::ServerIdentifier(cfg.server_id));
            req.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
            if ask(&mut core, &mut store, now, &req).0 != Handled::Acked(a) {
                not_serving += 1;
            }
            present.push(Present {
                mac,
                addr: a,
                renew_at: now + u64::from(MCLT) / 2,
                leaves_at: now + 3600 + rng.below(2 * 3600),
                releases: rng.below(2) == 0,
            });
        }
    }
    let c = core.server().counters();
    #[expect(clippy::cast_precision_loss, reason = "simulated seconds, far below 2^52")]
    let hours = (refused_at.unwrap_or(now) - T0) as f64 / 3600.0;
    let state = core.failover().map(|f| f.peer().state().name());
    json!({
        "rewinding": rewinding,
        "population": population,
        "served_hours": hours,
        "refused": refused_at.is_some(),
        "clients_arrived": arrivals,
        "requests_not_acked": not_serving,
        "rewound_to_free": c.rewound_to_free,
        "rewound_to_active": c.rewound_to_active,
        "state": state,
    })
}

/// Both runs for a few population sizes.
#[must_use]
pub fn endurance() -> Value {
    let runs: Vec<Value> =
        [20, 50, 80].into_iter().flat_map(|n| [run(n, false), run(n, true)]).collect();
    json!({
        "pool": POOL,
        "our_share": POOL / 2,
        "lease_time": LEASE,
        "mclt": MCLT,
        "stay_hours": "1 to 3, half release",
        "horizon_hours": HORIZON_HOURS,
        "runs": runs,
    })
}

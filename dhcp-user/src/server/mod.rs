//! The DHCPv4 decision engine: requests in, replies and lease changes out.
//!
//! Sans-IO and deterministic: no sockets, no clock (every call takes `now`, unix seconds), no
//! database. It keeps an in-memory index of the leases loaded from the store and returns each
//! decision's [`LeaseChange`]s for the caller to commit.
//!
//! # The caller's contract
//!
//! One task owns the [`Server`], the [`crate::store::LeaseStore`] and the kernel lease map. It
//! loops:
//!
//! 1. drain whatever requests are queued, calling [`Server::handle`] (or
//!    [`Server::handle_bytes`]) for each, and [`Server::apply_fast_path_renewal`] for each
//!    event the fast path reported; collect every [`Outcome::changes`];
//! 2. commit all of them in one [`crate::store::LeaseStore::commit`] (group commit);
//! 3. apply [`Server::map_ops`] of the committed changes to the kernel map;
//! 4. only then send the replies.
//!
//! If the commit fails, send none of the batch's replies: an ACK must never be ahead of stable
//! storage, and the engine's memory is then ahead of the store, so the caller should restart
//! the engine from [`crate::store::LeaseStore::load_all`]. Call [`Server::expire`] when
//! [`Server::next_timeout`] is due, after draining the fast path's events (a renewal XDP
//! answered just before the expiry then counts), and commit its changes the same way.
//!
//! Every ACK's lease ends at `now + lease`, which is exactly the committed `expires_at`, and the
//! committed `held_until` (how far the fast path may renew without asking) is never below it.
//! An address goes to another client only once its `held_until` has passed.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use dhcp_failover::{
    Role, ServerState,
    engine::Service,
    load_balance::{self, Hba},
    mclt::{self, LeaseTimes},
};
use dhcproto::{
    Decodable as _,
    v4::{Message, MessageType},
};

use crate::config::{Config, Subnet, SubnetId};
use crate::store::{Lease, LeaseChange, LeaseState};

mod index;
mod reply;
mod request;
#[cfg(test)]
mod tests;

pub use reply::{Dest, Reply};
pub use request::{Client, ClientKey};

use index::{Index, reuse_at};
use request::Request;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxInfo {
    /// Interface the request arrived on; replies that need L2 leave through it.
    pub ifindex: u32,
    /// That interface's IPv4 address: it selects the subnet of unrelayed requests.
    pub local_addr: Option<Ipv4Addr>,
    /// IP source and UDP port of the request.
    pub src: SocketAddrV4,
    pub src_mac: [u8; 6],
}

/// What [`Server::handle`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// To be sent only once `changes` are committed.
    pub reply: Option<Reply>,
    pub changes: Vec<LeaseChange>,
    pub result: Handled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Offered(Ipv4Addr),
    Acked(Ipv4Addr),
    Nacked,
    Informed,
    Declined(Ipv4Addr),
    Released(Ipv4Addr),
    /// No reply, for this reason.
    Dropped(DropReason),
}

/// Why a request got no reply. Malformed requests and ones RFC 2131 says to ignore alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a BOOTP/DHCP message dhcproto can decode.
    Undecodable,
    /// op is not BOOTREQUEST.
    NotBootRequest,
    /// hlen over 16, or no usable identity (no client id and an all-zero chaddr).
    BadHardwareAddress,
    /// Option 61 shorter than a type byte and one byte of identifier.
    BadClientId,
    /// No option 53: plain BOOTP, which this server does not serve.
    NoMessageType,
    /// A message type a server does not act on (OFFER, ACK, lease query...).
    UnsupportedMessageType,
    /// A REQUEST, DECLINE or RELEASE without the address it is about.
    MissingAddress,
    /// No configured subnet matches the request's link.
    NoSubnet,
    /// The subnet has no address left for this client.
    PoolExhausted,
    /// Addressed to another server (option 54): in SELECTING, the client chose another offer.
    OtherServer,
    /// INIT-REBOOT, RENEWING or REBINDING from a client this server knows nothing about:
    /// RFC 2131 §4.3.2 says to stay silent, another server may know it.
    UnknownClient,
    /// DECLINE or RELEASE for an address that is not the sender's.
    NotTheirs,
    /// A DISCOVER whose hash bucket is the failover partner's (RFC 3074 load balancing).
    LoadBalancedToPeer,
    /// The failover state forbids answering this request (STARTUP, RECOVER, a partner that
    /// took over...): answering could hand out an address the partner also hands out.
    FailoverNotResponding,
}

impl DropReason {
    pub const ALL: [DropReason; 14] = [
        Self::Undecodable,
        Self::NotBootRequest,
        Self::BadHardwareAddress,
        Self::BadClientId,
        Self::NoMessageType,
        Self::UnsupportedMessageType,
        Self::MissingAddress,
        Self::NoSubnet,
        Self::PoolExhausted,
        Self::OtherServer,
        Self::UnknownClient,
        Self::NotTheirs,
        Self::LoadBalancedToPeer,
        Self::FailoverNotResponding,
    ];

    /// Stable name for metrics and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::NotBootRequest => "not_boot_request",
            Self::BadHardwareAddress => "bad_hardware_address",
            Self::BadClientId => "bad_client_id",
            Self::NoMessageType => "no_message_type",
            Self::UnsupportedMessageType => "unsupported_message_type",
            Self::MissingAddress => "missing_address",
            Self::NoSubnet => "no_subnet",
            Self::PoolExhausted => "pool_exhausted",
            Self::OtherServer => "other_server",
            Self::UnknownClient => "unknown_client",
            Self::NotTheirs => "not_theirs",
            Self::LoadBalancedToPeer => "load_balance_to_peer",
            Self::FailoverNotResponding => "failover_not_responding",
        }
    }

    fn slot(self) -> usize {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

/// Message types counted on receipt, in [`Counters::received`] order.
pub const RECEIVED_TYPES: [&str; 6] =
    ["discover", "request", "decline", "release", "inform", "other"];

/// Running totals, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Decodable requests by message type, see [`RECEIVED_TYPES`].
    pub received: [u64; 6],
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub informs: u64,
    pub declines: u64,
    pub releases: u64,
    /// By [`DropReason`], in [`DropReason::ALL`] order.
    pub dropped: [u64; 14],
    /// Leases that went straight back to this server's free share because the partner never
    /// heard of them (rewinding, draft-12 §5.2.2).
    pub rewound_to_free: u64,
    /// Expired or released leases given back to their own client because the partner still
    /// holds them as that client's.
    pub rewound_to_active: u64,
}

impl Counters {
    #[must_use]
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.dropped[r.slot()]
    }
}

/// An active lease as the kernel map needs it; see `dhcp_common::LeaseEntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastPathLease {
    pub address: Ipv4Addr,
    pub chaddr: [u8; 6],
    /// Option 61's value, type byte included, when the lease was bound with one.
    pub client_id: Option<Vec<u8>>,
    /// The subnet's `lease_time`: what a fast-path renewal grants, before the horizon caps it.
    pub lease_secs: u32,
    /// Index of the subnet's slot in the kernel's subnet map.
    pub subnet: u32,
    /// Committed horizon, unix seconds; the caller converts it to the kernel's monotonic clock
    /// (see [`crate::fastpath::clock`]).
    pub held_until: u64,
}

/// A kernel map update following a committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOp {
    Upsert(FastPathLease),
    Delete(Ipv4Addr),
}

/// What the failover relationship allows right now, as far as answering clients goes. The
/// failover glue sets it whenever the relationship's state changes; it applies only to subnets
/// with `failover = true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverGate {
    pub role: Role,
    pub state: ServerState,
    pub service: Service,
    /// The MCLT in force (the secondary's is the primary's).
    pub mclt: u32,
    pub hba: Hba,
    pub load_balance_max_seconds: u16,
    /// When this server entered `state` (its STOS): PARTNER-DOWN counts the MCLT from here.
    pub since: u64,
}

impl FailoverGate {
    /// Where a relationship starts: nobody is answered until the partner has been heard from.
    #[must_use]
    pub fn starting(f: &crate::config::Failover) -> Self {
        FailoverGate {
            role: f.role,
            state: ServerState::Startup,
            service: Service::NotResponding,
            mclt: f.mclt,
            hba: f.hba,
            load_balance_max_seconds: f.load_balance_max_seconds,
            since: 0,
        }
    }

    /// Latest time the fast path may let `l` run to, by the MCLT rule: MCLT beyond what the
    /// partner acknowledged or told us. `told` is the lease end the partner may know of,
    /// which counts only while the servers cannot talk (draft-12 §9.9.2).
    #[must_use]
    pub fn grant_limit(&self, l: &Lease, told: u64) -> u64 {
        self.times(l, told).grant_horizon(self.state).saturating_add(u64::from(self.mclt))
    }

    fn times(&self, l: &Lease, told: u64) -> LeaseTimes {
        LeaseTimes {
            lease_expiration: told,
            sent_pet: l.pet_sent,
            acked_pet: l.pet_acked,
            received_pet: l.pet_received,
        }
    }

    /// Whether this server may give `l`'s address (`None`: no record, an address nobody used
    /// yet) to a client that does not hold it at `now`. Free addresses are the primary's,
    /// backup ones the secondary's (draft-12 §5.11); anything bound, or on its way back to
    /// free, waits for the partner to hear of it, except in PARTNER-DOWN (see
    /// [`FailoverGate::takeover_at`]).
    fn may_allocate(&self, l: Option<&Lease>, now: u64) -> bool {
        let own = match l.map(|l| l.state) {
            None | Some(LeaseState::Free) => self.role == Role::Primary,
            Some(LeaseState::Backup) => self.role == Role::Secondary,
            Some(_) => false,
        };
        own || self.takeover_at(l).is_some_and(|t| t <= now)
    }

    /// In PARTNER-DOWN, when an address this server does not own (the partner's free or
    /// backup share, or one that expired or was released without the partner acknowledging
    /// it) may go to a new client: MCLT beyond every time either side may have promised a
    /// client, and never before MCLT after entering PARTNER-DOWN (draft-12 §5.2.2, §9.4.2).
    /// The partner may have handed the address out just before it went silent, with a lease of
    /// at most that much. `None`: not in PARTNER-DOWN, or an address that never moves this way
    /// (active leases expire first; abandoned ones wait out their probation).
    #[must_use]
    pub fn takeover_at(&self, l: Option<&Lease>) -> Option<u64> {
        if self.service != Service::PartnerDown {
            return None;
        }
        let mclt = u64::from(self.mclt);
        match l {
            None => Some(self.since.saturating_add(mclt)),
            Some(l) => match l.state {
                LeaseState::Free
                | LeaseState::Backup
                | LeaseState::Expired
                | LeaseState::Released
                | LeaseState::Reset => {
                    let t =
                        self.times(l, l.expires_at).partner_down_reuse_at(self.since, self.mclt);
                    Some(t.max(l.held_until))
                }
                LeaseState::Active | LeaseState::Abandoned => None,
            },
        }
    }
}

#[derive(Debug, Clone)]
struct Offer {
    client: ClientKey,
    subnet: SubnetId,
    until: u64,
}

pub struct Server {
    cfg: Config,
    ix: Index,
    /// Offered addresses, held in memory only: losing them in a crash costs a client one retry.
    offers: HashMap<Ipv4Addr, Offer>,
    offer_of: HashMap<ClientKey, Ipv4Addr>,
    counters: Counters,
    failover: Option<FailoverGate>,
    /// Whether leases may rewind in COMMUNICATIONS-INTERRUPTED; off only to measure what
    /// rewinding is worth (`xdhcp bench endurance`).
    rewinding: bool,
}

impl Server {
    /// An engine for `cfg` over the leases loaded from the store. A record's subnet is
    /// recomputed from its address, so renumbering `[[subnet]]` tables between runs is safe;
    /// records no subnet contains are kept but never offered nor put on the fast path.
    #[must_use]
    pub fn new(cfg: Config, leases: impl IntoIterator<Item = Lease>) -> Self {
        let mut ix = Index::new(&cfg);
        for mut l in leases {
            if let Some(s) = cfg.subnet_containing(l.address) {
                l.subnet = s.0;
            }
            let _ = ix.put(&cfg, l);
        }
        let failover = cfg.failover.as_ref().map(FailoverGate::starting);
        Server {
            cfg,
            ix,
            offers: HashMap::new(),
            offer_of: HashMap::new(),
            counters: Counters::default(),
            failover,
            rewinding: true,
        }
    }

    /// Turns rewinding (draft-12 §5.2.2) on or off; on by default.
    pub fn set_rewinding(&mut self, on: bool) {
        self.rewinding = on;
    }

    /// Whether `sid` is shared and the partner is unreachable, the one state where the
    /// partner's view of a binding is frozen and so can be rewound to (see [`Lease::rewind_state`]).
    fn rewinds(&self, sid: SubnetId) -> bool {
        self.rewinding
            && self.gate(sid).is_some_and(|g| g.state == ServerState::CommunicationsInterrupted)
    }

    /// `l`, whose client is gone (expired or released into `gone`), as it should be now: back
    /// in our free share if the partner never heard of the binding, or kept rewindable to its
    /// client while the partner cannot hear of its end.
    fn client_gone(&mut self, mut l: Lease, gone: LeaseState) -> Lease {
        match l.rewind_state {
            Some(free @ (LeaseState::Free | LeaseState::Backup)) => {
                // held_until stays: the fast path may still answer the old client until then,
                // and reuse_at waits for it.
                l.state = free;
                l.client_id = None;
                l.chaddr.clear();
                l.hostname = None;
                l.pet_sent = l.pet_acked;
                l.rewind_state = None;
                l.rewind_expiry = None;
                self.counters.rewound_to_free += 1;
            }
            Some(_) => l.state = gone,
            None => {
                if self.rewinds(SubnetId(l.subnet)) {
                    l.rewind_state = Some(LeaseState::Active);
                    l.rewind_expiry = Some(l.expires_at);
                }
                l.state = gone;
            }
        }
        l
    }

    /// The failover relationship's verdict from now on (see [`FailoverGate`]).
    pub fn set_failover_gate(&mut self, gate: FailoverGate) {
        if self.cfg.failover.is_some() {
            self.failover = Some(gate);
        }
    }

    #[must_use]
    pub fn failover_gate(&self) -> Option<&FailoverGate> {
        self.failover.as_ref()
    }

    /// The gate that applies to subnet `sid`: none unless the subnet is shared.
    fn gate(&self, sid: SubnetId) -> Option<FailoverGate> {
        self.cfg.subnet(sid).filter(|s| s.failover).and(self.failover)
    }

    /// Replaces a record on the failover relationship's behalf (a partner's binding update, an
    /// address moved between the free and backup pools). An offer we made of that address to
    /// someone else no longer stands.
    pub fn put_failover_record(&mut self, now: u64, mut l: Lease) -> LeaseChange {
        if let Some(s) = self.cfg.subnet_containing(l.address) {
            l.subnet = s.0;
        }
        if let Some(o) = self.offers.get(&l.address)
            && (l.state != LeaseState::Active || o.client != ClientKey::of_lease(&l))
        {
            self.forget_offer(l.address, now);
        }
        self.ix.put(&self.cfg, l)
    }

    /// The partner acknowledged `pet` for `a`: the fast path may now renew MCLT beyond it.
    pub fn failover_acked(&mut self, a: Ipv4Addr, pet: u64) -> Option<LeaseChange> {
        let mut l = self.ix.leases.get(&a)?.clone();
        if pet <= l.pet_acked {
            return None;
        }
        l.pet_acked = pet;
        if l.state == LeaseState::Active
            && let Some(g) = self.gate(SubnetId(l.subnet))
            && let Some(s) = self.cfg.subnet(SubnetId(l.subnet))
        {
            let committed = l.expires_at.saturating_add(u64::from(self.horizon(s)));
            let limit = g.grant_limit(&l, l.expires_at);
            l.held_until = l.held_until.max(committed.min(limit));
        }
        Some(self.ix.put(&self.cfg, l))
    }

    /// Unused addresses of subnet `sid`'s pools in binding state `state` (FREE also counts an
    /// address with no record), highest first, at most `n`, none offered or reserved: what pool
    /// balancing moves to the partner. The top of a pool is what allocation reaches last, so
    /// these are the addresses least likely to have a client coming back for them.
    #[must_use]
    pub fn unused_addresses_from_top(
        &self,
        sid: SubnetId,
        state: LeaseState,
        n: usize,
    ) -> Vec<Ipv4Addr> {
        let Some(s) = self.cfg.subnet(sid) else { return Vec::new() };
        let mut out = Vec::new();
        for p in s.pools.iter().rev() {
            let (lo, hi) = (u32::from(p.start), u32::from(p.end));
            for a in (lo..=hi).rev().map(Ipv4Addr::from) {
                if out.len() >= n {
                    return out;
                }
                let matches = match self.ix.leases.get(&a) {
                    None => state == LeaseState::Free,
                    Some(l) => l.state == state,
                };
                if matches && !self.ix.reserved.contains_key(&a) && !self.offers.contains_key(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// Pool addresses of subnet `sid` by binding state; addresses without a record count as
    /// free (the primary's).
    #[must_use]
    pub fn pool_counts(&self, sid: SubnetId) -> HashMap<LeaseState, u64> {
        let mut counts: HashMap<LeaseState, u64> = HashMap::new();
        let Some(s) = self.cfg.subnet(sid) else { return counts };
        let mut recorded = 0;
        for l in self.ix.leases.values() {
            if s.in_pool(l.address) && !self.ix.reserved.contains_key(&l.address) {
                *counts.entry(l.state).or_default() += 1;
                recorded += 1;
            }
        }
        let reserved_in_pool = self.ix.reserved.keys().filter(|a| s.in_pool(**a)).count() as u64;
        let size: u64 = s.pools.iter().map(crate::config::Pool::size).sum();
        *counts.entry(LeaseState::Free).or_default() +=
            size.saturating_sub(recorded + reserved_in_pool);
        counts
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    #[must_use]
    pub fn lease(&self, a: Ipv4Addr) -> Option<&Lease> {
        self.ix.leases.get(&a)
    }

    /// Every record, in no particular order.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.ix.leases.values()
    }

    /// Decodes a UDP payload and handles it; undecodable bytes are counted and dropped.
    pub fn handle_bytes(&mut self, now: u64, payload: &[u8], rx: &RxInfo) -> Outcome {
        if !request::dhcproto_safe(payload) {
            return self.dropped(DropReason::Undecodable);
        }
        // A backstop: should the decoder still panic on some input, that input is one more
        // undecodable packet, not a dead server.
        match std::panic::catch_unwind(|| Message::from_bytes(payload)) {
            Ok(Ok(m)) => self.handle(now, &m, rx),
            _ => self.dropped(DropReason::Undecodable),
        }
    }

    /// Decides what to do with one request. See the module doc for what the caller must do
    /// with the [`Outcome`].
    pub fn handle(&mut self, now: u64, msg: &Message, rx: &RxInfo) -> Outcome {
        let req = match Request::parse(msg) {
            Ok(r) => r,
            Err(why) => return self.dropped(why),
        };
        let slot = match req.kind {
            MessageType::Discover => 0,
            MessageType::Request => 1,
            MessageType::Decline => 2,
            MessageType::Release => 3,
            MessageType::Inform => 4,
            _ => 5,
        };
        self.counters.received[slot] += 1;
        let out = match req.kind {
            MessageType::Discover => self.discover(now, &req, rx),
            MessageType::Request => self.request(now, &req, rx),
            MessageType::Decline => self.decline(now, &req),
            MessageType::Release => self.release(now, &req),
            MessageType::Inform => self.inform(&req, rx),
            _ => Err(DropReason::UnsupportedMessageType),
        };
        match out {
            Ok(o) => {
                let c = &mut self.counters;
                match o.result {
                    Handled::Offered(_) => c.offers += 1,
                    Handled::Acked(_) => c.acks += 1,
                    Handled::Nacked => c.naks += 1,
                    Handled::Informed => c.informs += 1,
                    Handled::Declined(_) => c.declines += 1,
                    Handled::Released(_) => c.releases += 1,
                    Handled::Dropped(r) => c.dropped[r.slot()] += 1,
                }
                o
            }
            Err(why) => self.dropped(why),
        }
    }

    fn dropped(&mut self, why: DropReason) -> Outcome {
        self.counters.dropped[why.slot()] += 1;
        Outcome { reply: None, changes: Vec::new(), result: Handled::Dropped(why) }
    }

    /// Ends leases and probations due at `now` and lets lapsed offers go. Returns the changes
    /// to commit (followed by their [`Server::map_ops`]).
    pub fn expire(&mut self, now: u64) -> Vec<LeaseChange> {
        let mut out = Vec::new();
        while let Some(&(t, a)) = self.ix.timers.first() {
            if t > now {
                break;
            }
            self.ix.timers.pop_first();
            let Some(mut l) = self.ix.leases.get(&a).cloned() else { continue };
            match l.state {
                LeaseState::Active if l.expires_at <= now => {
                    l = self.client_gone(l, LeaseState::Expired);
                }
                LeaseState::Abandoned if l.probation_until.is_some_and(|p| p <= now) => {
                    l.state = LeaseState::Free;
                    l.probation_until = None;
                    l.client_id = None;
                    l.chaddr.clear();
                    l.hostname = None;
                }
                _ => continue,
            }
            l.stos = now;
            out.push(self.ix.put(&self.cfg, l));
        }
        let lapsed: Vec<Ipv4Addr> =
            self.offers.iter().filter(|(_, o)| o.until <= now).map(|(a, _)| *a).collect();
        for a in lapsed {
            self.forget_offer(a, now);
        }
        out
    }

    /// The earliest `now` at which [`Server::expire`] has something to do.
    #[must_use]
    pub fn next_timeout(&self) -> Option<u64> {
        let lease = self.ix.timers.first().map(|&(t, _)| t);
        let offer = self.offers.values().map(|o| o.until).min();
        lease.into_iter().chain(offer).min()
    }

    /// Records a renewal the fast path answered (an event from the kernel): the client was told
    /// its lease runs `granted_secs` from `now`. The horizon moves along so the next renewal can
    /// be answered in the kernel too. `None` when the event concerns no lease of that client
    /// (the address changed hands since: the event is stale).
    pub fn apply_fast_path_renewal(
        &mut self,
        now: u64,
        address: Ipv4Addr,
        chaddr: [u8; 6],
        granted_secs: u32,
    ) -> Option<LeaseChange> {
        let l = self.ix.leases.get(&address)?;
        if l.mac() != Some(chaddr)
            || !matches!(l.state, LeaseState::Active | LeaseState::Expired | LeaseState::Released)
        {
            return None;
        }
        let s = self.cfg.subnet(SubnetId(l.subnet))?;
        let end = now.saturating_add(u64::from(granted_secs));
        let mut n = l.clone();
        if n.state != LeaseState::Active {
            n.state = LeaseState::Active;
            n.stos = now;
        }
        let told = n.expires_at;
        n.expires_at = n.expires_at.max(end);
        n.cltt = now;
        let horizon = u64::from(self.horizon(s));
        let mut held = n.expires_at.saturating_add(horizon);
        if let Some(g) = self.gate(SubnetId(n.subnet)) {
            // The partner hears of this renewal through a BNDUPD carrying this PET; until it
            // acknowledges, the horizon stays MCLT beyond what it already knows.
            let pet = mclt::potential_expiration(now, s.lease_time, granted_secs);
            n.pet_sent = n.pet_sent.max(pet);
            held = held.min(g.grant_limit(&n, told));
        } else if n.state == l.state && n.held_until >= end.saturating_add(horizon / 2) {
            // What XDP granted is already inside the committed horizon, which still reaches
            // half a horizon past it: nothing new needs to be durable. Record the renewal in
            // memory only, so the store writes O(leases / horizon), not O(renewals); after a
            // crash the lease counts as held until `held_until` anyway.
            let _ = self.ix.put(&self.cfg, n);
            return None;
        }
        n.held_until = n.held_until.max(held);
        Some(self.ix.put(&self.cfg, n))
    }

    /// The kernel map entry for `l`, if the fast path may renew it at `now`.
    #[must_use]
    pub fn fast_path_entry(&self, l: &Lease, now: u64) -> Option<FastPathLease> {
        if !self.cfg.fast_path.enabled
            || l.state != LeaseState::Active
            || l.expires_at <= now
            || l.held_until <= now
        {
            return None;
        }
        let s = self.cfg.subnet(self.cfg.subnet_containing(l.address)?)?;
        Some(FastPathLease {
            address: l.address,
            chaddr: l.mac()?,
            client_id: l.client_id.clone(),
            lease_secs: s.lease_time,
            subnet: s.id.0,
            held_until: l.held_until,
        })
    }

    /// Every lease the kernel map should hold at `now` (for a full reconcile at start).
    pub fn fast_path_entries(&self, now: u64) -> impl Iterator<Item = FastPathLease> + '_ {
        self.ix.leases.values().filter_map(move |l| self.fast_path_entry(l, now))
    }

    /// The kernel map updates that follow committed `changes`.
    #[must_use]
    pub fn map_ops(&self, changes: &[LeaseChange], now: u64) -> Vec<MapOp> {
        changes
            .iter()
            .map(|c| match c {
                LeaseChange::Put(l) => {
                    self.fast_path_entry(l, now).map_or(MapOp::Delete(l.address), MapOp::Upsert)
                }
                LeaseChange::Remove(a) => MapOp::Delete(*a),
            })
            .collect()
    }

    /// The lease to give (seconds) and, on a shared subnet, the potential expiration time to
    /// send the partner. On a shared subnet the lease is capped by the MCLT rule: at most MCLT
    /// beyond what the partner knows of the address (draft-12 §5.2.1).
    fn lease_length(
        &self,
        now: u64,
        s: &Subnet,
        req: &Request<'_>,
        a: Ipv4Addr,
    ) -> (u32, Option<u64>) {
        let desired = s.lease_for(req.lease_time);
        let Some(g) = self.gate(s.id) else { return (desired, None) };
        let times = match self.ix.leases.get(&a) {
            Some(l) if req.client.owns(l) => g.times(l, l.expires_at),
            Some(l) => g.times(l, 0),
            None => LeaseTimes::default(),
        };
        let horizon = times.grant_horizon(g.state);
        let lease = if g.state == ServerState::RecoverDone {
            // The partner is, or was until just now, in PARTNER-DOWN and reuses an address MCLT
            // past what it knows of it, whenever a client last renewed here: no lease may reach
            // beyond that, not even the MCLT every other state may always give.
            let end = horizon.saturating_add(u64::from(g.mclt));
            u32::try_from(end.saturating_sub(now)).unwrap_or(u32::MAX).min(desired)
        } else {
            mclt::max_client_lease(now, horizon, g.mclt, desired)
        };
        (lease, Some(mclt::potential_expiration(now, desired, lease)))
    }

    /// RECOVER-DONE has nothing to give this client (see [`Server::lease_length`]): better
    /// silence, so that it rebinds to the partner, than an ACK of no time.
    fn nothing_to_renew(&self, now: u64, sid: SubnetId, req: &Request<'_>, a: Ipv4Addr) -> bool {
        let s = &self.cfg.subnets[sid.index()];
        self.gate(sid).is_some_and(|g| g.state == ServerState::RecoverDone)
            && self.lease_length(now, s, req, a).0 == 0
    }

    fn horizon(&self, s: &Subnet) -> u32 {
        if self.cfg.fast_path.enabled {
            self.cfg.fast_path.horizon.unwrap_or(s.lease_time)
        } else {
            0
        }
    }

    fn subnet_of_request(&self, req: &Request<'_>, rx: &RxInfo) -> Result<SubnetId, DropReason> {
        self.cfg
            .subnet_for(req.giaddr, req.link_selection, rx.local_addr)
            .ok_or(DropReason::NoSubnet)
    }

    fn reservation_for(&self, s: &Subnet, c: &Client) -> Option<Ipv4Addr> {
        // A client-id reservation is the more specific: it wins over a MAC one.
        let by = |want_id: bool| {
            s.reservations
                .iter()
                .find(|r| {
                    matches!(r.key, crate::config::ReservationKey::ClientId(_)) == want_id
                        && c.matches(&r.key)
                })
                .map(|r| r.address)
        };
        by(true).or_else(|| by(false))
    }

    /// Whether `a` may be bound to `c` in `s` at `now`.
    fn available_to(&self, now: u64, s: &Subnet, c: &Client, a: Ipv4Addr) -> bool {
        if !s.prefix.contains(&a) {
            return false;
        }
        if self.ix.reserved.contains_key(&a) {
            if self.reservation_for(s, c) != Some(a) {
                return false;
            }
        } else if !s.in_pool(a) {
            return false;
        }
        if let Some(o) = self.offers.get(&a)
            && o.until > now
            && o.client != c.key
        {
            return false;
        }
        let record = self.ix.leases.get(&a);
        // Even the same client gets an expired or released address back only as the ownership
        // rule allows: the partner may have been told (and acknowledged) that it is free, and
        // then the primary hands it out. Unless the end was never sent: then the partner still
        // holds the address as this client's (draft-12 §5.2.2).
        let partner_sees_client =
            |l: &Lease| l.state == LeaseState::Active || l.rewind_state == Some(LeaseState::Active);
        if let Some(g) = self.gate(s.id)
            && !record.is_some_and(|l| c.owns(l) && partner_sees_client(l))
            && !self.ix.reserved.contains_key(&a)
            && !g.may_allocate(record, now)
        {
            return false;
        }
        match record {
            None => true,
            Some(l) if c.owns(l) => true,
            Some(l) if l.state == LeaseState::Active => now >= l.expires_at.max(l.held_until),
            Some(l) => reuse_at(l).is_some_and(|t| t <= now),
        }
    }

    fn discover(
        &mut self,
        now: u64,
        req: &Request<'_>,
        rx: &RxInfo,
    ) -> Result<Outcome, DropReason> {
        let sid = self.subnet_of_request(req, rx)?;
        let gate = self.gate(sid);
        if let Some(g) = gate {
            match g.service {
                Service::NotResponding | Service::RenewalsOnly => {
                    return Err(DropReason::FailoverNotResponding);
                }
                Service::LoadBalanced => {
                    let key = load_balance::client_key(
                        req.client.client_id.as_deref(),
                        &req.client.chaddr,
                    );
                    let primary = g.role == Role::Primary;
                    let secs = req.msg.secs();
                    if !load_balance::should_answer_discover(
                        &g.hba,
                        primary,
                        key,
                        secs,
                        g.load_balance_max_seconds,
                    ) {
                        return Err(DropReason::LoadBalancedToPeer);
                    }
                }
                Service::OwnPool | Service::PartnerDown => {}
            }
        }
        // Addresses nobody used yet are the primary's: the secondary allocates only from what
        // the primary moved to its backup pool, until PARTNER-DOWN's MCLT has passed.
        let fresh_allowed =
            gate.is_none_or(|g| g.role == Role::Primary || g.may_allocate(None, now));
        let s = &self.cfg.subnets[sid.index()];
        let c = &req.client;
        let ok = |a: Ipv4Addr| self.available_to(now, s, c, a);
        // RFC 2131 §4.3.1's order: the client's binding (a reservation, a pending offer, its
        // current or previous lease), then the address it asks for, then a free one.
        let known = self
            .reservation_for(s, c)
            .filter(|&a| ok(a))
            .or_else(|| self.offer_of.get(&c.key).copied().filter(|&a| ok(a)))
            .or_else(|| self.ix.client_address(sid, &c.key).filter(|&a| ok(a)))
            .or_else(|| req.requested.filter(|&a| ok(a)));
        let picked = match known {
            Some(a) => Some(a),
            None => {
                let offers = &self.offers;
                let fresh = if fresh_allowed {
                    self.ix.take_fresh(sid, |a| {
                        offers.get(&a).is_none_or(|o| o.until <= now || o.client == c.key)
                    })
                } else {
                    None
                };
                fresh.or_else(|| {
                    self.ix.take_reusable(sid, now, |a| self.available_to(now, s, c, a))
                })
            }
        };
        let Some(a) = picked else { return Err(DropReason::PoolExhausted) };
        self.hold_offer(now, sid, c.key.clone(), a);
        let s = &self.cfg.subnets[sid.index()];
        let lease = self.lease_length(now, s, req, a).0;
        let msg = reply::lease_reply(req, MessageType::Offer, self.cfg.server_id, s, a, lease);
        Ok(self.reply(req, rx, msg, MessageType::Offer, a, Vec::new(), Handled::Offered(a)))
    }

    fn hold_offer(&mut self, now: u64, subnet: SubnetId, client: ClientKey, a: Ipv4Addr) {
        if let Some(old) = self.offer_of.get(&client).copied()
            && old != a
        {
            self.forget_offer(old, now);
        }
        if let Some(prev) = self.offers.get(&a)
            && prev.client != client
            && self.offer_of.get(&prev.client) == Some(&a)
        {
            // That client's offer lapsed (available_to checked): it no longer holds anything.
            self.offer_of.remove(&prev.client);
        }
        self.offers.insert(
            a,
            Offer { client: client.clone(), subnet, until: now + u64::from(self.cfg.offer_hold) },
        );
        self.offer_of.insert(client, a);
    }

    fn forget_offer(&mut self, a: Ipv4Addr, now: u64) {
        if let Some(o) = self.offers.remove(&a) {
            if self.offer_of.get(&o.client) == Some(&a) {
                self.offer_of.remove(&o.client);
            }
            self.ix.give_back(&self.cfg, o.subnet, a, now);
        }
    }

    fn request(&mut self, now: u64, req: &Request<'_>, rx: &RxInfo) -> Result<Outcome, DropReason> {
        let c = &req.client;
        // Renewals and rebinds are answered in every state that answers anyone (draft-12
        // §9.8.2); only new bindings need a state that may hand out addresses.
        let refuse = |sid: SubnetId, new_binding: bool| {
            self.gate(sid).is_some_and(|g| match g.service {
                Service::NotResponding => true,
                Service::RenewalsOnly => new_binding,
                _ => false,
            })
        };
        if let Some(server_id) = req.server_id {
            // SELECTING: the client answers one offer, naming its server.
            if server_id != self.cfg.server_id {
                if let Some(a) = self.offer_of.get(&c.key).copied() {
                    self.forget_offer(a, now);
                }
                return Err(DropReason::OtherServer);
            }
            let a = req.requested.or(req.ciaddr).ok_or(DropReason::MissingAddress)?;
            let sid = self.subnet_of_request(req, rx)?;
            if refuse(sid, true) {
                return Err(DropReason::FailoverNotResponding);
            }
            let s = &self.cfg.subnets[sid.index()];
            if !self.available_to(now, s, c, a) {
                return Ok(self.nak(req, rx, "requested address is not available"));
            }
            return Ok(self.ack(now, req, rx, sid, a));
        }
        if let Some(ci) = req.ciaddr {
            // RENEWING (unicast) or REBINDING (broadcast): ciaddr names the lease, and its
            // subnet, wherever the request was routed from.
            let sid = self.cfg.subnet_containing(ci).ok_or(DropReason::UnknownClient)?;
            if refuse(sid, false) {
                return Err(DropReason::FailoverNotResponding);
            }
            let s = &self.cfg.subnets[sid.index()];
            let record = self.ix.leases.get(&ci);
            let mine = record.is_some_and(|l| c.owns(l)) || self.reservation_for(s, c) == Some(ci);
            if mine && self.nothing_to_renew(now, sid, req, ci) {
                return Err(DropReason::FailoverNotResponding);
            }
            return match (mine, self.available_to(now, s, c, ci)) {
                (true, true) => Ok(self.ack(now, req, rx, sid, ci)),
                (true, false) => Ok(self.nak(req, rx, "address is bound to another client")),
                (false, false) if record.is_some() => {
                    Ok(self.nak(req, rx, "address is bound to another client"))
                }
                (false, _) => Err(DropReason::UnknownClient),
            };
        }
        let a = req.requested.ok_or(DropReason::MissingAddress)?;
        // INIT-REBOOT: the client checks that its remembered address is still good here.
        let sid = self.subnet_of_request(req, rx)?;
        if refuse(sid, false) {
            return Err(DropReason::FailoverNotResponding);
        }
        let s = &self.cfg.subnets[sid.index()];
        if !s.prefix.contains(&a) {
            return Ok(self.nak(req, rx, "wrong network"));
        }
        let reserved = self.reservation_for(s, c);
        let mine = self.ix.leases.get(&a).is_some_and(|l| c.owns(l)) || reserved == Some(a);
        if mine {
            if self.nothing_to_renew(now, sid, req, a) {
                return Err(DropReason::FailoverNotResponding);
            }
            if self.available_to(now, s, c, a) {
                return Ok(self.ack(now, req, rx, sid, a));
            }
            return Ok(self.nak(req, rx, "address is bound to another client"));
        }
        if reserved.is_some() || self.ix.client_address(sid, &c.key).is_some() {
            return Ok(self.nak(req, rx, "not this client's address"));
        }
        Err(DropReason::UnknownClient)
    }

    fn ack(
        &mut self,
        now: u64,
        req: &Request<'_>,
        rx: &RxInfo,
        sid: SubnetId,
        a: Ipv4Addr,
    ) -> Outcome {
        let s = &self.cfg.subnets[sid.index()];
        let c = &req.client;
        let (lease, pet) = self.lease_length(now, s, req, a);
        let expires_at = now + u64::from(lease);
        let mut horizon = expires_at + u64::from(self.horizon(s));
        let old = self.ix.leases.get(&a);
        let same = old.is_some_and(|l| c.owns(l));
        if let (Some(g), Some(pet)) = (self.gate(sid), pet) {
            let told = old.filter(|_| same).map_or(0, |l| l.expires_at);
            let mut probe =
                old.cloned().unwrap_or_else(|| Lease::new(a, LeaseState::Free, sid.0, now));
            probe.pet_sent = probe.pet_sent.max(pet);
            horizon = horizon.min(g.grant_limit(&probe, told));
        }
        // The failover fields (PETs, rewind) describe the address, whoever holds it: kept.
        let mut l = old.cloned().unwrap_or_else(|| Lease::new(a, LeaseState::Active, sid.0, now));
        if !same || l.state != LeaseState::Active {
            l.stos = now;
        }
        // The kernel may hold a horizon from before: a committed horizon never shrinks.
        l.held_until = if same { l.held_until.max(horizon) } else { horizon };
        if req.hostname.is_some() || !same {
            l.hostname.clone_from(&req.hostname);
        }
        l.state = LeaseState::Active;
        l.htype = c.htype;
        l.chaddr.clone_from(&c.chaddr);
        l.client_id.clone_from(&c.client_id);
        l.subnet = sid.0;
        l.expires_at = expires_at;
        l.cltt = now;
        l.probation_until = None;
        if let Some(pet) = pet {
            l.pet_sent = l.pet_sent.max(pet);
        }
        if old.is_some_and(|o| {
            same && o.state != LeaseState::Active && o.rewind_state == Some(LeaseState::Active)
        }) {
            self.counters.rewound_to_active += 1;
        }
        // What the partner would be left believing if this binding ends before it hears of it:
        // our own free share, for a binding taken from it. A client back on the lease the
        // partner knows as its own needs nothing of the kind, and the partner may hear of the
        // renewal at once: its own updates about the client are judged against it.
        l.rewind_state = match old {
            _ if !self.rewinds(sid) => None,
            Some(o)
                if same
                    && matches!(o.rewind_state, Some(LeaseState::Free | LeaseState::Backup)) =>
            {
                o.rewind_state
            }
            None => Some(LeaseState::Free),
            Some(o) if matches!(o.state, LeaseState::Free | LeaseState::Backup) => Some(o.state),
            Some(_) => None,
        };
        l.rewind_expiry = match (l.rewind_state, old) {
            (None, _) => None,
            (Some(_), Some(o)) if same && o.rewind_expiry.is_some() => o.rewind_expiry,
            (Some(_), o) => Some(o.map_or(now, |o| o.expires_at)),
        };
        // The address is bound now: whoever's offer it was (this client's, or a lapsed one)
        // is settled, and an offer this client held elsewhere goes back to the pool.
        if let Some(o) = self.offers.remove(&a)
            && self.offer_of.get(&o.client) == Some(&a)
        {
            self.offer_of.remove(&o.client);
        }
        if let Some(other) = self.offer_of.get(&c.key).copied() {
            self.forget_offer(other, now);
        }
        let change = self.ix.put(&self.cfg, l);
        let s = &self.cfg.subnets[sid.index()];
        let msg = reply::lease_reply(req, MessageType::Ack, self.cfg.server_id, s, a, lease);
        self.reply(req, rx, msg, MessageType::Ack, a, vec![change], Handled::Acked(a))
    }

    fn nak(&mut self, req: &Request<'_>, rx: &RxInfo, why: &str) -> Outcome {
        let msg = reply::nak(req, self.cfg.server_id, why);
        self.reply(
            req,
            rx,
            msg,
            MessageType::Nak,
            Ipv4Addr::UNSPECIFIED,
            Vec::new(),
            Handled::Nacked,
        )
    }

    #[expect(clippy::too_many_arguments, reason = "private assembly of an Outcome from its parts")]
    fn reply(
        &self,
        req: &Request<'_>,
        rx: &RxInfo,
        msg: Message,
        kind: MessageType,
        yiaddr: Ipv4Addr,
        changes: Vec<LeaseChange>,
        result: Handled,
    ) -> Outcome {
        let dest = reply::dest(req, kind, yiaddr);
        Outcome { reply: Some(Reply { msg, dest, ifindex: rx.ifindex }), changes, result }
    }

    fn decline(&mut self, now: u64, req: &Request<'_>) -> Result<Outcome, DropReason> {
        if req.server_id.is_some_and(|s| s != self.cfg.server_id) {
            return Err(DropReason::OtherServer);
        }
        let a = req.requested.ok_or(DropReason::MissingAddress)?;
        let mut l = match self.ix.leases.get(&a) {
            Some(l) if req.client.owns(l) => l.clone(),
            // Anyone could otherwise take addresses out of service by declining them.
            _ => return Err(DropReason::NotTheirs),
        };
        l.state = LeaseState::Abandoned;
        l.stos = now;
        l.probation_until = Some(now + u64::from(self.cfg.probation));
        let change = self.ix.put(&self.cfg, l);
        Ok(Outcome { reply: None, changes: vec![change], result: Handled::Declined(a) })
    }

    fn release(&mut self, now: u64, req: &Request<'_>) -> Result<Outcome, DropReason> {
        if req.server_id.is_some_and(|s| s != self.cfg.server_id) {
            return Err(DropReason::OtherServer);
        }
        let a = req.ciaddr.ok_or(DropReason::MissingAddress)?;
        let mut l = match self.ix.leases.get(&a) {
            Some(l) if req.client.owns(l) && l.state == LeaseState::Active => l.clone(),
            _ => return Err(DropReason::NotTheirs),
        };
        // held_until stays: the kernel may renew until the caller has deleted the map entry,
        // so the address waits for it before going to anyone else.
        l.stos = now;
        l.cltt = now;
        l.expires_at = l.expires_at.min(now);
        let l = self.client_gone(l, LeaseState::Released);
        let change = self.ix.put(&self.cfg, l);
        Ok(Outcome { reply: None, changes: vec![change], result: Handled::Released(a) })
    }

    fn inform(&mut self, req: &Request<'_>, rx: &RxInfo) -> Result<Outcome, DropReason> {
        let sid = match (req.giaddr, req.ciaddr) {
            (None, Some(ci)) => self.cfg.subnet_containing(ci).ok_or(DropReason::NoSubnet)?,
            _ => self.subnet_of_request(req, rx)?,
        };
        let msg = reply::inform_ack(req, self.cfg.server_id, &self.cfg.subnets[sid.index()]);
        Ok(self.reply(
            req,
            rx,
            msg,
            MessageType::Ack,
            Ipv4Addr::UNSPECIFIED,
            Vec::new(),
            Handled::Informed,
        ))
    }
}

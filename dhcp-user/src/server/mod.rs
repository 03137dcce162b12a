//! The DHCPv4 decision engine: requests in, replies and lease changes out.
//!
//! Sans-IO and deterministic: no sockets, no clock (every call takes `now`, unix seconds), no
//! database. It keeps an in-memory index of the leases loaded from the store and returns each
//! decision's [`LeaseChange`](crate::store::LeaseChange)s for the caller to commit.
//!
//! # The caller's contract
//!
//! The caller is [`crate::core::Core::turn`], and only it: it hands every request to
//! [`Server::handle_bytes`] and every renewal the fast path reported to
//! [`Server::apply_fast_path_renewal`], runs [`Server::expire`] when [`Server::next_timeout`]
//! is due (after the fast path's events, so that a renewal XDP answered just before the
//! expiry counts), commits every [`Outcome::changes`] in one transaction, takes [`map_ops`] of
//! what was committed for the kernel, and only then lets the replies go. If the commit fails
//! it sends none of them (an ACK must never be ahead of stable storage) and restarts the
//! engine from the store.
//!
//! Every ACK's lease ends at `now + lease`, which is exactly the committed `expires_at`, and the
//! committed `held_until` (how far the fast path may renew without asking) is never below it.
//! An address goes to another client only once its `held_until` has passed.
//!
//! # Layout
//!
//! This file holds the [`Server`] and its dispatch; beside it: `outcome` (what a call returns),
//! `handlers` (RFC 2131, one per message type), `allocation` (who may have which address),
//! `link` (a shared network's subnets, the ones a new client may get an address from),
//! `lifecycle` (expiry, fast-path renewals), `circuit` (the subscriber's line), `gate` (the failover relationship's say and the
//! lease-length rules), `hooks` (what the failover glue calls), `projection` (the kernel map's
//! view of a lease), and `index`, `request`, `reply`.
use std::collections::HashMap;
use std::net::Ipv4Addr;

use dhcproto::{
    Decodable as _,
    v4::{
        DhcpOption, Message, MessageType, OptionCode, UnknownOption, relay::RelayAgentInformation,
    },
};

use crate::config::Config;
use crate::store::Lease;

mod allocation;
mod circuit;
mod gate;
mod handlers;
mod hooks;
mod index;
mod lifecycle;
mod limits;
mod link;
mod offers;
mod outcome;
mod projection;
pub mod records;
mod reply;
mod request;
#[cfg(test)]
mod tests;
mod timeline;

pub use circuit::{CircuitAction, CircuitChangeEvent};
pub use gate::FailoverGate;
pub use limits::{LimitEvent, LimitKey};
pub use outcome::{Counters, DropReason, Handled, Outcome, RECEIVED_TYPES, RxInfo};
pub use projection::{FastPathLease, MapOp, fast_path_entry, map_ops};
pub use records::Records;
pub use reply::{Dest, Reply};
pub use request::{Client, ClientKey};

use index::Index;
use request::Request;

pub struct Server {
    cfg: Config,
    ix: Index,
    /// Offered addresses, held in memory only: losing them in a crash costs a client one retry.
    offers: offers::Offers,
    offer_of: HashMap<ClientKey, Ipv4Addr>,
    counters: Counters,
    /// Each failover relationship's gate, by [`crate::config::RelationshipId`].
    failover: Vec<FailoverGate>,
    /// Whether leases may rewind in COMMUNICATIONS-INTERRUPTED; off only to measure what
    /// rewinding is worth (`cargo xtask bench endurance`).
    rewinding: bool,
    /// Requests from another line than their binding's, until the caller takes them.
    circuit_changes: Vec<CircuitChangeEvent>,
    /// What each limited key holds ([`limits`]).
    holdings: limits::Holdings,
}

impl Server {
    /// An engine for `cfg` over the leases loaded from the store. A record's subnet is
    /// recomputed from its address, so renumbering `[[subnet]]` tables between runs is safe;
    /// records no subnet contains are kept but never offered nor put on the fast path.
    #[must_use]
    pub fn new(cfg: Config, leases: impl IntoIterator<Item = Lease>) -> Self {
        let mut ix = Index::new(&cfg);
        let leases = leases
            .into_iter()
            .map(|mut l| {
                if let Some(s) = cfg.subnet_containing(l.address) {
                    l.subnet = s.0;
                }
                l
            })
            .collect();
        ix.load_all(&cfg, leases);
        let failover = cfg.failover.iter().map(FailoverGate::starting).collect();
        let counters =
            Counters { classified: vec![0; cfg.classes.len() + 1], ..Counters::default() };
        Server {
            cfg,
            ix,
            offers: offers::Offers::default(),
            offer_of: HashMap::new(),
            counters,
            failover,
            rewinding: true,
            circuit_changes: Vec::new(),
            holdings: limits::Holdings::default(),
        }
    }

    /// Turns rewinding (draft-12 §5.2.2) on or off; on by default.
    pub fn set_rewinding(&mut self, on: bool) {
        self.rewinding = on;
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
        self.ix.leases.get(a)
    }

    /// Every record, in no particular order.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.ix.leases.values()
    }

    /// The records with their lookup indexes (by address, hardware address, client
    /// identifier, and in address order).
    #[must_use]
    pub fn records(&self) -> &Records {
        &self.ix.leases
    }

    /// Decodes a UDP payload and handles it; undecodable bytes are counted and dropped. Options
    /// in the `file` and `sname` fields count where option 52 says they are there
    /// (`request::unfold_overload`).
    pub fn handle_bytes(&mut self, now: u64, payload: &[u8], rx: &RxInfo) -> Outcome {
        let unfolded = request::unfold_overload(payload);
        let payload = unfolded.as_deref().unwrap_or(payload);
        if !request::dhcproto_safe(payload) {
            return self.dropped(DropReason::Undecodable);
        }
        // dhcproto reads options after any four bytes; without the cookie there are none
        // (RFC 2131 §3): BOOTP or garbage, which XDP's policing counts as garbage too.
        match payload.get(236..240) {
            None => return self.dropped(DropReason::Undecodable),
            Some(c) if c != dhcp_common::bootp::MAGIC_COOKIE => {
                return self.dropped(DropReason::NoMessageType);
            }
            Some(_) => {}
        }
        // A backstop: should the decoder still panic on some input, that input is one more
        // undecodable packet, not a dead server.
        match std::panic::catch_unwind(|| Message::from_bytes(payload)) {
            Ok(Ok(mut m)) => {
                // Option 82 as the relay sent it, not as dhcproto re-sorted it: the reply
                // must echo it byte for byte (RFC 3046 §2.2), as XDP's does.
                // dhcproto stops at the first option it cannot decode as its type; the bytes
                // stand in for its decoding only where they say the same.
                if let Some(DhcpOption::RelayAgentInformation(theirs)) =
                    m.opts().get(OptionCode::RelayAgentInformation)
                    && let Some(raw) = crate::relay::from_payload(payload)
                    && RelayAgentInformation::from_bytes(&raw).ok().as_ref() == Some(theirs)
                {
                    let code = OptionCode::RelayAgentInformation;
                    m.opts_mut().insert(DhcpOption::Unknown(UnknownOption::new(code, raw)));
                }
                self.handle(now, &m, rx)
            }
            _ => self.dropped(DropReason::Undecodable),
        }
    }

    /// Decides what to do with one request. See the module doc for what the caller must do
    /// with the [`Outcome`].
    pub fn handle(&mut self, now: u64, msg: &Message, rx: &RxInfo) -> Outcome {
        let mut req = match Request::parse(msg) {
            Ok(r) => r,
            Err(why) => return self.dropped(why),
        };
        req.client.class = crate::config::classes::classify(&self.cfg.classes, &req.traits());
        let slot = req.client.class.map_or(self.cfg.classes.len(), |c| usize::from(c.0));
        if let Some(n) = self.counters.classified.get_mut(slot) {
            *n += 1;
        }
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
}

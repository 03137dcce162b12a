//! The simulated clients: DORA, renewing at T1, rebinding at T2, releasing now and then, and
//! the promises each ACK they accept becomes.
use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType};

use super::*;

impl Sim {
    /// A reply reaches client `j`. The ACKs it takes become promises; one it ignores (a late
    /// answer to a request it has given up on) binds nobody.
    pub(super) fn deliver_to_client(&mut self, j: usize, p: &Packet) {
        let before = self.clients[j].state.clone();
        self.client_reply(j, &p.msg);
        if let ClientState::Bound { addr, server, lease, .. } = self.clients[j].state
            && self.clients[j].state != before
        {
            // Like a real client, it counts the lease from when it asked, not when it heard.
            self.clients[j].state =
                ClientState::Bound { addr, server, start: p.sent, lease, next: p.sent + lease / 2 };
            self.promise(addr, j, p.sent, lease, p.by);
        }
    }

    pub(super) fn client_reply(&mut self, j: usize, m: &Message) {
        let now = self.now;
        let kind = kind_of(m);
        let c = &mut self.clients[j];
        match (&c.state, kind) {
            (ClientState::Selecting { until, offer: None }, Some(MessageType::Offer)) => {
                if let Some(sid) = server_id_of(m) {
                    c.state =
                        ClientState::Selecting { until: *until, offer: Some((m.yiaddr(), sid)) };
                }
            }
            (ClientState::Requesting { addr, server, .. }, Some(MessageType::Ack))
                if m.yiaddr() == *addr =>
            {
                let lease = u64::from(lease_of(m).unwrap_or(0));
                let (addr, server) = (*addr, *server);
                c.state =
                    ClientState::Bound { addr, server, start: now, lease, next: now + lease / 2 };
            }
            (
                ClientState::Requesting { .. } | ClientState::Bound { .. },
                Some(MessageType::Nak),
            ) => {
                c.state = ClientState::Init { next: now + 1 };
            }
            (ClientState::Bound { addr, start, lease, .. }, Some(MessageType::Ack))
                if m.yiaddr() == *addr =>
            {
                let new_lease = u64::from(lease_of(m).unwrap_or(0));
                // A late ACK for an earlier renewal must not shorten what the client holds.
                if now + new_lease > start + lease {
                    let server = server_id_of(m).unwrap_or(Ipv4Addr::UNSPECIFIED);
                    let addr = *addr;
                    c.state = ClientState::Bound {
                        addr,
                        server,
                        start: now,
                        lease: new_lease,
                        next: now + new_lease / 2,
                    };
                }
            }
            _ => {}
        }
    }

    pub(super) fn broadcast(&mut self, m: &Message) {
        for i in 0..2 {
            self.send(Dest::Server(i), m.clone());
        }
    }

    pub(super) fn clients_act(&mut self) {
        let now = self.now;
        for j in 0..self.clients.len() {
            self.clients[j].xid = self.clients[j].xid.wrapping_add(1);
            let (mac, xid) = (self.clients[j].mac, self.clients[j].xid);
            let z = Ipv4Addr::UNSPECIFIED;
            match self.clients[j].state.clone() {
                ClientState::Init { next } if now >= next => {
                    self.broadcast(&base_msg(mac, xid, MessageType::Discover, z));
                    self.clients[j].state = ClientState::Selecting { until: now + 2, offer: None };
                }
                ClientState::Selecting { until, offer } if now >= until => {
                    if let Some((a, sid)) = offer {
                        let mut m = base_msg(mac, xid, MessageType::Request, z);
                        m.opts_mut().insert(DhcpOption::ServerIdentifier(sid));
                        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
                        self.broadcast(&m);
                        self.clients[j].state =
                            ClientState::Requesting { until: now + 3, addr: a, server: sid };
                    } else {
                        let next = now + 1 + self.rng.below(10);
                        self.clients[j].state = ClientState::Init { next };
                    }
                }
                ClientState::Requesting { until, .. } if now >= until => {
                    self.clients[j].state = ClientState::Init { next: now + 1 };
                }
                ClientState::Bound { addr, server, start, lease, next } => {
                    let end = start + lease;
                    if now >= end {
                        self.clients[j].state = ClientState::Init { next: now };
                    } else if self.rng.chance(3) {
                        // Gone for good: RELEASE, and the address is no longer used from now.
                        let m = base_msg(mac, xid, MessageType::Release, addr);
                        if let Some(i) = self.nodes.iter().position(|n| n.ip == server) {
                            self.send(Dest::Server(i), m);
                        }
                        self.release(addr, j);
                        self.clients[j].state =
                            ClientState::Init { next: now + 30 + self.rng.below(100) };
                    } else if now >= next {
                        let m = base_msg(mac, xid, MessageType::Request, addr);
                        let t2 = start + lease * 7 / 8;
                        if now >= t2 {
                            self.broadcast(&m);
                        } else if let Some(i) = self.nodes.iter().position(|n| n.ip == server) {
                            self.send(Dest::Server(i), m);
                        }
                        let retry = (end.saturating_sub(now) / 2).max(2);
                        self.clients[j].state =
                            ClientState::Bound { addr, server, start, lease, next: now + retry };
                    }
                }
                _ => {}
            }
        }
    }

    /// The client stops using `a` now: promises it was given so far end here.
    pub(super) fn release(&mut self, a: Ipv4Addr, j: usize) {
        let now = self.now;
        for p in self.promises.entry(a).or_default() {
            if p.client == j && p.until > now {
                p.until = now.max(p.from);
            }
        }
        self.log(|| format!("c{j} releases {a}"));
    }
}

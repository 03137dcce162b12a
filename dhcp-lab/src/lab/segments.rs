//! A segment: one client behind its own veth, its first lease from the [`Responder`], its
//! renewals answered by the fast path alone.
use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, ensure};
use bytemuck::Zeroable as _;
use dhcp_common::{LeaseEntry, Stat, digest};
use xdhcp::{
    fastpath::AttachMode, fastpath::clock, fastpath::maps::Counters,
    fastpath::subnet::SubnetOptions,
};

use super::{
    clients::{Client, ClientEvent, ClientKind},
    netns::{NetNs, VethEnd, VethPair, unique_ifname},
    responder::{Responder, ResponderConfig, ResponderLog, prefix_mask},
    xdp::{FastPath, PassProgram},
};

/// Lease times of the lab.
///
/// The first lease (from the [`Responder`]) is short so that the first renewal comes soon.
/// The fast path grants `lease_secs`, which cannot be below its 60 s floor (shorter grants go
/// to userspace). dhclient (at 3/4 to 1 of T1) and dhcpcd (at T1) then renew every ~10 s.
/// udhcpc ignores T1: it raises leases below 30 s to 30, unicasts a renewal at half of what is
/// left, and if that gets no answer within `-T` (2 s here) and no more than 30 s are left,
/// broadcasts (REBINDING) instead: first renewal at ~17 s, then every ~32 s.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub first_lease_secs: u32,
    pub first_t1_secs: u32,
    pub first_t2_secs: u32,
    /// Lease time put in the map: what XDP's ACKs grant.
    pub lease_secs: u32,
    /// T1/T2 in the subnet's fast-path reply data.
    pub t1_secs: u32,
    pub t2_secs: u32,
    /// How long from now the map's grant horizon reaches.
    pub grant_secs: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            first_lease_secs: 20,
            first_t1_secs: 10,
            first_t2_secs: 17,
            lease_secs: 60,
            t1_secs: 10,
            t2_secs: 50,
            grant_secs: 3600,
        }
    }
}

impl Timing {
    /// A bound for waiting on `n` renewals of `kind`: when they are due, plus room for a
    /// retransmission each and for a loaded machine.
    #[must_use]
    pub fn renewal_timeout(&self, kind: ClientKind, n: usize) -> Duration {
        // udhcpc raises leases below 30 s to 30 and renews at half of what is left.
        let (first, next) = if kind == ClientKind::Udhcpc {
            (self.first_lease_secs.max(30) / 2, self.lease_secs / 2)
        } else {
            (self.first_t1_secs, self.t1_secs)
        };
        let n = n as u64;
        Duration::from_secs(u64::from(first) + u64::from(next) * n.saturating_sub(1) + 5 * n + 10)
    }
}

/// Addresses and names of segment `index` (1..=254).
#[derive(Clone, Debug)]
pub struct SegmentPlan {
    pub kind: ClientKind,
    pub index: u8,
    pub server_if: String,
    pub client_if: String,
    pub server_mac: [u8; 6],
    pub client_mac: [u8; 6],
    pub server: Ipv4Addr,
    /// The address the client is given (by the responder) and renews (through XDP).
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub timing: Timing,
    /// Native unless changed: what `xdhcp attach` picks on veth.
    pub attach_mode: AttachMode,
}

impl SegmentPlan {
    #[must_use]
    pub fn new(index: u8, kind: ClientKind, timing: Timing) -> Self {
        Self {
            kind,
            index,
            server_if: unique_ifname('s'),
            client_if: unique_ifname('c'),
            server_mac: [0x02, 0x58, 0x64, index, 0, 0x01],
            client_mac: [0x02, 0x58, 0x64, index, 0, 0x50],
            server: Ipv4Addr::new(10, 99, index, 1),
            addr: Ipv4Addr::new(10, 99, index, 50),
            prefix: 24,
            timing,
            attach_mode: AttachMode::Native,
        }
    }

    /// The subnet's fast-path reply data: server id, mask, and the lab's T1/T2.
    #[must_use]
    pub fn subnet(&self) -> SubnetOptions {
        SubnetOptions {
            server_id: self.server,
            mask: prefix_mask(self.prefix),
            routers: vec![],
            dns: vec![],
            domain: None,
            t1_secs: self.timing.t1_secs,
            t2_secs: self.timing.t2_secs,
            extra: vec![],
        }
    }

    /// The lease entry for the client, bound with the client identifier it will send.
    pub fn lease(&self) -> Result<LeaseEntry> {
        let digest = self
            .kind
            .client_id(self.client_mac)
            .map(|id| digest::client_id(&id).context("client id too long for the fast path"))
            .transpose()?;
        Ok(LeaseEntry {
            grant_until_ns: clock::grant_until_ns(clock::monotonic_ns(), self.timing.grant_secs),
            client_id_digest: digest.unwrap_or(0),
            lease_secs: self.timing.lease_secs,
            profile: 0,
            flags: if digest.is_some() { LeaseEntry::F_CLIENT_ID } else { 0 },
            chaddr: self.client_mac,
            ..LeaseEntry::zeroed()
        })
    }

    pub(crate) fn responder(&self) -> ResponderConfig {
        ResponderConfig {
            iface: self.server_if.clone(),
            server_mac: self.server_mac,
            server: self.server,
            prefix: self.prefix,
            client_mac: self.client_mac,
            addr: self.addr,
            lease_secs: self.timing.first_lease_secs,
            t1_secs: self.timing.first_t1_secs,
            t2_secs: self.timing.first_t2_secs,
        }
    }
}

/// One client's part of the lab: its own namespace, a veth pair to the server namespace with
/// the fast path on the server end (subnet reply data set, lease not yet) and the pass program
/// on the client end, and the first-lease responder. Teardown is drop, in field order.
///
/// The client end runs the pass program because in native mode a veth drops the frames its
/// peer sends with `XDP_TX` unless it runs an XDP program of its own.
pub struct Segment {
    client: Option<Client>,
    responder: Responder,
    _pass: PassProgram,
    pub fast: FastPath,
    _veth: VethPair,
    client_ns: NetNs,
    server_ns: Arc<NetNs>,
    pub plan: SegmentPlan,
}

impl Segment {
    pub fn new(server_ns: &Arc<NetNs>, plan: SegmentPlan) -> Result<Self> {
        let client_ns = NetNs::new(plan.kind.name())?;
        let veth = VethPair::new(
            server_ns,
            VethEnd {
                name: plan.server_if.clone(),
                mac: plan.server_mac,
                addr: Some((plan.server, plan.prefix)),
            },
            &client_ns,
            VethEnd { name: plan.client_if.clone(), mac: plan.client_mac, addr: None },
        )?;
        let mut fast = FastPath::attach(server_ns, &plan.server_if, plan.attach_mode)?;
        fast.maps.set_profile(0, &plan.subnet().encode()?)?;
        let pass = PassProgram::attach(&client_ns, &plan.client_if)?;
        let responder = Responder::start(server_ns, plan.responder())?;
        Ok(Self {
            client: None,
            responder,
            _pass: pass,
            fast,
            _veth: veth,
            client_ns,
            server_ns: server_ns.clone(),
            plan,
        })
    }

    /// Puts the client's lease in the map, as a server would after binding it.
    pub fn install_lease(&mut self) -> Result<LeaseEntry> {
        let e = self.plan.lease()?;
        self.fast.maps.put_lease(self.plan.addr, &e)?;
        Ok(e)
    }

    pub fn start_client(&mut self) -> Result<&mut Client> {
        ensure!(self.client.is_none(), "the client already runs");
        let c = Client::start(
            self.plan.kind,
            &self.client_ns,
            &self.plan.client_if,
            self.plan.client_mac,
        )?;
        Ok(self.client.insert(c))
    }

    pub fn client(&mut self) -> Result<&mut Client> {
        self.client.as_mut().context("no client started")
    }

    pub fn stop_client(&mut self) -> Result<()> {
        match &mut self.client {
            Some(c) => c.stop(),
            None => Ok(()),
        }
    }

    #[must_use]
    pub fn responder_log(&self) -> ResponderLog {
        self.responder.log()
    }

    pub fn stats(&self) -> Result<Counters> {
        self.fast.stats()
    }

    /// The lease entry as the kernel has it now (XDP stamps it on every ACK).
    #[must_use]
    pub fn lease(&self) -> Option<LeaseEntry> {
        self.fast.maps.lease(self.plan.addr)
    }

    /// The run so far: client events and output, counters since `before`, responder log, map
    /// entry. Call it after [`Segment::stop_client`] for exact numbers.
    pub fn report(&mut self, before: &Counters) -> Result<RenewalReport> {
        let counters = self.stats()?.since(before);
        let responder = self.responder_log();
        let lease = self.lease();
        let plan = self.plan.clone();
        let c = self.client()?;
        let (bound, renewals) = c.lease_history();
        Ok(RenewalReport {
            kind: plan.kind,
            addr: plan.addr,
            bound,
            renewals,
            requests: c.renewal_requests(),
            counters,
            responder,
            lease,
            timing: plan.timing,
            expected_client_id: plan.kind.client_id(plan.client_mac),
        })
    }

    /// Names of the namespaces this segment uses (the server's is shared).
    #[must_use]
    pub fn namespaces(&self) -> [String; 2] {
        [self.server_ns.name().to_owned(), self.client_ns.name().to_owned()]
    }
}

/// What a segment's client did and what the fast path counted, since `before`.
#[derive(Clone, Debug)]
pub struct RenewalReport {
    pub kind: ClientKind,
    pub addr: Ipv4Addr,
    pub bound: Option<ClientEvent>,
    pub renewals: Vec<ClientEvent>,
    /// Renewal requests the client says it sent ([`Client::renewal_requests`]).
    pub requests: usize,
    pub counters: Counters,
    pub responder: ResponderLog,
    pub lease: Option<LeaseEntry>,
    pub timing: Timing,
    pub expected_client_id: Option<Vec<u8>>,
}

impl RenewalReport {
    #[must_use]
    pub fn acks(&self) -> u64 {
        self.counters.get(Stat::Ack)
    }

    /// Everything that contradicts "the client got its first lease from the responder and
    /// every renewal after it from XDP"; empty when the run proves it.
    #[must_use]
    pub fn problems(&self, min_renewals: usize) -> Vec<String> {
        let mut p = Vec::new();
        let t = &self.timing;
        match &self.bound {
            None => p.push("no first lease".to_owned()),
            Some(b) if b.ip != Some(self.addr) || b.lease_secs != Some(t.first_lease_secs) => {
                p.push(format!("first lease {b:?} is not the responder's"));
            }
            Some(_) => {}
        }
        if self.renewals.len() < min_renewals {
            p.push(format!("{} renewal(s), wanted {min_renewals}", self.renewals.len()));
        }
        for r in &self.renewals {
            if r.ip != Some(self.addr) || r.lease_secs != Some(t.lease_secs) {
                p.push(format!("renewal {r:?} does not carry the map's {} s lease", t.lease_secs));
            }
        }
        // Each request XDP answers is one ACK, whether or not the client then takes it.
        if self.acks() != self.requests as u64 {
            p.push(format!(
                "{} XDP ACKs for {} renewal requests the client sent",
                self.acks(),
                self.requests
            ));
        }
        if self.acks() < self.renewals.len() as u64 {
            p.push(format!("{} renewals but only {} XDP ACKs", self.renewals.len(), self.acks()));
        }
        if self.responder.renewals != 0 {
            p.push(format!("{} renewal(s) reached userspace", self.responder.renewals));
        }
        if self.responder.client_ids != [self.expected_client_id.clone()] {
            p.push(format!(
                "client ids seen {:?}, the lease was bound with {:?}",
                self.responder.client_ids, self.expected_client_id
            ));
        }
        if !self.responder.errors.is_empty() {
            p.push(format!("responder errors: {:?}", self.responder.errors));
        }
        match &self.lease {
            Some(l)
                if !self.renewals.is_empty()
                    && (l.renewed_at_ns == 0 || l.renewed_secs != t.lease_secs) =>
            {
                p.push(format!(
                    "the map's entry was not stamped with a {} s XDP grant: {l:?}",
                    t.lease_secs
                ));
            }
            Some(_) => {}
            None => p.push("the lease is gone from the map".to_owned()),
        }
        p
    }
}

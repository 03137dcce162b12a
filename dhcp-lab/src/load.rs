//! The load generator (`xdhcp-load`): many simulated clients on one interface, against any
//! `DHCPv4` server. Every client first gets a lease by DORA, then renews it (RENEWING, unicast
//! to the server) at a set rate or as fast as the server answers. Frames go out and come back
//! on an `AF_PACKET` socket, so the clients need no addresses and the replies are counted before
//! the IP stack would drop them.
//!
//! Bounded by construction: a client count, a renewal count and a duration, and it only ever
//! sends on the interface it is given (a test network's: the lab runs it on a client veth
//! inside a namespace of its own).
use std::{
    net::{Ipv4Addr, SocketAddrV4},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use dhcp_common::bootp::{CLIENT_PORT, SERVER_PORT};
use dhcproto::v4::{DhcpOption, Message, MessageType};
use serde::Serialize;

use xdhcp::{
    packet::{self, BROADCAST_MAC, L2, RenewKind, Renewal, Vlan},
    packet_socket::{self, PacketSocket, Protocol},
};

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub iface: String,
    pub clients: u32,
    /// Renewals to send in all (0: none, DORA only).
    pub renewals: u64,
    /// Renewals per second; 0 sends as fast as the socket takes them.
    pub rate: u64,
    /// Hard stop for the whole run.
    pub duration: Duration,
    /// How many DORAs may be in flight at once.
    pub window: u32,
    /// Distinguishes this run's clients (and MACs) from another run's.
    pub seed: u16,
    /// Act as a relay agent with this address (which the interface must have): requests carry
    /// it as giaddr and leave from its port 67, replies come back to it. Servers then answer
    /// renewals without ARP for addresses the simulated clients do not hold, as perfdhcp does.
    pub relay: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Option 82 on every message of every client, as the relay adds it (with `relay`) or as
    /// a layer-2 access node does (without: giaddr stays 0), renewals included (TR-101 R-124).
    pub agent: Agent,
    /// No DORA: client `i` holds this address plus `i` from the relay's server (or the
    /// broadcast address), and renews it. For renewals against leases made by another run,
    /// or against a program that answers without leases (the lab's ceiling).
    pub assume_bound: Option<Ipv4Addr>,
    pub progress: bool,
}

/// Per-client option 82: a circuit-id and a remote-id from templates in which `{i}` is the
/// client's index and `{mac}` its MAC (`aa:bb:...`). Neither: no option 82. And the VLAN tags
/// every frame carries, outermost first (an access node's S-tag and C-tag; none: untagged).
#[derive(Clone, Debug, Default)]
pub struct Agent {
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
    pub vlans: Vec<Vlan>,
}

impl Agent {
    /// Client `i`'s option 82 value (circuit-id, then remote-id), if any.
    #[must_use]
    pub fn relay_info(&self, i: u32, mac: [u8; 6]) -> Option<Vec<u8>> {
        let fill = |t: &String| {
            t.replace("{i}", &i.to_string()).replace("{mac}", &packet::fmt_mac(&mac)).into_bytes()
        };
        let subs: Vec<(u8, Vec<u8>)> = [
            (xdhcp::relay::CIRCUIT_ID, self.circuit_id.as_ref().map(fill)),
            (xdhcp::relay::REMOTE_ID, self.remote_id.as_ref().map(fill)),
        ]
        .into_iter()
        .filter_map(|(c, v)| Some((c, v?)))
        .collect();
        if subs.is_empty() {
            return None;
        }
        let refs: Vec<(u8, &[u8])> = subs.iter().map(|(c, v)| (*c, v.as_slice())).collect();
        Some(xdhcp::relay::encode(&refs))
    }
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Summary {
    pub clients: u32,
    pub bound: u64,
    pub dora_secs: f64,
    pub dora_per_s: f64,
    pub naks: u64,
    pub renewals_sent: u64,
    pub renewal_acks: u64,
    /// How long the renewals took to send (replies arriving later still count).
    pub renew_secs: f64,
    pub renew_sent_per_s: f64,
    pub renew_acked_per_s: f64,
    /// Share of renewals that got no ACK.
    pub renew_loss: f64,
    pub renew_latency_us_p50: u64,
    pub renew_latency_us_p99: u64,
    pub renew_latency_us_max: u64,
}

const PHASE_DISCOVER: u32 = 0;
const PHASE_REQUEST: u32 = 1;
const PHASE_RENEW: u32 = 2;

fn xid(phase: u32, client: u32) -> u32 {
    (phase << 30) | client
}

fn client_mac(seed: u16, i: u32) -> [u8; 6] {
    let s = seed.to_be_bytes();
    let b = i.to_be_bytes();
    // Locally administered, unicast; the seed keeps runs apart.
    [0x02 | (s[0] & 0xf0), s[1], b[0], b[1], b[2], b[3]]
}

/// The run's packet socket: every IPv4 frame on the interface, sent and received whole.
fn open_socket(iface: &str) -> Result<PacketSocket> {
    let sock = PacketSocket::open(iface, Protocol::Ipv4)?;
    // The receive loops look at the clock (deadlines, retransmissions) at least this often.
    sock.set_recv_timeout(Duration::from_millis(100)).context("SO_RCVTIMEO")?;
    // Best effort, each: the run works without them, only slower or with more drops.
    // Frames go straight to the device: a veth has no qdisc worth traversing.
    let _ = sock.bypass_qdisc();
    let _ = sock.set_buffers(32 << 20);
    Ok(sock)
}

/// The lab's client-side XDP program (`fastpath::PEER_PROG`), when it is attached to the run's
/// interface: it then counts and drops the renewal ACKs itself, so counting costs neither a
/// socket buffer nor a trip through the stack. One in 256 clients' ACKs still reaches the raw
/// socket, for latency.
struct PeerCounter {
    ctl: aya::maps::Array<aya::maps::MapData, dhcp_common::PeerCtl>,
    acks: aya::maps::PerCpuArray<aya::maps::MapData, u64>,
}

impl PeerCounter {
    const SAMPLE_SHIFT: u32 = 8;

    fn open(iface: &str) -> Option<Self> {
        let dir = std::path::Path::new(xdhcp::fastpath::PEER_PIN_ROOT).join(iface);
        let map = |n: &str| {
            aya::maps::MapData::from_pin(dir.join(n))
                .ok()
                .and_then(|d| aya::maps::Map::from_map_data(d).ok())
        };
        Some(Self {
            ctl: map(dhcp_common::maps::PEER_CTL)?.try_into().ok()?,
            acks: map(dhcp_common::maps::PEER_ACKS)?.try_into().ok()?,
        })
    }

    fn set(&mut self, on: bool) -> Result<()> {
        let c = dhcp_common::PeerCtl { enabled: u32::from(on), sample_shift: Self::SAMPLE_SHIFT };
        Ok(self.ctl.set(0, c, 0)?)
    }

    fn count(&self) -> u64 {
        self.acks.get(&0, 0).map_or(0, |v| v.iter().sum())
    }
}

/// Where each client of the DORA phase stands. Replies can arrive late: an ACK to a REQUEST
/// made before a retransmission restarted the client must bind it once, with the address the
/// ACK gives, and a second ACK must not count it again.
struct Dora {
    bound: Vec<Option<Bound>>,
    offered: Vec<Option<Bound>>,
    /// When the client's DORA (re)started; `None` for a started client: start over at the next
    /// retransmission pass (after a NAK).
    sent_at: Vec<Option<Instant>>,
}

#[derive(Debug, PartialEq)]
enum Step {
    /// Send client `i` a REQUEST for this offer.
    Request(usize, Bound),
    /// The client is bound now (and was not before).
    Bound,
    Nak,
}

impl Dora {
    fn new(n: usize) -> Self {
        Self { bound: vec![None; n], offered: vec![None; n], sent_at: vec![None; n] }
    }

    fn on_reply(&mut self, s: &Seen) -> Option<Step> {
        let i = (s.xid & ((1 << 30) - 1)) as usize;
        if i >= self.bound.len() || self.bound[i].is_some() {
            return None;
        }
        match (s.xid >> 30, s.kind) {
            (PHASE_DISCOVER, MessageType::Offer) if self.offered[i].is_none() => {
                let server = s.server.unwrap_or(Ipv4Addr::UNSPECIFIED);
                let b = Bound { addr: s.yiaddr, server };
                self.offered[i] = Some(b);
                Some(Step::Request(i, b))
            }
            (PHASE_REQUEST, MessageType::Ack) => {
                // The ACK's own address and server: the offer it answers may have been
                // forgotten by a retransmission since.
                let server =
                    s.server.or(self.offered[i].map(|o| o.server)).unwrap_or(Ipv4Addr::UNSPECIFIED);
                self.bound[i] = Some(Bound { addr: s.yiaddr, server });
                Some(Step::Bound)
            }
            (PHASE_REQUEST, MessageType::Nak) => {
                self.offered[i] = None;
                self.sent_at[i] = None;
                Some(Step::Nak)
            }
            _ => None,
        }
    }

    /// Clients among the first `started` that have waited over a second (or were refused):
    /// they start over (the caller sends each a DISCOVER).
    fn stalled(&mut self, started: usize, now: Instant) -> Vec<usize> {
        let mut v = Vec::new();
        for i in 0..started {
            if self.bound[i].is_none()
                && self.sent_at[i].is_none_or(|t| now.duration_since(t) > Duration::from_secs(1))
            {
                self.offered[i] = None;
                self.sent_at[i] = Some(now);
                v.push(i);
            }
        }
        v
    }
}

/// A reply seen on the wire, reduced to what the run tracks.
struct Seen {
    xid: u32,
    kind: MessageType,
    yiaddr: Ipv4Addr,
    server: Option<Ipv4Addr>,
    server_mac: [u8; 6],
    /// The client the reply is for: runs sharing an interface see each other's replies.
    chaddr: [u8; 6],
}

/// Reads only the fields the run needs, straight from the bytes: decoding every reply in full
/// would make the counting side the bottleneck of a fast-path run.
fn parse_reply(f: &[u8]) -> Option<Seen> {
    let be16 = |o: usize| Some(u16::from_be_bytes([*f.get(o)?, *f.get(o + 1)?]));
    let mut l2 = 14;
    while matches!(be16(l2 - 2)?, 0x8100 | 0x88a8) {
        l2 += 4;
    }
    if be16(l2 - 2)? != 0x0800 || *f.get(l2)? != 0x45 || *f.get(l2 + 9)? != 17 {
        return None;
    }
    let udp = l2 + 20;
    let b = udp + 8;
    if be16(udp)? != SERVER_PORT || *f.get(b)? != 2 || f.get(b + 236..b + 240)? != [99, 130, 83, 99]
    {
        return None;
    }
    let ip4 =
        |o: usize| Some(Ipv4Addr::new(*f.get(o)?, *f.get(o + 1)?, *f.get(o + 2)?, *f.get(o + 3)?));
    let xid = u32::from_be_bytes(f.get(b + 4..b + 8)?.try_into().ok()?);
    let yiaddr = ip4(b + 16)?;
    let (mut kind, mut server) = (None, None);
    let mut o = b + 240;
    while o < f.len() {
        match f[o] {
            255 => break,
            0 => o += 1,
            code => {
                let len = usize::from(*f.get(o + 1)?);
                match (code, len) {
                    (53, 1) => kind = Some(MessageType::from(*f.get(o + 2)?)),
                    (54, 4) => server = ip4(o + 2),
                    _ => {}
                }
                o += 2 + len;
            }
        }
    }
    let server_mac = f.get(6..12)?.try_into().ok()?;
    let chaddr = f.get(b + 28..b + 34)?.try_into().ok()?;
    Some(Seen { xid, kind: kind?, yiaddr, server, server_mac, chaddr })
}

/// Relay agent address and the server it relays to.
type Relay = Option<(Ipv4Addr, Ipv4Addr)>;

fn discover(seed: u16, i: u32, src_mac: [u8; 6], relay: Relay, agent: &Agent) -> Vec<u8> {
    let mac = client_mac(seed, i);
    let mut m = Message::new_with_id(
        xid(PHASE_DISCOVER, i),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        relay.map_or(Ipv4Addr::UNSPECIFIED, |r| r.0),
        &mac,
    );
    m.opts_mut().insert(DhcpOption::MessageType(MessageType::Discover));
    m.opts_mut().insert(DhcpOption::ClientIdentifier(client_id(mac)));
    to_server(&mut m, src_mac, relay, agent.relay_info(i, mac), &agent.vlans)
}

fn select(
    seed: u16,
    i: u32,
    src_mac: [u8; 6],
    addr: Ipv4Addr,
    server: Ipv4Addr,
    relay: Relay,
    agent: &Agent,
) -> Vec<u8> {
    let mac = client_mac(seed, i);
    let mut m = Message::new_with_id(
        xid(PHASE_REQUEST, i),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        relay.map_or(Ipv4Addr::UNSPECIFIED, |r| r.0),
        &mac,
    );
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Request));
    o.insert(DhcpOption::ClientIdentifier(client_id(mac)));
    o.insert(DhcpOption::RequestedIpAddress(addr));
    o.insert(DhcpOption::ServerIdentifier(server));
    to_server(&mut m, src_mac, relay, agent.relay_info(i, mac), &agent.vlans)
}

fn client_id(mac: [u8; 6]) -> Vec<u8> {
    let mut v = vec![1];
    v.extend_from_slice(&mac);
    v
}

/// A client's broadcast, or a relay's unicast to the server (sent to the broadcast MAC: the
/// server's kernel takes it for its own address all the same, and no ARP is needed).
fn to_server(
    m: &mut Message,
    src_mac: [u8; 6],
    relay: Relay,
    opt82: Option<Vec<u8>>,
    vlans: &[Vlan],
) -> Vec<u8> {
    let (src, dst) = match relay {
        Some((giaddr, server)) => {
            m.set_hops(1);
            (SocketAddrV4::new(giaddr, SERVER_PORT), SocketAddrV4::new(server, SERVER_PORT))
        }
        None => (
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT),
        ),
    };
    let mut payload = packet::encode(m);
    if let Some(v) = opt82 {
        payload = packet::insert_last_option(&payload, dhcp_common::bootp::OPT_RELAY_AGENT, &v);
    }
    let l2 = L2 { dst: BROADCAST_MAC, src: src_mac, vlans: vlans.to_vec() };
    packet::udp_frame(&l2, src, dst, &payload)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bound {
    addr: Ipv4Addr,
    server: Ipv4Addr,
}

/// Latencies in microseconds, log2 buckets.
struct Hist {
    buckets: [AtomicU64; 40],
    max: AtomicU64,
}

impl Hist {
    fn new() -> Self {
        Self { buckets: std::array::from_fn(|_| AtomicU64::new(0)), max: AtomicU64::new(0) }
    }
    fn add(&self, us: u64) {
        let b = (64 - us.leading_zeros()) as usize;
        self.buckets[b.min(39)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }
    #[expect(clippy::cast_precision_loss, reason = "latency counts, far below 2^52")]
    fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let mut acc = 0;
        for (i, c) in counts.iter().enumerate() {
            acc += c;
            if total > 0 && acc as f64 >= q * total as f64 {
                return if i == 0 { 0 } else { 1 << i };
            }
        }
        0
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "both phases share the socket, the bound clients and the summary; apart, they \
              would pass all of it around"
)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "client indices and counts stay below 2^30 (checked on entry), ns since `epoch` \
              below 2^64 (584 years)"
)]
#[expect(clippy::cast_precision_loss, reason = "counts, rates and seconds far below 2^52")]
pub fn run(opts: &LoadOptions) -> Result<Summary> {
    ensure!(opts.clients > 0 && opts.clients < (1 << 30), "clients must be 1 .. 2^30");
    let raw = Arc::new(open_socket(&opts.iface)?);
    // Replies to the relay address reach the IP stack too; a bound socket keeps it from answering
    // each with an ICMP port-unreachable. Never read: the raw socket counts the replies.
    let _absorb = opts
        .relay
        .map(|(giaddr, _)| std::net::UdpSocket::bind(SocketAddrV4::new(giaddr, SERVER_PORT)))
        .transpose()
        .context("bind the relay address's port 67 (does the interface have that address?)")?;
    let my_mac = packet_socket::interface_mac(&opts.iface)?;
    let deadline = Instant::now() + opts.duration;
    let mut sum = Summary { clients: opts.clients, ..Summary::default() };

    // DORA: a window of clients in flight; retransmit what has not moved on within a second.
    let n = opts.clients as usize;
    let mut dora = Dora::new(n);
    let mut server_mac = None;
    let mut next = 0usize;
    let t0 = Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut last_progress = Instant::now();
    if let Some(first) = opts.assume_bound {
        let server = opts.relay.map_or(Ipv4Addr::BROADCAST, |(_, s)| s);
        for (i, b) in dora.bound.iter_mut().enumerate() {
            *b = Some(Bound {
                addr: Ipv4Addr::from(u32::from(first).wrapping_add(i as u32)),
                server,
            });
        }
        sum.bound = u64::from(opts.clients);
        server_mac = Some([0xff; 6]);
    }
    while (sum.bound as usize) < n && Instant::now() < deadline {
        // In flight: started and not bound yet.
        while next.saturating_sub(sum.bound as usize) < opts.window as usize && next < n {
            // A frame the full socket refused is sent again with the stalled DORAs.
            let _ = raw.send(&discover(opts.seed, next as u32, my_mac, opts.relay, &opts.agent));
            dora.sent_at[next] = Some(Instant::now());
            next += 1;
        }
        if let Ok(Some(r)) = raw.recv(&mut buf)
            && let Some(s) = parse_reply(&buf[..r.len])
            && s.chaddr == client_mac(opts.seed, s.xid & ((1 << 30) - 1))
        {
            match dora.on_reply(&s) {
                Some(Step::Request(i, b)) => {
                    let _ = raw.send(&select(
                        opts.seed,
                        i as u32,
                        my_mac,
                        b.addr,
                        b.server,
                        opts.relay,
                        &opts.agent,
                    ));
                }
                Some(Step::Bound) => {
                    server_mac.get_or_insert(s.server_mac);
                    sum.bound += 1;
                }
                Some(Step::Nak) => sum.naks += 1,
                None => {}
            }
        }
        // Retransmit stalled DORAs (lost OFFER/ACK, or a NAK).
        if last_progress.elapsed() >= Duration::from_secs(1) {
            for i in dora.stalled(next, Instant::now()) {
                let _ = raw.send(&discover(opts.seed, i as u32, my_mac, opts.relay, &opts.agent));
            }
            if opts.progress {
                eprintln!("dora: {}/{} bound, {} NAKs", sum.bound, n, sum.naks);
            }
            last_progress = Instant::now();
        }
    }
    let bound = dora.bound;
    sum.dora_secs = t0.elapsed().as_secs_f64();
    sum.dora_per_s = sum.bound as f64 / sum.dora_secs.max(1e-9);
    if sum.bound == 0 {
        bail!("no client got a lease in {:?}", opts.duration);
    }
    if opts.renewals == 0 {
        return Ok(sum);
    }

    // Renewals: a sender thread at the set rate, this thread counts ACKs.
    let clients: Vec<(u32, Bound)> =
        bound.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i as u32, b))).collect();
    let server_mac = server_mac.context("no server MAC learned")?;
    let frames: Vec<Vec<u8>> = clients
        .iter()
        .map(|(i, b)| {
            let mac = client_mac(opts.seed, *i);
            let mut r = Renewal {
                xid: xid(PHASE_RENEW, *i),
                chaddr: mac,
                ciaddr: b.addr,
                client_id: Some(client_id(mac)),
                kind: match opts.relay {
                    Some((giaddr, _)) => RenewKind::Relayed { giaddr, relay_mac: my_mac },
                    None => RenewKind::Renewing,
                },
                server: b.server,
                server_mac,
                vlans: opts.agent.vlans.clone(),
                relay_info: opts.agent.relay_info(*i, mac),
            }
            .frame();
            // Every renewal leaves from our one MAC: the server's ACKs come back to it.
            r[6..12].copy_from_slice(&my_mac);
            r
        })
        .collect();
    let stamps: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let sender = {
        let (raw, stamps, sent, done) = (raw.clone(), stamps.clone(), sent.clone(), done.clone());
        let (total, rate) = (opts.renewals, opts.rate);
        let idx: Vec<u32> = clients.iter().map(|(i, _)| *i).collect();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut k = 0u64;
            while k < total && Instant::now() < deadline && !done.load(Ordering::Relaxed) {
                if rate > 0 {
                    let due = start + Duration::from_secs_f64(k as f64 / rate as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep((due - now).min(Duration::from_millis(1)));
                        continue;
                    }
                }
                // A batch of up to 64 (fewer when paced): one system call for all of them.
                let batch = if rate > 0 {
                    #[expect(clippy::cast_sign_loss, reason = "elapsed time and rate are >= 0")]
                    let due_now = (start.elapsed().as_secs_f64() * rate as f64) as u64 + 1;
                    due_now.saturating_sub(k).clamp(1, 64)
                } else {
                    64
                }
                .min(total - k);
                let now_ns = epoch.elapsed().as_nanos() as u64;
                let chosen: Vec<&[u8]> = (0..batch)
                    .map(|b| {
                        let j = ((k + b) % frames.len() as u64) as usize;
                        stamps[idx[j] as usize].store(now_ns, Ordering::Relaxed);
                        frames[j].as_slice()
                    })
                    .collect();
                k += raw.send_batch(&chosen) as u64;
                sent.store(k, Ordering::Relaxed);
            }
            // How long sending took: the rates are over this, not over the wait for late
            // replies that follows.
            start.elapsed()
        })
    };
    let mut peer = PeerCounter::open(&opts.iface);
    let peer_base = match &mut peer {
        Some(p) => {
            p.set(true)?;
            p.count()
        }
        None => 0,
    };
    let hist = Hist::new();

    let mut last = Instant::now();
    let mut quiet_since = None;
    loop {
        if let Ok(Some(r)) = raw.recv(&mut buf)
            && let Some(s) = parse_reply(&buf[..r.len])
            && s.xid >> 30 == PHASE_RENEW
            && s.kind == MessageType::Ack
            && s.chaddr == client_mac(opts.seed, s.xid & ((1 << 30) - 1))
        {
            let i = (s.xid & ((1 << 30) - 1)) as usize;
            if i < n {
                if peer.is_none() {
                    sum.renewal_acks += 1;
                }
                let at = stamps[i].load(Ordering::Relaxed);
                let now = epoch.elapsed().as_nanos() as u64;
                hist.add(now.saturating_sub(at) / 1000);
            }
        }
        let s = sent.load(Ordering::Relaxed);
        if let Some(p) = &peer {
            sum.renewal_acks = p.count() - peer_base;
        }
        if opts.progress && last.elapsed() >= Duration::from_secs(1) {
            eprintln!("renew: {s} sent, {} acked", sum.renewal_acks);
            last = Instant::now();
        }
        // Stop once the sender is done and replies have stopped for 200 ms, or at the deadline.
        if sender.is_finished() {
            let q = quiet_since.get_or_insert(Instant::now());
            if sum.renewal_acks >= s || q.elapsed() > Duration::from_millis(200) {
                break;
            }
        }
        if Instant::now() >= deadline + Duration::from_secs(1) {
            done.store(true, Ordering::Relaxed);
            break;
        }
    }
    let send_time = sender.join().unwrap_or(Duration::ZERO);
    if let Some(p) = &mut peer {
        sum.renewal_acks = p.count() - peer_base;
        p.set(false)?;
    }
    sum.renewals_sent = sent.load(Ordering::Relaxed);

    sum.renew_secs = send_time.as_secs_f64();
    sum.renew_sent_per_s = sum.renewals_sent as f64 / sum.renew_secs.max(1e-9);
    sum.renew_acked_per_s = sum.renewal_acks as f64 / sum.renew_secs.max(1e-9);
    sum.renew_loss = if sum.renewals_sent > 0 {
        1.0 - (sum.renewal_acks as f64 / sum.renewals_sent as f64).min(1.0)
    } else {
        0.0
    };
    sum.renew_latency_us_p50 = hist.quantile(0.5);
    sum.renew_latency_us_p99 = hist.quantile(0.99);
    sum.renew_latency_us_max = hist.max.load(Ordering::Relaxed);
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(phase: u32, client: u32, kind: MessageType, last: u8) -> Seen {
        Seen {
            xid: xid(phase, client),
            kind,
            yiaddr: Ipv4Addr::new(10, 0, 0, last),
            server: Some(Ipv4Addr::new(10, 0, 0, 1)),
            server_mac: [2, 0, 0, 0, 0, 1],
            chaddr: client_mac(1, client),
        }
    }

    #[test]
    fn each_client_gets_its_own_option_82_on_every_message() {
        let agent = Agent {
            circuit_id: Some("olt1 eth 1/1/{i}:100".into()),
            remote_id: Some("{mac}".into()),
            vlans: vec![],
        };
        let mac = client_mac(1, 7);
        let v = agent.relay_info(7, mac).unwrap();
        let info = xdhcp::relay::AgentInfo::parse(&v);
        assert_eq!(info.circuit_id, Some(&b"olt1 eth 1/1/7:100"[..]));
        assert_eq!(info.remote_id, Some(packet::fmt_mac(&mac).as_bytes()));
        assert_ne!(agent.relay_info(8, client_mac(1, 8)), Some(v.clone()));
        assert_eq!(Agent::default().relay_info(7, mac), None);
        // On the DORA's messages too, last, giaddr as the mode says.
        for relay in [None, Some((Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1)))] {
            let f = discover(1, 7, mac, relay, &agent);
            let p = packet::parse_frame(&f).unwrap();
            assert_eq!(xdhcp::relay::from_payload(&p.payload), Some(v.clone()));
            assert_eq!(p.msg.giaddr(), relay.map_or(Ipv4Addr::UNSPECIFIED, |r| r.0));
        }
    }

    #[test]
    fn qinq_tags_ride_on_every_frame_and_replies_are_read_through_them() {
        let agent = Agent { vlans: vec![Vlan::dot1ad(100), Vlan::dot1q(2001)], ..Agent::default() };
        let relay = Some((Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1)));
        let f = discover(1, 7, client_mac(1, 7), relay, &agent);
        assert_eq!(f[12..14], [0x88, 0xa8], "the S-tag outermost");
        assert_eq!(u16::from_be_bytes([f[14], f[15]]) & 0xfff, 100);
        assert_eq!(f[16..18], [0x81, 0x00]);
        assert_eq!(u16::from_be_bytes([f[18], f[19]]) & 0xfff, 2001);
        let p = packet::parse_frame(&f).unwrap();
        assert_eq!(p.msg.opts().msg_type(), Some(MessageType::Discover));
    }

    #[test]
    fn a_late_ack_after_a_retransmission_binds_the_client_once() {
        let mut d = Dora::new(2);
        let t0 = Instant::now();
        d.sent_at[0] = Some(t0);
        let offer = seen(PHASE_DISCOVER, 0, MessageType::Offer, 50);
        assert!(matches!(d.on_reply(&offer), Some(Step::Request(0, _))));
        // No ACK within a second: the client starts over and forgets the offer...
        assert_eq!(d.stalled(1, t0 + Duration::from_secs(2)), [0]);
        // ...and then the ACK to its first REQUEST arrives: bound, with the ACK's address.
        let ack = seen(PHASE_REQUEST, 0, MessageType::Ack, 50);
        assert_eq!(d.on_reply(&ack), Some(Step::Bound));
        assert_eq!(d.bound[0].map(|b| b.addr), Some(Ipv4Addr::new(10, 0, 0, 50)));
        // The restarted DORA's OFFER and ACK change nothing and count nothing.
        assert_eq!(d.on_reply(&offer), None);
        assert_eq!(d.on_reply(&ack), None);
        assert!(d.stalled(1, t0 + Duration::from_secs(10)).is_empty());
        assert_eq!(d.bound.iter().flatten().count(), 1);
    }

    #[test]
    fn a_nak_restarts_the_client_at_the_next_retransmission() {
        let mut d = Dora::new(1);
        let t0 = Instant::now();
        d.sent_at[0] = Some(t0);
        assert!(d.on_reply(&seen(PHASE_DISCOVER, 0, MessageType::Offer, 50)).is_some());
        assert_eq!(d.on_reply(&seen(PHASE_REQUEST, 0, MessageType::Nak, 50)), Some(Step::Nak));
        assert_eq!(d.stalled(1, Instant::now()), [0]);
        // A fresh offer is taken again.
        let again = d.on_reply(&seen(PHASE_DISCOVER, 0, MessageType::Offer, 51));
        assert!(
            matches!(again, Some(Step::Request(0, b)) if b.addr == Ipv4Addr::new(10, 0, 0, 51))
        );
        // Replies for clients the run does not have are ignored.
        assert_eq!(d.on_reply(&seen(PHASE_REQUEST, 7, MessageType::Ack, 52)), None);
    }
}

/// What a flood run (`xdhcp-load --flood`) did.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct FloodSummary {
    pub discovers_sent: u64,
    pub secs: f64,
    pub sent_per_s: f64,
    pub offers: u64,
    /// Addresses the flood obtained (ACKs to the REQUESTs it sent for its offers).
    pub bound: u64,
}

/// A DISCOVER flood: every DISCOVER from another new client (distinct MACs and client ids, as
/// a starvation attack or a looping CPE sends them), at `rate` per second (0: as fast as the
/// socket takes them), never retransmitted; each OFFER is taken up with a REQUEST, so the
/// flood holds what it is given. At most `clients` DISCOVERs and `duration` of time.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "client indices stay below 2^30 (checked on entry); elapsed time and rate are >= 0"
)]
#[expect(clippy::cast_precision_loss, reason = "counts and seconds far below 2^52")]
#[expect(
    clippy::many_single_char_names,
    reason = "n, r, s, f, i: count, received, seen, frame, index, as in `run`"
)]
pub fn flood(opts: &LoadOptions) -> Result<FloodSummary> {
    ensure!(opts.clients > 0 && opts.clients < (1 << 30), "clients must be 1 .. 2^30");
    let raw = open_socket(&opts.iface)?;
    let _absorb = opts
        .relay
        .map(|(giaddr, _)| std::net::UdpSocket::bind(SocketAddrV4::new(giaddr, SERVER_PORT)))
        .transpose()
        .context("bind the relay address's port 67 (does the interface have that address?)")?;
    // Never waits on the socket: the timeout's granularity is a jiffy (4 ms), which would
    // pace the flood, not the server.
    raw.set_nonblocking(true).context("O_NONBLOCK")?;
    let my_mac = packet_socket::interface_mac(&opts.iface)?;
    let n = u64::from(opts.clients);
    let start = Instant::now();
    let deadline = start + opts.duration;
    let mut sum = FloodSummary::default();
    let mut buf = vec![0u8; 2048];
    let mut offered = vec![false; n as usize];
    let mut send_done = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let mut busy = false;
        if sum.discovers_sent < n {
            let due = if opts.rate == 0 {
                u64::MAX
            } else {
                (start.elapsed().as_secs_f64() * opts.rate as f64) as u64 + 1
            };
            let batch = due.saturating_sub(sum.discovers_sent).min(64).min(n - sum.discovers_sent);
            let frames: Vec<Vec<u8>> = (0..batch)
                .map(|b| {
                    let i = (sum.discovers_sent + b) as u32;
                    discover(opts.seed, i, my_mac, opts.relay, &opts.agent)
                })
                .collect();
            let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            let sent = raw.send_batch(&refs) as u64;
            sum.discovers_sent += sent;
            busy = sent > 0;
        } else if send_done.is_none() {
            send_done = Some(now);
        }
        // Replies, until the socket has none for now; then back to sending.
        for _ in 0..256 {
            let Ok(Some(r)) = raw.recv(&mut buf) else { break };
            busy = true;
            let Some(s) = parse_reply(&buf[..r.len]) else { continue };
            let i = (s.xid & ((1 << 30) - 1)) as usize;
            if i >= offered.len() || s.chaddr != client_mac(opts.seed, i as u32) {
                continue;
            }
            match (s.xid >> 30, s.kind) {
                (PHASE_DISCOVER, MessageType::Offer) if !offered[i] => {
                    offered[i] = true;
                    sum.offers += 1;
                    let server = s.server.unwrap_or(Ipv4Addr::UNSPECIFIED);
                    let f = select(
                        opts.seed,
                        i as u32,
                        my_mac,
                        s.yiaddr,
                        server,
                        opts.relay,
                        &opts.agent,
                    );
                    let _ = raw.send(&f);
                }
                (PHASE_REQUEST, MessageType::Ack) => sum.bound += 1,
                _ => {}
            }
        }
        // Sent everything: a second more for the last answers.
        if send_done.is_some_and(|t| now.duration_since(t) > Duration::from_secs(1)) {
            break;
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    sum.secs = send_done.unwrap_or_else(Instant::now).duration_since(start).as_secs_f64();
    sum.sent_per_s = sum.discovers_sent as f64 / sum.secs.max(1e-9);
    Ok(sum)
}

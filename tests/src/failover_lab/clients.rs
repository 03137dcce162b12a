//! Clients the failover tests drive besides udhcpc: perfdhcp (many simulated clients, acting as
//! a relay) and crafted ones on a packet socket, for what no real client can be made to do on
//! cue (release in the second of its ACK, decline).
use std::{
    fs,
    net::{Ipv4Addr, SocketAddrV4},
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use dhcp_lab::lab::{self, RawSocket};
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};

use super::Port;

/// One perfdhcp run.
#[derive(Clone, Debug)]
pub struct Perfdhcp {
    /// Simulated clients (one MAC range from `mac_base`, the same run after run).
    pub clients: u32,
    /// DORAs per second.
    pub rate: u32,
    /// RELEASEs per second (a release follows its ACK at once when one is due); 0: none.
    pub release_rate: u32,
    /// Seconds it runs.
    pub secs: u64,
    /// The first MAC, as perfdhcp takes it (`02:5e:51:00:00:00`).
    pub mac_base: String,
}

impl Perfdhcp {
    /// Runs perfdhcp from `port` (a relay: its address is the giaddr) to `server` (an address,
    /// or `255.255.255.255` for every server on the segment) and returns its report.
    ///
    /// # Panics
    /// When it cannot run, runs past its time, or fails for anything but drops (perfdhcp
    /// exits 3 when a lease it asked for did not come: a server whose share is used up or that
    /// is down, which the tests expect).
    #[must_use]
    pub fn run(&self, port: &Port, server: &str) -> String {
        let out_path = std::env::temp_dir().join(format!("{}-perfdhcp.out", port.ns.name()));
        let out = fs::File::create(&out_path).unwrap();
        let mut cmd = port.ns.exec("perfdhcp");
        cmd.args(["-4", "-l", &port.iface, "-r", &self.rate.to_string()])
            .args(["-R", &self.clients.to_string(), "-p", &self.secs.to_string()])
            .args(["-b", &format!("mac={}", self.mac_base)]);
        if self.release_rate > 0 {
            cmd.args(["-F", &self.release_rate.to_string()]);
        }
        let mut child = cmd
            .arg(server)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start perfdhcp");
        let deadline = Instant::now() + Duration::from_secs(self.secs + 15);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("perfdhcp ran past its {} s", self.secs);
            }
            thread::sleep(Duration::from_millis(100));
        };
        let text = fs::read_to_string(&out_path).unwrap_or_default();
        let _ = fs::remove_file(&out_path);
        assert!(matches!(status.code(), Some(0 | 3)), "perfdhcp {status}:\n{text}");
        text
    }
}

/// perfdhcp's report, its counts only.
#[must_use]
pub fn perf_summary(report: &str) -> String {
    report
        .lines()
        .filter(|l| {
            l.starts_with("***Statistics")
                || l.starts_with("sent packets")
                || l.starts_with("received packets")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A crafted client `mac` on `sock` gets a lease (DISCOVER, OFFER, REQUEST, ACK; up to four
/// DISCOVERs 3 s apart): the address and the server that gave it.
///
/// # Panics
/// When no server offers or the offering server does not ACK.
#[must_use]
pub fn dora(sock: &RawSocket, mac: [u8; 6], xid: u32) -> (Ipv4Addr, Ipv4Addr) {
    let wait = Duration::from_secs(3);
    // A server whose share a cycle used up gets addresses back at its next balancing.
    let offer = (0..4)
        .find_map(|_| {
            let discover = lab::client_message(xid, mac, MessageType::Discover);
            sock.exchange(mac, &discover, wait).unwrap()
        })
        .unwrap_or_else(|| panic!("no OFFER for {}", xdhcp::packet::fmt_mac(&mac)));
    let a = offer.msg.yiaddr();
    let Some(DhcpOption::ServerIdentifier(server)) =
        offer.msg.opts().get(OptionCode::ServerIdentifier).cloned()
    else {
        panic!("an OFFER without a server identifier: {:?}", offer.msg);
    };
    let mut req = lab::client_message(xid + 1, mac, MessageType::Request);
    req.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    req.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    let ack = sock.exchange(mac, &req, wait).unwrap().expect("an ACK");
    assert_eq!(
        (ack.msg.opts().msg_type(), ack.msg.yiaddr()),
        (Some(MessageType::Ack), a),
        "{:?}",
        ack.msg
    );
    (a, server)
}

/// The crafted client `mac`, bound to `a` by `server`, releases it as RFC 2131 says: unicast
/// from `a` to the server (at `server_mac`), so that only the server that bound it hears it.
///
/// # Panics
/// When the frame cannot be sent.
pub fn release(sock: &RawSocket, mac: [u8; 6], xid: u32, a: Ipv4Addr, server: (Ipv4Addr, [u8; 6])) {
    let mut m = lab::client_message(xid, mac, MessageType::Release);
    m.set_flags(dhcproto::v4::Flags::default());
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server.0));
    m.set_ciaddr(a);
    let frame = xdhcp::packet::udp_frame(
        &xdhcp::packet::L2 { dst: server.1, src: mac, vlans: vec![] },
        SocketAddrV4::new(a, dhcp_common::bootp::CLIENT_PORT),
        SocketAddrV4::new(server.0, dhcp_common::bootp::SERVER_PORT),
        &xdhcp::packet::encode(&m),
    );
    sock.send(&frame).unwrap();
}

/// The crafted client `mac`, bound to `a` by `server`, declines it (broadcast: it has no
/// address it could use).
///
/// # Panics
/// When the frame cannot be sent.
pub fn decline(sock: &RawSocket, mac: [u8; 6], xid: u32, a: Ipv4Addr, server: Ipv4Addr) {
    let mut m = lab::client_message(xid, mac, MessageType::Decline);
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    sock.send(&lab::client_frame(mac, &m)).unwrap();
}

/// The crafted client `mac`, bound to `a`, asks to extend its lease: RENEWING (unicast from
/// `a` to `server`, at its MAC) when `server` is given, REBINDING (broadcast: any server may
/// answer) otherwise. The reply (ACK or NAK) and the server that sent it, if one came within
/// `wait`. The server answers at the client's MAC: the socket's port must be promiscuous.
///
/// # Panics
/// When the socket fails.
#[must_use]
pub fn extend(
    sock: &RawSocket,
    mac: [u8; 6],
    xid: u32,
    a: Ipv4Addr,
    server: Option<(Ipv4Addr, [u8; 6])>,
    wait: Duration,
) -> Option<(MessageType, Ipv4Addr)> {
    let mut m = lab::client_message(xid, mac, MessageType::Request);
    m.set_flags(dhcproto::v4::Flags::default());
    m.set_ciaddr(a);
    let (dst_mac, dst) =
        server.map_or((xdhcp::packet::BROADCAST_MAC, Ipv4Addr::BROADCAST), |s| (s.1, s.0));
    let frame = xdhcp::packet::udp_frame(
        &xdhcp::packet::L2 { dst: dst_mac, src: mac, vlans: vec![] },
        SocketAddrV4::new(a, dhcp_common::bootp::CLIENT_PORT),
        SocketAddrV4::new(dst, dhcp_common::bootp::SERVER_PORT),
        &xdhcp::packet::encode(&m),
    );
    sock.send(&frame).unwrap();
    let reply = sock.reply_to(xid, wait).unwrap()?;
    let kind = reply.msg.opts().msg_type()?;
    let Some(DhcpOption::ServerIdentifier(by)) =
        reply.msg.opts().get(OptionCode::ServerIdentifier).cloned()
    else {
        return None;
    };
    Some((kind, by))
}

/// A crafted client that holds a lease and renews it ([`Renewers`]).
#[derive(Debug, Clone)]
pub struct Crafted {
    pub mac: [u8; 6],
    pub addr: Ipv4Addr,
    /// The server that last answered it: address and MAC.
    pub server: (Ipv4Addr, [u8; 6]),
    /// Set by the test: the renewing thread releases it at its next round, then `released`.
    pub release: bool,
    pub released: bool,
}

impl Crafted {
    #[must_use]
    pub fn new(mac: [u8; 6], addr: Ipv4Addr, server: (Ipv4Addr, [u8; 6])) -> Self {
        Self { mac, addr, server, release: false, released: false }
    }
}

/// What a crafted client's request to extend its lease got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An ACK from its own server (RENEWING).
    Renewed(Ipv4Addr),
    /// Its own server silent, an ACK from any server (REBINDING).
    Rebound(Ipv4Addr),
    Nak(Ipv4Addr),
    Silence,
}

/// One renewal of [`Renewers::run`]: when it was asked, by which client (its index), and what
/// it got.
pub type Renewal = (Instant, usize, Answer);

/// Crafted clients on one packet socket, renewing until told to stop. The test adds clients
/// and marks some for release while they run.
pub struct Renewers<'a> {
    pub clients: std::sync::Mutex<Vec<Crafted>>,
    /// The servers' MACs by address: where a client's RENEWING goes.
    pub servers: std::collections::HashMap<Ipv4Addr, [u8; 6]>,
    pub every: Duration,
    pub stop: std::sync::atomic::AtomicBool,
    /// The clients' port (promiscuous: the servers answer at each client's MAC).
    port: &'a Port,
}

impl<'a> Renewers<'a> {
    /// Renewers on `port`, which this makes promiscuous.
    ///
    /// # Panics
    /// When `ip` fails on the port.
    #[must_use]
    pub fn new(
        port: &'a Port,
        servers: std::collections::HashMap<Ipv4Addr, [u8; 6]>,
        every: Duration,
    ) -> Self {
        port.ns.ip(&["link", "set", &port.iface, "promisc", "on"]).unwrap();
        Self {
            clients: std::sync::Mutex::new(Vec::new()),
            servers,
            every,
            stop: std::sync::atomic::AtomicBool::new(false),
            port,
        }
    }

    /// Adds a client that got `addr` from `server`. The port answers ARP for `addr`: a
    /// server's routed reply to a RENEWING client (ISC dhcpd's, xdhcp's from userspace)
    /// goes to whoever the kernel finds at the client's address (XDP answers at the client's
    /// MAC without asking).
    ///
    /// # Panics
    /// When `server` is not one of [`Renewers::servers`].
    pub fn add(&self, mac: [u8; 6], addr: Ipv4Addr, server: Ipv4Addr) {
        // An address handed out again, to another of these clients, is there already.
        let _ = self.port.ns.ip(&["addr", "add", &format!("{addr}/32"), "dev", &self.port.iface]);
        let c = Crafted::new(mac, addr, (server, self.servers[&server]));
        self.clients.lock().unwrap().push(c);
    }

    /// The clients as they are now.
    ///
    /// # Panics
    /// When a renewing thread panicked holding the list.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Crafted> {
        self.clients.lock().unwrap().clone()
    }

    /// Every [`Renewers::every`] until [`Renewers::stop`], each client not released asks its
    /// server to extend its lease, and any server (rebinding) if that one is silent; a client
    /// marked for release releases (to the server that last answered it) and renews no more.
    /// Every answer.
    ///
    /// # Panics
    /// When the socket fails.
    pub fn run(&self, sock: &RawSocket) -> Vec<Renewal> {
        use std::sync::atomic::Ordering;
        let wait = Duration::from_millis(300);
        let mut log = Vec::new();
        let mut xid = 0x5eed_0000_u32;
        while !self.stop.load(Ordering::SeqCst) {
            let round = Instant::now();
            for c in self.clients.lock().unwrap().iter_mut() {
                if c.release && !c.released {
                    xid += 4;
                    release(sock, c.mac, xid, c.addr, c.server);
                    c.released = true;
                }
            }
            let n = self.clients.lock().unwrap().len();
            for k in 0..n {
                let (mac, a, server) = {
                    let c = &self.clients.lock().unwrap()[k];
                    if c.released || c.release {
                        continue;
                    }
                    (c.mac, c.addr, c.server)
                };
                xid += 4;
                let asked = Instant::now();
                let answer = match extend(sock, mac, xid, a, Some(server), wait) {
                    Some((MessageType::Ack, by)) => Answer::Renewed(by),
                    Some((_, by)) => Answer::Nak(by),
                    None => match extend(sock, mac, xid + 1, a, None, wait) {
                        Some((MessageType::Ack, by)) => Answer::Rebound(by),
                        Some((_, by)) => Answer::Nak(by),
                        None => Answer::Silence,
                    },
                };
                if let Answer::Rebound(by) = answer
                    && let Some(m) = self.servers.get(&by)
                {
                    self.clients.lock().unwrap()[k].server = (by, *m);
                }
                log.push((asked, k, answer));
            }
            thread::sleep(self.every.saturating_sub(round.elapsed()));
        }
        log
    }
}

/// Sets its flag when dropped: a renewing thread in a scope stops however the scope ends (a
/// failed check unwinding through it would otherwise wait for it for ever).
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The crafted client `mac` gets a lease from `server` only, taking no other server's offer
/// (DISCOVERs up to four times, 3 s apart): the address.
///
/// # Panics
/// When `server` does not offer or does not ACK.
#[must_use]
pub fn dora_from(sock: &RawSocket, mac: [u8; 6], xid: u32, server: Ipv4Addr) -> Ipv4Addr {
    let offered = (0..4).find_map(|i| {
        let discover = lab::client_message(xid + i * 4, mac, MessageType::Discover);
        sock.send(&lab::client_frame(mac, &discover)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let p = sock.reply_to(discover.xid(), left).unwrap()?;
            let by = p.msg.opts().get(OptionCode::ServerIdentifier).cloned();
            if by == Some(DhcpOption::ServerIdentifier(server)) {
                return Some(p.msg.yiaddr());
            }
        }
        None
    });
    let a = offered.unwrap_or_else(|| panic!("no OFFER from {server}"));
    let mut req = lab::client_message(xid + 100, mac, MessageType::Request);
    req.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    req.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    let ack = sock.exchange(mac, &req, Duration::from_secs(3)).unwrap().expect("an ACK");
    assert_eq!(
        (ack.msg.opts().msg_type(), ack.msg.yiaddr()),
        (Some(MessageType::Ack), a),
        "{:?}",
        ack.msg
    );
    a
}

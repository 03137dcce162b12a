//! The real server with real clients: `xdhcp run` serves a LAN of network namespaces (a bridge,
//! the server's veth with XDP on it, one namespace per client), and udhcpc, dhclient and
//! dhcpcd lease from it, renew through XDP, release, and keep renewing across restarts of the
//! server; a client behind ISC dhcrelay leases through the relay; crafted packets check the
//! NAK for an INIT-REBOOT from another network and the probation after a DECLINE, and a
//! subscriber behind a layer-2 access node (option 82, giaddr 0) renewing through XDP from its
//! line and refused from another.
//!
//! Every test builds its own LAN (unique namespace and interface names) and tears it down,
//! checking that no namespace is left. The server is this test binary started again with only
//! [`daemon_process`] selected ([`Launcher::TestHarness`]), so it is always the code under test
//! and can be killed with SIGKILL like the real thing.
use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use dhcp_common::Stat;
use dhcp_lab::lab::{
    self, ClientEvent, ClientKind, Daemon, LAN_SERVER, Lan, Launcher, Port, RawSocket,
    ServerConfig, netns_list, wait_for,
};
use dhcproto::v4::{DhcpOption, MessageType};
use integration::fixture::root_required;
use serde_json::Value;

const BOUND_WITHIN: Duration = Duration::from_secs(30);
/// dhclient and dhcpcd renew at T1 (10 s), udhcpc at half the lease and then by broadcast
/// two seconds later (~32 s): this covers two of either, with room for a loaded machine.
const RENEWALS_WITHIN: Duration = Duration::from_secs(50);

/// Not a test: the server process of the other tests (see the module comment).
#[test]
fn daemon_process() {
    lab::daemon_child();
}

fn launcher() -> Launcher {
    Launcher::TestHarness {
        exe: std::env::current_exe().expect("path of the test binary"),
        test: "daemon_process".into(),
    }
}

/// A LAN with the server running on it, and the names of the namespaces to check at the end.
fn lan_with_server(cfg: &ServerConfig) -> (Lan, Daemon, Vec<String>) {
    root_required();
    let lan = Lan::new().expect("build the LAN");
    let daemon = Daemon::start(&lan, cfg, launcher()).expect("start xdhcp run");
    let names = lan.namespaces();
    (lan, daemon, names)
}

fn client_port(lan: &Lan, kind: ClientKind, names: &mut Vec<String>) -> Port {
    if let Err(e) = kind.locate() {
        panic!("{e:#}");
    }
    let mut p = lan.port(kind.name(), None).expect("a port on the LAN");
    names.push(p.ns.name().to_owned());
    p.start_client(kind).expect("start the client");
    p
}

/// Everything is dropped (server stopped, pins removed, namespaces deleted) and nothing of it
/// is left in `ip netns list`.
fn assert_torn_down(names: &[String]) {
    let left: Vec<String> =
        netns_list().expect("ip netns list").into_iter().filter(|n| names.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

fn record(daemon: &Daemon, addr: Ipv4Addr) -> Value {
    daemon.lease(addr).expect("xdhcp leases").unwrap_or(Value::Null)
}

/// Waits until the store's record of `addr` is in `state`.
fn wait_state(daemon: &Daemon, addr: Ipv4Addr, state: &str) -> Value {
    wait_for(&format!("{addr} to be {state} in the store"), Duration::from_secs(10), || {
        let r = record(daemon, addr);
        Ok((r["state"] == state).then_some(r))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nrecord: {}", record(daemon, addr)))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn bound(p: &mut Port) -> ClientEvent {
    let c = p.client().unwrap();
    c.wait_bound(BOUND_WITHIN).unwrap_or_else(|e| panic!("{e:#}"))
}

fn renewals(p: &mut Port, n: usize) -> Vec<ClientEvent> {
    let c = p.client().unwrap();
    c.wait_renewals(n, RENEWALS_WITHIN).unwrap_or_else(|e| panic!("{e:#}"))
}

fn slow_acks(daemon: &Daemon) -> u64 {
    daemon.stats().expect("xdhcp stats")["sent"]["ack"].as_u64().unwrap()
}

/// The three clients on one LAN: each gets an address from the slow path (committed: the
/// store has it active, with the client's MAC and client identifier), renews through XDP
/// (the fast path's ACK counter rises by one per renewal request the clients sent, the slow
/// path sends no further ACK, and the server records the renewals), and gives the address back
/// (the store shows it released).
#[test]
fn real_clients_lease_renew_through_xdp_and_release() {
    let t0 = Instant::now();
    let cfg = ServerConfig::default();
    let (lan, daemon, mut names) = lan_with_server(&cfg);
    let before = lan.fast_path_stats().unwrap();
    let mut ports: Vec<Port> =
        ClientKind::ALL.iter().map(|k| client_port(&lan, *k, &mut names)).collect();
    let mut addrs = Vec::new();
    for p in &mut ports {
        let b = bound(p);
        let a = b.ip.expect("the hook logs the address");
        assert_eq!(b.lease_secs, Some(cfg.lease_secs), "{b:?}");
        assert!((cfg.pool.0..=cfg.pool.1).contains(&a), "{a} is outside the pool");
        let r = record(&daemon, a);
        assert_eq!(r["state"], "active", "{r}");
        assert_eq!(r["mac"], xdhcp::packet::fmt_mac(&p.mac), "{r}");
        #[expect(clippy::format_collect, reason = "a few bytes of client id per port")]
        let id = p.client_id().map(|id| id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        assert_eq!(r["client_id"].as_str(), id.as_deref(), "{r}");
        addrs.push(a);
    }
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), 3, "three clients, three addresses");
    assert_eq!(slow_acks(&daemon), 3, "one slow-path ACK per client");

    // Two renewals each (udhcpc: one; it renews only every ~32 s).
    for p in &mut ports {
        let n = if p.client().unwrap().kind() == ClientKind::Udhcpc { 1 } else { 2 };
        renewals(p, n);
    }
    // The store has what the last XDP ACK told each client (whole seconds, rounded down
    // twice: its clock, then the event's age).
    for p in &mut ports {
        let c = p.client().unwrap();
        let (b, r) = c.lease_history();
        let addr = b.unwrap().ip.unwrap();
        let told = r.last().unwrap().at + f64::from(cfg.lease_secs);
        let rec = wait_for("the store to record the last renewal", Duration::from_secs(5), || {
            let rec = record(&daemon, addr);
            Ok((rec["expires_at"].as_f64().unwrap_or(0.0) + 3.0 >= told).then_some(rec))
        })
        .unwrap_or_else(|e| panic!("{}: {e:#}: {}", c.kind(), record(&daemon, addr)));
        assert_eq!(rec["state"], "active", "{rec}");
    }

    // Each gives its address back: the store shows it released, still with the client's MAC
    // (the client gets it back first if it returns).
    for p in &mut ports {
        let c = p.client().unwrap();
        let addr = c.lease_history().0.unwrap().ip.unwrap();
        c.release().unwrap_or_else(|e| panic!("{}: {e:#}", c.kind()));
        let rec = wait_state(&daemon, addr, "released");
        assert_eq!(rec["mac"], xdhcp::packet::fmt_mac(&p.mac), "{rec}");
    }
    for p in &mut ports {
        p.stop_client().unwrap();
    }
    let acks = lan.fast_path_stats().unwrap().since(&before).get(Stat::Ack);
    let mut requests = 0;
    let mut logged = 0;
    for p in &mut ports {
        let c = p.client().unwrap();
        requests += c.renewal_requests();
        logged += c.lease_history().1.len();
    }
    assert_eq!(acks, requests as u64, "one XDP ACK per renewal request the clients sent");
    assert!(acks >= logged as u64, "{acks} XDP ACKs for {logged} logged renewals");
    assert_eq!(slow_acks(&daemon), 3, "a renewal reached the slow path");
    let stats = daemon.stats().unwrap();
    assert_eq!(stats["fast_path_renewals_recorded"].as_u64(), Some(acks), "{stats}");
    assert_eq!(stats["releases"].as_u64(), Some(3), "{stats}");
    eprintln!(
        "lease/renew/release: {acks} XDP ACKs, {logged} renewals, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    drop(ports);
    drop(daemon);
    drop(lan);
    assert_torn_down(&names);
}

/// The server is stopped (`signal`) while the clients are bound: the pinned fast path keeps
/// answering their renewals alone, within the horizon the store committed; the next server
/// adopts the pinned link and maps, records the renewals XDP answered meanwhile (their events
/// waited in the pinned ring) and goes on. What the clients were told never runs past what the
/// store holds durably (`held_until`).
fn renewals_continue_across_a_restart(signal: libc::c_int, kinds: &[ClientKind]) {
    let t0 = Instant::now();
    let cfg = ServerConfig::default();
    let (lan, mut daemon, mut names) = lan_with_server(&cfg);
    let mut ports: Vec<Port> = kinds.iter().map(|k| client_port(&lan, *k, &mut names)).collect();
    for p in &mut ports {
        bound(p);
    }
    assert_eq!(slow_acks(&daemon), kinds.len() as u64);
    let before = lan.fast_path_stats().unwrap();
    let status = daemon.kill(signal).unwrap();
    let down_at = unix_now();
    if signal == libc::SIGTERM {
        assert!(status.success(), "xdhcp run exited with {status} on SIGTERM");
    }
    // Nothing listens on port 67 now: whatever the clients get, XDP sent.
    let mut while_down = 0;
    for p in &mut ports {
        let kind = p.client().unwrap().kind();
        // udhcpc renews every ~32 s: one is enough; the others renew at T1 (10 s).
        let want = if kind == ClientKind::Udhcpc { 1 } else { 2 };
        let c = p.client().unwrap();
        let done_before = c.lease_history().1.iter().filter(|e| e.at < down_at).count();
        let r = renewals(p, done_before + want);
        while_down += r.iter().filter(|e| e.at >= down_at).count();
        assert!(r.iter().all(|e| e.lease_secs == Some(cfg.lease_secs)), "{kind}: {r:?}");
    }
    let acks_down = lan.fast_path_stats().unwrap().since(&before).get(Stat::Ack);
    assert!(
        acks_down >= while_down as u64,
        "{while_down} renewals with the server down but only {acks_down} XDP ACKs"
    );
    // What XDP told the clients is covered by what is durable: the store, read while no
    // server runs, holds each lease at least until the end of its last renewal.
    let held: std::collections::HashMap<Ipv4Addr, u64> =
        xdhcp::store::LeaseStore::open(&daemon.state_dir)
            .and_then(|s| s.load_all())
            .expect("read the store")
            .into_iter()
            .filter(|l| l.state == xdhcp::store::LeaseState::Active)
            .map(|l| (l.address, l.held_until))
            .collect();
    for p in &mut ports {
        let c = p.client().unwrap();
        let (b, r) = c.lease_history();
        let addr = b.unwrap().ip.unwrap();
        let told = r.last().unwrap().at + f64::from(cfg.lease_secs);
        #[expect(clippy::cast_precision_loss, reason = "Unix seconds, far below 2^52")]
        let h = held.get(&addr).copied().unwrap_or(0) as f64;
        assert!(h + 3.0 >= told, "{}: durable until {h}, told until {told:.1}", c.kind());
    }

    daemon.restart().unwrap();
    let log = daemon.log();
    let second = &log[log.rfind("start 2").unwrap()..];
    assert!(
        second.contains("adopted=true"),
        "the new server did not adopt the pinned fast path:\n{second}"
    );
    // The new server caught up with what XDP told the clients while nobody was listening.
    for p in &mut ports {
        let c = p.client().unwrap();
        let (b, r) = c.lease_history();
        let addr = b.unwrap().ip.unwrap();
        let told = r.last().unwrap().at + f64::from(cfg.lease_secs);
        wait_for(
            "the store to record the renewals XDP answered alone",
            Duration::from_secs(5),
            || {
                let rec = record(&daemon, addr);
                Ok((rec["state"] == "active"
                    && rec["expires_at"].as_f64().unwrap_or(0.0) + 3.0 >= told)
                    .then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e:#}: {}", c.kind(), record(&daemon, addr)));
    }
    // And the fast path answers under the new server too.
    let after_restart = unix_now();
    for p in &mut ports {
        let kind = p.client().unwrap().kind();
        if kind == ClientKind::Udhcpc {
            continue;
        }
        let n = p.client().unwrap().lease_history().1.len();
        let r = renewals(p, n + 1);
        assert!(r.last().unwrap().at >= after_restart);
    }
    for p in &mut ports {
        p.stop_client().unwrap();
    }
    assert_eq!(slow_acks(&daemon), 0, "the new server answered a renewal itself");
    let acks = lan.fast_path_stats().unwrap().since(&before).get(Stat::Ack);
    eprintln!(
        "restart after signal {signal}: {while_down} renewals while down, {acks} XDP ACKs since \
         the stop, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    drop(ports);
    drop(daemon);
    drop(lan);
    assert_torn_down(&names);
}

#[test]
fn renewals_continue_across_a_sigterm_restart() {
    renewals_continue_across_a_restart(libc::SIGTERM, &[ClientKind::Dhclient, ClientKind::Dhcpcd]);
}

/// udhcpc renews by broadcast (REBINDING) in this lab: the kill -9 variant covers rebinding.
#[test]
fn renewals_and_rebinds_continue_across_a_sigkill_restart() {
    renewals_continue_across_a_restart(libc::SIGKILL, &[ClientKind::Udhcpc, ClientKind::Dhclient]);
}

/// A client behind ISC dhcrelay (in a namespace between the client's link and the LAN) gets
/// an address of the relayed subnet, chosen by the giaddr the agent stamps, and renews it
/// (unicast to the server identifier, routed through the agent) through XDP.
#[test]
fn client_behind_dhcrelay_leases_and_renews() {
    let cfg = ServerConfig { relayed: true, ..ServerConfig::default() };
    let (lan, daemon, mut names) = lan_with_server(&cfg);
    let mut relay = lan.relay().expect("start dhcrelay");
    names.extend(relay.namespaces());
    let before = lan.fast_path_stats().unwrap();
    relay.client.start_client(ClientKind::Dhclient).unwrap();
    let b = relay
        .client
        .client()
        .unwrap()
        .wait_bound(BOUND_WITHIN)
        .unwrap_or_else(|e| panic!("{e:#}\ndhcrelay:\n{}", relay.log()));
    let a = b.ip.unwrap();
    assert!(
        (Ipv4Addr::new(10, 98, 0, 100)..=Ipv4Addr::new(10, 98, 0, 199)).contains(&a),
        "{a} is not in the relayed subnet's pool"
    );
    let rec = record(&daemon, a);
    assert_eq!((rec["state"].as_str(), rec["subnet"].as_u64()), (Some("active"), Some(1)), "{rec}");
    let r = renewals(&mut relay.client, 2);
    relay.client.stop_client().unwrap();
    let counters = lan.fast_path_stats().unwrap().since(&before);
    let acks = counters.get(Stat::Ack);
    let requests = relay.client.client().unwrap().renewal_requests();
    eprintln!("relayed client: {requests} renewal requests, {acks} XDP ACKs");
    // dhcrelay's packet sockets see the client's unicast renewal pass through on its way to
    // the server and relay a copy of it from each interface as well (giaddr 10.98.0.1 and
    // 10.99.0.2): XDP answers all three, the client takes the first ACK.
    assert!(
        (requests as u64..=3 * requests as u64).contains(&acks) && requests >= 2,
        "XDP ACKs vs the relayed client's renewal requests; counters {}\ndhcrelay:\n{}\nclient:\n{}\nstats {}",
        counters.to_json(),
        relay.log(),
        relay.client.client().unwrap().output_tail(30),
        daemon.stats().unwrap()
    );
    assert!(r.iter().all(|e| e.ip == Some(a) && e.lease_secs == Some(cfg.lease_secs)), "{r:?}");
    assert_eq!(slow_acks(&daemon), 1, "one slow-path ACK (the relayed DORA), none for renewals");
    assert!(relay.log().contains("Forwarded BOOTREPLY"), "{}", relay.log());
    drop(relay);
    drop(daemon);
    drop(lan);
    assert_torn_down(&names);
}

/// A port with a crafted client on it (an `AF_PACKET` socket) and its namespace's name.
fn raw_port(lan: &Lan, names: &mut Vec<String>) -> (Port, RawSocket) {
    let port = lan.port("raw", None).expect("a port on the LAN");
    names.push(port.ns.name().to_owned());
    let sock = RawSocket::open(&port.ns, &port.iface).expect("packet socket");
    (port, sock)
}

/// A client that remembers an address from another network (INIT-REBOOT: REQUEST with the
/// address in option 50, no server identifier, no ciaddr) is told NAK at once, so that it
/// goes back to DISCOVER instead of waiting out its retries.
#[test]
fn init_reboot_from_another_network_gets_a_nak() {
    let (lan, daemon, mut names) = lan_with_server(&ServerConfig::default());
    let (port, sock) = raw_port(&lan, &mut names);
    let elsewhere = Ipv4Addr::new(10, 55, 0, 7);
    let mut m = lab::client_message(0x5eed_0001, port.mac, MessageType::Request);
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(elsewhere));
    let reply = sock.exchange(port.mac, &m, Duration::from_secs(5)).unwrap().unwrap_or_else(|| {
        panic!("no answer to the INIT-REBOOT; server log:\n{}", daemon.log_tail(20))
    });
    assert_eq!(reply.msg.opts().msg_type(), Some(MessageType::Nak), "{:?}", reply.msg);
    assert_eq!(reply.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        reply.msg.opts().get(dhcproto::v4::OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(LAN_SERVER))
    );
    // Broadcast: the client has no address the server could unicast to.
    assert_eq!(reply.ip_dst, Ipv4Addr::BROADCAST);
    assert!(record(&daemon, elsewhere).is_null(), "the store took note of {elsewhere}");
    assert_eq!(daemon.stats().unwrap()["sent"]["nak"].as_u64(), Some(1));
    drop(sock);
    drop(port);
    drop(daemon);
    drop(lan);
    assert_torn_down(&names);
}

/// A client that finds its new address in use (ARP) declines it: the server sets the address
/// aside (abandoned, for the probation time) and offers the next client another one.
#[test]
fn declined_address_is_set_aside() {
    let (lan, daemon, mut names) = lan_with_server(&ServerConfig::default());
    let (port, sock) = raw_port(&lan, &mut names);
    let mac = port.mac;
    let wait = Duration::from_secs(5);
    let kind = |p: &xdhcp::packet::Parsed| p.msg.opts().msg_type();
    let offer = sock
        .exchange(mac, &lab::client_message(0x5eed_0010, mac, MessageType::Discover), wait)
        .unwrap()
        .expect("an OFFER");
    assert_eq!(kind(&offer), Some(MessageType::Offer));
    let a = offer.msg.yiaddr();
    let mut req = lab::client_message(0x5eed_0011, mac, MessageType::Request);
    req.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    req.opts_mut().insert(DhcpOption::ServerIdentifier(LAN_SERVER));
    let ack = sock.exchange(mac, &req, wait).unwrap().expect("an ACK");
    assert_eq!((kind(&ack), ack.msg.yiaddr()), (Some(MessageType::Ack), a));
    assert_eq!(record(&daemon, a)["state"], "active");

    let mut decline = lab::client_message(0x5eed_0012, mac, MessageType::Decline);
    decline.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    decline.opts_mut().insert(DhcpOption::ServerIdentifier(LAN_SERVER));
    sock.send(&lab::client_frame(mac, &decline)).unwrap();
    let rec = wait_state(&daemon, a, "abandoned");
    assert_eq!(daemon.stats().unwrap()["declines"].as_u64(), Some(1), "{rec}");

    let other = [0x02, 0x58, 0x64, 0x00, 0xee, 0x01];
    let offer = sock
        .exchange(other, &lab::client_message(0x5eed_0020, other, MessageType::Discover), wait)
        .unwrap()
        .expect("an OFFER for the next client");
    assert_eq!(kind(&offer), Some(MessageType::Offer));
    assert_ne!(offer.msg.yiaddr(), a, "the declined address was offered again");
    drop(sock);
    drop(port);
    drop(daemon);
    drop(lan);
    assert_torn_down(&names);
}

/// `msg` from `mac` with `opt82` added last, as a layer-2 access node passes a client's
/// broadcast on (giaddr 0).
fn via_access_node(mac: [u8; 6], msg: &dhcproto::v4::Message, opt82: &[u8]) -> Vec<u8> {
    let payload = xdhcp::packet::insert_last_option(&xdhcp::packet::encode(msg), 82, opt82);
    xdhcp::packet::udp_frame(
        &xdhcp::packet::L2 { dst: xdhcp::packet::BROADCAST_MAC, src: mac, vlans: vec![] },
        std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        std::net::SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
        &payload,
    )
}

#[test]
fn a_subscriber_behind_an_access_node_renews_through_xdp_from_its_line_only() {
    use xdhcp::{core::control::Request, relay};
    let (lan, daemon, mut names) = lan_with_server(&ServerConfig::default());
    let (port, sock) = raw_port(&lan, &mut names);
    let home =
        relay::encode(&[(relay::CIRCUIT_ID, b"olt1 eth 1/1/3:100"), (relay::REMOTE_ID, b"cpe")]);
    let wait = Duration::from_secs(5);
    let answer = |frame: &[u8], xid: u32| {
        sock.send(frame).unwrap();
        sock.reply_to(xid, wait).unwrap().unwrap_or_else(|| {
            panic!("no answer to xid {xid:#x}; server log:\n{}", daemon.log_tail(20))
        })
    };
    // DORA through the access node: bound, with its line on record.
    let discover = lab::client_message(0x82_0001, port.mac, MessageType::Discover);
    let offer = answer(&via_access_node(port.mac, &discover, &home), 0x82_0001);
    let a = offer.msg.yiaddr();
    let mut select = lab::client_message(0x82_0002, port.mac, MessageType::Request);
    select.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    select.opts_mut().insert(DhcpOption::ServerIdentifier(LAN_SERVER));
    let ack = answer(&via_access_node(port.mac, &select, &home), 0x82_0002);
    assert_eq!(ack.msg.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(xdhcp::relay::from_payload(&ack.payload), Some(home.clone()), "echoed");
    let r = wait_state(&daemon, a, "active");
    assert_eq!(
        (r["circuit_id"].as_str(), r["remote_id"].as_str()),
        (Some("olt1 eth 1/1/3:100"), Some("cpe"))
    );
    // `xdhcp leases --circuit-id`: this line has it, another has nothing.
    let on = |circuit: &str| {
        let q = Request::Leases(Box::new(xdhcp::core::LeaseQuery {
            circuit_id: Some(circuit.into()),
            ..Default::default()
        }));
        daemon.ctl(&q).unwrap()["leases"].as_array().unwrap().len()
    };
    assert_eq!((on("olt1 eth 1/1/3:100"), on("olt1 eth 1/1/4:100")), (1, 0));

    // Renewing from its line, option 82 added by the access node: answered by XDP, echoed.
    let renew = |xid: u32, opt82: &[u8]| {
        let r = xdhcp::packet::Renewal {
            xid,
            chaddr: port.mac,
            ciaddr: a,
            client_id: Some([&[1u8][..], &port.mac].concat()),
            kind: xdhcp::packet::RenewKind::Renewing,
            server: LAN_SERVER,
            server_mac: ack.l2.src,
            vlans: vec![],
            relay_info: Some(opt82.to_vec()),
        };
        r.frame()
    };
    let before = lan.fast_path_stats().unwrap();
    // The kernel entry is written once the binding is committed: until then the slow path
    // answers. Each try has its own xid, so a late answer is not taken for the next.
    let xid = std::cell::Cell::new(0x82_0100);
    let xdp_ack = wait_for("a renewal answered by XDP", Duration::from_secs(10), || {
        xid.set(xid.get() + 1);
        let reply = answer(&renew(xid.get(), &home), xid.get());
        let d = lan.fast_path_stats()?.since(&before);
        Ok((d.get(Stat::Ack) >= 1).then_some(reply))
    })
    .unwrap();
    assert_eq!(xdp_ack.msg.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(xdhcp::relay::from_payload(&xdp_ack.payload), Some(home.clone()), "echoed by XDP");

    // From another line: XDP passes it, and the slow path refuses it (the default policy).
    let away =
        relay::encode(&[(relay::CIRCUIT_ID, b"olt1 eth 1/1/4:100"), (relay::REMOTE_ID, b"cpe")]);
    let before = lan.fast_path_stats().unwrap();
    let nak = answer(&renew(0x82_0004, &away), 0x82_0004);
    assert_eq!(nak.msg.opts().msg_type(), Some(MessageType::Nak));
    let d = lan.fast_path_stats().unwrap().since(&before);
    assert_eq!((d.get(Stat::Ack), d.get(Stat::PassRelayInfoMismatch)), (0, 1));
    let stats = daemon.stats().unwrap();
    assert_eq!(stats["circuit_changes"]["nak"].as_u64(), Some(1), "{stats}");
    assert!(daemon.log().contains("another circuit-id than its binding's"));
    assert_eq!(on("olt1 eth 1/1/3:100"), 1, "the binding stays on its line");
    drop(sock);
    drop(port);
    drop(daemon);
    drop(lan);
    assert_torn_down(&names);
}

//! Real clients behind a layer-2 access node: dhclient, dhcpcd and udhcpc each on a port of
//! the lab's access node shim ([`dhcp_lab::lab::access_node`]), which adds option 82 (the
//! port's circuit-id and remote-id) to every message they send, renewals included (TR-101
//! R-124), and takes it out of the replies. `xdhcp run` puts them in a class by circuit-id
//! prefix, leases them addresses from the pool only that class may use, with the class's own
//! options, and XDP answers their renewals (which carry option 82 too) with the same options.
//! What each client was given is read from the environment its hook script was called with.
//!
//! The shim on its own is tested first: a tagged DISCOVER, an ACK and a kernel-sent unicast
//! (checksum left to offload) across it, between namespaces of the test's own.
//!
//! Every namespace and interface is the lab's (unique names, removed on drop); the tests check
//! that no namespace is left. The server is this test binary started again with only
//! [`daemon_process`] selected, as in `server_clients.rs`.
use std::{
    net::{Ipv4Addr, SocketAddrV4, UdpSocket},
    time::{Duration, Instant},
};

use dhcp_common::{
    Stat,
    bootp::{CLIENT_PORT, SERVER_PORT},
};
use dhcp_lab::lab::{
    self, AccessPort, ClientKind, Daemon, HookCall, LAN_PREFIX, LAN_SERVER, Lan, Launcher, Line,
    NetNs, RawSocket, Shim, TempDir, VethEnd, VethPair, netns_list, unique_ifname, wait_for,
};
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use integration::fixture::root_required;
use xdhcp::{
    core::{LeaseQuery, control::Request},
    packet::{self, L2, Vlan},
    packet_socket::{PacketSocket, Protocol},
    relay,
};

/// Not a test: the server process of the other tests (see the module comment).
#[test]
fn daemon_process() {
    lab::daemon_child();
}

fn assert_torn_down(names: &[String]) {
    let left: Vec<String> =
        netns_list().expect("ip netns list").into_iter().filter(|n| names.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// A packet socket that sees every frame, VLAN tags and pending checksums included.
fn tap(ns: &NetNs, iface: &str) -> PacketSocket {
    ns.run(|| {
        let s = PacketSocket::open(iface, Protocol::All)?;
        s.enable_auxdata()?;
        s.set_recv_timeout(Duration::from_millis(100))?;
        Ok(s)
    })
    .expect("packet socket")
}

/// The first frame on `s` (as it was on the wire) that `pick` takes, within 5 s.
fn first<T>(s: &PacketSocket, mut pick: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        if let Some((r, meta)) = s.recv_meta(&mut buf).unwrap()
            && !r.outgoing
            && let Some(v) = pick(&lab::access_node::as_on_the_wire(&buf[..r.len], meta))
        {
            return Some(v);
        }
    }
    None
}

fn dhcp(f: &[u8], xid: u32) -> Option<packet::Parsed> {
    packet::parse_frame(f).ok().filter(|p| p.msg.xid() == xid)
}

/// The shim alone: subscriber ⟷ access node ⟷ uplink, three namespaces of this test. A
/// VLAN-tagged DISCOVER gets option 82 and keeps its tag; the tagged ACK loses option 82; a
/// REQUEST that the subscriber's kernel sends from a UDP socket (its checksum left to offload,
/// which a veth passes on unfinished) arrives with option 82 and a valid checksum; ARP, which
/// that needed, crossed both ways unchanged.
#[test]
fn the_shim_stamps_client_messages_and_strips_replies() {
    root_required();
    let (sub, node, up) =
        (NetNs::new("sub").unwrap(), NetNs::new("olt").unwrap(), NetNs::new("up").unwrap());
    let names: Vec<String> = [&sub, &node, &up].iter().map(|n| n.name().to_owned()).collect();
    let (sub_if, down_if, up_if, srv_if) =
        (unique_ifname('c'), unique_ifname('a'), unique_ifname('u'), unique_ifname('s'));
    let (cmac, smac) = ([0x02, 0x58, 0x68, 0, 0, 1], [0x02, 0x58, 0x68, 0, 0, 2]);
    let (cip, sip) = (Ipv4Addr::new(10, 96, 0, 2), Ipv4Addr::new(10, 96, 0, 1));
    let down = VethPair::new(
        &node,
        VethEnd { name: down_if.clone(), mac: [0x02, 0x58, 0x68, 0, 1, 1], addr: None },
        &sub,
        VethEnd { name: sub_if.clone(), mac: cmac, addr: Some((cip, 24)) },
    )
    .unwrap();
    let uplink = VethPair::new(
        &node,
        VethEnd { name: up_if.clone(), mac: [0x02, 0x58, 0x68, 0, 1, 2], addr: None },
        &up,
        VethEnd { name: srv_if.clone(), mac: smac, addr: Some((sip, 24)) },
    )
    .unwrap();
    let line = Line::new("olt1 xpon 0/1/1:7", "ont-0107");
    let raw = line.relay_info();
    let mut shim = Shim::start(&node, &down_if, &up_if, raw.clone()).unwrap();
    let (client, server) = (tap(&sub, &sub_if), tap(&up, &srv_if));

    // Tagged DISCOVER up: option 82 last, tag kept, checksums valid.
    let vlans = vec![Vlan::dot1q(7)];
    let discover = lab::client_message(0x5117_0001, cmac, MessageType::Discover);
    let frame = packet::udp_frame(
        &L2 { dst: packet::BROADCAST_MAC, src: cmac, vlans: vlans.clone() },
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT),
        &packet::encode(&discover),
    );
    client.send(&frame).unwrap();
    let got = first(&server, |f| dhcp(f, 0x5117_0001)).expect("the DISCOVER at the uplink");
    assert!(got.ip_checksum_ok && got.udp_checksum_ok, "{got:?}");
    assert_eq!(got.l2.vlans, vlans);
    assert_eq!(relay::from_payload(&got.payload), Some(raw.clone()));
    assert_eq!(got.msg.giaddr(), Ipv4Addr::UNSPECIFIED, "a layer-2 access node");

    // Tagged ACK down, echoing option 82: it arrives without.
    let yiaddr = Ipv4Addr::new(10, 96, 0, 50);
    let unset = Ipv4Addr::UNSPECIFIED;
    let mut ack = Message::new_with_id(0x5117_0001, unset, yiaddr, unset, unset, &cmac);
    ack.set_opcode(Opcode::BootReply);
    ack.opts_mut().insert(DhcpOption::MessageType(MessageType::Ack));
    ack.opts_mut().insert(DhcpOption::ServerIdentifier(sip));
    let payload = packet::insert_last_option(
        &packet::encode_reply(&ack, &packet::ReplyRoom::default()),
        82,
        &raw,
    );
    let frame = packet::udp_frame(
        &L2 { dst: cmac, src: smac, vlans: vlans.clone() },
        SocketAddrV4::new(sip, SERVER_PORT),
        SocketAddrV4::new(yiaddr, CLIENT_PORT),
        &payload,
    );
    server.send(&frame).unwrap();
    let got = first(&client, |f| dhcp(f, 0x5117_0001)).expect("the ACK at the subscriber");
    assert!(got.ip_checksum_ok && got.udp_checksum_ok, "{got:?}");
    assert_eq!(got.l2.vlans, vlans);
    assert_eq!(relay::from_payload(&got.payload), None, "option 82 went to the subscriber");
    assert_eq!(got.msg.opts().msg_type(), Some(MessageType::Ack));

    // A unicast REQUEST from the subscriber's kernel (ARP first, through the shim).
    let mut req = lab::client_message(0x5117_0002, cmac, MessageType::Request);
    req.set_ciaddr(cip);
    let bytes = packet::encode(&req);
    sub.run(|| {
        let sock = UdpSocket::bind(SocketAddrV4::new(cip, CLIENT_PORT))?;
        sock.send_to(&bytes, SocketAddrV4::new(sip, SERVER_PORT))?;
        Ok(())
    })
    .unwrap();
    let got = first(&server, |f| dhcp(f, 0x5117_0002)).expect("the unicast REQUEST at the uplink");
    assert!(got.ip_checksum_ok && got.udp_checksum_ok, "{got:?}");
    assert_eq!((got.ip_src, got.ip_dst, got.l2.dst), (cip, sip, smac));
    assert_eq!(relay::from_payload(&got.payload), Some(raw.clone()));

    let st = shim.stats();
    assert!(st.inserted == 2 && st.stripped == 1, "{st:?}");
    assert!(st.checksums_completed >= 1, "the kernel's REQUEST had its checksum done: {st:?}");
    // The ARP request and reply went through as well.
    assert!(st.upstream >= 3 && st.downstream >= 2, "{st:?}");
    assert_eq!(st.send_errors, 0, "{st:?}");
    shim.stop().unwrap();
    drop((client, server, shim, down, uplink, sub, node, up));
    assert_torn_down(&names);
}

/// The class: every port of olt1's xPON line cards.
const CLASS: &str = "olt1";
const NTP: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 99, 0, 5), Ipv4Addr::new(10, 99, 0, 6)];
const SEARCH: &str = "isp.example";
const TFTP: &str = "tftp.isp.example";
const MTU: u16 = 1492;
/// What the test asks each client for: NTP servers, domain search, TFTP server, MTU.
const REQUEST: [u8; 4] = [42, 119, 66, 26];
const LEASE_SECS: u32 = 60;

/// The subnet has an NTP server of its own that the class overrides; its only pool is the
/// class's. The class's options (47 bytes) and the subnet's leave the fast-path ACK's block
/// (96 bytes) room, so XDP renews these leases.
fn config(iface: &str, dir: &std::path::Path) -> String {
    format!(
        r#"interfaces = ["{iface}"]
server_id = "{LAN_SERVER}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"
[fast_path]
attach_mode = "native"
horizon = 300

[[class]]
name = "{CLASS}"
circuit_id_prefix = "olt1 xpon"
[class.options]
ntp-servers = ["{n0}", "{n1}"]
domain-search = ["{SEARCH}"]
tftp-server-name = "{TFTP}"
interface-mtu = {MTU}

[[subnet]]
prefix = "10.99.0.0/{LAN_PREFIX}"
pools = [{{ start = "10.99.0.100", end = "10.99.0.199", allow = ["{CLASS}"] }}]
lease_time = {LEASE_SECS}
t1 = 10
t2 = 50
[subnet.options]
ntp-servers = ["10.99.0.9"]
"#,
        dir = dir.display(),
        n0 = NTP[0],
        n1 = NTP[1],
    )
}

/// Each client's view of the class's options, from one hook call: as each hands them over
/// (dhclient: `new_ntp_servers`, …; dhcpcd the same names; udhcpc `ntpsrv`, `search`, `tftp`,
/// `mtu`). Domain names lose a trailing dot (dhclient writes them fully qualified).
fn check_options(kind: ClientKind, call: &HookCall) {
    let get = |code: u8| {
        call.option(kind, code).unwrap_or_else(|| {
            panic!("{kind} gave its hook no option {code} at {}: {:#?}", call.reason, call.env)
        })
    };
    let words = |s: &str| -> Vec<String> {
        s.split_whitespace().map(|w| w.trim_matches('"').trim_end_matches('.').to_owned()).collect()
    };
    let ntp: Vec<Ipv4Addr> = words(get(42)).iter().map(|w| w.parse().unwrap()).collect();
    assert_eq!(ntp, NTP, "{kind} at {}: NTP servers", call.reason);
    assert_eq!(words(get(119)), [SEARCH], "{kind} at {}: domain search", call.reason);
    assert_eq!(words(get(66)), [TFTP], "{kind} at {}: TFTP server", call.reason);
    assert_eq!(get(26).trim(), MTU.to_string(), "{kind} at {}: MTU", call.reason);
}

fn is_bound(reason: &str) -> bool {
    matches!(reason, "bound" | "BOUND" | "REBOOT")
}

fn is_renewal(reason: &str) -> bool {
    matches!(reason, "renew" | "RENEW" | "REBIND")
}

fn start_server(lan: &Lan) -> Daemon {
    let dir = TempDir::new("server").unwrap();
    std::fs::write(dir.path().join("xdhcp.toml"), config(&lan.server_if, dir.path())).unwrap();
    let launcher = Launcher::TestHarness {
        exe: std::env::current_exe().expect("path of the test binary"),
        test: "daemon_process".into(),
    };
    Daemon::start_in(lan.server.name(), dir, launcher, None).expect("xdhcp run")
}

fn slow_acks(daemon: &Daemon) -> u64 {
    daemon.stats().expect("xdhcp stats")["sent"]["ack"].as_u64().unwrap()
}

/// A client straight on the LAN, without option 82, is in no class: no pool is open to it.
fn no_offer_off_the_access_node(lan: &Lan, names: &mut Vec<String>) {
    let direct = lan.port("direct", None).unwrap();
    names.push(direct.ns.name().to_owned());
    let sock = RawSocket::open(&direct.ns, &direct.iface).unwrap();
    let discover = lab::client_message(0x0082_5001, direct.mac, MessageType::Discover);
    let offer = sock.exchange(direct.mac, &discover, Duration::from_secs(2)).unwrap();
    assert!(offer.is_none(), "a client in no class was offered {:?}", offer.map(|o| o.msg));
}

/// The port's client's first lease: from the class's pool, with the class's options, on
/// record with the port's line.
fn leased(p: &mut AccessPort, daemon: &Daemon) -> Ipv4Addr {
    let c = p.port.client().unwrap();
    let kind = c.kind();
    let b = c.wait_bound(Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e:#}"));
    let a = b.ip.expect("the hook logs the address");
    assert!(
        (Ipv4Addr::new(10, 99, 0, 100)..=Ipv4Addr::new(10, 99, 0, 199)).contains(&a),
        "{kind}: {a} is outside the class's pool"
    );
    let calls = c.hook_calls();
    let call = calls.iter().find(|h| is_bound(&h.reason)).expect("a hook call for the lease");
    check_options(kind, call);
    let rec = daemon.lease(a).unwrap().expect("a record");
    assert_eq!(rec["state"], "active", "{rec}");
    assert_eq!(
        (rec["circuit_id"].as_str(), rec["remote_id"].as_str()),
        (Some(p.line.circuit_id.as_str()), Some(p.line.remote_id.as_str())),
        "{kind}: {rec}"
    );
    a
}

/// `xdhcp leases --circuit-id` of the port's line: its one lease, `addr`, renewed to what the
/// client's last renewal said; and the shim stamped every message the client sent and
/// stripped every reply.
fn renewed_on_its_line(p: &mut AccessPort, addr: Ipv4Addr, daemon: &Daemon) {
    let st = p.shim_stats();
    let c = p.port.client().unwrap();
    let kind = c.kind();
    let told = c.lease_history().1.last().unwrap().at + f64::from(LEASE_SECS);
    let query = Request::Leases(Box::new(LeaseQuery {
        circuit_id: Some(p.line.circuit_id.clone()),
        ..Default::default()
    }));
    let rec = wait_for("the store to record the renewal", Duration::from_secs(5), || {
        let v = daemon.ctl(&query)?;
        let leases = v["leases"].as_array().cloned().unwrap_or_default();
        Ok(leases
            .first()
            .filter(|r| leases.len() == 1 && r["expires_at"].as_f64().unwrap_or(0.0) + 3.0 >= told)
            .cloned())
    })
    .unwrap_or_else(|e| panic!("{kind}: {e:#}: {}", daemon.ctl(&query).unwrap()));
    assert_eq!(rec["address"].as_str(), Some(addr.to_string().as_str()), "{rec}");
    assert_eq!(rec["remote_id"].as_str(), Some(p.line.remote_id.as_str()), "{rec}");
    // DISCOVER, REQUEST and each renewal up; OFFER, ACK and each renewal's ACK down.
    let sent = 2 + c.renewal_requests() as u64;
    assert!(st.inserted >= sent && st.stripped >= sent, "{kind}: {st:?}");
    assert_eq!(st.send_errors, 0, "{kind}: {st:?}");
}

/// dhclient, dhcpcd and udhcpc, each behind a port of its own with its own circuit-id, lease
/// from the class's pool (a client straight on the LAN, in no class, gets no offer) with the
/// class's options, which their hooks report; the store has each lease with its line. Each
/// renews once through XDP (the fast path's ACK counter rises by one per renewal request the
/// clients sent, none is passed for an option 82 other than the one on record, the slow path
/// sends no further ACK): the renewal carried the port's option 82, and the ACK the class's
/// options again. The store records the renewals on the same line.
#[test]
fn real_clients_behind_an_access_node_lease_from_their_class_and_renew_through_xdp() {
    root_required();
    let t0 = Instant::now();
    let plan = [
        (ClientKind::Dhclient, "olt1 xpon 0/1/1:7", "ont-0107"),
        (ClientKind::Dhcpcd, "olt1 xpon 0/1/1:8", "ont-0108"),
        (ClientKind::Udhcpc, "olt1 xpon 0/1/2:1", "ont-0201"),
    ];
    for (kind, _, _) in plan {
        if let Err(e) = kind.locate() {
            panic!("{e:#}");
        }
    }
    let lan = Lan::new().expect("build the LAN");
    let mut names = lan.namespaces();
    let daemon = start_server(&lan);
    no_offer_off_the_access_node(&lan, &mut names);

    let before = lan.fast_path_stats().unwrap();
    let mut ports: Vec<AccessPort> = plan
        .iter()
        .map(|(kind, circuit, remote)| {
            let mut p = lan.access_port(kind.name(), Line::new(circuit, remote)).unwrap();
            names.extend(p.namespaces());
            p.port.start_client_requesting(*kind, &REQUEST).unwrap();
            p
        })
        .collect();
    let addrs: Vec<Ipv4Addr> = ports.iter_mut().map(|p| leased(p, &daemon)).collect();
    let mut distinct = addrs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "three clients, three addresses: {addrs:?}");
    assert_eq!(slow_acks(&daemon), 3, "one slow-path ACK per client");

    // One renewal each: dhclient and dhcpcd at T1 (10 s), udhcpc at half the lease (30 s).
    for p in &mut ports {
        let c = p.port.client().unwrap();
        c.wait_renewals(1, Duration::from_secs(50)).unwrap_or_else(|e| panic!("{e:#}"));
        let calls = c.hook_calls();
        let call = calls.iter().rev().find(|h| is_renewal(&h.reason)).expect("a renewal call");
        check_options(c.kind(), call);
    }
    for p in &mut ports {
        p.port.stop_client().unwrap();
    }
    let counters = lan.fast_path_stats().unwrap().since(&before);
    let acks = counters.get(Stat::Ack);
    let requests: usize =
        ports.iter_mut().map(|p| p.port.client().unwrap().renewal_requests()).sum();
    assert_eq!(
        (acks, counters.get(Stat::PassRelayInfoMismatch)),
        (requests as u64, 0),
        "one XDP ACK per renewal request the clients sent; counters {}",
        counters.to_json()
    );
    assert_eq!(slow_acks(&daemon), 3, "a renewal reached the slow path");
    let stats = daemon.stats().unwrap();
    assert_eq!(stats["fast_path_renewals_recorded"].as_u64(), Some(acks), "{stats}");
    for (p, a) in ports.iter_mut().zip(&addrs) {
        renewed_on_its_line(p, *a, &daemon);
    }
    eprintln!(
        "access node: {requests} renewal requests, {acks} XDP ACKs, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    drop(ports);
    drop(daemon);
    drop(lan);
    assert_torn_down(&names);
}

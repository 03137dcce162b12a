//! A hub: one xdhcp server the failover secondary of two edge servers, one relationship each,
//! all three real processes.
//!
//! Two L2 segments, A and B. edge-a (primary of relationship "edge-a") serves segment A's
//! subnet, edge-b (primary of "edge-b") segment B's; the hub has a port on each segment and
//! holds both subnets. Both relationships share the hub's one failover listener: its address
//! is on the hub's loopback and each edge reaches it through the hub's port on its own segment,
//! so the hub tells the edges apart by the address a connection comes from alone.
//!
//! Both relationships reach NORMAL and clients on both segments are bound, each binding
//! copied to the hub. Then edge-a is killed with SIGKILL (and its port taken down: its XDP
//! program outlives the daemon), and only its relationship notices: the hub's "edge-a" goes
//! COMMUNICATIONS-INTERRUPTED, renews edge-a's clients no further than edge-a's MCLT past what
//! edge-a knows, and gives new clients of A MCLT-long leases from its own share, while
//! "edge-b" stays NORMAL on both of its servers the whole time and new clients of B are served
//! as before. The operator's partner-down must name the relationship
//! (there are two); once named, only "edge-a" goes PARTNER-DOWN, and after STOS+MCLT the hub
//! hands out edge-a's own share too. In the end no address is bound to two clients anywhere:
//! not between the hub and edge-b, nor between what edge-a had bound before it died and what
//! the hub bound after.
use std::{
    collections::{BTreeMap, HashSet},
    net::{Ipv4Addr, SocketAddrV4},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use dhcp_lab::lab::{self, RawSocket};
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use integration::{
    failover_lab::{
        Port, Segment, StopOnDrop, Udhcpc, Xdhcp, dora, dora_clients, in_state, log_tail,
        mac_served_by, num, wait_for,
    },
    fixture::root_required,
};
use serde_json::Value;
use xdhcp::daemon::ctl::Request;

/// Segment A's subnet is 10.`NET_A`.0.0/24, B's 10.`NET_B`.0.0/24: each edge is .1 on its
/// segment, the hub .2.
const NET_A: u8 = 71;
const NET_B: u8 = 72;
/// The hub's failover address (and server identifier), on its loopback: one listener for
/// both edges.
const HUB: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 9);
/// Each relationship its own MCLT, set by its primary and learnt by the hub. Short: edge-a's
/// is the wait between partner-down and the takeover of its share.
const MCLT_A: u64 = 30;
const MCLT_B: u64 = 45;
const LEASE: u64 = 600;
/// Each pool is .100 to .139; the edges split it half and half with the hub.
const POOL_END: u8 = 139;
const SPLIT: u16 = 128;
/// Simulated clients bound on each segment before the kill.
const BEFORE: u32 = 10;

/// Not a test: the server processes of the test below ([`Xdhcp::spawn`]).
#[test]
fn daemon_process() {
    lab::daemon_child();
}

const fn edge_ip(net: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, net, 0, 1)
}

const fn hub_port_ip(net: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, net, 0, 2)
}

/// An edge's config: the primary of relationship `name`, its peer the hub. edge-a has the
/// one-relationship form (`[failover]`, `failover = true`), edge-b the array with one entry
/// and its name on the subnet: both forms talk to the same hub.
fn edge_config(name: &str, net: u8, mclt: u64, array: bool) -> String {
    let me = edge_ip(net);
    let (table, subnet_failover) =
        if array { ("[[failover]]", format!("{name:?}")) } else { ("[failover]", "true".into()) };
    format!(
        r#"interfaces = ["IFACE"]
server_id = "{me}"
state_dir = "STATE"
control_socket = "SOCKET"

[fast_path]
attach_mode = "native"

{table}
name = "{name}"
role = "primary"
address = "{me}"
peer_address = "{HUB}"
max_response_delay = 5
load_balance_max_seconds = 60
mclt = {mclt}
split = {SPLIT}

[[subnet]]
prefix = "10.{net}.0.0/24"
pools = [{{ start = "10.{net}.0.100", end = "10.{net}.0.{POOL_END}" }}]
lease_time = {LEASE}
failover = {subnet_failover}
"#
    )
}

/// The hub's config: the secondary of both, on one listener, each subnet naming its
/// relationship. No auto partner-down: a hub's operator decides.
fn hub_config() -> String {
    let relationship = |name: &str, net: u8| {
        format!(
            r#"[[failover]]
name = "{name}"
role = "secondary"
address = "{HUB}"
peer_address = "{}"
max_response_delay = 5
load_balance_max_seconds = 60
auto_partner_down = 0
"#,
            edge_ip(net)
        )
    };
    let subnet = |name: &str, net: u8| {
        format!(
            r#"[[subnet]]
prefix = "10.{net}.0.0/24"
pools = [{{ start = "10.{net}.0.100", end = "10.{net}.0.{POOL_END}" }}]
lease_time = {LEASE}
failover = "{name}"
"#
        )
    };
    format!(
        r#"interfaces = ["IFACE", "IFACE2"]
server_id = "{HUB}"
state_dir = "STATE"
control_socket = "SOCKET"

[fast_path]
attach_mode = "native"

{}
{}
{}
{}"#,
        relationship("edge-a", NET_A),
        relationship("edge-b", NET_B),
        subnet("edge-a", NET_A),
        subnet("edge-b", NET_B),
    )
}

/// One relationship's status on `x`.
fn status(x: &Xdhcp, name: &str) -> anyhow::Result<Value> {
    x.ask(&Request::FailoverStatus { relationship: Some(name.to_owned()) })
}

fn both_normal(v: &Value) -> bool {
    v["my_state"] == "normal" && v["partner_state"] == "normal"
}

/// `x`'s active bindings in 10.`net`.0.0/24, address → MAC.
fn active_in(x: &Xdhcp, net: u8) -> BTreeMap<Ipv4Addr, String> {
    x.active_bindings().unwrap().into_iter().filter(|(a, _)| a.octets()[1] == net).collect()
}

/// Addresses `a` and `b` both hold active, for different MACs.
fn conflicts(
    a: &BTreeMap<Ipv4Addr, String>,
    b: &BTreeMap<Ipv4Addr, String>,
) -> Vec<(Ipv4Addr, String, String)> {
    a.iter()
        .filter_map(|(ip, m)| b.get(ip).filter(|n| *n != m).map(|n| (*ip, m.clone(), n.clone())))
        .collect()
}

/// The crafted client `mac`, bound to `a`, asks any server to extend its lease (REBINDING:
/// broadcast, `ciaddr` set). The reply's type, server identifier and lease time, if one came
/// within 3 s. The server answers at `a`: the client's port must answer ARP for it and be
/// promiscuous.
fn rebind(
    sock: &RawSocket,
    mac: [u8; 6],
    xid: u32,
    a: Ipv4Addr,
) -> Option<(MessageType, Ipv4Addr, u32)> {
    let mut m = lab::client_message(xid, mac, MessageType::Request);
    m.set_flags(dhcproto::v4::Flags::default());
    m.set_ciaddr(a);
    let frame = xdhcp::packet::udp_frame(
        &xdhcp::packet::L2 { dst: xdhcp::packet::BROADCAST_MAC, src: mac, vlans: vec![] },
        SocketAddrV4::new(a, dhcp_common::bootp::CLIENT_PORT),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, dhcp_common::bootp::SERVER_PORT),
        &xdhcp::packet::encode(&m),
    );
    sock.send(&frame).unwrap();
    let reply = sock.reply_to(xid, Duration::from_secs(3)).unwrap()?;
    let opts = reply.msg.opts();
    let by = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    let lease = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        _ => 0,
    };
    Some((opts.msg_type()?, by, lease))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Every status of relationship "edge-b" that was not NORMAL on both sides, on the hub or on
/// edge-b, while watched.
type Lapses = Mutex<Vec<(&'static str, String)>>;

/// Until `stop`, every 200 ms: the hub's "edge-b" and edge-b's own status.
fn watch_edge_b(hub: &Xdhcp, edge_b: &Xdhcp, stop: &AtomicBool, lapses: &Lapses) -> u32 {
    let mut looks = 0;
    while !stop.load(Ordering::SeqCst) {
        for (who, x) in [("the hub", hub), ("edge-b", edge_b)] {
            match status(x, "edge-b") {
                Ok(v) if both_normal(&v) => {}
                Ok(v) => lapses.lock().unwrap().push((who, v.to_string())),
                Err(e) => lapses.lock().unwrap().push((who, format!("{e:#}"))),
            }
        }
        looks += 1;
        thread::sleep(Duration::from_millis(200));
    }
    looks
}

/// The hub's and the edges' ports, each on its segment (the hub's on both), the edges routing
/// to the hub's failover address through the hub's port on their segment.
struct Lab {
    seg_a: Segment,
    seg_b: Segment,
    hub: Port,
    edge_a: Port,
    edge_b: Port,
}

impl Lab {
    fn new() -> Self {
        let mut seg_a = Segment::new().unwrap();
        let mut seg_b = Segment::new().unwrap();
        let mut hub =
            seg_a.port("hub", [0x02, NET_A, 0, 0, 0, 2], Some(hub_port_ip(NET_A))).unwrap();
        seg_b.port_into(&mut hub, [0x02, NET_B, 0, 0, 0, 2], hub_port_ip(NET_B)).unwrap();
        hub.ns.ip(&["addr", "add", &format!("{HUB}/32"), "dev", "lo"]).unwrap();
        let edge = |seg: &mut Segment, tag: &str, net: u8| {
            let p = seg.port(tag, [0x02, net, 0, 0, 0, 1], Some(edge_ip(net))).unwrap();
            let via = hub_port_ip(net).to_string();
            p.ns.ip(&["route", "add", &format!("{HUB}/32"), "via", &via]).unwrap();
            p
        };
        let edge_a = edge(&mut seg_a, "edge-a", NET_A);
        let edge_b = edge(&mut seg_b, "edge-b", NET_B);
        Lab { seg_a, seg_b, hub, edge_a, edge_b }
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn the_hub_serves_a_dead_edges_clients_while_its_other_relationship_stays_normal() {
    root_required();
    let t0 = Instant::now();
    let mut lab = Lab::new();
    // Client ports: simulated clients and a crafted one on A, simulated clients on B, and a
    // udhcpc on each segment whose hash gives it to that segment's edge.
    let (seg_a, seg_b) = (&mut lab.seg_a, &mut lab.seg_b);
    let sim_a = seg_a.port("sim-a", [0x02, NET_A, 0, 0, 1, 0], None).unwrap();
    let sim_b = seg_b.port("sim-b", [0x02, NET_B, 0, 0, 1, 0], None).unwrap();
    let raw_a = seg_a.port("raw-a", [0x02, NET_A, 0, 0, 2, 0], None).unwrap();
    let ua = seg_a.port("u-a", mac_served_by(true, SPLIT, NET_A), None).unwrap();
    let ub = seg_b.port("u-b", mac_served_by(true, SPLIT, NET_B), None).unwrap();

    let mut edge_a =
        Xdhcp::spawn(&lab.edge_a, &edge_config("edge-a", NET_A, MCLT_A, false)).unwrap();
    let edge_b = Xdhcp::spawn(&lab.edge_b, &edge_config("edge-b", NET_B, MCLT_B, true)).unwrap();
    let hub = Xdhcp::spawn(&lab.hub, &hub_config()).unwrap();
    let logs = |why: &str| {
        format!(
            "{why}\nhub: {}\nhub's log:\n{}\nedge-b's log:\n{}",
            hub.failover().map_or_else(|e| format!("{e:#}"), |v| v.to_string()),
            log_tail(&hub, 60),
            log_tail(&edge_b, 30)
        )
    };

    // Both relationships reach NORMAL; the hub answers for both at once, each with the MCLT
    // its own primary set.
    let all = wait_for("both relationships NORMAL on the hub", Duration::from_mins(1), || {
        let v = hub.failover()?;
        let rs = v["relationships"].as_array().cloned().unwrap_or_default();
        Ok((rs.len() == 2 && rs.iter().all(both_normal)).then_some(rs))
    })
    .unwrap_or_else(|e| panic!("{}", logs(&format!("{e:#}"))));
    let names: Vec<&str> = all.iter().filter_map(|r| r["relationship"].as_str()).collect();
    assert_eq!(names, ["edge-a", "edge-b"], "{all:?}");
    assert_eq!(num(&all[0], "mclt"), MCLT_A, "{all:?}");
    assert_eq!(num(&all[1], "mclt"), MCLT_B, "{all:?}");
    for (who, x, name) in [("edge-a", &edge_a, "edge-a"), ("edge-b", &edge_b, "edge-b")] {
        let v = x.failover().unwrap();
        assert!(both_normal(&v) && v["relationship"] == name, "{who}: {v}");
    }
    // ...on one listener.
    let ss = lab.hub.ns.exec("ss").args(["-Hltn", "sport = :647"]).output().unwrap();
    let listening = String::from_utf8_lossy(&ss.stdout).into_owned();
    let sockets: Vec<&str> = listening.lines().collect();
    assert!(
        sockets.len() == 1 && sockets[0].contains(&format!("{HUB}:647")),
        "the hub's failover listeners: {listening}"
    );
    // Each edge hands the hub half its free addresses.
    for (name, net) in [("edge-a", NET_A), ("edge-b", NET_B)] {
        wait_for(&format!("the hub's share of {name}"), Duration::from_secs(15), || {
            let v = status(&hub, name)?;
            let n = num(&v["pools"][0], "backup_secondary");
            Ok((n == 20 && v["pools"][0]["subnet"] == format!("10.{net}.0.0/24")).then_some(()))
        })
        .unwrap();
    }
    let normal_after = t0.elapsed();

    // Clients on both segments, served by the edge or the hub as each hash says; the crafted
    // client of A hashes to edge-a.
    let (ca, cb) = (Udhcpc::start(&ua).unwrap(), Udhcpc::start(&ub).unwrap());
    assert_eq!(
        dora_clients(&sim_a, BEFORE, 1, Duration::from_secs(20)).unwrap(),
        u64::from(BEFORE)
    );
    assert_eq!(
        dora_clients(&sim_b, BEFORE, 2, Duration::from_secs(20)).unwrap(),
        u64::from(BEFORE)
    );
    raw_a.ns.ip(&["link", "set", &raw_a.iface, "promisc", "on"]).unwrap();
    let sock = RawSocket::open(&raw_a.ns, &raw_a.iface).unwrap();
    let crafted = mac_served_by(true, SPLIT, 0xa0);
    let (crafted_ip, crafted_by) = dora(&sock, crafted, 0x4ab0_0000);
    assert_eq!(crafted_by, edge_ip(NET_A), "the crafted client hashes to edge-a");
    raw_a.ns.ip(&["addr", "add", &format!("{crafted_ip}/32"), "dev", &raw_a.iface]).unwrap();
    let (ba, bb) = (
        ca.wait_bound(Duration::from_secs(30)).unwrap(),
        cb.wait_bound(Duration::from_secs(30)).unwrap(),
    );
    assert_eq!((ba.server, bb.server), (Some(edge_ip(NET_A)), Some(edge_ip(NET_B))));

    // Every binding reaches the hub, the edges' and its own.
    // A's simulated clients, its udhcpc and the crafted one; B's simulated clients and udhcpc.
    let (bound_a, bound_b) = (BEFORE as usize + 2, BEFORE as usize + 1);
    let (on_a, on_b) = wait_for("every binding on the hub", Duration::from_secs(15), || {
        let (ea, eb, h) = (edge_a.active_bindings()?, edge_b.active_bindings()?, &hub);
        let (ha, hb) = (active_in(h, NET_A), active_in(h, NET_B));
        let done = ea.len() == bound_a && eb.len() == bound_b && ha == ea && hb == eb;
        Ok(done.then_some((ha, hb)))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nedge-a: {:?}\nedge-b: {:?}\nhub: {:?}",
            edge_a.active_bindings(),
            edge_b.active_bindings(),
            hub.active_bindings()
        )
    });
    let (udhcpc_a, udhcpc_b) = (ba.ip.unwrap(), bb.ip.unwrap());
    assert!(on_a.contains_key(&crafted_ip) && on_a.contains_key(&udhcpc_a), "{on_a:?}");
    assert!(on_b.contains_key(&udhcpc_b), "{on_b:?}");
    // A's free addresses as the hub had them: its own share (BACKUP), and edge-a's, every
    // other address nobody holds (an address never bound has no record to list).
    let hub_owned_a: HashSet<Ipv4Addr> =
        in_state(&hub, "backup").into_iter().filter(|a| a.octets()[1] == NET_A).collect();
    let edge_a_free: HashSet<Ipv4Addr> = (100..=POOL_END)
        .map(|h| Ipv4Addr::new(10, NET_A, 0, h))
        .filter(|a| !hub_owned_a.contains(a) && !on_a.contains_key(a))
        .collect();
    let share = num(&status(&hub, "edge-a").unwrap()["pools"][0], "backup_secondary");
    assert_eq!(hub_owned_a.len() as u64, share, "{hub_owned_a:?}");
    let edge_a_last = edge_a.active_bindings().unwrap();
    let before_kill = hub.lease(crafted_ip).unwrap().unwrap();
    eprintln!(
        "hub: both NORMAL after {:.1} s; {} + {} bound, all on the hub, after {:.1} s",
        normal_after.as_secs_f64(),
        on_a.len(),
        on_b.len(),
        t0.elapsed().as_secs_f64()
    );

    let stop = AtomicBool::new(false);
    let lapses: Lapses = Mutex::new(Vec::new());
    let looks = thread::scope(|sc| {
        // However this ends, the watch stops and the scope can end.
        let _stop = StopOnDrop(&stop);
        let watching = sc.spawn(|| watch_edge_b(&hub, &edge_b, &stop, &lapses));

        // edge-a dies: its relationship alone is interrupted.
        let killed = Instant::now();
        let st = edge_a.process().kill(libc::SIGKILL).unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(libc::SIGKILL));
        // Its XDP program outlives the daemon and would go on renewing edge-a's clients: the
        // node is gone, its port with it.
        let port = &lab.edge_a;
        port.ns.ip(&["link", "set", &port.iface, "down"]).unwrap();
        let interrupted = wait_for(
            "edge-a COMMUNICATIONS-INTERRUPTED on the hub",
            Duration::from_secs(20),
            || {
                let v = status(&hub, "edge-a")?;
                Ok((v["my_state"] == "communications-interrupted").then_some(v))
            },
        )
        .unwrap_or_else(|e| panic!("{}", logs(&format!("{e:#}"))));
        eprintln!(
            "hub: edge-a COMMUNICATIONS-INTERRUPTED {:.1} s after its kill",
            killed.elapsed().as_secs_f64()
        );
        assert_eq!(num(&interrupted, "mclt"), MCLT_A, "{interrupted}");

        // edge-a's client rebinds: the hub extends it, no further than MCLT beyond what edge-a
        // knows of it (the PET edge-a sent the hub).
        let known = num(&before_kill, "pet_received");
        let answer = rebind(&sock, crafted, 0x4ab1_0000, crafted_ip);
        let asked = unix_now();
        let Some((MessageType::Ack, by, lease)) = answer else {
            panic!("{}", logs(&format!("the rebinding client of edge-a got {answer:?}")));
        };
        assert_eq!(by, HUB, "the hub answered the rebinding client");
        let on_hub = hub.lease(crafted_ip).unwrap().unwrap();
        assert_eq!(on_hub["state"], "active", "{on_hub}");
        assert!(
            lease > 0 && asked + u64::from(lease) <= known + MCLT_A + 1,
            "a lease extended in COMMUNICATIONS-INTERRUPTED runs at most MCLT ({MCLT_A} s) past \
             the PET edge-a sent ({known}): {lease} s from {asked}\nbefore: {before_kill}\n\
             after: {on_hub}"
        );

        // New clients of A get addresses of the hub's own share, for MCLT at most: edge-a
        // knows nothing of them.
        let new_a = dora_clients(&sim_a, 3, 5, Duration::from_secs(15)).unwrap();
        assert_eq!(new_a, 3, "new clients of A in COMMUNICATIONS-INTERRUPTED");
        let granted_at = unix_now();
        let fresh: Vec<Value> = hub
            .leases()
            .unwrap()
            .into_iter()
            .filter(|l| l["state"] == "active")
            .filter(|l| {
                l["address"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .is_some_and(|a: Ipv4Addr| a.octets()[1] == NET_A && !on_a.contains_key(&a))
            })
            .collect();
        assert_eq!(fresh.len(), 3, "{fresh:?}");
        for l in &fresh {
            let a: Ipv4Addr = l["address"].as_str().unwrap().parse().unwrap();
            assert!(hub_owned_a.contains(&a), "not of the hub's share: {l}");
            assert!(num(l, "expires_at") <= granted_at + MCLT_A, "longer than MCLT: {l}");
        }

        // B's new clients are served as before.
        assert_eq!(dora_clients(&sim_b, 5, 3, Duration::from_secs(15)).unwrap(), 5);

        // Partner-down must say which relationship: there are two.
        let unnamed = hub.ask(&Request::FailoverPartnerDown { confirm: true, relationship: None });
        let e = format!("{:#}", unnamed.expect_err("partner-down without a name was accepted"));
        assert!(e.contains("edge-a") && e.contains("edge-b"), "{e}");
        let declared = hub
            .ask(&Request::FailoverPartnerDown {
                confirm: true,
                relationship: Some("edge-a".into()),
            })
            .unwrap_or_else(|e| panic!("{}", logs(&format!("partner-down edge-a: {e:#}"))));
        let usable_in = num(&declared, "usable_in_secs");
        assert!(usable_in <= MCLT_A, "{declared}");
        let down = status(&hub, "edge-a").unwrap();
        assert_eq!(down["my_state"], "partner-down", "{down}");
        assert!(both_normal(&status(&hub, "edge-b").unwrap()));

        // After STOS+MCLT the hub hands out edge-a's share as well.
        let usable_at = Instant::now() + Duration::from_secs(usable_in + 1);
        while Instant::now() < usable_at {
            thread::sleep(Duration::from_millis(200));
        }
        // 40 addresses, 15 held: every one nobody holds is handed out.
        let later = dora_clients(&sim_a, 25, 4, Duration::from_secs(15)).unwrap();
        assert_eq!(later, 25, "new clients of A after partner-down and STOS+MCLT");
        let taken: HashSet<Ipv4Addr> = active_in(&hub, NET_A)
            .into_keys()
            .filter(|a| !hub_owned_a.contains(a) && !on_a.contains_key(a))
            .collect();
        assert_eq!(taken, edge_a_free, "the hub handed out edge-a's free addresses, all of them");
        let granted_at = unix_now();
        for a in &taken {
            let l = hub.lease(*a).unwrap().unwrap();
            assert!(num(&l, "expires_at") <= granted_at + MCLT_A, "longer than MCLT: {l}");
        }
        eprintln!(
            "hub: {} of edge-a's former free addresses given out {:.1} s after its kill",
            taken.len(),
            killed.elapsed().as_secs_f64()
        );

        // udhcpc on A renews with edge-a gone: it rebinds, and the hub answers.
        wait_for("udhcpc of A renewed by the hub", Duration::from_secs(40), || {
            Ok(ca.events().into_iter().find(|e| e.reason == "renew" && e.server == Some(HUB)))
        })
        .unwrap_or_else(|e| panic!("{e:#}: {:?}\n{}", ca.events(), ca.output()));
        stop.store(true, Ordering::SeqCst);
        watching.join().unwrap()
    });
    let lapses = lapses.into_inner().unwrap();
    assert!(looks > 10, "edge-b watched {looks} times only");
    assert!(lapses.is_empty(), "edge-b was not NORMAL throughout: {lapses:?}");

    // Metrics tell the relationships apart.
    let metrics = hub.ask(&Request::Metrics).unwrap();
    let text = metrics["text"].as_str().unwrap_or_default();
    for want in [
        r#"xdhcp_failover_state{relationship="edge-a",side="self",state="partner-down"} 1"#,
        r#"xdhcp_failover_state{relationship="edge-b",side="self",state="normal"} 1"#,
        r#"xdhcp_failover_state{relationship="edge-b",side="partner",state="normal"} 1"#,
    ] {
        assert!(text.contains(want), "no {want} in\n{text}");
    }

    // No address bound to two clients: the hub against edge-b, and against what edge-a had
    // bound when it died.
    let (hub_a, hub_b) = (active_in(&hub, NET_A), active_in(&hub, NET_B));
    let eb = edge_b.active_bindings().unwrap();
    assert!(conflicts(&hub_b, &eb).is_empty(), "{:?}", conflicts(&hub_b, &eb));
    assert!(conflicts(&hub_a, &edge_a_last).is_empty(), "{:?}", conflicts(&hub_a, &edge_a_last));
    assert_eq!(hub_b, eb, "the hub and edge-b agree on B");
    for held in [&hub_a, &hub_b] {
        let macs: HashSet<&String> = held.values().collect();
        assert_eq!(macs.len(), held.len(), "a client with two addresses: {held:?}");
    }
    eprintln!("hub: {:.1} s in all", t0.elapsed().as_secs_f64());
    drop((ca, cb));
}

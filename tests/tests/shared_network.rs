//! A shared network on a real link: `xdhcp run` serves one LAN (the lab's bridge) with two
//! subnets in one shared network, the first (the server's own, 10.99.0.0/16) with room for two
//! clients. Three crafted clients lease in turn: the third gets an address of the second
//! subnet (10.97.0.0/24) with that subnet's options, and renews it through XDP, which answers
//! with the second subnet's reply data.
//!
//! The LAN, its namespaces and interfaces are the lab's (unique names, removed on drop); the
//! test checks that no namespace is left. The server is this test binary started again with
//! only [`daemon_process`] selected, as in `server_clients.rs`.
use std::{net::Ipv4Addr, time::Duration};

use dhcp_common::Stat;
use dhcp_lab::lab::{
    self, Daemon, LAN_PREFIX, LAN_SERVER, Lan, Launcher, RawSocket, TempDir, netns_list, wait_for,
};
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use integration::fixture::root_required;

/// Not a test: the server process of the other tests (see the module comment).
#[test]
fn daemon_process() {
    lab::daemon_child();
}

const SECOND_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 1);
/// The second subnet's lease time: not the first's (60 s), so the ACKs show whose it is.
const SECOND_LEASE: u32 = 120;

/// The config: the lab LAN's subnet with a two-address pool, and a second subnet on the same
/// link, both in the shared network "lan".
fn config(iface: &str, dir: &std::path::Path) -> String {
    format!(
        r#"interfaces = ["{iface}"]
server_id = "{LAN_SERVER}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"
[fast_path]
attach_mode = "native"
horizon = 300

[[subnet]]
prefix = "10.99.0.0/{LAN_PREFIX}"
pools = [{{ start = "10.99.0.100", end = "10.99.0.101" }}]
lease_time = 60
t1 = 10
t2 = 50
shared_network = "lan"

[[subnet]]
prefix = "10.97.0.0/24"
pools = [{{ start = "10.97.0.100", end = "10.97.0.199" }}]
routers = ["{SECOND_ROUTER}"]
lease_time = {SECOND_LEASE}
t1 = 20
t2 = 100
shared_network = "lan"
"#,
        dir = dir.display()
    )
}

fn option(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

#[test]
fn a_third_client_gets_the_second_subnets_address_and_renews_it_through_xdp() {
    root_required();
    let lan = Lan::new().expect("build the LAN");
    let mut names = lan.namespaces();
    let dir = TempDir::new("server").unwrap();
    std::fs::write(dir.path().join("xdhcp.toml"), config(&lan.server_if, dir.path())).unwrap();
    let launcher = Launcher::TestHarness {
        exe: std::env::current_exe().expect("path of the test binary"),
        test: "daemon_process".into(),
    };
    let daemon = Daemon::start_in(lan.server.name(), dir, launcher, None).expect("xdhcp run");
    let wait = Duration::from_secs(5);

    // Three clients, each on a port of its own, lease one after the other.
    let mut leased = Vec::new();
    for n in 0..3u32 {
        let port = lan.port("shared", None).expect("a port on the LAN");
        names.push(port.ns.name().to_owned());
        let sock = RawSocket::open(&port.ns, &port.iface).expect("packet socket");
        let xid = 0x5a_0000 + 16 * n;
        let offer = sock
            .exchange(port.mac, &lab::client_message(xid, port.mac, MessageType::Discover), wait)
            .unwrap()
            .unwrap_or_else(|| panic!("no OFFER for client {n}:\n{}", daemon.log_tail(20)));
        let a = offer.msg.yiaddr();
        let mut req = lab::client_message(xid + 1, port.mac, MessageType::Request);
        req.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
        req.opts_mut().insert(DhcpOption::ServerIdentifier(LAN_SERVER));
        let ack = sock.exchange(port.mac, &req, wait).unwrap().expect("an ACK");
        assert_eq!((ack.msg.opts().msg_type(), ack.msg.yiaddr()), (Some(MessageType::Ack), a));
        leased.push((port, sock, a, ack));
    }
    let addrs: Vec<Ipv4Addr> = leased.iter().map(|l| l.2).collect();
    assert_eq!(
        addrs,
        [
            Ipv4Addr::new(10, 99, 0, 100),
            Ipv4Addr::new(10, 99, 0, 101),
            Ipv4Addr::new(10, 97, 0, 100)
        ],
        "the first subnet's two, then the second's"
    );
    let (port, sock, a, ack) = &leased[2];
    assert_eq!(
        option(&ack.msg, OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        option(&ack.msg, OptionCode::Router),
        Some(&DhcpOption::Router(vec![SECOND_ROUTER]))
    );
    assert_eq!(
        option(&ack.msg, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(SECOND_LEASE))
    );
    let rec = daemon.lease(*a).unwrap().expect("a record");
    assert_eq!((rec["state"].as_str(), rec["subnet"].as_u64()), (Some("active"), Some(1)), "{rec}");

    // Renewing (unicast to the server): XDP answers once the binding is in the kernel's map,
    // until then the slow path does. Each try has its own xid.
    let renew = |xid: u32| xdhcp::packet::Renewal {
        xid,
        chaddr: port.mac,
        ciaddr: *a,
        client_id: Some([&[1u8][..], &port.mac].concat()),
        kind: xdhcp::packet::RenewKind::Renewing,
        server: LAN_SERVER,
        server_mac: ack.l2.src,
        vlans: vec![],
        relay_info: None,
    };
    let before = lan.fast_path_stats().unwrap();
    let xid = std::cell::Cell::new(0x5a_1000);
    let xdp_ack = wait_for("a renewal answered by XDP", Duration::from_secs(10), || {
        xid.set(xid.get() + 1);
        sock.send(&renew(xid.get()).frame())?;
        let reply = sock.reply_to(xid.get(), wait)?;
        let d = lan.fast_path_stats()?.since(&before);
        Ok((d.get(Stat::Ack) >= 1).then_some(reply).flatten())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", daemon.log_tail(20)));
    assert_eq!((xdp_ack.msg.opts().msg_type(), xdp_ack.msg.yiaddr()), (Some(MessageType::Ack), *a));
    // The second subnet's reply data: its mask, router, lease time and T1.
    assert_eq!(
        option(&xdp_ack.msg, OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        option(&xdp_ack.msg, OptionCode::Router),
        Some(&DhcpOption::Router(vec![SECOND_ROUTER]))
    );
    assert_eq!(
        option(&xdp_ack.msg, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(SECOND_LEASE))
    );
    assert_eq!(option(&xdp_ack.msg, OptionCode::Renewal), Some(&DhcpOption::Renewal(20)));
    // The store hears of the renewal XDP answered.
    wait_for("the renewal to be recorded", Duration::from_secs(5), || {
        let st = daemon.stats()?;
        Ok((st["fast_path_renewals_recorded"].as_u64() >= Some(1)).then_some(()))
    })
    .unwrap();

    drop(leased);
    drop(daemon);
    drop(lan);
    let left: Vec<String> =
        netns_list().expect("ip netns list").into_iter().filter(|n| names.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

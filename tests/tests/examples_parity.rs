//! Every config in examples/, end to end through both paths: for each subnet, each class the
//! file declares (and none), renewing directly, through a relay and behind an access node with
//! option 82, a client binds through the slow path; its kernel entry and the config's reply
//! profiles are written as the daemon writes them; and the ACK XDP builds for its renewal
//! (`BPF_PROG_TEST_RUN`) equals the one the slow path builds with the fast path off: the BOOTP
//! header, and the options byte for byte in the same order.
use std::net::Ipv4Addr;

use dhcp_common::{Control, Stat};
use dhcp_lab::testrun::{Harness, XDP_PASS, XDP_TX};
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode, UnknownOption};
use integration::fixture::{options_of, root_required};
use xdhcp::{
    config::{Config, classes::Condition},
    core::Now,
    fastpath::sync,
    packet::{self, RenewKind, Renewal},
    server::{Handled, RxInfo, Server},
};

const SERVER_MAC: [u8; 6] = [2, 0x55, 0, 0, 0, 1];
const RELAY_MAC: [u8; 6] = [2, 0x55, 0, 0, 0, 2];

/// The example with the fast path on or off, and without its failover partner (a server
/// whose partner never answers makes no new bindings; the profiles are the same).
fn config(text: &str, fast: bool) -> Config {
    let alone = text.find("\n[failover]").map_or(text, |at| &text[..at]);
    let mut t = alone
        .replace("failover = true", "failover = false")
        .replace("enabled = true", &format!("enabled = {fast}"));
    if !t.contains("[fast_path]") {
        t += "\n[fast_path]\nenabled = ";
        t += if fast { "true\n" } else { "false\n" };
    }
    Config::from_toml(&t, "example").expect("the example is valid")
}

/// What a client of `class` (by the file's conditions) sends so that it is classified so.
#[derive(Clone, Debug, Default)]
struct Traits {
    vendor_class: Option<Vec<u8>>,
    user_class: Option<Vec<u8>>,
    circuit: Option<Vec<u8>>,
    remote: Option<Vec<u8>>,
    mac_prefix: Vec<u8>,
}

fn traits_of(conditions: &[Condition]) -> Traits {
    let mut t = Traits::default();
    for c in conditions {
        match c {
            Condition::VendorClass(p) => t.vendor_class = Some(p.bytes.clone()),
            Condition::UserClass(p) => t.user_class = Some(p.bytes.clone()),
            Condition::CircuitId(p) => t.circuit = Some(p.bytes.clone()),
            Condition::RemoteId(p) => t.remote = Some(p.bytes.clone()),
            Condition::MacPrefix(m) => t.mac_prefix.clone_from(m),
        }
    }
    t
}

struct Case {
    mac: [u8; 6],
    giaddr: Option<Ipv4Addr>,
    local: Ipv4Addr,
    opt82: Option<Vec<u8>>,
    traits: Traits,
}

fn request(c: &Case, kind: MessageType, ciaddr: Ipv4Addr, extra: &[DhcpOption]) -> Message {
    let giaddr = c.giaddr.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut m = Message::new_with_id(
        0x5151,
        ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        giaddr,
        &c.mac,
    );
    m.set_opcode(Opcode::BootRequest);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    let mut id = vec![1];
    id.extend(c.mac);
    o.insert(DhcpOption::ClientIdentifier(id));
    if let Some(v) = &c.traits.vendor_class {
        o.insert(DhcpOption::ClassIdentifier(v.clone()));
    }
    if let Some(v) = &c.traits.user_class {
        o.insert(DhcpOption::UserClass(v.clone()));
    }
    if let Some(r) = &c.opt82 {
        o.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::RelayAgentInformation,
            r.clone(),
        )));
    }
    for x in extra {
        o.insert(x.clone());
    }
    m
}

/// Binds `c` through the slow path (fast path on, as the daemon runs it): the lease.
fn bind(s: &mut Server, c: &Case, now: u64) -> Option<xdhcp::store::Lease> {
    let rx = RxInfo { ifindex: 1, local_addr: Some(c.local) };
    let offer = s.handle(now, &request(c, MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]), &rx);
    let Handled::Offered(a) = offer.result else { return None };
    let server_id = s.config().server_id;
    let sel = [DhcpOption::ServerIdentifier(server_id), DhcpOption::RequestedIpAddress(a)];
    let ack = s.handle(now, &request(c, MessageType::Request, Ipv4Addr::UNSPECIFIED, &sel), &rx);
    assert_eq!(ack.result, Handled::Acked(a));
    s.lease(a).cloned()
}

fn check_example(name: &str, text: &str) -> (usize, usize) {
    let fast = config(text, true);
    let mut h = Harness::new(4096, &[xdhcp::fastpath::PROG]).expect("load the XDP program");
    let ctl = h.maps.control().unwrap();
    h.maps
        .set_control(Control {
            enabled: 1,
            flags: 0,
            min_grant_secs: 60,
            if_mac: SERVER_MAC,
            ..ctl
        })
        .unwrap();
    sync::set_profiles(&mut h.maps, &fast).unwrap();
    let mut server = Server::new(fast.clone(), Vec::new());
    let now = Now::read();
    let (mut answered, mut cases, mut long) = (0, 0, 0);
    let classes: Vec<Option<Traits>> = std::iter::once(None)
        .chain(fast.classes.iter().map(|k| Some(traits_of(&k.conditions))))
        .collect();
    for (si, s) in fast.subnets.iter().enumerate() {
        let relay = s.relay_addresses.first().copied();
        let local = s.routers.first().copied().unwrap_or_else(|| s.prefix.network());
        for (ci, class) in classes.iter().enumerate() {
            let traits = class.clone().unwrap_or_default();
            for (mi, (giaddr, access_node)) in
                [(None, false), (relay, false), (None, true)].into_iter().enumerate()
            {
                let n = u8::try_from(si * 40 + ci * 4 + mi).unwrap();
                let mut mac = [2, 0x55, 1, n, 0, 9];
                mac[..traits.mac_prefix.len()].copy_from_slice(&traits.mac_prefix);
                let circuit = traits
                    .circuit
                    .clone()
                    .or_else(|| access_node.then(|| format!("olt5 1/1/{n}:1").into_bytes()));
                let opt82 = circuit.map(|c| {
                    let remote = traits.remote.clone().unwrap_or_else(|| b"cpe".to_vec());
                    xdhcp::relay::encode(&[
                        (xdhcp::relay::CIRCUIT_ID, &c),
                        (xdhcp::relay::REMOTE_ID, &remote),
                    ])
                });
                let case = Case { mac, giaddr, local, opt82, traits: traits.clone() };
                let Some(lease) = bind(&mut server, &case, now.unix) else { continue };
                // Placed in another subnet of its shared network (a class's pool): it is that
                // subnet's case.
                if fast.subnet_containing(lease.address) != Some(s.id) {
                    continue;
                }
                cases += 1;
                let fpl = server.fast_path_entry(&lease, now.unix).expect("a fast-path lease");
                let entry = sync::entry(&fpl, now).expect("within its horizon");
                h.maps.put_lease(lease.address, &entry).unwrap();
                let what = format!("{name}: subnet {si}, class {ci}, mode {mi}");
                long += usize::from(renew_both(&mut h, text, &fast, &lease, &case, now, &what));
                answered += 1;
                h.maps.delete_lease(lease.address).unwrap();
            }
        }
    }
    eprintln!("{name}: {long} left to the slow path until the client allowed over 576 bytes");
    (answered, cases)
}

#[test]
fn every_example_config_renews_the_same_through_xdp_as_through_the_slow_path() {
    root_required();
    for (name, text) in [
        ("xdhcp.toml", include_str!("../../examples/xdhcp.toml")),
        ("isp.toml", include_str!("../../examples/isp.toml")),
    ] {
        let (answered, cases) = check_example(name, text);
        eprintln!("{name}: XDP answered {answered} of {cases} renewals, each as the slow path");
        assert!(cases >= 6, "{name}: only {cases} cases bound");
        assert_eq!(answered, cases, "{name}: XDP answers every renewal of the example");
    }
}

/// XDP's ACK for `lease`'s renewal and the slow path's (fast path off, the store holding
/// `lease`), compared; whether XDP first left it to the slow path for its length.
fn renew_both(
    h: &mut Harness,
    text: &str,
    fast: &Config,
    lease: &xdhcp::store::Lease,
    case: &Case,
    now: Now,
    what: &str,
) -> bool {
    let (mac, giaddr, local) = (case.mac, case.giaddr, case.local);
    let mut long = false;
    let renewal = Renewal {
        xid: 0x7777,
        chaddr: mac,
        ciaddr: lease.address,
        client_id: lease.client_id.as_deref().map(<[u8]>::to_vec),
        kind: match giaddr {
            Some(g) => RenewKind::Relayed { giaddr: g, relay_mac: RELAY_MAC },
            None => RenewKind::Renewing,
        },
        server: fast.server_id,
        server_mac: SERVER_MAC,
        vlans: vec![],
        relay_info: case.opt82.clone(),
    };
    let mut frame = renewal.frame();
    let before = h.maps.stats().unwrap();
    let (mut ret, mut out) = h.run(&frame).unwrap();
    if ret == XDP_PASS {
        // Only an ACK longer than 576 bytes (a long profile echoing option 82) is
        // left to the slow path; a client allowing more gets it from XDP.
        let d = h.maps.stats().unwrap().since(&before);
        assert_eq!(d.get(Stat::PassReplyTooLong), 1, "{what}: passed for {:?}", d.to_json());
        assert_eq!(out, frame, "a passed frame is untouched");
        let mut m = renewal.message();
        m.opts_mut().insert(DhcpOption::MaxMessageSize(1500));
        let mut payload = packet::encode(&m);
        if let Some(r) = &renewal.relay_info {
            payload = packet::insert_last_option(&payload, 82, r);
        }
        frame = renewal.frame_with(&payload);
        (ret, out) = h.run(&frame).unwrap();
        long = true;
    }
    let slow_cfg = config(text, false);
    let mut slow = Server::new(slow_cfg, vec![lease.clone()]);
    let p = packet::parse_frame(&frame).unwrap();
    let rx = RxInfo { ifindex: 1, local_addr: Some(local) };
    let r = slow.handle_bytes(now.unix, &p.payload, &rx).reply.expect("the slow path answers");
    let slow_bytes = packet::encode_reply(&r.msg, &r.room);
    match ret {
        XDP_TX => {
            let xdp = packet::parse_frame(&out).expect("the ACK parses");
            assert_eq!(xdp.payload[..236], slow_bytes[..236], "BOOTP header, {what}");
            assert_eq!(options_of(&xdp.payload), options_of(&slow_bytes), "options, {what}");
        }
        other => panic!("XDP returned {other}, {what}"),
    }
    long
}

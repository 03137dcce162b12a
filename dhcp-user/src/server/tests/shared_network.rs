//! Shared networks: several subnets on one link (or behind one relay). A new client gets an
//! address from any of them with room; an address keeps to its own subnet, and its options.
use super::*;

/// One link with two subnets, reached directly (10.0.0.1) and through the relay 192.0.2.7;
/// the first has room for two clients. A third subnet is on another link.
const SHARED: &str = r#"
interfaces = ["eth1"]
server_id = "10.0.0.1"

[[subnet]]
prefix = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.101" }]
routers = ["10.0.0.254"]
lease_time = 600
relay_addresses = ["192.0.2.7"]
shared_network = "campus"

[[subnet]]
prefix = "10.5.0.0/16"
pools = [{ start = "10.5.0.100", end = "10.5.0.199" }]
routers = ["10.5.0.1"]
lease_time = 3600
shared_network = "campus"

[[subnet]]
prefix = "10.9.0.0/24"
pools = [{ start = "10.9.0.100", end = "10.9.0.199" }]
"#;

fn shared() -> Server {
    Server::new(Config::from_toml(SHARED, "test.toml").unwrap(), Vec::new())
}

fn mask(m: &Message) -> Option<&DhcpOption> {
    m.opts().get(OptionCode::SubnetMask)
}

fn router(m: &Message) -> Option<&DhcpOption> {
    m.opts().get(OptionCode::Router)
}

/// The second subnet's options, as a reply must carry them for one of its addresses.
fn second_subnets_options(m: &Message) {
    assert_eq!(mask(m), Some(&DhcpOption::SubnetMask(ip("255.255.0.0"))));
    assert_eq!(router(m), Some(&DhcpOption::Router(vec![ip("10.5.0.1")])));
    assert_eq!(lease_time(m), 3600);
    assert_eq!(m.opts().get(OptionCode::Renewal), Some(&DhcpOption::Renewal(1800)));
}

/// Clients 1 and 2 take the first subnet's two addresses.
fn fill_first_subnet(s: &mut Server, c: impl Fn(u8) -> Client) {
    let taken: Vec<Ipv4Addr> = (1..=2).map(|n| c(n).dora(s, T0)).collect();
    assert_eq!(taken, [ip("10.0.0.100"), ip("10.0.0.101")]);
}

#[test]
fn when_the_first_subnet_is_full_a_new_client_gets_an_address_from_the_second() {
    let mut s = shared();
    fill_first_subnet(&mut s, Client::new);
    let c = Client::new(3);
    let offer = s.handle(T0, &c.discover(), &direct());
    assert_eq!(offer.result, Handled::Offered(ip("10.5.0.100")));
    second_subnets_options(&reply(&offer).msg);
    let ack = s.handle(T0 + 1, &c.select(SERVER, ip("10.5.0.100")), &direct());
    assert_eq!(ack.result, Handled::Acked(ip("10.5.0.100")));
    second_subnets_options(&reply(&ack).msg);
    let l = put(&ack);
    assert_eq!((l.subnet, l.expires_at), (1, T0 + 1 + 3600));
    // XDP renews it with the second subnet's reply data and lease time.
    let ops = s.map_ops(&ack.changes, T0 + 1);
    let [MapOp::Upsert(e)] = ops.as_slice() else { panic!("no kernel entry: {ops:?}") };
    let cfg = s.config();
    let second = cfg.profiles.lookup(&cfg.subnets[1], ip("10.5.0.100"), None);
    assert_eq!(cfg.profiles.get(second).unwrap().subnet.0, 1);
    assert_eq!((e.profile, e.lease_secs), (second, 3600));
}

#[test]
fn the_selected_subnet_is_tried_first_and_a_subnet_on_another_link_never() {
    let mut s = shared();
    // Reached by a relay in the second subnet: its addresses first, the first subnet's room
    // notwithstanding.
    let relayed = Client { giaddr: Some(ip("10.5.0.1")), ..Client::new(1) };
    assert_eq!(relayed.dora(&mut s, T0), ip("10.5.0.100"));
    // The third subnet is on a link of its own: the shared network's being full leaves it be.
    let mut s = Server::new(
        Config::from_toml(&SHARED.replace("10.5.0.199", "10.5.0.100"), "t").unwrap(),
        Vec::new(),
    );
    fill_first_subnet(&mut s, Client::new);
    assert_eq!(Client::new(3).dora(&mut s, T0), ip("10.5.0.100"));
    let o = s.handle(T0, &Client::new(4).discover(), &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::PoolExhausted));
}

#[test]
#[expect(clippy::many_single_char_names, reason = "s, c, a, o, r: as in the other scenarios")]
fn a_lease_in_the_second_subnet_renewed_through_the_first_subnets_relay_gets_its_own_options() {
    let mut s = shared();
    let relayed = |n| Client { giaddr: Some(RELAY), ..Client::new(n) };
    fill_first_subnet(&mut s, relayed);
    let c = relayed(3);
    let a = c.dora(&mut s, T0);
    assert_eq!(a, ip("10.5.0.100"));
    for (at, m) in [(T0 + 1800, c.renew(a)), (T0 + 3200, c.rebind(a))] {
        let o = s.handle(at, &m, &c.rx());
        assert_eq!(o.result, Handled::Acked(a));
        let r = reply(&o);
        assert_eq!(r.dest, Dest::Relay(RELAY));
        second_subnets_options(&r.msg);
        assert_eq!(put(&o).subnet, 1);
    }
    // An INFORM through the relay gets the options of the subnet its address is in.
    let o = s.handle(T0 + 3300, &c.msg(MessageType::Inform, a), &c.rx());
    assert_eq!(o.result, Handled::Informed);
    assert_eq!(mask(&reply(&o).msg), Some(&DhcpOption::SubnetMask(ip("255.255.0.0"))));
    assert_eq!(router(&reply(&o).msg), Some(&DhcpOption::Router(vec![ip("10.5.0.1")])));
}

#[test]
fn init_reboot_for_a_sibling_subnets_address_is_acked_and_one_outside_the_network_nakked() {
    let mut s = shared();
    fill_first_subnet(&mut s, Client::new);
    let c = Client::new(3);
    let a = c.dora(&mut s, T0);
    assert_eq!(a, ip("10.5.0.100"));
    // Rebooted on the link, reached through the first subnet's interface.
    let o = s.handle(T0 + 10, &c.init_reboot(a), &direct());
    assert_eq!(o.result, Handled::Acked(a));
    second_subnets_options(&reply(&o).msg);
    // An address of the subnet on another link: the client moved, it is told so.
    let o = s.handle(T0 + 20, &c.init_reboot(ip("10.9.0.100")), &direct());
    assert_eq!(o.result, Handled::Nacked);
    assert_eq!(
        reply(&o).msg.opts().get(OptionCode::Message),
        Some(&DhcpOption::Message("wrong network".into()))
    );
    // One it does not hold in a sibling subnet, from a client we know there: not its address.
    let o = s.handle(T0 + 30, &c.init_reboot(ip("10.5.0.150")), &direct());
    assert_eq!(o.result, Handled::Nacked);
    // And a REQUEST answering an offer is judged in the address's subnet: another's is taken.
    let o = s.handle(T0 + 40, &Client::new(4).select(SERVER, a), &direct());
    assert_eq!(o.result, Handled::Nacked);
}

#[test]
fn a_returning_client_gets_its_address_in_a_sibling_subnet_back() {
    let mut s = shared();
    fill_first_subnet(&mut s, Client::new);
    let c = Client::new(3);
    let a = c.dora(&mut s, T0);
    assert_eq!(s.handle(T0 + 10, &c.release(a), &direct()).result, Handled::Released(a));
    assert_eq!(
        s.handle(T0 + 10, &Client::new(1).release(ip("10.0.0.100")), &direct()).result,
        Handled::Released(ip("10.0.0.100"))
    );
    // Once client 1's horizon has passed, the first subnet has room again; client 3's
    // previous binding is in the second subnet, and it gets that back.
    let later = T0 + 1300;
    let o = s.handle(later, &Client::new(4).discover(), &direct());
    assert_eq!(o.result, Handled::Offered(ip("10.0.0.100")));
    let o = s.handle(later, &c.discover(), &direct());
    assert_eq!(o.result, Handled::Offered(a));
    second_subnets_options(&reply(&o).msg);
    // An address it asks for in a sibling subnet is offered too.
    let o = s.handle(later, &Client::new(5).discover_asking_for(ip("10.5.0.150")), &direct());
    assert_eq!(o.result, Handled::Offered(ip("10.5.0.150")));
}

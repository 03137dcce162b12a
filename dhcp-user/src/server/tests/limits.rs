//! Lease limits: one access port, or one MAC, holds a bounded share of the pool, offers
//! included; the rest of the pool keeps serving everyone else, and renewals are never limited.
use super::*;

const LIMITED: &str = r#"
interfaces = ["eth1"]
server_id = "10.0.0.1"
offer_hold = 60

[limits]
leases_per_circuit_id = 4

[[class]]
name = "business"
circuit_id_prefix = "biz "
limits = { leases_per_circuit_id = 8 }

[[subnet]]
prefix = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.149" }]
lease_time = 600
"#;

fn server_of(text: &str) -> Server {
    Server::new(Config::from_toml(text, "limits.toml").unwrap(), Vec::new())
}

fn limited() -> Server {
    server_of(LIMITED)
}

fn on_port(n: u8, port: &[u8]) -> Client {
    Client { circuit: Some(port.to_vec()), ..Client::new(n) }
}

#[test]
fn a_random_mac_flood_from_one_port_gets_its_share_and_the_pool_serves_the_others() {
    let mut s = limited();
    let mut offered = 0;
    for n in 1..=40 {
        let o = s.handle(T0, &on_port(n, b"olt1 0/1/1:7").discover(), &direct());
        match o.result {
            Handled::Offered(_) => offered += 1,
            Handled::Dropped(DropReason::LeaseLimit) => {}
            r => panic!("unexpected {r:?}"),
        }
    }
    assert_eq!(offered, 4, "the port's limit, offers included");
    assert_eq!(s.counters().limited, [36, 0, 0]);
    assert_eq!(s.counters().dropped(DropReason::LeaseLimit), 36);
    let events = s.take_limit_events();
    assert_eq!(events.len(), 1, "one report a minute per key, however hard it floods");
    assert_eq!(events[0].key, LimitKey::CircuitId(b"olt1 0/1/1:7".to_vec()));
    // Everyone else is served.
    for n in 41..=60 {
        let a = on_port(n, format!("olt1 0/1/2:{n}").as_bytes()).dora(&mut s, T0);
        assert!(s.config().subnets[0].in_pool(a));
    }
    // A REQUEST for an address without a DISCOVER is held to the same limit.
    let sneaky = on_port(99, b"olt1 0/1/1:7");
    let o = s.handle(T0, &sneaky.select(SERVER, ip("10.0.0.149")), &direct());
    assert_eq!(o.result, Handled::Dropped(DropReason::LeaseLimit));
}

#[test]
fn the_share_comes_back_as_offers_lapse_and_renewals_are_never_limited() {
    let mut s = limited();
    let port = b"olt1 0/1/1:7";
    let bound: Vec<Ipv4Addr> = (1..=4).map(|n| on_port(n, port).dora(&mut s, T0)).collect();
    let fifth = on_port(5, port);
    assert_eq!(
        s.handle(T0, &fifth.discover(), &direct()).result,
        Handled::Dropped(DropReason::LeaseLimit)
    );
    // Holding four, each still renews, and asks again (DISCOVER) for what it holds.
    for (n, a) in (1..=4).zip(&bound) {
        let c = on_port(n, port);
        assert_eq!(s.handle(T0 + 300, &c.renew(*a), &direct()).result, Handled::Acked(*a));
        if n > 1 {
            let o = s.handle(T0 + 300, &c.discover(), &direct());
            assert_eq!(o.result, Handled::Offered(*a));
        }
    }
    // One releases: the port has room again.
    let o = s.handle(T0 + 310, &on_port(1, port).release(bound[0]), &direct());
    assert_eq!(o.result, Handled::Released(bound[0]));
    assert!(matches!(s.handle(T0 + 310, &fifth.discover(), &direct()).result, Handled::Offered(_)));
    // An offer nobody takes up stops counting when it lapses.
    let sixth = on_port(6, port);
    assert_eq!(
        s.handle(T0 + 320, &sixth.discover(), &direct()).result,
        Handled::Dropped(DropReason::LeaseLimit)
    );
    let later = T0 + 310 + 61;
    assert!(matches!(s.handle(later, &sixth.discover(), &direct()).result, Handled::Offered(_)));
}

#[test]
fn a_class_sets_its_own_limit() {
    let mut s = limited();
    let offered = (1..=12)
        .filter(|&n| {
            let o = s.handle(T0, &on_port(n, b"biz 0/1/1:7").discover(), &direct());
            matches!(o.result, Handled::Offered(_))
        })
        .count();
    assert_eq!(offered, 8);
}

#[test]
fn a_burst_of_random_mac_discovers_leaves_the_pool_serving() {
    // No option 82 to limit by: 10,000 DISCOVERs from random MACs hold every one of the 50
    // addresses as offers, then keep cycling through them.
    let mut s = server_of(&LIMITED.replace("[limits]\nleases_per_circuit_id = 4\n", ""));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..10_000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let b = rng.to_le_bytes();
        let flood = Client { mac: [2, b[0], b[1], b[2], b[3], b[4]], ..Client::new(0) };
        let _ = s.handle(T0, &flood.discover(), &direct());
    }
    assert!(s.counters().offers_reclaimed > 9_000);
    // Each legitimate client, answering its offer as clients do, is bound.
    for n in 1..=20 {
        let a = Client::new(n).dora(&mut s, T0 + 1);
        assert!(s.config().subnets[0].in_pool(a));
    }
}

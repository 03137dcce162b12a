//! A shared network in a pair: two subnets on one link, both shared with the partner. Each
//! subnet's pool is split and balanced on its own; a new client gets the second subnet's
//! addresses once the first is full, at either server, and both hear of it.
use ipnet::Ipv4Net;

use super::*;

/// The pair's config with two subnets on one link: 10.0.0.0/24 (the servers' own, chosen for
/// their clients, four addresses: two each) and 10.0.1.0/24.
fn shared_config(role: &str) -> Config {
    let (me, peer, extra) = match role {
        "primary" => ("10.0.0.1", "10.0.0.2", "mclt = 300\nsplit = 128\n"),
        _ => ("10.0.0.2", "10.0.0.1", ""),
    };
    let text = format!(
        r#"interfaces = ["eth1"]
server_id = "{me}"

[failover]
name = "pair"
role = "{role}"
address = "{me}"
peer_address = "{peer}"
load_balance_max_seconds = 3
{extra}
[[subnet]]
prefix = "10.0.0.0/24"
pools = [{{ start = "10.0.0.100", end = "10.0.0.103" }}]
lease_time = {LEASE}
failover = true
shared_network = "campus"

[[subnet]]
prefix = "10.0.1.0/24"
pools = [{{ start = "10.0.1.100", end = "10.0.1.119" }}]
lease_time = {LEASE}
failover = true
shared_network = "campus"
"#
    );
    Config::from_toml(&text, "test.toml").unwrap()
}

/// Free addresses of subnet `sid` as (primary's FREE, secondary's BACKUP) in `side`'s store.
fn split(side: &Side, sid: u32) -> (u64, u64) {
    let sh = side.fo().shares(side.server(), SubnetId(sid));
    match side.fo().config().role {
        Role::Primary => (sh.ours, sh.partners),
        Role::Secondary => (sh.partners, sh.ours),
    }
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

#[test]
fn when_the_first_subnet_fills_new_clients_get_the_seconds_addresses_on_both_servers() {
    let mut pair =
        Pair::of(Side::with(shared_config("primary")), Side::with(shared_config("secondary")));
    pair.normal();
    for side in [&pair.p, &pair.s] {
        assert_eq!((split(side, 0), split(side, 1)), ((2, 2), (10, 10)), "each pool split alone");
    }
    // Each server's share of the first subnet goes to clients of its hash buckets.
    let now = pair.now;
    for (n, primary) in [(1, true), (2, true), (3, false), (4, false)] {
        let side = if primary { &mut pair.p } else { &mut pair.s };
        let (a, _) = dora(side, now, mac_for(primary, n));
        assert!(net("10.0.0.0/24").contains(&a), "{a}");
    }
    pair.exchange();
    assert_eq!(split(&pair.p, 0), (0, 0), "the first subnet is full");

    // The next new client of each server gets an address of the second subnet, from that
    // server's own share of it.
    let (mine, theirs) = (mac_for(true, 5), mac_for(false, 6));
    let (a, _) = dora(&mut pair.p, now, mine);
    let (b, _) = dora(&mut pair.s, now, theirs);
    for x in [a, b] {
        assert!(net("10.0.1.0/24").contains(&x), "{x}");
    }
    assert_eq!(pair.p.lease(b).state, LeaseState::Backup, "the secondary used its own share");
    pair.exchange();
    for side in [&pair.p, &pair.s] {
        for (x, mac) in [(a, mine), (b, theirs)] {
            let l = side.lease(x);
            assert_eq!((l.state, l.subnet, l.chaddr.as_slice()), (LeaseState::Active, 1, &mac[..]));
        }
    }
    assert_eq!(split(&pair.s, 1), (9, 9));

    // Both clients leave: each address is free on both servers.
    pair.run_for(5);
    let now = pair.now;
    assert_eq!(pair.p.dhcp(now, &msg(mine, MessageType::Release, a)).result, Handled::Released(a));
    assert_eq!(
        pair.s.dhcp(now, &msg(theirs, MessageType::Release, b)).result,
        Handled::Released(b)
    );
    pair.exchange();
    for side in [&pair.p, &pair.s] {
        for x in [a, b] {
            assert_eq!(side.lease(x).state, LeaseState::Free, "{x}");
        }
    }
    let rejects = |side: &Side| side.fo().counters().rejects_received;
    assert_eq!(rejects(&pair.p) + rejects(&pair.s), 0);
}

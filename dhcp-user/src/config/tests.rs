//! Each class of config mistake, and the exact `file:line: key: message` an operator sees.
use std::net::Ipv4Addr;

use super::*;

const MINIMAL: &str = r#"interfaces = ["eth1"]
server_id = "10.0.0.1"

[[subnet]]
prefix = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.199" }]
"#;

fn error_of(text: &str) -> String {
    match Config::from_toml(text, "xdhcp.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Two subnets; the second one's first pool is on line 14 for the error tests to break.
const TWO_SUBNETS: &str = r#"interfaces = ["eth1"]
server_id = "10.0.0.1"

[[subnet]]
prefix = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.199" }]
routers = ["10.0.0.254"]

[[subnet]]
prefix = "10.0.1.0/24"
lease_time = 600
relay_addresses = ["192.0.2.7"]
pools = [
  { start = "10.0.1.10", end = "10.0.1.200" },
]
"#;

#[test]
fn the_isp_example_is_valid_and_uses_classes_ports_and_a_shared_network() {
    let text = include_str!("../../../examples/isp.toml");
    let c = Config::from_toml(text, "examples/isp.toml").unwrap();
    let names: Vec<&str> = c.classes.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["cpe", "stb", "voip"]);
    assert_eq!(c.link_of(SubnetId(0)), [SubnetId(0), SubnetId(1)]);
    assert!(matches!(c.subnets[0].reservations[0].key, ReservationKey::Port { .. }));
    // Every combination fits a 576-byte reply; identical ones share a profile.
    assert!(c.profiles.len() > 4 && c.profiles.len() < 40, "{}", c.profiles.len());
    // Policed, the first OLT's lines more tightly than the file's.
    assert_eq!(c.police.port.map(|l| l.per_sec), Some(10));
    assert_eq!(c.police_of(&c.subnets[0]).port.map(|l| l.per_sec), Some(4));
    assert_eq!(c.police_of(&c.subnets[1]).port.map(|l| l.per_sec), Some(10));
    let docs = include_str!("../../../docs/config.md");
    for key in [
        "vendor_class_prefix",
        "user_class",
        "mac_prefix",
        "circuit_id",
        "remote_id",
        "allow",
        "deny",
        "police",
        "burst",
    ] {
        assert!(docs.contains(&format!("`{key}`")), "docs/config.md does not document {key}");
    }
}

#[test]
fn the_hub_example_is_valid_two_relationships_on_one_listener() {
    let text = include_str!("../../../examples/hub.toml");
    let c = Config::from_toml(text, "examples/hub.toml").unwrap();
    let rel: Vec<(&str, Ipv4Addr, Ipv4Addr)> =
        c.failover.iter().map(|f| (f.name.as_str(), f.address, f.peer_address)).collect();
    assert_eq!(rel.len(), 2, "{rel:?}");
    assert_eq!(rel[0].1, rel[1].1, "one listener for both edges");
    assert!(c.failover.iter().all(|f| f.role == dhcp_failover::Role::Secondary));
    for (r, _) in c.relationships() {
        assert_eq!(c.shared_in(r).count(), 1, "each edge's subnet names its relationship");
    }
    assert!(c.history.is_some());
}

#[test]
fn the_shipped_example_is_valid_and_shows_every_key() {
    let text = include_str!("../../../examples/xdhcp.toml");
    let c = Config::from_toml(text, "examples/xdhcp.toml").unwrap();
    assert_eq!(c.server_id, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(c.subnets.len(), 2);
    assert_eq!(c.subnets[0].reservations.len(), 2);
    assert_eq!((c.subnets[0].t1, c.subnets[0].t2), (1800, 3150));
    assert_eq!(c.fast_path.horizon, Some(3600));
    assert_eq!(c.fast_path.event_log_slots, 65536);
    // docs/config.md documents each key the example uses and vice versa.
    let docs = include_str!("../../../docs/config.md");
    for key in [
        "interfaces",
        "server_id",
        "state_dir",
        "control_socket",
        "probation",
        "offer_hold",
        "enabled",
        "attach_mode",
        "events",
        "horizon",
        "event_log_slots",
        "lease_capacity",
        "prefix",
        "pools",
        "routers",
        "dns",
        "domain",
        "lease_time",
        "min_lease",
        "max_lease",
        "t1",
        "t2",
        "relay_addresses",
        "shared_network",
        "mac",
        "client_id",
        "address",
        "failover",
        "name",
        "role",
        "port",
        "peer_address",
        "peer_port",
        "max_response_delay",
        "max_unacked_updates",
        "mclt",
        "split",
        "hba",
        "load_balance_max_seconds",
        "auto_partner_down",
        "max_lease_misbalance",
        "max_lease_ownership",
        "min_balance",
        "max_balance",
        "circuit_change",
        "group",
        "tls",
        "cert",
        "key",
        "ca",
        "peer_name",
    ] {
        assert!(text.contains(&format!("{key} =")), "example lacks {key}");
        assert!(docs.contains(&format!("`{key}`")), "docs/config.md lacks {key}");
    }
}

#[test]
fn defaults_fill_what_a_minimal_file_leaves_out() {
    let c = Config::from_toml(MINIMAL, "x").unwrap();
    let s = &c.subnets[0];
    assert_eq!((s.lease_time, s.t1, s.t2), (3600, 1800, 3150));
    assert_eq!((s.min_lease, s.max_lease), (3600, 3600));
    assert_eq!(c.probation, 3600);
    assert_eq!(c.state_dir, std::path::PathBuf::from("/var/lib/xdhcp"));
    assert!(c.fast_path.enabled && c.fast_path.events);
    assert_eq!(c.fast_path.attach_mode, AttachMode::Auto);
    assert_eq!(s.circuit_change, CircuitChange::Nak);
}

#[test]
fn circuit_change_is_one_of_three_words_per_subnet() {
    for (word, want) in [
        ("nak", CircuitChange::Nak),
        ("ignore", CircuitChange::Ignore),
        ("move", CircuitChange::Move),
    ] {
        let text = format!("{MINIMAL}circuit_change = \"{word}\"\n");
        let c = Config::from_toml(&text, "x").unwrap();
        assert_eq!(c.subnets[0].circuit_change, want);
        assert_eq!(want.as_str(), word);
    }
    let e = error_of(&format!("{MINIMAL}circuit_change = \"drop\"\n"));
    assert!(e.starts_with("xdhcp.toml:7: subnet[0].circuit_change: unknown variant"), "{e}");
}

#[test]
fn a_bad_address_names_file_line_and_key() {
    let text = TWO_SUBNETS.replace("end = \"10.0.1.200\"", "end = \"10.0.1.300\"");
    assert_eq!(
        error_of(&text),
        "xdhcp.toml:14: subnet[1].pools[0].end: 10.0.1.300 is not an IPv4 address"
    );
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let text = TWO_SUBNETS.replace("lease_time = 600", "lease_time = = 600");
    let e = error_of(&text);
    assert!(e.starts_with("xdhcp.toml:11: "), "{e}");
}

#[test]
fn an_unknown_key_is_refused_where_it_is() {
    let text = TWO_SUBNETS.replace("lease_time = 600", "lease_tiem = 600");
    let e = error_of(&text);
    assert!(
        e.starts_with("xdhcp.toml:11: subnet[1].lease_tiem: unknown field `lease_tiem`"),
        "{e}"
    );
}

#[test]
fn a_wrongly_typed_value_names_its_key() {
    let text = TWO_SUBNETS.replace("lease_time = 600", "lease_time = \"ten minutes\"");
    assert_eq!(
        error_of(&text),
        "xdhcp.toml:11: subnet[1].lease_time: ten minutes is not a duration (seconds, or a number followed by s, m, h or d)"
    );
    let text = MINIMAL.replace("[\"eth1\"]", "\"eth1\"");
    assert!(
        error_of(&text).starts_with("xdhcp.toml:1: interfaces: invalid type"),
        "{}",
        error_of(&text)
    );
}

#[test]
fn a_pool_outside_its_prefix_is_refused() {
    let text = TWO_SUBNETS.replace("end = \"10.0.1.200\"", "end = \"10.0.2.20\"");
    assert_eq!(
        error_of(&text),
        "xdhcp.toml:14: subnet[1].pools[0].end: 10.0.2.20 is outside the subnet's prefix 10.0.1.0/24"
    );
}

#[test]
fn overlapping_pools_are_refused() {
    let text = TWO_SUBNETS.replace(
        "  { start = \"10.0.1.10\", end = \"10.0.1.200\" },\n",
        "  { start = \"10.0.1.10\", end = \"10.0.1.200\" },\n  { start = \"10.0.1.200\", end = \"10.0.1.220\" },\n",
    );
    assert_eq!(
        error_of(&text),
        "xdhcp.toml:15: subnet[1].pools[1]: overlaps pools[0] (10.0.1.10 - 10.0.1.200)"
    );
}

#[test]
fn overlapping_subnets_are_refused() {
    let text = TWO_SUBNETS.replace("prefix = \"10.0.1.0/24\"", "prefix = \"10.0.0.0/23\"");
    assert_eq!(
        error_of(&text),
        "xdhcp.toml:10: subnet[1].prefix: 10.0.0.0/23 overlaps subnet[0] (10.0.0.0/24)"
    );
}

#[test]
fn a_prefix_with_host_bits_suggests_the_network() {
    let text = MINIMAL.replace("10.0.0.0/24", "10.0.0.5/24");
    assert_eq!(
        error_of(&text),
        "xdhcp.toml:5: subnet[0].prefix: 10.0.0.5/24 has host bits set (did you mean 10.0.0.0/24?)"
    );
}

#[test]
fn timers_must_be_ordered_t1_t2_lease() {
    let text = TWO_SUBNETS.replace("lease_time = 600", "lease_time = 600\nt2 = 600");
    assert_eq!(
        error_of(&text),
        "xdhcp.toml:12: subnet[1].t2: 600 s must be shorter than lease_time (600 s)"
    );
    let text = TWO_SUBNETS.replace("lease_time = 600", "lease_time = 600\nt1 = \"9m\"\nt2 = 500");
    assert_eq!(
        error_of(&text),
        "xdhcp.toml:12: subnet[1].t1: 540 s must be shorter than t2 (500 s)"
    );
}

#[test]
fn reservations_must_be_inside_the_prefix_and_unique() {
    let base = format!(
        "{MINIMAL}\n[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\n"
    );
    Config::from_toml(&base, "x").unwrap();
    let outside = base.replace("10.0.0.5", "10.9.0.5");
    assert_eq!(
        error_of(&outside),
        "xdhcp.toml:10: subnet[0].reservation[0].address: 10.9.0.5 is outside the subnet's prefix 10.0.0.0/24"
    );
    let same_addr = format!(
        "{base}\n[[subnet.reservation]]\nclient_id = \"01:02:00:00:00:00:02\"\naddress = \"10.0.0.5\"\n"
    );
    assert_eq!(
        error_of(&same_addr),
        "xdhcp.toml:14: subnet[0].reservation[1].address: 10.0.0.5 is already reserved by reservation[0]"
    );
    let same_mac = format!(
        "{base}\n[[subnet.reservation]]\nmac = \"02-00-00-00-00-01\"\naddress = \"10.0.0.6\"\n"
    );
    assert_eq!(
        error_of(&same_mac),
        "xdhcp.toml:13: subnet[0].reservation[1].mac: the same client already has reservation[0]"
    );
    let neither = format!("{MINIMAL}\n[[subnet.reservation]]\naddress = \"10.0.0.5\"\n");
    assert_eq!(
        error_of(&neither),
        "xdhcp.toml:8: subnet[0].reservation[0]: needs mac, client_id, or circuit_id and/or remote_id"
    );
    let bad_mac = base.replace("02:00:00:00:00:01", "02:00:00:00:01");
    assert_eq!(
        error_of(&bad_mac),
        "xdhcp.toml:9: subnet[0].reservation[0].mac: 02:00:00:00:01 is not a MAC address (aa:bb:cc:dd:ee:ff)"
    );
}

#[test]
fn a_missing_required_key_is_named_without_a_line() {
    let text = MINIMAL.replace("server_id = \"10.0.0.1\"\n", "");
    assert_eq!(
        error_of(&text),
        "xdhcp.toml: server_id: required: this server's address, sent as option 54"
    );
    let text = MINIMAL.replace("prefix = \"10.0.0.0/24\"\n", "");
    assert_eq!(
        error_of(&text),
        "xdhcp.toml:4: subnet[0]: prefix is required, e.g. prefix = \"10.0.0.0/24\""
    );
}

#[test]
fn a_pool_holding_the_router_is_refused() {
    let text = TWO_SUBNETS.replace("routers = [\"10.0.0.254\"]", "routers = [\"10.0.0.150\"]");
    assert_eq!(error_of(&text), "xdhcp.toml:6: subnet[0].pools[0]: contains router 10.0.0.150");
}

#[test]
fn options_that_cannot_fit_a_576_byte_reply_are_refused_naming_the_scope() {
    // 90 bytes of domain fit a reply (the fast path leaves such a profile to the slow path).
    let long = MINIMAL
        .replace("pools =", &format!("domain = \"{}.example.net\"\npools =", "x".repeat(90)));
    Config::from_toml(&long, "x").unwrap();
    let huge = format!(
        "{MINIMAL}\n[[class]]\nname = \"stb\"\nvendor_class = \"IPTV\"\n[class.options]\n\
         bootfile-name = \"{}\"\n",
        "x".repeat(300)
    );
    let e = error_of(&huge);
    assert!(
        e.starts_with(
            "xdhcp.toml:11: class[0].options: the options of subnet[0] for class stb take"
        ),
        "{e}"
    );
    assert!(e.ends_with("more than the 280 a 576-byte reply has room for"), "{e}");
}

#[test]
fn options_are_named_or_numbered_and_typed_and_errors_point_at_the_value() {
    let with = |opts: &str| format!("{MINIMAL}\n[subnet.options]\n{opts}\n");
    let c = Config::from_toml(&with("ntp-servers = [\"10.0.0.5\"]\n224 = { hex = \"0102\" }"), "x")
        .unwrap();
    let o = &c.subnets[0].options;
    assert_eq!(o.get(&42), Some(&vec![10, 0, 0, 5]));
    assert_eq!(o.get(&224), Some(&vec![1, 2]));
    assert_eq!(o.get(&1), Some(&vec![255, 255, 255, 0]), "the mask, from the prefix");
    assert_eq!(
        error_of(&with("ntp-servers = [\"10.0.0.500\"]")),
        "xdhcp.toml:9: subnet[0].options.ntp-servers: \"10.0.0.500\" is not an IPv4 address"
    );
    assert_eq!(
        error_of(&with("lease-time = 5")),
        "xdhcp.toml:9: subnet[0].options.lease-time: is not an option name this server knows; \
         write its code with a typed value ({ type = \"addresses\", value = [...] }) or { hex = \"...\" }"
    );
    assert_eq!(
        error_of(&with("51 = 5")),
        "xdhcp.toml:9: subnet[0].options.51: option 51 cannot be configured: lease times come \
         from lease_time, t1 and t2"
    );
    let twice = MINIMAL.replace("pools =", "routers = [\"10.0.0.1\"]\npools =");
    assert_eq!(
        error_of(&format!("{twice}\n[subnet.options]\nrouters = [\"10.0.0.2\"]\n")),
        "xdhcp.toml:6: subnet[0].routers: option 3 is also set in this subnet's options"
    );
}

#[test]
fn classes_need_a_name_and_a_condition_and_pools_name_real_classes() {
    let class = |body: &str| format!("{MINIMAL}\n[[class]]\n{body}\n");
    assert_eq!(
        error_of(&class("name = \"stb\"")),
        "xdhcp.toml:8: class[0]: matches nothing: give vendor_class, user_class, circuit_id, \
         remote_id (each exact or _prefix) or mac_prefix"
    );
    assert_eq!(
        error_of(&class("vendor_class = \"x\"")),
        "xdhcp.toml:8: class[0]: name is required"
    );
    assert_eq!(
        error_of(&class("name = \"a\"\nvendor_class = \"x\"\nvendor_class_prefix = \"y\"")),
        "xdhcp.toml:11: class[0].vendor_class_prefix: give vendor_class or vendor_class_prefix, not both"
    );
    let c = Config::from_toml(
        &class("name = \"port\"\ncircuit_id = { hex = \"01:02\" }\nmac_prefix = \"00:1a\""),
        "x",
    )
    .unwrap();
    assert_eq!(c.classes[0].conditions.len(), 2);
    let deny =
        MINIMAL.replace("end = \"10.0.0.199\" }", "end = \"10.0.0.199\", deny = [\"stb\"] }");
    assert_eq!(
        error_of(&deny),
        "xdhcp.toml:6: subnet[0].pools[0].deny[0]: stb is not a [[class]] name"
    );
}

#[test]
fn a_reservation_names_a_client_one_way_mac_client_id_or_port() {
    let r =
        |body: &str| format!("{MINIMAL}\n[[subnet.reservation]]\n{body}\naddress = \"10.0.0.5\"\n");
    let c =
        Config::from_toml(&r("circuit_id = \"olt1 0/1/1:7\"\nremote_id = \"cpe-7\""), "x").unwrap();
    assert_eq!(
        c.subnets[0].reservations[0].key,
        ReservationKey::Port {
            circuit_id: Some(b"olt1 0/1/1:7".to_vec()),
            remote_id: Some(b"cpe-7".to_vec())
        }
    );
    assert_eq!(
        error_of(&r("mac = \"02:00:00:00:00:01\"\ncircuit_id = \"x\"")),
        "xdhcp.toml:8: subnet[0].reservation[0]: names a client two ways: give one of mac, \
         client_id, or the port (circuit_id and/or remote_id)"
    );
}

#[test]
fn an_unreadable_file_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/xdhcp.toml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/xdhcp.toml: "), "{e}");
}

#[test]
fn subnet_selection_follows_relay_then_link_selection_then_interface() {
    let c = Config::from_toml(TWO_SUBNETS, "x").unwrap();
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    // Direct: the receiving interface's address decides.
    assert_eq!(c.subnet_for(None, None, Some(ip("10.0.0.1"))), Some(SubnetId(0)));
    assert_eq!(c.subnet_for(None, None, Some(ip("172.16.0.1"))), None);
    // Relayed: a listed relay address, else the prefix containing giaddr.
    assert_eq!(c.subnet_for(Some(ip("192.0.2.7")), None, Some(ip("10.0.0.1"))), Some(SubnetId(1)));
    assert_eq!(c.subnet_for(Some(ip("10.0.1.1")), None, None), Some(SubnetId(1)));
    assert_eq!(c.subnet_for(Some(ip("192.0.2.8")), None, None), None);
    // Link selection names the client's link, whatever the relay's own address.
    assert_eq!(c.subnet_for(Some(ip("192.0.2.7")), Some(ip("10.0.0.0")), None), Some(SubnetId(0)));
    // ... but only from a relay.
    assert_eq!(c.subnet_for(None, Some(ip("10.0.1.0")), Some(ip("10.0.0.1"))), Some(SubnetId(0)));
}

#[test]
fn shape_errors_name_the_table_or_key_they_are_in() {
    let missing_end = TWO_SUBNETS
        .replace("{ start = \"10.0.1.10\", end = \"10.0.1.200\" }", "{ start = \"10.0.1.10\" }");
    assert_eq!(error_of(&missing_end), "xdhcp.toml:14: subnet[1].pools[0]: missing field `end`");
    let mode = format!("{MINIMAL}\n[fast_path]\nattach_mode = \"fast\"\n");
    assert_eq!(
        error_of(&mode),
        "xdhcp.toml:9: fast_path.attach_mode: unknown variant `fast`, expected one of `auto`, `native`, `generic`"
    );
    let slots = format!("{MINIMAL}\n[fast_path]\nevent_log_slots = 3000\n");
    assert_eq!(
        error_of(&slots),
        "xdhcp.toml:9: fast_path.event_log_slots: 3000 is not a power of two from 1024 to 1048576"
    );
    let cap = format!("{MINIMAL}\n[fast_path]\nlease_capacity = 1000\n");
    assert_eq!(
        error_of(&cap),
        "xdhcp.toml:9: fast_path.lease_capacity: 1000 is not a multiple of 256 from 256 to 16777216"
    );
    let typo = format!("{MINIMAL}\n[fast_path]\nenable = true\n");
    assert!(error_of(&typo).starts_with("xdhcp.toml:9: fast_path.enable: unknown field `enable`"));
    let top = MINIMAL.replace("interfaces = [\"eth1\"]", "interfaces = [\"eth1\"]\nbogus = 1");
    assert!(error_of(&top).starts_with("xdhcp.toml:2: bogus: unknown field `bogus`"));
}

const FAILOVER: &str = r#"interfaces = ["eth1"]
server_id = "10.0.0.1"

[failover]
name = "edge"
role = "primary"
address = "10.0.0.1"
peer_address = "10.0.0.2"
mclt = "30m"
split = 100

[[subnet]]
prefix = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.199" }]
failover = true
"#;

#[test]
fn a_failover_peer_takes_isc_defaults() {
    let c = Config::from_toml(FAILOVER, "x").unwrap();
    let f = &c.failover[0];
    assert_eq!(f.role, dhcp_failover::Role::Primary);
    assert_eq!((f.port, f.peer_port), (647, 647));
    assert_eq!((f.max_response_delay, f.max_unacked_updates, f.mclt), (20, 100, 1800));
    assert_eq!(f.hba, dhcp_failover::load_balance::Hba::split(100));
    assert_eq!((f.max_lease_misbalance, f.max_lease_ownership), (15, 10));
    assert_eq!((f.min_balance, f.max_balance, f.auto_partner_down), (60, 3600, None));
    assert_eq!(c.subnets[0].failover, Some(RelationshipId(0)));
    assert_eq!(f.key, "failover");
}

#[test]
fn failover_mistakes_name_their_key() {
    let secondary = FAILOVER.replace("\"primary\"", "\"secondary\"");
    assert_eq!(
        error_of(&secondary),
        "xdhcp.toml:9: failover.mclt: is set by the primary only; the secondary learns it when the primary connects"
    );
    let no_split = FAILOVER.replace("split = 100\n", "");
    assert_eq!(
        error_of(&no_split),
        "xdhcp.toml:4: failover.split: required on the primary: split or hba"
    );
    let both = FAILOVER.replace("split = 100", "split = 100\nhba = \"00\"");
    assert_eq!(error_of(&both), "xdhcp.toml:11: failover.hba: give split or hba, not both");
    let short = FAILOVER.replace("split = 100", "hba = \"ff\"");
    assert!(error_of(&short).contains("failover.hba: is 1 bytes; a hash bucket assignment has 32"));
    let unused = FAILOVER.replace("failover = true\n", "");
    assert!(error_of(&unused).starts_with("xdhcp.toml:4: failover: no subnet uses it"));
    let orphan = FAILOVER.replace("[failover]", "[ignored]");
    assert!(error_of(&orphan).contains("unknown field `ignored`"), "{}", error_of(&orphan));
    let orphan = FAILOVER.split("[failover]").next().unwrap().to_owned()
        + "[[subnet]]\nprefix = \"10.0.0.0/24\"\nfailover = true\n";
    assert_eq!(
        error_of(&orphan),
        "xdhcp.toml:6: subnet[0].failover: there is no [failover] table describing the partner"
    );
}

/// A hub: the secondary of two edges, on one listener; the second edge's link over TLS.
const HUB: &str = r#"interfaces = ["eth1"]
server_id = "10.0.0.9"

[[failover]]
name = "edge-a"
role = "secondary"
address = "10.0.0.9"
peer_address = "10.0.0.1"

[[failover]]
name = "edge-b"
role = "secondary"
address = "10.0.0.9"
peer_address = "10.0.0.2"
tls = { cert = "/etc/xdhcp/hub.pem", key = "/etc/xdhcp/hub.key", ca = "/etc/xdhcp/ca.pem" }

[[subnet]]
prefix = "10.1.0.0/24"
pools = [{ start = "10.1.0.10", end = "10.1.0.99" }]
failover = "edge-a"

[[subnet]]
prefix = "10.2.0.0/24"
pools = [{ start = "10.2.0.10", end = "10.2.0.99" }]
failover = "edge-b"

[[subnet]]
prefix = "10.3.0.0/24"
pools = [{ start = "10.3.0.10", end = "10.3.0.99" }]
"#;

#[test]
fn a_hub_holds_one_relationship_per_edge_and_each_subnet_names_its_own() {
    let c = Config::from_toml(HUB, "x").unwrap();
    let names: Vec<&str> = c.failover.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["edge-a", "edge-b"]);
    assert_eq!(c.failover[1].key, "failover[1]");
    assert!(c.failover[1].tls.is_some() && c.failover[0].tls.is_none());
    let rel: Vec<_> = c.subnets.iter().map(|s| s.failover).collect();
    assert_eq!(rel, [Some(RelationshipId(0)), Some(RelationshipId(1)), None]);
    assert_eq!(c.relationship_named("edge-b"), Some(RelationshipId(1)));
    let shared: Vec<_> = c.shared_in(RelationshipId(1)).map(|s| s.id).collect();
    assert_eq!(shared, [SubnetId(1)]);
}

#[test]
fn relationship_mistakes_name_the_entry_they_are_in() {
    let mclt = HUB.replacen(
        "role = \"secondary\"\naddress = \"10.0.0.9\"\npeer_address = \"10.0.0.2\"",
        "role = \"secondary\"\naddress = \"10.0.0.9\"\npeer_address = \"10.0.0.2\"\nmclt = \"1h\"",
        1,
    );
    assert_eq!(
        error_of(&mclt),
        "xdhcp.toml:15: failover[1].mclt: is set by the primary only; the secondary learns it \
         when the primary connects"
    );
    let twice = HUB.replace("\"edge-b\"\nrole", "\"edge-a\"\nrole");
    assert!(
        error_of(&twice)
            .starts_with("xdhcp.toml:11: failover[1].name: \"edge-a\" is also failover[0]'s name"),
        "{}",
        error_of(&twice)
    );
    let same_link = HUB.replace("peer_address = \"10.0.0.2\"", "peer_address = \"10.0.0.1\"");
    assert!(
        error_of(&same_link).starts_with(
            "xdhcp.toml:10: failover[1].port: failover[0] listens on 10.0.0.9:647 for the partner \
             at 10.0.0.1 too: two relationships with one partner need a port each"
        ),
        "{}",
        error_of(&same_link)
    );
    // Another port tells them apart: two relationships between the same two servers.
    let ported = same_link.replace(
        "peer_address = \"10.0.0.1\"\ntls",
        "peer_address = \"10.0.0.1\"\nport = 648\ntls",
    );
    Config::from_toml(&ported, "x").unwrap();
    let unknown = HUB.replace("failover = \"edge-b\"", "failover = \"edge-c\"");
    assert_eq!(
        error_of(&unknown),
        "xdhcp.toml:25: subnet[1].failover: \"edge-c\" is not a relationship; there are \
         \"edge-a\", \"edge-b\""
    );
    let vague = HUB.replace("failover = \"edge-b\"", "failover = true");
    assert!(error_of(&vague).starts_with(
        "xdhcp.toml:25: subnet[1].failover: there are several relationships: name one of"
    ));
    let idle = HUB.replace("failover = \"edge-b\"", "");
    assert_eq!(
        error_of(&idle),
        "xdhcp.toml:10: failover[1]: no subnet uses it: set failover = \"edge-b\" in the \
         [[subnet]] tables it shares"
    );
    let typo = HUB.replace("name = \"edge-b\"", "name = \"edge-b\"\nsplitt = 1");
    assert!(
        error_of(&typo).starts_with("xdhcp.toml:12: failover[1].splitt: unknown field `splitt`"),
        "{}",
        error_of(&typo)
    );
    // A wildcard listener would take every relationship's connections on its port.
    let wild = HUB.replacen("address = \"10.0.0.9\"", "address = \"0.0.0.0\"", 1);
    assert!(
        error_of(&wild)
            .starts_with("xdhcp.toml:7: failover[0].address: 0.0.0.0 is not one host's address"),
        "{}",
        error_of(&wild)
    );
    let kind = HUB.replace("failover = \"edge-b\"", "failover = 2");
    assert!(error_of(&kind).contains("subnet[1].failover"), "{}", error_of(&kind));
}

#[test]
fn a_shared_network_spanning_two_relationships_is_refused() {
    let text = HUB
        .replace("failover = \"edge-a\"\n", "failover = \"edge-a\"\nshared_network = \"olt\"\n")
        .replace("failover = \"edge-b\"\n", "failover = \"edge-b\"\nshared_network = \"olt\"\n");
    assert!(
        error_of(&text).contains(
            "has subnet[0] in a failover relationship and subnet[1] in \
             another relationship"
        ),
        "{}",
        error_of(&text)
    );
}

#[test]
fn subnets_naming_one_shared_network_are_one_link_in_file_order() {
    let text = format!(
        "{TWO_SUBNETS}shared_network = \"campus\"\n\n\
         [[subnet]]\nprefix = \"10.0.2.0/24\"\n\n\
         [[subnet]]\nprefix = \"10.0.3.0/24\"\nshared_network = \"campus\"\n\n\
         [[subnet]]\nprefix = \"10.0.4.0/24\"\nshared_network = \"alone\"\n"
    );
    // The first subnet joins too: its key goes before its pools.
    let text = text.replacen(
        "prefix = \"10.0.0.0/24\"\n",
        "prefix = \"10.0.0.0/24\"\nshared_network = \"campus\"\n",
        1,
    );
    let c = Config::from_toml(&text, "x").unwrap();
    let campus = [SubnetId(0), SubnetId(1), SubnetId(3)];
    for id in campus {
        assert_eq!(c.link_of(id), campus, "subnet[{}]", id.0);
    }
    assert_eq!(c.subnets[3].shared_network.as_deref(), Some("campus"));
    assert_eq!(c.link_of(SubnetId(2)), [SubnetId(2)], "in no shared network: alone");
    assert_eq!(c.link_of(SubnetId(4)), [SubnetId(4)], "a shared network of one subnet");
    assert_eq!(c.link_of(SubnetId(5)), [], "no such subnet");
}

#[test]
fn a_shared_network_mixing_failover_and_not_is_refused_naming_the_key() {
    let text = format!(
        "{FAILOVER}shared_network = \"campus\"\n\n\
         [[subnet]]\nprefix = \"10.0.1.0/24\"\nshared_network = \"campus\"\n"
    );
    let e = error_of(&text);
    assert!(
        e.starts_with(
            "xdhcp.toml:20: subnet[1].shared_network: \"campus\" has subnet[0] in a failover \
             relationship and subnet[1] in none: the subnets of a shared network are all \
             shared with one failover partner or none"
        ),
        "{e}"
    );
    // Both shared: one link, one decision.
    let both = format!("{text}failover = true\n");
    let c = Config::from_toml(&both, "x").unwrap();
    assert_eq!(c.link_of(SubnetId(1)), [SubnetId(0), SubnetId(1)]);
}

#[test]
fn a_shared_network_name_is_1_to_64_characters() {
    for bad in [String::new(), "n".repeat(65)] {
        let e = error_of(&format!("{MINIMAL}shared_network = \"{bad}\"\n"));
        assert_eq!(e, "xdhcp.toml:7: subnet[0].shared_network: must be 1 to 64 characters");
    }
    let c = Config::from_toml(&format!("{MINIMAL}shared_network = \"{}\"\n", "n".repeat(64)), "x");
    assert!(c.is_ok());
}

#[test]
fn lease_limits_are_at_least_one_and_a_class_may_set_its_own() {
    let with = |t: &str| format!("{MINIMAL}\n{t}\n");
    let c = Config::from_toml(
        &with(
            "[limits]\nleases_per_circuit_id = 4\nleases_per_mac = 1\n\n[[class]]\nname = \"biz\"\n\
               circuit_id_prefix = \"biz\"\nlimits = { leases_per_circuit_id = 16 }",
        ),
        "x",
    )
    .unwrap();
    assert_eq!(
        (c.limits.per_circuit_id, c.limits.per_remote_id, c.limits.per_mac),
        (Some(4), None, Some(1))
    );
    assert_eq!(c.classes[0].limits.and_then(|l| l.per_circuit_id), Some(16));
    assert_eq!(
        error_of(&with("[limits]\nleases_per_mac = 0")),
        "xdhcp.toml:9: limits.leases_per_mac: must be at least 1 (leave it out for no limit)"
    );
}

#[test]
fn police_rates_are_checked_and_a_subnet_may_tighten_them_but_not_the_interface() {
    let with = |t: &str| format!("{MINIMAL}\n{t}\n");
    let c = Config::from_toml(
        &with("[police]\nmac = { rate = 5 }\ninterface = { rate = 2000, burst = 4000 }"),
        "x",
    )
    .unwrap();
    let mac = c.police.mac.unwrap();
    assert_eq!((mac.per_sec, mac.burst), (5, 5), "the burst defaults to the rate");
    assert_eq!(c.police.interface.map(|l| l.burst), Some(4000));
    assert_eq!(c.police.port, None);
    assert_eq!(
        error_of(&with("[police]\nmac = { rate = 0 }")),
        "xdhcp.toml:9: police.mac.rate: must be 1 to 100000000 messages a second"
    );
    assert_eq!(
        error_of(&with("[police]\nport = { burst = 3 }")),
        "xdhcp.toml:9: police.port.rate: missing: messages per second (at least 1)"
    );
    // The subnet's own: port tightened, MAC inherited.
    let text = format!(
        "{MINIMAL}police = {{ port = {{ rate = 10, burst = 20 }} }}\n\n[police]\nmac = {{ rate = 5 }}\n"
    );
    let c = Config::from_toml(&text, "x").unwrap();
    let p = c.police_of(&c.subnets[0]);
    assert_eq!((p.mac.unwrap().per_sec, p.port.unwrap().burst), (5, 20));
    let e = error_of(&format!("{MINIMAL}police = {{ interface = {{ rate = 1 }} }}\n"));
    assert!(e.contains("unknown field `interface`"), "{e}");
}

#[test]
fn failover_tls_needs_its_three_files_and_a_dns_peer_name() {
    let tls =
        |t: &str| FAILOVER.replace("split = 100\n", &format!("split = 100\ntls = {{ {t} }}\n"));
    let c = Config::from_toml(
        &tls(r#"cert = "/etc/xdhcp/me.pem", key = "/etc/xdhcp/me.key", ca = "/etc/xdhcp/ca.pem""#),
        "x",
    )
    .unwrap();
    let t = c.failover[0].tls.clone().unwrap();
    assert_eq!(t.cert, std::path::Path::new("/etc/xdhcp/me.pem"));
    assert_eq!(t.peer_name, None, "the partner's certificate names its peer_address then");
    assert_eq!(
        error_of(&tls(r#"cert = "/c.pem", key = "/k.pem""#)),
        "xdhcp.toml:11: failover.tls.ca: required: a PEM file's path"
    );
    assert_eq!(
        error_of(&tls(r#"cert = "/c", key = "/k", ca = "/a", peer_name = "edge 2""#)),
        "xdhcp.toml:11: failover.tls.peer_name: \"edge 2\" is not a DNS name"
    );
    assert!(
        error_of(&tls(r#"cert = "/c", key = "/k", ca = "/a", name = "x""#))
            .starts_with("xdhcp.toml:11: failover.tls.name: unknown field `name`"),
    );
}

#[test]
fn a_group_is_a_name() {
    let c = Config::from_toml(&format!("group = \"xdhcp\"\n{MINIMAL}"), "x").unwrap();
    assert_eq!(c.group.as_deref(), Some("xdhcp"));
    assert_eq!(
        error_of(&format!("group = \"\"\n{MINIMAL}")),
        "xdhcp.toml:1: group: \"\" is not a group name"
    );
}

#[test]
fn history_defaults_to_the_state_dir_and_the_server_id_as_node() {
    let c = Config::from_toml(&format!("{MINIMAL}\n[history]\n"), "xdhcp.toml").unwrap();
    let h = c.history.expect("configured");
    assert_eq!(h.rotation.path, c.state_dir.join("history.jsonl"));
    assert_eq!((h.rotation.max_size, h.rotation.keep), (64 << 20, 8));
    assert_eq!(h.node, "10.0.0.1");
    assert!(h.postgres.is_none());
    assert!(Config::from_toml(MINIMAL, "xdhcp.toml").unwrap().history.is_none());
    let pg = format!(
        "{MINIMAL}\n[history]\nnode = \"edge-7\"\n\n[history.postgres]\n\
         url = \"host=/run/postgresql port=5432 user=xdhcp dbname=fleet\"\n"
    );
    let h = Config::from_toml(&pg, "xdhcp.toml").unwrap().history.unwrap();
    assert_eq!(h.postgres.map(|p| p.table), Some("lease_history".to_owned()));
}

#[test]
fn history_mistakes_name_their_key() {
    let with = |t: &str| error_of(&format!("{MINIMAL}\n{t}"));
    assert_eq!(
        with("[history]\nmax_size = 100\n"),
        "xdhcp.toml:9: history.max_size: at least 4096 bytes"
    );
    let e = with("[history]\n[history.postgres]\nurl = \"host=a port=notaport\"\n");
    assert!(
        e.starts_with("xdhcp.toml:10: history.postgres.url: not a PostgreSQL connection string"),
        "{e}"
    );
    assert_eq!(
        with("[history]\n[history.postgres]\n"),
        "xdhcp.toml:9: history.postgres.url: missing: the database, as \
         \"host=... port=... user=... dbname=...\""
    );
    let e = with("[history.postgres]\nurl = \"host=a\"\ntable = \"Leases; DROP\"\n");
    assert!(e.starts_with("xdhcp.toml:10: history.postgres.table:"), "{e}");
    let e = with("[history]\nfile_name = \"x\"\n");
    assert!(e.starts_with("xdhcp.toml:9:") && e.contains("unknown field"), "{e}");
}

#[test]
fn the_shipped_example_shows_every_history_key_and_the_docs_document_them() {
    let text = include_str!("../../../examples/xdhcp.toml");
    let c = Config::from_toml(text, "examples/xdhcp.toml").unwrap();
    let h = c.history.expect("the example keeps a history");
    assert_eq!((h.node.as_str(), h.rotation.keep), ("edge-1", 8));
    assert_eq!(h.rotation.path, c.state_dir.join("history.jsonl"));
    assert_eq!(h.postgres.map(|p| p.table), Some("lease_history".to_owned()));
    let docs = include_str!("../../../docs/config.md");
    for key in ["file", "max_size", "keep", "node", "url", "table"] {
        assert!(text.contains(&format!("{key} =")), "example lacks {key}");
        assert!(docs.contains(&format!("`{key}`")), "docs/config.md lacks {key}");
    }
}

//! dhcpd.conf files in the shapes ISPs run (tests/fixtures/dhcpd), translated and read back
//! through xdhcp's own validation; and the fixtures checked by dhcpd itself.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
};

use dhcp_failover::Role;

use super::{ImportError, Inputs, Translation, translate};
use crate::config::{ReservationKey, classes::Condition};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dhcpd").join(name)
}

fn inputs(server_id: Option<&str>) -> Inputs {
    Inputs { interfaces: vec!["eth1".into()], server_id: server_id.map(|s| s.parse().unwrap()) }
}

fn import(name: &str) -> Translation {
    import_with(name, None)
}

fn import_with(name: &str, server_id: Option<&str>) -> Translation {
    let t = translate(&fixture(name), &inputs(server_id)).unwrap_or_else(|e| panic!("{name}: {e}"));
    // What was written reads back as the same config.
    let again = crate::config::Config::from_toml(&t.toml, name).unwrap();
    assert_eq!(again, t.config);
    t
}

fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn a_failover_primary_keeps_its_split_mclt_and_every_peer_statement() {
    let t = import("failover-primary.conf");
    assert!(t.untranslated.is_empty(), "{:?}", t.untranslated);
    let c = &t.config;
    assert_eq!(c.server_id, addr("192.0.2.11"));
    let f = c.failover.first().unwrap();
    assert_eq!((f.name.as_str(), f.role), ("edge-pair", Role::Primary));
    assert_eq!(
        (f.address, f.port, f.peer_address, f.peer_port),
        (addr("192.0.2.11"), 647, addr("192.0.2.12"), 847)
    );
    assert_eq!((f.max_response_delay, f.max_unacked_updates, f.mclt), (30, 10, 1800));
    assert_eq!(f.hba, dhcp_failover::load_balance::Hba::split(128));
    assert_eq!((f.load_balance_max_seconds, f.auto_partner_down), (5, Some(3600)));
    assert_eq!((f.max_lease_misbalance, f.max_lease_ownership), (20, 5));
    assert_eq!((f.min_balance, f.max_balance), (120, 1800));
    // The subnets come from the included file, every one shared with the partner.
    assert_eq!(c.subnets.len(), 2);
    assert!(c.subnets.iter().all(|s| s.failover.is_some()));
    let s0 = &c.subnets[0];
    assert_eq!(s0.prefix.to_string(), "100.64.0.0/22");
    assert_eq!((s0.pools[0].start, s0.pools[0].end), (addr("100.64.0.10"), addr("100.64.3.250")));
    assert_eq!((s0.lease_time, s0.min_lease, s0.max_lease), (3600, 600, 14400));
    assert_eq!(s0.routers, [addr("100.64.0.1")]);
    assert_eq!(s0.options[&28], [100, 64, 3, 255]);
    // The subnet's own default-lease-time wins over the file's.
    assert_eq!(c.subnets[1].lease_time, 7200);
    // Options 6, 15, 119 and 42 for everyone.
    assert_eq!(c.options[&6], [192, 0, 2, 53, 198, 51, 100, 53]);
    assert_eq!(c.options[&15], b"access.isp.example");
    assert_eq!(c.options[&119], b"\x06access\x03isp\x07example\x00\x03isp\x07example\x00");
    assert_eq!(c.options[&42], [192, 0, 2, 123]);
    // `array of integer 8` classless routes, as RFC 3442 bytes again.
    assert_eq!(c.subnets[1].options[&121], [24, 10, 20, 30, 198, 51, 100, 1, 0, 198, 51, 100, 1]);
}

#[test]
fn the_secondary_leaves_mclt_and_split_to_the_primary() {
    let t = import("failover-secondary.conf");
    assert!(t.untranslated.is_empty(), "{:?}", t.untranslated);
    let f = t.config.failover.first().unwrap();
    assert_eq!(f.role, Role::Secondary);
    assert_eq!(
        (f.address, f.port, f.peer_address, f.peer_port),
        (addr("192.0.2.12"), 847, addr("192.0.2.11"), 647)
    );
    assert_eq!(f.load_balance_max_seconds, 5);
    assert!(!t.toml.contains("mclt") && !t.toml.contains("split"));
}

#[test]
fn a_hub_with_a_failover_peer_per_edge_becomes_a_relationship_per_edge() {
    let t = import("hub.conf");
    assert!(t.untranslated.is_empty(), "{:?}", t.untranslated);
    let c = &t.config;
    let names: Vec<&str> = c.failover.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["edge-1", "edge-2"]);
    assert!(
        c.failover.iter().all(|f| f.role == Role::Secondary && f.address == addr("10.255.0.1"))
    );
    assert_eq!(c.failover[1].peer_address, addr("10.255.0.12"));
    let shared: Vec<Option<&str>> =
        c.subnets.iter().map(|s| s.failover.map(|r| c.failover[r.index()].name.as_str())).collect();
    assert_eq!(shared, [None, Some("edge-1"), Some("edge-2")]);
    assert!(t.toml.contains("[[failover]]") && t.toml.contains("failover = \"edge-2\""));
}

#[test]
fn a_subnet_whose_pools_name_two_peers_keeps_the_first_peers_pools_only() {
    let dir = std::env::temp_dir().join(format!("xdhcp-import-two-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hub = std::fs::read_to_string(fixture("hub.conf")).unwrap();
    let text = hub.replace(
        "        range 100.64.0.10 100.64.15.250;\n    }",
        "        range 100.64.0.10 100.64.7.250;\n    }\n    pool {\n        \
         failover peer \"edge-2\";\n        range 100.64.8.10 100.64.15.250;\n    }",
    );
    assert_ne!(text, hub);
    let file = dir.join("hub.conf");
    std::fs::write(&file, text).unwrap();
    let t = translate(&file, &inputs(None)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(t.config.subnets[1].pools.len(), 1, "{}", t.toml);
    assert_eq!(t.config.subnets[1].pools[0].end, addr("100.64.7.250"));
    let refused: Vec<&str> = t.untranslated.iter().map(|u| u.why.as_str()).collect();
    assert!(refused.iter().any(|w| w.contains("names failover peer \"edge-2\"")), "{refused:?}");
}

#[test]
fn a_shared_network_becomes_subnets_naming_it_with_its_pools_placed_by_range() {
    let t = import_with("shared-network.conf", Some("192.0.2.1"));
    assert!(t.untranslated.is_empty(), "{:?}", t.untranslated);
    let c = &t.config;
    let [cgnat, public, mgmt] = c.subnets.as_slice() else { panic!("{:?}", c.subnets) };
    assert_eq!(cgnat.shared_network.as_deref(), Some("bng1-vlan100"));
    assert_eq!(public.shared_network.as_deref(), Some("bng1-vlan100"));
    assert_eq!(mgmt.shared_network, None);
    assert_eq!(c.link_of(cgnat.id), [cgnat.id, public.id]);
    // The shared network's pool went to the subnet its range is in, with its options.
    assert_eq!(public.pools.len(), 1);
    assert_eq!(public.pools[0].start, addr("203.0.113.10"));
    let p = public.pools[0].options.unwrap();
    assert_eq!(public.pool_options[usize::from(p)][&42], [203, 0, 113, 5]);
    // The shared network's options and lease times reach both subnets; a subnet's own
    // domain-name wins.
    assert_eq!(cgnat.options[&15], b"bng1.isp.example");
    assert_eq!(public.options[&15], b"public.isp.example");
    assert_eq!((cgnat.max_lease, public.max_lease, mgmt.max_lease), (7200, 7200, 86400));
    // dhcpd's default of 43,200 s capped by the shared network's maximum.
    assert_eq!(cgnat.lease_time, 7200);
    assert_eq!(mgmt.lease_time, 86400);
}

#[test]
fn option_82_classes_and_subclasses_decide_the_pools() {
    let t = import("option82.conf");
    assert!(t.untranslated.is_empty(), "{:?}", t.untranslated);
    let c = &t.config;
    let names: Vec<&str> = c.classes.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "business/olt1 xpon 0/1/1:12",
            "business/olt1 xpon 0/1/1:13",
            "dslam-7",
            "iptv-stb",
            "voip",
            "lab-devices/52:54:00:12:34:56"
        ]
    );
    let cond = |i: usize| c.classes[i].conditions.clone();
    assert!(
        matches!(&cond(0)[..], [Condition::CircuitId(p)] if p.bytes == b"olt1 xpon 0/1/1:12" && !p.prefix)
    );
    assert!(matches!(&cond(2)[..], [Condition::RemoteId(p)] if p.bytes == b"dslam-7.pop3"));
    assert!(matches!(&cond(3)[..], [Condition::VendorClass(p), Condition::MacPrefix(m)]
        if p.bytes == b"IPTV-STB" && p.prefix && m == &[0x00, 0x1a, 0x2b]));
    assert!(matches!(&cond(4)[..], [Condition::UserClass(p)] if p.bytes == b"VOIP-ATA"));
    assert!(
        matches!(&cond(5)[..], [Condition::MacPrefix(m)] if m == &[0x52, 0x54, 0, 0x12, 0x34, 0x56])
    );
    // The class's options, and a subclass's own.
    let profile_opts = &t.toml;
    assert!(profile_opts.contains("biz13.isp.example"));
    let ids: Vec<_> = c.classes.iter().map(|k| k.id).collect();
    let s = &c.subnets[0];
    let [business, devices, rest] = s.pools.as_slice() else { panic!() };
    assert!(business.admits(Some(ids[0])) && business.admits(Some(ids[1])));
    assert!(!business.admits(None) && !business.admits(Some(ids[3])));
    assert!(devices.admits(Some(ids[3])) && devices.admits(Some(ids[4])) && !devices.admits(None));
    assert!(rest.admits(None) && rest.admits(Some(ids[2])));
    assert!(!rest.admits(Some(ids[0])) && !rest.admits(Some(ids[3])));
    // Ports that keep their address, by circuit-id and by remote-id (written in hex).
    let keys: Vec<_> = s.reservations.iter().map(|r| (r.address, r.key.clone())).collect();
    assert_eq!(
        keys,
        [
            (
                addr("100.80.0.20"),
                ReservationKey::Port {
                    circuit_id: Some(b"olt1 xpon 0/1/1:20".to_vec()),
                    remote_id: None
                }
            ),
            (
                addr("100.80.0.21"),
                ReservationKey::Port { circuit_id: None, remote_id: Some(b"dslam-7-4".to_vec()) }
            ),
        ]
    );
}

#[test]
fn host_blocks_become_reservations_by_mac_and_client_identifier() {
    let t = import("hosts.conf");
    assert!(t.untranslated.is_empty(), "{:?}", t.untranslated);
    let s = &t.config.subnets[0];
    let [by_mac, by_hex, by_text] = s.reservations.as_slice() else {
        panic!("{:?}", s.reservations)
    };
    assert_eq!(
        (by_mac.address, &by_mac.key),
        (addr("192.0.2.10"), &ReservationKey::Mac([0, 0x11, 0x22, 0x33, 0x44, 0x55]))
    );
    assert_eq!(by_mac.options[&12], b"cust-1001");
    // Colon hex keeps its type byte; a quoted identifier is its bytes as written.
    assert_eq!(by_hex.key, ReservationKey::ClientId(vec![1, 0, 0x11, 0x22, 0x33, 0x44, 0x66]));
    assert_eq!(by_text.key, ReservationKey::ClientId(b"cpe-1003".to_vec()));
    // The group's option reaches its hosts.
    assert_eq!(by_hex.options[&15], b"static.isp.example");
    assert_eq!(
        (by_text.options[&15].as_slice(), by_text.options[&26].as_slice()),
        (&b"static.isp.example"[..], &[0x05, 0xd4][..])
    );
}

#[test]
fn a_tr069_vendor_space_becomes_option_43_and_125_sub_options() {
    let t = import("tr069.conf");
    assert!(t.untranslated.is_empty(), "{:?}", t.untranslated);
    let c = &t.config;
    let cpe = &c.classes[0];
    assert!(
        matches!(&cpe.conditions[..], [Condition::VendorClass(p)] if p.bytes == b"dslfwd" && p.prefix)
    );
    let id = c.profiles.lookup(&c.subnets[0], addr("10.30.1.5"), Some(cpe.id));
    let profile = c.profiles.get(id).unwrap();
    let mut want43 = vec![1, 29];
    want43.extend_from_slice(b"https://acs.isp.example:7547/");
    want43.extend([2, 7]);
    want43.extend_from_slice(b"resi-v2");
    want43.extend([3, 4, 0, 0, 0, 30]);
    assert_eq!(profile.options[&43], want43);
    // Broadband Forum's enterprise number, then the TR-111 sub-option.
    assert_eq!(
        profile.options[&125],
        [0, 0, 0x0d, 0xe9, 8, 4, 6, b'0', b'0', b'1', b'A', b'2', b'B']
    );
    // Options defined by code: 252 by xdhcp's name, 249 as routes.
    let s = &c.subnets[0];
    assert_eq!(s.options[&252], b"http://wpad.isp.example/wpad.dat");
    assert_eq!(s.options[&249], [8, 10, 10, 30, 0, 1]);
    assert_eq!(s.options[&60], b"isp-edge");
}

#[test]
fn statements_without_a_counterpart_are_listed_with_file_and_line() {
    let t = translate(&fixture("untranslatable.conf"), &inputs(None)).unwrap();
    let listed: Vec<String> = t
        .untranslated
        .iter()
        .map(|u| {
            format!(
                "{}:{}: {}",
                Path::new(&*u.loc.file).file_name().unwrap().to_string_lossy(),
                u.loc.line,
                u.statement
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            "untranslatable.conf:3: log-facility local7",
            "untranslatable.conf:8: next-server 10.40.0.5",
            "untranslatable.conf:9: filename \"pxelinux.0\"",
            "untranslatable.conf:11: allow unknown-clients",
            "untranslatable.conf:16: if option vendor-class-identifier = \"MSFT 5.0\"",
        ]
    );
    assert!(t.untranslated[3].why.contains("the pool is left out"), "{}", t.untranslated[3]);
    // What is left still serves: the pool dhcpd keeps for unknown clients is not opened to all.
    let s = &t.config.subnets[0];
    assert_eq!(s.pools.len(), 1);
    assert_eq!(s.pools[0].start, addr("10.40.0.160"));
    // And the file says what it lacks.
    assert!(t.toml.contains("# Not translated:\n#   "), "{}", t.toml);
}

#[test]
fn a_file_dhcpd_rejects_is_an_error_with_its_file_and_line() {
    let e = translate(&fixture("broken.conf"), &inputs(None)).unwrap_err();
    assert!(matches!(e, ImportError::Syntax(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.ends_with("broken.conf:7: expected `;` after `10.50.0.200` before `}`"), "{msg}");
}

#[test]
fn a_translation_breaking_xdhcp_rules_names_the_dhcpd_line() {
    let e = translate(&fixture("router-in-range.conf"), &inputs(None)).unwrap_err();
    let ImportError::Invalid { loc: Some(loc), key, message } = &e else { panic!("{e:?}") };
    assert!(loc.to_string().ends_with("router-in-range.conf:6"), "{e}");
    assert_eq!(key, "subnet[0].pools[0]");
    assert!(message.contains("contains router 10.60.0.1"), "{e}");
}

#[test]
fn what_the_file_does_not_say_is_asked_for() {
    let e = translate(&fixture("shared-network.conf"), &inputs(None)).unwrap_err();
    assert!(e.to_string().contains("--server-id"), "{e}");
    let none = Inputs { interfaces: vec![], server_id: None };
    let e = translate(&fixture("hosts.conf"), &none).unwrap_err();
    assert!(e.to_string().contains("--interface"), "{e}");
}

/// Every fixture cut short at many places: an error naming the file, or a translation;
/// never a panic.
#[test]
fn truncated_input_is_an_error_never_a_panic() {
    let dir = std::env::temp_dir().join(format!("xdhcp-import-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("access-subnets.conf"), dir.join("access-subnets.conf")).unwrap();
    for name in FIXTURES.iter().map(|(n, _)| *n) {
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        let cut = dir.join(name);
        for end in (0..text.len()).step_by(5).filter(|e| text.is_char_boundary(*e)) {
            std::fs::write(&cut, &text[..end]).unwrap();
            if let Err(ImportError::Syntax(e)) = translate(&cut, &inputs(Some("192.0.2.250"))) {
                assert!(e.to_string().contains(name), "{name} cut at {end}: {e}");
            }
        }
    }
    let e = translate(&dir.join("absent.conf"), &inputs(None)).unwrap_err();
    assert!(e.to_string().contains("absent.conf"), "{e}");
}

/// The fixtures and whether dhcpd accepts them.
const FIXTURES: &[(&str, bool)] = &[
    ("failover-primary.conf", true),
    ("failover-secondary.conf", true),
    ("hub.conf", true),
    ("shared-network.conf", true),
    ("option82.conf", true),
    ("hosts.conf", true),
    ("tr069.conf", true),
    ("untranslatable.conf", true),
    ("router-in-range.conf", true),
    ("broken.conf", false),
];

#[test]
fn every_fixture_is_what_isc_dhcpd_itself_says_it_is() {
    let dhcpd = ["/usr/sbin/dhcpd", "/usr/local/sbin/dhcpd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("ISC dhcpd 4.4 (isc-dhcp-server, installed by cargo xtask setup)");
    let leases = std::env::temp_dir().join(format!("xdhcp-import-{}.leases", std::process::id()));
    std::fs::write(&leases, "").unwrap();
    for (name, valid) in FIXTURES {
        // dhcpd opens a relative include from its working directory; the importer from the
        // including file's. Run from the fixtures' directory, both read the same files.
        let out = Command::new(dhcpd)
            .current_dir(fixture(""))
            .args(["-4", "-t", "-cf"])
            .arg(fixture(name))
            .arg("-lf")
            .arg(&leases)
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            *valid,
            "dhcpd -t {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

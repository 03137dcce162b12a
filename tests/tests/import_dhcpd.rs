//! Moving a node from ISC dhcpd to xdhcp by its lease file: the real dhcpd 4.4 serves a real
//! client (udhcpc) and the load generator's; it stops; `import dhcpd-leases` fills an empty
//! xdhcp store from the file dhcpd wrote; xdhcp starts on the same link with the same server
//! address, and every client keeps its address: udhcpc renews it without a NAK, and the load
//! generator's clients, coming back, are given their own again.
use std::{net::Ipv4Addr, time::Duration};

use dhcp_lab::lab::TempDir;
use integration::{
    failover_lab::{Dhcpd, Segment, Udhcpc, Xdhcp, dhcpd_bindings, dora_clients},
    fixture::root_required,
};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 1);
const LOAD: u32 = 20;

const DHCPD: &str = "authoritative;
default-lease-time 60;
min-lease-time 60;
max-lease-time 60;
subnet 10.61.0.0 netmask 255.255.255.0 {
  range 10.61.0.100 10.61.0.199;
  option routers 10.61.0.1;
}
";

/// xdhcp serving what dhcpd served; `STATE`, `SOCKET` and `IFACE` filled in by the lab.
const XDHCP: &str = r#"interfaces = ["IFACE"]
server_id = "10.61.0.1"
state_dir = "STATE"
control_socket = "SOCKET"

[[subnet]]
prefix = "10.61.0.0/24"
pools = [{ start = "10.61.0.100", end = "10.61.0.199" }]
routers = ["10.61.0.1"]
lease_time = 60
"#;

#[test]
fn clients_of_dhcpd_keep_their_addresses_once_its_lease_file_is_imported() {
    root_required();
    let mut seg = Segment::new().unwrap();
    let srv = seg.port("srv", [2, 0x61, 0, 0, 0, 1], Some(SERVER)).unwrap();
    let cli = seg.port("udhcpc", [2, 0x61, 0, 0, 0, 2], None).unwrap();
    let load = seg.port("load", [2, 0x61, 0, 0, 0, 3], None).unwrap();

    let dhcpd = Dhcpd::start(&srv, DHCPD, None).unwrap();
    let udhcpc = Udhcpc::start(&cli).unwrap();
    let first = udhcpc.wait_bound(Duration::from_secs(30)).unwrap();
    assert_eq!(first.server, Some(SERVER));
    assert_eq!(dora_clients(&load, LOAD, 61, Duration::from_secs(30)).unwrap(), u64::from(LOAD));
    let dir = dhcpd.stop();
    let file = dir.path().join("dhcpd.leases");
    let theirs = dhcpd_bindings(&std::fs::read_to_string(&file).unwrap(), None);
    assert_eq!(theirs.len(), LOAD as usize + 1, "dhcpd's bindings");

    // The import, into the store the new server will own.
    let ours = TempDir::new("xdhcp").unwrap();
    let conf = ours.path().join("import.toml");
    let text = XDHCP
        .replace("STATE", &ours.path().join("state").display().to_string())
        .replace("SOCKET", &ours.path().join("control.sock").display().to_string())
        .replace("IFACE", &srv.iface);
    std::fs::write(&conf, &text).unwrap();
    let cfg = xdhcp::config::Config::load(&conf).unwrap();
    let done = xdhcp::import::leases::import(&cfg, &file, false).unwrap();
    assert_eq!(done.by_state.get("active"), Some(&(LOAD as usize + 1)), "{done:?}");

    let x = Xdhcp::start_in(&srv, XDHCP, ours).unwrap();
    // udhcpc renews at half its 60 s lease, unicast to the server it knows: xdhcp now.
    let renewed = udhcpc.wait_renewals(1, Duration::from_secs(90)).unwrap();
    assert_eq!(renewed[0].ip, first.ip, "{:?}", udhcpc.events());
    assert!(udhcpc.events().iter().all(|e| e.reason != "nak"), "{:?}", udhcpc.events());
    // The load generator's clients come back (a DORA each): their own addresses.
    assert_eq!(dora_clients(&load, LOAD, 61, Duration::from_secs(30)).unwrap(), u64::from(LOAD));
    let now = x.active_bindings().unwrap();
    assert_eq!(now, theirs, "every client holds the address dhcpd gave it");
}

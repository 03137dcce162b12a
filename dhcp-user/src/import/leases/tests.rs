//! A dhcpd.leases as dhcpd 4.4 writes it for one server of a failover pair, read into the
//! records an xdhcp store would hold.
use super::*;

const CONFIG: &str = r#"interfaces = ["eth1"]
server_id = "10.0.0.1"
state_dir = "STATE"

[[subnet]]
prefix = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.199" }]
"#;

/// The shapes dhcpd writes: a header, the failover peer's state, leases in every state, one
/// address twice (the later block wins), a host block, an IPv6-era statement.
const LEASES: &str = r#"# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

server-duid "\000\001\000\001-\331\252\313\002\000\000\000\000\001";

failover peer "edge" state {
  my state normal at 3 2026/12/02 06:00:00;
  partner state normal at 3 2026/12/02 06:00:01;
  mclt 3600;
}

lease 10.0.0.100 {
  starts 3 2026/12/02 06:10:00;
  ends 3 2026/12/02 07:10:00;
  tstp 3 2026/12/02 07:40:00;
  tsfp 3 2026/12/02 07:40:00;
  atsfp 3 2026/12/02 07:40:00;
  cltt 3 2026/12/02 06:10:00;
  binding state active;
  next binding state expired;
  rewind binding state free;
  hardware ethernet 02:00:00:00:00:01;
  uid "\001\002\000\000\000\000\001";
  set vendor-class-identifier = "dslforum.org";
  option agent.circuit-id "olt1 1/1/3:100";
  option agent.remote-id 63:70:65;
  client-hostname "cpe-1";
}
lease 10.0.0.101 {
  starts 3 2026/12/02 05:00:00;
  ends 3 2026/12/02 06:00:00;
  tstp 3 2026/12/02 06:00:00;
  cltt 3 2026/12/02 05:00:00;
  binding state free;
  rewind binding state free;
  hardware ethernet 02:00:00:00:00:02;
}
lease 10.0.0.102 {
  starts epoch 1796184000; # Wed Dec 02 04:00:00 2026
  ends never;
  binding state active;
  hardware ethernet 2:0:0:0:0:3;
  on expiry { set foo = "bar"; }
}
lease 10.0.0.100 {
  starts 3 2026/12/02 06:40:00;
  ends 3 2026/12/02 07:40:00;
  tstp 3 2026/12/02 08:10:00;
  tsfp 3 2026/12/02 07:40:00;
  cltt 3 2026/12/02 06:40:00;
  binding state active;
  next binding state expired;
  hardware ethernet 02:00:00:00:00:01;
  uid "\001\002\000\000\000\000\001";
  option agent.circuit-id "olt1 1/1/3:100";
  option agent.remote-id 63:70:65;
  client-hostname "cpe-1";
}
lease 10.0.0.103 {
  starts 3 2026/12/02 06:00:00;
  ends 3 2026/12/02 07:00:00;
  binding state backup;
}
host static-1 {
  dynamic;
  hardware ethernet 02:00:00:00:00:09;
  fixed-address 10.0.0.9;
}
"#;

fn config() -> Config {
    Config::from_toml(CONFIG, "xdhcp.toml").unwrap()
}

fn t(date: &str, clock: &str) -> u64 {
    parse::parse(&format!("lease 10.0.0.1 {{ starts 0 {date} {clock}; }}"), "t").unwrap()
        [&Ipv4Addr::new(10, 0, 0, 1)]
        .starts
        .unwrap()
}

#[test]
fn every_state_is_read_and_the_last_block_for_an_address_wins() {
    let leases = parse::parse(LEASES, "dhcpd.leases").unwrap();
    assert_eq!(leases.len(), 4);
    let tr = translate(&config(), &leases);
    assert!(tr.refused.is_empty(), "{:?}", tr.refused);
    let by = |a: u8| tr.records.iter().find(|r| r.address == Ipv4Addr::new(10, 0, 0, a)).unwrap();

    let cpe = by(100);
    assert_eq!(cpe.state, LeaseState::Active);
    assert_eq!(cpe.stos, t("2026/12/02", "06:40:00"), "the later block");
    assert_eq!(cpe.expires_at, t("2026/12/02", "07:40:00"));
    assert_eq!(cpe.held_until, cpe.expires_at, "no longer than dhcpd promised");
    assert_eq!(cpe.cltt, t("2026/12/02", "06:40:00"));
    assert_eq!((cpe.pet_sent, cpe.pet_acked), (t("2026/12/02", "08:10:00"), cpe.expires_at));
    assert!(!cpe.partner_acked, "dhcpd's partner has not taken the latest expiry yet");
    assert_eq!(&cpe.chaddr[..], &[2, 0, 0, 0, 0, 1]);
    assert_eq!(cpe.client_id.as_deref(), Some(&[1, 2, 0, 0, 0, 0, 1][..]));
    assert_eq!(cpe.hostname.as_deref(), Some("cpe-1"));
    assert_eq!(
        cpe.relay_info,
        Some(crate::relay::encode(&[(1, b"olt1 1/1/3:100"), (2, b"cpe")]).into()),
        "its line, for the fast path and port reservations"
    );
    assert_eq!(cpe.circuit_id(), Some(&b"olt1 1/1/3:100"[..]));

    let free = by(101);
    assert_eq!((free.state, free.rewind_state), (LeaseState::Free, Some(LeaseState::Free)));
    assert!(!free.partner_acked, "sent to the partner (tstp), never acknowledged (no tsfp)");

    let forever = by(102);
    assert_eq!(forever.stos, 1_796_184_000);
    assert_eq!(forever.expires_at, u64::from(u32::MAX), "ends never");
    assert_eq!(&forever.chaddr[..], &[2, 0, 0, 0, 0, 3]);
    assert!(forever.partner_acked, "nothing sent that was not acknowledged");

    assert_eq!(by(103).state, LeaseState::Backup);
}

#[test]
fn what_the_store_cannot_take_is_listed_with_its_line() {
    let text = "lease 10.9.0.1 {\n  binding state active;\n  hardware ethernet 2:0:0:0:0:1;\n}\n\
                lease 10.0.0.150 {\n  binding state bootp;\n  hardware ethernet 2:0:0:0:0:2;\n}\n\
                lease 10.0.0.151 {\n  binding state active;\n}\n";
    let tr = translate(&config(), &parse::parse(text, "dhcpd.leases").unwrap());
    let why: Vec<(u32, &str)> = tr.refused.iter().map(|r| (r.line, r.why.as_str())).collect();
    assert_eq!(
        why,
        [
            (5, "binding state bootp is not served here"),
            (9, "an active lease without `hardware ethernet`"),
            (1, "no subnet of the config holds this address"),
        ]
    );
}

#[test]
fn a_broken_file_is_an_error_naming_the_line() {
    for (text, at, says) in [
        (
            "lease 10.0.0.1 {\n  starts 3 2026/12/02 06:00:00;\n",
            2,
            "to close the block opened at line 1",
        ),
        ("lease 10.0.0.1 {\n  ends 3 2026/12/32 06:00:00;\n}\n", 2, "not a date and time"),
        ("lease 10.0.0.1 {\n  hardware ethernet 02:00:zz;\n}\n", 2, "not a MAC address"),
        ("lease fe80::1 {\n}\n", 1, "expected an IPv4 address"),
        ("lease 10.0.0.1 {\n  uid \"open;\n}\n", 2, "not closed"),
        ("lease 10.0.0.1 {\n  binding state;\n}\n", 2, "expected `binding state` and a state"),
        ("server-duid \"x\"\n", 1, "expected `;`"),
    ] {
        let e = parse::parse(text, "dhcpd.leases").unwrap_err().to_string();
        assert!(e.starts_with(&format!("dhcpd.leases:{at}: ")), "{text:?}: {e}");
        assert!(e.contains(says), "{text:?}: {e}");
    }
}

#[test]
fn the_import_writes_an_empty_store_once_and_refuses_a_store_in_use() {
    let dir = std::env::temp_dir().join(format!("xdhcp-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dhcpd.leases");
    std::fs::write(&file, LEASES).unwrap();
    let text = CONFIG.replace("STATE", &dir.join("state").display().to_string());
    let cfg = Config::from_toml(&text, "xdhcp.toml").unwrap();

    // Held by a running server: refused, nothing written.
    let owner = crate::store::lock(&cfg.state_dir, std::time::Duration::ZERO).unwrap();
    let e = format!("{:#}", import(&cfg, &file, false).unwrap_err());
    assert!(e.contains("in use by pid"), "{e}");
    drop(owner);

    let done = import(&cfg, &file, false).unwrap();
    assert_eq!(done.written, 4);
    assert_eq!(done.by_state.get("active"), Some(&2));
    let back = LeaseStore::open(&cfg.state_dir).unwrap().load_all().unwrap();
    assert_eq!(back.len(), 4);
    // A second import would mix two histories.
    let e = format!("{:#}", import(&cfg, &file, false).unwrap_err());
    assert!(e.contains("already holds 4 records"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

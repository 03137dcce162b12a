use std::net::Ipv4Addr;

use dhcp_common::{Control, KernelClock, LeaseEntry, digest};
use dhcp_lab::testrun::Harness;
use xdhcp::{
    fastpath::{clock, subnet::SubnetOptions},
    packet::{RenewKind, Renewal},
};

pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const SERVER_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x01];
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);
pub const CLIENT_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x50];
pub const RELAY: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
pub const RELAY_MAC: [u8; 6] = [0x02, 0x78, 0, 0, 0, 0x01];
pub const LEASE_SECS: u32 = 3600;
pub const T1: u32 = 1800;
pub const T2: u32 = 3150;

/// Fails the test at once, saying why, unless it runs as root.
///
/// # Panics
/// When not root.
pub fn root_required() {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let euid = unsafe { libc_geteuid() };
    assert!(
        euid == 0,
        "these tests load XDP programs and create network namespaces: run them as root \
         (cargo xtask test does)"
    );
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[must_use]
pub fn client_id(mac: [u8; 6]) -> Vec<u8> {
    let mut v = vec![1];
    v.extend_from_slice(&mac);
    v
}

#[must_use]
pub fn subnet() -> SubnetOptions {
    SubnetOptions {
        server_id: SERVER,
        mask: Ipv4Addr::new(255, 255, 255, 0),
        routers: vec![SERVER],
        dns: vec![Ipv4Addr::new(10, 77, 0, 53), Ipv4Addr::new(10, 77, 0, 54)],
        domain: Some("edge.example".into()),
        t1_secs: T1,
        t2_secs: T2,
        extra: vec![],
    }
}

/// The reply profile of [`long_profile`], beside the lab subnet's (profile 0).
pub const LONG_PROFILE: u32 = 1;

/// A client class's options, after the lab subnet's 54, 1, 3, 6, 15: NTP servers (42), vendor
/// options (43), TFTP server and boot file (66, 67), classless routes (121); 200 bytes of
/// options in all with the subnet's, the long block's size of case.
#[must_use]
pub fn class_options() -> Vec<(u8, Vec<u8>)> {
    // Seven /24s through the lab router: width, three octets, router.
    let routes: Vec<u8> = (0..7u8).flat_map(|i| [24, 10, 80 + i, 0, 10, 77, 0, 1]).collect();
    vec![
        (121, routes),
        (42, vec![10, 77, 0, 123, 10, 77, 0, 124]),
        (66, b"tftp.edge.example".to_vec()),
        (67, b"pxelinux/x86_64/grubx64.efi".to_vec()),
        (43, (0..40).collect()),
    ]
}

/// The lab subnet's options with a client class's ([`class_options`]): the long block.
#[must_use]
pub fn long_profile() -> SubnetOptions {
    SubnetOptions { extra: class_options(), ..subnet() }
}

/// `msg` (a slow-path reply) with the class options added, as the slow path adds a client
/// class's options to its replies: the parity tests' stand-in until the configuration has
/// classes.
pub fn with_class_options(msg: &mut dhcproto::v4::Message) {
    use dhcproto::v4::{DhcpOption, OptionCode, UnknownOption};
    for (code, v) in class_options() {
        let o = UnknownOption::new(OptionCode::from(code), v);
        msg.opts_mut().insert(DhcpOption::Unknown(o));
    }
}

#[must_use]
pub fn control() -> Control {
    Control {
        enabled: 1,
        flags: Control::F_EVENTS,
        min_grant_secs: 60,
        _pad: 0,
        if_mac: SERVER_MAC,
        _pad2: [0; 2],
        // Not written: the maps keep the clock the loader set.
        clock: KernelClock::default(),
    }
}

/// A lease bound with `client_id` (or none), granted for `grant_secs` from now.
pub fn lease(mac: [u8; 6], client_id: Option<&[u8]>, grant_secs: u64) -> LeaseEntry {
    let digest = client_id.and_then(digest::client_id);
    LeaseEntry {
        grant_until_ns: clock::grant_until_ns(clock::monotonic_ns(), grant_secs),
        client_id_digest: digest.unwrap_or(0),
        renewed_at_ns: 0,
        lease_secs: LEASE_SECS,
        profile: 0,
        flags: if digest.is_some() { LeaseEntry::F_CLIENT_ID } else { 0 },
        renewed_secs: 0,
        chaddr: mac,
        ..Default::default()
    }
}

/// A harness with the lab subnet, control on, and the lab client's lease (with client-id),
/// granted for two hours.
///
/// # Panics
/// When not root, or the kernel refuses the program or the maps.
#[must_use]
pub fn harness() -> Harness {
    root_required();
    let h = Harness::new(1024, &[xdhcp::fastpath::PROG]).expect("load and verify the XDP program");
    with_lab_lease(h)
}

/// [`harness`] with an event log of `slots` per CPU.
///
/// # Panics
/// As [`harness`].
#[must_use]
pub fn harness_with_log(slots: u32) -> Harness {
    root_required();
    let h = Harness::with_log(1024, slots, &[xdhcp::fastpath::PROG])
        .expect("load and verify the XDP program");
    with_lab_lease(h)
}

fn with_lab_lease(mut h: Harness) -> Harness {
    h.maps.set_control(control()).unwrap();
    h.maps.set_profile(0, &subnet().encode().unwrap()).unwrap();
    h.maps.set_profile(LONG_PROFILE, &long_profile().encode().unwrap()).unwrap();
    let id = client_id(CLIENT_MAC);
    h.maps.put_lease(CLIENT, &lease(CLIENT_MAC, Some(&id), 7200)).unwrap();
    h
}

#[must_use]
pub fn renewal(kind: RenewKind) -> Renewal {
    Renewal {
        xid: 0x1234_5678,
        chaddr: CLIENT_MAC,
        ciaddr: CLIENT,
        client_id: Some(client_id(CLIENT_MAC)),
        kind,
        server: SERVER,
        server_mac: SERVER_MAC,
        vlans: vec![],
        relay_info: None,
    }
}

/// The lab subnet as the slow path serves it: the same server, options, lease time and timers
/// as [`subnet`], with the fast path `fast_path` (on, for projecting kernel entries; off, for
/// the ACK the slow path builds alone). `circuit_change` as given.
///
/// # Panics
/// Never: the text is valid.
#[must_use]
pub fn slow_path_config(fast_path: bool, circuit_change: &str) -> xdhcp::config::Config {
    let text = format!(
        r#"interfaces = ["veth0"]
server_id = "{SERVER}"
[fast_path]
enabled = {fast_path}
[[subnet]]
prefix = "10.77.0.0/24"
pools = [{{ start = "10.77.0.10", end = "10.77.0.199" }}]
routers = ["{SERVER}"]
dns = ["10.77.0.53", "10.77.0.54"]
domain = "edge.example"
lease_time = {LEASE_SECS}
t1 = {T1}
t2 = {T2}
relay_addresses = ["{RELAY}"]
circuit_change = "{circuit_change}"
"#
    );
    xdhcp::config::Config::from_toml(&text, "parity.toml").expect("the parity config is valid")
}

/// An active lease of `addr` for `mac` (with `client_id`, option 82 `relay_info` on record),
/// as the store holds it at unix time `now`.
#[must_use]
pub fn bound(
    addr: Ipv4Addr,
    mac: [u8; 6],
    client_id: Option<Vec<u8>>,
    relay_info: Option<Vec<u8>>,
    now: u64,
) -> xdhcp::store::Lease {
    xdhcp::store::Lease {
        chaddr: mac.into(),
        client_id: client_id.map(Into::into),
        relay_info: relay_info.map(Into::into),
        expires_at: now + u64::from(LEASE_SECS),
        held_until: now + 2 * u64::from(LEASE_SECS),
        ..xdhcp::store::Lease::new(addr, xdhcp::store::LeaseState::Active, 0, now - 60)
    }
}

/// The kernel entry the daemon would write for `l` (the projection and the entry encoder the
/// daemon uses), with a horizon of two lease times so that no grant is shortened.
///
/// # Panics
/// When the lease is not one the fast path may renew.
#[must_use]
pub fn kernel_entry(l: &xdhcp::store::Lease, now: xdhcp::core::Now) -> LeaseEntry {
    let cfg = slow_path_config(true, "nak");
    let fl = xdhcp::server::fast_path_entry(&cfg, l, now.unix).expect("a fast-path lease");
    xdhcp::fastpath::sync::entry(&fl, now).expect("a kernel entry")
}

/// The options of a BOOTP payload in wire order (an ACK's, as either path built it), PAD
/// skipped, up to END.
///
/// # Panics
/// When the payload has no END: every reply of both paths ends in one.
#[must_use]
pub fn options_of(payload: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut o = 240;
    while o < payload.len() {
        match payload[o] {
            255 => return out,
            0 => o += 1,
            c => {
                let len = usize::from(payload[o + 1]);
                out.push((c, payload[o + 2..o + 2 + len].to_vec()));
                o += 2 + len;
            }
        }
    }
    panic!("no END in {payload:02x?}");
}

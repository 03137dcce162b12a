//! An independent decoder agrees with our encoder: one message of each of the twelve types,
//! with representative options, goes into a pcap (Ethernet/IPv4/TCP to port 647), and
//! Wireshark's DHCPFO dissector must read back exactly the values we meant, without any
//! malformed-packet or expert complaint.
//!
//! tshark is part of the project's toolchain (`cargo xtask` installs Debian's). A missing tshark
//! fails this test rather than skipping it, so a green run always means the check ran.

mod common;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::Command;

use dhcp_failover::load_balance::Hba;
use dhcp_failover::messages::{BindingAck, ConnectAckInfo, ConnectInfo};
use dhcp_failover::options::{IP_FLAG_BOOTP, SERVER_FLAG_STARTUP};
use dhcp_failover::{
    BindingStatus, BindingUpdate, HwAddr, Message, RejectReason, ServerState, encode,
};

const T: u32 = 1_795_574_681;

/// Fields asked of tshark, in output order.
const FIELDS: &[&str] = &[
    "dhcpfo.length",
    "dhcpfo.type",
    "dhcpfo.poffset",
    "dhcpfo.xid",
    "dhcpfo.relationshipname",
    "dhcpfo.maxunackedbndupd",
    "dhcpfo.receivetimer",
    "dhcpfo.vendorclass",
    "dhcpfo.protocolversion",
    "dhcpfo.tls_request",
    "dhcpfo.tls_reply",
    "dhcpfo.mclt",
    "dhcpfo.hashbucketassignment",
    "dhcpfo.serverstatus",
    "dhcpfo.serverflag",
    "dhcpfo.starttimeofstate",
    "dhcpfo.assignedipaddress",
    "dhcpfo.bindingstatus",
    "dhcpfo.clientidentifier",
    "dhcpfo.clienthardwaretype",
    "dhcpfo.clienthardwareaddress",
    "dhcpfo.leaseexpirationtime",
    "dhcpfo.potentialexpirationtime",
    "dhcpfo.clientlasttransactiontime",
    "dhcpfo.ipflags",
    "dhcpfo.rejectreason",
    "dhcpfo.message",
    "dhcpfo.addressestransferred",
    "_ws.malformed",
    "_ws.expert.message",
];

/// One message of each type and the field values tshark must report for it (unlisted fields
/// must be empty).
#[expect(clippy::too_many_lines, reason = "one flat table, a case per message type")]
fn cases() -> Vec<(Message, Vec<(&'static str, String)>)> {
    let hba = Hba::split(128).0;
    let hba_hex = hba.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    let binding = BindingUpdate {
        // Printable, because the dissector shows client-identifier as a string and flags the
        // NUL bytes of a MAC-based identifier as "trailing stray characters" (it does so for
        // ISC's own BNDUPDs in tests/data too).
        client_id: Some(b"xdhcp-client-7".to_vec()),
        chaddr: Some(HwAddr::ethernet([0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f])),
        lease_expiration: Some(T + 600),
        potential_expiration: Some(T + 1200),
        start_time_of_state: Some(T),
        client_last_transaction: Some(T - 1),
        ip_flags: Some(IP_FLAG_BOOTP),
        ..BindingUpdate::new(Ipv4Addr::new(10, 40, 0, 149), BindingStatus::Active)
    };
    let s = |v: &str| v.to_owned();
    vec![
        (Message::poolreq(T, 1), vec![]),
        (Message::poolresp(T, 1, 42), vec![("dhcpfo.addressestransferred", s("42"))]),
        (
            Message::bndupd(T, 3, &binding),
            vec![
                ("dhcpfo.assignedipaddress", s("10.40.0.149")),
                ("dhcpfo.bindingstatus", s("2")),
                ("dhcpfo.clientidentifier", s("xdhcp-client-7")),
                ("dhcpfo.clienthardwaretype", s("0x01")),
                ("dhcpfo.clienthardwareaddress", s("0a:0b:0c:0d:0e:0f")),
                ("dhcpfo.leaseexpirationtime", (T + 600).to_string()),
                ("dhcpfo.potentialexpirationtime", (T + 1200).to_string()),
                ("dhcpfo.starttimeofstate", T.to_string()),
                ("dhcpfo.clientlasttransactiontime", (T - 1).to_string()),
                ("dhcpfo.ipflags", s("0x0002")),
            ],
        ),
        (
            Message::bndack(
                T,
                3,
                &[BindingAck::reject(
                    Ipv4Addr::new(10, 40, 0, 149),
                    RejectReason::OUTDATED_BINDING,
                    "outdated binding information",
                )],
            ),
            vec![
                ("dhcpfo.assignedipaddress", s("10.40.0.149")),
                ("dhcpfo.rejectreason", s("15")),
                ("dhcpfo.message", s("outdated binding information")),
            ],
        ),
        (
            Message::connect(
                T,
                0,
                &ConnectInfo {
                    relationship: b"f".to_vec(),
                    max_unacked: 10,
                    receive_timer: 30,
                    vendor_class: b"xdhcp-0.1.0".to_vec(),
                    mclt: 60,
                    hba,
                },
            ),
            vec![
                ("dhcpfo.relationshipname", s("f")),
                ("dhcpfo.maxunackedbndupd", s("10")),
                ("dhcpfo.receivetimer", s("30")),
                ("dhcpfo.vendorclass", s("xdhcp-0.1.0")),
                ("dhcpfo.protocolversion", s("1")),
                ("dhcpfo.tls_request", s("0")),
                ("dhcpfo.mclt", s("60")),
                ("dhcpfo.hashbucketassignment", hba_hex),
            ],
        ),
        (
            Message::connect_ack(
                T,
                0,
                &ConnectAckInfo {
                    relationship: b"f".to_vec(),
                    max_unacked: 100,
                    receive_timer: 20,
                    vendor_class: b"xdhcp-0.1.0".to_vec(),
                },
            ),
            vec![
                ("dhcpfo.relationshipname", s("f")),
                ("dhcpfo.maxunackedbndupd", s("100")),
                ("dhcpfo.receivetimer", s("20")),
                ("dhcpfo.vendorclass", s("xdhcp-0.1.0")),
                ("dhcpfo.protocolversion", s("1")),
                ("dhcpfo.tls_reply", s("0")),
            ],
        ),
        (Message::updreqall(T, 7), vec![]),
        (Message::upddone(T, 7), vec![]),
        (Message::updreq(T, 9), vec![]),
        (
            Message::state(T, 10, ServerState::Normal, SERVER_FLAG_STARTUP, T - 3600),
            vec![
                ("dhcpfo.serverstatus", s("2")),
                ("dhcpfo.serverflag", s("1")),
                ("dhcpfo.starttimeofstate", (T - 3600).to_string()),
            ],
        ),
        (Message::contact(T, 11), vec![]),
        (
            Message::disconnect(T, 12, RejectReason::NO_TRAFFIC, "no traffic from partner"),
            vec![
                ("dhcpfo.rejectreason", s("17")),
                ("dhcpfo.message", s("no traffic from partner")),
            ],
        ),
    ]
}

fn tshark(pcap: &std::path::Path) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(["-Y", "dhcpfo", "-T", "fields"]);
    cmd.args(["-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!(
            "tshark could not be run ({e}); it is required for this test: install Debian's \
             `tshark` package (cargo xtask does this)"
        ),
    };
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("tshark prints UTF-8")
}

#[test]
fn wireshark_reads_every_message_type_as_we_meant_it() {
    let cases = cases();
    let frames: Vec<Vec<u8>> = cases.iter().map(|(m, _)| encode(m).unwrap()).collect();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dhcpfo-all-types.pcap");
    std::fs::write(&path, common::write_pcap(&frames)).unwrap();

    let output = tshark(&path);
    let rows: Vec<Vec<&str>> = output.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), cases.len(), "one dissected packet per message:\n{output}");

    for ((msg, expected), (row, frame)) in cases.iter().zip(rows.iter().zip(&frames)) {
        let field = |name: &str| {
            let i = FIELDS.iter().position(|f| *f == name).unwrap();
            row.get(i).copied().unwrap_or_default()
        };
        let what = format!("{:?}", msg.kind);
        assert_eq!(field("dhcpfo.length"), frame.len().to_string(), "{what}");
        assert_eq!(field("dhcpfo.type"), (msg.kind as u8).to_string(), "{what}");
        assert_eq!(field("dhcpfo.poffset"), "12", "{what}");
        assert_eq!(field("dhcpfo.xid"), format!("0x{:08x}", msg.xid), "{what}");
        assert_eq!(field("_ws.malformed"), "", "{what} is malformed to tshark");
        assert_eq!(field("_ws.expert.message"), "", "{what} raised an expert warning");
        for name in FIELDS.iter().skip(4).filter(|f| f.starts_with("dhcpfo.")) {
            let want = expected.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str());
            assert_eq!(field(name), want, "{what}: {name}");
        }
    }
}

//! Running frames through the XDP program and checking what came back: the verdicts and
//! counters the `BPF_PROG_TEST_RUN` tests assert on.
use dhcp_common::{Stat, layout};
use dhcp_lab::testrun::{Harness, XDP_PASS, XDP_TX};
use xdhcp::packet::{self, Parsed};

/// Runs `frame`, asserts an ACK came back, and returns it parsed.
///
/// # Panics
/// When the program does not answer with an ACK that parses, with valid checksums.
pub fn ack(h: &mut Harness, frame: &[u8]) -> Parsed {
    ack_of_len(h, frame, layout::BOOTP_LEN)
}

/// [`ack`], for an ACK whose BOOTP payload is `bootp_len` bytes.
///
/// # Panics
/// As [`ack`].
pub fn ack_of_len(h: &mut Harness, frame: &[u8], bootp_len: usize) -> Parsed {
    let before = h.maps.stats().unwrap();
    let (ret, out) = h.run(frame).unwrap();
    let d = h.maps.stats().unwrap().since(&before);
    assert_eq!(ret, XDP_TX, "expected XDP_TX; counters moved: {:?}", d.to_json());
    assert_eq!(d.get(Stat::Ack), 1);
    let p = packet::parse_frame(&out).expect("the ACK parses");
    assert!(p.ip_checksum_ok, "IPv4 header checksum");
    assert!(p.udp_checksum_ok, "UDP checksum (nonzero and correct)");
    assert_eq!(p.payload.len(), bootp_len);
    p
}

/// Runs `frame`, asserts it was passed untouched, counted under `reason`.
///
/// # Panics
/// When it was not.
pub fn passes(h: &mut Harness, frame: &[u8], reason: Stat) {
    let before = h.maps.stats().unwrap();
    let (ret, out) = h.run(frame).unwrap();
    let d = h.maps.stats().unwrap().since(&before);
    assert_eq!(ret, XDP_PASS, "expected XDP_PASS ({})", reason.name());
    assert!(out == frame, "a passed frame must be unchanged ({})", reason.name());
    assert_eq!(d.get(reason), 1, "expected {}; counters moved: {:?}", reason.name(), d.to_json());
}

//! Just enough capture-file handling for the tests: read pcap or pcapng (Ethernet or Linux
//! cooked link types, IPv4, TCP), reassemble each TCP direction, and write a classic pcap of
//! synthetic Ethernet/IPv4/TCP packets for tshark to dissect.

#![allow(dead_code, reason = "each test binary uses a different part of this module")]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_LINUX_SLL2: u32 = 276;

/// One direction of one TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// Link-layer frames of a capture file, with their link type.
fn link_frames(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let magic = u32::from_le_bytes(file[0..4].try_into().unwrap());
    match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => classic_frames(file, u32::from_le_bytes),
        0xd4c3_b2a1 | 0x4d3c_b2a1 => classic_frames(file, u32::from_be_bytes),
        0x0a0d_0d0a => pcapng_frames(file),
        other => panic!("not a capture file (magic {other:#x})"),
    }
}

fn classic_frames(file: &[u8], u32_of: fn([u8; 4]) -> u32) -> Vec<(u32, Vec<u8>)> {
    let word = |at: usize| u32_of(file[at..at + 4].try_into().unwrap());
    let link = word(20);
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= file.len() {
        let caplen = word(at + 8) as usize;
        out.push((link, file[at + 16..at + 16 + caplen].to_vec()));
        at += 16 + caplen;
    }
    out
}

fn pcapng_frames(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut little = true;
    let mut links = Vec::new();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= file.len() {
        let raw = |o: usize| -> [u8; 4] { file[o..o + 4].try_into().unwrap() };
        if u32::from_le_bytes(raw(at)) == 0x0a0d_0d0a {
            little = raw(at + 8) == [0x4d, 0x3c, 0x2b, 0x1a];
        }
        let word = |o: usize| {
            if little { u32::from_le_bytes(raw(o)) } else { u32::from_be_bytes(raw(o)) }
        };
        let kind = word(at);
        let len = word(at + 4) as usize;
        let body = at + 8;
        match kind {
            // Interface description: link type is the first u16 of the body.
            1 => {
                let b = [file[body], file[body + 1]];
                let lt = if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) };
                links.push(u32::from(lt));
            }
            // Enhanced packet: interface id, timestamp (2 words), captured len, original len.
            6 => {
                let iface = word(body) as usize;
                let caplen = word(body + 12) as usize;
                let data = &file[body + 20..body + 20 + caplen];
                out.push((links[iface], data.to_vec()));
            }
            _ => {}
        }
        at += len;
    }
    out
}

/// The IPv4 packet inside a link-layer frame, if any.
fn ipv4_of(link: u32, frame: &[u8]) -> Option<&[u8]> {
    let (ethertype, payload) = match link {
        LINKTYPE_ETHERNET => (u16::from_be_bytes([frame[12], frame[13]]), &frame[14..]),
        LINKTYPE_LINUX_SLL => (u16::from_be_bytes([frame[14], frame[15]]), &frame[16..]),
        LINKTYPE_LINUX_SLL2 => (u16::from_be_bytes([frame[0], frame[1]]), &frame[20..]),
        other => panic!("unsupported link type {other}"),
    };
    (ethertype == 0x0800).then_some(payload)
}

/// Reassembled TCP payload of every flow in the capture, by direction.
pub fn tcp_streams(file: &[u8]) -> BTreeMap<Flow, Vec<u8>> {
    let mut streams: BTreeMap<Flow, (Option<u32>, Vec<u8>)> = BTreeMap::new();
    for (link, frame) in link_frames(file) {
        let Some(ip) = ipv4_of(link, &frame) else {
            continue;
        };
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if ip[9] != 6 {
            continue;
        }
        let tcp = &ip[ihl..total];
        let flow = Flow {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            sport: u16::from_be_bytes([tcp[0], tcp[1]]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            dport: u16::from_be_bytes([tcp[2], tcp[3]]),
        };
        let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
        let flags = tcp[13];
        let payload = &tcp[usize::from(tcp[12] >> 4) * 4..];
        let (next, data) = streams.entry(flow).or_default();
        if flags & 0x02 != 0 {
            *next = Some(seq.wrapping_add(1));
            continue;
        }
        if payload.is_empty() {
            continue;
        }
        let expected = *next.get_or_insert(seq);
        // Skip what a retransmission repeats; a gap means the capture lost data.
        let skip = expected.wrapping_sub(seq) as usize;
        assert!(skip < 1 << 30, "gap in {flow:?}: expected seq {expected}, got {seq}");
        if skip < payload.len() {
            data.extend_from_slice(&payload[skip..]);
            *next = Some(seq.wrapping_add(u32::try_from(payload.len()).unwrap()));
        }
    }
    streams.into_iter().filter(|(_, (_, d))| !d.is_empty()).map(|(f, (_, d))| (f, d)).collect()
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |b| u32::from(*b));
            sum += hi | lo;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap()
}

/// Builds a classic pcap with one Ethernet/IPv4/TCP packet per payload, all in one direction of
/// one connection (10.40.0.1:40000 -> 10.40.0.2:647) with contiguous sequence numbers, so a
/// dissector sees a clean stream. Checksums are real.
pub fn write_pcap(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    let (src, dst) = ([10, 40, 0, 1], [10, 40, 0, 2]);
    let mut seq: u32 = 1000;
    for (i, payload) in payloads.iter().enumerate() {
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&40000u16.to_be_bytes());
        tcp.extend_from_slice(&647u16.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&1u32.to_be_bytes()); // ack
        tcp.extend_from_slice(&[0x50, 0x18]); // 20-byte header, PSH|ACK
        tcp.extend_from_slice(&65535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
        tcp.extend_from_slice(payload);
        let tcp_len = u16::try_from(tcp.len()).unwrap();
        let pseudo = [&src[..], &dst[..], &[0, 6], &tcp_len.to_be_bytes()].concat();
        let c = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        seq = seq.wrapping_add(u32::try_from(payload.len()).unwrap());

        let total = u16::try_from(20 + tcp.len()).unwrap();
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        #[expect(clippy::cast_possible_truncation, reason = "the IP id wraps")]
        ip.extend_from_slice(&(i as u16).to_be_bytes());
        ip.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());

        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);

        out.extend_from_slice(&u32::try_from(i).unwrap().to_le_bytes()); // seconds
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&u32::try_from(frame.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(frame.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

//! Whatever arrives from the wire, nothing panics: thousands of random and mutated frames go
//! through the decoder, the stream framer and the engine. Deterministic (seeded xorshift), so a
//! failure reproduces.

mod common;

use dhcp_failover::{Config, FrameDecoder, Message, Peer, decode, encode, load_balance::Hba};

const FRESH: &[u8] = include_bytes!("data/isc-failover-fresh.pcap");
const RESTART: &[u8] = include_bytes!("data/isc-failover.pcap");

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for capture in [FRESH, RESTART] {
        for bytes in common::tcp_streams(capture).into_values() {
            let mut d = FrameDecoder::new();
            d.push(&bytes);
            while let Some(f) = d.pop_frame().unwrap() {
                frames.push(f);
            }
        }
    }
    frames
}

fn mutate(rng: &mut XorShift, frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !f.is_empty() => {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
            1 if !f.is_empty() => {
                let i = rng.below(f.len());
                f[i] = rng.byte();
            }
            2 => f.truncate(rng.below(f.len() + 1)),
            3 => f.extend((0..rng.below(16)).map(|_| rng.byte())),
            // Make the length field agree with the new size, so the option parser is reached.
            4 if f.len() >= 2 => {
                let len = u16::try_from(f.len()).unwrap_or(u16::MAX).to_be_bytes();
                f[..2].copy_from_slice(&len);
            }
            // Corrupt an option length somewhere in the payload.
            5 if f.len() > 16 => {
                let i = 12 + rng.below(f.len() - 14);
                f[i] = rng.byte();
                f[i + 1] = rng.byte();
            }
            _ => {
                if f.len() > 3 {
                    f[2] = rng.byte(); // message type
                    f[3] = rng.byte(); // payload offset
                }
            }
        }
    }
    f
}

/// A well-formed header around random option-shaped bytes.
fn random_frame(rng: &mut XorShift) -> Vec<u8> {
    let mut payload = Vec::new();
    for _ in 0..rng.below(12) {
        let code = u16::try_from(rng.below(32)).unwrap();
        let len = rng.below(40);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        payload.extend((0..len).map(|_| rng.byte()));
    }
    let len = 12 + payload.len();
    let mut f = u16::try_from(len).unwrap().to_be_bytes().to_vec();
    f.push(1 + u8::try_from(rng.below(12)).unwrap());
    f.push(12);
    f.extend((0..8).map(|_| rng.byte()));
    f.extend(payload);
    f
}

#[test]
fn decoding_never_panics_and_accepted_frames_reencode_exactly() {
    let corpus = corpus();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for i in 0..60_000 {
        let frame = if i % 3 == 0 {
            random_frame(&mut rng)
        } else {
            let pick = rng.below(corpus.len());
            mutate(&mut rng, &corpus[pick])
        };
        if let Ok(msg) = decode(&frame) {
            accepted += 1;
            assert_eq!(encode(&msg).unwrap(), frame, "{msg:?}");
            // Typed views of arbitrary messages must be total too.
            let _ = msg.binding_updates();
            let _ = msg.binding_acks();
        }
    }
    // Enough mutants survive to exercise the typed paths, not just the error exits.
    assert!(accepted > 5_000, "only {accepted} frames decoded");
}

#[test]
fn the_stream_framer_survives_garbage() {
    let corpus = corpus();
    let mut rng = XorShift(42);
    for _ in 0..2_000 {
        let mut stream = Vec::new();
        for _ in 0..rng.below(8) {
            let f = &corpus[rng.below(corpus.len())];
            stream.extend(if rng.below(4) == 0 { mutate(&mut rng, f) } else { f.clone() });
        }
        let mut d = FrameDecoder::new();
        let mut at = 0;
        while at < stream.len() {
            let n = 1 + rng.below(64);
            d.push(&stream[at..(at + n).min(stream.len())]);
            at += n;
            loop {
                match d.pop_message() {
                    Ok(Some(_)) => {}
                    Err(e) if e.is_ignorable() => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

fn drain(peer: &mut Peer) {
    while peer.poll_event().is_some() {}
    while let Some(m) = peer.poll_transmit() {
        encode(&m).expect("the engine only builds encodable messages");
    }
}

#[test]
fn the_engine_survives_arbitrary_decodable_messages() {
    let corpus = corpus();
    let mut rng = XorShift(7);
    let mut messages: Vec<Message> = corpus.iter().filter_map(|f| decode(f).ok()).collect();
    while messages.len() < 3_000 {
        let pick = rng.below(corpus.len());
        let f = mutate(&mut rng, &corpus[pick]);
        if let Ok(m) = decode(&f) {
            messages.push(m);
        }
    }
    for role in 0..2 {
        let cfg = if role == 0 {
            Config::primary("f", 60, Hba::split(128))
        } else {
            Config::secondary("f")
        };
        let mut now = 1_795_574_681;
        let mut peer = Peer::new(cfg, None, now);
        for (i, msg) in messages.iter().enumerate() {
            if i % 50 == 0 {
                peer.handle_connected(now);
            }
            let mut msg = msg.clone();
            msg.time = u32::try_from(now).unwrap();
            peer.handle_message(now, msg);
            drain(&mut peer);
            if i % 7 == 0 {
                now += rng.below(40) as u64;
                peer.handle_timeout(now);
                drain(&mut peer);
            }
            if i % 97 == 0 {
                peer.handle_disconnected(now);
                drain(&mut peer);
            }
        }
    }
}

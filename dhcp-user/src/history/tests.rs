//! The lease history's files, spool and queries, as scenarios.
use std::{net::Ipv4Addr, os::unix::fs::PermissionsExt as _, path::PathBuf};

use super::{
    Kind, LeaseEvent, Record, Via,
    file::{HistoryFile, Rotation, Spool, read_all, read_cursor, write_cursor},
    query::{Key, Source, held_at, lookup, parse_time},
};

/// A directory of its own, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("xdhcp-history-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn rotation(&self, max_size: u64, keep: u32) -> Rotation {
        Rotation { path: self.0.join("history.jsonl"), max_size, keep }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ev(time: u64, kind: Kind, last: u8, lease_end: u64) -> LeaseEvent {
    LeaseEvent {
        time,
        kind,
        address: Ipv4Addr::new(10, 0, 0, last),
        mac: "02:00:00:00:00:07".into(),
        client_id: None,
        circuit_id: Some("olt1/1/7".into()),
        remote_id: None,
        state: if matches!(kind, Kind::Bind | Kind::Renew) { "active" } else { "released" }.into(),
        lease_end,
        path: Via::Slow,
    }
}

/// Renewals at each of `times`, one write each.
fn renewals(f: &mut HistoryFile, times: std::ops::Range<u64>) {
    for t in times {
        f.append(vec![ev(t, Kind::Renew, 1, t + 100)]).unwrap();
    }
}

fn seqs(r: &[Record]) -> Vec<u64> {
    r.iter().map(|r| r.seq).collect()
}

#[test]
fn the_file_rotates_by_size_keeps_its_files_owner_only_and_numbers_on_across_restarts() {
    let d = Dir::new("rotate");
    let rot = d.rotation(4096, 2);
    let mut f = HistoryFile::new(rot.clone(), "node-a");
    // ~250 bytes a record: 100 of them fill several files; two rotated ones are kept.
    renewals(&mut f, 1000..1100);
    assert_eq!(rot.files(), [rot.nth(2), rot.nth(1), rot.nth(0)]);
    assert!(!rot.nth(3).exists(), "the oldest beyond keep is removed");
    for p in rot.files() {
        assert!(std::fs::metadata(&p).unwrap().len() <= 4096, "{}", p.display());
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let kept = read_all(&rot).unwrap();
    assert_eq!(kept.last().map(|r| r.seq), Some(100));
    assert!(kept.windows(2).all(|w| w[1].seq == w[0].seq + 1), "in order, none missing");
    assert_eq!(kept[0].id, format!("node-a:{}", kept[0].seq));
    // A restart numbers on from the last record written: ids are never given out twice.
    drop(f);
    let mut f = HistoryFile::new(rot.clone(), "node-a");
    f.append(vec![ev(2000, Kind::Release, 1, 2000)]).unwrap();
    assert_eq!(read_all(&rot).unwrap().last().map(|r| r.seq), Some(101));
}

#[test]
fn a_torn_last_line_is_skipped_and_the_next_record_starts_on_its_own_line() {
    let d = Dir::new("torn");
    let rot = d.rotation(1 << 20, 1);
    let mut f = HistoryFile::new(rot.clone(), "n");
    f.append(vec![ev(1, Kind::Bind, 1, 100)]).unwrap();
    drop(f);
    // A crash in the middle of a write.
    let mut raw = std::fs::OpenOptions::new().append(true).open(&rot.path).unwrap();
    std::io::Write::write_all(&mut raw, br#"{"id":"n:2","node":"n","se"#).unwrap();
    let mut f = HistoryFile::new(rot.clone(), "n");
    f.append(vec![ev(3, Kind::Renew, 1, 200)]).unwrap();
    assert_eq!(seqs(&read_all(&rot).unwrap()), [1, 2]);
}

#[test]
fn the_spool_follows_the_file_through_rotations_from_its_cursor() {
    let d = Dir::new("spool");
    let rot = d.rotation(4096, 3);
    let mut f = HistoryFile::new(rot.clone(), "n");
    let mut spool = Spool::new(rot.clone());
    assert!(spool.next_batch(0, 10).unwrap().is_empty(), "no file yet: nothing");
    renewals(&mut f, 0..10);
    let first = spool.next_batch(0, 4).unwrap();
    assert_eq!(seqs(&first), [1, 2, 3, 4]);
    // The writer rotates twice while the sender is behind; it reads on where it was.
    renewals(&mut f, 10..40);
    let mut got = first;
    while let Some(after) = got.last().map(|r| r.seq) {
        let b = spool.next_batch(after, 7).unwrap();
        if b.is_empty() {
            break;
        }
        got.extend(b);
    }
    assert_eq!(seqs(&got), (1..=40).collect::<Vec<_>>());
    assert_eq!(spool.lost, 0);
    // A batch the database did not take is read again, from where it has.
    spool.rewind();
    assert_eq!(seqs(&spool.next_batch(35, 3).unwrap()), [36, 37, 38]);
    // A new sender (a restart) starts from the persisted cursor.
    write_cursor(&rot.cursor_path(), 37).unwrap();
    assert_eq!(read_cursor(&rot.cursor_path()), Some(37));
    let mut again = Spool::new(rot.clone());
    assert_eq!(seqs(&again.next_batch(37, 100).unwrap()), [38, 39, 40]);
}

#[test]
fn records_rotated_away_before_they_were_sent_are_counted_lost() {
    let d = Dir::new("lost");
    let rot = d.rotation(4096, 0);
    let mut f = HistoryFile::new(rot.clone(), "n");
    renewals(&mut f, 0..40);
    let mut spool = Spool::new(rot.clone());
    let b = spool.next_batch(0, 100).unwrap();
    assert_eq!(b.last().map(|r| r.seq), Some(40));
    assert_eq!(spool.lost, b[0].seq - 1, "everything before the one file kept");
    spool.rewind();
    spool.next_batch(0, 100).unwrap();
    assert_eq!(spool.lost, b[0].seq - 1, "counted once");
}

#[test]
fn a_history_file_that_cannot_be_written_is_an_error_each_time_and_writes_once_it_can() {
    let d = Dir::new("unwritable");
    let rot = Rotation { path: d.0.join("sub").join("history.jsonl"), max_size: 1 << 20, keep: 1 };
    let mut f = HistoryFile::new(rot.clone(), "n");
    assert!(f.append(vec![ev(1, Kind::Bind, 1, 100)]).is_err(), "no such directory");
    assert!(f.append(vec![ev(2, Kind::Bind, 1, 100)]).is_err());
    std::fs::create_dir_all(d.0.join("sub")).unwrap();
    f.append(vec![ev(3, Kind::Bind, 1, 100)]).unwrap();
    assert_eq!(read_all(&rot).unwrap().len(), 1);
}

#[test]
fn who_held_an_address_at_a_time_is_the_last_binding_before_it_still_running() {
    let rec = |seq, e| Record::new("n", seq, e);
    let h = vec![
        rec(1, ev(100, Kind::Offer, 1, 700)),
        rec(2, ev(101, Kind::Bind, 1, 701)),
        rec(3, ev(400, Kind::Renew, 1, 1000)),
        rec(4, ev(500, Kind::Release, 1, 500)),
        rec(5, ev(2000, Kind::Bind, 1, 2600)),
    ];
    let at = |t| held_at(&h, t).map(|r| r.seq);
    assert_eq!(at(100), None, "an offer is not a holding");
    assert_eq!(at(101), Some(2));
    assert_eq!(at(450), Some(3), "renewed");
    assert_eq!(at(501), None, "released");
    assert_eq!(at(2599), Some(5));
    assert_eq!(at(2600), None, "ran out");
}

#[test]
fn history_answers_by_address_mac_or_circuit_from_the_files() {
    let d = Dir::new("lookup");
    let rot = d.rotation(4096, 4);
    let mut f = HistoryFile::new(rot.clone(), "n");
    for i in 0..30 {
        let mut e = ev(100 + i, Kind::Renew, u8::try_from(i % 3).unwrap() + 1, 10_000);
        if i % 3 == 2 {
            e.mac = "02:00:00:00:00:99".into();
            e.circuit_id = None;
        }
        f.append(vec![e]).unwrap();
    }
    let src = Source::Files(rot.clone());
    let by_addr = lookup(&src, &Key::Addr(Ipv4Addr::new(10, 0, 0, 2)), None).unwrap();
    assert_eq!(by_addr.len(), 10);
    let by_mac = lookup(&src, &Key::Mac("02:00:00:00:00:99".into()), None).unwrap();
    assert!(by_mac.iter().all(|r| r.event.address == Ipv4Addr::new(10, 0, 0, 3)));
    assert_eq!(lookup(&src, &Key::Circuit("olt1/1/7".into()), None).unwrap().len(), 20);
    let held = lookup(&src, &Key::Addr(Ipv4Addr::new(10, 0, 0, 1)), Some(120)).unwrap();
    assert_eq!(held.iter().map(|r| r.event.time).collect::<Vec<_>>(), [118]);
}

#[test]
fn times_read_as_unix_seconds_or_utc() {
    assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
    assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
    assert_eq!(parse_time("1970-01-01 00:00"), Ok(0));
    assert_eq!(parse_time("2024-02-29T00:00:00Z"), Ok(1_709_164_800));
    assert!(parse_time("2024-13-01T00:00:00Z").is_err());
    assert!(parse_time("yesterday").is_err());
}

//! The store keeps what it committed: across a reopen, across `kill -9`, whatever the batch.
use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Instant,
};

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "xdhcp-store-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lease(n: u32, expires_at: u64) -> Lease {
    let address = Ipv4Addr::from(0x0a00_0000 + n);
    let [_, _, hi, lo] = n.to_be_bytes();
    Lease {
        chaddr: [2, 0, 0, 0, hi, lo].into(),
        client_id: n.is_multiple_of(2).then(|| [1, 2, 0, 0, 0, hi, lo].into()),
        hostname: Some(format!("host-{n}").into()),
        relay_info: n.is_multiple_of(4).then(|| {
            crate::relay::encode(&[(1, format!("olt1 eth 1/1/{n}").as_bytes()), (2, b"cpe")]).into()
        }),
        expires_at,
        cltt: expires_at - 3600,
        held_until: expires_at + 3600,
        pet_sent: expires_at + 10,
        pet_acked: expires_at + 5,
        pet_received: 7,
        rewind_state: n.is_multiple_of(3).then_some(LeaseState::Expired),
        rewind_expiry: NonZeroU64::new(99).filter(|_| n.is_multiple_of(3)),
        probation_until: None,
        partner_acked: !n.is_multiple_of(5),
        ..Lease::new(address, LeaseState::Active, n % 4, expires_at - 3600)
    }
}

#[test]
fn a_reopened_store_has_every_field_it_committed() {
    let dir = TempDir::new("reopen");
    let written: Vec<Lease> = (0..50).map(|n| lease(n, 1_700_000_000 + u64::from(n))).collect();
    {
        let mut s = LeaseStore::open(&dir.0).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        s.commit(&written.iter().cloned().map(LeaseChange::Put).collect::<Vec<_>>()).unwrap();
        let mut declined = lease(7, 1_700_000_100);
        declined.state = LeaseState::Abandoned;
        declined.probation_until = NonZeroU64::new(1_700_003_700);
        s.commit(&[LeaseChange::Put(declined), LeaseChange::Remove(written[9].address)]).unwrap();
        s.put_failover_state("edge-a", b"state: normal").unwrap();
        s.put_failover_state("edge-b", b"state: recover").unwrap();
    }
    let s = LeaseStore::open(&dir.0).unwrap();
    let got = s.load_all().unwrap();
    assert_eq!(got.len(), 49);
    for l in &got {
        let n = u32::from(l.address) - 0x0a00_0000;
        if n == 7 {
            assert_eq!(
                (l.state, l.probation_until),
                (LeaseState::Abandoned, NonZeroU64::new(1_700_003_700))
            );
        } else {
            assert_eq!(l, &written[n as usize]);
        }
    }
    assert!(got.iter().all(|l| l.address != written[9].address));
    assert_eq!(
        s.get_failover_state("edge-a", false).unwrap().as_deref(),
        Some(&b"state: normal"[..])
    );
    assert_eq!(
        s.get_failover_state("edge-b", false).unwrap().as_deref(),
        Some(&b"state: recover"[..])
    );
    assert_eq!(s.get_failover_state("edge-c", false).unwrap(), None);
}

#[test]
fn the_state_of_a_store_with_one_relationship_is_its_sole_relationships_after_an_upgrade() {
    let dir = TempDir::new("unnamed-state");
    let mut s = LeaseStore::open(&dir.0).unwrap();
    // What a version with one relationship wrote: the state under no name.
    s.put_meta("failover_state", b"state: normal").unwrap();
    assert_eq!(s.get_failover_state("pair", true).unwrap().as_deref(), Some(&b"state: normal"[..]));
    // With several relationships, nothing says whose it was: each recovers from its partner.
    assert_eq!(s.get_failover_state("pair", false).unwrap(), None);
    s.put_failover_state("pair", b"state: partner-down").unwrap();
    assert_eq!(
        s.get_failover_state("pair", true).unwrap().as_deref(),
        Some(&b"state: partner-down"[..])
    );
    // Written under its name, the state is no longer anyone's to pick up: a relationship
    // renamed later (a new partner) starts without one.
    assert_eq!(s.get_meta("failover_state").unwrap(), None);
    assert_eq!(s.get_failover_state("renamed", true).unwrap(), None);
}

#[test]
fn a_store_written_by_a_newer_build_is_refused_not_rewritten() {
    let dir = TempDir::new("newer");
    drop(LeaseStore::open(&dir.0).unwrap());
    let c = Connection::open(dir.0.join(DB_FILE)).unwrap();
    c.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(c);
    match LeaseStore::open(&dir.0) {
        Err(StoreError::SchemaTooNew { found: 99, .. }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

#[test]
fn a_failed_batch_applies_nothing() {
    let dir = TempDir::new("atomic");
    let mut s = LeaseStore::open(&dir.0).unwrap();
    s.commit(&[LeaseChange::Put(lease(1, 1_700_000_000))]).unwrap();
    // A trigger makes the second write of the next batch fail, after the first succeeded.
    s.conn
        .execute_batch(
            "CREATE TRIGGER no_two BEFORE INSERT ON leases WHEN NEW.address = 167772162
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    let batch =
        [LeaseChange::Put(lease(1, 1_800_000_000)), LeaseChange::Put(lease(2, 1_800_000_000))];
    assert!(s.commit(&batch).is_err());
    let got = s.load_all().unwrap();
    assert_eq!(got, vec![lease(1, 1_700_000_000)]);
}

/// Env var that turns [`kill9_child_writer`] from a no-op into the crash test's writer.
const CRASH_DIR_ENV: &str = "XDHCP_STORE_CRASH_DIR";
const BATCH: u32 = 10;

/// The writer half of [`a_commit_survives_kill_9`]: commits batch after batch and reports each
/// one on stdout only once `commit` has returned. Run alone it does nothing.
#[test]
fn kill9_child_writer() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else { return };
    let mut s = LeaseStore::open(Path::new(&dir)).unwrap();
    for b in 0..100_000u32 {
        let batch: Vec<LeaseChange> = (0..BATCH)
            .map(|k| LeaseChange::Put(lease(b * BATCH + k, 1_700_000_000 + u64::from(b))))
            .collect();
        s.commit(&batch).unwrap();
        println!("committed {b}");
    }
}

#[test]
fn a_commit_survives_kill_9() {
    let dir = TempDir::new("kill9");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["store::tests::kill9_child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR_ENV, &dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut last = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            last = Some(n.parse::<u32>().unwrap());
            if last >= Some(30) {
                // SIGKILL, mid-stream: the writer is committing the next batch by now.
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    let last = last.expect("the writer reported no commit");

    let s = LeaseStore::open(&dir.0).unwrap();
    let ok: String = s.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let got = s.load_all().unwrap();
    for b in 0..=last {
        for k in 0..BATCH {
            let n = b * BATCH + k;
            assert_eq!(
                got.get(n as usize),
                Some(&lease(n, 1_700_000_000 + u64::from(b))),
                "batch {b} lost"
            );
        }
    }
    // A batch in flight at the kill is all there or not at all.
    assert_eq!(got.len() % BATCH as usize, 0);
}

#[test]
#[expect(clippy::cast_precision_loss, reason = "a figure to read, microseconds far below 2^52")]
fn commit_latency_by_batch_size() {
    let dir = TempDir::new("latency");
    let mut s = LeaseStore::open(&dir.0).unwrap();
    let mut next = 0u32;
    for size in [1u32, 10, 100] {
        let mut us: Vec<u128> = (0..40)
            .map(|_| {
                let batch: Vec<LeaseChange> =
                    (0..size).map(|k| LeaseChange::Put(lease(next + k, 1_700_000_000))).collect();
                next += size;
                let t = Instant::now();
                s.commit(&batch).unwrap();
                t.elapsed().as_micros()
            })
            .collect();
        us.sort_unstable();
        eprintln!(
            "store commit, batch of {size:>3}: p50 {} us, p90 {} us, max {} us ({:.1} us per lease at p50)",
            us[us.len() / 2],
            us[us.len() * 9 / 10],
            us[us.len() - 1],
            us[us.len() / 2] as f64 / f64::from(size)
        );
    }
}

#[test]
fn a_lease_state_is_the_binding_status_of_the_same_number() {
    for n in 1..=7 {
        let s = LeaseState::from_u8(n).unwrap();
        let b = dhcp_failover::BindingStatus::from(s);
        assert_eq!((b as u8, LeaseState::from(b)), (n, s));
    }
}

#[test]
fn a_version_1_store_opens_with_what_its_pets_said_of_the_partner() {
    let dir = TempDir::new("v1");
    std::fs::create_dir_all(&dir.0).unwrap();
    {
        let c = Connection::open(dir.0.join(DB_FILE)).unwrap();
        c.execute_batch(SCHEMA_V1).unwrap();
        c.execute_batch("PRAGMA user_version = 1").unwrap();
        let row = "INSERT INTO leases (address, state, htype, chaddr, subnet, expires_at, cltt,
            held_until, pet_sent, pet_acked) VALUES (?1, 2, 1, x'020000000001', 0, 10, 5, 10, ?2, ?3)";
        c.execute(row, rusqlite::params![1u32, 20, 20]).unwrap();
        c.execute(row, rusqlite::params![2u32, 30, 20]).unwrap();
    }
    let s = LeaseStore::open(&dir.0).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let got: Vec<(u32, bool)> =
        s.load_all().unwrap().iter().map(|l| (u32::from(l.address), l.partner_acked)).collect();
    assert_eq!(got, vec![(1, true), (2, false)], "acknowledged only where the PET was");
}

#[test]
fn a_version_2_store_opens_with_no_line_on_record_and_records_lines_from_then_on() {
    let dir = TempDir::new("v2");
    std::fs::create_dir_all(&dir.0).unwrap();
    {
        let c = Connection::open(dir.0.join(DB_FILE)).unwrap();
        c.execute_batch(SCHEMA_V1).unwrap();
        c.execute_batch(SCHEMA_V2).unwrap();
        c.execute_batch("PRAGMA user_version = 2").unwrap();
        c.execute(
            "INSERT INTO leases (address, state, htype, chaddr, subnet, expires_at, cltt,
            held_until, partner_acked) VALUES (1, 2, 1, x'020000000001', 0, 10, 5, 10, 0)",
            [],
        )
        .unwrap();
    }
    let mut s = LeaseStore::open(&dir.0).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let mut l = s.load_all().unwrap().remove(0);
    assert_eq!((l.relay_info.clone(), l.partner_acked), (None, false), "v2's columns kept");
    l.relay_info = Some(crate::relay::encode(&[(2, b"cpe-9"), (1, b"port-9")]).into());
    s.commit(&[LeaseChange::Put(l.clone())]).unwrap();
    assert_eq!(s.load_all().unwrap(), vec![l]);
    // The derived columns, as an operator queries them.
    let (circuit, remote): (Vec<u8>, Vec<u8>) = s
        .conn
        .query_row("SELECT circuit_id, remote_id FROM leases WHERE address = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((&circuit[..], &remote[..]), (&b"port-9"[..], &b"cpe-9"[..]));
}

#[test]
fn a_bindings_class_is_kept_by_name_so_a_reordered_config_reads_it_right() {
    use crate::store::LeaseClass;
    let dir = TempDir::new("class");
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut stb = lease(1, 1_700_000_000);
    stb.class = LeaseClass::Class(1);
    let mut none = lease(2, 1_700_000_000);
    none.class = LeaseClass::None;
    let unknown = lease(3, 1_700_000_000);
    {
        let mut s = LeaseStore::open(&dir.0).unwrap();
        s.set_class_names(names(&["cpe", "stb"]));
        s.commit(&[stb, none, unknown].map(LeaseChange::Put)).unwrap();
    }
    let mut s = LeaseStore::open(&dir.0).unwrap();
    s.set_class_names(names(&["stb", "voip"]));
    let got: Vec<LeaseClass> = s.load_all().unwrap().iter().map(|l| l.class).collect();
    assert_eq!(got, [LeaseClass::Class(0), LeaseClass::None, LeaseClass::Unknown]);
    // A class the config dropped is decided again at the client's next request.
    s.set_class_names(names(&["voip"]));
    assert_eq!(s.load_all().unwrap()[0].class, LeaseClass::Unknown);
}

#[test]
fn a_second_owner_of_a_store_is_refused_and_told_who_holds_it() {
    let dir = std::env::temp_dir().join(format!("xdhcp-store-lock-{}", std::process::id()));
    let first = super::lock(&dir, std::time::Duration::ZERO).unwrap();
    let e = super::lock(&dir, std::time::Duration::from_millis(100)).unwrap_err().to_string();
    assert!(e.contains("is in use by pid") && e.contains("one owner at a time"), "{e}");
    drop(first);
    assert!(super::lock(&dir, std::time::Duration::ZERO).is_ok(), "free once the owner goes");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_record_fits_its_budget() {
    // A million of them live in memory (docs/operations.md, "Memory"): every field added here
    // costs a megabyte a byte. 168 with a client identifier of up to 22 bytes held inline.
    assert!(std::mem::size_of::<Lease>() <= 168, "{} bytes", std::mem::size_of::<Lease>());
}

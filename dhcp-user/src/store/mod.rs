//! The durable lease store: SQLite (bundled) in WAL mode, with `synchronous = FULL`.
//!
//! # Ownership
//! One task owns the [`LeaseStore`] and calls it synchronously; nothing else writes the file and
//! no lock is shared. The same task owns the server engine, so the engine's in-memory index and
//! the store never disagree about who decides.
//!
//! # Group commit
//! [`LeaseStore::commit`] applies a whole batch of [`LeaseChange`]s in one transaction: one
//! fsync whatever the batch size. The owner drains its input queue, runs every request through
//! the engine, commits all their changes at once, and only then sends the replies.
//!
//! # Durability
//! In WAL mode a commit appends to the `-wal` file. With `synchronous = FULL` SQLite fsyncs that
//! file before `COMMIT` returns, so a committed lease survives both a killed process and a power
//! loss. `NORMAL` would survive `kill -9` (the appended pages sit in the kernel's page cache,
//! which outlives the process) but may lose the last transactions on power loss, as it syncs
//! only at checkpoints. xdhcp sends an ACK — and lets the kernel renew up to a horizon — only
//! after the commit that covers it, so an ACK must never outlive a power cut: `FULL` it is. The
//! cost is one fsync per batch, which group commit spreads over every request in the batch.
use std::{
    net::Ipv4Addr,
    num::NonZeroU64,
    path::{Path, PathBuf},
};

use rusqlite::{Connection, OptionalExtension as _, Row, TransactionBehavior, params};

mod client_id;
mod lease;
pub use client_id::ClientId;
pub use lease::{Chaddr, Lease, LeaseChange, LeaseClass, LeaseState};

#[cfg(test)]
mod tests;

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "leases.db";

/// Version of the schema this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {dir}: {source}")]
    CreateDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot create the lease store {path}: {source}")]
    CreateFile { path: PathBuf, source: std::io::Error },
    #[error("cannot set the mode of {path}: {source}")]
    Mode { path: PathBuf, source: std::io::Error },
    #[error("lease store {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error(
        "lease store {path} has schema version {found}; this build knows versions up to {SCHEMA_VERSION}"
    )]
    SchemaTooNew { path: PathBuf, found: u32 },
    #[error(
        "lease store {path}: journal mode is {mode}, not wal (is the file on a filesystem without shared memory?)"
    )]
    NotWal { path: PathBuf, mode: String },
    #[error("lease store {path}: row for {address} is corrupt: {what}")]
    Corrupt { path: PathBuf, address: Ipv4Addr, what: &'static str },
    #[error(
        "the lease store in {dir} is in use by {holder}: one owner at a time (a running xdhcp \
         owns its store until it stops)"
    )]
    InUse { dir: PathBuf, holder: String },
    #[error("cannot lock the state directory {dir}: {source}")]
    Lock { dir: PathBuf, source: std::io::Error },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub struct LeaseStore {
    conn: Connection,
    path: PathBuf,
    /// The config's class names, by index: a binding's class is kept by name, so that a
    /// config that reorders its classes reads them back right.
    class_names: Vec<String>,
}

const SCHEMA_V1: &str = "
CREATE TABLE leases (
    address         INTEGER PRIMARY KEY,  -- IPv4 address as a host-order u32
    state           INTEGER NOT NULL,     -- LeaseState: failover binding-status numbering
    htype           INTEGER NOT NULL,
    chaddr          BLOB    NOT NULL,
    client_id       BLOB,                 -- option 61 value, type byte included
    hostname        TEXT,
    subnet          INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,     -- unix seconds, as told to the client
    cltt            INTEGER NOT NULL,     -- client last transaction time
    held_until      INTEGER NOT NULL,     -- committed horizon the fast path may renew up to
    pet_sent        INTEGER NOT NULL DEFAULT 0,
    pet_acked       INTEGER NOT NULL DEFAULT 0,
    pet_received    INTEGER NOT NULL DEFAULT 0,
    stos            INTEGER NOT NULL DEFAULT 0,
    rewind_state    INTEGER,
    rewind_expiry   INTEGER,
    probation_until INTEGER
);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
";

/// Version 2: whether the failover partner has acknowledged a record's latest local change.
/// A version 1 store knew only its PETs; what it says there is what a restart inferred.
const SCHEMA_V2: &str = "
ALTER TABLE leases ADD COLUMN partner_acked INTEGER NOT NULL DEFAULT 1;
UPDATE leases SET partner_acked = (pet_acked >= pet_sent);
";

/// Version 3: option 82 of the request a binding was last acknowledged with (`relay_info`,
/// what the server reads), and its circuit-id and remote-id as their own columns, derived from
/// it on every write, for operators to query (`sqlite3 leases.db "SELECT ... WHERE
/// circuit_id = CAST('...' AS BLOB)"`). Records from before have none on record.
const SCHEMA_V3: &str = "
ALTER TABLE leases ADD COLUMN relay_info BLOB;
ALTER TABLE leases ADD COLUMN circuit_id BLOB;
ALTER TABLE leases ADD COLUMN remote_id BLOB;
CREATE INDEX leases_circuit_id ON leases (circuit_id) WHERE circuit_id IS NOT NULL;
";

/// Version 4: the client class a binding was made with, by name (`''`: none; NULL: not
/// decided here, as for a record from the failover partner or from before).
const SCHEMA_V4: &str = "
ALTER TABLE leases ADD COLUMN class TEXT;
";

const UPSERT: &str =
    "INSERT OR REPLACE INTO leases (address, state, htype, chaddr, client_id, hostname,
    subnet, expires_at, cltt, held_until, pet_sent, pet_acked, pet_received, stos, rewind_state,
    rewind_expiry, probation_until, partner_acked, relay_info, circuit_id, remote_id, class)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
    ?19, ?20, ?21, ?22)";

/// Where a version with one relationship kept its state, without the relationship's name.
const FAILOVER_KEY: &str = "failover_state";

/// Where relationship `name` keeps its state.
fn failover_key(name: &str) -> String {
    format!("{FAILOVER_KEY}:{name}")
}

/// SQLite integers are signed; times past year 292 billion saturate.
fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The right to own the lease store in a directory, held for as long as this value lives: the
/// daemon takes it before it opens the store, and so does anything else that writes the store
/// (`xdhcp import dhcpd-leases`), so that two owners never each commit from their own view.
pub type StoreLock = crate::dirlock::DirLock;

/// Takes [`StoreLock`] for `dir` (created if needed), waiting up to `wait` for an owner on its
/// way out (a daemon being restarted).
pub fn lock(dir: &Path, wait: std::time::Duration) -> Result<StoreLock> {
    create_dir(dir)?;
    match crate::dirlock::lock(dir, wait) {
        Ok(crate::dirlock::Locked::Held(l)) => Ok(l),
        Ok(crate::dirlock::Locked::Busy(holder)) => {
            Err(StoreError::InUse { dir: dir.to_owned(), holder })
        }
        Err(source) => Err(StoreError::Lock { dir: dir.to_owned(), source }),
    }
}

/// Creates the state directory, owner-only, if it is missing (an existing one is left as it
/// is: the daemon sets its mode, [`crate::access`]).
fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::access::Access::default().dir_mode())
        .create(dir)
        .map_err(|source| StoreError::CreateDir { dir: dir.to_owned(), source })
}

impl LeaseStore {
    /// Opens (creating if needed) the store in `dir`, upgrading an older schema; its files
    /// the owner's alone.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, crate::access::Access::default())
    }

    /// [`LeaseStore::open`], the files given `access`: before opening, so that SQLite
    /// creates its `-wal` and `-shm` with the database's mode (it would create the database
    /// 0644), and after, so that they have it whatever an older version left.
    pub fn open_with(dir: &Path, access: crate::access::Access) -> Result<Self> {
        create_dir(dir)?;
        let path = dir.join(DB_FILE);
        // Subscriber data: the owner's alone unless its group may read it too.
        access
            .file(&path)
            .map_err(|source| StoreError::CreateFile { path: path.clone(), source })?;
        let journals = |path: &Path| -> Result<()> {
            for suffix in ["-wal", "-shm"] {
                let mut p = path.to_owned().into_os_string();
                p.push(suffix);
                let p = PathBuf::from(p);
                access
                    .file_if_present(&p)
                    .map_err(|source| StoreError::Mode { path: p, source })?;
            }
            Ok(())
        };
        journals(&path)?;
        let conn = Connection::open(&path)
            .map_err(|source| StoreError::Sqlite { path: path.clone(), source })?;
        let mut s = Self { conn, path, class_names: Vec::new() };
        s.setup()?;
        journals(&s.path)?;
        Ok(s)
    }

    fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|source| StoreError::Sqlite { path: self.path.clone(), source })
    }

    fn setup(&mut self) -> Result<()> {
        let mode: String =
            self.sql(self.conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotWal { path: self.path.clone(), mode });
        }
        // See the module doc: an ACK must survive power loss, not only a crash.
        self.sql(self.conn.execute_batch("PRAGMA synchronous = FULL;"))?;
        let version: u32 =
            self.sql(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { path: self.path.clone(), found: version });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        // Each step from the file's version up, all in one transaction.
        let r =
            self.conn.transaction_with_behavior(TransactionBehavior::Immediate).and_then(|tx| {
                if version < 1 {
                    tx.execute_batch(SCHEMA_V1)?;
                }
                if version < 2 {
                    tx.execute_batch(SCHEMA_V2)?;
                }
                if version < 3 {
                    tx.execute_batch(SCHEMA_V3)?;
                }
                tx.execute_batch(SCHEMA_V4)?;
                tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
                tx.commit()
            });
        self.sql(r)
    }

    /// The config's classes, by index, so that a binding's class is written and read by name.
    pub fn set_class_names(&mut self, names: Vec<String>) {
        self.class_names = names;
    }

    /// Path of the database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32> {
        self.sql(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)))
    }

    /// Every record, in address order.
    pub fn load_all(&self) -> Result<Vec<Lease>> {
        let n: i64 =
            self.sql(self.conn.query_row("SELECT count(*) FROM leases", [], |r| r.get(0)))?;
        let mut stmt = self.sql(self.conn.prepare(SELECT_ALL))?;
        let rows = self.sql(stmt.query_map([], raw_row))?;
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        for r in rows {
            let raw = self.sql(r)?;
            out.push(raw.into_lease(&self.class_names).map_err(|(address, what)| {
                StoreError::Corrupt { path: self.path.clone(), address, what }
            })?);
        }
        Ok(out)
    }

    /// Applies `changes` in one transaction, durable when this returns `Ok`. On error nothing
    /// of the batch is applied, and no reply that depends on it may be sent.
    pub fn commit(&mut self, changes: &[LeaseChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let r = (|| {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut put = tx.prepare_cached(UPSERT)?;
                let mut del = tx.prepare_cached("DELETE FROM leases WHERE address = ?1")?;
                for c in changes {
                    match c {
                        LeaseChange::Put(l) => {
                            put.execute(params![
                                u32::from(l.address),
                                l.state as u8,
                                l.htype,
                                l.chaddr.as_slice(),
                                l.client_id.as_deref(),
                                l.hostname.as_deref(),
                                l.subnet,
                                i(l.expires_at),
                                i(l.cltt),
                                i(l.held_until),
                                i(l.pet_sent),
                                i(l.pet_acked),
                                i(l.pet_received),
                                i(l.stos),
                                l.rewind_state.map(|s| s as u8),
                                l.rewind_expiry.map(|t| i(t.get())),
                                l.probation_until.map(|t| i(t.get())),
                                l.partner_acked,
                                l.relay_info.as_deref(),
                                l.circuit_id(),
                                l.remote_id(),
                                match l.class {
                                    LeaseClass::Unknown => None,
                                    LeaseClass::None => Some(""),
                                    LeaseClass::Class(k) =>
                                        self.class_names.get(usize::from(k)).map(String::as_str),
                                },
                            ])?;
                        }
                        LeaseChange::Remove(a) => {
                            del.execute([u32::from(*a)])?;
                        }
                    }
                }
            }
            tx.commit()
        })();
        self.sql(r)
    }

    /// Relationship `name`'s persistent state, opaque to the store. `sole`: it is the only
    /// relationship, so the unnamed state of a store written with one relationship is its.
    pub fn get_failover_state(&self, name: &str, sole: bool) -> Result<Option<Vec<u8>>> {
        match self.get_meta(&failover_key(name))? {
            Some(b) => Ok(Some(b)),
            None if sole => self.get_meta(FAILOVER_KEY),
            None => Ok(None),
        }
    }

    /// Replaces relationship `name`'s persistent state, durably. The unnamed state of a store
    /// written with one relationship goes in the same transaction: it was this relationship's
    /// (read as its own), and left behind it would be taken up by a relationship renamed later,
    /// a new partner resuming a state it never shared.
    pub fn put_failover_state(&mut self, name: &str, blob: &[u8]) -> Result<()> {
        let r = (|| {
            let tx = self.conn.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![failover_key(name), blob],
            )?;
            tx.execute("DELETE FROM meta WHERE key = ?1", [FAILOVER_KEY])?;
            tx.commit()
        })();
        self.sql(r)
    }

    /// A small named value kept beside the leases.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.sql(
            self.conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional(),
        )
    }

    pub fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let r = self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        );
        self.sql(r).map(drop)
    }
}

/// A row as SQLite returns it, before its values are checked.
struct RawRow {
    address: u32,
    state: u8,
    htype: u8,
    /// Its length as stored: one over 16 is corrupt, not cut short.
    chaddr_len: usize,
    chaddr: Chaddr,
    client_id: Option<ClientId>,
    hostname: Option<Box<str>>,
    relay_info: Option<Box<[u8]>>,
    subnet: u32,
    times: [i64; 7],
    rewind_state: Option<u8>,
    rewind_expiry: Option<i64>,
    probation_until: Option<i64>,
    partner_acked: bool,
    class: Option<String>,
}

/// Every column [`raw_row`] reads, by position: a lookup by name scans the column names,
/// for every column of every row (a third of loading a million).
const SELECT_ALL: &str = "SELECT address, state, htype, chaddr, client_id, hostname, relay_info, \
     subnet, expires_at, cltt, held_until, pet_sent, pet_acked, pet_received, stos, rewind_state, \
     rewind_expiry, probation_until, partner_acked, class FROM leases ORDER BY address";

/// A blob column read in place: the record takes the bytes in the form it keeps them, with no
/// `Vec` made and dropped for each column of a million rows.
fn blob<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r [u8]>> {
    Ok(r.get_ref(i)?.as_blob_or_null()?)
}

fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    let chaddr = blob(r, 3)?.unwrap_or_default();
    Ok(RawRow {
        address: r.get(0)?,
        state: r.get(1)?,
        htype: r.get(2)?,
        chaddr_len: chaddr.len(),
        chaddr: Chaddr::new(chaddr),
        client_id: blob(r, 4)?.map(ClientId::new),
        hostname: r.get_ref(5)?.as_str_or_null()?.map(Box::from),
        relay_info: blob(r, 6)?.map(Box::from),
        subnet: r.get(7)?,
        times: [r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?],
        rewind_state: r.get(15)?,
        rewind_expiry: r.get(16)?,
        probation_until: r.get(17)?,
        partner_acked: r.get(18)?,
        class: r.get(19)?,
    })
}

impl RawRow {
    fn into_lease(
        self,
        class_names: &[String],
    ) -> std::result::Result<Lease, (Ipv4Addr, &'static str)> {
        let address = Ipv4Addr::from(self.address);
        let state = LeaseState::from_u8(self.state).ok_or((address, "unknown state"))?;
        let rewind_state = match self.rewind_state {
            None => None,
            Some(v) => Some(LeaseState::from_u8(v).ok_or((address, "unknown rewind state"))?),
        };
        if self.chaddr_len > 16 {
            return Err((address, "chaddr longer than 16 bytes"));
        }
        let [expires_at, cltt, held_until, pet_sent, pet_acked, pet_received, stos] =
            self.times.map(u);
        Ok(Lease {
            address,
            state,
            htype: self.htype,
            chaddr: self.chaddr,
            client_id: self.client_id,
            hostname: self.hostname,
            relay_info: self.relay_info,
            subnet: self.subnet,
            expires_at,
            cltt,
            held_until,
            pet_sent,
            pet_acked,
            pet_received,
            stos,
            rewind_state,
            rewind_expiry: self.rewind_expiry.map(u).and_then(NonZeroU64::new),
            probation_until: self.probation_until.map(u).and_then(NonZeroU64::new),
            partner_acked: self.partner_acked,
            // A class the config no longer has is decided again at the next request.
            class: match self.class.as_deref() {
                None => LeaseClass::Unknown,
                Some("") => LeaseClass::None,
                Some(n) => class_names
                    .iter()
                    .position(|c| c == n)
                    .and_then(|k| u16::try_from(k).ok())
                    .map_or(LeaseClass::Unknown, LeaseClass::Class),
            },
        })
    }
}

//! The fleet's history in PostgreSQL: one table every node writes to, created if missing. A
//! thread of its own reads the local history files from a persisted cursor ([`Spool`]) and
//! inserts what follows in batches, one transaction each, each row keyed by its record's id
//! (`node:seq`) with `ON CONFLICT DO NOTHING`: a batch sent again after a crash between the
//! commit and the cursor's write is stored once. While the database is down or refuses, the
//! sender retries with backoff and the files keep everything (bounded by their rotation);
//! nothing of this is on the turn's path.
use std::{
    net::{IpAddr, Ipv4Addr},
    str::FromStr as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use postgres::{Client, NoTls};
use tracing::{info, warn};

use super::{
    Kind, LeaseEvent, Record, Via,
    file::{Rotation, Spool, read_cursor, write_cursor},
    query::Key,
    writer::{Stats, Throttle},
};
use crate::config::history::Postgres;

/// Rows a transaction inserts at most.
pub const BATCH: usize = 500;
/// How often the sender looks for new records when it has sent everything.
const IDLE: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The sender's counters, in [`Stats`].
#[derive(Debug, Default)]
pub struct PgStats {
    pub configured: AtomicBool,
    pub connected: AtomicBool,
    /// Rows inserted (or found there already).
    pub sent: AtomicU64,
    /// Connections and batches that failed.
    pub failed: AtomicU64,
    /// Records that rotated out of the files before they were sent.
    pub lost: AtomicU64,
    /// The last sequence number the database has.
    pub cursor: AtomicU64,
    pub error: Mutex<Option<String>>,
}

/// The table's definition; `{t}` is the configured name (a plain SQL name, validated).
fn schema(t: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (
            id text PRIMARY KEY,
            node text NOT NULL,
            seq bigint NOT NULL,
            time timestamptz NOT NULL,
            kind text NOT NULL,
            address inet NOT NULL,
            mac text NOT NULL,
            client_id text,
            circuit_id text,
            remote_id text,
            state text NOT NULL,
            lease_end timestamptz NOT NULL,
            path text NOT NULL
        );
        CREATE INDEX IF NOT EXISTS {t}_address_time ON {t} (address, time);
        CREATE INDEX IF NOT EXISTS {t}_mac_time ON {t} (mac, time);
        CREATE INDEX IF NOT EXISTS {t}_circuit_time ON {t} (circuit_id, time);"
    )
}

fn insert(t: &str) -> String {
    format!(
        "INSERT INTO {t} (id, node, seq, time, kind, address, mac, client_id, circuit_id,
            remote_id, state, lease_end, path)
         VALUES ($1, $2, $3, to_timestamp($4::float8), $5, $6, $7, $8, $9, $10, $11,
            to_timestamp($12::float8), $13)
         ON CONFLICT (id) DO NOTHING"
    )
}

/// Connects and makes sure the table is there.
pub fn connect(cfg: &Postgres) -> Result<Client, postgres::Error> {
    let mut c = postgres::Config::from_str(&cfg.url)?;
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(CONNECT_TIMEOUT);
    }
    c.application_name("xdhcp");
    let mut client = c.connect(NoTls)?;
    client.batch_execute(&schema(&cfg.table))?;
    Ok(client)
}

#[expect(clippy::cast_precision_loss, reason = "unix seconds, far below 2^52")]
fn send(client: &mut Client, table: &str, batch: &[Record]) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    let stmt = tx.prepare(&insert(table))?;
    for r in batch {
        let e = &r.event;
        let seq = i64::try_from(r.seq).unwrap_or(i64::MAX);
        tx.execute(
            &stmt,
            &[
                &r.id,
                &r.node,
                &seq,
                &(e.time as f64),
                &e.kind.as_str(),
                &IpAddr::V4(e.address),
                &e.mac,
                &e.client_id,
                &e.circuit_id,
                &e.remote_id,
                &e.state,
                &(e.lease_end as f64),
                &e.path.as_str(),
            ],
        )?;
    }
    tx.commit()
}

/// Starts the sender thread.
pub fn spawn(
    cfg: Postgres,
    rot: Rotation,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("history-pg".into())
        .spawn(move || run(&cfg, &rot, &stats, &stop))
}

fn run(cfg: &Postgres, rot: &Rotation, stats: &Stats, stop: &AtomicBool) {
    let pg = &stats.pg;
    let cursor_path = rot.cursor_path();
    let mut cursor = read_cursor(&cursor_path).unwrap_or(0);
    pg.cursor.store(cursor, Ordering::Relaxed);
    let mut spool = Spool::new(rot.clone());
    let mut said = Throttle::new();
    let mut backoff = BACKOFF_MIN;
    let fail = |what: &str, e: &dyn std::fmt::Display, said: &mut Throttle| {
        pg.failed.fetch_add(1, Ordering::Relaxed);
        pg.connected.store(false, Ordering::Relaxed);
        let msg = format!("{what}: {e}");
        if said.due() {
            warn!(
                "lease history: PostgreSQL {msg}; events wait in the local history files and \
                 are sent when it answers (DHCP service goes on)"
            );
        }
        if let Ok(mut m) = pg.error.lock() {
            *m = Some(msg);
        }
    };
    'connect: while !stop.load(Ordering::Relaxed) {
        let mut client = match connect(cfg) {
            Ok(c) => c,
            Err(e) => {
                fail("connect or create the table", &pg_error(&e), &mut said);
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        pg.connected.store(true, Ordering::Relaxed);
        if let Ok(mut m) = pg.error.lock() {
            *m = None;
        }
        info!(table = %cfg.table, "lease history: connected to PostgreSQL");
        while !stop.load(Ordering::Relaxed) {
            let batch = match spool.next_batch(cursor, BATCH) {
                Ok(b) => b,
                Err(e) => {
                    fail("reading the local history files", &e, &mut said);
                    spool.rewind();
                    sleep_unless(stop, backoff);
                    continue;
                }
            };
            pg.lost.store(spool.lost, Ordering::Relaxed);
            let Some(last) = batch.last().map(|r| r.seq) else {
                sleep_unless(stop, IDLE);
                continue;
            };
            if let Err(e) = send(&mut client, &cfg.table, &batch) {
                fail("insert", &pg_error(&e), &mut said);
                spool.rewind();
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue 'connect;
            }
            backoff = BACKOFF_MIN;
            cursor = last;
            pg.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
            pg.cursor.store(cursor, Ordering::Relaxed);
            // Lost with a crash, the cursor only makes the next start send a batch again,
            // which the table takes once.
            if let Err(e) = write_cursor(&cursor_path, cursor) {
                fail("(writing the local cursor)", &e, &mut said);
            }
        }
    }
}

/// The server's own message when it sent one (a refused schema, a missing database), which
/// `postgres::Error`'s display leaves out.
fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => e.to_string(),
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
        std::thread::sleep(IDLE.min(d));
    }
}

/// `xdhcp history --postgres`: the events of `key` (up to `at`, when given), in order.
pub fn query(url: &str, table: &str, key: &Key, at: Option<u64>) -> anyhow::Result<Vec<Record>> {
    use anyhow::Context as _;
    let cfg = Postgres { url: url.to_owned(), table: table.to_owned() };
    let mut c = postgres::Config::from_str(&cfg.url)
        .context("the PostgreSQL connection string")?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect(NoTls)
        .map_err(|e| anyhow::anyhow!("connect to PostgreSQL: {}", pg_error(&e)))?;
    let (cond, arg): (&str, Box<dyn postgres::types::ToSql + Sync>) = match key {
        Key::Addr(a) => ("address = $1", Box::new(IpAddr::V4(*a))),
        Key::Mac(m) => ("mac = lower($1)", Box::new(m.clone())),
        Key::Circuit(c) => ("circuit_id = $1", Box::new(c.clone())),
    };
    #[expect(clippy::cast_precision_loss, reason = "unix seconds, far below 2^52")]
    let until = at.map_or(f64::INFINITY, |t| t as f64);
    let sql = format!(
        "SELECT id, node, seq, extract(epoch from time)::bigint, kind, host(address), mac,
            client_id, circuit_id, remote_id, state, extract(epoch from lease_end)::bigint, path
         FROM {table} WHERE {cond} AND time <= to_timestamp($2::float8)
         ORDER BY time, node, seq"
    );
    let rows = c
        .query(&sql, &[arg.as_ref(), &until])
        .map_err(|e| anyhow::anyhow!("query {table}: {}", pg_error(&e)))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let u = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        let kind: String = row.get(4);
        let path: String = row.get(12);
        let addr: String = row.get(5);
        out.push(Record {
            id: row.get(0),
            node: row.get(1),
            seq: u(2),
            event: LeaseEvent {
                time: u(3),
                kind: serde_json::from_value(kind.into()).unwrap_or(Kind::Offer),
                address: addr.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
                mac: row.get(6),
                client_id: row.get(7),
                circuit_id: row.get(8),
                remote_id: row.get(9),
                state: row.get(10),
                lease_end: u(11),
                path: serde_json::from_value(path.into()).unwrap_or(Via::Slow),
            },
        });
    }
    Ok(out)
}

//! The daemon's history: the turn hands each turn's events to a bounded channel and goes on; a
//! thread of its own appends them to the file, and another sends the file on to PostgreSQL
//! ([`super::pg`]). Neither a slow disk nor the database can hold up a reply: a full channel
//! drops the events (counted, and said at most every ten seconds), a file that cannot be
//! written is retried on the next events (counted, and said), and the database only ever reads
//! what is already on disk.
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, SyncSender, TrySendError},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tracing::{error, warn};

use super::{RawEvent, file::HistoryFile};
use crate::config::history::History as Cfg;

/// Turns' worth of events the channel holds: minutes of a busy server's turns; the writer
/// only appends to a file, so it is never far behind.
pub const CHANNEL_TURNS: usize = 16_384;
/// How often a lasting problem is said again.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// What `xdhcp stats` and the metrics show of the history.
#[derive(Debug, Default)]
pub struct Stats {
    pub written: AtomicU64,
    /// Events the file could not take (the error is logged and in `file_error`).
    pub write_failed: AtomicU64,
    /// Events dropped because the writer was behind by [`CHANNEL_TURNS`] turns.
    pub dropped: AtomicU64,
    /// The sequence number of the last record written.
    pub last_seq: AtomicU64,
    pub file_error: Mutex<Option<String>>,
    pub pg: super::pg::PgStats,
}

impl Stats {
    #[must_use]
    pub fn to_json(&self) -> Value {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let err = |m: &Mutex<Option<String>>| m.lock().ok().and_then(|e| e.clone());
        let mut v = json!({
            "written": n(&self.written),
            "write_failed": n(&self.write_failed),
            "dropped": n(&self.dropped),
            "last_seq": n(&self.last_seq),
            "file_error": err(&self.file_error),
        });
        if self.pg.configured.load(Ordering::Relaxed) {
            let cursor = n(&self.pg.cursor);
            v["postgres"] = json!({
                "connected": self.pg.connected.load(Ordering::Relaxed),
                "queued": n(&self.last_seq).saturating_sub(cursor),
                "sent": n(&self.pg.sent),
                "failed": n(&self.pg.failed),
                "lost": n(&self.pg.lost),
                "cursor": cursor,
                "error": err(&self.pg.error),
            });
        }
        v
    }
}

/// Says `what` at most every [`REPORT_EVERY`].
#[derive(Debug)]
pub struct Throttle(Option<Instant>);

impl Throttle {
    #[must_use]
    pub fn new() -> Self {
        Self(None)
    }

    pub fn due(&mut self) -> bool {
        let due = self.0.is_none_or(|t| t.elapsed() >= REPORT_EVERY);
        if due {
            self.0 = Some(Instant::now());
        }
        due
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

/// The daemon's handle: where the turn's events go.
pub struct Writer {
    tx: Option<SyncSender<Vec<RawEvent>>>,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    dropping: Throttle,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the file's writer, and the PostgreSQL sender when one is configured.
    pub fn start(cfg: &Cfg) -> std::io::Result<Self> {
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel::<Vec<RawEvent>>(CHANNEL_TURNS);
        let mut file = HistoryFile::new(cfg.rotation.clone(), &cfg.node);
        let st = stats.clone();
        let path = cfg.rotation.path.display().to_string();
        let mut threads =
            vec![std::thread::Builder::new().name("history".into()).spawn(move || {
                let mut said = Throttle::new();
                match file.open() {
                    Ok(()) => st.last_seq.store(file.last_seq(), Ordering::Relaxed),
                    Err(e) => {
                        said.due();
                        error!(
                            "the lease history cannot be written (DHCP service goes on; tried \
                             again with each turn's events): {path}: {e}"
                        );
                        if let Ok(mut m) = st.file_error.lock() {
                            *m = Some(format!("{path}: {e}"));
                        }
                    }
                }
                while let Ok(events) = rx.recv() {
                    let n = events.len() as u64;
                    // Described here, off the turn's thread.
                    let events = events.iter().map(RawEvent::describe).collect();
                    match file.append(events) {
                        Ok(()) => {
                            st.written.fetch_add(n, Ordering::Relaxed);
                            st.last_seq.store(file.last_seq(), Ordering::Relaxed);
                            if let Ok(mut e) = st.file_error.lock() {
                                *e = None;
                            }
                        }
                        Err(e) => {
                            st.write_failed.fetch_add(n, Ordering::Relaxed);
                            let msg = format!("{path}: {e}");
                            if said.due() {
                                error!(
                                    "the lease history cannot be written, {n} events lost \
                                     (counted in history write_failed; DHCP service goes on): \
                                     {msg}"
                                );
                            }
                            if let Ok(mut m) = st.file_error.lock() {
                                *m = Some(msg);
                            }
                        }
                    }
                }
            })?];
        if let Some(pg) = &cfg.postgres {
            stats.pg.configured.store(true, Ordering::Relaxed);
            threads.push(super::pg::spawn(
                pg.clone(),
                cfg.rotation.clone(),
                stats.clone(),
                stop.clone(),
            )?);
        }
        Ok(Self { tx: Some(tx), stats, stop, dropping: Throttle::new(), threads })
    }

    /// Hands a turn's events to the writer without waiting.
    pub fn record(&mut self, events: Vec<RawEvent>) {
        let Some(tx) = &self.tx else { return };
        if events.is_empty() {
            return;
        }
        let n = events.len() as u64;
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(events) {
            let total = self.stats.dropped.fetch_add(n, Ordering::Relaxed) + n;
            if self.dropping.due() {
                warn!(
                    dropped = total,
                    "lease history events dropped: the history writer is {CHANNEL_TURNS} turns \
                     behind (counted in history dropped)"
                );
            }
        }
    }
}

impl Drop for Writer {
    /// What is queued is written before the process goes on; the sender is told to stop.
    fn drop(&mut self) {
        self.tx = None;
        self.stop.store(true, Ordering::Relaxed);
        // The writer only: the sender may be waiting on a database that does not answer, and
        // whatever it has not sent is in the files for the next start.
        if let Some(t) = self.threads.drain(..).next() {
            let _ = t.join();
        }
    }
}

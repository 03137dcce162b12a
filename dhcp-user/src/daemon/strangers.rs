//! Connections the failover link refuses: from an address that is not the partner's, or that
//! failed the TLS handshake (another CA, another name, a partner speaking plain TCP). Each is
//! counted for `xdhcp failover status` and `metrics`; the log says the first at once and then
//! at most one line per [`REPORT_EVERY`] with the count since, so that a scan or a partner
//! misconfigured into a retry loop cannot flood it.
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::core::control::LinkMeasure;

/// Least time between two log lines about refused connections.
pub const REPORT_EVERY: Duration = Duration::from_mins(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// From an address other than `peer_address`.
    Stranger,
    /// The TLS handshake failed, either way.
    Handshake,
}

/// One relationship's counts, shared with the daemon, which reads them for `status` and
/// `metrics`. Strangers are counted by the listener, so relationships sharing one (a hub's
/// port 647) share that count.
#[derive(Debug, Default)]
pub struct LinkCounters {
    tls: bool,
    strangers: Arc<AtomicU64>,
    handshakes: AtomicU64,
}

impl LinkCounters {
    #[must_use]
    pub fn new(tls: bool) -> Arc<Self> {
        Arc::new(Self { tls, ..Self::default() })
    }

    /// Counts of another relationship on the same listener as `other`.
    #[must_use]
    pub fn sharing_listener(tls: bool, other: &LinkCounters) -> Arc<Self> {
        Arc::new(Self { tls, strangers: other.strangers.clone(), ..Self::default() })
    }

    #[must_use]
    pub fn read(&self) -> LinkMeasure {
        LinkMeasure {
            tls: self.tls,
            refused_strangers: self.strangers.load(Ordering::Relaxed),
            refused_handshakes: self.handshakes.load(Ordering::Relaxed),
        }
    }
}

/// The refusals, and what of them the log has been told.
#[derive(Debug)]
pub struct Refusals {
    counters: Arc<LinkCounters>,
    /// When the last line was said; none yet.
    said_at: Option<Instant>,
    /// Refusals since that line, and the latest of them.
    unsaid: u64,
    latest: String,
}

impl Refusals {
    #[must_use]
    pub fn new(counters: Arc<LinkCounters>) -> Self {
        Self { counters, said_at: None, unsaid: 0, latest: String::new() }
    }

    /// One more refusal; the line to log now, if the rate allows one.
    pub fn handle_refused(
        &mut self,
        now: Instant,
        kind: Refusal,
        from: SocketAddr,
        why: &str,
    ) -> Option<String> {
        let c = match kind {
            Refusal::Stranger => &self.counters.strangers,
            Refusal::Handshake => &self.counters.handshakes,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.unsaid += 1;
        self.latest = format!("{from}: {why}");
        self.poll_report(now)
    }

    /// The line due now: refusals unsaid, the last line at least [`REPORT_EVERY`] ago.
    pub fn poll_report(&mut self, now: Instant) -> Option<String> {
        if self.unsaid == 0 || self.said_at.is_some_and(|t| now.duration_since(t) < REPORT_EVERY) {
            return None;
        }
        let line = match self.said_at {
            None => format!("refused a connection from {}", self.latest),
            Some(t) => format!(
                "refused {} connections in the last {} s, the latest from {}",
                self.unsaid,
                now.duration_since(t).as_secs(),
                self.latest
            ),
        };
        self.said_at = Some(now);
        self.unsaid = 0;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_is_counted_each_and_said_once_a_minute() {
        let counters = LinkCounters::new(true);
        let mut r = Refusals::new(counters.clone());
        let t0 = Instant::now();
        let from: SocketAddr = "10.9.0.7:40000".parse().unwrap();
        let first = r.handle_refused(t0, Refusal::Stranger, from, "not the peer address");
        assert_eq!(
            first.as_deref(),
            Some("refused a connection from 10.9.0.7:40000: not the peer address")
        );
        let mut said = 0;
        for i in 1..=1000u64 {
            let at = t0 + Duration::from_millis(i * 50);
            said +=
                usize::from(r.handle_refused(at, Refusal::Handshake, from, "bad cert").is_some());
        }
        // 50 s of refusals: nothing more until a minute has passed since the first line.
        assert_eq!(said, 0);
        assert_eq!(r.poll_report(t0 + Duration::from_secs(59)), None);
        let summary = r.poll_report(t0 + Duration::from_mins(1)).unwrap();
        assert!(summary.starts_with("refused 1000 connections in the last 60 s"), "{summary}");
        assert_eq!(r.poll_report(t0 + Duration::from_secs(200)), None, "nothing new to say");
        let m = counters.read();
        assert_eq!((m.tls, m.refused_strangers, m.refused_handshakes), (true, 1, 1000));
        // A second relationship on the listener reads the same strangers, its own handshakes.
        let other = LinkCounters::sharing_listener(false, &counters).read();
        assert_eq!((other.tls, other.refused_strangers, other.refused_handshakes), (false, 1, 0));
    }
}

//! Addresses in order of a time (when a lease ends, when an address may be reused), as one
//! `u64` each: the time's 32 bits over the address's 32. A `BTreeSet<(u64, Ipv4Addr)>` spent
//! 16 bytes a key, and with a million active leases the expiry timers were about 25 bytes of
//! each lease's memory; this is half. Times are unix seconds, which the failover protocol
//! carries in 32 bits as well; one past 2106 saturates, which keeps the order.
use std::{collections::BTreeSet, net::Ipv4Addr};

#[derive(Debug, Default)]
pub(super) struct Timeline(BTreeSet<u64>);

fn key(t: u64, a: Ipv4Addr) -> u64 {
    (u64::from(u32::try_from(t).unwrap_or(u32::MAX)) << 32) | u64::from(u32::from(a))
}

fn split(k: u64) -> (u64, Ipv4Addr) {
    (k >> 32, Ipv4Addr::from(u32::try_from(k & u64::from(u32::MAX)).unwrap_or_default()))
}

/// Sorted once and built in one pass, not inserted one by one (a restart's million timers).
impl FromIterator<(u64, Ipv4Addr)> for Timeline {
    fn from_iter<I: IntoIterator<Item = (u64, Ipv4Addr)>>(it: I) -> Self {
        Self(it.into_iter().map(|(t, a)| key(t, a)).collect())
    }
}

impl Timeline {
    pub fn insert(&mut self, t: u64, a: Ipv4Addr) {
        self.0.insert(key(t, a));
    }

    pub fn remove(&mut self, t: u64, a: Ipv4Addr) {
        self.0.remove(&key(t, a));
    }

    /// The earliest entry.
    pub fn first(&self) -> Option<(u64, Ipv4Addr)> {
        self.0.first().copied().map(split)
    }

    pub fn pop_first(&mut self) -> Option<(u64, Ipv4Addr)> {
        self.0.pop_first().map(split)
    }

    /// Addresses whose time is `now` or earlier, earliest first.
    pub fn due(&self, now: u64) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.0.range(..=key(now, Ipv4Addr::BROADCAST)).map(|&k| split(k).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_by_time_then_address_and_go_when_removed() {
        let a = |d| Ipv4Addr::new(10, 0, 0, d);
        let mut t = Timeline::default();
        t.insert(300, a(1));
        t.insert(100, a(9));
        t.insert(100, a(2));
        t.insert(u64::MAX, a(3));
        assert_eq!(t.due(100).collect::<Vec<_>>(), [a(2), a(9)]);
        assert_eq!(t.first(), Some((100, a(2))));
        t.remove(100, a(2));
        assert_eq!(t.pop_first(), Some((100, a(9))));
        assert_eq!(t.pop_first(), Some((300, a(1))));
        // Past 2106: still last, and removable by the time it was put with.
        assert_eq!(t.first(), Some((u64::from(u32::MAX), a(3))));
        t.remove(u64::MAX, a(3));
        assert_eq!(t.first(), None);
    }
}

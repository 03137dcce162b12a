//! The engine's deadlines, one slot per purpose (the quinn-proto timer-table pattern).

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// End of the STARTUP period.
    Startup,
    /// tReceive: the partner has been silent for our max-response-delay.
    Receive,
    /// tSend: time to send CONTACT so the partner's tReceive does not fire.
    Send,
    /// The CONNECT / CONNECTACK exchange is taking too long.
    Handshake,
    /// Ask the driver for another TCP connection attempt.
    Reconnect,
    /// End of RECOVER-WAIT.
    RecoverWait,
    /// Safe period in COMMUNICATIONS-INTERRUPTED before going PARTNER-DOWN on our own.
    AutoPartnerDown,
    /// Our UPDREQ / UPDREQALL has had neither a binding nor its UPDDONE for this long.
    UpdateRequest,
}

impl Timer {
    pub(crate) const ALL: [Self; 8] = [
        Self::Startup,
        Self::Receive,
        Self::Send,
        Self::Handshake,
        Self::Reconnect,
        Self::RecoverWait,
        Self::AutoPartnerDown,
        Self::UpdateRequest,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable {
    at: [Option<u64>; Timer::ALL.len()],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: u64) {
        self.at[timer.slot()] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer.slot()] = None;
    }

    #[cfg(test)]
    pub(crate) fn get(&self, timer: Timer) -> Option<u64> {
        self.at[timer.slot()]
    }

    pub(crate) fn next(&self) -> Option<u64> {
        self.at.iter().flatten().min().copied()
    }

    /// Clears and reports the timer if it is due; a spurious wake-up finds nothing due.
    pub(crate) fn take_expired(&mut self, timer: Timer, now: u64) -> bool {
        match self.at[timer.slot()] {
            Some(at) if at <= now => {
                self.at[timer.slot()] = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_deadline_wins_and_fires_once() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Send, 30);
        t.set(Timer::Receive, 20);
        assert_eq!(t.next(), Some(20));
        assert!(!t.take_expired(Timer::Receive, 19));
        assert!(t.take_expired(Timer::Receive, 20));
        assert!(!t.take_expired(Timer::Receive, 21));
        assert_eq!(t.next(), Some(30));
        t.stop(Timer::Send);
        assert_eq!(t.get(Timer::Send), None);
    }
}

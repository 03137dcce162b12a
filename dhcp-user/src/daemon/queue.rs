//! The daemon's intake under overload. DHCP datagrams wait in two bounded queues by what they
//! are — REQUESTs (renewals, rebinds, a client taking its offer), RELEASEs, DECLINEs and
//! INFORMs in one, DISCOVERs (and whatever cannot be read as DHCP) in the other — and a full
//! queue drops what arrives, counted, rather than make the socket reader wait. The turn takes
//! the control socket's and the failover link's inputs first (their own channel, never
//! crowded out), then requests, then DISCOVERs: a flood of new clients delays new clients.
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::core::Input;

use super::ctl::ReplyTo;

/// Queue depth of each class: a few turns' worth (a turn takes up to `BATCH`, 512).
pub const DEPTH: usize = 4096;

/// Which queue a datagram joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Every message of a client that holds, or is taking, an address.
    Request = 0,
    /// New clients, and what does not read as DHCP.
    Discover = 1,
}

/// The message type of a UDP payload (option 53), read without decoding the rest; `None`
/// for anything that is not plainly DHCP.
#[must_use]
pub fn message_type(payload: &[u8]) -> Option<u8> {
    if payload.get(236..240)? != [99, 130, 83, 99] {
        return None;
    }
    let mut at = 240;
    loop {
        match *payload.get(at)? {
            0 => at += 1,
            255 => return None,
            53 => return (*payload.get(at + 1)? == 1).then_some(*payload.get(at + 2)?),
            _ => at += 2 + usize::from(*payload.get(at + 1)?),
        }
    }
}

#[must_use]
pub fn classify(payload: &[u8]) -> Class {
    match message_type(payload) {
        // REQUEST, DECLINE, RELEASE, INFORM.
        Some(3 | 4 | 7 | 8) => Class::Request,
        _ => Class::Discover,
    }
}

/// The two queues' senders, shared by the socket readers.
pub struct Intake {
    senders: [mpsc::Sender<Input<ReplyTo>>; 2],
    /// Datagrams dropped because their queue was full, by [`Class`].
    pub dropped: [AtomicU64; 2],
}

pub struct Outlets {
    pub request: mpsc::Receiver<Input<ReplyTo>>,
    pub discover: mpsc::Receiver<Input<ReplyTo>>,
}

#[must_use]
pub fn intake() -> (Intake, Outlets) {
    let (rq, rq_rx) = mpsc::channel(DEPTH);
    let (dq, dq_rx) = mpsc::channel(DEPTH);
    (
        Intake { senders: [rq, dq], dropped: [AtomicU64::new(0), AtomicU64::new(0)] },
        Outlets { request: rq_rx, discover: dq_rx },
    )
}

impl Intake {
    /// Queues `input` in `class`'s queue; `false` once the daemon is gone.
    pub fn offer(&self, class: Class, input: Input<ReplyTo>) -> bool {
        match self.senders[class as usize].try_send(input) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped[class as usize].fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    #[must_use]
    pub fn dropped(&self) -> [u64; 2] {
        [self.dropped[0].load(Ordering::Relaxed), self.dropped[1].load(Ordering::Relaxed)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dhcp(options: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 236];
        p.extend([99, 130, 83, 99]);
        p.extend(options);
        p
    }

    #[test]
    fn requests_go_ahead_of_discovers_and_garbage_goes_with_discovers() {
        assert_eq!(classify(&dhcp(&[53, 1, 3, 255])), Class::Request);
        assert_eq!(classify(&dhcp(&[0, 0, 61, 2, 1, 2, 53, 1, 7, 255])), Class::Request);
        assert_eq!(classify(&dhcp(&[53, 1, 1, 255])), Class::Discover);
        assert_eq!(classify(&dhcp(&[53, 2, 3, 0, 255])), Class::Discover, "a lying length");
        assert_eq!(classify(&dhcp(&[61, 200, 1])), Class::Discover, "truncated");
        assert_eq!(classify(&[1, 2, 3]), Class::Discover);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (intake, mut out) = intake();
        let input = || Input::Renewed(bytemuck::Zeroable::zeroed());
        for _ in 0..DEPTH + 10 {
            assert!(intake.offer(Class::Discover, input()));
        }
        assert_eq!(intake.dropped(), [0, 10]);
        assert!(intake.offer(Class::Request, input()), "the other queue has room");
        assert!(out.request.try_recv().is_ok());
        drop(out);
        assert!(!intake.offer(Class::Request, input()), "closed once the daemon is gone");
    }
}

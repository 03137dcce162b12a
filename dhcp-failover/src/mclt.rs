//! Maximum Client Lead Time arithmetic (draft-12 §5.2.1, §7.1.5, §9.4.2, §9.9.2).
//!
//! The one invariant the whole protocol rests on: a client is never promised a lease ending more
//! than MCLT beyond what the partner has acknowledged (or itself told us) it may assume. Every
//! function here is pure and takes `now` as unix seconds; none can overflow.

use crate::options::ServerState;

/// The four times draft-12 §7.1.5 says each lease must keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseTimes {
    /// End of the lease as told to the client.
    pub lease_expiration: u64,
    /// Latest PET we sent the partner.
    pub sent_pet: u64,
    /// Latest PET the partner acknowledged.
    pub acked_pet: u64,
    /// Latest PET the partner sent us and we acknowledged.
    pub received_pet: u64,
}

impl LeaseTimes {
    /// The time beyond which, plus MCLT, we may not promise the client anything: what the
    /// partner acknowledged or told us, in every state.
    ///
    /// §9.9.2 (and ISC) also count the lease's end while the servers cannot talk. That end is
    /// the one this server keeps moving: each renewal in COMMUNICATIONS-INTERRUPTED could then
    /// reach MCLT past the previous one, and a partner that later goes PARTNER-DOWN, which waits
    /// only MCLT past what *it* knows, would hand out an address a client still holds (the
    /// failover simulation found exactly that). What the partner knows of the lease's end is
    /// already below the PETs, so leaving it out costs a client nothing the partner could vouch
    /// for; leases shrink to MCLT once the acknowledged PET has passed, as §9.9.2 predicts.
    #[must_use]
    pub fn grant_horizon(&self, _state: ServerState) -> u64 {
        self.acked_pet.max(self.received_pet)
    }

    /// Earliest time a server in PARTNER-DOWN may give this address to another client: MCLT
    /// beyond everything either side may have promised, and never sooner than MCLT after the
    /// partner went down (§5.2.2, §9.4.2).
    #[must_use]
    pub fn partner_down_reuse_at(&self, partner_down_since: u64, mclt: u32) -> u64 {
        self.lease_expiration
            .max(self.sent_pet)
            .max(self.acked_pet)
            .max(self.received_pet)
            .max(partner_down_since)
            .saturating_add(u64::from(mclt))
    }
}

/// Longest lease (seconds) we may give a client now: the desired lease, capped at MCLT beyond
/// `horizon` (usually [`LeaseTimes::grant_horizon`]).
#[must_use]
pub fn max_client_lease(now: u64, horizon: u64, mclt: u32, desired: u32) -> u32 {
    let allowed = horizon.saturating_sub(now).saturating_add(u64::from(mclt));
    u32::try_from(allowed.min(u64::from(desired))).unwrap_or(desired)
}

/// Absolute end of the longest lease we may grant given only the acknowledged PET: what the fast
/// path uses to decide how far it may renew without asking the slow path.
#[must_use]
pub fn max_lease_end(now: u64, pet_acked: u64, mclt: u32, desired: u32) -> u64 {
    now.saturating_add(u64::from(max_client_lease(now, pet_acked, mclt, desired)))
}

/// The PET to send after granting `actual` seconds when `desired` were wanted: far enough ahead
/// that the client's next renewal (at about half the lease) can get the full desired lease.
/// ISC uses this in every state.
#[must_use]
pub fn potential_expiration(now: u64, desired: u32, actual: u32) -> u64 {
    now.saturating_add(u64::from(desired)).saturating_add(u64::from(actual / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u32 = 3600;
    const DAY: u32 = 24 * HOUR;

    #[test]
    fn a_new_lease_gets_only_the_mclt() {
        assert_eq!(max_client_lease(1_000, 0, HOUR, 3 * DAY), HOUR);
    }

    #[test]
    fn the_draft_worked_example_renews_for_the_full_desired_time() {
        // §5.2.1: MCLT 1h, desired 3 days, first lease 1h at t, PET t + 3d + 30m acked.
        let t = 1_000_000;
        let actual = max_client_lease(t, 0, HOUR, 3 * DAY);
        let pet = potential_expiration(t, 3 * DAY, actual);
        assert_eq!(pet, t + u64::from(3 * DAY + HOUR / 2));
        // Renewal at T1 = t + 30 min: 3 days of acked PET left, plus MCLT, exceeds desired.
        let t1 = t + u64::from(HOUR / 2);
        assert_eq!(max_client_lease(t1, pet, HOUR, 3 * DAY), 3 * DAY);
        assert_eq!(max_lease_end(t1, pet, HOUR, 3 * DAY), t1 + u64::from(3 * DAY));
    }

    #[test]
    fn an_expired_acknowledgement_falls_back_to_the_mclt() {
        assert_eq!(max_client_lease(5_000, 4_000, 60, 600), 60);
    }

    #[test]
    fn an_interrupted_server_does_not_chain_renewals_past_what_the_partner_knows() {
        // The lease was renewed during the interruption to 10 000; the partner knows 9 000.
        let times = LeaseTimes {
            lease_expiration: 10_000,
            sent_pet: 0,
            acked_pet: 8_000,
            received_pet: 9_000,
        };
        assert_eq!(times.grant_horizon(ServerState::Normal), 9_000);
        assert_eq!(times.grant_horizon(ServerState::CommunicationsInterrupted), 9_000);
    }

    #[test]
    fn partner_down_waits_mclt_past_every_promise() {
        let times =
            LeaseTimes { lease_expiration: 100, sent_pet: 500, acked_pet: 300, received_pet: 200 };
        assert_eq!(times.partner_down_reuse_at(50, 60), 560);
        assert_eq!(times.partner_down_reuse_at(1_000, 60), 1_060);
    }

    #[test]
    fn nothing_overflows() {
        assert_eq!(max_lease_end(u64::MAX, u64::MAX, u32::MAX, u32::MAX), u64::MAX);
        assert_eq!(potential_expiration(u64::MAX - 1, 10, 10), u64::MAX);
    }
}

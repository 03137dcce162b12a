//! What the engine remembers per address, and whether to accept a partner's binding update.
//!
//! The lease store owns the leases; the engine keeps the failover side of each one: the last
//! binding either side settled on, the four times of draft-12 §7.1.5, and whether the partner
//! has acknowledged our latest version (the "up to date" bit of §5.17). That is what an UPDREQ
//! or UPDREQALL must be answered from, so it has to live here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;

use super::Role;
use crate::mclt::LeaseTimes;
use crate::messages::BindingUpdate;
use crate::options::{BindingStatus, IP_FLAG_RESERVED, RejectReason};

/// ISC accepts an EXPIRED (or FREE/BACKUP) update for a lease it still shows ACTIVE once the
/// lease is within 65 s of its end. The partner expires the lease by *its* clock, so without
/// such slack a few seconds of clock offset turn every expiry into an "outdated" reject.
///
/// The slack applies only when the partner expired the very lease we know (its expiry is not
/// before ours). If ours ends later, this server renewed the client since — perhaps in its
/// fast path, or while the two could not talk — and acknowledging the expiry would let the
/// partner free an address the client still holds.
pub const EXPIRY_SLACK: u64 = 65;

/// Decides whether a partner's binding update may replace ours (draft-12 Figure 7.1.3-1).
///
/// `ours` is `None` when we have never heard of the address, which accepts like FREE does.
pub fn judge_update(
    ours: Option<&BindingUpdate>,
    theirs: &BindingUpdate,
    role: Role,
    now: u64,
) -> Result<(), RejectReason> {
    use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};

    let reserved = |b: &BindingUpdate| b.ip_flags.unwrap_or(0) & IP_FLAG_RESERVED != 0;
    if theirs.status == Backup && reserved(theirs) && !ours.is_some_and(reserved) {
        return Err(RejectReason::IP_NOT_RESERVED);
    }
    let Some(ours) = ours else { return Ok(()) };

    // "time(1)": a missing CLTT in the update is never later; one only in the update always is.
    let cltt_later = || match (theirs.client_last_transaction, ours.client_last_transaction) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(t), Some(o)) => t > o,
    };
    // A release in the same second as the last transaction we know of moves no CLTT (ISC
    // dhcpd does not move it on RELEASE at all): from the same client it is no older.
    let cltt_not_earlier = || match (theirs.client_last_transaction, ours.client_last_transaction) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(t), Some(o)) => t >= o,
    };
    // "time(2)": our lease has run out.
    let expired_here = || {
        ours.lease_expiration.is_none_or(|end| {
            let end = u64::from(end);
            let same_lease = theirs.lease_expiration.is_some_and(|t| u64::from(t) >= end);
            now >= end || (same_lease && now.saturating_add(EXPIRY_SLACK) > end)
        })
    };
    // "time(3)": the client talked to the partner after our RESET.
    let cltt_after_reset = || match (theirs.client_last_transaction, ours.start_time_of_state) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(t), Some(s)) => t > s,
    };
    let outdated = |ok: bool| {
        if ok { Ok(()) } else { Err(RejectReason::OUTDATED_BINDING) }
    };

    match (ours.status, theirs.status) {
        (Active, Active) => {
            // An older picture of our own client's lease (ISC: the later CLTT wins): taking it
            // would shorten what we told the client, and whatever the partner says next (an
            // expiry) would be judged against that.
            let shorter = match (theirs.lease_expiration, ours.lease_expiration) {
                (Some(t), Some(o)) => t < o,
                _ => false,
            };
            let longer = match (theirs.lease_expiration, ours.lease_expiration) {
                (Some(t), Some(o)) => t > o,
                _ => false,
            };
            // An earlier transaction of the client's, for no longer: taking it would lose the
            // later one we know, and a release the client made in between would then look
            // newer than its return.
            let older = matches!(
                (theirs.client_last_transaction, ours.client_last_transaction),
                (Some(t), Some(o)) if t < o
            );
            if ours.same_client(theirs) && ((shorter && !cltt_later()) || (older && !longer)) {
                return Err(RejectReason::OUTDATED_BINDING);
            }
            // Two clients on one address: the primary's view wins (note 5).
            if ours.same_client(theirs) || role == Role::Secondary {
                Ok(())
            } else {
                Err(RejectReason::FATAL_CONFLICT)
            }
        }
        (Active, Expired | Free | Backup) => outdated(expired_here()),
        (Active, Released) if ours.same_client(theirs) => outdated(cltt_not_earlier()),
        (Active, Released) | (Expired, Active) | (Released, Active | Expired) => {
            outdated(cltt_later())
        }
        (Reset, Active) => outdated(cltt_after_reset()),
        // A FREE or BACKUP: the partner freed it after its probation (ISC dhcpd: at the
        // abandoned lease's end, `abandon-lease-time` after the decline). It is newer than our
        // ABANDONED: an update of ours the partner has not acknowledged never gets here
        // (`primary_wins`, `secondary_yields`). Its start time cannot tell: dhcpd sends the
        // old lease's start.
        (Abandoned, Reset | Abandoned | Free | Backup) => Ok(()),
        // An abandoned address is the primary's to reclaim, as a FREE one is: ISC dhcpd hands
        // one out when its pool has nothing else, or to the client that asks for it again.
        // The draft's table refuses this; refusing it leaves the client's lease known to the
        // primary only, and the address free here once our probation ends.
        (Abandoned, Active) if role == Role::Secondary => Ok(()),
        (Abandoned, _) => Err(RejectReason::LESS_CRITICAL_BINDING),
        _ => Ok(()),
    }
}

/// Whether our binding already promises everything `theirs` does: the same client, bound, for
/// at least as long, with a potential expiration at least as late.
///
/// A broadcast REBINDING reaches both servers and both may answer it (draft-12 §5.5), so each
/// sends the other a picture of the same renewal, taken a second apart. The older one is
/// outdated, but rejecting it would leave its sender without an acknowledged PET for a lease
/// this server holds even longer: acknowledging it is true, and nothing needs storing.
#[must_use]
pub fn covers(ours: &BindingUpdate, theirs: &BindingUpdate) -> bool {
    let at_least = |o: Option<u32>, t: Option<u32>| match (o, t) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(o), Some(t)) => o >= t,
    };
    ours.status == BindingStatus::Active
        && theirs.status == BindingStatus::Active
        && ours.same_client(theirs)
        && at_least(ours.lease_expiration, theirs.lease_expiration)
        && at_least(ours.potential_expiration, theirs.potential_expiration)
}

/// The failover side of one address.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub binding: BindingUpdate,
    pub times: LeaseTimes,
    /// Bumped on every change, so an ack for an older BNDUPD does not mark a newer one seen.
    pub version: u64,
    /// The partner has our current version (it acked it, or it sent it to us).
    pub up_to_date: bool,
    /// Present in the send queue.
    pub queued: bool,
}

#[derive(Debug, Default)]
pub(crate) struct BindingTable {
    records: HashMap<Ipv4Addr, Record>,
    queue: VecDeque<Ipv4Addr>,
}

impl BindingTable {
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Record> {
        self.records.get(&ip)
    }

    pub fn get_mut(&mut self, ip: Ipv4Addr) -> Option<&mut Record> {
        self.records.get_mut(&ip)
    }

    /// Addresses waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// A change made by this server: the partner must hear of it.
    pub fn local_update(&mut self, binding: BindingUpdate) {
        let ip = binding.ip;
        self.upsert(binding, false);
        self.enqueue(ip);
    }

    /// A binding loaded from stable storage at startup.
    pub fn restore(&mut self, binding: BindingUpdate, times: LeaseTimes, partner_has_it: bool) {
        let ip = binding.ip;
        self.upsert(binding, partner_has_it);
        if let Some(r) = self.records.get_mut(&ip) {
            r.times = times;
        }
        if !partner_has_it {
            self.enqueue(ip);
        }
    }

    /// A partner's binding we accepted: it knows it, so there is nothing to send back.
    pub fn accept_remote(&mut self, binding: BindingUpdate) {
        let pet = binding.potential_expiration.map(u64::from);
        let ip = binding.ip;
        self.upsert(binding, true);
        if let (Some(r), Some(pet)) = (self.records.get_mut(&ip), pet) {
            r.times.received_pet = r.times.received_pet.max(pet);
        }
    }

    fn upsert(&mut self, binding: BindingUpdate, up_to_date: bool) {
        let ends = binding.lease_expiration.map(u64::from);
        if let Some(r) = self.records.get_mut(&binding.ip) {
            r.binding = binding;
            r.version += 1;
            r.up_to_date = up_to_date;
            if let Some(ends) = ends {
                r.times.lease_expiration = r.times.lease_expiration.max(ends);
            }
        } else {
            let times = LeaseTimes { lease_expiration: ends.unwrap_or(0), ..LeaseTimes::default() };
            self.records.insert(
                binding.ip,
                Record { binding, times, version: 0, up_to_date, queued: false },
            );
        }
    }

    pub fn enqueue(&mut self, ip: Ipv4Addr) {
        if let Some(r) = self.records.get_mut(&ip)
            && !r.queued
        {
            r.queued = true;
            self.queue.push_back(ip);
        }
    }

    /// Next address whose current version the partner lacks.
    pub fn next_to_send(&mut self) -> Option<Ipv4Addr> {
        while let Some(ip) = self.queue.pop_front() {
            if let Some(r) = self.records.get_mut(&ip) {
                r.queued = false;
                if !r.up_to_date {
                    return Some(ip);
                }
            }
        }
        None
    }

    /// Queues everything the partner has not acknowledged (entering NORMAL, answering UPDREQ),
    /// except versions already on their way (`in_flight` holds address and version).
    pub fn enqueue_stale(&mut self, in_flight: &HashSet<(Ipv4Addr, u64)>) -> Vec<Ipv4Addr> {
        let mut stale: Vec<Ipv4Addr> = self
            .records
            .iter()
            .filter(|(ip, r)| !r.up_to_date && !in_flight.contains(&(**ip, r.version)))
            .map(|(ip, _)| *ip)
            .collect();
        // In address order, not the hash map's (which differs from run to run): the same
        // inputs send the same updates in the same order, so a seed replays exactly.
        stale.sort_unstable();
        for ip in &stale {
            self.enqueue(*ip);
        }
        stale
    }

    /// Every address whose current version is on its way to the partner (queued, or in
    /// `in_flight`), with that version. A refused update is neither: nothing sends it again.
    pub fn unacked_versions(&self, in_flight: &HashSet<Ipv4Addr>) -> HashMap<Ipv4Addr, u64> {
        self.records
            .iter()
            .filter(|(ip, r)| !r.up_to_date && (r.queued || in_flight.contains(ip)))
            .map(|(ip, r)| (*ip, r.version))
            .collect()
    }

    /// UPDREQALL: the partner lost its database, so nothing it acked before counts (§5.17).
    pub fn forget_partner_knowledge(&mut self) {
        for r in self.records.values_mut() {
            r.up_to_date = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::HwAddr;
    use BindingStatus::*;

    const NOW: u64 = 1_000_000;

    fn b(status: BindingStatus) -> BindingUpdate {
        BindingUpdate::new(Ipv4Addr::new(10, 0, 0, 1), status)
    }

    fn client(status: BindingStatus, mac: u8, cltt: Option<u32>) -> BindingUpdate {
        BindingUpdate {
            chaddr: Some(HwAddr::ethernet([0, 0, 0, 0, 0, mac])),
            client_last_transaction: cltt,
            lease_expiration: Some(1_000_500),
            ..b(status)
        }
    }

    fn judge(ours: &BindingUpdate, theirs: &BindingUpdate) -> Result<(), RejectReason> {
        judge_update(Some(ours), theirs, Role::Primary, NOW)
    }

    #[test]
    fn anything_may_replace_an_unknown_free_or_backup_address() {
        for theirs in [Active, Expired, Released, Free, Backup, Reset, Abandoned] {
            let t = client(theirs, 1, None);
            assert_eq!(judge_update(None, &t, Role::Primary, NOW), Ok(()));
            assert_eq!(judge(&b(Free), &t), Ok(()));
            assert_eq!(judge(&b(Backup), &t), Ok(()));
        }
    }

    #[test]
    fn a_different_client_on_our_active_lease_is_a_fatal_conflict_only_for_the_primary() {
        let ours = client(Active, 1, Some(5));
        let theirs = client(Active, 2, Some(6));
        assert_eq!(judge(&ours, &theirs), Err(RejectReason::FATAL_CONFLICT));
        assert_eq!(judge_update(Some(&ours), &theirs, Role::Secondary, NOW), Ok(()));
        // The same client is no conflict: a later picture is taken, an earlier one is outdated
        // (and acknowledged without storing where ours promises as much; see `covers`).
        assert_eq!(judge(&ours, &client(Active, 1, Some(6))), Ok(()));
        assert_eq!(judge(&ours, &client(Active, 1, Some(4))), Err(RejectReason::OUTDATED_BINDING));
    }

    #[test]
    fn an_active_lease_expires_or_frees_only_once_it_has_run_out_here() {
        let ours = client(Active, 1, Some(5)); // ends at NOW + 500
        assert_eq!(judge(&ours, &b(Expired)), Err(RejectReason::OUTDATED_BINDING));
        assert_eq!(judge(&ours, &b(Free)), Err(RejectReason::OUTDATED_BINDING));
        let later = judge_update(Some(&ours), &b(Expired), Role::Primary, NOW + 500);
        assert_eq!(later, Ok(()));
        // Within the clock-offset slack of the end, the partner's expiry of the same lease
        // is taken.
        let same = client(Expired, 1, Some(5));
        assert_eq!(judge_update(Some(&ours), &same, Role::Primary, NOW + 436), Ok(()));
    }

    #[test]
    fn an_older_picture_of_our_own_clients_lease_is_outdated() {
        let ours = client(Active, 1, Some(5)); // ends at NOW + 500, CLTT 5
        let stale =
            BindingUpdate { lease_expiration: Some(1_000_300), ..client(Active, 1, Some(4)) };
        assert_eq!(judge(&ours, &stale), Err(RejectReason::OUTDATED_BINDING));
        let renewed =
            BindingUpdate { lease_expiration: Some(1_000_300), ..client(Active, 1, Some(6)) };
        assert_eq!(judge(&ours, &renewed), Ok(()), "a later transaction is news");
    }

    #[test]
    fn both_servers_answering_one_rebinding_client_ack_each_others_older_picture() {
        let ours =
            BindingUpdate { potential_expiration: Some(1_000_530), ..client(Active, 1, Some(5)) };
        let theirs = BindingUpdate {
            lease_expiration: Some(1_000_499),
            potential_expiration: Some(1_000_529),
            ..client(Active, 1, Some(4))
        };
        assert_eq!(judge(&ours, &theirs), Err(RejectReason::OUTDATED_BINDING));
        assert!(covers(&ours, &theirs), "ours promises more: acknowledging theirs is true");
        let later_pet = BindingUpdate { potential_expiration: Some(1_000_600), ..theirs.clone() };
        assert!(!covers(&ours, &later_pet), "their PET must be stored before it is acked");
        assert!(!covers(&ours, &client(Active, 2, Some(4))), "another client is never covered");
    }

    #[test]
    fn an_expiry_of_an_older_lease_does_not_cut_a_renewal_the_partner_has_not_heard_of() {
        // We renewed the client to NOW + 500; the partner still thinks it ended at NOW + 440.
        let ours = client(Active, 1, Some(5));
        let older =
            BindingUpdate { lease_expiration: Some(1_000_440), ..client(Expired, 1, Some(4)) };
        for now in [NOW + 440, NOW + 499] {
            let r = judge_update(Some(&ours), &older, Role::Primary, now);
            assert_eq!(r, Err(RejectReason::OUTDATED_BINDING), "at {now}");
        }
        let free = judge_update(Some(&ours), &b(Free), Role::Primary, NOW + 499);
        assert_eq!(free, Err(RejectReason::OUTDATED_BINDING));
        let over = judge_update(Some(&ours), &older, Role::Primary, NOW + 500);
        assert_eq!(over, Ok(()));
    }

    #[test]
    fn release_and_reactivation_need_a_newer_client_transaction() {
        let ours = client(Active, 1, Some(10));
        assert_eq!(judge(&ours, &client(Released, 1, Some(11))), Ok(()));
        assert_eq!(
            judge(&ours, &client(Released, 1, Some(10))),
            Ok(()),
            "the client released in the second of its last transaction (or dhcpd kept the CLTT)"
        );
        assert_eq!(
            judge(&ours, &client(Released, 1, Some(9))),
            Err(RejectReason::OUTDATED_BINDING)
        );
        assert_eq!(
            judge(&ours, &client(Released, 2, Some(10))),
            Err(RejectReason::OUTDATED_BINDING),
            "another client's release must come later than what we know"
        );
        assert_eq!(judge(&ours, &client(Released, 1, None)), Err(RejectReason::OUTDATED_BINDING));
        let expired = client(Expired, 1, Some(10));
        assert_eq!(judge(&expired, &client(Active, 1, Some(11))), Ok(()));
        assert_eq!(judge(&client(Expired, 1, None), &client(Active, 1, Some(1))), Ok(()));
        let released = client(Released, 1, Some(10));
        assert_eq!(
            judge(&released, &client(Expired, 1, Some(9))),
            Err(RejectReason::OUTDATED_BINDING)
        );
        assert_eq!(judge(&released, &b(Free)), Ok(()));
    }

    #[test]
    fn a_reset_address_is_reactivated_only_by_a_client_seen_after_the_reset() {
        let ours = BindingUpdate { start_time_of_state: Some(100), ..b(Reset) };
        assert_eq!(judge(&ours, &client(Active, 1, Some(101))), Ok(()));
        assert_eq!(judge(&ours, &client(Active, 1, Some(99))), Err(RejectReason::OUTDATED_BINDING));
        assert_eq!(judge(&ours, &b(Free)), Ok(()));
    }

    #[test]
    fn an_abandoned_address_yields_to_reset_abandoned_a_free_or_the_primarys_client() {
        let ours = BindingUpdate { start_time_of_state: Some(100), ..b(Abandoned) };
        for theirs in [Active, Expired, Released] {
            assert_eq!(
                judge(&ours, &client(theirs, 1, Some(1))),
                Err(RejectReason::LESS_CRITICAL_BINDING)
            );
        }
        assert_eq!(judge(&ours, &b(Reset)), Ok(()));
        assert_eq!(judge(&ours, &b(Abandoned)), Ok(()));
        // The primary reclaimed it for a client (ISC dhcpd, its pool otherwise exhausted).
        let reclaimed = client(Active, 1, Some(1));
        assert_eq!(judge_update(Some(&ours), &reclaimed, Role::Secondary, NOW), Ok(()));
        // The partner freed it after its probation.
        let freed = BindingUpdate { start_time_of_state: Some(101), ..b(Free) };
        assert_eq!(judge(&ours, &freed), Ok(()));
        // ISC dhcpd frees an address it abandoned with the start time of the lease before
        // (`starts` does not move): what it abandoned, or declined too, must come back here.
        let isc = BindingUpdate { start_time_of_state: Some(90), ..b(Free) };
        assert_eq!(judge(&ours, &isc), Ok(()));
        assert_eq!(judge(&ours, &b(Backup)), Ok(()));
    }

    #[test]
    fn a_reserved_address_goes_to_backup_only_if_reserved_here_too() {
        let mut theirs = b(Backup);
        theirs.ip_flags = Some(IP_FLAG_RESERVED);
        assert_eq!(judge(&b(Free), &theirs), Err(RejectReason::IP_NOT_RESERVED));
        let mut ours = b(Free);
        ours.ip_flags = Some(IP_FLAG_RESERVED);
        assert_eq!(judge(&ours, &theirs), Ok(()));
    }

    #[test]
    fn the_send_queue_skips_what_the_partner_already_has() {
        let mut t = BindingTable::default();
        t.local_update(b(Active));
        t.local_update(b(Expired)); // same address, queued once
        assert_eq!(t.queued(), 1);
        t.accept_remote(b(Free));
        assert_eq!(t.next_to_send(), None);
        t.forget_partner_knowledge();
        assert_eq!(t.enqueue_stale(&HashSet::new()).len(), 1);
        assert_eq!(t.next_to_send(), Some(Ipv4Addr::new(10, 0, 0, 1)));
    }
}

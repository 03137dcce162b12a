//! Failover state transitions as pure functions of (role, our state, partner state).
//!
//! Draft-12 §9 is the base; where ISC dhcpd 4.4.3 differs and the difference is visible to an
//! ISC partner, ISC wins (each such row says so).

use crate::options::ServerState;

/// Our state after communications fail (draft-12 Figure 9.2-1). Also the state a server resumes
/// after restarting (§9.3.2 step 2): it cannot know the link is still up.
#[must_use]
pub fn on_communications_failed(state: ServerState) -> ServerState {
    match state {
        ServerState::Normal => ServerState::CommunicationsInterrupted,
        ServerState::PotentialConflict => ServerState::ResolutionInterrupted,
        other => other,
    }
}

/// The state to resume after STARTUP given what stable storage says. STARTUP, PAUSED and
/// SHUTDOWN are never stored as "our state" (the state before them is); if one shows up anyway
/// the only safe reading is that our database cannot be trusted.
#[must_use]
pub fn resume_state(saved: Option<ServerState>) -> ServerState {
    match saved {
        None | Some(ServerState::Startup | ServerState::Paused | ServerState::Shutdown) => {
            ServerState::Recover
        }
        Some(s) => on_communications_failed(s),
    }
}

/// Where a server moves when, with communications OK, the partner reports `partner` (not in
/// STARTUP). `None`: stay. The reactions are the same for both roles; the role only matters
/// when an UPDDONE ends POTENTIAL-CONFLICT.
#[must_use]
pub fn on_partner_state(ours: ServerState, partner: ServerState) -> Option<ServerState> {
    use ServerState::{
        CommunicationsInterrupted as CommInt, ConflictDone, Normal, PartnerDown, Paused,
        PotentialConflict, Recover, RecoverDone, RecoverWait, ResolutionInterrupted, Shutdown,
    };
    match ours {
        Normal => match partner {
            // §9.8.4 via COMMUNICATIONS-INTERRUPTED.
            PartnerDown | PotentialConflict | ResolutionInterrupted => Some(PotentialConflict),
            // ISC: a partner that lost its database (RECOVER) or is leaving makes us its stand-in.
            Recover | Shutdown => Some(PartnerDown),
            Paused => Some(CommInt),
            // CONFLICT-DONE is where the primary waits for us once we reached NORMAL.
            _ => None,
        },
        CommInt => match partner {
            // ISC adds RECOVER-WAIT to the draft's list.
            Normal | CommInt | RecoverDone | RecoverWait => Some(Normal),
            // ISC; the draft stays in COMMUNICATIONS-INTERRUPTED for RECOVER.
            Recover | Shutdown => Some(PartnerDown),
            PartnerDown | PotentialConflict | ResolutionInterrupted | ConflictDone => {
                Some(PotentialConflict)
            }
            _ => None,
        },
        PartnerDown => match partner {
            RecoverDone => Some(Normal),
            Normal
            | CommInt
            | PartnerDown
            | PotentialConflict
            | ResolutionInterrupted
            | ConflictDone => Some(PotentialConflict),
            _ => None,
        },
        Recover => partner.is_conflict().then_some(PotentialConflict),
        RecoverDone => matches!(partner, Normal | RecoverDone).then_some(Normal),
        ResolutionInterrupted => Some(PotentialConflict),
        ConflictDone => (partner == Normal).then_some(Normal),
        // POTENTIAL-CONFLICT and RECOVER leave on UPDDONE, RECOVER-WAIT on its timer, STARTUP
        // when communications come up, PAUSED and SHUTDOWN only by restarting.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServerState::*;

    #[test]
    fn losing_the_link_interrupts_only_cooperative_states() {
        assert_eq!(on_communications_failed(Normal), CommunicationsInterrupted);
        assert_eq!(on_communications_failed(PotentialConflict), ResolutionInterrupted);
        assert_eq!(on_communications_failed(PartnerDown), PartnerDown);
        assert_eq!(on_communications_failed(Recover), Recover);
        assert_eq!(on_communications_failed(RecoverDone), RecoverDone);
    }

    #[test]
    fn a_fresh_server_resumes_in_recover() {
        assert_eq!(resume_state(None), Recover);
        assert_eq!(resume_state(Some(Normal)), CommunicationsInterrupted);
        assert_eq!(resume_state(Some(Shutdown)), Recover);
    }

    #[test]
    fn reconnecting_after_an_interruption_returns_to_normal() {
        for p in [Normal, CommunicationsInterrupted, RecoverDone, RecoverWait] {
            assert_eq!(
                on_partner_state(CommunicationsInterrupted, p),
                Some(Normal),
                "partner {p:?}"
            );
        }
    }

    #[test]
    fn a_partner_down_peer_forces_conflict_resolution() {
        for ours in [Normal, CommunicationsInterrupted, PartnerDown] {
            assert_eq!(on_partner_state(ours, PartnerDown), Some(PotentialConflict));
        }
    }

    #[test]
    fn a_recovering_partner_is_waited_for_in_partner_down() {
        assert_eq!(on_partner_state(Normal, Recover), Some(PartnerDown));
        assert_eq!(on_partner_state(PartnerDown, Recover), None);
        assert_eq!(on_partner_state(PartnerDown, RecoverWait), None);
        assert_eq!(on_partner_state(PartnerDown, RecoverDone), Some(Normal));
        assert_eq!(on_partner_state(RecoverDone, RecoverDone), Some(Normal));
        assert_eq!(on_partner_state(RecoverDone, PartnerDown), None);
    }

    #[test]
    fn conflict_done_waits_for_the_secondary_to_be_normal() {
        assert_eq!(on_partner_state(ConflictDone, PotentialConflict), None);
        assert_eq!(on_partner_state(ConflictDone, Normal), Some(Normal));
        assert_eq!(on_partner_state(Normal, ConflictDone), None);
    }

    #[test]
    fn pause_and_shutdown_are_final_until_restart() {
        for p in [Normal, PartnerDown, Recover] {
            assert_eq!(on_partner_state(Paused, p), None);
            assert_eq!(on_partner_state(Shutdown, p), None);
        }
        assert_eq!(on_partner_state(Normal, Paused), Some(CommunicationsInterrupted));
        assert_eq!(on_partner_state(Normal, Shutdown), Some(PartnerDown));
    }
}

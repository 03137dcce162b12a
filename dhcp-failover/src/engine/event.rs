//! Outputs of the engine other than messages.

use std::net::Ipv4Addr;

use super::config::PersistedState;
use crate::messages::BindingUpdate;
use crate::options::{BindingStatus, RejectReason, ServerState};

/// Identifies a batch of received bindings. The BNDACKs for them are held until the driver
/// reports, through [`crate::Peer::handle_committed`], that the batch (and every earlier one) is
/// on stable storage: draft-12 §5.2.1 forbids acking before that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(pub(crate) u64);

/// Something the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Our failover state changed (already followed by a [`Event::Persist`]).
    StateChanged { from: ServerState, to: ServerState },
    /// The partner reported its state. `startup` means it is still in STARTUP and `state` is the
    /// one it saved.
    PartnerState { state: ServerState, startup: bool, since: u32 },
    /// Communications with the partner became OK (CONNECT/CONNECTACK done, partner STATE seen)
    /// or were lost.
    Communications { ok: bool },
    /// Write this to stable storage; hand the latest one back to [`crate::Peer::new`].
    Persist(PersistedState),
    /// The partner changed a binding and we accepted it: apply it to the lease store, make it
    /// durable, then call [`crate::Peer::handle_committed`] with `commit`.
    ApplyBinding { binding: BindingUpdate, commit: CommitId },
    /// The partner stored our update. `acked_pet` is the potential expiration time it now knows,
    /// which lets the lease owner (and the fast path) grant up to `acked_pet + MCLT`. For
    /// EXPIRED, RELEASED and RESET this is also the moment the address becomes free (§5.11).
    BindingAcked {
        ip: Ipv4Addr,
        status: BindingStatus,
        acked_pet: Option<u32>,
        /// The acknowledged update was the latest for the address: the partner has it all.
        latest: bool,
    },
    /// The partner refused our update. It is not resent until the partner next asks for updates
    /// or the binding changes again (draft-12 §7.2.2 forbids an immediate retry).
    BindingRejected { ip: Ipv4Addr, reason: RejectReason, message: Vec<u8> },
    /// The partner asks for free addresses (POOLREQ); balance, then answer with how many moved
    /// through [`crate::Peer::handle_pool_response`].
    PoolRequested { xid: u32 },
    /// The partner says how many addresses it moved to us after our POOLREQ.
    PoolResponse { transferred: u32 },
    /// Try to open a TCP connection to the partner; report success with
    /// [`crate::Peer::handle_connected`]. Both roles connect (ISC's secondary does too, and the
    /// primary sends CONNECT on whichever connection comes up first).
    Connect,
    /// Close the current connection once the messages already queued are written. The engine
    /// already treats the link as down.
    Close { reason: RejectReason, message: String },
    /// The partner refused or ended the connection (CONNECTACK with a reject reason, or
    /// DISCONNECT); for the log. A [`Event::Close`] follows.
    PartnerDisconnected { reason: Option<RejectReason>, message: Vec<u8> },
}

/// Which DHCP clients this server may answer in its current failover state (draft-12 §9,
/// ISC's service states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Answer nobody: STARTUP, RECOVER, RECOVER-WAIT, POTENTIAL-CONFLICT, PAUSED, SHUTDOWN, or a
    /// partner that is in PARTNER-DOWN or resolving a conflict.
    NotResponding,
    /// RECOVER-DONE: only renewals and rebinds of existing leases.
    RenewalsOnly,
    /// NORMAL: renewals from anyone, other requests only for our hash buckets.
    LoadBalanced,
    /// COMMUNICATIONS-INTERRUPTED, RESOLUTION-INTERRUPTED, CONFLICT-DONE: everyone, but new
    /// addresses only from our own pool (FREE for the primary, BACKUP for the secondary).
    OwnPool,
    /// PARTNER-DOWN: everyone; the partner's pool too once MCLT has passed.
    PartnerDown,
}

/// Operator actions (ISC: omshell or editing the lease file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The partner is known to be down: take over its pool after MCLT.
    PartnerDown,
    /// Going away briefly: tell the partner (it moves to COMMUNICATIONS-INTERRUPTED) and close.
    Pause,
    /// Going away for long: tell the partner (it moves to PARTNER-DOWN).
    Shutdown,
}

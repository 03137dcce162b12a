//! The DHCPv4 failover protocol of `draft-ietf-dhc-failover-12`, as ISC dhcpd 4.4.3 speaks it on
//! TCP port 647.
//!
//! # Sans-IO contract
//!
//! This crate is fully deterministic. It contains no networking code, no timers, no threads and
//! no async runtime, and it never reads a clock: every input that depends on time carries `now`,
//! wall-clock unix seconds, because the protocol itself puts absolute unix times on the wire.
//! The caller (the driver) owns the TCP connection and the clock:
//!
//! 1. bytes read from the connection go into a [`FrameDecoder`], messages out of it into
//!    [`Peer::handle_message`]; connection up/down into [`Peer::handle_connected`] and
//!    [`Peer::handle_disconnected`]; local lease changes into [`Peer::handle_local_binding`];
//!    the deadline from [`Peer::poll_timeout`] into [`Peer::handle_timeout`];
//! 2. after every input, the driver drains [`Peer::poll_event`] (apply bindings, persist state,
//!    report [`Peer::handle_committed`] once bindings are on stable storage) and then
//!    [`Peer::poll_transmit`] ([`encode`] and write).
//!
//! # Modules
//!
//! - [`wire`], [`options`], [`messages`], [`framing`]: the codec, with ISC's quirks.
//! - [`engine`]: the per-relationship state machine ([`Peer`]).
//! - [`mclt`]: lease-time arithmetic; [`load_balance`]: RFC 3074 hashing.

pub mod engine;
mod error;
pub mod framing;
pub mod load_balance;
pub mod mclt;
pub mod messages;
pub mod options;
pub mod wire;

pub use engine::{Config, Event, Peer, PersistedState, Role};
pub use framing::FrameDecoder;
pub use messages::{BindingAck, BindingUpdate};
pub use options::{BindingStatus, FoOption, HwAddr, RejectReason, ServerState};
pub use wire::{Message, MessageType, WireError, decode, encode};

//! A lab of network namespaces in which real DHCP clients (udhcpc, dhclient, dhcpcd) get
//! leases and renew them through the XDP fast path. The demo (`xdhcp-lab demo`), the
//! end-to-end benchmark and the integration tests are built from these pieces.
//!
//! Rules every piece follows:
//! - interfaces are only ever created inside namespaces the lab created (`ip -n NS link add ...
//!   peer ... netns OTHER`), so nothing appears in the caller's namespace, not even briefly;
//! - every resource is a guard that removes itself on drop, also while a panic unwinds, and
//!   namespaces kill whatever still runs in them before they are deleted;
//! - every wait is bounded, and the demo's waits end early on Ctrl-C ([`catch_interrupts`]);
//! - client hook scripts only log and configure the lab interface: nothing touches the host's
//!   resolv.conf, routes or lease databases.
//!
//! Two kinds of lab:
//! - [`Lan`] + [`Daemon`]: the real server, `xdhcp run` in a server namespace, serving a bridge
//!   with clients (and a relay agent) on ports of their own. The demo and the server tests.
//! - [`Segment`]: the fast path alone on a veth pair, the client's lease put in the map by hand
//!   and its first lease from [`Responder`], a deliberately tiny DORA responder that never
//!   answers a renewal. A renewal the client logs there can only have come from XDP.
//!
//! One module per piece: [`process`] (commands, bounded waits, Ctrl-C), [`netns`]
//! (namespaces, temp dirs, veth pairs), [`xdp`] (the fast path and the pass program on lab
//! links), [`responder`], [`clients`], [`segments`], [`lan`] (the real server's network),
//! [`access_node`] (a layer-2 access node port that adds option 82 to every client message),
//! [`daemon`] (`xdhcp run` as a child), [`raw`] (hand-made exchanges) and [`demo`].
pub mod access_node;
pub mod clients;
pub mod daemon;
pub mod demo;
pub mod lan;
pub mod netns;
pub mod process;
pub mod raw;
pub mod responder;
pub mod segments;
pub mod xdp;

pub use access_node::{AccessPort, Line, Shim, ShimStats, add_relay_info, strip_relay_info};
pub use clients::{Client, ClientEvent, ClientKind, EventKind, HookCall};
pub use daemon::{Daemon, Launcher, beside_this_program, daemon_child};
pub use demo::{DemoOptions, run_demo};
pub use lan::{
    LAN_PREFIX, LAN_SERVER, Lan, Port, RELAY_GIADDR, RELAY_UPSTREAM, Relay, ServerConfig,
};
pub use netns::{NetNs, TempDir, VethEnd, VethPair, netns_list, unique_ifname};
pub use process::{catch_interrupts, interrupted, retry_for, run_cmd, wait_for};
pub use raw::{RawSocket, client_frame, client_message};
pub use responder::{Responder, ResponderConfig, ResponderLog};
pub use segments::{RenewalReport, Segment, SegmentPlan, Timing};
pub use xdp::{FastPath, PassProgram};

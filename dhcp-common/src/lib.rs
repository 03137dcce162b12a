//! The one definition of everything the XDP program and userspace share: map names, the lease
//! map key and entry, the reply profiles, the control entry, renewal events, stats counters
//! and the fixed layout of a fast-path DHCPACK.
//!
//! Every type is `#[repr(C)]`, has no padding holes (checked by `bytemuck::Pod` derives and size
//! asserts), and is written by userspace and read by the kernel on the same host, so integers are
//! in host byte order unless a field name ends in `_be` or the field is a byte array holding
//! network-order bytes (addresses, MACs).
#![no_std]

pub mod bootp;
pub mod digest;
pub mod layout;
pub mod maps;
pub mod police;
pub mod stats;

pub use maps::{
    BenchFrame, Control, KernelClock, LeaseEntry, LogCursor, PeerCtl, RenewEvent, ReplyProfile,
};
pub use stats::Stat;

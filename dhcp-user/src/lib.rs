//! xdhcp: a `DHCPv4` server whose renewals are answered by an XDP program.
//!
//! This library holds everything the `xdhcp` binary, the integration tests and the tooling
//! (`dhcp-lab`: the lab, the load generator, the benchmarks) share: the one turn ([`core`]),
//! the fast path's userspace side ([`fastpath`]: loading and pinning the XDP program, typed
//! access to its maps, its event log, the subnet option block encoder and the kernel clock),
//! pure packet builders ([`packet`]) and raw frames on an interface ([`packet_socket`]).

pub mod access;
pub mod bpf_sys;
pub mod check;
pub mod cli;
pub mod config;
pub mod core;
pub mod daemon;
pub mod dirlock;
pub mod failover;
pub mod fastpath;
pub mod history;
pub mod import;
pub mod packet;
pub mod packet_socket;
pub mod relay;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;

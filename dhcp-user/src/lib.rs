//! xdhcp: a DHCPv4 server whose renewals are answered by an XDP program.
//!
//! This library holds everything the `xdhcp` binary, the integration tests and the tooling
//! (`dhcp-lab`: the lab, the load generator, the benchmarks) share: loading and pinning the XDP
//! program ([`fastpath`]), typed access to its maps ([`maps`]), pure packet builders
//! ([`packet`]), raw frames on an interface ([`packet_socket`]) and the subnet option block
//! encoder ([`subnet`]).

pub mod bpf_sys;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod eventlog;
pub mod failover;
pub mod fastpath;
pub mod maps;
pub mod packet;
pub mod packet_socket;
pub mod server;
pub mod store;
pub mod subnet;
pub mod table;

//! xdhcp: a DHCPv4 server whose renewals are answered by an XDP program.
//!
//! This library holds everything the `xdhcp` binary, the integration tests, the benchmarks and
//! the load generator share: loading and pinning the XDP program ([`fastpath`]), typed access to
//! its maps ([`maps`]), pure packet builders ([`packet`]) and the subnet option block encoder
//! ([`subnet`]).

pub mod bench;
pub mod bench_e2e;
pub mod bench_endurance;
pub mod bpf_sys;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod eventlog;
pub mod failover;
pub mod fastpath;
pub mod lab;
pub mod load;
pub mod maps;
pub mod packet;
pub mod packet_socket;
pub mod server;
pub mod store;
pub mod subnet;
pub mod table;
pub mod testrun;

//! xdhcp: a DHCPv4 server whose renewals are answered by an XDP program.
//!
//! This library holds everything the `xdhcp` binary, the integration tests, the benchmarks and
//! the load generator share: the fast path's userspace side ([`fastpath`]: loading and pinning
//! the XDP program, typed access to its maps, its event log, the subnet option block encoder and
//! the kernel clock) and pure packet builders ([`packet`]).

pub mod bench;
pub mod bench_e2e;
pub mod bench_endurance;
pub mod cli;
pub mod config;
pub mod core;
pub mod daemon;
pub mod failover;
pub mod fastpath;
pub mod lab;
pub mod load;
pub mod packet;
pub mod server;
pub mod store;
pub mod table;
pub mod testrun;

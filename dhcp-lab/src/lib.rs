//! xdhcp's tooling, kept out of the server: the netns [`lab`] with real DHCP clients, the
//! [`load`] generator (the `xdhcp-load` binary, for any `DHCPv4` server), the [`bench`]marks and
//! the `BPF_PROG_TEST_RUN` harness ([`testrun`]) they and the integration tests run the XDP
//! program with. The `xdhcp-lab` binary runs the demo and the benchmarks.
//!
//! Everything here needs root, creates network namespaces or loads XDP programs, so the crate
//! is not a default member of the workspace.
pub mod bench;
pub mod lab;
pub mod load;
pub mod testrun;

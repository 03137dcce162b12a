//! Shared fixtures of the privileged integration tests: a standard lab subnet and lease, and
//! the failover lab (built on `dhcp_lab::lab`'s namespaces, commands and waits).
pub mod certs;
pub mod failover_lab;
pub mod fixture;
pub mod postgres;
pub mod xdp;

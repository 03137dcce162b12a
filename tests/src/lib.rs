//! Shared fixtures of the privileged integration tests: a standard lab subnet and lease, and
//! network namespaces with veth pairs that clean themselves up.
pub mod failover_lab;
pub mod fixture;
pub mod netns;

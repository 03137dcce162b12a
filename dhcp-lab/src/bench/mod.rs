//! The benchmarks behind `cargo xtask bench`: [`fastpath`] (the XDP program timed in the
//! kernel), [`e2e`] (xdhcp and Kea on a veth lab), [`scale`] (one xdhcp from 10 k to 1 M leases) and
//! [`endurance`] (a failover survivor on simulated time).
pub mod e2e;
pub mod endurance;
pub mod fastpath;
pub mod scale;

pub use fastpath::{compare, fastpath};

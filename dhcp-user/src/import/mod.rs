//! Moving to xdhcp from ISC dhcpd: its lease file into the store (`leases`).
pub mod leases;

//! Where the turn makes its decisions durable: the SQLite [`LeaseStore`] in the daemon, a map in
//! memory for the simulation, the tests and the benchmarks. The turn sends nothing whose record
//! a [`Durable::commit`] has not accepted.
use std::{collections::HashMap, net::Ipv4Addr};

use crate::store::{Lease, LeaseChange, LeaseStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// [`MemStore::fail_next_commit`]: a disk that refuses a write, on purpose.
    #[error("the in-memory store refused this commit (injected failure)")]
    Injected,
}

/// The lease records and the failover relationship's state, durable once a call returns `Ok`.
pub trait Durable {
    /// Applies `changes` all together or not at all.
    fn commit(&mut self, changes: &[LeaseChange]) -> Result<(), DurableError>;
    /// Every record, as committed.
    fn load_all(&self) -> Result<Vec<Lease>, DurableError>;
    /// Relationship `name`'s state. `sole`: it is the config's only relationship, so a state
    /// kept without a name (by a version with one relationship) is its own.
    fn failover_state(&self, name: &str, sole: bool) -> Result<Option<Vec<u8>>, DurableError>;
    fn put_failover_state(&mut self, name: &str, blob: &[u8]) -> Result<(), DurableError>;
}

impl Durable for LeaseStore {
    fn commit(&mut self, changes: &[LeaseChange]) -> Result<(), DurableError> {
        Ok(LeaseStore::commit(self, changes)?)
    }

    fn load_all(&self) -> Result<Vec<Lease>, DurableError> {
        Ok(LeaseStore::load_all(self)?)
    }

    fn failover_state(&self, name: &str, sole: bool) -> Result<Option<Vec<u8>>, DurableError> {
        Ok(self.get_failover_state(name, sole)?)
    }

    fn put_failover_state(&mut self, name: &str, blob: &[u8]) -> Result<(), DurableError> {
        Ok(LeaseStore::put_failover_state(self, name, blob)?)
    }
}

/// What a crash leaves of a server that keeps its records in memory: exactly what was
/// committed. Cloning it is taking a copy of the disk.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    pub leases: HashMap<Ipv4Addr, Lease>,
    /// Each relationship's state, by name.
    pub failover: std::collections::BTreeMap<String, Vec<u8>>,
    /// The next commit fails, as a full or broken disk would make it.
    pub fail_next_commit: bool,
    /// Writes of the failover state fail while set.
    pub fail_state_writes: bool,
    /// When set, every record committed is also appended here: what a check needs to see
    /// that a reply's record was durable even if a later decision of the same turn replaced it.
    pub journal: Option<Vec<Lease>>,
}

impl MemStore {
    #[must_use]
    pub fn get(&self, a: Ipv4Addr) -> Option<&Lease> {
        self.leases.get(&a)
    }
}

impl Durable for MemStore {
    fn commit(&mut self, changes: &[LeaseChange]) -> Result<(), DurableError> {
        if std::mem::take(&mut self.fail_next_commit) {
            return Err(DurableError::Injected);
        }
        for c in changes {
            match c {
                LeaseChange::Put(l) => {
                    if let Some(j) = &mut self.journal {
                        j.push(l.clone());
                    }
                    self.leases.insert(l.address, l.clone());
                }
                LeaseChange::Remove(a) => {
                    self.leases.remove(a);
                }
            }
        }
        Ok(())
    }

    fn load_all(&self) -> Result<Vec<Lease>, DurableError> {
        let mut all: Vec<Lease> = self.leases.values().cloned().collect();
        all.sort_by_key(|l| l.address);
        Ok(all)
    }

    fn failover_state(&self, name: &str, _sole: bool) -> Result<Option<Vec<u8>>, DurableError> {
        Ok(self.failover.get(name).cloned())
    }

    fn put_failover_state(&mut self, name: &str, blob: &[u8]) -> Result<(), DurableError> {
        if self.fail_state_writes {
            return Err(DurableError::Injected);
        }
        self.failover.insert(name.to_owned(), blob.to_vec());
        Ok(())
    }
}

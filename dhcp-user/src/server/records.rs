//! Every lease record once, in one dense vector, found through tables of positions into it:
//! by address, by the client a record binds, by hardware address and by client identifier
//! (those two for the operator's lookups), and in address order (for listing by pages).
//!
//! A `HashMap<Ipv4Addr, Lease>` kept the record in its buckets, and a hash table has up to
//! twice the buckets it has entries: at a million leases that was 380 bytes a lease. Here the
//! records take their own size and each table four bytes a bucket. Records are replaced,
//! never removed (an address's record outlives its client), so positions stay put.
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::Ipv4Addr;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::request::ClientKey;
use crate::store::Lease;

/// A client as a record names it, borrowed (no allocation per lookup).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum KeyRef<'a> {
    Id(&'a [u8]),
    Hw(u8, &'a [u8]),
}

impl<'a> KeyRef<'a> {
    fn of_lease(l: &'a Lease) -> Self {
        match &l.client_id {
            Some(id) => Self::Id(id),
            None => Self::Hw(l.htype, &l.chaddr),
        }
    }

    fn of_key(k: &'a ClientKey) -> Self {
        match k {
            ClientKey::Id(id) => Self::Id(id),
            ClientKey::Hw(t, c) => Self::Hw(*t, c),
        }
    }
}

#[derive(Default)]
pub struct Records {
    all: Vec<Lease>,
    by_addr: HashTable<u32>,
    /// Records that bind their client, at most one per subnet and client: the latest put.
    by_client: HashTable<u32>,
    /// Every record with a hardware address, and with a client identifier: several may share
    /// one (a client's old records, or its records in other subnets).
    by_chaddr: HashTable<u32>,
    by_client_id: HashTable<u32>,
    /// Every address, in order.
    ordered: std::collections::BTreeSet<Ipv4Addr>,
    hasher: DefaultHashBuilder,
}

/// The operator's lookup keys of a record.
fn chaddr_of(l: &Lease) -> Option<&[u8]> {
    (!l.chaddr.is_empty()).then_some(l.chaddr.as_slice())
}

fn client_id_of(l: &Lease) -> Option<&[u8]> {
    l.client_id.as_deref()
}

/// Adds or removes position `pos` under `key` in a table where keys repeat.
fn multi_insert(
    t: &mut HashTable<u32>,
    h: &DefaultHashBuilder,
    all: &[Lease],
    key_of: fn(&Lease) -> Option<&[u8]>,
    pos: u32,
) {
    if let Some(k) = key_of(&all[at(pos)]) {
        t.insert_unique(h.hash_one(k), pos, |&j| key_of(&all[at(j)]).map_or(0, |k| h.hash_one(k)));
    }
}

fn multi_remove(t: &mut HashTable<u32>, h: &DefaultHashBuilder, key: Option<&[u8]>, pos: u32) {
    if let Some(k) = key
        && let Ok(e) = t.find_entry(h.hash_one(k), |&j| j == pos)
    {
        e.remove();
    }
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").field("len", &self.all.len()).finish_non_exhaustive()
    }
}

fn addr_hash(h: &DefaultHashBuilder, a: Ipv4Addr) -> u64 {
    h.hash_one(u32::from(a))
}

fn client_hash(h: &DefaultHashBuilder, subnet: u32, k: KeyRef<'_>) -> u64 {
    let mut s = h.build_hasher();
    subnet.hash(&mut s);
    k.hash(&mut s);
    s.finish()
}

/// The entry for `subnet` and `key` in the client table. A function of the fields it needs, not
/// a method: the key may borrow from `all` while the table is borrowed mutably.
fn client_entry<'t>(
    by_client: &'t mut HashTable<u32>,
    all: &[Lease],
    hasher: &DefaultHashBuilder,
    subnet: u32,
    key: KeyRef<'_>,
) -> hashbrown::hash_table::Entry<'t, u32> {
    let same = |&j: &u32| {
        let o = &all[at(j)];
        o.subnet == subnet && KeyRef::of_lease(o) == key
    };
    let rehash = |&j: &u32| {
        let o = &all[at(j)];
        client_hash(hasher, o.subnet, KeyRef::of_lease(o))
    };
    by_client.entry(client_hash(hasher, subnet, key), same, rehash)
}

/// Makes the record at `pos` the one that answers for its client in its subnet.
fn bind(by_client: &mut HashTable<u32>, all: &[Lease], hasher: &DefaultHashBuilder, pos: u32) {
    use hashbrown::hash_table::Entry;
    // The key is borrowed from the record while only the table is borrowed mutably: no copy
    // of it (a load binds a million).
    let l = &all[at(pos)];
    match client_entry(by_client, all, hasher, l.subnet, KeyRef::of_lease(l)) {
        Entry::Occupied(mut e) => *e.get_mut() = pos,
        Entry::Vacant(e) => {
            e.insert(pos);
        }
    }
}

fn at(i: u32) -> usize {
    i as usize
}

impl Records {
    /// The tables over `all` at once, for a store's records read in address order (each
    /// address once): each table is built in one pass on its own thread, where putting the
    /// records one by one kept them all in one thread's cache misses (most of a restart at a
    /// million). `binds` says which records bind their client; of two binding one client in
    /// one subnet, the later (higher address) answers, as when put in order.
    pub(super) fn bulk(all: Vec<Lease>, binds: fn(&Lease) -> bool) -> Self {
        let hasher = DefaultHashBuilder::default();
        let count = all.len();
        let (hasher_ref, records) = (&hasher, &all[..]);
        let positions = || (0..count).map(|i| u32::try_from(i).expect("fewer than 2^32 records"));
        let multi = |key_of: fn(&Lease) -> Option<&[u8]>| {
            let mut table = HashTable::with_capacity(count);
            for pos in positions() {
                multi_insert(&mut table, hasher_ref, records, key_of, pos);
            }
            table
        };
        let (by_addr, by_client, by_chaddr, by_client_id, ordered) = std::thread::scope(|scope| {
            let by_chaddr = scope.spawn(|| multi(chaddr_of));
            let by_client_id = scope.spawn(|| multi(client_id_of));
            let by_client = scope.spawn(|| {
                let mut table = HashTable::with_capacity(count);
                for pos in positions().filter(|&p| binds(&records[at(p)])) {
                    bind(&mut table, records, hasher_ref, pos);
                }
                table
            });
            let mut by_addr = HashTable::with_capacity(count);
            for pos in positions() {
                let hash = addr_hash(hasher_ref, records[at(pos)].address);
                by_addr
                    .insert_unique(hash, pos, |&j| addr_hash(hasher_ref, records[at(j)].address));
            }
            let ordered = records.iter().map(|l| l.address).collect();
            let join = |handle: std::thread::ScopedJoinHandle<'_, HashTable<u32>>| {
                handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            };
            (by_addr, join(by_client), join(by_chaddr), join(by_client_id), ordered)
        });
        Self { all, by_addr, by_client, by_chaddr, by_client_id, ordered, hasher }
    }

    fn position(&self, a: Ipv4Addr) -> Option<u32> {
        let all = &self.all;
        self.by_addr.find(addr_hash(&self.hasher, a), |&i| all[at(i)].address == a).copied()
    }

    #[must_use]
    pub fn get(&self, a: Ipv4Addr) -> Option<&Lease> {
        self.position(a).map(|i| &self.all[at(i)])
    }

    /// For fields no table is keyed by: not the address, state or client.
    pub(super) fn get_mut(&mut self, a: Ipv4Addr) -> Option<&mut Lease> {
        self.position(a).map(|i| &mut self.all[at(i)])
    }

    #[must_use]
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.position(a).is_some()
    }

    pub fn values(&self) -> impl Iterator<Item = &Lease> {
        self.all.iter()
    }

    /// Records in address order, from the first address after `after`.
    pub fn from_address(&self, after: Option<Ipv4Addr>) -> impl Iterator<Item = &Lease> {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, Excluded);
        self.ordered.range((start, Unbounded)).filter_map(|a| self.get(*a))
    }

    /// Every record with this hardware address (`chaddr`), or with this client identifier.
    pub fn with_chaddr<'a>(&'a self, chaddr: &'a [u8]) -> impl Iterator<Item = &'a Lease> {
        self.with(&self.by_chaddr, chaddr_of, chaddr)
    }

    pub fn with_client_id<'a>(&'a self, id: &'a [u8]) -> impl Iterator<Item = &'a Lease> {
        self.with(&self.by_client_id, client_id_of, id)
    }

    fn with<'a>(
        &'a self,
        t: &'a HashTable<u32>,
        key_of: fn(&Lease) -> Option<&[u8]>,
        key: &'a [u8],
    ) -> impl Iterator<Item = &'a Lease> {
        t.iter_hash(self.hasher.hash_one(key))
            .map(|&i| &self.all[at(i)])
            .filter(move |l| key_of(l) == Some(key))
    }

    /// The record binding `key` in `subnet`, if one does.
    pub(super) fn of_client(&self, subnet: u32, key: &ClientKey) -> Option<&Lease> {
        let k = KeyRef::of_key(key);
        let all = &self.all;
        let hit = |&i: &u32| {
            let l = &all[at(i)];
            l.subnet == subnet && KeyRef::of_lease(l) == k
        };
        self.by_client.find(client_hash(&self.hasher, subnet, k), hit).map(|&i| &all[at(i)])
    }

    /// Puts `lease` in place of the record for its address; `binds` says whether it binds its
    /// client (and so answers [`Records::of_client`]).
    pub(super) fn put(&mut self, lease: Lease, binds: bool) {
        use hashbrown::hash_table::Entry;
        let pos = if let Some(pos) = self.position(lease.address) {
            // The old record's client no longer finds this address (unless bound again
            // below). The table borrows the records, so the old one is moved out first.
            let old = std::mem::replace(&mut self.all[at(pos)], lease);
            let key = KeyRef::of_lease(&old);
            if let Entry::Occupied(e) =
                client_entry(&mut self.by_client, &self.all, &self.hasher, old.subnet, key)
                && *e.get() == pos
            {
                e.remove();
            }
            let (all, h) = (&self.all, &self.hasher);
            for (t, key_of) in [
                (&mut self.by_chaddr, chaddr_of as fn(&Lease) -> Option<&[u8]>),
                (&mut self.by_client_id, client_id_of),
            ] {
                if key_of(&old) != key_of(&all[at(pos)]) {
                    multi_remove(t, h, key_of(&old), pos);
                    multi_insert(t, h, all, key_of, pos);
                }
            }
            pos
        } else {
            let pos = u32::try_from(self.all.len()).expect("fewer than 2^32 records");
            let hash = addr_hash(&self.hasher, lease.address);
            self.all.push(lease);
            let (all, hasher) = (&self.all, &self.hasher);
            self.by_addr.insert_unique(hash, pos, |&j| addr_hash(hasher, all[at(j)].address));
            multi_insert(&mut self.by_chaddr, hasher, all, chaddr_of, pos);
            multi_insert(&mut self.by_client_id, hasher, all, client_id_of, pos);
            self.ordered.insert(all[at(pos)].address);
            pos
        };
        if binds {
            bind(&mut self.by_client, &self.all, &self.hasher, pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LeaseState;

    fn lease(last: u8, mac: u8, state: LeaseState) -> Lease {
        let mut l = Lease::new(Ipv4Addr::new(10, 0, 0, last), state, 0, 100);
        l.chaddr = [2, 0, 0, 0, 0, mac].into();
        l
    }

    fn hw(mac: u8) -> ClientKey {
        ClientKey::Hw(1, vec![2, 0, 0, 0, 0, mac])
    }

    #[test]
    fn a_client_is_found_at_its_latest_binding_and_a_replaced_record_forgets_it() {
        let mut r = Records::default();
        r.put(lease(10, 1, LeaseState::Active), true);
        r.put(lease(11, 2, LeaseState::Active), true);
        assert_eq!(r.of_client(0, &hw(1)).map(|l| l.address.octets()[3]), Some(10));
        // Client 1 is bound again elsewhere: the later binding answers.
        r.put(lease(12, 1, LeaseState::Active), true);
        assert_eq!(r.of_client(0, &hw(1)).map(|l| l.address.octets()[3]), Some(12));
        // .12 goes to client 3: client 1 is found nowhere (.10 no longer answers for it).
        r.put(lease(12, 3, LeaseState::Active), true);
        assert!(r.of_client(0, &hw(1)).is_none());
        assert_eq!(r.of_client(0, &hw(3)).map(|l| l.address.octets()[3]), Some(12));
        // A record that binds no one (FREE) keeps its address but answers for no client.
        r.put(lease(11, 2, LeaseState::Free), false);
        assert!(r.of_client(0, &hw(2)).is_none());
        assert!(r.contains(Ipv4Addr::new(10, 0, 0, 11)));
        assert_eq!(r.values().count(), 3);
        // The operator's lookups follow the records: .12 is client 3's now.
        let at = |it: Vec<&Lease>| it.iter().map(|l| l.address.octets()[3]).collect::<Vec<_>>();
        assert_eq!(at(r.with_chaddr(&[2, 0, 0, 0, 0, 1]).collect()), [10]);
        assert_eq!(at(r.with_chaddr(&[2, 0, 0, 0, 0, 3]).collect()), [12]);
        let order = at(r.from_address(None).collect());
        assert_eq!(order, [10, 11, 12]);
        assert_eq!(at(r.from_address(Some(Ipv4Addr::new(10, 0, 0, 10))).collect()), [11, 12]);
        let mut with_id = lease(13, 4, LeaseState::Active);
        with_id.client_id = Some([1, 2, 3].into());
        r.put(with_id, true);
        assert_eq!(at(r.with_client_id(&[1, 2, 3]).collect()), [13]);
        r.put(lease(13, 4, LeaseState::Active), true);
        assert!(r.with_client_id(&[1, 2, 3]).next().is_none(), "the identifier went with it");
        // Another subnet's binding of the same client is another entry.
        let mut other = lease(20, 3, LeaseState::Active);
        other.subnet = 1;
        r.put(other, true);
        assert_eq!(r.of_client(0, &hw(3)).map(|l| l.address.octets()[3]), Some(12));
        assert_eq!(r.of_client(1, &hw(3)).map(|l| l.address.octets()[3]), Some(20));
    }

    #[test]
    fn records_built_at_once_answer_as_records_put_one_by_one() {
        // Clients bound twice in one subnet (the later address answers), in two subnets, by
        // identifier and by hardware address, and records that bind no one.
        let leases: Vec<Lease> = (0..300u32)
            .map(|i| {
                let state = if i % 7 == 0 { LeaseState::Free } else { LeaseState::Active };
                let mut l = lease(0, u8::try_from(i % 50).unwrap(), state);
                l.address = Ipv4Addr::from(0x0a00_0000 + i);
                l.subnet = i % 2;
                if i % 3 == 0 {
                    l.client_id = Some([1, 9, u8::try_from(i % 40).unwrap()].into());
                }
                l
            })
            .collect();
        let binds = |l: &Lease| l.state == LeaseState::Active;
        let bulk = Records::bulk(leases.clone(), binds);
        let mut one = Records::default();
        for l in &leases {
            one.put(l.clone(), binds(l));
        }
        let addrs = |it: &mut dyn Iterator<Item = &Lease>| {
            let mut v: Vec<Ipv4Addr> = it.map(|l| l.address).collect();
            v.sort();
            v
        };
        for l in &leases {
            let key = ClientKey::of_lease(l);
            for subnet in 0..2 {
                assert_eq!(
                    bulk.of_client(subnet, &key).map(|l| l.address),
                    one.of_client(subnet, &key).map(|l| l.address),
                    "{key:?} in subnet {subnet}"
                );
            }
            assert_eq!(bulk.get(l.address), Some(l));
            assert_eq!(
                addrs(&mut bulk.with_chaddr(&l.chaddr)),
                addrs(&mut one.with_chaddr(&l.chaddr))
            );
            if let Some(id) = &l.client_id {
                assert_eq!(addrs(&mut bulk.with_client_id(id)), addrs(&mut one.with_client_id(id)));
            }
        }
        assert!(
            bulk.from_address(None)
                .map(|l| l.address)
                .eq(one.from_address(None).map(|l| l.address))
        );
        // And the bulk-built tables take later puts as the others do.
        let mut moved = bulk;
        moved.put(lease(0, 1, LeaseState::Active), true);
        assert_eq!(moved.of_client(0, &hw(1)).map(|l| l.address), Some(Ipv4Addr::new(10, 0, 0, 0)));
    }
}

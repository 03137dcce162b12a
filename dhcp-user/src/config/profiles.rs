//! Reply profiles: the options a reply carries, for every place a lease can be in (its subnet,
//! the pool holding the address, the client's class, the reservation naming it), computed once
//! from the config. The slow path builds replies from a lease's profile, and the kernel holds
//! each profile's block, so a renewal answered by XDP carries exactly what the slow path sends.
//!
//! Scopes merge narrowest last: global, subnet, pool, class, reservation — a code set in a
//! narrower scope replaces the wider one's.
use std::{collections::HashMap, net::Ipv4Addr};

use super::classes::{Class, ClassId};
use super::model::{Options, Subnet, SubnetId, ValidationError};

/// Profiles a config may produce (distinct option sets): the kernel's table has a slot each.
pub const PROFILES_MAX: usize = dhcp_common::maps::PROFILES_MAX as usize;

/// The bytes a reply has for the options of a profile: 576 (RFC 2131 §2: what every client
/// takes) less IP and UDP headers (28), the fixed BOOTP fields and cookie (240), and what every
/// ACK carries besides (53, 54, 51, 58, 59: 27 bytes; END: 1). The client's own 61 and 82,
/// echoed, come on top: what then does not fit goes by the rules of `packet::encode_reply`.
pub const PROFILE_ROOM: usize = 576 - 28 - 240 - 27 - 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The subnet whose timers (T1, T2) the profile's ACKs carry.
    pub subnet: SubnetId,
    /// Every option but those each reply sets itself, the mask (1) included.
    pub options: Options,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    subnet: SubnetId,
    pool: Option<u16>,
    class: Option<ClassId>,
    reservation: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profiles {
    list: Vec<Profile>,
    by_key: HashMap<Key, u32>,
}

/// Encoded length of `o` in a reply: codes, lengths and values, long ones split (RFC 3396).
#[must_use]
pub fn encoded_len(o: &Options) -> usize {
    o.values().map(|v| v.len() + 2 * v.len().div_ceil(255).max(1)).sum()
}

impl Profiles {
    /// Every profile the config can produce; an option set that cannot fit a 576-byte reply
    /// is refused against the narrowest scope it comes from.
    pub fn build(
        subnets: &[Subnet],
        classes: &[Class],
        class_options: &[Options],
        global: &Options,
    ) -> Result<Self, ValidationError> {
        let mut p = Profiles::default();
        let mut seen: HashMap<(u32, u32, Options), u32> = HashMap::new();
        let class_slots: Vec<Option<ClassId>> =
            std::iter::once(None).chain(classes.iter().map(|c| Some(c.id))).collect();
        for (i, s) in subnets.iter().enumerate() {
            let pools: Vec<Option<u16>> = std::iter::once(None)
                .chain((0..s.pool_options.len()).map(|k| {
                    #[expect(clippy::cast_possible_truncation, reason = "a subnet has few pools")]
                    Some(k as u16)
                }))
                .collect();
            let mut keys: Vec<(Key, String)> = Vec::new();
            for &pool in &pools {
                for &class in &class_slots {
                    let key = Key { subnet: s.id, pool, class, reservation: None };
                    keys.push((key, scope_key(i, s, key)));
                }
            }
            for (j, r) in s.reservations.iter().enumerate() {
                if r.options.is_empty() {
                    continue;
                }
                let pool = s.pool_of(r.address).and_then(|x| x.options);
                for &class in &class_slots {
                    #[expect(clippy::cast_possible_truncation, reason = "reservations fit a u32")]
                    let key = Key { subnet: s.id, pool, class, reservation: Some(j as u32) };
                    keys.push((key, format!("subnet[{i}].reservation[{j}].options")));
                }
            }
            for (key, at) in keys {
                let mut o = global.clone();
                o.extend(s.options.clone());
                if let Some(k) = key.pool {
                    o.extend(s.pool_options[usize::from(k)].clone());
                }
                if let Some(c) = key.class {
                    o.extend(class_options[usize::from(c.0)].clone());
                }
                if let Some(r) = key.reservation {
                    o.extend(s.reservations[r as usize].options.clone());
                }
                let need = encoded_len(&o);
                if need > PROFILE_ROOM {
                    let class = key.class.map_or(String::new(), |c| {
                        format!(" for class {}", classes[usize::from(c.0)].name)
                    });
                    return Err(ValidationError {
                        key: at,
                        message: format!(
                            "the options of subnet[{i}]{class} take {need} bytes in a reply, \
                             more than the {PROFILE_ROOM} a 576-byte reply has room for"
                        ),
                    });
                }
                let next = u32::try_from(p.list.len()).unwrap_or(u32::MAX);
                let id = *seen.entry((s.t1, s.t2, o.clone())).or_insert_with(|| {
                    p.list.push(Profile { subnet: s.id, options: o });
                    next
                });
                p.by_key.insert(key, id);
            }
            if p.list.len() > PROFILES_MAX {
                return Err(ValidationError {
                    key: format!("subnet[{i}]"),
                    message: format!(
                        "subnets, pools, classes and reservations make more than \
                         {PROFILES_MAX} distinct sets of options"
                    ),
                });
            }
        }
        Ok(p)
    }

    /// The profile of a lease of `a` in `s` for a client of `class`.
    #[must_use]
    pub fn lookup(&self, s: &Subnet, a: Ipv4Addr, class: Option<ClassId>) -> u32 {
        let pool = s.pool_of(a).and_then(|p| p.options);
        let reservation = s
            .reservations
            .iter()
            .position(|r| r.address == a && !r.options.is_empty())
            .and_then(|j| u32::try_from(j).ok());
        let key = Key { subnet: s.id, pool, class, reservation };
        self.by_key
            .get(&key)
            .or_else(|| {
                self.by_key.get(&Key { subnet: s.id, pool: None, class: None, reservation: None })
            })
            .copied()
            .unwrap_or(0)
    }

    #[must_use]
    pub fn get(&self, id: u32) -> Option<&Profile> {
        self.list.get(id as usize)
    }

    /// Each profile with its index (its slot in the kernel's table).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Profile)> {
        self.list.iter().enumerate().map(|(i, p)| (u32::try_from(i).unwrap_or(u32::MAX), p))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The narrowest key a combination's options come from, for an error about it.
fn scope_key(i: usize, s: &Subnet, key: Key) -> String {
    match (key.class, key.pool) {
        (Some(c), _) => format!("class[{}].options", c.0),
        (None, Some(_)) => format!("subnet[{i}].pools"),
        (None, None) if s.options.len() > 1 => format!("subnet[{i}].options"),
        (None, None) => "options".into(),
    }
}

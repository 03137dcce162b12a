//! Client classes: declarative matches on what a request says about the device and its line.
//!
//! A client is in the first class, in the order of the file, whose every condition it meets
//! (first match, as a firewall rule list reads). The class picks pools (a pool allows or
//! denies classes) and options, and is decided when a binding is made: renewals keep the
//! class their binding was made with, so the kernel can renew them with that class's reply
//! profile (see docs/config.md, "Client classes").

/// A class's position in [`super::Config::classes`]; at most [`CLASSES_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(pub u16);

/// Classes a config may declare: pools keep their allow and deny lists as bit sets.
pub const CLASSES_MAX: usize = 64;

/// A set of classes, one bit per [`ClassId`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassSet(pub u64);

impl ClassSet {
    #[must_use]
    pub fn contains(self, c: ClassId) -> bool {
        self.0 & (1u64 << c.0) != 0
    }

    #[must_use]
    pub fn with(self, c: ClassId) -> Self {
        Self(self.0 | 1u64 << c.0)
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Bytes a condition compares with: the whole value, or its first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub bytes: Vec<u8>,
    pub prefix: bool,
}

impl Pattern {
    #[must_use]
    pub fn matches(&self, v: &[u8]) -> bool {
        if self.prefix { v.starts_with(&self.bytes) } else { v == self.bytes.as_slice() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Option 60.
    VendorClass(Pattern),
    /// Option 77, as sent or any of its RFC 3004 instances.
    UserClass(Pattern),
    /// Option 82 sub-option 1.
    CircuitId(Pattern),
    /// Option 82 sub-option 2.
    RemoteId(Pattern),
    /// The first bytes of an Ethernet chaddr (an OUI, say).
    MacPrefix(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub id: ClassId,
    pub name: String,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// The class's own lease limits; a key it does not set is the file's.
    pub limits: Option<super::model::Limits>,
}

/// What a request says that classes are matched on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traits<'a> {
    pub vendor_class: Option<&'a [u8]>,
    pub user_class: Option<&'a [u8]>,
    pub circuit_id: Option<&'a [u8]>,
    pub remote_id: Option<&'a [u8]>,
    /// `None` unless the hardware type is Ethernet.
    pub mac: Option<&'a [u8]>,
}

impl Class {
    #[must_use]
    pub fn matches(&self, t: &Traits<'_>) -> bool {
        self.conditions.iter().all(|c| match c {
            Condition::VendorClass(p) => t.vendor_class.is_some_and(|v| p.matches(v)),
            Condition::UserClass(p) => t.user_class.is_some_and(|v| {
                p.matches(v) || user_class_items(v).is_some_and(|mut i| i.any(|x| p.matches(x)))
            }),
            Condition::CircuitId(p) => t.circuit_id.is_some_and(|v| p.matches(v)),
            Condition::RemoteId(p) => t.remote_id.is_some_and(|v| p.matches(v)),
            Condition::MacPrefix(m) => t.mac.is_some_and(|v| v.starts_with(m)),
        })
    }
}

/// RFC 3004's instances (length, data)*, when the whole value is made of them; many clients
/// send the class as plain text instead.
fn user_class_items(v: &[u8]) -> Option<impl Iterator<Item = &[u8]>> {
    let mut items = Vec::new();
    let mut rest = v;
    while let [len, tail @ ..] = rest {
        let len = usize::from(*len);
        if len == 0 || tail.len() < len {
            return None;
        }
        items.push(&tail[..len]);
        rest = &tail[len..];
    }
    (!items.is_empty()).then(|| items.into_iter())
}

/// The first class `t` matches.
#[must_use]
pub fn classify(classes: &[Class], t: &Traits<'_>) -> Option<ClassId> {
    classes.iter().find(|c| c.matches(t)).map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(id: u16, conditions: Vec<Condition>) -> Class {
        Class { id: ClassId(id), name: format!("c{id}"), conditions, limits: None }
    }

    fn exact(b: &[u8]) -> Pattern {
        Pattern { bytes: b.to_vec(), prefix: false }
    }

    #[test]
    fn the_first_class_whose_every_condition_holds_wins() {
        let stb = class(
            0,
            vec![
                Condition::VendorClass(Pattern { bytes: b"IPTV".to_vec(), prefix: true }),
                Condition::MacPrefix(vec![0x00, 0x1a, 0x2b]),
            ],
        );
        let port = class(1, vec![Condition::CircuitId(exact(b"olt1 0/1/1:10"))]);
        let classes = [stb, port];
        let mut t = Traits {
            vendor_class: Some(b"IPTV-STB 2.1"),
            mac: Some(&[0x00, 0x1a, 0x2b, 1, 2, 3]),
            circuit_id: Some(b"olt1 0/1/1:10"),
            ..Traits::default()
        };
        assert_eq!(classify(&classes, &t), Some(ClassId(0)));
        t.mac = Some(&[0x02, 0, 0, 1, 2, 3]);
        assert_eq!(classify(&classes, &t), Some(ClassId(1)));
        t.circuit_id = Some(b"olt1 0/1/1:1");
        assert_eq!(classify(&classes, &t), None);
    }

    #[test]
    fn user_class_matches_plain_text_or_any_rfc3004_instance() {
        let voip = class(0, vec![Condition::UserClass(exact(b"voip"))]);
        let t = |v: &'static [u8]| Traits { user_class: Some(v), ..Traits::default() };
        assert!(voip.matches(&t(b"voip")));
        assert!(voip.matches(&t(b"\x03abc\x04voip")));
        assert!(!voip.matches(&t(b"\x04voi")));
        assert!(!voip.matches(&Traits::default()));
    }
}

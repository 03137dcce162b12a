//! A client identifier (option 61) as a lease record keeps it.
use std::hash::{Hash, Hasher};

/// Bytes held in the record itself up to this length: a type byte and a MAC (7), a DUID-based
/// identifier of RFC 4361 with a short DUID (up to 22), each without an allocation.
const INLINE: usize = 22;

/// Option 61's value, type byte included. Nearly every identifier seen on an access network is
/// short (a type byte and the MAC); kept inline those cost no heap block, which at a million
/// leases was a `Vec`'s 24 bytes and a 32-byte allocation each. Longer ones go to the heap.
/// Derefs to the bytes; equality and hashing are those of the bytes.
#[derive(Clone)]
pub struct ClientId(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl ClientId {
    #[must_use]
    pub fn new(b: &[u8]) -> Self {
        Self(match u8::try_from(b.len()) {
            Ok(len) if b.len() <= INLINE => {
                let mut buf = [0; INLINE];
                buf[..b.len()].copy_from_slice(b);
                Repr::Inline { len, buf }
            }
            _ => Repr::Heap(b.into()),
        })
    }
}

impl std::ops::Deref for ClientId {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }
}

impl AsRef<[u8]> for ClientId {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for ClientId {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for ClientId {}

impl Hash for ClientId {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (**self).hash(h);
    }
}

impl PartialEq<[u8]> for ClientId {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<u8>> for ClientId {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

impl std::fmt::Debug for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x?}", &**self)
    }
}

impl From<&[u8]> for ClientId {
    fn from(b: &[u8]) -> Self {
        Self::new(b)
    }
}

impl From<Vec<u8>> for ClientId {
    fn from(b: Vec<u8>) -> Self {
        Self::new(&b)
    }
}

impl<const N: usize> From<[u8; N]> for ClientId {
    fn from(b: [u8; N]) -> Self {
        Self::new(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_identifiers_read_back_as_given() {
        for n in [0, 1, 7, INLINE, INLINE + 1, 255] {
            let b: Vec<u8> = (0..n).map(|i| u8::try_from(i).unwrap()).collect();
            let id = ClientId::new(&b);
            assert_eq!(&*id, &b[..], "{n} bytes");
            assert_eq!(matches!(id.0, Repr::Inline { .. }), n <= INLINE, "{n} bytes");
        }
    }

    #[test]
    fn costs_no_more_than_the_vec_it_replaced() {
        assert_eq!(std::mem::size_of::<Option<ClientId>>(), std::mem::size_of::<Vec<u8>>());
    }

    #[test]
    fn an_inline_and_a_heap_copy_of_the_same_bytes_are_one_key() {
        use std::collections::HashSet;
        let b = [1, 2, 3];
        let heap = ClientId(Repr::Heap(b[..].into()));
        assert_eq!(heap, ClientId::new(&b));
        assert_eq!(HashSet::from([heap]).len(), HashSet::from([ClientId::new(&b)]).len());
        assert!(HashSet::from([ClientId::new(&b)]).contains(&ClientId(Repr::Heap(b[..].into()))));
    }
}

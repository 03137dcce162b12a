//! Where each key sits in the source, so errors can name a line.
//!
//! Deserialization errors carry a byte span but no key; validation errors carry a key but no
//! span. One walk over toml's span-preserving document gives both directions, which keeps the
//! wire structs free of `Spanned` wrappers and lets validation stay a plain `TryFrom`.
use std::ops::Range;

use toml::de::{DeTable, DeValue};

struct Entry {
    path: String,
    key: Range<usize>,
    value: Range<usize>,
}

pub(crate) struct SpanIndex<'a> {
    text: &'a str,
    entries: Vec<Entry>,
}

impl<'a> SpanIndex<'a> {
    /// Indexes `text`; a document that does not parse yields an empty index (its parse error
    /// carries its own span).
    pub(crate) fn new(text: &'a str) -> Self {
        let mut entries = Vec::new();
        if let Ok(doc) = DeTable::parse(text) {
            walk_table(doc.get_ref(), "", &mut entries);
        }
        Self { text, entries }
    }

    /// 1-based line of byte offset `at`.
    #[expect(clippy::naive_bytecount, reason = "a config file is small; not worth a crate")]
    pub(crate) fn line_of(&self, at: usize) -> usize {
        let at = at.min(self.text.len());
        self.text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// The deepest key whose key or value covers `at`.
    pub(crate) fn path_at(&self, at: usize) -> Option<&str> {
        self.entries
            .iter()
            .filter(|e| e.key.contains(&at) || e.value.contains(&at) || e.value.start == at)
            .min_by_key(|e| e.value.len())
            .map(|e| e.path.as_str())
    }

    /// Line of `path`'s value, or of its closest ancestor present in the file (a key the model
    /// found missing is reported where its table is).
    pub(crate) fn line_of_path(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == p) {
                let start = if e.key.is_empty() { e.value.start } else { e.key.start };
                return Some(self.line_of(start));
            }
            p = &p[..p.rfind(['.', '['])?];
        }
    }
}

fn walk_table(t: &DeTable<'_>, prefix: &str, out: &mut Vec<Entry>) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        walk_value(v.get_ref(), &path, k.span(), v.span(), out);
    }
}

fn walk_value(
    v: &DeValue<'_>,
    path: &str,
    key: Range<usize>,
    value: Range<usize>,
    out: &mut Vec<Entry>,
) {
    out.push(Entry { path: path.to_owned(), key, value });
    match v {
        DeValue::Table(t) => walk_table(t, path, out),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                walk_value(item.get_ref(), &p, 0..0, item.span(), out);
            }
        }
        _ => {}
    }
}

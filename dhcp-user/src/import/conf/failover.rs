//! `failover peer "name" { ... }`: each statement is one key of an xdhcp `[[failover]]`
//! relationship, which mirrors them one to one (docs/config.md, `[[failover]]`). Each peer is
//! one relationship; a pool's `failover peer "name";` becomes its subnet's `failover`.
use toml::Value;

use super::super::{Loc, SyntaxError, tree::Stmt};
use super::scope::malformed;
use super::walk::Walker;

#[derive(Debug)]
pub(super) struct Peer {
    pub name: String,
    pub loc: Loc,
    pub table: toml::Table,
    /// Where each key was set, for validation errors (keys without the `failover.` part).
    pub lines: Vec<(String, Loc)>,
}

/// Statements taking one number: the dhcpd words and xdhcp's key.
const NUMBERS: &[(&[&str], &str)] = &[
    (&["port"], "port"),
    (&["peer", "port"], "peer_port"),
    (&["max-response-delay"], "max_response_delay"),
    (&["max-unacked-updates"], "max_unacked_updates"),
    (&["mclt"], "mclt"),
    (&["split"], "split"),
    (&["load", "balance", "max", "seconds"], "load_balance_max_seconds"),
    (&["auto-partner-down"], "auto_partner_down"),
    (&["max-lease-misbalance"], "max_lease_misbalance"),
    (&["max-lease-ownership"], "max_lease_ownership"),
    (&["min-balance"], "min_balance"),
    (&["max-balance"], "max_balance"),
];

impl Walker {
    pub(super) fn failover_peer(&mut self, s: &Stmt) -> Result<(), SyntaxError> {
        let name = peer_name(s)?;
        if s.words.len() != 3 {
            return Err(malformed(s, "expected `failover peer \"name\" { ... }`"));
        }
        if self.peers.iter().any(|p| p.name == name) {
            return Err(malformed(s, &format!("failover peer {name:?} is declared twice")));
        }
        let mut table = toml::Table::new();
        let mut lines = Vec::new();
        table.insert("name".into(), Value::String(name.clone()));
        for st in s.block.as_deref().unwrap_or_default() {
            let mut set = |k: &str, v: Value| {
                table.insert(k.to_owned(), v);
                lines.push((k.to_owned(), st.loc().clone()));
            };
            if st.words.len() == 1 && (st.starts(&["primary"]) || st.starts(&["secondary"])) {
                let role = if st.starts(&["primary"]) { "primary" } else { "secondary" };
                set("role", Value::String(role.into()));
            } else if st.starts(&["address"]) || st.starts(&["peer", "address"]) {
                let (key, at) =
                    if st.starts(&["address"]) { ("address", 1) } else { ("peer_address", 2) };
                let [t] = &st.words[at..] else {
                    return Err(malformed(st, "expected one address"));
                };
                match super::values::ip(t) {
                    Ok(a) => set(key, Value::String(a.to_string())),
                    Err(w) => self.why(st, w)?,
                }
            } else if st.starts(&["hba"]) {
                let [_, t] = st.words.as_slice() else {
                    return Err(malformed(st, "expected 32 hex bytes"));
                };
                let b =
                    super::values::bytes(t).map_err(|_| malformed(st, "expected 32 hex bytes"))?;
                if b.len() != 32 {
                    return Err(malformed(st, &format!("{} bytes; hba has 32", b.len())));
                }
                let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
                set("hba", Value::String(hex.join(":")));
            } else if let Some((words, key)) = NUMBERS.iter().find(|(w, _)| st.starts(w)) {
                let [t] = &st.words[words.len()..] else {
                    return Err(malformed(st, "expected one number"));
                };
                let Some(n) = t.word().and_then(|w| w.parse::<i64>().ok()).filter(|n| *n >= 0)
                else {
                    return Err(malformed(st, &format!("{} is not a number", t.show())));
                };
                set(key, Value::Integer(n));
            } else {
                self.refuse(st, "not a statement of xdhcp's [failover]");
            }
        }
        self.peers.push(Peer { name, loc: s.loc().clone(), table, lines });
        Ok(())
    }

    /// `failover peer "name";` in a pool: the peer's name, declared before.
    pub(super) fn pool_peer(&mut self, s: &Stmt) -> Result<String, SyntaxError> {
        let name = peer_name(s)?;
        if self.peers.iter().any(|p| p.name == name) {
            Ok(name)
        } else {
            Err(malformed(s, &format!("no failover peer {name:?} is declared before this pool")))
        }
    }
}

fn peer_name(s: &Stmt) -> Result<String, SyntaxError> {
    match s.words.get(2).map(|t| &t.tok) {
        Some(super::super::lex::Tok::Str(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(super::super::lex::Tok::Word(w)) => Ok(w.clone()),
        _ => Err(malformed(s, "expected the peer's name")),
    }
}

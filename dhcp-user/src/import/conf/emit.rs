//! The walked declarations written as xdhcp's config file, each table remembered with the
//! dhcpd.conf line it came from.
//!
//! dhcpd's scopes that xdhcp does not have (groups, shared networks, subclasses' parents)
//! are folded into the scopes they contain; xdhcp's own (the file, a subnet, a pool, a class,
//! a reservation) keep what they set, and xdhcp inherits between them as dhcpd does.
use std::{fmt::Write as _, net::Ipv4Addr};

use toml::{Table, Value};

use super::super::Loc;
use super::walk::{HostDecl, Kind, Model, PoolDecl};
use super::{ImportError, Inputs, Untranslated};

/// dhcpd's lease times when the file sets none (dhcpd.conf(5)).
const ISC_DEFAULT_LEASE: u32 = 43_200;
const ISC_MAX_LEASE: u32 = 86_400;
const ISC_MIN_LEASE: u32 = 300;

pub(super) struct Emitted {
    pub toml: String,
    /// Key paths (`subnet[1].pools[0]`) and where they were declared.
    origins: Vec<(String, Loc)>,
}

impl Emitted {
    /// The dhcpd.conf line of `key`, or of its closest ancestor with one.
    pub(super) fn origin_of(&self, key: &str) -> Option<Loc> {
        let mut k = key;
        loop {
            if let Some((_, l)) = self.origins.iter().find(|(p, _)| p == k) {
                return Some(l.clone());
            }
            k = &k[..k.rfind(['.', '['])?];
        }
    }
}

struct Out<'a> {
    m: &'a Model,
    origins: Vec<(String, Loc)>,
    refused: Vec<Untranslated>,
}

pub(super) fn emit(m: &mut Model, inputs: &Inputs) -> Result<Emitted, ImportError> {
    if inputs.interfaces.is_empty() {
        return Err(ImportError::Missing(
            "dhcpd takes its interfaces from its command line: name them with --interface".into(),
        ));
    }
    let peer_address = m
        .peers
        .first()
        .and_then(|p| p.table.get("address"))
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<Ipv4Addr>().ok());
    let Some(server_id) = inputs.server_id.or(m.server_id).or(peer_address) else {
        return Err(ImportError::Missing(
            "dhcpd answers with the address of the interface a request came in on; xdhcp needs \
             one server_id: give it with --server-id (or a server-identifier in the file)"
                .into(),
        ));
    };
    let mut o = Out { m: &*m, origins: Vec::new(), refused: Vec::new() };
    let mut root = Table::new();
    root.insert(
        "interfaces".into(),
        Value::Array(inputs.interfaces.iter().map(|i| Value::String(i.clone())).collect()),
    );
    root.insert("server_id".into(), Value::String(server_id.to_string()));
    let global = o.options(&[0], &[], "options");
    if !global.is_empty() {
        root.insert("options".into(), Value::Table(global));
    }
    let classes = o.classes();
    if !classes.is_empty() {
        root.insert("class".into(), Value::Array(classes));
    }
    let mut subnets = o.subnets();
    o.relationships(&mut root, &mut subnets);
    root.insert("subnet".into(), Value::Array(subnets.into_iter().map(Value::Table).collect()));
    let (origins, refused) = (o.origins, o.refused);
    m.untranslated.extend(refused);
    m.untranslated.sort_by(|a, b| (&a.loc.file, a.loc.line).cmp(&(&b.loc.file, b.loc.line)));
    let mut toml = String::from("# Translated from ISC dhcpd.conf by `xdhcp import dhcpd-conf`.\n");
    if !m.untranslated.is_empty() {
        toml.push_str("# Not translated:\n");
        for u in &m.untranslated {
            let _ = writeln!(toml, "#   {u}");
        }
    }
    toml.push('\n');
    toml.push_str(&toml::to_string(&root).map_err(|e| ImportError::Missing(e.to_string()))?);
    Ok(Emitted { toml, origins })
}

impl Out<'_> {
    fn refuse(&mut self, loc: &Loc, statement: &str, why: String) {
        self.refused.push(Untranslated { loc: loc.clone(), statement: statement.to_owned(), why });
    }

    /// The `failover peer` declarations the subnets use, as relationships: one as the
    /// `[failover]` table (its subnets `failover = true`), several as `[[failover]]` (each
    /// subnet naming its own). A peer no translated subnet uses is not translated.
    fn relationships(&mut self, root: &mut Table, subnets: &mut [Table]) {
        let named = |s: &Table| s.get("failover").and_then(Value::as_str).map(str::to_owned);
        let used: Vec<&super::failover::Peer> = self
            .m
            .peers
            .iter()
            .filter(|p| subnets.iter().any(|s| named(s).as_deref() == Some(p.name.as_str())))
            .collect();
        for p in self.m.peers.iter().filter(|p| !used.iter().any(|u| u.name == p.name)) {
            self.refused.push(Untranslated {
                loc: p.loc.clone(),
                statement: format!("failover peer {:?}", p.name),
                why: "no translated pool uses it".into(),
            });
        }
        let mut tables = Vec::new();
        for (i, p) in used.iter().enumerate() {
            let key =
                if used.len() == 1 { "failover".to_owned() } else { format!("failover[{i}]") };
            self.origins.push((key.clone(), p.loc.clone()));
            self.origins.extend(p.lines.iter().map(|(k, l)| (format!("{key}.{k}"), l.clone())));
            tables.push(Value::Table(p.table.clone()));
        }
        match tables.len() {
            0 => {}
            1 => {
                root.insert("failover".into(), tables.remove(0));
                for s in subnets.iter_mut().filter(|s| s.contains_key("failover")) {
                    s.insert("failover".into(), Value::Boolean(true));
                }
            }
            _ => {
                root.insert("failover".into(), Value::Array(tables));
            }
        }
    }

    /// The frames of `chain` below the last one of a kind xdhcp has itself (`stops`): those
    /// are folded into the declaration's own scope.
    fn folded(&self, chain: &[usize], stops: &[Kind]) -> Vec<usize> {
        let from = chain
            .iter()
            .rposition(|&f| stops.contains(&self.m.frames[f].kind))
            .map_or(0, |i| i + 1);
        chain[from..].to_vec()
    }

    /// The options table of a scope made of `own` frames (outer first) under `outer`: plain
    /// options from `own`; options 43 and 125 from the sub-options of every frame, since
    /// dhcpd gathers a space's values from all the scopes around the client.
    fn options(&mut self, own: &[usize], outer: &[usize], key: &str) -> Table {
        let mut t = Table::new();
        for &f in own {
            for o in &self.m.frames[f].params.options {
                t.insert(o.key.clone(), o.value.clone());
                self.origins.push((format!("{key}.{}", o.key), o.loc.clone()));
            }
        }
        let all: Vec<usize> = outer.iter().chain(own).copied().collect();
        let frames = &self.m.frames;
        let touches = |space: &str| {
            own.iter().any(|&f| {
                let p = &frames[f].params;
                p.vendor_space.as_deref() == Some(space) || p.subs.iter().any(|s| s.space == space)
            })
        };
        let subs_of = |space: &str| {
            let mut subs = Table::new();
            for &f in &all {
                for s in frames[f].params.subs.iter().filter(|s| s.space == space) {
                    subs.insert(s.code.to_string(), s.value.clone());
                }
            }
            subs
        };
        let first_sub = |space: &str| {
            own.iter()
                .flat_map(|&f| &frames[f].params.subs)
                .find(|s| s.space == space)
                .map(|s| s.loc.clone())
        };
        let vendor = all.iter().rev().find_map(|&f| frames[f].params.vendor_space.clone());
        if let Some(space) = vendor
            && touches(&space)
            && !t.contains_key("vendor-encapsulated-options")
        {
            let subs = subs_of(&space);
            if !subs.is_empty() {
                t.insert("vendor-encapsulated-options".into(), Value::Table(subs));
                if let Some(l) = first_sub(&space) {
                    self.origins.push((format!("{key}.vendor-encapsulated-options"), l));
                }
            }
        }
        let mut vivso = Table::new();
        let mut spaces: Vec<_> = self.m.defs.spaces.iter().collect();
        spaces.sort_by_key(|(n, _)| n.as_str());
        let any = spaces.iter().any(|(n, sp)| sp.enterprise.is_some() && touches(n));
        for (name, sp) in spaces {
            let Some(e) = sp.enterprise else { continue };
            let subs = subs_of(name);
            if any && !subs.is_empty() {
                vivso.insert(e.to_string(), Value::Table(subs));
            }
        }
        if !vivso.is_empty() && !t.contains_key("vivso") {
            t.insert("vivso".into(), Value::Table(vivso));
        }
        t
    }

    fn classes(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        for c in &self.m.classes {
            let key = format!("class[{}]", out.len());
            self.origins.push((key.clone(), c.at.loc.clone()));
            let mut t = Table::new();
            t.insert("name".into(), Value::String(c.name.clone()));
            for cond in &c.conds {
                let v = if cond.key == "mac_prefix" {
                    Value::String(hex_string(&cond.value))
                } else {
                    bytes_value(&cond.value)
                };
                t.insert(cond.key.into(), v);
            }
            let mut own = self.folded(&c.at.chain, &[Kind::Global]);
            own.push(c.at.frame);
            let opts = self.options(&own, &[0], &format!("{key}.options"));
            if !opts.is_empty() {
                t.insert("options".into(), Value::Table(opts));
            }
            out.push(Value::Table(t));
        }
        out
    }

    fn subnets(&mut self) -> Vec<Table> {
        let mut out = Vec::new();
        let mut placed = vec![false; self.m.hosts.len()];
        for (i, s) in self.m.subnets.iter().enumerate() {
            let key = format!("subnet[{i}]");
            self.origins.push((key.clone(), s.at.loc.clone()));
            let mut t = Table::new();
            t.insert("prefix".into(), Value::String(s.prefix.to_string()));
            if let Some(n) = &s.shared {
                t.insert("shared_network".into(), Value::String(n.clone()));
            }
            let mut own = self.folded(&s.at.chain, &[Kind::Global]);
            own.push(s.at.frame);
            self.times(&own, &mut t);
            let mut opts = self.options(&own, &[0], &format!("{key}.options"));
            if let Some(Value::Array(r)) = opts.remove("routers") {
                t.insert("routers".into(), Value::Array(r));
            }
            if !opts.is_empty() {
                t.insert("options".into(), Value::Table(opts));
            }
            let mut pools: Vec<PoolDecl> = s.pools.clone();
            for (net, p) in &self.m.shared_pools {
                if s.shared.as_ref() == Some(net) {
                    let mut p = p.clone();
                    p.ranges.retain(|(lo, _, _)| s.prefix.contains(lo));
                    pools.push(p);
                }
            }
            let (entries, failover) = self.pools(&key, &pools, &s.at.chain, s.at.frame);
            if !entries.is_empty() {
                t.insert("pools".into(), Value::Array(entries));
            }
            if let Some(peer) = failover {
                t.insert("failover".into(), Value::String(peer));
            }
            let mut res = Vec::new();
            for (h, host) in self.m.hosts.iter().enumerate() {
                for (a, loc) in host.addresses.iter().filter(|(a, _)| s.prefix.contains(a)) {
                    if placed[h] && res.iter().any(|(hh, _)| *hh == h) {
                        self.refuse(loc, &format!("host {}", host.name), format!("a second fixed-address in {} ({a}): xdhcp reserves one address per client and subnet", s.prefix));
                        continue;
                    }
                    placed[h] = true;
                    let rkey = format!("{key}.reservation[{}]", res.len());
                    self.origins.push((rkey.clone(), host.at.loc.clone()));
                    let r = self.reservation(&rkey, host, *a);
                    res.push((h, r));
                }
            }
            if !res.is_empty() {
                t.insert(
                    "reservation".into(),
                    Value::Array(res.into_iter().map(|(_, v)| v).collect()),
                );
            }
            out.push(t);
        }
        for (h, host) in self.m.hosts.iter().enumerate() {
            if !placed[h] {
                let loc = host.at.loc.clone();
                self.refuse(
                    &loc,
                    &format!("host {}", host.name),
                    "its fixed-address is in no declared subnet".into(),
                );
            }
        }
        for (net, p) in &self.m.shared_pools {
            for (lo, hi, loc) in &p.ranges {
                let inside = self
                    .m
                    .subnets
                    .iter()
                    .any(|s| s.shared.as_ref() == Some(net) && s.prefix.contains(lo));
                if !inside {
                    self.refuse(
                        loc,
                        &format!("range {lo} {hi}"),
                        format!("is in no subnet of shared network {net}"),
                    );
                }
            }
        }
        out
    }

    /// One host's reservation of `a`, with the options of its host block and the groups
    /// around it.
    fn reservation(&mut self, rkey: &str, host: &HostDecl, a: Ipv4Addr) -> Value {
        let mut r = Table::new();
        r.insert("address".into(), Value::String(a.to_string()));
        if let Some((k, v)) = &host.id {
            let v = match *k {
                "mac" | "client_id" => Value::String(hex_string(v)),
                _ => bytes_value(v),
            };
            r.insert((*k).into(), v);
        }
        let mut own = self.folded(&host.at.chain, &[Kind::Global, Kind::Subnet, Kind::Shared]);
        own.push(host.at.frame);
        let outer: Vec<usize> =
            host.at.chain.iter().filter(|f| !own.contains(f)).copied().collect();
        let opts = self.options(&own, &outer, &format!("{rkey}.options"));
        if !opts.is_empty() {
            r.insert("options".into(), Value::Table(opts));
        }
        Value::Table(r)
    }

    /// A subnet's pools, one xdhcp pool per range, and the failover peer they are shared with.
    /// xdhcp shares whole subnets: a pool naming another peer than the subnet's first shared
    /// pool is left out.
    fn pools(
        &mut self,
        key: &str,
        pools: &[PoolDecl],
        chain: &[usize],
        subnet_frame: usize,
    ) -> (Vec<Value>, Option<String>) {
        let failover =
            pools.iter().filter(|p| !p.lost).find_map(|p| p.failover.as_ref().map(|f| f.0.clone()));
        let mut out = Vec::new();
        for p in pools {
            if p.lost || p.ranges.is_empty() {
                continue;
            }
            if let (Some(want), Some((other, loc))) = (&failover, &p.failover)
                && want != other
            {
                let why = format!(
                    "names failover peer {other:?}, but another pool of its subnet names {want:?}: xdhcp shares a whole subnet in one relationship; this pool is left out"
                );
                self.refuse(loc, "pool", why);
                continue;
            }
            let Some((allow, deny)) = self.admission(p) else { continue };
            if failover.is_some() && p.failover.is_none() {
                self.refuse(&p.at.loc, "pool", "has no failover peer, but another pool of its subnet has: xdhcp shares a whole subnet with the partner, this pool included".into());
            }
            for (lo, hi, loc) in &p.ranges {
                let pkey = format!("{key}.pools[{}]", out.len());
                self.origins.push((pkey.clone(), loc.clone()));
                let mut t = Table::new();
                t.insert("start".into(), Value::String(lo.to_string()));
                t.insert("end".into(), Value::String(hi.to_string()));
                if !allow.is_empty() {
                    t.insert("allow".into(), Value::Array(allow.clone()));
                }
                if !deny.is_empty() {
                    t.insert("deny".into(), Value::Array(deny.clone()));
                }
                if !p.bare {
                    let mut own =
                        self.folded(&p.at.chain, &[Kind::Global, Kind::Subnet, Kind::Shared]);
                    own.push(p.at.frame);
                    let mut outer: Vec<usize> =
                        chain.iter().filter(|f| !own.contains(f)).copied().collect();
                    if !outer.contains(&subnet_frame) {
                        outer.push(subnet_frame);
                    }
                    let opts = self.options(&own, &outer, &format!("{pkey}.options"));
                    if !opts.is_empty() {
                        t.insert("options".into(), Value::Table(opts));
                    }
                }
                out.push(Value::Table(t));
            }
        }
        (out, failover)
    }

    /// A pool's allow and deny lists as xdhcp class names; `None` when a class named is not
    /// translated (the pool is then left out, not opened to all).
    fn admission(&mut self, p: &PoolDecl) -> Option<(Vec<Value>, Vec<Value>)> {
        let mut lists = (Vec::new(), Vec::new());
        for (names, list) in [(&p.allow, &mut lists.0), (&p.deny, &mut lists.1)] {
            for (n, loc) in names {
                let ours: Vec<Value> = self
                    .m
                    .classes
                    .iter()
                    .filter(|c| &c.parent == n)
                    .map(|c| Value::String(c.name.clone()))
                    .collect();
                if ours.is_empty() {
                    let why =
                        self.m.lost_classes.iter().find(|(c, _)| c == n).map_or_else(
                            || "no such class is declared".to_owned(),
                            |(_, w)| w.clone(),
                        );
                    self.refuse(loc, &format!("members of {n:?}"), format!("class {n:?} is not translated ({why}); the pool is left out rather than serving the wrong clients"));
                    return None;
                }
                list.extend(ours);
            }
        }
        Some(lists)
    }

    /// The subnet's lease times as dhcpd computes them: the default capped at the maximum,
    /// then raised to the minimum.
    fn times(&self, own_and_outer: &[usize], t: &mut Table) {
        let mut x = super::scope::Times::default();
        for f in std::iter::once(0).chain(own_and_outer.iter().copied()) {
            let y = self.m.frames[f].params.times;
            x.default = y.default.or(x.default);
            x.max = y.max.or(x.max);
            x.min = y.min.or(x.min);
            x.t1 = y.t1.or(x.t1);
            x.t2 = y.t2.or(x.t2);
        }
        let max = x.max.unwrap_or(ISC_MAX_LEASE);
        let min = x.min.unwrap_or(ISC_MIN_LEASE.min(max));
        let mut lease = x.default.unwrap_or(ISC_DEFAULT_LEASE).min(max);
        if lease < min {
            lease = min;
        }
        let lease = lease.max(1);
        let int = |v: u32| Value::Integer(i64::from(v));
        t.insert("lease_time".into(), int(lease));
        t.insert("min_lease".into(), int(min.clamp(1, lease)));
        t.insert("max_lease".into(), int(max.max(lease)));
        if let Some(v) = x.t1 {
            t.insert("t1".into(), int(v));
        }
        if let Some(v) = x.t2 {
            t.insert("t2".into(), int(v));
        }
    }
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

/// Text when the bytes are printable, else `{ hex }`.
fn bytes_value(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| !c.is_control()) => Value::String(s.into()),
        _ => super::values::hex(b),
    }
}

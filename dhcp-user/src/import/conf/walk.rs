//! The declarations of a dhcpd.conf, scope by scope: subnets, shared networks, groups, pools
//! and ranges, hosts, classes and subclasses, the failover peer.
//!
//! Every scope becomes a frame whose parameters are kept apart from its declarations: dhcpd
//! applies a scope's parameters to all it contains, wherever in the block they are written,
//! so [`super::emit`] reads them once the whole file has been walked.
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::super::{Loc, SyntaxError, lex::Tok, tree::Stmt};
use super::classes::{self, Cond, Subject};
use super::failover::Peer;
use super::scope::{Params, malformed};
use super::values::{self, Defs};
use super::{Untranslated, Why};

/// The kinds of scope, as far as where a parameter lands in xdhcp depends on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Global,
    Group,
    Shared,
    Subnet,
    Pool,
    Class,
    Host,
}

#[derive(Debug)]
pub(super) struct Frame {
    pub kind: Kind,
    pub params: Params,
    pub prefix: Option<Ipv4Net>,
}

/// Where a declaration sits: its own frame and the frames around it, outermost first.
#[derive(Debug, Clone)]
pub(super) struct Place {
    pub loc: Loc,
    pub frame: usize,
    pub chain: Vec<usize>,
}

#[derive(Debug)]
pub(super) struct SubnetDecl {
    pub at: Place,
    pub prefix: Ipv4Net,
    pub shared: Option<String>,
    pub pools: Vec<PoolDecl>,
}

#[derive(Debug, Clone)]
pub(super) struct PoolDecl {
    pub at: Place,
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr, Loc)>,
    pub allow: Vec<(String, Loc)>,
    pub deny: Vec<(String, Loc)>,
    /// The pool's `failover peer "name";`, and where it is.
    pub failover: Option<(String, Loc)>,
    /// A `range` written in the subnet itself: the pool is the subnet's own scope.
    pub bare: bool,
    /// Left out: a statement that decides who it serves is not translated, and without it
    /// the pool would serve clients dhcpd keeps out.
    pub lost: bool,
}

#[derive(Debug)]
pub(super) struct HostDecl {
    pub at: Place,
    pub name: String,
    /// The identifier xdhcp's reservation names the client by: its key and value.
    pub id: Option<(&'static str, Vec<u8>)>,
    pub addresses: Vec<(Ipv4Addr, Loc)>,
}

#[derive(Debug)]
pub(super) struct ClassDecl {
    pub at: Place,
    /// The xdhcp class's name: the dhcpd class's, or `parent/value` for a subclass.
    pub name: String,
    /// The dhcpd class a pool's `allow members of` names.
    pub parent: String,
    pub conds: Vec<Cond>,
}

pub(super) struct Walker {
    pub frames: Vec<Frame>,
    pub defs: Defs,
    pub untranslated: Vec<Untranslated>,
    pub server_id: Option<Ipv4Addr>,
    pub subnets: Vec<SubnetDecl>,
    /// Pools written in a shared network, with its name: each range goes to the subnet
    /// holding it.
    pub shared_pools: Vec<(String, PoolDecl)>,
    pub hosts: Vec<HostDecl>,
    pub classes: Vec<ClassDecl>,
    /// dhcpd classes that translated into no xdhcp class, and why: a pool naming one is left
    /// out rather than opened to every client.
    pub lost_classes: Vec<(String, String)>,
    /// Classes whose subclasses give the values, with the field they compare.
    pub spawners: Vec<(String, Option<Subject>, usize)>,
    /// The `failover peer` declarations, in file order.
    pub peers: Vec<Peer>,
    /// The shared network being walked.
    current_shared: Option<String>,
    /// Frames open while walking, innermost last.
    stack: Vec<usize>,
}

/// What [`walk`] hands to [`super::emit`].
pub(super) type Model = Walker;

pub(super) fn walk(stmts: &[Stmt]) -> Result<Model, SyntaxError> {
    let mut w = Walker {
        frames: vec![Frame { kind: Kind::Global, params: Params::default(), prefix: None }],
        defs: Defs::new(),
        untranslated: Vec::new(),
        server_id: None,
        subnets: Vec::new(),
        shared_pools: Vec::new(),
        hosts: Vec::new(),
        classes: Vec::new(),
        lost_classes: Vec::new(),
        spawners: Vec::new(),
        peers: Vec::new(),
        current_shared: None,
        stack: vec![0],
    };
    w.block(stmts, 0, Kind::Global)?;
    Ok(w)
}

impl Walker {
    pub(super) fn refuse(&mut self, s: &Stmt, why: &str) {
        self.untranslated.push(Untranslated {
            loc: s.loc().clone(),
            statement: s.show(),
            why: why.to_owned(),
        });
    }

    fn open(&mut self, kind: Kind, s: &Stmt) -> Place {
        let frame = self.frames.len();
        let prefix = self.stack.last().and_then(|&f| self.frames[f].prefix);
        self.frames.push(Frame { kind, params: Params::default(), prefix });
        let at = Place { loc: s.loc().clone(), frame, chain: self.stack.clone() };
        self.stack.push(frame);
        at
    }

    fn close(&mut self) {
        self.stack.pop();
    }

    pub(super) fn subnet_mask_matches(&self, frame: usize, mask: &[u8]) -> bool {
        self.frames[frame].prefix.is_some_and(|p| p.netmask().octets() == mask)
    }

    fn block(&mut self, stmts: &[Stmt], frame: usize, kind: Kind) -> Result<(), SyntaxError> {
        for s in stmts {
            self.stmt(s, frame, kind)?;
        }
        Ok(())
    }

    fn body(s: &Stmt) -> Result<&[Stmt], SyntaxError> {
        s.block.as_deref().ok_or_else(|| malformed(s, "expected a `{ ... }` block"))
    }

    fn stmt(&mut self, s: &Stmt, frame: usize, kind: Kind) -> Result<(), SyntaxError> {
        let declares = |k: &str| s.starts(&[k]);
        if declares("subnet") {
            if !matches!(kind, Kind::Global | Kind::Group | Kind::Shared) {
                return Err(malformed(
                    s,
                    "a subnet is declared at the top level, in a group or in a shared-network",
                ));
            }
            return self.subnet(s, kind);
        }
        if declares("shared-network") {
            if !matches!(kind, Kind::Global | Kind::Group) {
                return Err(malformed(
                    s,
                    "a shared-network is declared at the top level or in a group",
                ));
            }
            return self.shared_network(s);
        }
        if declares("group") {
            Self::body(s)?;
            self.open(Kind::Group, s);
            let f = *self.stack.last().expect("just opened");
            let r = self.block(Self::body(s)?, f, Kind::Group);
            self.close();
            return r;
        }
        if declares("pool") {
            return match kind {
                Kind::Subnet => {
                    let p = self.pool(s)?;
                    if let Some(sub) = self.subnets.last_mut() {
                        sub.pools.push(p);
                    }
                    Ok(())
                }
                Kind::Shared => {
                    let p = self.pool(s)?;
                    let name = self.current_shared.clone().unwrap_or_default();
                    self.shared_pools.push((name, p));
                    Ok(())
                }
                _ => Err(malformed(s, "a pool is declared in a subnet or a shared-network")),
            };
        }
        if declares("range") {
            if kind != Kind::Subnet {
                return Err(malformed(s, "a range outside a pool belongs in a subnet"));
            }
            let Some(r) = self.range(s)? else { return Ok(()) };
            let at = Place { loc: s.loc().clone(), frame, chain: self.stack.clone() };
            let pool = PoolDecl {
                at,
                ranges: vec![r],
                allow: vec![],
                deny: vec![],
                failover: None,
                bare: true,
                lost: false,
            };
            if let Some(sub) = self.subnets.last_mut() {
                sub.pools.push(pool);
            }
            return Ok(());
        }
        if declares("host") {
            return self.host(s);
        }
        if declares("class") {
            return self.class(s);
        }
        if declares("subclass") {
            return self.subclass(s);
        }
        if s.starts(&["failover", "peer"]) {
            if s.block.is_some() {
                if kind != Kind::Global {
                    return Err(malformed(s, "a failover peer is declared at the top level"));
                }
                return self.failover_peer(s);
            }
            return Err(malformed(s, "`failover peer \"name\";` belongs in a pool"));
        }
        if s.block.is_some()
            && !s.starts(&["if"])
            && !s.starts(&["else"])
            && !s.starts(&["elsif"])
            && !s.starts(&["on"])
            && !s.starts(&["key"])
            && !s.starts(&["zone"])
        {
            self.refuse(s, "a declaration this importer does not translate");
            return Ok(());
        }
        if !self.param(frame, s, kind)? {
            self.refuse(s, "a statement xdhcp has no counterpart for");
        }
        Ok(())
    }

    fn subnet(&mut self, s: &Stmt, kind: Kind) -> Result<(), SyntaxError> {
        let (Some(addr), Some(true), Some(mask)) =
            (s.words.get(1), s.words.get(2).map(|t| t.is("netmask")), s.words.get(3))
        else {
            return Err(malformed(s, "expected `subnet ADDRESS netmask MASK { ... }`"));
        };
        if s.words.len() != 4 {
            return Err(malformed(s, "expected `{` after the netmask"));
        }
        let addr = addr_of(s, addr)?;
        let mask = addr_of(s, mask)?;
        let len = u32::from(mask).leading_ones();
        if u32::from(mask).checked_shl(len).unwrap_or(0) != 0 {
            return Err(malformed(s, &format!("{mask} is not a netmask")));
        }
        let prefix = Ipv4Net::new(addr, u8::try_from(len).unwrap_or(32)).expect("at most 32");
        if prefix.network() != addr {
            return Err(malformed(s, &format!("{addr} has bits outside netmask {mask}")));
        }
        let body = Self::body(s)?;
        let at = self.open(Kind::Subnet, s);
        self.frames[at.frame].prefix = Some(prefix);
        let shared = if kind == Kind::Shared { self.current_shared.clone() } else { None };
        let f = at.frame;
        self.subnets.push(SubnetDecl { at, prefix, shared, pools: Vec::new() });
        let r = self.block(body, f, Kind::Subnet);
        self.close();
        r
    }

    fn shared_network(&mut self, s: &Stmt) -> Result<(), SyntaxError> {
        let [_, name] = s.words.as_slice() else {
            return Err(malformed(s, "expected `shared-network NAME { ... }`"));
        };
        let name = match &name.tok {
            Tok::Word(w) => w.clone(),
            Tok::Str(b) => String::from_utf8_lossy(b).into_owned(),
            Tok::Punct(_) => return Err(malformed(s, "expected the shared network's name")),
        };
        let body = Self::body(s)?;
        let at = self.open(Kind::Shared, s);
        let outer = self.current_shared.replace(name);
        let r = self.block(body, at.frame, Kind::Shared);
        self.current_shared = outer;
        self.close();
        r
    }

    fn pool(&mut self, s: &Stmt) -> Result<PoolDecl, SyntaxError> {
        let body = Self::body(s)?;
        let at = self.open(Kind::Pool, s);
        let mut p = PoolDecl {
            at,
            ranges: vec![],
            allow: vec![],
            deny: vec![],
            failover: None,
            bare: false,
            lost: false,
        };
        let r = (|| {
            for st in body {
                if st.starts(&["range"]) {
                    if let Some(r) = self.range(st)? {
                        p.ranges.push(r);
                    }
                } else if st.starts(&["failover", "peer"]) && st.block.is_none() {
                    p.failover = Some((self.pool_peer(st)?, st.loc().clone()));
                } else if let Some(list) = members(st, &mut p) {
                    list?;
                } else if permit(st) {
                    self.refuse(st, "xdhcp's pools admit by class only (allow/deny members of); the pool is left out rather than serving clients dhcpd keeps out");
                    p.lost = true;
                } else {
                    self.stmt(st, p.at.frame, Kind::Pool)?;
                }
            }
            Ok(())
        })();
        self.close();
        r.map(|()| p)
    }

    /// `range [dynamic-bootp] LOW [HIGH];`
    fn range(&mut self, s: &Stmt) -> Result<Option<(Ipv4Addr, Ipv4Addr, Loc)>, SyntaxError> {
        let mut w = &s.words[1..];
        if w.first().is_some_and(|t| t.is("dynamic-bootp")) {
            self.refuse(s, "xdhcp serves no BOOTP clients");
            w = &w[1..];
        }
        let (lo, hi) = match w {
            [lo] => (addr_of(s, lo)?, addr_of(s, lo)?),
            [lo, hi] => (addr_of(s, lo)?, addr_of(s, hi)?),
            _ => return Err(malformed(s, "expected `range LOW HIGH;`")),
        };
        let prefix = self.stack.last().and_then(|&f| self.frames[f].prefix);
        if let Some(p) = prefix {
            for a in [lo, hi] {
                if !p.contains(&a) {
                    return Err(malformed(s, &format!("{a} is not in subnet {p}")));
                }
            }
        }
        // dhcpd takes the bounds in either order.
        Ok(Some((lo.min(hi), lo.max(hi), s.loc().clone())))
    }

    fn host(&mut self, s: &Stmt) -> Result<(), SyntaxError> {
        let name = match s.words.get(1).map(|t| &t.tok) {
            Some(Tok::Word(w)) if s.words.len() == 2 => w.clone(),
            Some(Tok::Str(b)) if s.words.len() == 2 => String::from_utf8_lossy(b).into_owned(),
            _ => return Err(malformed(s, "expected `host NAME { ... }`")),
        };
        let body = Self::body(s)?;
        let at = self.open(Kind::Host, s);
        let mut h = HostDecl { at, name, id: None, addresses: Vec::new() };
        let r = (|| {
            for st in body {
                self.host_stmt(st, &mut h)?;
            }
            Ok(())
        })();
        self.close();
        r?;
        if h.id.is_none() {
            self.refuse(s, "names no client by hardware ethernet, client identifier or agent circuit-id / remote-id");
        } else if h.addresses.is_empty() {
            self.refuse(
                s,
                "has no fixed-address: xdhcp's per-client options belong to a reservation",
            );
        } else {
            self.hosts.push(h);
        }
        Ok(())
    }

    fn host_stmt(&mut self, st: &Stmt, h: &mut HostDecl) -> Result<(), SyntaxError> {
        let frame = h.at.frame;
        let mut set = |w: &mut Self, key: &'static str, v: Vec<u8>| {
            if let Some((k, _)) = &h.id {
                w.refuse(st, &format!("the host is already named by its {k}; an xdhcp reservation names its client one way"));
            } else {
                h.id = Some((key, v));
            }
        };
        if st.starts(&["hardware"]) {
            let [_, ty, mac] = st.words.as_slice() else {
                return Err(malformed(st, "expected `hardware ethernet aa:bb:cc:dd:ee:ff;`"));
            };
            let b = values::bytes(mac).map_err(|_| malformed(st, "expected a hardware address"))?;
            if !ty.is("ethernet") || b.len() != 6 {
                self.refuse(st, "xdhcp reserves Ethernet hardware addresses only");
                return Ok(());
            }
            set(self, "mac", b);
        } else if st.starts(&["fixed-address"]) {
            for item in st.words[1..].split(|t| t.is_punct(',')) {
                let [t] = item else {
                    return Err(malformed(st, "expected addresses, a comma between"));
                };
                match values::ip(t) {
                    Ok(a) => h.addresses.push((a, st.loc().clone())),
                    Err(w) => self.why(st, w)?,
                }
            }
        } else if st.starts(&["option", "dhcp-client-identifier"]) {
            let [_, _, v] = st.words.as_slice() else {
                return Err(malformed(st, "expected one client identifier"));
            };
            let b = values::bytes(v).map_err(|w| match w {
                Why::Malformed(m) | Why::No(m) => malformed(st, &m),
            })?;
            set(self, "client_id", b);
        } else if st.starts(&["host-identifier", "option"]) {
            let (Some(name), Some(v), 4) = (st.words.get(2), st.words.get(3), st.words.len())
            else {
                return Err(malformed(st, "expected `host-identifier option NAME VALUE;`"));
            };
            let key = if name.is("agent.circuit-id") {
                "circuit_id"
            } else if name.is("agent.remote-id") {
                "remote_id"
            } else {
                self.refuse(st, "xdhcp reserves by MAC, client identifier, or option 82's circuit-id or remote-id");
                return Ok(());
            };
            let b = values::bytes(v).map_err(|w| match w {
                Why::Malformed(m) | Why::No(m) => malformed(st, &m),
            })?;
            set(self, key, b);
        } else if st.block.is_some() {
            self.refuse(st, "a declaration inside a host is not translated");
        } else if !self.param(frame, st, Kind::Host)? {
            self.refuse(st, "a statement xdhcp has no counterpart for");
        }
        Ok(())
    }

    fn class(&mut self, s: &Stmt) -> Result<(), SyntaxError> {
        let name = quoted_name(s, 1)?;
        if s.words.len() != 2 {
            return Err(malformed(s, "expected `class \"name\" { ... }`"));
        }
        let body = Self::body(s)?;
        let at = self.open(Kind::Class, s);
        let mut conds = None;
        let mut subject: Option<Result<Subject, String>> = None;
        let mut lost: Option<String> = None;
        let r = (|| {
            for st in body {
                if st.starts(&["match", "if"]) {
                    match classes::match_if(&st.words[2..]) {
                        Ok(c) => conds = Some(c),
                        Err(Why::No(m)) => {
                            self.refuse(st, &m);
                            lost = Some(m);
                        }
                        Err(Why::Malformed(m)) => return Err(malformed(st, &m)),
                    }
                } else if st.starts(&["match"]) {
                    match classes::match_subject(&st.words[1..]) {
                        Ok(sj) => subject = Some(Ok(sj)),
                        Err(Why::No(m)) => {
                            self.refuse(st, &m);
                            subject = Some(Err(m));
                        }
                        Err(Why::Malformed(m)) => return Err(malformed(st, &m)),
                    }
                } else if st.starts(&["spawn"]) || st.starts(&["lease", "limit"]) {
                    let m = "spawned classes and per-class lease limits are not translated (xdhcp limits addresses per port or MAC: [limits])";
                    self.refuse(st, m);
                    lost = Some(m.into());
                } else {
                    self.stmt(st, at.frame, Kind::Class)?;
                }
            }
            Ok(())
        })();
        self.close();
        r?;
        if let Some(why) = lost {
            self.lost_classes.push((name, why));
            return Ok(());
        }
        match (conds, subject) {
            (Some(conds), None) => {
                self.classes.push(ClassDecl { at, name: name.clone(), parent: name, conds });
            }
            (None, Some(sj)) => {
                if let Err(m) = &sj {
                    self.lost_classes.push((name.clone(), m.clone()));
                }
                self.spawners.push((name, sj.ok(), at.frame));
            }
            (None, None) => {
                self.refuse(
                    s,
                    "has no match statement: xdhcp's classes are made by what a client sends",
                );
                self.lost_classes.push((name, "it matches no client".into()));
            }
            (Some(_), Some(_)) => return Err(malformed(s, "has both `match if` and `match`")),
        }
        Ok(())
    }

    fn subclass(&mut self, s: &Stmt) -> Result<(), SyntaxError> {
        let parent = quoted_name(s, 1)?;
        let [_, _, value] = s.words.as_slice() else {
            return Err(malformed(s, "expected `subclass \"class\" VALUE;`"));
        };
        let Some((_, subject, pframe)) =
            self.spawners.iter().find(|(n, _, _)| *n == parent).cloned()
        else {
            return Err(malformed(
                s,
                &format!("class {parent:?} is not declared with a `match` statement"),
            ));
        };
        let Some(subject) = subject else {
            self.refuse(s, "its class's match statement is not translated");
            return Ok(());
        };
        let cond = match classes::subclass(subject, value) {
            Ok(c) => c,
            Err(w) => return self.why(s, w),
        };
        let shown = String::from_utf8(cond.value.clone())
            .ok()
            .filter(|v| v.chars().all(|c| c.is_ascii_graphic() || c == ' '))
            .unwrap_or_else(|| {
                cond.value.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
            });
        let name = format!("{parent}/{shown}");
        let mut chain = self.stack.clone();
        chain.push(pframe);
        self.stack.push(pframe);
        let frame = self.frames.len();
        self.frames.push(Frame { kind: Kind::Class, params: Params::default(), prefix: None });
        self.stack.push(frame);
        let r = match &s.block {
            Some(b) => self.block(b, frame, Kind::Class),
            None => Ok(()),
        };
        self.stack.truncate(self.stack.len() - 2);
        r?;
        let at = Place { loc: s.loc().clone(), frame, chain };
        self.classes.push(ClassDecl { at, name, parent, conds: vec![cond] });
        Ok(())
    }
}

/// `allow`, `deny` or `ignore` other than of members or of BOOTP (which xdhcp never serves).
fn permit(st: &Stmt) -> bool {
    let bootp = st.words.iter().any(|t| t.is("bootp"));
    (st.starts(&["allow"]) || st.starts(&["deny"]) || st.starts(&["ignore"])) && !bootp
}

/// `allow members of "x";` / `deny members of "x";` in a pool; `None` for other statements.
fn members(st: &Stmt, p: &mut PoolDecl) -> Option<Result<(), SyntaxError>> {
    let allow = st.starts(&["allow", "members", "of"]);
    if !allow && !st.starts(&["deny", "members", "of"]) {
        return None;
    }
    Some(quoted_name(st, 3).map(|n| {
        let list = if allow { &mut p.allow } else { &mut p.deny };
        list.push((n, st.loc().clone()));
    }))
}

fn addr_of(s: &Stmt, t: &super::super::lex::Token) -> Result<Ipv4Addr, SyntaxError> {
    values::ip(t).map_err(|w| match w {
        Why::Malformed(m) | Why::No(m) => malformed(s, &m),
    })
}

fn quoted_name(s: &Stmt, i: usize) -> Result<String, SyntaxError> {
    match s.words.get(i).map(|t| &t.tok) {
        Some(Tok::Str(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(Tok::Word(w)) => Ok(w.clone()),
        _ => Err(malformed(s, "expected a class name")),
    }
}

//! Parameters: the statements any scope may hold (options, lease times, the vendor space)
//! and what they set, or why they set nothing in xdhcp.
use toml::Value;

use super::super::{Loc, SyntaxError, lex::Tok, tree::Stmt};
use super::Why;
use super::values::{self, Def, IscType, Space};
use super::walk::{Kind, Walker};
use crate::config::options;

/// An option set in a scope, under xdhcp's key for it.
#[derive(Debug, Clone)]
pub(super) struct Opt {
    pub key: String,
    pub value: Value,
    pub loc: Loc,
}

/// A value in an option space: a sub-option of 43 (`vendor-option-space`) or 125 (`vsio`).
#[derive(Debug, Clone)]
pub(super) struct Sub {
    pub space: String,
    pub code: u8,
    pub value: Value,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Times {
    pub default: Option<u32>,
    pub max: Option<u32>,
    pub min: Option<u32>,
    pub t1: Option<u32>,
    pub t2: Option<u32>,
}

/// What one scope says; inner scopes override outer ones key by key.
#[derive(Debug, Clone, Default)]
pub(super) struct Params {
    pub options: Vec<Opt>,
    pub subs: Vec<Sub>,
    pub vendor_space: Option<String>,
    pub times: Times,
}

/// Statements with no xdhcp counterpart, and why: what an operator needs to know to decide
/// whether the translation can do without them.
const REFUSED: &[(&str, &str)] = &[
    (
        "next-server",
        "xdhcp does not fill the BOOTP siaddr field; if the clients read options, `option tftp-server-name` (66) or a `tftp-server-address` (150) definition carries the server",
    ),
    (
        "filename",
        "xdhcp does not fill the BOOTP file field; if the clients read options, `option bootfile-name` (67) carries the file",
    ),
    ("server-name", "xdhcp does not fill the BOOTP sname field"),
    (
        "log-facility",
        "xdhcp logs to standard error (the journal under systemd), not to a syslog facility",
    ),
    (
        "lease-file-name",
        "xdhcp keeps its leases in SQLite under state_dir; import dhcpd.leases separately",
    ),
    ("pid-file-name", "xdhcp writes no PID file"),
    (
        "omapi-port",
        "xdhcp is managed over its control socket (xdhcp leases, xdhcp failover), not OMAPI",
    ),
    ("omapi-key", "xdhcp is managed over its control socket, not OMAPI"),
    ("key", "xdhcp does no dynamic DNS updates"),
    ("zone", "xdhcp does no dynamic DNS updates"),
    ("ddns-domainname", "xdhcp does no dynamic DNS updates"),
    ("ddns-hostname", "xdhcp does no dynamic DNS updates"),
    ("ddns-rev-domainname", "xdhcp does no dynamic DNS updates"),
    ("update-static-leases", "xdhcp does no dynamic DNS updates"),
    (
        "one-lease-per-client",
        "xdhcp keeps a client's bindings per subnet; limit them with [limits] leases_per_mac",
    ),
    ("local-port", "xdhcp listens on port 67"),
    ("local-address", "xdhcp listens on its interfaces, not one address"),
    ("always-broadcast", "xdhcp answers as RFC 2131 §4.1 says, by the client's broadcast flag"),
    ("stash-agent-options", "xdhcp records each binding's option 82 itself"),
    ("min-secs", "xdhcp answers at once (failover load balancing uses load_balance_max_seconds)"),
    ("get-lease-hostnames", "xdhcp does no DNS look-ups"),
    ("use-host-decl-names", "xdhcp sends a host name only as an option (option host-name)"),
    ("on", "xdhcp runs no statements on lease events"),
    ("if", "xdhcp has no conditional statements; write a class per case"),
    ("elsif", "xdhcp has no conditional statements; write a class per case"),
    ("else", "xdhcp has no conditional statements; write a class per case"),
    ("abandon-lease-time", "xdhcp keeps a DECLINEd address out for `probation` (file-wide)"),
    ("adaptive-lease-time-threshold", "xdhcp's lease times do not change with a pool's use"),
    ("dhcp-cache-threshold", "xdhcp renews every lease in full (in XDP)"),
    ("delayed-ack", "xdhcp commits a turn's leases in one transaction before it replies"),
    ("max-ack-delay", "xdhcp commits a turn's leases in one transaction before it replies"),
    ("infinite-is-reserved", "xdhcp gives no infinite leases"),
    ("boot-unknown-clients", "xdhcp serves every client a pool admits"),
    ("ignore-client-uids", "xdhcp identifies a client by its client identifier when it sends one"),
];

impl Walker {
    /// Handles `s` as a parameter of a scope of `kind`; `false` when it is no parameter.
    pub(super) fn param(
        &mut self,
        frame: usize,
        s: &Stmt,
        kind: Kind,
    ) -> Result<bool, SyntaxError> {
        let w0 = s.words[0].word().map(str::to_ascii_lowercase).unwrap_or_default();
        let arg = |i: usize| s.words.get(i).and_then(|t| t.word()).map(str::to_ascii_lowercase);
        match w0.as_str() {
            "option" => self.option(frame, s, kind)?,
            "default-lease-time" | "max-lease-time" | "min-lease-time" => {
                let n = Self::number(s)?;
                if matches!(kind, Kind::Pool | Kind::Class | Kind::Host) {
                    self.refuse(
                        s,
                        "xdhcp sets lease times per subnet, not per pool, class or host",
                    );
                } else {
                    let t = &mut self.frames[frame].params.times;
                    match w0.as_str() {
                        "default-lease-time" => t.default = Some(n),
                        "max-lease-time" => t.max = Some(n),
                        _ => t.min = Some(n),
                    }
                }
            }
            "vendor-option-space" => {
                let space = Self::word_arg(s)?;
                if !self.defs.spaces.contains_key(&space) {
                    return Err(malformed(s, &format!("no option space {space} is declared")));
                }
                self.frames[frame].params.vendor_space = Some(space);
            }
            "server-identifier" => {
                let [_, t] = s.words.as_slice() else {
                    return Err(malformed(s, "expected one address"));
                };
                match values::ip(t) {
                    Ok(a) => self.server_identifier(s, a, kind),
                    Err(w) => self.why(s, w)?,
                }
            }
            "authoritative" if s.words.len() == 1 => {}
            "not" if arg(1).as_deref() == Some("authoritative") => self.refuse(
                s,
                "xdhcp is always authoritative on its subnets (it NAKs a request for an address \
                 not on the client's network)",
            ),
            "ddns-update-style" if arg(1).as_deref() == Some("none") => {}
            "ddns-updates" | "ping-check" if matches!(arg(1).as_deref(), Some("off" | "false")) => {
            }
            "ping-check" => self.refuse(s, "xdhcp does not ping an address before offering it"),
            w if w.starts_with("ddns-") => self.refuse(s, "xdhcp does no dynamic DNS updates"),
            // xdhcp serves no BOOTP at all, which is what these say.
            "deny" | "ignore"
                if arg(1).as_deref() == Some("bootp")
                    || (arg(1).as_deref() == Some("dynamic")
                        && arg(2).as_deref() == Some("bootp")) => {}
            "allow" | "deny" | "ignore" if kind != Kind::Pool => self.refuse(
                s,
                "xdhcp has no such switch: it serves every DHCP client a pool admits, and no BOOTP",
            ),
            w => match REFUSED.iter().find(|(k, _)| *k == w) {
                Some((_, why)) => self.refuse(s, why),
                None => return Ok(false),
            },
        }
        Ok(true)
    }

    fn server_identifier(&mut self, s: &Stmt, a: std::net::Ipv4Addr, kind: Kind) {
        match (kind, self.server_id) {
            (Kind::Global, _) => self.server_id = Some(a),
            (_, Some(g)) if g == a => {}
            _ => {
                self.refuse(s, "xdhcp has one server identifier (server_id), set at the top level");
            }
        }
    }

    fn option(&mut self, frame: usize, s: &Stmt, kind: Kind) -> Result<(), SyntaxError> {
        let Some(name) = s.words.get(1).and_then(|t| t.word()).map(str::to_ascii_lowercase) else {
            return Err(malformed(s, "expected an option name after `option`"));
        };
        if name == "space" {
            return self.option_space(s);
        }
        if s.words.get(2).is_some_and(|t| t.is("code")) {
            return self.option_definition(s, &name);
        }
        let Some(def) = self.defs.names.get(&name).cloned() else {
            if let Some((space, _)) = name.split_once('.')
                && self.defs.spaces.contains_key(space)
            {
                return Err(malformed(s, &format!("no option {name} is defined in space {space}")));
            }
            let why = if name.contains('.') {
                format!(
                    "option space {} is not one this importer translates",
                    name.split('.').next().unwrap_or("")
                )
            } else {
                format!(
                    "xdhcp's catalogue has no option dhcpd calls {name}; if it is one xdhcp can \
                     send, define it by its code (option {name} code N = TYPE;)"
                )
            };
            self.refuse(s, &why);
            return Ok(());
        };
        let read = match values::read(&def.ty, &s.words[2..]) {
            Ok(r) => r,
            Err(w) => return self.why(s, w),
        };
        if let Some((space, _)) = name.split_once('.') {
            let narrow = self.defs.spaces.get(space).is_some_and(|sp| sp.narrow);
            if !narrow {
                self.refuse(s, "sub-options of a space whose codes or lengths are wider than a byte are not translated");
                return Ok(());
            }
            let code = u8::try_from(def.code).unwrap_or(0);
            let value = values::sub_value(read);
            self.frames[frame].params.subs.push(Sub {
                space: space.to_owned(),
                code,
                value,
                loc: s.loc().clone(),
            });
            return Ok(());
        }
        let code = u8::try_from(def.code).unwrap_or(0);
        match code {
            1 => {
                if kind == Kind::Subnet && self.subnet_mask_matches(frame, &read.bytes) {
                    return Ok(());
                }
                self.refuse(s, "xdhcp sends the mask of the subnet's prefix, nothing else");
                return Ok(());
            }
            54 => {
                let a = std::net::Ipv4Addr::from(
                    <[u8; 4]>::try_from(read.bytes.as_slice()).unwrap_or([0; 4]),
                );
                self.server_identifier(s, a, kind);
                return Ok(());
            }
            58 | 59 if matches!(kind, Kind::Global | Kind::Group | Kind::Shared | Kind::Subnet) => {
                let v = read.value.as_integer().and_then(|v| u32::try_from(v).ok());
                let t = &mut self.frames[frame].params.times;
                if code == 58 {
                    t.t1 = v;
                } else {
                    t.t2 = v;
                }
                return Ok(());
            }
            61 => {
                self.refuse(
                    s,
                    "a client identifier names a host (in a host block); xdhcp does not send one",
                );
                return Ok(());
            }
            _ => {}
        }
        if let Err(m) = options::lookup(&code.to_string()) {
            self.refuse(s, &m);
            return Ok(());
        }
        let value = match (code, &def.ty) {
            (121 | 249, IscType::Octets) => match values::routes(&read.bytes) {
                Ok(v) => v,
                Err(w) => return self.why(s, w),
            },
            _ => values::for_code(code, read),
        };
        let key = options::name_of(code).map_or_else(|| code.to_string(), str::to_owned);
        self.frames[frame].params.options.push(Opt { key, value, loc: s.loc().clone() });
        Ok(())
    }

    /// `option space NAME [code width N] [length width N] [hash size N];`
    fn option_space(&mut self, s: &Stmt) -> Result<(), SyntaxError> {
        let Some(name) = s.words.get(2).and_then(|t| t.word()) else {
            return Err(malformed(s, "expected a space name after `option space`"));
        };
        let mut narrow = true;
        let rest = &s.words[3..];
        let mut i = 0;
        while i < rest.len() {
            let kw: Vec<String> = rest[i..]
                .iter()
                .take(3)
                .filter_map(|t| t.word().map(str::to_ascii_lowercase))
                .collect();
            match kw.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["code" | "length", "width", n] => narrow &= *n == "1",
                ["hash", "size", _] => {}
                _ => {
                    return Err(malformed(
                        s,
                        "expected `code width N`, `length width N` or `hash size N`",
                    ));
                }
            }
            i += 3;
        }
        let space = self.defs.spaces.entry(name.to_ascii_lowercase()).or_default();
        space.narrow = narrow;
        Ok(())
    }

    /// `option NAME code N = TYPE;`
    fn option_definition(&mut self, s: &Stmt, name: &str) -> Result<(), SyntaxError> {
        let code = s.words.get(3).and_then(|t| t.word()).and_then(|w| w.parse::<u32>().ok());
        let (Some(code), Some(true)) = (code, s.words.get(4).map(|t| t.is_punct('='))) else {
            return Err(malformed(s, "expected `option NAME code N = TYPE;`"));
        };
        let ty = values::parse_type(&s.words[5..]);
        if let Some(("vsio", _)) = name.split_once('.') {
            let IscType::Encapsulate(space) = &ty else {
                self.refuse(s, "a vsio option other than an encapsulated space is not translated");
                return Ok(());
            };
            let Some(sp) = self.defs.spaces.get_mut(space) else {
                return Err(malformed(s, &format!("no option space {space} is declared")));
            };
            *sp = Space { enterprise: Some(code), ..sp.clone() };
            return Ok(());
        }
        if let Some((space, _)) = name.split_once('.')
            && !self.defs.spaces.contains_key(space)
        {
            return Err(malformed(s, &format!("no option space {space} is declared")));
        }
        let limit = if name.contains('.') { 255 } else { 254 };
        if code == 0 || code > limit {
            return Err(malformed(s, &format!("{code} is not an option code (1 to {limit})")));
        }
        self.defs.names.insert(name.to_owned(), Def { code, ty });
        Ok(())
    }

    pub(super) fn number(s: &Stmt) -> Result<u32, SyntaxError> {
        match s.words.as_slice() {
            [_, t] => t
                .word()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| malformed(s, &format!("{} is not a number of seconds", t.show()))),
            _ => Err(malformed(s, "expected one number")),
        }
    }

    pub(super) fn word_arg(s: &Stmt) -> Result<String, SyntaxError> {
        match s.words.as_slice() {
            [_, t] => match &t.tok {
                Tok::Word(w) => Ok(w.to_ascii_lowercase()),
                Tok::Str(b) => Ok(String::from_utf8_lossy(b).to_ascii_lowercase()),
                Tok::Punct(_) => Err(malformed(s, &format!("expected a name, found {}", t.show()))),
            },
            _ => Err(malformed(s, "expected one name")),
        }
    }

    /// `Why::No` listed, `Why::Malformed` an error.
    pub(super) fn why(&mut self, s: &Stmt, w: Why) -> Result<(), SyntaxError> {
        match w {
            Why::No(m) => {
                self.refuse(s, &m);
                Ok(())
            }
            Why::Malformed(m) => Err(malformed(s, &m)),
        }
    }
}

pub(super) fn malformed(s: &Stmt, m: &str) -> SyntaxError {
    SyntaxError::at(s.loc(), format!("{}: {m}", s.show()))
}

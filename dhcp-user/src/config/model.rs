//! The validated config: what the rest of the server may rely on without checking again.
//!
//! [`Config`] is only made by `TryFrom<wire::Config>`, a pure function of the file's contents:
//! no interface look-ups, no clocks. Every rule that spans fields (pools inside their prefix,
//! no overlaps, T1 < T2 < lease) is checked here and reported against the key it concerns.
use std::{collections::HashMap, net::Ipv4Addr, path::PathBuf};

use dhcp_failover::{Role, load_balance::Hba};
use ipnet::Ipv4Net;

use super::classes::{Class, ClassId, ClassSet, Condition, Pattern};
use super::profiles::Profiles;
use super::wire;
use crate::fastpath::subnet::SubnetOptions;

/// Addresses one key may hold at once (offers included); `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub per_circuit_id: Option<u32>,
    pub per_remote_id: Option<u32>,
    pub per_mac: Option<u32>,
}

fn limits(at: &str, w: Option<&wire::Limits>) -> Result<Limits, ValidationError> {
    let w = w.copied().unwrap_or_default();
    let one = |k: &str, v: Option<u32>| match v {
        Some(0) => err(format!("{at}.{k}"), "must be at least 1 (leave it out for no limit)"),
        v => Ok(v),
    };
    Ok(Limits {
        per_circuit_id: one("leases_per_circuit_id", w.leases_per_circuit_id)?,
        per_remote_id: one("leases_per_remote_id", w.leases_per_remote_id)?,
        per_mac: one("leases_per_mac", w.leases_per_mac)?,
    })
}

/// Options as encoded for the wire: code to value (a value over 255 bytes is split when sent).
pub type Options = std::collections::BTreeMap<u8, Vec<u8>>;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/xdhcp";
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/xdhcp/control.sock";
pub const DEFAULT_LEASE_TIME: u32 = 3600;
/// A declined address was found in use by some other host; an hour gives that host time to
/// go away before the address is offered again.
pub const DEFAULT_PROBATION: u32 = 3600;
/// Long enough for a client to pick among offers and REQUEST; short enough that a burst of
/// DISCOVERs from clients that never come back cannot hold a pool for long.
pub const DEFAULT_OFFER_HOLD: u32 = 60;

/// A subnet's position in [`Config::subnets`], which is also its slot in the kernel's subnet map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubnetId(pub u32);

impl SubnetId {
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A failover relationship: its position among the config's `failover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelationshipId(pub u16);

impl RelationshipId {
    #[must_use]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Interfaces the server listens on and attaches the fast path to.
    pub interfaces: Vec<String>,
    /// Option 54 in every reply, and the address clients unicast renewals to.
    pub server_id: Ipv4Addr,
    /// Where the lease store lives.
    pub state_dir: PathBuf,
    pub control_socket: PathBuf,
    /// The group given read access to the state directory and use of the control socket;
    /// none: the daemon's user alone. Resolved on the host by [`super::host`].
    pub group: Option<String>,
    /// Where Prometheus scrapes `/metrics` over HTTP; none by default (`xdhcp metrics` reads the
    /// same text over the control socket).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Seconds a declined address is kept out of the pools.
    pub probation: u32,
    /// Seconds an offered address stays set aside for the client it was offered to.
    pub offer_hold: u32,
    pub fast_path: FastPath,
    pub subnets: Vec<Subnet>,
    /// The failover relationships, in file order: each subnet shares its pools in at most
    /// one ([`Subnet::failover`]).
    pub failover: Vec<Failover>,
    /// `[options]`: sent to every client unless a narrower scope sets the same code.
    pub options: Options,
    /// In the order of the file: a client is in the first that it matches.
    pub classes: Vec<Class>,
    /// The reply profiles (options as sent) of every subnet, pool, class and reservation.
    pub profiles: Profiles,
    /// `[limits]`: addresses one port or MAC may hold at once.
    pub limits: Limits,
    /// `[police]`: the rates XDP holds unanswered messages to.
    pub police: super::police::Police,
    /// `[history]`: the lease history's files and database; none when not configured.
    pub history: Option<super::history::History>,
    /// For each subnet, the subnets of its shared network in file order (itself alone when it
    /// is in none): see [`Config::link_of`].
    links: Vec<Vec<SubnetId>>,
}

/// The failover port IANA assigned (draft-12 §8.1); ISC dhcpd's default too.
pub const FAILOVER_PORT: u16 = 647;

/// `[failover]`, validated. Defaults are ISC dhcpd 4.4's, so a pair keeps the behaviour an
/// operator migrating from `failover peer` expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// The relationship name; must equal the partner's `failover peer "<name>"`.
    pub name: String,
    pub role: Role,
    /// Our address: where we listen and the source of our connections (ISC accepts only
    /// connections from the address it has as `peer address`).
    pub address: Ipv4Addr,
    pub port: u16,
    pub peer_address: Ipv4Addr,
    pub peer_port: u16,
    pub max_response_delay: u32,
    pub max_unacked_updates: u32,
    /// Primary only; the secondary learns it from the primary's CONNECT.
    pub mclt: u32,
    /// Primary only (ISC meaning: set bits are the primary's buckets).
    pub hba: Hba,
    /// 0 turns load balancing off.
    pub load_balance_max_seconds: u16,
    pub auto_partner_down: Option<u32>,
    pub max_lease_misbalance: u8,
    pub max_lease_ownership: u8,
    pub min_balance: u32,
    pub max_balance: u32,
    /// The link over TLS 1.3 (an xdhcp partner); none: plain TCP, as ISC dhcpd speaks it.
    pub tls: Option<PeerTls>,
    /// Where it is in the file (`failover`, or `failover[1]` for the second of
    /// `[[failover]]`): what errors about it name.
    pub key: String,
}

/// A relationship's `tls`: files as named (read by [`super::host`] when the daemon starts), and
/// the name the partner's certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// A DNS name in the partner's certificate; none: its `peer_address` as an IP SAN.
    pub peer_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastPath {
    pub enabled: bool,
    pub attach_mode: AttachMode,
    /// XDP reports each ACK it sends, so the store learns of renewals (CLTT, new expiry).
    pub events: bool,
    /// Seconds beyond a lease's end that the store commits the fast path may renew up to;
    /// `None`: one lease time of the lease's subnet.
    pub horizon: Option<u32>,
    /// Slots of the event log per possible CPU (32 bytes each), a power of two.
    pub event_log_slots: u32,
    /// Leases the kernel's table holds (64 bytes each, a multiple of 256), fixed when the maps
    /// are first made; leases beyond it are answered by the slow path.
    pub lease_capacity: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Native where the driver supports it, else generic.
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: SubnetId,
    pub prefix: Ipv4Net,
    /// Inclusive ranges, sorted, disjoint, inside `prefix`.
    pub pools: Vec<Pool>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Lease granted when the client asks for none.
    pub lease_time: u32,
    /// Bounds on a lease time the client asks for (option 51).
    pub min_lease: u32,
    pub max_lease: u32,
    /// Renewal and rebinding times for a lease of `lease_time`; other lengths scale.
    pub t1: u32,
    pub t2: u32,
    /// Relay addresses (giaddr) whose requests belong to this subnet although the prefix does
    /// not contain them.
    pub relay_addresses: Vec<Ipv4Addr>,
    /// The shared network this subnet is part of: subnets naming the same one serve one link
    /// (see [`Config::link_of`]).
    pub shared_network: Option<String>,
    pub reservations: Vec<Reservation>,
    /// The failover relationship the pools are shared in, if any.
    pub failover: Option<RelationshipId>,
    /// What the slow path does with a request that would keep an active binding (RENEWING,
    /// REBINDING, INIT-REBOOT) when its option 82 names another circuit-id than the one the
    /// binding was acknowledged with. XDP answers none of these: their option 82 is not the
    /// one on record.
    pub circuit_change: CircuitChange,
    /// `[subnet.options]`, with `routers`, `dns` and `domain` as options 3, 6 and 15, and the
    /// mask (1) from the prefix.
    pub options: Options,
    /// Options of the pools that have any, as [`Pool::options`] indexes them.
    pub pool_options: Vec<Options>,
    /// The subnet's own `police` limits (each over `[police]`'s, see [`Config::police_of`]).
    pub police: super::police::Police,
}

/// `circuit_change`: a binding is acknowledged for the line (option 82 circuit-id) it was
/// bound on. A request that carries no option 82, or a binding with no circuit-id on record,
/// has no line to compare and is not concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitChange {
    /// DHCPNAK (the default): the client starts over at once with a DISCOVER, and the full
    /// exchange, which the new line's access node and BNG see, binds it there.
    Nak,
    /// No answer: the binding stays on its line until it ends; the client, its renewals and
    /// rebinds unanswered, starts over when it does (or after its INIT-REBOOT times out).
    Ignore,
    /// Acknowledge, and record the new line: the binding follows the client.
    Move,
}

impl CircuitChange {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nak => "nak",
            Self::Ignore => "ignore",
            Self::Move => "move",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    /// Classes admitted (empty: every client, classified or not) and refused.
    pub allow: ClassSet,
    pub deny: ClassSet,
    /// Index into [`Subnet::pool_options`].
    pub options: Option<u16>,
}

impl Pool {
    #[must_use]
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.start <= a && a <= self.end
    }

    #[must_use]
    pub fn size(&self) -> u64 {
        u64::from(u32::from(self.end)) - u64::from(u32::from(self.start)) + 1
    }

    /// Whether a client of `class` (none: unclassified) may get addresses here.
    #[must_use]
    pub fn admits(&self, class: Option<ClassId>) -> bool {
        match class {
            Some(c) => (self.allow.is_empty() || self.allow.contains(c)) && !self.deny.contains(c),
            None => self.allow.is_empty(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReservationKey {
    Mac([u8; 6]),
    /// Option 61's value, type byte included.
    ClientId(Vec<u8>),
    /// The access port, by option 82: its circuit-id, remote-id, or both.
    Port {
        circuit_id: Option<Vec<u8>>,
        remote_id: Option<Vec<u8>>,
    },
}

impl ReservationKey {
    /// Which reservation wins when several name one client: the client's own identifier,
    /// then its MAC, then its port (the more specific first).
    #[must_use]
    pub fn rank(&self) -> u8 {
        match self {
            Self::ClientId(_) => 0,
            Self::Mac(_) => 1,
            Self::Port { circuit_id: Some(_), remote_id: Some(_) } => 2,
            Self::Port { .. } => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub key: ReservationKey,
    pub address: Ipv4Addr,
    /// `[subnet.reservation.options]`: the narrowest scope.
    pub options: Options,
}

impl Subnet {
    #[must_use]
    pub fn in_pool(&self, a: Ipv4Addr) -> bool {
        self.pools.iter().any(|p| p.contains(a))
    }

    /// The pool holding `a`.
    #[must_use]
    pub fn pool_of(&self, a: Ipv4Addr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.contains(a))
    }

    /// Whether a client of `class` may be given `a`: a pool's class rules; a reserved address
    /// outside the pools is its reservation's to decide.
    #[must_use]
    pub fn admits(&self, a: Ipv4Addr, class: Option<ClassId>) -> bool {
        self.pool_of(a).is_none_or(|p| p.admits(class))
    }

    /// Lease length for a client that asked for `requested` seconds (option 51), if anything.
    #[must_use]
    pub fn lease_for(&self, requested: Option<u32>) -> u32 {
        requested.map_or(self.lease_time, |r| r.clamp(self.min_lease, self.max_lease))
    }

    /// T1 and T2 for a lease of `lease` seconds: the configured ones for the configured lease
    /// time, in the same proportion otherwise, so T1 < T2 < lease holds for any length.
    #[must_use]
    #[expect(
        clippy::cast_possible_truncation,
        reason = "t <= lease_time, so t * lease / lease_time <= lease"
    )]
    pub fn timers(&self, lease: u32) -> (u32, u32) {
        if lease == self.lease_time {
            return (self.t1, self.t2);
        }
        let scale = |t: u32| (u64::from(t) * u64::from(lease) / u64::from(self.lease_time)) as u32;
        (scale(self.t1), scale(self.t2))
    }
}

/// What the fast path puts in ACKs of a profile of subnet `s` with `options` (1 included):
/// 3, 6 and 15 where the block has their places, the rest after them.
#[must_use]
pub fn fast_path_options(server_id: Ipv4Addr, s: &Subnet, options: &Options) -> SubnetOptions {
    let addrs = |v: &[u8]| {
        v.chunks_exact(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect::<Vec<_>>()
    };
    SubnetOptions {
        server_id,
        mask: s.prefix.netmask(),
        routers: options.get(&OPT_ROUTER).map(|v| addrs(v)).unwrap_or_default(),
        dns: options.get(&OPT_DNS).map(|v| addrs(v)).unwrap_or_default(),
        domain: options.get(&OPT_DOMAIN).map(|v| String::from_utf8_lossy(v).into_owned()),
        t1_secs: s.t1,
        t2_secs: s.t2,
        extra: options
            .iter()
            .filter(|(c, _)| ![OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_DOMAIN].contains(c))
            .map(|(c, v)| (*c, v.clone()))
            .collect(),
    }
}

pub const OPT_MASK: u8 = 1;
pub const OPT_ROUTER: u8 = 3;
pub const OPT_DNS: u8 = 6;
pub const OPT_DOMAIN: u8 = 15;

impl Config {
    #[must_use]
    pub fn subnet(&self, id: SubnetId) -> Option<&Subnet> {
        self.subnets.get(id.index())
    }

    /// The relationships with their ids, in file order.
    pub fn relationships(&self) -> impl Iterator<Item = (RelationshipId, &Failover)> {
        (0..).map(RelationshipId).zip(&self.failover)
    }

    /// The relationship named `name`.
    #[must_use]
    pub fn relationship_named(&self, name: &str) -> Option<RelationshipId> {
        self.relationships().find(|(_, f)| f.name == name).map(|(r, _)| r)
    }

    /// The subnets whose pools are shared in relationship `r`.
    pub fn shared_in(&self, r: RelationshipId) -> impl Iterator<Item = &Subnet> {
        self.subnets.iter().filter(move |s| s.failover == Some(r))
    }

    /// The limits XDP holds the clients of `s` to: its own over the file's.
    #[must_use]
    pub fn police_of(&self, s: &Subnet) -> super::police::Police {
        s.police.over(&self.police)
    }

    /// The subnet whose prefix contains `a`.
    #[must_use]
    pub fn subnet_containing(&self, a: Ipv4Addr) -> Option<SubnetId> {
        self.subnets.iter().find(|s| s.prefix.contains(&a)).map(|s| s.id)
    }

    /// The subnets of `id`'s shared network, in file order; `id` alone when it is in none.
    /// A new client whose request [`Config::subnet_for`] puts in `id` may be given an address
    /// from any of them.
    #[must_use]
    pub fn link_of(&self, id: SubnetId) -> &[SubnetId] {
        self.links.get(id.index()).map_or(&[], Vec::as_slice)
    }

    /// The subnet a request belongs to (RFC 2131 §4.3.1, RFC 3527).
    ///
    /// * relayed (`giaddr` set): the link-selection sub-option of option 82 names the client's
    ///   link when present; otherwise a subnet listing `giaddr` in `relay_addresses`, then the
    ///   subnet whose prefix contains `giaddr`. Link selection is honoured only from relays:
    ///   a client could forge it on a directly attached link.
    /// * direct: the subnet containing `local`, the receiving interface's address.
    #[must_use]
    pub fn subnet_for(
        &self,
        giaddr: Option<Ipv4Addr>,
        link_selection: Option<Ipv4Addr>,
        local: Option<Ipv4Addr>,
    ) -> Option<SubnetId> {
        let listed = |a: Ipv4Addr| {
            self.subnets.iter().find(|s| s.relay_addresses.contains(&a)).map(|s| s.id)
        };
        match (giaddr, link_selection) {
            (Some(_), Some(link)) => self.subnet_containing(link).or_else(|| listed(link)),
            (Some(gi), None) => listed(gi).or_else(|| self.subnet_containing(gi)),
            (None, _) => local.and_then(|a| self.subnet_containing(a)),
        }
    }
}

/// A rule the file breaks, against the key it concerns (`subnet[1].pools[0].end`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ValidationError {
    pub key: String,
    pub message: String,
}

pub(super) fn err<T>(
    key: impl Into<String>,
    message: impl Into<String>,
) -> Result<T, ValidationError> {
    Err(ValidationError { key: key.into(), message: message.into() })
}

/// Linux's IFNAMSIZ less the terminating NUL.
const IFNAME_MAX: usize = 15;

impl TryFrom<&wire::FastPath> for FastPath {
    type Error = ValidationError;

    fn try_from(w: &wire::FastPath) -> Result<Self, ValidationError> {
        let fast_path = FastPath {
            enabled: w.enabled.unwrap_or(true),
            attach_mode: match w.attach_mode.unwrap_or(wire::AttachMode::Auto) {
                wire::AttachMode::Auto => AttachMode::Auto,
                wire::AttachMode::Native => AttachMode::Native,
                wire::AttachMode::Generic => AttachMode::Generic,
            },
            events: w.events.unwrap_or(true),
            horizon: w.horizon.map(|s| s.0),
            event_log_slots: w.event_log_slots.unwrap_or(dhcp_common::maps::LOG_SLOTS),
            lease_capacity: w.lease_capacity.unwrap_or(dhcp_common::maps::LEASES_MAX),
        };
        let (lo, hi) = (dhcp_common::maps::LEASES_MIN, dhcp_common::maps::LEASES_LIMIT);
        let cap = fast_path.lease_capacity;
        if !(lo..=hi).contains(&cap) || !cap.is_multiple_of(dhcp_common::maps::BLOCK_SLOTS) {
            return err(
                "fast_path.lease_capacity",
                format!("{cap} is not a multiple of 256 from {lo} to {hi}"),
            );
        }
        let (lo, hi) = (dhcp_common::maps::LOG_SLOTS_MIN, dhcp_common::maps::LOG_SLOTS_MAX);
        let slots = fast_path.event_log_slots;
        if !dhcp_common::maps::log_slots_valid(slots) {
            return err(
                "fast_path.event_log_slots",
                format!("{slots} is not a power of two from {lo} to {hi}"),
            );
        }
        Ok(fast_path)
    }
}

impl TryFrom<wire::Config> for Config {
    type Error = ValidationError;

    fn try_from(w: wire::Config) -> Result<Self, ValidationError> {
        let Some(interfaces) = w.interfaces else {
            return err("interfaces", "required: the interfaces to listen on, e.g. [\"eth1\"]");
        };
        if interfaces.is_empty() {
            return err("interfaces", "lists no interface");
        }
        for (i, name) in interfaces.iter().enumerate() {
            if name.is_empty() || name.len() > IFNAME_MAX || name.contains(['/', ' ']) {
                return err(
                    format!("interfaces[{i}]"),
                    format!("{name:?} is not an interface name"),
                );
            }
            if interfaces[..i].contains(name) {
                return err(format!("interfaces[{i}]"), format!("{name} is listed twice"));
            }
        }
        let Some(wire::Addr(server_id)) = w.server_id else {
            return err("server_id", "required: this server's address, sent as option 54");
        };
        if server_id.is_unspecified() || server_id.is_broadcast() || server_id.is_multicast() {
            return err("server_id", format!("{server_id} cannot identify a server"));
        }
        let offer_hold = w.offer_hold.map_or(DEFAULT_OFFER_HOLD, |s| s.0);
        if offer_hold == 0 {
            return err("offer_hold", "must be at least 1 second");
        }
        let fast_path = FastPath::try_from(&w.fast_path)?;
        if w.subnets.is_empty() {
            return err("subnet", "no [[subnet]] is configured");
        }
        if w.subnets.len() > dhcp_common::maps::PROFILES_MAX as usize {
            return err(
                "subnet",
                format!(
                    "at most {} subnets fit the fast path's reply profiles",
                    dhcp_common::maps::PROFILES_MAX
                ),
            );
        }
        let options = scope_options("options", w.options.as_ref())?;
        let classes = classes(&w.classes)?;
        let class_options = class_options(&w.classes)?;
        let failover = super::failover::failovers(w.failover)?;
        let mut subnets = Vec::with_capacity(w.subnets.len());
        for (i, ws) in w.subnets.into_iter().enumerate() {
            let s = subnet(i, ws, server_id, &classes, &failover)?;
            subnets.push(s);
        }
        check_across_subnets(&subnets)?;
        let links = shared_networks(&subnets)?;
        super::failover::all_used(&failover, &subnets)?;
        let profiles = Profiles::build(&subnets, &classes, &class_options, &options)?;
        let limits = limits("limits", w.limits.as_ref())?;
        let police = super::police::file(w.police.as_ref())?;
        let state_dir = w.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into());
        let history = super::history::history(w.history, &state_dir, server_id)?;
        Ok(Config {
            limits,
            police,
            options,
            classes,
            profiles,
            interfaces,
            server_id,
            state_dir,
            history,
            control_socket: w.control_socket.unwrap_or_else(|| DEFAULT_CONTROL_SOCKET.into()),
            group: group(w.group)?,
            metrics_listen: w.metrics_listen,
            probation: w.probation.map_or(DEFAULT_PROBATION, |s| s.0),
            offer_hold,
            fast_path,
            subnets,
            failover,
            links,
        })
    }
}

/// `group`: a plausible group name (whether the host has it is [`super::host`]'s to say).
fn group(g: Option<String>) -> Result<Option<String>, ValidationError> {
    match g {
        Some(g) if g.is_empty() || g.contains(['\0', ':', '\n']) => {
            err("group", format!("{g:?} is not a group name"))
        }
        g => Ok(g),
    }
}

/// Network and broadcast addresses of prefixes that have them (not /31 and /32, RFC 3021).
fn special(prefix: Ipv4Net, a: Ipv4Addr) -> bool {
    prefix.prefix_len() < 31 && (a == prefix.network() || a == prefix.broadcast())
}

/// An options table at `key`, encoded; errors name the option's key.
pub(super) fn scope_options(
    key: &str,
    t: Option<&toml::Table>,
) -> Result<Options, ValidationError> {
    match t {
        None => Ok(Options::new()),
        Some(t) => super::options::encode_table(t)
            .map_err(|(k, m)| ValidationError { key: format!("{key}.{k}"), message: m }),
    }
}

fn pattern(
    exact: Option<&wire::Bytes>,
    prefix: Option<&wire::Bytes>,
    at: &str,
    what: &str,
) -> Result<Option<Pattern>, ValidationError> {
    match (exact, prefix) {
        (Some(b), None) => Ok(Some(Pattern { bytes: b.0.clone(), prefix: false })),
        (None, Some(b)) => Ok(Some(Pattern { bytes: b.0.clone(), prefix: true })),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => {
            err(format!("{at}.{what}_prefix"), format!("give {what} or {what}_prefix, not both"))
        }
    }
}

fn classes(w: &[wire::Class]) -> Result<Vec<Class>, ValidationError> {
    if w.len() > super::classes::CLASSES_MAX {
        return err(
            format!("class[{}]", super::classes::CLASSES_MAX),
            format!("at most {} classes", super::classes::CLASSES_MAX),
        );
    }
    let mut out: Vec<Class> = Vec::with_capacity(w.len());
    for (i, c) in w.iter().enumerate() {
        let at = format!("class[{i}]");
        let Some(name) = c.name.clone() else {
            return err(at, "name is required");
        };
        if name.is_empty() || name.len() > 64 {
            return err(format!("{at}.name"), "must be 1 to 64 characters");
        }
        if let Some(k) = out.iter().position(|o| o.name == name) {
            return err(format!("{at}.name"), format!("{name} is already class[{k}]"));
        }
        let mut conditions = Vec::new();
        let pats = [
            ("vendor_class", &c.vendor_class, &c.vendor_class_prefix),
            ("user_class", &c.user_class, &c.user_class_prefix),
            ("circuit_id", &c.circuit_id, &c.circuit_id_prefix),
            ("remote_id", &c.remote_id, &c.remote_id_prefix),
        ];
        for (j, (what, exact, prefix)) in pats.into_iter().enumerate() {
            if let Some(p) = pattern(exact.as_ref(), prefix.as_ref(), &at, what)? {
                conditions.push(match j {
                    0 => Condition::VendorClass(p),
                    1 => Condition::UserClass(p),
                    2 => Condition::CircuitId(p),
                    _ => Condition::RemoteId(p),
                });
            }
        }
        if let Some(m) = &c.mac_prefix {
            if m.0.len() > 6 {
                return err(format!("{at}.mac_prefix"), "is longer than a MAC address");
            }
            conditions.push(Condition::MacPrefix(m.0.clone()));
        }
        if conditions.is_empty() {
            return err(
                at,
                "matches nothing: give vendor_class, user_class, circuit_id, remote_id (each \
                 exact or _prefix) or mac_prefix",
            );
        }
        let limits =
            c.limits.as_ref().map(|l| limits(&format!("{at}.limits"), Some(l))).transpose()?;
        #[expect(clippy::cast_possible_truncation, reason = "at most CLASSES_MAX classes")]
        out.push(Class { id: ClassId(i as u16), name, conditions, limits });
    }
    Ok(out)
}

/// The class options of the file, by class, for [`Profiles::build`].
fn class_options(w: &[wire::Class]) -> Result<Vec<Options>, ValidationError> {
    w.iter()
        .enumerate()
        .map(|(i, c)| scope_options(&format!("class[{i}].options"), c.options.as_ref()))
        .collect()
}

fn class_set(names: &[String], classes: &[Class], at: &str) -> Result<ClassSet, ValidationError> {
    let mut set = ClassSet::default();
    for (k, n) in names.iter().enumerate() {
        let Some(c) = classes.iter().find(|c| &c.name == n) else {
            return err(format!("{at}[{k}]"), format!("{n} is not a [[class]] name"));
        };
        set = set.with(c.id);
    }
    Ok(set)
}

#[expect(clippy::too_many_lines, reason = "one check after another, each with its own message")]
fn subnet(
    i: usize,
    mut w: wire::Subnet,
    server_id: Ipv4Addr,
    classes: &[Class],
    failovers: &[Failover],
) -> Result<Subnet, ValidationError> {
    let at = |k: &str| format!("subnet[{i}].{k}");
    let failover = super::failover::subnet_failover(i, w.failover.take(), failovers)?;
    let Some(wire::Prefix(prefix)) = w.prefix else {
        return err(format!("subnet[{i}]"), "prefix is required, e.g. prefix = \"10.0.0.0/24\"");
    };
    if prefix.addr() != prefix.network() {
        return err(
            at("prefix"),
            format!("{prefix} has host bits set (did you mean {}?)", prefix.trunc()),
        );
    }

    let police = super::police::subnet(&at("police"), w.police.as_ref())?;
    let mut pools: Vec<(usize, Pool)> = Vec::new();
    let mut pool_options: Vec<Options> = Vec::new();
    for (j, p) in w.pools.iter().enumerate() {
        let key = at(&format!("pools[{j}]"));
        let opts = scope_options(&format!("{key}.options"), p.options.as_ref())?;
        let options = if opts.is_empty() {
            None
        } else {
            pool_options.push(opts);
            #[expect(clippy::cast_possible_truncation, reason = "a subnet has few pools")]
            Some((pool_options.len() - 1) as u16)
        };
        let pool = Pool {
            start: p.start.0,
            end: p.end.0,
            allow: class_set(&p.allow, classes, &format!("{key}.allow"))?,
            deny: class_set(&p.deny, classes, &format!("{key}.deny"))?,
            options,
        };
        for (end, a) in [("start", pool.start), ("end", pool.end)] {
            if !prefix.contains(&a) {
                return err(
                    format!("{key}.{end}"),
                    format!("{a} is outside the subnet's prefix {prefix}"),
                );
            }
            if special(prefix, a) {
                return err(
                    format!("{key}.{end}"),
                    format!("{a} is the network or broadcast address of {prefix}"),
                );
            }
        }
        if pool.start > pool.end {
            return err(key, format!("start {} is after end {}", pool.start, pool.end));
        }
        if let Some((k, other)) =
            pools.iter().find(|(_, o)| o.start <= pool.end && pool.start <= o.end)
        {
            return err(key, format!("overlaps pools[{k}] ({} - {})", other.start, other.end));
        }
        if pool.contains(server_id) {
            return err(key, format!("contains the server's own address {server_id}"));
        }
        pools.push((j, pool));
    }

    for (j, r) in w.routers.iter().enumerate() {
        if !prefix.contains(&r.0) {
            return err(
                at(&format!("routers[{j}]")),
                format!("{} is not on {prefix}: a router must be on-link", r.0),
            );
        }
        if let Some((k, _)) = pools.iter().find(|(_, p)| p.contains(r.0)) {
            return err(at(&format!("pools[{k}]")), format!("contains router {}", r.0));
        }
    }

    let lease_time = w.lease_time.map_or(DEFAULT_LEASE_TIME, |s| s.0);
    if lease_time == 0 {
        return err(at("lease_time"), "must be at least 1 second");
    }
    let t1 = w.t1.map_or(lease_time / 2, |s| s.0);
    #[expect(clippy::cast_possible_truncation, reason = "7/8 of a u32 fits a u32")]
    let t2 = w.t2.map_or((u64::from(lease_time) * 7 / 8) as u32, |s| s.0);
    if t2 >= lease_time {
        return err(at("t2"), format!("{t2} s must be shorter than lease_time ({lease_time} s)"));
    }
    if t1 >= t2 {
        return err(at("t1"), format!("{t1} s must be shorter than t2 ({t2} s)"));
    }
    if t1 == 0 {
        return err(at("t1"), "must be at least 1 second");
    }
    let min_lease = w.min_lease.map_or(lease_time, |s| s.0);
    let max_lease = w.max_lease.map_or(lease_time, |s| s.0);
    if min_lease > lease_time || min_lease == 0 {
        return err(
            at("min_lease"),
            format!("{min_lease} s must be between 1 and lease_time ({lease_time} s)"),
        );
    }
    if max_lease < lease_time {
        return err(
            at("max_lease"),
            format!("{max_lease} s must not be shorter than lease_time ({lease_time} s)"),
        );
    }

    if let Some(d) = &w.domain
        && (d.is_empty() || d.len() > 255)
    {
        return err(at("domain"), "must be 1 to 255 characters");
    }

    let mut reservations: Vec<Reservation> = Vec::new();
    for (j, r) in w.reservations.into_iter().enumerate() {
        let key_at = at(&format!("reservation[{j}]"));
        let port = r.circuit_id.is_some() || r.remote_id.is_some();
        let key = match (r.mac, r.client_id, port) {
            (Some(m), None, false) => ReservationKey::Mac(m.0),
            (None, Some(id), false) => ReservationKey::ClientId(id.0),
            (None, None, true) => ReservationKey::Port {
                circuit_id: r.circuit_id.map(|b| b.0),
                remote_id: r.remote_id.map(|b| b.0),
            },
            (None, None, false) => {
                return err(key_at, "needs mac, client_id, or circuit_id and/or remote_id");
            }
            _ => {
                return err(
                    key_at,
                    "names a client two ways: give one of mac, client_id, or the port \
                     (circuit_id and/or remote_id)",
                );
            }
        };
        let options = scope_options(&format!("{key_at}.options"), r.options.as_ref())?;
        let Some(wire::Addr(address)) = r.address else {
            return err(key_at, "address is required");
        };
        let a_at = format!("{key_at}.address");
        if !prefix.contains(&address) {
            return err(a_at, format!("{address} is outside the subnet's prefix {prefix}"));
        }
        if special(prefix, address)
            || address == server_id
            || w.routers.iter().any(|x| x.0 == address)
        {
            return err(a_at, format!("{address} cannot be given to a client"));
        }
        if let Some(k) = reservations.iter().position(|o| o.address == address) {
            return err(a_at, format!("{address} is already reserved by reservation[{k}]"));
        }
        if let Some(k) = reservations.iter().position(|o| o.key == key) {
            let which = match key {
                ReservationKey::Mac(_) => "mac",
                ReservationKey::ClientId(_) => "client_id",
                ReservationKey::Port { circuit_id: Some(_), .. } => "circuit_id",
                ReservationKey::Port { .. } => "remote_id",
            };
            return err(
                format!("{key_at}.{which}"),
                format!("the same client already has reservation[{k}]"),
            );
        }
        reservations.push(Reservation { key, address, options });
    }

    let mut pools: Vec<Pool> = pools.into_iter().map(|(_, p)| p).collect();
    pools.sort_by_key(|p| p.start);
    // The shorthand keys are options 3, 6 and 15 of the subnet's scope.
    let mut options = scope_options(&at("options"), w.options.as_ref())?;
    let addrs = |v: &[wire::Addr]| v.iter().flat_map(|a| a.0.octets()).collect::<Vec<u8>>();
    let shorthand = [
        ("routers", OPT_ROUTER, (!w.routers.is_empty()).then(|| addrs(&w.routers))),
        ("dns", OPT_DNS, (!w.dns.is_empty()).then(|| addrs(&w.dns))),
        ("domain", OPT_DOMAIN, w.domain.as_ref().map(|d| d.as_bytes().to_vec())),
    ];
    for (k, code, v) in shorthand {
        if let Some(v) = v
            && options.insert(code, v).is_some()
        {
            return err(at(k), format!("option {code} is also set in this subnet's options"));
        }
    }
    options.insert(OPT_MASK, prefix.netmask().octets().to_vec());
    let s = Subnet {
        id: SubnetId(
            u32::try_from(i).expect("at most PROFILES_MAX subnets, checked by the caller"),
        ),
        prefix,
        pools,
        routers: w.routers.iter().map(|a| a.0).collect(),
        dns: w.dns.iter().map(|a| a.0).collect(),
        domain: w.domain,
        lease_time,
        min_lease,
        max_lease,
        t1,
        t2,
        relay_addresses: w.relay_addresses.iter().map(|a| a.0).collect(),
        shared_network: w.shared_network,
        reservations,
        failover,
        circuit_change: match w.circuit_change.unwrap_or(wire::CircuitChange::Nak) {
            wire::CircuitChange::Nak => CircuitChange::Nak,
            wire::CircuitChange::Ignore => CircuitChange::Ignore,
            wire::CircuitChange::Move => CircuitChange::Move,
        },
        options,
        pool_options,
        police,
    };
    Ok(s)
}

fn check_across_subnets(subnets: &[Subnet]) -> Result<(), ValidationError> {
    let mut relays: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (i, s) in subnets.iter().enumerate() {
        if let Some(o) = subnets[..i].iter().find(|o| {
            o.prefix.contains(&s.prefix.network()) || s.prefix.contains(&o.prefix.network())
        }) {
            return err(
                format!("subnet[{i}].prefix"),
                format!("{} overlaps subnet[{}] ({})", s.prefix, o.id.0, o.prefix),
            );
        }
        for (j, r) in s.relay_addresses.iter().enumerate() {
            if let Some(k) = relays.insert(*r, i) {
                return err(
                    format!("subnet[{i}].relay_addresses[{j}]"),
                    format!("{r} is already a relay address of subnet[{k}]"),
                );
            }
        }
    }
    Ok(())
}

/// The longest `shared_network` name (Kea's and dhcpd's names are free text; this is ample).
const SHARED_NETWORK_MAX: usize = 64;

/// `shared_network`: for each subnet, the subnets naming the same shared network, in file
/// order (itself alone when it names none).
fn shared_networks(subnets: &[Subnet]) -> Result<Vec<Vec<SubnetId>>, ValidationError> {
    let mut members: HashMap<&str, Vec<SubnetId>> = HashMap::new();
    for (i, s) in subnets.iter().enumerate() {
        let Some(name) = s.shared_network.as_deref() else { continue };
        let key = format!("subnet[{i}].shared_network");
        if name.is_empty() || name.chars().count() > SHARED_NETWORK_MAX {
            return err(key, format!("must be 1 to {SHARED_NETWORK_MAX} characters"));
        }
        let net = members.entry(name).or_default();
        if let Some(first) = net.first().map(|id| &subnets[id.index()])
            && first.failover != s.failover
        {
            let (on, off) = if first.failover.is_some() { (first, s) } else { (s, first) };
            let off_says = if off.failover.is_some() { "another relationship" } else { "none" };
            return err(
                key,
                format!(
                    "{name:?} has subnet[{}] in a failover relationship and subnet[{}] in \
                     {off_says}: the subnets of a shared network are all shared with one \
                     failover partner or none, because a new client may get an address from \
                     any of them and whether this server or its partner answers it is \
                     decided once, for the link",
                    on.id.0, off.id.0
                ),
            );
        }
        net.push(s.id);
    }
    Ok(subnets
        .iter()
        .map(|s| match s.shared_network.as_deref() {
            Some(name) => members[name].clone(),
            None => vec![s.id],
        })
        .collect())
}

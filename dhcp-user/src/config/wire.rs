//! The config file as written: serde structs that mirror the TOML one to one.
//!
//! Nothing here is validated beyond "is it the right shape": leaf values parse into small
//! newtypes so that a malformed address, MAC or duration fails at the exact value (and toml
//! reports its span), while every cross-field rule lives in [`super::model`]. Fields the
//! model can default are `Option` here, so the model — not serde — decides the default and can
//! say which key was missing.
use std::{fmt, path::PathBuf};

use serde::{Deserialize, Deserializer, de};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub interfaces: Option<Vec<String>>,
    pub server_id: Option<Addr>,
    pub state_dir: Option<PathBuf>,
    pub control_socket: Option<PathBuf>,
    /// The group that may read the state directory and use the control socket.
    pub group: Option<String>,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub probation: Option<Secs>,
    pub offer_hold: Option<Secs>,
    #[serde(default)]
    pub fast_path: FastPath,
    #[serde(default, rename = "subnet")]
    pub subnets: Vec<Subnet>,
    /// `[failover]` (one relationship) or `[[failover]]` (any number).
    pub failover: Option<Failovers>,
    /// `[options]`: the global scope.
    pub options: Option<toml::Table>,
    #[serde(default, rename = "class")]
    pub classes: Vec<Class>,
    pub limits: Option<Limits>,
    pub police: Option<Police>,
    /// `[history]`: its shape is with its validation, in `config::history`.
    pub history: Option<super::history::WireHistory>,
}

/// `[police]`: rates of the messages XDP does not answer, per key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Police {
    pub mac: Option<PoliceRate>,
    pub port: Option<PoliceRate>,
    pub vlan: Option<PoliceRate>,
    pub interface: Option<PoliceRate>,
}

/// A subnet's `police`: as `[police]` without the interface's bucket.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetPolice {
    pub mac: Option<PoliceRate>,
    pub port: Option<PoliceRate>,
    pub vlan: Option<PoliceRate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliceRate {
    pub rate: Option<u32>,
    pub burst: Option<u32>,
}

/// `[limits]`, and a class's own `limits`: addresses held at once, offers included.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub leases_per_circuit_id: Option<u32>,
    pub leases_per_remote_id: Option<u32>,
    pub leases_per_mac: Option<u32>,
}

/// `[[class]]`: every condition given must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    pub name: Option<String>,
    pub vendor_class: Option<Bytes>,
    pub vendor_class_prefix: Option<Bytes>,
    pub user_class: Option<Bytes>,
    pub user_class_prefix: Option<Bytes>,
    pub circuit_id: Option<Bytes>,
    pub circuit_id_prefix: Option<Bytes>,
    pub remote_id: Option<Bytes>,
    pub remote_id_prefix: Option<Bytes>,
    pub mac_prefix: Option<Hex>,
    pub options: Option<toml::Table>,
    pub limits: Option<Limits>,
}

/// `[failover]`: ISC dhcpd's `failover peer "name" { ... }`, one key per statement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub address: Option<Addr>,
    pub port: Option<u16>,
    pub peer_address: Option<Addr>,
    pub peer_port: Option<u16>,
    pub max_response_delay: Option<Secs>,
    pub max_unacked_updates: Option<u32>,
    pub mclt: Option<Secs>,
    pub split: Option<u16>,
    pub hba: Option<Hex>,
    pub load_balance_max_seconds: Option<u16>,
    pub auto_partner_down: Option<Secs>,
    pub max_lease_misbalance: Option<u8>,
    pub max_lease_ownership: Option<u8>,
    pub min_balance: Option<Secs>,
    pub max_balance: Option<Secs>,
    pub tls: Option<FailoverTls>,
}

/// The failover relationships as written: the single `[failover]` table, or `[[failover]]`.
/// The two forms are kept apart because errors name the key as the file spells it.
#[derive(Debug)]
pub enum Failovers {
    One(Box<Failover>),
    Many(Vec<Failover>),
}

impl<'de> Deserialize<'de> for Failovers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Failovers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [failover] table or [[failover]] tables")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<Failovers, A::Error> {
                let one = Failover::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(Failovers::One(Box::new(one)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, s: A) -> Result<Failovers, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(s)).map(Failovers::Many)
            }
        }
        d.deserialize_any(V)
    }
}

/// A subnet's `failover`: `true` (the one relationship), `false`, or a relationship's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubnetFailover {
    Shared(bool),
    Named(String),
}

impl<'de> Deserialize<'de> for SubnetFailover {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = SubnetFailover;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a failover relationship's name, or true when there is one")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<SubnetFailover, E> {
                Ok(SubnetFailover::Shared(b))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SubnetFailover, E> {
                Ok(SubnetFailover::Named(s.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A failover relationship's `tls`: the link to an xdhcp partner over TLS 1.3.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub peer_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Secondary,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastPath {
    pub enabled: Option<bool>,
    pub attach_mode: Option<AttachMode>,
    pub events: Option<bool>,
    pub horizon: Option<Secs>,
    pub event_log_slots: Option<u32>,
    pub lease_capacity: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub prefix: Option<Prefix>,
    #[serde(default)]
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub routers: Vec<Addr>,
    #[serde(default)]
    pub dns: Vec<Addr>,
    pub domain: Option<String>,
    pub lease_time: Option<Secs>,
    pub min_lease: Option<Secs>,
    pub max_lease: Option<Secs>,
    pub t1: Option<Secs>,
    pub t2: Option<Secs>,
    #[serde(default)]
    pub relay_addresses: Vec<Addr>,
    /// The shared network (several subnets on one link) this subnet is part of.
    pub shared_network: Option<String>,
    #[serde(default, rename = "reservation")]
    pub reservations: Vec<Reservation>,
    /// The relationship the subnet's pools are shared in: its name, or `true` when there is
    /// only one.
    pub failover: Option<SubnetFailover>,
    /// What a renewal from another line (option 82 circuit-id) than its binding's gets.
    pub circuit_change: Option<CircuitChange>,
    pub options: Option<toml::Table>,
    /// Limits of this subnet's clients over `[police]`'s.
    pub police: Option<SubnetPolice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CircuitChange {
    Nak,
    Ignore,
    Move,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub start: Addr,
    pub end: Addr,
    /// Classes whose clients may get addresses here (none listed: every client).
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    pub options: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    pub mac: Option<Mac>,
    pub client_id: Option<Hex>,
    /// Option 82's circuit-id and remote-id: the access port, whatever device is behind it.
    pub circuit_id: Option<Bytes>,
    pub remote_id: Option<Bytes>,
    pub address: Option<Addr>,
    pub options: Option<toml::Table>,
}

/// Bytes written as text (`"olt1 xpon 0/1/1:12"`, its UTF-8) or as `{ hex = "01:02" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Hex { hex: Hex },
        }
        match Form::deserialize(d) {
            Ok(Form::Text(s)) if !s.is_empty() => Ok(Bytes(s.into_bytes())),
            Ok(Form::Text(_)) => Err(de::Error::custom("is empty")),
            Ok(Form::Hex { hex }) => Ok(Bytes(hex.0)),
            Err(_) => Err(de::Error::custom("is not text or { hex = \"01:02\" }")),
        }
    }
}

/// Deserializes a string with `FromStr`-like parsing, so the error names the offending text.
fn from_str_with<'de, D, T>(
    d: D,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    parse(&s).ok_or_else(|| de::Error::custom(format_args!("{s} is not {what}")))
}

/// An IPv4 address written as a dotted-quad string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr(pub std::net::Ipv4Addr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "an IPv4 address", |s| s.parse().ok()).map(Addr)
    }
}

/// An IPv4 prefix in CIDR notation. Host bits are kept so the model can reject them: a typo
/// such as `10.0.1.0/16` is more likely than a wish for `10.0.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix(pub ipnet::Ipv4Net);

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "an IPv4 prefix (address/length)", |s| s.parse().ok()).map(Prefix)
    }
}

/// A 6-byte Ethernet address, `aa:bb:cc:dd:ee:ff` or with `-` separators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a MAC address (aa:bb:cc:dd:ee:ff)", |s| {
            let mut out = [0u8; 6];
            let mut parts = s.split([':', '-']);
            for b in &mut out {
                let p = parts.next()?;
                if p.len() != 2 {
                    return None;
                }
                *b = u8::from_str_radix(p, 16).ok()?;
            }
            parts.next().is_none().then_some(Mac(out))
        })
    }
}

/// Bytes written in hex, optionally separated by `:` (`01:aa:bb:cc:dd:ee:ff` or `01aabb…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "hex bytes (01:aa:bb or 01aabb)", |s| {
            let digits: Vec<u8> = s.bytes().filter(|&b| b != b':').collect();
            if digits.is_empty() || !digits.len().is_multiple_of(2) {
                return None;
            }
            digits
                .chunks(2)
                .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
                .collect::<Option<Vec<u8>>>()
                .map(Hex)
        })
    }
}

/// A duration in seconds: an integer, or a string such as `"90s"`, `"30m"`, `"12h"`, `"1d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub u32);

impl Secs {
    fn parse(s: &str) -> Option<u32> {
        let s = s.trim();
        let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, _)) => s.split_at(i),
            None => (s, "s"),
        };
        let mult = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        num.parse::<u32>().ok()?.checked_mul(mult)
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Secs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds, or a string like \"30m\", \"12h\", \"1d\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Secs, E> {
                u32::try_from(v).map(Secs).map_err(|_| {
                    E::custom(format_args!("{v} is not a duration in seconds (0 to {})", u32::MAX))
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secs, E> {
                u32::try_from(v).map(Secs).map_err(|_| {
                    E::custom(format_args!("{v} is not a duration in seconds (0 to {})", u32::MAX))
                })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Secs, E> {
                Secs::parse(s).map(Secs).ok_or_else(|| {
                    E::custom(format_args!(
                        "{s} is not a duration (seconds, or a number followed by s, m, h or d)"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_operators_write_them() {
        assert_eq!(Secs::parse("90"), Some(90));
        assert_eq!(Secs::parse("30m"), Some(1800));
        assert_eq!(Secs::parse("12h"), Some(43_200));
        assert_eq!(Secs::parse("1d"), Some(86_400));
        assert_eq!(Secs::parse("1w"), None);
        assert_eq!(Secs::parse("h"), None);
        assert_eq!(Secs::parse("99999999d"), None);
    }
}

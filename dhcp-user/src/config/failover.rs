//! `[failover]`, validated: ISC dhcpd 4.4's defaults, each key checked against its
//! dhcpd.conf statement's rules, errors against the key they concern.
use dhcp_failover::{Role, load_balance::Hba};

use super::model::{
    FAILOVER_PORT, Failover, PeerTls, RelationshipId, Subnet, ValidationError, err,
};
use super::wire;

/// The relationships of `[failover]` or `[[failover]]`, each valid, no two with one name, and
/// no two that the link could not tell apart: a connection is matched to its relationship by
/// the listener it arrives on and the address it comes from.
pub(super) fn failovers(w: Option<wire::Failovers>) -> Result<Vec<Failover>, ValidationError> {
    let all = match w {
        None => Vec::new(),
        Some(wire::Failovers::One(f)) => vec![failover("failover", *f)?],
        Some(wire::Failovers::Many(v)) => v
            .into_iter()
            .enumerate()
            .map(|(i, f)| failover(&format!("failover[{i}]"), f))
            .collect::<Result<_, _>>()?,
    };
    if all.len() > usize::from(u16::MAX) {
        return err("failover", "too many relationships");
    }
    for (i, f) in all.iter().enumerate() {
        if let Some(o) = all[..i].iter().find(|o| o.name == f.name) {
            return err(
                format!("{}.name", f.key),
                format!("{:?} is also {}'s name", f.name, o.key),
            );
        }
        if let Some(o) = all[..i]
            .iter()
            .find(|o| (o.address, o.port, o.peer_address) == (f.address, f.port, f.peer_address))
        {
            return err(
                format!("{}.port", f.key),
                format!(
                    "{} listens on {}:{} for the partner at {} too: two relationships with one \
                     partner need a port each",
                    o.key, f.address, f.port, f.peer_address
                ),
            );
        }
    }
    Ok(all)
}

/// Subnet `i`'s `failover`: the relationship it names, or the only one for `true`.
pub(super) fn subnet_failover(
    i: usize,
    w: Option<wire::SubnetFailover>,
    all: &[Failover],
) -> Result<Option<RelationshipId>, ValidationError> {
    let key = format!("subnet[{i}].failover");
    let names = || all.iter().map(|f| format!("{:?}", f.name)).collect::<Vec<_>>().join(", ");
    let id = |p: usize| RelationshipId(u16::try_from(p).expect("at most u16::MAX, checked"));
    match w {
        None | Some(wire::SubnetFailover::Shared(false)) => Ok(None),
        Some(wire::SubnetFailover::Shared(true)) => match all.len() {
            0 => err(key, "there is no [failover] table describing the partner"),
            1 => Ok(Some(id(0))),
            _ => err(key, format!("there are several relationships: name one of {}", names())),
        },
        Some(wire::SubnetFailover::Named(n)) => match all.iter().position(|f| f.name == n) {
            Some(p) => Ok(Some(id(p))),
            None if all.is_empty() => {
                err(key, format!("{n:?}: there is no [failover] table describing the partner"))
            }
            None => err(key, format!("{n:?} is not a relationship; there are {}", names())),
        },
    }
}

/// Every relationship shares some subnet: one that none names is a mistake in the file (and
/// would keep a partner waiting for addresses that are never there).
pub(super) fn all_used(all: &[Failover], subnets: &[Subnet]) -> Result<(), ValidationError> {
    for (i, f) in all.iter().enumerate() {
        if !subnets.iter().any(|s| s.failover.is_some_and(|r| r.index() == i)) {
            let how = if all.len() == 1 && f.key == "failover" {
                "set failover = true in the [[subnet]] tables to share".to_owned()
            } else {
                format!("set failover = {:?} in the [[subnet]] tables it shares", f.name)
            };
            return err(f.key.clone(), format!("no subnet uses it: {how}"));
        }
    }
    Ok(())
}

#[expect(clippy::too_many_lines, reason = "one check after another, each with its own message")]
pub(super) fn failover(key: &str, w: wire::Failover) -> Result<Failover, ValidationError> {
    let at = |k: &str| format!("{key}.{k}");
    let Some(name) = w.name else {
        return err(at("name"), "required: the relationship name both servers use");
    };
    if name.is_empty() || name.len() > 255 {
        return err(at("name"), "must be 1 to 255 characters");
    }
    let Some(role) = w.role else {
        return err(at("role"), "required: \"primary\" or \"secondary\"");
    };
    let role = match role {
        wire::Role::Primary => Role::Primary,
        wire::Role::Secondary => Role::Secondary,
    };
    let Some(wire::Addr(address)) = w.address else {
        return err(at("address"), "required: the address this server listens on");
    };
    let Some(wire::Addr(peer_address)) = w.peer_address else {
        return err(at("peer_address"), "required: the partner's address");
    };
    // The link binds the listener to `address` and connects from it; the partner checks the
    // source. A wildcard would also overlap every other relationship's listener on its port.
    if address.is_unspecified() || address.is_broadcast() || address.is_multicast() {
        return err(
            at("address"),
            format!("{address} is not one host's address: name the address this server listens on"),
        );
    }
    if peer_address.is_unspecified() || peer_address.is_broadcast() || peer_address.is_multicast() {
        return err(at("peer_address"), format!("{peer_address} is not one host's address"));
    }
    let port = w.port.unwrap_or(FAILOVER_PORT);
    let peer_port = w.peer_port.unwrap_or(FAILOVER_PORT);
    if (address, port) == (peer_address, peer_port) {
        return err(at("peer_address"), "is this server's own address and port");
    }
    let max_response_delay = w.max_response_delay.map_or(20, |s| s.0);
    if max_response_delay == 0 {
        return err(at("max_response_delay"), "must be at least 1 second");
    }
    let max_unacked_updates = w.max_unacked_updates.unwrap_or(100);
    if max_unacked_updates == 0 {
        return err(at("max_unacked_updates"), "must be at least 1");
    }
    let (mclt, hba) = match role {
        Role::Primary => {
            let Some(mclt) = w.mclt else {
                return err(at("mclt"), "required on the primary (e.g. mclt = \"1h\")");
            };
            let hba = match (w.split, w.hba) {
                (Some(n), None) if n <= 256 => Hba::split(n),
                (Some(n), None) => {
                    return err(at("split"), format!("{n} is not between 0 and 256"));
                }
                (None, Some(h)) => match <[u8; 32]>::try_from(h.0.as_slice()) {
                    Ok(bits) => Hba(bits),
                    Err(_) => {
                        return err(
                            at("hba"),
                            format!("is {} bytes; a hash bucket assignment has 32", h.0.len()),
                        );
                    }
                },
                (Some(_), Some(_)) => return err(at("hba"), "give split or hba, not both"),
                (None, None) => {
                    return err(at("split"), "required on the primary: split or hba");
                }
            };
            (mclt.0, hba)
        }
        Role::Secondary => {
            let primary_only = [
                ("mclt", w.mclt.is_some()),
                ("split", w.split.is_some()),
                ("hba", w.hba.is_some()),
            ];
            if let Some((k, _)) = primary_only.iter().find(|(_, set)| *set) {
                return err(
                    at(k),
                    "is set by the primary only; the secondary learns it when the primary connects",
                );
            }
            (0, Hba::split(0))
        }
    };
    let pct = |k: &str, v: Option<u8>, default: u8| match v {
        Some(p) if p > 100 => err(at(k), format!("{p} is not a percentage")),
        Some(p) => Ok(p),
        None => Ok(default),
    };
    let max_lease_misbalance = pct("max_lease_misbalance", w.max_lease_misbalance, 15)?;
    let max_lease_ownership = pct("max_lease_ownership", w.max_lease_ownership, 10)?;
    let min_balance = w.min_balance.map_or(60, |s| s.0);
    let max_balance = w.max_balance.map_or(3600, |s| s.0);
    if min_balance > max_balance {
        return err(
            at("min_balance"),
            format!("{min_balance} s is longer than max_balance ({max_balance} s)"),
        );
    }
    Ok(Failover {
        name,
        role,
        address,
        port,
        peer_address,
        peer_port,
        max_response_delay,
        max_unacked_updates,
        mclt,
        hba,
        // ISC's default: a client that has waited 3 s is answered by whichever server hears it.
        load_balance_max_seconds: w.load_balance_max_seconds.unwrap_or(3),
        auto_partner_down: w.auto_partner_down.map(|s| s.0).filter(|s| *s > 0),
        max_lease_misbalance,
        max_lease_ownership,
        min_balance,
        max_balance,
        tls: w.tls.map(|t| tls(key, t)).transpose()?,
        key: key.to_owned(),
    })
}

/// `failover.tls`: all three files, and a peer name that can be a certificate's DNS name.
fn tls(key: &str, w: wire::FailoverTls) -> Result<PeerTls, ValidationError> {
    let at = |k: &str| format!("{key}.tls.{k}");
    let file = |k: &str, v: Option<std::path::PathBuf>| match v {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => err(at(k), "required: a PEM file's path"),
    };
    let peer_name = match w.peer_name {
        Some(n) if rustls::pki_types::DnsName::try_from(n.as_str()).is_err() => {
            return err(at("peer_name"), format!("{n:?} is not a DNS name"));
        }
        n => n,
    };
    Ok(PeerTls {
        cert: file("cert", w.cert)?,
        key: file("key", w.key)?,
        ca: file("ca", w.ca)?,
        peer_name,
    })
}

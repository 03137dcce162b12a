//! `[failover]`, validated: ISC dhcpd 4.4's defaults, each key checked against its
//! dhcpd.conf statement's rules, errors against the key they concern.
use dhcp_failover::{Role, load_balance::Hba};

use super::model::{FAILOVER_PORT, Failover, PeerTls, ValidationError, err};
use super::wire;

#[expect(clippy::too_many_lines, reason = "one check after another, each with its own message")]
pub(super) fn failover(w: wire::Failover) -> Result<Failover, ValidationError> {
    let Some(name) = w.name else {
        return err("failover.name", "required: the relationship name both servers use");
    };
    if name.is_empty() || name.len() > 255 {
        return err("failover.name", "must be 1 to 255 characters");
    }
    let Some(role) = w.role else {
        return err("failover.role", "required: \"primary\" or \"secondary\"");
    };
    let role = match role {
        wire::Role::Primary => Role::Primary,
        wire::Role::Secondary => Role::Secondary,
    };
    let Some(wire::Addr(address)) = w.address else {
        return err("failover.address", "required: the address this server listens on");
    };
    let Some(wire::Addr(peer_address)) = w.peer_address else {
        return err("failover.peer_address", "required: the partner's address");
    };
    let port = w.port.unwrap_or(FAILOVER_PORT);
    let peer_port = w.peer_port.unwrap_or(FAILOVER_PORT);
    if (address, port) == (peer_address, peer_port) {
        return err("failover.peer_address", "is this server's own address and port");
    }
    let max_response_delay = w.max_response_delay.map_or(20, |s| s.0);
    if max_response_delay == 0 {
        return err("failover.max_response_delay", "must be at least 1 second");
    }
    let max_unacked_updates = w.max_unacked_updates.unwrap_or(100);
    if max_unacked_updates == 0 {
        return err("failover.max_unacked_updates", "must be at least 1");
    }
    let (mclt, hba) = match role {
        Role::Primary => {
            let Some(mclt) = w.mclt else {
                return err("failover.mclt", "required on the primary (e.g. mclt = \"1h\")");
            };
            let hba = match (w.split, w.hba) {
                (Some(n), None) if n <= 256 => Hba::split(n),
                (Some(n), None) => {
                    return err("failover.split", format!("{n} is not between 0 and 256"));
                }
                (None, Some(h)) => match <[u8; 32]>::try_from(h.0.as_slice()) {
                    Ok(bits) => Hba(bits),
                    Err(_) => {
                        return err(
                            "failover.hba",
                            format!("is {} bytes; a hash bucket assignment has 32", h.0.len()),
                        );
                    }
                },
                (Some(_), Some(_)) => return err("failover.hba", "give split or hba, not both"),
                (None, None) => {
                    return err("failover.split", "required on the primary: split or hba");
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
                    format!("failover.{k}"),
                    "is set by the primary only; the secondary learns it when the primary connects",
                );
            }
            (0, Hba::split(0))
        }
    };
    let pct = |key: &str, v: Option<u8>, default: u8| match v {
        Some(p) if p > 100 => err(format!("failover.{key}"), format!("{p} is not a percentage")),
        Some(p) => Ok(p),
        None => Ok(default),
    };
    let max_lease_misbalance = pct("max_lease_misbalance", w.max_lease_misbalance, 15)?;
    let max_lease_ownership = pct("max_lease_ownership", w.max_lease_ownership, 10)?;
    let min_balance = w.min_balance.map_or(60, |s| s.0);
    let max_balance = w.max_balance.map_or(3600, |s| s.0);
    if min_balance > max_balance {
        return err(
            "failover.min_balance",
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
        tls: w.tls.map(tls).transpose()?,
    })
}

/// `failover.tls`: all three files, and a peer name that can be a certificate's DNS name.
fn tls(w: wire::FailoverTls) -> Result<PeerTls, ValidationError> {
    let file = |k: &str, v: Option<std::path::PathBuf>| match v {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => err(format!("failover.tls.{k}"), "required: a PEM file's path"),
    };
    let peer_name = match w.peer_name {
        Some(n) if rustls::pki_types::DnsName::try_from(n.as_str()).is_err() => {
            return err("failover.tls.peer_name", format!("{n:?} is not a DNS name"));
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

//! A lease record as the failover protocol carries it, both ways: the BNDUPD that tells the
//! partner about a record, the record after accepting the partner's, and the engine's
//! persisted state as the store keeps it.
use std::{fmt::Write as _, net::Ipv4Addr};

use dhcp_failover::{
    BindingStatus, BindingUpdate, HwAddr, PersistedState, ServerState, load_balance::Hba,
};
use serde_json::{Value, json};

use crate::store::{Chaddr, Lease, LeaseState};

/// Encodes the engine's persisted state for the store's opaque blob, with the pool ranges
/// whose records' acknowledgements it vouches for (see `rehome`).
#[must_use]
pub fn encode_state(p: &PersistedState, ranges: &[(Ipv4Addr, Ipv4Addr)]) -> Vec<u8> {
    let ranges: Vec<[String; 2]> =
        ranges.iter().map(|(lo, hi)| [lo.to_string(), hi.to_string()]).collect();
    json!({
        "version": 1,
        "my_state": p.my_state as u8,
        "my_state_since": p.my_state_since,
        "partner_state": p.partner_state.map(|s| s as u8),
        "partner_state_since": p.partner_state_since,
        "mclt": p.mclt,
        "hba": hex(&p.hba.0),
        "ranges": ranges,
    })
    .to_string()
    .into_bytes()
}

/// Reads what [`encode_state`] wrote. A blob that does not read is treated as absent: the
/// engine then recovers the database from the partner, the safe way to start without state.
#[must_use]
pub fn decode_state(blob: &[u8]) -> Option<PersistedState> {
    let v: Value = serde_json::from_slice(blob).ok()?;
    let state = |k: &str| ServerState::from_u8(u8::try_from(v[k].as_u64()?).ok()?);
    let hba_hex = v["hba"].as_str()?;
    let bytes = unhex(hba_hex)?;
    Some(PersistedState {
        my_state: state("my_state")?,
        my_state_since: v["my_state_since"].as_u64()?,
        partner_state: state("partner_state"),
        partner_state_since: v["partner_state_since"].as_u64().unwrap_or(0),
        mclt: u32::try_from(v["mclt"].as_u64()?).ok()?,
        hba: Hba(<[u8; 32]>::try_from(bytes.as_slice()).ok()?),
    })
}

/// The ranges [`encode_state`] named: `None` for a state written before it named them, or
/// one that does not read.
#[must_use]
pub fn decode_ranges(blob: &[u8]) -> Option<Vec<(Ipv4Addr, Ipv4Addr)>> {
    let v: Value = serde_json::from_slice(blob).ok()?;
    let addr = |x: &Value| x.as_str()?.parse::<Ipv4Addr>().ok();
    v["ranges"].as_array()?.iter().map(|r| Some((addr(&r[0])?, addr(&r[1])?))).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Wire times are u32; a time past 2106 saturates rather than wrapping.
pub(super) fn wire(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

fn bound(s: LeaseState) -> bool {
    matches!(s, LeaseState::Active | LeaseState::Expired | LeaseState::Released)
}

/// The BNDUPD that tells the partner about `l`.
#[must_use]
pub fn binding_of(l: &Lease) -> BindingUpdate {
    let status = BindingStatus::from(l.state);
    let mut b = BindingUpdate::new(l.address, status);
    if bound(l.state) {
        b.client_id = l.client_id.as_deref().map(<[u8]>::to_vec);
        if !l.chaddr.is_empty() {
            b.chaddr = Some(HwAddr { htype: l.htype, addr: l.chaddr.to_vec() });
        }
        b.lease_expiration = Some(wire(l.expires_at));
        b.client_last_transaction = Some(wire(l.cltt));
    }
    // How long a declined address stays out of use. The draft has no end on ABANDONED, but
    // ISC dhcpd sends one (decline time plus `abandon-lease-time`) and frees the address when
    // it passes; without ours it would keep the end of the lease the client declined, and
    // free the address, and tell us so, before our probation is over.
    if l.state == LeaseState::Abandoned
        && let Some(p) = l.probation_until.map(std::num::NonZeroU64::get)
    {
        b.lease_expiration = Some(wire(p));
    }
    if l.pet_sent > 0 {
        b.potential_expiration = Some(wire(l.pet_sent));
    }
    b.start_time_of_state = Some(wire(l.stos));
    b
}

/// The record after accepting the partner's `b` over ours (`old`).
#[must_use]
pub fn lease_from_binding(old: Option<&Lease>, b: &BindingUpdate, subnet: u32, now: u64) -> Lease {
    let state = LeaseState::from(b.status);
    let mut l = old.cloned().unwrap_or_else(|| Lease::new(b.ip, state, subnet, now));
    let same_client = match (&b.client_id, &l.client_id) {
        (Some(x), Some(y)) => y == x,
        _ => b.chaddr.as_ref().is_some_and(|h| h.htype == l.htype && l.chaddr == h.addr),
    };
    // The partner's view of our own client's lease can be older than ours (a renewal it has
    // not heard of yet, one our fast path granted while this daemon was down): what this
    // server told the client must stay in its store, or the address could expire here, and
    // go to someone else, while the client still holds it.
    let keeps_ours = same_client
        && state == LeaseState::Active
        && old.is_some_and(|o| o.state == LeaseState::Active);
    let (our_end, our_cltt) = (l.expires_at, l.cltt);
    l.state = state;
    if bound(state) {
        if let Some(hw) = &b.chaddr {
            l.htype = hw.htype;
            l.chaddr = Chaddr::new(&hw.addr);
        }
        l.client_id = b.client_id.as_deref().map(crate::store::ClientId::new);
        if !same_client {
            l.hostname = None;
            // The partner does not tell which line its client is on, nor its class.
            l.relay_info = None;
            l.class = crate::store::LeaseClass::Unknown;
            // Whatever the fast path could grant the previous client is no concern of this one.
            l.held_until = 0;
        }
    } else {
        l.clear_client();
    }
    match b.lease_expiration {
        Some(e) => l.expires_at = u64::from(e),
        // No lease runs on an address the partner calls free.
        None if !bound(state) => l.expires_at = l.expires_at.min(now),
        None => {}
    }
    if let Some(pet) = b.potential_expiration {
        l.pet_received = l.pet_received.max(u64::from(pet));
    }
    l.stos = b.start_time_of_state.map_or(now, u64::from);
    if let Some(t) = b.client_last_transaction {
        l.cltt = u64::from(t);
    }
    if keeps_ours {
        l.expires_at = l.expires_at.max(our_end);
        l.cltt = l.cltt.max(our_cltt);
    }
    l.probation_until = None;
    l.partner_acked = true;
    // The partner has just said what it holds: there is nothing older to go back to.
    l.rewind_state = None;
    l.rewind_expiry = None;
    l
}

/// `l` as FREE from `now`: no client holds it (draft-12 §5.11). Whatever the fast path may still
/// grant the old client (`held_until`) keeps it from another client until then.
pub(super) fn free_record(l: &mut Lease, now: u64) {
    l.state = LeaseState::Free;
    l.partner_acked = true;
    l.stos = now;
    l.clear_client();
    l.rewind_state = None;
    l.rewind_expiry = None;
}

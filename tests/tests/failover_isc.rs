//! xdhcp and ISC dhcpd 4.4 (Debian's isc-dhcp-server) as failover partners, in both roles.
//!
//! dhcpd is the yardstick: its log must say "Both servers normal", its lease file must hold the
//! bindings xdhcp made, xdhcp's store the ones dhcpd made, real clients must land on the server
//! the split says, and a dhcpd that lost its lease file must get everything back from xdhcp
//! through UPDREQALL.
use std::{
    collections::HashMap,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use integration::{
    failover_lab::{
        Dhcpd, PairConfig, Port, Segment, Udhcpc, Xdhcp, binding_state, isc_leases, mac_served_by,
        tail, wait_for,
    },
    fixture::root_required,
};
use serde_json::Value;

const PRIMARY: Ipv4Addr = PAIR.addr(true);
const SECONDARY: Ipv4Addr = PAIR.addr(false);
const SPLIT: u16 = PairConfig::SPLIT;
const LEASE: u64 = 60;
const NAME: &str = "edge-isc";

const PAIR: PairConfig = PairConfig {
    name: NAME,
    net: 92,
    pool_end: 139,
    lease_secs: LEASE,
    mclt: LEASE,
    max_response_delay: 30,
    failover_more: "",
};

fn dhcpd_config(primary: bool) -> String {
    PAIR.render_dhcpd(primary, SPLIT, "", "", "")
}

fn mac(m: [u8; 6]) -> String {
    xdhcp::packet::fmt_mac(&m)
}

/// xdhcp's records of the shared pool: address → (state, mac).
fn our_records(x: &Xdhcp) -> HashMap<Ipv4Addr, (String, Option<String>)> {
    x.leases()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let a: Ipv4Addr = l["address"].as_str()?.parse().ok()?;
            let state = l["state"].as_str()?.to_owned();
            Some((a, (state, l["mac"].as_str().map(str::to_owned))))
        })
        .collect()
}

/// Waits until dhcpd's lease file says `state` for `a` (and `mac`, if given).
fn wait_isc_lease(d: &Dhcpd, a: Ipv4Addr, state: &str, mac: Option<&str>, timeout: Duration) {
    wait_for(&format!("{a} {state} in dhcpd's lease file"), timeout, || {
        let leases = isc_leases(&d.lease_file());
        Ok(leases
            .get(&a)
            .filter(|b| {
                binding_state(b) == Some(state)
                    && mac.is_none_or(|m| b.contains(&format!("hardware ethernet {m};")))
            })
            .map(|_| ()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nlease file:\n{}\nlog:\n{}",
            tail(&d.lease_file(), 60),
            tail(&d.log_text(), 60)
        )
    });
}

struct Lab {
    seg: Segment,
    ours: Port,
    theirs: Port,
}

fn lab(xdhcp_primary: bool) -> Lab {
    root_required();
    let mut seg = Segment::new().unwrap();
    let (mine, isc) = if xdhcp_primary { (PRIMARY, SECONDARY) } else { (SECONDARY, PRIMARY) };
    let ours = seg.port("xd", [0x02, 0x92, 0, 0, 0, 1], Some(mine)).unwrap();
    let theirs = seg.port("isc", [0x02, 0x92, 0, 0, 0, 2], Some(isc)).unwrap();
    Lab { seg, ours, theirs }
}

/// The whole scenario with xdhcp as primary (`true`) or secondary.
fn interop(xdhcp_primary: bool) {
    let t0 = Instant::now();
    let mut lab = lab(xdhcp_primary);
    let x = Xdhcp::start(&lab.ours, &PAIR.render(xdhcp_primary, "")).unwrap();
    let d = Dhcpd::start(&lab.theirs, &dhcpd_config(!xdhcp_primary), None).unwrap();

    d.wait_log("Both servers normal", Duration::from_secs(90)).unwrap();
    let st = x.wait_normal(Duration::from_secs(30)).unwrap();
    assert_eq!(st["mclt"].as_u64(), Some(LEASE), "{st}");
    assert!(st["partner_vendor_class"].as_str().unwrap_or("").starts_with("isc-"), "{st}");
    let normal_after = t0.elapsed();

    // The primary gives the secondary its share of the free pool, whichever of them it is.
    let backup = wait_for("BACKUP addresses on both sides", Duration::from_secs(30), || {
        let ours: Vec<Ipv4Addr> = our_records(&x)
            .into_iter()
            .filter(|(_, (s, _))| s == "backup")
            .map(|(a, _)| a)
            .collect();
        let isc = isc_leases(&d.lease_file());
        let agreed = !ours.is_empty()
            && ours.iter().all(|a| isc.get(a).and_then(|b| binding_state(b)) == Some("backup"));
        Ok(agreed.then_some(ours))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", tail(&d.log_text(), 60)));

    // Several real clients for each side of the split, with MACs whose RFC 3074 bucket we know.
    let (our_addr, isc_addr) =
        if xdhcp_primary { (PRIMARY, SECONDARY) } else { (SECONDARY, PRIMARY) };
    let mut clients = Vec::new();
    for (k, xdhcp_side) in [(1u8, true), (2, true), (3, false), (4, false)] {
        let m = mac_served_by(xdhcp_side == xdhcp_primary, SPLIT, k);
        let port = lab.seg.port(&format!("c{k}"), m, None).unwrap();
        let c = Udhcpc::start(&port).unwrap();
        clients.push((xdhcp_side, m, port, c));
    }
    let mut bound = Vec::new();
    for (xdhcp_side, m, _, c) in &clients {
        let b = c.wait_bound(Duration::from_secs(40)).unwrap();
        let want = if *xdhcp_side { our_addr } else { isc_addr };
        assert_eq!(b.server, Some(want), "the split sends {} to {want}: {b:?}", mac(*m));
        bound.push((*xdhcp_side, *m, b.ip.unwrap()));
    }
    if !xdhcp_primary {
        let ours: Vec<Ipv4Addr> = bound.iter().filter(|b| b.0).map(|b| b.2).collect();
        assert!(
            ours.iter().all(|a| backup.contains(a)),
            "the secondary allocated from its BACKUP share: {ours:?}"
        );
    }

    // Bindings flow both ways: ours into dhcpd's lease file, dhcpd's into our store.
    for &(xdhcp_side, m, a) in &bound {
        if xdhcp_side {
            wait_isc_lease(&d, a, "active", Some(&mac(m)), Duration::from_secs(15));
            continue;
        }
        let theirs: Value =
            wait_for(&format!("{a} in xdhcp's store"), Duration::from_secs(15), || {
                Ok(x.lease(a)?.filter(|l| l["state"] == "active" && l["mac"] == mac(m).as_str()))
            })
            .unwrap();
        assert!(theirs["pet_received"].as_u64().unwrap_or(0) > 0, "{theirs}");
    }
    let failures = x.failover().unwrap();
    assert_eq!(failures["rejects_received_total"].as_u64(), Some(0), "{failures}");
    assert!(!d.log_text().contains("rejected"), "{}", tail(&d.log_text(), 60));

    // A dhcpd that lost its lease file asks for everything (UPDREQALL) and gets it all.
    let dir = d.stop();
    std::fs::remove_file(dir.path().join("dhcpd.leases")).unwrap();
    let ours_now = our_records(&x);
    let d = Dhcpd::start(&lab.theirs, &dhcpd_config(!xdhcp_primary), Some(dir)).unwrap();
    d.wait_log("Sent update request all message", Duration::from_mins(1))
        .or_else(|_| d.wait_log("UPDREQALL", Duration::from_secs(1)))
        .unwrap();
    wait_for("every xdhcp record in the fresh dhcpd's lease file", Duration::from_mins(1), || {
        let isc = isc_leases(&d.lease_file());
        let missing: Vec<String> = ours_now
            .iter()
            .filter(|(a, (state, m))| {
                let Some(b) = isc.get(a) else { return true };
                binding_state(b) != Some(state.as_str())
                    || m.as_ref().is_some_and(|m| !b.contains(&format!("hardware ethernet {m};")))
            })
            .map(|(a, (s, _))| format!("{a} {s}"))
            .collect();
        if missing.is_empty() { Ok(Some(())) } else { Err(anyhow::anyhow!("missing: {missing:?}")) }
    })
    .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", tail(&d.log_text(), 60)));
    assert!(ours_now.len() >= backup.len() + 4, "{} records", ours_now.len());
    eprintln!(
        "isc interop (xdhcp {}): NORMAL after {:.1} s, {} bindings resent after UPDREQALL, {:.1} s in all",
        if xdhcp_primary { "primary" } else { "secondary" },
        normal_after.as_secs_f64(),
        ours_now.len(),
        t0.elapsed().as_secs_f64()
    );
    drop((clients, d, x));
}

#[test]
fn xdhcp_primary_with_isc_dhcpd_secondary() {
    interop(true);
}

#[test]
fn isc_dhcpd_primary_with_xdhcp_secondary() {
    interop(false);
}

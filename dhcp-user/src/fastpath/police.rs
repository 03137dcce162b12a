//! The policing maps' userspace side: the limits the config sets, written where XDP reads them,
//! and the buckets read back to rank the offenders (`xdhcp stats`, metrics).
use std::{fmt::Write as _, net::Ipv4Addr, path::Path};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{
        Array, HashMap, Map, MapData,
        lpm_trie::{Key, LpmTrie},
    },
};
use dhcp_common::police::{
    self as p, Bucket, IfaceBucket, MacKey, PORT_KEY_BYTES, Policy, PortKey, Rate,
};
use serde::Serialize;

use super::maps::{pinned, take};
use crate::config::Config;

/// What the kernel is told: the interface's rate, the policies (slot 0 the file's), and which
/// relay addresses (as prefixes; `0.0.0.0/32` for clients on the link) use which slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub interface: Rate,
    pub policies: Vec<Policy>,
    pub prefixes: Vec<(Ipv4Addr, u8, u32)>,
}

/// The plan for one interface, whose own address is `local` (its direct clients' subnet). Every
/// subnet's prefix and relay addresses are listed, those without limits of their own under slot
/// 0, so that a relay address listed by one subnet but inside another's prefix finds its own.
#[must_use]
pub fn plan(cfg: &Config, local: Option<Ipv4Addr>) -> Plan {
    let mut policies = vec![cfg.police.policy()];
    let mut prefixes = Vec::new();
    for s in &cfg.subnets {
        let policy = cfg.police_of(s).policy();
        let slot = if let Some(i) = policies.iter().position(|q| *q == policy) {
            i
        } else {
            policies.push(policy);
            policies.len() - 1
        };
        #[expect(clippy::cast_possible_truncation, reason = "below POLICIES_MAX, checked on write")]
        let slot = slot as u32;
        prefixes.push((s.prefix.network(), s.prefix.prefix_len(), slot));
        prefixes.extend(s.relay_addresses.iter().map(|a| (*a, 32, slot)));
        if local.is_some_and(|a| s.prefix.contains(&a)) {
            prefixes.push((Ipv4Addr::UNSPECIFIED, 32, slot));
        }
    }
    let interface =
        cfg.police.interface.map(crate::config::police::Limit::rate).unwrap_or_default();
    Plan { interface, policies, prefixes }
}

pub struct PoliceMaps {
    policies: Array<MapData, Policy>,
    policy_of: LpmTrie<MapData, [u8; 4], u32>,
    macs: HashMap<MapData, MacKey, Bucket>,
    ports: HashMap<MapData, PortKey, Bucket>,
    vlans: HashMap<MapData, u32, Bucket>,
    iface: Array<MapData, IfaceBucket>,
}

/// A key whose bucket refused messages, as `xdhcp stats` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Offender {
    /// `mac`, `port`, `vlan` or `interface`.
    pub kind: &'static str,
    pub key: String,
    pub dropped: u64,
    pub passed: u64,
    /// `CLOCK_MONOTONIC` ns of the last refusal.
    #[serde(skip)]
    pub last_drop_ns: u64,
}

impl PoliceMaps {
    fn open(mut get: impl FnMut(&str) -> Result<Map>) -> Result<Self> {
        Ok(Self {
            policies: get(p::POLICIES)?.try_into()?,
            policy_of: get(p::POLICY_OF)?.try_into()?,
            macs: get(p::POLICED_MACS)?.try_into()?,
            ports: get(p::POLICED_PORTS)?.try_into()?,
            vlans: get(p::POLICED_VLANS)?.try_into()?,
            iface: get(p::POLICED_IFACE)?.try_into()?,
        })
    }

    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        Self::open(|n| take(ebpf, n))
    }

    pub fn open_pinned(dir: &Path) -> Result<Self> {
        Self::open(|n| pinned(dir, n))
    }

    /// Makes the kernel hold `plan`. The buckets keep what they have counted.
    pub fn set(&mut self, plan: &Plan) -> Result<()> {
        anyhow::ensure!(
            plan.policies.len() <= p::POLICIES_MAX as usize,
            "{} distinct subnet police limits; the kernel holds {}",
            plan.policies.len(),
            p::POLICIES_MAX
        );
        for (i, policy) in (0..).zip(&plan.policies) {
            self.policies.set(i, policy, 0).context("write a police policy")?;
        }
        let stale: Vec<Key<[u8; 4]>> = self.policy_of.keys().collect::<Result<_, _>>()?;
        for k in &stale {
            self.policy_of.remove(k)?;
        }
        for (addr, len, slot) in &plan.prefixes {
            let key = Key::new(u32::from(*len), addr.octets());
            self.policy_of
                .insert(&key, slot, 0)
                .with_context(|| format!("map {addr}/{len} to police policy {slot}"))?;
        }
        let mut iface = self.iface.get(&0, 0)?;
        iface.rate = plan.interface;
        self.iface.set(0, iface, 0)?;
        Ok(())
    }

    /// The keys that had messages refused, most refused first, at most `n`.
    pub fn offenders(&self, n: usize) -> Result<Vec<Offender>> {
        let mut all = Vec::new();
        let mut add = |kind, key: String, b: &Bucket| {
            if b.dropped > 0 {
                all.push(Offender {
                    kind,
                    key,
                    dropped: b.dropped,
                    passed: b.passed,
                    last_drop_ns: b.last_drop_ns,
                });
            }
        };
        for r in &self.macs {
            let (k, b) = r?;
            add("mac", crate::packet::fmt_mac(&k.mac), &b);
        }
        for r in &self.ports {
            let (k, b) = r?;
            add("port", port_name(&k), &b);
        }
        for r in &self.vlans {
            let (k, b) = r?;
            add("vlan", vlan_name(k), &b);
        }
        add("interface", "all".into(), &self.iface.get(&0, 0)?.bucket);
        all.sort_by(|a, b| b.dropped.cmp(&a.dropped).then_with(|| a.key.cmp(&b.key)));
        all.truncate(n);
        Ok(all)
    }
}

/// How often the daemon ranks the offenders again for its metrics.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Offenders the metrics show per interface.
pub const WATCH_TOP: usize = 10;

/// The offenders of each interface, ranked again every [`WATCH_EVERY`] on a thread of its own:
/// a full LRU map is 65,536 entries read a system call at a time, which the daemon's loop must
/// not wait for. Stops with the value.
/// The offenders of each interface, by name.
pub type Ranking = Vec<(String, Vec<Offender>)>;

pub struct Watch {
    latest: std::sync::Arc<std::sync::Mutex<Ranking>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    pub fn spawn(ifaces: &[String]) -> Result<Self> {
        use std::sync::{Arc, Mutex, atomic::AtomicBool};
        let mut maps = Vec::new();
        for i in ifaces {
            maps.push((i.clone(), PoliceMaps::open_pinned(&super::pin_dir(i))?));
        }
        let latest = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (out, quit) = (latest.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("police-watch".into()).spawn(move || {
            let quit = || quit.load(std::sync::atomic::Ordering::Relaxed);
            while !quit() {
                let ranked: Vec<_> = maps
                    .iter()
                    .map(|(i, m)| (i.clone(), m.offenders(WATCH_TOP).unwrap_or_default()))
                    .collect();
                *out.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = ranked;
                let t = std::time::Instant::now();
                while !quit() && t.elapsed() < WATCH_EVERY {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        })?;
        Ok(Self { latest, stop, thread: Some(thread) })
    }

    /// The last ranking, by interface.
    #[must_use]
    pub fn latest(&self) -> Ranking {
        self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `relay 10.0.0.2 circuit-id "olt1 1/1/1" remote-id "cpe-1"` (`link …` for an access node on
/// the server's own link), from the sub-options the key holds (bytes it could not hold are left
/// out).
#[must_use]
pub fn port_name(k: &PortKey) -> String {
    let held = (k.len as usize).min(PORT_KEY_BYTES);
    // giaddr 0: a layer-2 access node's option 82, on the server's own link.
    let mut out = match Ipv4Addr::from(k.giaddr) {
        a if a.is_unspecified() => "link".to_owned(),
        a => format!("relay {a}"),
    };
    let mut v = &k.value[..held];
    while let [code, len, rest @ ..] = v {
        let n = usize::from(*len).min(rest.len());
        let name = match code {
            1 => "circuit-id".to_owned(),
            2 => "remote-id".to_owned(),
            c => format!("sub-option {c}"),
        };
        let _ = write!(out, " {name} {}", shown(&rest[..n]));
        v = &rest[n..];
    }
    if k.len as usize > PORT_KEY_BYTES {
        out.push_str(" …");
    }
    out
}

/// Printable ASCII quoted, anything else as hex.
fn shown(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)) {
        format!("{:?}", String::from_utf8_lossy(b))
    } else {
        crate::packet::fmt_hw(b)
    }
}

#[must_use]
pub fn vlan_name(k: u32) -> String {
    let (tags, outer, inner) = (k >> 24, (k >> 12) & 0xfff, k & 0xfff);
    if tags == 2 { format!("{outer}.{inner}") } else { outer.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::Config::from_toml(text, "xdhcp.toml").unwrap()
    }

    const BASE: &str = r#"
interfaces = ["eth1"]
server_id = "10.0.0.1"

[police]
mac = { rate = 5, burst = 10 }
interface = { rate = 1000 }

[[subnet]]
prefix = "10.0.0.0/24"
pools = [{ start = "10.0.0.10", end = "10.0.0.200" }]

[[subnet]]
prefix = "10.1.0.0/24"
relay_addresses = ["192.0.2.1"]
pools = [{ start = "10.1.0.10", end = "10.1.0.200" }]
police = { port = { rate = 20, burst = 40 } }

[[subnet]]
prefix = "10.2.0.0/24"
pools = [{ start = "10.2.0.10", end = "10.2.0.200" }]
police = { port = { rate = 20, burst = 40 } }
"#;

    #[test]
    fn subnets_with_the_same_limits_share_a_policy_and_every_relay_finds_its_own() {
        let p = plan(&config(BASE), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(p.interface, Rate::new(1000, 1000));
        // The file's (MAC only), and the one the last two subnets share (MAC and port).
        assert_eq!(p.policies.len(), 2);
        assert_eq!(p.policies[0].mac, Rate::new(5, 10));
        assert!(!p.policies[0].port.is_on());
        assert_eq!((p.policies[1].mac, p.policies[1].port), (Rate::new(5, 10), Rate::new(20, 40)));
        let slot = |a: [u8; 4], len| {
            p.prefixes.iter().find(|(x, l, _)| x.octets() == a && *l == len).map(|e| e.2)
        };
        assert_eq!(slot([10, 0, 0, 0], 24), Some(0));
        assert_eq!(slot([10, 1, 0, 0], 24), Some(1));
        assert_eq!(slot([192, 0, 2, 1], 32), Some(1));
        assert_eq!(slot([10, 2, 0, 0], 24), Some(1));
        // Clients on the interface's own link are in 10.0.0.0/24.
        assert_eq!(slot([0, 0, 0, 0], 32), Some(0));
    }

    #[test]
    fn without_a_police_table_nothing_is_policed() {
        let text = BASE
            .replace("[police]\nmac = { rate = 5, burst = 10 }\ninterface = { rate = 1000 }\n", "");
        let p = plan(&config(&text), None);
        assert!(!p.interface.is_on());
        assert!(!p.policies[0].mac.is_on() && !p.policies[0].port.is_on());
        assert!(!p.prefixes.iter().any(|(a, _, _)| a.is_unspecified()));
    }

    #[test]
    fn a_port_is_shown_by_its_relay_and_sub_options() {
        let mut k = PortKey { giaddr: [10, 64, 0, 2], len: 0, value: [0; PORT_KEY_BYTES] };
        let v = [1, 5, b'o', b'l', b't', b'/', b'1', 2, 2, 0xde, 0xad];
        k.value[..v.len()].copy_from_slice(&v);
        k.len = u32::try_from(v.len()).unwrap();
        assert_eq!(port_name(&k), "relay 10.64.0.2 circuit-id \"olt/1\" remote-id de:ad");
        // A lying length is cut at what the key holds, never read past it.
        k.value[1] = 200;
        k.len = 200;
        assert!(port_name(&k).ends_with(" …"));
        k.giaddr = [0; 4];
        assert!(port_name(&k).starts_with("link circuit-id"));
        assert_eq!(vlan_name(p::vlan_key(2, 100, 200)), "100.200");
        assert_eq!(vlan_name(p::vlan_key(1, 7, 0)), "7");
    }
}

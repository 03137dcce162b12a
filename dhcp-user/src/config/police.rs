//! `[police]` and a subnet's own `police`: the rates XDP holds the messages it does not answer
//! to (`dhcp_common::police`), per client MAC, access port, VLAN and interface.
use super::model::{ValidationError, err};
use super::wire;

/// Messages per second, and how many may come at once above that rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_sec: u32,
    pub burst: u32,
}

impl Limit {
    #[must_use]
    pub fn rate(self) -> dhcp_common::police::Rate {
        dhcp_common::police::Rate::new(self.per_sec, self.burst)
    }
}

/// What is policed; `None`: that key is not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Police {
    pub mac: Option<Limit>,
    pub port: Option<Limit>,
    pub vlan: Option<Limit>,
    /// The file's only: one bucket per interface, whatever subnet a message is for.
    pub interface: Option<Limit>,
}

impl Police {
    /// This subnet's limits over the file's: a key the subnet sets wins.
    #[must_use]
    pub fn over(self, file: &Police) -> Police {
        Police {
            mac: self.mac.or(file.mac),
            port: self.port.or(file.port),
            vlan: self.vlan.or(file.vlan),
            interface: file.interface,
        }
    }

    /// The kernel's policy for these limits (the interface's is set apart).
    #[must_use]
    pub fn policy(&self) -> dhcp_common::police::Policy {
        let r = |l: Option<Limit>| l.map(Limit::rate).unwrap_or_default();
        dhcp_common::police::Policy { mac: r(self.mac), port: r(self.port), vlan: r(self.vlan) }
    }
}

/// Far beyond any DHCP rate, and small enough that the kernel's interval is never 0 ns.
const RATE_MAX: u32 = 100_000_000;

fn limit(at: &str, w: Option<&wire::PoliceRate>) -> Result<Option<Limit>, ValidationError> {
    let Some(w) = w else { return Ok(None) };
    let Some(per_sec) = w.rate else {
        return err(format!("{at}.rate"), "missing: messages per second (at least 1)");
    };
    if per_sec == 0 || per_sec > RATE_MAX {
        return err(format!("{at}.rate"), format!("must be 1 to {RATE_MAX} messages a second"));
    }
    let burst = w.burst.unwrap_or(per_sec);
    if burst == 0 {
        return err(format!("{at}.burst"), "must be at least 1 (it defaults to the rate)");
    }
    Ok(Some(Limit { per_sec, burst }))
}

/// `[police]`.
pub(super) fn file(w: Option<&wire::Police>) -> Result<Police, ValidationError> {
    let Some(w) = w else { return Ok(Police::default()) };
    Ok(Police {
        mac: limit("police.mac", w.mac.as_ref())?,
        port: limit("police.port", w.port.as_ref())?,
        vlan: limit("police.vlan", w.vlan.as_ref())?,
        interface: limit("police.interface", w.interface.as_ref())?,
    })
}

/// A subnet's `police` (no `interface`: that bucket is the interface's, not a subnet's).
pub(super) fn subnet(at: &str, w: Option<&wire::SubnetPolice>) -> Result<Police, ValidationError> {
    let Some(w) = w else { return Ok(Police::default()) };
    Ok(Police {
        mac: limit(&format!("{at}.mac"), w.mac.as_ref())?,
        port: limit(&format!("{at}.port"), w.port.as_ref())?,
        vlan: limit(&format!("{at}.vlan"), w.vlan.as_ref())?,
        interface: None,
    })
}

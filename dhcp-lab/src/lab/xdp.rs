//! XDP on both ends of a lab link: the fast path (pinned, maps open) on the server's end, the
//! do-nothing program on the peer's.
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use aya::programs::{XdpMode, links::FdLink};
use xdhcp::{
    fastpath::maps::{Counters, FastPathMaps},
    fastpath::{self, AttachMode, LoadOptions},
};

use super::netns::NetNs;

/// The fast path attached and pinned on an interface of a lab namespace, with its maps open.
/// Drop detaches it and removes the pins.
pub struct FastPath {
    iface: String,
    pub maps: FastPathMaps,
}

/// Removes a pin directory unless disarmed: covers the window between attaching and holding
/// a [`FastPath`].
struct PinGuard<'a>(Option<&'a str>);

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.0
            && fastpath::pin_dir(i).exists()
        {
            let _ = fastpath::detach(i);
        }
    }
}

impl FastPath {
    /// [`fastpath::attach`] (enabled, not waiting for the writer lock) run through
    /// [`NetNs::run`]: attach resolves the name in the thread's network namespace and reads the
    /// MAC for the control entry from /sys/class/net, which shows a namespace's interfaces only
    /// under a sysfs mounted in it.
    pub fn attach(ns: &NetNs, iface: &str, mode: AttachMode) -> Result<Self> {
        fastpath::ensure_bpffs()?;
        let dir = fastpath::pin_dir(iface);
        ensure!(
            !dir.exists(),
            "{} exists already (left by an earlier run on an interface with this name; \
             `xdhcp detach --iface {iface}` removes it): refusing to adopt it",
            dir.display()
        );
        let mut guard = PinGuard(Some(iface));
        ns.run(|| fastpath::attach(iface, mode, true, None, None, Duration::ZERO))
            .with_context(|| format!("attach the fast path to {iface}"))?;
        let maps = FastPathMaps::open_pinned(&dir)?;
        guard.0 = None;
        Ok(Self { iface: iface.to_owned(), maps })
    }

    #[must_use]
    pub fn iface(&self) -> &str {
        &self.iface
    }

    pub fn stats(&self) -> Result<Counters> {
        self.maps.stats()
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        if let Err(e) = fastpath::detach(&self.iface) {
            eprintln!("xdhcp lab: detach {}: {e:#}", self.iface);
        }
    }
}

/// The do-nothing XDP program on the client end of a veth pair: without an XDP program of its
/// own, a veth drops the frames its peer sends with `XDP_TX`. Dropping this detaches it.
pub struct PassProgram {
    _link: FdLink,
}

impl PassProgram {
    pub fn attach(ns: &NetNs, iface: &str) -> Result<Self> {
        let link = ns
            .run(|| {
                // A private copy of the object: only its pass program is used, so the maps
                // stay minimal.
                let mut ebpf =
                    fastpath::load(&LoadOptions { leases_max: Some(1), ..LoadOptions::default() })?;
                let prog = fastpath::program(&mut ebpf, fastpath::PASS_PROG)?;
                let id = prog.attach(iface, XdpMode::Driver)?;
                // The link alone keeps the program attached; the object may go.
                let link: FdLink =
                    prog.take_link(id)?.try_into().context("XDP link is not a bpf_link")?;
                Ok(link)
            })
            .with_context(|| format!("attach {} to {iface}", fastpath::PASS_PROG))?;
        Ok(Self { _link: link })
    }
}

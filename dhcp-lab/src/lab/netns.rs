//! Network namespaces, temp dirs and veth pairs, each a guard that removes itself on drop.
use std::{
    ffi::{CString, OsStr},
    fs::{self, File},
    net::Ipv4Addr,
    os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};
use xdhcp::packet;

use super::process::{errno, ip, next_seq, ns_id, parents, pid_in_netns, require_root, settle};

/// An interface name unique across processes (pid) and threads (sequence), at most 15 bytes:
/// bpffs is global, so the fast path's pin directory (named after the interface) must not
/// collide with a parallel test's, even though the interfaces live in different namespaces.
#[must_use]
pub fn unique_ifname(role: char) -> String {
    let name = format!("x{role}{}n{}", std::process::id(), next_seq());
    debug_assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

/// A network namespace named `xdhcp-<purpose>-<pid>-<n>`, deleted on drop together with
/// whatever still runs in it.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace with `lo` up and IPv6 off (the lab is `DHCPv4` only; without
    /// IPv6 the fast path's pass counters show only DHCP and ARP).
    pub fn new(purpose: &str) -> Result<Self> {
        require_root()?;
        let purpose: String =
            purpose.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let name = format!("xdhcp-{purpose}-{}-{}", std::process::id(), next_seq());
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.run(|| {
            for conf in ["all", "default"] {
                fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1")?;
            }
            Ok(())
        })
        .context("switch IPv6 off in the namespace")?;
        Ok(ns)
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's bind mount, for setns(2).
    #[must_use]
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `ip -n NAME args...`, checked and bounded.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs `program` inside the namespace (through `ip netns exec`, which also
    /// gives it a private mount namespace with this namespace's /sys).
    pub fn exec(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Every process whose network namespace is this one.
    #[must_use]
    pub fn pids(&self) -> Vec<i32> {
        let Some(id) = ns_id(&self.path()) else { return vec![] };
        parents().into_keys().filter(|p| pid_in_netns(*p, id)).collect()
    }

    /// Runs `f` as if under `ip netns exec`: in this network namespace, with a /sys that shows
    /// its interfaces and the host's bpffs still at /sys/fs/bpf (pins are global).
    ///
    /// `f` runs on a fresh thread that enters the namespaces and then ends, rather than on the
    /// caller's thread with a restore afterwards: leaving a private mount namespace again would
    /// also leave that thread with its own cwd and root, and a failed restore would leave it in
    /// the wrong namespace. Sockets and BPF links created in `f` stay bound to this namespace
    /// after it returns.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
        let path = self.path();
        thread::scope(|s| {
            s.spawn(|| {
                enter_netns_privately(&path)?;
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
        .with_context(|| format!("in namespace {}", self.name))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Only processes in our own namespace are killed: the lab started all of them.
        for pid in self.pids() {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if !settle(Duration::from_secs(3), || self.pids().is_empty()) {
            eprintln!("xdhcp lab: processes {:?} outlived SIGKILL in {}", self.pids(), self.name);
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("xdhcp lab: could not delete namespace {}: {e:#}", self.name);
        }
    }
}

/// The calling thread joins the namespace at `netns` and a mount namespace of its own with
/// that namespace's sysfs. Only ever called on a thread that ends afterwards.
pub(crate) fn enter_netns_privately(netns: &Path) -> Result<()> {
    let ns = File::open(netns).with_context(|| format!("open {}", netns.display()))?;
    // SAFETY: unshare(2) of this thread's mount namespace; it copies the thread's fs struct
    // first, so other threads keep theirs.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(errno("unshare the mount namespace"));
    }
    // Before anything is mounted: nothing below may propagate to the host's mount table.
    // SAFETY: mount(2) with static C strings / null.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(errno("make the private mount namespace private"));
    }
    // SAFETY: setns(2) with a namespace fd we own.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(errno("setns into the network namespace"));
    }
    // A new sysfs instance describes the network namespace of the thread that mounts it.
    // It hides the host's bpffs mount, so keep a handle on that and bind it back.
    let bpffs = is_bpffs("/sys/fs/bpf")
        .then(|| {
            File::options()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open("/sys/fs/bpf")
        })
        .transpose()
        .context("open /sys/fs/bpf")?;
    // SAFETY: mount(2) with static C strings.
    let rc = unsafe {
        libc::mount(c"sysfs".as_ptr(), c"/sys".as_ptr(), c"sysfs".as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        return Err(errno("mount the namespace's sysfs"));
    }
    if let Some(b) = bpffs {
        let src = CString::new(format!("/proc/self/fd/{}", b.as_raw_fd()))?;
        // SAFETY: bind mount(2) of the bpffs directory our O_PATH fd refers to.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                c"/sys/fs/bpf".as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(errno("bind the host's bpffs back to /sys/fs/bpf"));
        }
    }
    Ok(())
}

fn is_bpffs(path: &str) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let Ok(p) = CString::new(path) else { return false };
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs(2) reads the C string we own and writes at most a statfs into `st`.
    (unsafe { libc::statfs(p.as_ptr(), &raw mut st) }) == 0 && st.f_type == BPF_FS_MAGIC
}

/// A directory under the system temp dir, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<Self> {
        let p = std::env::temp_dir().join(format!(
            "xdhcp-lab-{tag}-{}-{}",
            std::process::id(),
            next_seq()
        ));
        fs::create_dir(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(Self(p))
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Hands the directory, and its removal, to a new guard (a stopped server's store for its
    /// next start); this one then removes nothing.
    #[must_use]
    pub fn take(&mut self) -> TempDir {
        TempDir(std::mem::take(&mut self.0))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // XDHCP_LAB_KEEP: leave them for a look after a failed test.
        if !self.0.as_os_str().is_empty() && std::env::var_os("XDHCP_LAB_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// One end of a veth pair.
#[derive(Clone, Debug)]
pub struct VethEnd {
    pub name: String,
    pub mac: [u8; 6],
    /// Address and prefix length configured on it, if any.
    pub addr: Option<(Ipv4Addr, u8)>,
}

/// A veth pair between two lab namespaces, deleted on drop.
#[derive(Debug)]
pub struct VethPair {
    pub a: VethEnd,
    pub b: VethEnd,
    a_ns: String,
}

impl VethPair {
    /// Creates `a` in `a_ns` and its peer `b` in `b_ns` in one netlink request issued from
    /// inside `a_ns`, configures the addresses and brings both up.
    pub fn new(a_ns: &NetNs, a: VethEnd, b_ns: &NetNs, b: VethEnd) -> Result<Self> {
        let (amac, bmac) = (packet::fmt_mac(&a.mac), packet::fmt_mac(&b.mac));
        a_ns.ip(&[
            "link",
            "add",
            &a.name,
            "address",
            &amac,
            "type",
            "veth",
            "peer",
            "name",
            &b.name,
            "netns",
            b_ns.name(),
            "address",
            &bmac,
        ])?;
        let pair = Self { a, b, a_ns: a_ns.name().to_owned() };
        for (ns, end) in [(a_ns, &pair.a), (b_ns, &pair.b)] {
            if let Some((addr, prefix)) = end.addr {
                ns.ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", &end.name])?;
            }
            ns.ip(&["link", "set", &end.name, "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both; it fails harmlessly if the namespace already went.
        let _ = ip(&["-n", &self.a_ns, "link", "del", &self.a.name]);
    }
}

/// Names in `ip netns list`.
pub fn netns_list() -> Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn interface_names_fit_the_kernel() {
        assert!(super::unique_ifname('s').len() <= 15);
    }
}

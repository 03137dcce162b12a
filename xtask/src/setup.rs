//! Idempotent bootstrap of the verified toolchain (see docs/building.md): Debian's rustc with
//! its standard-library source for the eBPF crate, bpf-linker 0.13.0 against LLVM 22, bpffs,
//! and the tools the tests drive. Quick when everything is there; says what it installs.
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::run;

/// Debian packages: the eBPF toolchain, and the real programs the tests run.
const PACKAGES: &[(&str, &str)] = &[
    ("rustc-web", "Rust compiler for the eBPF crate (its rustup toolchains have no rust-src)"),
    ("rust-web-src", "standard-library source for -Z build-std=core"),
    ("llvm-22-dev", "LLVM 22 for bpf-linker"),
    ("libpolly-22-dev", "needed to link bpf-linker against LLVM 22"),
    ("zlib1g-dev", "bpf-linker"),
    ("libzstd-dev", "bpf-linker"),
    ("iproute2", "network namespaces and veth pairs for tests and the lab"),
    ("udhcpc", "a real DHCP client (busybox)"),
    ("isc-dhcp-client", "a real DHCP client (dhclient)"),
    ("dhcpcd-base", "a real DHCP client (dhcpcd)"),
    ("tshark", "independent decoding of our failover messages"),
    ("bpftool", "inspecting maps and programs"),
    ("kea-dhcp4-server", "Kea, run beside xdhcp by `cargo xtask bench e2e`"),
    ("kea-admin", "perfdhcp, Kea's load generator (DORA rates, the crash test)"),
    ("isc-dhcp-relay", "a real relay agent between namespaces"),
    ("isc-dhcp-server", "ISC dhcpd 4.4, the failover partner of the interop tests"),
    ("librsvg2-bin", "rsvg-convert, for the benchmark chart"),
    ("postgresql", "PostgreSQL, the fleet's lease history database of the history tests"),
];
const BPF_LINKER_VERSION: &str = "0.13.0";

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// While packages install, no service may start: the servers we install (Kea, ISC dhcpd, the
/// relay) are run by the tests inside their own namespaces, never as host daemons. Debian's
/// invoke-rc.d asks /usr/sbin/policy-rc.d; exit 101 means "not allowed".
struct NoServiceStarts {
    created: bool,
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

impl NoServiceStarts {
    fn new() -> Self {
        let created = !std::path::Path::new(POLICY_RC_D).exists()
            && std::fs::write(
                POLICY_RC_D,
                "#!/bin/sh\n# xtask setup: no service starts\nexit 101\n",
            )
            .is_ok();
        if created {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(POLICY_RC_D, std::fs::Permissions::from_mode(0o755));
        }
        Self { created }
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(POLICY_RC_D);
        }
    }
}

fn apt_install(pkgs: &[&str]) -> Result<()> {
    let _no_starts = NoServiceStarts::new();
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if install().is_ok_and(|s| s.success()) {
        return Ok(());
    }
    // A fresh machine may have no package lists yet.
    eprintln!("xtask setup: apt-get install failed; running apt-get update and retrying");
    run(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
    let status = install().context("run apt-get")?;
    if !status.success() {
        bail!("apt-get install {} failed", pkgs.join(" "));
    }
    Ok(())
}

fn bpf_linker_ok() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn require_root(why: &str) -> Result<()> {
    if !is_root() {
        bail!("run this as root: {why}");
    }
    Ok(())
}

pub fn setup() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().map(|(p, _)| *p).filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        if !is_root() {
            bail!("missing Debian packages {}: run `cargo xtask setup` as root", missing.join(" "));
        }
        for (p, why) in PACKAGES.iter().filter(|(p, _)| missing.contains(p)) {
            eprintln!("xtask setup: installing {p} ({why})");
        }
        apt_install(&missing)?;
    }
    if !bpf_linker_ok() {
        eprintln!(
            "xtask setup: installing bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (~1 min)"
        );
        run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"))?;
    }
    if is_root() {
        mount_bpffs()?;
        keep_dhcpd_off_at_boot();
    }
    Ok(())
}

/// bpffs is not mounted at boot on these machines; pinning needs it.
fn mount_bpffs() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        return Ok(());
    }
    eprintln!("xtask setup: mounting bpffs on /sys/fs/bpf");
    run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}

/// Debian enables isc-dhcp-server's init script on install. The tests run dhcpd only inside
/// their own namespaces; a host dhcpd started at boot would answer on real interfaces.
fn keep_dhcpd_off_at_boot() {
    let script = std::path::Path::new("/etc/init.d/isc-dhcp-server");
    let enabled = std::fs::read_dir("/etc/rc2.d").is_ok_and(|d| {
        d.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy() == "S01isc-dhcp-server")
    });
    if script.exists() && enabled {
        eprintln!("xtask setup: disabling isc-dhcp-server at boot (the tests run their own dhcpd)");
        let _ = Command::new("update-rc.d").args(["isc-dhcp-server", "disable"]).status();
    }
}

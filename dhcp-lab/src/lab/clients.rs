//! Real DHCP clients (udhcpc, dhclient, dhcpcd) in lab namespaces, with generated hook scripts
//! that only log and configure the lab interface.
use std::{
    collections::HashMap,
    fmt,
    fs::{self, File},
    net::Ipv4Addr,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail, ensure};
use xdhcp::packet;

use super::{
    netns::{NetNs, TempDir},
    process::{
        CMD_TIMEOUT, STOP_GRACE, errno, ns_id, pid_in_netns, process_tree, run_cmd, settle,
        wait_for,
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ClientKind {
    /// busybox udhcpc (Debian package udhcpc).
    Udhcpc,
    /// ISC dhclient (Debian package isc-dhcp-client).
    Dhclient,
    /// dhcpcd (Debian package dhcpcd-base in bookworm, dhcpcd in later releases).
    Dhcpcd,
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ClientKind {
    pub const ALL: [ClientKind; 3] = [ClientKind::Udhcpc, ClientKind::Dhclient, ClientKind::Dhcpcd];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Udhcpc => "udhcpc",
            ClientKind::Dhclient => "dhclient",
            ClientKind::Dhcpcd => "dhcpcd",
        }
    }

    /// The Debian package that installs the client.
    #[must_use]
    pub fn package(self) -> &'static str {
        match self {
            ClientKind::Udhcpc => "udhcpc",
            ClientKind::Dhclient => "isc-dhcp-client",
            ClientKind::Dhcpcd => "dhcpcd-base (bookworm; dhcpcd in later releases)",
        }
    }

    /// The client's binary, or an error naming the package to install.
    pub fn locate(self) -> Result<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
            .map(|d| d.join(self.name()))
            .find(|p| p.is_file())
            .with_context(|| {
                format!("{} is not installed: apt-get install {}", self.name(), self.package())
            })
    }

    /// The client identifier (option 61 value) this client sends as the lab runs it:
    /// udhcpc's default and the `clientid` the lab configures for dhcpcd are type 1 + MAC;
    /// dhclient sends none by default.
    #[must_use]
    pub fn client_id(self, mac: [u8; 6]) -> Option<Vec<u8>> {
        match self {
            ClientKind::Udhcpc | ClientKind::Dhcpcd => Some([&[1u8][..], &mac].concat()),
            ClientKind::Dhclient => None,
        }
    }

    /// How this client names option `code` in its configuration or command line (to ask for
    /// it) and in its hook's environment (where it hands the value over), for the options the
    /// lab asks clients for; `None` for others.
    #[must_use]
    pub fn option_names(self, code: u8) -> Option<(&'static str, &'static str)> {
        let o = OPTION_NAMES.iter().find(|o| o.code == code)?;
        Some(match self {
            ClientKind::Dhclient => (o.isc, o.var),
            ClientKind::Dhcpcd => (o.dhcpcd, o.var),
            ClientKind::Udhcpc => (o.udhcpc, o.udhcpc),
        })
    }

    /// The names under which this client asks for the options `request`.
    fn request_names(self, request: &[u8]) -> Result<Vec<&'static str>> {
        request
            .iter()
            .map(|c| {
                self.option_names(*c).map(|(n, _)| n).with_context(|| {
                    format!("the lab does not know how {self} asks for option {c}")
                })
            })
            .collect()
    }

    /// What the hook script logs: the reason and the address and lease of the ACK.
    fn hook_vars(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ClientKind::Udhcpc => ("$1", "$ip", "$lease"),
            ClientKind::Dhclient | ClientKind::Dhcpcd => {
                ("$reason", "$new_ip_address", "$new_dhcp_lease_time")
            }
        }
    }

    fn hook_script(self, log: &Path, env_log: &Path, iface: &str) -> String {
        let (reason, addr, lease) = self.hook_vars();
        // dhcpcd configures the address itself (re-adding it would drop its lifetimes);
        // udhcpc and dhclient leave it to the script, and need it to unicast their renewals.
        let configure = match self {
            ClientKind::Udhcpc => format!("ip addr replace \"$a/$mask\" dev '{iface}'"),
            ClientKind::Dhclient => {
                format!("ip addr replace \"$a/$new_subnet_mask\" dev '{iface}'")
            }
            ClientKind::Dhcpcd => ":".to_owned(),
        };
        format!(
            "#!/bin/sh\n\
             # Written by the xdhcp lab. It only logs and configures the lab interface: no\n\
             # resolv.conf, no routes. dhclient clears the environment, hence PATH and the\n\
             # baked-in paths.\n\
             PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
             r=\"{reason}\" a=\"{addr}\" l=\"{lease}\"\n\
             t=$(date +%s.%N)\n\
             {{ echo \"{HOOK_CALL} $t $r\"; env; }} >> '{env_log}'\n\
             echo \"$t reason=$r ip=$a lease=$l\" >> '{log}'\n\
             case \"$r\" in\n\
             bound|renew|BOUND|RENEW|REBIND|REBOOT) [ -n \"$a\" ] && {configure} ;;\n\
             esac\n\
             exit 0\n",
            log = log.display(),
            env_log = env_log.display(),
        )
    }
}

/// How the clients name an option: dhclient.conf, dhcpcd.conf, and `udhcpc -O`, which is also
/// the name of udhcpc's variable; dhclient-script's and dhcpcd's are both `var`.
struct OptionNames {
    code: u8,
    isc: &'static str,
    dhcpcd: &'static str,
    udhcpc: &'static str,
    var: &'static str,
}

const OPTION_NAMES: [OptionNames; 5] = [
    OptionNames {
        code: 26,
        isc: "interface-mtu",
        dhcpcd: "interface_mtu",
        udhcpc: "mtu",
        var: "new_interface_mtu",
    },
    OptionNames {
        code: 42,
        isc: "ntp-servers",
        dhcpcd: "ntp_servers",
        udhcpc: "ntpsrv",
        var: "new_ntp_servers",
    },
    OptionNames {
        code: 66,
        isc: "tftp-server-name",
        dhcpcd: "tftp_server_name",
        udhcpc: "tftp",
        var: "new_tftp_server_name",
    },
    OptionNames {
        code: 67,
        isc: "bootfile-name",
        dhcpcd: "bootfile_name",
        udhcpc: "bootfile",
        var: "new_bootfile_name",
    },
    OptionNames {
        code: 119,
        isc: "domain-search",
        dhcpcd: "domain_search",
        udhcpc: "search",
        var: "new_domain_search",
    },
];

/// The line that starts each hook call's environment in the hook's environment log.
const HOOK_CALL: &str = "@@xdhcp-lab-hook";

/// One call of a client's hook: why it was called and the environment it was given (the
/// options of the lease, as the client hands them to its scripts).
#[derive(Clone, Debug, PartialEq)]
pub struct HookCall {
    /// Wall clock, seconds since the epoch.
    pub at: f64,
    pub reason: String,
    pub env: std::collections::BTreeMap<String, String>,
}

impl HookCall {
    /// The calls logged in `text`: each a marker line, then `env`'s `NAME=value` lines (a line
    /// without `=` continues the value before it).
    fn parse_log(text: &str) -> Vec<HookCall> {
        let mut calls: Vec<HookCall> = Vec::new();
        let mut last: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(HOOK_CALL) {
                let mut it = rest.split_whitespace();
                let at = it.next().and_then(|t| t.parse().ok()).unwrap_or(0.0);
                let reason = it.next().unwrap_or_default().to_owned();
                calls.push(HookCall { at, reason, env: std::collections::BTreeMap::new() });
                last = None;
                continue;
            }
            let Some(call) = calls.last_mut() else { continue };
            match line.split_once('=') {
                Some((k, v))
                    if !k.is_empty()
                        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    call.env.insert(k.to_owned(), v.to_owned());
                    last = Some(k.to_owned());
                }
                _ => {
                    if let Some(v) = last.as_ref().and_then(|k| call.env.get_mut(k)) {
                        v.push('\n');
                        v.push_str(line);
                    }
                }
            }
        }
        calls
    }

    /// What `kind` handed its hook for option `code`, if it did.
    #[must_use]
    pub fn option(&self, kind: ClientKind, code: u8) -> Option<&str> {
        let (_, var) = kind.option_names(code)?;
        self.env.get(var).map(String::as_str)
    }
}

/// The classes of hook call the lab cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A lease from INIT or INIT-REBOOT (udhcpc `bound`, dhclient/dhcpcd `BOUND`, `REBOOT`).
    Bound,
    /// An ACK in RENEWING state (udhcpc reports REBINDING ACKs as `renew` too).
    Renew,
    /// An ACK in REBINDING state.
    Rebind,
    Other,
}

/// One line of a client's hook log.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientEvent {
    /// Wall clock, seconds since the epoch.
    pub at: f64,
    pub reason: String,
    pub kind: EventKind,
    pub ip: Option<Ipv4Addr>,
    pub lease_secs: Option<u32>,
}

impl ClientEvent {
    fn parse(line: &str) -> Option<Self> {
        let mut it = line.split_whitespace();
        let at = it.next()?.parse().ok()?;
        let mut f: HashMap<&str, &str> = HashMap::new();
        for kv in it {
            let (k, v) = kv.split_once('=')?;
            f.insert(k, v);
        }
        let reason = f.get("reason").copied().unwrap_or_default().to_owned();
        let kind = match reason.as_str() {
            "bound" | "BOUND" | "REBOOT" => EventKind::Bound,
            "renew" | "RENEW" => EventKind::Renew,
            "REBIND" => EventKind::Rebind,
            _ => EventKind::Other,
        };
        Some(Self {
            at,
            reason,
            kind,
            ip: f.get("ip").and_then(|s| s.parse().ok()),
            lease_secs: f.get("lease").and_then(|s| s.parse().ok()),
        })
    }

    #[must_use]
    pub fn is_renewal(&self) -> bool {
        matches!(self.kind, EventKind::Renew | EventKind::Rebind)
    }
}

/// A real DHCP client running in a lab namespace with a generated hook script; its hook log,
/// configuration and output live in a temp dir that goes with it. Drop stops it.
pub struct Client {
    kind: ClientKind,
    iface: String,
    netns: PathBuf,
    netns_name: String,
    child: Option<Child>,
    started: SystemTime,
    log: PathBuf,
    env_log: PathBuf,
    output: PathBuf,
    dir: TempDir,
}

impl Client {
    /// Starts `kind` on `iface` (which has MAC `mac`) in `ns`.
    pub fn start(kind: ClientKind, ns: &NetNs, iface: &str, mac: [u8; 6]) -> Result<Self> {
        Self::start_requesting(kind, ns, iface, mac, &[])
    }

    /// [`Client::start`], the client asking for the options `request` (codes that
    /// [`ClientKind::option_names`] knows) besides those it asks for by default.
    pub fn start_requesting(
        kind: ClientKind,
        ns: &NetNs,
        iface: &str,
        mac: [u8; 6],
        request: &[u8],
    ) -> Result<Self> {
        let bin = kind.locate()?;
        let names = kind.request_names(request)?;
        let dir = TempDir::new(kind.name())?;
        let d = dir.path();
        let log = d.join("events.log");
        let env_log = d.join("hook-env.log");
        let output = d.join("client.out");
        let hook = d.join("hook");
        ensure!(
            !hook.to_string_lossy().contains('\''),
            "temp dir {} cannot be quoted in a script",
            d.display()
        );
        fs::write(&hook, kind.hook_script(&log, &env_log, iface))?;
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755))?;
        File::create(&log)?;
        let mut cmd = match kind {
            ClientKind::Udhcpc => {
                // -T 2: the broadcast retry after an unanswered unicast renewal (see
                // [`Timing`]) comes 2 s later instead of 3.
                let mut c = ns.exec(&bin);
                c.args(["-f", "-i", iface, "-t", "5", "-T", "2", "-s"]).arg(&hook);
                for n in &names {
                    c.args(["-O", n]);
                }
                c
            }
            ClientKind::Dhclient => {
                // An own (empty) configuration, so /etc/dhcp/dhclient.conf plays no part.
                let conf = d.join("dhclient.conf");
                let also = match names.as_slice() {
                    [] => String::new(),
                    n => format!("also request {};\n", n.join(", ")),
                };
                fs::write(&conf, format!("# xdhcp lab: dhclient's defaults only.\n{also}"))?;
                let mut c = ns.exec(&bin);
                c.args(["-4", "-d", "-v", "-cf"])
                    .arg(&conf)
                    .arg("-sf")
                    .arg(&hook)
                    .arg("-lf")
                    .arg(d.join("dhclient.leases"))
                    .arg("-pf")
                    .arg(d.join("dhclient.pid"))
                    .arg(iface);
                c
            }
            ClientKind::Dhcpcd => {
                let conf = d.join("dhcpcd.conf");
                fs::write(
                    &conf,
                    format!(
                        "# xdhcp lab: nothing from /etc/dhcpcd.conf; the lab's hook is the only script.\n\
                         script {}\n\
                         nohook resolv.conf, ntp.conf, timesyncd.conf, hostname\n\
                         clientid 01:{}\n\
                         ipv4only\n\
                         noipv4ll\n\
                         # No ARP probe of the offered address: it would delay BOUND by seconds.\n\
                         noarp\n\
                         nodelay\n\
                         {options}",
                        hook.display(),
                        packet::fmt_mac(&mac),
                        options = if names.is_empty() {
                            String::new()
                        } else {
                            format!("option {}\n", names.join(", "))
                        },
                    ),
                )?;
                // `ip netns exec` gives the client a mount namespace of its own (slave, so
                // nothing propagates back): tmpfs over /run and /var/lib/dhcpcd keeps dhcpcd's
                // pid file, control socket, DUID and lease database out of the host's.
                let mut c = ns.exec("/bin/sh");
                c.arg("-c")
                    .arg(
                        "set -e; mount -t tmpfs xdhcp-lab /run; \
                         d=/var/lib/dhcpcd; [ -d \"$d\" ] || d=/var/lib; \
                         mount -t tmpfs xdhcp-lab \"$d\"; \
                         exec \"$1\" -4 -B -d -f \"$2\" \"$3\"",
                    )
                    .arg("sh")
                    .arg(&bin)
                    .arg(&conf)
                    .arg(iface);
                c
            }
        };
        let out = File::create(&output)?;
        // Own process group: a Ctrl-C on the terminal reaches only the lab, which then stops
        // the clients itself, in order.
        cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).process_group(0);
        let child = cmd.spawn().with_context(|| format!("start {}", kind.name()))?;
        Ok(Self {
            kind,
            iface: iface.to_owned(),
            netns: ns.path(),
            netns_name: ns.name().to_owned(),
            child: Some(child),
            started: SystemTime::now(),
            log,
            env_log,
            output,
            dir,
        })
    }

    /// Every hook call so far, with the environment the client gave its hook.
    #[must_use]
    pub fn hook_calls(&self) -> Vec<HookCall> {
        HookCall::parse_log(&fs::read_to_string(&self.env_log).unwrap_or_default())
    }

    #[must_use]
    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    #[must_use]
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The temp dir with the hook, its log, the configuration and the client's output.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Seconds between starting the client and `e`.
    #[must_use]
    pub fn elapsed_at(&self, e: &ClientEvent) -> f64 {
        e.at - self.started.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
    }

    /// Every hook call so far.
    #[must_use]
    pub fn events(&self) -> Vec<ClientEvent> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(ClientEvent::parse)
            .collect()
    }

    /// The first lease, then every renewal after it.
    #[must_use]
    pub fn lease_history(&self) -> (Option<ClientEvent>, Vec<ClientEvent>) {
        let ev = self.events();
        let Some(i) = ev.iter().position(|e| e.kind == EventKind::Bound) else {
            return (None, vec![]);
        };
        let renewals = ev[i + 1..].iter().filter(|e| e.is_renewal()).cloned().collect();
        (Some(ev[i].clone()), renewals)
    }

    /// Everything the client printed so far.
    #[must_use]
    pub fn output(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// RENEWING/REBINDING requests the client reports having sent after its first lease, from
    /// its own (verbose) output; each one is a request the fast path should answer. Tied to
    /// the wording of udhcpc 1.35, dhclient 4.4 and dhcpcd 9.
    #[must_use]
    pub fn renewal_requests(&self) -> usize {
        let out = self.output();
        let (bound, sent): (&str, &[&str]) = match self.kind {
            ClientKind::Udhcpc => ("lease of ", &["sending renew to server", "broadcasting renew"]),
            ClientKind::Dhclient => ("DHCPACK", &["DHCPREQUEST"]),
            ClientKind::Dhcpcd => ("leased ", &["sending REQUEST"]),
        };
        out.lines()
            .skip_while(|l| !l.contains(bound))
            .filter(|l| sent.iter().any(|s| l.contains(s)))
            .count()
    }

    /// The last lines of the client's own output.
    #[must_use]
    pub fn output_tail(&self, lines: usize) -> String {
        let s = fs::read_to_string(&self.output).unwrap_or_default();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the client is still running; an error with its output if it exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(c) = &mut self.child
            && let Some(status) = c.try_wait()?
        {
            self.child = None;
            bail!("{} exited ({status}):\n{}", self.kind, self.output_tail(30));
        }
        Ok(())
    }

    fn diagnose(&self, e: anyhow::Error) -> anyhow::Error {
        let ev: Vec<String> = self
            .events()
            .iter()
            .map(|e| {
                format!(
                    "  +{:.1}s {} ip={:?} lease={:?}",
                    self.elapsed_at(e),
                    e.reason,
                    e.ip,
                    e.lease_secs
                )
            })
            .collect();
        e.context(format!(
            "{} on {}: hook log:\n{}\nclient output (last lines):\n{}",
            self.kind,
            self.iface,
            ev.join("\n"),
            self.output_tail(25)
        ))
    }

    /// Waits (bounded) for the first lease.
    pub fn wait_bound(&mut self, timeout: Duration) -> Result<ClientEvent> {
        let what = format!("{} to get a lease", self.kind);
        let r = wait_for(&what, timeout, || {
            self.check_running()?;
            Ok(self.lease_history().0)
        });
        r.map_err(|e| self.diagnose(e))
    }

    /// Waits (bounded) until the client has logged `n` renewals after its first lease, and
    /// returns them all.
    pub fn wait_renewals(&mut self, n: usize, timeout: Duration) -> Result<Vec<ClientEvent>> {
        let what = format!("{} to renew {n} time(s)", self.kind);
        let r = wait_for(&what, timeout, || {
            self.check_running()?;
            let (_, renewals) = self.lease_history();
            Ok((renewals.len() >= n).then_some(renewals))
        });
        r.map_err(|e| self.diagnose(e))
    }

    /// Makes the client give its lease back (DHCPRELEASE) the way an operator would:
    /// `dhclient -r` with the running client's files, SIGUSR2 to udhcpc, SIGALRM to dhcpcd
    /// (what `dhcpcd -k` sends when it cannot reach the control socket). dhclient -r also
    /// stops the running dhclient; the others keep running, without a lease.
    pub fn release(&mut self) -> Result<()> {
        let pid = self.child.as_ref().context("the client is not running")?.id();
        let sig = match self.kind {
            ClientKind::Udhcpc => libc::SIGUSR2,
            ClientKind::Dhcpcd => libc::SIGALRM,
            ClientKind::Dhclient => {
                let d = self.dir.path();
                let bin = self.kind.locate()?;
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.netns_name])
                    .arg(bin)
                    .args(["-4", "-r", "-v", "-cf"])
                    .arg(d.join("dhclient.conf"))
                    .arg("-sf")
                    .arg(d.join("hook"))
                    .arg("-lf")
                    .arg(d.join("dhclient.leases"))
                    .arg("-pf")
                    .arg(d.join("dhclient.pid"))
                    .arg(&self.iface);
                run_cmd(&mut c, CMD_TIMEOUT)?;
                return Ok(());
            }
        };
        // SAFETY: kill(2) of the client we started (ip netns exec execs it, same pid).
        if unsafe { libc::kill(super::process::pid(pid), sig) } != 0 {
            return Err(errno("signal the client"));
        }
        Ok(())
    }

    /// Stops the client and every process it forked (dhcpcd's privilege-separated helpers):
    /// SIGTERM, then SIGKILL for whatever is left after a grace period. Only processes still
    /// inside the client's namespace are signalled, so a recycled pid is never hit.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let Some(ns) = ns_id(&self.netns) else {
            // The namespace is gone, and with it every process in it.
            let _ = child.wait();
            return Ok(());
        };
        let mine = |pids: &[i32]| -> Vec<i32> {
            pids.iter().copied().filter(|p| pid_in_netns(*p, ns)).collect()
        };
        // Collected before the main process dies: its helpers are reparented then.
        let tree = mine(&process_tree(super::process::pid(child.id())));
        for &p in &tree {
            // SAFETY: plain kill(2) of processes this client started.
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
        let exited = settle(STOP_GRACE, || {
            matches!(child.try_wait(), Ok(Some(_))) && mine(&tree).is_empty()
        });
        if !exited {
            for p in mine(&tree) {
                // SAFETY: as above.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        let _ = settle(STOP_GRACE, || matches!(child.try_wait(), Ok(Some(_))));
        ensure!(
            mine(&tree).is_empty() && matches!(child.try_wait(), Ok(Some(_))),
            "{} on {} did not stop",
            self.kind,
            self.iface
        );
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("xdhcp lab: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_log_lines_parse() {
        let e = ClientEvent::parse("1700000000.25 reason=renew ip=10.99.1.50 lease=60").unwrap();
        assert_eq!(e.kind, EventKind::Renew);
        assert_eq!(e.ip, Some(Ipv4Addr::new(10, 99, 1, 50)));
        assert_eq!(e.lease_secs, Some(60));
        let e = ClientEvent::parse("1700000000.25 reason=PREINIT ip= lease=").unwrap();
        assert_eq!((e.kind, e.ip, e.lease_secs), (EventKind::Other, None, None));
    }

    #[test]
    fn hook_environments_parse() {
        let log = format!(
            "{HOOK_CALL} 1700000000.5 bound\nntpsrv=10.0.0.1 10.0.0.2\nsearch=a.example\n\
             MOTD=two\nlines\n{HOOK_CALL} 1700000030.5 renew\nmtu=1492\n"
        );
        let calls = HookCall::parse_log(&log);
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].at, calls[0].reason.as_str()), (1_700_000_000.5, "bound"));
        assert_eq!(calls[0].option(ClientKind::Udhcpc, 42), Some("10.0.0.1 10.0.0.2"));
        assert_eq!(calls[0].option(ClientKind::Udhcpc, 119), Some("a.example"));
        assert_eq!(calls[0].env["MOTD"], "two\nlines");
        assert_eq!(calls[1].option(ClientKind::Udhcpc, 26), Some("1492"));
        assert_eq!(calls[1].option(ClientKind::Dhclient, 26), None);
        assert_eq!(
            ClientKind::Dhcpcd.option_names(119),
            Some(("domain_search", "new_domain_search"))
        );
        assert_eq!(ClientKind::Dhclient.option_names(3), None);
    }
}

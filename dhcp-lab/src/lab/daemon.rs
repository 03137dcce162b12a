//! The daemon wrapper: `xdhcp run` as a child process serving a [`Lan`], started, killed and
//! started again on the same store and pins.
use std::{
    fs, io,
    net::Ipv4Addr,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use xdhcp::{daemon::ctl, fastpath};

use super::{
    lan::{Lan, ServerConfig},
    netns::TempDir,
    process::{settle, wait_for},
};

/// How the lab starts `xdhcp run`.
#[derive(Clone, Debug)]
pub enum Launcher {
    /// `EXE --netns NS run --config FILE`, EXE an `xdhcp` binary ([`beside_this_program`]).
    Exe(PathBuf),
    /// A test binary running itself again with only the test `test` selected, which calls
    /// [`daemon_child`]: the server is then the code the test was built with, whatever state
    /// the separately built `xdhcp` binary is in.
    TestHarness { exe: PathBuf, test: String },
}

impl Launcher {
    /// [`Launcher::TestHarness`] of the running test binary, selecting `test`.
    pub fn this_test_binary(test: &str) -> Result<Self> {
        let exe = std::env::current_exe().context("path of the test binary")?;
        Ok(Self::TestHarness { exe, test: test.to_owned() })
    }
}

const CHILD_CONFIG: &str = "XDHCP_LAB_DAEMON_CONFIG";
const CHILD_NETNS: &str = "XDHCP_LAB_DAEMON_NETNS";

/// The body of the test that [`Launcher::TestHarness`] selects: in a normal test run it
/// returns at once; in the child the lab started, it becomes `xdhcp --netns NS run --config
/// FILE` and ends the process when the server stops.
pub fn daemon_child() {
    let (Some(cfg), Some(ns)) = (std::env::var_os(CHILD_CONFIG), std::env::var_os(CHILD_NETNS))
    else {
        return;
    };
    let r = fastpath::enter_netns(&ns.to_string_lossy())
        .and_then(|()| xdhcp::daemon::run(Path::new(&cfg)));
    if let Err(e) = r {
        eprintln!("xdhcp: {e:#}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// `xdhcp run` as a child process in the LAN's server namespace, with its config, store,
/// control socket and log in a temp dir. It can be killed and started again on the same store
/// and pinned fast path. Drop stops it (SIGTERM, then SIGKILL).
pub struct Daemon {
    child: Option<Child>,
    launcher: Launcher,
    netns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    log: PathBuf,
    log_filter: Option<String>,
    /// How many times it was started.
    pub starts: u32,
    dir: TempDir,
}

/// The config's name in the daemon's directory.
const CONFIG_FILE: &str = "xdhcp.toml";

/// How long a start may take before the daemon answers on its control socket.
const DAEMON_READY: Duration = Duration::from_secs(20);

/// Every lease record a server holds, page after page, `ask`ing its control socket.
pub fn all_leases(
    ask: impl Fn(&ctl::Request) -> Result<serde_json::Value>,
) -> Result<Vec<serde_json::Value>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let q = ctl::LeaseQuery { after, ..Default::default() };
        let v = ask(&ctl::Request::Leases(Box::new(q)))?;
        all.extend(v["leases"].as_array().cloned().unwrap_or_default());
        match v["next"].as_str().and_then(|a| a.parse().ok()) {
            Some(a) => after = Some(a),
            None => return Ok(all),
        }
    }
}

impl Daemon {
    pub fn start(lan: &Lan, cfg: &ServerConfig, launcher: Launcher) -> Result<Self> {
        let dir = TempDir::new("server")?;
        fs::write(dir.path().join(CONFIG_FILE), cfg.toml(&lan.server_if, dir.path()))?;
        Self::start_in(lan.server.name(), dir, launcher, None)
    }

    /// `xdhcp run` in the namespace `netns` with the config `dir`/xdhcp.toml, whose control
    /// socket must be `dir`/control.sock (its store `dir`/state, as [`Daemon::state_dir`]
    /// says). `log_filter` is its `RUST_LOG` whatever the caller's (info by default).
    pub fn start_in(
        netns: &str,
        dir: TempDir,
        launcher: Launcher,
        log_filter: Option<&str>,
    ) -> Result<Self> {
        let mut d = Self {
            child: None,
            launcher,
            netns: netns.to_owned(),
            config: dir.path().join(CONFIG_FILE),
            socket: dir.path().join("control.sock"),
            state_dir: dir.path().join("state"),
            log: dir.path().join("xdhcp.log"),
            log_filter: log_filter.map(str::to_owned),
            starts: 0,
            dir,
        };
        d.restart()?;
        Ok(d)
    }

    /// The temp dir with config, store, socket and log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server again (after [`Daemon::kill`]) and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        ensure!(self.child.is_none(), "xdhcp run is still running");
        let mut log = fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        self.starts += 1;
        io::Write::write_all(
            &mut log,
            format!("--- xdhcp lab: start {}\n", self.starts).as_bytes(),
        )?;
        let mut cmd = match &self.launcher {
            Launcher::Exe(exe) => {
                let mut c = Command::new(exe);
                c.args(["--netns", &self.netns, "run", "--config"]).arg(&self.config);
                c
            }
            Launcher::TestHarness { exe, test } => {
                let mut c = Command::new(exe);
                c.args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                    .env(CHILD_CONFIG, &self.config)
                    .env(CHILD_NETNS, &self.netns);
                c
            }
        };
        if let Some(f) = &self.log_filter {
            cmd.env("RUST_LOG", f);
        } else if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        // The log is a file, read by people and tests: no terminal colours in it.
        cmd.env("NO_COLOR", "1");
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
        // SAFETY: prctl(2) only, between fork and exec: the server must not outlive the
        // thread that started it (a test killed mid-run), as nothing else would stop it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().context("start xdhcp run")?);
        let r = wait_for("xdhcp run to answer on its control socket", DAEMON_READY, || {
            if let Some(c) = &mut self.child
                && let Some(st) = c.try_wait()?
            {
                self.child = None;
                bail!("xdhcp run exited ({st})");
            }
            Ok(ctl::request(&self.socket, &ctl::Request::Stats).ok().map(|_| ()))
        });
        r.map_err(|e| e.context(format!("xdhcp log:\n{}", self.log_tail(30))))
    }

    /// Sends `signal` and waits (bounded) for the server to exit; its exit status.
    pub fn kill(&mut self, signal: libc::c_int) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("xdhcp run is not running")?;
        // SAFETY: kill(2) of our own child, not yet reaped.
        unsafe { libc::kill(super::process::pid(child.id()), signal) };
        let mut status = None;
        settle(Duration::from_secs(10), || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if let Some(s) = status {
            return Ok(s);
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("xdhcp run did not exit on signal {signal} within 10 s")
    }

    /// Whether the server still runs; an error with its log if it exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(c) = &mut self.child
            && let Some(st) = c.try_wait()?
        {
            self.child = None;
            bail!("xdhcp run exited ({st}):\n{}", self.log_tail(30));
        }
        Ok(())
    }

    pub fn ctl(&self, req: &ctl::Request) -> Result<serde_json::Value> {
        ctl::request(&self.socket, req)
    }

    /// `xdhcp leases --json`: every lease record the server holds.
    pub fn leases(&self) -> Result<Vec<serde_json::Value>> {
        all_leases(|r| self.ctl(r))
    }

    /// The record of `addr`, if the server has one.
    pub fn lease(&self, addr: Ipv4Addr) -> Result<Option<serde_json::Value>> {
        let v = self.ctl(&ctl::Request::Leases(Box::new(ctl::LeaseQuery {
            addr: Some(addr),
            ..Default::default()
        })))?;
        Ok(v["leases"].as_array().and_then(|a| a.first().cloned()))
    }

    /// `xdhcp stats`.
    pub fn stats(&self) -> Result<serde_json::Value> {
        self.ctl(&ctl::Request::Stats)
    }

    /// Everything the server logged, over all its starts.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        let s = self.log();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Err(e) = self.kill(libc::SIGTERM)
        {
            eprintln!("xdhcp lab: {e:#}");
        }
    }
}

/// The program `name` where cargo puts it: beside this one, in target/<profile>/ (the `xdhcp`
/// binary the demo serves the lab with, the load generator the benchmark drives).
pub fn beside_this_program(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("find this program's path")?;
    let p = me.with_file_name(name);
    ensure!(
        p.is_file(),
        "{} not found (cargo build -p {} --bin {name} puts it there)",
        p.display(),
        if name == "xdhcp" { "dhcp-user" } else { "dhcp-lab" }
    );
    Ok(p)
}

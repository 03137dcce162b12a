//! Child processes, bounded waits and Ctrl-C: what every other part of the lab waits with.
use std::{
    collections::HashMap,
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

/// How often bounded waits look again.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// `ip` and friends answer in milliseconds; this only stops a wedged one from hanging us.
pub(crate) const CMD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client gets to exit on SIGTERM before it and its helpers are killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(3);

static SEQ: AtomicU32 = AtomicU32::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn next_seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

extern "C" fn note_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT and SIGTERM into a flag that every lab wait checks, so Ctrl-C unwinds through
/// the guards (and tears the lab down) instead of killing the process with everything in place.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, note_interrupt as *const () as libc::sighandler_t) };
    }
}

/// True once SIGINT/SIGTERM arrived after [`catch_interrupts`].
#[must_use]
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Polls `check` until it returns a value, for at most `timeout`; gives up early on Ctrl-C.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if interrupted() {
            bail!("interrupted while waiting for {what}");
        }
        if Instant::now() >= deadline {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs_f32());
        }
        thread::sleep(POLL);
    }
}

/// [`wait_for`] through errors: an error from `check` counts as "not yet" (a server that is
/// restarting, a control socket not answering yet), and the last one is reported on timeout.
pub fn retry_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let mut last_err = None;
    let r = wait_for(what, timeout, || match check() {
        Ok(v) => Ok(v),
        Err(e) => {
            last_err = Some(e);
            Ok(None)
        }
    });
    match (r, last_err) {
        (Err(timeout), Some(e)) => Err(e.context(format!("{timeout:#}"))),
        (r, _) => r,
    }
}

/// Like [`wait_for`] for teardown: Ctrl-C must not cut cleanup short, so it is not checked.
pub(crate) fn settle(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Runs `cmd` to completion within `timeout` and returns its stdout; a nonzero exit is an
/// error carrying its stderr.
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let desc = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {desc}"))?;
    let pid = pid(child.id());
    // wait_with_output drains both pipes while waiting; doing that on a helper thread is what
    // lets the wait itself be bounded.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(timeout) else {
        // SAFETY: plain kill(2) of the child we spawned (the helper thread has not reaped it).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        bail!("{desc} did not finish within {} s", timeout.as_secs())
    };
    let out = out.with_context(|| format!("wait for {desc}"))?;
    if !out.status.success() {
        bail!("{desc} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A child's id (`Child::id`) as kill(2) takes it.
#[must_use]
pub fn pid(id: u32) -> libc::pid_t {
    // Pids stay below pid_max (at most 2^22): the reinterpretation never wraps.
    id.cast_signed()
}

pub(crate) fn ip(args: &[&str]) -> Result<String> {
    run_cmd(Command::new("ip").args(args), CMD_TIMEOUT)
}

pub(crate) fn require_root() -> Result<()> {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let euid = unsafe { libc::geteuid() };
    ensure!(
        euid == 0,
        "the lab creates network namespaces and attaches XDP programs: run it as root"
    );
    Ok(())
}

pub(crate) fn errno(what: &str) -> anyhow::Error {
    anyhow::Error::new(io::Error::last_os_error()).context(what.to_owned())
}

/// Parent pid of every process, from /proc.
pub(crate) fn parents() -> HashMap<i32, i32> {
    let mut m = HashMap::new();
    let Ok(rd) = fs::read_dir("/proc") else { return m };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // The command name may hold spaces and parentheses; the ppid is the second field
        // after the last ')'.
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else { continue };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            m.insert(pid, ppid);
        }
    }
    m
}

/// `root` and all its descendants.
pub(crate) fn process_tree(root: i32) -> Vec<i32> {
    let parents = parents();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// (device, inode) identifying a namespace, as stat(2) sees its nsfs file.
pub(crate) fn ns_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

pub(crate) fn pid_in_netns(pid: i32, ns: (u64, u64)) -> bool {
    ns_id(Path::new(&format!("/proc/{pid}/ns/net"))) == Some(ns)
}

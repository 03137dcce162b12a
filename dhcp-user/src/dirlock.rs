//! One holder at a time of a directory: an flock(2) on it, which the kernel releases however
//! the holder ends, kill -9 included; and who holds it, for the refusal's message. The fast
//! path's pin directories (one writer of an interface's maps) and the lease store's directory
//! (one owner of the lease state) are held this way.
use std::{
    fs,
    io::Read as _,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::Path,
    time::{Duration, Instant},
};

/// Held for as long as this value lives.
#[derive(Debug)]
pub struct DirLock {
    _dir: fs::File,
}

pub enum Locked {
    Held(DirLock),
    /// Another holder kept it past the wait: "pid 4321 (xdhcp)", or "another process".
    Busy(String),
}

/// Locks `dir` (which must exist), waiting up to `wait` for a holder on its way out.
pub fn lock(dir: &Path, wait: Duration) -> std::io::Result<Locked> {
    let f = fs::File::open(dir)?;
    let end = Instant::now() + wait;
    loop {
        // SAFETY: flock(2) on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Locked::Held(DirLock { _dir: f }));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(e);
        }
        if Instant::now() >= end {
            return Ok(Locked::Busy(lock_holder(dir)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Who holds the flock on `path`: "pid 4321 (xdhcp)", or "another process" if nobody can tell.
#[must_use]
pub fn lock_holder(path: &Path) -> String {
    let found = || -> Option<String> {
        let key = lock_key(&fs::metadata(path).ok()?);
        let pid = flock_holder_in_locks(&key).or_else(|| flock_holder_in_fdinfo(&key))?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        Some(format!("pid {pid} ({})", comm.trim()))
    };
    found().unwrap_or_else(|| "another process".to_owned())
}

/// A file as the kernel's lock lists name it: "major:minor:inode", in hex but the inode.
fn lock_key(md: &fs::Metadata) -> String {
    format!("{:02x}:{:02x}:{}", libc::major(md.dev()), libc::minor(md.dev()), md.ino())
}

/// The pid in a lock line as /proc/locks and fdinfo print it ("1: FLOCK  ADVISORY  WRITE 4321
/// 00:27:715540 0 EOF"), if it is a flock on the file `key` ([`lock_key`]).
fn flock_pid<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let f: Vec<&str> = line.split_whitespace().collect();
    (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&key)).then(|| f[4])
}

/// The holder /proc/locks names. The kernel writes that list a page per read(2) and finds its
/// place again by position on the next, so a lock taken or dropped anywhere meanwhile shifts
/// entries past the reader: one large read keeps a short list whole. Longer lists, and holders
/// outside this pid namespace (never listed), are left to [`flock_holder_in_fdinfo`].
fn flock_holder_in_locks(key: &str) -> Option<String> {
    let mut text = Vec::with_capacity(1 << 16);
    fs::File::open("/proc/locks").ok()?.read_to_end(&mut text).ok()?;
    String::from_utf8_lossy(&text).lines().find_map(|l| flock_pid(l, key).map(str::to_owned))
}

/// The process whose open file holds the flock on `key`: each descriptor's fdinfo lists the
/// locks held through it ("lock:" and a /proc/locks line). A walk over every process's
/// descriptors, so only for when /proc/locks has no answer.
fn flock_holder_in_fdinfo(key: &str) -> Option<String> {
    let holds = |fdinfo: &Path| {
        fs::read_to_string(fdinfo).is_ok_and(|t| {
            t.lines().any(|l| l.strip_prefix("lock:").and_then(|l| flock_pid(l, key)).is_some())
        })
    };
    fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
        let pid =
            p.file_name().into_string().ok().filter(|n| n.bytes().all(|b| b.is_ascii_digit()))?;
        let fds = fs::read_dir(p.path().join("fdinfo")).ok()?;
        fds.flatten().any(|fd| holds(&fd.path())).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_holder_named() -> String {
        let me = fs::read_to_string("/proc/self/comm").unwrap();
        format!("pid {} ({})", std::process::id(), me.trim())
    }

    fn held(dir: &Path) -> DirLock {
        match lock(dir, Duration::ZERO).unwrap() {
            Locked::Held(l) => l,
            Locked::Busy(h) => panic!("held by {h}"),
        }
    }

    /// CI once saw "another process" for a daemon that held the lock: /proc/locks, read in
    /// pieces while other locks came and went, had skipped its line.
    #[test]
    fn the_holder_is_named_while_other_locks_come_and_go() {
        let dir = std::env::temp_dir().join(format!("xdhcp-lock-holder-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let held = held(&dir);
        let key = lock_key(&fs::metadata(&dir).unwrap());
        let me = std::process::id().to_string();
        let both = (flock_holder_in_locks(&key), flock_holder_in_fdinfo(&key));
        let named = lock_holder_named();

        let churn_dir =
            std::env::temp_dir().join(format!("xdhcp-lock-churn-{}", std::process::id()));
        fs::create_dir_all(&churn_dir).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let unnamed = std::thread::scope(|s| {
            s.spawn(|| {
                let files: Vec<fs::File> = (0..20)
                    .map(|i| fs::File::create(churn_dir.join(i.to_string())).unwrap())
                    .collect();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for op in [libc::LOCK_EX, libc::LOCK_UN] {
                        for f in &files {
                            // SAFETY: flock(2) on files this thread owns.
                            unsafe { libc::flock(f.as_raw_fd(), op) };
                        }
                    }
                }
            });
            let unnamed = (0..3000).filter(|_| lock_holder(&dir) != named).count();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            unnamed
        });
        drop(held);
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_dir_all(&churn_dir).unwrap();
        assert_eq!(both, (Some(me.clone()), Some(me)), "each source names the holder");
        assert_eq!(unnamed, 0, "lookups of 3000 that did not name the holder");
    }
}

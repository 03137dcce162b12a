//! A real PostgreSQL (Debian's `postgresql`, installed by `cargo xtask setup`) for the history
//! tests: a scratch cluster in a temp dir, run as the `postgres` user (it refuses root), on a
//! Unix socket only (`listen_addresses = ''`): the socket is a file, so servers in the lab's
//! network namespaces reach it as well as the test. [`Postgres::kill`] is SIGKILL of the real
//! postmaster; [`Postgres::restart`] starts it again on the same data.
use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use dhcp_lab::lab::{TempDir, retry_for, run_cmd, wait_for};

/// The server's programs: the newest major version installed.
fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("/usr/lib/postgresql: install Debian's postgresql (cargo xtask setup does)")?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).context("no PostgreSQL server under /usr/lib/postgresql")
}

fn postgres_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = run_cmd(Command::new("id").args([flag, "postgres"]), Duration::from_secs(5))?;
        out.trim().parse().context("id postgres")
    };
    Ok((id("-u")?, id("-g")?))
}

pub struct Postgres {
    bin: PathBuf,
    ids: (u32, u32),
    data: PathBuf,
    socket_dir: PathBuf,
    pub port: u16,
    log: PathBuf,
    child: Option<Child>,
    dir: TempDir,
}

/// How long a start may take (initdb aside).
const READY: Duration = Duration::from_secs(30);

impl Postgres {
    /// A new cluster, started.
    pub fn start() -> Result<Self> {
        let bin = bin_dir()?;
        let ids = postgres_ids()?;
        let dir = TempDir::new("pg")?;
        let (data, socket_dir) = (dir.path().join("data"), dir.path().join("sock"));
        for d in [&data, &socket_dir] {
            std::fs::create_dir(d)?;
            std::os::unix::fs::chown(d, Some(ids.0), Some(ids.1))?;
        }
        // The temp dir itself must let the postgres user through to them.
        let mut perm = std::fs::metadata(dir.path())?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(dir.path(), perm)?;
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .uid(ids.0)
            .gid(ids.1)
            .current_dir(dir.path());
        run_cmd(&mut initdb, Duration::from_mins(2)).context("initdb")?;
        // Any port: it only names the socket file, in a directory of its own.
        let port = 20_000 + u16::try_from(std::process::id() % 20_000).unwrap_or(0);
        let log = dir.path().join("postgres.log");
        let mut pg = Self { bin, ids, data, socket_dir, port, log, child: None, dir };
        pg.restart()?;
        Ok(pg)
    }

    /// The connection string xdhcp and the test use.
    #[must_use]
    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres connect_timeout=5",
            self.socket_dir.display(),
            self.port
        )
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server on the cluster and waits until it answers. After a SIGKILL the old
    /// server's backends may hold its shared memory for a moment: the start is retried.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("postgres is still running");
        }
        let started = retry_for("postgres to start", READY, || {
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
            let mut c = Command::new(self.bin.join("postgres"));
            c.arg("-D")
                .arg(&self.data)
                .args(["-p", &self.port.to_string(), "-k"])
                .arg(&self.socket_dir)
                .args(["-c", "listen_addresses=", "-c", "fsync=off"])
                .uid(self.ids.0)
                .gid(self.ids.1)
                .current_dir(self.dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0);
            let mut child = c.spawn().context("start postgres")?;
            let up = wait_for("postgres to answer", Duration::from_secs(10), || {
                if let Some(st) = child.try_wait()? {
                    bail!("postgres exited ({st}): {}", self.log_tail());
                }
                Ok(self.client().ok().map(|_| ()))
            });
            match up {
                Ok(()) => Ok(Some(child)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Err(e)
                }
            }
        })?;
        self.child = Some(started);
        Ok(())
    }

    /// SIGKILL of the postmaster, as a crash; its backends see it gone and exit.
    pub fn kill(&mut self) -> Result<()> {
        let mut c = self.child.take().context("postgres is not running")?;
        c.kill()?;
        c.wait()?;
        Ok(())
    }

    pub fn client(&self) -> Result<postgres::Client> {
        Ok(postgres::Client::connect(&self.url(), postgres::NoTls)?)
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

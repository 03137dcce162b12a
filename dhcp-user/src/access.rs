//! Who may read subscriber data. The lease store holds every client's MAC, client identifier,
//! hostname and line (option 82): its directory and files are the daemon's user's alone, or
//! also readable by one configured `group` (an operator's tools), and the control socket, which
//! answers every lease query, is usable by that user and group only.
//!
//! Modes are set explicitly, whatever the umask; a directory or file found with another mode
//! (a looser one left by an older version) is set right at start, and the log says so.
use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use tracing::info;

/// The owner's, and the configured group's if there is one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    pub gid: Option<u32>,
}

impl Access {
    /// `rwx` for the owner; `r-x` for the group when one is configured.
    #[must_use]
    pub fn dir_mode(self) -> u32 {
        if self.gid.is_some() { 0o750 } else { 0o700 }
    }

    /// `rw` for the owner; `r` for the group when one is configured.
    #[must_use]
    pub fn file_mode(self) -> u32 {
        if self.gid.is_some() { 0o640 } else { 0o600 }
    }

    /// The control socket: the group connects too (a connection needs write permission).
    #[must_use]
    pub fn socket_mode(self) -> u32 {
        0o660
    }

    /// Creates `dir` (and its missing parents) with [`Self::dir_mode`], or sets an existing
    /// one's mode and group.
    pub fn dir(self, dir: &Path) -> io::Result<()> {
        fs::DirBuilder::new().recursive(true).mode(self.dir_mode()).create(dir)?;
        self.set(dir, self.dir_mode())
    }

    /// Creates `file` empty with [`Self::file_mode`] if it is missing, and sets its mode and
    /// group. A new SQLite database gives its `-wal` and `-shm` files the mode of the database.
    pub fn file(self, file: &Path) -> io::Result<()> {
        create_private(file, self.file_mode())?;
        self.set(file, self.file_mode())
    }

    /// [`Self::file`] for a file that may not be there (a `-wal` not yet written): nothing
    /// to do then.
    pub fn file_if_present(self, file: &Path) -> io::Result<()> {
        match fs::symlink_metadata(file) {
            Ok(_) => self.set(file, self.file_mode()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The control socket, just bound (its mode is the umask's; there is nothing to report).
    pub fn socket(self, socket: &Path) -> io::Result<()> {
        self.chown(socket)?;
        fs::set_permissions(socket, fs::Permissions::from_mode(self.socket_mode()))
    }

    fn chown(self, path: &Path) -> io::Result<()> {
        match self.gid {
            Some(gid) => std::os::unix::fs::chown(path, None, Some(gid)),
            None => Ok(()),
        }
    }

    fn set(self, path: &Path, mode: u32) -> io::Result<()> {
        self.chown(path)?;
        let was = fs::metadata(path)?.permissions().mode() & 0o7777;
        if was != mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
            info!(path = %path.display(), "mode {was:04o} set to {mode:04o}");
        }
        Ok(())
    }
}

/// Creates `file` empty with `mode` (umask or not) unless it exists.
pub fn create_private(file: &Path, mode: u32) -> io::Result<()> {
    match fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(file) {
        Ok(f) => f.set_permissions(fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_store_is_the_owners_alone_or_its_groups_whatever_it_was_before() {
        let dir = std::env::temp_dir().join(format!("xdhcp-access-{}", std::process::id()));
        let state = dir.join("state");
        let db = state.join("leases.db");
        let owner = Access::default();
        owner.dir(&state).unwrap();
        owner.file(&db).unwrap();
        assert_eq!((mode(&state), mode(&db)), (0o700, 0o600));
        // As an older version left them: every local user reads the leases.
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        owner.dir(&state).unwrap();
        owner.file(&db).unwrap();
        assert_eq!((mode(&state), mode(&db)), (0o700, 0o600));
        // A group: ours, which the test may give without being root.
        let gid = fs::metadata(&state).unwrap().gid();
        let group = Access { gid: Some(gid) };
        group.dir(&state).unwrap();
        group.file(&db).unwrap();
        group.file_if_present(&state.join("leases.db-wal")).unwrap();
        assert_eq!((mode(&state), mode(&db)), (0o750, 0o640));
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! What the config names on this host: the `group` in the group database, and the failover
//! link's certificate and key files. Checked when the daemon (or `xdhcp check`) loads the file,
//! not by the pure validation the simulation and the tests run on text alone.
use std::ffi::CString;

use super::model::{Config, ValidationError, err};
use crate::tls::PeerTls;

/// The host's side of the config.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// `group`'s id.
    pub gid: Option<u32>,
    /// Each relationship's `tls`, read and ready, by [`crate::config::RelationshipId`].
    pub peer_tls: Vec<Option<PeerTls>>,
}

impl Host {
    pub fn resolve(cfg: &Config) -> Result<Host, ValidationError> {
        let gid = match &cfg.group {
            Some(name) => match group_id(name) {
                Some(gid) => Some(gid),
                None => return err("group", format!("{name:?}: no such group on this host")),
            },
            None => None,
        };
        let peer_tls = cfg
            .failover
            .iter()
            .map(|f| f.tls.as_ref().map(|t| PeerTls::load(t, f.peer_address, &f.key)).transpose())
            .collect::<Result<_, _>>()?;
        Ok(Host { gid, peer_tls })
    }
}

/// The id of the group named `name`, from the group database (files, LDAP: what nsswitch says).
fn group_id(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `struct group` is plain data (integers and pointers); all zeroes is a valid value.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // A group listing thousands of members needs a larger buffer than most: ERANGE says so.
    let mut len = 16 * 1024;
    loop {
        let mut buf = vec![0u8; len];
        // SAFETY: every pointer is to memory this function owns, `buf` as long as passed;
        // getgrnam_r writes the entry's strings into `buf` and the entry into `grp`.
        let rc = unsafe {
            libc::getgrnam_r(c.as_ptr(), &raw mut grp, buf.as_mut_ptr().cast(), len, &raw mut out)
        };
        if rc == libc::ERANGE && len < 1 << 20 {
            len *= 4;
            continue;
        }
        return (rc == 0 && !out.is_null()).then_some(grp.gr_gid);
    }
}

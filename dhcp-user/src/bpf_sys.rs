//! bpf(2) with a hand-built attribute union, for the few commands aya does not offer (reading
//! a verified program back in the benchmarks; tests that pin maps of another layout).

/// # Safety
/// Every pointer the command finds in `attr` must be valid for what the kernel does with it.
pub unsafe fn sys_bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<libc::c_long> {
    // SAFETY: the caller vouches for the pointers inside attr; attr itself is ours and its
    // length is what the kernel may read and write.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(rc) }
}

//! The kernel's clock for grant horizons. XDP tells `CLOCK_MONOTONIC` from jiffies on a line
//! calibrated against the coarse clock (`dhcp_common::KernelClock`), so `grant_until_ns` is
//! written in `CLOCK_MONOTONIC`.

/// The coarse clock lags `CLOCK_MONOTONIC` by up to one tick (10 ms at HZ=100). Userspace
/// writes horizons this much earlier than what it committed, so a lagging kernel clock can never
/// stretch a grant past the committed instant.
pub const COARSE_SLACK_NS: u64 = 20_000_000;

/// `CLOCK_MONOTONIC` now, in nanoseconds.
#[must_use]
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC always exists.
    read(libc::CLOCK_MONOTONIC).unwrap_or_default()
}

/// `CLOCK_MONOTONIC_COARSE` now, in nanoseconds: what the kernel's coarse clock reads.
#[must_use]
pub fn coarse_ns() -> u64 {
    // CLOCK_MONOTONIC_COARSE exists since Linux 2.6.32.
    read(libc::CLOCK_MONOTONIC_COARSE).unwrap_or_default()
}

/// The kernel's tick (`TICK_NSEC`): the coarse clocks' resolution, by definition of them.
pub fn coarse_tick_ns() -> anyhow::Result<u64> {
    // SAFETY: clock_getres writes into the timespec it is given.
    timespec_ns(|ts| unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, ts) })
        .map_err(|e| anyhow::Error::from(e).context("clock_getres(CLOCK_MONOTONIC_COARSE)"))
}

fn read(clock: libc::clockid_t) -> std::io::Result<u64> {
    // SAFETY: clock_gettime writes into the timespec it is given.
    timespec_ns(|ts| unsafe { libc::clock_gettime(clock, ts) })
}

/// Nanoseconds of the timespec `call` fills in (returning 0, or -1 with errno set).
fn timespec_ns(call: impl FnOnce(*mut libc::timespec) -> libc::c_int) -> std::io::Result<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    if call(&raw mut ts) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ts.tv_sec.cast_unsigned() * 1_000_000_000 + ts.tv_nsec.cast_unsigned())
}

/// The `grant_until_ns` for a horizon `secs` from the monotonic instant `now_ns`.
#[must_use]
pub fn grant_until_ns(now_ns: u64, secs: u64) -> u64 {
    (now_ns + secs * 1_000_000_000).saturating_sub(COARSE_SLACK_NS)
}

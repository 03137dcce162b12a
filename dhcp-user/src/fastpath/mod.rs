//! Loading, attaching, pinning and detaching the XDP program.
//!
//! Everything of one interface is pinned under `/sys/fs/bpf/xdhcp/<iface>/`: the maps by their
//! names, the program as `prog` and the XDP link as `link`. The pinned link keeps renewals
//! answered while no daemon runs; a later daemon (or `xdhcp maps dump`) adopts the pinned maps.
//!
//! The rest of the fast path's userspace side lives beside this: typed access to the maps
//! ([`maps`]), the renewal event log ([`eventlog`]), what a reply profile's fast-path ACKs carry
//! ([`subnet`]), the kernel's clock ([`clock`]) and keeping every interface's maps true to the
//! store ([`sync`]).
use std::{
    fs,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    programs::{TestRun as _, TestRunOptions, Xdp, XdpMode, links::FdLink},
};
use dhcp_common::{Control, KernelClock, maps as m, police as pm};

use maps::FastPathMaps;

pub mod clock;
pub mod eventlog;
pub mod maps;
pub mod police;
pub mod subnet;
pub mod sync;

/// The XDP object, built by build.rs from dhcp-ebpf.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dhcp-xdp.o"));

pub const PROG: &str = "xdhcp";
/// The do-nothing program for the client side of a veth pair (see dhcp-ebpf).
pub const PASS_PROG: &str = "xdhcp_pass";
/// Reads jiffies and the coarse clock together for [`calibrate_clock`]; never attached.
pub const CLOCK_PROG: &str = "xdhcp_clock";
pub const PIN_ROOT: &str = "/sys/fs/bpf/xdhcp";
const MAP_NAMES: [&str; 14] = [
    m::LEASES,
    m::PAGES,
    m::BLOCKS,
    m::PROFILES,
    m::CONTROL,
    m::STATS,
    m::LOG,
    m::LOG_CURSORS,
    pm::POLICIES,
    pm::POLICY_OF,
    pm::POLICED_MACS,
    pm::POLICED_PORTS,
    pm::POLICED_VLANS,
    pm::POLICED_IFACE,
];
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[must_use]
pub fn pin_dir(iface: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(iface)
}

/// Mounts bpffs on /sys/fs/bpf unless it already is one (it is not at boot on these machines).
pub fn ensure_bpffs() -> Result<()> {
    let target = c"/sys/fs/bpf";
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs(2) reads the static C string and writes at most a statfs into `st`.
    if unsafe { libc::statfs(target.as_ptr(), &raw mut st) } == 0 && st.f_type == BPF_FS_MAGIC {
        return Ok(());
    }
    // SAFETY: plain mount(2) with static C strings.
    let rc = unsafe {
        libc::mount(c"bpf".as_ptr(), target.as_ptr(), c"bpf".as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("mount bpffs on /sys/fs/bpf");
    }
    Ok(())
}

/// Where maps live and how big the lease map is.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Pin (or adopt already pinned) maps in this directory; `None` keeps them private to the
    /// returned object (tests and benchmarks).
    pub pin_dir: Option<PathBuf>,
    /// Override the lease map's capacity (tests use small maps; default 1 M).
    pub leases_max: Option<u32>,
    /// Event log slots per CPU (`fast_path.event_log_slots`; default [`m::LOG_SLOTS`]). Pinned
    /// maps keep the size they were made with.
    pub log_slots: Option<u32>,
}

/// The event log's slots per CPU as pinned in `dir`, if it is.
fn pinned_log_slots(dir: &Path) -> Result<Option<u32>> {
    if !dir.join(m::LOG).exists() {
        return Ok(None);
    }
    eventlog::EventLog::slots_pinned(dir)
        .map(Some)
        .context("run `xdhcp detach` for this interface once")
}

/// Loads the object: maps are created (or adopted from `pin_dir`), programs are not yet loaded.
pub fn load(opts: &LoadOptions) -> Result<Ebpf> {
    load_object(OBJECT, opts)
}

/// [`load`] for another build's object (`cargo xtask bench fastpath --compare`).
pub fn load_object(object: &[u8], opts: &LoadOptions) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    let paths: Vec<(&str, PathBuf)> = opts
        .pin_dir
        .as_ref()
        .map(|d| MAP_NAMES.iter().map(|n| (*n, d.join(n))).collect())
        .unwrap_or_default();
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    // The lease table keeps the size it was pinned with: XDP bounds every slot by the map
    // itself, so any size works, and resizing means emptying it.
    let pinned_leases = match &opts.pin_dir {
        Some(d) if d.join(m::LEASES).exists() => Some(
            aya::maps::MapInfo::from_pin(d.join(m::LEASES))
                .context("the pinned lease table")?
                .max_entries(),
        ),
        _ => None,
    };
    if let (Some(p), Some(want)) = (pinned_leases, opts.leases_max)
        && p != want.next_multiple_of(m::BLOCK_SLOTS)
    {
        tracing::warn!(
            pinned = p,
            configured = want,
            "the kernel lease table keeps the capacity it was pinned with; `xdhcp detach` and \
             attach again to resize it"
        );
    }
    if let Some(n) = pinned_leases.or(opts.leases_max) {
        loader.map_max_entries(m::LEASES, n.next_multiple_of(m::BLOCK_SLOTS));
    }
    // A region of the event log for every CPU that can ever run the program, of the size the
    // maps already pinned have (the program must index the map it will use), or as asked.
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    let cpus = u32::try_from(cpus).context("possible CPUs")?;
    let pinned = match &opts.pin_dir {
        Some(d) => pinned_log_slots(d)?,
        None => None,
    };
    let slots = pinned.or(opts.log_slots).unwrap_or(m::LOG_SLOTS);
    if let (Some(p), Some(want)) = (pinned, opts.log_slots)
        && p != want
    {
        tracing::warn!(
            pinned = p,
            configured = want,
            "the event log keeps the size it was pinned with; `xdhcp detach` and attach again \
             to resize it"
        );
    }
    anyhow::ensure!(
        m::log_slots_valid(slots),
        "event log slots per CPU must be a power of two from {} to {}, not {slots}",
        m::LOG_SLOTS_MIN,
        m::LOG_SLOTS_MAX
    );
    loader.map_max_entries(m::LOG, cpus * slots).map_max_entries(m::LOG_CURSORS, cpus);
    // Required in this build's object; another build's (`bench fastpath --compare`) may
    // predate the global, and then indexes by the default size it was built with.
    let ours = std::ptr::eq(object.as_ptr(), OBJECT.as_ptr());
    loader.override_global(m::LOG_SLOTS_GLOBAL, &slots, ours);
    loader.load(object).context("load the XDP object (is this root, on kernel >= 5.18?)")
}

/// One program of the object, loaded (verified) unless it already is.
pub fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))?
        .try_into()?;
    if prog.fd().is_err() {
        prog.load().with_context(|| format!("verify and load {name}"))?;
    }
    Ok(prog)
}

/// The line between jiffies and `CLOCK_MONOTONIC` that XDP tells the time by (see
/// [`KernelClock`]), read by running [`CLOCK_PROG`] once, and written into the control entry
/// of `maps` (the object's).
pub fn set_kernel_clock(ebpf: &mut Ebpf, maps: &mut FastPathMaps) -> Result<KernelClock> {
    let clock = calibrate_clock(ebpf)?;
    maps.set_clock(clock)?;
    Ok(clock)
}

fn calibrate_clock(ebpf: &mut Ebpf) -> Result<KernelClock> {
    let tick_ns = clock::coarse_tick_ns()?;
    let prog = program(ebpf, CLOCK_PROG)?;
    // The shortest frame test_run takes is an Ethernet header; the program writes 16 bytes.
    let frame = [0u8; 64];
    let mut out = [0u8; 64];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .context("run the clock reading (BPF_PROG_TEST_RUN)")?;
    let word = |i: usize| u64::from_ne_bytes(out[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    let clock = KernelClock { base_jiffies: word(0), base_ns: word(1), tick_ns };
    // The kernel's coarse clock and ours must be one clock; a reading that is not (a kernel
    // whose helper reads another clock) would make every grant wrong.
    let ours = clock::coarse_ns();
    anyhow::ensure!(
        r.data_size_out as usize == frame.len()
            && clock.base_jiffies != 0
            && clock.base_ns <= ours
            && ours - clock.base_ns < 1_000_000_000,
        "the kernel's clock reading ({} jiffies at {} ns) does not match CLOCK_MONOTONIC_COARSE \
         here ({ours} ns)",
        clock.base_jiffies,
        clock.base_ns
    );
    // The bounds XDP applies, so that a clock it would refuse fails here, by name.
    anyhow::ensure!(
        clock.now_ns(clock.base_jiffies).is_some(),
        "the kernel's tick is {tick_ns} ns, longer than the fast path's clock takes"
    );
    Ok(clock)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// Native (driver) mode where the driver has it, else generic.
    Auto,
    Native,
    Generic,
}

#[derive(Debug)]
pub struct Attached {
    pub iface: String,
    pub mode: &'static str,
    /// False when a pinned link was already there and was adopted.
    pub new: bool,
    /// Taken before the pins were looked at: kept by a daemon for its lifetime, dropped by a
    /// command when it is done.
    pub writer: WriterLock,
}

/// Attaches the fast path to `iface` and pins it, or adopts what is already pinned there.
/// The control entry gets the interface's MAC; `enable` sets whether XDP answers.
/// `log_slots`: the event log's slots per CPU for maps made now (pinned ones keep theirs);
/// `leases_max` likewise the lease table's capacity (`None`: the object's, 1 M).
/// `wait`: how long to wait for the [`WriterLock`] of a writer on its way out.
pub fn attach(
    iface: &str,
    mode: AttachMode,
    enable: bool,
    log_slots: Option<u32>,
    leases_max: Option<u32>,
    wait: Duration,
) -> Result<Attached> {
    ensure_bpffs()?;
    let name = std::ffi::CString::new(iface).context("an interface name has no NUL")?;
    // SAFETY: if_nametoindex reads the NUL-terminated name and nothing else.
    if unsafe { libc::if_nametoindex(name.as_ptr()) } == 0 {
        bail!("interface {iface} does not exist (in this network namespace)");
    }
    let dir = pin_dir(iface);
    let fresh = !dir.exists();
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let writer = lock_writer(iface, wait)?;
    match attach_locked(iface, &dir, mode, enable, log_slots, leases_max) {
        Ok((mode_name, new)) => {
            Ok(Attached { iface: iface.to_owned(), mode: mode_name, new, writer })
        }
        Err(e) => {
            // A start that failed leaves nothing pinned: the lease array alone is tens of MB.
            if fresh {
                drop(writer);
                let _ = detach(iface);
            }
            Err(e)
        }
    }
}

fn attach_locked(
    iface: &str,
    dir: &Path,
    mode: AttachMode,
    enable: bool,
    log_slots: Option<u32>,
    leases_max: Option<u32>,
) -> Result<(&'static str, bool)> {
    let dir = dir.to_path_buf();
    check_pins(&dir, iface)?;
    let link_pin = dir.join("link");
    let mut ebpf = load(&LoadOptions { pin_dir: Some(dir.clone()), leases_max, log_slots })?;
    let (mode_name, new) = if link_pin.exists() {
        ("pinned", false)
    } else {
        let prog = program(&mut ebpf, PROG)?;
        let (id, name) = match mode {
            AttachMode::Native => (prog.attach(iface, XdpMode::Driver)?, "native"),
            AttachMode::Generic => (prog.attach(iface, XdpMode::Skb)?, "generic"),
            AttachMode::Auto => match prog.attach(iface, XdpMode::Driver) {
                Ok(id) => (id, "native"),
                Err(_) => (
                    prog.attach(iface, XdpMode::Skb)
                        .with_context(|| format!("attach XDP to {iface}"))?,
                    "generic",
                ),
            },
        };
        let link: FdLink = prog.take_link(id)?.try_into().context("XDP link is not a bpf_link")?;
        link.pin(&link_pin).with_context(|| format!("pin {}", link_pin.display()))?;
        let _ = fs::remove_file(dir.join("prog"));
        prog.pin(dir.join("prog")).context("pin the program")?;
        (name, true)
    };
    let mut maps = FastPathMaps::from_ebpf(&mut ebpf)?;
    set_kernel_clock(&mut ebpf, &mut maps)?;
    let mut ctl = maps.control()?;
    ctl.if_mac = interface_mac(iface)?;
    ctl.enabled = u32::from(enable);
    ctl.min_grant_secs = ctl.min_grant_secs.max(Control::MIN_GRANT_FLOOR);
    maps.set_control(ctl)?;
    Ok((mode_name, new))
}

/// The right to change one interface's fast-path maps, held for as long as this value lives.
///
/// One writer at a time: [`attach`] takes it, the daemon serving an interface keeps it for its
/// lifetime, and the commands that change the maps by hand (`xdhcp attach`, `lease`, `subnet`)
/// hold it for theirs. Two
/// writers would each place leases from their own view of the lease table's blocks (sharing
/// slots, or one giving back a block the other still uses) and overwrite each other's profiles.
/// It is an flock(2) on the pin directory ([`crate::dirlock`]). Readers (`maps dump`, `stats`)
/// take none.
pub type WriterLock = crate::dirlock::DirLock;

/// Takes [`WriterLock`] for `iface`, whose pin directory must exist, waiting up to `wait` for a
/// holder that is on its way out (a daemon being restarted).
pub fn lock_writer(iface: &str, wait: Duration) -> Result<WriterLock> {
    let dir = pin_dir(iface);
    lock_dir(&dir, wait).with_context(|| format!("the fast path of {iface}"))
}

fn lock_dir(dir: &Path, wait: Duration) -> Result<WriterLock> {
    match crate::dirlock::lock(dir, wait)? {
        crate::dirlock::Locked::Held(l) => Ok(l),
        crate::dirlock::Locked::Busy(holder) => bail!(
            "its maps are being changed by {holder}: one writer at a time, and the daemon \
             serving an interface owns its maps until it stops"
        ),
    }
}

/// Pins are adopted by name, so pins another build left (a map it had and this one has not, the
/// reverse, or one whose layout changed) would be mixed with this build's maps, and the program
/// would fail to load with only the verifier's word for why. All of this build's maps pinned,
/// each with the type, key and value of this build's definition, or none: anything else is
/// refused, with the way out. (Sizes may differ: the loader sets some at load time.)
fn check_pins(dir: &Path, iface: &str) -> Result<()> {
    let way_out = || {
        format!(
            "{} holds the pins of another xdhcp build: run `xdhcp detach --iface {iface}` once, \
             then attach again",
            dir.display()
        )
    };
    let (there, missing): (Vec<&str>, Vec<&str>) =
        MAP_NAMES.iter().copied().partition(|n| dir.join(n).exists());
    if there.is_empty() {
        return Ok(());
    }
    if !missing.is_empty() {
        bail!("{} ({} missing)", way_out(), missing.join(", "));
    }
    let object = aya_obj::Object::parse(OBJECT).context("parse the XDP object")?;
    let mut changed = Vec::new();
    for name in MAP_NAMES {
        let want = object.maps.get(name).with_context(|| format!("no map {name} in the object"))?;
        let path = dir.join(name);
        let have = aya::maps::MapInfo::from_pin(&path)
            .with_context(|| format!("{} is not a pinned map", path.display()))?;
        let have_type = have.map_type().map_or(u32::MAX, |t| t as u32);
        if (have_type, have.key_size(), have.value_size(), have.map_flags())
            != (want.map_type(), want.key_size(), want.value_size(), want.map_flags())
        {
            changed.push(name);
        }
    }
    if !changed.is_empty() {
        bail!("{} ({} laid out differently)", way_out(), changed.join(", "));
    }
    Ok(())
}

/// Where the do-nothing peer program of a lab's client side is pinned.
pub const PEER_PIN_ROOT: &str = "/sys/fs/bpf/xdhcp-peer";

/// The lab's client-side program: passes everything, or counts and drops a load run's renewal
/// ACKs while its pinned control entry says so (see `dhcp_common::PeerCtl`).
pub const PEER_PROG: &str = "xdhcp_peer";

/// Attaches [`PEER_PROG`] to `iface` and pins its link and maps: on a veth pair, frames our
/// fast path sends with `XDP_TX` only arrive at a peer that runs an XDP program of its own. For
/// labs and load tests, on the client side.
pub fn attach_peer(iface: &str) -> Result<()> {
    ensure_bpffs()?;
    let dir = Path::new(PEER_PIN_ROOT).join(iface);
    if dir.join("link").exists() {
        return Ok(());
    }
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut ebpf = load(&LoadOptions { leases_max: Some(1), ..LoadOptions::default() })?;
    for name in [m::PEER_CTL, m::PEER_ACKS] {
        ebpf.map(name)
            .with_context(|| format!("map {name} missing from the object"))?
            .pin(dir.join(name))
            .with_context(|| format!("pin {name}"))?;
    }
    let prog = program(&mut ebpf, PEER_PROG)?;
    let id = prog.attach(iface, XdpMode::Driver).or_else(|_| prog.attach(iface, XdpMode::Skb))?;
    let link: FdLink = prog.take_link(id)?.try_into().context("XDP link is not a bpf_link")?;
    link.pin(dir.join("link")).context("pin the peer link")?;
    Ok(())
}

/// The lab's ceiling: answers every DHCP request with the least work an answer takes (see
/// the program's own doc). Never attached in service.
pub const BOUNCE_PROG: &str = "xdhcp_bounce";

/// Attaches [`BOUNCE_PROG`] to `iface` in place of the fast path, its link pinned where
/// [`attach_peer`] pins (so [`detach`] removes it). For `cargo xtask bench e2e`'s ceiling row.
pub fn attach_bounce(iface: &str) -> Result<()> {
    ensure_bpffs()?;
    let dir = Path::new(PEER_PIN_ROOT).join(iface);
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut ebpf = load(&LoadOptions { leases_max: Some(1), ..LoadOptions::default() })?;
    let prog = program(&mut ebpf, BOUNCE_PROG)?;
    let id = prog.attach(iface, XdpMode::Driver).or_else(|_| prog.attach(iface, XdpMode::Skb))?;
    let link: FdLink = prog.take_link(id)?.try_into().context("XDP link is not a bpf_link")?;
    link.pin(dir.join("link")).context("pin the bounce link")?;
    Ok(())
}

/// Removes the fast path from `iface` for good: unpinning the link detaches the program, and the
/// maps go with their pins. Also removes a peer program attached with [`attach_peer`].
pub fn detach(iface: &str) -> Result<()> {
    let peer = Path::new(PEER_PIN_ROOT).join(iface);
    if peer.exists() {
        for entry in fs::read_dir(&peer)? {
            fs::remove_file(entry?.path())?;
        }
        fs::remove_dir(&peer)?;
        return Ok(());
    }
    let dir = pin_dir(iface);
    if !dir.exists() {
        bail!("nothing is pinned for {iface} under {}", dir.display());
    }
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        fs::remove_file(&path).with_context(|| format!("unpin {}", path.display()))?;
    }
    fs::remove_dir(&dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(())
}

/// Interfaces with a pinned fast path.
#[must_use]
pub fn pinned_interfaces() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(PIN_ROOT)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The interface's MAC, asked of the kernel in the calling thread's network namespace (sysfs
/// shows the namespace it was mounted in, which is not the one a test or `--netns` enters).
pub fn interface_mac(iface: &str) -> Result<[u8; 6]> {
    Ok(crate::packet_socket::interface_mac(iface)?)
}

/// Moves the calling thread into the named network namespace (`ip netns add NAME`), keeping
/// this process's mount namespace: pins under /sys/fs/bpf then outlive the process, which they
/// would not under `ip netns exec` (it mounts a private /sys).
pub fn enter_netns(name: &str) -> Result<()> {
    let path = Path::new("/run/netns").join(name);
    let f = fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
    // SAFETY: setns(2) with a namespace fd we hold open.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("enter network namespace {name}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Creates an ARRAY of one `value_size`-byte value and pins it at `path` (as an older build
    /// with another layout of that map would have).
    fn pin_array(path: &Path, value_size: u32) {
        use std::os::unix::ffi::OsStrExt as _;
        const BPF_MAP_CREATE: libc::c_long = 0;
        const BPF_OBJ_PIN: libc::c_long = 6;
        let mut attr = [0u8; 128];
        for (k, v) in [2u32, 4, value_size, 1].into_iter().enumerate() {
            attr[4 * k..4 * k + 4].copy_from_slice(&v.to_ne_bytes());
        }
        // SAFETY: the map-create attributes hold no pointers.
        let fd =
            unsafe { crate::bpf_sys::sys_bpf(BPF_MAP_CREATE, &mut attr) }.expect("create a map");
        let fd = libc::c_int::try_from(fd).expect("a descriptor is an int");
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let mut attr = [0u8; 128];
        attr[..8].copy_from_slice(&(name.as_ptr() as u64).to_ne_bytes());
        // bpf_attr carries the (nonnegative) descriptor as a __u32.
        attr[8..12].copy_from_slice(&fd.cast_unsigned().to_ne_bytes());
        // SAFETY: the path the attributes point to outlives the call.
        unsafe { crate::bpf_sys::sys_bpf(BPF_OBJ_PIN, &mut attr) }
            .unwrap_or_else(|e| panic!("pin {}: {e}", path.display()));
        // SAFETY: fd was returned above and is ours; the pin keeps the map.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn pins_of_another_build_are_refused_with_the_way_out() {
        let dir = std::env::temp_dir().join(format!("xdhcp-pins-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(check_pins(&dir, "eth9").is_ok(), "nothing pinned yet");
        // What a build before XDHCP_PAGES, XDHCP_BLOCKS and the event log left.
        for n in [m::LEASES, "XDHCP_SUBNETS", m::CONTROL, m::STATS, "XDHCP_EVENTS"] {
            fs::write(dir.join(n), b"").unwrap();
        }
        let err = check_pins(&dir, "eth9").unwrap_err().to_string();
        assert!(
            err.contains(
                "XDHCP_PAGES, XDHCP_BLOCKS, XDHCP_PROFILES, XDHCP_LOG, XDHCP_LOG_CURSORS, \
                 XDHCP_POLICIES, XDHCP_POLICY_OF, XDHCP_POLICED_MACS, XDHCP_POLICED_PORTS, \
                 XDHCP_POLICED_VLANS, XDHCP_POLICED_IFACE missing"
            ),
            "{err}"
        );
        assert!(err.contains("xdhcp detach --iface eth9"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A pin directory of the test's own, named after `what` and this process: beside
    /// `PIN_ROOT`, not in it, so nothing listing pinned interfaces sees it.
    fn scratch_pin_dir(what: &str) -> PathBuf {
        ensure_bpffs().unwrap();
        let dir = PathBuf::from(format!("{PIN_ROOT}-test-{what}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_writer_is_refused_and_told_who_holds_the_maps_until_the_first_lets_go() {
        let dir = scratch_pin_dir("lock");
        let first = lock_dir(&dir, Duration::ZERO).unwrap();
        // A second open of the directory is another lock holder, as another process would be.
        let started = Instant::now();
        let err = format!("{:#}", lock_dir(&dir, Duration::from_millis(200)).unwrap_err());
        let waited = started.elapsed();
        let named = lock_holder_named();
        drop(first);
        let again = lock_dir(&dir, Duration::ZERO).map(drop);
        fs::remove_dir_all(&dir).unwrap();
        assert!(again.is_ok(), "free once the first writer is gone: {again:?}");
        assert!(err.contains(&named), "{err}");
        assert!(err.contains("one writer at a time"), "{err}");
        assert!(waited >= Duration::from_millis(200), "gave up after {waited:?}");
        assert!(lock_dir(&dir, Duration::ZERO).is_err(), "no directory, no lock");
    }

    /// How the lock's holder is named: this process.
    fn lock_holder_named() -> String {
        let me = fs::read_to_string("/proc/self/comm").unwrap();
        format!("pid {} ({})", std::process::id(), me.trim())
    }

    #[test]
    fn a_block_found_in_pins_is_given_back_only_with_its_last_lease() {
        let dir = scratch_pin_dir("blocks");
        let (a, b) = (std::net::Ipv4Addr::new(10, 1, 0, 1), std::net::Ipv4Addr::new(10, 1, 0, 2));
        let entry = dhcp_common::LeaseEntry { lease_secs: 60, ..Default::default() };
        let run = || -> Result<_> {
            let opts =
                LoadOptions { pin_dir: Some(dir.clone()), leases_max: Some(1024), log_slots: None };
            let mut first = FastPathMaps::from_ebpf(&mut load(&opts)?)?;
            first.put_lease(a, &entry)?;
            first.put_lease(b, &entry)?;
            // Another process (a restarted daemon) opens the pins: the block's occupancy is
            // read from the map when its first lease goes, so the block stays for b.
            let mut later = FastPathMaps::open_pinned(&dir)?;
            later.delete_lease(a)?;
            let kept = (later.slot(b).is_some(), later.lease(b).is_some());
            later.delete_lease(b)?;
            let freed = (later.slot(b), FastPathMaps::open_pinned(&dir)?.slot(b));
            Ok((kept, freed))
        };
        let r = run();
        fs::remove_dir_all(&dir).unwrap();
        let (kept, freed) = r.unwrap();
        assert_eq!(kept, (true, true));
        assert_eq!(freed, (None, None), "the block and its page are gone from the maps too");
    }

    #[test]
    fn a_pinned_event_log_keeps_its_size_when_a_later_load_asks_for_another() {
        let dir = scratch_pin_dir("logsize");
        let opts = |log_slots| LoadOptions {
            pin_dir: Some(dir.clone()),
            leases_max: Some(1),
            log_slots: Some(log_slots),
        };
        let first = load(&opts(2048)).map(drop);
        // A later load asking for another size adopts the pins as they are (its program is
        // given their size, the one it must index them by).
        let second =
            load(&opts(8192)).and_then(|mut e| Ok(eventlog::EventLog::from_ebpf(&mut e)?.slots()));
        let pinned = pinned_log_slots(&dir);
        // No pins, no size from them; a size out of bounds is refused before anything is made.
        let none = pinned_log_slots(&dir.join("nothing"));
        let tiny = load(&LoadOptions { log_slots: Some(512), ..LoadOptions::default() }).map(drop);
        fs::remove_dir_all(&dir).unwrap();
        first.unwrap();
        assert_eq!(second.unwrap(), 2048);
        assert_eq!(pinned.unwrap(), Some(2048));
        assert_eq!(none.unwrap(), None);
        let e = format!("{:#}", tiny.unwrap_err());
        assert!(e.contains("power of two from 1024 to 1048576, not 512"), "{e}");
    }

    #[test]
    fn the_lease_table_is_made_at_the_capacity_asked_and_keeps_it_once_pinned() {
        let dir = scratch_pin_dir("capacity");
        let opts =
            |n| LoadOptions { pin_dir: Some(dir.clone()), leases_max: Some(n), log_slots: None };
        let entry = dhcp_common::LeaseEntry { lease_secs: 60, ..Default::default() };
        let run = || -> Result<_> {
            // 300 asked is two /24 blocks' worth of slots: 512.
            let mut first = FastPathMaps::from_ebpf(&mut load(&opts(300))?)?;
            let made = first.leases.len();
            // Two /24s fill both blocks; a third /24 finds no room (the slow path answers).
            let put = |m: &mut FastPathMaps, net: u8| {
                m.put_lease(std::net::Ipv4Addr::new(10, 9, net, 1), &entry)
            };
            put(&mut first, 0)?;
            put(&mut first, 1)?;
            let third = put(&mut first, 2).map_err(|e| format!("{e:#}"));
            // A later load asking for more adopts the pinned table as it is, and reads back
            // (through its mapping) exactly the two leases.
            let later = FastPathMaps::open_pinned(&dir)?;
            let listed: Vec<_> =
                later.leases()?.into_iter().map(|(a, e)| (a, e.lease_secs)).collect();
            let later = FastPathMaps::from_ebpf(&mut load(&opts(4096))?)?.leases.len();
            Ok((made, third, later, listed))
        };
        let r = run();
        fs::remove_dir_all(&dir).unwrap();
        let (made, third, later, listed) = r.unwrap();
        let net = |n| std::net::Ipv4Addr::new(10, 9, n, 1);
        assert_eq!(listed, [(net(0), 60), (net(1), 60)]);
        assert_eq!(made, 512);
        assert!(third.unwrap_err().contains("no room for 10.9.2.1"));
        assert_eq!(later, 512);
    }

    #[test]
    fn pins_of_this_build_are_adopted_and_a_map_laid_out_differently_is_refused() {
        let dir = scratch_pin_dir("layout");
        // This build's maps, pinned by loading the object (a small lease table).
        drop(
            load(&LoadOptions { pin_dir: Some(dir.clone()), leases_max: Some(1), log_slots: None })
                .unwrap(),
        );
        let checked = check_pins(&dir, "eth9");
        // A control entry of another size, as a build with another `Control` would leave.
        fs::remove_file(dir.join(m::CONTROL)).unwrap();
        pin_array(&dir.join(m::CONTROL), 8);
        let err = check_pins(&dir, "eth9").map_err(|e| e.to_string());
        fs::remove_dir_all(&dir).unwrap();
        assert!(checked.is_ok(), "{checked:?}");
        let err = err.unwrap_err();
        assert!(err.contains("XDHCP_CONTROL laid out differently"), "{err}");
        assert!(err.contains("xdhcp detach --iface eth9"), "{err}");
    }
}

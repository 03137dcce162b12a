//! `xdhcp-lab bench fastpath`: the XDP program timed by the kernel through `BPF_PROG_TEST_RUN`.
//!
//! `test_run` hands every repetition the previous one's output, so a naive run times one renewal
//! and then our own ACK exiting early. `xdhcp_bench` restores the request first (and moves to
//! the next client), `xdhcp_bench_restore` does only that, and the difference is the renewal.
//! The ACK counter must equal the repetitions, or the figure is refused.
use std::{
    net::Ipv4Addr,
    os::fd::{AsFd as _, AsRawFd as _},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context as _, Result, ensure};
use aya::maps::{Array, IterableMap as _};
use dhcp_common::{
    BenchFrame, Control, LeaseEntry, Stat, bootp,
    maps::{BENCH, BENCH_FRAME_MAX},
};
use serde::Serialize;

use xdhcp::{
    fastpath::{
        self, clock,
        police::{Plan, PoliceMaps},
        subnet::SubnetOptions,
    },
    packet::{RenewKind, Renewal},
};

use crate::testrun::{Harness, XDP_PASS, XDP_TX};

const BENCH_PROG: &str = "xdhcp_bench";
const RESTORE_PROG: &str = "xdhcp_bench_restore";
const RESIZE_PROG: &str = "xdhcp_bench_resize";
const TOUCH_PROG: &str = "xdhcp_bench_touch";
const CLOCK_CALL_PROG: &str = "xdhcp_bench_clock_call";
const CLOCK_JIFFIES_PROG: &str = "xdhcp_bench_clock_jiffies";
const CHECK_PROG: &str = "xdhcp_bench_check";
const CHECK_COUNTED_PROG: &str = "xdhcp_bench_check_counted";
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER_MAC: [u8; 6] = [2, 0xff, 0, 0, 0, 1];
/// Clients are 10.16.0.0 + i: room for 1 M of them.
const BASE: Ipv4Addr = Ipv4Addr::new(10, 16, 0, 0);
/// Where no lease is: the policed DISCOVERs of new clients are "about" addresses from here.
const UNLEASED: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 0);
/// The client of `ns_per_renewal_class`, past the million, its lease naming [`CLASS_PROFILE`].
const CLASS_CLIENT: u32 = MILLION;
const CLASS_PROFILE: u32 = 1;

/// The bench subnet's options.
fn subnet() -> SubnetOptions {
    SubnetOptions {
        server_id: SERVER,
        mask: Ipv4Addr::new(255, 240, 0, 0),
        routers: vec![SERVER],
        dns: vec![SERVER],
        domain: Some("bench.example".into()),
        t1_secs: 1800,
        t2_secs: 3150,
        extra: vec![],
    }
}

/// The subnet's options with a client class's: NTP servers, vendor options, TFTP server and
/// boot file, seven classless routes; 200 bytes of options in all (the long block).
fn class_profile() -> SubnetOptions {
    let routes: Vec<u8> = (0..7u8).flat_map(|i| [24, 10, 32 + i, 0, 10, 0, 0, 1]).collect();
    SubnetOptions {
        extra: vec![
            (42, vec![10, 0, 0, 123, 10, 0, 0, 124]),
            (43, (0..42).collect()),
            (66, b"tftp.bench.example".to_vec()),
            (67, b"pxelinux/x86_64/grubx64.efi".to_vec()),
            (121, routes),
        ],
        ..subnet()
    }
}

#[derive(Debug, Serialize)]
pub struct FastpathReport {
    /// Mean ns per renewal, one lease, net of the restore step (events on: the chosen design).
    pub ns_per_renewal: f64,
    /// Same, with the renewing client varying across 1,000,000 leases.
    pub ns_per_renewal_1m: f64,
    /// One lease, the request a full 576-byte IP packet (`layout::FULL_IP_LEN`), events on.
    pub ns_per_renewal_576: f64,
    /// One lease, events on, the request carrying 20 bytes of option 82 (circuit-id and
    /// remote-id, as an access node adds them): matched against the lease's and echoed.
    pub ns_per_renewal_opt82: f64,
    /// What option 82 adds: the median over rounds of each round's `ns_per_renewal_opt82` less
    /// its `ns_per_renewal` (the two timed within a second of each other), steadier on these
    /// hosts than the difference of the two medians.
    pub ns_opt82_over_renewal: f64,
    /// One lease, events on, whose reply profile is a client class's: a 200-byte option block
    /// (the long one, `ReplyProfile::F_LONG`), in a 532-byte ACK.
    pub ns_per_renewal_class: f64,
    /// What the class's long block adds: the median over rounds of each round's
    /// `ns_per_renewal_class` less its `ns_per_renewal`, as `ns_opt82_over_renewal`.
    pub ns_class_over_renewal: f64,
    /// `ns_per_renewal_class` over `ns_per_renewal` (medians).
    pub class_to_renewal_ratio: f64,
    /// One lease, events off (in-place stamp only): what the event costs.
    pub ns_per_renewal_stamp_only: f64,
    pub ns_per_renewal_1m_stamp_only: f64,
    /// A trivial `XDP_PASS` program.
    pub ns_floor: f64,
    /// A non-DHCP UDP frame through our program.
    pub ns_non_dhcp: f64,
    /// A DISCOVER with option 82 through our program, passed: policing off; policing on (its
    /// MAC, port and interface buckets charged, rates far above the run's, so it passes), one
    /// client; and policing on with a new client (MAC, and so a bucket inserted into a full
    /// LRU map) every time, as in a random-MAC flood, net of the restore step that varies it.
    /// NaN for another build without policing.
    pub ns_per_discover: f64,
    pub ns_per_discover_policed: f64,
    pub ns_per_discover_policed_new_mac: f64,
    /// The restore step (one client / 1 M clients), already subtracted above: the mean of
    /// restoring without resizing and restoring with a shrink and a grow, since the timed
    /// renewal's restore shrinks the previous ACK once.
    pub ns_restore: f64,
    pub ns_restore_1m: f64,
    /// This host's yardstick for the 1 M figure: one dependent load at a random place in a
    /// 64 MiB table of 4 KiB pages (the size of the 1 M-slot lease array, paged as the kernel
    /// pages it), timed by a pointer chase in userspace. A renewal over 1 M leases makes one
    /// such access, so `ns_per_renewal_1m` cannot be below `ns_per_renewal` plus this.
    pub ns_random_access_64m: f64,
    /// The same access made by the kernel: a restore step that also finds the client's slot
    /// among 1 M leases and loads its first word, net of the restore alone. The part of
    /// `ns_per_renewal_1m` over `ns_per_renewal` that is not the program's own.
    pub ns_lease_touch_1m: f64,
    /// Telling the time, over the floor: the `bpf_ktime_get_coarse_ns` helper call the renewal
    /// made before, and jiffies on the control entry's line (`KernelClock`), which it makes now.
    pub ns_clock_call: f64,
    pub ns_clock_jiffies: f64,
    /// Over the floor, what `ns_non_dhcp` is made of: the short check that tells a frame
    /// plainly not DHCP apart, alone (`ns_check`) and with the outcome's per-CPU counter
    /// (`ns_check_counted`), each in a program of its own that saves no registers.
    pub ns_check: f64,
    pub ns_check_counted: f64,
    /// ACKs counted by the program over all timed renewal runs; equals the repetitions.
    pub acks_counted: u64,
    pub repeat: u32,
    /// Median of this many runs for every figure.
    pub runs: usize,
    pub verified_insns: u32,
    /// Kernel memory of the 1 M-entry lease map (memlock from fdinfo).
    pub map_bytes_1m: u64,
    pub kernel: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn request(i: u32) -> Renewal {
    let mac = BenchFrame::client_mac(i);
    let mut id = vec![1];
    id.extend_from_slice(&mac);
    Renewal {
        xid: 0x00be_0c4e,
        chaddr: mac,
        ciaddr: Ipv4Addr::from(u32::from(BASE) + i),
        client_id: Some(id),
        kind: RenewKind::Renewing,
        server: SERVER,
        server_mac: SERVER_MAC,
        vlans: vec![],
        relay_info: None,
    }
}

/// The option 82 of `ns_per_renewal_opt82`: a 12-byte circuit-id and a 4-byte remote-id, 20
/// bytes with their headers. Every lease has it on record (renewals without it are answered
/// all the same).
fn opt82() -> Vec<u8> {
    xdhcp::relay::encode(&[
        (xdhcp::relay::CIRCUIT_ID, b"eth 1/1/3:10"),
        (xdhcp::relay::REMOTE_ID, b"cpe1"),
    ])
}

/// Client 0's DISCOVER (its MAC and client identifier, option 82) about `ciaddr`: 0, as a
/// DISCOVER has it, or an address with no lease, which the restore step varies with the MAC.
fn discover(ciaddr: Ipv4Addr) -> Vec<u8> {
    Renewal { ciaddr, ..request_opt82(0) }.frame_as(dhcproto::v4::MessageType::Discover, None)
}

/// Client `i`'s renewal as an access node passes it on: option 82 added last.
fn request_opt82(i: u32) -> Renewal {
    Renewal { relay_info: Some(opt82()), ..request(i) }
}

fn entry(i: u32, now: u64) -> LeaseEntry {
    let r = request(i);
    let d = dhcp_common::digest::client_id(r.client_id.as_deref().unwrap_or_default());
    LeaseEntry {
        grant_until_ns: clock::grant_until_ns(now, 86_400),
        client_id_digest: d.unwrap_or(0),
        relay_digest: dhcp_common::digest::relay_info(&opt82()).unwrap_or(0),
        renewed_at_ns: 0,
        lease_secs: 3600,
        profile: 0,
        flags: LeaseEntry::F_CLIENT_ID | LeaseEntry::F_RELAY_INFO,
        renewed_secs: 0,
        chaddr: r.chaddr,
        ..Default::default()
    }
}

/// A step near the golden section of `clients` that is coprime with it: successive renewals
/// hit leases about 0.62 of the map apart, and every lease once a lap.
fn stride(clients: u32) -> u32 {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "0.62 of a u32: nonnegative and below u32::MAX"
    )]
    let mut s = ((f64::from(clients) * 0.618_034) as u32).max(1);
    while gcd(s, clients.max(1)) != 1 {
        s += 1;
    }
    s
}

/// Client `i`'s renewal with its BOOTP message zero-padded to `bootp_len` bytes.
fn padded_request(i: u32, bootp_len: usize) -> Vec<u8> {
    let r = request(i);
    let mut payload = xdhcp::packet::encode(&r.message());
    payload.resize(bootp_len, 0);
    r.frame_with(&payload)
}

/// The client whose renewal `f` is: its ciaddr less [`BASE`].
fn client_of(f: &[u8]) -> u32 {
    let at = bootp::ETH_HLEN + bootp::IPV4_HLEN + bootp::UDP_HLEN + bootp::CIADDR;
    u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]]).wrapping_sub(u32::from(BASE))
}

/// The frame to restore, with the offsets the program patches per client (from client 0, when
/// `clients` > 1); `ack_len` is the
/// length of the ACK the restore turns back into the request.
fn bench_frame(f: &[u8], clients: u32, ack_len: usize) -> Result<BenchFrame> {
    ensure!(f.len() <= BENCH_FRAME_MAX, "request frame too long");
    let bootp_at = bootp::ETH_HLEN + bootp::IPV4_HLEN + bootp::UDP_HLEN;
    let mac = BenchFrame::client_mac(if clients > 1 { 0 } else { client_of(f) });
    let opts = bootp_at + bootp::OPTIONS;
    // The MAC inside option 61 (after code, length and type byte).
    let id_at = opts
        + f[opts..]
            .windows(3)
            .position(|w| w == [bootp::OPT_CLIENT_ID, 7, 1])
            .context("no option 61")?
        + 3;
    ensure!(f[id_at..id_at + 6] == mac);
    let mut frame = [0u8; BENCH_FRAME_MAX];
    frame[..f.len()].copy_from_slice(f);
    Ok(BenchFrame {
        len: u32::try_from(f.len())?,
        clients,
        counter: 0,
        ciaddr_off: u32::try_from(bootp_at + bootp::CIADDR)?,
        chaddr_off: u32::try_from(bootp_at + bootp::CHADDR)?,
        client_id_mac_off: u32::try_from(id_at)?,
        base_addr: u32::from(BASE),
        ack_len: u32::try_from(ack_len)?,
        stride: stride(clients),
        frame,
    })
}

/// Consumes logged events on another thread while the kernel times renewals, as the daemon
/// would; a full log would otherwise turn ACKs into passes.
struct Drainer {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<xdhcp::fastpath::eventlog::EventLog>>,
}

impl Drainer {
    fn start(mut events: xdhcp::fastpath::eventlog::EventLog) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut buf = Vec::with_capacity(4096);
            loop {
                let done = s.load(Ordering::Acquire);
                events.drain(&mut buf);
                buf.clear();
                if done {
                    return events;
                }
                // As the daemon does: drain on a short timer. Spinning here would steal the
                // core (or hyperthread) the kernel is timing on.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        Self { stop, handle: Some(handle) }
    }

    fn stop(mut self) -> xdhcp::fastpath::eventlog::EventLog {
        self.stop.store(true, Ordering::Release);
        self.handle.take().expect("started").join().expect("drainer thread")
    }
}

pub struct Bench {
    h: Harness,
    /// `None` in another build's object from before policing.
    police: Option<PoliceMaps>,
    frames: Array<aya::maps::MapData, BenchFrame>,
    /// A UDP/53 frame: the floor's and the non-DHCP figure's input.
    dns: Vec<u8>,
    repeat: u32,
    acks: u64,
}

impl Bench {
    fn new(object: &[u8], repeat: u32) -> Result<Self> {
        let mut h = Harness::with_object(
            object,
            1 << 20,
            &[fastpath::PROG, fastpath::PASS_PROG, BENCH_PROG, RESTORE_PROG, RESIZE_PROG],
        )?;
        let ctl = h.maps.control()?;
        h.maps.set_control(Control {
            enabled: 1,
            flags: Control::F_EVENTS,
            min_grant_secs: 60,
            if_mac: SERVER_MAC,
            ..ctl
        })?;
        h.maps.set_profile(0, &subnet().encode()?)?;
        // Another build's object from before the profiles has no room for it (its
        // `ns_per_renewal_class` is not timed).
        if h.maps.has_profiles() {
            let class = class_profile().encode()?;
            let used = class.opts.iter().rposition(|b| *b == bootp::OPT_END);
            ensure!(class.block_len() > 96 && used == Some(200), "a 200-byte class profile");
            h.maps.set_profile(CLASS_PROFILE, &class)?;
        }
        let frames = h.take_map(BENCH)?.try_into()?;
        let mut dns = request(0).frame();
        let udp = bootp::ETH_HLEN + bootp::IPV4_HLEN;
        dns[udp + 2..udp + 4].copy_from_slice(&53u16.to_be_bytes());
        let police = h.police().ok();
        Ok(Self { h, police, frames, dns, repeat, acks: 0 })
    }

    fn set_clients(&mut self, clients: u32) -> Result<()> {
        let ack_len = bootp::ETH_HLEN + dhcp_common::layout::IP_LEN;
        Ok(self.frames.set(0, bench_frame(&request(0).frame(), clients, ack_len)?, 0)?)
    }

    fn events(&mut self, on: bool) -> Result<()> {
        let mut c = self.h.maps.control()?;
        c.flags = if on { c.flags | Control::F_EVENTS } else { c.flags & !Control::F_EVENTS };
        self.h.maps.set_control(c)
    }

    /// Mean ns per repetition of `prog` over `frame`, checking the verdict.
    fn time(&mut self, prog: &str, frame: &[u8], want: u32) -> Result<f64> {
        let (ret, ns) = self.h.time(prog, frame, self.repeat)?;
        ensure!(ret == want, "{prog} returned {ret}, expected {want}");
        Ok(ns)
    }

    /// Over `clients` leases: the slot lookup and first load of each renewing client's lease,
    /// net of the restore step that picks the client (both restore without resizing).
    fn lease_touch_ns(&mut self, clients: u32) -> Result<f64> {
        self.set_clients(clients)?;
        let f = request(0).frame();
        let touch = self.time(TOUCH_PROG, &f, XDP_PASS)?;
        Ok(touch - self.time(RESTORE_PROG, &f, XDP_PASS)?)
    }

    /// Each program's time on the non-DHCP frame, net of the floor timed just before them.
    fn over_floor<const N: usize>(&mut self, progs: [&str; N]) -> Result<[f64; N]> {
        let dns = self.dns.clone();
        let floor = self.time(fastpath::PASS_PROG, &dns, XDP_PASS)?;
        let mut r = [0.0; N];
        for (r, prog) in r.iter_mut().zip(progs) {
            *r = self.time(prog, &dns, XDP_PASS)? - floor;
        }
        Ok(r)
    }

    /// The restore step as the timed run takes it: `resized`, the mean of restoring without a
    /// resize and with one undone and redone (the timed run undoes the ACK's once); else the
    /// first alone.
    fn time_restore(&mut self, f: &[u8], resized: bool) -> Result<f64> {
        let plain = self.time(RESTORE_PROG, f, XDP_PASS)?;
        if !resized {
            return Ok(plain);
        }
        Ok(plain.midpoint(self.time(RESIZE_PROG, f, XDP_PASS)?))
    }

    /// `ns_per_discover`, `ns_per_discover_policed`, `ns_per_discover_policed_new_mac`.
    fn discover_figures(&mut self) -> Result<[f64; 3]> {
        use dhcp_common::police::{Policy, Rate};
        if self.police.is_none() {
            return Ok([f64::NAN; 3]);
        }
        let off = Plan {
            interface: Rate::default(),
            policies: vec![Policy::default()],
            prefixes: vec![],
        };
        let fast = Rate::new(100_000_000, u32::MAX);
        let on = Plan {
            interface: fast,
            policies: vec![Policy { mac: fast, port: fast, vlan: fast }],
            prefixes: vec![],
        };
        let f = discover(Ipv4Addr::UNSPECIFIED);
        self.set_police(&off)?;
        let unpoliced = self.time(fastpath::PROG, &f, XDP_PASS)?;
        self.set_police(&on)?;
        let policed = self.time(fastpath::PROG, &f, XDP_PASS)?;
        let g = discover(UNLEASED);
        let mut bf = bench_frame(&g, MILLION, g.len())?;
        bf.base_addr = u32::from(UNLEASED);
        self.frames.set(0, bf, 0)?;
        let restore = self.time_restore(&g, false)?;
        let new_mac = self.time(BENCH_PROG, &g, XDP_PASS)? - restore;
        self.set_police(&off)?;
        Ok([unpoliced, policed, new_mac])
    }

    fn set_police(&mut self, plan: &Plan) -> Result<()> {
        self.police.as_mut().context("no policing maps")?.set(plan)
    }

    /// One lease, a request with option 82, events on, net of the restore.
    fn opt82_renewal(&mut self) -> Result<f64> {
        let f = request_opt82(0).frame();
        ensure!(f.len() - request(0).frame().len() == 0, "option 82 fits the padding");
        self.renewal_of(&f)
    }

    /// One lease whose profile is the class's long block, events on, net of the restore;
    /// NaN for another build without profiles.
    fn class_renewal(&mut self) -> Result<f64> {
        if !self.h.maps.has_profiles() {
            return Ok(f64::NAN);
        }
        self.renewal_of(&request(CLASS_CLIENT).frame())
    }

    /// One lease, a full-size request (576-byte IP), events on, net of the restore.
    fn full_size_renewal(&mut self) -> Result<f64> {
        self.renewal_of(&padded_request(0, dhcp_common::layout::FULL_BOOTP_LEN))
    }

    /// One lease renewed with `f`, events on, net of the restore step as the timed run takes
    /// it: with a resize only where this build's ACK is not the request's length (a build
    /// before `layout::FULL_IP_LEN` shrank the full-size request).
    fn renewal_of(&mut self, f: &[u8]) -> Result<f64> {
        let (ret, ack) = self.h.run(f)?;
        ensure!(ret == XDP_TX, "the request was not answered ({ret})");
        self.frames.set(0, bench_frame(f, 1, ack.len())?, 0)?;
        let restore = self.time_restore(f, ack.len() != f.len())?;
        self.events(true)?;
        Ok(self.time_renewals(f)? - restore)
    }

    /// Over `clients` leases: the restore step, and renewals net of it with events on and off.
    fn renewal_figures(&mut self, clients: u32) -> Result<[f64; 3]> {
        self.set_clients(clients)?;
        let frame = request(0).frame();
        let restore = self.time_restore(&frame, true)?;
        self.events(true)?;
        let with_events = self.time_renewals(&frame)? - restore;
        self.events(false)?;
        let stamp_only = self.time_renewals(&frame)? - restore;
        Ok([restore, with_events, stamp_only])
    }

    /// Mean ns per full renewal (restore included); every repetition must be an ACK.
    fn time_renewals(&mut self, frame: &[u8]) -> Result<f64> {
        let before = self.h.maps.stats()?.get(Stat::Ack);
        let drainer = Drainer::start(self.h.events.take().context("events lent out")?);
        let r = self.h.time(BENCH_PROG, frame, self.repeat);
        let events = drainer.stop();
        self.h.events = Some(events);
        let (ret, ns) = r?;
        ensure!(
            ret == XDP_TX,
            "bench program returned {ret}: {:?}",
            self.h.maps.stats()?.to_json()
        );
        let acks = self.h.maps.stats()?.get(Stat::Ack) - before;
        ensure!(
            acks == u64::from(self.repeat),
            "{acks} ACKs for {} repetitions: not every timed run was a renewal ({:?})",
            self.repeat,
            self.h.maps.stats()?.to_json()
        );
        self.acks += acks;
        Ok(ns)
    }
}

/// Mean ns per step of a pointer chase through a random cycle over `bytes` of 4 KiB pages, one
/// 64-byte line per step.
fn random_access_ns(bytes: usize) -> Result<f64> {
    const LINE: usize = 64;
    let lines = bytes / LINE;
    // SAFETY: a private anonymous mapping, unmapped below; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    ensure!(base != libc::MAP_FAILED, "mmap {bytes} bytes: {}", std::io::Error::last_os_error());
    // Small pages, as vmalloc gives the kernel's array (transparent huge pages would hide the
    // TLB misses the kernel takes).
    // SAFETY: advice on the mapping just made, `bytes` long; it changes no contents.
    unsafe { libc::madvise(base, bytes, libc::MADV_NOHUGEPAGE) };
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "mmap returns a page-aligned base and every line starts a multiple of 64 on"
    )]
    // SAFETY: callers pass i < lines, so the line lies inside the mapping.
    let at = |i: usize| unsafe { base.cast::<u8>().add(i * LINE).cast::<usize>() };
    // Sattolo's algorithm: a random permutation that is one single cycle.
    let mut order: Vec<usize> = (0..lines).collect();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        #[expect(clippy::cast_possible_truncation, reason = "x % i is below i, a usize")]
        let j = (x % i as u64) as usize;
        order.swap(i, j);
    }
    for (i, &line) in order.iter().enumerate() {
        // SAFETY: `line` < lines, so at(line) is an aligned usize inside the mapping.
        unsafe { at(line).write(at(order[(i + 1) % lines]) as usize) };
    }
    let steps = 4 * lines;
    let mut p = at(order[0]) as usize;
    let t = std::time::Instant::now();
    for _ in 0..steps {
        // SAFETY: p is always the address of a line of the mapping, each written above.
        p = unsafe { *(p as *const usize) };
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "a chase of seconds: ns and steps far below 2^52"
    )]
    let ns = t.elapsed().as_nanos() as f64 / steps as f64;
    std::hint::black_box(p);
    // SAFETY: the mapping made above, `bytes` long; nothing refers to it past this point.
    unsafe { libc::munmap(base, bytes) };
    Ok(ns)
}

/// The figures one round times, in this order (`ns_restore*` are subtracted from the renewals
/// timed with them).
const ROUND_FIGURES: [&str; FIGURES] = [
    "ns_floor",
    "ns_non_dhcp",
    "ns_restore",
    "ns_per_renewal",
    "ns_per_renewal_stamp_only",
    "ns_per_renewal_576",
    "ns_per_renewal_opt82",
    "ns_per_renewal_class",
    "ns_restore_1m",
    "ns_per_renewal_1m",
    "ns_per_renewal_1m_stamp_only",
];

impl Bench {
    /// With `leases` installed (clients 0..leases), from our object or another build's.
    fn loaded(object: &[u8], repeat: u32, leases: u32) -> Result<Self> {
        let mut b = Self::new(object, repeat)?;
        let now = clock::monotonic_ns();
        for i in 0..leases {
            b.h.maps.put_lease(Ipv4Addr::from(u32::from(BASE) + i), &entry(i, now))?;
        }
        let class = LeaseEntry { profile: CLASS_PROFILE, ..entry(CLASS_CLIENT, now) };
        b.h.maps.put_lease(Ipv4Addr::from(u32::from(BASE) + CLASS_CLIENT), &class)?;
        Ok(b)
    }

    /// Every figure once (`quick`: the 1 M-lease ones stay 0), as [`ROUND_FIGURES`] names them.
    fn round(&mut self, quick: bool) -> Result<Round> {
        let mut r = [0.0; FIGURES];
        for g in 0..GROUPS {
            self.group(g, quick, &mut r)?;
        }
        Ok(r)
    }

    /// Times group `g` of a round's figures into their places in `r`: the floor, non-DHCP, one
    /// lease (restore, both renewals, a full-size request, option 82, a class's profile), 1 M
    /// leases (restore and both renewals; skipped when `quick`).
    fn group(&mut self, g: usize, quick: bool, r: &mut Round) -> Result<()> {
        let dns = self.dns.clone();
        match g {
            0 => r[0] = self.time(fastpath::PASS_PROG, &dns, XDP_PASS)?,
            1 => r[1] = self.time(fastpath::PROG, &dns, XDP_PASS)?,
            2 => {
                r[2..5].copy_from_slice(&self.renewal_figures(1)?);
                r[5] = self.full_size_renewal()?;
                r[6] = self.opt82_renewal()?;
                r[7] = self.class_renewal()?;
            }
            _ if !quick => r[QUICK_FIGURES..].copy_from_slice(&self.renewal_figures(MILLION)?),
            _ => {}
        }
        Ok(())
    }
}

const GROUPS: usize = 4;
/// The figures of a `quick` round: all but the 1 M-lease ones, which come last.
const QUICK_FIGURES: usize = 8;
const FIGURES: usize = 11;
type Round = [f64; FIGURES];

const MILLION: u32 = 1_000_000;

fn column<const N: usize>(rounds: &[[f64; N]], k: usize) -> Vec<f64> {
    rounds.iter().map(|r| r[k]).collect()
}

/// `quick` skips the 1 M-lease figures (development only; they are then 0).
pub fn fastpath(repeat: u32, runs: usize, quick: bool) -> Result<FastpathReport> {
    let mut b = Bench::loaded(fastpath::OBJECT, repeat, if quick { 1 } else { MILLION })?;
    // Every round times every figure once, and each figure is the median over rounds: the
    // host behind these VMs has slow spells lasting seconds, which would otherwise land on
    // whichever figure was being timed and skew the comparisons between figures. Renewals are
    // paired with the restore step timed in the same round.
    let mut rounds = Vec::new();
    let (mut random, mut touch, mut parts) = (Vec::new(), Vec::new(), Vec::new());
    let mut discovers = Vec::new();
    for _ in 0..runs {
        rounds.push(b.round(quick)?);
        if std::env::var_os("XDHCP_BENCH_ROUNDS").is_some()
            && let Some(r) = rounds.last()
        {
            eprintln!("round: {r:?}");
        }
        // The two ways to tell the time, and the parts of the non-DHCP figure.
        parts.push(b.over_floor([
            CLOCK_CALL_PROG,
            CLOCK_JIFFIES_PROG,
            CHECK_PROG,
            CHECK_COUNTED_PROG,
        ])?);
        discovers.push(b.discover_figures()?);
        if !quick {
            random.push(random_access_ns(64 << 20)?);
            touch.push(b.lease_touch_ns(MILLION)?);
        }
    }
    let med = |k: usize| median(column(&rounds, k));
    let [floor, non_dhcp, restore, one, stamp, full, opt82, class, restore_m, m, m_stamp] =
        std::array::from_fn(med);

    let memlock = |fd: std::os::fd::RawFd| -> Result<u64> {
        let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
        Ok(fdinfo
            .lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    };
    let map_bytes_1m = memlock(b.h.maps.leases.map().fd().as_fd().as_raw_fd())?
        + memlock(b.h.maps.pages.map().fd().as_fd().as_raw_fd())?
        + memlock(b.h.maps.blocks.map().fd().as_fd().as_raw_fd())?;
    let verified_insns = b.h.info(fastpath::PROG)?.verified_instruction_count().unwrap_or(0);
    Ok(FastpathReport {
        ns_per_renewal: one,
        ns_per_renewal_1m: m,
        ns_per_renewal_576: full,
        ns_per_renewal_opt82: opt82,
        ns_opt82_over_renewal: median(rounds.iter().map(|r| r[6] - r[3]).collect()),
        ns_per_renewal_class: class,
        ns_class_over_renewal: median(rounds.iter().map(|r| r[7] - r[3]).collect()),
        class_to_renewal_ratio: class / one,
        ns_per_renewal_stamp_only: stamp,
        ns_per_renewal_1m_stamp_only: m_stamp,
        ns_floor: floor,
        ns_non_dhcp: non_dhcp,
        ns_per_discover: median(column(&discovers, 0)),
        ns_per_discover_policed: median(column(&discovers, 1)),
        ns_per_discover_policed_new_mac: median(column(&discovers, 2)),
        ns_restore: restore,
        ns_restore_1m: restore_m,
        ns_random_access_64m: if random.is_empty() { 0.0 } else { median(random) },
        ns_lease_touch_1m: if touch.is_empty() { 0.0 } else { median(touch) },
        ns_clock_call: median(column(&parts, 0)),
        ns_clock_jiffies: median(column(&parts, 1)),
        ns_check: median(column(&parts, 2)),
        ns_check_counted: median(column(&parts, 3)),
        acks_counted: b.acks,
        repeat,
        runs,
        verified_insns,
        map_bytes_1m,
        kernel: kernel(),
    })
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned()
}

/// One figure of `xdhcp-lab bench fastpath --compare`.
#[derive(Debug, Serialize)]
pub struct Compared {
    pub figure: &'static str,
    /// Medians over the rounds, this build's and the other's.
    pub this: f64,
    pub other: f64,
    /// Median over the rounds of this build's figure minus the other's, each pair timed back to
    /// back: what tells the two apart on a host whose speed drifts between rounds.
    pub diff: f64,
    /// Rounds in which this build was faster (lower), out of `rounds`.
    pub this_faster: usize,
}

#[derive(Debug, Serialize)]
pub struct CompareReport {
    pub other: String,
    pub repeat: u32,
    pub rounds: usize,
    pub figures: Vec<Compared>,
    pub kernel: String,
}

/// This build's object against `other` (another build's, from `xdhcp-lab bench object`), each with
/// its own maps and leases, every group of figures timed for both back to back, the order
/// alternating. Comparing separate runs of `fastpath` on these VMs mostly compares the host's
/// moods: they move every figure by 30-50 % over seconds, while a group takes a fraction of
/// one.
pub fn compare(
    other: &[u8],
    other_name: String,
    repeat: u32,
    rounds: usize,
    quick: bool,
) -> Result<CompareReport> {
    // The object parser reads ELF structures in place and wants them aligned.
    let words: Vec<u64> = other
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_ne_bytes(w)
        })
        .collect();
    let other = &bytemuck::cast_slice::<u64, u8>(&words)[..other.len()];
    let leases = if quick { 1 } else { MILLION };
    // Two of each, loaded this, other, other, this: with one of each, the build loaded first
    // came out 10-20 ns slower at 1 M leases even against itself (where its maps and program
    // land, it seems). Rounds alternate between the pairs, so each build is first half the time.
    let load_other = || {
        Bench::loaded(other, repeat, leases)
            .context("the other build's object (builds compare only with the same map layouts)")
    };
    let mut a1 = Bench::loaded(fastpath::OBJECT, repeat, leases)?;
    let mut b1 = load_other()?;
    let mut b2 = load_other()?;
    let mut a2 = Bench::loaded(fastpath::OBJECT, repeat, leases)?;
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    // Paired group by group (a fraction of a second apart), the order alternating.
    for i in 0..rounds {
        let (a, b) = if i % 2 == 0 { (&mut a1, &mut b1) } else { (&mut a2, &mut b2) };
        let (mut x, mut y) = ([0.0; FIGURES], [0.0; FIGURES]);
        for g in 0..GROUPS {
            if (i / 2 + g) % 2 == 0 {
                a.group(g, quick, &mut x)?;
                b.group(g, quick, &mut y)?;
            } else {
                b.group(g, quick, &mut y)?;
                a.group(g, quick, &mut x)?;
            }
        }
        ra.push(x);
        rb.push(y);
    }
    let figures = ROUND_FIGURES
        .iter()
        .enumerate()
        .filter(|(k, _)| !quick || *k < QUICK_FIGURES)
        .map(|(k, &figure)| {
            let d: Vec<f64> = ra.iter().zip(&rb).map(|(x, y)| x[k] - y[k]).collect();
            Compared {
                figure,
                this: median(column(&ra, k)),
                other: median(column(&rb, k)),
                this_faster: d.iter().filter(|v| **v < 0.0).count(),
                diff: median(d),
            }
        })
        .collect();
    Ok(CompareReport { other: other_name, repeat, rounds, figures, kernel: kernel() })
}

#[cfg(test)]
mod tests {
    use dhcp_common::KernelClock;

    use super::*;

    #[test]
    fn the_slot_touch_reaches_every_clients_lease_and_nothing_else() {
        // Its verdict depends on the loaded word, so a figure comes back only if every
        // repetition found its client's lease: 512 clients over 512 leases do, over 256 not.
        let mut b = Bench::loaded(fastpath::OBJECT, 2_000, 512).unwrap();
        let ns = b.lease_touch_ns(512).unwrap();
        assert!(ns.is_finite(), "{ns}");
        let e = b.lease_touch_ns(1024).unwrap_err();
        assert!(format!("{e:#}").contains("xdhcp_bench_touch returned 1"), "{e:#}");
    }

    #[test]
    fn both_clock_programs_tell_the_time_and_jiffies_need_the_loaders_line() {
        let mut b = Bench::loaded(fastpath::OBJECT, 2_000, 1).unwrap();
        let [call, jiffies] = b.over_floor([CLOCK_CALL_PROG, CLOCK_JIFFIES_PROG]).unwrap();
        assert!(call.is_finite() && jiffies.is_finite(), "{call} {jiffies}");
        // Without the line the jiffies program tells no time and drops.
        b.h.maps.set_clock(KernelClock::default()).unwrap();
        let e = b.over_floor([CLOCK_CALL_PROG, CLOCK_JIFFIES_PROG]).unwrap_err();
        assert!(format!("{e:#}").contains("xdhcp_bench_clock_jiffies returned 1"), "{e:#}");
    }

    #[test]
    fn the_check_programs_pass_what_is_plainly_not_dhcp_and_one_counts_it() {
        let mut b = Bench::loaded(fastpath::OBJECT, 2_000, 1).unwrap();
        let counted = |b: &Bench| b.h.maps.stats().unwrap().get(Stat::PassNotDhcp);
        let before = counted(&b);
        let [check] = b.over_floor([CHECK_PROG]).unwrap();
        assert!(check.is_finite(), "{check}");
        assert_eq!(counted(&b), before, "the check alone counts nothing");
        b.over_floor([CHECK_COUNTED_PROG]).unwrap();
        assert_eq!(counted(&b), before + 2_000, "one count a repetition");
        // A renewal is not plainly anything else: neither passes it.
        let renewal = request(0).frame();
        for prog in [CHECK_PROG, CHECK_COUNTED_PROG] {
            let e = b.time(prog, &renewal, XDP_PASS).unwrap_err();
            assert!(format!("{e:#}").contains(&format!("{prog} returned 1")), "{e:#}");
        }
    }

    #[test]
    fn a_class_profiles_renewal_is_timed_from_its_own_lease() {
        // Every repetition must be a 532-byte ACK of the class's lease, or the figure is
        // refused; client 0's lease beside it keeps the ordinary profile.
        let mut b = Bench::loaded(fastpath::OBJECT, 2_000, 1).unwrap();
        let (ret, ack) = b.h.run(&request(CLASS_CLIENT).frame()).unwrap();
        assert_eq!((ret, ack.len()), (XDP_TX, bootp::ETH_HLEN + dhcp_common::layout::LONG_IP_LEN));
        let ns = b.class_renewal().unwrap();
        assert!(ns.is_finite(), "{ns}");
        let (_, ack) = b.h.run(&request(0).frame()).unwrap();
        assert_eq!(ack.len(), bootp::ETH_HLEN + dhcp_common::layout::IP_LEN);
    }

    #[test]
    fn requests_longer_than_the_ack_are_restored_where_the_fast_path_shrank_them() {
        // 600 bytes of BOOTP: shrunk at the tail into the ACK, regrown there by the restore;
        // every repetition must still be a renewal, or the figure is refused.
        let mut b = Bench::loaded(fastpath::OBJECT, 2_000, 1).unwrap();
        let ns = b.renewal_of(&padded_request(0, 600)).unwrap();
        assert!(ns.is_finite(), "{ns}");
        // At full length nothing is resized either way.
        let ns = b.full_size_renewal().unwrap();
        assert!(ns.is_finite(), "{ns}");
    }
}

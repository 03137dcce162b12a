//! `BPF_PROG_TEST_RUN` harness: a private instance of the fast path (its own maps, nothing
//! attached) that runs frames through the real, verified program. Used by the integration tests
//! and by `cargo xtask bench fastpath`.
use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::Map,
    programs::{ProgramInfo, TestRun as _, TestRunOptions, Xdp},
};

use dhcp_common::RenewEvent;

use xdhcp::{
    bpf_sys::sys_bpf,
    fastpath::{self, LoadOptions, eventlog::EventLog, maps::FastPathMaps},
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

pub struct Harness {
    ebpf: Ebpf,
    pub maps: FastPathMaps,
    /// `None` while lent to another thread (the benchmark's drainer).
    pub events: Option<EventLog>,
}

impl Harness {
    /// Loads the object with a lease map of `leases_max` entries and verifies `programs`.
    pub fn new(leases_max: u32, programs: &[&str]) -> Result<Self> {
        Self::with_object(fastpath::OBJECT, leases_max, programs)
    }

    /// [`Harness::new`] with another build's object.
    pub fn with_object(object: &[u8], leases_max: u32, programs: &[&str]) -> Result<Self> {
        let opts = LoadOptions { leases_max: Some(leases_max), ..LoadOptions::default() };
        Self::load(object, &opts, programs)
    }

    /// [`Harness::new`] with an event log of `log_slots` per CPU.
    pub fn with_log(leases_max: u32, log_slots: u32, programs: &[&str]) -> Result<Self> {
        let opts = LoadOptions {
            leases_max: Some(leases_max),
            log_slots: Some(log_slots),
            ..LoadOptions::default()
        };
        Self::load(fastpath::OBJECT, &opts, programs)
    }

    fn load(object: &[u8], opts: &LoadOptions, programs: &[&str]) -> Result<Self> {
        let mut ebpf = fastpath::load_object(object, opts)?;
        for p in programs {
            fastpath::program(&mut ebpf, p)?;
        }
        let mut maps = FastPathMaps::from_ebpf(&mut ebpf)?;
        fastpath::set_kernel_clock(&mut ebpf, &mut maps)?;
        let events = EventLog::from_ebpf(&mut ebpf)?;
        Ok(Self { ebpf, maps, events: Some(events) })
    }

    /// Reads the kernel clock's line again, as a new load would (see `KernelClock`).
    pub fn calibrate_clock(&mut self) -> Result<dhcp_common::KernelClock> {
        fastpath::set_kernel_clock(&mut self.ebpf, &mut self.maps)
    }

    /// Every renewal event logged and not yet drained.
    pub fn drain_events(&mut self) -> Vec<RenewEvent> {
        let mut v = Vec::new();
        if let Some(e) = &mut self.events {
            e.drain(&mut v);
        }
        v
    }

    /// The policing maps (taken from the object: call once).
    pub fn police(&mut self) -> Result<fastpath::police::PoliceMaps> {
        fastpath::police::PoliceMaps::from_ebpf(&mut self.ebpf)
    }

    /// A map of the object the fast-path types do not cover (benchmark frames).
    pub fn take_map(&mut self, name: &str) -> Result<Map> {
        self.ebpf.take_map(name).with_context(|| format!("no map {name}"))
    }

    /// One of the object's programs, loaded on first use if `new` did not load it.
    pub fn prog(&mut self, name: &str) -> Result<&mut Xdp> {
        fastpath::program(&mut self.ebpf, name)
    }

    pub fn info(&mut self, name: &str) -> Result<ProgramInfo> {
        Ok(self.prog(name)?.info()?)
    }

    /// The program's instructions as the kernel holds them after verification (8 bytes
    /// each), read with `BPF_OBJ_GET_INFO_BY_FD` as `bpftool prog dump xlated` does.
    pub fn xlated(&mut self, name: &str) -> Result<Vec<[u8; 8]>> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        // The head of struct bpf_prog_info (UAPI): the two fields asked for sit at these
        // offsets; the kernel fills the rest of what `info_len` covers.
        const XLATED_LEN: usize = 20;
        const XLATED_PTR: usize = 32;
        const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
        let fd = self.prog(name)?.fd()?.as_fd().as_raw_fd();
        let get = |info: &mut [u8; 40]| -> Result<()> {
            let mut attr = [0u8; 16];
            attr[0..4].copy_from_slice(&u32::try_from(fd)?.to_ne_bytes());
            attr[4..8].copy_from_slice(&u32::try_from(info.len())?.to_ne_bytes());
            attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
            // SAFETY: info outlives the call; the kernel writes at most info_len bytes into it
            // and xlated_prog_len bytes at the pointer set in it.
            unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }
                .context("BPF_OBJ_GET_INFO_BY_FD")?;
            Ok(())
        };
        let mut info = [0u8; 40];
        get(&mut info)?;
        let len = u32::from_ne_bytes(info[XLATED_LEN..XLATED_LEN + 4].try_into()?);
        let mut insns = vec![[0u8; 8]; len as usize / 8];
        let mut info = [0u8; 40];
        info[XLATED_LEN..XLATED_LEN + 4].copy_from_slice(&len.to_ne_bytes());
        info[XLATED_PTR..XLATED_PTR + 8]
            .copy_from_slice(&(insns.as_mut_ptr() as u64).to_ne_bytes());
        get(&mut info)?;
        Ok(insns)
    }

    /// Runs `frame` once through the fast path: the verdict and the frame as it left.
    pub fn run(&mut self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        self.run_prog(fastpath::PROG, frame)
    }

    pub fn run_prog(&mut self, name: &str, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let mut out = vec![0u8; frame.len() + 512];
        let r = self.prog(name)?.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        })?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    /// Runs `frame` `repeat` times; the kernel's mean ns per run.
    pub fn time(&mut self, name: &str, frame: &[u8], repeat: u32) -> Result<(u32, f64)> {
        let mut out = vec![0u8; frame.len() + 512];
        let r = self.prog(name)?.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..Default::default()
        })?;
        #[expect(clippy::cast_precision_loss, reason = "one run's ns, far below 2^52")]
        let ns = r.duration.as_nanos() as f64;
        Ok((r.return_value, ns))
    }
}

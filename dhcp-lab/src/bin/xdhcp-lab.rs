//! `xdhcp-lab`: the demo and the benchmarks (`cargo xtask lab`, `cargo xtask bench ...`).
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use dhcp_lab::{
    bench::{self, e2e},
    lab,
};

#[derive(Parser, Debug)]
#[command(name = "xdhcp-lab", version, about = "xdhcp's demo and benchmarks (run as root)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The demo: real DHCP clients in network namespaces renewing through XDP.
    Demo(lab::DemoOptions),
    /// Benchmarks; results as JSON.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// A failover primary cut off from its partner, on simulated time: hours it keeps a steady
    /// client population served, with and without rewinding.
    Endurance {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The lease history at the fast path's renewal rate: the turn with and without it, and
    /// the file writer against a plain write of the same bytes.
    History {
        /// Where the history files are written (emptied first): a directory on the disk the
        /// state directory would be on.
        #[arg(long)]
        scratch: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// xdhcp (fast path on and off) and Kea side by side on a veth lab: DORA/s with perfdhcp,
    /// renewals/s with `xdhcp-load`; DORA/s with `xdhcp-load` too (xdhcp's slow path and Kea,
    /// what bounds each). Writes e2e.json and e2e.png.
    E2e {
        #[arg(long, default_value = "target/bench")]
        out_dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        trial_secs: u64,
        #[arg(long, default_value_t = 2_000_000)]
        max_rate: u64,
        #[arg(long, default_value_t = 5000)]
        clients: u32,
        /// The `xdhcp` binary to benchmark (default: the one beside this program).
        #[arg(long, value_name = "PATH")]
        xdhcp: Option<PathBuf>,
        /// The load generator (default: the `xdhcp-load` beside this program).
        #[arg(long, value_name = "PATH")]
        load: Option<PathBuf>,
        /// Only the XDP renewal rows: plain, with option 82, and the lab's ceiling (a bare XDP
        /// program bouncing every request); writes e2e-fast.json.
        #[arg(long)]
        fast_only: bool,
        /// Clients the DORA row driven by `xdhcp-load` binds (each trial, from an empty store).
        #[arg(long, default_value_t = 50_000)]
        dora_clients: u32,
        /// Only these rows, comma-separated (the report goes to e2e-only.json).
        #[arg(long, value_delimiter = ',')]
        only: Vec<e2e::Row>,
    },
    /// A DISCOVER flood from one access port while 1,000 known clients renew and 100 new ones
    /// arrive, for xdhcp and Kea: the share of renewals answered, of new clients served, the
    /// addresses the flood obtained. Writes flood.json and flood.png.
    Flood {
        #[arg(long, default_value = "target/bench")]
        out_dir: PathBuf,
        /// How long the known clients renew; the flood runs inside it.
        #[arg(long, default_value_t = 20)]
        secs: u64,
        #[arg(long, default_value_t = 1000)]
        renew_rate: u64,
        /// The flood's DISCOVERs per second; 0: as fast as the generator sends.
        #[arg(long, default_value_t = 0)]
        flood_rate: u64,
        #[arg(long, value_name = "PATH")]
        xdhcp: Option<PathBuf>,
        #[arg(long, value_name = "PATH")]
        load: Option<PathBuf>,
    },
    /// One xdhcp filled with N clients, for each N: DORA/s, renewals/s, resident memory per
    /// lease, restart time with and without pins, lease query latency. Writes scale.json and
    /// scale.png.
    Scale {
        #[arg(long, default_value = "target/bench")]
        out_dir: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
        sizes: Vec<u32>,
        #[arg(long, value_name = "PATH")]
        xdhcp: Option<PathBuf>,
        #[arg(long, value_name = "PATH")]
        load: Option<PathBuf>,
    },
    #[expect(
        clippy::doc_markdown,
        reason = "clap prints this doc comment as --help text, where backticks would show literally"
    )]
    /// Time the XDP program with BPF_PROG_TEST_RUN (no interface is touched).
    Fastpath {
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
        /// Runs per figure; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Skip the 1 M-lease figures (quicker, for development).
        #[arg(long)]
        quick: bool,
        /// Write the JSON report here (also printed).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Time this build against another build's XDP object (written by that build's
        /// `xdhcp-lab bench object`), side by side; `--runs` is then the number of rounds.
        #[arg(long, value_name = "OBJECT")]
        compare: Option<PathBuf>,
    },
    /// Write the XDP object built into this binary, for another build's `fastpath --compare`.
    Object {
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("xdhcp-lab: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Demo(o) => lab::run_demo(&o)?,
        Cmd::Bench {
            cmd:
                BenchCmd::E2e {
                    out_dir,
                    trial_secs,
                    max_rate,
                    clients,
                    xdhcp,
                    load,
                    fast_only,
                    dora_clients,
                    only,
                },
        } => {
            let or_beside =
                |p: Option<PathBuf>, name| p.map_or_else(|| lab::beside_this_program(name), Ok);
            let r = e2e::e2e(&e2e::Options {
                xdhcp: or_beside(xdhcp, "xdhcp")?,
                load: or_beside(load, "xdhcp-load")?,
                out_dir,
                trial_secs,
                max_rate,
                clients,
                fast_only,
                dora_clients,
                only,
            })?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Cmd::Bench {
            cmd: BenchCmd::Flood { out_dir, secs, renew_rate, flood_rate, xdhcp, load },
        } => {
            let or_beside =
                |p: Option<PathBuf>, name| p.map_or_else(|| lab::beside_this_program(name), Ok);
            let r = bench::flood::flood(&bench::flood::Options {
                xdhcp: or_beside(xdhcp, "xdhcp")?,
                load: or_beside(load, "xdhcp-load")?,
                out_dir,
                secs,
                renew_rate,
                flood_rate,
            })?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Cmd::Bench { cmd: BenchCmd::Scale { out_dir, sizes, xdhcp, load } } => {
            let or_beside =
                |p: Option<PathBuf>, name| p.map_or_else(|| lab::beside_this_program(name), Ok);
            let r = bench::scale::scale(&bench::scale::Options {
                xdhcp: or_beside(xdhcp, "xdhcp")?,
                load: or_beside(load, "xdhcp-load")?,
                out_dir,
                sizes,
            })?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Cmd::Bench { cmd: BenchCmd::Endurance { out } } => {
            let json = serde_json::to_string_pretty(&bench::endurance::endurance())?;
            emit(json, out.as_deref())?;
        }
        Cmd::Bench { cmd: BenchCmd::History { scratch, out } } => {
            let json = serde_json::to_string_pretty(&bench::history::history(&scratch)?)?;
            let _ = std::fs::remove_dir_all(&scratch);
            emit(json, out.as_deref())?;
        }
        Cmd::Bench { cmd: BenchCmd::Object { out } } => {
            std::fs::write(&out, xdhcp::fastpath::OBJECT)
                .with_context(|| format!("write {}", out.display()))?;
        }
        Cmd::Bench { cmd: BenchCmd::Fastpath { repeat, runs, quick, out, compare } } => {
            let json = match compare {
                None => serde_json::to_string_pretty(&bench::fastpath(repeat, runs, quick)?)?,
                Some(p) => {
                    let other =
                        std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
                    let name = p.display().to_string();
                    serde_json::to_string_pretty(&bench::compare(
                        &other, name, repeat, runs, quick,
                    )?)?
                }
            };
            emit(json, out.as_deref())?;
        }
    }
    Ok(())
}

/// Prints a report, and writes it to `out` too (creating its directory).
fn emit(json: String, out: Option<&Path>) -> Result<()> {
    println!("{json}");
    if let Some(p) = out {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, json + "\n").with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}

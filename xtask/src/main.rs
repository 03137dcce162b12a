//! `cargo xtask`: everything the project needs beyond plain cargo, on a fresh Debian machine.
//! Every command first runs `setup`, which installs what is missing and is quick otherwise.
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "xdhcp's developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the toolchain and test tools (idempotent).
    Setup,
    /// Build the release binary (and the XDP object inside it).
    Build,
    /// Run every test: unit, `BPF_PROG_TEST_RUN`, netns with real clients. Needs root.
    Test {
        /// Extra arguments for `cargo test` (after --), e.g. a test name filter.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Benchmarks; JSON under target/bench/.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
    /// The demo: a network-namespace lab with real DHCP clients renewing through XDP.
    Lab,
    /// `cargo fmt --check` and clippy (warnings are errors) on userspace and on the eBPF crate.
    Lint,
}

#[derive(Subcommand)]
enum Bench {
    /// The XDP program timed in the kernel with `BPF_PROG_TEST_RUN`.
    Fastpath {
        /// Time this tree's XDP program against the one of another commit, side by side
        /// (JSON in target/bench/fastpath-compare.json): between separate runs, the host's
        /// drift moves every figure by more than most changes do.
        #[arg(long, value_name = "REV")]
        compare: Option<String>,
        /// Rounds of the comparison.
        #[arg(long, default_value_t = 20)]
        rounds: u32,
    },
    /// xdhcp (fast path on/off) and Kea on a veth lab: DORA/s and renewals/s.
    E2e,
    /// One xdhcp at 10 k, 100 k and 1 M leases: DORA/s, renewals/s, memory per lease, restart
    /// time, query latency.
    Scale {
        /// Client counts, comma-separated.
        #[arg(long, default_value = "10000,100000,1000000")]
        sizes: String,
    },
    /// A failover survivor's endurance in COMMUNICATIONS-INTERRUPTED, simulated (no network).
    Endurance,
    /// The lease history at the fast path's renewal rate: the turn with and without it, the
    /// file writer against a plain write of the same bytes (no network).
    History,
    /// A DISCOVER flood from one access port against xdhcp and Kea, while known clients renew
    /// and new ones arrive.
    Flood,
}

/// # Panics
/// Never: xtask's manifest sits in the workspace root's `xtask/`.
#[must_use]
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").into()
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn release_binary() -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "-p", "dhcp-user", "--bin", "xdhcp"]))?;
    Ok(root().join("target/release/xdhcp"))
}

/// The tooling's `xdhcp-lab`, built in release with the `xdhcp` and `xdhcp-load` binaries it
/// runs (it finds them beside itself).
fn lab_binary() -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "-p", "dhcp-user", "--bin", "xdhcp"]).args([
        "-p",
        "dhcp-lab",
        "--bin",
        "xdhcp-lab",
        "--bin",
        "xdhcp-load",
    ]))?;
    Ok(root().join("target/release/xdhcp-lab"))
}

/// The XDP object of commit `rev`, built from a copy of its tree (`git archive`) with its own
/// target directory under target/compare, so this tree's build is left alone.
fn object_of(rev: &str) -> Result<PathBuf> {
    let out = Command::new("git")
        .current_dir(root())
        .args(["rev-parse", "--verify"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .context("git rev-parse")?;
    if !out.status.success() {
        bail!("{rev} is not a commit here: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let sha = String::from_utf8(out.stdout)?.trim().to_owned();
    let dir = root().join("target/compare");
    // One object per commit, kept: the builds below share a target directory.
    let kept = dir.join(format!("{sha}.o"));
    if kept.exists() {
        return Ok(kept);
    }
    // Extracted afresh with the files' times set to now (tar -m): with the times git archive
    // gives (the commit's), a commit older than the last one built here looked unchanged to
    // cargo, which then handed back the newer commit's object.
    let src = dir.join(&sha);
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("remove {}", src.display()))?;
    }
    std::fs::create_dir_all(&src)?;
    run(Command::new("sh")
        .current_dir(root())
        .arg("-c")
        .arg(format!("git archive {sha} | tar -x -m -C '{}'", src.display())))?;
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .args(["build", "--release", "-p", "dhcp-user", "--bin", "xdhcp"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("build {rev}"))?;
    if !build.status.success() {
        bail!("building {rev} failed: {}", build.status);
    }
    // dhcp-user's build script builds the XDP object into its OUT_DIR.
    let out_dir = String::from_utf8_lossy(&build.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "build-script-executed")
        .filter(|m| m["package_id"].as_str().is_some_and(|p| p.contains("dhcp-user")))
        .find_map(|m| m["out_dir"].as_str().map(PathBuf::from))
        .with_context(|| format!("{rev}: no build script output for dhcp-user"))?;
    let object = out_dir.join("dhcp-xdp.o");
    if !object.exists() {
        bail!("{rev} built no {}", object.display());
    }
    let part = dir.join(format!("{sha}.o.part"));
    std::fs::copy(&object, &part).with_context(|| format!("copy {}", object.display()))?;
    std::fs::rename(&part, &kept)?;
    // The tree was only needed for this build; the object is all a later comparison uses.
    std::fs::remove_dir_all(&src).with_context(|| format!("remove {}", src.display()))?;
    Ok(kept)
}

#[expect(clippy::too_many_lines, reason = "one short arm per command")]
fn main() -> Result<()> {
    let cli = Cli::parse();
    setup::setup()?;
    match cli.cmd {
        Cmd::Setup => {}
        Cmd::Build => {
            let bin = release_binary()?;
            println!("built {}", bin.display());
        }
        Cmd::Test { args } => {
            setup::require_root("the tests load XDP programs and create network namespaces")?;
            let mut c = cargo();
            // dhcp-ebpf only builds for the BPF target; dhcp-user's build.rs compiles it.
            // Every test binary runs even after one fails, so one red run shows all that is wrong.
            c.args([
                "test",
                "--workspace",
                "--exclude",
                "dhcp-ebpf",
                "--all-targets",
                "--no-fail-fast",
            ]);
            if !args.is_empty() {
                c.arg("--").args(args);
            }
            run(&mut c)?;
        }
        Cmd::Bench { which: Bench::Fastpath { compare: None, .. } } => {
            setup::require_root("the benchmark loads XDP programs")?;
            let bin = lab_binary()?;
            let out = root().join("target/bench/fastpath.json");
            run(Command::new(bin).args(["bench", "fastpath", "--out"]).arg(&out))?;
            println!("wrote {}", out.display());
        }
        Cmd::Bench { which: Bench::Fastpath { compare: Some(rev), rounds } } => {
            setup::require_root("the benchmark loads XDP programs")?;
            let bin = lab_binary()?;
            let other = object_of(&rev)?;
            let out = root().join("target/bench/fastpath-compare.json");
            run(Command::new(bin)
                .args(["bench", "fastpath", "--repeat", "200000", "--runs", &rounds.to_string()])
                .arg("--compare")
                .arg(&other)
                .arg("--out")
                .arg(&out))?;
            println!("wrote {} (this tree against {rev})", out.display());
        }
        Cmd::Bench { which: Bench::E2e } => {
            setup::require_root("the benchmark creates network namespaces")?;
            let bin = lab_binary()?;
            run(Command::new(bin)
                .args(["bench", "e2e", "--out-dir"])
                .arg(root().join("target/bench")))?;
            println!("wrote target/bench/e2e.json and e2e.png");
        }
        Cmd::Bench { which: Bench::Scale { sizes } } => {
            setup::require_root("the benchmark creates network namespaces")?;
            let bin = lab_binary()?;
            run(Command::new(bin)
                .args(["bench", "scale", "--sizes", &sizes, "--out-dir"])
                .arg(root().join("target/bench")))?;
            println!("wrote target/bench/scale.json and scale.png");
        }
        Cmd::Bench { which: Bench::Flood } => {
            setup::require_root("the benchmark creates network namespaces")?;
            let bin = lab_binary()?;
            run(Command::new(bin)
                .args(["bench", "flood", "--out-dir"])
                .arg(root().join("target/bench")))?;
            println!("wrote target/bench/flood.json and flood.png");
        }
        Cmd::Bench { which: Bench::Endurance } => {
            let bin = lab_binary()?;
            let out = root().join("target/bench/endurance.json");
            run(Command::new(bin).args(["bench", "endurance", "--out"]).arg(&out))?;
            println!("wrote {}", out.display());
        }
        Cmd::Bench { which: Bench::History } => {
            let bin = lab_binary()?;
            let out = root().join("target/bench/history.json");
            let scratch = root().join("target/bench/history-scratch");
            run(Command::new(bin)
                .args(["bench", "history", "--out"])
                .arg(&out)
                .arg("--scratch")
                .arg(&scratch))?;
            println!("wrote {}", out.display());
        }
        Cmd::Lint => {
            run(cargo().args(["fmt", "--all", "--check"]))?;
            run(cargo()
                .args(["clippy", "--workspace", "--exclude", "dhcp-ebpf", "--all-targets"])
                .args(["--", "-D", "warnings"]))?;
            // The eBPF crate's real target needs a core built from source, which rustup's
            // toolchains here cannot do; checked on the host target instead, where clippy sees
            // the same code (aya-ebpf compiles its helpers for any architecture).
            run(cargo()
                .args(["clippy", "-p", "dhcp-ebpf", "--target-dir"])
                .arg(root().join("target/ebpf-clippy"))
                .args(["--", "-D", "warnings"])
                .env("RUSTC_BOOTSTRAP", "1")
                .env("RUSTFLAGS", "--cfg bpf_target_arch=\"x86_64\" -Cpanic=abort"))?;
        }
        Cmd::Lab => {
            setup::require_root("the lab creates network namespaces and attaches XDP")?;
            let bin = lab_binary()?;
            run(Command::new(bin).arg("demo"))?;
        }
    }
    Ok(())
}

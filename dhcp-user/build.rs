//! Builds the XDP object (dhcp-ebpf) so plain `cargo build` works, as aya's template does. It
//! cannot use aya-build: that runs `rustup run nightly`, and this toolchain has no rust-src, so
//! the eBPF crate is compiled by Debian's rustc (see docs/building.md; `cargo xtask setup`
//! installs it).
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const TARGET: &str = "bpfel-unknown-none";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.parent().expect("dhcp-user sits in the workspace").to_path_buf();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    for dir in
        ["dhcp-ebpf/src", "dhcp-ebpf/Cargo.toml", "dhcp-common/src", "dhcp-common/Cargo.toml"]
    {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=XDHCP_BPF_RUSTC");

    let rustc = env::var("XDHCP_BPF_RUSTC").unwrap_or_else(|_| "/usr/bin/rustc".into());
    let linker = which("bpf-linker");
    assert!(
        Path::new(&rustc).exists() && linker.is_some(),
        "the XDP program needs Debian's rustc ({rustc}) and bpf-linker on PATH; \
         run `cargo xtask setup` (it installs both)"
    );
    // A new bpf-linker must relink the object.
    if let Some(l) = &linker {
        println!("cargo:rerun-if-changed={}", l.display());
    }

    // Shared by every profile of dhcp-user so the core library is built once, outside the outer
    // build's locked target directory.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("ebpf");
    let flags = [
        "--cfg",
        "bpf_target_arch=\"x86_64\"",
        "-Cdebuginfo=2",
        // v3 (ALU32, jmp32) and misaligned access: fewer instructions, and LLVM stops splitting
        // every unaligned u16/u32 packet access into bytes.
        "-Ctarget-cpu=v3",
        "-Clink-arg=--btf",
        "-Clink-arg=--cpu-features=+allows-misaligned-mem-access",
    ]
    .join("\x1f");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "-p", "dhcp-ebpf", "--bins", "--release", "--target", TARGET])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(&target_dir)
        .env("RUSTC", &rustc)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", flags);
    for var in ["RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for dhcp-ebpf");
    assert!(status.success(), "building dhcp-ebpf failed (see the errors above)");
    let obj = target_dir.join(TARGET).join("release").join("dhcp-xdp");
    std::fs::copy(&obj, out.join("dhcp-xdp.o")).expect("copy the XDP object");
}

fn which(bin: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|d| d.join(bin)).find(|p| p.is_file())
}

//! The benchmarks behind `cargo xtask bench`: [`fastpath`] (the XDP program timed in the
//! kernel), [`e2e`] (xdhcp and Kea on a veth lab), [`scale`] (one xdhcp from 10 k to 1 M leases),
//! [`endurance`] (a failover survivor on simulated time) and [`history`] (the lease history at
//! the fast path's renewal rate).
pub mod dora;
pub mod e2e;
pub mod endurance;
pub mod fastpath;
pub mod flood;
pub mod history;
pub mod scale;

pub use fastpath::{compare, fastpath};

/// Writes a report as `NAME.json` and its chart as `NAME.svg` and `NAME.png` in `dir`.
pub(crate) fn write_report(
    dir: &std::path::Path,
    name: &str,
    report: &impl serde::Serialize,
    svg: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report)? + "\n";
    std::fs::write(dir.join(format!("{name}.json")), json)?;
    let svg_path = dir.join(format!("{name}.svg"));
    std::fs::write(&svg_path, svg)?;
    let png = dir.join(format!("{name}.png"));
    let st = std::process::Command::new("rsvg-convert").arg("-o").arg(&png).arg(&svg_path).status();
    if !st.is_ok_and(|s| s.success()) {
        anyhow::bail!("rsvg-convert (apt package librsvg2-bin) could not write {}", png.display());
    }
    Ok(())
}

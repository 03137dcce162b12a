//! `xdhcp check` and `xdhcp import dhcpd-conf` as an operator runs them: the built binary,
//! its output and its exit status.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn xdhcp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xdhcp")).args(args).output().unwrap()
}

fn repo(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p).display().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdhcp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_prints_what_the_example_config_would_serve() {
    let out = xdhcp(&["check", "--config", &repo("../examples/xdhcp.toml")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.starts_with("config OK: "), "{stdout}");
    assert!(stdout.contains("subnet[0] 192.0.2.0/24"), "{stdout}");
    assert!(stdout.contains("  pool 192.0.2.100 - 192.0.2.199: 100 address(es)"), "{stdout}");
    assert!(stdout.contains("failover "), "{stdout}");
}

#[test]
fn check_refuses_a_wrong_config_with_file_line_and_key() {
    let bad = scratch("bad.toml");
    std::fs::write(
        &bad,
        "interfaces = [\"eth1\"]\nserver_id = \"192.0.2.1\"\n\n[[subnet]]\nprefix = \"10.0.0.0/24\"\npools = [{ start = \"10.0.0.10\", end = \"10.0.1.300\" }]\n",
    )
    .unwrap();
    let out = xdhcp(&["check", "--config", &bad.display().to_string()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.toml:6: subnet[0].pools[0].end: 10.0.1.300 is not an IPv4 address"),
        "{stderr}"
    );
}

#[test]
fn an_import_with_untranslated_statements_writes_nothing_unless_accepted() {
    let out_file = scratch("untranslatable.toml");
    let _ = std::fs::remove_file(&out_file);
    let conf = repo("tests/fixtures/dhcpd/untranslatable.conf");
    let o = out_file.display().to_string();
    let args = ["import", "dhcpd-conf", &conf, "--interface", "eth1", "--out", &o];
    let out = xdhcp(&args);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("untranslatable.conf:8: next-server 10.40.0.5: "), "{stderr}");
    assert!(stderr.contains("5 statement(s) not translated; nothing written"), "{stderr}");
    assert!(!out_file.exists());

    let out = xdhcp(&[&args[..], &["--accept-untranslated"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    // What it wrote is a config `xdhcp check` accepts.
    let out = xdhcp(&["check", "--config", &o]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pool 10.40.0.160 - 10.40.0.200: 41 address(es)"));
}

#[test]
fn a_failover_primary_imports_and_checks_as_a_pair_member() {
    let conf = repo("tests/fixtures/dhcpd/failover-primary.conf");
    let out = xdhcp(&["import", "dhcpd-conf", &conf, "--interface", "eth1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let toml = scratch("primary.toml");
    std::fs::write(&toml, &out.stdout).unwrap();
    let out = xdhcp(&["check", "--config", &toml.display().to_string()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("failover \"edge-pair\": primary, 192.0.2.11:647 <-> peer 192.0.2.12:847"),
        "{stdout}"
    );
    assert!(stdout.contains("mclt 1800 s, 128/256 hash buckets ours"), "{stdout}");
    assert!(
        stdout.contains("subnet[0] 100.64.0.0/22: lease 3600 s (min 600, max 14400)"),
        "{stdout}"
    );
    assert!(stdout.contains("shared in failover \"edge-pair\""), "{stdout}");
}

#[test]
fn a_broken_dhcpd_conf_is_an_error_naming_its_line() {
    let conf = repo("tests/fixtures/dhcpd/broken.conf");
    let out = xdhcp(&["import", "dhcpd-conf", &conf, "--interface", "eth1"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("broken.conf:7: expected `;`"), "{}", text(&out.stderr));
}

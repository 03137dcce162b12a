//! A start that fails leaves nothing behind: a config naming an interface that does not exist
//! is refused with a clear error, and the fast path of the interfaces that do exist, attached
//! on the way, is taken down again (its lease array alone is tens of MB of kernel memory).
use std::net::Ipv4Addr;

use dhcp_lab::lab::{NetNs, VethEnd, VethPair};
use integration::fixture::root_required;
use xdhcp::{
    config::Config,
    fastpath::{self, AttachMode, sync::KernelMaps},
};

#[test]
fn a_start_naming_a_missing_interface_fails_clearly_and_pins_nothing() {
    root_required();
    let srv = NetNs::new("fail-srv").unwrap();
    let cli = NetNs::new("fail-cli").unwrap();
    let seq = std::process::id() % 10_000;
    let (real, missing) = (format!("xfs{seq}"), format!("xfm{seq}"));
    let _veth = VethPair::new(
        &srv,
        VethEnd {
            name: real.clone(),
            mac: [2, 0x66, 0, 0, 0, 1],
            addr: Some((Ipv4Addr::new(10, 66, 0, 1), 24)),
        },
        &cli,
        VethEnd { name: format!("xfc{seq}"), mac: [2, 0x66, 0, 0, 0, 2], addr: None },
    )
    .unwrap();
    let text = format!(
        "interfaces = [\"{real}\", \"{missing}\"]\nserver_id = \"10.66.0.1\"\n\
         [fast_path]\nlease_capacity = 4096\n\
         [[subnet]]\nprefix = \"10.66.0.0/24\"\npools = [{{ start = \"10.66.0.100\", end = \"10.66.0.199\" }}]\n"
    );
    let cfg = Config::from_toml(&text, "failed.toml").unwrap();
    let err = srv.run(|| Ok(KernelMaps::attach(&cfg, AttachMode::Generic).map(drop))).unwrap();
    let msg = format!("{:#}", err.unwrap_err());
    assert!(msg.contains(&format!("interface {missing} does not exist")), "{msg}");
    for iface in [&real, &missing] {
        let dir = fastpath::pin_dir(iface);
        assert!(!dir.exists(), "{} is left pinned after a failed start", dir.display());
    }
}

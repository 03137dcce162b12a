//! Two xdhcp servers whose failover link is TLS 1.3 with both certificates checked, and what
//! each refuses: a partner whose certificate another CA signed, one whose certificate names
//! another server, one that speaks plain TCP, and a stranger's connection. Refused connections
//! are counted, the relationship stays COMMUNICATIONS-INTERRUPTED, and DHCP goes on. Also the
//! modes of what holds subscriber data (state directory, lease store, control socket), and the
//! config errors that name a TLS file or group that cannot be used.
use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _},
    net::{Ipv4Addr, TcpStream},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    time::Duration,
};

use dhcp_lab::lab::TempDir;
use integration::{
    certs::{Ca, TlsFiles},
    failover_lab::Port,
    failover_lab::{PairConfig, Segment, Udhcpc, Xdhcp, mac_served_by, num, state_is, wait_for},
    fixture::root_required,
};
use xdhcp::config::Config;

const LEASE: u64 = 60;

fn pair(net: u8) -> PairConfig<'static> {
    PairConfig {
        name: "edge-tls",
        net,
        pool_end: 139,
        lease_secs: LEASE,
        mclt: LEASE,
        max_response_delay: 10,
        failover_more: "",
    }
}

/// The primary's name in its certificate; the secondary's certificate names its address.
const PRIMARY_NAME: &str = "edge1.example";

/// A CA and both servers' certificates: the primary's names [`PRIMARY_NAME`], the secondary's
/// its address (the primary's `tls` has no `peer_name`, so it checks the address).
struct Pki {
    dir: TempDir,
    ca: Ca,
    primary: TlsFiles,
    secondary: TlsFiles,
}

impl Pki {
    fn new(p: &PairConfig<'_>) -> Self {
        let dir = TempDir::new("pki").unwrap();
        let ca = Ca::new(dir.path(), "edge").unwrap();
        let primary = ca.issue(dir.path(), "primary", &[PRIMARY_NAME]).unwrap();
        let secondary = ca.issue(dir.path(), "secondary", &[&p.addr(false).to_string()]).unwrap();
        Self { dir, ca, primary, secondary }
    }

    fn primary_config(&self, p: &PairConfig<'_>) -> String {
        p.render(true, &self.primary.toml(None))
    }

    /// The secondary's config with `tls` (`None`: plain TCP) and `top` lines.
    fn secondary_config(p: &PairConfig<'_>, tls: Option<&TlsFiles>, top: &str) -> String {
        let tls = tls.map_or(String::new(), |t| t.toml(Some(PRIMARY_NAME)));
        p.render_with(false, PairConfig::SPLIT, top, &tls, "")
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The id of a group every Debian host has.
fn daemon_gid() -> u32 {
    let groups = fs::read_to_string("/etc/group").unwrap();
    let line = groups.lines().find(|l| l.starts_with("daemon:")).expect("a daemon group");
    line.split(':').nth(2).unwrap().parse().unwrap()
}

/// tshark on `port`, decoding the failover link's first packets as TLS: for each packet the TLS
/// versions its handshake names and the outer type of its TLS 1.3 records. Returns once it
/// captures.
fn capture_link(port: &Port) -> std::process::Child {
    let mut c = port
        .ns
        .exec("tshark")
        .args(["-i", &port.iface, "-f", "tcp port 647", "-d", "tcp.port==647,tls"])
        .args(["-c", "60", "-a", "duration:20", "-T", "fields"])
        .args(["-e", "tls.handshake.extensions.supported_version", "-e", "tls.record.opaque_type"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tshark (cargo xtask setup installs it)");
    let mut err = BufReader::new(c.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("Capturing on") {
        line.clear();
    }
    c
}

#[test]
fn a_pair_over_tls_reaches_normal_replicates_a_lease_and_keeps_subscriber_data_private() {
    root_required();
    let p = pair(131);
    let pki = Pki::new(&p);
    let mut seg = Segment::new().unwrap();
    let pa = seg.port("pri", [0x02, 0x31, 0, 0, 0, 1], Some(p.addr(true))).unwrap();
    let sa = seg.port("sec", [0x02, 0x31, 0, 0, 0, 2], Some(p.addr(false))).unwrap();
    // The primary's state as an older version left it: readable by every local user.
    let pdir = TempDir::new("xdhcp").unwrap();
    let state = pdir.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(state.join("leases.db"), b"").unwrap();
    fs::set_permissions(state.join("leases.db"), fs::Permissions::from_mode(0o644)).unwrap();
    let mut wire = capture_link(&sa);
    let px = Xdhcp::start_in(&pa, &pki.primary_config(&p), pdir).unwrap();
    let scfg = Pki::secondary_config(&p, Some(&pki.secondary), "group = \"daemon\"\n");
    let sx = Xdhcp::start(&sa, &scfg).unwrap();

    let st = px.wait_normal(Duration::from_mins(1)).unwrap();
    sx.wait_normal(Duration::from_secs(30)).unwrap();
    assert_eq!(st["link_tls"], true, "{st}");
    assert_eq!(num(&st, "link_refused_handshakes_total"), 0, "{st}");
    assert_eq!(num(&st, "link_refused_strangers_total"), 0, "{st}");

    // A binding the primary makes reaches the secondary over the TLS link.
    let mac = mac_served_by(true, PairConfig::SPLIT, 0x31);
    let cport = seg.port("cli", mac, None).unwrap();
    let c = Udhcpc::start(&cport).unwrap();
    let bound = c.wait_bound(Duration::from_secs(30)).unwrap();
    assert_eq!(bound.server, Some(p.addr(true)), "{bound:?}");
    let addr = bound.ip.unwrap();
    let on_s = wait_for("the binding on the secondary", Duration::from_secs(10), || {
        Ok(sx.lease(addr)?.filter(|l| l["state"] == "active"))
    })
    .unwrap();
    assert_eq!(on_s["mac"], xdhcp::packet::fmt_mac(&mac), "{on_s}");

    // On the wire: a TLS 1.3 handshake (0x0304 in the hellos' supported_versions), then
    // encrypted records (outer type 23, application data), which is all the failover
    // messages are.
    wire.wait().unwrap();
    let mut seen = String::new();
    wire.stdout.take().unwrap().read_to_string(&mut seen).unwrap();
    assert!(seen.lines().any(|l| l.contains("0x0304")), "{seen}");
    let records = |l: &str| l.split('\t').nth(1).unwrap_or("").split(',').any(|t| t == "23");
    assert!(seen.lines().any(records), "{seen}");

    // Owner-only on the primary (the loose modes set right); the group's on the secondary.
    let db = state.join("leases.db");
    assert_eq!(mode(&state), 0o700);
    for f in [db.clone(), state.join("leases.db-wal"), state.join("leases.db-shm")] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    assert_eq!(mode(&px.socket), 0o660);
    let log = px.log_text();
    assert!(log.contains("mode 0755 set to 0700"), "{log}");
    let sec_state = sx.socket.parent().unwrap().join("state");
    let gid = daemon_gid();
    for (path, want) in [
        (sec_state.clone(), 0o750),
        (sec_state.join("leases.db"), 0o640),
        (sec_state.join("leases.db-wal"), 0o640),
        (sx.socket.clone(), 0o660),
    ] {
        assert_eq!(mode(&path), want, "{}", path.display());
        assert_eq!(fs::metadata(&path).unwrap().gid(), gid, "{}", path.display());
    }
    drop((c, pki.dir));
}

#[test]
fn partners_of_another_ca_another_name_or_without_tls_and_strangers_are_refused() {
    root_required();
    let p = pair(132);
    let pki = Pki::new(&p);
    let rogue = Ca::new(pki.dir.path(), "rogue").unwrap();
    let mut seg = Segment::new().unwrap();
    let pa = seg.port("pri", [0x02, 0x32, 0, 0, 0, 1], Some(p.addr(true))).unwrap();
    let sa = seg.port("sec", [0x02, 0x32, 0, 0, 0, 2], Some(p.addr(false))).unwrap();
    let px = Xdhcp::start(&pa, &pki.primary_config(&p)).unwrap();
    let good = Pki::secondary_config(&p, Some(&pki.secondary), "");
    let sx = Xdhcp::start(&sa, &good).unwrap();
    px.wait_normal(Duration::from_mins(1)).unwrap();
    let mut sdir = sx.stop_keep().unwrap();
    wait_for("COMMUNICATIONS-INTERRUPTED", Duration::from_secs(20), || {
        state_is(&px, "communications-interrupted")
    })
    .unwrap();

    // The secondary comes back three times, each time as a partner the primary must refuse:
    // it connects at once, and its handshake fails.
    let wrong_ca = rogue.issue(pki.dir.path(), "secondary-rogue", &[&p.addr(false).to_string()]);
    let wrong_name = pki.ca.issue(pki.dir.path(), "secondary-misnamed", &["10.132.0.9"]);
    let partners = [
        ("a certificate of another CA", Some(wrong_ca.unwrap())),
        ("a certificate naming another server", Some(wrong_name.unwrap())),
        ("no TLS", None),
    ];
    let mut refused = 0;
    let first = std::time::Instant::now();
    for (what, tls) in &partners {
        let s = Xdhcp::start_in(&sa, &Pki::secondary_config(&p, tls.as_ref(), ""), sdir).unwrap();
        let st =
            wait_for(&format!("a partner with {what} refused"), Duration::from_secs(30), || {
                let st = px.failover()?;
                Ok((num(&st, "link_refused_handshakes_total") > refused).then_some(st))
            })
            .unwrap();
        refused = num(&st, "link_refused_handshakes_total");
        assert_eq!(st["my_state"], "communications-interrupted", "{what}: {st}");
        assert_eq!(st["communicating"], false, "{what}: {st}");
        let sst = s.failover().unwrap();
        assert_ne!(sst["my_state"], "normal", "{what}: {sst}");
        sdir = s.stop_keep().unwrap();
    }
    // The log says the first refusal, then at most a line a minute.
    let minutes = usize::try_from(first.elapsed().as_secs() / 60).unwrap_or(usize::MAX);
    let log = px.log_text();
    let lines = log.lines().filter(|l| l.contains("failover: refused")).count();
    assert!((1..=1 + minutes).contains(&lines), "{refused} refusals, {lines} lines: {log}");
    assert!(log.contains("TLS handshake"), "{log}");

    // A stranger: any address but the partner's is refused before any handshake.
    let stranger = seg.port("str", [0x02, 0x32, 0, 0, 0, 9], Some(Ipv4Addr::new(10, 132, 0, 9)));
    let stranger = stranger.unwrap();
    let to = std::net::SocketAddr::from((p.addr(true), 647));
    stranger.ns.run(|| Ok(TcpStream::connect_timeout(&to, Duration::from_secs(5))?)).unwrap();
    wait_for("the stranger counted", Duration::from_secs(10), || {
        let st = px.failover()?;
        Ok((num(&st, "link_refused_strangers_total") == 1).then_some(()))
    })
    .unwrap();
    let metrics = px.ask(&xdhcp::daemon::ctl::Request::Metrics).unwrap();
    let text = metrics["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(
            "xdhcp_failover_link_refused_total{relationship=\"edge-tls\",reason=\"stranger\"} 1"
        ),
        "{text}"
    );
    let handshakes = text.lines().find_map(|l| {
        l.strip_prefix(
            "xdhcp_failover_link_refused_total{relationship=\"edge-tls\",reason=\"handshake\"} ",
        )
    });
    assert!(handshakes.and_then(|n| n.parse::<u64>().ok()) >= Some(refused), "{text}");

    // DHCP goes on meanwhile: a new client gets an address from the primary's own share.
    let cport = seg.port("cli", [0x02, 0x32, 0, 0, 1, 1], None).unwrap();
    let c = Udhcpc::start(&cport).unwrap();
    let bound = c.wait_bound(Duration::from_secs(30)).unwrap();
    assert_eq!(bound.server, Some(p.addr(true)), "{bound:?}");

    // The right partner again: none of that kept the link from coming back.
    let s = Xdhcp::start_in(&sa, &good, sdir).unwrap();
    s.wait_normal(Duration::from_mins(1)).unwrap();
    drop(c);
}

/// A `tls` or `group` the host cannot give is a config error naming the file, line and key.
#[test]
fn unreadable_or_mismatched_tls_files_and_unknown_groups_are_config_errors() {
    let p = pair(133);
    let pki = Pki::new(&p);
    let dir = pki.dir.path();
    let file = dir.join("xdhcp.toml");
    let load = |text: &str| {
        fs::write(&file, text).unwrap();
        Config::load_on_host(&file).map(drop).map_err(|e| e.to_string())
    };
    let f = file.display();
    assert_eq!(load(&pki.primary_config(&p)), Ok(()));
    let line = pki.primary_config(&p).lines().position(|l| l.starts_with("tls =")).unwrap() + 1;

    let missing = TlsFiles { cert: dir.join("none.pem"), ..pki.primary.clone() };
    let e = load(&p.render(true, &missing.toml(None))).unwrap_err();
    let want = format!("{f}:{line}: failover.tls.cert: {}: ", missing.cert.display());
    assert!(e.starts_with(&want), "{e}");

    let swapped = TlsFiles { key: pki.secondary.key.clone(), ..pki.primary.clone() };
    let e = load(&p.render(true, &swapped.toml(None))).unwrap_err();
    let want = format!(
        "{f}:{line}: failover.tls.key: {}: is not the key of the certificate in {}",
        swapped.key.display(),
        swapped.cert.display()
    );
    assert_eq!(e, want);

    let not_pem = TlsFiles { ca: file.clone(), ..pki.primary.clone() };
    let e = load(&p.render(true, &not_pem.toml(None))).unwrap_err();
    assert_eq!(e, format!("{f}:{line}: failover.tls.ca: {f}: holds no certificate"));

    let e = load(&p.render_with(true, PairConfig::SPLIT, "group = \"no-such-group\"\n", "", ""))
        .unwrap_err();
    assert_eq!(e, format!("{f}:5: group: \"no-such-group\": no such group on this host"));
}

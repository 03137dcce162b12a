//! The control socket: one JSON request per line, one JSON answer per line. The core answers
//! from the state it owns, between two batches.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::Ipv4Addr,
    os::unix::net::UnixStream as StdUnixStream,
    path::Path,
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{
    io::{
        AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader as AsyncBufReader,
    },
    net::UnixListener,
    sync::{mpsc, oneshot},
};

use super::{Core, Input, Now};
use crate::{packet, server::RECEIVED_TYPES, store::LeaseState};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Leases {
        #[serde(default)]
        addr: Option<Ipv4Addr>,
        #[serde(default)]
        mac: Option<String>,
    },
    Stats,
    /// Prometheus text exposition.
    Metrics,
    /// The failover relationship: both states, STOS, MCLT, updates, pools.
    FailoverStatus,
    /// The operator declares the partner down. `confirm` must be set: taking over a partner
    /// that is in fact running can give one address to two clients.
    FailoverPartnerDown {
        #[serde(default)]
        confirm: bool,
    },
}

pub(super) fn listen(path: &Path, tx: mpsc::Sender<Input>) -> Result<tokio::task::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    // A socket left by a killed daemon would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .with_context(|| format!("bind control socket {}", path.display()))?;
    Ok(tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = conn.into_split();
                let mut lines = AsyncBufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer = match serde_json::from_str::<Request>(&line) {
                        Ok(req) => {
                            let (reply, rx) = oneshot::channel();
                            if tx.send(Input::Ctl { req, reply }).await.is_err() {
                                return;
                            }
                            rx.await.unwrap_or_else(|_| json!({"error": "server stopping"}))
                        }
                        Err(e) => json!({"error": format!("bad request: {e}")}),
                    };
                    let mut out = answer.to_string();
                    out.push('\n');
                    if w.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    }))
}

/// Prometheus over HTTP: any GET gets the metrics text. Deliberately minimal (HTTP/1.0, one
/// request per connection, headers read up to 8 KiB and ignored): it is a scrape endpoint on a
/// management address, not a web server.
pub(super) fn serve_metrics(
    addr: std::net::SocketAddr,
    tx: mpsc::Sender<Input>,
) -> Result<tokio::task::JoinHandle<()>> {
    let std_listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("bind metrics_listen {addr}"))?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    Ok(tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = conn.into_split();
                let mut lines = AsyncBufReader::new(r.take(8192)).lines();
                // The request line and headers end with an empty line.
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.is_empty() {
                        break;
                    }
                }
                let (reply, rx) = oneshot::channel();
                if tx.send(Input::Ctl { req: Request::Metrics, reply }).await.is_err() {
                    return;
                }
                let body = rx.await.ok().and_then(|v| v["text"].as_str().map(str::to_owned));
                let body = body.unwrap_or_default();
                let head = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = w.write_all(head.as_bytes()).await;
                let _ = w.write_all(body.as_bytes()).await;
            });
        }
    }))
}

/// Client side, for the CLI.
pub fn request(path: &Path, req: &Request) -> Result<Value> {
    let mut s = StdUnixStream::connect(path)
        .with_context(|| format!("connect to {} (is `xdhcp run` running?)", path.display()))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    let v: Value = serde_json::from_str(&answer).context("bad answer from the server")?;
    if let Some(e) = v.get("error") {
        bail!("server: {e}");
    }
    Ok(v)
}

pub(super) fn answer(core: &Core, req: &Request, now: Now) -> Value {
    match req {
        Request::Leases { addr, mac } => {
            let mac = mac.as_deref().and_then(packet::parse_mac);
            let leases: Vec<Value> = core
                .server
                .leases()
                .filter(|l| addr.is_none_or(|a| a == l.address))
                .filter(|l| mac.is_none_or(|m| l.mac() == Some(m)))
                .map(|l| {
                    json!({
                        "address": l.address,
                        "state": l.state.as_str(),
                        "mac": l.mac().map(|m| packet::fmt_mac(&m)),
                        "client_id": l.client_id.as_ref().map(|c| hex(c)),
                        "hostname": l.hostname,
                        "subnet": l.subnet,
                        "expires_in": l.expires_at as i64 - now.unix as i64,
                        "held_for": l.held_until as i64 - now.unix as i64,
                        "cltt": l.cltt,
                        "expires_at": l.expires_at,
                        "pet_sent": l.pet_sent,
                        "pet_acked": l.pet_acked,
                        "pet_received": l.pet_received,
                    })
                })
                .collect();
            json!({ "leases": leases })
        }
        Request::Stats => stats(core),
        Request::Metrics => json!({ "text": metrics(core) }),
        Request::FailoverStatus | Request::FailoverPartnerDown { .. } => match &core.failover {
            Some(f) => f.fo.status(&core.server, now.unix),
            None => json!({"error": "no [failover] relationship is configured"}),
        },
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn stats(core: &Core) -> Value {
    let c = core.server.counters();
    let received: serde_json::Map<String, Value> =
        RECEIVED_TYPES.iter().zip(c.received).map(|(t, n)| ((*t).to_owned(), n.into())).collect();
    let dropped: serde_json::Map<String, Value> = crate::server::DropReason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), c.dropped(*r).into()))
        .collect();
    let mut fast = serde_json::Map::new();
    if let Some(k) = &core.kmaps {
        for i in &k.ifaces {
            if let Ok(s) = i.maps.stats() {
                fast.insert(i.name.clone(), s.to_json());
            }
        }
    }
    let m = &core.commits;
    json!({
        "received": received,
        "sent": { "offer": c.offers, "ack": c.acks, "nak": c.naks, "inform_ack": c.informs },
        "declines": c.declines,
        "releases": c.releases,
        "dropped": dropped,
        "fast_path_renewals_recorded": core.fast_path_renewals,
        "fast_path": fast,
        "store": {
            "commits": m.commits,
            "changes": m.changes,
            "mean_commit_us": (m.total.as_micros() as u64).checked_div(m.commits).unwrap_or(0),
            "max_commit_us": m.max.as_micros() as u64,
        },
        "pools": pools(core),
    })
}

fn pools(core: &Core) -> Vec<Value> {
    core.cfg
        .subnets
        .iter()
        .map(|s| {
            let size: u64 = s.pools.iter().map(crate::config::Pool::size).sum();
            let active = core
                .server
                .leases()
                .filter(|l| l.subnet == s.id.0 && l.state == LeaseState::Active)
                .filter(|l| s.pools.iter().any(|p| p.start <= l.address && l.address <= p.end))
                .count();
            json!({ "subnet": s.prefix.to_string(), "size": size, "active": active })
        })
        .collect()
}

fn metrics(core: &Core) -> String {
    let v = stats(core);
    let mut out = String::new();
    let mut line = |name: &str, labels: &str, val: &Value| {
        if let Some(n) = val.as_u64() {
            out.push_str(&format!("{name}{labels} {n}\n"));
        }
    };
    for (k, n) in v["received"].as_object().into_iter().flatten() {
        line("xdhcp_received_total", &format!("{{type=\"{k}\"}}"), n);
    }
    for (k, n) in v["sent"].as_object().into_iter().flatten() {
        line("xdhcp_sent_total", &format!("{{type=\"{k}\"}}"), n);
    }
    for (k, n) in v["dropped"].as_object().into_iter().flatten() {
        line("xdhcp_dropped_total", &format!("{{reason=\"{k}\"}}"), n);
    }
    for (iface, counters) in v["fast_path"].as_object().into_iter().flatten() {
        for (k, n) in counters.as_object().into_iter().flatten() {
            line(
                "xdhcp_fast_path_packets_total",
                &format!("{{iface=\"{iface}\",outcome=\"{k}\"}}"),
                n,
            );
        }
    }
    line("xdhcp_fast_path_renewals_recorded_total", "", &v["fast_path_renewals_recorded"]);
    line("xdhcp_store_commits_total", "", &v["store"]["commits"]);
    line("xdhcp_store_commit_mean_microseconds", "", &v["store"]["mean_commit_us"]);
    line("xdhcp_store_commit_max_microseconds", "", &v["store"]["max_commit_us"]);
    if let Some(f) = &core.failover {
        let st = f.fo.status(&core.server, 0);
        for (side, k) in [("self", "my_state"), ("partner", "partner_state")] {
            let state = st[k].as_str().unwrap_or("unknown");
            line(
                "xdhcp_failover_state",
                &format!("{{side=\"{side}\",state=\"{state}\"}}"),
                &1.into(),
            );
        }
        for k in [
            "updates_unacked",
            "updates_queued",
            "updates_sent_total",
            "acks_received_total",
            "rejects_received_total",
            "refused_share_exhausted_total",
            "balanced_moved_total",
        ] {
            line(&format!("xdhcp_failover_{k}"), "", &st[k]);
        }
        for p in st["pools"].as_array().into_iter().flatten() {
            let subnet = p["subnet"].as_str().unwrap_or("");
            for (owner, k) in [("self", "share_ours_free"), ("partner", "share_partner_free")] {
                line(
                    "xdhcp_failover_share_free",
                    &format!("{{subnet=\"{subnet}\",owner=\"{owner}\"}}"),
                    &p[k],
                );
            }
        }
    }
    for p in v["pools"].as_array().into_iter().flatten() {
        let l = format!("{{subnet=\"{}\"}}", p["subnet"].as_str().unwrap_or(""));
        line("xdhcp_pool_size", &l, &p["size"]);
        line("xdhcp_pool_active", &l, &p["active"]);
    }
    out
}

//! The control socket: one JSON request per line, one JSON answer per line. The core answers
//! from the state it owns, between two batches ([`crate::core::control`]).
use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream as StdUnixStream,
    path::Path,
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use tokio::{
    io::{
        AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader as AsyncBufReader,
    },
    net::UnixListener,
    sync::{mpsc, oneshot},
};

use crate::core::{Input, Measured};
pub use crate::core::{LeaseQuery, PAGE_MAX, Request};

/// How the core's answer reaches the connection that asked.
pub type ReplyTo = oneshot::Sender<Value>;

/// Listens on `path`, a socket only the daemon's user and `access`'s group may use (it answers
/// every lease query: subscriber data).
pub(super) fn listen(
    path: &Path,
    access: crate::access::Access,
    tx: mpsc::Sender<Input<ReplyTo>>,
) -> Result<tokio::task::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    // A socket left by a killed daemon would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .with_context(|| format!("bind control socket {}", path.display()))?;
    access.socket(path).with_context(|| format!("set the mode of {}", path.display()))?;
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
                            if tx
                                .send(Input::Control { req, reply, measured: Measured::default() })
                                .await
                                .is_err()
                            {
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
    tx: mpsc::Sender<Input<ReplyTo>>,
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
                if tx
                    .send(Input::Control {
                        req: Request::Metrics,
                        reply,
                        measured: Measured::default(),
                    })
                    .await
                    .is_err()
                {
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

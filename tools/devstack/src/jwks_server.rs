//! A tiny HTTP server answering `GET /.well-known/jwks.json` (and `/jwks.json`) with a JWK set,
//! so the config API can verify local tokens through the same `JWT_JWKS_URL` path as in AWS.
//! Loopback use only: it serves one fixed document and nothing else.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The path the JWKS is served at.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// A running JWKS server; stops when dropped.
#[derive(Debug)]
pub struct JwksServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves `jwks_json` on `listener` in a background task.
    pub fn start(listener: TcpListener, jwks_json: String) -> anyhow::Result<JwksServer> {
        let addr = listener.local_addr().context("listener address")?;
        let body: Arc<str> = Arc::from(jwks_json);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let body = Arc::clone(&body);
                tokio::spawn(async move {
                    let _ = answer(stream, &body).await;
                });
            }
        });
        Ok(JwksServer { addr, task })
    }

    /// Binds `addr` and serves `jwks_json`.
    pub async fn bind(addr: SocketAddr, jwks_json: String) -> anyhow::Result<JwksServer> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        JwksServer::start(listener, jwks_json)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/.well-known/jwks.json`.
    pub fn url(&self) -> String {
        format!("http://{}{JWKS_PATH}", self.addr)
    }

    /// Waits until the server task ends (it only ends when aborted).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .is_err()
    {
        return Ok(());
    }
    let line = request
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let path = parts
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default();
    let (status, content_type, payload) = match (method, path) {
        ("GET" | "HEAD", JWKS_PATH | "/jwks.json") => ("200 OK", "application/json", body),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n"),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n",
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: max-age=60\r\nconnection: close\r\n\r\n",
        payload.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(payload.as_bytes()).await?;
    }
    stream.shutdown().await
}

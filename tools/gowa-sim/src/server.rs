//! A small HTTP/1 server around an axum router whose listener and open connections can be
//! closed and reopened on the same port.
//!
//! `axum::serve` keeps serving open keep-alive connections after its listener is gone, so a
//! client with a pooled connection would still get answers from a "down" server. Here every
//! connection task lives in the accept loop's `JoinSet`: stopping the loop drops the listener
//! (new connections are refused) and aborts every connection (pooled ones are closed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::chaos::ConnectionKill;

/// Asked at each accept: whether the new connection closes with a reset (`SO_LINGER` 0)
/// rather than a FIN, for the chaos `reset` fault.
pub(crate) type ResetOnClose = Arc<dyn Fn() -> bool + Send + Sync>;

/// A running accept loop.
#[derive(Debug)]
pub(crate) struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Serving {
    /// Serves `router` on an already bound listener.
    pub fn start(listener: TcpListener, router: Router, name: &'static str) -> Self {
        Self::start_with(listener, router, name, None)
    }

    /// [`Serving::start`], asking `reset_on_close` at each accept.
    pub fn start_with(
        listener: TcpListener,
        router: Router,
        name: &'static str,
        reset_on_close: Option<ResetOnClose>,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, router, stopped, name, reset_on_close));
        Self { stop, task }
    }

    /// Closes the listener and every open connection, and waits until they are closed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }

    /// Stops without waiting (for `Drop`).
    pub fn abort(&self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut stopped: oneshot::Receiver<()>,
    name: &'static str,
    reset_on_close: Option<ResetOnClose>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    if reset_on_close.as_ref().is_some_and(|reset| reset()) {
                        let _ = stream.set_zero_linger();
                    }
                    // A handler may close its own connection (the chaos `reset` fault).
                    let kill = Arc::new(Notify::new());
                    let service = TowerToHyperService::new(
                        router.clone().layer(Extension(ConnectionKill(kill.clone()))),
                    );
                    connections.spawn(async move {
                        let serve = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::select! {
                            _ = serve => {}
                            _ = kill.notified() => {}
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(server = name, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Binds `addr`, retrying for a moment while the port is still held (after a stop).
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let mut last_error = None;
    for _ in 0..50 {
        // tokio sets SO_REUSEADDR on Unix, so closed connections in TIME_WAIT do not block.
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                last_error = Some(err);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            Err(err) => return Err(err).with_context(|| format!("binding {addr}")),
        }
    }
    Err(last_error.map_or_else(|| anyhow::anyhow!("address in use"), anyhow::Error::from))
        .with_context(|| format!("binding {addr}"))
}

/// Refuses any address that is not loopback.
pub(crate) fn ensure_loopback(addr: SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "refusing to listen on {addr}: the simulator only binds loopback addresses (127.0.0.1 or ::1)"
    );
    Ok(())
}

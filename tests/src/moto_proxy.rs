//! A proxy in front of moto_server that passes DynamoDB requests one at a time, with traps a
//! crash test arms to stop a sender at a chosen write.
//!
//! DynamoDB applies each conditional write atomically; moto_server serves concurrent requests
//! on threads without that guarantee (two concurrent `ADD` under `count < limit` can both
//! succeed, and its transactions fail with "dictionary changed size during iteration"). Tests
//! of concurrent writers go through this proxy so they test wagate, not moto's threading.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use tokio::sync::oneshot;

/// Where an armed trap stops the next matching request of the sender behind the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trap {
    /// A lock write (`begin`: `SET #state = :inprog ...`, alone or in a transaction) is held
    /// and never reaches moto: the sender stops before its lock.
    BeforeLock,
    /// A lock write reaches moto, its answer is held: the sender stops after its lock.
    AfterLock,
    /// An outcome write recording `sent` is held: the server took the message, the record
    /// is not written.
    BeforeSentRecord,
}

/// What a sprung trap saw.
#[derive(Debug, Clone)]
pub struct Sprung {
    pub trap: Trap,
    /// The request's body (the record keys are in it).
    pub body: String,
}

type Armed = Option<(Trap, oneshot::Sender<Sprung>)>;

/// A running proxy.
#[derive(Clone)]
pub struct MotoProxy {
    pub url: String,
    armed: Arc<Mutex<Armed>>,
    /// Requests inside the proxy now (held by a trap, waiting for the gate or for moto).
    inflight: Arc<std::sync::atomic::AtomicUsize>,
    /// Each request's operation (`X-Amz-Target`, or the query `Action`) and how long moto
    /// took to answer it (the gate's wait apart).
    timings: Arc<Mutex<Vec<(String, std::time::Duration)>>>,
}

/// Counts a request while the proxy holds it.
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl MotoProxy {
    /// Arms `trap`; the receiver fires when a request springs it (the request then hangs).
    pub fn arm(&self, trap: Trap) -> oneshot::Receiver<Sprung> {
        let (tx, rx) = oneshot::channel();
        *self.armed.lock().unwrap() = Some((trap, tx));
        rx
    }

    /// Every request passed on so far: its operation and moto's time to answer it.
    pub fn timings(&self) -> Vec<(String, std::time::Duration)> {
        self.timings.lock().unwrap().clone()
    }

    /// Requests inside the proxy now.
    pub fn in_flight(&self) -> usize {
        self.inflight.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn disarm(&self) {
        *self.armed.lock().unwrap() = None;
    }

    fn take_if(&self, body: &str, after: bool) -> Option<(Trap, oneshot::Sender<Sprung>)> {
        let mut armed = self.armed.lock().unwrap();
        let trap = armed.as_ref()?.0;
        let lock_write = body.contains(":inprog") && body.contains("lockExpiresAt = :until");
        let hit = match trap {
            Trap::BeforeLock => !after && lock_write,
            Trap::AfterLock => after && lock_write,
            Trap::BeforeSentRecord => {
                !after
                    && body.contains("REMOVE lockOwner")
                    && body.contains(r#"":state":{"S":"sent"}"#)
            }
        };
        if hit { armed.take() } else { None }
    }
}

/// Starts a proxy to moto_server (`AWS_ENDPOINT_URL`); `gate` serializes requests across
/// every proxy sharing it (`serialize_all`: every request, else only `TransactWriteItems`).
pub async fn start(gate: Arc<tokio::sync::Mutex<()>>, serialize_all: bool) -> MotoProxy {
    let upstream = crate::moto_endpoint();
    let client = reqwest::Client::new();
    let proxy = MotoProxy {
        url: String::new(),
        armed: Arc::new(Mutex::new(None)),
        inflight: Arc::default(),
        timings: Arc::default(),
    };
    let traps = proxy.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (client, gate, upstream, traps) = (
                client.clone(),
                gate.clone(),
                upstream.clone(),
                traps.clone(),
            );
            async move {
                traps
                    .inflight
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _counted = InFlight(traps.inflight.clone());
                let text = String::from_utf8_lossy(&body).into_owned();
                // Held only while the test waits for it (else it passes on).
                if let Some((trap, tx)) = traps.take_if(&text, false)
                    && tx
                        .send(Sprung {
                            trap,
                            body: text.clone(),
                        })
                        .is_ok()
                {
                    std::future::pending::<()>().await;
                }
                let transaction = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|t| t.ends_with("TransactWriteItems"));
                let one_at_a_time = if transaction || serialize_all {
                    Some(gate.lock().await)
                } else {
                    None
                };
                let operation = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
                    .or_else(|| {
                        text.split('&')
                            .find_map(|kv| kv.strip_prefix("Action="))
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| "unknown".into());
                let asked = std::time::Instant::now();
                let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let mut req = client
                    .request(method, format!("{upstream}{path}"))
                    .body(body);
                for (name, value) in &headers {
                    if name != "host" && name != "content-length" {
                        req = req.header(name, value);
                    }
                }
                let resp = match req.send().await {
                    Ok(resp) => resp,
                    Err(err) => {
                        // Out of sockets or moto gone: an answer the SDK retries, not a
                        // panic that drops the connection.
                        tracing::warn!(error = %err, "moto_server did not answer");
                        return axum::http::Response::builder()
                            .status(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                            .body(axum::body::Body::from("moto_server did not answer"))
                            .unwrap();
                    }
                };
                let status = resp.status();
                let mut out = axum::http::Response::builder().status(status);
                for (name, value) in resp.headers() {
                    if name != "content-length"
                        && name != "transfer-encoding"
                        && name != "connection"
                    {
                        out = out.header(name, value);
                    }
                }
                let Ok(bytes) = resp.bytes().await else {
                    return axum::http::Response::builder()
                        .status(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                        .body(axum::body::Body::from("moto_server's answer was cut"))
                        .unwrap();
                };
                drop(one_at_a_time);
                traps
                    .timings
                    .lock()
                    .unwrap()
                    .push((operation, asked.elapsed()));
                if status.is_success()
                    && let Some((trap, tx)) = traps.take_if(&text, true)
                    && tx.send(Sprung { trap, body: text }).is_ok()
                {
                    std::future::pending::<()>().await;
                }
                out.body(axum::body::Body::from(bytes)).unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    MotoProxy {
        url: format!("http://{addr}"),
        ..proxy
    }
}

//! A function binary run as Lambda runs it, behind a local Lambda Runtime API
//! (`AWS_LAMBDA_RUNTIME_API`), with cargo-lambda's invoke API in front
//! (`POST /2015-03-31/functions/<name>/invocations`, what the devstack's
//! [`wagate_devstack::event_source::Invoker`] calls), so a test can drive the real process
//! with the devstack's event sources, SIGKILL it at any moment and start a new one.
//!
//! An invocation whose process dies before it answered ends as a function error (HTTP 500 on
//! the invoke API), as Lambda reports a crashed runtime: the event source keeps its records.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot};

/// How an invocation ended, as the invoke API tells it.
#[derive(Debug)]
enum Answer {
    Response(String),
    Error(String),
}

type Invocation = (Value, oneshot::Sender<Answer>);

/// A hook the response route calls before passing an answer on: `false` drops the answer
/// (the test kills the process "during the batch response").
pub type OnResponse = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct Api {
    queue: Mutex<mpsc::Receiver<Invocation>>,
    /// Invocations handed to the process, by request id, with their events and when.
    current: Mutex<HashMap<String, (Value, oneshot::Sender<Answer>)>>,
    since: Mutex<HashMap<String, std::time::Instant>>,
    invoke: mpsc::Sender<Invocation>,
    timeout: Duration,
    on_response: std::sync::Mutex<Option<OnResponse>>,
    /// Invocations sent to the invoke API and not yet taken by a `next`.
    waiting: std::sync::atomic::AtomicUsize,
    /// `next` long-polls open now.
    polling: std::sync::atomic::AtomicUsize,
    /// When the current process was started, until its first `next` (its init).
    spawned: std::sync::Mutex<Option<std::time::Instant>>,
    /// Init durations (process start to its first `next`), one per process started.
    inits: std::sync::Mutex<Vec<Duration>>,
    /// Invocation durations (handed out by `next` to answered), in order: what Lambda
    /// reports as an invocation's Duration.
    durations: std::sync::Mutex<Vec<Duration>>,
}

/// What an instance is doing, for a stall report.
#[derive(Debug, Clone)]
pub struct Status {
    pub pid: Option<u32>,
    /// The process ended by itself (its exit status), not by a kill.
    pub exited: Option<String>,
    /// Invocations queued for the process, not yet taken by a `next`.
    pub waiting: usize,
    /// `next` long-polls the process has open.
    pub polling: usize,
    /// Invocations the process holds, and for how long the oldest.
    pub held: usize,
    pub oldest: Duration,
}

/// A process's memory, in KiB ([`Instance::memory`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Peak resident set (`VmHWM`).
    pub peak_kib: u64,
    /// Resident anonymous memory now: heap, stacks.
    pub anon_kib: u64,
    /// Resident file-backed pages now: code and read-only data of the binary and libraries.
    pub file_kib: u64,
}

/// One function "instance": its Runtime API, its invoke API and its process.
pub struct Instance {
    api: Arc<Api>,
    /// `http://127.0.0.1:<port>`: the invoke API (and the Runtime API) of this instance.
    pub url: String,
    binary: PathBuf,
    env: BTreeMap<String, String>,
    child: Mutex<Option<Child>>,
    name: String,
    /// The APIs' server task, stopped with the instance.
    server: tokio::task::AbortHandle,
}

impl Instance {
    /// Starts the APIs and the process of `binary` with `env`; invocations get `timeout`.
    pub async fn start(
        name: &str,
        binary: PathBuf,
        env: BTreeMap<String, String>,
        timeout: Duration,
    ) -> anyhow::Result<Instance> {
        let (invoke, queue) = mpsc::channel(16);
        let api = Arc::new(Api {
            queue: Mutex::new(queue),
            current: Mutex::new(HashMap::new()),
            since: Mutex::new(HashMap::new()),
            invoke,
            timeout,
            on_response: std::sync::Mutex::new(None),
            waiting: Default::default(),
            polling: Default::default(),
            spawned: Default::default(),
            inits: Default::default(),
            durations: Default::default(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route(
                "/2015-03-31/functions/{name}/invocations",
                post(invoke_route),
            )
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move { axum::serve(listener, app).await }).abort_handle();
        let instance = Instance {
            server,
            api,
            url: format!("http://{addr}"),
            binary,
            env,
            child: Mutex::new(None),
            name: name.to_owned(),
        };
        instance.spawn().await?;
        Ok(instance)
    }

    async fn spawn(&self) -> anyhow::Result<()> {
        let addr = self.url.trim_start_matches("http://").to_owned();
        // Init counts from here, as the benchmark always counted it (spawn included).
        *self.api.spawned.lock().unwrap() = Some(std::time::Instant::now());
        let child = std::process::Command::new(&self.binary)
            .envs(&self.env)
            .env("AWS_LAMBDA_RUNTIME_API", addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", &self.name)
            .env("AWS_LAMBDA_LOG_GROUP_NAME", &self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", self.binary.display()))?;
        *self.child.lock().await = Some(child);
        Ok(())
    }

    /// The current process's init (from its start to its first `next` request, as Lambda
    /// counts it), waiting for it; `Err` when it did not get there within `timeout`.
    pub async fn init_duration(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let deadline = std::time::Instant::now() + timeout;
        while self.api.spawned.lock().unwrap().is_some() {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("{}: no `next` request within {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.init_durations()
            .last()
            .copied()
            .ok_or_else(|| anyhow::anyhow!("{}: no process started", self.name))
    }

    /// Invokes the process directly (without the invoke API's HTTP hop): the answer's body and
    /// the time from handing the event out to the answer. A function error is an `Err`.
    pub async fn invoke(&self, event: Value) -> anyhow::Result<(String, Duration)> {
        let (tx, rx) = oneshot::channel();
        let sent = std::time::Instant::now();
        self.api
            .waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.api
            .invoke
            .send((event, tx))
            .await
            .map_err(|_| anyhow::anyhow!("{}: the stub stopped", self.name))?;
        match tokio::time::timeout(self.api.timeout + Duration::from_secs(2), rx).await {
            Ok(Ok(Answer::Response(body))) => Ok((body, sent.elapsed())),
            Ok(Ok(Answer::Error(body))) => anyhow::bail!("{}: function error: {body}", self.name),
            Ok(Err(_)) => anyhow::bail!("{}: the invocation was dropped", self.name),
            Err(_) => anyhow::bail!("{}: the invocation timed out", self.name),
        }
    }

    /// The current process's memory from `/proc/<pid>/`: peak RSS (`VmHWM`), and the RSS now
    /// split into anonymous memory (heap, stacks) and file-backed pages (the binary's code
    /// and read-only data, shared libraries), in KiB.
    pub async fn memory(&self) -> Option<Memory> {
        let pid = self.pid().await?;
        let field = |text: &str, name: &str| -> Option<u64> {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let rss = field(&rollup, "Rss:")?;
        let anon = field(&rollup, "Anonymous:")?;
        Some(Memory {
            peak_kib: field(&status, "VmHWM:")?,
            anon_kib: anon,
            file_kib: rss.saturating_sub(anon),
        })
    }

    /// The CPU time the current process has used so far, all its threads summed
    /// (`/proc/<pid>/task/*/schedstat`, nanoseconds on a CPU): unlike wall time, it does not
    /// count waiting for moto_server or for a busy machine's cores.
    pub async fn cpu_time(&self) -> Option<Duration> {
        let pid = self.pid().await?;
        let mut total = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let path = task.ok()?.path().join("schedstat");
            if let Some(ns) = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                total += ns;
            }
        }
        Some(Duration::from_nanos(total))
    }

    /// Each process's init: from its start to its first `next` (first process first).
    pub fn init_durations(&self) -> Vec<Duration> {
        self.api.inits.lock().unwrap().clone()
    }

    /// Each answered invocation's duration (from `next` handing it out to the response or
    /// error), in order: the first after an init is a cold invocation, the rest warm.
    pub fn invocation_durations(&self) -> Vec<Duration> {
        self.api.durations.lock().unwrap().clone()
    }

    /// The running process's peak resident set (`VmHWM`), in KiB.
    pub async fn peak_rss_kib(&self) -> Option<u64> {
        self.memory().await.map(|m| m.peak_kib)
    }

    /// What the instance is doing now.
    pub async fn status(&self) -> Status {
        let (pid, exited) = {
            let mut child = self.child.lock().await;
            match child.as_mut() {
                Some(c) => (
                    Some(c.id()),
                    c.try_wait().ok().flatten().map(|s| s.to_string()),
                ),
                None => (None, None),
            }
        };
        let held = self.api.current.lock().await.len();
        let oldest = self.stuck_for().await;
        Status {
            pid,
            exited,
            waiting: self.api.waiting.load(std::sync::atomic::Ordering::Relaxed),
            polling: self.api.polling.load(std::sync::atomic::Ordering::Relaxed),
            held,
            oldest,
        }
    }

    /// The process id, while one runs.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_ref().map(Child::id)
    }

    /// Sets (or clears) the hook on answers.
    pub fn on_response(&self, hook: Option<OnResponse>) {
        *self.api.on_response.lock().unwrap() = hook;
    }

    /// The events of the invocations the process holds now.
    pub async fn in_flight(&self) -> Vec<Value> {
        self.api
            .current
            .lock()
            .await
            .values()
            .map(|(event, _)| event.clone())
            .collect()
    }

    /// SIGKILLs the process, fails the invocations it held (their events are returned) and
    /// starts a new process.
    pub async fn kill_and_restart(&self) -> anyhow::Result<Vec<Value>> {
        let events = self.kill().await;
        self.spawn().await?;
        Ok(events)
    }

    /// How long the oldest invocation the process holds has been held (zero when none).
    pub async fn stuck_for(&self) -> Duration {
        let current = self.api.current.lock().await;
        let since = self.api.since.lock().await;
        current
            .keys()
            .filter_map(|id| since.get(id))
            .map(|t| t.elapsed())
            .max()
            .unwrap_or_default()
    }

    /// SIGKILLs the process and fails the invocations it held; returns their events.
    pub async fn kill(&self) -> Vec<Value> {
        if let Some(mut child) = self.child.lock().await.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let held: Vec<_> = self.api.current.lock().await.drain().collect();
        held.into_iter()
            .map(|(_, (event, tx))| {
                let _ = tx.send(Answer::Error("the runtime process was killed".into()));
                event
            })
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
        if let Ok(mut child) = self.child.try_lock()
            && let Some(mut child) = child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Counts while alive (a `next` long-poll open).
struct Polling(Arc<Api>);

impl Drop for Polling {
    fn drop(&mut self) {
        self.0
            .polling
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn next(State(api): State<Arc<Api>>) -> axum::response::Response {
    if let Some(spawned) = api.spawned.lock().unwrap().take() {
        api.inits.lock().unwrap().push(spawned.elapsed());
    }
    api.polling
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let polling = Polling(api.clone());
    let Some((event, tx)) = api.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    drop(polling);
    api.waiting
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let id = uuid::Uuid::new_v4().to_string();
    let deadline = time::OffsetDateTime::now_utc() + api.timeout;
    let deadline_ms = deadline.unix_timestamp_nanos() / 1_000_000;
    let body = event.to_string();
    api.current.lock().await.insert(id.clone(), (event, tx));
    api.since
        .lock()
        .await
        .insert(id.clone(), std::time::Instant::now());
    (
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:soak".into(),
            ),
            ("content-type", "application/json".into()),
        ],
        body,
    )
        .into_response()
}

async fn response(State(api): State<Arc<Api>>, Path(id): Path<String>, body: String) -> StatusCode {
    let hook = api.on_response.lock().unwrap().clone();
    if let Some(hook) = hook
        && !hook(&id)
    {
        // The test kills the process now; the invocation fails with it.
        return StatusCode::ACCEPTED;
    }
    if let Some((_, tx)) = api.current.lock().await.remove(&id) {
        record_duration(&api, &id).await;
        let _ = tx.send(Answer::Response(body));
    }
    StatusCode::ACCEPTED
}

async fn error(State(api): State<Arc<Api>>, Path(id): Path<String>, body: String) -> StatusCode {
    if let Some((_, tx)) = api.current.lock().await.remove(&id) {
        record_duration(&api, &id).await;
        let _ = tx.send(Answer::Error(body));
    }
    StatusCode::ACCEPTED
}

async fn record_duration(api: &Api, id: &str) {
    if let Some(since) = api.since.lock().await.remove(id) {
        api.durations.lock().unwrap().push(since.elapsed());
    }
}

async fn init_error(body: String) -> StatusCode {
    tracing::warn!(%body, "function init error");
    StatusCode::ACCEPTED
}

async fn invoke_route(
    State(api): State<Arc<Api>>,
    Path(_name): Path<String>,
    body: String,
) -> impl IntoResponse {
    let event: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (tx, rx) = oneshot::channel();
    api.waiting
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if api.invoke.send((event, tx)).await.is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "stub stopped".to_owned());
    }
    match tokio::time::timeout(api.timeout + Duration::from_secs(2), rx).await {
        Ok(Ok(Answer::Response(body))) => (StatusCode::OK, body),
        Ok(Ok(Answer::Error(body))) => (StatusCode::INTERNAL_SERVER_ERROR, body),
        Ok(Err(_)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the invocation was dropped".to_owned(),
        ),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "timed out".to_owned()),
    }
}

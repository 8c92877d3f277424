//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use gowa_sim::{SimConfig, SimHandle, start};
use serde_json::Value;

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Hit {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON webhook body")
    }
}

#[derive(Clone, Default)]
struct Inbox {
    hits: Arc<Mutex<Vec<Hit>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

/// A webhook receiver on 127.0.0.1 answering `answers` in turn, then 200.
pub struct Receiver {
    pub url: String,
    inbox: Inbox,
}

impl Receiver {
    pub async fn start(answers: &[u16]) -> Self {
        let inbox = Inbox {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            ..Inbox::default()
        };
        let app = Router::new()
            .route("/webhooks/whatsapp/tenant-42", post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/webhooks/whatsapp/tenant-42",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inbox }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inbox.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (a generous bound, not a speed check).
    pub async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} webhook(s), got {}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    inbox.hits.lock().unwrap().push(Hit { headers, body });
    let answer = inbox.answers.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(answer).unwrap()
}

/// A recipient number that passes GOWA's checks.
pub const PHONE: &str = "6289685028129";
/// The JID the simulator turns `PHONE` into.
pub const PHONE_JID: &str = "6289685028129@s.whatsapp.net";

/// A client that talks straight to 127.0.0.1 (no proxy from the environment).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// A simulator with the default config: no auth, one logged-in device `demo`.
pub async fn default_sim() -> SimHandle {
    start(SimConfig::default()).await.expect("simulator starts")
}

/// The bytes of a GOWA sample in `tests/fixtures/gowa/` at the workspace root.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gowa")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// The four GOWA samples.
pub const SAMPLES: [&str; 4] = [
    "gowa-message-text-incoming.json",
    "gowa-message-image-group-with-caption.json",
    "gowa-message-ack-delivered.json",
    "gowa-group-participants-join.json",
];

/// Status and parsed JSON body of a response.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", String::from_utf8_lossy(&body)));
    (status, json)
}

/// Sends a text message as JSON.
pub async fn send_text(sim: &SimHandle, phone: &str, message: &str) -> reqwest::Response {
    client()
        .post(format!("{}/send/message", sim.base_url()))
        .json(&serde_json::json!({ "phone": phone, "message": message }))
        .send()
        .await
        .expect("request sent")
}

/// Asserts the body is GOWA's success envelope for a send and returns the message id.
pub fn assert_send_success(body: &Value, verb: &str) -> String {
    assert_eq!(body["code"], "SUCCESS", "{body}");
    let status = body["results"]["status"].as_str().expect("results.status");
    assert!(
        status.starts_with(&format!("{verb} sent to {PHONE_JID} (server timestamp: ")),
        "{status}"
    );
    assert_eq!(body["message"].as_str(), Some(status));
    assert!(
        body.get("status").is_none(),
        "GOWA never puts the HTTP status in the body"
    );
    let id = body["results"]["message_id"].as_str().expect("message_id");
    assert!(id.starts_with("3EB0") && id.len() == 22, "{id}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    id.to_owned()
}

/// A simulator of `kind` with quick receipts (20 ms apart) and quick retries, requiring
/// `key` when given, with a control port.
pub async fn kind_sim(kind: gowa_sim::Kind, key: Option<&str>) -> SimHandle {
    let mut config = SimConfig::for_kind(kind);
    config.api_key = key.map(str::to_owned);
    config.receipts = gowa_sim::Receipts {
        delivered_ms: Some(20),
        read_ms: Some(20),
    };
    config.webhook_retry = gowa_sim::RetryPolicy::for_kind(kind).scaled(1000);
    config.webhook_retry.attempt_timeout_ms = 10_000;
    config.webhook_retry.deadline_ms = 60_000;
    let any = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
    gowa_sim::start_on(config, any, Some(any))
        .await
        .expect("simulator starts")
}

/// HMAC of `body` with `key` computed by Python's `hmac` module (an implementation independent
/// of the simulator's): lowercase hex.
pub fn python_hmac(algorithm: &str, key: &str, body: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import hmac,hashlib,sys; key=sys.argv[1].encode(); algo=getattr(hashlib, sys.argv[2]); print(hmac.new(key, sys.stdin.buffer.read(), algo).hexdigest())",
            key,
            algorithm,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Verifies an HS256 JWT with Python (independent of the simulator) and returns its claims.
pub fn python_jwt_claims(token: &str, key: &str) -> Value {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            concat!(
                "import base64,hmac,hashlib,json,sys\n",
                "t,k=sys.argv[1],sys.argv[2].encode()\n",
                "h,p,s=t.split('.')\n",
                "pad=lambda x: x+'='*(-len(x)%4)\n",
                "sig=base64.urlsafe_b64decode(pad(s))\n",
                "want=hmac.new(k,(h+'.'+p).encode(),hashlib.sha256).digest()\n",
                "assert hmac.compare_digest(sig,want), 'bad signature'\n",
                "assert json.loads(base64.urlsafe_b64decode(pad(h)))['alg']=='HS256'\n",
                "print(base64.urlsafe_b64decode(pad(p)).decode())\n",
            ),
            token,
            key,
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 refused the JWT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The control API's URL of `sim`.
pub fn control(sim: &SimHandle) -> String {
    sim.control_url().expect("a control port")
}

/// The body of a hit as text.
pub fn text_of(hit: &Hit) -> String {
    String::from_utf8(hit.body.to_vec()).expect("UTF-8")
}

/// A header of a hit.
pub fn header(hit: &Hit, name: &str) -> Option<String> {
    hit.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Waits until the simulator has recorded at least `n` events.
pub async fn wait_events(sim: &SimHandle, n: usize) -> Vec<gowa_sim::EventRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = sim.events();
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} event(s), got {}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

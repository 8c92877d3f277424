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

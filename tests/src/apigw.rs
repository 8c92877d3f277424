//! A local stand-in for API Gateway's HTTP API in front of a real function binary: it turns
//! each HTTP request into the payload-v2 event API Gateway would send (headers lower-cased,
//! repeated headers joined with a comma, a body that is not UTF-8 base64-encoded with
//! `isBase64Encoded`), invokes the function through `cargo lambda watch`'s Lambda invoke API,
//! and turns the function's response back into HTTP. A failed invocation is 500, as API
//! Gateway answers it.
//!
//! cargo-lambda's own function URLs answer some requests themselves (a body that is not UTF-8
//! gets its own 500, duplicate headers pass only the first, see STYLE.md): a tool that sends
//! arbitrary requests, like schemathesis, needs API Gateway's behaviour instead.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

#[derive(Clone)]
struct Door {
    http: reqwest::Client,
    invoke_url: String,
}

/// The API Gateway v2 event of one HTTP request.
pub fn event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Value {
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        joined
            .entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    let mut ev = crate::ApiEvent::new(method, path)
        .query(query)
        .source_ip("127.0.0.1");
    ev.headers = joined;
    ev.base64 = std::str::from_utf8(body).is_err();
    ev.body = (!body.is_empty()).then(|| body.to_vec());
    let mut v = ev.event_json();
    v["requestContext"]["requestId"] = json!(uuid::Uuid::new_v4().to_string());
    v
}

async fn forward(State(door): State<Door>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body: Bytes = axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let ev = event(&method, &path, &query, &headers, &body);
    let failed = |why: String| {
        Response::builder()
            .status(500)
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"message": "Internal Server Error", "frontDoor": why}).to_string(),
            ))
            .unwrap()
    };
    let resp = match door.http.post(&door.invoke_url).json(&ev).send().await {
        Ok(r) => r,
        Err(e) => return failed(format!("invoke failed: {e}")),
    };
    let status = resp.status();
    let out: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => return failed(format!("invoke answered no JSON: {e}")),
    };
    let Some(code) = out["statusCode"].as_u64().filter(|_| status.is_success()) else {
        return failed(format!("the function failed: {out}"));
    };
    let mut builder = Response::builder().status(code as u16);
    if let Some(h) = out["headers"].as_object() {
        for (name, value) in h {
            if let Some(v) = value.as_str() {
                builder = builder.header(name, v);
            }
        }
    }
    if let Some(h) = out["multiValueHeaders"].as_object() {
        for (name, values) in h {
            for v in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                builder = builder.header(name, v);
            }
        }
    }
    let text = out["body"].as_str().unwrap_or("");
    let bytes = if out["isBase64Encoded"].as_bool().unwrap_or(false) {
        B64.decode(text).unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    builder.body(Body::from(bytes)).unwrap()
}

/// Serves the front door on a free loopback port; returns its base URL.
pub async fn start(invoke_url: String) -> (String, tokio::task::JoinHandle<()>) {
    let door = Door {
        // API Gateway gives up on an integration after 30 s; so does this.
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap(),
        invoke_url,
    };
    let app = axum::Router::new().fallback(forward).with_state(door);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

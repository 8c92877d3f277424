//! Secrets never reach the logs or an error response (its own test binary, so no other
//! test's threads share the process-wide tracing state with the capture).

use http::StatusCode;
use serde_json::{Value, json};
use wagate_tests::api::{PATH, api};
use wagate_tests::{ApiEvent, LogCapture};

const PASSWORD: &str = "gowa-password-5d2f81";
const WEBHOOK_SECRET: &str = "webhook-secret-a8c3e0";

fn valid_body() -> Value {
    json!({
        "provider": "gowa",
        "primary": {
            "baseUrl": "http://127.0.0.1:3000/",
            "credentials": {"type": "basic", "username": "admin", "password": PASSWORD},
            "deviceId": "dev-1",
            "region": "eu-west-1"
        },
        "backup": {
            "baseUrl": "https://backup.example.com",
            "credentials": {"type": "basic", "username": "backup", "password": "backup-api-key-0000-1111-2222"}
        },
        "webhookSecrets": [{"id": "s1", "secret": WEBHOOK_SECRET}],
        "isActive": true
    })
}

// ---------- secrets never leak ----------

#[tokio::test]
async fn secrets_never_reach_logs_or_error_responses() {
    let logs = LogCapture::start();
    let api = api().await;
    api.create(&valid_body()).await;
    // A secret in a field of the wrong type comes back in serde's message unless cut out.
    let mut wrong = valid_body();
    wrong["version"] = json!(PASSWORD);
    let r1 = api.create(&wrong).await;
    assert_eq!(r1.status, StatusCode::BAD_REQUEST);
    let mut body = valid_body();
    body["primary"]["baseUrl"] = json!("http://169.254.169.254");
    let r2 = api.create(&body).await;
    let r3 = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"1\"")
                .json(&valid_body()),
        )
        .await;
    assert_eq!(r3.status, StatusCode::OK);
    // The operations routes: a rotation's new secret is in its response only.
    let r4 = api
        .call(
            ApiEvent::new("POST", &format!("{PATH}/rotate-webhook-secret"))
                .bearer(&api.admin())
                .json(&json!({"graceSeconds": 60})),
        )
        .await;
    assert_eq!(r4.status, StatusCode::OK, "{}", r4.text);
    let rotated = r4.json()["secret"].as_str().unwrap().to_string();
    let r5 = api
        .call(
            ApiEvent::new("POST", &format!("{PATH}/rotate-credential"))
                .bearer(&api.admin())
                .json(&json!({"credentials": {"type": "basic", "username": "admin", "password": "rotated-password-77aa"}})),
        )
        .await;
    assert_eq!(r5.status, StatusCode::OK, "{}", r5.text);
    // A test against an unreachable candidate with a secret, and a failing switch.
    let r6 = api
        .call(
            ApiEvent::new("POST", &format!("{PATH}/test"))
                .bearer(&api.admin())
                .json(&json!({"candidate": {"baseUrl": "http://127.0.0.1:9", "credentials": {"type": "basic", "username": "cand", "password": "candidate-key-3141592653"}}})),
        )
        .await;
    assert_eq!(r6.status, StatusCode::OK, "{}", r6.text);
    let r7 = api
        .call(
            ApiEvent::new("POST", &format!("{PATH}/switch"))
                .bearer(&api.admin())
                .json(&json!({"action": "replace", "role": "backup", "version": 4, "endpoint": {"baseUrl": "http://127.0.0.1:9", "credentials": {"type": "basic", "username": "cand", "password": "candidate-key-3141592653"}}})),
        )
        .await;
    assert_eq!(r7.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r7.text);
    let r8 = api
        .call(ApiEvent::new("GET", "/tenants/acme/audit").bearer(&api.admin()))
        .await;
    let r9 = api
        .call(ApiEvent::new("GET", "/admin/export").bearer(&api.admin()))
        .await;
    // A migration whose target fails the connection test run with the rotated credential.
    for (id, url) in [
        ("src", "http://127.0.0.1:3000"),
        ("dst", "http://127.0.0.1:9"),
    ] {
        let r = api
            .call(
                ApiEvent::new("POST", "/admin/servers")
                    .bearer(&api.admin())
                    .json(&json!({"serverId": id, "baseUrl": url, "provider": "gowa", "region": "eu-west-1", "capacity": 5})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r10 = api
        .call(
            ApiEvent::new("POST", "/admin/migrations")
                .bearer(&api.admin())
                .json(&json!({"jobId": "j1", "from": "src", "to": "dst"})),
        )
        .await;
    assert_eq!(r10.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r10.text);
    for r in [&r5, &r6, &r7, &r8, &r9, &r10] {
        assert!(!r.text.contains(&rotated), "rotated secret shown again");
        for s in ["rotated-password-77aa", "candidate-key-3141592653"] {
            assert!(!r.text.contains(s), "secret in a response: {}", r.text);
        }
    }
    let logged = logs.text();
    for s in [
        rotated.as_str(),
        "rotated-password-77aa",
        "candidate-key-3141592653",
    ] {
        assert!(!logged.contains(s), "secret in the logs");
    }
    assert!(
        logged.contains("config created"),
        "log capture is not working: {logged}"
    );
    for secret in [PASSWORD, WEBHOOK_SECRET, "backup-api-key-0000-1111-2222"] {
        assert!(!logged.contains(secret), "secret in the logs");
        for r in [&r1, &r2, &r3] {
            assert!(!r.text.contains(secret), "secret in a response: {}", r.text);
        }
    }
}

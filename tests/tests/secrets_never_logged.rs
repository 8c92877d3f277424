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
            "credentials": {"type": "apiKey", "key": "backup-api-key-0000-1111-2222"}
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
    let logged = logs.text();
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

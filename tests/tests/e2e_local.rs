//! End to end through `cargo lambda watch`: the real function binaries behind cargo-lambda's
//! local function URLs, moto_server for DynamoDB/KMS/SQS, and the GOWA simulator delivering
//! signed webhooks over HTTP, byte for byte as GOWA does.
//!
//! Needs `cargo lambda` on PATH (scripts/test.sh puts .venv/bin there) and moto_server.

use serde_json::{Value, json};
use wagate_devstack::{LocalIssuer, TokenSpec};
use wagate_tests::watch::{lambda_env, start_watch};
use wagate_tests::{Stack, drain_queue, workspace_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_crud_and_signed_webhooks_through_cargo_lambda_watch() {
    let stack = Stack::new().await;
    let issuer = LocalIssuer::generate();
    let sim = wagate_tests::sim_contract::checked(
        gowa_sim::start(gowa_sim::SimConfig::default())
            .await
            .unwrap(),
    );

    let watch = start_watch(&lambda_env(&stack, &issuer));
    // Answers within a bound (cargo lambda's emulator may leave a request unanswered): a
    // failure then, not a test that never ends.
    let http = wagate_tests::watch::client();
    let admin = issuer.token(&TokenSpec::admin());
    let config_url = watch.url("config-api", "/tenants/e2e/whatsapp-config");
    watch
        .ready(&http, "config-api", "/tenants/e2e/whatsapp-config")
        .await;

    // --- config CRUD over HTTP ---
    let unauth = http.get(&config_url).send().await.unwrap();
    assert_eq!(unauth.status(), 401);
    let created = http
        .post(&config_url)
        .bearer_auth(&admin)
        .json(&json!({
            "provider": "gowa",
            "primary": {"baseUrl": sim.base_url(), "credentials": {"type": "none"}, "deviceId": "demo"},
            "webhookSecrets": [{"id": "s1", "secret": "secret"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["version"], 1);
    let read = http
        .get(&config_url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["etag"], "\"1\"");
    let updated = http
        .put(&config_url)
        .bearer_auth(&admin)
        .header("if-match", "\"1\"")
        .json(&json!({
            "provider": "gowa",
            "primary": {"baseUrl": sim.base_url(), "deviceId": "demo"},
            "isActive": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let stale = http
        .put(&config_url)
        .bearer_auth(&admin)
        .header("if-match", "\"1\"")
        .json(&json!({"provider": "gowa", "primary": {"baseUrl": sim.base_url()}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);

    // --- signed webhooks from the simulator, through the ingress, onto the queue ---
    let hook_url = watch.url("webhook-ingress", "/webhooks/whatsapp/e2e");
    watch
        .ready(&http, "webhook-ingress", "/webhooks/whatsapp/e2e")
        .await;
    let fixtures = workspace_root().join("tests/fixtures/gowa");
    for name in [
        "gowa-message-text-incoming.json",
        "gowa-message-ack-delivered.json",
    ] {
        let bytes = std::fs::read(fixtures.join(name)).unwrap();
        let report = sim
            .deliver_webhook(gowa_sim::WebhookDelivery::raw(&hook_url, "secret", bytes))
            .await
            .unwrap();
        assert!(report.delivered, "{name}: {report:?}");
        assert_eq!(report.attempts[0].status, Some(200), "{name}: {report:?}");
    }
    // A webhook signed with the wrong secret is refused and GOWA would retry; one attempt here.
    let forged = sim
        .deliver_webhook(gowa_sim::WebhookDelivery::raw(
            &hook_url,
            "not-the-secret",
            br#"{"event":"message","payload":{"id":"forged"}}"#.to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(forged.attempts[0].status, Some(401), "{forged:?}");

    // A raw API Gateway event whose body is flagged base64 but is not: lambda_http's own
    // conversion panics on it (an invocation error, a 5xx at API Gateway); the function
    // answers 400 and enqueues nothing. Through the invoke API, as `cargo lambda invoke`.
    let junk = wagate_tests::ApiEvent::new("POST", "/webhooks/whatsapp/e2e")
        .header("content-type", "application/json")
        .header("x-hub-signature-256", "sha256=00")
        .base64_body_verbatim("!!! not base64 !!!")
        .event_json();
    let invoked = http
        .post(watch.invoke_url("webhook-ingress"))
        .json(&junk)
        .send()
        .await
        .unwrap();
    assert_eq!(invoked.status(), 200, "an answer, not an invocation error");
    let answer: Value = invoked.json().await.unwrap();
    assert_eq!(answer["statusCode"], 400, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_body_encoding", "{answer}");

    let events: Vec<Value> = drain_queue(&stack.sdk, &stack.env()["INBOUND_QUEUE_URL"])
        .await
        .into_iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    let mut types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["message", "receipt"]);
    assert!(events.iter().all(|e| e["tenantId"] == "e2e"));

    // --- delete ---
    let deleted = http
        .delete(&config_url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(stack.scan_tenants().await.is_empty());
}

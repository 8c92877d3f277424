//! Delivery receipts across functions: a message sent by the outbound-sender through the
//! simulator, then GOWA's `message.ack` webhooks through the ingress move its record from
//! sent to delivered to read, and never back.

mod outbound_common;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use outbound_common::{fixture, msg, sim};
use wagate::delivery::DeliveryState;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::inbound::signature::sign_sha256;
use wagate::secrets::KmsSealer;
use wagate::tenant::cache::ConfigCache;
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate_tests::{ApiEvent, drain_queue};
use webhook_ingress::{App, RateLimiter, SqsSink};

const WEBHOOK_SECRET: &[u8] = b"webhook-secret-outbound-77aa";

fn ack(id: &str, state: &str) -> Vec<u8> {
    format!(
        r#"{{"device_id":"6281234567890@s.whatsapp.net","event":"message.ack","payload":{{"chat_id":"6289876543210@s.whatsapp.net","from":"6289876543210@s.whatsapp.net","ids":["{id}"],"receipt_type":"{state}"}},"timestamp":"2026-11-28T10:20:11Z"}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn acks_move_the_record_from_sent_to_delivered_to_read_and_never_back() {
    let fx = fixture().await;
    let server = sim().await;
    fx.tenant("acme", &server.base_url(), None, 60).await;
    let outcome = fx
        .handle(vec![msg(
            "sqs-1",
            "acme",
            "order-1042",
            "Your order shipped",
        )])
        .await;
    assert_eq!(outcome.count("sent"), 1, "{outcome:?}");
    let sent = fx.record("acme", "order-1042").await.unwrap();
    assert_eq!(sent.state, DeliveryState::Sent);
    let provider_id = sent.provider_message_id.clone().unwrap();

    let stack = &fx.stack;
    let env = stack.env();
    let ingress = App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(DynamoTenantStore::new(
                stack.dynamodb.clone(),
                stack.tenants_table(),
            )),
            Arc::new(KmsSealer::new(stack.kms.clone(), stack.kms_key_id())),
            webhook_ingress::cache_settings(Duration::from_secs(60)),
        )),
        sink: Arc::new(SqsSink::new(
            stack.sqs.clone(),
            env["INBOUND_QUEUE_URL"].clone(),
        )),
        limiter: RateLimiter::default(),
        receipts: Arc::new(DynamoDeliveryStore::new(
            stack.dynamodb.clone(),
            env["MESSAGES_TABLE"].clone(),
            "",
            Duration::from_secs(0),
        )),
        replay_window: wagate::inbound::verify::DEFAULT_REPLAY_WINDOW,
        event_seen: None,
    };
    let post = |body: Vec<u8>| {
        let sig = sign_sha256(WEBHOOK_SECRET, &body);
        let ev = ApiEvent::new("POST", "/webhooks/whatsapp/acme")
            .header("X-Hub-Signature-256", &sig)
            .raw_body(body);
        webhook_ingress::handle(&ingress, ev.request())
    };

    assert_eq!(
        post(ack(&provider_id, "delivered")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        fx.record("acme", "order-1042").await.unwrap().state,
        DeliveryState::Delivered
    );
    assert_eq!(
        post(ack(&provider_id, "read")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        fx.record("acme", "order-1042").await.unwrap().state,
        DeliveryState::Read
    );
    // A late "delivered" (GOWA retry or reordering) does not move it back.
    assert_eq!(
        post(ack(&provider_id, "delivered")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        fx.record("acme", "order-1042").await.unwrap().state,
        DeliveryState::Read
    );
    // A receipt for a message wagate never sent is accepted and changes nothing.
    assert_eq!(
        post(ack("3EB0NOTOURS", "read")).await.status(),
        StatusCode::OK
    );

    // The platform sees each distinct receipt once (the late duplicate is deduplicated).
    let events = drain_queue(&stack.sdk, &env["INBOUND_QUEUE_URL"]).await;
    let states: Vec<String> = events
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            format!(
                "{}:{}",
                v["receipt"]["messageIds"][0].as_str().unwrap(),
                v["receipt"]["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            format!("{provider_id}:delivered"),
            format!("{provider_id}:read"),
            "3EB0NOTOURS:read".to_string()
        ]
    );
}

#[tokio::test]
async fn a_failed_receipt_moves_a_sent_record_to_failed_with_its_reason_and_never_a_delivered_one()
{
    use wagate::delivery::ReceiptOutcome;
    use wagate::delivery::store::ReceiptRecorder;

    let fx = fixture().await;
    let server = sim().await;
    fx.tenant("acme", &server.base_url(), None, 60).await;
    let outcome = fx
        .handle(vec![
            msg("sqs-1", "acme", "order-1", "one"),
            msg("sqs-2", "acme", "order-2", "two"),
        ])
        .await;
    assert_eq!(outcome.count("sent"), 2, "{outcome:?}");
    let mut ids = Vec::new();
    for key in ["order-1", "order-2"] {
        ids.push(
            fx.record("acme", key)
                .await
                .unwrap()
                .provider_message_id
                .unwrap(),
        );
    }
    let (one, two) = (ids[0].clone(), ids[1].clone());
    let env = fx.stack.env();
    let store = DynamoDeliveryStore::new(
        fx.stack.dynamodb.clone(),
        env["MESSAGES_TABLE"].clone(),
        "",
        Duration::from_secs(0),
    );
    let tenant: wagate::TenantId = "acme".parse().unwrap();
    let now = time::OffsetDateTime::now_utc();

    // Sent, then reported failed (Meta `failed`, WAHA and Evolution `ERROR`): failed.
    let r = store
        .apply_receipt(&tenant, &one, "failed", now)
        .await
        .unwrap();
    assert_eq!(
        r,
        ReceiptOutcome::Updated {
            from: DeliveryState::Sent,
            to: DeliveryState::Failed
        }
    );
    let rec = fx.record("acme", "order-1").await.unwrap();
    assert_eq!(rec.state, DeliveryState::Failed);
    assert_eq!(rec.error_class.as_deref(), Some("delivery_failed"));
    assert!(rec.reason.unwrap().contains("reported it failed"));
    assert!(rec.failed_at.is_some());

    // Delivered first: a later failure report changes nothing.
    store
        .apply_receipt(&tenant, &two, "delivered", now)
        .await
        .unwrap();
    let r = store
        .apply_receipt(&tenant, &two, "failed", now)
        .await
        .unwrap();
    assert_eq!(
        r,
        ReceiptOutcome::Unchanged {
            current: DeliveryState::Delivered
        }
    );
    let rec = fx.record("acme", "order-2").await.unwrap();
    assert_eq!(rec.state, DeliveryState::Delivered);
    assert!(rec.error_class.is_none() && rec.failed_at.is_none());
}

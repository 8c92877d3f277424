//! The outbound queue's dead-letter path with real SQS receives against moto_server: a
//! message that keeps failing without effect ends in the DLQ after maxReceiveCount receives,
//! and its last failure reason is findable in the record and in a structured log line.
//! (Its own test binary: it captures logs.)

mod outbound_common;

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use gowa_sim::{Faults, SendErrorFault, SendErrorStatus};
use outbound_common::*;
use wagate::delivery::DeliveryState;
use wagate_tests::LogCapture;

#[tokio::test]
async fn message_failing_every_receive_ends_in_the_dlq_with_its_last_reason() {
    let logs = LogCapture::start();
    // A breaker that never opens here: every receive reaches the server.
    let mut s = settings();
    s.breaker.failure_threshold = 100;
    let fx = fixture_with(s).await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 100).await;
    sim.set_faults(Faults {
        send_error: Some(SendErrorFault::always(SendErrorStatus::InternalServerError)),
        ..Faults::default()
    });
    let env = fx.stack.env();
    let (queue, dlq) = (&env["OUTBOUND_QUEUE_URL"], &env["OUTBOUND_DLQ_URL"]);
    let sqs = aws_sdk_sqs::Client::new(&fx.stack.sdk);
    let body = text("acme", "order-1", TO, "hello").to_string();
    sqs.send_message()
        .queue_url(queue)
        .message_body(&body)
        .message_group_id("acme")
        .message_deduplication_id("order-1")
        .send()
        .await
        .unwrap();

    // Play the Lambda event source mapping: receive, invoke, delete what the function
    // acknowledged, let the failures become visible again (the visibility timeout, here cut
    // short), until the queue has nothing left.
    let mut receives = 0;
    for _ in 0..10 {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        receives += msgs.len();
        let records: Vec<SqsMessage> = msgs
            .iter()
            .map(|m| {
                let mut r = SqsMessage::default();
                r.message_id = m.message_id.clone();
                r.receipt_handle = m.receipt_handle.clone();
                r.body = m.body.clone();
                r.attributes = m
                    .attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_string(), v))
                    .collect::<HashMap<_, _>>();
                r
            })
            .collect();
        let outcome = fx.handle(records).await;
        let failed = failures(&outcome);
        for m in &msgs {
            let handle = m.receipt_handle.clone().unwrap();
            if failed.contains(m.message_id.as_ref().unwrap()) {
                sqs.change_message_visibility()
                    .queue_url(queue)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                sqs.delete_message()
                    .queue_url(queue)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    assert_eq!(receives, 5, "maxReceiveCount receives, then the DLQ");
    assert_eq!(
        sim.requests_to("/send/message").len(),
        5,
        "one send per receive"
    );
    let dead = sqs
        .receive_message()
        .queue_url(dlq)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body.as_deref(), Some(body.as_str()));
    let r = fx.record("acme", "order-1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Retrying);
    assert_eq!(r.attempts, 5);
    assert_eq!(r.error_class.as_deref(), Some("retryable"));
    assert!(r.reason.as_deref().unwrap().contains("500"), "{r:?}");

    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("\"dead_letter\":true"))
        .unwrap_or_else(|| panic!("no dead-letter line"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "ERROR");
    assert_eq!(v["fields"]["outcome"], "retry");
    assert_eq!(v["fields"]["error_class"], "retryable");
    assert!(v["fields"]["reason"].as_str().unwrap().contains("500"));
    assert_eq!(v["span"]["tenant_id"], "acme");
    assert_eq!(v["span"]["idempotency_key"], "order-1");
    assert_eq!(v["span"]["receive_count"], 5);
    assert_eq!(
        text.matches("\"dead_letter\":true").count(),
        1,
        "only the last receive says so"
    );
    assert!(!text.contains(PASSWORD), "server password in the logs");
}

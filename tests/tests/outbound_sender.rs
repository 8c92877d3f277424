//! outbound-sender against moto_server (DynamoDB, KMS, SQS) and GOWA simulators over HTTP.
//! Every test asserts what the simulators received and what the message record says.

mod outbound_common;

use std::time::Duration;

use gowa_sim::{DeviceState, Faults, SendErrorFault, SendErrorStatus};
use outbound_common::*;
use outbound_sender::Outcome;
use time::OffsetDateTime;
use wagate::delivery::store::{DeliveryReader, DeliveryWriter, ReceiptRecorder};
use wagate::delivery::{Begin, DeliveryState, ReceiptOutcome};
use wagate::outbound::OutboundMessage;
use wagate::outbound::ratelimit::RateWindows;
use wagate::tenant::EndpointRole;

// ---------- the happy path and the budgets ----------

#[tokio::test]
async fn sends_a_text_and_records_it_as_sent_with_the_provider_id() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;

    let b = fx.handle(vec![msg("m1", "acme", "order-1", "hello")]).await;

    assert!(failures(&b).is_empty());
    let sent = sim.requests_to("/send/message");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json.as_ref().unwrap()["phone"], TO);
    assert_eq!(sent[0].json.as_ref().unwrap()["message"], "hello");
    assert_eq!(sent[0].device_id.as_deref(), Some("demo"));
    assert_eq!(sent[0].basic_auth_user.as_deref(), Some("admin"));
    let Some(Outcome::Sent {
        provider_message_id,
        role,
        failed_over,
    }) = b.outcome("m1").cloned()
    else {
        panic!("{b:?}")
    };
    assert_eq!((role, failed_over), (EndpointRole::Primary, false));
    let r = fx.record("acme", "order-1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Sent);
    assert_eq!(
        r.provider_message_id.as_deref(),
        Some(provider_message_id.as_str())
    );
    assert_eq!(r.endpoint.as_deref(), Some(sim.base_url().as_str()));
    assert_eq!(r.attempts, 1);
    assert!(
        r.lock_owner.is_none() && r.lock_expires_at.is_none(),
        "lock released"
    );
}

#[tokio::test]
async fn image_and_document_without_a_filename_go_to_the_media_routes_by_url() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;
    let image = serde_json::json!({"tenantId": "acme", "idempotencyKey": "img-1", "to": TO,
        "content": {"type": "image", "url": "https://cdn.example.com/a.jpg", "caption": "menu"}});
    let doc = serde_json::json!({"tenantId": "acme", "idempotencyKey": "doc-1", "to": TO,
        "content": {"type": "document", "url": "https://cdn.example.com/invoice.pdf", "caption": "your invoice"}});

    let b = fx
        .handle(vec![
            record("m1", &image.to_string(), "acme", 1),
            record("m2", &doc.to_string(), "acme", 1),
        ])
        .await;

    assert!(failures(&b).is_empty(), "{b:?}");
    let img = sim.requests_to("/send/image");
    assert_eq!(img.len(), 1);
    let form = img[0].form.as_ref().unwrap();
    assert_eq!(form["image_url"], "https://cdn.example.com/a.jpg");
    assert_eq!(form["caption"], "menu");
    let file = sim.requests_to("/send/file");
    assert_eq!(file.len(), 1);
    let form = file[0].form.as_ref().unwrap();
    assert_eq!(form["file_url"], "https://cdn.example.com/invoice.pdf");
    assert_eq!(form["caption"], "your invoice");
    assert!(file[0].files.is_empty(), "GOWA fetches the URL itself");
    assert!(sim.requests_to("/send/message").is_empty());
    for key in ["img-1", "doc-1"] {
        assert_eq!(
            fx.record("acme", key).await.unwrap().state,
            DeliveryState::Sent
        );
    }
}

/// The bytes of the test's invoice.
const INVOICE: &[u8] = b"%PDF-1.7\n% an invoice, as a producer would link it\n%%EOF\n";

/// A plain HTTP host of producers' documents on a free port: `/docs/invoice.pdf` (a PDF),
/// `/docs/busy.pdf` (503), `/docs/huge.bin` (one byte over the upload limit), anything else
/// 404.
async fn document_host() -> String {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/docs/invoice.pdf",
            get(|| async { ([(header::CONTENT_TYPE, "application/pdf")], INVOICE) }),
        )
        .route(
            "/docs/busy.pdf",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route(
            "/docs/huge.bin",
            get(|| async { vec![0u8; wagate::provider::MAX_DOCUMENT_UPLOAD_BYTES + 1] }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn document(key: &str, url: &str, filename: &str) -> String {
    serde_json::json!({"tenantId": "acme", "idempotencyKey": key, "to": TO,
        "content": {"type": "document", "url": url, "filename": filename, "caption": "your invoice"}})
    .to_string()
}

#[tokio::test]
async fn document_with_a_filename_is_fetched_and_uploaded_to_gowa_under_that_name() {
    // GOWA's /send/file has no file-name field: a `file_url` document is named after its URL.
    // The producer's name travels as the multipart file part's filename.
    let fx = fixture().await;
    let sim = sim().await;
    let host = document_host().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;

    let url = format!("{host}/docs/invoice.pdf");
    let b = fx
        .handle(vec![record(
            "m1",
            &document("doc-1", &url, "INV-1042.pdf"),
            "acme",
            1,
        )])
        .await;

    assert!(failures(&b).is_empty(), "{b:?}");
    let file = sim.requests_to("/send/file");
    assert_eq!(file.len(), 1);
    let form = file[0].form.as_ref().unwrap();
    assert_eq!(form["phone"], TO);
    assert_eq!(form["caption"], "your invoice");
    assert!(!form.contains_key("file_url"), "{form:?}");
    assert_eq!(file[0].files.len(), 1, "{:?}", file[0].files);
    let part = &file[0].files[0];
    assert_eq!(part.name, "file");
    assert_eq!(part.filename.as_deref(), Some("INV-1042.pdf"));
    assert_eq!(part.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(part.size, INVOICE.len());
    assert_eq!(
        fx.record("acme", "doc-1").await.unwrap().state,
        DeliveryState::Sent
    );
}

#[tokio::test]
async fn document_that_cannot_be_fetched_is_never_sent_and_the_record_says_why() {
    let fx = fixture().await;
    let sim = sim().await;
    let backup = sim_backup().await;
    let host = document_host().await;
    fx.tenant("acme", &sim.base_url(), Some(&backup.base_url()), 100)
        .await;

    // In order within the tenant's group: three refused for good, then one the host may
    // answer later (returned to the queue, so it comes last).
    let b = fx
        .handle(vec![
            record(
                "m1",
                &document("gone", &format!("{host}/docs/nope.pdf"), "a.pdf"),
                "acme",
                1,
            ),
            record(
                "m2",
                &document("huge", &format!("{host}/docs/huge.bin"), "b.bin"),
                "acme",
                1,
            ),
            record(
                "m3",
                &document("private", "http://10.0.0.7/c.pdf", "c.pdf"),
                "acme",
                1,
            ),
            record(
                "m4",
                &document("busy", &format!("{host}/docs/busy.pdf"), "d.pdf"),
                "acme",
                1,
            ),
        ])
        .await;

    for (key, needle) in [
        ("gone", "answered 404"),
        ("huge", "over 16777216 bytes"),
        ("private", "egress refused"),
    ] {
        let r = fx.record("acme", key).await.unwrap();
        assert_eq!(r.state, DeliveryState::Failed, "{key}: {r:?}");
        assert_eq!(r.error_class.as_deref(), Some("permanent"), "{key}: {r:?}");
        let reason = r.reason.unwrap_or_default();
        assert!(reason.contains(needle), "{key}: {reason}");
        assert!(!reason.contains(&host), "no URL in the reason: {reason}");
    }
    assert_eq!(failures(&b), ["m4"], "the 503 is retried: {b:?}");
    assert!(
        matches!(b.outcome("m4"), Some(Outcome::Retry { reason, .. }) if reason.contains("answered 503")),
        "{b:?}"
    );
    // Nothing reached either server: no send, no failover to the backup.
    assert!(
        sim.requests().iter().all(|r| !r.path.starts_with("/send/")),
        "{:?}",
        sim.requests()
    );
    assert!(backup.requests().is_empty(), "{:?}", backup.requests());

    // The document host's failures say nothing about the WhatsApp server: after a second
    // 503 (the breaker opens at 2 failures) a text still goes to the primary.
    let b = fx
        .handle(vec![record(
            "m5",
            &document("busy-2", &format!("{host}/docs/busy.pdf"), "e.pdf"),
            "acme",
            1,
        )])
        .await;
    assert_eq!(failures(&b), ["m5"], "{b:?}");
    let b = fx.handle(vec![msg("m6", "acme", "text-1", "hi")]).await;
    assert!(failures(&b).is_empty(), "{b:?}");
    assert_eq!(sent_texts(&sim), ["hi"]);
    assert!(backup.requests().is_empty());
}

#[tokio::test]
async fn steady_state_batch_of_ten_costs_2_1_wru_per_message_without_kms_or_config_reads() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 100).await;
    // Warm the instance (the first record loads and opens the config).
    fx.handle(vec![msg("w1", "acme", "warm-1", "warm")]).await;
    fx.stack.counter.reset();

    // A full SQS batch (10 records) of one tenant's group.
    let records = (0..10)
        .map(|i| msg(&format!("m{i}"), "acme", &format!("k{i}"), "steady"))
        .collect();
    let b = fx.handle(records).await;

    assert!(failures(&b).is_empty(), "{b:?}");
    assert_eq!(sim.requests_to("/send/message").len(), 11);
    let c = &fx.stack.counter;
    assert_eq!(c.count("KMS"), 0, "{:?}", c.calls());
    assert_eq!(
        c.count_op("DynamoDB", "GetItem"),
        0,
        "config read: {:?}",
        c.calls()
    );
    // No transaction (2 WRU per item): one slot write for the batch, then per message one
    // conditional lock write and one outcome write.
    assert_eq!(c.count_op("DynamoDB", "TransactWriteItems"), 0);
    assert_eq!(c.count_op("DynamoDB", "PutItem"), 0);
    assert_eq!(c.count_op("DynamoDB", "UpdateItem"), 21, "{:?}", c.calls());
    assert_eq!(c.count("DynamoDB"), 21, "nothing else: {:?}", c.calls());
    // moto reports no consumed capacity: each write is 1 WRU because every item written is
    // under 1 KB (DynamoDB's item size: attribute names plus values).
    let db = aws_sdk_dynamodb::Client::new(&fx.stack.sdk);
    for i in 0..10 {
        let item = db
            .get_item()
            .table_name(fx.stack.env()["MESSAGES_TABLE"].clone())
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("acme#k{i}")),
            )
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        let size = item_size(&item);
        assert!(size < 1024, "record k{i} is {size} bytes: {item:?}");
    }
    let wru = f64::from(c.count_op("DynamoDB", "UpdateItem") as u32) / 10.0;
    assert!(wru <= 2.1, "{wru} WRU per message");
}

#[tokio::test]
async fn every_sent_message_has_its_log_line_at_the_default_level() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 100).await;
    fx.handle(vec![msg("w1", "acme", "warm-1", "warm")]).await;
    // The functions' own subscriber at their default level.
    let logs = wagate_tests::LogCapture::production("info");

    let records = (0..10)
        .map(|i| msg(&format!("m{i}"), "acme", &format!("logged-{i}"), "hi"))
        .collect();
    let b = fx.handle(records).await;

    assert!(failures(&b).is_empty(), "{b:?}");
    let text = logs.text();
    for i in 0..10 {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("\"logged-{i}\"")) && l.contains("sent")),
            "no line says what happened to logged-{i}: {text}"
        );
    }
    // The cost table's figure (README, "Cost per million messages").
    eprintln!(
        "sender log bytes per message: {:.0} ({} for 10)",
        logs.len() as f64 / 10.0,
        logs.len()
    );
}

/// DynamoDB's size of an item: each attribute's name plus its value (strings by UTF-8
/// length, numbers at most 21 bytes, rounded up here to their digits).
fn item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    V::S(s) => s.len(),
                    V::N(n) => n.len() + 1,
                    V::Bool(_) | V::Null(_) => 1,
                    other => format!("{other:?}").len(),
                }
        })
        .sum()
}

#[tokio::test]
async fn cold_sender_opens_only_the_active_credential_and_the_backups_only_at_failover() {
    let fx = fixture().await;
    let sim = sim().await;
    let backup = sim_backup().await;
    fx.tenant_with(
        "acme",
        &sim.base_url(),
        Some(&backup.base_url()),
        100,
        Some("backup-password-9c1e"),
    )
    .await;
    fx.stack.counter.reset();

    // Cold: one config read and one Decrypt (the primary's password), not three.
    let b = fx.handle(vec![msg("m1", "acme", "k1", "first")]).await;
    assert!(
        matches!(b.outcome("m1"), Some(Outcome::Sent { .. })),
        "{b:?}"
    );
    let c = &fx.stack.counter;
    assert_eq!(c.count_op("DynamoDB", "GetItem"), 1, "{:?}", c.calls());
    assert_eq!(c.count_op("KMS", "Decrypt"), 1, "{:?}", c.calls());
    assert_eq!(c.count("KMS"), 1, "{:?}", c.calls());

    // The primary goes down: the backup's password is opened now, once.
    sim.set_down(true).await.unwrap();
    fx.stack.counter.reset();
    let b = fx
        .handle(vec![
            msg("m2", "acme", "k2", "second"),
            msg("m3", "acme", "k3", "third"),
        ])
        .await;
    assert!(failures(&b).is_empty(), "{b:?}");
    assert_eq!(texts(&backup), ["second", "third"]);
    assert_eq!(fx.stack.counter.count_op("KMS", "Decrypt"), 1);
    assert_eq!(fx.stack.counter.count_op("DynamoDB", "GetItem"), 0);
}

// ---------- idempotency ----------

#[tokio::test]
async fn redelivered_record_already_sent_is_acknowledged_without_sending() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;
    fx.handle(vec![msg("m1", "acme", "order-1", "hello")]).await;

    // SQS redelivers the same message (e.g. the first invocation's response was lost).
    let body = text("acme", "order-1", TO, "hello").to_string();
    let b = fx.handle(vec![record("m1", &body, "acme", 2)]).await;

    assert_eq!(
        b.outcome("m1"),
        Some(&Outcome::AlreadySettled(DeliveryState::Sent))
    );
    assert!(failures(&b).is_empty());
    assert_eq!(
        sim.requests_to("/send/message").len(),
        1,
        "the simulator received it once"
    );
    let r = fx.record("acme", "order-1").await.unwrap();
    assert_eq!((r.state, r.attempts), (DeliveryState::Sent, 1));
}

#[tokio::test]
async fn record_locked_by_a_live_invocation_is_returned_and_not_sent() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;
    let m = OutboundMessage::parse(&text("acme", "order-1", TO, "hi").to_string()).unwrap();
    let now = OffsetDateTime::now_utc();
    let other = fx
        .records
        .begin(
            &m,
            "m0",
            "other-invocation",
            now + Duration::from_secs(60),
            &fx.window("acme", 30),
            now,
        )
        .await
        .unwrap();
    assert!(matches!(other, Begin::Acquired(_)));

    let b = fx.handle(vec![msg("m1", "acme", "order-1", "hi")]).await;

    assert_eq!(b.outcome("m1"), Some(&Outcome::Locked));
    assert_eq!(failures(&b), ["m1"]);
    assert!(sim.requests_to("/send/message").is_empty());
    let r = fx.record("acme", "order-1").await.unwrap();
    assert_eq!(r.state, DeliveryState::InProgress);
    assert_eq!(r.lock_owner.as_deref(), Some("other-invocation"));
}

#[tokio::test]
async fn expired_lock_of_a_dead_invocation_is_taken_over() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;
    let m = OutboundMessage::parse(&text("acme", "order-1", TO, "hi").to_string()).unwrap();
    let now = OffsetDateTime::now_utc();
    fx.records
        .begin(
            &m,
            "m0",
            "dead-invocation",
            now - Duration::from_secs(1),
            &fx.window("acme", 30),
            now,
        )
        .await
        .unwrap();

    let b = fx.handle(vec![msg("m1", "acme", "order-1", "hi")]).await;

    assert!(
        matches!(b.outcome("m1"), Some(Outcome::Sent { .. })),
        "{b:?}"
    );
    assert_eq!(sim.requests_to("/send/message").len(), 1);
    let r = fx.record("acme", "order-1").await.unwrap();
    assert_eq!((r.state, r.attempts), (DeliveryState::Sent, 2));
}

// ---------- error classes ----------

#[tokio::test]
async fn permanent_invalid_number_is_recorded_failed_and_acknowledged() {
    let fx = fixture().await;
    let sim = sim().await;
    let backup = sim_backup().await;
    fx.tenant("acme", &sim.base_url(), Some(&backup.base_url()), 30)
        .await;
    let body = text("acme", "order-1", "nobody@s.whatsapp.net", "hi").to_string();

    let b = fx.handle(vec![record("m1", &body, "acme", 1)]).await;

    assert!(failures(&b).is_empty(), "acknowledged");
    assert!(matches!(b.outcome("m1"), Some(Outcome::Failed { class, .. }) if class == "permanent"));
    assert_eq!(sim.requests_to("/send/message")[0].status, Some(400));
    assert!(
        backup.requests_to("/send/message").is_empty(),
        "no failover for a wrong message"
    );
    let r = fx.record("acme", "order-1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Failed);
    assert_eq!(r.error_class.as_deref(), Some("permanent"));
    assert_eq!(
        r.endpoint.as_deref(),
        Some(sim.base_url().as_str()),
        "the endpoint that refused it (analytics counts the failure against it)"
    );
    assert_eq!(r.endpoint_role, Some(EndpointRole::Primary));
    assert!(r.reason.unwrap().contains("INVALID_JID"));

    // A redelivery is not retried.
    fx.handle(vec![record("m1", &body, "acme", 2)]).await;
    assert_eq!(sim.requests_to("/send/message").len(), 1);
}

#[tokio::test]
async fn retryable_5xx_without_backup_returns_the_record_to_the_queue() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;
    sim.set_faults(Faults {
        send_error: Some(SendErrorFault::next(1, SendErrorStatus::ServiceUnavailable)),
        ..Faults::default()
    });

    let b = fx.handle(vec![msg("m1", "acme", "order-1", "hi")]).await;

    assert_eq!(failures(&b), ["m1"]);
    let r = fx.record("acme", "order-1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Retrying);
    assert_eq!(r.error_class.as_deref(), Some("retryable"));
    assert!(r.reason.unwrap().contains("503"));
    assert!(r.lock_owner.is_none(), "lock released for the retry");

    // The queue brings it back: now it goes.
    let body = text("acme", "order-1", TO, "hi").to_string();
    let b = fx.handle(vec![record("m1", &body, "acme", 2)]).await;
    assert!(failures(&b).is_empty());
    assert_eq!(sim.requests_to("/send/message").len(), 2);
    let r = fx.record("acme", "order-1").await.unwrap();
    assert_eq!((r.state, r.attempts), (DeliveryState::Sent, 2));
}

#[tokio::test]
async fn whatsapp_rate_limit_backs_off_and_never_fails_over() {
    let fx = fixture().await;
    let sim = sim().await;
    let backup = sim_backup().await;
    fx.tenant("acme", &sim.base_url(), Some(&backup.base_url()), 30)
        .await;
    sim.set_faults(Faults {
        send_error: Some(SendErrorFault::next(1, SendErrorStatus::TooManyRequests)),
        ..Faults::default()
    });

    let b = fx
        .handle(vec![
            msg("m1", "acme", "k1", "one"),
            msg("m2", "acme", "k2", "two"),
        ])
        .await;

    assert_eq!(failures(&b), ["m1", "m2"]);
    assert_eq!(sim.requests_to("/send/message").len(), 1);
    assert_eq!(sim.requests_to("/send/message")[0].status, Some(429));
    assert!(
        backup.requests_to("/send/message").is_empty(),
        "never failed over"
    );
    let r = fx.record("acme", "k1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Retrying);
    assert_eq!(r.error_class.as_deref(), Some("rate_limited"));
    assert!(
        fx.record("acme", "k2").await.is_none(),
        "later record untouched"
    );

    // Within the back-off the instance sends nothing more for this tenant.
    let body = text("acme", "k1", TO, "one").to_string();
    let b = fx.handle(vec![record("m1", &body, "acme", 2)]).await;
    assert!(
        matches!(b.outcome("m1"), Some(Outcome::Retry { class, .. }) if class == "rate_limited")
    );
    assert_eq!(sim.requests_to("/send/message").len(), 1);
}

#[tokio::test]
async fn logged_out_device_updates_the_tenant_status_and_the_backup_sends() {
    let fx = fixture().await;
    let sim = sim().await;
    let backup = sim_backup().await;
    fx.tenant("acme", &sim.base_url(), Some(&backup.base_url()), 30)
        .await;
    sim.set_device_state("demo", DeviceState::Connected); // connected, not logged in

    let b = fx.handle(vec![msg("m1", "acme", "k1", "hi")]).await;

    assert!(failures(&b).is_empty(), "{b:?}");
    assert_eq!(sim.requests_to("/send/message")[0].status, Some(401));
    assert_eq!(backup.requests_to("/send/message").len(), 1);
    let r = fx.record("acme", "k1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Sent);
    assert_eq!(r.endpoint_role, Some(EndpointRole::Backup));
    assert_eq!(r.endpoint.as_deref(), Some(backup.base_url().as_str()));
    let item = fx.tenant_item("acme").await;
    assert_eq!(item["connectionStatus"].as_s().unwrap(), "logged_out");
    assert_eq!(
        item["version"].as_n().unwrap(),
        "1",
        "a status is not a config change"
    );
}

#[tokio::test]
async fn logged_out_device_without_backup_is_retried_later() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;
    sim.set_device_state("demo", DeviceState::Connected);

    let b = fx.handle(vec![msg("m1", "acme", "k1", "hi")]).await;

    assert_eq!(failures(&b), ["m1"]);
    let r = fx.record("acme", "k1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Retrying);
    assert_eq!(r.error_class.as_deref(), Some("logged_out"));
    assert_eq!(
        fx.tenant_item("acme").await["connectionStatus"]
            .as_s()
            .unwrap(),
        "logged_out"
    );
}

#[tokio::test]
async fn ambiguous_timeout_is_recorded_unknown_and_never_sent_to_a_second_server() {
    let fx = fixture().await;
    let sim = sim().await;
    let backup = sim_backup().await;
    fx.tenant("acme", &sim.base_url(), Some(&backup.base_url()), 30)
        .await;
    sim.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });

    let b = fx.handle(vec![msg("m1", "acme", "k1", "hi")]).await;

    assert!(failures(&b).is_empty(), "acknowledged: {b:?}");
    assert!(matches!(b.outcome("m1"), Some(Outcome::Unknown { .. })));
    assert_eq!(
        sim.requests_to("/send/message").len(),
        1,
        "the request left"
    );
    assert!(
        backup.requests_to("/send/message").is_empty(),
        "never sent twice"
    );
    let r = fx.record("acme", "k1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Unknown);
    assert_eq!(r.endpoint.as_deref(), Some(sim.base_url().as_str()));

    // A redelivery does not resend it automatically.
    sim.set_faults(Faults::default());
    let body = text("acme", "k1", TO, "hi").to_string();
    let b = fx.handle(vec![record("m1", &body, "acme", 2)]).await;
    assert_eq!(
        b.outcome("m1"),
        Some(&Outcome::AlreadySettled(DeliveryState::Unknown))
    );
    assert_eq!(sim.requests_to("/send/message").len(), 1);
    assert!(backup.requests_to("/send/message").is_empty());
}

// ---------- failover and the breaker ----------

#[tokio::test]
async fn primary_down_fails_over_to_the_backup_in_the_same_invocation() {
    let fx = fixture().await;
    let sim = sim().await;
    let backup = sim_backup().await;
    fx.tenant("acme", &sim.base_url(), Some(&backup.base_url()), 30)
        .await;
    sim.set_down(true).await.unwrap();

    let b = fx.handle(vec![msg("m1", "acme", "k1", "hi")]).await;

    assert!(failures(&b).is_empty());
    assert!(matches!(
        b.outcome("m1"),
        Some(Outcome::Sent {
            role: EndpointRole::Backup,
            failed_over: true,
            ..
        })
    ));
    assert!(sim.requests().is_empty(), "connection refused");
    assert_eq!(texts(&backup), ["hi"]);
    let r = fx.record("acme", "k1").await.unwrap();
    assert_eq!(
        (r.state, r.endpoint_role, r.attempts),
        (DeliveryState::Sent, Some(EndpointRole::Backup), 1)
    );
}

#[tokio::test]
async fn breaker_opens_after_consecutive_failures_and_half_opens_after_the_cool_down() {
    let fx = fixture().await; // threshold 2, a cool-down that only ends when the test says
    let sim = sim().await;
    let backup = sim_backup().await;
    fx.tenant("acme", &sim.base_url(), Some(&backup.base_url()), 100)
        .await;
    sim.set_faults(Faults {
        send_error: Some(SendErrorFault::always(SendErrorStatus::InternalServerError)),
        ..Faults::default()
    });

    // Two failures open it; the third record skips the primary without a request.
    fx.handle(vec![
        msg("m1", "acme", "k1", "1"),
        msg("m2", "acme", "k2", "2"),
        msg("m3", "acme", "k3", "3"),
    ])
    .await;
    assert_eq!(sim.requests_to("/send/message").len(), 2);
    assert_eq!(texts(&backup), ["1", "2", "3"]);

    // After the cool-down one probe goes; it fails and the breaker opens again.
    fx.sender.breakers().end_cool_downs();
    fx.handle(vec![
        msg("m4", "acme", "k4", "4"),
        msg("m5", "acme", "k5", "5"),
    ])
    .await;
    assert_eq!(sim.requests_to("/send/message").len(), 3, "one probe only");
    assert_eq!(texts(&backup), ["1", "2", "3", "4", "5"]);

    // Healed: the next probe succeeds and the breaker closes.
    sim.set_faults(Faults::default());
    fx.sender.breakers().end_cool_downs();
    let b = fx
        .handle(vec![
            msg("m6", "acme", "k6", "6"),
            msg("m7", "acme", "k7", "7"),
        ])
        .await;
    assert!(failures(&b).is_empty());
    assert_eq!(sent_texts(&sim), ["6", "7"]);
    assert_eq!(sim.requests_to("/send/message").len(), 5);
    assert_eq!(backup.requests_to("/send/message").len(), 5);
    for (k, role) in [("k3", EndpointRole::Backup), ("k7", EndpointRole::Primary)] {
        assert_eq!(
            fx.record("acme", k).await.unwrap().endpoint_role,
            Some(role)
        );
    }
}

#[tokio::test]
async fn every_breaker_open_returns_the_record_without_a_request() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 100).await;
    sim.set_faults(Faults {
        send_error: Some(SendErrorFault::always(SendErrorStatus::BadGateway)),
        ..Faults::default()
    });
    fx.handle(vec![msg("m1", "acme", "k1", "1")]).await;
    fx.handle(vec![msg("m2", "acme", "k2", "2")]).await;

    let b = fx.handle(vec![msg("m3", "acme", "k3", "3")]).await;

    assert_eq!(failures(&b), ["m3"]);
    assert_eq!(sim.requests_to("/send/message").len(), 2);
    let r = fx.record("acme", "k3").await.unwrap();
    assert_eq!(r.state, DeliveryState::Retrying);
    assert_eq!(r.error_class.as_deref(), Some("circuit_open"));
}

// ---------- batches ----------

#[tokio::test]
async fn order_within_a_tenant_holds_when_a_record_fails() {
    let fx = fixture().await;
    let a = sim().await;
    let b_sim = sim().await;
    fx.tenant("acme", &a.base_url(), None, 100).await;
    fx.tenant("beta", &b_sim.base_url(), None, 100).await;
    a.set_faults(Faults {
        send_error: Some(SendErrorFault::next(
            1,
            SendErrorStatus::InternalServerError,
        )),
        ..Faults::default()
    });

    let b = fx
        .handle(vec![
            msg("a1", "acme", "k1", "first"),
            msg("b1", "beta", "k1", "other tenant"),
            msg("a2", "acme", "k2", "second"),
            msg("a3", "acme", "k3", "third"),
        ])
        .await;

    assert_eq!(failures(&b), ["a1", "a2", "a3"]);
    assert_eq!(b.outcome("a2"), Some(&Outcome::Skipped));
    assert_eq!(
        a.requests_to("/send/message").len(),
        1,
        "nothing after the failure"
    );
    assert_eq!(
        texts(&b_sim),
        ["other tenant"],
        "other tenants are not held up"
    );
    assert!(fx.record("acme", "k2").await.is_none() && fx.record("acme", "k3").await.is_none());

    // Redelivered together, they go in order.
    let again: Vec<_> = [
        ("a1", "k1", "first"),
        ("a2", "k2", "second"),
        ("a3", "k3", "third"),
    ]
    .into_iter()
    .map(|(id, k, t)| record(id, &text("acme", k, TO, t).to_string(), "acme", 2))
    .collect();
    let b = fx.handle(again).await;
    assert!(failures(&b).is_empty());
    assert_eq!(sent_texts(&a), ["first", "second", "third"]);
}

#[tokio::test]
async fn ten_tenants_in_a_batch_take_a_slot_write_and_a_lock_write_each_and_no_transaction() {
    let fx = fixture().await;
    let sim = sim().await;
    let tenants: Vec<String> = (0..10).map(|t| format!("tenant{t}")).collect();
    for t in &tenants {
        fx.tenant(t, &sim.base_url(), None, 30).await;
    }
    fx.stack.counter.reset();

    let records = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| msg(&format!("m{i}"), t, "k1", &format!("to {t}")))
        .collect();
    let b = fx.handle(records).await;

    assert!(failures(&b).is_empty(), "{b:?}");
    assert_eq!(b.count("sent"), 10);
    let mut got = texts(&sim);
    got.sort();
    let mut want: Vec<String> = tenants.iter().map(|t| format!("to {t}")).collect();
    want.sort();
    assert_eq!(got, want, "each tenant's message once");
    let c = &fx.stack.counter;
    // A transaction bills 2 WRU per item; plain conditional writes 1 each.
    assert_eq!(
        c.count_op("DynamoDB", "TransactWriteItems"),
        0,
        "{:?}",
        c.calls()
    );
    assert_eq!(
        c.count_op("DynamoDB", "UpdateItem"),
        30,
        "per tenant: its slots, its lock, its outcome: {:?}",
        c.calls()
    );
    for t in &tenants {
        let r = fx.record(t, "k1").await.unwrap();
        assert_eq!((r.state, r.attempts), (DeliveryState::Sent, 1), "{t}");
        assert!(r.lock_owner.is_none(), "{t}: lock released");
    }
}

#[tokio::test]
async fn redelivered_and_locked_records_of_a_batch_are_settled_and_the_others_sent_once() {
    let fx = fixture().await;
    let sim = sim().await;
    for t in ["t0", "t1", "t2", "t3", "t4"] {
        fx.tenant(t, &sim.base_url(), None, 30).await;
    }
    // t1's message was sent by an earlier invocation; t2's is being sent by a live one.
    let b = fx.handle(vec![msg("s1", "t1", "k", "t1 once")]).await;
    let Some(Outcome::Sent {
        provider_message_id: t1_id,
        ..
    }) = b.outcome("s1").cloned()
    else {
        panic!("{b:?}")
    };
    let m2 = OutboundMessage::parse(&text("t2", "k", TO, "t2 once").to_string()).unwrap();
    let now = OffsetDateTime::now_utc();
    let other = fx
        .records
        .begin(
            &m2,
            "s2",
            "other-invocation",
            now + Duration::from_secs(60),
            &fx.window("t2", 30),
            now,
        )
        .await
        .unwrap();
    assert!(matches!(other, Begin::Acquired(_)));
    sim.clear_requests();
    fx.stack.counter.reset();

    // SQS redelivers t1's message (lost response) and delivers t2's to this invocation too.
    let b = fx
        .handle(vec![
            msg("m0", "t0", "k", "t0 once"),
            record("s1", &text("t1", "k", TO, "t1 once").to_string(), "t1", 2),
            record("s2", &text("t2", "k", TO, "t2 once").to_string(), "t2", 1),
            msg("m3", "t3", "k", "t3 once"),
            msg("m4", "t4", "k", "t4 once"),
        ])
        .await;

    assert_eq!(
        b.outcome("s1"),
        Some(&Outcome::AlreadySettled(DeliveryState::Sent))
    );
    assert_eq!(b.outcome("s2"), Some(&Outcome::Locked));
    for id in ["m0", "m3", "m4"] {
        assert!(
            matches!(b.outcome(id), Some(Outcome::Sent { .. })),
            "{id}: {b:?}"
        );
    }
    assert_eq!(failures(&b), ["s2"], "only the locked one goes back");
    let mut got = texts(&sim);
    got.sort();
    assert_eq!(
        got,
        ["t0 once", "t3 once", "t4 once"],
        "each once, t1/t2 not"
    );
    let c = &fx.stack.counter;
    assert_eq!(
        c.count_op("DynamoDB", "TransactWriteItems"),
        0,
        "slots per tenant, then a conditional lock per record: {:?}",
        c.calls()
    );
    let r1 = fx.record("t1", "k").await.unwrap();
    assert_eq!((r1.state, r1.attempts), (DeliveryState::Sent, 1));
    assert_eq!(r1.provider_message_id.as_deref(), Some(t1_id.as_str()));
    let r2 = fx.record("t2", "k").await.unwrap();
    assert_eq!((r2.state, r2.attempts), (DeliveryState::InProgress, 1));
    assert_eq!(r2.lock_owner.as_deref(), Some("other-invocation"));
    for t in ["t0", "t3", "t4"] {
        let r = fx.record(t, "k").await.unwrap();
        assert_eq!((r.state, r.attempts), (DeliveryState::Sent, 1), "{t}");
    }
    // The refused records' slots were given back: one per tenant, from the sends above.
    for t in ["t0", "t1", "t2", "t3", "t4"] {
        let taken = fx.records.slots_taken(&fx.window(t, 30)).await.unwrap();
        assert_eq!(taken, 1, "{t}");
    }
}

#[tokio::test]
async fn full_rate_window_in_the_batch_transaction_defers_only_that_tenant() {
    // No wait fits: a full window defers the record.
    let mut s = settings();
    s.send_reserve = Duration::from_secs(60);
    let fx = fixture_with(s).await;
    let sim = sim().await;
    fx.tenant("full", &sim.base_url(), None, 1).await;
    fx.tenant("free", &sim.base_url(), None, 30).await;
    fx.handle(vec![msg("f0", "full", "k0", "uses the slot")])
        .await;
    sim.clear_requests();

    let b = fx
        .handle(vec![
            msg("f1", "full", "k1", "full 1"),
            msg("f2", "full", "k2", "full 2"),
            msg("g1", "free", "k1", "free 1"),
            msg("g2", "free", "k2", "free 2"),
        ])
        .await;

    assert!(
        matches!(b.outcome("f1"), Some(Outcome::Deferred { .. })),
        "{b:?}"
    );
    assert_eq!(b.outcome("f2"), Some(&Outcome::Skipped));
    assert_eq!(failures(&b), ["f1", "f2"]);
    assert_eq!(texts(&sim), ["free 1", "free 2"]);
    assert!(fx.record("full", "k1").await.is_none(), "untouched");
    assert!(fx.record("full", "k2").await.is_none(), "untouched");
    for k in ["k1", "k2"] {
        assert_eq!(
            fx.record("free", k).await.unwrap().state,
            DeliveryState::Sent
        );
    }
}

#[tokio::test]
async fn two_groups_of_one_tenant_both_send_without_sharing_a_transaction() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;
    fx.tenant("beta", &sim.base_url(), None, 30).await;
    fx.stack.counter.reset();

    // A producer using its own group ids: two groups of acme (one rate-window item).
    let b = fx
        .handle(vec![
            record("x1", &text("acme", "x1", TO, "x1").to_string(), "x", 1),
            record("y1", &text("acme", "y1", TO, "y1").to_string(), "y", 1),
            msg("b1", "beta", "b1", "b1"),
        ])
        .await;

    assert!(failures(&b).is_empty(), "{b:?}");
    let mut got = texts(&sim);
    got.sort();
    assert_eq!(got, ["b1", "x1", "y1"]);
    assert_eq!(
        fx.stack.counter.count_op("DynamoDB", "TransactWriteItems"),
        0,
        "each group its own slot write"
    );
    let taken = fx
        .records
        .slots_taken(&fx.window("acme", 30))
        .await
        .unwrap();
    assert_eq!(taken, 2, "one slot per message");
}

#[tokio::test]
async fn poisoned_records_are_recorded_failed_and_never_fail_their_neighbours() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 100).await;
    let invalid = text("acme", "bad-1", "0812345", "local number").to_string();

    let b = fx
        .handle(vec![
            msg("m1", "acme", "k1", "before"),
            record("p1", "{not json", "acme", 1),
            record("p2", &invalid, "acme", 1),
            msg("m2", "acme", "k2", "after"),
        ])
        .await;

    assert!(failures(&b).is_empty(), "{b:?}");
    assert!(matches!(b.outcome("p1"), Some(Outcome::Poisoned { .. })));
    assert!(matches!(b.outcome("p2"), Some(Outcome::Poisoned { .. })));
    assert_eq!(texts(&sim), ["before", "after"]);
    let r = fx.record("acme", "bad-1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Failed);
    assert_eq!(r.error_class.as_deref(), Some("invalid"));
    assert!(r.reason.unwrap().contains("to:"));
    let unkeyed = fx
        .records
        .get_key("_rejected#p1", OffsetDateTime::now_utc())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unkeyed.state, DeliveryState::Failed);
    assert_eq!(unkeyed.error_class.as_deref(), Some("malformed"));
}

#[tokio::test]
async fn unknown_tenant_is_recorded_failed_without_a_send() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;

    let b = fx.handle(vec![msg("m1", "ghost", "k1", "hi")]).await;

    assert!(failures(&b).is_empty());
    assert!(sim.requests().is_empty());
    let r = fx.record("ghost", "k1").await.unwrap();
    assert_eq!(
        (r.state, r.error_class.as_deref()),
        (DeliveryState::Failed, Some("unknown_tenant"))
    );
}

// ---------- rate limit ----------

#[tokio::test]
async fn rate_limit_holds_across_two_concurrent_invocations() {
    // Both instances may wait at most ~0 s: whatever exceeds the window is deferred.
    let mut s = settings();
    s.send_reserve = Duration::from_secs(60);
    let fx = fixture_with(s.clone()).await;
    let one_instance = sender_via(&fx.stack, &fx.proxy, s.clone());
    let other_instance = sender_via(&fx.stack, &fx.proxy, s);
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 3).await;

    let batch = |prefix: &str| {
        (0..3)
            .map(|i| {
                let key = format!("{prefix}{i}");
                record(&key, &text("acme", &key, TO, &key).to_string(), prefix, 1)
            })
            .collect::<Vec<_>>()
    };
    let (b1, b2) = tokio::join!(
        one_instance.handle_batch(event(batch("x")), deadline()),
        other_instance.handle_batch(event(batch("y")), deadline()),
    );

    assert_eq!(sim.requests_to("/send/message").len(), 3, "the limit held");
    let sent = b1.count("sent") + b2.count("sent");
    let deferred = b1.count("deferred") + b2.count("deferred");
    let skipped = b1.count("skipped") + b2.count("skipped");
    assert_eq!((sent, deferred + skipped), (3, 3), "{b1:?} {b2:?}");
    assert_eq!(
        fx.records.slots_taken(&fx.window("acme", 3)).await.unwrap(),
        3
    );
    // Deferred records are returned untouched: no record, nothing counted as a failure.
    for b in [&b1, &b2] {
        for r in &b.records {
            if !r.outcome.acknowledged() {
                assert!(fx.record("acme", &r.sqs_message_id).await.is_none());
            }
        }
    }
}

// ---------- receipts ----------

#[tokio::test]
async fn receipts_move_the_record_to_delivered_then_read_and_never_back() {
    let fx = fixture().await;
    let sim = sim().await;
    fx.tenant("acme", &sim.base_url(), None, 30).await;
    let b = fx.handle(vec![msg("m1", "acme", "k1", "hi")]).await;
    let Some(Outcome::Sent {
        provider_message_id: id,
        ..
    }) = b.outcome("m1").cloned()
    else {
        panic!("{b:?}")
    };
    let acme = "acme".parse().unwrap();
    let now = OffsetDateTime::now_utc();
    let apply = |tenant: &'static str, state: &'static str| {
        let id = id.clone();
        let store = fx.records.clone();
        async move {
            store
                .apply_receipt(
                    &tenant.parse().unwrap(),
                    &id,
                    state,
                    OffsetDateTime::now_utc(),
                )
                .await
                .unwrap()
        }
    };

    assert_eq!(
        apply("other", "read").await,
        ReceiptOutcome::NotFound,
        "another tenant's receipt"
    );
    assert_eq!(apply("acme", "read-self").await, ReceiptOutcome::Ignored);
    assert_eq!(
        apply("acme", "delivered").await,
        ReceiptOutcome::Updated {
            from: DeliveryState::Sent,
            to: DeliveryState::Delivered
        }
    );
    let r = fx.records.get(&acme, "k1", now).await.unwrap().unwrap();
    assert_eq!(r.state, DeliveryState::Delivered);
    assert!(r.delivered_at.is_some());
    assert_eq!(
        apply("acme", "read").await,
        ReceiptOutcome::Updated {
            from: DeliveryState::Delivered,
            to: DeliveryState::Read
        }
    );
    assert_eq!(
        apply("acme", "delivered").await,
        ReceiptOutcome::Unchanged {
            current: DeliveryState::Read
        },
        "never backwards"
    );
    let r = fx.records.get(&acme, "k1", now).await.unwrap().unwrap();
    assert_eq!(r.state, DeliveryState::Read);
    assert_eq!(r.provider_message_id.as_deref(), Some(id.as_str()));
    assert_eq!(sim.requests_to("/send/message").len(), 1);
}

async fn sim_backup() -> wagate_tests::sim_contract::Checked {
    sim().await
}

#[tokio::test]
async fn the_sent_outcome_carries_the_send_latency_in_the_same_write() {
    // Given a server that takes at least 150 ms to answer.
    let fx = fixture().await;
    let sim = sim().await;
    sim.set_faults(Faults {
        latency_ms: 150,
        ..Default::default()
    });
    fx.tenant("acme", &sim.base_url(), None, 30).await;

    let b = fx.handle(vec![msg("m1", "acme", "order-1", "hello")]).await;

    assert!(failures(&b).is_empty());
    let r = fx.record("acme", "order-1").await.unwrap();
    assert_eq!(r.state, DeliveryState::Sent);
    // A lower bound only: the round trip cannot be shorter than the server's own delay.
    let ms = r
        .send_latency_ms
        .expect("sendLatencyMs written with the sent outcome");
    assert!(ms >= 150, "latency {ms} ms below the server's 150 ms delay");
}

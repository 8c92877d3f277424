//! Webhook delivery to a small local receiver: exact bytes, GOWA's headers, retries.

mod common;

use common::{Receiver, default_sim, fixture};
use gowa_sim::{RetryPolicy, WebhookDelivery};
use serde_json::Value;

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        // Timeouts that only a dead receiver reaches (these answer at once).
        attempt_timeout_ms: 10_000,
        max_attempts: 5,
        initial_backoff_ms: 20,
        deadline_ms: 60_000,
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn sample_is_delivered_byte_for_byte_with_gowas_headers() {
    let sim = default_sim().await;
    let receiver = Receiver::start(&[]).await;
    let sample = fixture("gowa-message-text-incoming.json");

    let report = sim
        .deliver_webhook(WebhookDelivery::raw(
            &receiver.url,
            "secret",
            sample.clone(),
        ))
        .await
        .unwrap();

    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.body.as_ref(), sample.as_slice());
    assert_eq!(
        hit.headers["x-hub-signature-256"],
        "sha256=b0c547901276dfbe584429d7cf24222c14d564e9039bf7fcba9181ef84db1721"
    );
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(hit.headers["user-agent"], "Go-http-client/1.1");
    assert_eq!(
        hit.headers["transfer-encoding"], "chunked",
        "GOWA sets the body after building the request, so Go sends it chunked"
    );
    assert!(report.delivered);
    assert_eq!(report.attempts.len(), 1);
    assert_eq!(report.attempts[0].status, Some(200));
    assert_eq!(report.body_size, 518);
}

#[tokio::test]
async fn json_body_is_marshalled_like_go_and_signed_with_the_given_secret() {
    let sim = default_sim().await;
    let receiver = Receiver::start(&[]).await;
    let sample = fixture("gowa-message-ack-delivered.json");
    let value: Value = serde_json::from_slice(&sample).unwrap();

    let report = sim
        .deliver_webhook(WebhookDelivery::json(
            &receiver.url,
            "super-secret-key",
            value,
        ))
        .await
        .unwrap();

    let hit = &receiver.hits()[0];
    assert_eq!(hit.body.as_ref(), sample.as_slice());
    let expected = "sha256=8d7b51cd3773c472f5aaf5f3212e9d1ea7fff30ea9c3ee000b5a5e70eacfcadc";
    assert_eq!(hit.headers["x-hub-signature-256"], expected);
    assert_eq!(report.signature, expected);
}

#[tokio::test]
async fn retries_on_500_then_succeeds_with_the_same_body_and_signature() {
    let sim = default_sim().await;
    let receiver = Receiver::start(&[500, 500]).await;
    let sample = fixture("gowa-group-participants-join.json");

    let report = sim
        .deliver_webhook(
            WebhookDelivery::raw(&receiver.url, "secret", sample.clone())
                .with_retry(fast_retries()),
        )
        .await
        .unwrap();

    assert!(report.delivered);
    let statuses: Vec<Option<u16>> = report.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    assert_eq!(
        report.attempts[0].error.as_deref(),
        Some("webhook returned status 500")
    );
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3);
    for hit in &hits {
        assert_eq!(hit.body.as_ref(), sample.as_slice());
        assert_eq!(
            hit.headers["x-hub-signature-256"],
            "sha256=43327c5f15b34ad3b8952b2998991401925dba1e6e14262beefb1ee375c3702c"
        );
    }
}

#[tokio::test]
async fn gives_up_after_five_failed_attempts() {
    let sim = default_sim().await;
    let receiver = Receiver::start(&[503; 10]).await;

    let report = sim
        .deliver_webhook(
            WebhookDelivery::raw(&receiver.url, "secret", b"{}".to_vec())
                .with_retry(fast_retries()),
        )
        .await
        .unwrap();

    assert!(!report.delivered);
    assert_eq!(report.attempts.len(), 5);
    assert_eq!(receiver.hits().len(), 5);
}

#[tokio::test]
async fn attempts_after_the_deadline_fail_without_sending() {
    let sim = default_sim().await;
    let receiver = Receiver::start(&[500; 10]).await;
    let policy = RetryPolicy {
        attempt_timeout_ms: 1_000,
        max_attempts: 5,
        initial_backoff_ms: 100,
        deadline_ms: 300,
        ..RetryPolicy::default()
    };

    let report = sim
        .deliver_webhook(
            WebhookDelivery::raw(&receiver.url, "secret", b"{}".to_vec()).with_retry(policy),
        )
        .await
        .unwrap();

    // The sleeps alone (100 + 200 + 400 + 800 ms) end past the 300 ms deadline, so the last
    // attempt is late whatever the machine's speed; how many came before the deadline is
    // the machine's business (about two here), so it is not asserted.
    assert!(!report.delivered);
    assert_eq!(
        report.attempts.len(),
        5,
        "Go still loops (and sleeps) after the deadline"
    );
    let late: Vec<_> = report
        .attempts
        .iter()
        .skip_while(|a| a.status.is_some())
        .collect();
    assert!(!late.is_empty(), "{report:?}");
    for a in &late {
        assert_eq!(
            a.status, None,
            "no attempt is sent after the deadline: {report:?}"
        );
        assert_eq!(a.error.as_deref(), Some("context deadline exceeded"));
    }
    // Every attempt before the deadline was sent, every one after it was not.
    assert_eq!(receiver.hits().len(), report.attempts.len() - late.len());
}

#[tokio::test]
async fn without_retry_a_failure_is_a_single_attempt() {
    let sim = default_sim().await;
    let receiver = Receiver::start(&[500]).await;

    let report = sim
        .deliver_webhook(WebhookDelivery::raw(
            &receiver.url,
            "secret",
            b"{}".to_vec(),
        ))
        .await
        .unwrap();

    assert!(!report.delivered);
    assert_eq!(report.attempts.len(), 1);
    assert_eq!(receiver.hits().len(), 1);
}

#[tokio::test]
async fn unreachable_receiver_is_reported_as_a_connect_error() {
    let sim = default_sim().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);

    let report = sim
        .deliver_webhook(WebhookDelivery::raw(url, "secret", b"{}".to_vec()))
        .await
        .unwrap();

    assert!(!report.delivered);
    let error = report.attempts[0].error.as_deref().unwrap();
    assert!(error.starts_with("connect error"), "{error}");
}

#[tokio::test]
async fn webhooks_to_non_loopback_hosts_are_refused() {
    let sim = default_sim().await;

    let result = sim
        .deliver_webhook(WebhookDelivery::raw(
            "http://192.0.2.1/hook",
            "secret",
            b"{}".to_vec(),
        ))
        .await;

    assert!(result.is_err());
}

//! Events the simulator emits on its own, as GOWA forwards WhatsApp's: receipts after a send,
//! incoming messages on request, to each device's own webhook or the global one.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::{PHONE, PHONE_JID, Receiver, assert_send_success, client, status_and_json};
use gowa_sim::{
    DELIVERED_DESCRIPTION, DeviceSpec, IncomingError, IncomingMessage, READ_DESCRIPTION, Receipts,
    RetryPolicy, SimConfig, SimHandle, WebhookConfig, go_marshal,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const DEVICE_JID: &str = "6281234567890@s.whatsapp.net";

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Quick receipts and retries, so the tests do not wait GOWA's seconds.
fn quick(devices: Vec<DeviceSpec>) -> SimConfig {
    SimConfig {
        devices,
        receipts: Receipts {
            delivered_ms: Some(20),
            read_ms: Some(20),
        },
        webhook_retry: RetryPolicy::scaled_down(100),
        ..SimConfig::default()
    }
}

async fn with_control(config: SimConfig) -> SimHandle {
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    gowa_sim::start_on(config, any, Some(any)).await.unwrap()
}

async fn send_text_as(sim: &SimHandle, device: &str, text: &str) -> String {
    let response = client()
        .post(format!("{}/send/message", sim.base_url()))
        .header("X-Device-Id", device)
        .json(&json!({"phone": PHONE, "message": text}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_send_success(&body, "Message")
}

/// Asserts `hit` is a `message.ack` for `id` of type `receipt_type`, signed with `secret`,
/// with the exact bytes Go would marshal.
fn assert_receipt(hit: &common::Hit, id: &str, receipt_type: &str, secret: &str, session: &str) {
    let body = hit.json();
    assert_eq!(
        hit.body.as_ref(),
        go_marshal(&body).as_slice(),
        "compact JSON with sorted keys"
    );
    assert_eq!(
        hit.headers["x-hub-signature-256"],
        hmac_hex(secret, &hit.body).as_str()
    );
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(body["event"], "message.ack");
    assert_eq!(body["device_id"], DEVICE_JID);
    assert_eq!(body["session_id"], session);
    let timestamp = body["timestamp"].as_str().unwrap();
    assert!(
        timestamp.len() == 20 && timestamp.ends_with('Z'),
        "Go's time.RFC3339 in UTC: {timestamp}"
    );
    let payload = &body["payload"];
    assert_eq!(payload["ids"], json!([id]));
    assert_eq!(payload["chat_id"], PHONE_JID);
    assert_eq!(payload["from"], PHONE_JID);
    assert_eq!(payload["receipt_type"], receipt_type);
    let description = if receipt_type == "read" {
        READ_DESCRIPTION
    } else {
        DELIVERED_DESCRIPTION
    };
    assert_eq!(payload["receipt_type_description"], description);
}

#[tokio::test]
async fn accepted_send_is_followed_by_signed_delivered_then_read_receipts_to_the_device_webhook() {
    let receiver = Receiver::start(&[]).await;
    let device = DeviceSpec::logged_in("tenant-42", DEVICE_JID).with_webhook(&receiver.url, "s3");
    let sim = gowa_sim::start(quick(vec![device])).await.unwrap();

    let id = send_text_as(&sim, "tenant-42", "Booking confirmed").await;

    let hits = receiver.wait_for(2).await;
    assert_eq!(hits.len(), 2);
    assert_receipt(&hits[0], &id, "delivered", "s3", "tenant-42");
    assert_receipt(&hits[1], &id, "read", "s3", "tenant-42");
    let events = sim.events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.deliveries[0].delivered));
    assert_eq!(events[0].receipt_type.as_deref(), Some("delivered"));
}

#[tokio::test]
async fn devices_without_a_webhook_of_their_own_use_the_global_one_and_its_secret() {
    let own = Receiver::start(&[]).await;
    let global = Receiver::start(&[]).await;
    let config = SimConfig {
        webhook: WebhookConfig {
            urls: vec![global.url.clone()],
            secret: "global-secret".into(),
            events: Vec::new(),
        },
        ..quick(vec![
            DeviceSpec::logged_in("shop-1", DEVICE_JID).with_webhook(&own.url, "own-secret"),
            DeviceSpec::logged_in("shop-2", DEVICE_JID),
        ])
    };
    let sim = gowa_sim::start(config).await.unwrap();

    let id = send_text_as(&sim, "shop-2", "hello").await;

    let hits = global.wait_for(2).await;
    assert_receipt(&hits[0], &id, "delivered", "global-secret", "shop-2");
    assert_receipt(&hits[1], &id, "read", "global-secret", "shop-2");
    assert!(
        own.hits().is_empty(),
        "shop-1's webhook gets only shop-1's events"
    );
}

#[tokio::test]
async fn refused_send_gets_no_receipt() {
    let receiver = Receiver::start(&[]).await;
    let device = DeviceSpec::logged_in("tenant-42", DEVICE_JID).with_webhook(&receiver.url, "s3");
    let sim = gowa_sim::start(quick(vec![device])).await.unwrap();

    let refused = client()
        .post(format!("{}/send/message", sim.base_url()))
        .json(&json!({"phone": "0812345678", "message": "local format"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let id = send_text_as(&sim, "tenant-42", "accepted").await;

    let hits = receiver.wait_for(2).await;
    let ids: Vec<Value> = hits
        .iter()
        .map(|h| h.json()["payload"]["ids"][0].clone())
        .collect();
    assert_eq!(
        ids,
        [json!(id), json!(id)],
        "only the accepted send has receipts"
    );
}

#[tokio::test]
async fn receipts_can_be_turned_off_and_read_left_out() {
    let receiver = Receiver::start(&[]).await;
    let device = DeviceSpec::logged_in("tenant-42", DEVICE_JID).with_webhook(&receiver.url, "s3");
    let sim = gowa_sim::start(quick(vec![device])).await.unwrap();
    sim.set_receipts(Receipts {
        delivered_ms: Some(10),
        read_ms: None,
    });

    let first = send_text_as(&sim, "tenant-42", "one").await;
    receiver.wait_for(1).await;
    sim.set_receipts(Receipts::off());
    send_text_as(&sim, "tenant-42", "two").await;
    sim.set_receipts(Receipts {
        delivered_ms: Some(10),
        read_ms: None,
    });
    let third = send_text_as(&sim, "tenant-42", "three").await;

    let hits = receiver.wait_for(2).await;
    let seen: Vec<(Value, Value)> = hits
        .iter()
        .map(|h| {
            let body = h.json();
            (
                body["payload"]["ids"][0].clone(),
                body["payload"]["receipt_type"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!(first), json!("delivered")),
            (json!(third), json!("delivered"))
        ]
    );
}

#[tokio::test]
async fn incoming_reply_is_delivered_signed_and_quotes_the_message_it_answers() {
    let receiver = Receiver::start(&[]).await;
    let device = DeviceSpec::logged_in("tenant-42", DEVICE_JID).with_webhook(&receiver.url, "s3");
    let mut config = quick(vec![device]);
    config.receipts = Receipts::off();
    let sim = with_control(config).await;
    let sent = send_text_as(&sim, "tenant-42", "Booking confirmed").await;

    let response = client()
        .post(format!("{}/_sim/incoming", sim.control_url().unwrap()))
        .json(
            &json!({"from": format!("+{PHONE}"), "text": "Thanks, see you Saturday",
                      "from_name": "Budi", "reply_to": sent}),
        )
        .send()
        .await
        .unwrap();
    let (status, record) = status_and_json(response).await;

    assert_eq!(status, 200, "{record}");
    assert_eq!(record["event"], "message");
    assert_eq!(record["deliveries"][0]["delivered"], true);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(
        hit.headers["x-hub-signature-256"],
        hmac_hex("s3", &hit.body).as_str()
    );
    let body = hit.json();
    assert_eq!(hit.body.as_ref(), go_marshal(&body).as_slice());
    assert_eq!(body["event"], "message");
    assert_eq!(body["session_id"], "tenant-42");
    assert!(
        body.get("timestamp").is_none(),
        "message events carry it in the payload"
    );
    let payload = &body["payload"];
    assert_eq!(payload["body"], "Thanks, see you Saturday");
    assert_eq!(payload["from"], PHONE_JID);
    assert_eq!(payload["chat_id"], PHONE_JID);
    assert_eq!(payload["from_name"], "Budi");
    assert_eq!(payload["is_from_me"], false);
    assert_eq!(payload["replied_to_id"], json!(sent));
    assert_eq!(payload["quoted_body"], "Booking confirmed");
    assert_eq!(payload["id"], record["ids"][0]);
}

#[tokio::test]
async fn bad_incoming_messages_are_refused_and_nothing_is_sent() {
    let receiver = Receiver::start(&[]).await;
    let device = DeviceSpec::logged_in("tenant-42", DEVICE_JID).with_webhook(&receiver.url, "s3");
    let sim = with_control(quick(vec![device])).await;
    let url = format!("{}/_sim/incoming", sim.control_url().unwrap());

    for (body, status, code) in [
        (json!({"from": PHONE, "text": "  "}), 400, "bad_incoming"),
        (
            json!({"from": "0812345678", "text": "hi"}),
            400,
            "bad_incoming",
        ),
        (
            json!({"from": "120363402106123456@g.us", "text": "hi"}),
            400,
            "bad_incoming",
        ),
        (
            json!({"device_id": "nope", "from": PHONE, "text": "hi"}),
            404,
            "device_not_found",
        ),
        (
            json!({"from": PHONE, "text": "hi", "colour": "red"}),
            400,
            "bad_request",
        ),
        (json!({"text": "hi"}), 400, "bad_request"),
    ] {
        let response = client().post(&url).json(&body).send().await.unwrap();
        let (got, answer) = status_and_json(response).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }

    assert!(receiver.hits().is_empty());
    assert!(sim.events().is_empty());
}

#[tokio::test]
async fn incoming_without_a_device_needs_one_when_there_are_several() {
    let sim = gowa_sim::start(quick(vec![
        DeviceSpec::logged_in("a", DEVICE_JID),
        DeviceSpec::logged_in("b", DEVICE_JID),
    ]))
    .await
    .unwrap();

    let result = sim
        .deliver_incoming(IncomingMessage {
            device_id: None,
            from: PHONE.into(),
            text: "hi".into(),
            from_name: None,
            reply_to: None,
        })
        .await;

    assert_eq!(result, Err(IncomingError::DeviceRequired));
    assert!(sim.events().is_empty());
}

#[tokio::test]
async fn events_of_a_device_without_any_webhook_are_recorded_as_not_forwarded() {
    let sim = gowa_sim::start(quick(vec![DeviceSpec::logged_in("tenant-42", DEVICE_JID)]))
        .await
        .unwrap();

    let record = sim
        .deliver_incoming(IncomingMessage {
            device_id: Some("tenant-42".into()),
            from: PHONE.into(),
            text: "hi".into(),
            from_name: None,
            reply_to: None,
        })
        .await
        .unwrap();

    assert!(record.deliveries.is_empty());
    assert_eq!(
        record.skipped.as_deref(),
        Some("no webhook configured for the device")
    );
}

#[tokio::test]
async fn device_webhook_route_sets_reads_and_clears_it_like_gowa() {
    let receiver = Receiver::start(&[]).await;
    let sim = gowa_sim::start(quick(vec![DeviceSpec::logged_in("tenant-42", DEVICE_JID)]))
        .await
        .unwrap();
    let url = format!("{}/devices/tenant-42/webhook", sim.base_url());

    let response = client()
        .patch(&url)
        .json(&json!({"webhook_url": receiver.url, "webhook_secret": "s3",
                      "webhook_events": "message.ack"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Device webhook updated");
    assert_eq!(body["results"]["webhook_url"], json!(receiver.url));

    let (status, body) = status_and_json(client().get(&url).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["results"],
        json!({"device_id": "tenant-42", "webhook_url": receiver.url, "webhook_secret": "s3",
               "webhook_events": "message.ack", "webhook_insecure_skip_verify": false})
    );

    // The device's event list is authoritative: a message event is not forwarded.
    let record = sim
        .deliver_incoming(IncomingMessage {
            device_id: None,
            from: PHONE.into(),
            text: "hi".into(),
            from_name: None,
            reply_to: None,
        })
        .await
        .unwrap();
    assert!(record.deliveries.is_empty());
    let id = send_text_as(&sim, "tenant-42", "hello").await;
    let hits = receiver.wait_for(2).await;
    assert_receipt(&hits[0], &id, "delivered", "s3", "tenant-42");

    let response = client()
        .patch(&url)
        .json(&json!({"webhook_url": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, body) = status_and_json(client().get(&url).send().await.unwrap()).await;
    assert_eq!(body["results"]["webhook_url"], "");
}

#[tokio::test]
async fn device_webhook_route_refuses_a_missing_url_and_an_unknown_device() {
    let sim = gowa_sim::start(quick(vec![DeviceSpec::logged_in("tenant-42", DEVICE_JID)]))
        .await
        .unwrap();

    let response = client()
        .patch(format!("{}/devices/tenant-42/webhook", sim.base_url()))
        .json(&json!({"webhook_secret": "s3"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );

    let response = client()
        .patch(format!("{}/devices/nope/webhook", sim.base_url()))
        .json(&json!({"webhook_url": "http://127.0.0.1:9/h"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("DEVICE_NOT_FOUND"))
    );
    assert!(sim.devices()[0].webhook.is_none(), "nothing was set");
}

#[tokio::test]
async fn receipts_and_global_webhook_are_set_through_the_control_api() {
    let sim = with_control(SimConfig::default()).await;
    let control = sim.control_url().unwrap();

    let (status, body) = status_and_json(
        client()
            .put(format!("{control}/_sim/receipts"))
            .json(&json!({"delivered_ms": 5, "read_ms": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"delivered_ms": 5, "read_ms": null}));
    assert_eq!(
        sim.receipts(),
        Receipts {
            delivered_ms: Some(5),
            read_ms: None
        }
    );

    let (status, body) = status_and_json(
        client()
            .put(format!("{control}/_sim/webhook"))
            .json(&json!({"urls": ["http://127.0.0.1:9/h"], "secret": "hunter2"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"urls": ["http://127.0.0.1:9/h"], "events": []})
    );
    assert!(
        !body.to_string().contains("hunter2"),
        "the secret is write-only"
    );
}

//! The WAHA mode: `X-Api-Key`, sends, sessions and their statuses, QR and pairing-code
//! linking, session webhooks with HMAC-SHA512, receipts and incoming messages, error answers
//! and faults; every request a well-behaved client makes conforms to the WAHA document.

mod common;

use common::{
    PHONE, Receiver, client, control, header, kind_sim, python_hmac, status_and_json, text_of,
    wait_events,
};
use gowa_sim::contract::{self, Contract, Rule};
use gowa_sim::{
    DeliveryFailureFault, DeviceState, Faults, Kind, ProviderErrorFault, SendErrorFault,
    SendErrorStatus, SimHandle,
};
use serde_json::{Value, json};

const KEY: &str = "waha-key-0123456789";
const CHAT: &str = "6289685028129@c.us";

async fn sim() -> SimHandle {
    kind_sim(Kind::Waha, Some(KEY)).await
}

async fn post(sim: &SimHandle, path: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}{path}", sim.base_url()))
        .header("X-Api-Key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

/// A `POST` without a body (the session actions take none).
async fn post_empty(sim: &SimHandle, path: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{}{path}", sim.base_url()))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

async fn get(sim: &SimHandle, path: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}{path}", sim.base_url()))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

async fn send_text(sim: &SimHandle, text: &str) -> (u16, Value) {
    post(
        sim,
        "/api/sendText",
        json!({"session": "default", "chatId": CHAT, "text": text}),
    )
    .await
}

/// Configures the default session's webhook (with an HMAC key) through WAHA's own API.
async fn wire_webhook(sim: &SimHandle, url: &str, events: &[&str]) {
    let response = client()
        .put(format!("{}/api/sessions/default", sim.base_url()))
        .header("X-Api-Key", KEY)
        .json(&json!({"name": "default", "config": {"webhooks": [{
            "url": url, "events": events, "hmac": {"key": "my-secret-key"},
            "customHeaders": [{"name": "X-Tenant", "value": "tenant-42"}]
        }]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn requests_without_or_with_a_wrong_api_key_are_401_unauthorized() {
    let sim = sim().await;
    for key in [None, Some("wrong")] {
        let mut request = client().post(format!("{}/api/sendText", sim.base_url()));
        if let Some(key) = key {
            request = request.header("X-Api-Key", key);
        }
        let (status, body) = status_and_json(
            request
                .json(&json!({"session": "default", "chatId": CHAT, "text": "hi"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body, json!({"message": "Unauthorized", "statusCode": 401}));
    }
    let (status, _) = get(&sim, "/health").await;
    assert_eq!(status, 200);
    let unauthenticated = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401, "/health needs the key too");
    assert!(sim.events().is_empty(), "nothing was sent");
    let log = sim.requests();
    assert_eq!(log.iter().filter(|r| r.authorized).count(), 1);
    assert!(
        !serde_json::to_string(&log).unwrap().contains(KEY),
        "the key is never recorded"
    );
}

#[tokio::test]
async fn send_text_answers_gows_message_id_and_reply_to_is_accepted() {
    let sim = sim().await;
    let (status, body) = send_text(&sim, "Booking confirmed").await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("true_{CHAT}_3EB0")), "{id}");
    assert_eq!(
        body["_data"]["Message"]["conversation"],
        "Booking confirmed"
    );

    let (status, reply) = post(
        &sim,
        "/api/sendText",
        json!({"session": "default", "chatId": CHAT, "text": "and a reply", "reply_to": id}),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn image_and_document_by_url_with_caption_and_filename() {
    let sim = sim().await;
    let (status, image) = post(
        &sim,
        "/api/sendImage",
        json!({"session": "default", "chatId": CHAT, "caption": "Your table",
               "file": {"mimetype": "image/jpeg", "url": "https://example.com/t.jpg"}}),
    )
    .await;
    assert_eq!(status, 201, "{image}");
    assert_eq!(
        image["_data"]["Message"]["imageMessage"]["caption"],
        "Your table"
    );
    let (status, file) = post(
        &sim,
        "/api/sendFile",
        json!({"session": "default", "chatId": CHAT, "caption": "Invoice",
               "file": {"mimetype": "application/pdf", "url": "https://example.com/i.pdf", "filename": "invoice-42.pdf"}}),
    )
    .await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(
        file["_data"]["Message"]["documentMessage"]["fileName"],
        "invoice-42.pdf"
    );
    assert_eq!(sim.requests_to("/api/sendFile").len(), 1);
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn malformed_sends_are_400_with_class_validator_messages_and_send_nothing() {
    let sim = sim().await;
    let cases = [
        (
            json!({"session": "default", "text": "hi"}),
            "chatId must be a string",
        ),
        (
            json!({"session": "default", "chatId": CHAT}),
            "text must be a string",
        ),
        (
            json!({"session": "default", "chatId": "hello@c.us", "text": "hi"}),
            "chatId must be a phone number",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = post(&sim, "/api/sendText", body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"], "Bad Request");
        assert_eq!(answer["statusCode"], 400);
        assert!(
            answer["message"][0].as_str().unwrap().starts_with(message),
            "{answer}"
        );
    }
    let (status, answer) = post(
        &sim,
        "/api/sendImage",
        json!({"session": "default", "chatId": CHAT, "file": {"mimetype": "image/png"}}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(sim.events().is_empty(), "no receipt for a refused send");
}

#[tokio::test]
async fn unknown_session_is_404_and_a_session_not_working_is_422() {
    let sim = sim().await;
    let (status, body) = post(
        &sim,
        "/api/sendText",
        json!({"session": "nope", "chatId": CHAT, "text": "hi"}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "Not Found");
    assert!(body["message"].as_str().unwrap().contains("'nope'"));

    for (state, status_name) in [
        (DeviceState::Connected, "SCAN_QR_CODE"),
        (DeviceState::Disconnected, "STOPPED"),
        (DeviceState::Connecting, "STARTING"),
        (DeviceState::Failed, "FAILED"),
    ] {
        assert!(sim.set_device_state("default", state));
        let (status, body) = send_text(&sim, "hi").await;
        assert_eq!(status, 422);
        assert_eq!(
            body,
            json!({"error": "Session status is not as expected. Try again later or restart the session",
                   "session": "default", "status": status_name, "expected": ["WORKING"]})
        );
        let (_, session) = get(&sim, "/api/sessions/default").await;
        assert_eq!(session["status"], status_name);
    }
}

#[tokio::test]
async fn faults_answer_like_waha_and_what_is_in_front_of_it() {
    let sim = sim().await;
    let cases = [
        (SendErrorStatus::TooManyRequests, 429),
        (SendErrorStatus::InternalServerError, 500),
        (SendErrorStatus::BadGateway, 502),
        (SendErrorStatus::ServiceUnavailable, 503),
        (SendErrorStatus::GatewayTimeout, 504),
    ];
    for (fault, code) in cases {
        sim.set_faults(Faults {
            send_error: Some(SendErrorFault::next(1, fault)),
            gateway_timeout_ms: Some(10),
            ..Faults::default()
        });
        let response = client()
            .post(format!("{}/api/sendText", sim.base_url()))
            .header("X-Api-Key", KEY)
            .json(&json!({"session": "default", "chatId": CHAT, "text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), code);
        if code == 429 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["statusCode"], 429);
        }
    }
    for code in ["463", "475"] {
        sim.set_faults(Faults {
            provider_error: Some(ProviderErrorFault::next(1, code)),
            ..Faults::default()
        });
        let (status, body) = send_text(&sim, "hi").await;
        assert_eq!(status, 500);
        assert_eq!(body["error"], format!("server returned error {code}"));
        assert_eq!(body["path"], "/api/sendText");
    }
    let (status, _) = send_text(&sim, "after the faults").await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn health_reports_error_503_when_unhealthy_and_the_port_goes_down_and_up() {
    let sim = sim().await;
    sim.set_faults(Faults {
        health_unhealthy: true,
        ..Faults::default()
    });
    let (status, body) = get(&sim, "/health").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "error");
    sim.set_faults(Faults::default());
    let (status, body) = get(&sim, "/health").await;
    assert_eq!((status, body["status"].clone()), (200, json!("ok")));

    sim.set_down(true).await.unwrap();
    assert!(
        client()
            .get(format!("{}/health", sim.base_url()))
            .send()
            .await
            .is_err()
    );
    sim.set_down(false).await.unwrap();
    assert_eq!(get(&sim, "/health").await.0, 200);
}

#[tokio::test]
async fn receipts_are_message_ack_device_then_read_signed_with_hmac_sha512() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    wire_webhook(&sim, &receiver.url, &["message", "message.ack"]).await;
    let (_, sent) = send_text(&sim, "hi").await;
    let id = sent["id"].as_str().unwrap();

    let hits = receiver.wait_for(2).await;
    let acks: Vec<(i64, String)> = hits
        .iter()
        .map(|h| {
            let body = h.json();
            assert_eq!(body["event"], "message.ack");
            assert_eq!(body["session"], "default");
            assert_eq!(body["engine"], "GOWS");
            assert!(body["id"].as_str().unwrap().starts_with("evt_"));
            assert_eq!(body["payload"]["id"], id);
            assert_eq!(body["payload"]["fromMe"], true);
            (
                body["payload"]["ack"].as_i64().unwrap(),
                body["payload"]["ackName"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(acks, vec![(2, "DEVICE".into()), (3, "READ".into())]);
    for hit in &hits {
        assert_eq!(
            header(hit, "x-webhook-hmac").unwrap(),
            python_hmac("sha512", "my-secret-key", &hit.body),
            "verified with Python's hmac"
        );
        assert_eq!(header(hit, "x-webhook-hmac-algorithm").unwrap(), "sha512");
        assert_eq!(header(hit, "x-webhook-request-id").unwrap().len(), 26);
        let ts: i64 = header(hit, "x-webhook-timestamp").unwrap().parse().unwrap();
        assert!(ts > 1_700_000_000_000, "milliseconds: {ts}");
        assert_eq!(header(hit, "x-tenant").unwrap(), "tenant-42");
        assert!(!text_of(hit).contains('\n'), "compact JSON");
    }
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn a_webhook_without_hmac_sends_no_hmac_headers_and_events_are_filtered() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let response = client()
        .put(format!("{}/api/sessions/default", sim.base_url()))
        .header("X-Api-Key", KEY)
        .json(&json!({"config": {"webhooks": [{"url": receiver.url, "events": ["message"]}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    send_text(&sim, "no acks wanted").await;
    let events = wait_events(&sim, 2).await;
    assert!(
        events.iter().all(|e| e.skipped.is_some()),
        "acks filtered out"
    );

    let record = sim
        .deliver_incoming(gowa_sim::IncomingMessage {
            device_id: None,
            from: "+6289876543210".into(),
            text: "Hello".into(),
            from_name: Some("Budi".into()),
            reply_to: None,
        })
        .await
        .unwrap();
    assert_eq!(record.event, "message");
    let hits = receiver.wait_for(1).await;
    assert!(header(&hits[0], "x-webhook-hmac").is_none());
    assert!(header(&hits[0], "x-webhook-request-id").is_some());
}

#[tokio::test]
async fn incoming_messages_and_replies_have_wahas_message_shape() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    wire_webhook(&sim, &receiver.url, &["message"]).await;
    let (_, sent) = send_text(&sim, "Your booking is confirmed").await;
    let sent_id = sent["id"].as_str().unwrap().to_owned();

    let response = client()
        .post(format!("{}/_sim/incoming", control(&sim)))
        .json(&json!({"from": "+6289876543210", "text": "Thanks!", "from_name": "Budi", "reply_to": sent_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let hits = receiver.wait_for(1).await;
    let body = hits[0].json();
    assert_eq!(body["event"], "message");
    let payload = &body["payload"];
    assert!(
        payload["id"]
            .as_str()
            .unwrap()
            .starts_with("false_6289876543210@c.us_")
    );
    assert_eq!(payload["from"], "6289876543210@c.us");
    assert_eq!(payload["fromMe"], false);
    assert_eq!(payload["body"], "Thanks!");
    assert_eq!(payload["replyTo"]["body"], "Your booking is confirmed");
    assert_eq!(
        payload["replyTo"]["id"].as_str().unwrap(),
        sent_id.rsplit('_').next().unwrap()
    );
    assert_eq!(body["me"]["id"], "6281234567890@c.us");
}

#[tokio::test]
async fn a_failed_delivery_is_acknowledged_with_error() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    wire_webhook(&sim, &receiver.url, &["message.ack"]).await;
    sim.set_faults(Faults {
        delivery_failure: Some(DeliveryFailureFault::next(1, "")),
        ..Faults::default()
    });
    send_text(&sim, "will fail").await;
    let hits = receiver.wait_for(1).await;
    let body = hits[0].json();
    assert_eq!(body["payload"]["ack"], -1);
    assert_eq!(body["payload"]["ackName"], "ERROR");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(receiver.hits().len(), 1, "no DEVICE or READ after ERROR");
}

#[tokio::test]
async fn a_session_links_by_qr_or_pairing_code_when_the_phone_scans() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    wire_webhook(&sim, &receiver.url, &["session.status"]).await;
    // Logging out restarts the session from scratch: SCAN_QR_CODE.
    let (status, session) = post_empty(&sim, "/api/sessions/default/logout").await;
    assert_eq!(status, 200);
    assert_eq!(session["status"], "SCAN_QR_CODE");
    assert_eq!(session["me"], Value::Null);

    let png = client()
        .get(format!("{}/api/default/auth/qr", sim.base_url()))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let as_json = client()
        .get(format!(
            "{}/api/default/auth/qr?format=image",
            sim.base_url()
        ))
        .header("X-Api-Key", KEY)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let (_, as_json) = status_and_json(as_json).await;
    assert_eq!(as_json["mimetype"], "image/png");
    let (_, raw) = get(&sim, "/api/default/auth/qr?format=raw").await;
    assert!(raw["value"].as_str().unwrap().starts_with("2@"));

    let (status, code) = post(
        &sim,
        "/api/default/auth/request-code",
        json!({"phoneNumber": "6281234567890"}),
    )
    .await;
    assert_eq!(status, 200);
    let code = code["code"].as_str().unwrap();
    assert_eq!(code.len(), 9);
    assert_eq!(&code[4..5], "-");

    let response = client()
        .post(format!("{}/_sim/devices/default/scan", control(&sim)))
        .json(&json!({"jid": "6281234567890"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, session) = get(&sim, "/api/sessions/default").await;
    assert_eq!(session["status"], "WORKING");
    assert_eq!(session["me"]["id"], "6281234567890@c.us");
    let (_, qr) = get(&sim, "/api/default/auth/qr").await;
    assert_eq!(
        qr["expected"],
        json!(["SCAN_QR_CODE"]),
        "no QR once WORKING"
    );

    // Updating the config restarted the running session (WORKING), then logout (SCAN_QR_CODE)
    // and the scan (WORKING).
    let statuses: Vec<String> = receiver
        .wait_for(3)
        .await
        .iter()
        .map(|h| h.json()["payload"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, vec!["WORKING", "SCAN_QR_CODE", "WORKING"]);
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn sessions_are_created_started_stopped_and_restarted() {
    let sim = sim().await;
    let (status, created) = post(
        &sim,
        "/api/sessions",
        json!({"name": "tenant-7", "start": false, "config": {"webhooks": [{"url": "http://127.0.0.1:9/h", "events": ["message"], "hmac": {"key": "k"}}]}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "STOPPED");
    assert_eq!(created["config"]["webhooks"][0]["hmac"]["key"], "k");
    assert_eq!(created["config"]["webhooks"][0]["retries"], Value::Null);
    let (status, _) = post(&sim, "/api/sessions", json!({"name": "tenant-7"})).await;
    assert_eq!(status, 422, "the name is taken");
    let (_, started) = post_empty(&sim, "/api/sessions/tenant-7/start").await;
    assert_eq!(
        started["status"], "SCAN_QR_CODE",
        "a new session has no account"
    );
    let (_, stopped) = post_empty(&sim, "/api/sessions/default/stop").await;
    assert_eq!(stopped["status"], "STOPPED");
    let (_, restarted) = post_empty(&sim, "/api/sessions/default/restart").await;
    assert_eq!(
        restarted["status"], "WORKING",
        "its account survives a stop"
    );
    let (_, list) = get(&sim, "/api/sessions?all=true").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    contract::assert_conforms(&sim);

    let (status, _) = post(
        &sim,
        "/api/sessions",
        json!({"name": "bad", "config": {"webhooks": [{"url": "not a url", "events": []}]}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        sim.devices().iter().all(|d| d.id != "bad"),
        "nothing created"
    );
    let found = contract::violations(&sim);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].detail.contains("/config/webhooks/0/events"),
        "{}",
        found[0]
    );
}

#[tokio::test]
async fn the_checker_flags_requests_waha_would_not_take() {
    let sim = sim().await;
    // An undocumented field, a bare number as chatId, and a missing session.
    post(
        &sim,
        "/api/sendText",
        json!({"chatId": "6289685028129", "text": "hi", "message": "x"}),
    )
    .await;
    let found = contract::violations(&sim);
    let details: Vec<String> = found.iter().map(|v| v.to_string()).collect();
    assert!(found.iter().all(|v| v.rule == Rule::Body), "{details:#?}");
    assert!(
        details.iter().any(|d| d.contains("message")),
        "{details:#?}"
    );
    assert!(
        details.iter().any(|d| d.contains("session")),
        "{details:#?}"
    );
    assert!(details.iter().any(|d| d.contains("chatId")), "{details:#?}");
    assert_eq!(Contract::waha().name(), "waha");
    let _ = PHONE;
}

//! The Meta Cloud API mode: bearer tokens and Graph errors, text / image / document sends and
//! replies, Meta's error codes (synchronous and in `failed` statuses), `statuses` and `messages`
//! webhooks signed with the app secret over Meta's escaped JSON (checked against Meta's own
//! `WebhookPayload` schema), health status and registration, and the verification handshake;
//! a well-behaved client's requests conform to Meta's spec.

mod common;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use common::{Receiver, client, control, header, kind_sim, python_hmac, status_and_json, text_of};
use gowa_sim::contract::{self, Contract, Rule};
use gowa_sim::{
    DeliveryFailureFault, Faults, Kind, MessagingHealth, ProviderErrorFault, SendErrorFault,
    SendErrorStatus, SimHandle, WebhookConfig,
};
use serde_json::{Value, json};

const TOKEN: &str = "EAAGm0PX4ZCpsBAtoken0123";
const APP_SECRET: &str = "meta-app-secret";
const PHONE_ID: &str = "106540352242922";
const TO: &str = "6289685028129";

async fn sim() -> SimHandle {
    kind_sim(Kind::Meta, Some(TOKEN)).await
}

fn messages_url(sim: &SimHandle) -> String {
    format!("{}/v23.0/{PHONE_ID}/messages", sim.base_url())
}

async fn send(sim: &SimHandle, body: Value) -> (u16, Value) {
    let response = client()
        .post(messages_url(sim))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

fn text(body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, "type": "text", "text": {"body": body}})
}

async fn get_phone(sim: &SimHandle, query: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}/v23.0/{PHONE_ID}{query}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

fn wire_callback(sim: &SimHandle, url: &str) {
    sim.set_webhook(WebhookConfig {
        urls: vec![url.to_owned()],
        secret: APP_SECRET.to_owned(),
        events: Vec::new(),
    });
}

/// Asserts `body` is a `WebhookPayload` by Meta's spec.
fn assert_meta_payload(body: &Value) {
    let doc = Contract::meta().document();
    let root =
        json!({"$ref": "#/components/schemas/WebhookPayload", "components": doc["components"]});
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{body:#}");
}

/// Asserts `a` and `b` have the same keys at every level (values aside).
fn assert_same_keys(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<&String> = x.keys().collect();
            let ky: Vec<&String> = y.keys().collect();
            assert_eq!(kx, ky, "keys at {at}");
            for k in x.keys() {
                assert_same_keys(&x[k], &y[k], &format!("{at}/{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "items at {at}");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert_same_keys(p, q, &format!("{at}/{i}"));
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn missing_wrong_or_expired_tokens_are_401_code_190() {
    let sim = sim().await;
    for token in [None, Some("wrong-token")] {
        let mut request = client().post(messages_url(&sim)).json(&text("hi"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("OAuth")
        );
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], 190);
        assert_eq!(body["error"]["type"], "OAuthException");
        assert!(body["error"]["fbtrace_id"].is_string());
    }
    sim.set_faults(Faults {
        credentials_expired: true,
        ..Faults::default()
    });
    let (status, body) = send(&sim, text("hi")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["error_subcode"], 463, "expired");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Session has expired")
    );
    assert!(sim.events().is_empty(), "nothing sent");
    assert!(
        !serde_json::to_string(&sim.requests())
            .unwrap()
            .contains(TOKEN)
    );
}

#[tokio::test]
async fn unknown_phone_numbers_and_api_versions_are_graph_errors() {
    let sim = sim().await;
    let response = client()
        .post(format!("{}/v23.0/999/messages", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&text("hi"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        (
            body["error"]["code"].clone(),
            body["error"]["error_subcode"].clone()
        ),
        (json!(100), json!(33))
    );
    let response = client()
        .post(format!("{}/latest/{PHONE_ID}/messages", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&text("hi"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 2500);
}

#[tokio::test]
async fn text_sends_answer_a_wamid_and_replies_carry_context() {
    let sim = sim().await;
    let (status, body) = send(&sim, text("Booking confirmed")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["contacts"], json!([{"input": TO, "wa_id": TO}]));
    let id = body["messages"][0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wamid.HBg"), "{id}");

    let mut reply = text("A reply");
    reply["context"] = json!({"message_id": id});
    let (status, _) = send(&sim, reply).await;
    assert_eq!(status, 200);
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn image_and_document_by_link_with_caption_and_filename() {
    let sim = sim().await;
    let (status, image) = send(
        &sim,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, "type": "image",
               "image": {"link": "https://example.com/t.jpg", "caption": "Your table"}}),
    )
    .await;
    assert_eq!(status, 200, "{image}");
    let (status, doc) = send(
        &sim,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, "type": "document",
               "document": {"link": "https://example.com/i.pdf", "filename": "invoice-42.pdf", "caption": "Invoice"}}),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn malformed_messages_are_code_100_and_send_nothing() {
    let sim = sim().await;
    let cases = [
        (
            json!({"to": TO, "type": "text", "text": {"body": "x"}}),
            "messaging_product",
        ),
        (
            json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}),
            "to",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {}}),
            "text['body']",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": TO, "type": "image", "image": {}}),
            "image",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": TO, "type": "hologram"}),
            "type",
        ),
    ];
    for (body, names) in cases {
        let (status, answer) = send(&sim, body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], 100);
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(names),
            "{answer}"
        );
    }
    let (status, answer) = send(&sim, json!({"messaging_product": "whatsapp", "to": TO, "type": "audio", "audio": {"link": "https://x/a.ogg"}})).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!(131051))
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(sim.events().is_empty());
}

#[tokio::test]
async fn each_documented_error_code_answers_with_its_status_and_message() {
    let sim = sim().await;
    for (code, status, title) in [
        ("130429", 400, "Rate limit hit"),
        ("131056", 400, "pair rate limit hit"),
        ("131047", 400, "Re-engagement message"),
        ("131026", 400, "Message undeliverable"),
        ("100", 400, "Invalid parameter"),
        ("131000", 500, "Something went wrong"),
        ("131016", 503, "Service unavailable"),
        ("190", 401, "Session has expired"),
    ] {
        sim.set_faults(Faults {
            provider_error: Some(ProviderErrorFault::next(1, code)),
            ..Faults::default()
        });
        let (got, body) = send(&sim, text("hi")).await;
        assert_eq!(got, status, "{code}: {body}");
        assert_eq!(body["error"]["code"].to_string(), code);
        assert!(
            body["error"]["message"].as_str().unwrap().contains(title),
            "{body}"
        );
        if code != "190" {
            assert_eq!(body["error"]["error_data"]["messaging_product"], "whatsapp");
            assert!(body["error"]["error_data"]["details"].is_string());
        }
    }
    // The control API refuses a code Meta does not have.
    let response = client()
        .put(format!("{}/_sim/faults", control(&sim)))
        .json(&json!({"provider_error": {"code": "424242"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(send(&sim, text("hi")).await.0, 200);
}

#[tokio::test]
async fn http_faults_answer_with_graph_bodies_or_proxy_pages() {
    let sim = sim().await;
    for (fault, code, graph_code) in [
        (SendErrorStatus::TooManyRequests, 429, Some(130429)),
        (SendErrorStatus::InternalServerError, 500, Some(131000)),
        (SendErrorStatus::ServiceUnavailable, 503, Some(131016)),
        (SendErrorStatus::BadGateway, 502, None),
        (SendErrorStatus::GatewayTimeout, 504, None),
    ] {
        sim.set_faults(Faults {
            send_error: Some(SendErrorFault::next(1, fault)),
            gateway_timeout_ms: Some(10),
            ..Faults::default()
        });
        let response = client()
            .post(messages_url(&sim))
            .bearer_auth(TOKEN)
            .json(&text("hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), code);
        if let Some(graph_code) = graph_code {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], graph_code);
        }
    }
}

#[tokio::test]
async fn statuses_sent_delivered_read_are_signed_and_match_metas_webhook_schema() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    wire_callback(&sim, &receiver.url);
    let (_, sent) = send(&sim, text("hi")).await;
    let id = sent["messages"][0]["id"].as_str().unwrap();
    let hits = receiver.wait_for(3).await;
    let statuses: Vec<String> = hits
        .iter()
        .map(|hit| {
            let body = hit.json();
            assert_meta_payload(&body);
            assert_eq!(body["object"], "whatsapp_business_account");
            assert_eq!(body["entry"][0]["id"], gowa_sim::DEFAULT_META_WABA_ID);
            let value = &body["entry"][0]["changes"][0]["value"];
            assert_eq!(value["metadata"]["phone_number_id"], PHONE_ID);
            let status = &value["statuses"][0];
            assert_eq!(status["id"], id);
            assert_eq!(status["recipient_id"], TO);
            assert_eq!(
                header(hit, "x-hub-signature-256").unwrap(),
                format!("sha256={}", python_hmac("sha256", APP_SECRET, &hit.body))
            );
            status["status"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(statuses, vec!["sent", "delivered", "read"]);
    assert!(
        text_of(&hits[0]).starts_with(r#"{"object":"whatsapp_business_account","entry":[{"id":"#)
    );
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn a_re_engagement_failure_and_an_undeliverable_number_arrive_as_failed_statuses() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    wire_callback(&sim, &receiver.url);
    sim.set_faults(Faults {
        delivery_failure: Some(DeliveryFailureFault::next(1, "131047")),
        not_on_whatsapp: vec!["6281111111111".into()],
        ..Faults::default()
    });
    send(&sim, text("outside the window")).await;
    let mut second = text("to nobody");
    second["to"] = json!("+62 811-1111-1111");
    let (status, answer) = send(&sim, second).await;
    assert_eq!(status, 200, "Meta accepts first: {answer}");
    let hits = receiver.wait_for(4).await;
    let failed: Vec<Value> = hits
        .iter()
        .map(|h| h.json())
        .filter(|b| b["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 2);
    let mut codes: Vec<i64> = failed
        .iter()
        .map(|b| {
            assert_meta_payload(b);
            let error = &b["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0];
            assert!(error["href"].as_str().unwrap().contains("error-codes"));
            error["code"].as_i64().unwrap()
        })
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, vec![131_026, 131_047]);
}

#[tokio::test]
async fn incoming_messages_escape_unicode_and_slashes_and_the_signature_covers_the_escaped_bytes() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    wire_callback(&sim, &receiver.url);
    let (_, sent) = send(&sim, text("Your booking")).await;
    let sent_id = sent["messages"][0]["id"].as_str().unwrap().to_owned();
    let response = client()
        .post(format!("{}/_sim/incoming", control(&sim)))
        .json(&json!({"from": "+6289876543210", "text": "Café at 7/8? 👍", "from_name": "Budi", "reply_to": sent_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let hits = receiver.wait_for(4).await;
    let hit = hits
        .iter()
        .find(|h| h.json()["entry"][0]["changes"][0]["value"]["messages"].is_array())
        .unwrap();
    let raw = text_of(hit);
    assert!(raw.contains(r"Caf\u00e9 at 7\/8? \ud83d\udc4d"), "{raw}");
    assert_eq!(
        header(hit, "x-hub-signature-256").unwrap(),
        format!("sha256={}", python_hmac("sha256", APP_SECRET, &hit.body))
    );
    let body = hit.json();
    // Meta's `WebhookPayload` schema refuses its own message examples (it reuses the send-side
    // message schemas, which require `to` and `recipient_type`): compare with the spec's
    // example instead, key for key.
    let example = &Contract::meta().document()["paths"]["/whatsapp/webhooks"]["post"]["requestBody"]
        ["content"]["application/json"]["examples"]["Text Message with Context (Product Inquiry)"]
        ["value"];
    let mut example = example.clone();
    example["entry"][0]["changes"][0]["value"]["messages"][0]["context"]
        .as_object_mut()
        .unwrap()
        .remove("referred_product");
    assert_same_keys(&body, &example, "");
    let value = &body["entry"][0]["changes"][0]["value"];
    assert_eq!(value["contacts"][0]["wa_id"], "6289876543210");
    assert_eq!(value["contacts"][0]["profile"]["name"], "Budi");
    let message = &value["messages"][0];
    assert_eq!(message["text"]["body"], "Café at 7/8? 👍");
    assert_eq!(message["context"]["id"], sent_id);
    assert!(message["id"].as_str().unwrap().starts_with("wamid."));
}

#[tokio::test]
async fn health_status_follows_the_numbers_messaging_health() {
    let sim = sim().await;
    let (status, body) = get_phone(&sim, "?fields=health_status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], PHONE_ID);
    assert_eq!(body["health_status"]["can_send_message"], "AVAILABLE");
    assert_eq!(
        body["health_status"]["entities"][0]["entity_type"],
        "PHONE_NUMBER"
    );
    for (health, name) in [
        (MessagingHealth::Limited, "LIMITED"),
        (MessagingHealth::Blocked, "BLOCKED"),
    ] {
        assert!(sim.set_device_health(PHONE_ID, health));
        let (_, body) = get_phone(&sim, "?fields=health_status").await;
        assert_eq!(body["health_status"]["can_send_message"], name);
    }
    let (status, blocked) = send(&sim, text("hi")).await;
    assert_eq!(
        (status, blocked["error"]["code"].clone()),
        (400, json!(131031))
    );
    let (_, default) = get_phone(&sim, "").await;
    assert_eq!(default["quality_rating"], "GREEN");
    assert!(
        default.get("health_status").is_none(),
        "only asked-for fields"
    );
    let (status, unknown) = get_phone(&sim, "?fields=pizza").await;
    assert_eq!(
        (status, unknown["error"]["code"].clone()),
        (400, json!(100))
    );
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn a_number_is_registered_with_a_pin_and_deregistered_numbers_cannot_send() {
    let sim = sim().await;
    let post = |path: &'static str, body: Option<Value>| {
        let url = format!("{}/v23.0/{PHONE_ID}/{path}", sim.base_url());
        async move {
            let request = client().post(url).bearer_auth(TOKEN);
            let request = match body {
                Some(body) => request.json(&body),
                None => request,
            };
            status_and_json(request.send().await.unwrap()).await
        }
    };
    assert_eq!(
        post("deregister", None).await,
        (200, json!({"success": true}))
    );
    let (_, phone) = get_phone(&sim, "?fields=status,platform_type").await;
    assert_eq!(phone["platform_type"], "NOT_APPLICABLE");
    let (status, body) = send(&sim, text("hi")).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(133010))
    );
    let (status, _) = post(
        "register",
        Some(json!({"messaging_product": "whatsapp", "pin": "12"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        post(
            "register",
            Some(json!({"messaging_product": "whatsapp", "pin": "123456"}))
        )
        .await
        .0,
        200
    );
    let (_, phone) = get_phone(&sim, "?fields=status,platform_type").await;
    assert_eq!(
        (phone["status"].clone(), phone["platform_type"].clone()),
        (json!("CONNECTED"), json!("CLOUD_API"))
    );
    assert_eq!(send(&sim, text("hi")).await.0, 200);
    assert!(
        sim.scan(PHONE_ID, None).is_err(),
        "numbers are not linked by a scan"
    );
}

/// A callback that answers Meta's handshake the way a correct receiver does.
async fn callback(verify_token: &'static str) -> String {
    let app = Router::new().route(
        "/webhooks/whatsapp/tenant-42",
        get(
            move |Query(q): Query<BTreeMap<String, String>>| async move {
                if q.get("hub.mode").map(String::as_str) == Some("subscribe")
                    && q.get("hub.verify_token").map(String::as_str) == Some(verify_token)
                {
                    (
                        StatusCode::OK,
                        q.get("hub.challenge").cloned().unwrap_or_default(),
                    )
                } else {
                    (StatusCode::FORBIDDEN, "Forbidden".to_owned())
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/whatsapp/tenant-42",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn the_verification_handshake_reports_whether_the_challenge_came_back() {
    let sim = sim().await;
    let url = callback("verify-me").await;
    let report = sim
        .verify_callback(&url, "verify-me", Some("1158201444"))
        .await
        .unwrap();
    assert!(report.verified, "{report:?}");
    assert_eq!(
        (report.status, report.body.as_str()),
        (Some(200), "1158201444")
    );
    assert!(
        !report.url.contains("verify-me"),
        "the token is not echoed: {}",
        report.url
    );

    let wrong = sim
        .verify_callback(&url, "not-the-token", None)
        .await
        .unwrap();
    assert!(!wrong.verified);
    assert_eq!(wrong.status, Some(403));

    // Through the control API, with a challenge the simulator picks.
    let response = client()
        .post(format!("{}/_sim/verify-callback", control(&sim)))
        .json(&json!({"url": url, "verify_token": "verify-me"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["verified"], true);
    assert_eq!(body["body"], body["challenge"]);
    let refused = client()
        .post(format!("{}/_sim/verify-callback", control(&sim)))
        .json(&json!({"url": "http://10.0.0.1/x", "verify_token": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400, "loopback only");
}

#[tokio::test]
async fn the_checker_reads_metas_spec_strictly() {
    let sim = sim().await;
    // Accepted by the server (recipient_type is optional there) but not by the spec.
    send(
        &sim,
        json!({"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": "x"}}),
    )
    .await;
    // A field the message object does not have.
    send(&sim, json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, "type": "text", "text": {"body": "x"}, "priority": "high"})).await;
    // Form-encoded instead of JSON.
    client()
        .post(messages_url(&sim))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body("to=1")
        .send()
        .await
        .unwrap();
    let found = contract::violations(&sim);
    let by_seq = |seq: u64| {
        found
            .iter()
            .filter(|v| v.seq == seq)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert!(
        by_seq(1).iter().any(|v| v.contains("recipient_type")),
        "{found:#?}"
    );
    assert!(
        by_seq(2).iter().any(|v| v.contains("priority")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.seq == 3 && matches!(v.rule, Rule::ContentType | Rule::Header)),
        "{found:#?}"
    );
}

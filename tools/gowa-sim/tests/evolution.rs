//! The Evolution API v2 mode: `apikey` (global or instance token), sends, connection states,
//! connect with QR or pairing code, logout and restart, `webhook/set` with a `jwt_key`,
//! `messages.update` receipts and `messages.upsert` messages carrying the instance `apikey`,
//! error answers and faults; a well-behaved client's requests conform to the Evolution
//! document.

mod common;

use common::{
    Receiver, client, control, header, kind_sim, python_jwt_claims, status_and_json, wait_events,
};
use gowa_sim::contract::{self, Rule};
use gowa_sim::{
    DeliveryFailureFault, DeviceState, Faults, Kind, ProviderErrorFault, SendErrorFault,
    SendErrorStatus, SimHandle,
};
use serde_json::{Value, json};

const GLOBAL_KEY: &str = "evo-global-key-0123";
const NUMBER: &str = "6289685028129";
const JID: &str = "6289685028129@s.whatsapp.net";

async fn sim() -> SimHandle {
    kind_sim(Kind::Evolution, Some(GLOBAL_KEY)).await
}

async fn call(
    sim: &SimHandle,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", sim.base_url());
    let request = match method {
        "GET" => client().get(url),
        "DELETE" => client().delete(url),
        _ => client().post(url),
    }
    .header("apikey", key);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    status_and_json(request.send().await.unwrap()).await
}

async fn send_text(sim: &SimHandle, text: &str) -> (u16, Value) {
    call(
        sim,
        "POST",
        "/message/sendText/demo",
        GLOBAL_KEY,
        Some(json!({"number": NUMBER, "text": text})),
    )
    .await
}

async fn set_webhook(sim: &SimHandle, url: &str, jwt_key: Option<&str>, events: &[&str]) -> Value {
    let mut headers = json!({"x-tenant": "tenant-42"});
    if let Some(key) = jwt_key {
        headers["jwt_key"] = json!(key);
    }
    let (status, row) = call(
        sim,
        "POST",
        "/webhook/set/demo",
        GLOBAL_KEY,
        Some(json!({"webhook": {"enabled": true, "url": url, "headers": headers, "byEvents": false, "base64": false, "events": events}})),
    )
    .await;
    assert_eq!(status, 201, "{row}");
    row
}

#[tokio::test]
async fn the_global_key_and_the_instance_token_are_accepted_anything_else_is_401() {
    let sim = sim().await;
    let (status, _) = call(
        &sim,
        "GET",
        "/instance/connectionState/demo",
        GLOBAL_KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &sim,
        "GET",
        "/instance/connectionState/demo",
        "demo-token",
        None,
    )
    .await;
    assert_eq!(status, 200, "the instance's own token");
    let (status, body) = call(&sim, "GET", "/instance/connectionState/demo", "wrong", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}})
    );
    let missing = client()
        .post(format!("{}/message/sendText/demo", sim.base_url()))
        .json(&json!({"number": NUMBER, "text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    // Upstream checks the instance before the key.
    let (status, body) = call(
        &sim,
        "GET",
        "/instance/connectionState/ghost",
        "wrong",
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["response"]["message"],
        json!(["The \"ghost\" instance does not exist"])
    );
    // The welcome page needs no key.
    let welcome = client()
        .get(format!("{}/", sim.base_url()))
        .send()
        .await
        .unwrap();
    let (status, welcome) = status_and_json(welcome).await;
    assert_eq!(status, 200);
    assert_eq!(
        welcome["message"],
        "Welcome to the Evolution API, it is working!"
    );
    assert!(
        !serde_json::to_string(&sim.requests())
            .unwrap()
            .contains(GLOBAL_KEY),
        "keys are never recorded"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(sim.events().is_empty());
}

#[tokio::test]
async fn send_text_answers_201_with_the_baileys_message_and_quoted_replies() {
    let sim = sim().await;
    let (status, body) = send_text(&sim, "Booking confirmed").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["key"]["remoteJid"], JID);
    assert_eq!(body["key"]["fromMe"], true);
    let id = body["key"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("3EB0") && id.len() == 22, "{id}");
    assert_eq!(body["message"]["conversation"], "Booking confirmed");
    assert_eq!(body["status"], "PENDING");

    let (status, reply) = call(
        &sim,
        "POST",
        "/message/sendText/demo",
        "demo-token",
        Some(json!({"number": NUMBER, "text": "A reply", "quoted": {"key": {"id": id}}})),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["messageType"], "extendedTextMessage");
    assert_eq!(
        reply["message"]["extendedTextMessage"]["contextInfo"]["stanzaId"],
        id
    );
    assert_eq!(
        reply["message"]["extendedTextMessage"]["contextInfo"]["quotedMessage"]["conversation"],
        "Booking confirmed"
    );
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn media_by_url_image_with_caption_and_document_with_file_name() {
    let sim = sim().await;
    let (status, image) = call(
        &sim,
        "POST",
        "/message/sendMedia/demo",
        GLOBAL_KEY,
        Some(json!({"number": NUMBER, "mediatype": "image", "mimetype": "image/jpeg", "caption": "Your table", "media": "https://example.com/t.jpg"})),
    )
    .await;
    assert_eq!(status, 201, "{image}");
    assert_eq!(image["messageType"], "imageMessage");
    assert_eq!(image["message"]["imageMessage"]["caption"], "Your table");
    let (status, doc) = call(
        &sim,
        "POST",
        "/message/sendMedia/demo",
        GLOBAL_KEY,
        Some(json!({"number": NUMBER, "mediatype": "document", "mimetype": "application/pdf", "caption": "Invoice", "fileName": "invoice-42.pdf", "media": "https://example.com/i.pdf"})),
    )
    .await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(
        doc["message"]["documentMessage"]["fileName"],
        "invoice-42.pdf"
    );
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn bad_sends_are_400_and_a_number_not_on_whatsapp_says_exists_false() {
    let sim = sim().await;
    let (status, body) = call(
        &sim,
        "POST",
        "/message/sendText/demo",
        GLOBAL_KEY,
        Some(json!({"text": "hi"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Bad Request");
    assert_eq!(
        body["response"]["message"][0],
        "requires property \"number\""
    );
    let (status, body) = call(
        &sim,
        "POST",
        "/message/sendMedia/demo",
        GLOBAL_KEY,
        Some(json!({"number": NUMBER, "mediatype": "sticker", "media": "https://example.com/x"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    sim.set_faults(Faults {
        not_on_whatsapp: vec![NUMBER.into()],
        ..Faults::default()
    });
    let (status, body) = send_text(&sim, "hi").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["response"]["message"],
        json!([{"jid": JID, "exists": false, "number": NUMBER}])
    );
    let (_, numbers) = call(
        &sim,
        "POST",
        "/chat/whatsappNumbers/demo",
        GLOBAL_KEY,
        Some(json!({"numbers": [NUMBER, "6281111111111"]})),
    )
    .await;
    assert_eq!(numbers[0]["exists"], false);
    assert_eq!(numbers[1]["exists"], true);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(sim.events().is_empty(), "refused sends have no receipts");
}

#[tokio::test]
async fn a_closed_instance_answers_connection_closed_and_faults_answer_evolutions_bodies() {
    let sim = sim().await;
    sim.set_device_state("demo", DeviceState::Connected);
    let (status, body) = send_text(&sim, "hi").await;
    assert_eq!(status, 500);
    assert_eq!(
        body["response"]["message"],
        json!(["Error: Connection Closed"])
    );
    sim.set_device_state("demo", DeviceState::LoggedIn);

    for (fault, code) in [
        (SendErrorStatus::TooManyRequests, 429),
        (SendErrorStatus::InternalServerError, 500),
        (SendErrorStatus::BadGateway, 502),
        (SendErrorStatus::ServiceUnavailable, 503),
        (SendErrorStatus::GatewayTimeout, 504),
    ] {
        sim.set_faults(Faults {
            send_error: Some(SendErrorFault::next(1, fault)),
            gateway_timeout_ms: Some(10),
            ..Faults::default()
        });
        let response = client()
            .post(format!("{}/message/sendText/demo", sim.base_url()))
            .header("apikey", GLOBAL_KEY)
            .json(&json!({"number": NUMBER, "text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), code);
    }
    for (code, message) in [
        ("connection_closed", "Error: Connection Closed"),
        ("rate_overlimit", "Error: rate-overlimit"),
    ] {
        sim.set_faults(Faults {
            provider_error: Some(ProviderErrorFault::next(1, code)),
            ..Faults::default()
        });
        let (status, body) = send_text(&sim, "hi").await;
        assert_eq!(status, 500);
        assert_eq!(body["response"]["message"], json!([message]));
    }
    assert_eq!(send_text(&sim, "healthy again").await.0, 201);
}

#[tokio::test]
async fn receipts_are_messages_update_with_a_verifiable_jwt_and_the_instance_apikey() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let row = set_webhook(
        &sim,
        &receiver.url,
        Some("jwt-secret-of-tenant-42"),
        &["MESSAGES_UPDATE"],
    )
    .await;
    assert_eq!(row["events"], json!(["MESSAGES_UPDATE"]));
    assert_eq!(row["headers"]["jwt_key"], "jwt-secret-of-tenant-42");
    let (_, sent) = send_text(&sim, "hi").await;
    let id = sent["key"]["id"].as_str().unwrap();

    let hits = receiver.wait_for(2).await;
    let statuses: Vec<String> = hits
        .iter()
        .map(|h| {
            let body = h.json();
            assert_eq!(body["event"], "messages.update");
            assert_eq!(body["instance"], "demo");
            assert_eq!(
                body["apikey"], "demo-token",
                "Evolution sends the instance token"
            );
            assert_eq!(body["destination"], receiver.url);
            assert_eq!(body["data"]["keyId"], id);
            assert_eq!(body["data"]["remoteJid"], JID);
            assert_eq!(body["data"]["fromMe"], true);
            body["data"]["status"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(statuses, vec!["DELIVERY_ACK", "READ"]);
    for hit in &hits {
        let token = header(hit, "authorization").unwrap();
        let token = token.strip_prefix("Bearer ").expect("bearer");
        let claims = python_jwt_claims(token, "jwt-secret-of-tenant-42");
        assert_eq!(claims["app"], "evolution");
        assert_eq!(claims["action"], "webhook");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            600
        );
        assert!(
            header(hit, "jwt_key").is_none(),
            "the key itself is not sent"
        );
        assert_eq!(header(hit, "x-tenant").unwrap(), "tenant-42");
        assert_eq!(header(hit, "x-instance-name").unwrap(), "demo");
        assert_eq!(header(hit, "x-event-type").unwrap(), "messages.update");
        assert!(
            header(hit, "x-hub-signature-256").is_none(),
            "no body signature"
        );
    }
    let (_, found) = call(&sim, "GET", "/webhook/find/demo", GLOBAL_KEY, None).await;
    assert_eq!(found["url"], receiver.url);
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn incoming_messages_are_messages_upsert_and_without_jwt_key_there_is_no_authorization() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    set_webhook(&sim, &receiver.url, None, &["MESSAGES_UPSERT"]).await;
    let (_, sent) = send_text(&sim, "Your booking").await;
    let sent_id = sent["key"]["id"].as_str().unwrap().to_owned();
    let response = client()
        .post(format!("{}/_sim/incoming", control(&sim)))
        .json(&json!({"from": "+6289876543210", "text": "Thanks", "from_name": "Budi", "reply_to": sent_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let hits = receiver.wait_for(1).await;
    let body = hits[0].json();
    assert_eq!(body["event"], "messages.upsert");
    assert_eq!(
        body["data"]["key"]["remoteJid"],
        "6289876543210@s.whatsapp.net"
    );
    assert_eq!(body["data"]["key"]["fromMe"], false);
    assert_eq!(body["data"]["pushName"], "Budi");
    assert_eq!(body["data"]["messageType"], "extendedTextMessage");
    assert_eq!(
        body["data"]["message"]["extendedTextMessage"]["text"],
        "Thanks"
    );
    assert_eq!(body["data"]["contextInfo"]["stanzaId"], sent_id);
    assert_eq!(body["apikey"], "demo-token");
    assert!(header(&hits[0], "authorization").is_none());
    // The receipts were not subscribed.
    let events = wait_events(&sim, 3).await;
    assert!(
        events
            .iter()
            .filter(|e| e.event == "messages.update")
            .all(|e| e.skipped.is_some())
    );
}

#[tokio::test]
async fn a_failed_delivery_is_a_messages_update_with_status_error() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    set_webhook(&sim, &receiver.url, None, &[]).await;
    sim.set_faults(Faults {
        delivery_failure: Some(DeliveryFailureFault::next(1, "")),
        ..Faults::default()
    });
    send_text(&sim, "will fail").await;
    let hits = receiver.wait_for(1).await;
    assert_eq!(hits[0].json()["data"]["status"], "ERROR");
}

#[tokio::test]
async fn connect_gives_a_qr_and_a_pairing_code_the_scan_opens_the_instance() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    set_webhook(&sim, &receiver.url, None, &["CONNECTION_UPDATE"]).await;
    let (status, body) = call(&sim, "GET", "/instance/connect/demo", GLOBAL_KEY, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"instance": {"instanceName": "demo", "state": "open"}}),
        "open: no QR"
    );

    let (status, out) = call(&sim, "DELETE", "/instance/logout/demo", GLOBAL_KEY, None).await;
    assert_eq!(status, 200);
    assert_eq!(out["response"]["message"], "Instance logged out");
    let (_, state) = call(
        &sim,
        "GET",
        "/instance/connectionState/demo",
        GLOBAL_KEY,
        None,
    )
    .await;
    assert_eq!(state["instance"]["state"], "close");
    let (status, again) = call(&sim, "DELETE", "/instance/logout/demo", GLOBAL_KEY, None).await;
    assert_eq!(status, 400, "{again}");

    let (status, qr) = call(
        &sim,
        "GET",
        "/instance/connect/demo?number=6281234567890",
        GLOBAL_KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(qr["pairingCode"].as_str().unwrap().len(), 8);
    assert!(qr["code"].as_str().unwrap().starts_with("2@"));
    assert!(
        qr["base64"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBOR")
    );
    let (_, state) = call(
        &sim,
        "GET",
        "/instance/connectionState/demo",
        GLOBAL_KEY,
        None,
    )
    .await;
    assert_eq!(state["instance"]["state"], "connecting");
    let (_, same) = call(&sim, "GET", "/instance/connect/demo", GLOBAL_KEY, None).await;
    assert_eq!(same["code"], qr["code"], "connecting keeps its QR");

    sim.scan("demo", None).unwrap();
    let (_, state) = call(
        &sim,
        "GET",
        "/instance/connectionState/demo",
        GLOBAL_KEY,
        None,
    )
    .await;
    assert_eq!(state["instance"]["state"], "open");
    let (_, instances) = call(&sim, "GET", "/instance/fetchInstances", GLOBAL_KEY, None).await;
    assert_eq!(
        instances[0]["ownerJid"], "6281234567890@s.whatsapp.net",
        "the paired number"
    );
    let (status, restarted) = call(&sim, "POST", "/instance/restart/demo", GLOBAL_KEY, None).await;
    assert_eq!(status, 200);
    assert_eq!(restarted["instance"]["state"], "open");

    let states: Vec<String> = receiver
        .wait_for(3)
        .await
        .iter()
        .map(|h| {
            let body = h.json();
            assert_eq!(body["event"], "connection.update");
            body["data"]["state"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(states, vec!["close", "connecting", "open"]);
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn fetch_instances_with_an_instance_token_shows_only_that_instance() {
    let mut config = gowa_sim::SimConfig::for_kind(Kind::Evolution).api_key(GLOBAL_KEY);
    config.devices.push(gowa_sim::DeviceSpec::logged_in(
        "other",
        "6281111111111@s.whatsapp.net",
    ));
    config = config.device_key("other", "other-secret-token");
    let sim = gowa_sim::start(config).await.unwrap();
    let (_, all) = call(&sim, "GET", "/instance/fetchInstances", GLOBAL_KEY, None).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (_, mine) = call(
        &sim,
        "GET",
        "/instance/fetchInstances",
        "other-secret-token",
        None,
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["name"], "other");
    // Another instance's token does not open this one's routes.
    let (status, _) = call(
        &sim,
        "POST",
        "/message/sendText/demo",
        "other-secret-token",
        Some(json!({"number": NUMBER, "text": "x"})),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_checker_flags_v1_bodies_and_undocumented_fields() {
    let sim = sim().await;
    // Evolution v1's nested shape is not v2's.
    call(
        &sim,
        "POST",
        "/message/sendText/demo",
        GLOBAL_KEY,
        Some(json!({"number": NUMBER, "textMessage": {"text": "hi"}})),
    )
    .await;
    let found = contract::violations(&sim);
    assert!(found.iter().all(|v| v.rule == Rule::Body), "{found:?}");
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|t| t.contains("text")), "{text:#?}");
    assert!(text.iter().any(|t| t.contains("textMessage")), "{text:#?}");
}

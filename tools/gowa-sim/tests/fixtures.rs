//! The webhook samples of `tests/fixtures/{waha,evolution,meta}/`: their recorded signatures
//! reproduce, Meta's validate against Meta's spec, and the simulator's own events have their
//! shape.

mod common;

use std::path::PathBuf;

use common::{Receiver, client, kind_sim, status_and_json};
use gowa_sim::contract::Contract;
use gowa_sim::{Kind, SimHandle, WebhookConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(kind)
}

fn read(kind: &str, name: &str) -> Vec<u8> {
    std::fs::read(dir(kind).join(name)).unwrap_or_else(|e| panic!("{kind}/{name}: {e}"))
}

/// The rows of a SIGNATURES.md table: file name, size, and the backquoted values.
fn table(kind: &str) -> Vec<(String, usize, Vec<String>)> {
    let text = std::fs::read_to_string(dir(kind).join("SIGNATURES.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("| ") && l.contains(".json ("))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let (name, size) = cells[0].split_once(" (").unwrap();
            let size: usize = size.trim_end_matches(" B)").parse().unwrap();
            let values = cells[1..]
                .iter()
                .map(|c| c.trim_matches('`').to_owned())
                .collect();
            (name.to_owned(), size, values)
        })
        .collect()
}

#[test]
fn waha_signatures_reproduce() {
    let rows = table("waha");
    assert_eq!(rows.len(), 7);
    for (name, size, values) in rows {
        let body = read("waha", &name);
        assert_eq!(body.len(), size, "{name}");
        assert_eq!(
            gowa_sim::sign_waha(b"my-secret-key", &body),
            values[0],
            "{name}"
        );
        assert_eq!(
            gowa_sim::sign_waha(b"super-secret-key", &body),
            values[1],
            "{name}"
        );
    }
}

#[test]
fn meta_signatures_reproduce_over_the_escaped_bytes() {
    let rows = table("meta");
    assert_eq!(rows.len(), 10);
    for (name, size, values) in rows {
        let body = read("meta", &name);
        assert_eq!(body.len(), size, "{name}");
        assert!(
            body.is_ascii(),
            "{name}: Meta escapes every non-ASCII character"
        );
        assert_eq!(
            gowa_sim::sign(b"meta-app-secret", &body),
            values[0],
            "{name}"
        );
        assert_eq!(
            gowa_sim::sign(b"super-secret-key", &body),
            values[1],
            "{name}"
        );
        // The simulator writes Meta's JSON the same way.
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            String::from_utf8(gowa_sim::meta_json(&parsed))
                .unwrap()
                .len(),
            body.len(),
            "{name}"
        );
    }
}

#[test]
fn evolution_jwt_and_hashes_reproduce() {
    let text = std::fs::read_to_string(dir("evolution").join("SIGNATURES.md")).unwrap();
    let jwt = gowa_sim::evolution_jwt(b"jwt-secret-of-tenant-42", 1_787_393_730);
    assert!(text.contains(&format!("`{jwt}`")), "{jwt}");
    let rows = table("evolution");
    assert_eq!(rows.len(), 7);
    for (name, size, values) in rows {
        let body = read("evolution", &name);
        assert_eq!(body.len(), size, "{name}");
        assert_eq!(hex::encode(Sha256::digest(&body)), values[0], "{name}");
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            parsed["apikey"].is_string(),
            "{name}: Evolution's body carries the apikey"
        );
    }
}

fn meta_errors(body: &Value) -> Vec<String> {
    let doc = Contract::meta().document();
    let root =
        json!({"$ref": "#/components/schemas/WebhookPayload", "components": doc["components"]});
    let validator = jsonschema::draft202012::new(&root).unwrap();
    validator.iter_errors(body).map(|e| e.to_string()).collect()
}

#[test]
fn meta_statuses_validate_and_message_examples_do_not_even_in_metas_spec() {
    for name in [
        "meta-statuses-sent.json",
        "meta-statuses-delivered.json",
        "meta-statuses-read.json",
        "meta-statuses-failed-131047.json",
        "meta-statuses-failed-131026.json",
        "meta-statuses-batch.json",
    ] {
        let body: Value = serde_json::from_slice(&read("meta", name)).unwrap();
        assert!(
            meta_errors(&body).is_empty(),
            "{name}: {:?}",
            meta_errors(&body)
        );
    }
    // The spec's own Text Message example fails its WebhookPayload schema, as our copy of it
    // does (see meta/SIGNATURES.md).
    let example = &Contract::meta().document()["paths"]["/whatsapp/webhooks"]["post"]["requestBody"]
        ["content"]["application/json"]["examples"]["Text Message"]["value"];
    let fixture: Value = serde_json::from_slice(&read("meta", "meta-messages-text.json")).unwrap();
    assert_eq!(&fixture, example, "the fixture is the spec's example");
    assert!(!meta_errors(example).is_empty());
}

/// The key structure of a JSON value: objects as their sorted keys (recursively), arrays as
/// their first item.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        _ => Value::Null,
    }
}

fn fixture_shape(kind: &str, name: &str) -> Value {
    shape(&serde_json::from_slice(&read(kind, name)).unwrap())
}

/// Sends a text, has the contact reply, and returns every body the receiver got.
async fn traffic(
    sim: &SimHandle,
    receiver: &Receiver,
    send: reqwest::RequestBuilder,
    expected: usize,
) -> Vec<Value> {
    let (status, sent) = status_and_json(send.send().await.unwrap()).await;
    assert!(status < 300, "{sent}");
    let id = sent["id"]
        .as_str()
        .or(sent["key"]["id"].as_str())
        .or(sent["messages"][0]["id"].as_str())
        .unwrap()
        .to_owned();
    sim.deliver_incoming(gowa_sim::IncomingMessage {
        device_id: None,
        from: "+6289876543210".into(),
        text: "plain".into(),
        from_name: Some("Budi".into()),
        reply_to: None,
    })
    .await
    .unwrap();
    sim.deliver_incoming(gowa_sim::IncomingMessage {
        device_id: None,
        from: "+6289876543210".into(),
        text: "a reply".into(),
        from_name: Some("Budi".into()),
        reply_to: Some(id),
    })
    .await
    .unwrap();
    receiver
        .wait_for(expected)
        .await
        .iter()
        .map(|h| h.json())
        .collect()
}

#[tokio::test]
async fn the_simulators_events_have_the_samples_shapes() {
    // WAHA
    let sim = kind_sim(Kind::Waha, None).await;
    let receiver = Receiver::start(&[]).await;
    let r = client()
        .put(format!("{}/api/sessions/default", sim.base_url()))
        .json(&json!({"config": {"webhooks": [{"url": receiver.url, "events": ["message", "message.ack"]}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let send = client()
        .post(format!("{}/api/sendText", sim.base_url()))
        .json(&json!({"session": "default", "chatId": "6289876543210@c.us", "text": "hi"}));
    let bodies = traffic(&sim, &receiver, send, 4).await;
    let find = |event: &str, pred: &dyn Fn(&Value) -> bool| {
        shape(
            bodies
                .iter()
                .find(|b| b["event"] == event && pred(b))
                .unwrap(),
        )
    };
    assert_eq!(
        find("message", &|b| b["payload"]["replyTo"].is_null()),
        fixture_shape("waha", "waha-message-text-incoming.json")
    );
    assert_eq!(
        find("message", &|b| !b["payload"]["replyTo"].is_null()),
        fixture_shape("waha", "waha-message-reply-incoming.json")
    );
    assert_eq!(
        find("message.ack", &|_| true),
        fixture_shape("waha", "waha-message-ack-device.json")
    );

    // Evolution
    let sim = kind_sim(Kind::Evolution, None).await;
    let receiver = Receiver::start(&[]).await;
    let r = client()
        .post(format!("{}/webhook/set/demo", sim.base_url()))
        .json(&json!({"webhook": {"enabled": true, "url": receiver.url, "events": ["MESSAGES_UPSERT", "MESSAGES_UPDATE"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let send = client()
        .post(format!("{}/message/sendText/demo", sim.base_url()))
        .json(&json!({"number": "6289876543210", "text": "hi"}));
    let bodies = traffic(&sim, &receiver, send, 4).await;
    let find = |event: &str, pred: &dyn Fn(&Value) -> bool| {
        shape(
            bodies
                .iter()
                .find(|b| b["event"] == event && pred(b))
                .unwrap(),
        )
    };
    assert_eq!(
        find("messages.upsert", &|b| b["data"]["messageType"]
            == "conversation"),
        fixture_shape("evolution", "evolution-messages-upsert-text.json")
    );
    assert_eq!(
        find("messages.upsert", &|b| b["data"]["messageType"]
            == "extendedTextMessage"),
        fixture_shape("evolution", "evolution-messages-upsert-reply.json")
    );
    assert_eq!(
        find("messages.update", &|_| true),
        fixture_shape("evolution", "evolution-messages-update-delivery-ack.json")
    );

    // Meta
    let sim = kind_sim(Kind::Meta, None).await;
    let receiver = Receiver::start(&[]).await;
    sim.set_webhook(WebhookConfig {
        urls: vec![receiver.url.clone()],
        secret: "s".into(),
        events: Vec::new(),
    });
    let send = client()
        .post(format!("{}/v23.0/{}/messages", sim.base_url(), gowa_sim::DEFAULT_META_PHONE_NUMBER_ID))
        .bearer_auth("t")
        .json(&json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "6289876543210", "type": "text", "text": {"body": "hi"}}));
    let bodies = traffic(&sim, &receiver, send, 5).await;
    let value = |b: &Value| b["entry"][0]["changes"][0]["value"].clone();
    let status = |name: &str| {
        shape(
            bodies
                .iter()
                .find(|b| value(b)["statuses"][0]["status"] == name)
                .unwrap(),
        )
    };
    assert_eq!(
        status("sent"),
        fixture_shape("meta", "meta-statuses-sent.json")
    );
    assert_eq!(
        status("delivered"),
        fixture_shape("meta", "meta-statuses-delivered.json")
    );
    assert_eq!(
        status("read"),
        fixture_shape("meta", "meta-statuses-read.json")
    );
    let reply = bodies
        .iter()
        .find(|b| value(b)["messages"][0]["context"].is_object())
        .unwrap();
    assert_eq!(
        shape(reply),
        fixture_shape("meta", "meta-messages-text-reply.json")
    );
}

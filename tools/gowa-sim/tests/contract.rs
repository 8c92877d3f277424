//! The contract checker itself, on GOWA's spec: what it accepts, what it reports and how.

mod common;

use common::{PHONE, client, default_sim};
use gowa_sim::contract::{self, CheckOptions, Contract, Rule, Violation};
use gowa_sim::{Kind, SimConfig, SimHandle};
use serde_json::json;

fn rules(found: &[Violation]) -> Vec<Rule> {
    found.iter().map(|v| v.rule).collect()
}

async fn post_json(sim: &SimHandle, path: &str, body: serde_json::Value) {
    client()
        .post(format!("{}{path}", sim.base_url()))
        .header("X-Device-Id", "demo")
        .json(&body)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn what_wagate_sends_to_gowa_conforms() {
    let sim = gowa_sim::start(SimConfig::default().basic_auth("admin", "pw"))
        .await
        .unwrap();
    let c = client();
    let base = sim.base_url();
    c.get(format!("{base}/health")).send().await.unwrap();
    c.get(format!("{base}/devices"))
        .basic_auth("admin", Some("pw"))
        .send()
        .await
        .unwrap();
    c.get(format!("{base}/app/status"))
        .basic_auth("admin", Some("pw"))
        .header("X-Device-Id", "demo")
        .send()
        .await
        .unwrap();
    c.post(format!("{base}/send/message"))
        .basic_auth("admin", Some("pw"))
        .json(&json!({"phone": PHONE, "message": "hi", "reply_message_id": "3EB0AA"}))
        .send()
        .await
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .text("image_url", "https://example.com/a.jpg")
        .text("caption", "c");
    c.post(format!("{base}/send/image"))
        .basic_auth("admin", Some("pw"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let form = reqwest::multipart::Form::new().text("phone", PHONE).part(
        "file",
        reqwest::multipart::Part::bytes(b"%PDF".to_vec()).file_name("a.pdf"),
    );
    c.post(format!("{base}/send/file"))
        .basic_auth("admin", Some("pw"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(sim.requests().len(), 6);
    contract::assert_conforms(&sim);
}

#[tokio::test]
async fn unknown_paths_methods_and_query_parameters_are_reported() {
    let sim = default_sim().await;
    let base = sim.base_url();
    client()
        .get(format!("{base}/send/sms"))
        .send()
        .await
        .unwrap();
    client()
        .delete(format!("{base}/send/message"))
        .send()
        .await
        .unwrap();
    client()
        .get(format!("{base}/devices?verbose=1"))
        .send()
        .await
        .unwrap();
    let found = contract::violations(&sim);
    assert_eq!(
        rules(&found),
        vec![
            Rule::UnknownPath,
            Rule::MethodNotAllowed,
            Rule::QueryParameter
        ],
        "{found:#?}"
    );
    assert!(found[1].detail.contains("allows POST"), "{}", found[1]);
    assert!(found[2].detail.contains("verbose"), "{}", found[2]);
    assert_eq!(found[2].operation.as_deref(), Some("listDevices"));
}

#[tokio::test]
async fn undocumented_fields_wrong_types_and_wrong_media_types_are_reported() {
    let sim = default_sim().await;
    post_json(&sim, "/send/message", json!({"phone": PHONE, "msg": "hi"})).await;
    post_json(
        &sim,
        "/send/message",
        json!({"phone": PHONE, "message": "hi", "is_forwarded": "yes"}),
    )
    .await;
    // /send/image is multipart only.
    post_json(
        &sim,
        "/send/image",
        json!({"phone": PHONE, "image_url": "https://x/a.jpg"}),
    )
    .await;
    // A broken JSON body.
    client()
        .post(format!("{}/send/message", sim.base_url()))
        .header("content-type", "application/json")
        .body("{\"phone\":")
        .send()
        .await
        .unwrap();
    let found = contract::violations(&sim);
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        text[0].starts_with("#1 POST /send/message [sendMessage]: body:")
            && text[0].contains("msg"),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("#2") && t.contains("is_forwarded")),
        "{text:#?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.seq == 3 && v.rule == Rule::ContentType),
        "{text:#?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.seq == 4 && v.rule == Rule::Body && v.detail.contains("does not parse")),
        "{text:#?}"
    );
}

#[tokio::test]
async fn security_is_enforced_when_the_server_requires_credentials() {
    let open = default_sim().await;
    client()
        .get(format!("{}/devices", open.base_url()))
        .send()
        .await
        .unwrap();
    assert!(
        contract::violations(&open).is_empty(),
        "GOWA may run without basic auth"
    );
    // A bearer token is the wrong scheme for GOWA either way.
    client()
        .get(format!("{}/devices", open.base_url()))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap();
    let found = contract::violations(&open);
    assert_eq!(rules(&found), vec![Rule::Security]);
    assert!(found[0].detail.contains("bearer"), "{}", found[0]);

    let closed = gowa_sim::start(SimConfig::default().basic_auth("admin", "pw"))
        .await
        .unwrap();
    client()
        .get(format!("{}/devices", closed.base_url()))
        .send()
        .await
        .unwrap();
    client()
        .get(format!("{}/health", closed.base_url()))
        .send()
        .await
        .unwrap();
    let found = contract::violations(&closed);
    assert_eq!(
        rules(&found),
        vec![Rule::Security],
        "/health needs none: {found:#?}"
    );
    assert_eq!(found[0].seq, 1);
}

#[tokio::test]
async fn a_guard_checks_when_dropped_and_reports_every_violation() {
    let sim = default_sim().await;
    let guard = contract::guard(&sim);
    client()
        .get(format!("{}/nope", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(guard.check().len(), 1);
    let report = contract::report("gowa", &guard.check());
    assert!(
        report.starts_with("1 request(s) break the gowa contract:"),
        "{report}"
    );
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(guard)));
    assert!(
        outcome.is_err(),
        "dropping a guard with violations fails the test"
    );
}

#[test]
fn every_document_reads_and_names_its_operations() {
    for (kind, at_least) in [
        (Kind::Gowa, 80),
        (Kind::Waha, 15),
        (Kind::Evolution, 11),
        (Kind::Meta, 5),
    ] {
        let contract = Contract::for_kind(kind);
        let ops = contract::operations(contract);
        assert!(ops.len() >= at_least, "{kind}: {}", ops.len());
    }
    let meta = contract::operations(Contract::meta());
    assert_eq!(
        meta["sendMessage"],
        (
            "POST".to_owned(),
            "/{Version}/{Phone-Number-ID}/messages".to_owned()
        )
    );
    // OpenAPI 3.0's nullable reads as a null type.
    assert!(
        !serde_json::to_string(Contract::gowa().document())
            .unwrap()
            .contains("\"nullable\"")
    );
}

#[test]
fn meta_path_parameters_are_checked_against_their_patterns() {
    // getPhoneNumberById declares Version (^v[0-9]+\.[0-9]+$) and Phone-Number-ID (digits);
    // Meta's sendMessage declares no path parameters, so its path is matched but not checked.
    let request: gowa_sim::RecordedRequest = serde_json::from_value(json!({
        "seq": 1, "kind": "meta", "received_at": "2026-01-01T00:00:00Z", "method": "GET",
        "path": "/23/abc", "query": "fields=health_status", "device_id": null, "basic_auth_user": null,
        "authorized": true, "headers": {"authorization": "Bearer ***"},
        "content_type": null, "json": null, "form": null, "files": [], "body_size": 0, "status": 200
    }))
    .unwrap();
    let found = Contract::meta().check(
        &request,
        CheckOptions {
            enforce_security: true,
        },
    );
    let params: Vec<&Violation> = found
        .iter()
        .filter(|v| v.rule == Rule::PathParameter)
        .collect();
    assert_eq!(params.len(), 2, "{found:#?}");
    assert!(params[0].detail.starts_with("Version"));
    assert!(params[1].detail.starts_with("Phone-Number-ID"));
}

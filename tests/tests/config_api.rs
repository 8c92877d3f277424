//! config-api CRUD: the handler called in-process with real API Gateway v2 events, against
//! moto_server (DynamoDB, KMS). Every refusal asserts its exact status and that nothing was
//! stored.

use http::StatusCode;
use serde_json::{Value, json};
use wagate_devstack::{LocalIssuer, TokenSpec};
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, PATH, Reply, api};

const PASSWORD: &str = "gowa-password-5d2f81";
const WEBHOOK_SECRET: &str = "webhook-secret-a8c3e0";

fn valid_body() -> Value {
    json!({
        "provider": "gowa",
        "primary": {
            "baseUrl": "http://127.0.0.1:3000/",
            "credentials": {"type": "basic", "username": "admin", "password": PASSWORD},
            "deviceId": "dev-1",
            "region": "eu-west-1"
        },
        "backup": {
            "baseUrl": "https://backup.example.com",
            "credentials": {"type": "basic", "username": "backup", "password": "backup-api-key-0000-1111-2222"}
        },
        "webhookSecrets": [{"id": "s1", "secret": WEBHOOK_SECRET}],
        "isActive": true
    })
}

/// Asserts the status, the error code, and that the tenants table is empty.
async fn assert_refused_and_nothing_stored(api: &Api, r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json()["error"], code, "{}", r.text);
    assert!(r.json()["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(api.stored().await.is_empty(), "something was stored");
    assert_eq!(
        api.stack.counter.count_op("KMS", "Encrypt"),
        0,
        "a secret was sealed for a refused request"
    );
}

// ---------- happy paths ----------

#[tokio::test]
async fn create_returns_201_with_fingerprints_and_never_the_secrets() {
    let api = api().await;
    let r = api.create(&valid_body()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers["etag"], "\"1\"");
    assert_eq!(r.headers["location"], PATH);
    let v = r.json();
    assert_eq!(v["tenantId"], "acme");
    assert_eq!(v["version"], 1);
    assert_eq!(v["primary"]["baseUrl"], "http://127.0.0.1:3000");
    assert_eq!(v["primary"]["credentials"]["type"], "basic");
    assert_eq!(v["primary"]["credentials"]["username"], "admin");
    assert_eq!(v["primary"]["credentials"]["fingerprint"], "****2f81");
    assert_eq!(v["backup"]["credentials"]["fingerprint"], "****2222");
    assert_eq!(v["webhookSecrets"][0]["id"], "s1");
    assert_eq!(v["connectionStatus"], "unknown");
    assert_eq!(v["activeEndpoint"], "primary");
    assert_eq!(v["webhookPath"], "/webhooks/whatsapp/acme");
    for secret in [PASSWORD, WEBHOOK_SECRET, "backup-api-key-0000-1111-2222"] {
        assert!(!r.text.contains(secret), "secret in the response");
    }
    assert_eq!(api.stack.counter.count_op("KMS", "Encrypt"), 3);
}

#[tokio::test]
async fn webhook_url_is_the_public_base_when_configured_else_the_apis_own_url() {
    let mut api = api().await;
    assert_eq!(api.create(&valid_body()).await.status, StatusCode::CREATED);
    let admin = api.admin();
    let get = |path: &'static str| ApiEvent::new("GET", path).bearer(&admin);
    // Unset (the stack's default): the HTTP API's own URL, as API Gateway reports it.
    let own = "https://wagatelocal.execute-api.us-east-1.amazonaws.com/webhooks/whatsapp/acme";
    let r = api.call(get("/tenants/acme/whatsapp-config")).await;
    assert_eq!(r.json()["webhookUrl"], own, "{}", r.text);

    api.app.webhook_base =
        wagate::runtime::config::PublicWebhookBase::parse("https://hooks.example.com/wa/").unwrap();
    let public = "https://hooks.example.com/wa/webhooks/whatsapp/acme";
    let r = api.call(get("/tenants/acme/whatsapp-config")).await;
    assert_eq!(r.json()["webhookUrl"], public, "{}", r.text);
    assert_eq!(r.json()["webhookPath"], "/webhooks/whatsapp/acme");
    let r = api.call(get("/tenants/acme/status")).await;
    assert_eq!(r.json()["webhookUrl"], public, "{}", r.text);
    let r = api.call(get("/tenants")).await;
    assert_eq!(r.json()["items"][0]["webhookUrl"], public, "{}", r.text);
}

#[tokio::test]
async fn scan_of_the_table_shows_no_plaintext_secret() {
    let api = api().await;
    assert_eq!(api.create(&valid_body()).await.status, StatusCode::CREATED);
    let dump = format!("{:?}", api.stored().await);
    for secret in [PASSWORD, WEBHOOK_SECRET, "backup-api-key-0000-1111-2222"] {
        assert!(!dump.contains(secret), "plaintext secret in DynamoDB");
    }
}

#[tokio::test]
async fn tenant_token_reads_its_own_config() {
    let api = api().await;
    api.create(&valid_body()).await;
    let r = api
        .call(ApiEvent::new("GET", PATH).bearer(&api.tenant("acme")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["tenantId"], "acme");
    assert_eq!(r.headers["etag"], "\"1\"");
    assert!(!r.text.contains(PASSWORD));
}

#[tokio::test]
async fn update_with_if_match_bumps_the_version_and_keeps_omitted_secrets() {
    let api = api().await;
    api.create(&valid_body()).await;
    let before = api.stored().await[0]["primary"].clone();

    let mut body = valid_body();
    body["primary"]["credentials"] = json!({"type": "basic", "username": "admin"});
    body["primary"]["deviceId"] = json!("dev-2");
    body.as_object_mut().unwrap().remove("webhookSecrets");
    api.stack.counter.reset();
    let r = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.tenant("acme"))
                .header("If-Match", "\"1\"")
                .json(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["version"], 2);
    assert_eq!(r.json()["primary"]["deviceId"], "dev-2");
    assert_eq!(r.headers["etag"], "\"2\"");
    // Only the backup key was given again: one seal; the password and webhook secret kept
    // their ciphertext.
    assert_eq!(api.stack.counter.count_op("KMS", "Encrypt"), 1);
    let after = api.stored().await[0]["primary"].clone();
    let cipher = |av: &aws_sdk_dynamodb::types::AttributeValue| {
        av.as_m().unwrap()["credentials"].as_m().unwrap()["password"]
            .as_m()
            .unwrap()["ciphertext"]
            .clone()
    };
    assert_eq!(cipher(&before), cipher(&after));
    assert_eq!(r.json()["webhookSecrets"][0]["id"], "s1");
}

#[tokio::test]
async fn failback_policy_is_set_shown_and_kept_when_omitted() {
    let api = api().await;
    let created = api.create(&valid_body()).await;
    assert_eq!(created.json()["failback"], "automatic", "the default");

    let mut body = valid_body();
    body["failback"] = json!("manual");
    let r = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"1\"")
                .json(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["failback"], "manual");
    assert_eq!(api.stored().await[0]["failback"].as_s().unwrap(), "manual");

    // Omitted on the next update: kept.
    let r = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"2\"")
                .json(&valid_body()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["failback"], "manual");

    let mut bad = valid_body();
    bad["failback"] = json!("sometimes");
    let r = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"3\"")
                .json(&bad),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(api.stored().await[0]["version"].as_n().unwrap(), "3");
}

#[tokio::test]
async fn update_keeps_the_health_checks_state_on_the_item() {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let api = api().await;
    api.create(&valid_body()).await;
    // The health check's state after two failed runs (it never bumps the version).
    let db = aws_sdk_dynamodb::Client::new(&api.stack.sdk);
    db.update_item()
        .table_name(api.stack.tenants_table())
        .key("tenantId", Av::S("acme".into()))
        .update_expression(
            "SET connectionStatus = :s, connectionStatusAt = :t, healthCheckedAt = :t, \
             healthActiveFailures = :f, healthPrimarySuccesses = :z",
        )
        .expression_attribute_values(":s", Av::S("endpoint_down".into()))
        .expression_attribute_values(":t", Av::S("2026-11-28T10:00:00Z".into()))
        .expression_attribute_values(":f", Av::N("2".into()))
        .expression_attribute_values(":z", Av::N("0".into()))
        .send()
        .await
        .unwrap();

    let mut body = valid_body();
    body["limits"] = json!({"outboundPerMinute": 12, "inboundPerSecond": 5});
    body.as_object_mut().unwrap().remove("backup");
    let r = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"1\"")
                .json(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["connectionStatus"], "endpoint_down");

    let item = &api.stored().await[0];
    assert_eq!(item["version"].as_n().unwrap(), "2");
    assert_eq!(item["healthActiveFailures"].as_n().unwrap(), "2");
    assert_eq!(item["healthPrimarySuccesses"].as_n().unwrap(), "0");
    assert_eq!(item["connectionStatus"].as_s().unwrap(), "endpoint_down");
    assert_eq!(
        item["connectionStatusAt"].as_s().unwrap(),
        "2026-11-28T10:00:00Z"
    );
    assert_eq!(
        item["limits"].as_m().unwrap()["outboundPerMinute"]
            .as_n()
            .unwrap(),
        "12"
    );
    assert!(
        !item.contains_key("backup"),
        "the omitted backup is removed"
    );
    assert!(!item.contains_key("backupEndpointKey"));
}

#[tokio::test]
async fn update_accepts_the_version_in_the_body() {
    let api = api().await;
    api.create(&valid_body()).await;
    let mut body = valid_body();
    body["version"] = json!(1);
    body["isActive"] = json!(false);
    let r = api
        .call(ApiEvent::new("PUT", PATH).bearer(&api.admin()).json(&body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["isActive"], false);
    assert_eq!(r.json()["version"], 2);
}

#[tokio::test]
async fn delete_removes_the_config_then_read_is_404() {
    let api = api().await;
    api.create(&valid_body()).await;
    let r = api
        .call(
            ApiEvent::new("DELETE", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"1\""),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(api.stored().await.is_empty());
    let r = api
        .call(ApiEvent::new("GET", PATH).bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "not_found");
}

#[tokio::test]
async fn admin_lists_tenants_page_by_page() {
    let api = api().await;
    for t in ["a1", "a2", "a3"] {
        let r = api
            .call(
                ApiEvent::new("POST", &format!("/tenants/{t}/whatsapp-config"))
                    .bearer(&api.admin())
                    .json(&valid_body()),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = api
        .call(
            ApiEvent::new("GET", "/tenants")
                .bearer(&api.admin())
                .query("limit=2"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 2);
    let cursor = r.json()["nextCursor"].as_str().unwrap().to_string();
    let r = api
        .call(
            ApiEvent::new("GET", "/tenants")
                .bearer(&api.admin())
                .query(&format!("limit=2&cursor={cursor}")),
        )
        .await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    assert!(!r.text.contains(PASSWORD));
}

#[tokio::test]
async fn base64_encoded_bodies_are_accepted() {
    let api = api().await;
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer(&api.admin())
                .json(&valid_body())
                .base64_encoded(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

// ---------- authentication and scope ----------

#[tokio::test]
async fn no_token_is_401_and_nothing_stored() {
    let api = api().await;
    let r = api
        .call(ApiEvent::new("POST", PATH).json(&valid_body()))
        .await;
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    assert_refused_and_nothing_stored(&api, &r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn expired_token_is_401_and_nothing_stored() {
    let api = api().await;
    let token = api
        .issuer
        .token(&TokenSpec::admin().ttl(time::Duration::minutes(-5)));
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer(&token)
                .json(&valid_body()),
        )
        .await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::UNAUTHORIZED, "token_expired").await;
}

#[tokio::test]
async fn token_from_another_issuer_key_is_401() {
    let api = api().await;
    let stranger = LocalIssuer::generate();
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer(&stranger.token(&TokenSpec::admin()))
                .json(&valid_body()),
        )
        .await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn token_for_another_audience_is_401() {
    let api = api().await;
    let token = api
        .issuer
        .token(&TokenSpec::admin().audience("someone-else"));
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer(&token)
                .json(&valid_body()),
        )
        .await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn garbage_token_is_401() {
    let api = api().await;
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer("not.a.jwt")
                .json(&valid_body()),
        )
        .await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

// ---------- bad input ----------

#[tokio::test]
async fn duplicate_create_is_409_and_keeps_the_first() {
    let api = api().await;
    assert_eq!(api.create(&valid_body()).await.status, StatusCode::CREATED);
    let mut second = valid_body();
    second["primary"]["deviceId"] = json!("dev-9");
    let r = api.create(&second).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["error"], "already_exists");
    let items = api.stored().await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["primary"].as_m().unwrap()["deviceId"]
            .as_s()
            .unwrap(),
        "dev-1"
    );
}

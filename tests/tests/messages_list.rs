//! `GET /tenants/{tenantId}/messages?limit=&cursor=`: a tenant's outbound messages, newest
//! first, from the records the sender writes (through the messages table's `byTenant`
//! index), tenant-scoped, paginated; every answer validates against openapi.yaml.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::delivery::store::DeliveryWriter;
use wagate::delivery::{BeginRequest, Rejection};
use wagate::outbound::OutboundMessage;
use wagate::outbound::ratelimit::RateWindow;
use wagate::tenant::EndpointRole;
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, Reply, api};
use wagate_tests::spec::{check, spec};

const ROUTE: &str = "/tenants/{tenantId}/messages";

/// The reply is documented for the route and its status, and its body matches the schema.
fn assert_documented(reply: &Reply) {
    check(&spec(), "GET", ROUTE, reply);
}

fn message(tenant: &str, key: &str, to: &str, content: Value) -> OutboundMessage {
    serde_json::from_value(json!({
        "tenantId": tenant, "idempotencyKey": key, "to": to, "content": content
    }))
    .unwrap()
}

fn store(api: &Api) -> DynamoDeliveryStore {
    let env = api.stack.env();
    DynamoDeliveryStore::new(
        api.stack.dynamodb.clone(),
        env["MESSAGES_TABLE"].clone(),
        env["RATE_LIMITS_TABLE"].clone(),
        Duration::from_secs(15 * 24 * 3600),
    )
}

/// Records written the way outbound-sender writes them: lock (with the rate slot), then the
/// outcome. `at` orders them.
async fn record(
    store: &DynamoDeliveryStore,
    msg: &OutboundMessage,
    at: OffsetDateTime,
    sent: bool,
) {
    let window = RateWindow::at(&msg.tenant_id, 1000, at);
    let results = store
        .begin_many(
            &[BeginRequest {
                msg,
                sqs_message_id: "sqs-1",
                owner: "owner-1",
                window,
            }],
            at + Duration::from_secs(30),
            at,
        )
        .await;
    let Ok(wagate::delivery::Begin::Acquired(lock)) = &results[0] else {
        panic!("lock not acquired: {results:?}");
    };
    if sent {
        assert!(
            store
                .mark_sent(
                    lock,
                    &msg.tenant_id,
                    &format!("3EB0{}", msg.idempotency_key.len()),
                    "http://127.0.0.1:3000",
                    EndpointRole::Primary,
                    Some(40),
                    at,
                )
                .await
                .unwrap()
        );
    }
}

async fn list(api: &Api, tenant: &str, token: &str, query: &str) -> Reply {
    let mut ev = ApiEvent::new("GET", &format!("/tenants/{tenant}/messages")).bearer(token);
    if !query.is_empty() {
        ev = ev.query(query);
    }
    api.call(ev).await
}

fn keys(reply: &Reply) -> Vec<String> {
    reply.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["idempotencyKey"].as_str().unwrap().to_owned())
        .collect()
}

async fn seeded() -> (Api, OffsetDateTime) {
    let api = api().await;
    let store = store(&api);
    let t0 = OffsetDateTime::now_utc() - Duration::from_secs(60);
    let text = json!({"type": "text", "body": "Booking confirmed"});
    let image = json!({"type": "image", "url": "https://example.com/room.jpg"});
    record(
        &store,
        &message("acme", "booking-1", "+6281111111111", text.clone()),
        t0,
        true,
    )
    .await;
    record(
        &store,
        &message("acme", "booking-2", "+6282222222222", image),
        t0 + Duration::from_secs(1),
        true,
    )
    .await;
    record(
        &store,
        &message("acme", "booking-3", "+6283333333333", text.clone()),
        t0 + Duration::from_secs(2),
        false,
    )
    .await;
    // Another tenant's message, and a body that named no tenant.
    record(
        &store,
        &message("other", "theirs-1", "+6284444444444", text),
        t0 + Duration::from_secs(3),
        true,
    )
    .await;
    store
        .record_rejected(
            &Rejection {
                pk: "_rejected#sqs-9",
                tenant_id: None,
                idempotency_key: None,
                code: "malformed",
                reason: "not JSON",
                sqs_message_id: "sqs-9",
            },
            t0 + Duration::from_secs(4),
        )
        .await
        .unwrap();
    (api, t0)
}

#[tokio::test]
async fn lists_the_tenants_messages_newest_first_with_recipient_state_and_server() {
    let (api, _) = seeded().await;

    let reply = list(&api, "acme", &api.tenant("acme"), "").await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_documented(&reply);
    assert_eq!(keys(&reply), ["booking-3", "booking-2", "booking-1"]);
    let body = reply.json();
    let newest = &body["items"][0];
    assert_eq!(newest["state"], "in_progress");
    assert_eq!(newest["to"], "+6283333333333");
    assert_eq!(newest["contentType"], "text");
    let image = &body["items"][1];
    assert_eq!(image["state"], "sent");
    assert_eq!(image["contentType"], "image");
    assert_eq!(image["to"], "+6282222222222");
    assert_eq!(image["endpoint"], "http://127.0.0.1:3000");
    assert_eq!(image["endpointRole"], "primary");
    assert!(image["sentAt"].is_string() && image["createdAt"].is_string());
    assert!(body.get("nextCursor").is_none(), "one page holds them all");
}

#[tokio::test]
async fn pages_follow_the_cursor_to_the_oldest() {
    let (api, _) = seeded().await;
    let token = api.tenant("acme");

    let first = list(&api, "acme", &token, "limit=2").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_documented(&first);
    assert_eq!(keys(&first), ["booking-3", "booking-2"]);
    let cursor = first.json()["nextCursor"].as_str().unwrap().to_owned();

    let second = list(&api, "acme", &token, &format!("limit=2&cursor={cursor}")).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_documented(&second);
    assert_eq!(keys(&second), ["booking-1"]);
}

#[tokio::test]
async fn the_admin_sees_any_tenant_and_an_expired_record_is_left_out() {
    let (api, t0) = seeded().await;
    // DynamoDB deletes expired items late (moto never): the API must not show them.
    api.stack
        .dynamodb
        .update_item()
        .table_name(api.stack.env()["MESSAGES_TABLE"].clone())
        .key("pk", AttributeValue::S("acme#booking-2".into()))
        .update_expression("SET expiresAt = :past")
        .expression_attribute_values(
            ":past",
            AttributeValue::N((t0.unix_timestamp() - 1).to_string()),
        )
        .send()
        .await
        .unwrap();

    let reply = list(&api, "acme", &api.admin(), "").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(keys(&reply), ["booking-3", "booking-1"]);
    let other = list(&api, "other", &api.admin(), "").await;
    assert_eq!(keys(&other), ["theirs-1"]);
}

#[tokio::test]
async fn another_tenants_token_is_refused_and_learns_nothing() {
    let (api, _) = seeded().await;

    let reply = list(&api, "acme", &api.tenant("other"), "").await;

    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_documented(&reply);
    assert_eq!(reply.json()["error"], "forbidden");
    assert!(!reply.text.contains("booking"));
}

#[tokio::test]
async fn bad_limits_cursors_and_tenant_ids_are_400() {
    let (api, _) = seeded().await;
    let token = api.tenant("acme");
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let foreign_cursor = b64(json!({"c": "2026-01-01T00:00:00Z", "p": "other#theirs-1"}));
    let not_json = b64(json!("x"));

    for query in [
        "limit=0".to_owned(),
        "limit=201".to_owned(),
        "limit=ten".to_owned(),
        "cursor=!!!".to_owned(),
        format!("cursor={not_json}"),
        format!("cursor={foreign_cursor}"),
    ] {
        let reply = list(&api, "acme", &token, &query).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert_documented(&reply);
        assert_eq!(reply.json()["error"], "invalid_body", "{query}");
    }
    let reply = list(&api, "Not%20A%20Tenant", &api.admin(), "").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_documented(&reply);
}

#[tokio::test]
async fn no_token_is_401_and_another_method_is_405() {
    let (api, _) = seeded().await;

    let anonymous = api
        .call(ApiEvent::new("GET", "/tenants/acme/messages"))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_documented(&anonymous);

    let post = api
        .call(
            ApiEvent::new("POST", "/tenants/acme/messages")
                .bearer(&api.tenant("acme"))
                .json(&json!({})),
        )
        .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers["allow"], "GET");
    // 405 is documented once for every route (components/responses/MethodNotAllowed).
    let doc = spec();
    let schema = doc
        .pointer("/components/responses/MethodNotAllowed/content/application~1json/schema")
        .expect("405 is documented");
    let root =
        json!({"$ref": "#/$defs/t", "$defs": {"t": schema}, "components": doc["components"]});
    let body: Value = serde_json::from_str(&post.text).expect("a JSON body");
    assert!(
        jsonschema::validator_for(&root).unwrap().is_valid(&body),
        "{body}"
    );
    assert_eq!(body["error"], "method_not_allowed");
}

#[tokio::test]
async fn dynamodb_unreachable_is_503_and_names_no_internals() {
    let (mut api, _) = seeded().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&dead)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "t", "t", None, None, "test",
        ))
        .load()
        .await;
    api.app.stores.deliveries = std::sync::Arc::new(DynamoDeliveryStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        "messages",
        "rates",
        Duration::from_secs(60),
    ));

    let reply = list(&api, "acme", &api.tenant("acme"), "").await;

    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_documented(&reply);
    assert_eq!(reply.json()["error"], "dependency_unavailable");
    assert!(!reply.text.contains(&dead), "{}", reply.text);
}

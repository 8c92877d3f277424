//! Issue 15, "connected but silent": the health check flags a tenant whose device reports
//! connected while, over the window, its server accepted sends and no receipt or inbound
//! event came back. GOWA simulators over HTTP, moto_server for the tables; delivery records
//! are written as the outbound sender writes them (times in the past, so no test waits).

mod health_common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use gowa_sim::DeviceState;
use health_check::{HealthCheck, RunReport};
use health_common::*;
use time::OffsetDateTime;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::health::store::HealthReader;
use wagate::tenant::store::EventSeenWriter;
use wagate::timestamp::rfc3339;

fn minutes_ago(m: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(m)
}

/// The health check with the silence check on (as deployed with `MESSAGES_TABLE`).
fn watching(fx: &Fx) -> HealthCheck {
    let deliveries = DynamoDeliveryStore::new(
        fx.stack.dynamodb.clone(),
        fx.stack.env()["MESSAGES_TABLE"].clone(),
        "",
        std::time::Duration::ZERO,
    );
    fx.check.clone().with_silence_check(Arc::new(deliveries))
}

async fn run(check: &HealthCheck) -> RunReport {
    check
        .run(tokio::time::Instant::now() + std::time::Duration::from_secs(20))
        .await
        .expect("run")
}

/// A delivery record as the sender leaves it: sent `sent_min_ago`, with a receipt
/// `receipt_min_ago` if any (state `delivered` then).
async fn put_sent(
    fx: &Fx,
    tenant: &str,
    key: &str,
    sent_min_ago: i64,
    receipt_min_ago: Option<i64>,
) {
    let sent = rfc3339(minutes_ago(sent_min_ago));
    let expires = OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let mut req = aws_sdk_dynamodb::Client::new(&fx.stack.sdk)
        .put_item()
        .table_name(fx.stack.env()["MESSAGES_TABLE"].clone())
        .item("pk", AttributeValue::S(format!("{tenant}#{key}")))
        .item("tenantId", AttributeValue::S(tenant.into()))
        .item("idempotencyKey", AttributeValue::S(key.into()))
        .item(
            "state",
            AttributeValue::S(
                if receipt_min_ago.is_some() {
                    "delivered"
                } else {
                    "sent"
                }
                .into(),
            ),
        )
        .item("attempts", AttributeValue::N("1".into()))
        .item("providerMessageId", AttributeValue::S(format!("3EB0{key}")))
        .item("createdAt", AttributeValue::S(sent.clone()))
        .item("updatedAt", AttributeValue::S(sent.clone()))
        .item("sentAt", AttributeValue::S(sent))
        .item("expiresAt", AttributeValue::N(expires.to_string()));
    if let Some(m) = receipt_min_ago {
        req = req.item("deliveredAt", AttributeValue::S(rfc3339(minutes_ago(m))));
    }
    req.send().await.expect("put a delivery record");
}

async fn tenant_on(fx: &Fx, state: DeviceState) -> wagate_tests::sim_contract::Checked {
    let primary = sim(&[("p1", state)]).await;
    fx.add(config("acme", endpoint(&primary, "p1"), None)).await;
    primary
}

fn silent_ids(r: &RunReport) -> Vec<&str> {
    r.silent.iter().map(|(id, _)| id.as_str()).collect()
}

#[tokio::test]
async fn a_connected_device_whose_sends_get_nothing_back_is_flagged_silent() {
    let fx = fx(settings()).await;
    let _primary = tenant_on(&fx, DeviceState::LoggedIn).await;
    put_sent(&fx, "acme", "m1", 10, None).await;
    put_sent(&fx, "acme", "m2", 20, None).await;
    let check = watching(&fx);

    let report = run(&check).await;

    assert_eq!(silent_ids(&report), ["acme"]);
    let item = fx.item("acme").await;
    let flag = item
        .get("silent")
        .and_then(|v| v.as_m().ok())
        .expect("silent flag stored");
    assert_eq!(flag["sendsAccepted"], AttributeValue::N("2".into()));
    assert_eq!(flag["windowMinutes"], AttributeValue::N("30".into()));
    // The status API's read shows it.
    let status = fx
        .store
        .tenant_status(&"acme".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let shown = status.activity.silent.expect("status shows the flag");
    assert_eq!(shown.sends_accepted, 2);
    // The run's metric line counts it; the per-tenant line names it.
    let lines = report.emf_lines(OffsetDateTime::now_utc());
    let run_line: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(run_line["SilentTenants"], 1.0);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""tenantId":"acme""#) && l.contains("SilentTenant"))
    );

    // A second run keeps the flag and its `since` (no rewrite while it stays silent).
    let since = flag["since"].clone();
    let again = run(&check).await;
    assert_eq!(silent_ids(&again), ["acme"]);
    assert_eq!(
        fx.item("acme").await["silent"].as_m().unwrap()["since"],
        since
    );
}

#[tokio::test]
async fn a_receipt_in_the_window_means_not_silent() {
    let fx = fx(settings()).await;
    let _primary = tenant_on(&fx, DeviceState::LoggedIn).await;
    put_sent(&fx, "acme", "m1", 10, None).await;
    put_sent(&fx, "acme", "m2", 15, Some(14)).await;

    let report = run(&watching(&fx)).await;

    assert!(report.silent.is_empty(), "{:?}", report.silent);
    assert!(!fx.item("acme").await.contains_key("silent"));
}

#[tokio::test]
async fn an_inbound_event_in_the_window_means_not_silent_without_reading_deliveries() {
    let fx = fx(settings()).await;
    let _primary = tenant_on(&fx, DeviceState::LoggedIn).await;
    put_sent(&fx, "acme", "m1", 10, None).await;
    // What the ingress notes on an accepted webhook.
    fx.tenants
        .note_event_seen(&"acme".parse().unwrap(), minutes_ago(3))
        .await
        .unwrap();
    fx.stack.counter.reset();

    let report = run(&watching(&fx)).await;

    assert!(report.silent.is_empty(), "{:?}", report.silent);
    assert!(!fx.item("acme").await.contains_key("silent"));
    // The event answered the question: no delivery record was read.
    assert_eq!(
        fx.stack.counter.count_op("DynamoDB", "Query"),
        0,
        "{:?}",
        fx.stack.counter.calls()
    );
}

#[tokio::test]
async fn no_accepted_send_in_the_window_means_not_silent() {
    let fx = fx(settings()).await;
    let _primary = tenant_on(&fx, DeviceState::LoggedIn).await;
    // Only a send from before the window, and one too young to expect a receipt yet.
    put_sent(&fx, "acme", "old", 45, None).await;
    put_sent(&fx, "acme", "young", 0, None).await;

    let report = run(&watching(&fx)).await;

    assert!(report.silent.is_empty(), "{:?}", report.silent);
    assert!(!fx.item("acme").await.contains_key("silent"));
}

#[tokio::test]
async fn a_device_that_is_not_connected_is_not_silent_but_logged_out() {
    let fx = fx(settings()).await;
    let _primary = tenant_on(&fx, DeviceState::Connected).await;
    put_sent(&fx, "acme", "m1", 10, None).await;

    let report = run(&watching(&fx)).await;

    assert!(report.silent.is_empty(), "{:?}", report.silent);
    assert!(!fx.item("acme").await.contains_key("silent"));
}

#[tokio::test]
async fn the_flag_clears_once_an_event_arrives_and_the_config_survives_both() {
    let fx = fx(settings()).await;
    let _primary = tenant_on(&fx, DeviceState::LoggedIn).await;
    put_sent(&fx, "acme", "m1", 10, None).await;
    let check = watching(&fx);
    assert_eq!(silent_ids(&run(&check).await), ["acme"]);
    let version = n(&fx.item("acme").await, "version");

    fx.tenants
        .note_event_seen(&"acme".parse().unwrap(), minutes_ago(0))
        .await
        .unwrap();
    let report = run(&check).await;

    assert!(report.silent.is_empty());
    let item = fx.item("acme").await;
    assert!(!item.contains_key("silent"), "{item:?}");
    // An observation, not a config change: the version never moved.
    assert_eq!(n(&item, "version"), version);
}

#[tokio::test]
async fn without_the_delivery_reader_nothing_is_flagged_or_read() {
    let fx = fx(settings()).await;
    let _primary = tenant_on(&fx, DeviceState::LoggedIn).await;
    put_sent(&fx, "acme", "m1", 10, None).await;
    fx.stack.counter.reset();

    let report = fx.run().await;

    assert!(report.silent.is_empty());
    assert_eq!(fx.stack.counter.count_op("DynamoDB", "Query"), 0);
    assert!(!fx.item("acme").await.contains_key("silent"));
}

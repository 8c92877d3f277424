//! The dashboard's reads (`/tenants/{id}/history`, `/admin/failovers`) and the page itself,
//! through the config API handler over moto_server. The rows are seeded in the shape the
//! health check writes (its own tests prove it writes them so); `dashboard_browser` runs the
//! real health check end to end.

use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, api};

const A: &str = "http://127.0.0.1:7001";
const B: &str = "http://127.0.0.1:7002";
const C: &str = "http://127.0.0.1:7003";

fn ago(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(minutes)
}

fn iso(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

async fn point(api: &Api, key: &str, minutes_ago: i64, up: bool, latency: Option<f64>) {
    let at = ago(minutes_ago);
    let mut req = api
        .stack
        .dynamodb
        .put_item()
        .table_name(api.stack.env()["HEALTH_HISTORY_TABLE"].clone())
        .item("endpointKey", AttributeValue::S(key.into()))
        .item("at", AttributeValue::S(iso(at)))
        .item("up", AttributeValue::Bool(up))
        .item("tenants", AttributeValue::N("1".into()))
        .item("devices", AttributeValue::N("1".into()))
        .item(
            "devicesConnected",
            AttributeValue::N(if up { "1" } else { "0" }.into()),
        )
        .item(
            "expiresAt",
            AttributeValue::N((at.unix_timestamp() + 24 * 3600).to_string()),
        );
    if let Some(ms) = latency {
        req = req.item("latencyMs", AttributeValue::N(ms.to_string()));
    }
    if !up {
        req = req.item("error", AttributeValue::S("timeout".into()));
    }
    req.send().await.unwrap();
}

async fn switch_record(api: &Api, tenant: &str, minutes_ago: i64, action: &str, stream: bool) {
    let mut req = api
        .stack
        .dynamodb
        .put_item()
        .table_name(api.stack.env()["AUDIT_TABLE"].clone())
        .item("tenantId", AttributeValue::S(tenant.into()))
        .item(
            "at",
            AttributeValue::S(format!("{}#{tenant}", iso(ago(minutes_ago)))),
        )
        .item("who", AttributeValue::S("health-check".into()))
        .item("action", AttributeValue::S(action.into()))
        .item("from", AttributeValue::S("primary".into()))
        .item("to", AttributeValue::S("backup".into()))
        .item("fromEndpoint", AttributeValue::S(A.into()))
        .item("toEndpoint", AttributeValue::S(B.into()))
        .item("reason", AttributeValue::S("3 failed runs".into()))
        .item("versionBefore", AttributeValue::N("1".into()))
        .item("versionAfter", AttributeValue::N("2".into()));
    if stream {
        req = req.item("switchStream", AttributeValue::S("switch".into()));
    }
    req.send().await.unwrap();
}

async fn acme_with_backup(api: &Api) {
    let r = api
        .create(&json!({
            "provider": "gowa",
            "primary": {"baseUrl": A, "credentials": {"type": "none"}},
            "backup": {"baseUrl": B, "credentials": {"type": "none"}},
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn history_holds_the_tenants_two_servers_in_the_window_oldest_first() {
    let api = api().await;
    acme_with_backup(&api).await;
    point(&api, A, 25 * 60, true, Some(900.0)).await; // older than the window
    point(&api, A, 120, true, Some(0.412)).await; // 412 µs: kept to the microsecond
    point(&api, A, 30, false, None).await;
    point(&api, B, 20, true, Some(55.0)).await; // whole milliseconds, as older points hold
    point(&api, C, 10, true, Some(7.0)).await; // another tenant's server

    let r = api
        .call(ApiEvent::new("GET", "/tenants/acme/history").bearer(&api.tenant("acme")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    let eps = body["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 2, "{body}");
    assert_eq!(eps[0]["role"], "primary");
    assert_eq!(eps[0]["baseUrl"], A);
    assert_eq!(eps[0]["active"], true);
    let a: Vec<_> = eps[0]["points"].as_array().unwrap().iter().collect();
    assert_eq!(
        a.len(),
        2,
        "the 25 h old point is outside the window: {body}"
    );
    assert_eq!(a[0]["latencyMs"], 0.412);
    assert_eq!(a[0]["up"], true);
    assert_eq!(a[1]["up"], false);
    assert_eq!(a[1]["error"], "timeout");
    assert!(a[1].get("latencyMs").is_none());
    assert_eq!(eps[1]["role"], "backup");
    assert_eq!(eps[1]["active"], false);
    assert_eq!(eps[1]["points"][0]["latencyMs"], 55.0);
    assert!(
        !r.text.contains(C),
        "another server's history leaked: {}",
        r.text
    );

    // A narrower window.
    let r = api
        .call(
            ApiEvent::new("GET", "/tenants/acme/history")
                .query("hours=1")
                .bearer(&api.admin()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["endpoints"][0]["points"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn history_refuses_a_bad_window_another_tenant_and_an_unknown_tenant() {
    let api = api().await;
    acme_with_backup(&api).await;
    for q in ["hours=0", "hours=25", "hours=abc", "hours=-1"] {
        let r = api
            .call(
                ApiEvent::new("GET", "/tenants/acme/history")
                    .query(q)
                    .bearer(&api.admin()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text);
        assert_eq!(r.json()["error"], "invalid_body");
        assert_eq!(r.json()["message"], "hours must be 1 to 24");
    }
    let r = api
        .call(ApiEvent::new("GET", "/tenants/acme/history").bearer(&api.tenant("other")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call(ApiEvent::new("GET", "/tenants/ghost/history").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .call(ApiEvent::new("GET", "/tenants/acme/history"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api
        .call(ApiEvent::new("POST", "/tenants/acme/history").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn failovers_lists_every_tenants_automatic_switches_newest_first() {
    let api = api().await;
    switch_record(&api, "t1", 120, "failover", true).await;
    switch_record(&api, "t2", 10, "failback", true).await;
    switch_record(&api, "t3", 30 * 60, "failover", true).await; // 30 h ago
    // A config API record in the same table is not a failover.
    switch_record(&api, "t4", 5, "update", false).await;

    let r = api
        .call(ApiEvent::new("GET", "/admin/failovers").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    let tenants: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tenantId"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["t2", "t1"], "{body}");
    assert_eq!(body["items"][0]["action"], "failback");
    assert_eq!(body["items"][1]["fromEndpoint"], A);
    assert_eq!(body["truncated"], false);

    let r = api
        .call(
            ApiEvent::new("GET", "/admin/failovers")
                .query("hours=48")
                .bearer(&api.admin()),
        )
        .await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 3);

    for q in ["hours=0", "hours=169", "hours=x"] {
        let r = api
            .call(
                ApiEvent::new("GET", "/admin/failovers")
                    .query(q)
                    .bearer(&api.admin()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(r.json()["message"], "hours must be 1 to 168");
    }
    // Admin only.
    let r = api
        .call(ApiEvent::new("GET", "/admin/failovers").bearer(&api.tenant("t1")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_page_is_served_without_a_token_as_one_document_and_nothing_else_is() {
    let api = api().await;
    let page = api.call(ApiEvent::new("GET", "/prod/dashboard")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'sha256-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // Script and stylesheet are inside the document: no second request.
    assert!(page.text.contains("function renderChart"));
    assert!(page.text.contains(".chart .line-primary"));
    for path in [
        "/dashboard/app.js",
        "/dashboard/.env",
        "/prod/dashboard/index.html",
    ] {
        let r = api.call(ApiEvent::new("GET", path)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    let r = api.call(ApiEvent::new("POST", "/dashboard")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // The data behind it still needs a token.
    let r = api.call(ApiEvent::new("GET", "/admin/endpoints")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// ---------- connected but silent (issue 15): the tenant and fleet views ----------

async fn flag_silent(api: &Api, tenant: &str) {
    use wagate::health::store::HealthStore as _;
    use wagate::tenant::store::EventSeenWriter as _;
    let env = api.stack.env();
    let store = wagate::health::dynamo::DynamoHealthStore::new(
        api.stack.dynamodb.clone(),
        api.stack.tenants_table(),
        env["ENDPOINTS_TABLE"].clone(),
        env["AUDIT_TABLE"].clone(),
    );
    let id: wagate::TenantId = tenant.parse().unwrap();
    let flag = wagate::health::silence::SilentFlag {
        since: ago(5).replace_nanosecond(0).unwrap(),
        sends_accepted: 3,
        window_minutes: 30,
        last_event_at: Some(ago(90).replace_nanosecond(0).unwrap()),
    };
    store.set_silent(&id, Some(&flag)).await.unwrap();
    let tenants = wagate::tenant::dynamo::DynamoTenantStore::new(
        api.stack.dynamodb.clone(),
        api.stack.tenants_table(),
    );
    tenants
        .note_event_seen(&id, ago(90).replace_nanosecond(0).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_status_and_the_fleet_show_a_silent_tenant() {
    let api = api().await;
    acme_with_backup(&api).await;
    flag_silent(&api, "acme").await;

    let r = api
        .call(ApiEvent::new("GET", "/tenants/acme/status").bearer(&api.tenant("acme")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s = r.json();
    assert_eq!(s["silent"]["sendsAccepted"], 3, "{s}");
    assert_eq!(s["silent"]["windowMinutes"], 30);
    assert!(s["lastEventAt"].is_string(), "{s}");

    let r = api
        .call(ApiEvent::new("GET", "/admin/tenant-activity").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.json()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    assert_eq!(items[0]["tenantId"], "acme");
    assert_eq!(items[0]["silent"]["sendsAccepted"], 3);
}

#[tokio::test]
async fn the_fleet_activity_is_admin_only() {
    let api = api().await;
    acme_with_backup(&api).await;
    let r = api
        .call(ApiEvent::new("GET", "/admin/tenant-activity").bearer(&api.tenant("acme")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = api
        .call(ApiEvent::new("GET", "/admin/tenant-activity"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // A tenant that never was silent shows no flag.
    let r = api
        .call(ApiEvent::new("GET", "/admin/tenant-activity").bearer(&api.admin()))
        .await;
    assert_eq!(r.json()["items"], json!([{"tenantId": "acme"}]));
}

// ---------- backup readiness (issue 15, item 3): the fleet view ----------

#[tokio::test]
async fn the_fleet_shows_the_health_checks_backup_readiness_verdict() {
    use wagate::health::store::HealthStore as _;
    let api = api().await;
    acme_with_backup(&api).await;
    let env = api.stack.env();
    let store = wagate::health::dynamo::DynamoHealthStore::new(
        api.stack.dynamodb.clone(),
        api.stack.tenants_table(),
        env["ENDPOINTS_TABLE"].clone(),
        env["AUDIT_TABLE"].clone(),
    );
    let id: wagate::TenantId = "acme".parse().unwrap();
    let note = wagate::health::standby::StandbyNote {
        role: wagate::tenant::EndpointRole::Backup,
        ready: false,
        reasons: vec!["device_not_logged_in".into()],
        detail: Some("its device is not logged in (link it: QR code or pairing code)".into()),
        config_version: 1,
        since: ago(5).replace_nanosecond(0).unwrap(),
    };
    store.set_standby(&id, Some(&note)).await.unwrap();

    let r = api
        .call(ApiEvent::new("GET", "/admin/tenant-activity").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let standby = r.json()["items"][0]["standby"].clone();
    assert_eq!(standby["role"], "backup", "{standby}");
    assert_eq!(standby["ready"], false);
    assert_eq!(standby["reasons"], json!(["device_not_logged_in"]));
    assert_eq!(standby["configVersion"], 1);
    assert!(
        OffsetDateTime::parse(standby["since"].as_str().unwrap(), &Rfc3339).is_ok(),
        "{standby}"
    );

    // Removed (the backup was taken away): the fleet shows none.
    store.set_standby(&id, None).await.unwrap();
    let r = api
        .call(ApiEvent::new("GET", "/admin/tenant-activity").bearer(&api.admin()))
        .await;
    assert_eq!(r.json()["items"], json!([{"tenantId": "acme"}]));
}

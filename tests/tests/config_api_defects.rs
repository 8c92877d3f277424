//! Issue 12 (part A): what hostile and careless inputs found in the config API, each with
//! the exact status and proof that nothing changed (no item written, no audit record, no
//! secret sealed or rotated, no request to a WhatsApp server).
//!
//! The handler runs in-process with real API Gateway v2 events against moto_server
//! (DynamoDB, KMS) and GOWA simulators (or a small stand-in server) over HTTP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::StatusCode as AxumStatus;
use gowa_sim::SimConfig;
use http::StatusCode;
use serde_json::{Value, json};
use wagate::egress::StaticResolver;
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, PATH, Reply, api, api_with_resolver};
use wagate_tests::sim_contract::{Checked, checked};

const USER: &str = "admin";
const PASSWORD: &str = "gowa-password-5d2f81";
const WEBHOOK_SECRET: &str = "webhook-secret-a8c3e0";

async fn sim() -> Checked {
    checked(
        gowa_sim::start(SimConfig::default().basic_auth(USER, PASSWORD))
            .await
            .expect("start simulator"),
    )
}

fn endpoint(url: &str) -> Value {
    json!({
        "baseUrl": url,
        "credentials": {"type": "basic", "username": USER, "password": PASSWORD},
        "deviceId": "demo",
        "region": "eu-west-1"
    })
}

fn body(primary: &str, backup: &str) -> Value {
    json!({
        "provider": "gowa",
        "primary": endpoint(primary),
        "backup": endpoint(backup),
        "webhookSecrets": [{"id": "s1", "secret": WEBHOOK_SECRET}],
        "isActive": true
    })
}

fn op(tenant: &str, name: &str) -> String {
    format!("/tenants/{tenant}/whatsapp-config/{name}")
}

/// Everything a refused request must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tenants: Vec<HashMap<String, AttributeValue>>,
    audit: usize,
    servers: usize,
    jobs: usize,
    encrypts: usize,
    sim_requests: usize,
}

struct World {
    api: Api,
    primary: Checked,
    backup: Checked,
}

impl World {
    async fn new() -> World {
        Self::with(api().await).await
    }

    async fn with(api: Api) -> World {
        let (primary, backup) = (sim().await, sim().await);
        let r = api
            .create(&body(&primary.base_url(), &backup.base_url()))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        World {
            api,
            primary,
            backup,
        }
    }

    async fn call(&self, ev: ApiEvent) -> Reply {
        self.api.call(ev).await
    }

    async fn count(&self, table: &str) -> usize {
        aws_sdk_dynamodb::Client::new(&self.api.stack.sdk)
            .scan()
            .table_name(self.api.stack.env()[table].clone())
            .send()
            .await
            .expect("scan")
            .count as usize
    }

    async fn snapshot(&self) -> Snapshot {
        let mut tenants = self.api.stored().await;
        tenants.sort_by_key(|i| format!("{:?}", i.get("tenantId")));
        Snapshot {
            tenants,
            audit: self.count("AUDIT_TABLE").await,
            servers: self.count("SERVERS_TABLE").await,
            jobs: self.count("MIGRATIONS_TABLE").await,
            encrypts: self.api.stack.counter.count_op("KMS", "Encrypt"),
            sim_requests: self.primary.requests().len() + self.backup.requests().len(),
        }
    }
}

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json()["error"], code, "{}", r.text);
}

fn fields(r: &Reply) -> Vec<String> {
    r.json()["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["field"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

// =====================================================================================
// Every JSON body must be an object
// =====================================================================================

#[tokio::test]
async fn json_arrays_and_other_non_objects_are_400_on_every_body_route_and_change_nothing() {
    let w = World::new().await;
    let admin = w.api.admin();
    let before = w.snapshot().await;
    let routes: [(&str, String); 12] = [
        ("POST", PATH.to_string()),
        ("PUT", PATH.to_string()),
        ("POST", op("acme", "test")),
        ("POST", op("acme", "rotate-credential")),
        ("POST", op("acme", "rotate-webhook-secret")),
        ("POST", op("acme", "switch")),
        ("POST", "/tenants/fresh/whatsapp-config".to_string()),
        ("POST", "/admin/import".to_string()),
        ("POST", "/admin/servers".to_string()),
        ("PUT", "/admin/servers/sa".to_string()),
        ("POST", "/admin/placement".to_string()),
        ("POST", "/admin/migrations".to_string()),
    ];
    for (method, path) in &routes {
        for raw in [
            "[]",
            r#"["x"]"#,
            r#"["gowa", {"baseUrl": "http://127.0.0.1:9"}, null, null, null, null, null, null, 1]"#,
            "null",
            "\"text\"",
            "42",
            " \n[1]",
        ] {
            let r = w
                .call(
                    ApiEvent::new(method, path)
                        .bearer(&admin)
                        .header("If-Match", "\"1\"")
                        .raw_json(raw),
                )
                .await;
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
            assert!(
                r.json()["message"]
                    .as_str()
                    .unwrap()
                    .contains("must be a JSON object"),
                "{method} {path} {raw}: {}",
                r.text
            );
        }
    }
    assert_eq!(
        w.snapshot().await,
        before,
        "a non-object body changed something"
    );
    // An object still works where an empty body does (rotate-webhook-secret).
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "rotate-webhook-secret"))
                .bearer(&admin)
                .raw_json(" {} "),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

// =====================================================================================
// Credential kinds per provider
// =====================================================================================

#[tokio::test]
async fn api_key_and_bearer_credentials_on_a_gowa_endpoint_are_400_and_change_nothing() {
    let w = World::new().await;
    let admin = w.api.admin();
    let before = w.snapshot().await;

    // Create (another tenant) and replace.
    let mut b = body(&w.primary.base_url(), &w.backup.base_url());
    b["primary"]["credentials"] = json!({"type": "apiKey", "key": "api-key-0123456789"});
    b["backup"]["credentials"] = json!({"type": "bearer", "token": "bearer-0123456789"});
    let r = w
        .call(
            ApiEvent::new("POST", "/tenants/other/whatsapp-config")
                .bearer(&admin)
                .json(&b),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(
        fields(&r),
        ["primary.credentials.type", "backup.credentials.type"]
    );
    assert!(r.text.contains("none, basic"), "{}", r.text);
    let r = w
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&admin)
                .header("If-Match", "\"1\"")
                .json(&b),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");

    // Rotation, a candidate test and a replacing switch.
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "rotate-credential"))
                .bearer(&admin)
                .json(&json!({"credentials": {"type": "bearer", "token": "bearer-0123456789"}})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(fields(&r), ["primary.credentials.type"]);
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "test"))
                .bearer(&admin)
                .json(&json!({"candidate": {"baseUrl": w.primary.base_url(), "credentials": {"type": "apiKey", "key": "api-key-0123456789"}}})),
        )
        .await;
    // Since issue 16 an API key is a valid credential (WAHA, Evolution): on a candidate that
    // names no kind, the type conflicts with the stored tenant's kind (409); on one that names
    // GOWA, the body itself is wrong (400).
    assert_error(&r, StatusCode::CONFLICT, "state_conflict");
    assert_eq!(fields(&r), ["candidate.credentials.type"]);
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "test"))
                .bearer(&admin)
                .json(&json!({"candidate": {"baseUrl": w.primary.base_url(), "provider": "gowa", "credentials": {"type": "apiKey", "key": "api-key-0123456789"}}})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(fields(&r), ["candidate.credentials.type"]);
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "switch"))
                .bearer(&admin)
                .json(&json!({"action": "replace", "role": "backup", "version": 1,
                    "endpoint": {"baseUrl": w.backup.base_url(), "credentials": {"type": "apiKey", "key": "api-key-0123456789"}}})),
        )
        .await;
    // As for the candidate above: the replacement names no kind, so its type conflicts with
    // the stored tenant's (409, nothing changed).
    assert_error(&r, StatusCode::CONFLICT, "state_conflict");
    assert_eq!(fields(&r), ["endpoint.credentials.type"]);

    assert_eq!(
        w.snapshot().await,
        before,
        "a refused credential changed something"
    );
}

// =====================================================================================
// Connection test: 401/403 mean "credentials refused", whatever the body
// =====================================================================================

/// A stand-in for a GOWA server behind something that answers `/app/status` itself
/// (a proxy, or GOWA's own JSON `ErrorUnauthorized`): `/health` is 200.
async fn stand_in(status: u16, body: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/health",
            get(|| async { ([("content-type", "application/json")], r#"{"status":"ok"}"#) }),
        )
        .route(
            "/app/status",
            get(move || async move {
                (
                    AxumStatus::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

fn check_of<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["results"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

#[tokio::test]
async fn a_json_401_or_403_fails_the_credentials_check() {
    let api = api().await;
    for (status, body) in [
        // GOWA's documented ErrorUnauthorized shape.
        (
            401,
            r#"{"code":"401","message":"Unauthorized access","results":null}"#,
        ),
        (401, r#"{"error":"unauthorized"}"#),
        (403, r#"{"code":"FORBIDDEN","message":"no"}"#),
        (403, "Forbidden"),
    ] {
        let (url, task) = stand_in(status, body).await;
        let r = api
            .call(
                ApiEvent::new("POST", &op("acme", "test"))
                    .bearer(&api.admin())
                    .json(&json!({"candidate": {"baseUrl": url, "credentials": {"type": "basic", "username": USER, "password": PASSWORD}}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let report = r.json();
        assert_eq!(report["ok"], false, "{report}");
        let creds = check_of(&report, "credentials");
        assert_eq!(creds["outcome"], "fail", "{status} {body}: {report}");
        assert!(
            creds["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("HTTP {status}")),
            "{creds}"
        );
        assert_eq!(check_of(&report, "device")["outcome"], "skipped");
        task.abort();
    }
    // GOWA's own AUTHENTICATION_ERROR (after its basic auth let the call through) is a
    // device that is not logged in: the credentials passed.
    let (url, task) = stand_in(
        401,
        r#"{"code":"AUTHENTICATION_ERROR","message":"you are not logged in","results":null}"#,
    )
    .await;
    let r = api
        .call(
            ApiEvent::new("POST", &op("acme", "test"))
                .bearer(&api.admin())
                .json(&json!({"candidate": {"baseUrl": url, "credentials": {"type": "none"}}})),
        )
        .await;
    let report = r.json();
    assert_eq!(
        check_of(&report, "credentials")["outcome"],
        "pass",
        "{report}"
    );
    assert_eq!(check_of(&report, "device")["outcome"], "fail", "{report}");
    task.abort();
    assert!(api.stored().await.is_empty());
}

#[tokio::test]
async fn the_simulators_plain_401_to_wrong_basic_auth_fails_the_credentials_check() {
    let api = api().await;
    let s = sim().await;
    let r = api
        .call(
            ApiEvent::new("POST", &op("acme", "test"))
                .bearer(&api.admin())
                .json(&json!({"candidate": {"baseUrl": s.base_url(), "credentials": {"type": "basic", "username": USER, "password": "wrong-password"}}})),
        )
        .await;
    let report = r.json();
    let creds = check_of(&report, "credentials");
    assert_eq!(creds["outcome"], "fail", "{report}");
    assert!(
        creds["reason"].as_str().unwrap().contains("HTTP 401"),
        "{creds}"
    );
}

// =====================================================================================
// SSRF: host names are resolved at save
// =====================================================================================

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_host_name_resolving_only_to_blocked_addresses_is_400_everywhere_a_url_is_saved() {
    let dns = StaticResolver::new();
    dns.set("wa-internal.test", &[ip("10.0.0.5")]);
    dns.set("wa-loopback.test", &[ip("127.0.0.2"), ip("::1")]);
    dns.set("wa-metadata.test", &[ip("169.254.169.254")]);
    dns.set("wa-mixed.test", &[ip("10.0.0.5"), ip("93.184.216.34")]);
    let w = World::with(api_with_resolver(Arc::new(dns.clone())).await).await;
    let admin = w.api.admin();
    let before = w.snapshot().await;

    // Create: both endpoints named in one answer.
    let b = body("http://wa-internal.test:3000", "https://WA-METADATA.test/");
    let r = w
        .call(
            ApiEvent::new("POST", "/tenants/other/whatsapp-config")
                .bearer(&admin)
                .json(&b),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(fields(&r), ["primary.baseUrl", "backup.baseUrl"]);
    assert!(r.text.contains("wa-internal.test"), "{}", r.text);
    assert!(r.text.contains("10.0.0.0/8"), "{}", r.text);
    // Update, candidate test, replacing switch, server registry, import.
    let r = w
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&admin)
                .header("If-Match", "\"1\"")
                .json(&body(&w.primary.base_url(), "http://wa-loopback.test:3000")),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(fields(&r), ["backup.baseUrl"]);
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "test"))
                .bearer(&admin)
                .json(&json!({"candidate": {"baseUrl": "http://wa-metadata.test", "credentials": {"type": "none"}}})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(fields(&r), ["candidate.baseUrl"]);
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "switch"))
                .bearer(&admin)
                .json(&json!({"action": "replace", "role": "backup", "version": 1,
                    "endpoint": {"baseUrl": "http://wa-internal.test:3000", "credentials": {"type": "none"}}})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(fields(&r), ["endpoint.baseUrl"]);
    let r = w
        .call(
            ApiEvent::new("POST", "/admin/servers")
                .bearer(&admin)
                .json(&json!({"serverId": "s1", "baseUrl": "http://wa-internal.test:3000", "provider": "gowa", "region": "eu-west-1", "capacity": 5})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(fields(&r), ["baseUrl"]);
    let export = w
        .call(ApiEvent::new("GET", "/admin/export").bearer(&admin))
        .await
        .json();
    let mut doc = export.clone();
    doc["items"][0]["tenantId"] = json!("restored");
    doc["items"][0]["primary"]["baseUrl"] = json!("http://wa-internal.test:3000");
    let r = w
        .call(
            ApiEvent::new("POST", "/admin/import")
                .bearer(&admin)
                .json(&doc),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(fields(&r), ["items[0].primary.baseUrl"]);
    assert_eq!(
        w.snapshot().await,
        before,
        "a blocked host changed something"
    );

    // A name with one public address is not refused at save (the connect-time guard
    // drops the blocked ones); neither is one that does not resolve.
    let r = w
        .call(
            ApiEvent::new("POST", "/tenants/other/whatsapp-config")
                .bearer(&admin)
                .json(&body("https://wa-mixed.test", "https://not-in-dns.test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn the_connection_test_names_the_egress_guard_when_dns_moves_a_saved_host_to_a_blocked_address()
 {
    let dns = StaticResolver::new();
    // Public at save time (never connected to: the test only saves it).
    dns.set("wa-rebind.test", &[ip("93.184.216.34")]);
    let api = api_with_resolver(Arc::new(dns.clone())).await;
    let mut b = body("http://wa-rebind.test:3000", "http://wa-rebind.test:3001");
    b.as_object_mut().unwrap().remove("backup");
    // No device: the save does not read the device to wire its webhook (issue 15), so no
    // connection to the public address is made (and none is pooled) before the move.
    b["primary"].as_object_mut().unwrap().remove("deviceId");
    let r = api.create(&b).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Then the name moves to a private address (DNS rebinding).
    dns.set("wa-rebind.test", &[ip("10.0.0.5")]);
    let r = api
        .call(ApiEvent::new("POST", &op("acme", "test")).bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let report = r.json();
    let reachable = check_of(&report, "reachable");
    assert_eq!(reachable["outcome"], "fail", "{report}");
    let reason = reachable["reason"].as_str().unwrap();
    assert!(reason.contains("egress guard"), "{reason}");
    assert!(reason.contains("wa-rebind.test"), "{reason}");
    assert!(!reason.contains("could not connect"), "{reason}");
}

// =====================================================================================
// A sealed secret that cannot be opened
// =====================================================================================

/// Copies `from`'s sealed primary password into `to`'s item, in the `role` slot: KMS
/// refuses it there (its encryption context names `from`).
async fn copy_ciphertext(api: &Api, from: &str, to: &str, role: &str) {
    let client = aws_sdk_dynamodb::Client::new(&api.stack.sdk);
    let table = api.stack.tenants_table();
    let item = client
        .get_item()
        .table_name(&table)
        .key("tenantId", AttributeValue::S(from.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let password = item["primary"].as_m().unwrap()["credentials"]
        .as_m()
        .unwrap()["password"]
        .clone();
    client
        .update_item()
        .table_name(&table)
        .key("tenantId", AttributeValue::S(to.into()))
        .update_expression("SET #r.#c.#p = :p")
        .expression_attribute_names("#r", role)
        .expression_attribute_names("#c", "credentials")
        .expression_attribute_names("#p", "password")
        .expression_attribute_values(":p", password)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_secret_sealed_for_another_tenant_is_a_409_naming_it_on_every_route_never_a_500() {
    let w = World::new().await;
    let admin = w.api.admin();
    let r = w
        .call(
            ApiEvent::new("POST", "/tenants/other/whatsapp-config")
                .bearer(&admin)
                .json(&body(&w.primary.base_url(), &w.backup.base_url())),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    copy_ciphertext(&w.api, "other", "acme", "backup").await;
    let before = w.snapshot().await;

    // The connection test of the saved endpoints (500 before).
    let r = w
        .call(ApiEvent::new("POST", &op("acme", "test")).bearer(&admin))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "secret_unusable");
    assert_eq!(fields(&r), ["backup.credentials.password"]);
    // A candidate that reuses the saved credentials of that server.
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "test"))
                .bearer(&admin)
                .json(&json!({"candidate": {"baseUrl": w.backup.base_url()}})),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "secret_unusable");
    assert_eq!(fields(&r), ["candidate.credentials.password"]);
    // A switch to the endpoint with the unusable secret.
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "switch"))
                .bearer(&admin)
                .json(&json!({"action": "activate", "to": "backup", "version": 1})),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "secret_unusable");
    assert_eq!(fields(&r), ["backup.credentials.password"]);
    assert_eq!(
        w.snapshot().await,
        before,
        "a refused secret changed something"
    );
    for secret in [PASSWORD, WEBHOOK_SECRET] {
        assert!(!r.text.contains(secret));
    }

    // A migration moves the others and reports this tenant failed, naming the field.
    let target = sim().await;
    for (id, url) in [("src", w.backup.base_url()), ("dst", target.base_url())] {
        let r = w
            .call(
                ApiEvent::new("POST", "/admin/servers")
                    .bearer(&admin)
                    .json(&json!({"serverId": id, "baseUrl": url, "provider": "gowa", "region": "eu-west-1", "capacity": 10})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = w
        .call(
            ApiEvent::new("POST", "/admin/migrations")
                .bearer(&admin)
                .json(&json!({"jobId": "j1", "from": "src", "to": "dst", "tenantIds": ["acme", "other"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.json()["results"].clone();
    assert_eq!(results[0]["tenantId"], "acme");
    assert_eq!(results[0]["outcome"], "failed", "{results}");
    assert!(
        results[0]["reason"]
            .as_str()
            .unwrap()
            .contains("backup.credentials.password"),
        "{results}"
    );
    assert_eq!(results[1]["outcome"], "moved", "{results}");

    // Every route answers without a 5xx; the status view names the field.
    let mut seen = Vec::new();
    for (method, path) in [
        ("GET", PATH.to_string()),
        ("GET", "/tenants/acme/status".to_string()),
        ("GET", "/tenants/acme/history".to_string()),
        ("GET", "/tenants/acme/audit".to_string()),
        ("GET", "/tenants".to_string()),
        ("GET", "/admin/export".to_string()),
        ("GET", "/admin/servers".to_string()),
        ("GET", "/admin/endpoints".to_string()),
    ] {
        let r = w.call(ApiEvent::new(method, &path).bearer(&admin)).await;
        assert!(r.status.as_u16() < 500, "{method} {path}: {}", r.text);
        seen.push((path, r));
    }
    let status = seen[1].1.json();
    assert_eq!(
        status["unusableSecrets"],
        json!([{"field": "backup.credentials.password",
                "reason": "KMS refuses to open it (sealed for another tenant or purpose, or damaged); set it again"}]),
        "{status}"
    );

    // Setting it again repairs it.
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "rotate-credential"))
                .bearer(&admin)
                .json(&json!({"role": "backup", "credentials": {"type": "basic", "username": USER, "password": PASSWORD}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let status = w
        .call(ApiEvent::new("GET", "/tenants/acme/status").bearer(&admin))
        .await
        .json();
    assert!(status.get("unusableSecrets").is_none(), "{status}");
    let r = w
        .call(ApiEvent::new("POST", &op("acme", "test")).bearer(&admin))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["ok"], true, "{}", r.text);
}

// =====================================================================================
// If-Match and a body version that disagree
// =====================================================================================

#[tokio::test]
async fn if_match_and_body_version_that_disagree_are_409_and_change_nothing() {
    let w = World::new().await;
    let before = w.snapshot().await;
    let mut b = body(&w.primary.base_url(), &w.backup.base_url());
    b["version"] = json!(2);
    for (method, path, body) in [
        ("PUT", PATH.to_string(), b),
        (
            "POST",
            op("acme", "switch"),
            json!({"action": "swap", "version": 2}),
        ),
        (
            "POST",
            op("acme", "rotate-webhook-secret"),
            json!({"version": 2}),
        ),
    ] {
        let r = w
            .call(
                ApiEvent::new(method, &path)
                    .bearer(&w.api.admin())
                    .header("If-Match", "\"1\"")
                    .json(&body),
            )
            .await;
        assert_error(&r, StatusCode::CONFLICT, "version_conflict");
    }
    assert_eq!(w.snapshot().await, before);
}

// =====================================================================================
// What schemathesis found (each failed before its fix)
// =====================================================================================

#[tokio::test]
async fn a_null_anywhere_in_a_body_is_400_naming_it_and_changes_nothing() {
    let w = World::new().await;
    let before = w.snapshot().await;
    let mut create = body(&w.primary.base_url(), &w.backup.base_url());
    create["backup"]["deviceId"] = Value::Null;
    let mut replace = body(&w.primary.base_url(), &w.backup.base_url());
    replace["backup"] = Value::Null;
    for (method, path, b, named) in [
        (
            "POST",
            "/tenants/other/whatsapp-config",
            create,
            "backup.deviceId",
        ),
        ("PUT", PATH, replace, "backup"),
    ] {
        let r = w
            .call(
                ApiEvent::new(method, path)
                    .bearer(&w.api.admin())
                    .header("If-Match", "\"1\"")
                    .json(&b),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{named} is null")),
            "{}",
            r.text
        );
    }
    assert_eq!(w.snapshot().await, before);
}

#[tokio::test]
async fn an_integer_written_with_a_zero_fraction_is_that_integer() {
    let api = api().await;
    let s = sim().await;
    let mut b = body(&s.base_url(), "https://backup.example.com");
    b["limits"] = json!({"outboundPerMinute": 60.0, "inboundPerSecond": 5e1});
    let r = api.create(&b).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.json()["limits"],
        json!({"outboundPerMinute": 60, "inboundPerSecond": 50})
    );
    // A fraction is still refused.
    b["limits"]["outboundPerMinute"] = json!(60.5);
    let r = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"1\"")
                .json(&b),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
    assert_eq!(
        api.stored().await[0]["version"],
        AttributeValue::N("1".into())
    );
}

#[tokio::test]
async fn unknown_fields_beside_credentials_of_type_none_are_400() {
    let api = api().await;
    let s = sim().await;
    let mut b = body(&s.base_url(), "https://backup.example.com");
    b["primary"]["credentials"] = json!({"type": "none", "password": "stray-secret-1234"});
    let r = api.create(&b).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
    assert!(!r.text.contains("stray-secret-1234"), "{}", r.text);
    assert!(api.stored().await.is_empty());
}

#[tokio::test]
async fn a_base_url_is_refused_for_its_spelling_before_it_is_parsed() {
    let api = api().await;
    let s = sim().await;
    for bad in [
        format!(" {}", s.base_url()),
        format!("{}\n", s.base_url()),
        format!("{}/\t", s.base_url()),
        "http://@127.0.0.1:9".to_string(),
        "http://127.0.0.1:9\\gowa".to_string(),
    ] {
        let r = api.create(&body(&bad, "https://backup.example.com")).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_config");
        assert_eq!(fields(&r), ["primary.baseUrl"], "{bad:?}");
    }
    assert!(api.stored().await.is_empty());
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn a_plus_in_an_idempotency_key_is_a_plus() {
    let api = api().await;
    api.stack.put_delivery("acme", "order+42", "sent").await;
    for path in [
        "/tenants/acme/messages/order+42",
        "/tenants/acme/messages/order%2B42",
    ] {
        let r = api
            .call(ApiEvent::new("GET", path).bearer(&api.admin()))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert_eq!(r.json()["idempotencyKey"], "order+42");
    }
}

#[tokio::test]
async fn a_secret_left_out_with_nothing_saved_to_keep_is_409_state_conflict() {
    let w = World::new().await;
    let before = w.snapshot().await;
    let mut b = body(&w.primary.base_url(), &w.backup.base_url());
    b["webhookSecrets"] = json!([{"id": "never-saved"}]);
    let r = w
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&w.api.admin())
                .header("If-Match", "\"1\"")
                .json(&b),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "state_conflict");
    assert_eq!(fields(&r), ["webhookSecrets[0].secret"]);
    assert_eq!(w.snapshot().await, before);
}

#[tokio::test]
async fn removing_the_active_backup_without_naming_the_active_endpoint_activates_the_primary() {
    let w = World::new().await;
    let r = w
        .call(
            ApiEvent::new("POST", &op("acme", "switch"))
                .bearer(&w.api.admin())
                .json(&json!({"action": "activate", "to": "backup", "version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut b = body(&w.primary.base_url(), &w.backup.base_url());
    b.as_object_mut().unwrap().remove("backup");
    let r = w
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&w.api.admin())
                .header("If-Match", "\"2\"")
                .json(&b),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["activeEndpoint"], "primary");
    assert!(r.json().get("backup").is_none());
}

//! config-api server registry, placement and bulk migration (issue 6, item 8): the handler
//! in-process with real API Gateway v2 events against moto_server and GOWA simulators over
//! HTTP. Every refusal asserts its exact status and that nothing changed.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use gowa_sim::SimConfig;
use http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wagate::health::EndpointHealth;
use wagate::health::dynamo::DynamoHealthStore;
use wagate::health::store::HealthStore;
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, Reply, api};
use wagate_tests::sim_contract::{Checked, checked};

const USER: &str = "admin";
const PASSWORD: &str = "gowa-password-5d2f81";
const REGION: &str = "eu-west-1";

type Item = HashMap<String, AttributeValue>;

async fn sim() -> Checked {
    checked(
        gowa_sim::start(SimConfig::default().basic_auth(USER, PASSWORD))
            .await
            .expect("start simulator"),
    )
}

/// A tenant with its own webhook forwarding (`webhookWiring: manual`): migrations that wire
/// the target are tested in `onboarding.rs`.
fn config(primary: &str, region: Option<&str>) -> Value {
    let mut ep = json!({
        "baseUrl": primary,
        "credentials": {"type": "basic", "username": USER, "password": PASSWORD},
        "deviceId": "demo",
        "webhookWiring": "manual"
    });
    if let Some(r) = region {
        ep["region"] = json!(r);
    }
    json!({
        "provider": "gowa",
        "primary": ep,
        "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-a8c3e0"}]
    })
}

fn server(id: &str, url: &str, region: &str, capacity: u32) -> Value {
    json!({"serverId": id, "baseUrl": url, "provider": "gowa", "region": region, "capacity": capacity})
}

struct Env {
    api: Api,
}

impl Env {
    async fn new() -> Env {
        Env { api: api().await }
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
        let mut ev = ApiEvent::new(method, path).bearer(token);
        if let Some(b) = body {
            ev = ev.json(&b);
        }
        self.api.call(ev).await
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, &self.api.admin(), body).await
    }

    async fn register(&self, id: &str, url: &str, region: &str, capacity: u32) {
        let r = self
            .admin(
                "POST",
                "/admin/servers",
                Some(server(id, url, region, capacity)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    async fn tenant(&self, id: &str, body: Value) {
        let r = self
            .admin(
                "POST",
                &format!("/tenants/{id}/whatsapp-config"),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    async fn config(&self, id: &str) -> Value {
        let r = self
            .admin("GET", &format!("/tenants/{id}/whatsapp-config"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()
    }

    async fn scan(&self, table: &str) -> Vec<Item> {
        let client = aws_sdk_dynamodb::Client::new(&self.api.stack.sdk);
        let mut items = client
            .scan()
            .table_name(self.api.stack.env()[table].clone())
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        items.sort_by_key(|i| format!("{:?}", i.get("pk").or(i.get("jobId"))));
        items
    }

    /// Every table the new routes write, to prove a refusal changed nothing.
    async fn snapshot(&self) -> (Vec<Item>, Vec<Item>, Vec<Item>, usize) {
        let mut tenants = self.api.stored().await;
        tenants.sort_by_key(|i| format!("{:?}", i.get("tenantId")));
        (
            tenants,
            self.scan("SERVERS_TABLE").await,
            self.scan("MIGRATIONS_TABLE").await,
            self.scan("AUDIT_TABLE").await.len(),
        )
    }

    async fn audit_actions(&self, tenant: &str) -> Vec<String> {
        let r = self
            .api
            .call(
                ApiEvent::new("GET", &format!("/tenants/{tenant}/audit"))
                    .query("limit=200")
                    .bearer(&self.api.admin()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    }

    async fn health(&self, records: &[EndpointHealth]) {
        let env = self.api.stack.env();
        DynamoHealthStore::new(
            self.api.stack.dynamodb.clone(),
            env["TENANTS_TABLE"].clone(),
            env["ENDPOINTS_TABLE"].clone(),
            env["AUDIT_TABLE"].clone(),
        )
        .save_endpoints(records)
        .await
        .unwrap();
    }
}

fn health_record(key: &str, up: bool) -> EndpointHealth {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    EndpointHealth {
        endpoint_key: key.into(),
        provider: "gowa".into(),
        up,
        last_probe_at: now,
        latency_ms: 10.0,
        consecutive_failures: if up { 0 } else { 3 },
        consecutive_successes: if up { 5 } else { 0 },
        last_error: (!up).then(|| "could not connect to the server".into()),
        last_error_at: (!up).then_some(now),
        tenants: 1,
        active_tenants: 1,
        devices_total: Some(1),
        devices_connected: Some(1),
        expires_at: now.unix_timestamp() + 3600,
    }
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tenantId"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

// =====================================================================================
// Registry
// =====================================================================================

#[tokio::test]
async fn register_list_update_and_deregister_servers() {
    let e = Env::new().await;
    let (a, b) = (sim().await, sim().await);
    // Spelled with a trailing slash and an upper-case scheme: stored normalised.
    let spelled = format!("HTTP://{}/", a.base_url().trim_start_matches("http://"));
    let r = e
        .admin(
            "POST",
            "/admin/servers",
            Some(server("gowa-a", &spelled, REGION, 10)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["baseUrl"], a.base_url());
    assert_eq!(r.json()["version"], 1);
    e.register("gowa-b", &b.base_url(), REGION, 5).await;

    // A tenant on a (primary); the health check knows a only.
    e.tenant("acme", config(&a.base_url(), Some(REGION))).await;
    e.health(&[health_record(&a.base_url(), true)]).await;
    let r = e.admin("GET", "/admin/servers", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["serverId"], "gowa-a");
    assert_eq!(items[0]["tenants"], 1);
    assert_eq!(items[0]["activeTenants"], 1);
    assert_eq!(items[0]["room"], 9);
    assert_eq!(items[0]["health"]["up"], true);
    assert_eq!(items[1]["tenants"], 0);
    assert_eq!(items[1]["room"], 5);
    assert!(items[1].get("health").is_none());

    // Update: the version is required and checked.
    let path = "/admin/servers/gowa-b";
    let before = e.snapshot().await;
    for (body, status) in [
        (json!({"capacity": 7}), StatusCode::PRECONDITION_REQUIRED),
        (json!({"capacity": 7, "version": 9}), StatusCode::CONFLICT),
        (
            json!({"capacity": 0, "version": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"region": "EU West", "version": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"baseUrl": "http://x", "version": 1}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = e.admin("PUT", path, Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    let r = e
        .admin(
            "PUT",
            "/admin/servers/ghost",
            Some(json!({"capacity": 7, "version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(
        e.snapshot().await,
        before,
        "a refused update changed something"
    );
    let r = e
        .admin("PUT", path, Some(json!({"capacity": 7, "version": 1})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["capacity"], 7);
    assert_eq!(r.json()["version"], 2);

    // Deregister: refused while a tenant uses the server; unknown is 404.
    let before = e.snapshot().await;
    let r = e.admin("DELETE", "/admin/servers/gowa-a", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "server_in_use");
    let r = e.admin("DELETE", "/admin/servers/ghost", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(e.snapshot().await, before);
    let r = e.admin("DELETE", path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(r.text.is_empty());
    let r = e.admin("GET", "/admin/servers", None).await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    // Its base URL is free again.
    e.register("gowa-b2", &b.base_url(), REGION, 5).await;

    // Every registry change has its audit record (partition "#server/<id>"), no secrets.
    let audit = e.scan("AUDIT_TABLE").await;
    let actions: Vec<(String, String)> = audit
        .iter()
        .filter_map(|i| {
            let t = i["tenantId"].as_s().ok()?;
            t.starts_with("#server/")
                .then(|| (t.clone(), i["action"].as_s().unwrap().clone()))
        })
        .collect();
    for want in [
        ("#server/gowa-a", "register_server"),
        ("#server/gowa-b", "register_server"),
        ("#server/gowa-b", "update_server"),
        ("#server/gowa-b", "deregister_server"),
        ("#server/gowa-b2", "register_server"),
    ] {
        assert!(
            actions.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} missing: {actions:?}"
        );
    }
    assert_eq!(actions.len(), 5, "{actions:?}");
}

#[tokio::test]
async fn bad_registrations_are_refused_and_store_nothing() {
    let e = Env::new().await;
    let a = sim().await;
    e.register("gowa-a", &a.base_url(), REGION, 10).await;
    let before = e.snapshot().await;
    let cases = [
        (
            server("gowa-x", "http://10.0.0.7:3000", REGION, 10),
            StatusCode::BAD_REQUEST,
            "baseUrl",
        ),
        (
            server("gowa-x", "http://169.254.169.254", REGION, 10),
            StatusCode::BAD_REQUEST,
            "baseUrl",
        ),
        (
            server("gowa-x", "ftp://gowa.example.com", REGION, 10),
            StatusCode::BAD_REQUEST,
            "baseUrl",
        ),
        (
            server("gowa-x", "https://u:p@gowa.example.com", REGION, 10),
            StatusCode::BAD_REQUEST,
            "baseUrl",
        ),
        (
            server("gowa-x", "not a url", REGION, 10),
            StatusCode::BAD_REQUEST,
            "baseUrl",
        ),
        (
            server("gowa-x", "https://gowa.example.com", "EU_West", 10),
            StatusCode::BAD_REQUEST,
            "region",
        ),
        (
            server("gowa-x", "https://gowa.example.com", REGION, 0),
            StatusCode::BAD_REQUEST,
            "capacity",
        ),
        (
            server("gowa-x", "https://gowa.example.com", REGION, 100_001),
            StatusCode::BAD_REQUEST,
            "capacity",
        ),
        (
            server("-bad id", "https://gowa.example.com", REGION, 10),
            StatusCode::BAD_REQUEST,
            "serverId",
        ),
        (
            json!({"serverId": "x", "baseUrl": "https://gowa.example.com", "provider": "wppconnect", "region": REGION, "capacity": 1}),
            StatusCode::BAD_REQUEST,
            "provider",
        ),
        (
            json!({"serverId": "x", "baseUrl": "https://gowa.example.com", "provider": "gowa", "region": REGION, "capacity": 1, "extra": 1}),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (json!({"serverId": "x"}), StatusCode::BAD_REQUEST, ""),
        // Taken: the id, or the base URL under another spelling.
        (
            server("gowa-a", "https://other.example.com", REGION, 10),
            StatusCode::CONFLICT,
            "",
        ),
        (
            server("gowa-y", &format!("{}/", a.base_url()), REGION, 10),
            StatusCode::CONFLICT,
            "",
        ),
    ];
    for (body, status, field) in cases {
        let r = e.admin("POST", "/admin/servers", Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        if !field.is_empty() {
            assert_eq!(r.json()["fields"][0]["field"], field, "{}", r.text);
        }
    }
    let r = e
        .api
        .call(
            ApiEvent::new("POST", "/admin/servers")
                .bearer(&e.api.admin())
                .header("content-type", "text/plain")
                .raw_body(server("gowa-z", "https://z.example.com", REGION, 1).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    let r = e.admin("PATCH", "/admin/servers", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        e.snapshot().await,
        before,
        "a refused registration stored something"
    );
}

// =====================================================================================
// Placement
// =====================================================================================

#[tokio::test]
async fn placement_picks_the_least_loaded_healthy_server_of_the_region_with_room() {
    let e = Env::new().await;
    let (s1, s2, s3, s4, s5) = (
        sim().await,
        sim().await,
        sim().await,
        sim().await,
        sim().await,
    );
    // s1: 2 of 10, up. s2: 1 of 10 but down. s3: empty, other region. s4: full.
    e.register("p1", &s1.base_url(), REGION, 10).await;
    e.register("p2", &s2.base_url(), REGION, 10).await;
    e.register("p3", &s3.base_url(), "us-east-1", 10).await;
    e.register("p4", &s4.base_url(), REGION, 1).await;
    for (t, s) in [("t1", &s1), ("t2", &s1), ("t3", &s2), ("t4", &s4)] {
        e.tenant(t, config(&s.base_url(), None)).await;
    }
    e.health(&[
        health_record(&s1.base_url(), true),
        health_record(&s2.base_url(), false),
        health_record(&s3.base_url(), true),
        health_record(&s4.base_url(), true),
    ])
    .await;
    let before = e.snapshot().await;
    let place = |region: &str| json!({"region": region});
    let r = e
        .admin("POST", "/admin/placement", Some(place(REGION)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v["serverId"], "p1");
    assert_eq!(v["baseUrl"], s1.base_url());
    assert_eq!(v["tenants"], 2);
    assert_eq!(v["healthyBy"], "health_record");

    // A new empty server the health check has not seen yet: live-probed, and less loaded.
    e.register("p5", &s5.base_url(), REGION, 10).await;
    let r = e
        .admin("POST", "/admin/placement", Some(place(REGION)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["serverId"], "p5");
    assert_eq!(r.json()["healthyBy"], "live_probe");
    // The live probe asks only GET /health: the registry holds no credentials, so an
    // authenticated route could only be answered 401 (and breaks GOWA's spec).
    let probed: Vec<String> = s5.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(probed, vec!["/health"]);
    // Down: back to p1.
    s5.shutdown().await;
    let r = e
        .admin("POST", "/admin/placement", Some(place(REGION)))
        .await;
    assert_eq!(r.json()["serverId"], "p1", "{}", r.text);
    let r = e
        .admin("POST", "/admin/placement", Some(place("us-east-1")))
        .await;
    assert_eq!(r.json()["serverId"], "p3", "{}", r.text);

    // None: no server in the region, or none healthy with room.
    let r = e
        .admin("POST", "/admin/placement", Some(place("ap-south-1")))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "no_server_available");
    e.health(&[health_record(&s1.base_url(), false)]).await;
    let r = e
        .admin("POST", "/admin/placement", Some(place(REGION)))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.json()["message"].as_str().unwrap().contains("p1"),
        "{}",
        r.text
    );
    // Bad input.
    for body in [
        json!({"region": "EU"}),
        json!({}),
        json!({"region": REGION, "x": 1}),
    ] {
        let r = e
            .admin("POST", "/admin/placement", Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }
    let after = e.snapshot().await;
    assert_eq!(
        (after.0, after.2, after.3),
        (before.0, before.2, before.3 + 1),
        "placement wrote something besides p5's registration"
    );
}

// =====================================================================================
// Migration
// =====================================================================================

/// Servers `a` and `b` in eu-west-1, `c` in us-east-1; tenants t1..t4 on `a` (t3 pinned to
/// us-east-1, the rest to eu-west-1 or unpinned), `other` on `b`.
struct Fleet {
    e: Env,
    a: Checked,
    b: Checked,
}

async fn fleet() -> Fleet {
    let e = Env::new().await;
    let (a, b) = (sim().await, sim().await);
    e.register("a", &a.base_url(), REGION, 100).await;
    e.register("b", &b.base_url(), REGION, 100).await;
    e.tenant("t1", config(&a.base_url(), Some(REGION))).await;
    e.tenant("t2", config(&a.base_url(), None)).await;
    e.tenant("t3", config(&a.base_url(), Some("us-east-1")))
        .await;
    e.tenant("t4", config(&a.base_url(), Some(REGION))).await;
    e.tenant("other", config(&b.base_url(), Some(REGION))).await;
    Fleet { e, a, b }
}

fn job(id: &str) -> Value {
    json!({"jobId": id, "from": "a", "to": "b"})
}

#[tokio::test]
async fn a_dry_run_plans_every_tenant_and_writes_nothing() {
    let f = fleet().await;
    let before = f.e.snapshot().await;
    let mut body = job("j1");
    body["dryRun"] = json!(true);
    let r = f.e.admin("POST", "/admin/migrations", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v["state"], "planned");
    assert_eq!(v["dryRun"], true);
    assert_eq!(
        outcomes(&v),
        pairs(&[
            ("t1", "would_move"),
            ("t2", "would_move"),
            ("t3", "refused_region"),
            ("t4", "would_move")
        ])
    );
    assert!(
        v["results"][2]["reason"]
            .as_str()
            .unwrap()
            .contains("us-east-1")
    );
    assert_eq!(v["results"][0]["roles"], json!(["primary"]));
    // A named list: a tenant already on the target is skipped.
    let body = json!({"jobId": "j1", "from": "a", "to": "b", "tenantIds": ["other", "t2"], "dryRun": true});
    let r = f.e.admin("POST", "/admin/migrations", Some(body)).await;
    assert_eq!(
        outcomes(&r.json()),
        pairs(&[("other", "skipped"), ("t2", "would_move")]),
        "{}",
        r.text
    );
    assert_eq!(f.e.snapshot().await, before, "a dry run wrote something");
    assert!(
        f.b.requests_to("/health").is_empty(),
        "a dry run tested the target"
    );
    let r = f.e.admin("GET", "/admin/migrations/j1", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn an_interrupted_migration_resumes_without_moving_anyone_twice_or_back() {
    let f = fleet().await;
    let (a, b) = (f.a.base_url(), f.b.base_url());
    // Stop after two tenants.
    let mut body = job("j2");
    body["limit"] = json!(2);
    let r = f.e.admin("POST", "/admin/migrations", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v["state"], "running");
    assert_eq!(
        outcomes(&v),
        pairs(&[
            ("t1", "moved"),
            ("t2", "moved"),
            ("t3", "pending"),
            ("t4", "pending")
        ])
    );
    assert_eq!(v["targetTest"]["ok"], true);
    assert_eq!(v["results"][0]["versionBefore"], 1);
    assert_eq!(v["results"][0]["versionAfter"], 2);
    assert_eq!(f.e.config("t1").await["primary"]["baseUrl"], b);
    assert_eq!(f.e.config("t3").await["primary"]["baseUrl"], a);
    assert_eq!(f.e.config("t4").await["primary"]["baseUrl"], a);

    // An interruption between t2's write and its record: the record loses t2's result.
    let client = aws_sdk_dynamodb::Client::new(&f.e.api.stack.sdk);
    client
        .update_item()
        .table_name(f.e.api.stack.env()["MIGRATIONS_TABLE"].clone())
        .key("jobId", AttributeValue::S("j2".into()))
        .update_expression("REMOVE results.t2")
        .send()
        .await
        .unwrap();

    // Resume: t2 is recognised (this job's audit record), not written again.
    let r =
        f.e.admin("POST", "/admin/migrations", Some(job("j2")))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(
        outcomes(&v),
        pairs(&[
            ("t1", "moved"),
            ("t2", "moved"),
            ("t3", "refused_region"),
            ("t4", "moved")
        ])
    );
    assert_eq!(v["state"], "completed");
    assert_eq!(
        v["results"][1]["reason"], "moved by an earlier run of this job",
        "{v}"
    );
    assert!(v["results"][0].get("reason").is_none(), "{v}");
    for t in ["t1", "t2", "t4"] {
        let c = f.e.config(t).await;
        assert_eq!(c["primary"]["baseUrl"], b, "{t}");
        assert_eq!(c["version"], 2, "{t} written more than once");
        let actions = f.e.audit_actions(t).await;
        assert_eq!(
            actions.iter().filter(|a| *a == "migrate").count(),
            1,
            "{t}: {actions:?}"
        );
    }
    // Cross-region: t3 stays, unchanged.
    let t3 = f.e.config("t3").await;
    assert_eq!(
        (t3["primary"]["baseUrl"].clone(), t3["version"].clone()),
        (json!(a), json!(1))
    );
    // The target was tested once for the whole job.
    assert_eq!(f.b.requests_to("/health").len(), 1);

    // Again: nothing to do, nothing written.
    let before = f.e.snapshot().await;
    let r =
        f.e.admin("POST", "/admin/migrations", Some(job("j2")))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["state"], "completed");
    let after = f.e.snapshot().await;
    assert_eq!((&after.0, after.3), (&before.0, before.3));

    // Moved back by hand: the job never moves it again.
    let mut back = config(&a, Some(REGION));
    back["version"] = json!(2);
    let r =
        f.e.admin("PUT", "/tenants/t1/whatsapp-config", Some(back))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r =
        f.e.admin("POST", "/admin/migrations", Some(job("j2")))
            .await;
    assert_eq!(outcomes(&r.json())[0], ("t1".into(), "moved".into()));
    let t1 = f.e.config("t1").await;
    assert_eq!(
        (t1["primary"]["baseUrl"].clone(), t1["version"].clone()),
        (json!(a), json!(3))
    );

    // The recorded job; the same id with other parameters is refused.
    let r = f.e.admin("GET", "/admin/migrations/j2", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["state"], "completed");
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 4);
    let before = f.e.snapshot().await;
    let r =
        f.e.admin(
            "POST",
            "/admin/migrations",
            Some(json!({"jobId": "j2", "from": "a", "to": "b", "tenantIds": ["t1"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "job_mismatch");
    assert_eq!(f.e.snapshot().await, before);
}

#[tokio::test]
async fn a_target_that_fails_the_connection_test_moves_nobody() {
    let f = fleet().await;
    // A server whose basic auth the tenants' credentials do not pass.
    let wrong = gowa_sim::start(SimConfig::default().basic_auth(USER, "another-password-1"))
        .await
        .unwrap();
    f.e.register("w", &wrong.base_url(), REGION, 100).await;
    let tenants = f.e.snapshot().await.0;
    let r =
        f.e.admin(
            "POST",
            "/admin/migrations",
            Some(json!({"jobId": "j3", "from": "a", "to": "w"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json()["error"], "connection_test_failed");
    assert_eq!(r.json()["test"]["ok"], false);
    assert!(!r.text.contains(PASSWORD));
    assert_eq!(
        f.e.snapshot().await.0,
        tenants,
        "a tenant moved to an untested server"
    );
    let r = f.e.admin("GET", "/admin/migrations/j3", None).await;
    assert_eq!(r.json()["targetTest"]["ok"], false, "{}", r.text);
    assert_eq!(r.json()["state"], "running");
}

#[tokio::test]
async fn bad_migration_requests_are_refused_and_write_nothing() {
    let f = fleet().await;
    let before = f.e.snapshot().await;
    for (body, status) in [
        (
            json!({"jobId": "j", "from": "a", "to": "a"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"jobId": "bad/id", "from": "a", "to": "b"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"jobId": "j", "from": "a", "to": "b", "tenantIds": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"jobId": "j", "from": "a", "to": "b", "tenantIds": ["t1", "t1"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"jobId": "j", "from": "a", "to": "b", "tenantIds": ["no/pe"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"jobId": "j", "from": "a", "to": "b", "limit": 0}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"jobId": "j", "from": "a", "to": "b", "x": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"jobId": "j", "from": "a"}), StatusCode::BAD_REQUEST),
        (
            json!({"jobId": "j", "from": "a", "to": "ghost"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"jobId": "j", "from": "ghost", "to": "b"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r =
            f.e.admin("POST", "/admin/migrations", Some(body.clone()))
                .await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    let r = f.e.admin("GET", "/admin/migrations", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(f.e.snapshot().await, before);
    assert!(f.b.requests().is_empty());
}

#[tokio::test]
async fn tenant_tokens_get_403_on_every_registry_and_migration_route() {
    let f = fleet().await;
    let token = f.e.api.tenant("t1");
    // A job to read.
    let mut body = job("j4");
    body["tenantIds"] = json!(["t2"]);
    let r = f.e.admin("POST", "/admin/migrations", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let before = f.e.snapshot().await;
    for (m, p, b) in [
        ("GET", "/admin/servers", None),
        (
            "POST",
            "/admin/servers",
            Some(server("x", "https://x.example.com", REGION, 1)),
        ),
        (
            "PUT",
            "/admin/servers/a",
            Some(json!({"capacity": 1, "version": 1})),
        ),
        ("DELETE", "/admin/servers/b", None),
        ("PATCH", "/admin/servers/b", None),
        ("POST", "/admin/placement", Some(json!({"region": REGION}))),
        ("POST", "/admin/migrations", Some(job("j5"))),
        (
            "POST",
            "/admin/migrations",
            Some(json!({"jobId": "j5", "from": "a", "to": "b", "dryRun": true})),
        ),
        ("GET", "/admin/migrations/j4", None),
    ] {
        let r = f.e.call(m, p, &token, b).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {p}: {}", r.text);
        assert_eq!(r.json()["error"], "forbidden");
        assert!(!r.text.contains("127.0.0.1"), "{}", r.text);
    }
    let r = f.e.api.call(ApiEvent::new("GET", "/admin/servers")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.e.snapshot().await, before);
}

#[tokio::test]
async fn a_target_server_of_another_kind_takes_nobody_and_nothing_changes() {
    // Found by schemathesis: a GOWA tenant moved onto a server registered as WAHA would keep
    // its GOWA credentials and device, and wagate would call WAHA's routes with them.
    let e = Env::new().await;
    let (a, b) = (sim().await, sim().await);
    e.register("a", &a.base_url(), REGION, 100).await;
    let mut waha = server("b", &b.base_url(), REGION, 100);
    waha["provider"] = json!("waha");
    let r = e.admin("POST", "/admin/servers", Some(waha)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    e.tenant("t1", config(&a.base_url(), Some(REGION))).await;
    let before = e.snapshot().await;
    for dry_run in [true, false] {
        let mut body = job(if dry_run { "k1" } else { "k2" });
        body["dryRun"] = json!(dry_run);
        let r = e.admin("POST", "/admin/migrations", Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let v = r.json();
        assert_eq!(outcomes(&v), pairs(&[("t1", "failed")]), "{v}");
        let reason = v["results"][0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("gowa server") && reason.contains("target server is waha"),
            "{reason}"
        );
    }
    let after = e.snapshot().await;
    assert_eq!(after.0, before.0, "a tenant changed");
    assert!(
        b.requests().is_empty(),
        "the server of another kind was called"
    );
}

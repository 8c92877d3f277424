//! `GET /tenants/{tenantId}/analytics` against moto: records written the way the sender
//! writes them (lock, then the outcome with its send latency) and moved by receipts the way
//! the ingress moves them (by provider message id), across two endpoints of different kinds
//! (WAHA primary, GOWA backup), give the exact counts, rates and latency percentiles of each
//! window; another tenant's records never count, and every answer validates against
//! openapi.yaml.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wagate::delivery::BeginRequest;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::delivery::store::{DeliveryWriter, ReceiptRecorder};
use wagate::outbound::OutboundMessage;
use wagate::outbound::ratelimit::RateWindow;
use wagate::tenant::{EndpointRole, TenantId};
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, Reply, api};
use wagate_tests::spec::{check, spec};

const ROUTE: &str = "/tenants/{tenantId}/analytics";
const WAHA: &str = "http://127.0.0.1:3000";
const GOWA: &str = "http://127.0.0.1:3001";
const OTHERS: &str = "http://127.0.0.1:3999";

fn store(api: &Api) -> DynamoDeliveryStore {
    let env = api.stack.env();
    DynamoDeliveryStore::new(
        api.stack.dynamodb.clone(),
        env["MESSAGES_TABLE"].clone(),
        env["RATE_LIMITS_TABLE"].clone(),
        Duration::from_secs(15 * 24 * 3600),
    )
}

/// What became of a seeded message.
#[derive(Clone, Copy)]
enum Fate {
    /// Sent by the endpoint in `ms`, then the receipt (`delivered`, `read`) if any.
    Sent(u64, Option<&'static str>),
    Failed,
    Unknown,
    /// Still locked by the sender.
    Pending,
}

struct Seed {
    tenant: &'static str,
    key: &'static str,
    /// How long before now the sender first took it.
    ago: Duration,
    endpoint: &'static str,
    role: EndpointRole,
    fate: Fate,
}

async fn seed(store: &DynamoDeliveryStore, s: &Seed, now: OffsetDateTime) {
    let msg: OutboundMessage = serde_json::from_value(json!({
        "tenantId": s.tenant, "idempotencyKey": s.key, "to": "+6281111111111",
        "content": {"type": "text", "body": "Booking confirmed"}
    }))
    .unwrap();
    let at = now - s.ago;
    let results = store
        .begin_many(
            &[BeginRequest {
                msg: &msg,
                sqs_message_id: "sqs-1",
                owner: "owner-1",
                window: RateWindow::at(&msg.tenant_id, 1000, at),
            }],
            at + Duration::from_secs(30),
            at,
        )
        .await;
    let Ok(wagate::delivery::Begin::Acquired(lock)) = &results[0] else {
        panic!("lock not acquired: {results:?}");
    };
    let tenant: TenantId = s.tenant.parse().unwrap();
    let written = match s.fate {
        Fate::Sent(ms, receipt) => {
            let id = format!("wamid.{}", s.key);
            let ok = store
                .mark_sent(lock, &tenant, &id, s.endpoint, s.role, Some(ms), at)
                .await
                .unwrap();
            if let Some(state) = receipt {
                store.apply_receipt(&tenant, &id, state, at).await.unwrap();
            }
            ok
        }
        Fate::Failed => store
            .mark_failed(
                lock,
                "permanent",
                "invalid recipient",
                Some((s.endpoint, s.role)),
                at,
            )
            .await
            .unwrap(),
        Fate::Unknown => store
            .mark_unknown(lock, "timeout after sending", s.endpoint, s.role, at)
            .await
            .unwrap(),
        Fate::Pending => true,
    };
    assert!(written, "{}", s.key);
}

const MIN: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

fn seeds() -> Vec<Seed> {
    use EndpointRole::{Backup, Primary};
    use Fate::*;
    let s = |tenant, key, ago: u64, endpoint, role, fate| Seed {
        tenant,
        key,
        ago: Duration::from_secs(ago),
        endpoint,
        role,
        fate,
    };
    vec![
        // The last hour.
        s(
            "acme",
            "a1",
            10 * MIN,
            WAHA,
            Primary,
            Sent(100, Some("read")),
        ),
        s(
            "acme",
            "a2",
            20 * MIN,
            WAHA,
            Primary,
            Sent(200, Some("delivered")),
        ),
        s("acme", "a3", 30 * MIN, WAHA, Primary, Sent(300, None)),
        s("acme", "b1", 15 * MIN, GOWA, Backup, Unknown),
        s("acme", "p1", 5 * MIN, WAHA, Primary, Pending),
        // The last day.
        s(
            "acme",
            "a4",
            5 * HOUR,
            WAHA,
            Primary,
            Sent(400, Some("delivered")),
        ),
        s("acme", "a5", 5 * HOUR + MIN, WAHA, Primary, Failed),
        // The last week.
        s("acme", "b2", 2 * DAY, GOWA, Backup, Sent(50, Some("read"))),
        s("acme", "b3", 3 * DAY, GOWA, Backup, Sent(70, None)),
        // Older than every window.
        s(
            "acme",
            "old",
            8 * DAY,
            WAHA,
            Primary,
            Sent(9_000, Some("read")),
        ),
        // Another tenant's traffic, on a server acme never used.
        s(
            "other",
            "o1",
            10 * MIN,
            OTHERS,
            Primary,
            Sent(5, Some("read")),
        ),
        s("other", "o2", 20 * MIN, OTHERS, Primary, Failed),
        s("other", "o3", 2 * DAY, OTHERS, Primary, Unknown),
    ]
}

/// acme: WAHA primary, GOWA backup (each endpoint its own kind), wiring manual so no server
/// is needed to save it.
async fn tenant(api: &Api) {
    let r = api
        .create(&json!({
            "provider": "waha",
            "primary": {
                "baseUrl": WAHA,
                "credentials": {"type": "apiKey", "key": "waha-api-key-91d0aa"},
                "webhookWiring": "manual"
            },
            "backup": {
                "baseUrl": GOWA,
                "provider": "gowa",
                "deviceId": "demo",
                "credentials": {"type": "basic", "username": "admin", "password": "gowa-pass-1"},
                "webhookWiring": "manual"
            },
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-a8c3e0"}],
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn seeded() -> Api {
    let api = api().await;
    tenant(&api).await;
    let store = store(&api);
    let now = OffsetDateTime::now_utc();
    for s in seeds() {
        seed(&store, &s, now).await;
    }
    api
}

async fn analytics(api: &Api, tenant: &str, token: &str) -> Reply {
    let r = api
        .call(ApiEvent::new("GET", &format!("/tenants/{tenant}/analytics")).bearer(token))
        .await;
    check(&spec(), "GET", ROUTE, &r);
    r
}

fn window<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == name)
        .unwrap_or_else(|| panic!("no window {name}: {body}"))
}

fn endpoint<'a>(w: &'a Value, base: &str) -> &'a Value {
    w["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == base)
        .unwrap_or_else(|| panic!("no endpoint {base}: {w}"))
}

/// `[sent, delivered, read, failed, unknown, pending]`.
fn counts(s: &Value) -> [u64; 6] {
    ["sent", "delivered", "read", "failed", "unknown", "pending"]
        .map(|k| s[k].as_u64().unwrap_or_else(|| panic!("{k}: {s}")))
}

/// `[samples, p50, p90, p99]` (null as `u64::MAX`).
fn latency(s: &Value) -> [u64; 4] {
    ["samples", "p50", "p90", "p99"].map(|k| s["latencyMs"][k].as_u64().unwrap_or(u64::MAX))
}

fn rates(s: &Value) -> (Option<f64>, Option<f64>) {
    (s["deliveryRate"].as_f64(), s["readRate"].as_f64())
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[tokio::test]
async fn counts_rates_and_percentiles_per_window_for_the_tenant_and_each_endpoint() {
    let api = seeded().await;

    let r = analytics(&api, "acme", &api.tenant("acme")).await;

    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(body["tenantId"], "acme");
    assert_eq!(body["truncated"], false);
    assert_eq!(
        body["recordsRead"], 9,
        "acme's records of the last 7 days only"
    );

    // Last hour: a1 (read), a2 (delivered), a3 (sent) on WAHA, b1 unknown on GOWA, p1 pending.
    let h = window(&body, "1h");
    assert_eq!(counts(&h["tenant"]), [3, 2, 1, 0, 1, 1]);
    let (d, rd) = rates(&h["tenant"]);
    assert!(close(d, 2.0 / 3.0) && close(rd, 1.0 / 3.0), "{h}");
    assert_eq!(latency(&h["tenant"]), [3, 200, 300, 300]);
    let waha = endpoint(h, WAHA);
    assert_eq!(waha["kind"], "waha");
    assert_eq!(waha["role"], "primary");
    assert_eq!(counts(waha), [3, 2, 1, 0, 0, 0], "p1 has no endpoint yet");
    let gowa = endpoint(h, GOWA);
    assert_eq!(gowa["kind"], "gowa");
    assert_eq!(gowa["role"], "backup");
    assert_eq!(counts(gowa), [0, 0, 0, 0, 1, 0]);
    assert_eq!(rates(gowa), (None, None), "nothing sent: no rate");
    assert_eq!(latency(gowa), [0, u64::MAX, u64::MAX, u64::MAX]);

    // Last day: + a4 (delivered, 400 ms) and a5 (failed) on WAHA.
    let d24 = window(&body, "24h");
    assert_eq!(counts(&d24["tenant"]), [4, 3, 1, 1, 1, 1]);
    let (d, rd) = rates(&d24["tenant"]);
    assert!(close(d, 0.75) && close(rd, 0.25), "{d24}");
    assert_eq!(latency(&d24["tenant"]), [4, 200, 400, 400]);
    assert_eq!(counts(endpoint(d24, WAHA)), [4, 3, 1, 1, 0, 0]);

    // Last week: + b2 (read, 50 ms) and b3 (sent, 70 ms) on GOWA; "old" is in no window.
    let w = window(&body, "7d");
    assert_eq!(counts(&w["tenant"]), [6, 4, 2, 1, 1, 1]);
    let (d, rd) = rates(&w["tenant"]);
    assert!(close(d, 4.0 / 6.0) && close(rd, 2.0 / 6.0), "{w}");
    assert_eq!(latency(&w["tenant"]), [6, 100, 400, 400]);
    let gowa = endpoint(w, GOWA);
    assert_eq!(counts(gowa), [2, 1, 1, 0, 1, 0]);
    assert!(close(rates(gowa).0, 0.5) && close(rates(gowa).1, 0.5));
    assert_eq!(latency(gowa), [2, 50, 70, 70]);
    assert_eq!(w["endpoints"].as_array().unwrap().len(), 2);

    // The chart's last 24 hours: 4 sent, 1 failed, 1 unknown in all.
    let hourly = body["hourly"].as_array().unwrap();
    assert_eq!(hourly.len(), 24);
    let sum = |k: &str| hourly.iter().map(|b| b[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("sent"), sum("failed"), sum("unknown")), (4, 1, 1));
}

#[tokio::test]
async fn another_tenants_traffic_never_appears_and_its_token_is_refused() {
    let api = seeded().await;

    let mine = analytics(&api, "acme", &api.tenant("acme")).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert!(!mine.text.contains(OTHERS), "{}", mine.text);

    let theirs = analytics(&api, "acme", &api.tenant("other")).await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN, "{}", theirs.text);
    assert!(!theirs.text.contains(WAHA));

    // The other tenant sees its own, and only its own: one endpoint, no kind (no config).
    let other = analytics(&api, "other", &api.tenant("other")).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    let body = other.json();
    let w = window(&body, "7d");
    assert_eq!(counts(&w["tenant"]), [1, 1, 1, 1, 1, 0]);
    assert_eq!(w["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(endpoint(w, OTHERS)["kind"], Value::Null);
    assert!(!other.text.contains(WAHA) && !other.text.contains(GOWA));
}

#[tokio::test]
async fn the_admin_reads_any_tenant_and_a_tenant_without_traffic_gets_empty_windows() {
    let api = api().await;
    tenant(&api).await;

    let r = analytics(&api, "acme", &api.admin()).await;

    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(body["recordsRead"], 0);
    for name in ["1h", "24h", "7d"] {
        let w = window(&body, name);
        assert_eq!(counts(&w["tenant"]), [0; 6]);
        assert_eq!(rates(&w["tenant"]), (None, None));
        assert!(w["endpoints"].as_array().unwrap().is_empty());
    }
}

//! Tenant isolation as one suite (issue 17): every way one tenant could reach another's
//! data, or anyone reach a tenant's without a valid token, is refused with the exact
//! documented status, and nothing changes: no item written, no audit record, no secret
//! sealed, nothing enqueued, nothing sent to a WhatsApp server, no 5xx.
//!
//! - The config API, route by route, **as functions/config-api/openapi.yaml lists them** (a
//!   route added to the spec is walked without touching this file; the walk counts the spec's
//!   operations independently and fails on any it did not cover): every tenant-scoped route
//!   (`{tenantId}` in the path) with another tenant's token, every admin route (any other
//!   authenticated route) with a tenant token, and every authenticated route with forged
//!   tokens (alg `none`, HS256 keyed with the public key, a foreign key, a foreign key under
//!   our `kid`, expired, edited claims, edited signature, wrong issuer, wrong audience, none,
//!   not a bearer token). Then the same requests with the rightful token, to prove the
//!   refusals were about the caller (none of those answers is 401, 403 or 5xx).
//! - The webhook ingress: a webhook signed with another tenant's secret.
//! - A sealed secret moved into another tenant's item (KMS binds every ciphertext to its
//!   tenant): through the config API, the ingress and the outbound sender.
//!
//! The config API and the ingress run in-process on real API Gateway v2 events, the sender on
//! SQS events; DynamoDB, KMS and SQS are moto_server, the WhatsApp servers GOWA simulators.

mod outbound_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use gowa_sim::{SimConfig, SimHandle};
use http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::inbound::signature::sign_sha256;
use wagate::secrets::KmsSealer;
use wagate::tenant::cache::ConfigCache;
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate_devstack::{LocalIssuer, TokenSpec};
use wagate_tests::api::{Api, Reply, api};
use wagate_tests::spec::spec;
use wagate_tests::{ApiEvent, Stack, drain_queue};

const USER: &str = "admin";
const ACME_PASSWORD: &str = "acme-gowa-password-5d2f81";
const BETA_PASSWORD: &str = "beta-gowa-password-77e0c4";
const ACME_WEBHOOK_SECRET: &str = "acme-webhook-secret-a8c3e0";
const BETA_WEBHOOK_SECRET: &str = "beta-webhook-secret-19f7d2";

/// Values for the path parameters of the spec's routes (any other parameter gets `x1`).
const PATH_VALUES: &[(&str, &str)] = &[
    ("tenantId", "acme"),
    ("serverId", "s1"),
    ("jobId", "j1"),
    ("idempotencyKey", "k1"),
];

// =====================================================================================
// The spec's routes
// =====================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `security: []`: no token needed (the page holds no data).
    Public,
    /// A `{tenantId}` route: that tenant's token, or an admin's.
    Tenant,
    /// Any other authenticated route: admins only (the spec's own rule: "`wagate/admin` every
    /// tenant and the admin routes").
    Admin,
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    template: String,
    scope: Scope,
    has_body: bool,
}

impl Route {
    /// The route's path with `tenant` in it and the other parameters filled in.
    fn path(&self, tenant: &str) -> String {
        let mut path = self.template.replace("{tenantId}", tenant);
        while let Some(start) = path.find('{') {
            let end = path[start..].find('}').expect("a closed path parameter") + start;
            let name = &path[start + 1..end];
            let value = PATH_VALUES
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("x1", |(_, v)| v);
            path.replace_range(start..=end, value);
        }
        path
    }

    fn event(&self, tenant: &str) -> ApiEvent {
        let ev = ApiEvent::new(&self.method, &self.path(tenant));
        // A body the route would take if the caller were allowed: the refusal must come
        // before the body is read.
        if self.has_body {
            ev.json(&json!({}))
        } else {
            ev
        }
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation of the spec, classified.
fn routes(doc: &Value) -> Vec<Route> {
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let scope = if op.get("security") == Some(&json!([])) {
                Scope::Public
            } else if template.contains("{tenantId}") {
                Scope::Tenant
            } else {
                Scope::Admin
            };
            out.push(Route {
                method: method.to_uppercase(),
                template: template.clone(),
                scope,
                has_body: op.get("requestBody").is_some(),
            });
        }
    }
    out
}

/// The spec's operation count, taken from the YAML text itself (not from [`routes`]): an
/// operation is a method key nested right under a `/…` path key.
fn operations_in_spec_text() -> usize {
    let text = std::fs::read_to_string(
        wagate_tests::workspace_root().join("functions/config-api/openapi.yaml"),
    )
    .expect("openapi.yaml");
    let mut in_paths = false;
    let mut in_path = false;
    let mut count = 0;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let key = line.trim_start().split(':').next().unwrap_or("");
        match indent {
            0 if !line.trim().is_empty() => in_paths = key == "paths",
            2 if in_paths => in_path = key.starts_with('/'),
            4 if in_paths && in_path && METHODS.contains(&key) => count += 1,
            _ => {}
        }
    }
    count
}

// =====================================================================================
// Forged tokens
// =====================================================================================

fn segments(token: &str) -> [String; 3] {
    let mut it = token.split('.').map(str::to_string);
    let parts = [
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap_or_default(),
    ];
    assert!(it.next().is_none(), "a JWT has three segments");
    parts
}

fn b64json(v: &Value) -> String {
    B64URL.encode(serde_json::to_vec(v).unwrap())
}

/// Tokens that must never authenticate, each with the error code its 401 carries. Each
/// claims the most it can: an admin's scope.
fn forged_tokens(issuer: &LocalIssuer) -> Vec<(&'static str, Option<String>, &'static str)> {
    let admin = TokenSpec::admin();
    let genuine = issuer.token(&admin);
    let [header, _, signature] = segments(&genuine);
    let admin_claims = serde_json::to_value(admin.claims()).unwrap();
    let foreign = LocalIssuer::generate();
    let [_, foreign_claims, foreign_signature] = segments(&foreign.token(&admin));
    // A tenant's genuine token whose claims are rewritten to an admin's.
    let [t_header, _, t_signature] = segments(&issuer.token(&TokenSpec::tenant("beta")));
    let mut edited = admin_claims.clone();
    edited["sub"] = json!("local-tenant-beta");
    // A signature with one byte changed (in the middle: the last character carries padding).
    let mut sig = B64URL.decode(&signature).unwrap();
    sig[10] ^= 0x01;
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(issuer.kid().to_string());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &admin_claims,
        &jsonwebtoken::EncodingKey::from_secret(issuer.jwks_json().as_bytes()).unwrap(),
    )
    .unwrap();
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": issuer.kid()});
    vec![
        (
            "alg none",
            Some(format!(
                "Bearer {}.{}.",
                b64json(&none_header),
                b64json(&admin_claims)
            )),
            "unauthorized",
        ),
        (
            "HS256 keyed with the public JWK",
            Some(format!("Bearer {hs256}")),
            "unauthorized",
        ),
        (
            "a foreign key",
            Some(format!("Bearer {}", foreign.token(&admin))),
            "unauthorized",
        ),
        (
            "a foreign key under our kid",
            Some(format!(
                "Bearer {header}.{foreign_claims}.{foreign_signature}"
            )),
            "unauthorized",
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                issuer.token(&TokenSpec::admin().ttl(time::Duration::hours(-1)))
            )),
            "token_expired",
        ),
        (
            "a tenant's token with its claims edited to an admin's",
            Some(format!(
                "Bearer {t_header}.{}.{t_signature}",
                b64json(&edited)
            )),
            "unauthorized",
        ),
        (
            "an edited signature",
            Some(format!(
                "Bearer {header}.{}.{}",
                b64json(&admin_claims),
                B64URL.encode(&sig)
            )),
            "unauthorized",
        ),
        (
            "a wrong issuer",
            Some(format!(
                "Bearer {}",
                issuer.token(&TokenSpec::admin().issuer("https://issuer.example"))
            )),
            "unauthorized",
        ),
        (
            "a wrong audience",
            Some(format!(
                "Bearer {}",
                issuer.token(&TokenSpec::admin().audience("another-api"))
            )),
            "unauthorized",
        ),
        ("no token", None, "unauthorized"),
        (
            "not a bearer token",
            Some("Basic YWRtaW46YWRtaW4=".into()),
            "unauthorized",
        ),
    ]
}

// =====================================================================================
// What must not change
// =====================================================================================

/// Every item of every table the config API, the ingress and the sender write, the KMS
/// seals made, and the requests the simulators received.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tables: BTreeMap<String, Vec<String>>,
    kms_encrypts: usize,
    sim_requests: Vec<usize>,
}

async fn snapshot(stack: &Stack, sims: &[&SimHandle]) -> Snapshot {
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let mut tables = BTreeMap::new();
    for (var, name) in stack.env() {
        if !var.ends_with("_TABLE") {
            continue;
        }
        let mut items: Vec<String> = client
            .scan()
            .table_name(&name)
            .send()
            .await
            .expect("scan")
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| canonical(&AttributeValue::M(i)))
            .collect();
        items.sort();
        tables.insert(var, items);
    }
    Snapshot {
        tables,
        kms_encrypts: stack.counter.count_op("KMS", "Encrypt"),
        sim_requests: sims.iter().map(|s| s.requests().len()).collect(),
    }
}

/// An item as text, every map's keys in order (the SDK's maps have none).
fn canonical(v: &AttributeValue) -> String {
    match v {
        AttributeValue::M(m) => {
            let fields: BTreeMap<&String, String> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            format!("{fields:?}")
        }
        AttributeValue::L(l) => format!("{:?}", l.iter().map(canonical).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    }
}

async fn sim(password: &str) -> SimHandle {
    gowa_sim::start(SimConfig::default().basic_auth(USER, password))
        .await
        .expect("start simulator")
}

fn config(base_url: &str, password: &str, webhook_secret: &str) -> Value {
    json!({
        "provider": "gowa",
        "primary": {
            "baseUrl": base_url,
            "credentials": {"type": "basic", "username": USER, "password": password},
            "deviceId": gowa_sim::DEFAULT_DEVICE_ID,
            "region": "eu-west-1"
        },
        "webhookSecrets": [{"id": "s1", "secret": webhook_secret}],
        "isActive": true
    })
}

/// Two tenants (`acme`, `beta`), each on its own simulator, created through the API.
struct Tenants {
    api: Api,
    acme: SimHandle,
    beta: SimHandle,
}

impl Tenants {
    async fn new() -> Tenants {
        let api = api().await;
        let (acme, beta) = (sim(ACME_PASSWORD).await, sim(BETA_PASSWORD).await);
        for (tenant, sim, password, secret) in [
            ("acme", &acme, ACME_PASSWORD, ACME_WEBHOOK_SECRET),
            ("beta", &beta, BETA_PASSWORD, BETA_WEBHOOK_SECRET),
        ] {
            let r = api
                .call(
                    ApiEvent::new("POST", &format!("/tenants/{tenant}/whatsapp-config"))
                        .bearer(&api.admin())
                        .json(&config(&sim.base_url(), password, secret)),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
        // The saves wired each device's webhook (issue 15); what the tests check starts here.
        acme.clear_requests();
        beta.clear_requests();
        Tenants { api, acme, beta }
    }

    async fn snapshot(&self) -> Snapshot {
        snapshot(&self.api.stack, &[&self.acme, &self.beta]).await
    }

    /// Copies `from`'s sealed secret at `path` (attribute names from the item's root) into
    /// the same place of `to`'s item, as someone with write access to the table could.
    async fn move_sealed_secret(&self, from: &str, to: &str, path: &[&str]) {
        move_sealed_secret(&self.api.stack, from, to, path).await
    }
}

async fn move_sealed_secret(stack: &Stack, from: &str, to: &str, path: &[&str]) {
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let item = client
        .get_item()
        .table_name(stack.tenants_table())
        .key("tenantId", AttributeValue::S(from.into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the source tenant exists");
    let mut value = item[path[0]].clone();
    for name in &path[1..] {
        value = match name.parse::<usize>() {
            Ok(i) => value.as_l().unwrap()[i].clone(),
            Err(_) => value.as_m().unwrap()[*name].clone(),
        };
    }
    let mut update = client
        .update_item()
        .table_name(stack.tenants_table())
        .key("tenantId", AttributeValue::S(to.into()));
    let mut expr = String::from("SET ");
    for (i, name) in path.iter().enumerate() {
        match name.parse::<usize>() {
            Ok(index) => expr.push_str(&format!("[{index}]")),
            Err(_) => {
                if i > 0 {
                    expr.push('.');
                }
                expr.push_str(&format!("#n{i}"));
                update = update.expression_attribute_names(format!("#n{i}"), *name);
            }
        }
    }
    expr.push_str(" = :v");
    update
        .update_expression(expr)
        .expression_attribute_values(":v", value)
        .condition_expression("attribute_exists(tenantId)")
        .send()
        .await
        .expect("move the sealed secret");
}

fn assert_refused(what: &str, r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert_eq!(r.json()["error"], code, "{what}: {}", r.text);
    assert!(
        r.json()["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: the refusal says why: {}",
        r.text
    );
}

// =====================================================================================
// The config API, route by route
// =====================================================================================

#[tokio::test]
async fn every_route_of_the_spec_refuses_other_tenants_tenant_tokens_on_admin_routes_and_forged_tokens()
 {
    let doc = spec();
    let routes = routes(&doc);
    assert_eq!(
        routes.len(),
        operations_in_spec_text(),
        "the walk does not cover every operation of openapi.yaml"
    );
    let count = |scope| routes.iter().filter(|r| r.scope == scope).count();
    // The classification is not degenerate (today: 13 tenant routes, 12 admin, 1 public).
    assert!(count(Scope::Tenant) >= 13, "{routes:#?}");
    assert!(count(Scope::Admin) >= 12, "{routes:#?}");
    assert_eq!(count(Scope::Public), 1, "{routes:#?}");
    // The spec's scope of each route is the access the router's table gives it.
    for r in &routes {
        use config_api::router::Access;
        let table = config_api::ROUTES
            .iter()
            .find(|t| t.method.as_str() == r.method && t.path == r.template)
            .unwrap_or_else(|| panic!("{} is not in the route table", r.name()));
        let scope = match table.access {
            Access::Open => Scope::Public,
            Access::Tenant => Scope::Tenant,
            Access::Admin | Access::AdminAfterMethod => Scope::Admin,
        };
        assert_eq!(scope, r.scope, "{}", r.name());
    }

    let t = Tenants::new().await;
    let api = &t.api;
    let admin = api.admin();
    // Something behind every kind of route: a registered server, a migration job, a
    // delivery record.
    let r = api
        .call(
            ApiEvent::new("POST", "/admin/servers")
                .bearer(&admin)
                .json(&json!({
            "serverId": "s1", "baseUrl": t.acme.base_url(), "provider": "gowa",
            "region": "eu-west-1", "capacity": 10})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = api
        .call(
            ApiEvent::new("POST", "/admin/migrations")
                .bearer(&admin)
                .json(&json!({
            "jobId": "j1", "from": "s1", "to": "s1"})),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    api.stack.put_delivery("acme", "k1", "sent").await;
    let anonymous_page = api.call(ApiEvent::new("GET", "/dashboard")).await;
    assert_eq!(anonymous_page.status, StatusCode::OK);

    api.stack.counter.reset();
    let before = t.snapshot().await;
    let forged = forged_tokens(&api.issuer);
    let (acme_token, beta_token) = (api.tenant("acme"), api.tenant("beta"));
    let mut walked = Vec::new();
    let mut refusals = 0;
    for route in &routes {
        // (what, event, expected status, expected code)
        let mut attempts: Vec<(String, ApiEvent, StatusCode, &str)> = Vec::new();
        match route.scope {
            Scope::Tenant => {
                attempts.push((
                    "beta's token on acme's route".into(),
                    route.event("acme").bearer(&beta_token),
                    StatusCode::FORBIDDEN,
                    "forbidden",
                ));
                attempts.push((
                    "acme's token on beta's route".into(),
                    route.event("beta").bearer(&acme_token),
                    StatusCode::FORBIDDEN,
                    "forbidden",
                ));
            }
            Scope::Admin => {
                for (who, token) in [("acme", &acme_token), ("beta", &beta_token)] {
                    attempts.push((
                        format!("{who}'s tenant token on an admin route"),
                        route.event("acme").bearer(token),
                        StatusCode::FORBIDDEN,
                        "forbidden",
                    ));
                }
            }
            Scope::Public => {}
        }
        for (what, authorization, code) in &forged {
            let mut ev = route.event("acme");
            if let Some(value) = authorization {
                ev = ev.header("authorization", value);
            }
            if route.scope == Scope::Public {
                // The page is served to anyone and holds no data: the same bytes for every
                // caller, whatever the token.
                let r = api.call(ev).await;
                assert_eq!(r.status, StatusCode::OK, "{} with {what}", route.name());
                assert_eq!(r.text, anonymous_page.text, "{} with {what}", route.name());
                continue;
            }
            attempts.push((format!("{what} token"), ev, StatusCode::UNAUTHORIZED, code));
        }
        for (what, ev, status, code) in attempts {
            let what = format!("{} with {what}", route.name());
            let r = api.call(ev).await;
            assert_refused(&what, &r, status, code);
            // Refused before any read: not one DynamoDB or KMS request.
            assert_eq!(
                api.stack.counter.calls(),
                Vec::<(String, String)>::new(),
                "{what} reached AWS"
            );
            refusals += 1;
        }
        walked.push(route.name());
    }
    assert_eq!(walked.len(), routes.len());
    assert!(refusals >= 25 * forged.len(), "{refusals} refusals");
    assert_eq!(
        t.snapshot().await,
        before,
        "a refused request changed something"
    );

    // The same requests with the rightful token get past authentication and authorization
    // (whatever the empty body then earns), so every refusal above was about the caller.
    for route in routes.iter().filter(|r| r.scope != Scope::Public) {
        let token = match route.scope {
            Scope::Tenant => &acme_token,
            _ => &admin,
        };
        let r = api.call(route.event("acme").bearer(token)).await;
        assert!(
            !matches!(r.status.as_u16(), 401 | 403) && !r.status.is_server_error(),
            "{} with the rightful token: {} {}",
            route.name(),
            r.status,
            r.text
        );
    }
}

// =====================================================================================
// The webhook ingress
// =====================================================================================

struct Ingress {
    app: webhook_ingress::App,
    queue_url: String,
}

/// The ingress on the stack the config API wrote the tenants to.
fn ingress(stack: &Stack) -> Ingress {
    let queue_url = stack.env()["INBOUND_QUEUE_URL"].clone();
    let app = webhook_ingress::App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(DynamoTenantStore::new(
                stack.dynamodb.clone(),
                stack.tenants_table(),
            )),
            Arc::new(KmsSealer::new(stack.kms.clone(), stack.kms_key_id())),
            webhook_ingress::cache_settings(Duration::from_secs(60)),
        )),
        sink: Arc::new(webhook_ingress::SqsSink::new(
            stack.sqs.clone(),
            queue_url.clone(),
        )),
        limiter: webhook_ingress::RateLimiter::default(),
        receipts: Arc::new(DynamoDeliveryStore::new(
            stack.dynamodb.clone(),
            stack.env()["MESSAGES_TABLE"].clone(),
            "",
            Duration::ZERO,
        )),
        replay_window: wagate::inbound::verify::DEFAULT_REPLAY_WINDOW,
        event_seen: None,
    };
    Ingress { app, queue_url }
}

impl Ingress {
    async fn post(&self, tenant: &str, secret: &str, body: &[u8]) -> Reply {
        let ev = ApiEvent::new("POST", &format!("/webhooks/whatsapp/{tenant}"))
            .header("x-hub-signature-256", &sign_sha256(secret.as_bytes(), body))
            .raw_json(body.to_vec());
        let resp = webhook_ingress::handle_event(&self.app, ev.event()).await;
        let text = match resp.body {
            Some(lambda_http::Body::Text(t)) => t,
            _ => String::new(),
        };
        Reply {
            status: StatusCode::from_u16(resp.status_code as u16).unwrap(),
            headers: resp.headers,
            text,
        }
    }
}

/// A contact's message, and a receipt naming the id acme's sent message got.
fn webhooks() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "a message",
            json!({"event": "message", "device_id": "6281234567890@s.whatsapp.net",
                   "payload": {"id": "3EB0ISOLATION1", "from": "6289876543210@s.whatsapp.net",
                               "chat_id": "6289876543210@s.whatsapp.net", "body": "hello"}})
            .to_string()
            .into_bytes(),
        ),
        (
            "a receipt",
            json!({"event": "message.ack", "device_id": "6281234567890@s.whatsapp.net",
                   "payload": {"ids": ["3EB0ACMESENT1"], "receipt_type": "read",
                               "chat_id": "6289876543210@s.whatsapp.net"}})
            .to_string()
            .into_bytes(),
        ),
    ]
}

/// A sent delivery record of acme with the provider id the receipt names.
async fn acme_sent_record(stack: &Stack) {
    let expires = OffsetDateTime::now_utc().unix_timestamp() + 3600;
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .put_item()
        .table_name(stack.env()["MESSAGES_TABLE"].clone())
        .item("pk", AttributeValue::S("acme#k1".into()))
        .item("tenantId", AttributeValue::S("acme".into()))
        .item("state", AttributeValue::S("sent".into()))
        .item(
            "providerMessageId",
            AttributeValue::S("3EB0ACMESENT1".into()),
        )
        .item(
            "providerKey",
            AttributeValue::S("acme#3EB0ACMESENT1".into()),
        )
        .item("attempts", AttributeValue::N("1".into()))
        .item("expiresAt", AttributeValue::N(expires.to_string()))
        .send()
        .await
        .expect("put a delivery record");
}

#[tokio::test]
async fn a_webhook_signed_with_another_tenants_secret_is_refused_and_nothing_is_enqueued() {
    let t = Tenants::new().await;
    let stack = &t.api.stack;
    let ingress = ingress(stack);
    acme_sent_record(stack).await;
    let before = t.snapshot().await;

    for (what, body) in webhooks() {
        for (tenant, foreign_secret) in
            [("acme", BETA_WEBHOOK_SECRET), ("beta", ACME_WEBHOOK_SECRET)]
        {
            let r = ingress.post(tenant, foreign_secret, &body).await;
            assert_refused(
                &format!("{what} to {tenant} signed with the other tenant's secret"),
                &r,
                StatusCode::UNAUTHORIZED,
                "signature_invalid",
            );
        }
    }
    assert!(
        drain_queue(&stack.sdk, &ingress.queue_url).await.is_empty(),
        "a refused webhook was enqueued"
    );
    assert_eq!(
        t.snapshot().await,
        before,
        "a refused webhook changed something (a receipt applied?)"
    );

    // beta's own, validly signed receipt naming acme's message id is beta's event: accepted
    // for beta, and acme's record is not touched (receipts are looked up within the tenant).
    let (_, receipt) = &webhooks()[1];
    let r = ingress.post("beta", BETA_WEBHOOK_SECRET, receipt).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        acme_record_state(stack).await,
        "sent",
        "beta's receipt moved acme's record"
    );

    // Signed with its own secret, the same webhooks are accepted: the refusals were the secret.
    for (what, body) in webhooks() {
        let r = ingress.post("acme", ACME_WEBHOOK_SECRET, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text);
    }
    assert_eq!(acme_record_state(stack).await, "read");
    let queued = drain_queue(&stack.sdk, &ingress.queue_url).await;
    let mut groups: Vec<&str> = queued
        .iter()
        .filter_map(|m| {
            m.attributes()?
                .get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
        })
        .map(String::as_str)
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        ["acme", "acme", "beta"],
        "each event under its own tenant"
    );
}

async fn acme_record_state(stack: &Stack) -> String {
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .get_item()
        .table_name(stack.env()["MESSAGES_TABLE"].clone())
        .key("pk", AttributeValue::S("acme#k1".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("acme's record")["state"]
        .as_s()
        .unwrap()
        .clone()
}

// =====================================================================================
// A sealed secret moved into another tenant's item
// =====================================================================================

#[tokio::test]
async fn a_sealed_server_credential_moved_into_another_tenants_item_is_refused_by_the_config_api() {
    let t = Tenants::new().await;
    let api = &t.api;
    // acme's sealed password, now in beta's item: KMS binds it to acme, so it must never
    // open as beta's (which would send acme's password to beta's server).
    t.move_sealed_secret("acme", "beta", &["primary", "credentials", "password"])
        .await;
    let before = t.snapshot().await;
    let beta = api.tenant("beta");

    let r = api
        .call(ApiEvent::new("POST", "/tenants/beta/whatsapp-config/test").bearer(&beta))
        .await;
    assert_refused(
        "the connection test of beta's saved servers",
        &r,
        StatusCode::CONFLICT,
        "secret_unusable",
    );
    assert_eq!(
        r.json()["fields"][0]["field"],
        "primary.credentials.password",
        "{}",
        r.text
    );
    let r = api
        .call(
            ApiEvent::new("POST", "/tenants/beta/whatsapp-config/test")
                .bearer(&beta)
                .json(&json!({"candidate": {"baseUrl": t.beta.base_url()}})),
        )
        .await;
    assert_refused(
        "a candidate reusing the saved credential",
        &r,
        StatusCode::CONFLICT,
        "secret_unusable",
    );
    for secret in [ACME_PASSWORD, BETA_PASSWORD] {
        assert!(!r.text.contains(secret));
    }
    assert_eq!(t.snapshot().await, before, "a refusal changed something");
    assert!(
        t.acme.requests().is_empty() && t.beta.requests().is_empty(),
        "a server was called with a moved credential"
    );

    // The status names the unusable secret; setting it again is the way out.
    let r = api
        .call(ApiEvent::new("GET", "/tenants/beta/status").bearer(&beta))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json()["unusableSecrets"][0]["field"],
        "primary.credentials.password",
        "{}",
        r.text
    );
    let r = api
        .call(
            ApiEvent::new("POST", "/tenants/beta/whatsapp-config/rotate-credential")
                .bearer(&beta)
                .header("If-Match", "\"1\"")
                .json(&json!({"credentials": {"type": "basic", "username": USER, "password": BETA_PASSWORD}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = api
        .call(ApiEvent::new("POST", "/tenants/beta/whatsapp-config/test").bearer(&beta))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["ok"], true, "{}", r.text);
    assert!(t.acme.requests().is_empty(), "acme's server was called");
}

#[tokio::test]
async fn a_sealed_webhook_secret_moved_into_another_tenants_item_verifies_nothing() {
    let t = Tenants::new().await;
    let stack = &t.api.stack;
    let ingress = ingress(stack);
    // acme's sealed webhook secret, now beta's: a webhook signed with acme's secret must not
    // pass as beta's, and beta's own secret is gone.
    t.move_sealed_secret("acme", "beta", &["webhookSecrets", "0", "secret"])
        .await;
    let before = t.snapshot().await;

    for (what, body) in webhooks() {
        for secret in [ACME_WEBHOOK_SECRET, BETA_WEBHOOK_SECRET] {
            let r = ingress.post("beta", secret, &body).await;
            assert_refused(
                &format!("{what} to beta with a moved webhook secret"),
                &r,
                StatusCode::FORBIDDEN,
                "secret_unusable",
            );
            assert!(
                r.headers.get("retry-after").is_none(),
                "not a retryable failure"
            );
        }
    }
    assert!(drain_queue(&stack.sdk, &ingress.queue_url).await.is_empty());
    assert_eq!(
        t.snapshot().await,
        before,
        "a refused webhook changed something"
    );

    // The config API says which secret is unusable; acme's webhooks are untouched.
    let r = t
        .api
        .call(ApiEvent::new("GET", "/tenants/beta/status").bearer(&t.api.tenant("beta")))
        .await;
    assert_eq!(
        r.json()["unusableSecrets"][0]["field"],
        "webhookSecrets[0].secret",
        "{}",
        r.text
    );
    let (_, body) = &webhooks()[0];
    let r = ingress.post("acme", ACME_WEBHOOK_SECRET, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_sealed_server_credential_moved_into_another_tenants_item_sends_nothing() {
    use outbound_common::{failures, fixture, msg, sent_texts};
    let fx = fixture().await;
    let (acme, beta) = (outbound_common::sim().await, outbound_common::sim().await);
    fx.tenant("acme", &acme.base_url(), None, 60).await;
    fx.tenant("beta", &beta.base_url(), None, 60).await;
    move_sealed_secret(
        &fx.stack,
        "acme",
        "beta",
        &["primary", "credentials", "password"],
    )
    .await;
    let before = snapshot(&fx.stack, &[&acme, &beta]).await;

    let b = fx
        .handle(vec![msg("m-beta", "beta", "k1", "to beta")])
        .await;
    assert_eq!(
        failures(&b),
        ["m-beta"],
        "returned to the queue, not acknowledged"
    );
    assert!(
        acme.requests().is_empty() && beta.requests().is_empty(),
        "a message was sent with a credential moved from another tenant"
    );
    assert_eq!(
        snapshot(&fx.stack, &[&acme, &beta]).await,
        before,
        "a refused message changed something"
    );
    assert!(
        fx.record("beta", "k1").await.is_none(),
        "no record for a refused message"
    );

    // acme's own messages still go out with its own credential.
    let b = fx
        .handle(vec![msg("m-acme", "acme", "k1", "to acme")])
        .await;
    assert!(failures(&b).is_empty());
    assert_eq!(sent_texts(&acme), ["to acme"]);
    assert!(beta.requests().is_empty());
}

//! Shared set-up of the outbound-sender tests: a stack on moto_server, tenants whose servers
//! are simulators, the sender wired to the counted clients, and SQS events.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use gowa_sim::{SimConfig, SimHandle};
use outbound_sender::{BatchOutcome, Sender, Settings};
use serde_json::{Value, json};
use time::OffsetDateTime;
use wagate::Secret;
use wagate::delivery::DeliveryRecord;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::delivery::store::DeliveryReader;
use wagate::egress::{EgressPolicy, HttpClient, HttpTimeouts};
use wagate::outbound::ratelimit::WindowClock;
use wagate::outbound::routing::BreakerSettings;
use wagate::provider::Providers;
use wagate::secrets::{KmsSealer, SecretSealer};
use wagate::tenant::cache::ConfigCache;
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::TenantConfigStore;
use wagate::tenant::*;
use wagate_tests::Stack;
use wagate_tests::sim_contract::{Checked, checked};

pub const PASSWORD: &str = "gowa-password-outbound-4e1d";

pub struct Fx {
    pub stack: Stack,
    /// The sender's settings (its pinned rate-window clock, for a test's own window reads).
    pub settings: Settings,
    /// The serializing proxy to moto_server every sender of the test uses for DynamoDB.
    pub proxy: String,
    pub sender: Sender,
    /// Reads records without being counted.
    pub records: DynamoDeliveryStore,
}

pub fn settings() -> Settings {
    Settings {
        max_receive_count: 5,
        // A cool-down that never ends by itself during a test: tests that need it over call
        // `Breakers::end_cool_downs` (sleeping for it would race the work before it).
        breaker: BreakerSettings {
            failure_threshold: 2,
            cool_down: Duration::from_secs(3600),
        },
        retention: Duration::from_secs(24 * 3600),
        send_reserve: Duration::from_secs(3),
        timelock_backoff: Duration::from_secs(60),
        // Every send of a test counts in one rate window, however long the test takes (a
        // test that crossed a minute would see a fresh window).
        window_clock: WindowClock::Pinned(OffsetDateTime::now_utc()),
    }
}

pub fn http() -> HttpClient {
    HttpClient::new(
        EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.1/32").unwrap()),
        // Long enough that a healthy loopback simulator always answers in time on a busy
        // machine; the timeout test uses a server that never answers.
        HttpTimeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(5),
        },
    )
    .unwrap()
}

pub async fn fixture_with(settings: Settings) -> Fx {
    let stack = Stack::new().await;
    let proxy = serializing_moto_proxy().await;
    let sender = sender_via(&stack, &proxy, settings.clone());
    let env = stack.env();
    let records = DynamoDeliveryStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        env["MESSAGES_TABLE"].clone(),
        env["RATE_LIMITS_TABLE"].clone(),
        Duration::from_secs(3600),
    );
    Fx {
        stack,
        settings,
        proxy,
        sender,
        records,
    }
}

pub async fn fixture() -> Fx {
    fixture_with(settings()).await
}

/// A simulator whose requests are checked against GOWA's spec when the test ends.
pub async fn sim() -> Checked {
    checked(gowa_sim::start(SimConfig::default()).await.unwrap())
}

fn endpoint(base_url: &str) -> Endpoint<Secret> {
    Endpoint {
        base_url: base_url.into(),
        credentials: Credentials::None,
        device_id: Some(gowa_sim::DEFAULT_DEVICE_ID.into()),
        region: None,
        provider: None,
        webhook_source_cidrs: Vec::new(),
        webhook_wiring: Default::default(),
    }
}

impl Fx {
    /// The rate window `tenant`'s sends count in now (the sender's pinned minute).
    pub fn window(&self, tenant: &str, limit: u32) -> wagate::outbound::ratelimit::RateWindow {
        wagate::outbound::ratelimit::RateWindow::at(
            &tenant.parse().unwrap(),
            limit,
            self.settings
                .window_clock
                .window_time(OffsetDateTime::now_utc()),
        )
    }

    /// Stores a tenant (secrets sealed with KMS) whose servers are `primary` and `backup`.
    pub async fn tenant(&self, id: &str, primary: &str, backup: Option<&str>, per_minute: u32) {
        self.tenant_with(id, primary, backup, per_minute, None)
            .await
    }

    /// [`Fx::tenant`], the backup (if any) with basic auth `admin`/`backup_password`.
    pub async fn tenant_with(
        &self,
        id: &str,
        primary: &str,
        backup: Option<&str>,
        per_minute: u32,
        backup_password: Option<&str>,
    ) {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let backup = backup.map(|b| {
            let mut e = endpoint(b);
            if let Some(p) = backup_password {
                e.credentials = Credentials::Basic {
                    username: "admin".into(),
                    password: Secret::new(p),
                };
            }
            e
        });
        let mut primary_ep = endpoint(primary);
        primary_ep.credentials = Credentials::Basic {
            username: "admin".into(),
            password: Secret::new(PASSWORD),
        };
        let cfg = TenantConfig {
            tenant_id: id.parse().unwrap(),
            provider: ProviderKind::Gowa,
            primary: primary_ep,
            backup,
            webhook_secrets: vec![WebhookSecret {
                id: "s1".into(),
                secret: Secret::new("webhook-secret-outbound-77aa"),
                expires_at: None,
            }],
            active_endpoint: EndpointRole::Primary,
            is_active: true,
            connection_status: ConnectionStatus::Connected,
            failback: Default::default(),
            limits: Limits {
                outbound_per_minute: per_minute,
                ..Limits::default()
            },
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let sealer = KmsSealer::new(
            aws_sdk_kms::Client::new(&self.stack.sdk),
            self.stack.kms_key_id(),
        );
        let mut sealed = Vec::new();
        for (purpose, s) in cfg.secret_slots() {
            sealed.push(sealer.seal(id, purpose, s).await.unwrap());
        }
        let store = DynamoTenantStore::new(
            aws_sdk_dynamodb::Client::new(&self.stack.sdk),
            self.stack.tenants_table(),
        );
        store
            .create(&cfg.with_secrets(sealed).unwrap())
            .await
            .unwrap();
    }

    pub async fn handle(&self, records: Vec<SqsMessage>) -> BatchOutcome {
        self.sender.handle_batch(event(records), deadline()).await
    }

    pub async fn record(&self, tenant: &str, key: &str) -> Option<DeliveryRecord> {
        self.records
            .get(&tenant.parse().unwrap(), key, OffsetDateTime::now_utc())
            .await
            .unwrap()
    }

    /// The tenant's item as stored (uncounted).
    pub async fn tenant_item(
        &self,
        id: &str,
    ) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
            .get_item()
            .table_name(self.stack.tenants_table())
            .key(
                "tenantId",
                aws_sdk_dynamodb::types::AttributeValue::S(id.into()),
            )
            .send()
            .await
            .unwrap()
            .item
            .unwrap()
    }
}

/// A proxy in front of moto_server that passes one request at a time
/// ([`wagate_tests::moto_proxy`]).
pub async fn serializing_moto_proxy() -> String {
    wagate_tests::moto_proxy::start(Arc::default(), true)
        .await
        .url
}

/// The proxy serializing only `TransactWriteItems` (what moto_server breaks on when
/// concurrent); other requests pass concurrently.
pub async fn transaction_serializing_moto_proxy() -> String {
    wagate_tests::moto_proxy::start(Arc::default(), false)
        .await
        .url
}

/// A sender (one "instance") whose DynamoDB client goes to `endpoint` (the serializing
/// proxy), counted by the stack's counter; KMS through the stack's counted client.
pub fn sender_via(stack: &Stack, endpoint: &str, settings: Settings) -> Sender {
    let env = stack.env();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
            .endpoint_url(endpoint)
            .interceptor(stack.counter.clone())
            .build(),
    );
    let cache = Arc::new(ConfigCache::new(
        Arc::new(DynamoTenantStore::new(
            dynamodb.clone(),
            stack.tenants_table(),
        )),
        Arc::new(KmsSealer::new(stack.kms.clone(), stack.kms_key_id())),
        outbound_sender::cache_settings(Duration::from_secs(300)),
    ));
    Sender::new(
        cache,
        Arc::new(DynamoDeliveryStore::new(
            dynamodb.clone(),
            env["MESSAGES_TABLE"].clone(),
            env["RATE_LIMITS_TABLE"].clone(),
            settings.retention,
        )),
        Arc::new(DynamoTenantStore::new(dynamodb, stack.tenants_table())),
        Providers::new(http()),
        settings,
    )
}

pub fn deadline() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(30)
}

pub fn event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

/// A text message body.
pub fn text(tenant: &str, key: &str, to: &str, body: &str) -> Value {
    json!({
        "tenantId": tenant,
        "idempotencyKey": key,
        "to": to,
        "content": {"type": "text", "body": body}
    })
}

pub const TO: &str = "6289685028129";

/// An SQS record as Lambda delivers it from a FIFO queue.
pub fn record(sqs_id: &str, body: &str, group: &str, receive_count: u32) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(sqs_id.into());
    m.receipt_handle = Some(format!("rh-{sqs_id}"));
    m.body = Some(body.into());
    m.attributes = HashMap::from([
        (
            "ApproximateReceiveCount".to_string(),
            receive_count.to_string(),
        ),
        ("MessageGroupId".to_string(), group.to_string()),
        ("MessageDeduplicationId".to_string(), sqs_id.to_string()),
    ]);
    m.event_source = Some("aws:sqs".into());
    m
}

/// A text record of `tenant` with key `key`, first receive.
pub fn msg(sqs_id: &str, tenant: &str, key: &str, body: &str) -> SqsMessage {
    record(sqs_id, &text(tenant, key, TO, body).to_string(), tenant, 1)
}

/// The message texts a simulator received on /send/message, in order.
pub fn texts(sim: &SimHandle) -> Vec<String> {
    sim.requests_to("/send/message")
        .into_iter()
        .filter_map(|r| {
            r.json
                .and_then(|j| j["message"].as_str().map(str::to_string))
        })
        .collect()
}

/// The message texts a simulator accepted (answered 200), in order.
pub fn sent_texts(sim: &SimHandle) -> Vec<String> {
    sim.requests_to("/send/message")
        .into_iter()
        .filter(|r| r.status == Some(200))
        .filter_map(|r| {
            r.json
                .and_then(|j| j["message"].as_str().map(str::to_string))
        })
        .collect()
}

pub fn failures(b: &BatchOutcome) -> Vec<String> {
    b.response()
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

//! Shared set-up of the health-check tests: a stack on moto_server, tenants whose servers are
//! GOWA simulators on 127.0.0.1, the health check wired to the counted clients.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use gowa_sim::{DeviceSpec, DeviceState, SimConfig, SimHandle};
use health_check::{HealthCheck, RunReport, Settings};
use time::OffsetDateTime;
use wagate::Secret;
use wagate::egress::{EgressPolicy, HttpClient, HttpTimeouts};
use wagate::health::EndpointHealth;
use wagate::health::dynamo::DynamoHealthStore;
use wagate::health::store::HealthStore;
use wagate::provider::Providers;
use wagate::secrets::{KmsSealer, SecretSealer};
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::TenantConfigStore;
use wagate::tenant::*;
use wagate_tests::Stack;
use wagate_tests::sim_contract::{Checked, checked};

pub const USER: &str = "gowa";
pub const PASSWORD: &str = "gowa-password-health-7c2a";

pub type Item = HashMap<String, AttributeValue>;

pub struct Fx {
    pub stack: Stack,
    pub tenants: DynamoTenantStore,
    pub sealer: KmsSealer,
    pub store: Arc<DynamoHealthStore>,
    pub http: HttpClient,
    pub check: HealthCheck,
}

pub fn settings() -> Settings {
    Settings {
        // Long enough that a healthy loopback server always answers in time on a busy
        // machine; the timeout tests use servers that never answer.
        probe_timeout: Duration::from_secs(3),
        write_reserve: Duration::from_secs(2),
        ..Settings::default()
    }
}

pub async fn fx(settings: Settings) -> Fx {
    let stack = Stack::new().await;
    let env = stack.env();
    let tenants = DynamoTenantStore::new(stack.dynamodb.clone(), stack.tenants_table());
    let sealer = KmsSealer::new(stack.kms.clone(), stack.kms_key_id());
    let store = Arc::new(
        DynamoHealthStore::new(
            stack.dynamodb.clone(),
            stack.tenants_table(),
            env["ENDPOINTS_TABLE"].clone(),
            env["AUDIT_TABLE"].clone(),
        )
        .with_history_table(stack.health_history_table()),
    );
    let http = HttpClient::new(
        EgressPolicy::new(vec!["127.0.0.1/32".parse().unwrap()]),
        HttpTimeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(10),
        },
    )
    .unwrap();
    let check = HealthCheck::new(
        store.clone(),
        Arc::new(sealer.clone()),
        Providers::new(http.clone()),
        settings,
    );
    Fx {
        stack,
        tenants,
        sealer,
        store,
        http,
        check,
    }
}

/// A simulator with basic auth and these devices, whose requests are checked against GOWA's
/// spec when the test ends.
pub async fn sim(devices: &[(&str, DeviceState)]) -> Checked {
    let devices = devices
        .iter()
        .map(|(id, st)| DeviceSpec::new(*id, format!("62811{}@s.whatsapp.net", id.len()), *st))
        .collect();
    checked(
        gowa_sim::start(SimConfig::with_devices(devices).basic_auth(USER, PASSWORD))
            .await
            .expect("simulator starts"),
    )
}

pub fn endpoint(sim: &SimHandle, device: &str) -> Endpoint<Secret> {
    Endpoint {
        base_url: normalize_base_url(&sim.base_url()).unwrap(),
        credentials: Credentials::Basic {
            username: USER.into(),
            password: Secret::new(PASSWORD),
        },
        device_id: Some(device.into()),
        region: None,
        provider: None,
        webhook_source_cidrs: Vec::new(),
        webhook_wiring: Default::default(),
    }
}

pub fn config(
    id: &str,
    primary: Endpoint<Secret>,
    backup: Option<Endpoint<Secret>>,
) -> TenantConfig<Secret> {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    TenantConfig {
        tenant_id: id.parse().unwrap(),
        provider: ProviderKind::Gowa,
        primary,
        backup,
        webhook_secrets: vec![WebhookSecret {
            id: "s1".into(),
            secret: Secret::new("webhook-secret-health"),
            expires_at: None,
        }],
        active_endpoint: EndpointRole::Primary,
        is_active: true,
        connection_status: ConnectionStatus::Unknown,
        failback: Default::default(),
        limits: Limits::default(),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

impl Fx {
    pub async fn seal(&self, cfg: &TenantConfig<Secret>) -> SealedConfig {
        let mut sealed = Vec::new();
        for (p, s) in cfg.secret_slots() {
            sealed.push(
                self.sealer
                    .seal(cfg.tenant_id.as_str(), p, s)
                    .await
                    .unwrap(),
            );
        }
        cfg.clone().with_secrets(sealed).unwrap()
    }

    pub async fn add(&self, cfg: TenantConfig<Secret>) {
        let sealed = self.seal(&cfg).await;
        self.tenants.create(&sealed).await.unwrap();
    }

    /// One run with a generous deadline.
    pub async fn run(&self) -> RunReport {
        self.check
            .run(tokio::time::Instant::now() + Duration::from_secs(20))
            .await
            .expect("run")
    }

    /// The tenant's raw item, read without being counted.
    pub async fn item(&self, id: &str) -> Item {
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
            .get_item()
            .table_name(self.stack.tenants_table())
            .key("tenantId", AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("tenant item")
    }

    /// The tenant's audit records, oldest first.
    pub async fn audit(&self, id: &str) -> Vec<Item> {
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
            .query()
            .table_name(self.stack.env()["AUDIT_TABLE"].clone())
            .key_condition_expression("tenantId = :t")
            .expression_attribute_values(":t", AttributeValue::S(id.into()))
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
    }

    pub async fn endpoint_record(&self, sim: &SimHandle) -> Option<EndpointHealth> {
        let key = normalize_base_url(&sim.base_url()).unwrap();
        self.store
            .endpoints(std::slice::from_ref(&key))
            .await
            .unwrap()
            .remove(&key)
    }
}

pub fn s(item: &Item, attr: &str) -> String {
    item.get(attr)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_else(|| panic!("{attr} missing or not a string in {item:?}"))
}

/// A number attribute that may have a fraction (latencies: milliseconds to the microsecond).
pub fn nf(item: &Item, attr: &str) -> f64 {
    item.get(attr)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{attr} missing or not a number in {item:?}"))
}

pub fn n(item: &Item, attr: &str) -> u64 {
    item.get(attr)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{attr} missing or not a number in {item:?}"))
}

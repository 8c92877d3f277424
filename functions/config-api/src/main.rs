//! Wiring only: read the environment once, build the clients, serve.

use std::sync::Arc;

use std::time::Duration;

use config_api::App;
use config_api::audit::Journal;
use config_api::auth::{AuthConfig, Authenticator, KeySource};
use lambda_http::{Error, run, service_fn};
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::egress::HttpClient;
use wagate::runtime::config::{AppConfig, Env, PublicWebhookBase};
use wagate::secrets::KmsSealer;
use wagate::tenant::dynamo::DynamoTenantStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wagate::runtime::telemetry::init();
    let mut env = Env::from_process();
    let app_cfg = AppConfig::read(&mut env);
    let audit_table = env.required("AUDIT_TABLE");
    let endpoints_table = env.required("ENDPOINTS_TABLE");
    let history_table = env.required("HEALTH_HISTORY_TABLE");
    let messages_table = env.required("MESSAGES_TABLE");
    let servers_table = env.required("SERVERS_TABLE");
    let jobs_table = env.required("MIGRATIONS_TABLE");
    let webhook_base = PublicWebhookBase::read(&mut env);
    let issuer = env.required("JWT_ISSUER");
    let audience = env.required("JWT_AUDIENCE");
    let keys = match (env.optional("JWT_JWKS"), env.optional("JWT_JWKS_URL")) {
        (Some(json), None) => Some(KeySource::Inline(json)),
        (None, Some(url)) => Some(KeySource::Url(url)),
        (Some(_), Some(_)) => {
            env.problem("set only one of JWT_JWKS and JWT_JWKS_URL");
            None
        }
        (None, None) => {
            env.problem("JWT_JWKS or JWT_JWKS_URL is missing");
            None
        }
    };
    env.finish()?;
    let (
        Some(app_cfg),
        Some(issuer),
        Some(audience),
        Some(keys),
        Some(audit_table),
        Some(endpoints_table),
        Some(history_table),
        Some(messages_table),
        Some(servers_table),
        Some(jobs_table),
        Some(webhook_base),
    ) = (
        app_cfg,
        issuer,
        audience,
        keys,
        audit_table,
        endpoints_table,
        history_table,
        messages_table,
        servers_table,
        jobs_table,
        webhook_base,
    )
    else {
        return Err("invalid configuration".into());
    };

    let sdk = wagate::runtime::aws::load().await;
    let http = HttpClient::new(app_cfg.egress.clone(), app_cfg.http)?;
    let auth = Authenticator::new(
        AuthConfig {
            issuer,
            audience,
            keys,
        },
        http.clone(),
    )
    .await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let app = Arc::new(App {
        store: Arc::new(DynamoTenantStore::new(
            dynamodb.clone(),
            app_cfg.tenants_table.clone(),
        )),
        fleet: config_api::fleet::Fleet {
            servers_table,
            jobs_table,
            audit_table: audit_table.clone(),
        },
        journal: Journal::new(dynamodb.clone(), app_cfg.tenants_table, audit_table),
        http,
        endpoints_table,
        history_table,
        // Read only (`get`): the rate table and retention are the sender's business.
        deliveries: DynamoDeliveryStore::new(dynamodb, messages_table, "", Duration::ZERO),
        sealer: Arc::new(KmsSealer::new(
            aws_sdk_kms::Client::new(&sdk),
            app_cfg.kms_key_id,
        )),
        auth,
        egress: app_cfg.egress,
        webhook_base,
    });

    run(service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Error>(config_api::handle(&app, req).await) }
    }))
    .await
}

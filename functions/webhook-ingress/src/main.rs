//! Wiring only: read the environment once, build the clients, serve.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::{Error, service_fn};
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::runtime::config::{AppConfig, Env};
use wagate::secrets::KmsSealer;
use wagate::tenant::cache::{CacheSettings, ConfigCache};
use wagate::tenant::dynamo::DynamoTenantStore;
use webhook_ingress::{App, RateLimiter, SqsSink};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wagate::runtime::telemetry::init();
    let mut env = Env::from_process();
    let cfg = AppConfig::read(&mut env);
    let queue_url = env.required("INBOUND_QUEUE_URL");
    let messages_table = env.required("MESSAGES_TABLE");
    env.finish()?;
    let (Some(cfg), Some(queue_url), Some(messages_table)) = (cfg, queue_url, messages_table)
    else {
        return Err("invalid configuration".into());
    };

    let sdk = wagate::runtime::aws::load().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoTenantStore::new(dynamodb.clone(), cfg.tenants_table);
    // Only `apply_receipt` is reachable through `ReceiptRecorder`: no rate table, and the
    // retention is irrelevant to receipts (they never create records).
    let receipts = DynamoDeliveryStore::new(dynamodb, messages_table, "", Duration::from_secs(0));
    let sealer = KmsSealer::new(aws_sdk_kms::Client::new(&sdk), cfg.kms_key_id);
    let app = Arc::new(App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(store),
            Arc::new(sealer),
            CacheSettings::with_ttl(cfg.cache_ttl),
        )),
        sink: Arc::new(SqsSink::new(aws_sdk_sqs::Client::new(&sdk), queue_url)),
        limiter: RateLimiter::default(),
        receipts: Arc::new(receipts),
    });

    // The raw API Gateway event, not lambda_http's `run`: its conversion panics on a body
    // flagged base64 that is not (handle_event answers 400).
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
            let app = app.clone();
            async move { Ok::<_, Error>(webhook_ingress::handle_event(&app, event.payload).await) }
        },
    ))
    .await
}

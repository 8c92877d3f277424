//! Wiring only: read the environment once, build the clients, serve.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use outbound_sender::{Sender, Settings, deadline_from_ms};
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::egress::HttpClient;
use wagate::outbound::routing::BreakerSettings;
use wagate::provider::Providers;
use wagate::runtime::config::{AppConfig, Env};
use wagate::secrets::KmsSealer;
use wagate::tenant::cache::{CacheSettings, ConfigCache};
use wagate::tenant::dynamo::DynamoTenantStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wagate::runtime::telemetry::init();
    let mut env = Env::from_process();
    let app_cfg = AppConfig::read(&mut env);
    let messages_table = env.required("MESSAGES_TABLE");
    let rate_table = env.required("RATE_LIMITS_TABLE");
    let defaults = Settings::default();
    let max_receive_count = env.parse_or::<u32>("OUTBOUND_MAX_RECEIVE_COUNT", 5, "a whole number");
    let threshold = env.parse_or::<u32>(
        "BREAKER_FAILURE_THRESHOLD",
        defaults.breaker.failure_threshold,
        "a whole number",
    );
    let cool_down = env.parse_or::<u64>(
        "BREAKER_COOL_DOWN_SECS",
        defaults.breaker.cool_down.as_secs(),
        "whole seconds",
    );
    let retention_days = env.parse_or::<u64>("MESSAGE_RETENTION_DAYS", 15, "whole days");
    env.finish()?;
    let (
        Some(app_cfg),
        Some(messages_table),
        Some(rate_table),
        Some(max_receive_count),
        Some(threshold),
        Some(cool_down),
        Some(retention_days),
    ) = (
        app_cfg,
        messages_table,
        rate_table,
        max_receive_count,
        threshold,
        cool_down,
        retention_days,
    )
    else {
        return Err("invalid configuration".into());
    };
    let settings = Settings {
        max_receive_count,
        breaker: BreakerSettings {
            failure_threshold: threshold.max(1),
            cool_down: Duration::from_secs(cool_down),
        },
        retention: Duration::from_secs(retention_days * 24 * 3600),
        // One send (the HTTP timeout) plus its writes.
        send_reserve: app_cfg.http.request + Duration::from_secs(2),
        ..defaults
    };

    let sdk = wagate::runtime::aws::load().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let http = HttpClient::new(app_cfg.egress.clone(), app_cfg.http)?;
    let cache = Arc::new(ConfigCache::new(
        Arc::new(DynamoTenantStore::new(
            dynamodb.clone(),
            app_cfg.tenants_table.clone(),
        )),
        Arc::new(KmsSealer::new(
            aws_sdk_kms::Client::new(&sdk),
            app_cfg.kms_key_id,
        )),
        CacheSettings::with_ttl(app_cfg.cache_ttl),
    ));
    let sender = Arc::new(Sender::new(
        cache,
        Arc::new(DynamoDeliveryStore::new(
            dynamodb.clone(),
            messages_table,
            rate_table,
            settings.retention,
        )),
        Arc::new(DynamoTenantStore::new(dynamodb, app_cfg.tenants_table)),
        Providers::new(http),
        settings,
    ));

    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let sender = sender.clone();
        async move {
            let deadline = deadline_from_ms(event.context.deadline);
            let outcome = sender.handle_batch(event.payload, deadline).await;
            // CloudWatch Embedded Metric Format: one line per batch.
            println!("{}", outcome.emf_line(time::OffsetDateTime::now_utc()));
            Ok::<SqsBatchResponse, Error>(outcome.response())
        }
    }))
    .await
}

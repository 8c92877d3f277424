//! Wiring only: read the environment once, build the clients, run one check per event.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use health_check::{HealthCheck, Settings, WiringGuard, deadline_from_epoch_ms};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wagate::egress::HttpClient;
use wagate::health::dynamo::DynamoHealthStore;
use wagate::provider::Providers;
use wagate::runtime::config::{AppConfig, Env, PublicWebhookBase};
use wagate::secrets::KmsSealer;
use wagate::tenant::dynamo::DynamoTenantStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wagate::runtime::telemetry::init();
    let mut env = Env::from_process();
    let app_cfg = AppConfig::read(&mut env);
    let endpoints_table = env.required("ENDPOINTS_TABLE");
    let audit_table = env.required("AUDIT_TABLE");
    let history_table = env.required("HEALTH_HISTORY_TABLE");
    let settings = Settings::read(&mut env);
    let webhook_base = PublicWebhookBase::read(&mut env);
    env.finish()?;
    let (
        Some(app_cfg),
        Some(endpoints_table),
        Some(audit_table),
        Some(history_table),
        Some(settings),
        Some(webhook_base),
    ) = (
        app_cfg,
        endpoints_table,
        audit_table,
        history_table,
        settings,
        webhook_base,
    )
    else {
        return Err("invalid configuration".into());
    };

    let sdk = wagate::runtime::aws::load().await;
    let http = HttpClient::new(app_cfg.egress.clone(), app_cfg.http)?;
    let tenants = DynamoTenantStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        app_cfg.tenants_table.clone(),
    );
    let check = HealthCheck::new(
        Arc::new(
            DynamoHealthStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                app_cfg.tenants_table,
                endpoints_table,
                audit_table,
            )
            .with_history_table(history_table),
        ),
        Arc::new(KmsSealer::new(
            aws_sdk_kms::Client::new(&sdk),
            app_cfg.kms_key_id,
        )),
        Providers::new(http),
        settings,
    );
    // Issue 15: with a public webhook URL, a switch to an endpoint wagate wired waits for its
    // webhook to read back as wired.
    let check = Arc::new(if webhook_base.configured().is_some() {
        check.with_wiring_guard(WiringGuard {
            configs: Arc::new(tenants),
            webhook_base,
        })
    } else {
        tracing::info!(
            "PUBLIC_WEBHOOK_BASE_URL is not set: device webhook wiring is not checked before switches"
        );
        check
    });

    run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| {
        let check = check.clone();
        async move {
            // Finish a second before Lambda would stop us.
            let deadline = deadline_from_epoch_ms(event.context.deadline, Duration::from_secs(1));
            tracing::debug!(deadline_ms = event.context.deadline, "run starts");
            let report = check.run(deadline).await?;
            // CloudWatch Embedded Metric Format: one line per endpoint, switch and run.
            for line in report.emf_lines(time::OffsetDateTime::now_utc()) {
                println!("{line}");
            }
            tracing::info!(
                tenants = report.tenants,
                servers_probed = report.servers_probed,
                servers_not_probed = report.servers_not_probed,
                failovers = report.count(wagate::health::SwitchKind::Failover),
                failbacks = report.count(wagate::health::SwitchKind::Failback),
                switches_blocked = report.blocked.len(),
                conflicts = report.conflicts,
                errors = report.errors.len(),
                duration_ms = report.duration.as_millis() as u64,
                "health check run finished"
            );
            Ok::<serde_json::Value, Error>(serde_json::json!({
                "tenants": report.tenants,
                "serversProbed": report.servers_probed,
                "serversNotProbed": report.servers_not_probed,
                "failovers": report.count(wagate::health::SwitchKind::Failover),
                "failbacks": report.count(wagate::health::SwitchKind::Failback),
                "durationMs": report.duration.as_millis() as u64,
            }))
        }
    }))
    .await
}

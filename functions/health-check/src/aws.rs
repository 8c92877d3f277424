//! The health check over AWS: DynamoDB for tenants, endpoint records, audit, history and (read
//! only) delivery records, KMS
//! for the server credentials. The one file of the health check that names the AWS SDK.

use std::sync::Arc;

use aws_config::SdkConfig;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::egress::HttpClient;
use wagate::health::dynamo::DynamoHealthStore;
use wagate::provider::Providers;
use wagate::secrets::kms::KmsSealer;
use wagate::tenant::dynamo::DynamoTenantStore;

use crate::settings::Environment;
use crate::{HealthCheck, WiringGuard};

/// The health check as deployed, from the SDK configuration and its environment. Fails only
/// when the HTTP client cannot be built (TLS setup).
pub fn health_check(
    sdk: &SdkConfig,
    env: Environment,
) -> Result<HealthCheck, Box<dyn std::error::Error + Send + Sync>> {
    let Environment {
        app,
        endpoints_table,
        audit_table,
        history_table,
        settings,
        webhook_base,
        messages_table,
    } = env;
    let store = DynamoHealthStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        app.tenants_table.clone(),
        endpoints_table,
        audit_table,
    )
    .with_history_table(history_table);
    let sealer = KmsSealer::new(aws_sdk_kms::Client::new(sdk), app.kms_key_id);
    let http = HttpClient::new(app.egress, app.http)?;
    let mut check = HealthCheck::new(
        Arc::new(store),
        Arc::new(sealer),
        Providers::new(http),
        settings,
    );
    // Issue 15: "connected but silent" reads the delivery records (only the reader is used:
    // no rate table, retention irrelevant).
    match messages_table {
        Some(table) => {
            let deliveries = DynamoDeliveryStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                table,
                "",
                std::time::Duration::ZERO,
            );
            check = check.with_silence_check(Arc::new(deliveries));
        }
        None => tracing::info!("MESSAGES_TABLE is not set: the connected-but-silent check is off"),
    }
    // Issue 15: with a public webhook URL, a switch to an endpoint wagate wired waits for its
    // webhook to read back as wired.
    if webhook_base.configured().is_none() {
        tracing::info!(
            "PUBLIC_WEBHOOK_BASE_URL is not set: device webhook wiring is not checked before switches"
        );
        return Ok(check);
    }
    let tenants = DynamoTenantStore::new(aws_sdk_dynamodb::Client::new(sdk), app.tenants_table);
    Ok(check.with_wiring_guard(WiringGuard {
        configs: Arc::new(tenants),
        webhook_base,
    }))
}

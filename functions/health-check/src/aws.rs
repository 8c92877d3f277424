//! The health check over AWS: DynamoDB for tenants, endpoint records, audit and history, KMS
//! for the server credentials. The one file of the health check that names the AWS SDK.

use std::sync::Arc;

use aws_config::SdkConfig;
use wagate::egress::HttpClient;
use wagate::health::dynamo::DynamoHealthStore;
use wagate::provider::Providers;
use wagate::secrets::kms::KmsSealer;

use crate::HealthCheck;
use crate::settings::Environment;

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
    } = env;
    let store = DynamoHealthStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        app.tenants_table,
        endpoints_table,
        audit_table,
    )
    .with_history_table(history_table);
    let sealer = KmsSealer::new(aws_sdk_kms::Client::new(sdk), app.kms_key_id);
    let http = HttpClient::new(app.egress, app.http)?;
    Ok(HealthCheck::new(
        Arc::new(store),
        Arc::new(sealer),
        Providers::new(http),
        settings,
    ))
}

//! The sender over AWS: DynamoDB for tenant configs, delivery records and rate windows, KMS
//! for the secrets. The one file of the sender that names the AWS SDK.

use std::sync::Arc;

use aws_config::SdkConfig;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::egress::HttpClient;
use wagate::provider::Providers;
use wagate::secrets::kms::KmsSealer;
use wagate::tenant::cache::ConfigCache;
use wagate::tenant::dynamo::DynamoTenantStore;

use crate::Sender;
use crate::settings::Environment;

/// The sender as deployed, from the SDK configuration and its environment.
/// Fails only when the HTTP client cannot be built (TLS setup).
pub fn sender(
    sdk: &SdkConfig,
    env: Environment,
) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let Environment {
        app,
        messages_table,
        rate_table,
        settings,
    } = env;
    let db = aws_sdk_dynamodb::Client::new(sdk);
    let tenants = Arc::new(DynamoTenantStore::new(db.clone(), app.tenants_table));
    let sealer = Arc::new(KmsSealer::new(
        aws_sdk_kms::Client::new(sdk),
        app.kms_key_id,
    ));
    let cache = ConfigCache::new(
        tenants.clone(),
        sealer,
        crate::cache_settings(app.cache_ttl),
    );
    let records = DynamoDeliveryStore::new(db, messages_table, rate_table, settings.retention);
    let http = HttpClient::new(app.egress, app.http)?;
    Ok(Sender::new(
        Arc::new(cache),
        Arc::new(records),
        tenants,
        Providers::new(http),
        settings,
    ))
}

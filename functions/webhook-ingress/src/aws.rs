//! The ingress over AWS: DynamoDB for tenant configs, delivery receipts and each tenant's
//! `lastEventAt`, KMS for the
//! webhook secrets, SQS for the inbound queue ([`crate::SqsSink`]).

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::secrets::kms::KmsSealer;
use wagate::tenant::cache::ConfigCache;
use wagate::tenant::dynamo::DynamoTenantStore;

use crate::settings::Environment;
use crate::{App, RateLimiter, SqsSink};

/// The ingress as deployed, from the SDK configuration and its environment.
pub fn app(sdk: &SdkConfig, env: Environment) -> App {
    let Environment {
        app,
        queue_url,
        messages_table,
        replay_window,
    } = env;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let store = DynamoTenantStore::new(dynamodb.clone(), app.tenants_table);
    let event_seen =
        crate::EventSeen::new(Arc::new(store.clone()), crate::EVENT_SEEN_WRITE_INTERVAL);
    // Only `apply_receipt` is reachable through `ReceiptRecorder`: no rate table, and the
    // retention is irrelevant to receipts (they never create records).
    let receipts = DynamoDeliveryStore::new(dynamodb, messages_table, "", Duration::from_secs(0));
    let sealer = KmsSealer::new(aws_sdk_kms::Client::new(sdk), app.kms_key_id);
    App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(store),
            Arc::new(sealer),
            crate::cache_settings(app.cache_ttl),
        )),
        sink: Arc::new(SqsSink::new(aws_sdk_sqs::Client::new(sdk), queue_url)),
        limiter: RateLimiter::default(),
        receipts: Arc::new(receipts),
        replay_window,
        event_seen: Some(Arc::new(event_seen)),
    }
}

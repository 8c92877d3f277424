//! AWS SDK configuration. `AWS_ENDPOINT_URL` (moto_server locally) is honoured by the SDK
//! itself, so local runs and AWS take the same code path.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the SDK configuration from the environment (region, credentials, endpoint).
pub async fn load() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

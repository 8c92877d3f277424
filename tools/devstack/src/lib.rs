//! wagate's local stack tooling.
//!
//! - [`provision`]: create the tables, queues and KMS keys of `template.yaml` in moto_server
//!   (or wherever `AWS_ENDPOINT_URL` points), so the local stack cannot drift from what deploys.
//! - [`mappings`] and [`event_source`]: the template's SQS event source mappings and
//!   schedules, read from it and run against cargo-lambda's invoke API as AWS runs them.
//! - [`front_door`]: the events the ingress's two front doors (HTTP API route, function URL)
//!   deliver for one webhook.
//! - [`platform`]: the booking platform's side of the queues (send and follow a message,
//!   consume inbound events) and a contact's reply through the simulator.
//! - [`LocalIssuer`]: a local ES256 JWT issuer (key, JWKS, admin and tenant tokens) and
//!   [`JwksServer`] to serve its JWKS over HTTP on loopback.
//!
//! The `wagate-dev` binary wraps them for the scripts (`scripts/dev.sh`) and for people.

pub mod event_source;
pub mod front_door;
pub mod jwks_server;
pub mod jwt;
pub mod mappings;
pub mod platform;
pub mod provision;
pub mod template;

use std::path::PathBuf;

pub use jwks_server::{JWKS_PATH, JwksServer};
pub use jwt::{Caller, Claims, LocalIssuer, TokenSpec};
pub use provision::{Provisioned, provision, provision_template, provision_with_parameters};
pub use template::Template;

/// The workspace's `template.yaml` (found from this crate's manifest directory).
pub fn workspace_template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// SDK configuration for the local stack: the endpoint from `AWS_ENDPOINT_URL` (required, so
/// nothing is ever provisioned in a real account by accident), the region from `AWS_REGION`
/// (default `us-east-1`), credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` or
/// dummy ones (moto accepts any), and no instance-metadata lookups.
pub async fn local_sdk_config() -> anyhow::Result<aws_config::SdkConfig> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(endpoint) = var("AWS_ENDPOINT_URL") else {
        anyhow::bail!(
            "AWS_ENDPOINT_URL is not set: point it at the local moto_server \
             (scripts/moto.sh start 4566, then AWS_ENDPOINT_URL=http://127.0.0.1:4566)"
        );
    };
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    Ok(sdk_config_for(
        &endpoint,
        &region,
        aws_sdk_dynamodb::config::Credentials::new(
            var("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "test".to_owned()),
            var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".to_owned()),
            var("AWS_SESSION_TOKEN"),
            None,
            "wagate-devstack",
        ),
    )
    .await)
}

/// SDK configuration for a local endpoint (moto_server), region and credentials, with no
/// instance-metadata lookups.
pub async fn sdk_config_for(
    endpoint: &str,
    region: &str,
    credentials: aws_sdk_dynamodb::config::Credentials,
) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .load()
        .await
}

/// A fresh stack name for one test, `t-` and 16 random hex digits: valid for CloudFormation,
/// DynamoDB, SQS and KMS alias names.
pub fn unique_stack_name() -> String {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t-{hex}")
}

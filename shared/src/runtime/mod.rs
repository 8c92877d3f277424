//! What every function needs at its edge: settings read from the environment once
//! ([`config`]), the AWS SDK configuration and its primed connections ([`aws`]), the one TLS
//! configuration ([`tls`]), JSON logs ([`telemetry`]),
//! CloudWatch EMF metrics ([`metrics`]) and the API Gateway event ([`apigw`]).

pub mod apigw;
pub mod aws;
pub mod config;
pub mod metrics;
pub mod telemetry;
pub mod tls;

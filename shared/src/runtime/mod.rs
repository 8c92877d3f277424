//! What every function needs at its edge: settings read from the environment once
//! ([`config`]), the AWS SDK configuration ([`aws`]), JSON logs ([`telemetry`]) and
//! CloudWatch EMF metrics ([`metrics`]).

pub mod aws;
pub mod config;
pub mod metrics;
pub mod telemetry;

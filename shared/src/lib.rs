//! # wagate
//!
//! The library every wagate Lambda function shares: tenant configuration and its
//! validation ([`tenant`]), KMS sealing of secrets ([`secrets`]), the DynamoDB store
//! ([`store`]), the warm-path cache ([`cache`]), the SSRF-guarded HTTP client ([`net`]),
//! WhatsApp server clients ([`provider`]), environment configuration ([`config`]) and
//! logging ([`telemetry`]). It has no Lambda dependency: it builds and tests on its own.

pub mod aws;
pub mod cache;
pub mod config;
pub mod delivery;
pub mod health;
pub mod health_store;
pub mod messages;
pub mod metrics;
pub mod net;
pub mod outbound;
pub mod provider;
pub mod ratelimit;
pub mod routing;
pub mod secrets;
pub mod signature;
pub mod store;
pub mod telemetry;
pub mod tenant;

pub use secrets::Secret;
pub use tenant::{OpenedConfig, SealedConfig, TenantConfig, TenantId};

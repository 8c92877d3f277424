//! # wagate
//!
//! The library every wagate Lambda function shares, one folder per capability. In each, the
//! pure model and rules come first (`mod.rs` and its siblings); the AWS or HTTP adapter is a
//! file named for the technology (`dynamo.rs`, `kms.rs`, `http.rs`, a provider's client), and
//! only those files name the AWS SDK or reqwest (`tests/tests/layering.rs` checks it).
//!
//! | module | holds |
//! |---|---|
//! | [`tenant`] | the tenant's WhatsApp config and its validation; store traits; DynamoDB; the warm-path cache |
//! | [`secrets`] | the redacting [`Secret`], sealed secrets, the sealer trait; KMS |
//! | [`egress`] | the SSRF policy; the one guarded HTTP client |
//! | [`inbound`] | the inbound queue contract; per provider kind, the webhook signature and normalisation |
//! | [`outbound`] | the outbound queue contract; routing and failover rules, breakers; rate windows |
//! | [`delivery`] | delivery states and records; repository traits; DynamoDB |
//! | [`health`] | probe results, hysteresis decisions, health records and history; store traits; DynamoDB |
//! | [`audit`] | audit records; the reader trait; DynamoDB |
//! | [`provider`] | one client per WhatsApp server kind behind one trait, error classes, the registry |
//! | [`runtime`] | settings from the environment, AWS config, logs, EMF metrics |
//! | [`dynamo`], [`timestamp`] | what every DynamoDB adapter shares; the one RFC 3339 formatter |
//! | `testing` | in-memory fakes of every store trait (feature `testing`) |
//!
//! It has no Lambda dependency: it builds and tests on its own.

pub mod audit;
pub mod delivery;
pub mod dynamo;
pub mod egress;
pub mod health;
pub mod inbound;
pub mod outbound;
pub mod provider;
pub mod runtime;
pub mod secrets;
pub mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timestamp;

pub use secrets::Secret;
pub use tenant::{OpenedConfig, SealedConfig, TenantConfig, TenantId};

//! In-memory fakes of every store trait, for tests of the logic above them (feature `testing`:
//! never in a function's release build). Logic is tested on them in milliseconds, without
//! moto_server; what only DynamoDB can show (conditions as DynamoDB evaluates them,
//! transactions, indexes, TTL attributes, IAM) is tested against the DynamoDB adapters on
//! moto_server in `tests/`.
//!
//! Each fake keeps the semantics the logic relies on, and nothing more:
//!
//! - [`MemoryTenants`]: `create` refuses an existing tenant; `update` and `delete` are
//!   conditional on the version (`Conflict`, or `NotFound` when gone); a config update keeps
//!   the health check's attributes (status and counters); opaque page cursors.
//! - [`MemoryJournal`]: a config write and its audit record, both or neither.
//! - [`MemoryAudit`]: records newest first per tenant; the automatic switches across tenants.
//! - [`MemorySealer`]: a sealed secret opens only for the tenant and purpose it was sealed
//!   for (as KMS's encryption context does); the ciphertext holds nothing of the secret.
//! - [`MemoryDeliveries`]: the lock is won only when the record is absent, retrying, expired
//!   or its lock expired, together with a free slot of the tenant's rate window (both or
//!   neither); outcomes need the lock; receipts only move forwards, within the tenant.
//! - [`MemoryHealth`]: every tenant write is conditional on the version, status and counters
//!   the run read; a switch bumps the version.
//!
//! Each has a switch that makes it fail like an unreachable backend (`set_unavailable`) and
//! counters of the calls tests assert on.

mod audit;
mod delivery;
mod health;
mod secrets;
mod tenants;

pub use audit::MemoryAudit;
pub use delivery::MemoryDeliveries;
pub use health::MemoryHealth;
pub use secrets::MemorySealer;
pub use tenants::{MemoryJournal, MemoryTenants, TenantItem};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

/// An opaque cursor: the base64url of the last key of the page.
pub(crate) fn encode_cursor(last_key: &str) -> String {
    B64URL.encode(last_key.as_bytes())
}

/// The key a cursor made by [`encode_cursor`] holds, if it is one.
pub(crate) fn decode_cursor(cursor: &str) -> Option<String> {
    B64URL
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// The error every fake answers while it is "unavailable".
pub(crate) const UNAVAILABLE: &str = "the in-memory store is set unavailable";

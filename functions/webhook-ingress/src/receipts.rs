//! Delivery receipts: a GOWA `message.ack` moves the outbound record of each message id
//! from sent to delivered to read (never backwards).

use async_trait::async_trait;
use time::OffsetDateTime;
use wagate::TenantId;
use wagate::delivery::{DeliveryStore, ReceiptOutcome};

/// The one thing the ingress may do to delivery records.
#[async_trait]
pub trait ReceiptRecorder: Send + Sync {
    /// Applies `state` (the provider's receipt type) to the record of `provider_message_id`;
    /// returns what happened, as text for the log.
    async fn record(
        &self,
        tenant: &TenantId,
        provider_message_id: &str,
        state: &str,
        now: OffsetDateTime,
    ) -> Result<String, String>;
}

#[async_trait]
impl ReceiptRecorder for DeliveryStore {
    async fn record(
        &self,
        tenant: &TenantId,
        provider_message_id: &str,
        state: &str,
        now: OffsetDateTime,
    ) -> Result<String, String> {
        self.apply_receipt(tenant, provider_message_id, state, now)
            .await
            .map(|o| match o {
                ReceiptOutcome::Updated { from, to } => {
                    format!("updated {} -> {}", from.as_str(), to.as_str())
                }
                ReceiptOutcome::Unchanged { current } => {
                    format!("unchanged ({})", current.as_str())
                }
                ReceiptOutcome::NotFound => "no record (not sent through wagate)".into(),
                ReceiptOutcome::Ignored => "ignored state".into(),
            })
            .map_err(|e| e.to_string())
    }
}

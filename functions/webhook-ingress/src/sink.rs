//! Where accepted events go: the inbound SQS FIFO queue.

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use wagate::messages::InboundEvent;

/// SQS's message size limit (256 KiB); a larger event is cut down or refused.
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("queue send failed: {0}")]
pub struct SinkError(pub String);

/// Hands an accepted event to the platform. Returns the queue's message id.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn send(
        &self,
        event: &InboundEvent,
        dedup_id: &str,
        body: String,
    ) -> Result<String, SinkError>;
}

/// One `SendMessage` per event: group = tenant (per-tenant order), deduplication id from
/// tenant and provider event id (GOWA's retries of one event reach the platform once).
#[derive(Debug, Clone)]
pub struct SqsSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsSink {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

fn attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .expect("data type is set")
}

#[async_trait]
impl EventSink for SqsSink {
    async fn send(
        &self,
        event: &InboundEvent,
        dedup_id: &str,
        body: String,
    ) -> Result<String, SinkError> {
        let event_type = serde_json::to_value(event.event_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "other".into());
        let out = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(&event.tenant_id)
            .message_deduplication_id(dedup_id)
            .message_attributes("tenantId", attr(&event.tenant_id))
            .message_attributes("eventType", attr(&event_type))
            .message_body(body)
            .send()
            .await
            .map_err(|e| SinkError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(out.message_id.unwrap_or_default())
    }
}

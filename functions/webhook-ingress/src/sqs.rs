//! The inbound SQS FIFO queue: where accepted events go.

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use wagate::inbound::InboundEvent;

use crate::sink::{EventSink, SinkError};

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
        let out = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(&event.tenant_id)
            .message_deduplication_id(dedup_id)
            .message_attributes("tenantId", attr(&event.tenant_id))
            .message_attributes("eventType", attr(event.event_type.as_str()))
            .message_body(body)
            .send()
            .await
            .map_err(|e| SinkError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(out.message_id.unwrap_or_default())
    }
}

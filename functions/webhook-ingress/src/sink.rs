//! Where accepted events go: the platform's inbound queue, behind a trait so the handler is
//! tested without one (the SQS adapter is [`crate::sqs::SqsSink`]).

use async_trait::async_trait;
use wagate::inbound::InboundEvent;

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

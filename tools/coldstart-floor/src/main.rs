//! The cold-start floor: the least a Rust Lambda doing the ingress's job can be. It reads one
//! webhook event (payload v2), checks its `X-Hub-Signature-256` against `FLOOR_SECRET` and
//! sends the body to `INBOUND_QUEUE_URL` (one SQS `SendMessage`), with `lambda_runtime` and
//! the AWS SDK's default configuration: no config table, no KMS, no cache, no logging.
//! `tests/examples/coldstart.rs` starts it beside the four functions (BENCHMARKS.md); it is its
//! own package so that it builds in release with the functions' dependencies and nothing more.

use lambda_http::lambda_runtime::{self, Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = std::env::var("INBOUND_QUEUE_URL")?;
    let secret = std::env::var("FLOOR_SECRET")?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (sqs, queue, secret) = (sqs.clone(), queue.clone(), secret.clone());
        async move {
            let body = event.payload["body"].as_str().unwrap_or_default();
            let signature = event.payload["headers"]["x-hub-signature-256"]
                .as_str()
                .unwrap_or_default();
            if wagate::inbound::signature::sign_sha256(secret.as_bytes(), body.as_bytes())
                != signature
            {
                return Ok::<_, Error>(json!({ "statusCode": 401 }));
            }
            sqs.send_message()
                .queue_url(queue)
                .message_body(body)
                .message_group_id("floor")
                .message_deduplication_id(event.context.request_id)
                .send()
                .await?;
            Ok(json!({ "statusCode": 200 }))
        }
    }))
    .await
}

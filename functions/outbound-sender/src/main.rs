//! Wiring only: read the environment once, build the clients, serve.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use outbound_sender::deadline_from_ms;
use outbound_sender::settings::Environment;

use wagate::runtime::aws::Service;
use wagate::runtime::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wagate::runtime::telemetry::init();
    let env = Environment::from_env()?;
    let sdk = wagate::runtime::aws::load(&[Service::DynamoDb, Service::Kms]).await?;
    let sender = Arc::new(outbound_sender::aws::sender(&sdk, env)?);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let sender = sender.clone();
        async move {
            let deadline = deadline_from_ms(event.context.deadline);
            let outcome = sender.handle_batch(event.payload, deadline).await;
            // CloudWatch Embedded Metric Format: one line per batch.
            println!("{}", outcome.emf_line(time::OffsetDateTime::now_utc()));
            Ok::<SqsBatchResponse, Error>(outcome.response())
        }
    }))
    .await
}

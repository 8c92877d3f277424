//! Wiring only: read the environment once, build the clients, run one check per event.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use health_check::deadline_from_epoch_ms;
use health_check::settings::Environment;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

use wagate::runtime::aws::Service;
use wagate::runtime::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wagate::runtime::telemetry::init();
    let env = Environment::from_env()?;
    let sdk = wagate::runtime::aws::load(&[Service::DynamoDb, Service::Kms]).await?;
    let check = Arc::new(health_check::aws::health_check(&sdk, env)?);
    run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| {
        let check = check.clone();
        async move {
            // Finish a second before Lambda would stop us.
            let deadline = deadline_from_epoch_ms(event.context.deadline, Duration::from_secs(1));
            let report = check.run(deadline).await?;
            // CloudWatch Embedded Metric Format: one line per endpoint, switch and run.
            for line in report.emf_lines(time::OffsetDateTime::now_utc()) {
                println!("{line}");
            }
            report.log();
            Ok::<serde_json::Value, Error>(report.summary())
        }
    }))
    .await
}

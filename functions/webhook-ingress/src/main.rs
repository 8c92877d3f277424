//! Wiring only: read the environment once, build the clients, serve.

use std::sync::Arc;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::{Error, service_fn};
use webhook_ingress::settings::Environment;

use wagate::runtime::aws::Service;
use wagate::runtime::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wagate::runtime::telemetry::init();
    let env = Environment::from_env()?;
    let sdk = wagate::runtime::aws::load(&[Service::DynamoDb, Service::Kms, Service::Sqs]).await?;
    let app = Arc::new(webhook_ingress::aws::app(&sdk, env));
    // The raw payload v2 event (HTTP API or function URL), not lambda_http's `run`: its
    // conversion panics on a body flagged base64 that is not (handle_event answers 400).
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
            let app = app.clone();
            async move { Ok::<_, Error>(webhook_ingress::handle_event(&app, event.payload).await) }
        },
    ))
    .await
}

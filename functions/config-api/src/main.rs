//! Wiring only: read the settings once, build the clients, serve.

use std::sync::Arc;

use config_api::App;
use config_api::auth::Authenticator;
use config_api::settings::Settings;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::{Error, service_fn};
use wagate::egress::HttpClient;
use wagate::runtime::{aws::Service, config::FromEnv};
use wagate::secrets::kms::KmsSealer;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wagate::runtime::telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = wagate::runtime::aws::load(&[Service::DynamoDb, Service::Kms]).await?;
    let http = HttpClient::new(settings.app.egress.clone(), settings.app.http)?;
    let auth = Authenticator::new(settings.auth, http.clone()).await?;
    let sealer = KmsSealer::new(aws_sdk_kms::Client::new(&sdk), settings.app.kms_key_id);
    let app = Arc::new(App::new(
        config_api::store::dynamo::stores(aws_sdk_dynamodb::Client::new(&sdk), &settings.tables),
        Arc::new(sealer),
        auth,
        http,
        settings.app.egress,
        settings.webhook_base,
    ));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
            let app = app.clone();
            async move {
                Ok::<_, Error>(config_api::handle_event(&app, event.payload, event.context).await)
            }
        },
    ))
    .await
}

//! Wiring only: read the environment once, build the clients, serve.

use std::sync::Arc;

use config_api::App;
use config_api::auth::{AuthConfig, Authenticator, KeySource};
use lambda_http::{Error, run, service_fn};
use wagate::config::{AppConfig, Env};
use wagate::net::HttpClient;
use wagate::secrets::KmsSealer;
use wagate::store::DynamoTenantStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wagate::telemetry::init();
    let mut env = Env::from_process();
    let app_cfg = AppConfig::read(&mut env);
    let issuer = env.required("JWT_ISSUER");
    let audience = env.required("JWT_AUDIENCE");
    let keys = match (env.optional("JWT_JWKS"), env.optional("JWT_JWKS_URL")) {
        (Some(json), None) => Some(KeySource::Inline(json)),
        (None, Some(url)) => Some(KeySource::Url(url)),
        (Some(_), Some(_)) => {
            env.problem("set only one of JWT_JWKS and JWT_JWKS_URL");
            None
        }
        (None, None) => {
            env.problem("JWT_JWKS or JWT_JWKS_URL is missing");
            None
        }
    };
    env.finish()?;
    let (Some(app_cfg), Some(issuer), Some(audience), Some(keys)) =
        (app_cfg, issuer, audience, keys)
    else {
        return Err("invalid configuration".into());
    };

    let sdk = wagate::aws::load().await;
    let http = HttpClient::new(app_cfg.egress.clone(), app_cfg.http)?;
    let auth = Authenticator::new(
        AuthConfig {
            issuer,
            audience,
            keys,
        },
        http,
    )
    .await?;
    let app = Arc::new(App {
        store: Arc::new(DynamoTenantStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            app_cfg.tenants_table,
        )),
        sealer: Arc::new(KmsSealer::new(
            aws_sdk_kms::Client::new(&sdk),
            app_cfg.kms_key_id,
        )),
        auth,
        egress: app_cfg.egress,
    });

    run(service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Error>(config_api::handle(&app, req).await) }
    }))
    .await
}

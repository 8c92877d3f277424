//! # config-api
//!
//! Tenant WhatsApp settings behind API Gateway (HTTP API, payload v2):
//!
//! The routes, their access (tenant or admin scope, or none for the page) and their handlers
//! are one table, [`router::ROUTES`], which the dispatcher, the OpenAPI test and the isolation
//! suite all read; `openapi.yaml` documents each one.
//!
//! Every change writes an audit record in the same transaction ([`audit::Journal`]).
//!
//! Every route but the page authenticates the caller ([`auth`]). Secrets are sealed with KMS
//! before they are stored and never returned.
//!
//! ## Layers
//!
//! [`router`] (the route table: method + path → access → handler) → [`handlers`] (one module
//! per resource, its DTOs beside it) → [`store`] (traits; DynamoDB in `store/dynamo.rs`,
//! in-memory in `store/memory.rs`). Errors are typed ([`error::ApiError`]) and mapped to
//! statuses in one place. `main.rs` reads [`settings::Settings`], builds the clients, runs
//! [`handle_event`] on each raw API Gateway event.
//! See docs/architecture.md.

pub mod audit;
pub mod auth;
pub mod conntest;
pub mod error;
pub mod fleet;
pub mod handlers;
pub mod request;
pub mod response;
pub mod router;
pub mod settings;
pub mod store;

use std::sync::Arc;

use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::{Instrument, info, warn};
use wagate::egress::{EgressPolicy, HttpClient};
use wagate::provider::Providers;
use wagate::runtime::apigw;
use wagate::runtime::config::PublicWebhookBase;
use wagate::secrets::SecretSealer;
use wagate::tenant::TenantId;

use crate::audit::Journal;
use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::store::Stores;

pub use handlers::config::dto;
pub use handlers::dashboard;
pub use request::{DEFAULT_PAGE, MAX_BODY_BYTES, MAX_PAGE, parse_json};
pub use router::ROUTES;

/// What the handlers need; built once per instance in `main`.
pub struct App {
    /// Every table, behind the store traits.
    pub stores: Stores,
    /// Config writes with their audit records, and the audit log (over `stores`).
    pub journal: Journal,
    pub sealer: Arc<dyn SecretSealer>,
    pub auth: Authenticator,
    pub egress: EgressPolicy,
    /// Connection tests and placement probes reach WhatsApp servers through it.
    pub http: HttpClient,
    /// One client per server kind over `http`, built once per instance (connection tests,
    /// device routes, placement probes).
    pub providers: Providers,
    /// `PUBLIC_WEBHOOK_BASE_URL`: where tenants' servers post their webhooks (unset: this
    /// HTTP API's own URL).
    pub webhook_base: PublicWebhookBase,
    /// The status route's memory of which stored secrets KMS refuses, by config version.
    pub secret_checks: handlers::status::SecretChecks,
    /// The status route's memory of each tenant's live standby readiness, by config version
    /// (issue 15: a dashboard polling the status does not call the standby's server and
    /// open its credential on every poll).
    pub standby_cache: handlers::status::StandbyCache,
}

impl App {
    pub fn new(
        stores: Stores,
        sealer: Arc<dyn SecretSealer>,
        auth: Authenticator,
        http: HttpClient,
        egress: EgressPolicy,
        webhook_base: PublicWebhookBase,
    ) -> Self {
        Self {
            journal: Journal::new(stores.journal.clone(), stores.audit.clone()),
            stores,
            sealer,
            auth,
            egress,
            providers: Providers::new(http.clone()),
            http,
            webhook_base,
            secret_checks: Default::default(),
            standby_cache: Default::default(),
        }
    }

    /// The tenant's full webhook URL, as its WhatsApp server must call it: the configured
    /// public base, else the HTTP API's own URL as this request reached it.
    pub(crate) fn webhook_url(&self, req: &Request, tenant: &TenantId) -> Option<String> {
        self.webhook_base
            .webhook_url(tenant, api_origin(req).as_deref())
    }
}

/// The HTTP API's own URL as API Gateway reports it for this request: `https://` and the
/// domain name, plus the stage unless it is `$default`.
fn api_origin(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            let host = ctx.domain_name.as_deref().filter(|h| !h.is_empty())?;
            Some(match ctx.stage.as_deref() {
                Some(stage) if !stage.is_empty() && stage != "$default" => {
                    format!("https://{host}/{stage}")
                }
                _ => format!("https://{host}"),
            })
        }
        _ => None,
    }
}

/// One raw API Gateway HTTP API (payload v2) event, answered: what `main.rs` runs. The body is
/// decoded here ([`wagate::runtime::apigw`]), so one flagged base64 that is not gets 400
/// `invalid_body` instead of a panic in the runtime's conversion.
/// `context` is the invocation's (its request id names the request in every log line).
pub async fn handle_event(
    app: &App,
    event: ApiGatewayV2httpRequest,
    context: lambda_http::Context,
) -> ApiGatewayV2httpResponse {
    let (req, body) = apigw::request(event);
    let req = req.with_lambda_context(context);
    let resp = match body {
        Ok(()) => handle(app, req).await,
        Err(e) => {
            info!(status = 400, error = "invalid_body", "request refused: {e}");
            ApiError::BadRequest(e.to_string()).into_response()
        }
    };
    apigw::response(resp)
}

/// Handles one request; never fails (errors become responses).
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let span = tracing::info_span!("request", %method, path = %path, request_id = %request_id, tenant_id = tracing::field::Empty, caller = tracing::field::Empty);
    async move {
        let resp = match router::dispatch(app, &req).await {
            Ok(resp) => resp,
            Err(e) => {
                let status = e.status();
                if status.is_server_error() {
                    warn!(status = status.as_u16(), error = %e, cause = ?e, "request failed");
                } else {
                    info!(
                        status = status.as_u16(),
                        error = e.code(),
                        "request refused"
                    );
                }
                e.into_response()
            }
        };
        info!(status = resp.status().as_u16(), "request done");
        resp
    }
    .instrument(span)
    .await
}

//! `GET /tenants/{tenantId}/meta-callback` (issue 16): what the tenant pastes into Meta's
//! app console for each of its Meta Cloud API endpoints. Meta's webhook callback cannot be set
//! through an API the way GOWA's, WAHA's and Evolution's can: the tenant enters the callback
//! URL and the verify token in the app's WhatsApp configuration, and Meta checks them at once
//! with a `GET` handshake on the ingress, which records `verifiedAt` when it passes.
//!
//! What is shown: the callback URL (the tenant's ingress URL) and each Meta endpoint's verify
//! token, opened. The verify token is shown because it is what must be pasted and it
//! authorises nothing but answering Meta's handshake: a webhook `POST` is accepted only when
//! signed with the app secret, and sends need the access token. The app secret and the
//! access token are never shown (fingerprints only). Only the tenant's own callers and the
//! admin reach this route; the answer is `Cache-Control: no-store` and the token is never
//! logged.

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use wagate::secrets::Purpose;
use wagate::tenant::{Credentials, EndpointRole, ProviderKind, ValidationErrors};
use wagate::timestamp::rfc3339;

use crate::App;
use crate::error::ApiError;
use crate::handlers::devices::expected_url;
use crate::response::to_json;
use crate::router::Ctx;

/// One Meta endpoint's values to paste.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaEndpointCallback {
    pub role: EndpointRole,
    /// The phone number id the endpoint sends from (its device id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// To paste as "Verify token" in Meta's console.
    pub verify_token: String,
    pub app_secret_fingerprint: String,
    pub token_fingerprint: String,
}

/// The answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaCallbackView {
    pub tenant_id: String,
    /// To paste as "Callback URL" in Meta's console.
    pub callback_url: String,
    /// Whether Meta's handshake ever passed on the callback URL.
    pub verified: bool,
    /// When it last passed (absent: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// The subscription fields wagate reads: messages and their statuses.
    pub fields: [&'static str; 1],
    pub endpoints: Vec<MetaEndpointCallback>,
}

/// `GET /tenants/{tenantId}/meta-callback`: 404 without a config, 409 `state_conflict` when no
/// endpoint of the tenant is of kind `meta`, 409 `no_webhook_url` when the API does not know
/// its public URL.
pub async fn view(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, tenant) = (ctx.req, ctx.tenant()?.clone());
    let rec = app
        .stores
        .health
        .tenant_status(&tenant)
        .await?
        .ok_or(ApiError::NotFound)?;
    let cfg = &rec.config;
    let mut endpoints = Vec::new();
    let roles = std::iter::once((EndpointRole::Primary, &cfg.primary))
        .chain(cfg.backup.iter().map(|b| (EndpointRole::Backup, b)));
    for (role, e) in roles {
        if cfg.kind_of(e) != ProviderKind::Meta {
            continue;
        }
        let Credentials::Meta {
            token,
            app_secret,
            verify_token,
        } = &e.credentials
        else {
            // Validation keeps Meta endpoints on Meta credentials; a stored one without is
            // not a request error.
            return Err(ApiError::Internal(format!(
                "the {} endpoint is of kind meta without Meta credentials",
                role.as_str()
            )));
        };
        let field = format!("{}.credentials.verifyToken", role.as_str());
        let opened = app
            .sealer
            .open(tenant.as_str(), Purpose::WebhookSecret, verify_token)
            .await
            .map_err(|err| ApiError::secret(err, &field))?;
        endpoints.push(MetaEndpointCallback {
            role,
            phone_number_id: e.device_id.clone(),
            verify_token: opened.expose().to_string(),
            app_secret_fingerprint: app_secret.fingerprint.clone(),
            token_fingerprint: token.fingerprint.clone(),
        });
    }
    if endpoints.is_empty() {
        let mut errs = ValidationErrors::default();
        errs.push(
            "provider",
            "no endpoint of this tenant is a Meta Cloud API endpoint: only Meta's callback is pasted by hand (the other kinds are wired through their API)",
        );
        return Err(ApiError::StateConflict(errs));
    }
    let view = MetaCallbackView {
        tenant_id: tenant.to_string(),
        callback_url: expected_url(app, req, &tenant)?,
        verified: rec.activity.verified_at.is_some(),
        verified_at: rec.activity.verified_at.map(rfc3339),
        fields: ["messages"],
        endpoints,
    };
    to_json(StatusCode::OK, &view)
}

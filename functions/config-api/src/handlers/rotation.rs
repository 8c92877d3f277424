//! Rotation: `POST /tenants/{tenantId}/whatsapp-config/rotate-credential` (a server
//! credential replaced) and `…/rotate-webhook-secret` (a new webhook secret, shown once;
//! the current ones keep verifying for a grace).

use std::time::Duration;

use http::StatusCode;
use lambda_http::{Body, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::info;
use wagate::Secret;
use wagate::tenant::{EndpointRole, ValidationErrors, WebhookSecret};

use crate::App;
use crate::audit::Action;
use crate::error::ApiError;
use crate::handlers::config::dto::{ConfigView, CredentialsInput, SecretSlot, build_credentials};
use crate::handlers::{
    bump, change, check_version, commit, current, keep_all, now, seal, view_response,
};
use crate::request::{MAX_BODY_BYTES, expected_version, has_body, parse_json};
use crate::response::{to_json, with_etag};
use crate::router::Ctx;

/// Default grace of a rotated-out webhook secret.
pub const DEFAULT_GRACE_SECS: u64 = 24 * 3600;
/// Longest grace accepted.
pub const MAX_GRACE_SECS: u64 = 30 * 24 * 3600;
/// Random bytes in a generated webhook secret (hex encoded: twice as many characters).
pub const WEBHOOK_SECRET_BYTES: usize = 32;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateCredentialInput {
    /// Whose credential: `primary` (default) or `backup`.
    #[serde(default)]
    pub role: Option<EndpointRole>,
    /// The new credentials, secret included.
    pub credentials: CredentialsInput,
    #[serde(default)]
    pub version: Option<u64>,
}

/// `POST /tenants/{id}/whatsapp-config/rotate-credential`.
pub async fn rotate_credential(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller, tenant) = (ctx.req, ctx.caller()?, ctx.tenant()?.clone());
    let input: RotateCredentialInput = parse_json(req, MAX_BODY_BYTES)?;
    let expected = expected_version(req, input.version)?;
    let cur = current(app, &tenant).await?;
    check_version(&cur, expected)?;
    let role = input.role.unwrap_or_default();
    let field = role.as_str();
    let mut errs = ValidationErrors::default();
    // No previous secret: the new one is required.
    let creds = build_credentials(field, input.credentials, None, None, &mut errs);
    let Some(creds) = creds.filter(|_| errs.is_empty()) else {
        return Err(ApiError::Invalid(errs));
    };
    // The body is fine in itself; whether its type suits the stored endpoint's server kind
    // depends on the stored config: a mismatch is a conflict with it (409), not a bad body.
    let stored = match role {
        EndpointRole::Primary => Some(&cur.primary),
        EndpointRole::Backup => cur.backup.as_ref(),
    };
    if let Some(e) = stored {
        let kind = cur.kind_of(e);
        if !kind.credential_kinds().contains(&creds.kind()) {
            return Err(ApiError::state(
                &format!("{field}.credentials.type"),
                format!(
                    "{:?} is not supported by the stored {} server; use one of: {}",
                    creds.kind(),
                    kind.as_str(),
                    kind.credential_kinds().join(", ")
                ),
            ));
        }
    }
    let at = now();
    let mut next = bump(keep_all(&cur), &cur, at);
    match role {
        EndpointRole::Primary => next.primary.credentials = creds,
        EndpointRole::Backup => match next.backup.as_mut() {
            Some(b) => b.credentials = creds,
            None => {
                return Err(ApiError::state(
                    "role",
                    "is 'backup' but the tenant has no backup endpoint",
                ));
            }
        },
    }
    next.validate(&app.egress).map_err(ApiError::Invalid)?;
    let sealed = seal(app, next).await?;
    commit(app, &cur, &sealed, change(caller, Action::RotateCredential)).await?;
    info!(
        role = field,
        version = sealed.version,
        "server credential rotated"
    );
    Ok(view_response(app, req, StatusCode::OK, &sealed))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateWebhookInput {
    /// How long the current secrets keep verifying (default 86400, at most 30 days).
    #[serde(default)]
    pub grace_seconds: Option<u64>,
    /// An explicit expiry for the current secrets instead of a grace (may be in the past:
    /// they stop at once).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub old_expires_at: Option<OffsetDateTime>,
    /// Id of the new secret (default `whs-<unix time>`).
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub version: Option<u64>,
}

/// The answer of a webhook secret rotation: the only time the secret is shown.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotatedWebhookSecret {
    pub id: String,
    /// The new secret (hex). Shown once; configure it in the WhatsApp server now.
    pub secret: String,
    /// When the previous secrets stop verifying.
    #[serde(with = "time::serde::rfc3339")]
    pub previous_expire_at: OffsetDateTime,
    pub config: ConfigView,
    /// Issue 15: each endpoint wagate wired, re-wired with a new secret (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wiring: Vec<crate::handlers::devices::RewireOutcome>,
}

/// `POST /tenants/{id}/whatsapp-config/rotate-webhook-secret`.
pub async fn rotate_webhook_secret(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller, tenant) = (ctx.req, ctx.caller()?, ctx.tenant()?.clone());
    let input: RotateWebhookInput = if has_body(req) {
        parse_json(req, MAX_BODY_BYTES)?
    } else {
        RotateWebhookInput::default()
    };
    let mut errs = ValidationErrors::default();
    if input.grace_seconds.is_some() && input.old_expires_at.is_some() {
        errs.push(
            "graceSeconds",
            "give graceSeconds or oldExpiresAt, not both",
        );
    }
    if input.grace_seconds.is_some_and(|g| g > MAX_GRACE_SECS) {
        errs.push("graceSeconds", format!("must be 0 to {MAX_GRACE_SECS}"));
    }
    if let Some(id) = &input.id
        && (id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        errs.push("id", "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'");
    }
    let expected = expected_version(req, input.version)?;
    errs.into_result().map_err(ApiError::Invalid)?;
    let cur = current(app, &tenant).await?;
    check_version(&cur, expected)?;
    let at = now();
    let old_expiry = input.old_expires_at.unwrap_or_else(|| {
        at + Duration::from_secs(input.grace_seconds.unwrap_or(DEFAULT_GRACE_SECS))
    });
    let id = input.id.unwrap_or_else(|| {
        format!(
            "whs-{}-{:04x}",
            at.unix_timestamp(),
            rand::rng().next_u32() & 0xffff
        )
    });
    let mut bytes = [0u8; WEBHOOK_SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let secret = Secret::new(hex::encode(bytes));

    let mut next = bump(keep_all(&cur), &cur, at);
    // Secrets already expired go; current ones expire at the end of the grace (or keep an
    // earlier expiry they already had).
    next.webhook_secrets.retain(|w| w.is_current(at));
    for w in &mut next.webhook_secrets {
        w.expires_at = Some(match w.expires_at {
            Some(e) if e < old_expiry => e,
            _ => old_expiry,
        });
    }
    if next.webhook_secrets.iter().any(|w| w.id == id) {
        return Err(ApiError::state(
            "id",
            "a current webhook secret already has this id",
        ));
    }
    next.webhook_secrets.push(WebhookSecret {
        id: id.clone(),
        secret: SecretSlot::New(secret.clone()),
        expires_at: None,
    });
    // The input was checked above: what is left (e.g. a sixth current secret) is the
    // stored config's doing.
    next.validate(&app.egress)
        .map_err(ApiError::StateConflict)?;
    let sealed = seal(app, next).await?;
    let mut ch = change(caller, Action::RotateWebhookSecret);
    ch.detail = Some(format!(
        "new secret {id}; previous secrets expire at {}",
        wagate::timestamp::rfc3339(old_expiry)
    ));
    commit(app, &cur, &sealed, ch).await?;
    info!(secret_id = %id, version = sealed.version, "webhook secret rotated");
    // Issue 15: the endpoints wagate wired get a new wired secret pushed to their server
    // (their old one now expires with the grace); the answer shows the stored config after it.
    let wiring =
        crate::handlers::devices::rewire_after_rotation(app, req, caller, &tenant, &cur).await;
    let sealed = if wiring.is_empty() {
        sealed
    } else {
        current(app, &tenant).await?
    };
    let body = RotatedWebhookSecret {
        id,
        secret: secret.expose().to_string(),
        previous_expire_at: old_expiry,
        config: ConfigView::from(&sealed).with_webhook_url(app.webhook_url(req, &tenant)),
        wiring,
    };
    Ok(with_etag(to_json(StatusCode::OK, &body)?, sealed.version))
}

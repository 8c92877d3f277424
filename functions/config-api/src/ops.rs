//! The operations beyond CRUD: connection tests, rotation, switching, the audit log, the
//! dashboard status, delivery records, and export/import. Every change goes through
//! [`crate::audit::Journal`] (config and audit record in one transaction) and is
//! conditional on the version it was computed from.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::info;
use wagate::Secret;
use wagate::delivery::store::DeliveryReader;
use wagate::delivery::{DeliveryError, DeliveryRecord};
use wagate::health::EndpointHealth;
use wagate::secrets::Purpose;
use wagate::tenant::dynamo::{from_item, to_item};
use wagate::tenant::{
    ConnectionStatus, Credentials, Endpoint, EndpointRole, SealedConfig, TenantConfig, TenantId,
    ValidationErrors, WebhookSecret, normalize_base_url,
};

use crate::audit::{Action, AuditEntry, Change, Moved};
use crate::auth::Caller;
use crate::conntest::{EndpointResult, TestReport, test_endpoint};
use crate::dto::{CredentialsInput, EndpointInput, SecretSlot, build_credentials, build_endpoint};
use crate::error::ApiError;
use crate::{App, change, if_match, json_response, now, parse_json, seal, view_response};

/// Default grace of a rotated-out webhook secret.
pub const DEFAULT_GRACE_SECS: u64 = 24 * 3600;
/// Longest grace accepted.
pub const MAX_GRACE_SECS: u64 = 30 * 24 * 3600;
/// Random bytes in a generated webhook secret (hex encoded: twice as many characters).
pub const WEBHOOK_SECRET_BYTES: usize = 32;
/// Largest import document.
pub const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;
/// Format tag of an export document.
pub const EXPORT_FORMAT: &str = "wagate-config-export/1";

pub(crate) fn to_json<T: Serialize>(status: StatusCode, v: &T) -> Result<Response<Body>, ApiError> {
    Ok(json_response(
        status,
        serde_json::to_string(v).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

fn has_body(req: &Request) -> bool {
    !req.body().as_ref().is_empty()
}

async fn current(app: &App, tenant: &TenantId) -> Result<SealedConfig, ApiError> {
    app.store.get(tenant).await?.ok_or(ApiError::NotFound)
}

/// The version the caller based its change on: `If-Match` and/or a body `version`.
fn expected_version(req: &Request, body: Option<u64>) -> Result<Option<u64>, ApiError> {
    match (if_match(req)?, body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::VersionsDisagree(h, b)),
        (Some(v), _) | (None, Some(v)) => Ok(Some(v)),
        (None, None) => Ok(None),
    }
}

fn check_version(cur: &SealedConfig, expected: Option<u64>) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != cur.version => Err(ApiError::Conflict(v)),
        _ => Ok(()),
    }
}

/// Writes `next` over `cur` with an audit record; a lost race is 409.
async fn commit(
    app: &App,
    cur: &SealedConfig,
    next: &SealedConfig,
    change: Change<'_>,
) -> Result<(), ApiError> {
    app.journal
        .update(cur, next, change)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => ApiError::Conflict(cur.version),
            other => other,
        })
}

/// A stored config with every secret slot kept as is.
pub(crate) fn keep_all(cfg: &SealedConfig) -> TenantConfig<SecretSlot> {
    let slots: Vec<SecretSlot> = cfg
        .secret_slots()
        .into_iter()
        .map(|(_, s)| SecretSlot::Keep(s.clone()))
        .collect();
    cfg.clone()
        .with_secrets(slots)
        .expect("one slot per secret, by construction")
}

/// The next version of a config: version + 1, `updatedAt` now.
fn bump<S>(mut cfg: TenantConfig<S>, cur: &SealedConfig, at: OffsetDateTime) -> TenantConfig<S> {
    cfg.version = cur.version + 1;
    cfg.updated_at = at;
    cfg
}

/// Opens the secret of an endpoint under construction (new ones are plaintext already).
/// `field` names the endpoint in errors (`primary`, `backup`, `candidate`, `endpoint`): a
/// stored secret KMS refuses is 409 `secret_unusable` naming `<field>.credentials.<name>`.
pub(crate) async fn open_endpoint(
    app: &App,
    tenant: &TenantId,
    field: &str,
    e: &Endpoint<SecretSlot>,
) -> Result<Endpoint<Secret>, ApiError> {
    let secret_field = format!(
        "{field}.credentials.{}",
        match &e.credentials {
            Credentials::ApiKey { .. } => "key",
            Credentials::Bearer { .. } => "token",
            _ => "password",
        }
    );
    let open = |s: &SecretSlot| {
        let s = s.clone();
        let secret_field = &secret_field;
        async move {
            match s {
                SecretSlot::New(p) => Ok::<_, ApiError>(p),
                SecretSlot::Keep(k) => app
                    .sealer
                    .open(tenant.as_str(), Purpose::ServerCredential, &k)
                    .await
                    .map_err(|e| ApiError::secret(e, secret_field)),
            }
        }
    };
    let credentials = match &e.credentials {
        Credentials::None => Credentials::None,
        Credentials::Basic { username, password } => Credentials::Basic {
            username: username.clone(),
            password: open(password).await?,
        },
        Credentials::ApiKey { key } => Credentials::ApiKey {
            key: open(key).await?,
        },
        Credentials::Bearer { token } => Credentials::Bearer {
            token: open(token).await?,
        },
    };
    Ok(Endpoint {
        base_url: e.base_url.clone(),
        credentials,
        device_id: e.device_id.clone(),
        region: e.region.clone(),
        webhook_source_cidrs: e.webhook_source_cidrs.clone(),
    })
}

fn role_str(r: EndpointRole) -> &'static str {
    match r {
        EndpointRole::Primary => "primary",
        EndpointRole::Backup => "backup",
    }
}

// ---------------------------------------------------------------------------------------
// Connection test
// ---------------------------------------------------------------------------------------

/// Body of the test route when it tests a candidate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestInput {
    /// The candidate server. Credentials may be left out when its base URL is one of the
    /// tenant's saved endpoints: the saved ones are used.
    pub candidate: EndpointInput,
}

/// Builds a candidate endpoint: validated like a config's primary (host name looked up
/// too), credentials kept from the saved endpoint of the same base URL when left out.
async fn candidate_endpoint(
    app: &App,
    cur: Option<&SealedConfig>,
    provider: wagate::tenant::ProviderKind,
    field: &str,
    input: EndpointInput,
) -> Result<Endpoint<SecretSlot>, ApiError> {
    let url = normalize_base_url(&input.base_url).ok();
    let prev = cur.and_then(|c| {
        std::iter::once(&c.primary)
            .chain(c.backup.as_ref())
            .find(|e| Some(&e.base_url) == url.as_ref())
    });
    let mut errs = ValidationErrors::default();
    let built = build_endpoint(field, input, prev, &mut errs);
    let Some(e) = built.filter(|_| errs.is_empty()) else {
        return Err(ApiError::from_build(errs));
    };
    // Structural checks (URL scheme, SSRF guard, credential kind, device id, region), as on
    // a saved config, then the host name's addresses.
    let mut errs = wagate::tenant::validate_endpoint_alone(field, provider, &e, &app.egress)
        .err()
        .unwrap_or_default();
    let url_field = format!("{field}.baseUrl");
    if !errs.0.iter().any(|f| f.field == url_field) {
        errs.extend(crate::check_hosts(app, [(url_field, e.base_url.as_str())]).await);
    }
    errs.into_result().map_err(ApiError::Invalid)?;
    Ok(e)
}

/// `POST /tenants/{id}/whatsapp-config/test`: no body tests the saved endpoints (primary,
/// and backup if set); `{"candidate": {...}}` tests a server before it is saved (the tenant
/// need not have a config yet). Always 200 with one result per check; `ok` says whether
/// everything passed.
pub async fn test(app: &App, req: &Request, tenant: TenantId) -> Result<Response<Body>, ApiError> {
    let results = if has_body(req) {
        let input: TestInput = parse_json(req, crate::MAX_BODY_BYTES)?;
        let cur = app.store.get(&tenant).await?;
        let provider = cur
            .as_ref()
            .map(|c| c.provider)
            .unwrap_or(wagate::tenant::ProviderKind::Gowa);
        let cand =
            candidate_endpoint(app, cur.as_ref(), provider, "candidate", input.candidate).await?;
        let opened = open_endpoint(app, &tenant, "candidate", &cand).await?;
        vec![test_endpoint(&app.http, provider, "candidate", &opened).await]
    } else {
        // Only the server credentials are opened (a webhook secret is not needed here).
        let cur = keep_all(&current(app, &tenant).await?);
        let primary = open_endpoint(app, &tenant, "primary", &cur.primary).await?;
        let backup = match &cur.backup {
            Some(b) => Some(open_endpoint(app, &tenant, "backup", b).await?),
            None => None,
        };
        let mut out = vec![test_endpoint(&app.http, cur.provider, "primary", &primary).await];
        if let Some(b) = &backup {
            out.push(test_endpoint(&app.http, cur.provider, "backup", b).await);
        }
        // Issue 15: the "webhook wired" check of each saved endpoint.
        crate::devices::attach_webhook_checks(
            app,
            req,
            &tenant,
            &mut out,
            &primary,
            backup.as_ref(),
        )
        .await?;
        out
    };
    info!(ok = results.iter().all(|r| r.ok), "connection test done");
    to_json(StatusCode::OK, &report(&tenant, results))
}

fn report(tenant: &TenantId, results: Vec<EndpointResult>) -> TestReport {
    TestReport {
        tenant_id: tenant.to_string(),
        ok: results.iter().all(|r| r.ok),
        results,
    }
}

// ---------------------------------------------------------------------------------------
// Rotation
// ---------------------------------------------------------------------------------------

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
pub async fn rotate_credential(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let input: RotateCredentialInput = parse_json(req, crate::MAX_BODY_BYTES)?;
    let expected = expected_version(req, input.version)?;
    let cur = current(app, &tenant).await?;
    check_version(&cur, expected)?;
    let role = input.role.unwrap_or_default();
    let field = role_str(role);
    let mut errs = ValidationErrors::default();
    // No previous secret: the new one is required.
    let creds = build_credentials(field, input.credentials, None, &mut errs);
    let Some(creds) = creds.filter(|_| errs.is_empty()) else {
        return Err(ApiError::Invalid(errs));
    };
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
    pub config: crate::dto::ConfigView,
    /// Issue 15: each endpoint wagate wired, re-wired with a new secret (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wiring: Vec<crate::devices::RewireOutcome>,
}

/// `POST /tenants/{id}/whatsapp-config/rotate-webhook-secret`.
pub async fn rotate_webhook_secret(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let input: RotateWebhookInput = if has_body(req) {
        parse_json(req, crate::MAX_BODY_BYTES)?
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
        old_expiry
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    ));
    commit(app, &cur, &sealed, ch).await?;
    info!(secret_id = %id, version = sealed.version, "webhook secret rotated");
    // Issue 15: the endpoints wagate wired get a new wired secret pushed to their server
    // (their old one now expires with the grace); the answer shows the stored config after it.
    let wiring = crate::devices::rewire_after_rotation(app, req, caller, &tenant, &cur).await;
    let sealed = if wiring.is_empty() {
        sealed
    } else {
        current(app, &tenant).await?
    };
    let body = RotatedWebhookSecret {
        id,
        secret: secret.expose().to_string(),
        previous_expire_at: old_expiry,
        config: crate::dto::ConfigView::from(&sealed)
            .with_webhook_url(app.webhook_url(req, &tenant)),
        wiring,
    };
    let mut resp = to_json(StatusCode::OK, &body)?;
    if let Ok(etag) = http::HeaderValue::from_str(&format!("\"{}\"", sealed.version)) {
        resp.headers_mut().insert(http::header::ETAG, etag);
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------
// Switching
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchAction {
    /// Send traffic to `to` (primary or backup).
    Activate,
    /// Exchange primary and backup; traffic goes to the new primary (the old backup).
    Swap,
    /// Replace the `role` endpoint by `endpoint`, a candidate that must pass the test.
    Replace,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwitchInput {
    pub action: SwitchAction,
    #[serde(default)]
    pub to: Option<EndpointRole>,
    #[serde(default)]
    pub role: Option<EndpointRole>,
    #[serde(default)]
    pub endpoint: Option<EndpointInput>,
    #[serde(default)]
    pub version: Option<u64>,
}

/// `POST /tenants/{id}/whatsapp-config/switch`: needs the version (If-Match or body); the
/// endpoint that will carry traffic (or the replacement) must pass the connection test
/// first (422 with the report otherwise); the write is conditional on the version read, so
/// a switch racing another change is 409.
pub async fn switch(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let input: SwitchInput = parse_json(req, crate::MAX_BODY_BYTES)?;
    let expected = expected_version(req, input.version)?.ok_or(ApiError::VersionRequired)?;
    let mut errs = ValidationErrors::default();
    match input.action {
        SwitchAction::Activate => {
            if input.to.is_none() {
                errs.push("to", "is required for activate (primary or backup)");
            }
            if input.role.is_some() || input.endpoint.is_some() {
                errs.push("action", "activate takes only 'to'");
            }
        }
        SwitchAction::Swap => {
            if input.to.is_some() || input.role.is_some() || input.endpoint.is_some() {
                errs.push("action", "swap takes no other field");
            }
        }
        SwitchAction::Replace => {
            if input.role.is_none() {
                errs.push("role", "is required for replace (primary or backup)");
            }
            if input.endpoint.is_none() {
                errs.push("endpoint", "is required for replace");
            }
            if input.to.is_some() {
                errs.push("to", "is not used by replace");
            }
        }
    }
    errs.into_result().map_err(ApiError::Invalid)?;
    let cur = current(app, &tenant).await?;
    check_version(&cur, Some(expected))?;
    let at = now();
    let mut next = bump(keep_all(&cur), &cur, at);
    let no_backup = || ApiError::state("backup", "the tenant has no backup endpoint");
    // The replaced role, for the audit record (a switch or swap moves the active endpoint).
    let mut replaced = None;
    // `field`: where the tested endpoint's saved secret lives, for an error naming it.
    let (action, tested, role_name, field) = match input.action {
        SwitchAction::Activate => {
            let to = input.to.unwrap_or_default();
            if to == EndpointRole::Backup && cur.backup.is_none() {
                return Err(no_backup());
            }
            if to == cur.active_endpoint {
                return Err(ApiError::state(
                    "to",
                    format!("the {} endpoint is already active", role_str(to)),
                ));
            }
            next.active_endpoint = to;
            (
                Action::Switch,
                next.active().clone(),
                role_str(to),
                role_str(to),
            )
        }
        SwitchAction::Swap => {
            let backup = next.backup.take().ok_or_else(no_backup)?;
            next.backup = Some(std::mem::replace(&mut next.primary, backup));
            next.active_endpoint = EndpointRole::Primary;
            (Action::Swap, next.primary.clone(), "primary", "backup")
        }
        SwitchAction::Replace => {
            let role = input.role.unwrap_or_default();
            let ep = input.endpoint.expect("checked above");
            let cand = candidate_endpoint(app, Some(&cur), cur.provider, "endpoint", ep).await?;
            match role {
                EndpointRole::Primary => next.primary = cand.clone(),
                EndpointRole::Backup => next.backup = Some(cand.clone()),
            }
            replaced = Some(role);
            (Action::ReplaceEndpoint, cand, role_str(role), "endpoint")
        }
    };
    // The input was checked above; what is left (e.g. a replacement equal to the other
    // endpoint) is how it meets the stored config.
    next.validate(&app.egress)
        .map_err(ApiError::StateConflict)?;
    let opened = open_endpoint(app, &tenant, field, &tested).await?;
    let result = test_endpoint(&app.http, cur.provider, role_name, &opened).await;
    if !result.ok {
        let rep = serde_json::to_value(report(&tenant, vec![result]))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        return Err(ApiError::TestFailed(Box::new(rep)));
    }
    // Issue 15: an endpoint wagate wired takes the traffic only while its webhook is wired.
    let wired_role = match input.action {
        SwitchAction::Activate => input.to,
        SwitchAction::Swap => Some(EndpointRole::Backup),
        SwitchAction::Replace => None,
    };
    if let Some(role) = wired_role {
        crate::devices::switch_precondition(app, req, &cur, role, &opened).await?;
    }
    let sealed = seal(app, next).await?;
    let mut ch = change(caller, action);
    ch.detail = Some(format!(
        "active endpoint {} ({})",
        role_str(sealed.active_endpoint),
        sealed.active().base_url
    ));
    ch.moved = Some(match replaced {
        Some(role) => Moved {
            from: role_str(role).into(),
            to: role_str(role).into(),
            from_endpoint: match role {
                EndpointRole::Primary => Some(cur.primary.base_url.clone()),
                EndpointRole::Backup => cur.backup.as_ref().map(|b| b.base_url.clone()),
            },
            to_endpoint: tested.base_url.clone(),
        },
        None => Moved {
            from: role_str(cur.active_endpoint).into(),
            to: role_str(sealed.active_endpoint).into(),
            from_endpoint: Some(cur.active().base_url.clone()),
            to_endpoint: sealed.active().base_url.clone(),
        },
    });
    commit(app, &cur, &sealed, ch).await?;
    info!(
        action = action.as_str(),
        version = sealed.version,
        "endpoint switched"
    );
    Ok(view_response(app, req, StatusCode::OK, &sealed))
}

// ---------------------------------------------------------------------------------------
// Audit, status, messages
// ---------------------------------------------------------------------------------------

fn page_limit(req: &Request) -> Result<(u32, Option<String>), ApiError> {
    let params = req.query_string_parameters();
    let limit = match params.first("limit") {
        None => crate::DEFAULT_PAGE,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=crate::MAX_PAGE).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be 1 to {}", crate::MAX_PAGE))
            })?,
    };
    Ok((limit, params.first("cursor").map(str::to_string)))
}

/// `GET /tenants/{id}/audit?limit=&cursor=`: newest first. Readable after a delete too.
pub async fn audit(app: &App, req: &Request, tenant: TenantId) -> Result<Response<Body>, ApiError> {
    let (limit, cursor) = page_limit(req)?;
    let page = app.journal.page(&tenant, cursor.as_deref(), limit).await?;
    to_json(StatusCode::OK, &page)
}

/// One of the tenant's endpoints in its status.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    pub role: EndpointRole,
    pub base_url: String,
    /// The device (session) the tenant uses on that server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub active: bool,
    /// The health check's record of the server (absent until it probed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<EndpointHealth>,
}

/// `GET /tenants/{id}/status`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    pub tenant_id: String,
    pub is_active: bool,
    pub connection_status: ConnectionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_status_at: Option<String>,
    /// When the health check last looked at the tenant: the last probe of its active
    /// server (`lastProbeAt` of the endpoint record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_at: Option<String>,
    pub active_endpoint: EndpointRole,
    pub active_base_url: String,
    /// The active server's last `/health` latency in milliseconds with microsecond
    /// precision (absent while it does not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Consecutive health-check runs in which the active endpoint was unusable.
    pub consecutive_failures: u32,
    pub version: u64,
    pub endpoints: Vec<EndpointStatus>,
    /// Recent failovers, failbacks and manual switches, newest first.
    pub recent_switches: Vec<AuditEntry>,
    /// Recent failures the health check recorded on the tenant's servers.
    pub recent_failures: Vec<FailureNote>,
    /// Stored secrets KMS refuses to open (e.g. a ciphertext copied from another tenant):
    /// the config cannot be used until each is set again. Absent when every secret opens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unusable_secrets: Vec<UnusableSecret>,
    /// Where the tenant's WhatsApp server must post its webhooks (as in the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

/// A stored secret that cannot be opened, by field.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnusableSecret {
    /// e.g. `primary.credentials.password`, `webhookSecrets[0].secret`.
    pub field: String,
    pub reason: String,
}

/// Every secret slot of a stored config with its field name and purpose.
fn secret_fields(cfg: &SealedConfig) -> Vec<(String, Purpose, &wagate::secrets::SealedSecret)> {
    fn cred<'a>(
        role: &str,
        c: &'a Credentials<wagate::secrets::SealedSecret>,
    ) -> Option<(String, Purpose, &'a wagate::secrets::SealedSecret)> {
        let name = match c {
            Credentials::ApiKey { .. } => "key",
            Credentials::Bearer { .. } => "token",
            _ => "password",
        };
        c.secret().map(|s| {
            (
                format!("{role}.credentials.{name}"),
                Purpose::ServerCredential,
                s,
            )
        })
    }
    let mut out: Vec<_> = cred("primary", &cfg.primary.credentials)
        .into_iter()
        .collect();
    if let Some(b) = &cfg.backup {
        out.extend(cred("backup", &b.credentials));
    }
    for (i, w) in cfg.webhook_secrets.iter().enumerate() {
        out.push((
            format!("webhookSecrets[{i}].secret"),
            Purpose::WebhookSecret,
            &w.secret,
        ));
    }
    out
}

/// The stored secrets KMS refuses to open. A KMS outage is not reported here (it says
/// nothing about the secrets; the status still shows health).
async fn unusable_secrets(app: &App, cfg: &SealedConfig) -> Vec<UnusableSecret> {
    let tenant = cfg.tenant_id.as_str();
    let fields = secret_fields(cfg);
    let opened = futures_util::future::join_all(
        fields
            .iter()
            .map(|(_, purpose, sealed)| app.sealer.open(tenant, *purpose, sealed)),
    )
    .await;
    fields
        .iter()
        .zip(opened)
        .filter_map(|((field, _, _), r)| match r {
            Err(e) if e.is_unusable() => {
                tracing::warn!(field = %field, error = %e, "a stored secret cannot be opened");
                Some(UnusableSecret {
                    field: field.clone(),
                    reason: "KMS refuses to open it (sealed for another tenant or purpose, or damaged); set it again".into(),
                })
            }
            Err(e) => {
                tracing::warn!(field = %field, error = %e, "could not check a stored secret");
                None
            }
            Ok(_) => None,
        })
        .collect()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureNote {
    pub base_url: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub consecutive_failures: u32,
}

/// How many audit records the status looks through for switches.
const STATUS_AUDIT_SCAN: u32 = 100;
const STATUS_SWITCHES: usize = 10;

async fn endpoint_records(
    app: &App,
    keys: &[String],
) -> Result<HashMap<String, EndpointHealth>, ApiError> {
    let mut out = HashMap::new();
    for k in keys {
        let resp = app
            .journal
            .client()
            .get_item()
            .table_name(&app.endpoints_table)
            .key("endpointKey", AttributeValue::S(k.clone()))
            .send()
            .await
            .map_err(|e| ApiError::Unavailable(DisplayErrorContext(e).to_string()))?;
        if let Some(item) = resp.item
            && let Ok(rec) = serde_dynamo::from_item::<_, EndpointHealth>(item)
        {
            out.insert(k.clone(), rec);
        }
    }
    Ok(out)
}

pub async fn status(
    app: &App,
    req: &Request,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let raw = app
        .journal
        .client()
        .get_item()
        .table_name(app.journal.tenants_table())
        .key("tenantId", AttributeValue::S(tenant.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| ApiError::Unavailable(DisplayErrorContext(e).to_string()))?
        .item
        .ok_or(ApiError::NotFound)?;
    let s = |k: &str| raw.get(k).and_then(|v| v.as_s().ok()).cloned();
    let failures = raw
        .get("healthActiveFailures")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // The health check writes a tenant only when its status or counters change; the
    // last check is the last probe of the tenant's active server (one record per server
    // and run), or, before any record exists, the tenant's last written check.
    let (stored_check_at, status_at) = (s("healthCheckedAt"), s("connectionStatusAt"));
    let cfg = from_item(raw)?;
    let mut keys = vec![cfg.primary.base_url.clone()];
    if let Some(b) = &cfg.backup
        && b.base_url != cfg.primary.base_url
    {
        keys.push(b.base_url.clone());
    }
    let mut health = endpoint_records(app, &keys).await?;
    let active = cfg.active().base_url.clone();
    let last_check_at = health
        .get(&active)
        .and_then(|h| {
            h.last_probe_at
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .or(stored_check_at);
    let mut endpoints = vec![EndpointStatus {
        role: EndpointRole::Primary,
        base_url: cfg.primary.base_url.clone(),
        device_id: cfg.primary.device_id.clone(),
        active: cfg.active_endpoint == EndpointRole::Primary || cfg.backup.is_none(),
        health: health.get(&cfg.primary.base_url).cloned(),
    }];
    if let Some(b) = &cfg.backup {
        endpoints.push(EndpointStatus {
            role: EndpointRole::Backup,
            base_url: b.base_url.clone(),
            device_id: b.device_id.clone(),
            active: cfg.active_endpoint == EndpointRole::Backup,
            health: health.get(&b.base_url).cloned(),
        });
    }
    let recent_failures = keys
        .iter()
        .filter_map(|k| {
            let h = health.get(k)?;
            Some(FailureNote {
                base_url: k.clone(),
                error: h.last_error.clone()?,
                at: h.last_error_at.and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                }),
                consecutive_failures: h.consecutive_failures,
            })
        })
        .collect();
    let page = app.journal.page(&tenant, None, STATUS_AUDIT_SCAN).await?;
    let recent_switches = page
        .items
        .into_iter()
        .filter(|e| {
            matches!(
                e.action.as_str(),
                "failover" | "failback" | "switch" | "swap" | "replace_endpoint"
            )
        })
        .take(STATUS_SWITCHES)
        .collect();
    let unusable_secrets = unusable_secrets(app, &cfg).await;
    let body = TenantStatus {
        unusable_secrets,
        tenant_id: tenant.to_string(),
        is_active: cfg.is_active,
        connection_status: cfg.connection_status,
        connection_status_at: status_at,
        last_check_at,
        active_endpoint: if cfg.backup.is_some() {
            cfg.active_endpoint
        } else {
            EndpointRole::Primary
        },
        // A server that did not answer has no latency to show.
        latency_ms: health
            .remove(&active)
            .filter(|h| h.up)
            .map(|h| h.latency_ms),
        active_base_url: active,
        consecutive_failures: failures,
        version: cfg.version,
        endpoints,
        recent_switches,
        recent_failures,
        webhook_url: app.webhook_url(req, &tenant),
    };
    to_json(StatusCode::OK, &body)
}

/// An outbound message's delivery record as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub state: String,
    pub attempts: u32,
    /// The recipient as the producer wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `text`, `image` or `document`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_role: Option<EndpointRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

fn valid_idempotency_key(k: &str) -> bool {
    (1..=wagate::outbound::MAX_IDEMPOTENCY_KEY).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@+=#/".contains(&b))
}

/// `GET /tenants/{id}/messages/{idempotencyKey}` (URL-encode `/` and `#` in the key).
pub async fn message(app: &App, tenant: TenantId, key: &str) -> Result<Response<Body>, ApiError> {
    if !valid_idempotency_key(key) {
        return Err(ApiError::BadRequest(format!(
            "idempotencyKey must be 1-{} characters of A-Z a-z 0-9 and - _ . : @ + = # /",
            wagate::outbound::MAX_IDEMPOTENCY_KEY
        )));
    }
    let rec = app
        .deliveries
        .get(&tenant, key, OffsetDateTime::now_utc())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or(ApiError::MessageNotFound)?;
    to_json(StatusCode::OK, &MessageView::of(&tenant, key, rec))
}

impl MessageView {
    fn of(tenant: &TenantId, key: &str, rec: DeliveryRecord) -> MessageView {
        MessageView {
            tenant_id: tenant.to_string(),
            idempotency_key: key.to_string(),
            state: rec.state.as_str().to_string(),
            attempts: rec.attempts,
            to: rec.recipient,
            content_type: rec.content_type,
            provider_message_id: rec.provider_message_id,
            endpoint: rec.endpoint,
            endpoint_role: rec.endpoint_role,
            error_class: rec.error_class,
            reason: rec.reason,
            created_at: rec.created_at,
            updated_at: rec.updated_at,
            sent_at: rec.sent_at,
            delivered_at: rec.delivered_at,
            read_at: rec.read_at,
        }
    }
}

/// One page of a tenant's messages, newest first.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /tenants/{id}/messages?limit=&cursor=`: the tenant's outbound messages, newest first
/// (records are kept `MESSAGE_RETENTION_DAYS`, also after the tenant's config is deleted).
pub async fn messages(
    app: &App,
    req: &Request,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let (limit, cursor) = page_limit(req)?;
    let page = app
        .deliveries
        .recent(&tenant, limit, cursor.as_deref(), OffsetDateTime::now_utc())
        .await
        .map_err(|e| match e {
            DeliveryError::InvalidCursor => ApiError::BadRequest("invalid cursor".into()),
            other => ApiError::Unavailable(other.to_string()),
        })?;
    let prefix = format!("{tenant}#");
    let items = page
        .items
        .into_iter()
        .map(|rec| {
            let key = rec
                .idempotency_key
                .clone()
                .or_else(|| rec.pk.strip_prefix(&prefix).map(str::to_owned))
                .unwrap_or_default();
            MessageView::of(&tenant, &key, rec)
        })
        .collect();
    to_json(
        StatusCode::OK,
        &MessagePage {
            items,
            next_cursor: page.next_cursor,
        },
    )
}

/// `GET /admin/endpoints`: every server's health record (the health check writes them).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointList {
    pub items: Vec<EndpointHealth>,
}

pub async fn endpoints(app: &App) -> Result<Response<Body>, ApiError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let resp = app
            .journal
            .client()
            .scan()
            .table_name(&app.endpoints_table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| ApiError::Unavailable(DisplayErrorContext(e).to_string()))?;
        for item in resp.items.unwrap_or_default() {
            if let Ok(rec) = serde_dynamo::from_item::<_, EndpointHealth>(item) {
                items.push(rec);
            }
        }
        match resp.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    items.sort_by(|a, b| a.endpoint_key.cmp(&b.endpoint_key));
    to_json(StatusCode::OK, &EndpointList { items })
}

// ---------------------------------------------------------------------------------------
// Export and import
// ---------------------------------------------------------------------------------------

/// Every config, secrets as KMS ciphertext (bound to each tenant by the encryption
/// context: they open only in the same account's key, for the same tenant).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportDocument {
    pub format: String,
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
    pub items: Vec<SealedConfig>,
}

pub async fn export(app: &App) -> Result<Response<Body>, ApiError> {
    let mut items = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let resp = app
            .journal
            .client()
            .scan()
            .table_name(app.journal.tenants_table())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| ApiError::Unavailable(DisplayErrorContext(e).to_string()))?;
        for item in resp.items.unwrap_or_default() {
            items.push(from_item(item)?);
        }
        match resp.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    items.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    info!(count = items.len(), "configs exported");
    to_json(
        StatusCode::OK,
        &ExportDocument {
            format: EXPORT_FORMAT.into(),
            exported_at: now(),
            items,
        },
    )
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportConflict {
    pub tenant_id: String,
    pub existing_version: u64,
    pub imported_version: u64,
    /// The stored config equals the imported one.
    pub identical: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub dry_run: bool,
    /// Tenants created (or, in a dry run, that would be).
    pub created: Vec<String>,
    /// Tenants that already have a config: never overwritten.
    pub conflicts: Vec<ImportConflict>,
}

/// `POST /admin/import?dryRun=true|false`: restores an export. Every item is checked
/// first (an invalid document changes nothing); a tenant that already has a config is
/// reported as a conflict and left alone; each created tenant gets an `import` audit record.
pub async fn import(app: &App, req: &Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let dry_run = match req.query_string_parameters().first("dryRun") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::BadRequest("dryRun must be true or false".into())),
    };
    let doc: ExportDocument = parse_json(req, MAX_IMPORT_BYTES)?;
    if doc.format != EXPORT_FORMAT {
        return Err(ApiError::BadRequest(format!(
            "format must be {EXPORT_FORMAT:?}"
        )));
    }
    let mut errs = ValidationErrors::default();
    for (i, c) in doc.items.iter().enumerate() {
        if doc.items[..i].iter().any(|o| o.tenant_id == c.tenant_id) {
            errs.push(format!("items[{i}].tenantId"), "duplicate tenant");
        }
        if let Err(e) = c.validate(&app.egress) {
            for f in e.0 {
                errs.push(format!("items[{i}].{}", f.field), f.reason);
            }
        }
        if to_item(c).is_err() {
            errs.push(format!("items[{i}]"), "cannot be stored");
        }
        let mut hosts = vec![(
            format!("items[{i}].primary.baseUrl"),
            c.primary.base_url.as_str(),
        )];
        if let Some(b) = &c.backup {
            hosts.push((format!("items[{i}].backup.baseUrl"), b.base_url.as_str()));
        }
        hosts.retain(|(f, _)| !errs.0.iter().any(|e| &e.field == f));
        errs.extend(crate::check_hosts(app, hosts).await);
    }
    errs.into_result().map_err(ApiError::Invalid)?;
    let mut report = ImportReport {
        dry_run,
        created: Vec::new(),
        conflicts: Vec::new(),
    };
    for c in &doc.items {
        if let Some(existing) = app.store.get(&c.tenant_id).await? {
            report.conflicts.push(ImportConflict {
                tenant_id: c.tenant_id.to_string(),
                existing_version: existing.version,
                imported_version: c.version,
                identical: &existing == c,
            });
            continue;
        }
        if !dry_run {
            match app.journal.create(c, change(caller, Action::Import)).await {
                Ok(()) => {}
                Err(wagate::tenant::store::StoreError::AlreadyExists) => {
                    // Created between the check and the write: still a conflict.
                    report.conflicts.push(ImportConflict {
                        tenant_id: c.tenant_id.to_string(),
                        existing_version: 0,
                        imported_version: c.version,
                        identical: false,
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        report.created.push(c.tenant_id.to_string());
    }
    info!(
        dry_run,
        created = report.created.len(),
        conflicts = report.conflicts.len(),
        "configs imported"
    );
    to_json(StatusCode::OK, &report)
}

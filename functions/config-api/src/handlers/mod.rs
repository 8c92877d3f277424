//! The handlers, one module per resource, each with its request and response shapes (DTOs)
//! beside it. A handler reads its input from [`Ctx`](crate::router::Ctx), works through
//! [`crate::store`] (never a database client) and returns a response or an
//! [`ApiError`](crate::error::ApiError), which the error module maps to a status.
//!
//! What several resources share lives here: reading the current config, the version checks,
//! building the next version, sealing and opening secrets, the host-name checks.

pub mod activity;
pub mod analytics;
pub mod backup;
pub mod config;
pub mod connection;
pub mod dashboard;
pub mod devices;
pub mod meta_callback;
pub mod migrations;
pub mod placement;
pub mod rotation;
pub mod servers;
pub mod status;

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use time::OffsetDateTime;
use wagate::Secret;
use wagate::secrets::SealedSecret;
use wagate::tenant::{Endpoint, SealedConfig, TenantConfig, TenantId, ValidationErrors};

use crate::App;
use crate::audit::{Action, Change};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::config::dto::{ConfigView, SecretSlot};
use crate::response;

/// The tenant's stored config; 404 without one.
pub(crate) async fn current(app: &App, tenant: &TenantId) -> Result<SealedConfig, ApiError> {
    app.stores
        .tenants
        .get(tenant)
        .await?
        .ok_or(ApiError::NotFound)
}

/// 409 when the caller based its change on another version than the stored one.
pub(crate) fn check_version(cur: &SealedConfig, expected: Option<u64>) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != cur.version => Err(ApiError::Conflict(v)),
        _ => Ok(()),
    }
}

/// Writes `next` over `cur` with an audit record; a lost race is 409.
pub(crate) async fn commit(
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
pub(crate) fn bump<S>(
    mut cfg: TenantConfig<S>,
    cur: &SealedConfig,
    at: OffsetDateTime,
) -> TenantConfig<S> {
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
        e.credentials.secret_name().unwrap_or("password")
    );
    let credentials = e
        .credentials
        .open(|purpose, slot: &SecretSlot| {
            let secret_field = &secret_field;
            async move {
                match slot {
                    SecretSlot::New(p) => Ok::<_, ApiError>(p.clone()),
                    SecretSlot::Keep(k) => app
                        .sealer
                        .open(tenant.as_str(), purpose, k)
                        .await
                        .map_err(|e| ApiError::secret(e, secret_field)),
                }
            }
        })
        .await?;
    Ok(Endpoint {
        base_url: e.base_url.clone(),
        credentials,
        device_id: e.device_id.clone(),
        region: e.region.clone(),
        provider: e.provider,
        webhook_source_cidrs: e.webhook_source_cidrs.clone(),
        webhook_wiring: e.webhook_wiring,
    })
}

/// Seals the new secrets of a config (kept ones stay as stored).
pub(crate) async fn seal(
    app: &App,
    cfg: TenantConfig<SecretSlot>,
) -> Result<SealedConfig, ApiError> {
    let tenant = cfg.tenant_id.as_str().to_string();
    let mut sealed: Vec<SealedSecret> = Vec::new();
    for (purpose, slot) in cfg.secret_slots() {
        sealed.push(match slot {
            SecretSlot::Keep(s) => s.clone(),
            SecretSlot::New(plain) => app.sealer.seal(&tenant, purpose, plain).await?,
        });
    }
    cfg.with_secrets(sealed)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The host names of `endpoints` (field, base URL) that resolve to a blocked address.
pub(crate) async fn check_hosts<'a>(
    app: &App,
    endpoints: impl IntoIterator<Item = (String, &'a str)>,
) -> ValidationErrors {
    let mut errs = ValidationErrors::default();
    for (field, base_url) in endpoints {
        let Ok(url) = url::Url::parse(base_url) else {
            continue;
        };
        if let Err(e @ wagate::egress::EgressError::HostBlocked { .. }) =
            app.http.check_host(&url).await
        {
            errs.push(field, e.to_string());
        }
    }
    errs
}

/// A config's full validation before it is sealed and written: the structural checks and
/// the host-name lookups, every error in one answer.
pub(crate) async fn validate_config<S>(app: &App, cfg: &TenantConfig<S>) -> Result<(), ApiError> {
    let mut errs = cfg.validate(&app.egress).err().unwrap_or_default();
    let mut hosts = vec![("primary.baseUrl".to_string(), cfg.primary.base_url.as_str())];
    if let Some(b) = &cfg.backup {
        hosts.push(("backup.baseUrl".to_string(), b.base_url.as_str()));
    }
    // A field already refused structurally is not looked up again.
    hosts.retain(|(f, _)| !errs.0.iter().any(|e| &e.field == f));
    errs.extend(check_hosts(app, hosts).await);
    errs.into_result().map_err(ApiError::Invalid)
}

/// The audit side of a change by `caller`.
pub(crate) fn change(caller: &Caller, action: Action) -> Change<'_> {
    Change {
        who: caller.subject.as_str(),
        action,
        detail: None,
        moved: None,
    }
}

/// A config as the API shows it, with its `ETag`.
pub(crate) fn view_response(
    app: &App,
    req: &Request,
    status: StatusCode,
    cfg: &SealedConfig,
) -> Response<Body> {
    wired_view_response(app, req, status, cfg, None)
}

/// [`view_response`] with what the change did to each endpoint's webhook wiring.
pub(crate) fn wired_view_response(
    app: &App,
    req: &Request,
    status: StatusCode,
    cfg: &SealedConfig,
    wiring: Option<Vec<devices::WiringOutcome>>,
) -> Response<Body> {
    let mut view = ConfigView::from(cfg).with_webhook_url(app.webhook_url(req, &cfg.tenant_id));
    view.wiring = wiring;
    let body =
        serde_json::to_string(&view).unwrap_or_else(|_| r#"{"error":"internal_error"}"#.into());
    response::with_etag(response::json(status, body), cfg.version)
}

/// Adds `Location`.
pub(crate) fn with_location(mut resp: Response<Body>, location: &str) -> Response<Body> {
    if let Ok(loc) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

/// The time a change is stamped with: whole seconds, as configs carry it.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

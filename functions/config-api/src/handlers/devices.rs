//! Device management and webhook wiring per endpoint (issue 15): the tenant's device on its
//! primary or backup server, driven through the server's API so nobody has to log in to the
//! WhatsApp server by hand.
//!
//! | route | does |
//! |---|---|
//! | `GET /tenants/{tenantId}/devices/{role}` | live device status (`logged_in`, `connected`, `logged_out`, `not_found`) and webhook wiring |
//! | `POST /tenants/{tenantId}/devices/{role}` | create the device slot on the server unless it exists |
//! | `POST /tenants/{tenantId}/devices/{role}/qr` | start a QR login; answers the PNG itself (base64) and its expiry |
//! | `POST /tenants/{tenantId}/devices/{role}/pairing-code` | start a pairing-code login for `{"phone"}`; answers the code |
//! | `POST /tenants/{tenantId}/devices/{role}/logout` | log the device out (the slot stays) |
//! | `POST /tenants/{tenantId}/devices/{role}/reconnect` | reconnect the device |
//! | `GET /tenants/{tenantId}/devices/{role}/webhook` | the wiring check: `wired`, `missing`, `points_elsewhere`, `secret_mismatch`, `events_filtered` |
//! | `POST /tenants/{tenantId}/devices/{role}/webhook` | wire (or repair): a new secret, sealed and accepted first, pushed to the server and read back |
//!
//! `{role}` is `primary` or `backup`. Every action that reaches the server is audited
//! (action `device_*` / `wire_webhook`, with its outcome), failures too. A WhatsApp server's
//! failure is 424 (Failed Dependency: wagate worked, the server it depends on did not) with a
//! code naming it (`server_refused`, `server_unreachable`, `webhook_refused`,
//! `read_back_mismatch`, `bad_qr_image`, …), or 404 `device_not_found`; nothing of a secret
//! ever appears in an answer or a log.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{info, warn};
use wagate::provider::wiring::{self, WiringError, WiringState};
use wagate::provider::{ProviderError, Providers, SlotOutcome, Target};
use wagate::secrets::{Purpose, Secret};
use wagate::tenant::{
    EndpointRole, SealedConfig, TenantConfig, TenantId, ValidationErrors, WebhookSecret,
    WebhookWiring,
};

use crate::App;
use crate::audit::{Action, Change};
use crate::auth::Caller;
use crate::error::{ApiError, DeviceFailure};
use crate::handlers::config::dto::SecretSlot;
use crate::handlers::{change, keep_all, now, open_endpoint, seal};
use crate::response::to_json;
use crate::router::Ctx;

/// What a device route does (the audit record's action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceAction {
    CreateSlot,
    LoginQr,
    LoginCode,
    Logout,
    Reconnect,
    WireWebhook,
}

impl DeviceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceAction::CreateSlot => "device_create_slot",
            DeviceAction::LoginQr => "device_login_qr",
            DeviceAction::LoginCode => "device_login_code",
            DeviceAction::Logout => "device_logout",
            DeviceAction::Reconnect => "device_reconnect",
            DeviceAction::WireWebhook => "wire_webhook",
        }
    }
}

/// The device sub-route of `/tenants/{tenantId}/devices/{role}[/{op}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePath {
    pub role: String,
    pub op: Option<String>,
}

/// Grace during which a replaced wired secret is still accepted by the ingress.
pub const WIRED_SECRET_GRACE: Duration = Duration::from_secs(3600);

/// Id prefix of the webhook secrets wagate generates for wiring (`wired-primary-…`).
const WIRED_PREFIX: &str = wagate::tenant::WIRED_SECRET_PREFIX;

/// The device routes of the route table (`/tenants/{tenantId}/devices/{role}[/{op}]`): the
/// router has matched the method and authorized the caller; each passes its operation on.
macro_rules! device_route {
    ($name:ident, $op:expr) => {
        pub async fn $name(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
            let path = DevicePath {
                role: ctx.id()?.to_string(),
                op: $op.map(str::to_string),
            };
            handle(app, ctx.req, ctx.caller()?, ctx.tenant()?.clone(), path).await
        }
    };
}
device_route!(slot, None::<&str>);
device_route!(qr, Some("qr"));
device_route!(pairing_code, Some("pairing-code"));
device_route!(logout, Some("logout"));
device_route!(reconnect, Some("reconnect"));
device_route!(webhook, Some("webhook"));

/// Dispatches a device route (the caller is already authorized for `tenant`).
pub async fn handle(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: TenantId,
    path: DevicePath,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().as_str().to_string();
    let op = path.op.as_deref();
    let allowed = match op {
        None => "GET, POST",
        Some("webhook") => "GET, POST",
        Some("qr" | "pairing-code" | "logout" | "reconnect") => "POST",
        Some(_) => return Err(ApiError::NoRoute),
    };
    if !allowed.split(", ").any(|m| m == method) {
        return Err(ApiError::MethodNotAllowed(allowed.into()));
    }
    let role = parse_role(&path.role)?;
    match (method.as_str(), op) {
        ("GET", None) => status(app, req, caller, &tenant, role).await,
        ("POST", None) => create_slot(app, caller, &tenant, role).await,
        ("POST", Some("qr")) => login_qr(app, caller, &tenant, role).await,
        ("POST", Some("pairing-code")) => login_code(app, req, caller, &tenant, role).await,
        ("POST", Some("logout")) => action(app, caller, &tenant, role, DeviceAction::Logout).await,
        ("POST", Some("reconnect")) => {
            action(app, caller, &tenant, role, DeviceAction::Reconnect).await
        }
        ("GET", Some("webhook")) => webhook_check(app, req, &tenant, role).await,
        ("POST", Some("webhook")) => wire(app, req, caller, &tenant, role).await,
        _ => Err(ApiError::NoRoute),
    }
}

fn parse_role(raw: &str) -> Result<EndpointRole, ApiError> {
    match raw {
        "primary" => Ok(EndpointRole::Primary),
        "backup" => Ok(EndpointRole::Backup),
        _ => Err(ApiError::BadRequest(
            "the endpoint role in the path must be primary or backup".into(),
        )),
    }
}

/// The stored config and the opened endpoint of `role` (with its device id).
async fn endpoint(
    app: &App,
    tenant: &TenantId,
    role: EndpointRole,
) -> Result<(SealedConfig, wagate::tenant::Endpoint<Secret>), ApiError> {
    let cfg = app
        .stores
        .tenants
        .get(tenant)
        .await?
        .ok_or(ApiError::NotFound)?;
    let name = role.as_str();
    let stored = match role {
        EndpointRole::Primary => Some(&cfg.primary),
        EndpointRole::Backup => cfg.backup.as_ref(),
    };
    let Some(stored) = stored else {
        let mut errs = ValidationErrors::default();
        errs.push("backup", "the tenant has no backup endpoint");
        return Err(ApiError::StateConflict(errs));
    };
    if stored.device_id.as_deref().is_none_or(str::is_empty) {
        let mut errs = ValidationErrors::default();
        errs.push(
            format!("{name}.deviceId"),
            "the endpoint has no deviceId: set one (PUT the config) to manage its device",
        );
        return Err(ApiError::StateConflict(errs));
    }
    let slots = keep_all(&cfg);
    let stored_slot = match role {
        EndpointRole::Primary => slots.primary.clone(),
        EndpointRole::Backup => slots.backup.clone().expect("checked above"),
    };
    let opened = open_endpoint(app, tenant, name, &stored_slot).await?;
    Ok((cfg, opened))
}

/// A server's failure as the API answers it: one code per kind of failure, the server's own
/// words (bounded, never a secret: credentials travel in headers) in the message.
fn server_error(e: &ProviderError) -> ApiError {
    let refused = |failure, msg: String| ApiError::Device(failure, msg);
    match e {
        e if e.is_device_not_found() => refused(
            DeviceFailure::DeviceNotFound,
            "the server has no such device: create its slot first (POST /tenants/{tenantId}/devices/{role})".into(),
        ),
        ProviderError::Permanent { code, .. } if code == "ALREADY_LOGGED_IN" => refused(
            DeviceFailure::AlreadyLoggedIn,
            "the device is already logged in (log it out first to link another phone)".into(),
        ),
        ProviderError::Permanent { code, .. } if code == "BAD_QR_IMAGE" => {
            refused(DeviceFailure::BadQrImage, e.to_string())
        }
        ProviderError::Permanent { code, .. } if code == "UNSUPPORTED" => {
            refused(DeviceFailure::Unsupported, e.to_string())
        }
        ProviderError::BadCredentials { .. } => {
            refused(DeviceFailure::ServerCredentialsRefused, e.to_string())
        }
        ProviderError::Egress(_) => refused(DeviceFailure::EgressRefused, e.to_string()),
        ProviderError::Retryable {
            before_sent: false,
            reason,
        } if reason.starts_with("server answered") => {
            refused(DeviceFailure::ServerRefused, e.to_string())
        }
        ProviderError::Retryable { .. } | ProviderError::Ambiguous { .. } => {
            refused(DeviceFailure::ServerUnreachable, e.to_string())
        }
        _ => refused(DeviceFailure::ServerRefused, e.to_string()),
    }
}

/// Writes the audit record of a device action with its outcome.
async fn audit(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    what: DeviceAction,
    detail: String,
) -> Result<(), ApiError> {
    let mut ch: Change<'_> = change(caller, Action::Device(what));
    ch.detail = Some(detail);
    app.journal.note(tenant, ch).await.map_err(ApiError::from)
}

/// "primary device acme-1 on http://server" for audit details.
fn where_(role: EndpointRole, e: &wagate::tenant::Endpoint<Secret>) -> String {
    format!(
        "{} device {} on {}",
        role.as_str(),
        e.device_id.as_deref().unwrap_or_default(),
        e.base_url
    )
}

/// Audits the outcome of a server call, then returns it.
async fn audited<T>(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    what: DeviceAction,
    place: String,
    result: Result<T, ProviderError>,
) -> Result<T, ApiError> {
    match result {
        Ok(v) => {
            audit(app, caller, tenant, what, format!("{place}: ok")).await?;
            info!(action = what.as_str(), "device action done");
            Ok(v)
        }
        Err(e) => {
            let err = server_error(&e);
            let code = match &err {
                ApiError::Device(failure, _) => failure.code(),
                _ => "error",
            };
            audit(
                app,
                caller,
                tenant,
                what,
                format!("{place}: failed ({code})"),
            )
            .await?;
            warn!(action = what.as_str(), error = %e, "device action failed");
            Err(err)
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    pub role: &'static str,
    pub device_id: String,
    /// `logged_in`, `connected` (not logged in), `logged_out`, or `not_found`.
    pub state: &'static str,
    pub connected: bool,
    pub logged_in: bool,
    /// Set by the slot creation: `created` or `existed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<SlotOutcome>,
    /// Set when this read found the device just linked and wired its webhook (or tried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WiringOutcome>,
}

async fn device_view(
    app: &App,
    role: EndpointRole,
    e: &wagate::tenant::Endpoint<Secret>,
    provider_kind: wagate::tenant::ProviderKind,
) -> Result<DeviceView, ProviderError> {
    let provider = app
        .providers
        .get(provider_kind)
        .ok_or_else(|| ProviderError::unsupported(provider_kind, "device management"))?;
    let device_id = e.device_id.clone().unwrap_or_default();
    match provider.slot_status(Target::from(e)).await {
        Ok(s) => Ok(DeviceView {
            role: role.as_str(),
            device_id,
            state: if s.logged_in {
                "logged_in"
            } else if s.connected {
                "connected"
            } else {
                "logged_out"
            },
            connected: s.connected,
            logged_in: s.logged_in,
            slot: None,
            webhook: None,
        }),
        Err(err) if err.is_device_not_found() => Ok(DeviceView {
            role: role.as_str(),
            device_id,
            state: "not_found",
            connected: false,
            logged_in: false,
            slot: None,
            webhook: None,
        }),
        Err(err) => Err(err),
    }
}

/// The live status. A device that is logged in, wagate's to wire, and was never wired by
/// wagate (it has just been linked) is wired now: the answer's `webhook` says how it went.
async fn status(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: &TenantId,
    role: EndpointRole,
) -> Result<Response<Body>, ApiError> {
    let (cfg, e) = endpoint(app, tenant, role).await?;
    let mut view = device_view(app, role, &e, e.provider.unwrap_or(cfg.provider))
        .await
        .map_err(|err| server_error(&err))?;
    if view.logged_in
        && e.webhook_wiring == WebhookWiring::Wagate
        && !wired_roles(&cfg, now()).contains(&role)
    {
        view.webhook = Some(ensure_wired(app, req, caller, tenant, role).await);
    }
    to_json(StatusCode::OK, &view)
}

async fn create_slot(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    role: EndpointRole,
) -> Result<Response<Body>, ApiError> {
    let (cfg, e, answer) = device_call(app, caller, tenant, role, Call::CreateSlot).await?;
    let Answer::Slot(outcome) = answer else {
        return Err(ApiError::Internal("unexpected device answer".into()));
    };
    let mut view = device_view(app, role, &e, e.provider.unwrap_or(cfg.provider))
        .await
        .map_err(|err| server_error(&err))?;
    view.slot = Some(outcome);
    let status = match outcome {
        SlotOutcome::Created => StatusCode::CREATED,
        SlotOutcome::Existed => StatusCode::OK,
    };
    to_json(status, &view)
}

/// A device operation on the server.
enum Call {
    CreateSlot,
    Qr,
    Code(String),
    Logout,
    Reconnect,
}

/// What the server answered to a [`Call`].
enum Answer {
    Slot(SlotOutcome),
    Qr(wagate::provider::LoginQr),
    Code(String),
    Done,
}

impl Call {
    fn action(&self) -> DeviceAction {
        match self {
            Call::CreateSlot => DeviceAction::CreateSlot,
            Call::Qr => DeviceAction::LoginQr,
            Call::Code(_) => DeviceAction::LoginCode,
            Call::Logout => DeviceAction::Logout,
            Call::Reconnect => DeviceAction::Reconnect,
        }
    }

    async fn run(
        self,
        provider: &dyn wagate::provider::WhatsAppProvider,
        target: Target<'_>,
    ) -> Result<Answer, ProviderError> {
        Ok(match self {
            Call::CreateSlot => Answer::Slot(provider.create_device(target).await?),
            Call::Qr => Answer::Qr(provider.login_qr(target).await?),
            Call::Code(phone) => Answer::Code(provider.login_code(target, &phone).await?),
            Call::Logout => {
                provider.logout(target).await?;
                Answer::Done
            }
            Call::Reconnect => {
                provider.reconnect(target).await?;
                Answer::Done
            }
        })
    }
}

/// The one shape of every device action: load the `role` endpoint, call its server, audit
/// the outcome (failures too), answer the config, the opened endpoint and the server's answer.
async fn device_call(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    role: EndpointRole,
    call: Call,
) -> Result<(SealedConfig, wagate::tenant::Endpoint<Secret>, Answer), ApiError> {
    let (cfg, e) = endpoint(app, tenant, role).await?;
    let provider = provider_for(&app.providers, e.provider.unwrap_or(cfg.provider))?;
    let what = call.action();
    let result = call.run(provider, Target::from(&e)).await;
    let answer = audited(app, caller, tenant, what, where_(role, &e), result).await?;
    Ok((cfg, e, answer))
}

fn provider_for(
    providers: &Providers,
    kind: wagate::tenant::ProviderKind,
) -> Result<&dyn wagate::provider::WhatsAppProvider, ApiError> {
    providers
        .get(kind)
        .ok_or_else(|| server_error(&ProviderError::unsupported(kind, "device management")))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QrView {
    pub role: &'static str,
    pub device_id: String,
    pub mime_type: &'static str,
    /// The QR picture (PNG), base64.
    pub png_base64: String,
    /// When the code stops working: ask for a new one before.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub expires_in_seconds: u64,
}

async fn login_qr(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    role: EndpointRole,
) -> Result<Response<Body>, ApiError> {
    let (_, e, answer) = device_call(app, caller, tenant, role, Call::Qr).await?;
    let Answer::Qr(qr) = answer else {
        return Err(ApiError::Internal("unexpected device answer".into()));
    };
    let at = now();
    to_json(
        StatusCode::OK,
        &QrView {
            role: role.as_str(),
            device_id: e.device_id.clone().unwrap_or_default(),
            mime_type: "image/png",
            png_base64: B64.encode(&qr.png),
            expires_at: at + qr.expires_in,
            expires_in_seconds: qr.expires_in.as_secs(),
        },
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PairingInput {
    phone: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingView {
    pub role: &'static str,
    pub device_id: String,
    /// The code to enter on the phone (WhatsApp > Linked devices > Link with phone number).
    pub code: String,
}

/// A phone number for pairing: digits with the country code, an optional leading `+`, no
/// leading 0, 8 to 15 digits (E.164). Answers the digits.
pub fn pairing_phone(raw: &str) -> Result<String, String> {
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be digits with the country code (an optional leading +)".into());
    }
    if digits.starts_with('0') {
        return Err("must start with the country code, not 0".into());
    }
    if !(8..=15).contains(&digits.len()) {
        return Err("must be 8 to 15 digits (E.164)".into());
    }
    Ok(digits.to_string())
}

async fn login_code(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: &TenantId,
    role: EndpointRole,
) -> Result<Response<Body>, ApiError> {
    let input: PairingInput = crate::parse_json(req, crate::MAX_BODY_BYTES)?;
    let phone = pairing_phone(input.phone.trim()).map_err(|m| {
        let mut errs = ValidationErrors::default();
        errs.push("phone", m);
        ApiError::Invalid(errs)
    })?;
    let (_, e, answer) = device_call(app, caller, tenant, role, Call::Code(phone)).await?;
    let Answer::Code(code) = answer else {
        return Err(ApiError::Internal("unexpected device answer".into()));
    };
    to_json(
        StatusCode::OK,
        &PairingView {
            role: role.as_str(),
            device_id: e.device_id.clone().unwrap_or_default(),
            code,
        },
    )
}

async fn action(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    role: EndpointRole,
    what: DeviceAction,
) -> Result<Response<Body>, ApiError> {
    let call = match what {
        DeviceAction::Logout => Call::Logout,
        _ => Call::Reconnect,
    };
    let (cfg, e, _) = device_call(app, caller, tenant, role, call).await?;
    let view = device_view(app, role, &e, e.provider.unwrap_or(cfg.provider))
        .await
        .map_err(|err| server_error(&err))?;
    to_json(StatusCode::OK, &view)
}

// ---------------------------------------------------------------------------------------
// Webhook wiring
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WiringView {
    pub role: &'static str,
    pub device_id: String,
    /// `wired`, `missing`, `points_elsewhere`, `secret_mismatch`, `events_filtered`.
    pub state: &'static str,
    pub detail: &'static str,
    /// The URL the device must post to.
    pub expected_url: String,
    /// On a wiring: the id of the webhook secret wagate generated (its value is never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
}

pub(crate) fn expected_url(
    app: &App,
    req: &Request,
    tenant: &TenantId,
) -> Result<String, ApiError> {
    app.webhook_url(req, tenant).ok_or_else(|| {
        ApiError::Device(
            DeviceFailure::NoWebhookUrl,
            "this API does not know its public URL: set PUBLIC_WEBHOOK_BASE_URL".into(),
        )
    })
}

/// Opens every current webhook secret of the tenant (what the ingress accepts now).
async fn accepted_secrets(app: &App, cfg: &SealedConfig) -> Result<Vec<Secret>, ApiError> {
    let at = now();
    let mut out = Vec::new();
    for (i, w) in cfg.webhook_secrets.iter().enumerate() {
        if !w.is_current(at) {
            continue;
        }
        let opened = app
            .sealer
            .open(cfg.tenant_id.as_str(), Purpose::WebhookSecret, &w.secret)
            .await
            .map_err(|e| ApiError::secret(e, &format!("webhookSecrets[{i}].secret")))?;
        out.push(opened);
    }
    Ok(out)
}

/// The wiring of the `role` endpoint's device as it is on the server now.
pub async fn inspect(
    app: &App,
    cfg: &SealedConfig,
    e: &wagate::tenant::Endpoint<Secret>,
    url: &str,
) -> Result<WiringState, ApiError> {
    let provider = provider_for(&app.providers, e.provider.unwrap_or(cfg.provider))?;
    let accepted = accepted_secrets(app, cfg).await?;
    let refs: Vec<&Secret> = accepted.iter().collect();
    wiring::inspect(provider, Target::from(e), url, &refs)
        .await
        .map_err(|err| server_error(&err))
}

/// The connection test's "webhook wired" check of one saved endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCheck {
    /// `wired`, `missing`, `points_elsewhere`, `secret_mismatch`, `events_filtered`, or
    /// `unknown` (the server could not be asked: `reason` says why).
    pub state: String,
    pub reason: String,
    /// How to repair it (when not wired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<String>,
}

/// Adds the "webhook wired" check to the connection test's results of the saved endpoints.
pub async fn attach_webhook_checks(
    app: &App,
    req: &Request,
    tenant: &TenantId,
    results: &mut [crate::conntest::EndpointResult],
    primary: &wagate::tenant::Endpoint<Secret>,
    backup: Option<&wagate::tenant::Endpoint<Secret>>,
) -> Result<(), ApiError> {
    let cfg = app
        .stores
        .tenants
        .get(tenant)
        .await?
        .ok_or(ApiError::NotFound)?;
    let url = app.webhook_url(req, tenant);
    for result in results.iter_mut() {
        let e = match result.role.as_str() {
            "primary" => primary,
            "backup" => match backup {
                Some(b) => b,
                None => continue,
            },
            _ => continue,
        };
        let check = match &url {
            None => WebhookCheck {
                state: "unknown".into(),
                reason: "this API does not know its public URL: set PUBLIC_WEBHOOK_BASE_URL".into(),
                repair: None,
            },
            Some(_) if e.device_id.as_deref().is_none_or(str::is_empty) => WebhookCheck {
                state: "unknown".into(),
                reason: "the endpoint has no deviceId: its device webhook cannot be read".into(),
                repair: None,
            },
            Some(url) => match inspect(app, &cfg, e, url).await {
                Ok(state) if e.webhook_wiring == WebhookWiring::Manual => WebhookCheck {
                    state: state.as_str().into(),
                    reason: format!(
                        "{} (wiring is manual: wagate reports it and never changes it)",
                        state.describe()
                    ),
                    repair: None,
                },
                Ok(state) => WebhookCheck {
                    state: state.as_str().into(),
                    reason: state.describe().into(),
                    repair: (state != WiringState::Wired)
                        .then(|| format!("POST /tenants/{tenant}/devices/{}/webhook", result.role)),
                },
                Err(ApiError::Device(failure, message)) => WebhookCheck {
                    state: "unknown".into(),
                    reason: format!("{}: {message}", failure.code()),
                    repair: None,
                },
                Err(other) => return Err(other),
            },
        };
        result.webhook = Some(check);
    }
    Ok(())
}

async fn webhook_check(
    app: &App,
    req: &Request,
    tenant: &TenantId,
    role: EndpointRole,
) -> Result<Response<Body>, ApiError> {
    let url = expected_url(app, req, tenant)?;
    let (cfg, e) = endpoint(app, tenant, role).await?;
    let state = inspect(app, &cfg, &e, &url).await?;
    to_json(
        StatusCode::OK,
        &WiringView {
            role: role.as_str(),
            device_id: e.device_id.clone().unwrap_or_default(),
            state: state.as_str(),
            detail: state.describe(),
            expected_url: url,
            secret_id: None,
        },
    )
}

/// The next config: a new wired secret for `role` (id `wired-<role>-<time>-<rand>`), earlier
/// wired secrets of that role expiring after [`WIRED_SECRET_GRACE`], expired secrets dropped.
fn with_new_wired_secret(
    cur: &SealedConfig,
    role: EndpointRole,
    secret: &Secret,
    at: OffsetDateTime,
) -> (TenantConfig<SecretSlot>, String) {
    let mut next = keep_all(cur);
    next.version = cur.version + 1;
    next.updated_at = at;
    let prefix = format!("{WIRED_PREFIX}{}-", role.as_str());
    let grace_end = at + WIRED_SECRET_GRACE;
    next.webhook_secrets.retain(|w| w.is_current(at));
    // Of this role's earlier wired secrets only the newest can still be in use on the server
    // (each wiring replaced the one before): it stays for the grace, older ones go.
    let newest_earlier = next
        .webhook_secrets
        .iter()
        .rposition(|w| w.id.starts_with(&prefix));
    let mut i = 0;
    next.webhook_secrets.retain(|w| {
        let keep = !w.id.starts_with(&prefix) || Some(i) == newest_earlier;
        i += 1;
        keep
    });
    for w in &mut next.webhook_secrets {
        if w.id.starts_with(&prefix) {
            w.expires_at = Some(match w.expires_at {
                Some(x) if x < grace_end => x,
                _ => grace_end,
            });
        }
    }
    let id = push_wired_secret(&mut next, role, secret, at);
    (next, id)
}

/// Whether the server may sign with the new secret although the wiring failed (then it stays
/// accepted, for the grace, so no event is refused). After a failed change the server is asked
/// what it has now: only an answer without the new secret proves it did not take it.
async fn server_may_have_it(
    provider: &dyn wagate::provider::WhatsAppProvider,
    target: Target<'_>,
    url: &str,
    secret: &Secret,
    e: &WiringError,
) -> bool {
    match e {
        WiringError::Set(p) if p.is_device_not_found() => false,
        WiringError::Set(ProviderError::Retryable {
            before_sent: true, ..
        })
        | WiringError::Set(ProviderError::Egress(_)) => false,
        WiringError::Set(_) => !matches!(
            wiring::inspect(provider, target, url, &[secret]).await,
            Ok(state) if state != WiringState::Wired
        ),
        WiringError::ReadBack(_) | WiringError::Mismatch(_) => true,
    }
}

/// Wires the `role` endpoint's device: a new secret is sealed and saved first (so the ingress
/// accepts it before the server uses it), then pushed to the server and read back. On
/// failure the new secret is withdrawn again when the server surely did not take it, or kept
/// until the grace ends when it may have; both outcomes are audited. An endpoint whose
/// wiring is `manual` is never changed (409 `webhook_wiring_manual`).
pub async fn wire_role(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: &TenantId,
    role: EndpointRole,
) -> Result<WiringView, ApiError> {
    let url = expected_url(app, req, tenant)?;
    let (cur, e) = endpoint(app, tenant, role).await?;
    if e.webhook_wiring == WebhookWiring::Manual {
        return Err(manual_refusal(role));
    }
    let (_, id) = wire_before(app, &url, caller, &cur, role, &e).await?;
    Ok(WiringView {
        role: role.as_str(),
        device_id: e.device_id.clone().unwrap_or_default(),
        state: WiringState::Wired.as_str(),
        detail: WiringState::Wired.describe(),
        expected_url: url,
        secret_id: Some(id),
    })
}

fn manual_refusal(role: EndpointRole) -> ApiError {
    ApiError::Device(
        DeviceFailure::WiringManual,
        format!(
            "the {} endpoint's webhook wiring is manual (the tenant's own forwarding): wagate reports it and never changes it; set webhookWiring to wagate to let wagate wire it",
            role.as_str()
        ),
    )
}

/// Wires `e` (the endpoint that is, or is about to become, the tenant's `role` endpoint)
/// before anything else changes: a new wired secret is added to `cur` and saved (the ingress
/// accepts it from then on), then the device's webhook is set and read back. Answers the
/// config as saved with the new secret, and the secret's id; on failure the secret is
/// withdrawn (or kept for its grace when the server may use it), audited, and the error
/// answered: the caller then changes nothing else.
pub async fn wire_before(
    app: &App,
    url: &str,
    caller: &Caller,
    cur: &SealedConfig,
    role: EndpointRole,
    e: &wagate::tenant::Endpoint<Secret>,
) -> Result<(SealedConfig, String), ApiError> {
    let tenant = &cur.tenant_id;
    let provider = provider_for(&app.providers, e.provider.unwrap_or(cur.provider))?;
    let at = now();
    let secret = wiring::generate_secret();
    let (next, id) = with_new_wired_secret(cur, role, &secret, at);
    next.validate(&app.egress)
        .map_err(ApiError::StateConflict)?;
    let sealed = seal(app, next).await?;
    let place = where_(role, e);
    let mut ch = change(caller, Action::Device(DeviceAction::WireWebhook));
    ch.detail = Some(format!(
        "{place}: new secret {id} accepted; pushing it to the server"
    ));
    crate::handlers::commit(app, cur, &sealed, ch).await?;
    match wiring::wire(provider, Target::from(e), url, &secret).await {
        Ok(()) => {
            audit(
                app,
                caller,
                tenant,
                DeviceAction::WireWebhook,
                format!("{place}: wired with secret {id} (read back and compared)"),
            )
            .await?;
            info!(role = role.as_str(), secret_id = %id, "device webhook wired");
            Ok((sealed, id))
        }
        Err(err) => {
            warn!(role = role.as_str(), code = err.code(), error = %err, "webhook wiring failed");
            let keep = server_may_have_it(provider, Target::from(e), url, &secret, &err).await;
            let mut after = keep_all(&sealed);
            after.version = sealed.version + 1;
            after.updated_at = now();
            if keep {
                let grace_end = after.updated_at + WIRED_SECRET_GRACE;
                for w in &mut after.webhook_secrets {
                    if w.id == id {
                        w.expires_at = Some(grace_end);
                    }
                }
            } else {
                // Back to the secrets as they were before this wiring.
                let before = keep_all(cur);
                after.webhook_secrets = before.webhook_secrets;
            }
            let restored = seal(app, after).await?;
            let mut ch = change(caller, Action::Device(DeviceAction::WireWebhook));
            ch.detail = Some(format!(
                "{place}: wiring failed ({}); new secret {id} {}",
                err.code(),
                if keep {
                    "kept until its grace ends (the server may use it)"
                } else {
                    "withdrawn"
                }
            ));
            app.journal.update(&sealed, &restored, ch).await?;
            Err(wiring_error(&err))
        }
    }
}

fn wiring_error(e: &WiringError) -> ApiError {
    match e {
        WiringError::Set(p) | WiringError::ReadBack(p) => match server_error(p) {
            ApiError::Device(failure, msg) => ApiError::Device(
                match (failure, e) {
                    (DeviceFailure::ServerRefused, WiringError::Set(_)) => {
                        DeviceFailure::WebhookRefused
                    }
                    (DeviceFailure::ServerRefused, _) => DeviceFailure::ReadBackFailed,
                    (other, _) => other,
                },
                format!("webhook wiring failed: {msg}"),
            ),
            other => other,
        },
        WiringError::Mismatch(state) => ApiError::Device(
            DeviceFailure::ReadBackMismatch,
            format!(
                "webhook wiring failed: the server answers another webhook than the one set ({}: {})",
                state.as_str(),
                state.describe()
            ),
        ),
    }
}

async fn wire(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: &TenantId,
    role: EndpointRole,
) -> Result<Response<Body>, ApiError> {
    let view = wire_role(app, req, caller, tenant, role).await?;
    to_json(StatusCode::OK, &view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_phones_are_e164_digits() {
        assert_eq!(pairing_phone("+6281234567890").unwrap(), "6281234567890");
        assert_eq!(pairing_phone("6281234567890").unwrap(), "6281234567890");
        for bad in [
            "",
            "+",
            "0812345678",
            "62-812-345",
            "62812 345",
            "1234567",
            "1234567890123456",
            "abc",
        ] {
            assert!(pairing_phone(bad).is_err(), "{bad:?}");
        }
    }
}

/// One endpoint's re-wiring after a webhook-secret rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewireOutcome {
    pub role: String,
    /// `wired`, or `failed` (then `error` and `message` say why; repair with
    /// `POST /tenants/{tenantId}/devices/{role}/webhook`).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The roles whose device webhook wagate wired (a current `wired-<role>-` secret): wiring is
/// kept true for these; the others are the tenant's own forwarding, reported and never changed.
pub fn wired_roles(cfg: &SealedConfig, at: OffsetDateTime) -> Vec<EndpointRole> {
    [EndpointRole::Primary, EndpointRole::Backup]
        .into_iter()
        .filter(|r| {
            let mode = match r {
                EndpointRole::Primary => Some(cfg.primary.webhook_wiring),
                EndpointRole::Backup => cfg.backup.as_ref().map(|b| b.webhook_wiring),
            };
            let prefix = format!("{WIRED_PREFIX}{}-", r.as_str());
            mode == Some(WebhookWiring::Wagate)
                && cfg
                    .webhook_secrets
                    .iter()
                    .any(|w| w.id.starts_with(&prefix) && w.is_current(at))
        })
        .collect()
}

/// After a webhook-secret rotation (which set every current secret, the wired ones too, to
/// expire with its grace): each endpoint wagate wired gets a new wired secret, accepted first,
/// then pushed to its server and read back. The rotation is committed already and never
/// undone: each endpoint's outcome is reported.
pub async fn rewire_after_rotation(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: &TenantId,
    before: &SealedConfig,
) -> Vec<RewireOutcome> {
    let mut out = Vec::new();
    for role in wired_roles(before, now()) {
        let outcome = match wire_role(app, req, caller, tenant, role).await {
            Ok(view) => RewireOutcome {
                role: role.as_str().into(),
                state: "wired".into(),
                secret_id: view.secret_id,
                error: None,
                message: None,
            },
            Err(e) => {
                warn!(role = role.as_str(), error = %e, "re-wiring after a rotation failed");
                RewireOutcome {
                    role: role.as_str().into(),
                    state: "failed".into(),
                    secret_id: None,
                    error: Some(e.code().into()),
                    message: Some(e.to_string()),
                }
            }
        };
        out.push(outcome);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Wiring kept true by every change (create, update, switch, migration, import)
// ---------------------------------------------------------------------------------------

/// What a change did (or, in a dry run, would do) to one endpoint's device webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WiringOutcome {
    pub role: String,
    /// `wired` (set and read back by this change), `already_wired`, `unchanged` (the
    /// endpoint did not change: its wiring was left alone), `pending_link` (the device is not
    /// logged in yet: it is wired as soon as it is, when its status is read through
    /// `GET /tenants/{tenantId}/devices/{role}`), `manual` (the tenant's own forwarding:
    /// never changed), `no_device` (no deviceId), `no_webhook_url` (this API does not know
    /// its public URL), `unverified` (the server could not be asked: `message` says why);
    /// in a dry run `would_wire`, or `not_linked`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl WiringOutcome {
    pub fn new(role: EndpointRole, state: &str) -> Self {
        Self {
            role: role.as_str().into(),
            state: state.into(),
            secret_id: None,
            message: None,
        }
    }

    pub fn with_message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }
}

/// A Meta Cloud API endpoint has no webhook wagate can set: its app's callback is pasted in
/// Meta's console by the tenant (issue 16), so it is reported like a `manual` wiring and
/// never attempted (an attempt would refuse the whole save).
fn meta_console(role: EndpointRole) -> WiringOutcome {
    WiringOutcome::new(role, "manual").with_message(
        "Meta's callback is set in the Meta app's console, not by wagate: GET /tenants/{tenantId}/meta-callback shows the URL and verify token to paste, and whether Meta's handshake passed",
    )
}

/// Whether wagate wires `e` (as the tenant's `role` endpoint) now.
pub enum Readiness {
    /// wagate's to wire, and its device is logged in.
    Wire,
    /// Not now: why.
    Skip(WiringOutcome),
}

/// Reads (never changes) whether `e` can be wired now: `manual`, no device, no public URL,
/// or a device that is not logged in are reasons not to; a server that cannot be asked is
/// `unverified`.
pub async fn readiness(
    app: &App,
    kind: wagate::tenant::ProviderKind,
    url: Option<&str>,
    role: EndpointRole,
    e: &wagate::tenant::Endpoint<Secret>,
) -> Readiness {
    if e.webhook_wiring == WebhookWiring::Manual {
        return Readiness::Skip(WiringOutcome::new(role, "manual"));
    }
    if kind == wagate::tenant::ProviderKind::Meta {
        return Readiness::Skip(meta_console(role));
    }
    if e.device_id.as_deref().is_none_or(str::is_empty) {
        return Readiness::Skip(WiringOutcome::new(role, "no_device"));
    }
    if url.is_none() {
        return Readiness::Skip(
            WiringOutcome::new(role, "no_webhook_url")
                .with_message("this API does not know its public URL: set PUBLIC_WEBHOOK_BASE_URL"),
        );
    }
    match device_view(app, role, e, kind).await {
        Ok(v) if v.logged_in => Readiness::Wire,
        Ok(v) if v.state == "not_found" => Readiness::Skip(
            WiringOutcome::new(role, "pending_link").with_message(
                "the server has no such device yet: create its slot and link it (POST /tenants/{tenantId}/devices/{role}, then /qr or /pairing-code); it is wired as soon as it logs in",
            ),
        ),
        Ok(_) => Readiness::Skip(WiringOutcome::new(role, "pending_link").with_message(
            "the device is not logged in: link it (QR or pairing code); it is wired as soon as it logs in",
        )),
        Err(err) => {
            let code = match server_error(&err) {
                ApiError::Device(f, _) => f.code(),
                _ => "error",
            };
            Readiness::Skip(
                WiringOutcome::new(role, "unverified")
                    .with_message(format!("the device could not be read ({code}): {err}")),
            )
        }
    }
}

/// A new wired secret for `role` added to a config under construction; answers its id.
pub fn push_wired_secret(
    cfg: &mut TenantConfig<SecretSlot>,
    role: EndpointRole,
    secret: &Secret,
    at: OffsetDateTime,
) -> String {
    let id = format!(
        "{WIRED_PREFIX}{}-{}-{:04x}",
        role.as_str(),
        at.unix_timestamp(),
        rand::random::<u16>()
    );
    cfg.webhook_secrets.push(WebhookSecret {
        id: id.clone(),
        secret: SecretSlot::New(secret.clone()),
        expires_at: None,
    });
    id
}

/// One endpoint of a config being created, to wire once the config is saved.
pub struct NewWiring {
    pub role: EndpointRole,
    pub endpoint: wagate::tenant::Endpoint<Secret>,
    pub secret: Secret,
    pub secret_id: String,
}

/// Create: plans the wiring of each endpoint of `cfg` (adding a wired secret for each one to
/// wire, so the config and its wiring are saved in one write). Reads only.
pub async fn plan_create(
    app: &App,
    url: Option<&str>,
    cfg: &mut TenantConfig<SecretSlot>,
    at: OffsetDateTime,
) -> Result<(Vec<NewWiring>, Vec<WiringOutcome>), ApiError> {
    let tenant = cfg.tenant_id.clone();
    let mut endpoints = vec![(EndpointRole::Primary, cfg.primary.clone())];
    if let Some(b) = &cfg.backup {
        endpoints.push((EndpointRole::Backup, b.clone()));
    }
    let (mut todo, mut skipped) = (Vec::new(), Vec::new());
    for (role, slot) in endpoints {
        let opened = open_endpoint(app, &tenant, role.as_str(), &slot).await?;
        match readiness(
            app,
            opened.provider.unwrap_or(cfg.provider),
            url,
            role,
            &opened,
        )
        .await
        {
            Readiness::Wire => {
                let secret = wiring::generate_secret();
                let secret_id = push_wired_secret(cfg, role, &secret, at);
                todo.push(NewWiring {
                    role,
                    endpoint: opened,
                    secret,
                    secret_id,
                });
            }
            Readiness::Skip(o) => skipped.push(o),
        }
    }
    Ok((todo, skipped))
}

/// Create: wires each planned endpoint of the config just saved (its secrets are accepted
/// already). If one fails, the config is deleted again (nothing half-saved), both audited,
/// and the wiring's error answered.
pub async fn wire_created(
    app: &App,
    url: &str,
    caller: &Caller,
    saved: &SealedConfig,
    todo: Vec<NewWiring>,
) -> Result<Vec<WiringOutcome>, ApiError> {
    let mut out = Vec::new();
    for w in todo {
        let provider = provider_for(
            &app.providers,
            w.endpoint.provider.unwrap_or(saved.provider),
        )?;
        let place = where_(w.role, &w.endpoint);
        match wiring::wire(provider, Target::from(&w.endpoint), url, &w.secret).await {
            Ok(()) => {
                audit(
                    app,
                    caller,
                    &saved.tenant_id,
                    DeviceAction::WireWebhook,
                    format!(
                        "{place}: wired with secret {} (read back and compared)",
                        w.secret_id
                    ),
                )
                .await?;
                info!(role = w.role.as_str(), secret_id = %w.secret_id, "device webhook wired");
                out.push(WiringOutcome {
                    secret_id: Some(w.secret_id),
                    ..WiringOutcome::new(w.role, "wired")
                });
            }
            Err(err) => {
                warn!(role = w.role.as_str(), code = err.code(), error = %err, "webhook wiring failed: the new config is withdrawn");
                audit(
                    app,
                    caller,
                    &saved.tenant_id,
                    DeviceAction::WireWebhook,
                    format!(
                        "{place}: wiring failed ({}); the config created with it is withdrawn",
                        err.code()
                    ),
                )
                .await?;
                let mut ch = change(caller, Action::Delete);
                ch.detail = Some(format!(
                    "withdrawn: the {} endpoint's webhook wiring failed ({})",
                    w.role.as_str(),
                    err.code()
                ));
                app.journal.delete(saved, true, ch).await?;
                return Err(wiring_error(&err));
            }
        }
    }
    Ok(out)
}

/// Whether an endpoint changed in a way that needs its device webhook set again: another
/// server, device or credentials, or wiring handed back to wagate.
fn endpoint_changed(
    prev: Option<&wagate::tenant::Endpoint<wagate::secrets::SealedSecret>>,
    next: &wagate::tenant::Endpoint<SecretSlot>,
) -> bool {
    let Some(p) = prev else { return true };
    let same_secret = match (p.credentials.secret(), next.credentials.secret()) {
        (None, None) => true,
        (Some(a), Some(SecretSlot::Keep(b))) => a == b,
        _ => false,
    };
    p.base_url != next.base_url
        || p.device_id != next.device_id
        || p.credentials.kind() != next.credentials.kind()
        || !same_secret
        || (p.webhook_wiring == WebhookWiring::Manual
            && next.webhook_wiring == WebhookWiring::Wagate)
}

/// Carries the secrets a wiring saved on `base` (new wired secrets, earlier ones set to
/// expire or withdrawn) over to `next`, built from `cur`, and bases `next` on `base`'s version.
pub fn rebase(next: &mut TenantConfig<SecretSlot>, cur: &SealedConfig, base: &SealedConfig) {
    if base.version == cur.version {
        return;
    }
    let in_cur = |id: &str| cur.webhook_secrets.iter().find(|w| w.id == id);
    let in_base = |id: &str| base.webhook_secrets.iter().find(|w| w.id == id);
    next.webhook_secrets
        .retain(|w| in_cur(&w.id).is_none() || in_base(&w.id).is_some());
    for w in &mut next.webhook_secrets {
        if let (Some(c), Some(b)) = (in_cur(&w.id), in_base(&w.id))
            && c.expires_at != b.expires_at
        {
            w.expires_at = b.expires_at;
        }
    }
    for b in keep_all(base).webhook_secrets {
        if in_cur(&b.id).is_none() && !next.webhook_secrets.iter().any(|w| w.id == b.id) {
            next.webhook_secrets.push(b);
        }
    }
    next.version = base.version + 1;
}

/// Update: wires every endpoint of `next` that changed (and is wagate's to wire, with its
/// device logged in) BEFORE the update is written, each through [`wire_before`]. Answers the
/// config to write the update over (`cur`, or `cur` plus the new wired secrets) with `next`
/// rebased on it, and one outcome per endpoint. A failed wiring is the answer: nothing of
/// the update is written.
pub async fn wire_changed(
    app: &App,
    url: Option<&str>,
    caller: &Caller,
    cur: &SealedConfig,
    next: &mut TenantConfig<SecretSlot>,
) -> Result<(SealedConfig, Vec<WiringOutcome>), ApiError> {
    let mut endpoints = vec![(
        EndpointRole::Primary,
        Some(&cur.primary),
        next.primary.clone(),
    )];
    if let Some(b) = &next.backup {
        endpoints.push((EndpointRole::Backup, cur.backup.as_ref(), b.clone()));
    }
    // Wired secrets are wagate's: a body listing the tenant's own secrets keeps them.
    for w in keep_all(cur).webhook_secrets {
        if w.id.starts_with(WIRED_PREFIX) && !next.webhook_secrets.iter().any(|n| n.id == w.id) {
            next.webhook_secrets.push(w);
        }
    }
    let mut base = cur.clone();
    let mut out = Vec::new();
    for (role, prev, slot) in endpoints {
        if !endpoint_changed(prev, &slot) {
            out.push(WiringOutcome::new(role, "unchanged"));
            continue;
        }
        let opened = open_endpoint(app, &cur.tenant_id, role.as_str(), &slot).await?;
        match (
            readiness(
                app,
                opened.provider.unwrap_or(cur.provider),
                url,
                role,
                &opened,
            )
            .await,
            url,
        ) {
            (Readiness::Wire, Some(url)) => {
                let (after, id) = wire_before(app, url, caller, &base, role, &opened).await?;
                base = after;
                out.push(WiringOutcome {
                    secret_id: Some(id),
                    ..WiringOutcome::new(role, "wired")
                });
            }
            (Readiness::Skip(o), _) => out.push(o),
            (Readiness::Wire, None) => out.push(WiringOutcome::new(role, "no_webhook_url")),
        }
    }
    rebase(next, cur, &base);
    Ok((base, out))
}

/// Switch and migration: the endpoint that will carry the tenant's traffic as `role` is
/// wired BEFORE the cut-over (the old endpoint's webhook is left as it is). Already wired:
/// nothing changes; `manual`, no device or no URL: reported. Answers the config to write the
/// cut-over over, and the outcome; a failed wiring is the answer (nothing is switched).
pub async fn wire_target(
    app: &App,
    url: Option<&str>,
    caller: &Caller,
    cur: &SealedConfig,
    role: EndpointRole,
    target: &wagate::tenant::Endpoint<Secret>,
) -> Result<(SealedConfig, WiringOutcome), ApiError> {
    match check_target(app, url, cur, role, target).await? {
        TargetWiring::Report(o) => Ok((cur.clone(), o)),
        TargetWiring::NeedsWiring(_) => {
            let url = url.unwrap_or_default();
            let (after, id) = wire_before(app, url, caller, cur, role, target).await?;
            Ok((
                after,
                WiringOutcome {
                    secret_id: Some(id),
                    ..WiringOutcome::new(role, "wired")
                },
            ))
        }
    }
}

/// What a switch or migration target's wiring is now (read only).
pub enum TargetWiring {
    /// Nothing to do: `already_wired`, `manual`, `no_device`, `no_webhook_url`.
    Report(WiringOutcome),
    /// wagate must wire it (its webhook reads as this state).
    NeedsWiring(WiringState),
}

/// Reads the target's device webhook (never changes it).
pub async fn check_target(
    app: &App,
    url: Option<&str>,
    cur: &SealedConfig,
    role: EndpointRole,
    target: &wagate::tenant::Endpoint<Secret>,
) -> Result<TargetWiring, ApiError> {
    if target.webhook_wiring == WebhookWiring::Manual {
        return Ok(TargetWiring::Report(WiringOutcome::new(role, "manual")));
    }
    if target.provider.unwrap_or(cur.provider) == wagate::tenant::ProviderKind::Meta {
        return Ok(TargetWiring::Report(meta_console(role)));
    }
    if target.device_id.as_deref().is_none_or(str::is_empty) {
        return Ok(TargetWiring::Report(WiringOutcome::new(role, "no_device")));
    }
    let Some(url) = url else {
        return Ok(TargetWiring::Report(WiringOutcome::new(
            role,
            "no_webhook_url",
        )));
    };
    match inspect(app, cur, target, url).await? {
        WiringState::Wired => Ok(TargetWiring::Report(WiringOutcome::new(
            role,
            "already_wired",
        ))),
        other => Ok(TargetWiring::NeedsWiring(other)),
    }
}

/// A stored endpoint that should be wired and is not (after an import, or when its device
/// has just logged in): wired now. Never fails: the outcome says what happened.
pub async fn ensure_wired(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: &TenantId,
    role: EndpointRole,
) -> WiringOutcome {
    let result = async {
        let url = app.webhook_url(req, tenant);
        let (cfg, e) = endpoint(app, tenant, role).await?;
        if let Readiness::Skip(o) = readiness(
            app,
            e.provider.unwrap_or(cfg.provider),
            url.as_deref(),
            role,
            &e,
        )
        .await
        {
            return Ok(o);
        }
        let (_, o) = wire_target(app, url.as_deref(), caller, &cfg, role, &e).await?;
        Ok::<_, ApiError>(o)
    }
    .await;
    result.unwrap_or_else(|e: ApiError| {
        let state = match &e {
            ApiError::StateConflict(_) => "no_device",
            _ => "failed",
        };
        WiringOutcome::new(role, state).with_message(format!("{}: {e}", e.code()))
    })
}

/// Whether the endpoint's device is logged in (`None`: it could not be read; a device the
/// server does not have is not logged in).
pub async fn linked(
    app: &App,
    kind: wagate::tenant::ProviderKind,
    role: EndpointRole,
    e: &wagate::tenant::Endpoint<Secret>,
) -> Option<bool> {
    if e.device_id.as_deref().is_none_or(str::is_empty) {
        return None;
    }
    device_view(app, role, e, kind)
        .await
        .ok()
        .map(|v| v.logged_in)
}

/// A dry run's precondition of one target (read only, nothing changes on the server):
/// whether its device is logged in, and whether its webhook is wired (`already_wired`) or
/// would be wired by the real run (`would_wire`); else `not_linked`, `unverified`, or what
/// [`check_target`] reports (`manual`, `no_device`, `no_webhook_url`).
pub async fn precheck(
    app: &App,
    url: Option<&str>,
    cur: &SealedConfig,
    role: EndpointRole,
    secret_role: EndpointRole,
    target: &wagate::tenant::Endpoint<Secret>,
) -> (Option<bool>, WiringOutcome) {
    let linked = linked(app, target.provider.unwrap_or(cur.provider), role, target).await;
    let mut wiring = match check_target(app, url, cur, secret_role, target).await {
        Ok(TargetWiring::Report(o)) => o,
        Ok(TargetWiring::NeedsWiring(state)) => match linked {
            Some(true) => WiringOutcome::new(role, "would_wire").with_message(format!(
                "the device webhook reads as {}: the real run wires it before the cut-over",
                state.as_str()
            )),
            _ => WiringOutcome::new(role, "not_linked")
                .with_message("the device is not logged in on the target: link it first"),
        },
        Err(e) => {
            let state = if linked == Some(false) {
                "not_linked"
            } else {
                "unverified"
            };
            WiringOutcome::new(role, state).with_message(format!("{}: {e}", e.code()))
        }
    };
    wiring.role = role.as_str().into();
    (linked, wiring)
}

/// Whether a precheck lets the real run go through.
pub fn precheck_ok(linked: Option<bool>, wiring: &WiringOutcome) -> bool {
    linked != Some(false)
        && matches!(
            wiring.state.as_str(),
            "already_wired" | "would_wire" | "manual" | "no_device" | "no_webhook_url"
        )
}

/// Whether the endpoint a failover (or failback) would go to can take the tenant's traffic:
/// its server answers, its device is logged in, and its webhook is wired (an endpoint whose
/// wiring is manual is the tenant's own forwarding: not judged). Read only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandbyReadiness {
    /// The endpoint that is not active (the backup, or the primary after a failover).
    pub role: String,
    pub ready: bool,
    /// Why not, each a code: `server_down`, `device_not_logged_in`, `webhook_not_wired`,
    /// `no_webhook_url`, `unverified`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The same in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The readiness of the tenant's standby endpoint (`None` without a backup).
pub async fn standby_readiness(
    app: &App,
    req: &Request,
    cfg: &SealedConfig,
) -> Result<Option<StandbyReadiness>, ApiError> {
    if cfg.backup.is_none() {
        return Ok(None);
    }
    let role = match cfg.active_endpoint {
        EndpointRole::Primary => EndpointRole::Backup,
        EndpointRole::Backup => EndpointRole::Primary,
    };
    let slots = keep_all(cfg);
    let slot = match role {
        EndpointRole::Primary => slots.primary.clone(),
        EndpointRole::Backup => slots.backup.clone().expect("checked above"),
    };
    // KMS unavailable (or refusing the credential, which the status names apart) leaves the
    // readiness unknown; it does not fail the whole status view.
    let e = match open_endpoint(app, &cfg.tenant_id, role.as_str(), &slot).await {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(role = role.as_str(), error = %err, "standby readiness: its credential could not be opened");
            return Ok(Some(StandbyReadiness {
                role: role.as_str().to_string(),
                ready: false,
                reasons: vec!["unverified".into()],
                detail: Some(
                    "its server credential could not be opened now (KMS unavailable or refusing it); readiness is unknown"
                        .into(),
                ),
            }));
        }
    };
    let mut reasons: Vec<String> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let device = if e.device_id.as_deref().is_none_or(str::is_empty) {
        None
    } else {
        Some(device_view(app, role, &e, e.provider.unwrap_or(cfg.provider)).await)
    };
    match &device {
        Some(Ok(v)) if !v.logged_in => {
            reasons.push("device_not_logged_in".into());
            words.push(format!("the device is {}", v.state));
        }
        Some(Err(err)) => {
            let code = match server_error(err) {
                ApiError::Device(f, _) => f.code(),
                _ => "error",
            };
            if matches!(code, "server_unreachable" | "egress_refused") {
                reasons.push("server_down".into());
            } else {
                reasons.push("unverified".into());
            }
            words.push(format!("the server could not be asked ({code}): {err}"));
        }
        _ => {}
    }
    if reasons.is_empty() && e.webhook_wiring == WebhookWiring::Wagate && device.is_some() {
        let url = app.webhook_url(req, &cfg.tenant_id);
        match check_target(app, url.as_deref(), cfg, role, &e).await {
            Ok(TargetWiring::Report(o)) if o.state == "no_webhook_url" => {
                reasons.push("no_webhook_url".into());
                words.push("this API does not know its public URL".into());
            }
            Ok(TargetWiring::Report(_)) => {}
            Ok(TargetWiring::NeedsWiring(state)) => {
                reasons.push("webhook_not_wired".into());
                words.push(format!(
                    "the device webhook is {} (repair: POST /tenants/{}/devices/{}/webhook)",
                    state.as_str(),
                    cfg.tenant_id,
                    role.as_str()
                ));
            }
            Err(e) => {
                reasons.push("unverified".into());
                words.push(format!(
                    "the device webhook could not be read ({})",
                    e.code()
                ));
            }
        }
    }
    Ok(Some(StandbyReadiness {
        role: role.as_str().into(),
        ready: reasons.is_empty(),
        reasons,
        detail: (!words.is_empty()).then(|| words.join("; ")),
    }))
}

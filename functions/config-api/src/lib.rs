//! # config-api
//!
//! Tenant WhatsApp settings behind API Gateway (HTTP API, payload v2):
//!
//! | route | scope | does |
//! |---|---|---|
//! | `POST /tenants/{tenantId}/whatsapp-config` | tenant or admin | create (201) |
//! | `GET /tenants/{tenantId}/whatsapp-config` | tenant or admin | read (200) |
//! | `PUT /tenants/{tenantId}/whatsapp-config` | tenant or admin | replace, needs the version (200) |
//! | `DELETE /tenants/{tenantId}/whatsapp-config` | tenant or admin | delete (204) |
//! | `GET /tenants?limit=&cursor=` | admin | list, paginated |
//! | `POST /tenants/{tenantId}/whatsapp-config/test` | tenant or admin | connection test of the saved endpoints, or of a candidate in the body (200) |
//! | `POST /tenants/{tenantId}/whatsapp-config/rotate-credential` | tenant or admin | replace a server credential (200) |
//! | `POST /tenants/{tenantId}/whatsapp-config/rotate-webhook-secret` | tenant or admin | new webhook secret, returned once; old ones expire after a grace (200) |
//! | `POST /tenants/{tenantId}/whatsapp-config/switch` | tenant or admin | activate / swap / replace an endpoint after a passing connection test (200, 422) |
//! | `GET /tenants/{tenantId}/audit?limit=&cursor=` | tenant or admin | audit log, newest first |
//! | `GET /tenants/{tenantId}/status` | tenant or admin | dashboard status |
//! | `GET /tenants/{tenantId}/messages?limit=&cursor=` | tenant or admin | the tenant's outbound messages, newest first |
//! | `GET /tenants/{tenantId}/messages/{idempotencyKey}` | tenant or admin | an outbound message's delivery record |
//! | `GET /tenants/{tenantId}/history?hours=` | tenant or admin | health-check points of the tenant's servers (last 24 h) |
//! | `GET /admin/failovers?hours=` | admin | automatic failovers and failbacks of every tenant, newest first |
//! | `GET /dashboard` | none (the page asks for a token) | the status dashboard and settings page (one document, assets inlined) |
//! | `GET /admin/endpoints` | admin | every server's health record |
//! | `GET /admin/export` | admin | every config, secrets sealed |
//! | `POST /admin/import?dryRun=true` | admin | restore an export; never overwrites |
//! | `GET /admin/servers` | admin | the server registry with health and tenant counts |
//! | `POST /admin/servers` | admin | register a server (201) |
//! | `PUT /admin/servers/{serverId}` | admin | change provider, region, capacity (200) |
//! | `DELETE /admin/servers/{serverId}` | admin | deregister an unused server (204) |
//! | `POST /admin/placement` | admin | least-loaded healthy server of a region with room |
//! | `POST /admin/migrations` | admin | run (or resume, or dry-run) a bulk migration job |
//! | `GET /admin/migrations/{jobId}` | admin | a migration job's recorded results |
//! | `GET`/`POST /tenants/{tenantId}/devices/{role}[/qr\|/pairing-code\|/logout\|/reconnect\|/webhook]` | tenant or admin | the endpoint's device and its webhook wiring ([`devices`]) |
//!
//! Every change writes an audit record in the same transaction ([`audit::Journal`]).
//!
//! Every route authenticates the caller ([`auth`]). Secrets are sealed with KMS before
//! they are stored and never returned.

pub mod audit;
pub mod auth;
pub mod conntest;
pub mod dashboard;
pub mod devices;
pub mod dto;
pub mod error;
pub mod fleet;
pub mod ops;

use std::sync::Arc;

use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use time::OffsetDateTime;
use tracing::{Instrument, info, warn};
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::egress::{EgressPolicy, HttpClient};
use wagate::runtime::config::PublicWebhookBase;
use wagate::secrets::{SealedSecret, SecretSealer};
use wagate::tenant::store::TenantConfigStore;
use wagate::tenant::{SealedConfig, TenantConfig, TenantId, ValidationErrors};

use crate::audit::{Action, Change, Journal};
use crate::auth::{Authenticator, Caller};
use crate::dto::{ConfigInput, ConfigPage, ConfigView, SecretSlot, build_config};
use crate::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Default and largest page of the tenant listing.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

/// What the handler needs; built once per instance in `main`.
pub struct App {
    pub store: Arc<dyn TenantConfigStore>,
    pub sealer: Arc<dyn SecretSealer>,
    pub auth: Authenticator,
    pub egress: EgressPolicy,
    /// Writes configs with their audit records; reads the audit log.
    pub journal: Journal,
    /// Connection tests reach WhatsApp servers through it.
    pub http: HttpClient,
    /// The health check's endpoints table (read only).
    pub endpoints_table: String,
    /// The health check's per-run history of each server (read only).
    pub history_table: String,
    /// Outbound delivery records (read only: `get`).
    pub deliveries: DynamoDeliveryStore,
    /// The server registry and migration jobs.
    pub fleet: fleet::Fleet,
    /// `PUBLIC_WEBHOOK_BASE_URL`: where tenants' servers post their webhooks (unset: this
    /// HTTP API's own URL).
    pub webhook_base: PublicWebhookBase,
}

impl App {
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

#[derive(Debug)]
pub(crate) enum Route {
    Config(TenantId),
    List,
    Test(TenantId),
    RotateCredential(TenantId),
    RotateWebhookSecret(TenantId),
    Switch(TenantId),
    Audit(TenantId),
    Status(TenantId),
    Message(TenantId, String),
    Messages(TenantId),
    History(TenantId),
    Endpoints,
    Failovers,
    /// The dashboard page.
    Dashboard,
    Export,
    Import,
    Servers,
    Server(String),
    Placement,
    Migrations,
    Migration(String),
    /// Issue 15: `/tenants/{tenantId}/devices/{role}[/{op}]` ([`devices`]).
    Device(TenantId, devices::DevicePath),
}

/// Every route the router knows, as `(method, path template)`; the OpenAPI test checks
/// each is documented.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/tenants"),
    ("POST", "/tenants/{tenantId}/whatsapp-config"),
    ("GET", "/tenants/{tenantId}/whatsapp-config"),
    ("PUT", "/tenants/{tenantId}/whatsapp-config"),
    ("DELETE", "/tenants/{tenantId}/whatsapp-config"),
    ("POST", "/tenants/{tenantId}/whatsapp-config/test"),
    (
        "POST",
        "/tenants/{tenantId}/whatsapp-config/rotate-credential",
    ),
    (
        "POST",
        "/tenants/{tenantId}/whatsapp-config/rotate-webhook-secret",
    ),
    ("POST", "/tenants/{tenantId}/whatsapp-config/switch"),
    ("GET", "/tenants/{tenantId}/audit"),
    ("GET", "/tenants/{tenantId}/status"),
    ("GET", "/tenants/{tenantId}/messages"),
    ("GET", "/tenants/{tenantId}/messages/{idempotencyKey}"),
    ("GET", "/tenants/{tenantId}/history"),
    ("GET", "/admin/endpoints"),
    ("GET", "/admin/failovers"),
    ("GET", "/admin/export"),
    ("POST", "/admin/import"),
    ("GET", "/admin/servers"),
    ("POST", "/admin/servers"),
    ("PUT", "/admin/servers/{serverId}"),
    ("DELETE", "/admin/servers/{serverId}"),
    ("POST", "/admin/placement"),
    ("POST", "/admin/migrations"),
    ("GET", "/admin/migrations/{jobId}"),
    ("GET", "/dashboard"),
    // Issue 15: device management and webhook wiring ([`devices`]).
    ("GET", "/tenants/{tenantId}/devices/{role}"),
    ("POST", "/tenants/{tenantId}/devices/{role}"),
    ("POST", "/tenants/{tenantId}/devices/{role}/qr"),
    ("POST", "/tenants/{tenantId}/devices/{role}/pairing-code"),
    ("POST", "/tenants/{tenantId}/devices/{role}/logout"),
    ("POST", "/tenants/{tenantId}/devices/{role}/reconnect"),
    ("GET", "/tenants/{tenantId}/devices/{role}/webhook"),
    ("POST", "/tenants/{tenantId}/devices/{role}/webhook"),
];

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
        let result = route(app, &req).await;
        let resp = match result {
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

pub(crate) fn parse_route(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // The dashboard: `…/dashboard` at the end of a path that is not an API path (a tenant
    // may be called `dashboard`).
    if segs.last() == Some(&"dashboard") && !segs.iter().any(|s| *s == "tenants" || *s == "admin") {
        return Ok(Route::Dashboard);
    }
    // Accept any prefix (stage, or cargo lambda's /lambda-url/<fn>) before /tenants or /admin.
    if let Some(pos) = segs.iter().rposition(|s| *s == "tenants") {
        let tenant = |id: &str| {
            percent_decode(id)
                .parse::<TenantId>()
                .map_err(|e| ApiError::BadRequest(format!("tenantId in the path {}", e.reason)))
        };
        return match &segs[pos + 1..] {
            [] => Ok(Route::List),
            [id, "whatsapp-config"] => Ok(Route::Config(tenant(id)?)),
            [id, "whatsapp-config", "test"] => Ok(Route::Test(tenant(id)?)),
            [id, "whatsapp-config", "rotate-credential"] => {
                Ok(Route::RotateCredential(tenant(id)?))
            }
            [id, "whatsapp-config", "rotate-webhook-secret"] => {
                Ok(Route::RotateWebhookSecret(tenant(id)?))
            }
            [id, "whatsapp-config", "switch"] => Ok(Route::Switch(tenant(id)?)),
            [id, "audit"] => Ok(Route::Audit(tenant(id)?)),
            [id, "status"] => Ok(Route::Status(tenant(id)?)),
            [id, "messages"] => Ok(Route::Messages(tenant(id)?)),
            [id, "messages", key] => Ok(Route::Message(tenant(id)?, percent_decode(key))),
            [id, "history"] => Ok(Route::History(tenant(id)?)),
            // Issue 15: device management and webhook wiring.
            [id, "devices", role] => Ok(Route::Device(
                tenant(id)?,
                devices::DevicePath {
                    role: percent_decode(role),
                    op: None,
                },
            )),
            [id, "devices", role, op] => Ok(Route::Device(
                tenant(id)?,
                devices::DevicePath {
                    role: percent_decode(role),
                    op: Some(percent_decode(op)),
                },
            )),
            _ => Err(ApiError::NoRoute),
        };
    }
    match segs
        .iter()
        .rposition(|s| *s == "admin")
        .map(|p| &segs[p + 1..])
    {
        Some(["endpoints"]) => Ok(Route::Endpoints),
        Some(["failovers"]) => Ok(Route::Failovers),
        Some(["export"]) => Ok(Route::Export),
        Some(["import"]) => Ok(Route::Import),
        Some(["servers"]) => Ok(Route::Servers),
        Some(["servers", id]) => Ok(Route::Server(percent_decode(id))),
        Some(["placement"]) => Ok(Route::Placement),
        Some(["migrations"]) => Ok(Route::Migrations),
        Some(["migrations", id]) => Ok(Route::Migration(percent_decode(id))),
        _ => Err(ApiError::NoRoute),
    }
}

/// A path segment with its `%XX` escapes decoded (`+` stays `+`: this is a path, not a
/// form). Invalid UTF-8 after decoding becomes U+FFFD, which no id accepts.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let route = parse_route(req.uri().path())?;
    // The page holds no data: it is served without a token and asks for one.
    if let Route::Dashboard = route {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Err(ApiError::MethodNotAllowed("GET"));
        }
        return Ok(dashboard::serve());
    }
    // Authenticate before anything else is looked at.
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = app.auth.authenticate(authz).await?;
    tracing::Span::current().record("caller", caller.subject.as_str());
    let method = req.method().clone();
    let only = |m: Method, allow: &'static str| {
        if method == m {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed(allow))
        }
    };
    let admin = || {
        if caller.is_admin() {
            Ok(())
        } else {
            Err(ApiError::AdminOnly)
        }
    };
    if let Route::Config(t)
    | Route::Test(t)
    | Route::RotateCredential(t)
    | Route::RotateWebhookSecret(t)
    | Route::Switch(t)
    | Route::Audit(t)
    | Route::Status(t)
    | Route::Message(t, _)
    | Route::Messages(t)
    | Route::History(t)
    | Route::Device(t, _) = &route
    {
        tracing::Span::current().record("tenant_id", t.as_str());
        authorize(&caller, t)?;
    }
    match route {
        Route::List => {
            only(Method::GET, "GET")?;
            admin()?;
            list(app, req).await
        }
        Route::Config(tenant) => match method {
            Method::POST => create(app, req, &caller, tenant).await,
            Method::GET => read(app, req, tenant).await,
            Method::PUT => update(app, req, &caller, tenant).await,
            Method::DELETE => delete(app, req, &caller, tenant).await,
            _ => Err(ApiError::MethodNotAllowed("GET, POST, PUT, DELETE")),
        },
        Route::Test(t) => {
            only(Method::POST, "POST")?;
            ops::test(app, req, t).await
        }
        Route::RotateCredential(t) => {
            only(Method::POST, "POST")?;
            ops::rotate_credential(app, req, &caller, t).await
        }
        Route::RotateWebhookSecret(t) => {
            only(Method::POST, "POST")?;
            ops::rotate_webhook_secret(app, req, &caller, t).await
        }
        Route::Switch(t) => {
            only(Method::POST, "POST")?;
            ops::switch(app, req, &caller, t).await
        }
        Route::Audit(t) => {
            only(Method::GET, "GET")?;
            ops::audit(app, req, t).await
        }
        Route::Status(t) => {
            only(Method::GET, "GET")?;
            ops::status(app, req, t).await
        }
        Route::Message(t, key) => {
            only(Method::GET, "GET")?;
            ops::message(app, t, &key).await
        }
        Route::Messages(t) => {
            only(Method::GET, "GET")?;
            ops::messages(app, req, t).await
        }
        Route::History(t) => {
            only(Method::GET, "GET")?;
            dashboard::history(app, req, t).await
        }
        Route::Device(t, path) => devices::handle(app, req, &caller, t, path).await,
        Route::Endpoints => {
            only(Method::GET, "GET")?;
            admin()?;
            ops::endpoints(app).await
        }
        Route::Failovers => {
            only(Method::GET, "GET")?;
            admin()?;
            dashboard::failovers(app, req).await
        }
        // Served above, before authentication.
        Route::Dashboard => Err(ApiError::NoRoute),
        Route::Export => {
            only(Method::GET, "GET")?;
            admin()?;
            ops::export(app).await
        }
        Route::Import => {
            only(Method::POST, "POST")?;
            admin()?;
            ops::import(app, req, &caller).await
        }
        // Admin before anything else: a tenant token learns nothing, not even 405.
        Route::Servers => {
            admin()?;
            match method {
                Method::GET => fleet::list_servers(app).await,
                Method::POST => fleet::register(app, req, &caller).await,
                _ => Err(ApiError::MethodNotAllowed("GET, POST")),
            }
        }
        Route::Server(id) => {
            admin()?;
            match method {
                Method::PUT => fleet::update_server(app, req, &caller, &id).await,
                Method::DELETE => fleet::deregister(app, &caller, &id).await,
                _ => Err(ApiError::MethodNotAllowed("PUT, DELETE")),
            }
        }
        Route::Placement => {
            admin()?;
            only(Method::POST, "POST")?;
            fleet::placement(app, req).await
        }
        Route::Migrations => {
            admin()?;
            only(Method::POST, "POST")?;
            fleet::migrate(app, req, &caller).await
        }
        Route::Migration(id) => {
            admin()?;
            only(Method::GET, "GET")?;
            fleet::get_migration(app, &id).await
        }
    }
}

fn authorize(caller: &Caller, tenant: &TenantId) -> Result<(), ApiError> {
    if caller.may_access(tenant) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(tenant.to_string()))
    }
}

fn parse_body(req: &Request) -> Result<ConfigInput, ApiError> {
    parse_json(req, MAX_BODY_BYTES)
}

/// A JSON body of at most `max` bytes with `Content-Type: application/json`. Public as the
/// entry of the `tenant_config` fuzz target (fuzz/), which reads bodies exactly as the API does.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    req: &Request,
    max: usize,
) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > max {
        return Err(ApiError::TooLarge(max));
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    // serde reads a struct from a JSON array too (fields by position): `[]` or `["x"]`
    // would become a request. Every body of this API is an object.
    if bytes.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(redact_serde_error(&e)))?;
    integral_numbers(&mut value);
    // A field is either left out or has a value: `null` is refused rather than read as
    // "absent" (one meaning per request, and the one the OpenAPI document states).
    if let Some(path) = null_path(&value, String::new()) {
        return Err(ApiError::BadRequest(format!(
            "{path} is null; leave the field out instead"
        )));
    }
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(redact_serde_error(&e)))
}

/// JSON (and JSON Schema's `integer`) makes no difference between `5` and `5.0`: a number
/// with no fraction that fits a 64-bit integer is read as that integer.
fn integral_numbers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *v = serde_json::Value::from(f as u64);
                } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                    *v = serde_json::Value::from(f as i64);
                }
            }
        }
        serde_json::Value::Object(m) => m.values_mut().for_each(integral_numbers),
        serde_json::Value::Array(a) => a.iter_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Where the first `null` in a JSON value is (`backup.deviceId`, `items[2]`).
fn null_path(v: &serde_json::Value, at: String) -> Option<String> {
    match v {
        serde_json::Value::Null => Some(if at.is_empty() { "the body".into() } else { at }),
        serde_json::Value::Object(m) => m.iter().find_map(|(k, v)| {
            null_path(
                v,
                if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                },
            )
        }),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| null_path(v, format!("{at}[{i}]"))),
        _ => None,
    }
}

/// The save-time SSRF check of host names: each endpoint whose base URL names a host that
/// resolves only to refused addresses gets a field error (`<field>.baseUrl`). Literal
/// addresses were checked by the structural validation already.
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

/// serde_json quotes the offending string value in some messages
/// (`invalid type: string "…", expected …`); that value may be a secret put in the wrong
/// field, so it is cut out.
fn redact_serde_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg.as_str();
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i + 8]);
        let after = &rest[i + 8..];
        match after.find("\", ").or_else(|| after.rfind('"')) {
            Some(end) => {
                out.push_str("***");
                rest = &after[end..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The version from `If-Match: "N"` (or `W/"N"`, or a bare `N`), if sent: the entity tag
/// the API answered in `ETag`, 1 to 19 digits.
pub(crate) fn if_match(req: &Request) -> Result<Option<u64>, ApiError> {
    let Some(v) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad =
        || ApiError::BadRequest("If-Match must be the version's entity tag, e.g. \"3\"".into());
    let s = v.to_str().map_err(|_| bad())?;
    let s = s.strip_prefix("W/").unwrap_or(s);
    // The quoted entity tag, or (leniently) the bare version number.
    let digits = match s.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or_else(bad)?,
        None => s,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse::<u64>().map(Some).map_err(|_| bad())
}

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

async fn create(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let input = parse_body(req)?;
    if input.version.is_some() {
        return Err(ApiError::BadRequest(
            "version is set by the server on create; leave it out".into(),
        ));
    }
    let at = now();
    let cfg = build_config(tenant, input, None, at).map_err(ApiError::Invalid)?;
    validate_config(app, &cfg).await?;
    let sealed = seal(app, cfg).await?;
    app.journal
        .create(&sealed, change(caller, Action::Create))
        .await?;
    info!(version = sealed.version, "config created");
    let mut resp = view_response(app, req, StatusCode::CREATED, &sealed);
    if let Ok(loc) =
        HeaderValue::from_str(&format!("/tenants/{}/whatsapp-config", sealed.tenant_id))
    {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

async fn read(app: &App, req: &Request, tenant: TenantId) -> Result<Response<Body>, ApiError> {
    let cfg = app.store.get(&tenant).await?.ok_or(ApiError::NotFound)?;
    Ok(view_response(app, req, StatusCode::OK, &cfg))
}

async fn update(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let header_version = if_match(req)?;
    let input = parse_body(req)?;
    let expected = match (header_version, input.version) {
        (Some(h), Some(b)) if h != b => return Err(ApiError::VersionsDisagree(h, b)),
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Err(ApiError::VersionRequired),
    };
    let current = app.store.get(&tenant).await?.ok_or(ApiError::NotFound)?;
    if current.version != expected {
        // Stale before any KMS call is spent.
        return Err(ApiError::Conflict(expected));
    }
    let at = now();
    let cfg = build_config(tenant, input, Some(&current), at).map_err(ApiError::from_build)?;
    validate_config(app, &cfg).await?;
    let sealed = seal(app, cfg).await?;
    app.journal
        .update(&current, &sealed, change(caller, Action::Update))
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => ApiError::Conflict(expected),
            other => other,
        })?;
    info!(version = sealed.version, "config updated");
    Ok(view_response(app, req, StatusCode::OK, &sealed))
}

async fn delete(
    app: &App,
    req: &Request,
    caller: &Caller,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let expected = if_match(req)?;
    let current = app.store.get(&tenant).await?.ok_or(ApiError::NotFound)?;
    if expected.is_some_and(|v| v != current.version) {
        return Err(ApiError::Conflict(expected.unwrap_or(0)));
    }
    // Without If-Match the delete is still of the version read (so its audit record is
    // right): a change in between makes it 409 rather than deleting unseen changes.
    app.journal
        .delete(&current, true, change(caller, Action::Delete))
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => ApiError::Conflict(expected.unwrap_or(0)),
            other => other,
        })?;
    info!("config deleted");
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

async fn list(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let params = req.query_string_parameters();
    let limit = match params.first("limit") {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1 to {MAX_PAGE}")))?,
    };
    let page = app.store.list(params.first("cursor"), limit).await?;
    let body = ConfigPage {
        items: page
            .items
            .iter()
            .map(|c| ConfigView::from(c).with_webhook_url(app.webhook_url(req, &c.tenant_id)))
            .collect(),
        next_cursor: page.next_cursor,
    };
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_string(&body).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
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

pub(crate) fn view_response(
    app: &App,
    req: &Request,
    status: StatusCode,
    cfg: &SealedConfig,
) -> Response<Body> {
    let view = ConfigView::from(cfg).with_webhook_url(app.webhook_url(req, &cfg.tenant_id));
    let body =
        serde_json::to_string(&view).unwrap_or_else(|_| r#"{"error":"internal_error"}"#.into());
    let mut resp = json_response(status, body);
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", cfg.version)) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_any_prefix() {
        assert!(
            matches!(parse_route("/tenants/acme/whatsapp-config"), Ok(Route::Config(t)) if t.as_str() == "acme")
        );
        assert!(matches!(
            parse_route("/lambda-url/config-api/tenants/acme/whatsapp-config"),
            Ok(Route::Config(_))
        ));
        assert!(matches!(parse_route("/tenants"), Ok(Route::List)));
        assert!(matches!(
            parse_route("/tenants/acme"),
            Err(ApiError::NoRoute)
        ));
        assert!(matches!(
            parse_route("/tenants/a%2Fb/whatsapp-config"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn routes_the_operations() {
        assert!(matches!(
            parse_route("/tenants/acme/whatsapp-config/test"),
            Ok(Route::Test(_))
        ));
        assert!(matches!(
            parse_route("/stage/tenants/acme/messages/a%2Fb%23c"),
            Ok(Route::Message(_, k)) if k == "a/b#c"
        ));
        assert!(matches!(
            parse_route("/lambda-url/config-api/admin/export"),
            Ok(Route::Export)
        ));
        assert!(matches!(
            parse_route("/tenants/acme/whatsapp-config/nope"),
            Err(ApiError::NoRoute)
        ));
        assert!(matches!(parse_route("/admin"), Err(ApiError::NoRoute)));
        assert!(matches!(
            parse_route("/lambda-url/config-api/dashboard"),
            Ok(Route::Dashboard)
        ));
        assert!(matches!(
            parse_route("/prod/dashboard/app.js"),
            Err(ApiError::NoRoute)
        ));
        // A tenant called `dashboard` is still a tenant.
        assert!(matches!(
            parse_route("/tenants/dashboard/status"),
            Ok(Route::Status(t)) if t.as_str() == "dashboard"
        ));
        assert!(matches!(
            parse_route("/tenants/acme/history"),
            Ok(Route::History(t)) if t.as_str() == "acme"
        ));
        assert!(matches!(
            parse_route("/admin/failovers"),
            Ok(Route::Failovers)
        ));
    }

    #[test]
    fn serde_errors_lose_the_quoted_value() {
        let e = serde_json::from_str::<u64>("\"hunter2-secret\"").unwrap_err();
        let m = redact_serde_error(&e);
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("invalid type"), "{m}");
    }
}

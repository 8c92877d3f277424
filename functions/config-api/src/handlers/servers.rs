//! The server registry (admin): `GET`/`POST /admin/servers`, `PUT`/`DELETE
//! /admin/servers/{serverId}`, and `GET /admin/endpoints` (every server's health record as
//! the health check wrote it). Registry changes are written with their audit record
//! (partition `#server/<serverId>`) in one transaction by [`crate::store::ServerRegistry`].

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::info;
use wagate::audit::AuditEntry;
use wagate::egress::EgressPolicy;
use wagate::health::EndpointHealth;
use wagate::tenant::{
    Credentials, Endpoint, ProviderKind, TenantId, ValidationErrors, normalize_base_url,
    validate_endpoint_alone,
};
use wagate::timestamp::rfc3339;

use crate::App;
use crate::error::ApiError;
use crate::fleet::{MAX_CAPACITY, Server};
use crate::handlers::{check_hosts, now};
use crate::request::{MAX_BODY_BYTES, expected_version, parse_json};
use crate::response::{no_content, to_json};
use crate::router::Ctx;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterInput {
    pub server_id: String,
    pub base_url: String,
    pub provider: String,
    pub region: String,
    pub capacity: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateServerInput {
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub capacity: Option<u32>,
    #[serde(default)]
    pub version: Option<u64>,
}

/// A server in the listing: the registration, its use and its health.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    #[serde(flatten)]
    pub server: Server,
    /// Tenants with the server as primary or backup.
    pub tenants: u32,
    /// Tenants whose active endpoint is on it.
    pub active_tenants: u32,
    /// `capacity - tenants` (0 when over).
    pub room: u32,
    /// The health check's record (absent until it probed the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<EndpointHealth>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ServerList {
    pub items: Vec<ServerStatus>,
}

/// `GET /admin/endpoints`: every server's health record (the health check writes them).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointList {
    pub items: Vec<EndpointHealth>,
}

/// A server id: spelled like a tenant id.
pub(crate) fn valid_id(s: &str) -> bool {
    s.parse::<TenantId>().is_ok()
}

/// Checks a base URL, region and provider the way a tenant's endpoint is checked (scheme,
/// SSRF guard, region spelling).
pub(crate) fn validate_server(
    egress: &EgressPolicy,
    provider: ProviderKind,
    base_url: &str,
    region: &str,
    errs: &mut ValidationErrors,
) {
    let server: Endpoint<()> = Endpoint {
        base_url: base_url.to_string(),
        credentials: Credentials::None,
        device_id: None,
        region: Some(region.to_string()),
        provider: None,
        webhook_source_cidrs: Vec::new(),
        webhook_wiring: Default::default(),
    };
    // A registry entry is a server, not an account: only its URL is checked (credentials and
    // deviceId are each tenant's, checked per kind when a tenant is saved).
    let _ = provider;
    if let Err(e) = validate_endpoint_alone("", ProviderKind::Gowa, &server, egress) {
        errs.extend(e);
    }
}

fn check_capacity(c: u32, errs: &mut ValidationErrors) {
    if !(1..=MAX_CAPACITY).contains(&c) {
        errs.push("capacity", format!("must be 1 to {MAX_CAPACITY}"));
    }
}

fn parse_provider(p: &str, errs: &mut ValidationErrors) -> Option<ProviderKind> {
    match p.parse::<ProviderKind>() {
        Ok(k) => Some(k),
        Err(e) => {
            errs.push("provider", e.reason);
            None
        }
    }
}

/// The audit record of a registry change (partition `#server/<serverId>`).
fn server_record(
    server_id: &str,
    who: &str,
    action: &str,
    fields: &[&str],
    detail: String,
) -> AuditEntry {
    let mut entry = AuditEntry::new(
        &format!("#server/{server_id}"),
        who,
        action,
        OffsetDateTime::now_utc(),
    );
    entry.fields = fields.iter().map(|f| f.to_string()).collect();
    entry.detail = Some(detail);
    entry
}

/// The registered server `id`; 404 without one.
async fn registered(app: &App, id: &str) -> Result<Server, ApiError> {
    app.stores
        .servers
        .get(id)
        .await?
        .ok_or(ApiError::ServerNotFound)
}

/// A server with its use (tenants on it) and its health record.
pub(crate) async fn status_of(app: &App, s: Server) -> Result<ServerStatus, ApiError> {
    let users = app.stores.tenants.by_endpoint(&s.base_url).await?;
    let tenants = users.len() as u32;
    let active_tenants = users
        .iter()
        .filter(|c| c.active().base_url == s.base_url)
        .count() as u32;
    let health = app.stores.health.endpoint(&s.base_url).await?;
    Ok(ServerStatus {
        room: s.capacity.saturating_sub(tenants),
        server: s,
        tenants,
        active_tenants,
        health,
    })
}

/// `GET /admin/servers`.
pub async fn list(app: &App, _ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let mut items = Vec::new();
    for s in app.stores.servers.all().await? {
        items.push(status_of(app, s).await?);
    }
    to_json(StatusCode::OK, &ServerList { items })
}

/// `POST /admin/servers`: 201 with the server; 409 when the id or the base URL is taken.
pub async fn register(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller) = (ctx.req, ctx.caller()?);
    let input: RegisterInput = parse_json(req, MAX_BODY_BYTES)?;
    let mut errs = ValidationErrors::default();
    if !valid_id(&input.server_id) {
        errs.push(
            "serverId",
            "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-', starting with a letter or digit",
        );
    }
    let provider = parse_provider(&input.provider, &mut errs);
    let base_url = match normalize_base_url(&input.base_url) {
        Ok(u) => {
            validate_server(
                &app.egress,
                provider.unwrap_or(ProviderKind::Gowa),
                &u,
                &input.region,
                &mut errs,
            );
            if !errs.0.iter().any(|e| e.field == "baseUrl") {
                errs.extend(check_hosts(app, [("baseUrl".to_string(), u.as_str())]).await);
            }
            u
        }
        Err(e) => {
            errs.push("baseUrl", e.reason);
            String::new()
        }
    };
    check_capacity(input.capacity, &mut errs);
    errs.into_result().map_err(ApiError::Invalid)?;
    let at = rfc3339(now());
    let server = Server {
        server_id: input.server_id,
        base_url,
        provider: provider.expect("checked"),
        region: input.region,
        capacity: input.capacity,
        version: 1,
        created_at: at.clone(),
        updated_at: at,
    };
    let record = server_record(
        &server.server_id,
        &caller.subject,
        "register_server",
        &["baseUrl", "provider", "region", "capacity"],
        format!("{} in {}", server.base_url, server.region),
    );
    if !app.stores.servers.register(&server, &record).await? {
        return Err(ApiError::ServerTaken);
    }
    info!(server_id = %server.server_id, "server registered");
    to_json(StatusCode::CREATED, &server)
}

/// `PUT /admin/servers/{serverId}`: provider, region, capacity; the base URL is the
/// server's identity (move tenants with a migration instead). Needs the version.
pub async fn update(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller, id) = (ctx.req, ctx.caller()?, ctx.id()?);
    let input: UpdateServerInput = parse_json(req, MAX_BODY_BYTES)?;
    let expected = expected_version(req, input.version)?.ok_or(ApiError::VersionRequired)?;
    let cur = registered(app, id).await?;
    if cur.version != expected {
        return Err(ApiError::Conflict(expected));
    }
    let mut errs = ValidationErrors::default();
    let mut next = cur.clone();
    let mut fields = Vec::new();
    if let Some(p) = &input.provider
        && let Some(k) = parse_provider(p, &mut errs)
        && k != cur.provider
    {
        next.provider = k;
        fields.push("provider");
    }
    if let Some(r) = &input.region {
        validate_server(&app.egress, cur.provider, &cur.base_url, r, &mut errs);
        if *r != cur.region {
            next.region = r.clone();
            fields.push("region");
        }
    }
    if let Some(c) = input.capacity {
        check_capacity(c, &mut errs);
        if c != cur.capacity {
            next.capacity = c;
            fields.push("capacity");
        }
    }
    errs.into_result().map_err(ApiError::Invalid)?;
    next.version = cur.version + 1;
    next.updated_at = rfc3339(now());
    let record = server_record(
        id,
        &caller.subject,
        "update_server",
        &fields,
        format!("version {}", next.version),
    );
    if !app
        .stores
        .servers
        .update(&next, cur.version, &record)
        .await?
    {
        return Err(ApiError::Conflict(expected));
    }
    info!(server_id = %id, version = next.version, "server updated");
    to_json(StatusCode::OK, &next)
}

/// `DELETE /admin/servers/{serverId}`: 204; 409 while any tenant uses the server.
pub async fn deregister(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (caller, id) = (ctx.caller()?, ctx.id()?);
    let cur = registered(app, id).await?;
    let users = app.stores.tenants.by_endpoint(&cur.base_url).await?;
    if !users.is_empty() {
        return Err(ApiError::ServerInUse(users.len()));
    }
    let record = server_record(
        id,
        &caller.subject,
        "deregister_server",
        &[],
        cur.base_url.clone(),
    );
    if !app.stores.servers.deregister(&cur, &record).await? {
        return Err(ApiError::Conflict(cur.version));
    }
    info!(server_id = %id, "server deregistered");
    Ok(no_content())
}

/// `GET /admin/endpoints`, by endpoint key.
pub async fn endpoints(app: &App, _ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let mut items = app.stores.health.all_endpoints().await?;
    items.sort_by(|a, b| a.endpoint_key.cmp(&b.endpoint_key));
    to_json(StatusCode::OK, &EndpointList { items })
}

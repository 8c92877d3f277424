//! The server registry, placement and bulk migration (admin only).
//!
//! ## Registry
//!
//! ServersTable (written only by the config API) holds one item per registered WhatsApp
//! server, `pk = "server#<serverId>"`, and one guard item per base URL,
//! `pk = "url#<baseUrl>"`, so a base URL is registered once: both are written in one
//! transaction with the server's audit record (AuditTable, partition `#server/<serverId>`,
//! which no tenant id can spell). The health check's EndpointsTable is only read: the
//! listing joins each server with its health record (by normalised base URL) and counts
//! the tenants using it through the tenant table's endpoint indexes.
//!
//! ## Placement
//!
//! `POST /admin/placement {"region"}`: among the region's servers with room
//! (`tenants < capacity`), least loaded first (`tenants / capacity`, then `tenants`, then
//! id), the first that is healthy: its health record says `up`, or, when the health check
//! has no record of it yet (no tenant uses it), a live `GET /health` answers 2xx.
//!
//! ## Migration
//!
//! `POST /admin/migrations {"jobId","from","to","tenantIds"?,"dryRun"?,"limit"?}` moves
//! tenants' endpoints on server `from` to server `to` (base URL replaced; credentials,
//! device and the rest kept). The job record (MigrationJobsTable, key `jobId`) fixes the
//! tenant list on the first run and records one result per tenant as it goes; re-running
//! the same job id continues: a tenant recorded `moved` (or `skipped`,
//! `refused_region`) is never touched again, `conflict` and `failed` are retried. A tenant
//! whose move was written but not recorded (an interrupted run) is found on the target with
//! this job's `migrate` audit record and reported `moved` without a second write. Each move
//! is a version-conditional write through [`crate::audit::Journal`]; the first move of a job
//! waits for the target to pass the connection test (with that tenant's credentials and
//! device), recorded in the job so a resumed job does not test again.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::info;
use wagate::health::EndpointHealth;
use wagate::tenant::store::StoreError;
use wagate::tenant::{
    Credentials, Endpoint, EndpointRole, ProviderKind, SealedConfig, TenantId, ValidationErrors,
    normalize_base_url, validate_endpoint_alone,
};

use crate::audit::{Action, Change, audit_key};
use crate::auth::Caller;
use crate::conntest::{EndpointResult, TestReport, test_endpoint};
use crate::error::ApiError;
use crate::{App, json_response, now, parse_json};

/// Largest capacity of one server.
pub const MAX_CAPACITY: u32 = 100_000;
/// Most tenants one migration job may name or find.
pub const MAX_JOB_TENANTS: usize = 1000;

/// Tables of the registry and the migration jobs, and where their audit records go.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub servers_table: String,
    pub jobs_table: String,
    pub audit_table: String,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

fn refused(status: StatusCode, code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::Refused(status, code, msg.into())
}

fn to_json<T: Serialize>(status: StatusCode, v: &T) -> Result<Response<Body>, ApiError> {
    Ok(json_response(
        status,
        serde_json::to_string(v).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn valid_id(s: &str) -> bool {
    s.parse::<TenantId>().is_ok()
}

// ---------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------

/// A registered server as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    pub server_id: String,
    pub base_url: String,
    pub provider: ProviderKind,
    pub region: String,
    /// Most tenants (primary or backup) placement and migration put on it.
    pub capacity: u32,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

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

fn server_pk(id: &str) -> AttributeValue {
    AttributeValue::S(format!("server#{id}"))
}

fn url_pk(url: &str) -> AttributeValue {
    AttributeValue::S(format!("url#{url}"))
}

fn server_item(s: &Server) -> Result<HashMap<String, AttributeValue>, ApiError> {
    let mut item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(s).map_err(|e| ApiError::Internal(e.to_string()))?;
    item.insert("pk".into(), server_pk(&s.server_id));
    Ok(item)
}

/// Checks a base URL, region and provider the way a tenant's endpoint is checked (scheme,
/// SSRF guard, region spelling).
fn validate_server(
    egress: &wagate::egress::EgressPolicy,
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
        webhook_source_cidrs: Vec::new(),
    };
    if let Err(e) = validate_endpoint_alone("", provider, &server, egress) {
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

impl Fleet {
    fn audit_put(
        &self,
        server_id: &str,
        who: &str,
        action: &str,
        fields: &[&str],
        detail: String,
    ) -> Result<TransactWriteItem, ApiError> {
        let mut item = HashMap::from([
            (
                "tenantId".to_string(),
                AttributeValue::S(format!("#server/{server_id}")),
            ),
            (
                "at".to_string(),
                AttributeValue::S(audit_key(OffsetDateTime::now_utc())),
            ),
            ("who".to_string(), AttributeValue::S(who.to_string())),
            ("action".to_string(), AttributeValue::S(action.to_string())),
            ("detail".to_string(), AttributeValue::S(detail)),
        ]);
        if !fields.is_empty() {
            item.insert(
                "fields".into(),
                AttributeValue::L(
                    fields
                        .iter()
                        .map(|f| AttributeValue::S(f.to_string()))
                        .collect(),
                ),
            );
        }
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.audit_table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(tenantId)")
                    .build()
                    .map_err(unavailable)?,
            )
            .build())
    }

    async fn get_server(&self, client: &Client, id: &str) -> Result<Option<Server>, ApiError> {
        let resp = client
            .get_item()
            .table_name(&self.servers_table)
            .key("pk", server_pk(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(e)))?;
        resp.item
            .map(|i| serde_dynamo::from_item(i).map_err(|e| ApiError::Internal(e.to_string())))
            .transpose()
    }

    async fn all_servers(&self, client: &Client) -> Result<Vec<Server>, ApiError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let resp = client
                .scan()
                .table_name(&self.servers_table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable(DisplayErrorContext(e)))?;
            for item in resp.items.unwrap_or_default() {
                if item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|s| s.starts_with("server#"))
                {
                    out.push(
                        serde_dynamo::from_item(item)
                            .map_err(|e| ApiError::Internal(e.to_string()))?,
                    );
                }
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a: &Server, b| a.server_id.cmp(&b.server_id));
        Ok(out)
    }
}

async fn health_of(app: &App, key: &str) -> Result<Option<EndpointHealth>, ApiError> {
    let resp = app
        .journal
        .client()
        .get_item()
        .table_name(&app.endpoints_table)
        .key("endpointKey", AttributeValue::S(key.to_string()))
        .send()
        .await
        .map_err(|e| unavailable(DisplayErrorContext(e)))?;
    Ok(resp
        .item
        .and_then(|i| serde_dynamo::from_item::<_, EndpointHealth>(i).ok()))
}

async fn status_of(app: &App, s: Server) -> Result<ServerStatus, ApiError> {
    let users = app.store.by_endpoint(&s.base_url).await?;
    let tenants = users.len() as u32;
    let active_tenants = users
        .iter()
        .filter(|c| c.active().base_url == s.base_url)
        .count() as u32;
    let health = health_of(app, &s.base_url).await?;
    Ok(ServerStatus {
        room: s.capacity.saturating_sub(tenants),
        server: s,
        tenants,
        active_tenants,
        health,
    })
}

/// `GET /admin/servers`.
pub async fn list_servers(app: &App) -> Result<Response<Body>, ApiError> {
    let client = app.journal.client();
    let mut items = Vec::new();
    for s in app.fleet.all_servers(client).await? {
        items.push(status_of(app, s).await?);
    }
    to_json(StatusCode::OK, &ServerList { items })
}

/// `POST /admin/servers`: 201 with the server; 409 when the id or the base URL is taken.
pub async fn register(
    app: &App,
    req: &Request,
    caller: &Caller,
) -> Result<Response<Body>, ApiError> {
    let input: RegisterInput = parse_json(req, crate::MAX_BODY_BYTES)?;
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
                errs.extend(crate::check_hosts(app, [("baseUrl".to_string(), u.as_str())]).await);
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
    let f = &app.fleet;
    let items = vec![
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&f.servers_table)
                    .set_item(Some(server_item(&server)?))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(unavailable)?,
            )
            .build(),
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&f.servers_table)
                    .item("pk", url_pk(&server.base_url))
                    .item("serverId", AttributeValue::S(server.server_id.clone()))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(unavailable)?,
            )
            .build(),
        f.audit_put(
            &server.server_id,
            &caller.subject,
            "register_server",
            &["baseUrl", "provider", "region", "capacity"],
            format!("{} in {}", server.base_url, server.region),
        )?,
    ];
    if !crate::audit::transact(app.journal.client(), items).await? {
        return Err(refused(
            StatusCode::CONFLICT,
            "already_exists",
            "a server with this id or base URL is already registered",
        ));
    }
    info!(server_id = %server.server_id, "server registered");
    to_json(StatusCode::CREATED, &server)
}

/// `PUT /admin/servers/{serverId}`: provider, region, capacity; the base URL is the
/// server's identity (move tenants with a migration instead). Needs the version.
pub async fn update_server(
    app: &App,
    req: &Request,
    caller: &Caller,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let input: UpdateServerInput = parse_json(req, crate::MAX_BODY_BYTES)?;
    let expected = match (crate::if_match(req)?, input.version) {
        (Some(h), Some(b)) if h != b => return Err(ApiError::VersionsDisagree(h, b)),
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Err(ApiError::VersionRequired),
    };
    let client = app.journal.client();
    let cur = app
        .fleet
        .get_server(client, id)
        .await?
        .ok_or_else(server_not_found)?;
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
    let f = &app.fleet;
    let items = vec![
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&f.servers_table)
                    .set_item(Some(server_item(&next)?))
                    .condition_expression("attribute_exists(pk) AND #v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", AttributeValue::N(cur.version.to_string()))
                    .build()
                    .map_err(unavailable)?,
            )
            .build(),
        f.audit_put(
            id,
            &caller.subject,
            "update_server",
            &fields,
            format!("version {}", next.version),
        )?,
    ];
    if !crate::audit::transact(client, items).await? {
        return Err(ApiError::Conflict(expected));
    }
    info!(server_id = %id, version = next.version, "server updated");
    to_json(StatusCode::OK, &next)
}

fn server_not_found() -> ApiError {
    refused(
        StatusCode::NOT_FOUND,
        "not_found",
        "no registered server with this id",
    )
}

/// `DELETE /admin/servers/{serverId}`: 204; 409 while any tenant uses the server.
pub async fn deregister(app: &App, caller: &Caller, id: &str) -> Result<Response<Body>, ApiError> {
    let client = app.journal.client();
    let cur = app
        .fleet
        .get_server(client, id)
        .await?
        .ok_or_else(server_not_found)?;
    let users = app.store.by_endpoint(&cur.base_url).await?;
    if !users.is_empty() {
        return Err(refused(
            StatusCode::CONFLICT,
            "server_in_use",
            format!(
                "{} tenant(s) use this server; migrate them first",
                users.len()
            ),
        ));
    }
    let f = &app.fleet;
    let items = vec![
        TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&f.servers_table)
                    .key("pk", server_pk(id))
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", AttributeValue::N(cur.version.to_string()))
                    .build()
                    .map_err(unavailable)?,
            )
            .build(),
        TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&f.servers_table)
                    .key("pk", url_pk(&cur.base_url))
                    .build()
                    .map_err(unavailable)?,
            )
            .build(),
        f.audit_put(
            id,
            &caller.subject,
            "deregister_server",
            &[],
            cur.base_url.clone(),
        )?,
    ];
    if !crate::audit::transact(client, items).await? {
        return Err(ApiError::Conflict(cur.version));
    }
    info!(server_id = %id, "server deregistered");
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

// ---------------------------------------------------------------------------------------
// Placement
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementInput {
    pub region: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub server_id: String,
    pub base_url: String,
    pub provider: ProviderKind,
    pub region: String,
    pub capacity: u32,
    pub tenants: u32,
    /// `health_record` (the health check saw it up) or `live_probe` (no record yet; a
    /// `GET /health` just now answered).
    pub healthy_by: String,
}

/// `POST /admin/placement`: the least-loaded healthy server of the region with room;
/// 409 `no_server_available` when there is none.
pub async fn placement(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let input: PlacementInput = parse_json(req, crate::MAX_BODY_BYTES)?;
    let mut errs = ValidationErrors::default();
    validate_server(
        &app.egress,
        ProviderKind::Gowa,
        "https://probe.example.com",
        &input.region,
        &mut errs,
    );
    errs.into_result().map_err(ApiError::Invalid)?;
    let mut candidates = Vec::new();
    for s in app.fleet.all_servers(app.journal.client()).await? {
        if s.region == input.region {
            let st = status_of(app, s).await?;
            if st.room > 0 {
                candidates.push(st);
            }
        }
    }
    // Least loaded first: tenants / capacity compared without floats.
    candidates.sort_by(|a, b| {
        (u64::from(a.tenants) * u64::from(b.server.capacity))
            .cmp(&(u64::from(b.tenants) * u64::from(a.server.capacity)))
            .then(a.tenants.cmp(&b.tenants))
            .then(a.server.server_id.cmp(&b.server.server_id))
    });
    let mut looked = Vec::new();
    for c in candidates {
        let healthy_by = match &c.health {
            Some(h) if h.up => Some("health_record"),
            Some(_) => None,
            None => live_probe(app, &c.server).await.then_some("live_probe"),
        };
        match healthy_by {
            Some(by) => {
                info!(server_id = %c.server.server_id, region = %input.region, "placed");
                return to_json(
                    StatusCode::OK,
                    &Placement {
                        server_id: c.server.server_id,
                        base_url: c.server.base_url,
                        provider: c.server.provider,
                        region: c.server.region,
                        capacity: c.server.capacity,
                        tenants: c.tenants,
                        healthy_by: by.into(),
                    },
                );
            }
            None => looked.push(c.server.server_id),
        }
    }
    Err(refused(
        StatusCode::CONFLICT,
        "no_server_available",
        if looked.is_empty() {
            format!("no registered server in {} has room", input.region)
        } else {
            format!(
                "no healthy server with room in {} (unhealthy: {})",
                input.region,
                looked.join(", ")
            )
        },
    ))
}

/// `GET /health` of a registered server, the only call that needs no credentials (the
/// registry has none): the whole connection test would also call an authenticated route
/// without credentials, which GOWA's spec does not allow and a server answers 401.
async fn live_probe(app: &App, s: &Server) -> bool {
    let e = Endpoint {
        base_url: s.base_url.clone(),
        credentials: Credentials::None,
        device_id: None,
        region: None,
        webhook_source_cidrs: Vec::new(),
    };
    let providers = wagate::provider::Providers::new(app.http.clone());
    match providers.get(s.provider) {
        Some(client) => client
            .health(wagate::provider::Target::from(&e))
            .await
            .is_ok(),
        None => false,
    }
}

// ---------------------------------------------------------------------------------------
// Migration
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationInput {
    pub job_id: String,
    /// Server ids (registry).
    pub from: String,
    pub to: String,
    /// Only these tenants (default: every tenant on `from` when the job starts).
    #[serde(default)]
    pub tenant_ids: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: bool,
    /// Attempt at most this many not-yet-finished tenants in this call (1-1000); the rest
    /// stay `pending` for the next call of the same job.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One tenant's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantResult {
    pub tenant_id: String,
    /// `moved`, `would_move` (dry run), `skipped`, `refused_region`, `conflict`, `failed`,
    /// `pending` (not attempted yet).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Which of the tenant's endpoints are (or would be) moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<EndpointRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_after: Option<u64>,
}

impl TenantResult {
    fn new(tenant: &str, outcome: &str, reason: Option<String>) -> Self {
        Self {
            tenant_id: tenant.to_string(),
            outcome: outcome.to_string(),
            reason,
            roles: Vec::new(),
            version_before: None,
            version_after: None,
        }
    }

    /// Never attempted again by the job.
    fn is_final(&self) -> bool {
        matches!(
            self.outcome.as_str(),
            "moved" | "skipped" | "refused_region"
        )
    }
}

/// The target's connection test, once per job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetTest {
    pub ok: bool,
    pub tested_at: String,
    /// Whose credentials and device the test used.
    pub tenant_id: String,
}

/// The job record (MigrationJobsTable) and the API's report of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationJob {
    pub job_id: String,
    pub from: String,
    pub to: String,
    pub from_base_url: String,
    pub to_base_url: String,
    /// The tenant ids the caller asked for (absent: all on `from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<Vec<String>>,
    /// The tenants of the job, fixed on its first run.
    pub tenants: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_test: Option<TargetTest>,
    /// Recorded results by tenant id.
    #[serde(default)]
    pub results: BTreeMap<String, TenantResult>,
}

/// What a migration call answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    pub job_id: String,
    pub dry_run: bool,
    pub from: String,
    pub to: String,
    /// `planned` (dry run), `running` (tenants pending), `completed` (every tenant final),
    /// `needs_attention` (some `conflict` / `failed`: re-run the job to retry them).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_test: Option<TargetTest>,
    pub results: Vec<TenantResult>,
}

fn report_of(job: &MigrationJob, dry_run: bool, results: Vec<TenantResult>) -> MigrationReport {
    let state = if dry_run {
        "planned"
    } else if results.iter().any(|r| r.outcome == "pending") {
        "running"
    } else if results.iter().all(TenantResult::is_final) {
        "completed"
    } else {
        "needs_attention"
    };
    MigrationReport {
        job_id: job.job_id.clone(),
        dry_run,
        from: job.from.clone(),
        to: job.to.clone(),
        state: state.into(),
        target_test: job.target_test.clone(),
        results,
    }
}

impl Fleet {
    async fn get_job(&self, client: &Client, id: &str) -> Result<Option<MigrationJob>, ApiError> {
        let resp = client
            .get_item()
            .table_name(&self.jobs_table)
            .key("jobId", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(e)))?;
        resp.item
            .map(|i| serde_dynamo::from_item(i).map_err(|e| ApiError::Internal(e.to_string())))
            .transpose()
    }

    /// Stores a new job; `false` when the id is taken.
    async fn create_job(&self, client: &Client, job: &MigrationJob) -> Result<bool, ApiError> {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(job).map_err(|e| ApiError::Internal(e.to_string()))?;
        match client
            .put_item()
            .table_name(&self.jobs_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(jobId)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(DisplayErrorContext(e))),
        }
    }

    /// Records a tenant's result; a recorded `moved` is never overwritten.
    async fn record(&self, client: &Client, job: &str, r: &TenantResult) -> Result<(), ApiError> {
        let value: AttributeValue =
            serde_dynamo::to_attribute_value(r).map_err(|e| ApiError::Internal(e.to_string()))?;
        let res = client
            .update_item()
            .table_name(&self.jobs_table)
            .key("jobId", AttributeValue::S(job.to_string()))
            .update_expression("SET #r.#t = :r, updatedAt = :now")
            .condition_expression(
                "attribute_exists(jobId) AND (attribute_not_exists(#r.#t) OR #r.#t.outcome <> :moved)",
            )
            .expression_attribute_names("#r", "results")
            .expression_attribute_names("#t", &r.tenant_id)
            .expression_attribute_values(":r", value)
            .expression_attribute_values(":now", AttributeValue::S(rfc3339(now())))
            .expression_attribute_values(":moved", AttributeValue::S("moved".into()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(DisplayErrorContext(e))),
        }
    }

    async fn record_test(
        &self,
        client: &Client,
        job: &str,
        t: &TargetTest,
    ) -> Result<(), ApiError> {
        let value: AttributeValue =
            serde_dynamo::to_attribute_value(t).map_err(|e| ApiError::Internal(e.to_string()))?;
        client
            .update_item()
            .table_name(&self.jobs_table)
            .key("jobId", AttributeValue::S(job.to_string()))
            .update_expression("SET targetTest = :t, updatedAt = :now")
            .expression_attribute_values(":t", value)
            .expression_attribute_values(":now", AttributeValue::S(rfc3339(now())))
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(e)))?;
        Ok(())
    }
}

/// Whether the tenant's audit log holds this job's move (a write whose result was not
/// recorded before an interruption).
async fn moved_by_job(app: &App, tenant: &TenantId, job: &str) -> Result<bool, ApiError> {
    let page = app.journal.page(tenant, None, 50).await?;
    let tag = job_tag(job);
    Ok(page.items.iter().any(|e| {
        e.action == Action::Migrate.as_str()
            && e.detail.as_deref().is_some_and(|d| d.starts_with(&tag))
    }))
}

fn job_tag(job: &str) -> String {
    format!("migration job {job}:")
}

/// The tenant moved: every endpoint on `from` gets `to`'s base URL.
enum Plan {
    Done(TenantResult),
    Move {
        cur: Box<SealedConfig>,
        next: Box<SealedConfig>,
        roles: Vec<EndpointRole>,
    },
}

async fn plan(
    app: &App,
    job: &MigrationJob,
    to_region: &str,
    tenant: &str,
) -> Result<Plan, ApiError> {
    let Ok(tid) = tenant.parse::<TenantId>() else {
        return Ok(Plan::Done(TenantResult::new(
            tenant,
            "failed",
            Some("not a valid tenant id".into()),
        )));
    };
    let Some(cur) = app.store.get(&tid).await? else {
        return Ok(Plan::Done(TenantResult::new(
            tenant,
            "failed",
            Some("the tenant has no config".into()),
        )));
    };
    let on = |e: &Endpoint<_>, url: &str| e.base_url == url;
    let mut roles = Vec::new();
    if on(&cur.primary, &job.from_base_url) {
        roles.push(EndpointRole::Primary);
    }
    if cur
        .backup
        .as_ref()
        .is_some_and(|b| on(b, &job.from_base_url))
    {
        roles.push(EndpointRole::Backup);
    }
    if roles.is_empty() {
        let on_target = on(&cur.primary, &job.to_base_url)
            || cur.backup.as_ref().is_some_and(|b| on(b, &job.to_base_url));
        if on_target && moved_by_job(app, &tid, &job.job_id).await? {
            let mut r = TenantResult::new(
                tenant,
                "moved",
                Some("moved by an earlier run of this job".into()),
            );
            r.version_after = Some(cur.version);
            return Ok(Plan::Done(r));
        }
        let reason = if on_target {
            "already on the target server"
        } else {
            "not on the source server"
        };
        let mut r = TenantResult::new(tenant, "skipped", Some(reason.into()));
        r.version_before = Some(cur.version);
        return Ok(Plan::Done(r));
    }
    let mut next = cur.clone();
    for role in &roles {
        let e = match role {
            EndpointRole::Primary => &mut next.primary,
            EndpointRole::Backup => next.backup.as_mut().expect("role found above"),
        };
        if let Some(pinned) = &e.region
            && pinned != to_region
        {
            let mut r = TenantResult::new(
                tenant,
                "refused_region",
                Some(format!(
                    "the {} endpoint is pinned to {pinned}; the target server is in {to_region}",
                    match role {
                        EndpointRole::Primary => "primary",
                        EndpointRole::Backup => "backup",
                    }
                )),
            );
            r.roles = roles.clone();
            r.version_before = Some(cur.version);
            return Ok(Plan::Done(r));
        }
        e.base_url = job.to_base_url.clone();
    }
    next.version = cur.version + 1;
    next.updated_at = now();
    if let Err(errs) = next.validate(&app.egress) {
        let mut r = TenantResult::new(
            tenant,
            "failed",
            Some(format!("the moved config is invalid: {errs}")),
        );
        r.roles = roles;
        r.version_before = Some(cur.version);
        return Ok(Plan::Done(r));
    }
    Ok(Plan::Move {
        cur: Box::new(cur),
        next: Box::new(next),
        roles,
    })
}

/// The target tested with the tenant's credentials and device on it.
async fn test_target(
    app: &App,
    cur: &SealedConfig,
    role: EndpointRole,
    to_base_url: &str,
) -> Result<EndpointResult, ApiError> {
    let slots = crate::ops::keep_all(cur);
    let (field, endpoint) = match (role, &slots.backup) {
        (EndpointRole::Backup, Some(b)) => ("backup", b),
        _ => ("primary", &slots.primary),
    };
    let mut e = crate::ops::open_endpoint(app, &cur.tenant_id, field, endpoint).await?;
    e.base_url = to_base_url.to_string();
    Ok(test_endpoint(&app.http, cur.provider, "candidate", &e).await)
}

/// `POST /admin/migrations`.
pub async fn migrate(
    app: &App,
    req: &Request,
    caller: &Caller,
) -> Result<Response<Body>, ApiError> {
    let input: MigrationInput = parse_json(req, crate::MAX_BODY_BYTES)?;
    let mut errs = ValidationErrors::default();
    if !valid_id(&input.job_id) {
        errs.push(
            "jobId",
            "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-', starting with a letter or digit",
        );
    }
    if input.from == input.to {
        errs.push("to", "must differ from 'from'");
    }
    if let Some(ids) = &input.tenant_ids {
        if ids.is_empty() || ids.len() > MAX_JOB_TENANTS {
            errs.push(
                "tenantIds",
                format!("must name 1 to {MAX_JOB_TENANTS} tenants"),
            );
        }
        for (i, t) in ids.iter().enumerate() {
            if !valid_id(t) {
                errs.push(format!("tenantIds[{i}]"), "is not a valid tenant id");
            } else if ids[..i].contains(t) {
                errs.push(format!("tenantIds[{i}]"), "duplicate tenant");
            }
        }
    }
    if input
        .limit
        .is_some_and(|l| !(1..=MAX_JOB_TENANTS as u32).contains(&l))
    {
        errs.push("limit", format!("must be 1 to {MAX_JOB_TENANTS}"));
    }
    errs.into_result().map_err(ApiError::Invalid)?;
    let client = app.journal.client();
    let fleet = &app.fleet;
    let from = fleet.get_server(client, &input.from).await?;
    let to = fleet.get_server(client, &input.to).await?;
    let (Some(from), Some(to)) = (from, to) else {
        return Err(refused(
            StatusCode::NOT_FOUND,
            "not_found",
            "'from' or 'to' is not a registered server",
        ));
    };
    let existing = fleet.get_job(client, &input.job_id).await?;
    let mut job = match existing {
        Some(j) => {
            if j.from != input.from || j.to != input.to || j.requested != input.tenant_ids {
                return Err(refused(
                    StatusCode::CONFLICT,
                    "job_mismatch",
                    "this job id was started with other from/to/tenantIds; resume it with the same ones or use a new id",
                ));
            }
            j
        }
        None => {
            let mut tenants: Vec<String> = match &input.tenant_ids {
                Some(ids) => ids.clone(),
                None => app
                    .store
                    .by_endpoint(&from.base_url)
                    .await?
                    .into_iter()
                    .map(|c| c.tenant_id.to_string())
                    .collect(),
            };
            if input.tenant_ids.is_none() {
                tenants.sort();
            }
            if tenants.len() > MAX_JOB_TENANTS {
                return Err(ApiError::state(
                    "tenantIds",
                    format!(
                        "{} tenants are on the source; name at most {MAX_JOB_TENANTS} per job with tenantIds",
                        tenants.len()
                    ),
                ));
            }
            let at = rfc3339(now());
            let job = MigrationJob {
                job_id: input.job_id.clone(),
                from: from.server_id.clone(),
                to: to.server_id.clone(),
                from_base_url: from.base_url.clone(),
                to_base_url: to.base_url.clone(),
                requested: input.tenant_ids.clone(),
                tenants,
                created_by: caller.subject.clone(),
                created_at: at.clone(),
                updated_at: at,
                target_test: None,
                results: BTreeMap::new(),
            };
            if input.dry_run || fleet.create_job(client, &job).await? {
                job
            } else {
                // Started concurrently under the same id: continue that one.
                fleet
                    .get_job(client, &input.job_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("job vanished".into()))?
            }
        }
    };
    // The target's load when this call starts; every move adds one.
    let mut load = app.store.by_endpoint(&to.base_url).await?.len() as u32;
    let mut results = Vec::new();
    let mut attempted = 0u32;
    let tenants = job.tenants.clone();
    for tenant in &tenants {
        if let Some(r) = job.results.get(tenant).filter(|r| r.is_final()) {
            results.push(r.clone());
            continue;
        }
        if input.limit.is_some_and(|l| attempted >= l) {
            results.push(TenantResult::new(tenant, "pending", None));
            continue;
        }
        attempted += 1;
        let r = match plan(app, &job, &to.region, tenant).await? {
            Plan::Done(r) => r,
            Plan::Move { cur, next, roles } => {
                if load >= to.capacity {
                    let mut r = TenantResult::new(
                        tenant,
                        "failed",
                        Some(format!(
                            "the target server is at capacity ({})",
                            to.capacity
                        )),
                    );
                    r.roles = roles;
                    r.version_before = Some(cur.version);
                    r
                } else if input.dry_run {
                    load += 1;
                    let mut r = TenantResult::new(tenant, "would_move", None);
                    r.roles = roles;
                    r.version_before = Some(cur.version);
                    r
                } else {
                    if !job.target_test.as_ref().is_some_and(|t| t.ok) {
                        let result = match test_target(app, &cur, roles[0], &to.base_url).await {
                            Ok(r) => r,
                            // This tenant's saved credential cannot be opened: it cannot be
                            // tested nor moved; the next tenant's may test the target.
                            Err(ApiError::SecretUnusable(errs)) => {
                                let mut r = TenantResult::new(
                                    tenant,
                                    "failed",
                                    Some(format!(
                                        "a stored secret cannot be opened ({}); set it again, then re-run the job",
                                        errs.0
                                            .iter()
                                            .map(|e| e.field.as_str())
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    )),
                                );
                                r.roles = roles;
                                r.version_before = Some(cur.version);
                                fleet.record(client, &job.job_id, &r).await?;
                                job.results.insert(tenant.clone(), r.clone());
                                results.push(r);
                                continue;
                            }
                            Err(e) => return Err(e),
                        };
                        let t = TargetTest {
                            ok: result.ok,
                            tested_at: rfc3339(now()),
                            tenant_id: tenant.clone(),
                        };
                        fleet.record_test(client, &job.job_id, &t).await?;
                        job.target_test = Some(t);
                        if !result.ok {
                            let rep = serde_json::to_value(TestReport {
                                tenant_id: tenant.clone(),
                                ok: false,
                                results: vec![result],
                            })
                            .map_err(|e| ApiError::Internal(e.to_string()))?;
                            return Err(ApiError::TestFailed(Box::new(rep)));
                        }
                    }
                    let detail = format!(
                        "{} {} -> {}",
                        job_tag(&job.job_id),
                        job.from_base_url,
                        job.to_base_url
                    );
                    let ch = Change {
                        who: caller.subject.as_str(),
                        action: Action::Migrate,
                        detail: Some(detail),
                        moved: None,
                    };
                    let mut r = match app.journal.update(&cur, &next, ch).await {
                        Ok(()) => {
                            load += 1;
                            let mut r = TenantResult::new(tenant, "moved", None);
                            r.version_after = Some(next.version);
                            r
                        }
                        Err(StoreError::Conflict) => TenantResult::new(
                            tenant,
                            "conflict",
                            Some(
                                "the config changed while the job read it; re-run the job to retry"
                                    .into(),
                            ),
                        ),
                        Err(StoreError::NotFound) => TenantResult::new(
                            tenant,
                            "failed",
                            Some("the config was deleted".into()),
                        ),
                        Err(e) => TenantResult::new(tenant, "failed", Some(e.to_string())),
                    };
                    r.roles = roles;
                    r.version_before = Some(cur.version);
                    r
                }
            }
        };
        if !input.dry_run {
            fleet.record(client, &job.job_id, &r).await?;
            job.results.insert(tenant.clone(), r.clone());
        }
        results.push(r);
    }
    let report = report_of(&job, input.dry_run, results);
    info!(
        job_id = %job.job_id,
        dry_run = input.dry_run,
        state = %report.state,
        "migration run done"
    );
    to_json(StatusCode::OK, &report)
}

/// `GET /admin/migrations/{jobId}`: the job as recorded.
pub async fn get_migration(app: &App, id: &str) -> Result<Response<Body>, ApiError> {
    let job = app
        .fleet
        .get_job(app.journal.client(), id)
        .await?
        .ok_or_else(|| {
            refused(
                StatusCode::NOT_FOUND,
                "not_found",
                "no migration job with this id",
            )
        })?;
    let results = job
        .tenants
        .iter()
        .map(|t| {
            job.results
                .get(t)
                .cloned()
                .unwrap_or_else(|| TenantResult::new(t, "pending", None))
        })
        .collect();
    to_json(StatusCode::OK, &report_of(&job, false, results))
}

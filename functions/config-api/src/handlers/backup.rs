//! Backup and restore (admin): `GET /admin/export` (every config, secrets sealed) and
//! `POST /admin/import?dryRun=` (restores an export; never overwrites).

use http::StatusCode;
use lambda_http::{Body, RequestExt, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::info;
use wagate::tenant::store::StoreError;
use wagate::tenant::{EndpointRole, SealedConfig, ValidationErrors};

use crate::App;
use crate::audit::Action;
use crate::error::ApiError;
use crate::handlers::{change, check_hosts, devices, now};
use crate::request::parse_json;
use crate::response::to_json;
use crate::router::Ctx;

/// Largest import document.
pub const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;
/// Format tag of an export document.
pub const EXPORT_FORMAT: &str = "wagate-config-export/1";

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

/// `GET /admin/export`: every config, by tenant id.
pub async fn export(app: &App, _ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let mut items = app.stores.tenants.all().await?;
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
    /// Issue 15: per created tenant, each endpoint's device webhook after the restore: checked,
    /// and wired again where it is wagate's to wire, its device logged in, and it does not read
    /// back as wired (a restore never fails on it: the outcome says what happened).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub wiring: std::collections::BTreeMap<String, Vec<crate::handlers::devices::WiringOutcome>>,
}

/// `POST /admin/import?dryRun=true|false`: restores an export. Every item is checked
/// first (an invalid document changes nothing); a tenant that already has a config is
/// reported as a conflict and left alone; each created tenant gets an `import` audit record.
pub async fn import(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller) = (ctx.req, ctx.caller()?);
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
        if !crate::store::storable(c) {
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
        errs.extend(check_hosts(app, hosts).await);
    }
    errs.into_result().map_err(ApiError::Invalid)?;
    let mut report = ImportReport {
        dry_run,
        created: Vec::new(),
        conflicts: Vec::new(),
        wiring: Default::default(),
    };
    for c in &doc.items {
        if let Some(existing) = app.stores.tenants.get(&c.tenant_id).await? {
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
                Err(StoreError::AlreadyExists) => {
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
            let mut roles = vec![EndpointRole::Primary];
            if c.backup.is_some() {
                roles.push(EndpointRole::Backup);
            }
            let mut outcomes = Vec::new();
            for role in roles {
                outcomes.push(devices::ensure_wired(app, req, caller, &c.tenant_id, role).await);
            }
            report.wiring.insert(c.tenant_id.to_string(), outcomes);
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

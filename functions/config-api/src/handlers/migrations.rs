//! Bulk migration jobs (admin): `POST /admin/migrations` runs, resumes or dry-runs a job,
//! `GET /admin/migrations/{jobId}` shows what it recorded. The rules (what moves, what is
//! retried, how an interrupted run is found) are in [`crate::fleet`].

use std::collections::BTreeMap;

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use tracing::info;
use wagate::tenant::store::StoreError;
use wagate::tenant::{
    Endpoint, EndpointRole, ProviderKind, SealedConfig, TenantId, ValidationErrors,
};
use wagate::timestamp::rfc3339;

use crate::App;
use crate::audit::{Action, Change};
use crate::conntest::{EndpointResult, TestReport, test_endpoint};
use crate::error::ApiError;
use crate::fleet::{MAX_JOB_TENANTS, MigrationJob, TargetTest, TenantResult};
use crate::handlers::servers::valid_id;
use crate::handlers::{devices, keep_all, now, open_endpoint, seal};
use crate::request::{MAX_BODY_BYTES, parse_json};
use crate::response::to_json;
use crate::router::Ctx;

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
    to_kind: ProviderKind,
    tenant: &str,
) -> Result<Plan, ApiError> {
    let Ok(tid) = tenant.parse::<TenantId>() else {
        return Ok(Plan::Done(TenantResult::new(
            tenant,
            "failed",
            Some("not a valid tenant id".into()),
        )));
    };
    let Some(cur) = app.stores.tenants.get(&tid).await? else {
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
                    role.as_str()
                )),
            );
            r.roles = roles.clone();
            r.version_before = Some(cur.version);
            return Ok(Plan::Done(r));
        }
        // The endpoint keeps its kind (its credentials and device are that kind's): a server
        // of another kind cannot take it.
        let kind = e.provider.unwrap_or(cur.provider);
        if kind != to_kind {
            let mut r = TenantResult::new(
                tenant,
                "failed",
                Some(format!(
                    "the {} endpoint is a {} server; the target server is {}: move it to a server of its kind",
                    role.as_str(),
                    kind.as_str(),
                    to_kind.as_str()
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

/// The tenant's `role` endpoint as it will be on the target: its credentials and device,
/// the target's base URL.
async fn target_endpoint(
    app: &App,
    cur: &SealedConfig,
    role: EndpointRole,
    to_base_url: &str,
) -> Result<Endpoint<wagate::Secret>, ApiError> {
    let slots = keep_all(cur);
    let (field, endpoint) = match (role, &slots.backup) {
        (EndpointRole::Backup, Some(b)) => ("backup", b),
        _ => ("primary", &slots.primary),
    };
    let mut e = open_endpoint(app, &cur.tenant_id, field, endpoint).await?;
    e.base_url = to_base_url.to_string();
    Ok(e)
}

/// The target tested with the tenant's credentials and device on it.
async fn test_target(
    app: &App,
    cur: &SealedConfig,
    role: EndpointRole,
    to_base_url: &str,
) -> Result<EndpointResult, ApiError> {
    let e = target_endpoint(app, cur, role, to_base_url).await?;
    let kind = e.provider.unwrap_or(cur.provider);
    Ok(test_endpoint(&app.providers, kind, "candidate", &e).await)
}

/// `POST /admin/migrations`.
pub async fn migrate(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller) = (ctx.req, ctx.caller()?);
    let input: MigrationInput = parse_json(req, MAX_BODY_BYTES)?;
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
    let (servers, jobs) = (&app.stores.servers, &app.stores.jobs);
    let from = servers.get(&input.from).await?;
    let to = servers.get(&input.to).await?;
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::MigrationServerNotFound);
    };
    let existing = jobs.get(&input.job_id).await?;
    let mut job = match existing {
        Some(j) => {
            if j.from != input.from || j.to != input.to || j.requested != input.tenant_ids {
                return Err(ApiError::JobMismatch);
            }
            j
        }
        None => {
            let mut tenants: Vec<String> = match &input.tenant_ids {
                Some(ids) => ids.clone(),
                None => app
                    .stores
                    .tenants
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
            if input.dry_run || jobs.create(&job).await? {
                job
            } else {
                // Started concurrently under the same id: continue that one.
                jobs.get(&input.job_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal("job vanished".into()))?
            }
        }
    };
    // The target's load when this call starts; every move adds one.
    let mut load = app.stores.tenants.by_endpoint(&to.base_url).await?.len() as u32;
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
        let r = match plan(app, &job, &to.region, to.provider, tenant).await? {
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
                    // Issue 15: the target device linked and its webhook wired (or wirable),
                    // read only.
                    let url = app.webhook_url(req, &cur.tenant_id);
                    let mut wiring = Vec::new();
                    let mut ready = true;
                    for role in &roles {
                        let e = target_endpoint(app, &cur, *role, &to.base_url).await?;
                        let (linked, o) =
                            devices::precheck(app, url.as_deref(), &cur, *role, *role, &e).await;
                        ready &= devices::precheck_ok(linked, &o);
                        wiring.push(o);
                    }
                    let mut r = if ready {
                        TenantResult::new(tenant, "would_move", None)
                    } else {
                        TenantResult::new(
                            tenant,
                            "would_fail",
                            Some("the target device is not ready: see wiring".into()),
                        )
                    };
                    r.wiring = wiring;
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
                                jobs.record(&job.job_id, &r, now()).await?;
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
                        jobs.record_test(&job.job_id, &t, now()).await?;
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
                    // Issue 15: each moved endpoint's device is wired on the target BEFORE the
                    // cut-over (the source's webhook is left in place); a failure moves nothing.
                    let url = app.webhook_url(req, &cur.tenant_id);
                    let mut base = (*cur).clone();
                    let mut wiring = Vec::new();
                    let mut failure = None;
                    for role in &roles {
                        let e = target_endpoint(app, &base, *role, &to.base_url).await?;
                        match devices::wire_target(app, url.as_deref(), caller, &base, *role, &e)
                            .await
                        {
                            Ok((after, o)) => {
                                base = after;
                                wiring.push(o);
                            }
                            Err(err) => {
                                failure = Some(format!(
                                    "the {} device's webhook on the target could not be wired ({}: {err}); not moved",
                                    role.as_str(),
                                    err.code()
                                ));
                                break;
                            }
                        }
                    }
                    if let Some(reason) = failure {
                        let mut r = TenantResult::new(tenant, "failed", Some(reason));
                        r.roles = roles;
                        r.version_before = Some(cur.version);
                        r.wiring = wiring;
                        jobs.record(&job.job_id, &r, now()).await?;
                        job.results.insert(tenant.clone(), r.clone());
                        results.push(r);
                        continue;
                    }
                    let next = if base.version == cur.version {
                        next
                    } else {
                        let mut n = keep_all(&next);
                        devices::rebase(&mut n, &cur, &base);
                        Box::new(seal(app, n).await?)
                    };
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
                    let mut r = match app.journal.update(&base, &next, ch).await {
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
                    r.wiring = wiring;
                    r
                }
            }
        };
        if !input.dry_run {
            jobs.record(&job.job_id, &r, now()).await?;
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
pub async fn get(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let job = app
        .stores
        .jobs
        .get(ctx.id()?)
        .await?
        .ok_or(ApiError::JobNotFound)?;
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

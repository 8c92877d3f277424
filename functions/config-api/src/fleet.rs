//! The server registry and bulk migration jobs, as stored and shown (admin only). The
//! handlers are [`crate::handlers::servers`], [`crate::handlers::placement`] and
//! [`crate::handlers::migrations`]; storage is [`crate::store::ServerRegistry`] and
//! [`crate::store::MigrationJobs`].
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
//! is a version-conditional write through the config journal; the first move of a job
//! waits for the target to pass the connection test (with that tenant's credentials and
//! device), recorded in the job so a resumed job does not test again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wagate::tenant::{EndpointRole, ProviderKind};

/// Largest capacity of one server.
pub const MAX_CAPACITY: u32 = 100_000;
/// Most tenants one migration job may name or find.
pub const MAX_JOB_TENANTS: usize = 1000;

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
    /// Issue 15: each moved endpoint's device webhook on the target: in a dry run whether the
    /// device is linked there and its webhook wired or would be wired; in a real run what
    /// the move did (wired before the cut-over).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wiring: Vec<crate::handlers::devices::WiringOutcome>,
}

impl TenantResult {
    pub fn new(tenant: &str, outcome: &str, reason: Option<String>) -> Self {
        Self {
            tenant_id: tenant.to_string(),
            outcome: outcome.to_string(),
            reason,
            roles: Vec::new(),
            version_before: None,
            version_after: None,
            wiring: Vec::new(),
        }
    }

    /// Never attempted again by the job.
    pub fn is_final(&self) -> bool {
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

//! Analytics of a tenant's traffic per endpoint: `GET /tenants/{tenantId}/analytics`.
//! Computed on each call from the tenant's delivery records of the last 7 days (what the
//! sender and the ingress already write; see [`wagate::delivery::analytics`] for the
//! definitions): one bounded read of the tenant's message index, no write.

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use time::OffsetDateTime;
use wagate::delivery::analytics::{self, HourBucket, LONGEST_WINDOW_SECONDS, WindowStats};
use wagate::tenant::{ProviderKind, SealedConfig, TenantId};
use wagate::timestamp::rfc3339;

use crate::App;
use crate::error::ApiError;
use crate::response::to_json;
use crate::router::Ctx;

/// The most records one call reads (the newest of the last 7 days): at most 12 queries of
/// the tenant index. A tenant with more sees `truncated: true` and windows computed from
/// the newest ones.
pub const MAX_RECORDS: usize = 10_000;

/// The answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsView {
    pub tenant_id: TenantId,
    pub generated_at: String,
    /// How many records were read.
    pub records_read: usize,
    pub max_records: usize,
    /// More records of the last 7 days exist than were read: the longer windows count only
    /// the newest `maxRecords`.
    pub truncated: bool,
    /// `1h`, `24h`, `7d`, each with the tenant's totals and each endpoint's.
    pub windows: Vec<WindowStats>,
    /// The last 24 hours by hour, oldest first.
    pub hourly: Vec<HourBucket>,
}

/// The kind of the tenant's endpoint at `base_url`, per endpoint (never the tenant's kind
/// alone).
fn kind_at(cfg: Option<&SealedConfig>, base_url: &str) -> Option<ProviderKind> {
    let cfg = cfg?;
    std::iter::once(&cfg.primary)
        .chain(cfg.backup.as_ref())
        .find(|e| e.base_url.trim_end_matches('/') == base_url.trim_end_matches('/'))
        .map(|e| cfg.kind_of(e))
}

/// `GET /tenants/{id}/analytics`.
pub async fn analytics(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let tenant = ctx.tenant()?.clone();
    let now = OffsetDateTime::now_utc();
    let from = now - time::Duration::seconds(LONGEST_WINDOW_SECONDS);
    let (records, truncated) = app
        .stores
        .deliveries
        .since(&tenant, from, MAX_RECORDS, now)
        .await?;
    let cfg = app.stores.tenants.get(&tenant).await?;
    let mut windows = analytics::windows(&records, now);
    for e in windows.iter_mut().flat_map(|w| w.endpoints.iter_mut()) {
        e.kind = kind_at(cfg.as_ref(), &e.endpoint);
    }
    to_json(
        StatusCode::OK,
        &AnalyticsView {
            tenant_id: tenant,
            generated_at: rfc3339(now),
            records_read: records.len(),
            max_records: MAX_RECORDS,
            truncated,
            windows,
            hourly: analytics::hourly(&records, now),
        },
    )
}

//! `GET /admin/tenant-activity` (issue 15, the fleet view): every tenant's "connected but
//! silent" flag, last accepted webhook and backup readiness (`standby`), as the health check
//! and the ingress recorded them (one projected scan of the tenants table; no WhatsApp server
//! is asked).

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use wagate::health::silence::SilentFlag;
use wagate::timestamp::rfc3339;

use crate::App;
use crate::error::ApiError;
use crate::response::to_json;
use crate::router::Ctx;

/// One tenant's row.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantActivityView {
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent: Option<SilentFlag>,
    /// The health check's backup-readiness verdict (absent: no backup, or not judged yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby: Option<StandbyNoteView>,
}

/// The standby verdict as shown.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StandbyNoteView {
    pub role: &'static str,
    pub ready: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub config_version: u64,
    pub since: String,
}

#[derive(Debug, Serialize)]
struct ActivityList {
    items: Vec<TenantActivityView>,
}

/// `GET /admin/tenant-activity`: by tenant id.
pub async fn list(app: &App, _ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let mut items: Vec<TenantActivityView> = app
        .stores
        .health
        .all_activity()
        .await?
        .into_iter()
        .map(|(id, a)| TenantActivityView {
            tenant_id: id.to_string(),
            last_event_at: a.last_event_at.map(rfc3339),
            silent: a.silent,
            standby: a.standby.map(|n| StandbyNoteView {
                role: n.role.as_str(),
                ready: n.ready,
                reasons: n.reasons,
                detail: n.detail,
                config_version: n.config_version,
                since: rfc3339(n.since),
            }),
        })
        .collect();
    items.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    to_json(StatusCode::OK, &ActivityList { items })
}

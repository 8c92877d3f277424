//! Placement (admin): `POST /admin/placement {"region"}` answers the least-loaded healthy
//! server of the region with room (see [`crate::fleet`] for the rule).

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use tracing::info;
use wagate::tenant::{Credentials, Endpoint, ProviderKind, ValidationErrors};

use crate::App;
use crate::error::ApiError;
use crate::fleet::Server;
use crate::handlers::servers::{status_of, validate_server};
use crate::request::{MAX_BODY_BYTES, parse_json};
use crate::response::to_json;
use crate::router::Ctx;

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
pub async fn place(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let req = ctx.req;
    let input: PlacementInput = parse_json(req, MAX_BODY_BYTES)?;
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
    for s in app.stores.servers.all().await? {
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
    Err(ApiError::NoServerAvailable(if looked.is_empty() {
        format!("no registered server in {} has room", input.region)
    } else {
        format!(
            "no healthy server with room in {} (unhealthy: {})",
            input.region,
            looked.join(", ")
        )
    }))
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
        provider: None,
        webhook_source_cidrs: Vec::new(),
        webhook_wiring: Default::default(),
    };
    match app.providers.get(s.provider) {
        Some(client) => client
            .health(wagate::provider::Target::from(&e))
            .await
            .is_ok(),
        None => false,
    }
}

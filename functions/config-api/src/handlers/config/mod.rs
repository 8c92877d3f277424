//! The tenant's config: `POST`/`GET`/`PUT`/`DELETE /tenants/{tenantId}/whatsapp-config`
//! and the admin listing `GET /tenants`. Every change goes through the journal (config and
//! audit record in one write) and, but a create, is conditional on the version read.

pub mod dto;

use http::StatusCode;
use lambda_http::{Body, Response};
use tracing::info;

use crate::App;
use crate::audit::Action;
use crate::error::ApiError;
use crate::handlers::{
    change, devices, now, seal, validate_config, view_response, wired_view_response, with_location,
};
use crate::request::{MAX_BODY_BYTES, if_match, page_params, parse_json};
use crate::response::{no_content, to_json};
use crate::router::Ctx;
use dto::{ConfigInput, ConfigPage, ConfigView, build_config};

/// `POST /tenants/{tenantId}/whatsapp-config`: 201 with the config and its `Location`.
pub async fn create(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller, tenant) = (ctx.req, ctx.caller()?, ctx.tenant()?.clone());
    let input: ConfigInput = parse_json(req, MAX_BODY_BYTES)?;
    if input.version.is_some() {
        return Err(ApiError::BadRequest(
            "version is set by the server on create; leave it out".into(),
        ));
    }
    let at = now();
    let mut cfg = build_config(tenant, input, None, at).map_err(ApiError::Invalid)?;
    validate_config(app, &cfg).await?;
    // Issue 15: each endpoint whose device is logged in is wired with a secret saved in the
    // same write as the config; the others are reported (`pending_link`, `manual`, …).
    let url = app.webhook_url(req, &cfg.tenant_id);
    let (todo, mut wiring) = devices::plan_create(app, url.as_deref(), &mut cfg, at).await?;
    cfg.validate(&app.egress).map_err(ApiError::StateConflict)?;
    let sealed = seal(app, cfg).await?;
    let mut ch = change(caller, Action::Create);
    if !todo.is_empty() {
        ch.detail = Some(format!(
            "with new wired webhook secrets for {}: pushing them to the server",
            todo.iter()
                .map(|w| w.role.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    app.journal.create(&sealed, ch).await?;
    if !todo.is_empty() {
        let url = url.unwrap_or_default();
        wiring.extend(devices::wire_created(app, &url, caller, &sealed, todo).await?);
    }
    wiring.sort_by_key(|o| o.role != "primary");
    info!(version = sealed.version, "config created");
    let resp = wired_view_response(app, req, StatusCode::CREATED, &sealed, Some(wiring));
    Ok(with_location(
        resp,
        &format!("/tenants/{}/whatsapp-config", sealed.tenant_id),
    ))
}

/// `GET /tenants/{tenantId}/whatsapp-config`.
pub async fn read(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let cfg = crate::handlers::current(app, ctx.tenant()?).await?;
    Ok(view_response(app, ctx.req, StatusCode::OK, &cfg))
}

/// `PUT /tenants/{tenantId}/whatsapp-config`: needs the version (`If-Match` or body).
pub async fn update(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller, tenant) = (ctx.req, ctx.caller()?, ctx.tenant()?.clone());
    let header_version = if_match(req)?;
    let input: ConfigInput = parse_json(req, MAX_BODY_BYTES)?;
    let expected = match (header_version, input.version) {
        (Some(h), Some(b)) if h != b => return Err(ApiError::VersionsDisagree(h, b)),
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Err(ApiError::VersionRequired),
    };
    let current = crate::handlers::current(app, &tenant).await?;
    if current.version != expected {
        // Stale before any KMS call is spent.
        return Err(ApiError::Conflict(expected));
    }
    let at = now();
    let mut cfg = build_config(tenant, input, Some(&current), at).map_err(ApiError::from_build)?;
    validate_config(app, &cfg).await?;
    // Issue 15: every endpoint that changed is wired before the update is written (a failed
    // wiring writes nothing of the update).
    let url = app.webhook_url(req, &current.tenant_id);
    let (base, wiring) =
        devices::wire_changed(app, url.as_deref(), caller, &current, &mut cfg).await?;
    let sealed = seal(app, cfg).await?;
    app.journal
        .update(&base, &sealed, change(caller, Action::Update))
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => ApiError::Conflict(expected),
            other => other,
        })?;
    info!(version = sealed.version, "config updated");
    Ok(wired_view_response(
        app,
        req,
        StatusCode::OK,
        &sealed,
        Some(wiring),
    ))
}

/// `DELETE /tenants/{tenantId}/whatsapp-config`: 204.
pub async fn delete(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller, tenant) = (ctx.req, ctx.caller()?, ctx.tenant()?);
    let expected = if_match(req)?;
    let current = crate::handlers::current(app, tenant).await?;
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
    Ok(no_content())
}

/// `GET /tenants?limit=&cursor=` (admin): one page of configs, in no particular order.
pub async fn list(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let req = ctx.req;
    let (limit, cursor) = page_params(req)?;
    let page = app.stores.tenants.list(cursor.as_deref(), limit).await?;
    let body = ConfigPage {
        items: page
            .items
            .iter()
            .map(|c| ConfigView::from(c).with_webhook_url(app.webhook_url(req, &c.tenant_id)))
            .collect(),
        next_cursor: page.next_cursor,
    };
    to_json(StatusCode::OK, &body)
}

//! Connection tests and switching: `POST /tenants/{tenantId}/whatsapp-config/test` and
//! `…/switch`. A switch writes only after the endpoint that will carry traffic passed the
//! test ([`crate::conntest`]).

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::Deserialize;
use tracing::info;
use wagate::tenant::{
    Endpoint, EndpointRole, ProviderKind, SealedConfig, TenantId, ValidationErrors,
    normalize_base_url,
};

use crate::App;
use crate::audit::{Action, Moved};
use crate::conntest::{EndpointResult, TestReport, test_endpoint};
use crate::error::{ApiError, DeviceFailure};
use crate::handlers::config::dto::{EndpointInput, SecretSlot, build_endpoint};
use crate::handlers::devices;
use crate::handlers::{
    bump, change, check_hosts, check_version, commit, current, keep_all, now, open_endpoint, seal,
    wired_view_response,
};
use crate::request::{MAX_BODY_BYTES, expected_version, has_body, parse_json};
use crate::response::to_json;
use crate::router::Ctx;

/// Body of the test route when it tests a candidate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestInput {
    /// The candidate server. Credentials may be left out when its base URL is one of the
    /// tenant's saved endpoints: the saved ones are used.
    pub candidate: EndpointInput,
}

/// Builds a candidate endpoint: validated like a config's primary (host name looked up
/// too), credentials kept from the saved endpoint of the same base URL when left out.
async fn candidate_endpoint(
    app: &App,
    cur: Option<&SealedConfig>,
    provider: ProviderKind,
    field: &str,
    input: EndpointInput,
) -> Result<Endpoint<SecretSlot>, ApiError> {
    let url = normalize_base_url(&input.base_url).ok();
    let prev = cur.and_then(|c| {
        std::iter::once(&c.primary)
            .chain(c.backup.as_ref())
            .find(|e| Some(&e.base_url) == url.as_ref())
    });
    // A candidate naming no kind of its own is held to the stored tenant's kind: a rule that
    // only that kind imposes (its credential type, deviceId, source allowlist) is a conflict
    // with the stored config (409), not a bad body.
    let kind_from_store = input.provider.is_none() && cur.is_some();
    let mut errs = ValidationErrors::default();
    let built = build_endpoint(field, input, prev, Some(provider), &mut errs);
    let Some(e) = built.filter(|_| errs.is_empty()) else {
        if kind_from_store && kind_rules_only(&errs, field) {
            return Err(ApiError::StateConflict(errs));
        }
        return Err(ApiError::from_build(errs));
    };
    // Structural checks (URL scheme, SSRF guard, credential kind, device id, region), as on
    // a saved config, then the host name's addresses.
    let mut errs = wagate::tenant::validate_endpoint_alone(
        field,
        e.provider.unwrap_or(provider),
        &e,
        &app.egress,
    )
    .err()
    .unwrap_or_default();
    let url_field = format!("{field}.baseUrl");
    if !errs.0.iter().any(|f| f.field == url_field) {
        errs.extend(check_hosts(app, [(url_field, e.base_url.as_str())]).await);
    }
    if kind_from_store && !errs.is_empty() && kind_rules_only(&errs, field) {
        return Err(ApiError::StateConflict(errs));
    }
    errs.into_result().map_err(ApiError::Invalid)?;
    Ok(e)
}

/// Whether every error is one of the rules a server kind imposes (credential type, deviceId,
/// source allowlist): with the kind taken from the stored config, those are conflicts with it.
fn kind_rules_only(errs: &ValidationErrors, field: &str) -> bool {
    let kind_fields = [
        format!("{field}.credentials.type"),
        format!("{field}.deviceId"),
        format!("{field}.webhookSourceCidrs"),
    ];
    errs.0.iter().all(|f| kind_fields.contains(&f.field))
}

/// `POST /tenants/{id}/whatsapp-config/test`: no body tests the saved endpoints (primary,
/// and backup if set); `{"candidate": {...}}` tests a server before it is saved (the tenant
/// need not have a config yet). Always 200 with one result per check; `ok` says whether
/// everything passed.
pub async fn test(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, tenant) = (ctx.req, ctx.tenant()?.clone());
    let results = if has_body(req) {
        let input: TestInput = parse_json(req, MAX_BODY_BYTES)?;
        let cur = app.stores.tenants.get(&tenant).await?;
        let provider = cur
            .as_ref()
            .map(|c| c.provider)
            .unwrap_or(ProviderKind::Gowa);
        let cand =
            candidate_endpoint(app, cur.as_ref(), provider, "candidate", input.candidate).await?;
        let opened = open_endpoint(app, &tenant, "candidate", &cand).await?;
        let provider = cand.provider.unwrap_or(provider);
        vec![test_endpoint(&app.providers, provider, "candidate", &opened).await]
    } else {
        // Only the server credentials are opened (a webhook secret is not needed here).
        let cur = keep_all(&current(app, &tenant).await?);
        let primary = open_endpoint(app, &tenant, "primary", &cur.primary).await?;
        let backup = match &cur.backup {
            Some(b) => Some(open_endpoint(app, &tenant, "backup", b).await?),
            None => None,
        };
        let primary_kind = cur.primary.provider.unwrap_or(cur.provider);
        let mut out = vec![test_endpoint(&app.providers, primary_kind, "primary", &primary).await];
        if let Some(b) = &backup {
            let kind = b.provider.unwrap_or(cur.provider);
            out.push(test_endpoint(&app.providers, kind, "backup", b).await);
        }
        // Issue 15: the "webhook wired" check of each saved endpoint.
        devices::attach_webhook_checks(app, req, &tenant, &mut out, &primary, backup.as_ref())
            .await?;
        out
    };
    info!(ok = results.iter().all(|r| r.ok), "connection test done");
    to_json(StatusCode::OK, &report(&tenant, results))
}

fn report(tenant: &TenantId, results: Vec<EndpointResult>) -> TestReport {
    TestReport {
        tenant_id: tenant.to_string(),
        ok: results.iter().all(|r| r.ok),
        results,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchAction {
    /// Send traffic to `to` (primary or backup).
    Activate,
    /// Exchange primary and backup; traffic goes to the new primary (the old backup).
    Swap,
    /// Replace the `role` endpoint by `endpoint`, a candidate that must pass the test.
    Replace,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwitchInput {
    pub action: SwitchAction,
    #[serde(default)]
    pub to: Option<EndpointRole>,
    #[serde(default)]
    pub role: Option<EndpointRole>,
    #[serde(default)]
    pub endpoint: Option<EndpointInput>,
    #[serde(default)]
    pub version: Option<u64>,
    /// Only report the preconditions (connection test, device linked, webhook wiring) and
    /// change nothing, on wagate or on the server.
    #[serde(default)]
    pub dry_run: bool,
}

/// A switch's dry run: whether it would go through, and what it would do to the target's
/// device webhook.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchPlan {
    pub tenant_id: String,
    pub dry_run: bool,
    /// The switch would go through: the target passes its connection test, its device is
    /// logged in, and its webhook is wired or would be wired.
    pub ok: bool,
    pub target: EndpointResult,
    /// Whether the target's device is logged in (absent: it could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_linked: Option<bool>,
    /// `already_wired`, `would_wire`, `manual`, `no_device`, `no_webhook_url`, `not_linked`
    /// or `unverified` (the webhook could not be read: `message`).
    pub wiring: devices::WiringOutcome,
}

/// `POST /tenants/{id}/whatsapp-config/switch`: needs the version (If-Match or body); the
/// endpoint that will carry traffic (or the replacement) must pass the connection test
/// first (422 with the report otherwise); the write is conditional on the version read, so
/// a switch racing another change is 409.
pub async fn switch(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, caller, tenant) = (ctx.req, ctx.caller()?, ctx.tenant()?.clone());
    let input: SwitchInput = parse_json(req, MAX_BODY_BYTES)?;
    let expected = match expected_version(req, input.version)? {
        Some(v) => Some(v),
        None if input.dry_run => None,
        None => return Err(ApiError::VersionRequired),
    };
    let mut errs = ValidationErrors::default();
    match input.action {
        SwitchAction::Activate => {
            if input.to.is_none() {
                errs.push("to", "is required for activate (primary or backup)");
            }
            if input.role.is_some() || input.endpoint.is_some() {
                errs.push("action", "activate takes only 'to'");
            }
        }
        SwitchAction::Swap => {
            if input.to.is_some() || input.role.is_some() || input.endpoint.is_some() {
                errs.push("action", "swap takes no other field");
            }
        }
        SwitchAction::Replace => {
            if input.role.is_none() {
                errs.push("role", "is required for replace (primary or backup)");
            }
            if input.endpoint.is_none() {
                errs.push("endpoint", "is required for replace");
            }
            if input.to.is_some() {
                errs.push("to", "is not used by replace");
            }
        }
    }
    errs.into_result().map_err(ApiError::Invalid)?;
    let cur = current(app, &tenant).await?;
    check_version(&cur, expected)?;
    let at = now();
    let mut next = bump(keep_all(&cur), &cur, at);
    let no_backup = || ApiError::state("backup", "the tenant has no backup endpoint");
    // The replaced role, for the audit record (a switch or swap moves the active endpoint).
    let mut replaced = None;
    // `field`: where the tested endpoint's saved secret lives, for an error naming it.
    let (action, tested, role_name, field) = match input.action {
        SwitchAction::Activate => {
            let to = input.to.unwrap_or_default();
            if to == EndpointRole::Backup && cur.backup.is_none() {
                return Err(no_backup());
            }
            if to == cur.active_endpoint {
                return Err(ApiError::state(
                    "to",
                    format!("the {} endpoint is already active", to.as_str()),
                ));
            }
            next.active_endpoint = to;
            (
                Action::Switch,
                next.active().clone(),
                to.as_str(),
                to.as_str(),
            )
        }
        SwitchAction::Swap => {
            let backup = next.backup.take().ok_or_else(no_backup)?;
            next.backup = Some(std::mem::replace(&mut next.primary, backup));
            next.active_endpoint = EndpointRole::Primary;
            (Action::Swap, next.primary.clone(), "primary", "backup")
        }
        SwitchAction::Replace => {
            let role = input.role.unwrap_or_default();
            let ep = input.endpoint.expect("checked above");
            let cand = candidate_endpoint(app, Some(&cur), cur.provider, "endpoint", ep).await?;
            match role {
                EndpointRole::Primary => next.primary = cand.clone(),
                EndpointRole::Backup => next.backup = Some(cand.clone()),
            }
            replaced = Some(role);
            (Action::ReplaceEndpoint, cand, role.as_str(), "endpoint")
        }
    };
    // The input was checked above; what is left (e.g. a replacement equal to the other
    // endpoint) is how it meets the stored config.
    next.validate(&app.egress)
        .map_err(ApiError::StateConflict)?;
    let opened = open_endpoint(app, &tenant, field, &tested).await?;
    let kind = opened.provider.unwrap_or(cur.provider);
    let result = test_endpoint(&app.providers, kind, role_name, &opened).await;
    // Issue 15: the endpoint that will carry the traffic, under the role its wired secret is
    // named for now (a swap's new primary is the old backup).
    let (target_role, secret_role) = match input.action {
        SwitchAction::Activate => (input.to.unwrap_or_default(), input.to.unwrap_or_default()),
        SwitchAction::Swap => (EndpointRole::Primary, EndpointRole::Backup),
        SwitchAction::Replace => (
            input.role.unwrap_or_default(),
            input.role.unwrap_or_default(),
        ),
    };
    let url = app.webhook_url(req, &tenant);
    if input.dry_run {
        let plan = dry_run(
            app,
            url.as_deref(),
            &cur,
            target_role,
            secret_role,
            &opened,
            result,
        )
        .await;
        info!(ok = plan.ok, "switch dry run done");
        // The plan is of the version read: its ETag, as the real switch would need it.
        return Ok(crate::response::with_etag(
            to_json(StatusCode::OK, &plan)?,
            cur.version,
        ));
    }
    if !result.ok {
        let rep = serde_json::to_value(report(&tenant, vec![result]))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        return Err(ApiError::TestFailed(Box::new(rep)));
    }
    // Wired BEFORE the cut-over; the old endpoint's webhook is left in place. A target that
    // cannot be read or wired is the answer, and nothing is switched.
    let (base, wiring) = match devices::wire_target(
        app,
        url.as_deref(),
        caller,
        &cur,
        secret_role,
        &opened,
    )
    .await
    {
        Ok(done) => done,
        Err(ApiError::Device(failure, message))
            if !matches!(failure, DeviceFailure::DeviceNotFound) =>
        {
            return Err(ApiError::Device(
                failure,
                format!(
                    "the {} endpoint's device webhook is not wired and could not be wired: {message}; nothing was switched",
                    target_role.as_str()
                ),
            ));
        }
        Err(other) => return Err(other),
    };
    let mut wiring = wiring;
    wiring.role = target_role.as_str().into();
    devices::rebase(&mut next, &cur, &base);
    let sealed = seal(app, next).await?;
    let mut ch = change(caller, action);
    ch.detail = Some(format!(
        "active endpoint {} ({})",
        sealed.active_endpoint.as_str(),
        sealed.active().base_url
    ));
    ch.moved = Some(match replaced {
        Some(role) => Moved {
            from: role.as_str().into(),
            to: role.as_str().into(),
            from_endpoint: match role {
                EndpointRole::Primary => Some(cur.primary.base_url.clone()),
                EndpointRole::Backup => cur.backup.as_ref().map(|b| b.base_url.clone()),
            },
            to_endpoint: tested.base_url.clone(),
        },
        None => Moved {
            from: cur.active_endpoint.as_str().into(),
            to: sealed.active_endpoint.as_str().into(),
            from_endpoint: Some(cur.active().base_url.clone()),
            to_endpoint: sealed.active().base_url.clone(),
        },
    });
    commit(app, &base, &sealed, ch).await?;
    info!(
        action = action.as_str(),
        version = sealed.version,
        wiring = %wiring.state,
        "endpoint switched"
    );
    Ok(wired_view_response(
        app,
        req,
        StatusCode::OK,
        &sealed,
        Some(vec![wiring]),
    ))
}

/// What a switch would do, read only: the connection test's result, whether the target's
/// device is logged in, and whether its webhook is wired or would be wired.
async fn dry_run(
    app: &App,
    url: Option<&str>,
    cur: &SealedConfig,
    target_role: EndpointRole,
    secret_role: EndpointRole,
    target: &Endpoint<wagate::Secret>,
    test: EndpointResult,
) -> SwitchPlan {
    let (linked, wiring) = devices::precheck(app, url, cur, target_role, secret_role, target).await;
    let wiring_ok = devices::precheck_ok(linked, &wiring);
    SwitchPlan {
        tenant_id: cur.tenant_id.to_string(),
        dry_run: true,
        ok: test.ok && wiring_ok,
        target: test,
        device_linked: linked,
        wiring,
    }
}

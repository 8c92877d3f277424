//! The route table: every route as method + path template → who may call it → handler. It is
//! the one list of what the API answers: the router matches requests against it, and
//! `tests/tests/openapi.rs` checks it against `openapi.yaml` (every route documented, nothing
//! else). Adding a route is one line here and one handler (see docs/architecture.md).
//!
//! A path matches a template after any prefix (an API Gateway stage, cargo-lambda's
//! `/lambda-url/<function>`): the template's first segment (`tenants`, `admin`, `dashboard`)
//! is looked for from the end of the path, and what follows it must match the rest. A path
//! holding `tenants` is only matched against `/tenants…` routes, else one holding `admin`
//! against `/admin…`, else `/dashboard` must be its last segment. `{tenantId}` must be a valid
//! tenant id (400 otherwise); every parameter is percent-decoded.
//!
//! Checks in order: the path (404 `no_route`, 400 for a bad tenant id), the token (401)
//! unless the route is [`Access::Open`], the caller's scope and the method in the order
//! [`Access`] says (403, 405 with `Allow`), then the handler.

use std::future::Future;
use std::pin::Pin;

use http::Method;
use lambda_http::{Body, Request, Response};
use wagate::TenantId;

use crate::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::{
    activity, analytics, backup, config, connection, dashboard, devices, meta_callback, migrations,
    placement, rotation, servers, status,
};
use crate::request::percent_decode;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: the dashboard page (it holds no data). Also answers `HEAD`.
    Open,
    /// The tenant of the path's `{tenantId}`, or an admin; a tenant token of another tenant
    /// gets 403 before the method is looked at.
    Tenant,
    /// Admin only, checked before the method: a tenant token learns nothing of the route,
    /// not even 405 (the registry, placement and migration routes).
    Admin,
    /// Admin only, checked after the method (the listing, endpoints, failovers, export and
    /// import routes answer a tenant token's wrong method 405, as they always have).
    AdminAfterMethod,
}

/// What a handler gets besides the app.
pub struct Ctx<'a> {
    pub req: &'a Request,
    /// `None` only on [`Access::Open`] routes.
    pub caller: Option<&'a Caller>,
    pub params: Params,
}

impl Ctx<'_> {
    /// The authenticated caller.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller
            .ok_or(ApiError::Unauthenticated(crate::auth::AuthError::Missing))
    }

    /// The path's `{tenantId}`.
    pub fn tenant(&self) -> Result<&TenantId, ApiError> {
        self.params.tenant.as_ref().ok_or(ApiError::NoRoute)
    }

    /// The path's other parameter (`{idempotencyKey}`, `{serverId}`, `{jobId}`),
    /// percent-decoded.
    pub fn id(&self) -> Result<&str, ApiError> {
        self.params.id.as_deref().ok_or(ApiError::NoRoute)
    }
}

/// The path parameters of a matched route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub tenant: Option<TenantId>,
    pub id: Option<String>,
}

pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + Send + 'a>>;
pub type Handler = for<'a> fn(&'a App, &'a Ctx<'a>) -> Answer<'a>;

/// One route.
pub struct Route {
    pub method: Method,
    /// As `openapi.yaml` writes it: `/tenants/{tenantId}/whatsapp-config`.
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
}

macro_rules! route {
    ($method:ident $path:literal, $access:ident, $handler:path) => {
        Route {
            method: Method::$method,
            path: $path,
            access: Access::$access,
            handler: |app, ctx| Box::pin($handler(app, ctx)),
        }
    };
}

/// Every route the API answers.
pub static ROUTES: &[Route] = &[
    route!(GET "/tenants", AdminAfterMethod, config::list),
    route!(POST "/tenants/{tenantId}/whatsapp-config", Tenant, config::create),
    route!(GET "/tenants/{tenantId}/whatsapp-config", Tenant, config::read),
    route!(PUT "/tenants/{tenantId}/whatsapp-config", Tenant, config::update),
    route!(DELETE "/tenants/{tenantId}/whatsapp-config", Tenant, config::delete),
    route!(POST "/tenants/{tenantId}/whatsapp-config/test", Tenant, connection::test),
    route!(POST "/tenants/{tenantId}/whatsapp-config/rotate-credential", Tenant, rotation::rotate_credential),
    route!(POST "/tenants/{tenantId}/whatsapp-config/rotate-webhook-secret", Tenant, rotation::rotate_webhook_secret),
    route!(POST "/tenants/{tenantId}/whatsapp-config/switch", Tenant, connection::switch),
    route!(GET "/tenants/{tenantId}/audit", Tenant, status::audit),
    route!(GET "/tenants/{tenantId}/status", Tenant, status::status),
    route!(GET "/tenants/{tenantId}/meta-callback", Tenant, meta_callback::view),
    route!(GET "/tenants/{tenantId}/messages", Tenant, status::messages),
    route!(GET "/tenants/{tenantId}/messages/{idempotencyKey}", Tenant, status::message),
    route!(GET "/tenants/{tenantId}/history", Tenant, dashboard::history),
    route!(GET "/tenants/{tenantId}/analytics", Tenant, analytics::analytics),
    route!(GET "/tenants/{tenantId}/devices/{role}", Tenant, devices::slot),
    route!(POST "/tenants/{tenantId}/devices/{role}", Tenant, devices::slot),
    route!(POST "/tenants/{tenantId}/devices/{role}/qr", Tenant, devices::qr),
    route!(POST "/tenants/{tenantId}/devices/{role}/pairing-code", Tenant, devices::pairing_code),
    route!(POST "/tenants/{tenantId}/devices/{role}/logout", Tenant, devices::logout),
    route!(POST "/tenants/{tenantId}/devices/{role}/reconnect", Tenant, devices::reconnect),
    route!(GET "/tenants/{tenantId}/devices/{role}/webhook", Tenant, devices::webhook),
    route!(POST "/tenants/{tenantId}/devices/{role}/webhook", Tenant, devices::webhook),
    route!(GET "/admin/endpoints", AdminAfterMethod, servers::endpoints),
    route!(GET "/admin/failovers", AdminAfterMethod, dashboard::failovers),
    route!(GET "/admin/tenant-activity", AdminAfterMethod, activity::list),
    route!(GET "/admin/export", AdminAfterMethod, backup::export),
    route!(POST "/admin/import", AdminAfterMethod, backup::import),
    route!(GET "/admin/servers", Admin, servers::list),
    route!(POST "/admin/servers", Admin, servers::register),
    route!(PUT "/admin/servers/{serverId}", Admin, servers::update),
    route!(DELETE "/admin/servers/{serverId}", Admin, servers::deregister),
    route!(POST "/admin/placement", Admin, placement::place),
    route!(POST "/admin/migrations", Admin, migrations::migrate),
    route!(GET "/admin/migrations/{jobId}", Admin, migrations::get),
    route!(GET "/dashboard", Open, dashboard::page_route),
];

/// The routes a path matches (one template, each of its methods), with its parameters.
pub fn match_path(path: &str) -> Result<(Vec<&'static Route>, Params), ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let anchor = ["tenants", "admin", "dashboard"]
        .into_iter()
        .find(|a| segs.contains(a))
        .ok_or(ApiError::NoRoute)?;
    let at = segs.iter().rposition(|s| *s == anchor).unwrap_or(0);
    let rest = &segs[at..];
    let mut found: Option<(&'static str, Params)> = None;
    let mut routes = Vec::new();
    for route in ROUTES {
        let template: Vec<&str> = route.path.split('/').filter(|s| !s.is_empty()).collect();
        if template.first() != Some(&anchor) || template.len() != rest.len() {
            continue;
        }
        let shape = template
            .iter()
            .zip(rest)
            .all(|(t, s)| t.starts_with('{') || t == s);
        if !shape {
            continue;
        }
        if found.is_none() {
            found = Some((route.path, params(&template, rest)?));
        }
        routes.push(route);
    }
    let (_, params) = found.ok_or(ApiError::NoRoute)?;
    Ok((routes, params))
}

fn params(template: &[&str], segs: &[&str]) -> Result<Params, ApiError> {
    let mut p = Params::default();
    for (t, s) in template.iter().zip(segs) {
        match *t {
            "{tenantId}" => {
                let id = percent_decode(s).parse::<TenantId>().map_err(|e| {
                    ApiError::BadRequest(format!("tenantId in the path {}", e.reason))
                })?;
                p.tenant = Some(id);
            }
            t if t.starts_with('{') => p.id = Some(percent_decode(s)),
            _ => {}
        }
    }
    Ok(p)
}

/// The methods of a path's routes, as `Allow` lists them.
fn allow(routes: &[&Route]) -> String {
    let order = [Method::GET, Method::POST, Method::PUT, Method::DELETE];
    order
        .iter()
        .filter(|m| routes.iter().any(|r| r.method == **m))
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Routes one request: match, authenticate, authorize, dispatch.
pub async fn dispatch(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let (routes, params) = match_path(req.uri().path())?;
    let access = routes.first().map(|r| r.access).ok_or(ApiError::NoRoute)?;
    let method = req.method();
    let by_method = |m: &Method| routes.iter().copied().find(|r| r.method == *m);
    let not_allowed = || ApiError::MethodNotAllowed(allow(&routes));
    if access == Access::Open {
        // The page holds no data: it is served without a token and asks for one.
        let head = *method == Method::HEAD;
        let route = by_method(if head { &Method::GET } else { method }).ok_or_else(not_allowed)?;
        let ctx = Ctx {
            req,
            caller: None,
            params,
        };
        return (route.handler)(app, &ctx).await;
    }
    // Authenticate before anything else is looked at.
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = app.auth.authenticate(authorization).await?;
    tracing::Span::current().record("caller", caller.subject.as_str());
    let admin = || {
        if caller.is_admin() {
            Ok(())
        } else {
            Err(ApiError::AdminOnly)
        }
    };
    let route = match access {
        // Answered above, without a token.
        Access::Open => Err(ApiError::NoRoute),
        Access::Tenant => {
            let tenant = params.tenant.as_ref().ok_or(ApiError::NoRoute)?;
            tracing::Span::current().record("tenant_id", tenant.as_str());
            if !caller.may_access(tenant) {
                return Err(ApiError::Forbidden(tenant.to_string()));
            }
            by_method(method).ok_or_else(not_allowed)
        }
        Access::Admin => admin().and_then(|()| by_method(method).ok_or_else(not_allowed)),
        Access::AdminAfterMethod => by_method(method)
            .ok_or_else(not_allowed)
            .and_then(|route| admin().map(|()| route)),
    }?;
    let ctx = Ctx {
        req,
        caller: Some(&caller),
        params,
    };
    (route.handler)(app, &ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(path: &str) -> Result<(&'static str, Params), ApiError> {
        match_path(path).map(|(routes, p)| (routes[0].path, p))
    }

    #[test]
    fn routes_with_any_prefix() {
        let (path, p) = matched("/tenants/acme/whatsapp-config").unwrap();
        assert_eq!(path, "/tenants/{tenantId}/whatsapp-config");
        assert_eq!(p.tenant.unwrap().as_str(), "acme");
        assert_eq!(
            matched("/lambda-url/config-api/tenants/acme/whatsapp-config")
                .unwrap()
                .0,
            "/tenants/{tenantId}/whatsapp-config"
        );
        assert_eq!(matched("/tenants").unwrap().0, "/tenants");
        assert!(matches!(matched("/tenants/acme"), Err(ApiError::NoRoute)));
        assert!(matches!(
            matched("/tenants/a%2Fb/whatsapp-config"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn routes_the_operations() {
        assert_eq!(
            matched("/tenants/acme/whatsapp-config/test").unwrap().0,
            "/tenants/{tenantId}/whatsapp-config/test"
        );
        let (path, p) = matched("/stage/tenants/acme/messages/a%2Fb%23c").unwrap();
        assert_eq!(path, "/tenants/{tenantId}/messages/{idempotencyKey}");
        assert_eq!(p.id.as_deref(), Some("a/b#c"));
        assert_eq!(
            matched("/lambda-url/config-api/admin/export").unwrap().0,
            "/admin/export"
        );
        assert!(matches!(
            matched("/tenants/acme/whatsapp-config/nope"),
            Err(ApiError::NoRoute)
        ));
        assert!(matches!(matched("/admin"), Err(ApiError::NoRoute)));
        assert_eq!(
            matched("/lambda-url/config-api/dashboard").unwrap().0,
            "/dashboard"
        );
        assert!(matches!(
            matched("/prod/dashboard/app.js"),
            Err(ApiError::NoRoute)
        ));
        // A tenant called `dashboard` is still a tenant.
        let (path, p) = matched("/tenants/dashboard/status").unwrap();
        assert_eq!(path, "/tenants/{tenantId}/status");
        assert_eq!(p.tenant.unwrap().as_str(), "dashboard");
        assert_eq!(
            matched("/tenants/acme/history").unwrap().0,
            "/tenants/{tenantId}/history"
        );
        assert_eq!(matched("/admin/failovers").unwrap().0, "/admin/failovers");
        // A bad tenant id on a path no route has is no route, not a bad request.
        assert!(matches!(
            matched("/tenants/a%2Fb/nope"),
            Err(ApiError::NoRoute)
        ));
    }

    #[test]
    fn every_method_of_a_path_is_in_its_allow() {
        let (routes, _) = match_path("/tenants/acme/whatsapp-config").unwrap();
        assert_eq!(allow(&routes), "GET, POST, PUT, DELETE");
        let (routes, _) = match_path("/admin/servers").unwrap();
        assert_eq!(allow(&routes), "GET, POST");
        let (routes, _) = match_path("/admin/servers/s1").unwrap();
        assert_eq!(allow(&routes), "PUT, DELETE");
        let (routes, _) = match_path("/dashboard").unwrap();
        assert_eq!(allow(&routes), "GET");
    }

    #[test]
    fn every_template_has_one_access_and_no_method_twice() {
        for r in ROUTES {
            let same: Vec<&Route> = ROUTES.iter().filter(|o| o.path == r.path).collect();
            assert!(same.iter().all(|o| o.access == r.access), "{}", r.path);
            assert_eq!(
                same.iter().filter(|o| o.method == r.method).count(),
                1,
                "{} {}",
                r.method,
                r.path
            );
            assert_eq!(
                r.access == Access::Tenant,
                r.path.contains("{tenantId}"),
                "{}",
                r.path
            );
        }
    }
}

//! The status dashboard: a static page (HTML, CSS, JS embedded in the binary; no CDN, no
//! network fetch but this API) and the two reads its charts need beyond the status routes:
//!
//! - `GET /tenants/{id}/history?hours=` — the health check's points for the tenant's
//!   primary and backup servers (one point per run, kept 24 h by TTL);
//! - `GET /admin/failovers?hours=` — every automatic failover and failback of all tenants,
//!   from the audit table's sparse `BySwitchStream` index.
//!
//! The page itself is served without a token (it holds no data); every request it makes
//! carries the token the user signs in with, checked like any other call.

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wagate::audit::AuditEntry;
use wagate::health::HealthPoint;
use wagate::tenant::EndpointRole;
use wagate::timestamp::{self, Precision};

use crate::App;
use crate::error::ApiError;
use crate::response::to_json;
use crate::router::Ctx;

/// How far back the history and failover reads look by default (and the history's TTL).
pub const DEFAULT_HOURS: u32 = 24;
/// The longest history window: points older than this have expired anyway.
pub const MAX_HISTORY_HOURS: u32 = 24;
/// The longest failover window (audit records are kept; the index is queried by time).
pub const MAX_FAILOVER_HOURS: u32 = 7 * 24;
/// Most failovers one read returns (newest first).
pub const MAX_FAILOVERS: usize = 500;

const INDEX_HTML: &str = include_str!("../../dashboard/index.html");
const APP_CSS: &str = include_str!("../../dashboard/app.css");
const APP_JS: &str = include_str!("../../dashboard/app.js");

/// The page as served: one HTML document with its stylesheet and script inlined (one request,
/// one invocation), and the Content-Security-Policy that allows exactly those two by their
/// SHA-256: no other script or style, nothing from another origin, no framing.
pub struct Page {
    pub html: String,
    pub csp: String,
}

fn csp_hash(body: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body.as_bytes()))
    )
}

/// Built once per instance.
pub fn page() -> &'static Page {
    static PAGE: std::sync::OnceLock<Page> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| {
        // `</` cannot end the inlined element early: the sources never contain it (tested).
        let html = INDEX_HTML
            .replacen("/*wagate:app.css*/", APP_CSS, 1)
            .replacen("/*wagate:app.js*/", APP_JS, 1);
        let csp = format!(
            "default-src 'none'; script-src {}; style-src {}; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            csp_hash(APP_JS),
            csp_hash(APP_CSS)
        );
        Page { html, csp }
    })
}

/// `GET /dashboard` (and `HEAD`): the page, without a token.
pub async fn page_route(_app: &App, _ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    Ok(serve())
}

/// The page's response.
pub fn serve() -> Response<Body> {
    let p = page();
    let mut resp = Response::new(Body::Text(p.html.clone()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&p.csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Small and versioned with the function: revalidate rather than serve a stale page.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `?hours=` within `1..=max`, or the default.
fn hours(req: &Request, max: u32) -> Result<u32, ApiError> {
    match req.query_string_parameters().first("hours") {
        None => Ok(DEFAULT_HOURS.min(max)),
        Some(h) => h
            .parse::<u32>()
            .ok()
            .filter(|h| (1..=max).contains(h))
            .ok_or_else(|| ApiError::BadRequest(format!("hours must be 1 to {max}"))),
    }
}

fn since(now: OffsetDateTime, hours: u32) -> String {
    timestamp::rfc3339(now - time::Duration::hours(i64::from(hours)))
}

/// One health-check run's view of a server, as the API shows it (the stored
/// [`HealthPoint`] without its key and TTL).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    pub at: String,
    pub up: bool,
    /// Milliseconds with microsecond precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_connected: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<HealthPoint> for HistoryPoint {
    fn from(p: HealthPoint) -> Self {
        Self {
            at: p.at,
            up: p.up,
            latency_ms: p.latency_ms,
            devices_connected: p.devices_connected,
            error: p.error,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHistory {
    pub role: EndpointRole,
    pub base_url: String,
    pub active: bool,
    /// Oldest first.
    pub points: Vec<HistoryPoint>,
}

/// `GET /tenants/{id}/history`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantHistory {
    pub tenant_id: String,
    pub since: String,
    pub endpoints: Vec<EndpointHistory>,
}

async fn points(app: &App, key: &str, since: &str) -> Result<Vec<HistoryPoint>, ApiError> {
    Ok(app
        .stores
        .health
        .history(key, since)
        .await?
        .into_iter()
        .map(HistoryPoint::from)
        .collect())
}

/// `GET /tenants/{tenantId}/history?hours=`.
pub async fn history(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, tenant) = (ctx.req, ctx.tenant()?);
    let hours = hours(req, MAX_HISTORY_HOURS)?;
    let cfg = crate::handlers::current(app, tenant).await?;
    // The points' own format (fixed-width milliseconds), so the key condition compares
    // like with like.
    let since = timestamp::fixed(
        OffsetDateTime::now_utc() - time::Duration::hours(i64::from(hours)),
        Precision::Millis,
    );
    let mut wanted = vec![(EndpointRole::Primary, cfg.primary.base_url.clone())];
    if let Some(b) = &cfg.backup {
        wanted.push((EndpointRole::Backup, b.base_url.clone()));
    }
    let active = cfg.active().base_url.clone();
    let mut endpoints = Vec::with_capacity(wanted.len());
    for (role, url) in wanted {
        endpoints.push(EndpointHistory {
            points: points(app, &url, &since).await?,
            active: url == active,
            role,
            base_url: url,
        });
    }
    to_json(
        StatusCode::OK,
        &TenantHistory {
            tenant_id: tenant.to_string(),
            since,
            endpoints,
        },
    )
}

/// `GET /admin/failovers`: newest first.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverList {
    pub since: String,
    pub items: Vec<AuditEntry>,
    /// More than [`MAX_FAILOVERS`] switches happened in the window.
    pub truncated: bool,
}

/// `GET /admin/failovers?hours=`: newest first, at most [`MAX_FAILOVERS`].
pub async fn failovers(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let hours = hours(ctx.req, MAX_FAILOVER_HOURS)?;
    let since = since(OffsetDateTime::now_utc(), hours);
    let (items, truncated) = app
        .stores
        .audit
        .switches_since(&since, MAX_FAILOVERS)
        .await?;
    to_json(
        StatusCode::OK,
        &FailoverList {
            since,
            items,
            truncated,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_inlines_its_assets_and_its_policy_allows_exactly_them() {
        let r = serve();
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains(&format!("script-src {};", csp_hash(APP_JS))),
            "{csp}"
        );
        assert!(
            csp.contains(&format!("style-src {};", csp_hash(APP_CSS))),
            "{csp}"
        );
        assert!(csp.contains("connect-src 'self'") && csp.contains("default-src 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        let html = &page().html;
        assert!(html.contains(APP_JS) && html.contains(APP_CSS));
        assert!(
            !html.contains("/*wagate:"),
            "a placeholder was left in the page"
        );
        assert_eq!(
            html.matches("<script").count(),
            1,
            "one script, the hashed one"
        );
        assert_eq!(
            html.matches("<style").count(),
            1,
            "one stylesheet, the hashed one"
        );
    }

    #[test]
    fn the_page_fetches_nothing_from_another_origin_and_cannot_end_its_elements_early() {
        for (name, body) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("app.css", APP_CSS),
        ] {
            for needle in [
                "src=\"http",
                "href=\"http",
                "src=\"//",
                "href=\"//",
                "url(http",
                "fetch(\"http",
                "fetch('http",
                "@import",
            ] {
                assert!(
                    !body.contains(needle),
                    "{name} mentions {needle}: the page must not load anything from elsewhere"
                );
            }
        }
        for (name, body) in [("app.js", APP_JS), ("app.css", APP_CSS)] {
            assert!(
                !body.contains("</"),
                "{name} contains `</`, which would end its inlined element"
            );
        }
    }
}

//! Caller authentication: the function verifies the bearer JWT itself, so no deployment
//! can forget it (API Gateway's JWT authorizer is a second gate in AWS). There is no switch
//! that turns it off; local runs use a local issuer (`wagate-dev token`).
//!
//! A token is accepted when its signature verifies against a key of the configured JWKS
//! (asymmetric algorithms only), `iss` and `aud` match, and `exp` is in the future (30 s
//! leeway). Scopes (`scope`, space separated):
//! - `wagate/admin`: every tenant;
//! - `wagate/tenant` with a `tenant_id` claim: that one tenant only.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use wagate::TenantId;
use wagate::egress::HttpClient;

pub const ADMIN_SCOPE: &str = "wagate/admin";
pub const TENANT_SCOPE: &str = "wagate/tenant";

const ALLOWED_ALGS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

/// How long after a refresh an unknown `kid` may trigger another JWKS fetch.
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Admin,
    Tenant(TenantId),
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// May this caller act on `tenant`?
    pub fn may_access(&self, tenant: &TenantId) -> bool {
        match &self.role {
            Role::Admin => true,
            Role::Tenant(own) => own == tenant,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error("token grants no wagate scope")]
    NoScope,
}

/// Where the verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS document given inline (`JWT_JWKS`); the local stack uses this.
    Inline(String),
    /// A JWKS URL (`JWT_JWKS_URL`), fetched at cold start and again on an unknown `kid`.
    Url(String),
}

/// Verification settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub keys: KeySource,
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
}

/// Verifies bearer tokens.
pub struct Authenticator {
    config: AuthConfig,
    http: HttpClient,
    keys: RwLock<(JwkSet, Option<Instant>)>,
}

impl Authenticator {
    /// Loads the keys (fetching the JWKS URL if that is the source).
    pub async fn new(config: AuthConfig, http: HttpClient) -> Result<Self, String> {
        let set = match &config.keys {
            KeySource::Inline(json) => parse_jwks(json)?,
            KeySource::Url(url) => fetch_jwks(&http, url).await?,
        };
        let fetched = matches!(config.keys, KeySource::Url(_)).then(Instant::now);
        Ok(Self {
            config,
            http,
            keys: RwLock::new((set, fetched)),
        })
    }

    /// Authenticates the `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let token = authorization
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let header = decode_header(token).map_err(|_| AuthError::Invalid("malformed"))?;
        if !ALLOWED_ALGS.contains(&header.alg) {
            return Err(AuthError::Invalid("algorithm not allowed"));
        }
        let kid = header.kid.as_deref().ok_or(AuthError::Invalid("no kid"))?;
        let jwk = match self.find(kid) {
            Some(j) => j,
            None => {
                self.refresh().await;
                self.find(kid)
                    .ok_or(AuthError::Invalid("unknown signing key"))?
            }
        };
        if let Some(alg) = jwk.common.key_algorithm
            && alg != KeyAlgorithm::from(header.alg)
        {
            return Err(AuthError::Invalid("algorithm does not match the key"));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::Invalid("unusable key"))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.config.issuer]);
        v.set_audience(&[&self.config.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.leeway = 30;
        v.validate_nbf = true;
        let data = decode::<Claims>(token, &key, &v).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer"),
            ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience"),
            ErrorKind::ImmatureSignature => AuthError::Invalid("not yet valid"),
            ErrorKind::InvalidSignature => AuthError::Invalid("bad signature"),
            _ => AuthError::Invalid("rejected"),
        })?;
        let claims = data.claims;
        let subject = claims.sub.unwrap_or_default();
        let scopes: Vec<&str> = claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if scopes.contains(&ADMIN_SCOPE) {
            return Ok(Caller {
                subject,
                role: Role::Admin,
            });
        }
        if scopes.contains(&TENANT_SCOPE) {
            let tenant = claims
                .tenant_id
                .and_then(|t| t.parse::<TenantId>().ok())
                .ok_or(AuthError::Invalid("tenant scope without a valid tenant_id"))?;
            return Ok(Caller {
                subject,
                role: Role::Tenant(tenant),
            });
        }
        Err(AuthError::NoScope)
    }

    fn find(&self, kid: &str) -> Option<Jwk> {
        let guard = self.keys.read().unwrap_or_else(|p| p.into_inner());
        guard.0.find(kid).cloned()
    }

    /// Re-fetches a JWKS URL, at most once per [`JWKS_REFRESH_INTERVAL`].
    async fn refresh(&self) {
        let KeySource::Url(url) = &self.config.keys else {
            return;
        };
        {
            let guard = self.keys.read().unwrap_or_else(|p| p.into_inner());
            if guard.1.is_some_and(|t| t.elapsed() < JWKS_REFRESH_INTERVAL) {
                return;
            }
        }
        match fetch_jwks(&self.http, url).await {
            Ok(set) => {
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = (set, Some(Instant::now()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys we have");
                self.keys.write().unwrap_or_else(|p| p.into_inner()).1 = Some(Instant::now());
            }
        }
    }
}

fn parse_jwks(json: &str) -> Result<JwkSet, String> {
    let set: JwkSet = serde_json::from_str(json).map_err(|e| format!("JWKS is not valid: {e}"))?;
    if set.keys.is_empty() {
        return Err("JWKS has no keys".into());
    }
    if set.keys.iter().any(|k| k.common.key_id.is_none()) {
        return Err("every JWKS key needs a kid".into());
    }
    Ok(set)
}

async fn fetch_jwks(http: &HttpClient, url: &str) -> Result<JwkSet, String> {
    let url = url::Url::parse(url).map_err(|_| "JWT_JWKS_URL is not a URL".to_string())?;
    let resp = http
        .request(http::Method::GET, url)
        .map_err(|e| format!("JWKS URL refused: {e}"))?
        .send()
        .await
        .map_err(|e| format!("JWKS fetch failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("JWKS fetch answered {}", resp.status()));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| format!("JWKS fetch failed: {e}"))?;
    parse_jwks(&text)
}

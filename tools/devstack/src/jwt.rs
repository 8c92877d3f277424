//! A local JWT issuer: one P-256 key, its JWKS, and ES256 tokens for admin and tenant callers.
//!
//! Files in the issuer's directory: `signing-key.pk8` (the PKCS#8 private key, mode 0600) and
//! `jwks.json` (the public JWK set the config API verifies against).

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// File name of the private key in an issuer directory.
pub const SIGNING_KEY_FILE: &str = "signing-key.pk8";
/// File name of the JWK set in an issuer directory.
pub const JWKS_FILE: &str = "jwks.json";
/// Default `iss` of local tokens.
pub const DEFAULT_ISSUER: &str = "wagate-local";
/// Default `aud` of local tokens.
pub const DEFAULT_AUDIENCE: &str = "wagate-config-api";
/// Scope of an administrator.
pub const ADMIN_SCOPE: &str = "wagate/admin";
/// Scope of a tenant-scoped caller.
pub const TENANT_SCOPE: &str = "wagate/tenant";

/// A signing key for local tokens.
pub struct LocalIssuer {
    pkcs8: Vec<u8>,
    kid: String,
    x: String,
    y: String,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("kid", &self.kid)
            .field("pkcs8", &"***")
            .finish()
    }
}

/// Who a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An administrator (`scope: wagate/admin`, no `tenant_id`).
    Admin,
    /// A caller scoped to one tenant (`scope: wagate/tenant`, `tenant_id`).
    Tenant(String),
}

/// What to put in a token. Start from [`TokenSpec::admin`] or [`TokenSpec::tenant`].
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// The caller.
    pub caller: Caller,
    /// `sub`; defaults to `local-admin` or `local-tenant-<id>`.
    pub subject: Option<String>,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// `exp - iat`; negative for a token that expired already.
    pub ttl: Duration,
    /// `iat`; defaults to now.
    pub issued_at: Option<OffsetDateTime>,
    /// Scopes beyond the caller's own (space separated in `scope`).
    pub extra_scopes: Vec<String>,
}

impl TokenSpec {
    /// An administrator's token, valid for an hour.
    pub fn admin() -> TokenSpec {
        TokenSpec::for_caller(Caller::Admin)
    }

    /// A token of a caller scoped to `tenant_id`, valid for an hour.
    pub fn tenant(tenant_id: impl Into<String>) -> TokenSpec {
        TokenSpec::for_caller(Caller::Tenant(tenant_id.into()))
    }

    fn for_caller(caller: Caller) -> TokenSpec {
        TokenSpec {
            caller,
            subject: None,
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            ttl: Duration::hours(1),
            issued_at: None,
            extra_scopes: Vec::new(),
        }
    }

    /// Sets the lifetime (may be negative: the token is already expired).
    pub fn ttl(mut self, ttl: Duration) -> TokenSpec {
        self.ttl = ttl;
        self
    }

    /// Sets `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> TokenSpec {
        self.issuer = issuer.into();
        self
    }

    /// Sets `aud`.
    pub fn audience(mut self, audience: impl Into<String>) -> TokenSpec {
        self.audience = audience.into();
        self
    }

    /// Sets `sub`.
    pub fn subject(mut self, subject: impl Into<String>) -> TokenSpec {
        self.subject = Some(subject.into());
        self
    }

    /// Sets `iat` (and so `exp = iat + ttl`).
    pub fn issued_at(mut self, at: OffsetDateTime) -> TokenSpec {
        self.issued_at = Some(at);
        self
    }

    /// Adds a scope.
    pub fn scope(mut self, scope: impl Into<String>) -> TokenSpec {
        self.extra_scopes.push(scope.into());
        self
    }

    /// The claims this spec produces.
    pub fn claims(&self) -> Claims {
        let iat = self
            .issued_at
            .unwrap_or_else(OffsetDateTime::now_utc)
            .unix_timestamp();
        let (own_scope, tenant_id, default_sub) = match &self.caller {
            Caller::Admin => (ADMIN_SCOPE, None, "local-admin".to_owned()),
            Caller::Tenant(id) => (TENANT_SCOPE, Some(id.clone()), format!("local-tenant-{id}")),
        };
        let mut scopes = vec![own_scope.to_owned()];
        scopes.extend(self.extra_scopes.iter().cloned());
        Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: self.subject.clone().unwrap_or(default_sub),
            iat,
            exp: iat + self.ttl.whole_seconds(),
            scope: scopes.join(" "),
            tenant_id,
        }
    }
}

/// The claims of a local token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject.
    pub sub: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Space-separated scopes.
    pub scope: String,
    /// The tenant of a tenant-scoped caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

impl LocalIssuer {
    /// A new random P-256 key.
    pub fn generate() -> LocalIssuer {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("the system random generator failed to make a P-256 key");
        LocalIssuer::from_pkcs8(document.as_ref()).expect("a freshly generated key parses")
    }

    /// An issuer from a PKCS#8 (DER) P-256 private key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> anyhow::Result<LocalIssuer> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|e| anyhow!("not a PKCS#8 P-256 private key: {e}"))?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 0x04 {
            bail!("unexpected public key encoding ({} bytes)", point.len());
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        // RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order.
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, thumbprint_input.as_bytes()));
        Ok(LocalIssuer {
            pkcs8: pkcs8.to_vec(),
            kid,
            x,
            y,
        })
    }

    /// Writes `signing-key.pk8` (mode 0600) and `jwks.json` into `dir` (created, mode 0700).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        create_private_dir(dir)?;
        write_file(&dir.join(SIGNING_KEY_FILE), &self.pkcs8, 0o600)?;
        write_file(&dir.join(JWKS_FILE), self.jwks_json().as_bytes(), 0o644)?;
        Ok(())
    }

    /// Reads the key saved by [`LocalIssuer::save`].
    pub fn load(dir: &Path) -> anyhow::Result<LocalIssuer> {
        let path = dir.join(SIGNING_KEY_FILE);
        let pkcs8 = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        LocalIssuer::from_pkcs8(&pkcs8).with_context(|| format!("loading {}", path.display()))
    }

    /// Loads the issuer in `dir`, or generates and saves one; `true` when it was generated.
    pub fn load_or_generate(dir: &Path) -> anyhow::Result<(LocalIssuer, bool)> {
        if dir.join(SIGNING_KEY_FILE).exists() {
            let issuer = LocalIssuer::load(dir)?;
            // Rewrite the JWKS if it went missing; the key stays.
            if !dir.join(JWKS_FILE).exists() {
                write_file(&dir.join(JWKS_FILE), issuer.jwks_json().as_bytes(), 0o644)?;
            }
            return Ok((issuer, false));
        }
        let issuer = LocalIssuer::generate();
        issuer.save(dir)?;
        Ok((issuer, true))
    }

    /// The key id (`kid`): the key's RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK set as a JSON value.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "x": self.x,
                "y": self.y,
                "kid": self.kid,
                "alg": "ES256",
                "use": "sig",
            }]
        })
    }

    /// The public JWK set, serialised.
    pub fn jwks_json(&self) -> String {
        serde_json::to_string_pretty(&self.jwks()).expect("a JSON value serialises")
    }

    /// A signed ES256 token for `spec`.
    pub fn token(&self, spec: &TokenSpec) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            &spec.claims(),
            &EncodingKey::from_ec_der(&self.pkcs8),
        )
        .expect("signing with a valid P-256 key succeeds")
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
    }
}

/// Writes `bytes` to `path` through a temporary file renamed into place, created with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let _ = std::fs::remove_file(&tmp);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_claims_carry_scope_and_tenant_id() {
        let claims = TokenSpec::tenant("acme").claims();
        assert_eq!(claims.scope, TENANT_SCOPE);
        assert_eq!(claims.tenant_id.as_deref(), Some("acme"));
        assert_eq!(claims.iss, DEFAULT_ISSUER);
        assert_eq!(claims.aud, DEFAULT_AUDIENCE);
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn admin_claims_have_no_tenant_id() {
        let claims = TokenSpec::admin().scope("extra").claims();
        assert_eq!(claims.scope, "wagate/admin extra");
        assert_eq!(claims.tenant_id, None);
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("tenant_id").is_none());
    }

    #[test]
    fn negative_ttl_gives_an_expired_token() {
        let claims = TokenSpec::admin().ttl(Duration::seconds(-60)).claims();
        assert!(claims.exp < claims.iat);
    }

    #[test]
    fn kid_is_stable_for_a_key() {
        let issuer = LocalIssuer::generate();
        let again = LocalIssuer::from_pkcs8(&issuer.pkcs8).unwrap();
        assert_eq!(issuer.kid(), again.kid());
        assert_eq!(issuer.kid().len(), 43, "base64url of a SHA-256 digest");
    }

    #[test]
    fn debug_does_not_print_the_private_key() {
        let issuer = LocalIssuer::generate();
        let shown = format!("{issuer:?}");
        assert!(shown.contains("***"));
        assert!(!shown.contains(&URL_SAFE_NO_PAD.encode(&issuer.pkcs8)));
    }
}

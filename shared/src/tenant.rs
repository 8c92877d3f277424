//! The tenant's WhatsApp configuration and its validation.
//!
//! `TenantConfig<S>` is generic over how secrets are held: [`SealedSecret`] as stored in
//! DynamoDB, [`Secret`] once opened in memory, or anything else a caller needs while it
//! builds a config (the config API uses "new value or keep the sealed one"). The shape is
//! the same everywhere; only the secret slots change.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

pub use crate::health::FailbackPolicy;
use crate::net::EgressPolicy;
use crate::secrets::{Purpose, SealedSecret, Secret};

/// A stored configuration: every secret is KMS ciphertext.
pub type SealedConfig = TenantConfig<SealedSecret>;
/// An opened configuration, held only in memory (the cache).
pub type OpenedConfig = TenantConfig<Secret>;

/// Most webhook secrets a tenant may hold at once (current plus rotating ones).
pub const MAX_WEBHOOK_SECRETS: usize = 5;

/// A tenant id: 1 to 64 characters of `A-Z a-z 0-9 _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(TenantId(value))
        } else {
            Err(FieldError::new(
                "tenantId",
                "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-', starting with a letter or digit",
            ))
        }
    }
}

impl FromStr for TenantId {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::try_from(s.to_string())
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which kind of WhatsApp API server a tenant runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// go-whatsapp-web-multidevice.
    Gowa,
}

impl ProviderKind {
    pub const ALL: &'static [ProviderKind] = &[ProviderKind::Gowa];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Gowa => "gowa",
        }
    }

    /// The credential kinds (`Credentials::kind`) this kind of server accepts. GOWA's API
    /// has HTTP basic auth only (`--basic-auth`), or none.
    pub fn credential_kinds(self) -> &'static [&'static str] {
        match self {
            ProviderKind::Gowa => &["none", "basic"],
        }
    }
}

impl FromStr for ProviderKind {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gowa" => Ok(ProviderKind::Gowa),
            _ => Err(FieldError::new(
                "provider",
                format!("unknown provider {s:?}; supported: gowa"),
            )),
        }
    }
}

/// Which of the tenant's endpoints traffic goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EndpointRole {
    #[default]
    Primary,
    Backup,
}

/// The tenant's last known connection to WhatsApp (written by the health check and sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    LoggedOut,
    EndpointDown,
    #[default]
    Unknown,
}

/// How wagate authenticates to a WhatsApp server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Credentials<S> {
    /// No authentication (a server on a private network).
    None,
    /// HTTP basic auth (GOWA's `--basic-auth user:pass`).
    Basic { username: String, password: S },
    /// An API key header (WAHA `X-Api-Key`, Evolution `apikey`).
    ApiKey { key: S },
    /// A bearer token (Meta Cloud API).
    Bearer { token: S },
}

impl<S> Credentials<S> {
    fn secret_mut(&mut self) -> Option<&mut S> {
        match self {
            Credentials::None => None,
            Credentials::Basic { password, .. } => Some(password),
            Credentials::ApiKey { key } => Some(key),
            Credentials::Bearer { token } => Some(token),
        }
    }

    pub fn secret(&self) -> Option<&S> {
        match self {
            Credentials::None => None,
            Credentials::Basic { password, .. } => Some(password),
            Credentials::ApiKey { key } => Some(key),
            Credentials::Bearer { token } => Some(token),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::None => "none",
            Credentials::Basic { .. } => "basic",
            Credentials::ApiKey { .. } => "apiKey",
            Credentials::Bearer { .. } => "bearer",
        }
    }
}

/// One WhatsApp API server (and the device/session on it) a tenant can use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "S: Deserialize<'de>"))]
pub struct Endpoint<S> {
    /// Normalised base URL (see [`normalize_base_url`]).
    pub base_url: String,
    pub credentials: Credentials<S>,
    /// The device (GOWA `X-Device-Id`) or session on that server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Where this server's webhooks may come from; empty means anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_source_cidrs: Vec<IpNet>,
}

impl<S> Endpoint<S> {
    /// The key that identifies the server across tenants (the endpoint GSI's hash key).
    pub fn endpoint_key(&self) -> &str {
        &self.base_url
    }
}

/// Per-tenant limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Limits {
    /// Outbound messages per minute, across all sender instances. WhatsApp's anti-spam
    /// punishes bursts, so the default is conservative.
    pub outbound_per_minute: u32,
    /// Inbound webhooks per second, per ingress instance (a flood guard, not a quota).
    pub inbound_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            outbound_per_minute: 30,
            inbound_per_second: 50,
        }
    }
}

impl Limits {
    pub const MAX_OUTBOUND_PER_MINUTE: u32 = 6000;
    pub const MAX_INBOUND_PER_SECOND: u32 = 10_000;
}

/// A webhook signing secret. Several may be current during a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "S: Deserialize<'de>"))]
pub struct WebhookSecret<S> {
    pub id: String,
    pub secret: S,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

impl<S> WebhookSecret<S> {
    /// Still accepted at `now`: no expiry, or an expiry in the future.
    pub fn is_current(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// A tenant's WhatsApp configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "S: Deserialize<'de>"))]
pub struct TenantConfig<S> {
    pub tenant_id: TenantId,
    pub provider: ProviderKind,
    pub primary: Endpoint<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Endpoint<S>>,
    pub webhook_secrets: Vec<WebhookSecret<S>>,
    #[serde(default)]
    pub active_endpoint: EndpointRole,
    pub is_active: bool,
    #[serde(default)]
    pub connection_status: ConnectionStatus,
    /// Whether the health check moves the tenant back to its primary by itself after a
    /// failover (`automatic`, the default) or leaves that to an operator (`manual`).
    #[serde(default)]
    pub failback: FailbackPolicy,
    #[serde(default)]
    pub limits: Limits,
    /// Optimistic-locking version: 1 on create, +1 on every update.
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl<S> TenantConfig<S> {
    /// The endpoint traffic currently goes to (falls back to the primary if the backup
    /// is gone).
    pub fn active(&self) -> &Endpoint<S> {
        match (self.active_endpoint, &self.backup) {
            (EndpointRole::Backup, Some(b)) => b,
            _ => &self.primary,
        }
    }

    /// Every secret slot, in a fixed order, with its purpose.
    pub fn secret_slots(&self) -> Vec<(Purpose, &S)> {
        let mut out = Vec::new();
        if let Some(s) = self.primary.credentials.secret() {
            out.push((Purpose::ServerCredential, s));
        }
        if let Some(s) = self.backup.as_ref().and_then(|b| b.credentials.secret()) {
            out.push((Purpose::ServerCredential, s));
        }
        for w in &self.webhook_secrets {
            out.push((Purpose::WebhookSecret, &w.secret));
        }
        out
    }

    /// Replaces every secret slot, in [`Self::secret_slots`] order, with `values`.
    /// Fails if the number of values differs from the number of slots.
    pub fn with_secrets<T>(self, values: Vec<T>) -> Result<TenantConfig<T>, SlotMismatch> {
        let expected = self.secret_slots().len();
        if values.len() != expected {
            return Err(SlotMismatch {
                expected,
                got: values.len(),
            });
        }
        let mut it = values.into_iter();
        // The count matches, so every `next()` below yields a value.
        let mut take = move || it.next().ok_or(SlotMismatch { expected, got: 0 });
        let map_creds = |c: Credentials<S>,
                         take: &mut dyn FnMut() -> Result<T, SlotMismatch>|
         -> Result<Credentials<T>, SlotMismatch> {
            Ok(match c {
                Credentials::None => Credentials::None,
                Credentials::Basic { username, .. } => Credentials::Basic {
                    username,
                    password: take()?,
                },
                Credentials::ApiKey { .. } => Credentials::ApiKey { key: take()? },
                Credentials::Bearer { .. } => Credentials::Bearer { token: take()? },
            })
        };
        let map_endpoint = |e: Endpoint<S>,
                            take: &mut dyn FnMut() -> Result<T, SlotMismatch>|
         -> Result<Endpoint<T>, SlotMismatch> {
            Ok(Endpoint {
                base_url: e.base_url,
                credentials: map_creds(e.credentials, take)?,
                device_id: e.device_id,
                region: e.region,
                webhook_source_cidrs: e.webhook_source_cidrs,
            })
        };
        let primary = map_endpoint(self.primary, &mut take)?;
        let backup = match self.backup {
            Some(b) => Some(map_endpoint(b, &mut take)?),
            None => None,
        };
        let mut webhook_secrets = Vec::with_capacity(self.webhook_secrets.len());
        for w in self.webhook_secrets {
            webhook_secrets.push(WebhookSecret {
                id: w.id,
                secret: take()?,
                expires_at: w.expires_at,
            });
        }
        Ok(TenantConfig {
            tenant_id: self.tenant_id,
            provider: self.provider,
            primary,
            backup,
            webhook_secrets,
            active_endpoint: self.active_endpoint,
            is_active: self.is_active,
            connection_status: self.connection_status,
            failback: self.failback,
            limits: self.limits,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    /// Mutable access to every secret slot, in [`Self::secret_slots`] order.
    pub fn secret_slots_mut(&mut self) -> Vec<&mut S> {
        let mut out = Vec::new();
        if let Some(s) = self.primary.credentials.secret_mut() {
            out.push(s);
        }
        if let Some(s) = self
            .backup
            .as_mut()
            .and_then(|b| b.credentials.secret_mut())
        {
            out.push(s);
        }
        for w in &mut self.webhook_secrets {
            out.push(&mut w.secret);
        }
        out
    }

    /// Structural validation (everything but the secret values themselves). Every problem
    /// is reported, each naming its field.
    pub fn validate(&self, egress: &EgressPolicy) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        validate_endpoint(&mut errs, "primary", self.provider, &self.primary, egress);
        if let Some(b) = &self.backup {
            validate_endpoint(&mut errs, "backup", self.provider, b, egress);
            if b.base_url == self.primary.base_url && b.device_id == self.primary.device_id {
                errs.push(
                    "backup",
                    "must differ from the primary endpoint (another server or another device)",
                );
            }
        }
        if self.active_endpoint == EndpointRole::Backup && self.backup.is_none() {
            errs.push(
                "activeEndpoint",
                "is 'backup' but no backup endpoint is set",
            );
        }
        if !(1..=Limits::MAX_OUTBOUND_PER_MINUTE).contains(&self.limits.outbound_per_minute) {
            errs.push(
                "limits.outboundPerMinute",
                format!("must be 1 to {}", Limits::MAX_OUTBOUND_PER_MINUTE),
            );
        }
        if !(1..=Limits::MAX_INBOUND_PER_SECOND).contains(&self.limits.inbound_per_second) {
            errs.push(
                "limits.inboundPerSecond",
                format!("must be 1 to {}", Limits::MAX_INBOUND_PER_SECOND),
            );
        }
        if self.webhook_secrets.is_empty() {
            errs.push("webhookSecrets", "at least one webhook secret is required");
        }
        if self.webhook_secrets.len() > MAX_WEBHOOK_SECRETS {
            errs.push(
                "webhookSecrets",
                format!("at most {MAX_WEBHOOK_SECRETS} secrets"),
            );
        }
        for (i, w) in self.webhook_secrets.iter().enumerate() {
            if !is_simple_id(&w.id, 64) {
                errs.push(
                    format!("webhookSecrets[{i}].id"),
                    "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'",
                );
            }
            if self.webhook_secrets[..i].iter().any(|o| o.id == w.id) {
                errs.push(format!("webhookSecrets[{i}].id"), "duplicate id");
            }
        }
        errs.into_result()
    }
}

/// Validates one endpoint on its own (a candidate before it is saved, a registry server):
/// the same checks as [`TenantConfig::validate`] applies to each endpoint. Field names are
/// prefixed with `field` (`"primary"` gives `primary.baseUrl`; `""` gives `baseUrl`).
pub fn validate_endpoint_alone<S>(
    field: &str,
    provider: ProviderKind,
    e: &Endpoint<S>,
    egress: &EgressPolicy,
) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    validate_endpoint(&mut errs, field, provider, e, egress);
    errs.into_result()
}

fn sub_field(field: &str, name: &str) -> String {
    if field.is_empty() {
        name.to_string()
    } else {
        format!("{field}.{name}")
    }
}

fn validate_endpoint<S>(
    errs: &mut ValidationErrors,
    field: &str,
    provider: ProviderKind,
    e: &Endpoint<S>,
    egress: &EgressPolicy,
) {
    match Url::parse(&e.base_url) {
        Err(_) => errs.push(sub_field(field, "baseUrl"), "is not a valid URL"),
        Ok(url) => {
            if let Err(reason) = check_base_url(&url, egress) {
                errs.push(sub_field(field, "baseUrl"), reason);
            }
        }
    }
    let kinds = provider.credential_kinds();
    if !kinds.contains(&e.credentials.kind()) {
        errs.push(
            sub_field(field, "credentials.type"),
            format!(
                "{:?} is not supported by {} servers; use one of: {}",
                e.credentials.kind(),
                provider.as_str(),
                kinds.join(", ")
            ),
        );
    }
    if let Credentials::Basic { username, .. } = &e.credentials
        && (username.is_empty() || username.chars().count() > 128 || username.contains(':'))
    {
        errs.push(
            sub_field(field, "credentials.username"),
            "must be 1-128 characters without ':'",
        );
    }
    if let Some(d) = &e.device_id
        && (d.is_empty()
            || d.len() > 128
            || !d
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@:-".contains(&b)))
    {
        errs.push(
            sub_field(field, "deviceId"),
            "must be 1-128 characters of A-Z, a-z, 0-9 and . _ @ : -",
        );
    }
    if let Some(r) = &e.region
        && (r.is_empty()
            || r.len() > 32
            || !r
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        errs.push(
            sub_field(field, "region"),
            "must be 1-32 characters of a-z, 0-9 and '-'",
        );
    }
}

fn check_base_url(url: &Url, egress: &EgressPolicy) -> Result<(), String> {
    check_base_url_spelling(url.as_str().trim_end_matches('/'))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "scheme {:?} is not allowed; use https (or http)",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; put them in credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    if url.host().is_none() {
        return Err("has no host".into());
    }
    egress.check_url(url).map_err(|e| e.to_string())
}

/// Longest server base URL accepted.
pub const MAX_BASE_URL_LEN: usize = 2048;

/// Characters of a base URL's authority (host and port): RFC 3986's unreserved and
/// sub-delims, `%`, `:` and the brackets of an IPv6 literal. No `@` (credentials), no
/// whitespace, nothing outside ASCII (a name in another script goes in its `xn--` form).
fn authority_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
}

/// Characters of a base URL's path: those of the authority but the brackets, plus `@`
/// and `/`. No `?` or `#` (no query, no fragment).
fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:@/".contains(&b)
}

/// What follows `http://` or `https://` (the scheme in any case), if `raw` starts so.
pub(crate) fn after_http_scheme(raw: &str) -> Option<&str> {
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if lower.starts_with("https://") {
        Some(&raw[8..])
    } else if lower.starts_with("http://") {
        Some(&raw[7..])
    } else {
        None
    }
}

/// The spelling a base URL must have before it is parsed, exactly as the OpenAPI document
/// states it: `^[Hh][Tt][Tt][Pp][Ss]?://` + authority characters + optionally `/` and path
/// characters, at most [`MAX_BASE_URL_LEN`] bytes.
fn check_base_url_spelling(raw: &str) -> Result<(), &'static str> {
    if raw.len() > MAX_BASE_URL_LEN {
        return Err("is longer than 2048 characters");
    }
    let rest = after_http_scheme(raw).ok_or("must start with http:// or https://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err("has no host");
    }
    if !authority.bytes().all(authority_char) {
        return Err(
            "host and port may hold only A-Z a-z 0-9 and - . _ ~ ! $ & ' ( ) * + , ; = % : [ ] (no credentials, no whitespace)",
        );
    }
    if !path.bytes().all(path_char) {
        return Err(
            "path may hold only A-Z a-z 0-9 and - . _ ~ ! $ & ' ( ) * + , ; = % : @ / (no query, no fragment, no whitespace)",
        );
    }
    Ok(())
}

/// Parses and normalises a server base URL: lowercase scheme and host, default port
/// dropped, no trailing slash. Two spellings of one server give one key.
pub fn normalize_base_url(raw: &str) -> Result<String, FieldError> {
    check_base_url_spelling(raw).map_err(|reason| FieldError::new("baseUrl", reason))?;
    let url = Url::parse(raw).map_err(|_| FieldError::new("baseUrl", "is not a valid URL"))?;
    let mut s = url.to_string();
    while s.ends_with('/') {
        s.pop();
    }
    Ok(s)
}

fn is_simple_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Returned by [`TenantConfig::with_secrets`] when the values do not fit the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} secret values, got {got}")]
pub struct SlotMismatch {
    pub expected: usize,
    pub got: usize,
}

/// One invalid field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Every invalid field of one input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError::new(field, reason));
    }

    pub fn extend(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(e: FieldError) -> Self {
        ValidationErrors(vec![e])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::EgressPolicy;
    use time::macros::datetime;

    fn config(base: &str) -> TenantConfig<String> {
        TenantConfig {
            tenant_id: "t1".parse().unwrap(),
            provider: ProviderKind::Gowa,
            primary: Endpoint {
                base_url: base.into(),
                credentials: Credentials::Basic {
                    username: "u".into(),
                    password: "p".into(),
                },
                device_id: Some("dev-1".into()),
                region: Some("eu-west-1".into()),
                webhook_source_cidrs: Vec::new(),
            },
            backup: Some(Endpoint {
                base_url: "https://backup.example.com".into(),
                credentials: Credentials::Basic {
                    username: "u2".into(),
                    password: "k".into(),
                },
                device_id: None,
                region: None,
                webhook_source_cidrs: Vec::new(),
            }),
            webhook_secrets: vec![WebhookSecret {
                id: "s1".into(),
                secret: "w".into(),
                expires_at: None,
            }],
            active_endpoint: EndpointRole::Primary,
            is_active: true,
            connection_status: ConnectionStatus::Unknown,
            failback: Default::default(),
            limits: Limits::default(),
            version: 1,
            created_at: datetime!(2026-01-01 0:00 UTC),
            updated_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    #[test]
    fn tenant_id_rejects_path_characters_and_overlong_ids() {
        assert!("acme-1_B".parse::<TenantId>().is_ok());
        for bad in ["", "-lead", "a/b", "a b", "é", &"x".repeat(65)] {
            let err = bad.parse::<TenantId>().unwrap_err();
            assert_eq!(err.field, "tenantId", "{bad:?}");
        }
    }

    #[test]
    fn unknown_provider_is_named_in_the_error() {
        let err = "waha2".parse::<ProviderKind>().unwrap_err();
        assert_eq!(err.field, "provider");
        assert!(err.reason.contains("waha2"));
    }

    #[test]
    fn valid_config_passes() {
        config("https://wa.example.com")
            .validate(&EgressPolicy::default())
            .unwrap();
    }

    #[test]
    fn every_invalid_field_is_reported_by_name() {
        let mut c = config("ftp://wa.example.com");
        c.primary.device_id = Some("bad device".into());
        c.webhook_secrets.push(c.webhook_secrets[0].clone());
        let errs = c.validate(&EgressPolicy::default()).unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "primary.baseUrl",
                "primary.deviceId",
                "webhookSecrets[1].id"
            ]
        );
    }

    #[test]
    fn gowa_endpoints_take_basic_or_no_credentials_only() {
        let mut c = config("https://wa.example.com");
        c.primary.credentials = Credentials::ApiKey { key: "k".into() };
        c.backup.as_mut().unwrap().credentials = Credentials::Bearer { token: "t".into() };
        let errs = c.validate(&EgressPolicy::default()).unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["primary.credentials.type", "backup.credentials.type"]
        );
        assert!(errs.0[0].reason.contains("none, basic"), "{errs}");
        c.primary.credentials = Credentials::None;
        c.backup.as_mut().unwrap().credentials = Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        c.validate(&EgressPolicy::default()).unwrap();
    }

    #[test]
    fn ssrf_targets_are_refused_as_base_url() {
        for target in [
            "http://127.0.0.1:3000",
            "http://169.254.169.254",
            "http://10.0.0.5",
            "http://[::ffff:127.0.0.1]",
            "http://localhost:3000",
        ] {
            let errs = config(target)
                .validate(&EgressPolicy::default())
                .unwrap_err();
            assert_eq!(errs.0[0].field, "primary.baseUrl", "{target}");
        }
    }

    #[test]
    fn url_with_credentials_or_query_is_refused() {
        for target in ["https://u:p@wa.example.com", "https://wa.example.com/?x=1"] {
            let errs = config(target)
                .validate(&EgressPolicy::default())
                .unwrap_err();
            assert_eq!(errs.0[0].field, "primary.baseUrl", "{target}");
        }
    }

    #[test]
    fn base_urls_are_refused_by_spelling_before_parsing() {
        for bad in [
            " https://wa.example.com",
            "https://wa.example.com ",
            "https://wa.exa\tmple.com",
            "ftp://wa.example.com",
            "https://@wa.example.com",
            "https://u:p@wa.example.com",
            "https://wa.example.com?x",
            "https://wa.example.com/#x",
            "https://wa.example.com\\x",
            "https://wä.example.com",
            "https://",
            "https:///path",
        ] {
            let e = normalize_base_url(bad).unwrap_err();
            assert_eq!(e.field, "baseUrl", "{bad:?}");
        }
        for good in [
            "HTTPS://WA.example.com:8443/gowa/@x",
            "http://127.0.0.1:3000",
            "http://[2606:4700::1111]:80/",
            "https://xn--bcher-kva.example.com",
        ] {
            normalize_base_url(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        assert!(normalize_base_url(&format!("https://a.example/{}", "x".repeat(2048))).is_err());
    }

    #[test]
    fn normalize_base_url_gives_one_key_per_server() {
        assert_eq!(
            normalize_base_url("HTTPS://WA.Example.com:443/").unwrap(),
            "https://wa.example.com"
        );
        assert_eq!(
            normalize_base_url("http://wa.example.com:8080/gowa/").unwrap(),
            "http://wa.example.com:8080/gowa"
        );
    }

    #[test]
    fn secret_slots_round_trip_through_with_secrets() {
        let c = config("https://wa.example.com");
        let values: Vec<String> = c
            .secret_slots()
            .iter()
            .map(|(_, s)| s.to_uppercase())
            .collect();
        let purposes: Vec<Purpose> = c.secret_slots().iter().map(|(p, _)| *p).collect();
        assert_eq!(
            purposes,
            [
                Purpose::ServerCredential,
                Purpose::ServerCredential,
                Purpose::WebhookSecret
            ]
        );
        let mapped = c.with_secrets(values).unwrap();
        assert_eq!(mapped.primary.credentials.secret(), Some(&"P".to_string()));
        assert_eq!(mapped.webhook_secrets[0].secret, "W");
        assert_eq!(
            config("https://wa.example.com")
                .with_secrets(vec![1])
                .unwrap_err(),
            SlotMismatch {
                expected: 3,
                got: 1
            }
        );
    }

    #[test]
    fn webhook_secret_expiry_is_exclusive() {
        let w = WebhookSecret {
            id: "a".into(),
            secret: (),
            expires_at: Some(datetime!(2026-01-01 0:00 UTC)),
        };
        assert!(w.is_current(datetime!(2025-12-31 23:59 UTC)));
        assert!(!w.is_current(datetime!(2026-01-01 0:00 UTC)));
    }
}

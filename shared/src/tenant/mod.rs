//! Tenants: the tenant's WhatsApp configuration (this file: the model), its validation
//! ([`validation`]), the store traits ([`store`]) and their DynamoDB adapter ([`dynamo`]), and
//! the per-instance cache of opened configs ([`cache`]).
//!
//! `TenantConfig<S>` is generic over how secrets are held: [`SealedSecret`] as stored in
//! DynamoDB, [`Secret`] once opened in memory, or anything else a caller needs while it
//! builds a config (the config API uses "new value or keep the sealed one"). The shape is
//! the same everywhere; only the secret slots change.

pub mod cache;
pub mod dynamo;
pub mod store;
pub mod validation;

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::secrets::{Purpose, SealedSecret, Secret};

pub use validation::{
    FieldError, MAX_BASE_URL_LEN, ValidationErrors, normalize_base_url, validate_endpoint_alone,
};

/// A stored configuration: every secret is KMS ciphertext.
pub type SealedConfig = TenantConfig<SealedSecret>;
/// An opened configuration, held only in memory (the cache).
pub type OpenedConfig = TenantConfig<Secret>;

/// Most webhook secrets of its own a tenant may hold at once (current plus rotating ones);
/// the secrets wagate generates to wire devices (`wired-…`) are counted apart.
pub const MAX_WEBHOOK_SECRETS: usize = 5;

/// Id prefix of the webhook secrets wagate generates to wire a device (`wired-primary-…`).
pub const WIRED_SECRET_PREFIX: &str = "wired-";

/// Most wired secrets at once: per endpoint the current one and the one it replaced (kept
/// for its grace).
pub const MAX_WIRED_WEBHOOK_SECRETS: usize = 4;

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
    /// WAHA (devlikeapro/waha): `X-Api-Key`, sessions.
    Waha,
    /// Evolution API v2: `apikey`, instances.
    Evolution,
    /// Meta's WhatsApp Cloud API: bearer token, phone number ids.
    Meta,
}

impl ProviderKind {
    pub const ALL: &'static [ProviderKind] = &[
        ProviderKind::Gowa,
        ProviderKind::Waha,
        ProviderKind::Evolution,
        ProviderKind::Meta,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Gowa => "gowa",
            ProviderKind::Waha => "waha",
            ProviderKind::Evolution => "evolution",
            ProviderKind::Meta => "meta",
        }
    }

    /// The credential kinds (`Credentials::kind`) this kind of server accepts. GOWA's API
    /// has HTTP basic auth only (`--basic-auth`), or none; WAHA an `X-Api-Key` (or none);
    /// Evolution always an `apikey`; Meta a bearer token with the app's secret and the
    /// webhook verify token (`meta`).
    pub fn credential_kinds(self) -> &'static [&'static str] {
        match self {
            ProviderKind::Gowa => &["none", "basic"],
            ProviderKind::Waha => &["none", "apiKey"],
            ProviderKind::Evolution => &["apiKey"],
            ProviderKind::Meta => &["meta"],
        }
    }

    /// What `deviceId` names on this kind of server, and whether it is required: GOWA's
    /// device (optional), WAHA's session (optional: `default`), Evolution's instance name
    /// and Meta's phone number id (both required).
    pub fn device_id_meaning(self) -> (&'static str, bool) {
        match self {
            ProviderKind::Gowa => ("the GOWA device id", false),
            ProviderKind::Waha => ("the WAHA session name (default: default)", false),
            ProviderKind::Evolution => ("the Evolution instance name", true),
            ProviderKind::Meta => ("the Meta phone number id (digits)", true),
        }
    }
}

impl FromStr for ProviderKind {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gowa" => Ok(ProviderKind::Gowa),
            "waha" => Ok(ProviderKind::Waha),
            "evolution" => Ok(ProviderKind::Evolution),
            "meta" => Ok(ProviderKind::Meta),
            _ => Err(FieldError::new(
                "provider",
                format!("unknown provider {s:?}; supported: gowa, waha, evolution, meta"),
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

impl EndpointRole {
    /// As stored and shown: `primary`, `backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointRole::Primary => "primary",
            EndpointRole::Backup => "backup",
        }
    }

    /// The other role.
    pub fn other(self) -> EndpointRole {
        match self {
            EndpointRole::Primary => EndpointRole::Backup,
            EndpointRole::Backup => EndpointRole::Primary,
        }
    }
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

impl ConnectionStatus {
    /// As stored and shown: `connected`, `logged_out`, `endpoint_down`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::LoggedOut => "logged_out",
            ConnectionStatus::EndpointDown => "endpoint_down",
            ConnectionStatus::Unknown => "unknown",
        }
    }
}

/// Whether the health check moves a tenant back to its primary by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailbackPolicy {
    #[default]
    Automatic,
    /// An operator switches back (the health check only fails over).
    Manual,
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
    /// A bearer token.
    Bearer { token: S },
    /// Meta's Cloud API: the access token wagate sends with (server credential), the app's
    /// secret Meta signs webhooks with, and the verify token of the webhook handshake (both
    /// sealed as webhook secrets). The phone number id is the endpoint's `deviceId`.
    #[serde(rename_all = "camelCase")]
    Meta {
        token: S,
        app_secret: S,
        verify_token: S,
    },
}

impl<S> Credentials<S> {
    fn secret_mut(&mut self) -> Option<&mut S> {
        match self {
            Credentials::None => None,
            Credentials::Basic { password, .. } => Some(password),
            Credentials::ApiKey { key } => Some(key),
            Credentials::Bearer { token } => Some(token),
            Credentials::Meta { token, .. } => Some(token),
        }
    }

    /// The secret wagate authenticates to the server with.
    pub fn secret(&self) -> Option<&S> {
        match self {
            Credentials::None => None,
            Credentials::Basic { password, .. } => Some(password),
            Credentials::ApiKey { key } => Some(key),
            Credentials::Bearer { token } => Some(token),
            Credentials::Meta { token, .. } => Some(token),
        }
    }

    /// Every secret of these credentials with its purpose, in a fixed order: the server
    /// credential first, then (Meta) the app secret and the verify token.
    pub fn secrets(&self) -> Vec<(Purpose, &S)> {
        match self {
            Credentials::Meta {
                token,
                app_secret,
                verify_token,
            } => vec![
                (Purpose::ServerCredential, token),
                (Purpose::WebhookSecret, app_secret),
                (Purpose::WebhookSecret, verify_token),
            ],
            other => other
                .secret()
                .map(|s| (Purpose::ServerCredential, s))
                .into_iter()
                .collect(),
        }
    }

    fn secrets_mut(&mut self) -> Vec<&mut S> {
        match self {
            Credentials::Meta {
                token,
                app_secret,
                verify_token,
            } => vec![token, app_secret, verify_token],
            other => other.secret_mut().into_iter().collect(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::None => "none",
            Credentials::Basic { .. } => "basic",
            Credentials::ApiKey { .. } => "apiKey",
            Credentials::Bearer { .. } => "bearer",
            Credentials::Meta { .. } => "meta",
        }
    }

    /// The secret's field name in the API and in errors: `password`, `key` or `token`
    /// (`None` for no credentials).
    pub fn secret_name(&self) -> Option<&'static str> {
        match self {
            Credentials::None => None,
            Credentials::Basic { .. } => Some("password"),
            Credentials::ApiKey { .. } => Some("key"),
            Credentials::Bearer { .. } | Credentials::Meta { .. } => Some("token"),
        }
    }

    /// The same credentials with each secret passed through `f` (in [`Self::secrets`] order).
    pub fn try_map<T, E>(self, mut f: impl FnMut(S) -> Result<T, E>) -> Result<Credentials<T>, E> {
        Ok(match self {
            Credentials::None => Credentials::None,
            Credentials::Basic { username, password } => Credentials::Basic {
                username,
                password: f(password)?,
            },
            Credentials::ApiKey { key } => Credentials::ApiKey { key: f(key)? },
            Credentials::Bearer { token } => Credentials::Bearer { token: f(token)? },
            Credentials::Meta {
                token,
                app_secret,
                verify_token,
            } => Credentials::Meta {
                token: f(token)?,
                app_secret: f(app_secret)?,
                verify_token: f(verify_token)?,
            },
        })
    }

    /// The same credentials with the secret opened by `open`: the one place a stored
    /// credential is opened (the health check's probes and the config API's connection
    /// tests each pass their own `open`: a cache, a kept or new slot). `open` runs once per
    /// secret (Meta's three; at most once for the others), with the purpose it was sealed
    /// for ([`Self::secrets`]).
    pub async fn open<'a, T, E, F, Fut>(&'a self, mut open: F) -> Result<Credentials<T>, E>
    where
        F: FnMut(Purpose, &'a S) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Ok(match self {
            Credentials::None => Credentials::None,
            Credentials::Basic { username, password } => Credentials::Basic {
                username: username.clone(),
                password: open(Purpose::ServerCredential, password).await?,
            },
            Credentials::ApiKey { key } => Credentials::ApiKey {
                key: open(Purpose::ServerCredential, key).await?,
            },
            Credentials::Bearer { token } => Credentials::Bearer {
                token: open(Purpose::ServerCredential, token).await?,
            },
            Credentials::Meta {
                token,
                app_secret,
                verify_token,
            } => Credentials::Meta {
                token: open(Purpose::ServerCredential, token).await?,
                app_secret: open(Purpose::WebhookSecret, app_secret).await?,
                verify_token: open(Purpose::WebhookSecret, verify_token).await?,
            },
        })
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
    /// This endpoint's server kind when it differs from the tenant's `provider` (a GOWA
    /// primary with a Meta backup); `None`: the tenant's. Read it through
    /// [`TenantConfig::kind_of`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderKind>,
    /// Who sets the device's webhook on the server (issue 15): wagate (the default) or the
    /// tenant's own forwarding (`manual`: reported, never changed).
    #[serde(default, skip_serializing_if = "WebhookWiring::is_default")]
    pub webhook_wiring: WebhookWiring,
}

/// Who keeps an endpoint's device webhook pointing at wagate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookWiring {
    /// wagate sets it (with a secret it generates and seals) on every change, and repairs it.
    #[default]
    Wagate,
    /// The tenant runs its own webhook forwarding: wagate reads and reports, never changes it.
    Manual,
}

impl WebhookWiring {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookWiring::Wagate => "wagate",
            WebhookWiring::Manual => "manual",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == WebhookWiring::Wagate
    }
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
    /// The server kind of `e` (one of this tenant's endpoints): its own, else the tenant's.
    pub fn kind_of(&self, e: &Endpoint<S>) -> ProviderKind {
        e.provider.unwrap_or(self.provider)
    }

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
        let mut out = self.primary.credentials.secrets();
        if let Some(b) = &self.backup {
            out.extend(b.credentials.secrets());
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
        let map_endpoint = |e: Endpoint<S>,
                            take: &mut dyn FnMut() -> Result<T, SlotMismatch>|
         -> Result<Endpoint<T>, SlotMismatch> {
            Ok(Endpoint {
                base_url: e.base_url,
                credentials: e.credentials.try_map(|_| take())?,
                device_id: e.device_id,
                region: e.region,
                provider: e.provider,
                webhook_source_cidrs: e.webhook_source_cidrs,
                webhook_wiring: e.webhook_wiring,
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
        let mut out = self.primary.credentials.secrets_mut();
        if let Some(b) = self.backup.as_mut() {
            out.extend(b.credentials.secrets_mut());
        }
        for w in &mut self.webhook_secrets {
            out.push(&mut w.secret);
        }
        out
    }
}

/// Returned by [`TenantConfig::with_secrets`] when the values do not fit the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} secret values, got {got}")]
pub struct SlotMismatch {
    pub expected: usize,
    pub got: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// A valid config with a backup, its secrets in plain text (also the validation tests').
    pub(crate) fn config(base: &str) -> TenantConfig<String> {
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
                provider: None,
                webhook_source_cidrs: Vec::new(),
                webhook_wiring: Default::default(),
            },
            backup: Some(Endpoint {
                base_url: "https://backup.example.com".into(),
                credentials: Credentials::Basic {
                    username: "u2".into(),
                    password: "k".into(),
                },
                device_id: None,
                region: None,
                provider: None,
                webhook_source_cidrs: Vec::new(),
                webhook_wiring: Default::default(),
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

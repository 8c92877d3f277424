//! The API's request and response shapes, and their conversion to and from the domain.
//! Secrets are accepted on write and never returned: a response shows a fingerprint.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wagate::Secret;
use wagate::secrets::SealedSecret;
use wagate::tenant::{
    ConnectionStatus, Credentials, Endpoint, EndpointRole, FailbackPolicy, Limits, ProviderKind,
    SealedConfig, TenantConfig, TenantId, ValidationErrors, WebhookSecret, WebhookWiring,
    normalize_base_url,
};

/// Longest secret accepted.
pub const MAX_SECRET_LEN: usize = 4096;
/// Shortest webhook secret accepted (GOWA's default secret is 6 characters).
pub const MIN_WEBHOOK_SECRET_LEN: usize = 6;

/// Body of create (POST) and replace (PUT).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigInput {
    pub provider: String,
    pub primary: EndpointInput,
    #[serde(default)]
    pub backup: Option<EndpointInput>,
    /// Absent on update: keep the current secrets.
    #[serde(default)]
    pub webhook_secrets: Option<Vec<WebhookSecretInput>>,
    #[serde(default)]
    pub active_endpoint: Option<EndpointRole>,
    #[serde(default)]
    pub is_active: Option<bool>,
    /// `automatic` or `manual`; absent: keep the current policy (`automatic` on create).
    #[serde(default)]
    pub failback: Option<FailbackPolicy>,
    /// Absent: keep the current limits (defaults on create).
    #[serde(default)]
    pub limits: Option<LimitsInput>,
    /// The version being replaced (alternative to If-Match).
    #[serde(default)]
    pub version: Option<u64>,
}

/// Limits as written: a field left out takes its default.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsInput {
    #[serde(default)]
    pub outbound_per_minute: Option<u32>,
    #[serde(default)]
    pub inbound_per_second: Option<u32>,
}

impl From<LimitsInput> for Limits {
    fn from(l: LimitsInput) -> Self {
        let d = Limits::default();
        Limits {
            outbound_per_minute: l.outbound_per_minute.unwrap_or(d.outbound_per_minute),
            inbound_per_second: l.inbound_per_second.unwrap_or(d.inbound_per_second),
        }
    }
}

/// The reason of a secret left out where nothing is saved to keep. Only the stored config
/// decides it (the same body may be fine for another tenant), so the config API answers
/// it 409, not 400 (see [`crate::error::ApiError::from_build`]).
pub const NOTHING_TO_KEEP: &str = "is required";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointInput {
    pub base_url: String,
    /// Absent on update: keep the current credentials.
    #[serde(default)]
    pub credentials: Option<CredentialsInput>,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// CIDRs this server's webhooks may come from; absent or empty means anywhere.
    #[serde(default)]
    pub webhook_source_cidrs: Option<Vec<String>>,
    /// `wagate` (default): wagate sets the device's webhook; `manual`: the tenant's own
    /// forwarding, reported and never changed. Absent on update: keep the current one.
    #[serde(default)]
    pub webhook_wiring: Option<WebhookWiring>,
    /// This endpoint's server kind when it is not the tenant's `provider` (failover across
    /// kinds: a GOWA primary with a Meta backup).
    #[serde(default)]
    pub provider: Option<String>,
}

/// Credentials as written. A secret left out on update keeps the stored one (same type).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum CredentialsInput {
    /// A struct variant so that `deny_unknown_fields` holds for it too.
    None {},
    Basic {
        username: String,
        #[serde(default)]
        password: Option<Secret>,
    },
    ApiKey {
        #[serde(default)]
        key: Option<Secret>,
    },
    Bearer {
        #[serde(default)]
        token: Option<Secret>,
    },
    /// Meta's Cloud API: access token, app secret, webhook verify token.
    #[serde(rename_all = "camelCase")]
    Meta {
        #[serde(default)]
        token: Option<Secret>,
        #[serde(default)]
        app_secret: Option<Secret>,
        #[serde(default)]
        verify_token: Option<Secret>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSecretInput {
    pub id: String,
    /// Absent on update: keep the stored secret of this id.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A secret slot while a config is built: a new plaintext to seal, or a stored one to keep.
#[derive(Debug, Clone)]
pub enum SecretSlot {
    New(Secret),
    Keep(SealedSecret),
}

/// Turns input (plus the stored config on update) into a config to validate and seal.
/// Field errors are collected, each naming its field.
pub fn build_config(
    tenant_id: TenantId,
    input: ConfigInput,
    existing: Option<&SealedConfig>,
    now: OffsetDateTime,
) -> Result<TenantConfig<SecretSlot>, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let provider = match input.provider.parse::<ProviderKind>() {
        Ok(p) => Some(p),
        Err(e) => {
            errs.push(e.field, e.reason);
            None
        }
    };
    let primary = build_endpoint(
        "primary",
        input.primary,
        existing.map(|c| &c.primary),
        provider,
        &mut errs,
    );
    let backup = input.backup.map(|b| {
        // A backup keeps stored credentials only if it is the same server as before.
        let prev = existing
            .and_then(|c| c.backup.as_ref())
            .filter(|p| normalize_base_url(&b.base_url).ok().as_deref() == Some(&p.base_url));
        build_endpoint("backup", b, prev, provider, &mut errs)
    });
    let webhook_secrets = match (input.webhook_secrets, existing) {
        (Some(list), _) => {
            if list.len() > wagate::tenant::MAX_WEBHOOK_SECRETS {
                errs.push(
                    "webhookSecrets",
                    format!("at most {} secrets", wagate::tenant::MAX_WEBHOOK_SECRETS),
                );
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, w) in list.into_iter().enumerate() {
                let field = format!("webhookSecrets[{i}].secret");
                let slot = match w.secret {
                    Some(s) => {
                        check_secret(&field, &s, MIN_WEBHOOK_SECRET_LEN, &mut errs);
                        Some(SecretSlot::New(s))
                    }
                    None => match existing
                        .and_then(|c| c.webhook_secrets.iter().find(|o| o.id == w.id))
                    {
                        Some(o) => Some(SecretSlot::Keep(o.secret.clone())),
                        None => {
                            errs.push(field, NOTHING_TO_KEEP);
                            None
                        }
                    },
                };
                if let Some(secret) = slot {
                    out.push(WebhookSecret {
                        id: w.id,
                        secret,
                        expires_at: w.expires_at,
                    });
                }
            }
            out
        }
        (None, Some(c)) => c
            .webhook_secrets
            .iter()
            .map(|w| WebhookSecret {
                id: w.id.clone(),
                secret: SecretSlot::Keep(w.secret.clone()),
                expires_at: w.expires_at,
            })
            .collect(),
        (None, None) => {
            errs.push("webhookSecrets", "at least one webhook secret is required");
            Vec::new()
        }
    };
    let (Some(provider), Some(primary), true) = (provider, primary, errs.is_empty()) else {
        return Err(errs);
    };
    let backup = match backup {
        Some(Some(b)) => Some(b),
        Some(None) => return Err(errs),
        None => None,
    };
    let has_backup = backup.is_some();
    Ok(TenantConfig {
        tenant_id,
        provider,
        primary,
        backup,
        webhook_secrets,
        // Left out: the current one, unless the backup is gone (then the primary).
        active_endpoint: input
            .active_endpoint
            .or(existing.map(|c| c.active_endpoint).filter(|_| has_backup))
            .unwrap_or_default(),
        is_active: input
            .is_active
            .or(existing.map(|c| c.is_active))
            .unwrap_or(true),
        connection_status: existing
            .map(|c| c.connection_status)
            .unwrap_or(ConnectionStatus::Unknown),
        failback: input
            .failback
            .or(existing.map(|c| c.failback))
            .unwrap_or_default(),
        limits: input
            .limits
            .map(Limits::from)
            .or(existing.map(|c| c.limits))
            .unwrap_or_default(),
        version: existing.map_or(1, |c| c.version + 1),
        created_at: existing.map_or(now, |c| c.created_at),
        updated_at: now,
    })
}

/// `tenant_kind`: the tenant's provider when known; the endpoint's own `provider` wins.
pub(crate) fn build_endpoint(
    field: &str,
    input: EndpointInput,
    prev: Option<&Endpoint<SealedSecret>>,
    tenant_kind: Option<ProviderKind>,
    errs: &mut ValidationErrors,
) -> Option<Endpoint<SecretSlot>> {
    let provider = match input.provider.as_deref().map(str::parse::<ProviderKind>) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            errs.push(format!("{field}.{}", e.field), e.reason);
            None
        }
    };
    let kind = provider.or(tenant_kind);
    let base_url = match normalize_base_url(&input.base_url) {
        Ok(u) => Some(u),
        Err(e) => {
            errs.push(format!("{field}.{}", e.field), e.reason);
            None
        }
    };
    let credentials = match (input.credentials, prev) {
        (None, Some(p)) => Some(keep_credentials(&p.credentials)),
        (None, None) => Some(Credentials::None),
        (Some(c), p) => build_credentials(field, c, p.map(|p| &p.credentials), kind, errs),
    };
    let mut cidrs = Vec::new();
    for (i, c) in input
        .webhook_source_cidrs
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        // One network or address per entry, exactly as written (no spaces, no lists).
        let spelled = !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':' || b == b'/');
        match wagate::egress::EgressPolicy::parse_allowlist(c) {
            Ok(mut nets) if spelled && nets.len() == 1 => cidrs.append(&mut nets),
            _ => errs.push(
                format!("{field}.webhookSourceCidrs[{i}]"),
                "is not a CIDR (e.g. 203.0.113.0/24) or IP address",
            ),
        }
    }
    Some(Endpoint {
        base_url: base_url?,
        credentials: credentials?,
        device_id: input.device_id,
        region: input.region,
        provider,
        webhook_source_cidrs: cidrs,
        webhook_wiring: input
            .webhook_wiring
            .or(prev.map(|p| p.webhook_wiring))
            .unwrap_or_default(),
    })
}

pub(crate) fn keep_credentials(c: &Credentials<SealedSecret>) -> Credentials<SecretSlot> {
    let kept = c
        .clone()
        .try_map(|s| Ok::<_, std::convert::Infallible>(SecretSlot::Keep(s)));
    match kept {
        Ok(k) => k,
        Err(never) => match never {},
    }
}

/// `kind`: the endpoint's server kind when known (its credential types are then the only
/// ones taken); else any type some kind takes.
pub(crate) fn build_credentials(
    field: &str,
    input: CredentialsInput,
    prev: Option<&Credentials<SealedSecret>>,
    kind: Option<ProviderKind>,
    errs: &mut ValidationErrors,
) -> Option<Credentials<SecretSlot>> {
    let mut slot = |name: &str, given: Option<Secret>, kept: Option<&SealedSecret>| {
        let f = format!("{field}.credentials.{name}");
        match (given, kept) {
            (Some(s), _) => {
                check_secret(&f, &s, 1, errs);
                Some(SecretSlot::New(s))
            }
            (None, Some(k)) => Some(SecretSlot::Keep(k.clone())),
            (None, None) => {
                errs.push(f, NOTHING_TO_KEEP);
                None
            }
        }
    };
    // A kind no WhatsApp server wagate supports takes is refused here, before its secret
    // is looked for (the per-provider check is in the config's validation).
    let server_kind = kind;
    let kind = match &input {
        CredentialsInput::None {} => "none",
        CredentialsInput::Basic { .. } => "basic",
        CredentialsInput::ApiKey { .. } => "apiKey",
        CredentialsInput::Bearer { .. } => "bearer",
        CredentialsInput::Meta { .. } => "meta",
    };
    if let Some(k) = server_kind
        && !k.credential_kinds().contains(&kind)
    {
        errs.push(
            format!("{field}.credentials.type"),
            format!(
                "{kind:?} is not supported by {} servers; use one of: {}",
                k.as_str(),
                k.credential_kinds().join(", ")
            ),
        );
        return None;
    }
    if !wagate::tenant::ProviderKind::ALL
        .iter()
        .any(|p| p.credential_kinds().contains(&kind))
    {
        errs.push(
            format!("{field}.credentials.type"),
            format!(
                "{kind:?} is not supported by any server kind; use one of: none, basic, apiKey, meta"
            ),
        );
        return None;
    }
    Some(match input {
        CredentialsInput::None {} => Credentials::None,
        CredentialsInput::Basic { username, password } => {
            let kept = match prev {
                Some(Credentials::Basic { password, .. }) => Some(password),
                _ => None,
            };
            Credentials::Basic {
                username,
                password: slot("password", password, kept)?,
            }
        }
        CredentialsInput::ApiKey { key } => {
            let kept = match prev {
                Some(Credentials::ApiKey { key }) => Some(key),
                _ => None,
            };
            Credentials::ApiKey {
                key: slot("key", key, kept)?,
            }
        }
        CredentialsInput::Bearer { token } => {
            let kept = match prev {
                Some(Credentials::Bearer { token }) => Some(token),
                _ => None,
            };
            Credentials::Bearer {
                token: slot("token", token, kept)?,
            }
        }
        CredentialsInput::Meta {
            token,
            app_secret,
            verify_token,
        } => {
            let kept = match prev {
                Some(Credentials::Meta {
                    token,
                    app_secret,
                    verify_token,
                }) => Some((token, app_secret, verify_token)),
                _ => None,
            };
            // Every slot is looked at, so each missing secret is named.
            let token = slot("token", token, kept.map(|k| k.0));
            let app_secret = slot("appSecret", app_secret, kept.map(|k| k.1));
            let verify_token = slot("verifyToken", verify_token, kept.map(|k| k.2));
            Credentials::Meta {
                token: token?,
                app_secret: app_secret?,
                verify_token: verify_token?,
            }
        }
    })
}

fn check_secret(field: &str, s: &Secret, min: usize, errs: &mut ValidationErrors) {
    let len = s.expose().chars().count();
    if len < min || len > MAX_SECRET_LEN {
        errs.push(
            field,
            format!("must be {min} to {MAX_SECRET_LEN} characters long"),
        );
    }
}

// ---- responses ----

/// A config as the API shows it: fingerprints instead of secrets.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigView {
    pub tenant_id: String,
    pub provider: ProviderKind,
    pub primary: EndpointView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<EndpointView>,
    pub webhook_secrets: Vec<WebhookSecretView>,
    pub active_endpoint: EndpointRole,
    pub is_active: bool,
    pub connection_status: ConnectionStatus,
    /// Whether the health check fails the tenant back to its primary by itself.
    pub failback: FailbackPolicy,
    pub limits: Limits,
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Where this tenant's WhatsApp server should post its webhooks (path on the API).
    pub webhook_path: String,
    /// The same as a full URL: `PUBLIC_WEBHOOK_BASE_URL` (or this API's own URL) plus the
    /// path. Absent only when neither is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// On a create, update or switch: what the change did to each endpoint's device webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiring: Option<Vec<crate::handlers::devices::WiringOutcome>>,
}

impl ConfigView {
    pub fn with_webhook_url(mut self, url: Option<String>) -> Self {
        self.webhook_url = url;
        self
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    pub base_url: String,
    pub credentials: CredentialsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub webhook_source_cidrs: Vec<String>,
    /// Who sets the device's webhook: `wagate` or `manual`.
    #[serde(default)]
    pub webhook_wiring: WebhookWiring,
    /// This endpoint's own server kind, when it is not the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderKind>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsView {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Meta: the app secret's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret_fingerprint: Option<String>,
    /// Meta: the webhook verify token's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token_fingerprint: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSecretView {
    pub id: String,
    pub fingerprint: String,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<&SealedConfig> for ConfigView {
    fn from(c: &SealedConfig) -> Self {
        ConfigView {
            tenant_id: c.tenant_id.to_string(),
            provider: c.provider,
            primary: endpoint_view(&c.primary),
            backup: c.backup.as_ref().map(endpoint_view),
            webhook_secrets: c
                .webhook_secrets
                .iter()
                .map(|w| WebhookSecretView {
                    id: w.id.clone(),
                    fingerprint: w.secret.fingerprint.clone(),
                    expires_at: w.expires_at,
                })
                .collect(),
            active_endpoint: c.active_endpoint,
            is_active: c.is_active,
            connection_status: c.connection_status,
            failback: c.failback,
            limits: c.limits,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
            webhook_path: wagate::runtime::config::webhook_path(&c.tenant_id),
            webhook_url: None,
            wiring: None,
        }
    }
}

fn endpoint_view(e: &Endpoint<SealedSecret>) -> EndpointView {
    EndpointView {
        base_url: e.base_url.clone(),
        credentials: CredentialsView {
            kind: e.credentials.kind().to_string(),
            username: match &e.credentials {
                Credentials::Basic { username, .. } => Some(username.clone()),
                _ => None,
            },
            fingerprint: e.credentials.secret().map(|s| s.fingerprint.clone()),
            app_secret_fingerprint: match &e.credentials {
                Credentials::Meta { app_secret, .. } => Some(app_secret.fingerprint.clone()),
                _ => None,
            },
            verify_token_fingerprint: match &e.credentials {
                Credentials::Meta { verify_token, .. } => Some(verify_token.fingerprint.clone()),
                _ => None,
            },
        },
        device_id: e.device_id.clone(),
        region: e.region.clone(),
        webhook_source_cidrs: e
            .webhook_source_cidrs
            .iter()
            .map(|c| c.to_string())
            .collect(),
        webhook_wiring: e.webhook_wiring,
        provider: e.provider,
    }
}

/// One page of tenants (admin listing).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigPage {
    pub items: Vec<ConfigView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

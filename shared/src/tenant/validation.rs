//! The checks a tenant config passes before it is stored: every problem reported, each
//! naming its field (`primary.baseUrl`, `webhookSecrets[1].id`).

use std::fmt;

use serde::Serialize;
use url::Url;

use super::{
    Credentials, Endpoint, EndpointRole, Limits, MAX_WEBHOOK_SECRETS, ProviderKind, TenantConfig,
};
use crate::egress::EgressPolicy;

impl<S> TenantConfig<S> {
    /// Structural validation (everything but the secret values themselves). Every problem
    /// is reported, each naming its field.
    pub fn validate(&self, egress: &EgressPolicy) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        validate_endpoint(
            &mut errs,
            "primary",
            self.kind_of(&self.primary),
            &self.primary,
            egress,
        );
        if let Some(b) = &self.backup {
            validate_endpoint(&mut errs, "backup", self.kind_of(b), b, egress);
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
    if provider == ProviderKind::Evolution && e.webhook_source_cidrs.is_empty() {
        errs.push(
            sub_field(field, "webhookSourceCidrs"),
            "is required for evolution servers: Evolution signs no webhook body, so wagate \
             takes its webhooks only from the addresses listed here (with its JWT)",
        );
    }
    let (meaning, required) = provider.device_id_meaning();
    match &e.device_id {
        None if required => errs.push(
            sub_field(field, "deviceId"),
            format!("is required for {} servers: {meaning}", provider.as_str()),
        ),
        Some(d)
            if provider == ProviderKind::Meta
                && (d.len() > 32 || !d.bytes().all(|b| b.is_ascii_digit())) =>
        {
            errs.push(
                sub_field(field, "deviceId"),
                format!("must be {meaning}: 1-32 digits"),
            )
        }
        _ => {}
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
    use crate::egress::EgressPolicy;
    use crate::tenant::*;
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
                provider: None,
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
                provider: None,
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
}

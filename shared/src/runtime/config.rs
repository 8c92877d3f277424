//! Function configuration from the environment, read once at cold start.
//!
//! [`Env`] collects every missing or invalid variable, so a misconfigured deployment
//! fails at init with one error that lists them all.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use time::OffsetDateTime;

use crate::egress::{EgressPolicy, HttpTimeouts};

/// 2001-01-01T00:00:00Z in epoch milliseconds.
const EPOCH_MS_2001: i128 = 978_307_200_000;

/// Time left of an invocation whose context says `deadline_ms`. AWS gives the deadline in
/// milliseconds since the epoch; cargo-lambda's emulator (1.9, under `cargo lambda watch`)
/// gives its timeout itself (e.g. 600000). Nothing before 2001 can be a real deadline, so
/// such a value is read as a duration from now.
pub fn invocation_time_left(deadline_ms: u64, now: OffsetDateTime) -> Duration {
    let deadline = i128::from(deadline_ms);
    let remaining_ms = if deadline < EPOCH_MS_2001 {
        deadline
    } else {
        deadline - now.unix_timestamp_nanos() / 1_000_000
    };
    Duration::from_millis(remaining_ms.max(0) as u64)
}

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Settings read from the environment: `read` collects every problem into the [`Env`];
/// `from_env` reads the process environment and reports them all in one error. Each
/// function's `main.rs` starts with `Environment::from_env()?`.
pub trait FromEnv: Sized {
    /// Reads the settings into `env`; `None` when something was missing or invalid (the
    /// problems are in `env`).
    fn read(env: &mut Env) -> Option<Self>;

    /// Reads the process environment.
    fn from_env() -> Result<Self, ConfigError> {
        Env::from_process().settings(Self::read)
    }
}

/// Reads variables and remembers every problem.
pub struct Env {
    lookup: Lookup,
    problems: Vec<String>,
}

impl Env {
    /// The process environment.
    pub fn from_process() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// A fixed map (tests).
    pub fn from_map(map: HashMap<String, String>) -> Self {
        Self::from_lookup(move |k| map.get(k).cloned())
    }

    /// Fixed `(name, value)` pairs (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn from_lookup(f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Box::new(f),
            problems: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A required variable.
    pub fn required(&mut self, name: &str) -> Option<String> {
        let v = self.get(name);
        if v.is_none() {
            self.problems.push(format!("{name} is missing"));
        }
        v
    }

    /// An optional variable.
    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.get(name)
    }

    /// An optional variable parsed with `FromStr`, or `default` when unset.
    pub fn parse_or<T: FromStr>(&mut self, name: &str, default: T, expected: &str) -> Option<T> {
        match self.get(name) {
            None => Some(default),
            Some(raw) => match raw.trim().parse::<T>() {
                Ok(v) => Some(v),
                Err(_) => {
                    self.problems
                        .push(format!("{name}={raw:?} is invalid: expected {expected}"));
                    None
                }
            },
        }
    }

    /// Adds a problem found by the caller's own check.
    pub fn problem(&mut self, text: impl Into<String>) {
        self.problems.push(text.into());
    }

    /// Reads a function's settings with `read` and [`Self::finish`]es: the settings, or every
    /// missing and invalid variable in one error (what [`FromEnv::from_env`] does with the
    /// process environment).
    pub fn settings<T>(
        mut self,
        read: impl FnOnce(&mut Env) -> Option<T>,
    ) -> Result<T, ConfigError> {
        let value = read(&mut self);
        self.finish()?;
        value.ok_or_else(|| ConfigError(vec!["invalid configuration".into()]))
    }

    /// `Ok` when nothing was missing or invalid; otherwise every problem at once.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(self.problems))
        }
    }
}

/// Every missing or invalid variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0.join("; "))
    }
}

impl std::error::Error for ConfigError {}

/// Settings every function shares.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// `TENANTS_TABLE`: DynamoDB table of tenant configs.
    pub tenants_table: String,
    /// `KMS_KEY_ID`: key id, ARN or alias sealing tenant secrets.
    pub kms_key_id: String,
    /// `CONFIG_CACHE_TTL_SECS` (default 60): how long an opened config is served from memory.
    pub cache_ttl: Duration,
    /// `WAGATE_EGRESS_ALLOW_CIDRS` (default empty) plus `AWS_LAMBDA_RUNTIME_API`.
    pub egress: EgressPolicy,
    /// `HTTP_CONNECT_TIMEOUT_MS` (default 3000), `HTTP_REQUEST_TIMEOUT_MS` (default 15000).
    pub http: HttpTimeouts,
}

impl AppConfig {
    /// Reads the shared settings into `env`, which collects problems; a function with
    /// settings of its own reads them from the same `env` and calls `finish` once.
    pub fn read(env: &mut Env) -> Option<Self> {
        let tenants_table = env.required("TENANTS_TABLE");
        let kms_key_id = env.required("KMS_KEY_ID");
        let ttl = env.parse_or::<u64>("CONFIG_CACHE_TTL_SECS", 60, "whole seconds");
        let connect = env.parse_or::<u64>("HTTP_CONNECT_TIMEOUT_MS", 3000, "milliseconds");
        let request = env.parse_or::<u64>("HTTP_REQUEST_TIMEOUT_MS", 15000, "milliseconds");
        let allow = match env.optional("WAGATE_EGRESS_ALLOW_CIDRS") {
            None => Some(Vec::new()),
            Some(raw) => match EgressPolicy::parse_allowlist(&raw) {
                Ok(v) => Some(v),
                Err(e) => {
                    env.problem(format!("WAGATE_EGRESS_ALLOW_CIDRS is invalid: {e}"));
                    None
                }
            },
        };
        let runtime_api = env
            .optional("AWS_LAMBDA_RUNTIME_API")
            .and_then(|v| EgressPolicy::parse_runtime_api(&v));
        Some(Self {
            tenants_table: tenants_table?,
            kms_key_id: kms_key_id?,
            cache_ttl: Duration::from_secs(ttl?),
            egress: EgressPolicy::new(allow?).with_runtime_api(runtime_api),
            http: HttpTimeouts {
                connect: Duration::from_millis(connect?),
                request: Duration::from_millis(request?),
            },
        })
    }
}

/// The webhook ingress's route for a tenant, relative to the API's base:
/// `/webhooks/whatsapp/{tenantId}`.
pub fn webhook_path(tenant: &crate::TenantId) -> String {
    format!("/webhooks/whatsapp/{tenant}")
}

/// `PUBLIC_WEBHOOK_BASE_URL` (stack parameter `PublicWebhookBaseUrl`): the public base URL
/// tenants' WhatsApp servers reach the webhook ingress at; a tenant's webhook URL is this base
/// plus [`webhook_path`]. Unset (the default), it is the HTTP API's own URL: the origin the
/// config API is being called at. The one reading of the setting: the config API shows each
/// tenant's webhook URL with it, and wiring a device's webhook uses the same URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicWebhookBase {
    /// Absolute http(s) URL without a trailing slash, query or fragment.
    configured: Option<String>,
}

impl PublicWebhookBase {
    /// The variable's name.
    pub const VAR: &'static str = "PUBLIC_WEBHOOK_BASE_URL";

    /// Reads the variable into `env` (an invalid value is one of its problems).
    pub fn read(env: &mut Env) -> Option<Self> {
        match env.optional(Self::VAR) {
            None => Some(Self::default()),
            Some(raw) => match Self::parse(&raw) {
                Ok(v) => Some(v),
                Err(e) => {
                    // Not the value: it may hold a credential.
                    env.problem(format!("{} is invalid: {e}", Self::VAR));
                    None
                }
            },
        }
    }

    /// A configured base: an absolute `http`/`https` URL with a host and no user info, query
    /// or fragment (a path prefix is kept: `http://127.0.0.1:9000/lambda-url/webhook-ingress`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim().trim_end_matches('/');
        let url = url::Url::parse(raw).map_err(|e| format!("not an absolute URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("expected an http or https URL".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("expected a URL with a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a URL with credentials would be shown to every tenant".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("expected no query or fragment".into());
        }
        Ok(Self {
            configured: Some(raw.to_string()),
        })
    }

    /// The configured base, if any.
    pub fn configured(&self) -> Option<&str> {
        self.configured.as_deref()
    }

    /// The tenant's full webhook URL: the configured base, else `api_origin` (the HTTP API's
    /// own URL, e.g. `https://abc123.execute-api.eu-west-1.amazonaws.com`), plus the route.
    /// `None` when neither is known.
    pub fn webhook_url(
        &self,
        tenant: &crate::TenantId,
        api_origin: Option<&str>,
    ) -> Option<String> {
        let base = self
            .configured
            .as_deref()
            .or(api_origin)?
            .trim_end_matches('/');
        Some(format!("{base}{}", webhook_path(tenant)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_webhook_base_is_the_configured_url_or_the_apis_own() {
        let acme: crate::TenantId = "acme".parse().unwrap();
        let unset = PublicWebhookBase::read(&mut env(&[])).unwrap();
        assert_eq!(unset.configured(), None);
        assert_eq!(
            unset.webhook_url(
                &acme,
                Some("https://abc.execute-api.eu-west-1.amazonaws.com")
            ),
            Some("https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/whatsapp/acme".into())
        );
        assert_eq!(unset.webhook_url(&acme, None), None);
        let local = PublicWebhookBase::read(&mut env(&[(
            PublicWebhookBase::VAR,
            "http://127.0.0.1:9000/lambda-url/webhook-ingress/",
        )]))
        .unwrap();
        assert_eq!(
            local.webhook_url(&acme, Some("https://ignored.example")),
            Some("http://127.0.0.1:9000/lambda-url/webhook-ingress/webhooks/whatsapp/acme".into())
        );
    }

    #[test]
    fn an_invalid_public_webhook_base_is_a_configuration_problem() {
        for bad in [
            "hooks.example.com",
            "ftp://hooks.example.com",
            "https://user:pw@hooks.example.com",
            "https://hooks.example.com/?x=1",
            "https://hooks.example.com/#top",
        ] {
            let mut e = env(&[(PublicWebhookBase::VAR, bad)]);
            assert!(PublicWebhookBase::read(&mut e).is_none(), "{bad}");
            let err = e.finish().unwrap_err().to_string();
            assert!(err.contains("PUBLIC_WEBHOOK_BASE_URL"), "{err}");
            assert!(!err.contains("pw"), "the value is not echoed: {err}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn lists_every_missing_and_invalid_variable_in_one_error() {
        let mut e = env(&[
            ("CONFIG_CACHE_TTL_SECS", "soon"),
            ("WAGATE_EGRESS_ALLOW_CIDRS", "127.0.0.1/40"),
        ]);
        assert!(AppConfig::read(&mut e).is_none());
        let err = e.finish().unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
        let text = err.to_string();
        for needle in [
            "TENANTS_TABLE is missing",
            "KMS_KEY_ID is missing",
            "CONFIG_CACHE_TTL_SECS=\"soon\"",
            "WAGATE_EGRESS_ALLOW_CIDRS",
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
    }

    #[test]
    fn defaults_apply_when_optional_variables_are_unset() {
        let mut e = env(&[("TENANTS_TABLE", "t"), ("KMS_KEY_ID", "k")]);
        let cfg = AppConfig::read(&mut e).unwrap();
        e.finish().unwrap();
        assert_eq!(cfg.cache_ttl, Duration::from_secs(60));
        assert_eq!(cfg.http, HttpTimeouts::default());
        assert!(cfg.egress.allowlist().is_empty());
    }

    #[test]
    fn blank_values_count_as_missing() {
        let mut e = env(&[("TENANTS_TABLE", "  "), ("KMS_KEY_ID", "k")]);
        AppConfig::read(&mut e);
        assert_eq!(e.finish().unwrap_err().0, ["TENANTS_TABLE is missing"]);
    }
}

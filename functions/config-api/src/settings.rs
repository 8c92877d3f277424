//! The config API's settings, read once at cold start from the environment: the shared ones
//! ([`AppConfig`]), its tables, the public webhook base, and how callers' tokens are
//! verified. Every missing or invalid variable is reported in one error.

use wagate::runtime::config::{AppConfig, Env, FromEnv, PublicWebhookBase};

use crate::auth::{AuthConfig, KeySource};
use crate::store::Tables;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `TENANTS_TABLE`, `KMS_KEY_ID`, the egress policy and HTTP timeouts.
    pub app: AppConfig,
    /// `AUDIT_TABLE`, `ENDPOINTS_TABLE`, `HEALTH_HISTORY_TABLE`, `MESSAGES_TABLE`,
    /// `SERVERS_TABLE`, `MIGRATIONS_TABLE` (and `TENANTS_TABLE`).
    pub tables: Tables,
    /// `PUBLIC_WEBHOOK_BASE_URL`.
    pub webhook_base: PublicWebhookBase,
    /// `JWT_ISSUER`, `JWT_AUDIENCE`, and one of `JWT_JWKS` (a JWKS document) or
    /// `JWT_JWKS_URL`.
    pub auth: AuthConfig,
}

impl FromEnv for Settings {
    /// Reads the settings into `env`, which collects every problem.
    fn read(env: &mut Env) -> Option<Self> {
        let app = AppConfig::read(env);
        let audit = env.required("AUDIT_TABLE");
        let endpoints = env.required("ENDPOINTS_TABLE");
        let history = env.required("HEALTH_HISTORY_TABLE");
        let messages = env.required("MESSAGES_TABLE");
        let servers = env.required("SERVERS_TABLE");
        let jobs = env.required("MIGRATIONS_TABLE");
        let webhook_base = PublicWebhookBase::read(env);
        let issuer = env.required("JWT_ISSUER");
        let audience = env.required("JWT_AUDIENCE");
        let keys = match (env.optional("JWT_JWKS"), env.optional("JWT_JWKS_URL")) {
            (Some(json), None) => Some(KeySource::Inline(json)),
            (None, Some(url)) => Some(KeySource::Url(url)),
            (Some(_), Some(_)) => {
                env.problem("set only one of JWT_JWKS and JWT_JWKS_URL");
                None
            }
            (None, None) => {
                env.problem("JWT_JWKS or JWT_JWKS_URL is missing");
                None
            }
        };
        let app = app?;
        Some(Settings {
            tables: Tables {
                tenants: app.tenants_table.clone(),
                audit: audit?,
                endpoints: endpoints?,
                history: history?,
                messages: messages?,
                servers: servers?,
                jobs: jobs?,
            },
            app,
            webhook_base: webhook_base?,
            auth: AuthConfig {
                issuer: issuer?,
                audience: audience?,
                keys: keys?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    const ALL: &[(&str, &str)] = &[
        ("TENANTS_TABLE", "t"),
        ("KMS_KEY_ID", "k"),
        ("AUDIT_TABLE", "a"),
        ("ENDPOINTS_TABLE", "e"),
        ("HEALTH_HISTORY_TABLE", "h"),
        ("MESSAGES_TABLE", "m"),
        ("SERVERS_TABLE", "s"),
        ("MIGRATIONS_TABLE", "j"),
        ("JWT_ISSUER", "https://issuer.example"),
        ("JWT_AUDIENCE", "wagate-config-api"),
    ];

    #[test]
    fn reads_every_table_and_the_key_source() {
        let mut pairs = ALL.to_vec();
        pairs.push(("JWT_JWKS_URL", "https://issuer.example/jwks.json"));
        let s = env(&pairs).settings(Settings::read).unwrap();
        assert_eq!(
            s.tables,
            Tables {
                tenants: "t".into(),
                audit: "a".into(),
                endpoints: "e".into(),
                history: "h".into(),
                messages: "m".into(),
                servers: "s".into(),
                jobs: "j".into(),
            }
        );
        assert!(
            matches!(&s.auth.keys, KeySource::Url(u) if u == "https://issuer.example/jwks.json")
        );
        assert_eq!(s.auth.audience, "wagate-config-api");
        assert_eq!(s.webhook_base, PublicWebhookBase::default());
        let mut inline = ALL.to_vec();
        inline.push(("JWT_JWKS", r#"{"keys":[]}"#));
        let s = env(&inline).settings(Settings::read).unwrap();
        assert!(matches!(s.auth.keys, KeySource::Inline(_)));
    }

    #[test]
    fn lists_every_problem_including_the_key_source_in_one_error() {
        let err = env(&[]).settings(Settings::read).unwrap_err().to_string();
        for needle in [
            "TENANTS_TABLE is missing",
            "AUDIT_TABLE is missing",
            "MIGRATIONS_TABLE is missing",
            "JWT_ISSUER is missing",
            "JWT_JWKS or JWT_JWKS_URL is missing",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
        let mut both = ALL.to_vec();
        both.extend([("JWT_JWKS", "{}"), ("JWT_JWKS_URL", "https://x.example/j")]);
        let err = env(&both).settings(Settings::read).unwrap_err().to_string();
        assert!(
            err.contains("set only one of JWT_JWKS and JWT_JWKS_URL"),
            "{err}"
        );
        let mut bad_base = ALL.to_vec();
        bad_base.extend([
            ("JWT_JWKS", "{}"),
            ("PUBLIC_WEBHOOK_BASE_URL", "ftp://user:pw@hooks.example"),
        ]);
        let err = env(&bad_base)
            .settings(Settings::read)
            .unwrap_err()
            .to_string();
        assert!(err.contains("PUBLIC_WEBHOOK_BASE_URL"), "{err}");
        assert!(!err.contains("pw@"), "the value is not echoed: {err}");
    }
}

//! What the sender reads from its environment, once at cold start: the shared settings
//! ([`AppConfig`]), its tables, and its own tuning ([`Settings`]). Every missing or invalid
//! variable is reported in one error.

use std::time::Duration;

use wagate::outbound::routing::BreakerSettings;
use wagate::runtime::config::{AppConfig, Env, FromEnv};

use crate::Settings;

/// Everything `main.rs` wires the sender from.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `TENANTS_TABLE`, `KMS_KEY_ID`, the cache TTL, the egress policy and HTTP timeouts.
    pub app: AppConfig,
    /// `MESSAGES_TABLE`: delivery records.
    pub messages_table: String,
    /// `RATE_LIMITS_TABLE`: the tenants' rate windows.
    pub rate_table: String,
    /// `OUTBOUND_MAX_RECEIVE_COUNT` (default 5), `BREAKER_FAILURE_THRESHOLD`,
    /// `BREAKER_COOL_DOWN_SECS`, `MESSAGE_RETENTION_DAYS` (default 15),
    /// `TIMELOCK_BACKOFF_SECS` (default 60: how long a tenant WhatsApp rate-limited without a
    /// `Retry-After` is left alone); the send reserve is the HTTP request timeout plus 2 s.
    pub settings: Settings,
}

impl FromEnv for Environment {
    /// Reads the environment into `env`, which collects every problem.
    fn read(env: &mut Env) -> Option<Self> {
        let app = AppConfig::read(env);
        let messages_table = env.required("MESSAGES_TABLE");
        let rate_table = env.required("RATE_LIMITS_TABLE");
        let defaults = Settings::default();
        let max_receive_count = env.parse_or::<u32>(
            "OUTBOUND_MAX_RECEIVE_COUNT",
            defaults.max_receive_count,
            "a whole number",
        );
        let threshold = env.parse_or::<u32>(
            "BREAKER_FAILURE_THRESHOLD",
            defaults.breaker.failure_threshold,
            "a whole number",
        );
        let cool_down = env.parse_or::<u64>(
            "BREAKER_COOL_DOWN_SECS",
            defaults.breaker.cool_down.as_secs(),
            "whole seconds",
        );
        let retention_days = env.parse_or::<u64>("MESSAGE_RETENTION_DAYS", 15, "whole days");
        let timelock = env.parse_or::<u64>(
            "TIMELOCK_BACKOFF_SECS",
            defaults.timelock_backoff.as_secs(),
            "whole seconds",
        );
        let app = app?;
        let settings = Settings {
            max_receive_count: max_receive_count?,
            breaker: BreakerSettings {
                failure_threshold: threshold?.max(1),
                cool_down: Duration::from_secs(cool_down?),
            },
            retention: Duration::from_secs(retention_days?.saturating_mul(24 * 3600)),
            // One send (the HTTP timeout) plus its writes.
            send_reserve: app.http.request + Duration::from_secs(2),
            timelock_backoff: Duration::from_secs(timelock?),
            ..defaults
        };
        Some(Environment {
            messages_table: messages_table?,
            rate_table: rate_table?,
            app,
            settings,
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
        ("MESSAGES_TABLE", "m"),
        ("RATE_LIMITS_TABLE", "r"),
    ];

    #[test]
    fn defaults_and_tables() {
        let e = env(ALL).settings(Environment::read).unwrap();
        assert_eq!(
            (e.messages_table.as_str(), e.rate_table.as_str()),
            ("m", "r")
        );
        let d = Settings::default();
        assert_eq!(e.settings.max_receive_count, 5);
        assert_eq!(
            e.settings.breaker.failure_threshold,
            d.breaker.failure_threshold
        );
        assert_eq!(e.settings.breaker.cool_down, d.breaker.cool_down);
        assert_eq!(e.settings.retention, Duration::from_secs(15 * 24 * 3600));
        assert_eq!(
            e.settings.send_reserve,
            e.app.http.request + Duration::from_secs(2)
        );
    }

    #[test]
    fn tuning_is_read_and_a_zero_threshold_is_one() {
        let mut pairs = ALL.to_vec();
        pairs.extend([
            ("OUTBOUND_MAX_RECEIVE_COUNT", "9"),
            ("BREAKER_FAILURE_THRESHOLD", "0"),
            ("BREAKER_COOL_DOWN_SECS", "45"),
            ("MESSAGE_RETENTION_DAYS", "2"),
            ("TIMELOCK_BACKOFF_SECS", "3"),
        ]);
        let e = env(&pairs).settings(Environment::read).unwrap();
        assert_eq!(e.settings.max_receive_count, 9);
        assert_eq!(e.settings.breaker.failure_threshold, 1);
        assert_eq!(e.settings.breaker.cool_down, Duration::from_secs(45));
        assert_eq!(e.settings.retention, Duration::from_secs(2 * 24 * 3600));
        assert_eq!(e.settings.timelock_backoff, Duration::from_secs(3));
    }

    #[test]
    fn every_problem_in_one_error() {
        let err = env(&[("BREAKER_COOL_DOWN_SECS", "soon")])
            .settings(Environment::read)
            .unwrap_err()
            .to_string();
        for needle in [
            "TENANTS_TABLE is missing",
            "MESSAGES_TABLE is missing",
            "RATE_LIMITS_TABLE is missing",
            "BREAKER_COOL_DOWN_SECS",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }
}

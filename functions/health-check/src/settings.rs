//! What the health check reads from its environment, once at cold start: the shared
//! settings ([`AppConfig`]), its tables, and its own tuning ([`Settings`]). Every missing or
//! invalid variable is reported in one error.

use std::time::Duration;

use wagate::health::Hysteresis;
use wagate::runtime::config::{AppConfig, Env, FromEnv, PublicWebhookBase};

/// Everything `main.rs` wires the health check from.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `TENANTS_TABLE`, `KMS_KEY_ID`, the egress policy and HTTP timeouts.
    pub app: AppConfig,
    /// `ENDPOINTS_TABLE`: one health record per server.
    pub endpoints_table: String,
    /// `AUDIT_TABLE`: failover and failback records.
    pub audit_table: String,
    /// `HEALTH_HISTORY_TABLE`: one point per server and run (kept 24 h).
    pub history_table: String,
    pub settings: Settings,
    /// `PUBLIC_WEBHOOK_BASE_URL` (optional): with it, an automatic switch to an endpoint
    /// wagate wired waits until its device webhook reads back as wired.
    pub webhook_base: PublicWebhookBase,
    /// `MESSAGES_TABLE` (optional): with it, the "connected but silent" check reads the
    /// delivery records of tenants with no event in the window.
    pub messages_table: Option<String>,
}

impl FromEnv for Environment {
    /// Reads the environment into `env`, which collects every problem.
    fn read(env: &mut Env) -> Option<Self> {
        let app = AppConfig::read(env);
        let endpoints_table = env.required("ENDPOINTS_TABLE");
        let audit_table = env.required("AUDIT_TABLE");
        let history_table = env.required("HEALTH_HISTORY_TABLE");
        let settings = Settings::read(env);
        let webhook_base = PublicWebhookBase::read(env);
        let messages_table = env.optional("MESSAGES_TABLE");
        Some(Environment {
            messages_table,
            app: app?,
            endpoints_table: endpoints_table?,
            audit_table: audit_table?,
            history_table: history_table?,
            settings: settings?,
            webhook_base: webhook_base?,
        })
    }
}

/// The function's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `HEALTH_FAILOVER_AFTER` (N, default 3) and `HEALTH_FAILBACK_AFTER` (M, default 5).
    pub hysteresis: Hysteresis,
    /// `HEALTH_PROBE_TIMEOUT_MS` (default 2000): bound of each probe call.
    pub probe_timeout: Duration,
    /// `HEALTH_PROBE_CONCURRENCY` (default 50): servers probed at once.
    pub concurrency: usize,
    /// `HEALTH_WRITE_CONCURRENCY` (default 25): tenant writes at once.
    pub write_concurrency: usize,
    /// Items per listing page (`Scan` `Limit`, at most 1,000; DynamoDB also ends a page at
    /// 1 MB read). Each page's servers are probed while the next page is read, so pages
    /// smaller than the tenant count let listing and probing overlap.
    pub page_size: u32,
    /// How long an endpoint record outlives its last probe (TTL).
    pub endpoint_ttl: Duration,
    /// Time kept after the probe phase for the writes.
    pub write_reserve: Duration,
    /// Re-reads after a version conflict before giving up on a tenant for this run.
    pub conflict_retries: u32,
    /// How long an opened server credential is reused by later runs of a warm instance
    /// (`Duration::ZERO`: opened every run).
    pub credential_ttl: Duration,
    /// `HEALTH_SILENT_WINDOW_MINUTES` (default 30, 5 to 1440): a tenant whose connected
    /// device had sends accepted and nothing back (no receipt, no inbound event) over this
    /// window is flagged "connected but silent".
    pub silent_window: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            hysteresis: Hysteresis::default(),
            probe_timeout: Duration::from_millis(2000),
            concurrency: 50,
            write_concurrency: 25,
            page_size: 100,
            endpoint_ttl: Duration::from_secs(7 * 24 * 3600),
            write_reserve: Duration::from_secs(15),
            conflict_retries: 3,
            credential_ttl: Duration::from_secs(15 * 60),
            silent_window: wagate::health::silence::DEFAULT_WINDOW,
        }
    }
}

impl Settings {
    /// Reads the function's own variables into `env` (which collects every problem).
    pub fn read(env: &mut Env) -> Option<Settings> {
        let d = Settings::default();
        let n = env.parse_or::<u32>(
            "HEALTH_FAILOVER_AFTER",
            d.hysteresis.failover_after,
            "a whole number of runs",
        );
        let m = env.parse_or::<u32>(
            "HEALTH_FAILBACK_AFTER",
            d.hysteresis.failback_after,
            "a whole number of runs",
        );
        let timeout = env.parse_or::<u64>(
            "HEALTH_PROBE_TIMEOUT_MS",
            d.probe_timeout.as_millis() as u64,
            "milliseconds",
        );
        let conc =
            env.parse_or::<usize>("HEALTH_PROBE_CONCURRENCY", d.concurrency, "a whole number");
        let wconc = env.parse_or::<usize>(
            "HEALTH_WRITE_CONCURRENCY",
            d.write_concurrency,
            "a whole number",
        );
        let silent = env.parse_or::<u64>(
            "HEALTH_SILENT_WINDOW_MINUTES",
            d.silent_window.as_secs() / 60,
            "a whole number of minutes",
        );
        let (n, m, timeout, conc, wconc, silent) = (n?, m?, timeout?, conc?, wconc?, silent?);
        let (lo, hi) = (
            wagate::health::silence::MIN_WINDOW_MINUTES,
            wagate::health::silence::MAX_WINDOW_MINUTES,
        );
        if !(lo..=hi).contains(&silent) {
            env.problem(format!(
                "HEALTH_SILENT_WINDOW_MINUTES must be between {lo} and {hi} minutes (got {silent})"
            ));
            return None;
        }
        for (name, v) in [
            ("HEALTH_FAILOVER_AFTER", n as u64),
            ("HEALTH_FAILBACK_AFTER", m as u64),
            ("HEALTH_PROBE_TIMEOUT_MS", timeout),
            ("HEALTH_PROBE_CONCURRENCY", conc as u64),
            ("HEALTH_WRITE_CONCURRENCY", wconc as u64),
        ] {
            if v == 0 {
                env.problem(format!("{name} must be at least 1"));
                return None;
            }
        }
        Some(Settings {
            hysteresis: Hysteresis {
                failover_after: n,
                failback_after: m,
            },
            probe_timeout: Duration::from_millis(timeout),
            concurrency: conc,
            write_concurrency: wconc,
            silent_window: Duration::from_secs(silent * 60),
            ..d
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
        ("ENDPOINTS_TABLE", "e"),
        ("AUDIT_TABLE", "a"),
        ("HEALTH_HISTORY_TABLE", "h"),
    ];

    #[test]
    fn tables_and_defaults() {
        let e = env(ALL).settings(Environment::read).unwrap();
        assert_eq!(
            (
                e.endpoints_table.as_str(),
                e.audit_table.as_str(),
                e.history_table.as_str()
            ),
            ("e", "a", "h")
        );
        assert_eq!(e.settings, Settings::default());
    }

    #[test]
    fn tuning_is_read() {
        let mut pairs = ALL.to_vec();
        pairs.extend([
            ("HEALTH_FAILOVER_AFTER", "2"),
            ("HEALTH_FAILBACK_AFTER", "7"),
            ("HEALTH_PROBE_TIMEOUT_MS", "750"),
            ("HEALTH_PROBE_CONCURRENCY", "8"),
            ("HEALTH_WRITE_CONCURRENCY", "4"),
        ]);
        let s = env(&pairs).settings(Environment::read).unwrap().settings;
        assert_eq!(s.hysteresis.failover_after, 2);
        assert_eq!(s.hysteresis.failback_after, 7);
        assert_eq!(s.probe_timeout, Duration::from_millis(750));
        assert_eq!((s.concurrency, s.write_concurrency), (8, 4));
    }

    #[test]
    fn every_problem_in_one_error_and_zero_is_refused() {
        let err = env(&[("HEALTH_PROBE_TIMEOUT_MS", "fast")])
            .settings(Environment::read)
            .unwrap_err()
            .to_string();
        for needle in [
            "TENANTS_TABLE is missing",
            "ENDPOINTS_TABLE is missing",
            "HEALTH_HISTORY_TABLE is missing",
            "HEALTH_PROBE_TIMEOUT_MS",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
        let mut zero = ALL.to_vec();
        zero.push(("HEALTH_FAILOVER_AFTER", "0"));
        let err = env(&zero)
            .settings(Environment::read)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HEALTH_FAILOVER_AFTER must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn settings_default_to_three_and_five_runs() {
        let mut e = env(&[]);
        let s = Settings::read(&mut e).unwrap();
        e.finish().unwrap();
        assert_eq!(s.hysteresis, Hysteresis::default());
        assert_eq!(s.probe_timeout, Duration::from_secs(2));
    }

    #[test]
    fn settings_report_every_invalid_variable() {
        let mut e = env(&[
            ("HEALTH_FAILOVER_AFTER", "three"),
            ("HEALTH_PROBE_TIMEOUT_MS", "-1"),
        ]);
        assert!(Settings::read(&mut e).is_none());
        let err = e.finish().unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn the_silent_window_defaults_to_30_minutes_and_out_of_range_is_refused() {
        let mut e = env(&[("HEALTH_SILENT_WINDOW_MINUTES", "45")]);
        assert_eq!(
            Settings::read(&mut e).unwrap().silent_window,
            Duration::from_secs(45 * 60)
        );
        assert_eq!(
            Settings::default().silent_window,
            Duration::from_secs(30 * 60)
        );
        for bad in ["0", "4", "1441", "-3", "half an hour"] {
            let mut pairs = ALL.to_vec();
            pairs.push(("HEALTH_SILENT_WINDOW_MINUTES", bad));
            let err = env(&pairs)
                .settings(Environment::read)
                .unwrap_err()
                .to_string();
            assert!(err.contains("HEALTH_SILENT_WINDOW_MINUTES"), "{bad}: {err}");
        }
        let mut pairs = ALL.to_vec();
        pairs.push(("HEALTH_SILENT_WINDOW_MINUTES", "1441"));
        let err = env(&pairs)
            .settings(Environment::read)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("between 5 and 1440 minutes (got 1441)"),
            "{err}"
        );
    }

    #[test]
    fn zero_thresholds_are_refused() {
        let mut e = env(&[("HEALTH_FAILOVER_AFTER", "0")]);
        assert!(Settings::read(&mut e).is_none());
        assert!(
            e.finish()
                .unwrap_err()
                .to_string()
                .contains("HEALTH_FAILOVER_AFTER")
        );
    }
}

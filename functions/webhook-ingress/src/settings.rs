//! What the ingress reads from its environment, once at cold start: the shared settings
//! ([`AppConfig`]), the inbound queue and the messages table. Every missing or invalid
//! variable is reported in one error.

use wagate::runtime::config::{AppConfig, Env, FromEnv};

/// Everything `main.rs` wires the ingress from.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `TENANTS_TABLE`, `KMS_KEY_ID`, the cache TTL.
    pub app: AppConfig,
    /// `INBOUND_QUEUE_URL`: the FIFO queue events go to.
    pub queue_url: String,
    /// `MESSAGES_TABLE`: delivery records moved by receipts.
    pub messages_table: String,
    /// `INBOUND_REPLAY_WINDOW_SECONDS` (1 to 3600, default 300): how old or how far ahead a
    /// WAHA webhook's timestamp (and an Evolution JWT's `iat`) may be.
    pub replay_window: std::time::Duration,
}

impl FromEnv for Environment {
    /// Reads the environment into `env`, which collects every problem.
    fn read(env: &mut Env) -> Option<Self> {
        let app = AppConfig::read(env);
        let queue_url = env.required("INBOUND_QUEUE_URL");
        let messages_table = env.required("MESSAGES_TABLE");
        let replay_window = match env.parse_or::<u64>(
            "INBOUND_REPLAY_WINDOW_SECONDS",
            wagate::inbound::verify::DEFAULT_REPLAY_WINDOW.as_secs(),
            "a number of seconds, 1 to 3600",
        ) {
            Some(v) if (1..=3600).contains(&v) => Some(v),
            Some(v) => {
                env.problem(format!(
                    "INBOUND_REPLAY_WINDOW_SECONDS={v} is invalid: expected 1 to 3600 seconds"
                ));
                None
            }
            None => None,
        };
        Some(Environment {
            app: app?,
            queue_url: queue_url?,
            messages_table: messages_table?,
            replay_window: std::time::Duration::from_secs(replay_window?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    #[test]
    fn reads_the_queue_and_the_table() {
        let e = env(&[
            ("TENANTS_TABLE", "t"),
            ("KMS_KEY_ID", "k"),
            ("INBOUND_QUEUE_URL", "https://sqs.example/q.fifo"),
            ("MESSAGES_TABLE", "m"),
        ])
        .settings(Environment::read)
        .unwrap();
        assert_eq!(e.queue_url, "https://sqs.example/q.fifo");
        assert_eq!(e.messages_table, "m");
        assert_eq!(e.app.tenants_table, "t");
        assert_eq!(e.replay_window, std::time::Duration::from_secs(300));
    }

    #[test]
    fn the_replay_window_is_read_and_bounded() {
        let base = [
            ("TENANTS_TABLE", "t"),
            ("KMS_KEY_ID", "k"),
            ("INBOUND_QUEUE_URL", "q"),
            ("MESSAGES_TABLE", "m"),
        ];
        let with = |v: &'static str| {
            let mut pairs = base.to_vec();
            pairs.push(("INBOUND_REPLAY_WINDOW_SECONDS", v));
            env(&pairs).settings(Environment::read)
        };
        assert_eq!(
            with("60").unwrap().replay_window,
            std::time::Duration::from_secs(60)
        );
        for bad in ["0", "3601", "soon"] {
            let err = with(bad).unwrap_err().to_string();
            assert!(
                err.contains("INBOUND_REPLAY_WINDOW_SECONDS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn every_missing_variable_in_one_error() {
        let err = env(&[])
            .settings(Environment::read)
            .unwrap_err()
            .to_string();
        for needle in [
            "TENANTS_TABLE is missing",
            "KMS_KEY_ID is missing",
            "INBOUND_QUEUE_URL is missing",
            "MESSAGES_TABLE is missing",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }
}

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
}

impl FromEnv for Environment {
    /// Reads the environment into `env`, which collects every problem.
    fn read(env: &mut Env) -> Option<Self> {
        let app = AppConfig::read(env);
        let queue_url = env.required("INBOUND_QUEUE_URL");
        let messages_table = env.required("MESSAGES_TABLE");
        Some(Environment {
            app: app?,
            queue_url: queue_url?,
            messages_table: messages_table?,
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

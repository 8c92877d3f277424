//! End to end through `cargo lambda watch`: the real function binaries behind cargo-lambda's
//! local function URLs, moto_server for DynamoDB/KMS/SQS, and the GOWA simulator delivering
//! signed webhooks over HTTP, byte for byte as GOWA does.
//!
//! Needs `cargo lambda` on PATH (scripts/test.sh puts .venv/bin there) and moto_server.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wagate_devstack::{LocalIssuer, TokenSpec};
use wagate_tests::{Stack, drain_queue, moto_endpoint, workspace_root};

/// `cargo lambda watch` in its own process group, stopped with the test.
struct Watch {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's process group; no memory is touched.
        unsafe {
            libc_kill(-pgid, 15);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        unsafe {
            libc_kill(-pgid, 9);
        }
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_watch(env: &[(String, String)]) -> Watch {
    let port = free_port();
    let dir = tempdir();
    let env_file = dir.join("stack.env");
    let mut f = std::fs::File::create(&env_file).unwrap();
    for (k, v) in env {
        // cargo-lambda's env file wants single quotes around JSON.
        writeln!(f, "{k}='{v}'").unwrap();
    }
    let log = dir.join("watch.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("cargo")
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--env-file")
        .arg(&env_file)
        .args(["--ignore-changes"])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .expect("`cargo lambda` on PATH (scripts/test.sh adds .venv/bin)");
    Watch { child, port, log }
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wagate-e2e-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Watch {
    fn url(&self, function: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{function}{path}", self.port)
    }

    /// Waits until the function answers (the first call builds it).
    async fn ready(&self, http: &reqwest::Client, function: &str, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            if let Ok(r) = http.get(self.url(function, path)).send().await {
                // cargo-lambda answers 5xx while a function is still compiling.
                if r.status().as_u16() < 500 {
                    return;
                }
            }
            // A function that dies at init (e.g. a missing variable) never comes up: say so
            // now rather than at the deadline.
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            assert!(
                !log.contains("ERROR command exited"),
                "{function} exited under cargo lambda watch; log:\n{log}"
            );
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not serve {function}; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_crud_and_signed_webhooks_through_cargo_lambda_watch() {
    let stack = Stack::new().await;
    let issuer = LocalIssuer::generate();
    let sim = gowa_sim::start(gowa_sim::SimConfig::default())
        .await
        .unwrap();

    let mut env: Vec<(String, String)> = stack.env().into_iter().collect();
    env.extend([
        ("AWS_ENDPOINT_URL".into(), moto_endpoint()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("JWT_ISSUER".into(), "wagate-local".into()),
        ("JWT_AUDIENCE".into(), "wagate-config-api".into()),
        ("JWT_JWKS".into(), issuer.jwks_json().replace('\n', "")),
        ("WAGATE_EGRESS_ALLOW_CIDRS".into(), "127.0.0.1/32".into()),
        ("RUST_LOG".into(), "info".into()),
    ]);
    let watch = start_watch(&env);
    let http = reqwest::Client::new();
    let admin = issuer.token(&TokenSpec::admin());
    let config_url = watch.url("config-api", "/tenants/e2e/whatsapp-config");
    watch
        .ready(&http, "config-api", "/tenants/e2e/whatsapp-config")
        .await;

    // --- config CRUD over HTTP ---
    let unauth = http.get(&config_url).send().await.unwrap();
    assert_eq!(unauth.status(), 401);
    let created = http
        .post(&config_url)
        .bearer_auth(&admin)
        .json(&json!({
            "provider": "gowa",
            "primary": {"baseUrl": sim.base_url(), "credentials": {"type": "none"}, "deviceId": "demo"},
            "webhookSecrets": [{"id": "s1", "secret": "secret"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["version"], 1);
    let read = http
        .get(&config_url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["etag"], "\"1\"");
    let updated = http
        .put(&config_url)
        .bearer_auth(&admin)
        .header("if-match", "\"1\"")
        .json(&json!({
            "provider": "gowa",
            "primary": {"baseUrl": sim.base_url(), "deviceId": "demo"},
            "isActive": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let stale = http
        .put(&config_url)
        .bearer_auth(&admin)
        .header("if-match", "\"1\"")
        .json(&json!({"provider": "gowa", "primary": {"baseUrl": sim.base_url()}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);

    // --- signed webhooks from the simulator, through the ingress, onto the queue ---
    let hook_url = watch.url("webhook-ingress", "/webhooks/whatsapp/e2e");
    watch
        .ready(&http, "webhook-ingress", "/webhooks/whatsapp/e2e")
        .await;
    let fixtures = workspace_root().join("tests/fixtures/gowa");
    for name in [
        "gowa-message-text-incoming.json",
        "gowa-message-ack-delivered.json",
    ] {
        let bytes = std::fs::read(fixtures.join(name)).unwrap();
        let report = sim
            .deliver_webhook(gowa_sim::WebhookDelivery::raw(&hook_url, "secret", bytes))
            .await
            .unwrap();
        assert!(report.delivered, "{name}: {report:?}");
        assert_eq!(report.attempts[0].status, Some(200), "{name}: {report:?}");
    }
    // A webhook signed with the wrong secret is refused and GOWA would retry; one attempt here.
    let forged = sim
        .deliver_webhook(gowa_sim::WebhookDelivery::raw(
            &hook_url,
            "not-the-secret",
            br#"{"event":"message","payload":{"id":"forged"}}"#.to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(forged.attempts[0].status, Some(401), "{forged:?}");

    let events: Vec<Value> = drain_queue(&stack.sdk, &stack.env()["INBOUND_QUEUE_URL"])
        .await
        .into_iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    let mut types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["message", "receipt"]);
    assert!(events.iter().all(|e| e["tenantId"] == "e2e"));

    // --- delete ---
    let deleted = http
        .delete(&config_url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(stack.scan_tenants().await.is_empty());
}

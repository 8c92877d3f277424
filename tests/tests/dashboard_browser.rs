//! The dashboard in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/dashboard.mjs`) against the local stack — the config API and the health
//! check under `cargo lambda watch`, moto_server, and a GOWA simulator over HTTP.
//!
//! Needs `/usr/bin/chromium` (or `WAGATE_CHROMIUM`), `node`, and
//! `tests/browser/node_modules` — `scripts/test.sh` installs all three — plus `cargo lambda`
//! on PATH and moto_server, like `e2e_local`.
//!
//! Screenshots of every main view land in `target/browser-artifacts/` (or
//! `WAGATE_BROWSER_ARTIFACTS`).
//!
//! After the dashboard's own steps, a second scenario (issue 15 item 8, its own block at the
//! end of the script) onboards a tenant from nothing on two simulators of its own: the config
//! saved from the form, the device created and linked by QR (the simulator's control API
//! scans), "webhook wired", a webhook-secret rotation with the device's events still accepted
//! (checked here on the inbound queue), a backup linked by pairing code and "backup ready" on
//! the tenant and fleet views, the primary taken down and the failover landing on the backup
//! after three health-check runs, and a message sent through it (the sender invoked with an
//! SQS event; checked here in the backup simulator's request log).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use wagate_devstack::{LocalIssuer, TokenSpec};
use wagate_tests::watch::{Watch, client, lambda_env, send_until_answered, start_watch};
use wagate_tests::{Stack, workspace_root};

const TENANT: &str = "acme";
const SIM_USER: &str = "gowa";
const SIM_PASSWORD: &str = "sim-password-not-shown";

/// Every screenshot the browser script promises.
const SCREENSHOTS: &[&str] = &[
    "01-signin.png",
    "02-fleet.png",
    "03-tenant-connected.png",
    "04-tenant-server-down.png",
    "04b-fleet-failover.png",
    "04c-tenant-on-backup.png",
    "04d-tenant-logged-out.png",
    "05-settings-tested.png",
    "06-settings-saved.png",
    "06b-webhook-secret-rotated.png",
    "07-settings-validation-error.png",
    "08-tenant-phone.png",
    "09-settings-phone.png",
    "10-device-qr.png",
    "11-device-linked.png",
    // Issue 15 item 8: a tenant onboarded from nothing.
    "12-onboard-qr.png",
    "13-onboard-linked-wired.png",
    "14-onboard-rotated-events-accepted.png",
    "15-onboard-backup-ready.png",
    "16-fleet-backup-ready.png",
    "17-onboard-failed-over.png",
    "18-onboard-sent-via-backup.png",
    "19-onboard-wiring-error.png",
    "12-kinds-validation-error.png",
    "13-kinds-meta-backup-saved.png",
    "14-kinds-meta-callback-verified.png",
];

/// The tenant the onboarding scenario creates from nothing, on its own two simulators.
const ONB_TENANT: &str = "freshco";
const ONB_USER: &str = "onboard";
const ONB_PASSWORD: &str = "onboard-password-not-shown";

/// Issue 16's block of the script: a tenant with a GOWA primary and a Meta backup.
const KINDS_TENANT: &str = "kindco";
const META_TOKEN: &str = "EAAG-kinds-meta-token-5c1e";

fn artifacts_dir() -> PathBuf {
    std::env::var_os("WAGATE_BROWSER_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/browser-artifacts"))
}

/// Runs the health check once through cargo-lambda's invoke API with the committed
/// EventBridge fixture, as `cargo lambda invoke` does. The first call builds the function.
async fn run_health_check(http: &reqwest::Client, watch: &Watch) -> Value {
    let event = std::fs::read_to_string(workspace_root().join("events/health-check-schedule.json"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let resp = http
            .post(watch.invoke_url("health-check"))
            .header("content-type", "application/json")
            .body(event.clone())
            .send()
            .await;
        if let Ok(r) = resp {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if status.is_success() && body.is_object() {
                return body;
            }
        }
        let log = std::fs::read_to_string(&watch.log).unwrap_or_default();
        assert!(
            !log.contains("ERROR command exited") && Instant::now() < deadline,
            "the health check did not run under cargo lambda watch; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_against_the_local_stack() {
    let chromium = std::env::var("WAGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: scripts/test.sh installs Debian's chromium (apt-get install chromium)"
    );
    let browser_dir = workspace_root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    let artifacts = artifacts_dir();
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();

    let stack = Stack::new().await;
    let issuer = LocalIssuer::generate();
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let sim = wagate_tests::sim_contract::checked(
        gowa_sim::start_on(
            gowa_sim::SimConfig::default().basic_auth(SIM_USER, SIM_PASSWORD),
            localhost,
            Some(localhost),
        )
        .await
        .unwrap(),
    );

    let watch = start_watch(&lambda_env(&stack, &issuer));
    let http = client();
    let admin = issuer.token(&TokenSpec::admin());
    let tenant_token = issuer.token(&TokenSpec::tenant(TENANT));
    watch.ready(&http, "config-api", "/dashboard").await;

    // The page is served without a token, as one document, with a strict policy.
    let (page, _) = send_until_answered(|| http.get(watch.url("config-api", "/dashboard"))).await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'sha256-")
    );

    // A tenant on the simulator, created through the API as the platform would.
    let config_url = watch.url("config-api", &format!("/tenants/{TENANT}/whatsapp-config"));
    let acme = json!({
        "provider": "gowa",
        "primary": {
            "baseUrl": sim.base_url(),
            "credentials": {"type": "basic", "username": SIM_USER, "password": SIM_PASSWORD},
            "deviceId": gowa_sim::DEFAULT_DEVICE_ID
        },
        "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
    });
    let (created, again) =
        send_until_answered(|| http.post(&config_url).bearer_auth(&admin).json(&acme)).await;
    // Sent again only when the emulator left the first unanswered: it may have landed.
    let status = created.status();
    assert!(
        status == 201 || (again && status == 409),
        "{status}: {}",
        created.text().await.unwrap()
    );
    // Its primary replaced through the API (by the same, tested server): a switch record of
    // the config API, which the page's switch history shows.
    let replace = json!({
        "action": "replace", "role": "primary", "version": 1,
        "endpoint": {
            "baseUrl": sim.base_url(),
            "credentials": {"type": "basic", "username": SIM_USER, "password": SIM_PASSWORD},
            "deviceId": gowa_sim::DEFAULT_DEVICE_ID
        }
    });
    let switch_url = watch.url(
        "config-api",
        &format!("/tenants/{TENANT}/whatsapp-config/switch"),
    );
    let (replaced, again) =
        send_until_answered(|| http.post(&switch_url).bearer_auth(&admin).json(&replace)).await;
    let status = replaced.status();
    assert!(
        status == 200 || (again && status == 409),
        "{status}: {}",
        replaced.text().await.unwrap()
    );

    // A delivered message for the page's lookup, as the sender and the ingress record it.
    let now = time::OffsetDateTime::now_utc();
    stack
        .dynamodb
        .put_item()
        .table_name(stack.env()["MESSAGES_TABLE"].clone())
        .item("pk", AttributeValue::S(format!("{TENANT}#order-4711")))
        .item("tenantId", AttributeValue::S(TENANT.into()))
        .item("idempotencyKey", AttributeValue::S("order-4711".into()))
        .item("recipient", AttributeValue::S("+6289685028129".into()))
        .item("contentType", AttributeValue::S("text".into()))
        .item(
            "createdAt",
            AttributeValue::S(
                now.format(&time::format_description::well_known::Rfc3339)
                    .unwrap(),
            ),
        )
        .item("state", AttributeValue::S("delivered".into()))
        .item("attempts", AttributeValue::N("1".into()))
        .item("providerMessageId", AttributeValue::S("3EB0C4F1A2".into()))
        .item("endpoint", AttributeValue::S(sim.base_url()))
        .item("endpointRole", AttributeValue::S("primary".into()))
        .item("sendLatencyMs", AttributeValue::N("42".into()))
        .item(
            "expiresAt",
            AttributeValue::N((now.unix_timestamp() + 3600).to_string()),
        )
        .send()
        .await
        .unwrap();

    // A second tenant on the same server with a backup on another: it fails over when the
    // shared server goes down (after HEALTH_FAILOVER_AFTER = 3 failed runs).
    let backup = wagate_tests::sim_contract::checked(
        gowa_sim::start(gowa_sim::SimConfig::default())
            .await
            .unwrap(),
    );
    let beta = json!({
        "provider": "gowa",
        "primary": {
            "baseUrl": sim.base_url(),
            "credentials": {"type": "basic", "username": SIM_USER, "password": SIM_PASSWORD},
            "deviceId": gowa_sim::DEFAULT_DEVICE_ID
        },
        "backup": {
            "baseUrl": backup.base_url(),
            "credentials": {"type": "none"},
            "deviceId": gowa_sim::DEFAULT_DEVICE_ID
        },
        "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
    });
    let beta_url = watch.url("config-api", "/tenants/beta/whatsapp-config");
    let (created, again) =
        send_until_answered(|| http.post(&beta_url).bearer_auth(&admin).json(&beta)).await;
    let status = created.status();
    assert!(
        status == 201 || (again && status == 409),
        "{status}: {}",
        created.text().await.unwrap()
    );

    // Two healthy runs, so the latency chart has points before the browser opens.
    for _ in 0..2 {
        let report = run_health_check(&http, &watch).await;
        assert_eq!(report["serversProbed"], 2, "{report}");
    }

    // The onboarding scenario's servers: nothing on them for the new tenant yet.
    let onb_primary = wagate_tests::sim_contract::checked(
        gowa_sim::start_on(
            gowa_sim::SimConfig::default().basic_auth(ONB_USER, ONB_PASSWORD),
            localhost,
            Some(localhost),
        )
        .await
        .unwrap(),
    );
    let onb_backup = wagate_tests::sim_contract::checked(
        gowa_sim::start_on(gowa_sim::SimConfig::default(), localhost, Some(localhost))
            .await
            .unwrap(),
    );

    // Issue 16: a Meta Cloud API simulator for the kinds block (every request wagate makes to
    // it is checked against Meta's spec when the test ends).
    let meta = wagate_tests::sim_contract::checked(
        gowa_sim::start(gowa_sim::SimConfig::for_kind(gowa_sim::Kind::Meta).api_key(META_TOKEN))
            .await
            .unwrap(),
    );

    let control = sim.control_url().unwrap();
    let script = browser_dir.join("dashboard.mjs");
    let mut cmd = std::process::Command::new("node");
    cmd.arg(&script)
        .current_dir(&browser_dir)
        .env("DASHBOARD_URL", watch.url("config-api", "/dashboard"))
        .env("ADMIN_TOKEN", &admin)
        .env("TENANT_TOKEN", &tenant_token)
        .env("TENANT_ID", TENANT)
        .env("BACKUP_TENANT_ID", "beta")
        .env("BACKUP_BASE_URL", backup.base_url())
        .env("SIM_BASE_URL", sim.base_url())
        .env("SIM_CONTROL_URL", &control)
        .env("DEVICE_ID", gowa_sim::DEFAULT_DEVICE_ID)
        .env(
            "WEBHOOK_URL",
            watch.url("webhook-ingress", &format!("/webhooks/whatsapp/{TENANT}")),
        )
        .env("HEALTH_INVOKE_URL", watch.invoke_url("health-check"))
        .env(
            "SCHEDULE_EVENT",
            workspace_root().join("events/health-check-schedule.json"),
        )
        .env("ONB_TENANT_ID", ONB_TENANT)
        .env("ONB_PRIMARY_URL", onb_primary.base_url())
        .env("ONB_PRIMARY_CONTROL", onb_primary.control_url().unwrap())
        .env("ONB_BACKUP_URL", onb_backup.base_url())
        .env("ONB_BACKUP_CONTROL", onb_backup.control_url().unwrap())
        .env("ONB_USER", ONB_USER)
        .env("ONB_PASSWORD", ONB_PASSWORD)
        .env("SENDER_INVOKE_URL", watch.invoke_url("outbound-sender"))
        .env("KINDS_TENANT_ID", KINDS_TENANT)
        .env("KINDS_PRIMARY_URL", backup.base_url())
        .env(
            "KINDS_WEBHOOK_URL",
            watch.url(
                "webhook-ingress",
                &format!("/webhooks/whatsapp/{KINDS_TENANT}"),
            ),
        )
        .env("META_BASE_URL", meta.base_url())
        .env("META_TOKEN", META_TOKEN)
        .env(
            "META_PHONE_NUMBER_ID",
            gowa_sim::DEFAULT_META_PHONE_NUMBER_ID,
        )
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium);
    // The simulator serves on this runtime: wait for the browser off its worker threads.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("node on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !out.status.success() {
        let log = std::fs::read_to_string(&watch.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "the browser script failed ({}); screenshots in {}\nstdout:\n{stdout}\nstderr:\n{stderr}\ncargo lambda watch, last lines:\n{}",
            out.status,
            artifacts.display(),
            tail.join("\n")
        );
    }

    // What the browser saved is what the store holds: the replacement (version 2), the device
    // panel's webhook repair (version 3), one save (version 4, the region it typed), one
    // rotation of the webhook secret (version 5) and the device's re-wiring after it (version
    // 6), and the invalid edit after it stored nothing.
    let stored: Value = send_until_answered(|| http.get(&config_url).bearer_auth(&admin))
        .await
        .0
        .json()
        .await
        .unwrap();
    assert_eq!(stored["version"], 6, "{stored}");
    let ids: Vec<&str> = stored["webhookSecrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.iter().filter(|i| !i.starts_with("wired-")).count(),
        2,
        "the rotated secret beside the old one (still valid for its grace): {stored}"
    );
    assert_eq!(
        ids.iter()
            .filter(|i| i.starts_with("wired-primary-"))
            .count(),
        2,
        "the device's new wired secret beside the one it replaced (its grace): {stored}"
    );
    assert_eq!(stored["primary"]["region"], "eu-west-1", "{stored}");
    assert_eq!(stored["primary"]["baseUrl"], sim.base_url(), "{stored}");
    assert_eq!(stored["primary"]["credentials"]["username"], SIM_USER);
    // The write-only password was kept (the form left it empty): the simulator still accepts it.
    let audit_url = watch.url("config-api", &format!("/tenants/{TENANT}/audit"));
    let audit: Value = send_until_answered(|| http.get(&audit_url).bearer_auth(&admin))
        .await
        .0
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "update").count(),
        1,
        "one save through the page: {actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "rotate_webhook_secret")
            .count(),
        1,
        "one rotation through the page: {actions:?}"
    );
    // The new tenant's form was only looked at.
    let newco_url = watch.url("config-api", "/tenants/newco/whatsapp-config");
    let (newco, _) = send_until_answered(|| http.get(&newco_url).bearer_auth(&admin)).await;
    assert_eq!(newco.status(), 404);
    // The connection tests the page ran reached the simulator with the saved credentials.
    let probes = sim.requests_to("/app/status");
    assert!(
        !probes.is_empty(),
        "the page's connection test never reached the server"
    );

    // The failover the fleet view showed is the one stored.
    let beta: Value = send_until_answered(|| http.get(&beta_url).bearer_auth(&admin))
        .await
        .0
        .json()
        .await
        .unwrap();
    assert_eq!(beta["activeEndpoint"], "backup", "{beta}");

    // The onboarded tenant (issue 15 item 8), as stored: on its backup after the failover,
    // the message sent through the backup's server only, the event signed after the rotation
    // on the inbound queue.
    let onb_url = watch.url(
        "config-api",
        &format!("/tenants/{ONB_TENANT}/whatsapp-config"),
    );
    let onb: Value = send_until_answered(|| http.get(&onb_url).bearer_auth(&admin))
        .await
        .0
        .json()
        .await
        .unwrap();
    assert_eq!(onb["activeEndpoint"], "backup", "{onb}");
    assert_eq!(onb["backup"]["baseUrl"], onb_backup.base_url(), "{onb}");
    let sent_to = |s: &wagate_tests::sim_contract::Checked| {
        s.requests_to("/send/message")
            .into_iter()
            .filter(|r| {
                r.json
                    .as_ref()
                    .is_some_and(|j| j.to_string().contains("Welcome aboard"))
            })
            .count()
    };
    assert_eq!(sent_to(&onb_backup), 1, "the send reached the backup once");
    assert_eq!(
        sent_to(&onb_primary),
        0,
        "nothing sent to the downed primary"
    );
    let onb_audit_url = watch.url("config-api", &format!("/tenants/{ONB_TENANT}/audit"));
    let onb_audit: Value = send_until_answered(|| http.get(&onb_audit_url).bearer_auth(&admin))
        .await
        .0
        .json()
        .await
        .unwrap();
    let onb_actions: Vec<&str> = onb_audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["create", "rotate_webhook_secret", "failover"] {
        assert!(
            onb_actions.contains(&action),
            "{action} not audited: {onb_actions:?}"
        );
    }
    let texts = inbound_texts(&stack, ONB_TENANT).await;
    for t in ["hello before the rotation", "hello after the rotation"] {
        assert!(
            texts.iter().any(|x| x == t),
            "{t:?} not on the inbound queue: {texts:?}"
        );
    }

    // Issue 16: the kinds block saved a GOWA primary with a Meta backup, secrets sealed
    // (fingerprints only), and the handshake it made is recorded.
    let kinds_url = watch.url(
        "config-api",
        &format!("/tenants/{KINDS_TENANT}/whatsapp-config"),
    );
    let kinds: Value = send_until_answered(|| http.get(&kinds_url).bearer_auth(&admin))
        .await
        .0
        .json()
        .await
        .unwrap();
    assert_eq!(kinds["provider"], "gowa", "{kinds}");
    assert_eq!(kinds["backup"]["provider"], "meta", "{kinds}");
    assert_eq!(kinds["backup"]["credentials"]["type"], "meta", "{kinds}");
    assert_eq!(
        kinds["backup"]["deviceId"],
        gowa_sim::DEFAULT_META_PHONE_NUMBER_ID
    );
    assert!(kinds["backup"]["credentials"]["appSecretFingerprint"].is_string());
    assert!(!kinds.to_string().contains(META_TOKEN), "{kinds}");
    let cb_url = watch.url(
        "config-api",
        &format!("/tenants/{KINDS_TENANT}/meta-callback"),
    );
    let cb: Value = send_until_answered(|| http.get(&cb_url).bearer_auth(&admin))
        .await
        .0
        .json()
        .await
        .unwrap();
    assert_eq!(cb["verified"], true, "{cb}");
    // The page's connection test reached the Meta simulator with the token it typed.
    assert!(
        !meta.requests().is_empty(),
        "the page's connection test never reached the Meta server"
    );

    // The page never put the server password anywhere the browser could show it.
    assert!(!stdout.contains(SIM_PASSWORD) && !stderr.contains(SIM_PASSWORD));
    assert!(!stdout.contains(ONB_PASSWORD) && !stderr.contains(ONB_PASSWORD));
    for name in SCREENSHOTS {
        let bytes = std::fs::read(artifacts.join(name))
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{name} is not a real screenshot"
        );
    }
}

/// The texts of `tenant`'s inbound message events on the inbound queue (received and
/// deleted, as the platform's consumer does).
async fn inbound_texts(stack: &Stack, tenant: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue = stack.env()["INBOUND_QUEUE_URL"].clone();
    let mut out = Vec::new();
    for _ in 0..10 {
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let event: Value =
                serde_json::from_str(m.body().unwrap_or("null")).unwrap_or(Value::Null);
            if event["tenantId"] == tenant
                && let Some(t) = find_text(&event)
            {
                out.push(t);
            }
            if let Some(h) = m.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(&queue)
                    .receipt_handle(h)
                    .send()
                    .await;
            }
        }
    }
    out
}

/// The message text anywhere in an `InboundEvent` (`text` or `body` of its message part).
fn find_text(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => {
            for k in ["text", "body"] {
                if let Some(Value::String(s)) = m.get(k) {
                    return Some(s.clone());
                }
            }
            m.values().find_map(find_text)
        }
        Value::Array(a) => a.iter().find_map(find_text),
        _ => None,
    }
}

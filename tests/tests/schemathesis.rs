//! The config API against its own OpenAPI document, checked by standard tools:
//!
//! 1. `openapi-spec-validator` (pinned in scripts/requirements-dev.txt) validates
//!    functions/config-api/openapi.yaml as OpenAPI 3.1;
//! 2. `schemathesis` (pinned there too) runs every check it has (no 5xx, status codes and
//!    content types and headers the document lists, response schemas, valid data accepted,
//!    invalid data refused, auth enforced, 405 with `Allow` for other methods, ...) against
//!    the real config-api binary under `cargo lambda watch`, behind a stand-in for API
//!    Gateway (tests/src/apigw.rs: the events API Gateway sends, not cargo-lambda's function
//!    URLs, which answer some requests themselves), on moto_server, with seeded data
//!    (a tenant `acme` on the GOWA simulator, servers `sa`/`sb`, a migration job `j1`, a
//!    delivery record `k1`: the document's examples) so reads of existing resources happen
//!    too. It runs twice: with an admin token and with acme's tenant token.
//!
//! Deterministic: a fixed seed, deterministic generation, no example database, one worker, a
//! fixed number of examples per operation. The settings and hooks are in tests/schemathesis/.
//! Needs `.venv/bin` on PATH (scripts/test.sh puts it there) and moto_server.

use std::process::Command;

use serde_json::{Value, json};
use wagate_devstack::{LocalIssuer, TokenSpec};
use wagate_tests::watch::{lambda_env, start_watch};
use wagate_tests::{Stack, workspace_root};

const SPEC: &str = "functions/config-api/openapi.yaml";
/// Examples per operation and phase (schemathesis `--max-examples`).
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "20261130";

/// Longest one schemathesis run may take (a run took 31 to 52 s on the 2-core box, the test 70 to 96 s); past it
/// the run is stopped and the test fails rather than hang.
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Waits for `child`, reading its output, and kills it past `limit`.
fn finish_within(
    mut child: std::process::Child,
    limit: std::time::Duration,
    who: &str,
) -> std::process::Output {
    use std::io::Read as _;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for schemathesis") {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let so = out.join().unwrap_or_default();
            panic!(
                "schemathesis ({who} token) ran over {limit:?} and was stopped:\n{}",
                String::from_utf8_lossy(&so)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn tool(name: &str) -> Command {
    let venv = workspace_root().join(".venv/bin").join(name);
    let mut c = Command::new(if venv.exists() {
        venv.into_os_string()
    } else {
        name.into()
    });
    c.current_dir(workspace_root());
    c
}

#[test]
fn openapi_spec_validator_accepts_the_document() {
    let out = tool("openapi-spec-validator")
        .arg(SPEC)
        .output()
        .expect("openapi-spec-validator (scripts/bootstrap.sh installs it into .venv)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn send(http: &reqwest::Client, method: &str, url: &str, token: &str, body: Value) -> Value {
    let r = http
        .request(method.parse().unwrap(), url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {url}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_with_every_check_enabled() {
    let stack = Stack::new().await;
    let issuer = LocalIssuer::generate();
    let sim =
        gowa_sim::start(gowa_sim::SimConfig::default().basic_auth("admin", "sim-password-0123"))
            .await
            .unwrap();
    let watch = start_watch(&lambda_env(&stack, &issuer));
    let http = reqwest::Client::new();
    watch.ready(&http, "config-api", "/tenants").await;
    // API Gateway's behaviour in front of the real binary (tests/src/apigw.rs).
    let (door, _door_task) = wagate_tests::apigw::start(watch.invoke_url("config-api")).await;
    let api = |path: &str| format!("{door}{path}");
    let admin = issuer.token(&TokenSpec::admin());

    // Seed what the document's examples name.
    let endpoint = |device: &str| {
        json!({"baseUrl": sim.base_url(), "deviceId": device, "region": "eu-west-1",
               "credentials": {"type": "basic", "username": "admin", "password": "sim-password-0123"}})
    };
    for tenant in ["acme", "beta"] {
        send(
            &http,
            "POST",
            &api(&format!("/tenants/{tenant}/whatsapp-config")),
            &admin,
            json!({
                "provider": "gowa", "primary": endpoint("demo"), "backup": endpoint("demo-2"),
                "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
            }),
        )
        .await;
    }
    for (id, url) in [
        ("sa", sim.base_url()),
        ("sb", "https://sb.wagate.test".to_string()),
    ] {
        send(&http, "POST", &api("/admin/servers"), &admin, json!({
            "serverId": id, "baseUrl": url, "provider": "gowa", "region": "eu-west-1", "capacity": 10
        }))
        .await;
    }
    send(
        &http,
        "POST",
        &api("/admin/migrations"),
        &admin,
        json!({"jobId": "j1", "from": "sa", "to": "sb", "tenantIds": ["nobody"]}),
    )
    .await;
    stack.put_delivery("acme", "k1", "sent").await;
    let page = http
        .get(api("/tenants?limit=1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let tenants_cursor = page.json::<Value>().await.unwrap()["nextCursor"]
        .as_str()
        .expect("two tenants: a second page")
        .to_string();
    let page = http
        .get(api("/tenants/acme/audit?limit=1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let audit_cursor = page.json::<Value>().await.unwrap()["nextCursor"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let report_root = workspace_root().join("target/schemathesis");
    for (who, token) in [
        ("admin", admin.clone()),
        ("tenant", issuer.token(&TokenSpec::tenant("acme"))),
    ] {
        let dir = report_root.join(who);
        let out = tool("schemathesis")
            .arg("--no-color")
            .arg("--config-file")
            .arg("tests/schemathesis/schemathesis.toml")
            .args(["run", SPEC, "--url"])
            .arg(api(""))
            .args(["--checks", "all", "--workers", "1", "--seed", SEED])
            .args(["--generation-deterministic", "--max-examples", MAX_EXAMPLES])
            .args([
                "--request-timeout",
                "30",
                "--report",
                "junit",
                "--report-dir",
            ])
            .arg(&dir)
            .arg("--header")
            .arg(format!("Authorization: Bearer {token}"))
            // Extra arguments while investigating (e.g. `--phases coverage --output-sanitize false`).
            .args(
                std::env::var("WAGATE_SCHEMATHESIS_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .env("SCHEMATHESIS_HOOKS", "tests/schemathesis/hooks.py")
            .env("WAGATE_SIM_URL", sim.base_url())
            .env("WAGATE_CURSOR_TENANTS", &tenants_cursor)
            .env("WAGATE_CURSOR_AUDIT", &audit_cursor)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("schemathesis (scripts/bootstrap.sh installs it into .venv)");
        let out = finish_within(out, RUN_LIMIT, who);
        let stdout = String::from_utf8_lossy(&out.stdout);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("output.txt"), stdout.as_bytes()).unwrap();
        assert!(
            out.status.success(),
            "schemathesis ({who} token) found problems (report in {}):\n{stdout}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // It really ran: every operation was exercised.
        assert!(stdout.contains("passed"), "{stdout}");
    }
    sim_followed_gowas_contract(&sim);
}

/// Every request wagate made to the simulator, against GOWA's document, with one exemption:
/// schemathesis saves and tests candidates with `credentials: {"type": "none"}` on this
/// basic-auth server (tests/schemathesis/hooks.py points base URLs at it, credentials are
/// whatever the document allows), and wagate rightly calls such an endpoint without
/// credentials (the connection test's `GET /app/status`, the device routes' calls) and reports
/// the 401: the operator's input, not a request wagate forgot to authenticate. Requests that
/// carry no basic credentials are checked with every rule but security (credentials in another
/// scheme still fail); every other request with every rule.
fn sim_followed_gowas_contract(sim: &gowa_sim::SimHandle) {
    use gowa_sim::contract::{CheckOptions, Contract, options_for, report};
    let contract = Contract::for_kind(sim.kind());
    let (unauthenticated, rest): (Vec<_>, Vec<_>) = sim
        .requests()
        .into_iter()
        .partition(|r| r.basic_auth_user.is_none());
    let mut found = contract.check_all(&rest, options_for(sim));
    found.extend(contract.check_all(
        &unauthenticated,
        CheckOptions {
            enforce_security: false,
        },
    ));
    assert!(found.is_empty(), "{}", report(contract.name(), &found));
    assert!(
        !rest.is_empty(),
        "schemathesis made wagate call the simulator"
    );
}

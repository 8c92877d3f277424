//! Cold-start benchmark: a local Lambda Runtime API that starts each function binary N times
//! against moto_server and records, per start, init (spawn to the first `next` request), the
//! first invocation, the warm invocations and the peak RSS (`VmHWM` of /proc/<pid>/status),
//! beside the floor (`tools/coldstart-floor`: lambda_runtime + one signature check + one SQS send).
//!
//! ```sh
//! cargo build --bins -p webhook-ingress -p outbound-sender -p health-check -p config-api
//! cargo build -p coldstart-floor
//! AWS_ENDPOINT_URL=http://127.0.0.1:4572 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
//!   AWS_SECRET_ACCESS_KEY=test cargo run -p wagate-tests --example coldstart -- 30
//! ```
//!
//! `COLDSTART_TLS=1` puts a local TLS front (tests/src/tls_front.rs) between the binaries
//! and moto_server and runs each function primed and not primed (BENCHMARKS.md);
//! `COLDSTART_UNPRIMED=1` runs both variants over plain HTTP too.
//!
//! Arguments: runs per binary (default 10), then the profile directory of the binaries
//! (default `target/debug`). Medians are printed as a Markdown table (BENCHMARKS.md).
//! `COLDSTART_ONLY=floor,webhook-ingress` limits the run to the binaries whose names start
//! with one of those words.
//!
//! The inbound queue is drained after every start (untimed): moto_server's `SendMessage` on a
//! FIFO queue slows down with every message already in it (about +0.1 ms per message here),
//! so without it each binary's figures would depend on how many ran before it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use wagate::Secret;
use wagate::inbound::signature::sign_sha256;
use wagate::secrets::{KmsSealer, SecretSealer};
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::TenantConfigStore;
use wagate::tenant::*;
use wagate_tests::runtime_stub::{Instance, Memory};
use wagate_tests::{ApiEvent, Stack};

const SECRET: &str = "coldstart-webhook-secret";
const WARM: usize = 5;
/// Init and each invocation must end within this (a hung start fails the run).
const TIMEOUT: Duration = Duration::from_secs(30);

/// One function start, as the stub saw it.
struct Run {
    init: Duration,
    first: Duration,
    warm: Vec<Duration>,
    memory: Memory,
    /// CPU time the process used (all threads): up to its first `next`, in the first
    /// invocation, in each warm one. Unlike the wall times, it leaves out moto_server's and
    /// the busy machine's share.
    cpu_init: Duration,
    cpu_first: Duration,
    cpu_warm: Vec<Duration>,
}

/// Starts `binary` once with `env` behind the local Runtime API
/// ([`wagate_tests::runtime_stub`]) and hands it `events` (the first, then the warm ones).
async fn run_once(
    binary: &std::path::Path,
    env: &BTreeMap<String, String>,
    events: Vec<Value>,
) -> anyhow::Result<Run> {
    let instance = Instance::start("bench", binary.to_owned(), env.clone(), TIMEOUT).await?;
    let init = instance.init_duration(TIMEOUT).await?;
    let mut cpu = vec![instance.cpu_time().await.unwrap_or_default()];
    let mut times = Vec::new();
    for event in events {
        let (body, took) = instance.invoke(event).await?;
        cpu.push(instance.cpu_time().await.unwrap_or_default());
        let answer = serde_json::from_str(&body).unwrap_or(Value::String(body));
        let refused = answer["statusCode"].as_u64().is_some_and(|s| s >= 300)
            || answer["batchItemFailures"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
        if refused {
            anyhow::bail!(
                "{}: the invocation did not succeed: {answer}",
                binary.display()
            );
        }
        times.push(took);
    }
    let memory = instance.memory().await.unwrap_or_default();
    let cpu_per_call: Vec<Duration> = cpu.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    Ok(Run {
        init,
        first: times[0],
        warm: times[1..].to_vec(),
        memory,
        cpu_init: cpu[0],
        cpu_first: cpu_per_call[0],
        cpu_warm: cpu_per_call[1..].to_vec(),
    })
}

/// Removes the test CA file when the run ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A signed webhook of tenant `bench` (a fresh message id each).
fn webhook(n: usize) -> Value {
    let body = format!(
        r#"{{"event":"message","payload":{{"id":"COLD{n:08}","from":"6289876543210@s.whatsapp.net","chat_id":"6289876543210@s.whatsapp.net","body":"hi"}}}}"#
    );
    let sig = sign_sha256(SECRET.as_bytes(), body.as_bytes());
    ApiEvent::new("POST", "/webhooks/whatsapp/bench")
        .header("x-hub-signature-256", &sig)
        .raw_json(body.into_bytes())
        .source_ip("198.51.100.7")
        .event_json()
}

fn outbound(n: usize) -> Value {
    let body = json!({"tenantId": "bench", "idempotencyKey": format!("cold-{n}-{}", uuid::Uuid::new_v4()),
        "to": "6281234567890", "content": {"type": "text", "body": "hi"}});
    json!({"Records": [{
        "messageId": uuid::Uuid::new_v4().to_string(), "receiptHandle": "h", "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "bench",
            "SentTimestamp": "1795867200000", "MessageDeduplicationId": format!("d{n}")},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench.fifo", "awsRegion": "us-east-1"}]})
}

async fn add_tenant(stack: &Stack, base_url: &str) {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let cfg: TenantConfig<Secret> = TenantConfig {
        tenant_id: "bench".parse().unwrap(),
        provider: ProviderKind::Gowa,
        primary: Endpoint {
            base_url: base_url.into(),
            credentials: Credentials::Basic {
                username: "admin".into(),
                password: Secret::new("server-password"),
            },
            device_id: Some(gowa_sim::DEFAULT_DEVICE_ID.into()),
            region: None,
            webhook_source_cidrs: Vec::new(),
            webhook_wiring: Default::default(),
            provider: None,
        },
        backup: None,
        webhook_secrets: vec![WebhookSecret {
            id: "s1".into(),
            secret: Secret::new(SECRET),
            expires_at: None,
        }],
        active_endpoint: EndpointRole::Primary,
        is_active: true,
        connection_status: ConnectionStatus::Connected,
        failback: Default::default(),
        limits: Limits {
            outbound_per_minute: Limits::MAX_OUTBOUND_PER_MINUTE,
            ..Limits::default()
        },
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let sealer = KmsSealer::new(stack.kms.clone(), stack.kms_key_id());
    let mut sealed = Vec::new();
    for (p, s) in cfg.secret_slots() {
        sealed.push(sealer.seal("bench", p, s).await.unwrap());
    }
    DynamoTenantStore::new(stack.dynamodb.clone(), stack.tenants_table())
        .create(&cfg.with_secrets(sealed).unwrap())
        .await
        .unwrap();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let dir = PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "target/debug".into()),
    );
    let root = wagate_tests::workspace_root();
    let dir = if dir.is_absolute() {
        dir
    } else {
        root.join(dir)
    };

    let stack = Stack::new().await;
    let sim = gowa_sim::start(gowa_sim::SimConfig::default()).await?;
    add_tenant(&stack, &sim.base_url()).await;
    let issuer = wagate_devstack::LocalIssuer::generate();
    let token = issuer.token(&wagate_devstack::TokenSpec::admin());

    let mut env = stack.env();
    for key in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PATH",
    ] {
        if let Ok(v) = std::env::var(key) {
            env.insert(key.into(), v);
        }
    }
    env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
    env.insert("WAGATE_EGRESS_ALLOW_CIDRS".into(), "127.0.0.0/8".into());
    env.insert("FLOOR_SECRET".into(), SECRET.into());
    env.insert(
        "JWT_ISSUER".into(),
        wagate_devstack::jwt::DEFAULT_ISSUER.into(),
    );
    env.insert(
        "JWT_AUDIENCE".into(),
        wagate_devstack::jwt::DEFAULT_AUDIENCE.into(),
    );
    env.insert("JWT_JWKS".into(), issuer.jwks_json());
    env.insert("RUST_LOG".into(), "info".into());

    let schedule: Value = serde_json::from_str(&std::fs::read_to_string(
        root.join("events/health-check-schedule.json"),
    )?)?;
    let config_get = |_: usize| {
        ApiEvent::new("GET", "/tenants/bench/whatsapp-config")
            .bearer(&token)
            .event_json()
    };
    type Events<'a> = Box<dyn Fn(usize) -> Value + 'a>;
    let functions: Vec<(&str, PathBuf, Events)> = vec![
        (
            "floor (coldstart-floor)",
            dir.join("coldstart-floor"),
            Box::new(webhook),
        ),
        (
            "webhook-ingress",
            dir.join("webhook-ingress"),
            Box::new(webhook),
        ),
        (
            "outbound-sender",
            dir.join("outbound-sender"),
            Box::new(outbound),
        ),
        ("config-api", dir.join("config-api"), Box::new(config_get)),
        (
            "health-check",
            dir.join("health-check"),
            Box::new(move |_| schedule.clone()),
        ),
    ];

    // COLDSTART_TLS=1: every AWS call goes through a local TLS front for moto_server (a test
    // CA made now, trusted through WAGATE_EXTRA_CA_FILE, and SSL_CERT_FILE for the floor's
    // default SDK client), and each function runs twice: primed (the default) and not
    // (WAGATE_PRIME_TIMEOUT_MS=0).
    let tls = std::env::var("COLDSTART_TLS").is_ok_and(|v| v == "1");
    let mut _front = None;
    let mut _ca_file = None;
    if tls {
        let ca = wagate_tests::tls_front::TestCa::generate();
        let front = wagate_tests::tls_front::TlsFront::start(&ca, &env["AWS_ENDPOINT_URL"]).await;
        let ca_file = ca.write_ca_file();
        env.insert("AWS_ENDPOINT_URL".into(), front.url());
        env.insert("WAGATE_EXTRA_CA_FILE".into(), ca_file.display().to_string());
        env.insert("SSL_CERT_FILE".into(), ca_file.display().to_string());
        _front = Some(front);
        _ca_file = Some(TempFile(ca_file));
    }
    let both = tls || std::env::var("COLDSTART_UNPRIMED").is_ok_and(|v| v == "1");
    let variants: Vec<(&str, Option<&str>)> = if both {
        vec![(" (primed)", None), (" (not primed)", Some("0"))]
    } else {
        vec![("", None)]
    };

    println!(
        "| binary | runs | init | first invocation | warm invocation | CPU time: init / first / warm | peak RSS | RSS at the end: anonymous / file-backed |{}",
        if tls {
            " TLS handshakes per start |"
        } else {
            ""
        }
    );
    println!(
        "|---|---|---|---|---|---|---|---|{}",
        if tls { "---|" } else { "" }
    );
    let only: Vec<String> = std::env::var("COLDSTART_ONLY")
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let inbound = env["INBOUND_QUEUE_URL"].clone();
    let mut n = 0;
    for (name, binary, events) in &functions {
        if !only.is_empty() && !only.iter().any(|o| name.starts_with(o.as_str())) {
            continue;
        }
        let floor = name.starts_with("floor");
        for (suffix, prime) in &variants {
            if floor && prime.is_some() {
                continue; // the floor does not prime: one row
            }
            let suffix = if floor { "" } else { suffix };
            let mut env = env.clone();
            if let Some(ms) = prime {
                env.insert("WAGATE_PRIME_TIMEOUT_MS".into(), (*ms).into());
            }
            let handshakes_before = _front.as_ref().map_or(0, |f| f.handshakes());
            let mut results = Vec::new();
            for _ in 0..runs {
                let evs = (0..=WARM)
                    .map(|_| {
                        n += 1;
                        events(n)
                    })
                    .collect();
                results.push(run_once(binary, &env, evs).await?);
                wagate_tests::drain_queue(&stack.sdk, &inbound).await;
            }
            let handshakes = _front.as_ref().map_or(0, |f| f.handshakes()) - handshakes_before;
            let init = median(results.iter().map(|r| r.init).collect());
            let first = median(results.iter().map(|r| r.first).collect());
            let warm = median(results.iter().flat_map(|r| r.warm.clone()).collect());
            let cpu_init = median(results.iter().map(|r| r.cpu_init).collect());
            let cpu_first = median(results.iter().map(|r| r.cpu_first).collect());
            let cpu_warm = median(results.iter().flat_map(|r| r.cpu_warm.clone()).collect());
            let mib = |f: fn(&Memory) -> u64| {
                let mut v: Vec<u64> = results.iter().map(|r| f(&r.memory)).collect();
                v.sort();
                v[v.len() / 2] as f64 / 1024.0
            };
            println!(
                "| {name}{suffix} | {runs} | {} ms | {} ms | {} ms | {} / {} / {} ms | {:.1} MiB | {:.1} / {:.1} MiB |{}",
                ms(init),
                ms(first),
                ms(warm),
                ms(cpu_init),
                ms(cpu_first),
                ms(cpu_warm),
                mib(|m| m.peak_kib),
                mib(|m| m.anon_kib),
                mib(|m| m.file_kib),
                if tls {
                    format!(" {:.1} |", handshakes as f64 / runs as f64)
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(())
}

//! Ingress under load: the real `webhook-ingress` binary, run as Lambda runs it behind a local
//! Runtime API ([`wagate_tests::runtime_stub`], several instances as Lambda scales out),
//! driven at a fixed rate of API Gateway events to 127.0.0.1 for a fixed time, 10 % of them
//! forged (another secret), tampered (body changed after signing), unsigned or malformed
//! (signed, not JSON). Then it reads the inbound queue (moto_server) and audits: no 5xx, every
//! valid event enqueued exactly once (by its message id), every invalid one refused (4xx)
//! and never enqueued. Prints p50/p99 latency (invoke to answer, queueing in the instance
//! included) and the peak RSS of the function processes; exits non-zero on any violation.
//!
//! ```sh
//! cargo build -p webhook-ingress
//! AWS_ENDPOINT_URL=http://127.0.0.1:4573 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
//!   AWS_SECRET_ACCESS_KEY=test cargo run -p wagate-tests --example ingress_load -- 200 60 16
//! ```
//!
//! Arguments: webhooks per second (200), seconds (60), instances (16).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use tokio::sync::Mutex;
use wagate::inbound::signature::sign_sha256;
use wagate_tests::moto_proxy;
use wagate_tests::runtime_stub::Instance;
use wagate_tests::soak::{WEBHOOK_SECRET, add_tenant};
use wagate_tests::{ApiEvent, Stack};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Valid,
    Forged,
    Tampered,
    Unsigned,
    Malformed,
}

fn request(n: usize) -> (Kind, String, serde_json::Value) {
    let id = format!("LOAD{n:08}");
    let body = format!(
        r#"{{"event":"message","payload":{{"id":"{id}","from":"6289876543210@s.whatsapp.net","chat_id":"6289876543210@s.whatsapp.net","body":"hi {n}"}}}}"#
    );
    let kind = match n % 50 {
        0 => Kind::Forged,
        10 => Kind::Tampered,
        20 => Kind::Unsigned,
        30 | 40 => Kind::Malformed,
        _ => Kind::Valid,
    };
    let good = sign_sha256(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
    let (sig, sent) = match kind {
        Kind::Valid => (Some(good), body),
        Kind::Forged => (
            Some(sign_sha256(b"not-the-tenants-secret", body.as_bytes())),
            body,
        ),
        Kind::Tampered => (Some(good), body.replace("hi ", "pay ")),
        Kind::Unsigned => (None, body),
        Kind::Malformed => {
            let broken = format!("{{\"event\":\"message\",\"payload\":{{\"id\":\"{id}\"");
            (
                Some(sign_sha256(WEBHOOK_SECRET.as_bytes(), broken.as_bytes())),
                broken,
            )
        }
    };
    let path = format!("/webhooks/whatsapp/{}", tenant_of(n));
    let mut ev = ApiEvent::new("POST", &path).source_ip("198.51.100.7");
    if let Some(sig) = &sig {
        ev = ev.header("x-hub-signature-256", sig);
    }
    (kind, id, ev.raw_json(sent.into_bytes()).event_json())
}

/// Tenants the webhooks are spread over (each its own FIFO message group, as in production).
const TENANTS: usize = 10;

fn tenant_of(n: usize) -> String {
    format!("load{}", n % TENANTS)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Concurrent consumers of the inbound queue during the run.
const DRAINERS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rate: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let seconds: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(60);
    let instances_n: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(16);
    let root = wagate_tests::workspace_root();
    let binary = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("debug/webhook-ingress");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: cargo build -p webhook-ingress",
        binary.display()
    );

    let stack = Stack::new().await;
    for t in 0..TENANTS {
        add_tenant(&stack, &tenant_of(t), "http://127.0.0.1:9", None).await;
    }
    // Every AWS call of the function processes goes through a timing proxy to moto_server
    // (nothing serialised but transactions): it tells moto's time from the function's own.
    let proxy = moto_proxy::start(Arc::default(), false).await;
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
    env.insert("AWS_ENDPOINT_URL".into(), proxy.url.clone());
    env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
    env.insert("RUST_LOG".into(), "warn".into());
    let mut instances = Vec::new();
    for i in 0..instances_n {
        instances.push(Arc::new(
            Instance::start(
                &format!("webhook-ingress-{i}"),
                binary.clone(),
                env.clone(),
                Duration::from_secs(29),
            )
            .await?,
        ));
    }
    let http = reqwest::Client::builder().no_proxy().build()?;

    // The inbound queue is drained while the load runs (receive, count by id, delete), as
    // the inbound consumer would: moto_server's FIFO SendMessage costs O(messages queued),
    // so a queue left to fill up would measure moto, not the ingress.
    let queue = stack.env()["INBOUND_QUEUE_URL"].clone();
    let enqueued: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut drainers = Vec::new();
    for _ in 0..DRAINERS {
        let (sqs, queue, enqueued, sending) = (
            stack.sqs.clone(),
            queue.clone(),
            enqueued.clone(),
            sending.clone(),
        );
        drainers.push(tokio::spawn(async move {
            let mut empty = 0;
            // After the load: until three empty receives in a row.
            while sending.load(std::sync::atomic::Ordering::Relaxed) || empty < 3 {
                let got = sqs
                    .receive_message()
                    .queue_url(&queue)
                    .max_number_of_messages(10)
                    .visibility_timeout(900)
                    .wait_time_seconds(1)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await?;
                let msgs = got.messages.unwrap_or_default();
                if msgs.is_empty() {
                    empty += 1;
                    continue;
                }
                empty = 0;
                let entries = msgs
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .build()
                            .unwrap()
                    })
                    .collect::<Vec<_>>();
                sqs.delete_message_batch()
                    .queue_url(&queue)
                    .set_entries(Some(entries))
                    .send()
                    .await?;
                let mut counted = enqueued.lock().await;
                for m in msgs {
                    let body = m.body().unwrap_or_default();
                    if let Some(at) = body.find("LOAD") {
                        let id = &body[at..(at + 12).min(body.len())];
                        *counted.entry(id.to_owned()).or_default() += 1;
                    }
                }
            }
            anyhow::Ok(())
        }));
    }

    // (kind, id, status or error, latency)
    let results = Arc::new(Mutex::new(Vec::new()));
    let total = rate * seconds;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (kind, id, event) = request(n);
        let url = format!(
            "{}/2015-03-31/functions/webhook-ingress/invocations",
            instances[n % instances.len()].url
        );
        let (http, results) = (http.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = http.post(url).json(&event).send().await;
            let status = match answer {
                Ok(resp) if resp.status().is_success() => {
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    body["statusCode"].as_u64().unwrap_or(0) as u16
                }
                Ok(resp) => 1000 + resp.status().as_u16(),
                Err(_) => 999,
            };
            results
                .lock()
                .await
                .push((kind, id, status, sent.elapsed()));
        }));
    }
    let offered = started.elapsed();
    for t in tasks {
        let _ = t.await;
    }
    let wall = started.elapsed();
    sending.store(false, std::sync::atomic::Ordering::Relaxed);
    for d in drainers {
        d.await??;
    }
    let mut rss = 0;
    let mut durations = Vec::new();
    for instance in &instances {
        rss = rss.max(instance.peak_rss_kib().await.unwrap_or(0));
        durations.extend(instance.invocation_durations());
        instance.kill().await;
    }
    durations.sort();
    let enqueued = enqueued.lock().await.clone();
    let mut moto: HashMap<String, Vec<Duration>> = HashMap::new();
    for (op, took) in proxy.timings() {
        moto.entry(op).or_default().push(took);
    }

    let results = results.lock().await;
    let mut violations = Vec::new();
    let mut by_kind: HashMap<(Kind, u16), usize> = HashMap::new();
    let mut latencies: Vec<Duration> = Vec::new();
    for (kind, id, status, latency) in results.iter() {
        *by_kind.entry((*kind, *status)).or_default() += 1;
        latencies.push(*latency);
        let times = enqueued.get(id).copied().unwrap_or(0);
        if *status >= 500 {
            violations.push(format!("{id} ({kind:?}): answered {status}"));
        }
        match kind {
            Kind::Valid => {
                if !(200..300).contains(status) || times != 1 {
                    violations.push(format!(
                        "{id}: valid, answered {status}, enqueued {times} times"
                    ));
                }
            }
            _ => {
                if !(400..500).contains(status) || times != 0 {
                    violations.push(format!(
                        "{id} ({kind:?}): answered {status}, enqueued {times} times"
                    ));
                }
            }
        }
    }
    latencies.sort();
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort();
    println!("| ingress load | value |\n|---|---|");
    println!(
        "| offered | {total} webhooks at {rate}/s for {seconds} s ({instances_n} instances) |"
    );
    println!(
        "| sending took | {:.1} s (all answered after {:.1} s) |",
        offered.as_secs_f64(),
        wall.as_secs_f64()
    );
    for ((kind, status), n) in kinds {
        println!("| {kind:?} answered {status} | {n} |");
    }
    println!(
        "| enqueued (distinct ids / messages) | {} / {} |",
        enqueued.len(),
        enqueued.values().sum::<usize>()
    );
    println!(
        "| latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    println!(
        "| function duration p50 / p99 / max (`next` to answer: handler + its AWS calls) | {:.1} / {:.1} / {:.1} ms |",
        percentile(&durations, 0.5).as_secs_f64() * 1000.0,
        percentile(&durations, 0.99).as_secs_f64() * 1000.0,
        durations.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    // Where an invocation's time goes, on average: moto's answers, and the rest (the
    // handler, the SDK and the Runtime API round trips).
    let invocations = durations.len().max(1) as f64;
    let function_ms = durations.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0;
    let moto_ms = moto
        .values()
        .flatten()
        .map(Duration::as_secs_f64)
        .sum::<f64>()
        * 1000.0;
    println!(
        "| mean per invocation: function / in moto / the rest | {:.1} / {:.1} / {:.1} ms |",
        function_ms / invocations,
        moto_ms / invocations,
        (function_ms - moto_ms) / invocations
    );
    let mut ops: Vec<_> = moto.into_iter().collect();
    ops.sort();
    for (op, mut times) in ops {
        times.sort();
        println!(
            "| moto {op}: calls, p50 / p99 | {}, {:.1} / {:.1} ms |",
            times.len(),
            percentile(&times, 0.5).as_secs_f64() * 1000.0,
            percentile(&times, 0.99).as_secs_f64() * 1000.0
        );
    }
    println!(
        "| peak RSS of one function process | {:.1} MiB |",
        rss as f64 / 1024.0
    );
    println!("| violations | {} |", violations.len());
    for v in violations.iter().take(30) {
        eprintln!("VIOLATION {v}");
    }
    if !violations.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

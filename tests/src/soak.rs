//! The outbound soak: many messages of many tenants through the real outbound queue (FIFO,
//! with the template's redrive to the DLQ) in moto_server, the real `outbound-sender` binary
//! run as Lambda runs it ([`crate::runtime_stub`]) and driven by the devstack's SQS event
//! source (batches, `batchItemFailures`, redelivery after the visibility timeout), against
//! GOWA simulators injecting a seeded mix of faults ([`gowa_sim::Chaos`]) and going down and
//! up, while a killer SIGKILLs sender processes at chosen points (spread over the run). At the
//! end it audits the books ([`Report`]).
//!
//! Messages are fed while the run goes, at most [`Options::backlog`] waiting at once: moto's
//! FIFO queue costs O(messages queued) per call (every `SendMessage` reads the queue's
//! attributes, which count every message, several times; every received message reads them
//! again; an empty long poll over blocked message groups spins for its whole wait), so a queue
//! holding thousands makes every call take seconds and the run collapses. Measured in
//! BENCHMARKS.md ("the stall").
//!
//! The knobs that differ from production, and why: the queue's visibility timeout (the
//! redelivery wait after a crash) and the function timeout are short so that a run ends in
//! minutes; the HTTP timeout is short so that an accepted-then-hung send turns `unknown`
//! quickly; WhatsApp's rate-limit back-off (`TIMELOCK_BACKOFF_SECS`) is short for the same
//! reason and stays below the redelivery budget (visibility × maxReceiveCount), as in
//! production (60 s against 180 s × 5).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use gowa_sim::{Chaos, Faults, SimConfig, SimHandle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use wagate::Secret;
use wagate::secrets::{KmsSealer, SecretSealer};
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::TenantConfigStore;
use wagate::tenant::*;
use wagate_devstack::event_source::{Invoker, QueueSource};
use wagate_devstack::mappings::EventSources;

use crate::moto_proxy::{self, MotoProxy, Trap};
use crate::runtime_stub::Instance;
use crate::{Stack, workspace_root};

/// The soak's own moto_server region (heavy: kept apart from the other tests).
pub const REGION: &str = "eu-south-2";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub messages: usize,
    pub tenants: usize,
    /// Share of sends answered with a fault, split evenly over the chaos kinds.
    pub faults: f64,
    /// Simulated servers (tenants share them; every third tenant has a backup).
    pub servers: usize,
    /// Sender instances (processes), each fed by its own poller.
    pub instances: usize,
    /// SIGKILLs to aim at (the killer stops when the queue is drained).
    pub kills: usize,
    pub seed: u64,
    /// The directory of the `outbound-sender` binary (`target/debug`).
    pub bin_dir: PathBuf,
    /// The queue's visibility timeout in the run.
    pub visibility: Duration,
    /// The function's timeout (each invocation's deadline; the lock lives as long).
    pub function_timeout: Duration,
    /// Give up waiting for the queue to drain after this long.
    pub max_wall: Duration,
    /// At most this many messages wait in the queue at once (the feeder tops it up).
    pub backlog: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            messages: 1000,
            tenants: 20,
            faults: 0.2,
            servers: 6,
            instances: 3,
            kills: 100,
            seed: 17,
            bin_dir: std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"))
                .join("debug"),
            visibility: Duration::from_secs(12),
            function_timeout: Duration::from_secs(6),
            max_wall: Duration::from_secs(1800),
            backlog: 200,
        }
    }
}

/// Where a kill was aimed, and where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KillPoint {
    /// A lock write was held: no record of the batch's current key is locked.
    BeforeLock,
    /// The lock was written, the sender never saw the answer.
    AfterLock,
    /// At a random moment while an invocation was held (often mid provider call).
    InFlight,
    /// The server took the send; the `sent` record write was held.
    AcceptedNotRecorded,
    /// The batch response was posted (every record settled), the process killed before the
    /// runtime passed it on.
    BatchResponse,
    /// No aimed point came within the wait; killed anyway.
    Unaimed,
    /// The instance held an invocation past its deadline (Lambda's timeout).
    Timeout,
}

/// The end of the run.
#[derive(Debug, Default)]
pub struct Report {
    pub enqueued: usize,
    pub wall: Duration,
    /// Final state -> keys.
    pub states: BTreeMap<String, usize>,
    /// Failure reasons (failed, dlq) -> keys.
    pub reasons: BTreeMap<String, usize>,
    /// Keys the servers took exactly once / more than once / never.
    pub accepted_once: usize,
    pub accepted_never: usize,
    /// Keys accepted more than once, recorded `unknown`.
    pub duplicates_unknown: usize,
    /// Keys accepted more than once after a kill in the accepted-not-recorded window.
    pub duplicates_window: usize,
    /// Keys killed in the accepted-not-recorded window, and what became of them.
    pub window_keys: usize,
    pub window_resent: usize,
    pub window_not_resent: usize,
    /// Keys a kill caught with no outcome in their record (absent, `in_progress`,
    /// `retrying`): what a "takeover of an expired lock is `unknown`" policy would turn
    /// unknown.
    pub killed_unsettled: usize,
    /// Settled keys whose SQS message also ended in the DLQ (not a second state: the record
    /// holds the outcome, a redrive is acknowledged without sending).
    pub dlq_settled_copies: usize,
    pub kills: BTreeMap<KillPoint, usize>,
    pub chaos: BTreeMap<String, u64>,
    pub chaos_sends: u64,
    pub downs: usize,
    pub batches: usize,
    pub invocation_failures: usize,
    /// Every broken promise, one line each.
    pub violations: Vec<String>,
}

impl Report {
    /// Kills the killer aimed (timeouts apart).
    pub fn kills_total(&self) -> usize {
        self.kills
            .iter()
            .filter(|(p, _)| **p != KillPoint::Timeout)
            .map(|(_, n)| n)
            .sum()
    }

    /// The audit as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |k: &str, v: String| out.push_str(&format!("| {k} | {v} |\n"));
        row("messages enqueued", self.enqueued.to_string());
        for (state, n) in &self.states {
            row(&format!("final state `{state}`"), n.to_string());
        }
        for (reason, n) in &self.reasons {
            row(&format!("  reason: {reason}"), n.to_string());
        }
        row(
            "keys a kill caught with no outcome recorded",
            self.killed_unsettled.to_string(),
        );
        row(
            "settled keys whose SQS message also went to the DLQ",
            self.dlq_settled_copies.to_string(),
        );
        row(
            "accepted by a server exactly once",
            self.accepted_once.to_string(),
        );
        row("accepted by no server", self.accepted_never.to_string());
        row(
            "accepted more than once, recorded `unknown`",
            self.duplicates_unknown.to_string(),
        );
        row(
            "accepted more than once after a kill between acceptance and record",
            self.duplicates_window.to_string(),
        );
        row(
            "keys killed between acceptance and record (resent / not resent)",
            format!(
                "{} ({} / {})",
                self.window_keys, self.window_resent, self.window_not_resent
            ),
        );
        for (point, n) in &self.kills {
            row(&format!("SIGKILL {point:?}"), n.to_string());
        }
        row("SIGKILLs", self.kills_total().to_string());
        row(
            "sends the servers saw under chaos",
            self.chaos_sends.to_string(),
        );
        for (fault, n) in &self.chaos {
            row(&format!("  injected {fault}"), n.to_string());
        }
        row("server down/up cycles", self.downs.to_string());
        row(
            "batches (failed invocations)",
            format!("{} ({})", self.batches, self.invocation_failures),
        );
        row(
            "wall time (first message fed to queue drained)",
            format!("{:.1} s", self.wall.as_secs_f64()),
        );
        row(
            "messages/s",
            format!(
                "{:.1}",
                self.enqueued as f64 / self.wall.as_secs_f64().max(0.001)
            ),
        );
        row("violations", self.violations.len().to_string());
        out
    }
}

fn chaos_mix(faults: f64, seed: u64) -> Chaos {
    // Six kinds drawn per send; the seventh (connection refused) is the down/up schedule.
    let each = faults / 6.0;
    Chaos {
        seed,
        server_error: each,
        reset: each,
        accept_then_hang: each,
        too_many_requests: each,
        logged_out: each,
        slow: each,
        slow_ms: 300,
    }
}

fn endpoint(base_url: &str) -> Endpoint<Secret> {
    Endpoint {
        base_url: base_url.into(),
        credentials: Credentials::None,
        device_id: Some(gowa_sim::DEFAULT_DEVICE_ID.into()),
        region: None,
        provider: None,
        webhook_source_cidrs: Vec::new(),
        webhook_wiring: Default::default(),
    }
}

/// The webhook secret of every soak tenant.
pub const WEBHOOK_SECRET: &str = "soak-webhook-secret";

/// A GOWA tenant with the rate limits at their maximum, sealed with KMS and stored.
pub async fn add_tenant(stack: &Stack, id: &str, primary: &str, backup: Option<&str>) {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let cfg: TenantConfig<Secret> = TenantConfig {
        tenant_id: id.parse().unwrap(),
        provider: ProviderKind::Gowa,
        primary: endpoint(primary),
        backup: backup.map(endpoint),
        webhook_secrets: vec![WebhookSecret {
            id: "s1".into(),
            secret: Secret::new(WEBHOOK_SECRET),
            expires_at: None,
        }],
        active_endpoint: EndpointRole::Primary,
        is_active: true,
        connection_status: ConnectionStatus::Connected,
        failback: Default::default(),
        limits: Limits {
            outbound_per_minute: Limits::MAX_OUTBOUND_PER_MINUTE,
            inbound_per_second: Limits::MAX_INBOUND_PER_SECOND,
        },
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let sealer = KmsSealer::new(stack.kms.clone(), stack.kms_key_id());
    let mut sealed = Vec::new();
    for (p, s) in cfg.secret_slots() {
        sealed.push(sealer.seal(id, p, s).await.unwrap());
    }
    DynamoTenantStore::new(stack.dynamodb.clone(), stack.tenants_table())
        .create(&cfg.with_secrets(sealed).unwrap())
        .await
        .unwrap();
}

fn key_of(i: usize) -> String {
    format!("soak-{i:06}")
}

/// The tenant and key of an outbound body.
fn ids(body: &str) -> Option<(String, String)> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some((
        v["tenantId"].as_str()?.to_owned(),
        v["idempotencyKey"].as_str()?.to_owned(),
    ))
}

/// Runs the soak and audits it.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let stack = Stack::new_in(REGION).await;
    let env = stack.env();
    let (queue_url, dlq_url) = (
        env["OUTBOUND_QUEUE_URL"].clone(),
        env["OUTBOUND_DLQ_URL"].clone(),
    );
    let template = wagate_devstack::Template::load(&workspace_root().join("template.yaml"))?;
    let sources = EventSources::from_template(&template, &stack.provisioned.stack_name)?;
    let mut mapping = sources
        .queues
        .into_iter()
        .find(|m| m.queue.logical_id == "OutboundQueue")
        .ok_or_else(|| anyhow::anyhow!("no OutboundQueue mapping in template.yaml"))?;
    let max_receive = mapping.queue.max_receive_count.unwrap_or(5);
    mapping.queue.visibility_timeout = opts.visibility;
    mapping.function.timeout = opts.function_timeout;
    mapping.batching_window = Duration::ZERO;
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            opts.visibility.as_secs().to_string(),
        )
        .send()
        .await?;
    let source = QueueSource {
        mapping,
        url: queue_url.clone(),
        arn: stack.provisioned.arns["OutboundQueue"].clone(),
        region: stack.provisioned.region.clone(),
    };

    // Servers, each with its own slice of the chaos.
    let mut sims: Vec<SimHandle> = Vec::new();
    for i in 0..opts.servers {
        let sim = gowa_sim::start(SimConfig::default()).await?;
        sim.set_faults(Faults {
            chaos: Some(chaos_mix(opts.faults, opts.seed.wrapping_add(i as u64))),
            ..Faults::default()
        });
        sims.push(sim);
    }
    let sims = Arc::new(sims);
    // Tenants: every third with a backup on the next server; servers shared.
    let mut tenants = Vec::new();
    for t in 0..opts.tenants {
        let id = format!("soak{t:03}");
        let primary = sims[t % sims.len()].base_url();
        let backup = (t % 3 == 0).then(|| sims[(t + 1) % sims.len()].base_url());
        add_tenant(&stack, &id, &primary, backup.as_deref()).await;
        tenants.push(id);
    }

    // Sender processes, each behind its own serialising DynamoDB proxy (one shared gate).
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    let mut proc_env = env.clone();
    for key in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PATH",
    ] {
        if let Ok(v) = std::env::var(key) {
            proc_env.insert(key.into(), v);
        }
    }
    for (k, v) in [
        ("AWS_REGION", REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("WAGATE_EGRESS_ALLOW_CIDRS", "127.0.0.0/8"),
        ("HTTP_CONNECT_TIMEOUT_MS", "1000"),
        ("HTTP_REQUEST_TIMEOUT_MS", "1500"),
        ("TIMELOCK_BACKOFF_SECS", "2"),
        ("BREAKER_COOL_DOWN_SECS", "2"),
        ("OUTBOUND_MAX_RECEIVE_COUNT", "5"),
        ("RUST_LOG", "warn"),
    ] {
        proc_env.insert(k.into(), v.into());
    }
    proc_env.insert("OUTBOUND_MAX_RECEIVE_COUNT".into(), max_receive.to_string());
    let binary = opts.bin_dir.join("outbound-sender");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: cargo build -p outbound-sender",
        binary.display()
    );
    let mut proxies: Vec<MotoProxy> = Vec::new();
    let mut instances: Vec<Arc<Instance>> = Vec::new();
    for i in 0..opts.instances {
        let proxy = moto_proxy::start(gate.clone(), true).await;
        let mut e = proc_env.clone();
        e.insert("AWS_ENDPOINT_URL_DYNAMODB".into(), proxy.url.clone());
        let instance = Instance::start(
            &format!("outbound-sender-{i}"),
            binary.clone(),
            e,
            opts.function_timeout,
        )
        .await?;
        proxies.push(proxy);
        instances.push(Arc::new(instance));
    }

    // Enqueue: round-robin over tenants, ten per SendMessageBatch, fed while the run goes so
    // that at most `backlog` messages wait in the queue (moto_server's FIFO queue costs
    // O(messages queued) per message sent and received: a queue of thousands slows every
    // call; production traffic arrives over time, too).
    let expected: HashMap<String, String> = (0..opts.messages)
        .map(|i| (key_of(i), tenants[i % tenants.len()].clone()))
        .collect();
    let run_started = Instant::now();
    let fed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let feeder = {
        let (sqs, queue_url, tenants, fed) = (
            stack.sqs.clone(),
            queue_url.clone(),
            tenants.clone(),
            fed.clone(),
        );
        let (messages, backlog) = (opts.messages, opts.backlog.max(10));
        tokio::spawn(async move {
            let mut next = 0;
            while next < messages {
                let left = queue_depth(&sqs, &queue_url).await?.0;
                if left as usize + 10 > backlog {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                let room = backlog - left as usize;
                let upto = (next + room).min(messages);
                for chunk in (next..upto).collect::<Vec<_>>().chunks(10) {
                    let entries = chunk
                        .iter()
                        .map(|&i| {
                            let tenant = &tenants[i % tenants.len()];
                            let key = key_of(i);
                            let body = json!({"tenantId": tenant, "idempotencyKey": key,
                                "to": "6281234567890",
                                "content": {"type": "text", "body": format!("soak {key}")}});
                            SendMessageBatchRequestEntry::builder()
                                .id(format!("m{i}"))
                                .message_body(body.to_string())
                                .message_group_id(tenant)
                                .message_deduplication_id(&key)
                                .build()
                                .unwrap()
                        })
                        .collect::<Vec<_>>();
                    let out = sqs
                        .send_message_batch()
                        .queue_url(&queue_url)
                        .set_entries(Some(entries))
                        .send()
                        .await?;
                    anyhow::ensure!(
                        out.failed().is_empty(),
                        "enqueue failed: {:?}",
                        out.failed()
                    );
                    fed.fetch_add(chunk.len(), Ordering::Relaxed);
                }
                next = upto;
            }
            anyhow::Ok(())
        })
    };

    let done = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed_invocations = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // One poller per instance, as Lambda's poller runs concurrent batches.
    let mut pollers = Vec::new();
    // What each poller is doing and since when (for the stall report).
    let phases: Arc<std::sync::Mutex<Vec<(String, Instant)>>> =
        Arc::new(std::sync::Mutex::new(vec![
            (
                "starting".to_owned(),
                Instant::now()
            );
            instances.len()
        ]));
    for (n, instance) in instances.iter().enumerate() {
        let (source, sqs, done) = (source.clone(), stack.sqs.clone(), done.clone());
        let (batches, failed) = (batches.clone(), failed_invocations.clone());
        let invoker = Invoker::new(instance.url.clone())?;
        let phases = phases.clone();
        let phase = move |what: String| phases.lock().unwrap()[n] = (what, Instant::now());
        pollers.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                phase("polling".into());
                // Bounded: a wedged request to moto_server must not stop the poller (the
                // records come back after the visibility timeout).
                let polled = tokio::time::timeout(
                    Duration::from_secs(60),
                    source.poll_once(&sqs, &invoker, Duration::from_secs(1)),
                )
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("poll timed out after 60 s")));
                phase(match &polled {
                    Ok(Some(r)) => format!("after a batch ({})", r.invocation),
                    Ok(None) => "after an empty receive".into(),
                    Err(e) => format!("after an error ({e:#})"),
                });
                match polled {
                    Ok(Some(report)) => {
                        batches.fetch_add(1, Ordering::Relaxed);
                        if report.invocation != "answered" {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(error = %format!("{err:#}"), "poll failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }));
    }

    // Servers going down and up.
    let downs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flapper = {
        let (sims, done, downs) = (sims.clone(), done.clone(), downs.clone());
        let mut rng = StdRng::seed_from_u64(opts.seed ^ 0xd0);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(1500..4000))).await;
                if opts.faults <= 0.0 || done.load(Ordering::Relaxed) {
                    continue;
                }
                let sim = &sims[rng.random_range(0..sims.len())];
                let _ = sim.set_down(true).await;
                downs.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
                let _ = sim.set_down(false).await;
            }
        })
    };

    // The killer.
    let kills_made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killer = {
        let (instances, proxies, done) = (instances.clone(), proxies.clone(), done.clone());
        let kills_made = kills_made.clone();
        let (fed, messages) = (fed.clone(), opts.messages.max(1));
        let db = aws_sdk_dynamodb::Client::new(&stack.sdk);
        let table = env["MESSAGES_TABLE"].clone();
        let want = opts.kills;
        let timeout = opts.function_timeout;
        let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x4b);
        tokio::spawn(async move {
            let mut kills: BTreeMap<KillPoint, usize> = BTreeMap::new();
            // Key -> when a kill last caught it without an outcome.
            let mut window: HashMap<String, time::OffsetDateTime> = HashMap::new();
            let mut made = 0;
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
                // As Lambda ends a runtime past its timeout: an instance stuck beyond its
                // invocation's deadline is killed and replaced (not counted as an aimed kill).
                for instance in instances.iter() {
                    if instance.stuck_for().await > timeout + Duration::from_secs(2) {
                        let events = instance.kill_and_restart().await.unwrap_or_default();
                        *kills.entry(KillPoint::Timeout).or_default() += 1;
                        kills_made.fetch_add(1, Ordering::Relaxed);
                        let at = time::OffsetDateTime::now_utc();
                        for key in unsettled(&events, &db, &table).await {
                            window.insert(key, at);
                        }
                    }
                }
                // Spread over the run: no more kills than the share of messages fed so far
                // (plus a few, so that a short run gets its kills early).
                let share = want * fed.load(Ordering::Relaxed) / messages;
                if made >= want || made > share + 5 {
                    continue;
                }
                let i = rng.random_range(0..instances.len());
                let (instance, proxy) = (&instances[i], &proxies[i]);
                let aim = match rng.random_range(0..5) {
                    0 => KillPoint::BeforeLock,
                    1 => KillPoint::AfterLock,
                    2 => KillPoint::InFlight,
                    3 => KillPoint::AcceptedNotRecorded,
                    _ => KillPoint::BatchResponse,
                };
                let landed = aim_and_kill(instance, proxy, aim, &mut rng).await;
                if let Some((point, events)) = landed {
                    *kills.entry(point).or_default() += 1;
                    made += 1;
                    kills_made.fetch_add(1, Ordering::Relaxed);
                    let at = time::OffsetDateTime::now_utc();
                    for key in unsettled(&events, &db, &table).await {
                        window.insert(key, at);
                    }
                }
            }
            (kills, window)
        })
    };

    // Wait until the queue is drained (nothing visible, nothing in flight).
    let mut drained_checks = 0;
    let mut printed = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let attrs = stack
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let count = |name: QueueAttributeName| {
            attrs
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let left = count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        let all_fed = fed.load(Ordering::Relaxed) >= opts.messages;
        drained_checks = if left == 0 && all_fed {
            drained_checks + 1
        } else {
            0
        };
        if feeder.is_finished() && !all_fed {
            break;
        }
        if printed.elapsed() >= Duration::from_secs(10) {
            printed = Instant::now();
            let visible = count(QueueAttributeName::ApproximateNumberOfMessages);
            eprintln!(
                "soak: {} fed, {left} left in the queue ({visible} visible) after {:.0} s, {} batches",
                fed.load(Ordering::Relaxed),
                run_started.elapsed().as_secs_f64(),
                batches.load(Ordering::Relaxed)
            );
            let now: Vec<String> = phases
                .lock()
                .unwrap()
                .iter()
                .map(|(what, since)| format!("{what} for {:.1} s", since.elapsed().as_secs_f64()))
                .collect();
            eprintln!(
                "soak:   kills made {}; pollers: {now:?}",
                kills_made.load(Ordering::Relaxed)
            );
            for (i, instance) in instances.iter().enumerate() {
                eprintln!(
                    "soak:   instance {i}: {:?}; proxy holds {} requests",
                    instance.status().await,
                    proxies[i].in_flight()
                );
            }
        }
        if drained_checks >= 2 || run_started.elapsed() > opts.max_wall {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    if feeder.is_finished() {
        feeder.await??;
    } else {
        feeder.abort();
    }
    let (kills, window) = killer.await?;
    for p in pollers {
        let _ = p.await;
    }
    let _ = flapper.await;
    let wall = run_started.elapsed();
    let killed_unsettled = window.len();
    for instance in &instances {
        instance.kill().await;
    }
    tracing::info!(took = ?started.elapsed(), "soak run over, auditing");

    // The books.
    let records = scan_records(&stack, &env["MESSAGES_TABLE"]).await?;
    let dlq = drain_dlq(&stack, &dlq_url).await?;
    let mut accepted: HashMap<String, Vec<time::OffsetDateTime>> = HashMap::new();
    let mut report = Report {
        enqueued: opts.messages,
        wall,
        kills,
        downs: downs.load(Ordering::Relaxed),
        batches: batches.load(Ordering::Relaxed),
        invocation_failures: failed_invocations.load(Ordering::Relaxed),
        killed_unsettled,
        ..Report::default()
    };
    for sim in sims.iter() {
        for r in sim.requests_to("/send/message") {
            if r.status.is_some_and(|s| (200..300).contains(&s))
                && let Some(key) = r
                    .json
                    .as_ref()
                    .and_then(|j| j["message"].as_str())
                    .and_then(|m| m.strip_prefix("soak "))
            {
                accepted
                    .entry(key.to_owned())
                    .or_default()
                    .push(r.received_at);
            }
        }
        let (sends, counts) = sim.chaos_counts();
        report.chaos_sends += sends;
        for (k, n) in counts {
            *report.chaos.entry(k).or_default() += n;
        }
    }
    for (key, tenant) in &expected {
        let record = records.get(&format!("{tenant}#{key}"));
        let times = accepted.get(key).cloned().unwrap_or_default();
        let taken = times.len();
        let state = record.map(|r| r.state.as_str()).unwrap_or("none");
        let settled = matches!(state, "sent" | "delivered" | "read" | "failed" | "unknown");
        // The record is the book: a settled key whose SQS message still went to the DLQ (its
        // invocation failed after the record was written, on the last receive) keeps its
        // state; a redrive of that copy is acknowledged without a send.
        let final_state = if settled {
            if dlq.contains(key) {
                report.dlq_settled_copies += 1;
            }
            state
        } else if dlq.contains(key) {
            "dlq"
        } else {
            state
        };
        *report.states.entry(final_state.to_owned()).or_default() += 1;
        if matches!(final_state, "failed" | "dlq") {
            let reason = match record {
                Some(r) => format!(
                    "record {}, {}",
                    r.state,
                    r.error_class.as_deref().unwrap_or("no error class")
                ),
                None => "no record (never locked: deferred or skipped on every receive)".into(),
            };
            *report
                .reasons
                .entry(format!("{final_state}: {reason}"))
                .or_default() += 1;
        }
        match final_state {
            "sent" | "delivered" | "read" | "failed" | "unknown" | "dlq" => {}
            other => report.violations.push(format!(
                "{key}: lost (enqueued, record {other}, not in the DLQ)"
            )),
        }
        // A server took it before a kill that left its record without an outcome.
        let in_window = window
            .get(key)
            .is_some_and(|killed| times.iter().any(|t| t <= killed));
        if in_window {
            report.window_keys += 1;
            if taken > 1 {
                report.window_resent += 1;
            } else {
                report.window_not_resent += 1;
            }
        }
        match taken {
            0 => {
                report.accepted_never += 1;
                if final_state == "sent" {
                    report
                        .violations
                        .push(format!("{key}: recorded sent but no server took it"));
                }
            }
            1 => report.accepted_once += 1,
            n if final_state == "unknown" => {
                report.duplicates_unknown += 1;
                tracing::info!(key, n, "accepted more than once, recorded unknown");
            }
            n if in_window => {
                report.duplicates_window += 1;
                tracing::info!(key, n, "accepted again after a kill in the window");
            }
            n => report.violations.push(format!(
                "{key}: accepted {n} times (arrivals {times:?}), recorded {final_state} \
                 (duplicate send; caught unsettled by a kill at {:?})",
                window.get(key)
            )),
        }
        if taken >= 1 && matches!(final_state, "failed" | "dlq") && !in_window {
            report.violations.push(format!(
                "{key}: a server took it but it is recorded {final_state}"
            ));
        }
    }
    for key in &dlq {
        if !expected.contains_key(key) {
            report
                .violations
                .push(format!("{key}: in the DLQ but never enqueued"));
        }
    }
    for instance in &instances {
        instance.kill().await;
    }
    Ok(report)
}

/// Messages in the queue: (visible + in flight, visible).
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<(u64, u64)> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let count = |name: QueueAttributeName| {
        attrs
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let visible = count(QueueAttributeName::ApproximateNumberOfMessages);
    Ok((
        visible + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        visible,
    ))
}

/// Arms the trap for `aim` on one instance, waits (bounded) for it, kills the process and
/// starts a new one. Returns where the kill landed, or `None` when the instance had nothing
/// in flight to kill.
async fn aim_and_kill(
    instance: &Instance,
    proxy: &MotoProxy,
    aim: KillPoint,
    rng: &mut StdRng,
) -> Option<(KillPoint, Vec<Value>)> {
    let wait = Duration::from_secs(3);
    let landed = match aim {
        KillPoint::BeforeLock | KillPoint::AfterLock | KillPoint::AcceptedNotRecorded => {
            let trap = match aim {
                KillPoint::BeforeLock => Trap::BeforeLock,
                KillPoint::AfterLock => Trap::AfterLock,
                _ => Trap::BeforeSentRecord,
            };
            let sprung = tokio::time::timeout(wait, proxy.arm(trap)).await;
            proxy.disarm();
            match sprung {
                Ok(Ok(_)) => aim,
                _ => KillPoint::Unaimed,
            }
        }
        KillPoint::InFlight => {
            // A random moment while the instance holds an invocation.
            let until = Instant::now() + wait;
            while instance.in_flight().await.is_empty() && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
            if instance.in_flight().await.is_empty() {
                KillPoint::Unaimed
            } else {
                KillPoint::InFlight
            }
        }
        KillPoint::BatchResponse | KillPoint::Unaimed | KillPoint::Timeout => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let tx = std::sync::Mutex::new(Some(tx));
            instance.on_response(Some(Arc::new(move |_id: &str| {
                // Dropped only while the killer waits for it.
                match tx.lock().unwrap().take() {
                    Some(tx) => tx.send(()).is_err(),
                    None => true,
                }
            })));
            let sprung = tokio::time::timeout(wait, rx).await;
            let point = if matches!(sprung, Ok(Ok(()))) {
                KillPoint::BatchResponse
            } else {
                KillPoint::Unaimed
            };
            if point == KillPoint::Unaimed {
                instance.on_response(None);
            }
            point
        }
    };
    if landed == KillPoint::Unaimed && instance.in_flight().await.is_empty() {
        instance.on_response(None);
        return None;
    }
    let killed = instance.kill_and_restart().await;
    instance.on_response(None);
    match killed {
        Ok(events) => Some((landed, events)),
        Err(err) => {
            tracing::warn!(error = %err, "restarting the sender failed");
            Some((landed, Vec::new()))
        }
    }
}

/// The keys of the killed invocations whose record had no outcome right after the kill
/// (absent, `in_progress` or `retrying`). The audit counts those a server took before the
/// kill as the "provider accepted, record not written" window.
async fn unsettled(events: &[Value], db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let keys: Vec<(String, String)> = events
        .iter()
        .flat_map(|e| e["Records"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["body"].as_str().and_then(ids))
        .collect();
    let mut out = Vec::new();
    for (tenant, key) in keys {
        let state = db
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(format!("{tenant}#{key}")))
            .consistent_read(true)
            .send()
            .await
            .ok()
            .and_then(|o| o.item)
            .and_then(|i| i.get("state").and_then(|v| v.as_s().ok()).cloned());
        if !matches!(
            state.as_deref(),
            Some("sent" | "delivered" | "read" | "failed" | "unknown")
        ) {
            out.push(key);
        }
    }
    out
}

/// The fields of a record the audit reads.
#[derive(Debug, Clone)]
pub struct Record {
    pub state: String,
    pub error_class: Option<String>,
}

async fn scan_records(stack: &Stack, table: &str) -> anyhow::Result<HashMap<String, Record>> {
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let mut out = HashMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items() {
            let s = |name: &str| match item.get(name) {
                Some(AttributeValue::S(v)) => Some(v.clone()),
                _ => None,
            };
            if let (Some(pk), Some(state)) = (s("pk"), s("state")) {
                out.insert(
                    pk,
                    Record {
                        state,
                        error_class: s("errorClass"),
                    },
                );
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The keys in the DLQ (received and left there).
async fn drain_dlq(stack: &Stack, dlq_url: &str) -> anyhow::Result<HashSet<String>> {
    let mut keys = HashSet::new();
    let mut empty = 0;
    while empty < 2 {
        let got = stack
            .sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .wait_time_seconds(1)
            .send()
            .await?;
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            empty += 1;
        }
        for m in msgs {
            if let Some((_, key)) = m.body().and_then(ids) {
                keys.insert(key);
            }
        }
    }
    Ok(keys)
}

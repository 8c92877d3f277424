//! Benchmark of the outbound sender's fan-out (issue 4 budget): a batch of 10 records for 10
//! tenants against a simulator answering every send after 200 ms must finish in under twice
//! one send, because tenants run concurrently. Also prints the AWS calls per message in the
//! steady state, and what the batch's DynamoDB work alone (its lock transaction and its 10
//! outcome writes, no sends) costs on moto_server. Needs moto_server (any port):
//!
//! ```sh
//! AWS_ENDPOINT_URL=http://127.0.0.1:4601 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=t \
//!   AWS_SECRET_ACCESS_KEY=t cargo run -p wagate-tests --example outbound_bench
//! ```

#[path = "../tests/outbound_common/mod.rs"]
mod outbound_common;

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use outbound_common::{sender_via, transaction_serializing_moto_proxy};
use outbound_sender::Settings;
use time::OffsetDateTime;
use wagate::Secret;
use wagate::delivery::store::DeliveryWriter;
use wagate::delivery::{Begin, BeginRequest, Lock};
use wagate::outbound::OutboundMessage;
use wagate::outbound::ratelimit::RateWindow;
use wagate::secrets::{KmsSealer, SecretSealer};
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::TenantConfigStore;
use wagate::tenant::*;
use wagate_tests::Stack;

const TENANTS: usize = 10;
const ROUNDS: usize = 7;

fn record(id: &str, tenant: &str, key: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.body = Some(
        serde_json::json!({"tenantId": tenant, "idempotencyKey": key, "to": "6289685028129",
            "content": {"type": "text", "body": "benchmark"}})
        .to_string(),
    );
    m.attributes = [("MessageGroupId".to_string(), tenant.to_string())].into();
    m
}

fn event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let stack = Stack::new().await;
    let sim = gowa_sim::start(gowa_sim::SimConfig::default()).await?;
    sim.set_faults(gowa_sim::Faults {
        latency_ms: 200,
        ..Default::default()
    });
    let sealer = KmsSealer::new(aws_sdk_kms::Client::new(&stack.sdk), stack.kms_key_id());
    let store = DynamoTenantStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        stack.tenants_table(),
    );
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    for t in 0..TENANTS {
        let id = format!("tenant{t}");
        let cfg: TenantConfig<Secret> = TenantConfig {
            tenant_id: id.parse()?,
            provider: ProviderKind::Gowa,
            primary: Endpoint {
                base_url: sim.base_url(),
                credentials: Credentials::Basic {
                    username: "admin".into(),
                    password: Secret::new("bench-password-1234"),
                },
                device_id: Some("demo".into()),
                region: None,
                provider: None,
                webhook_source_cidrs: Vec::new(),
                webhook_wiring: Default::default(),
            },
            backup: None,
            webhook_secrets: vec![WebhookSecret {
                id: "s1".into(),
                secret: Secret::new("bench-webhook-secret"),
                expires_at: None,
            }],
            active_endpoint: EndpointRole::Primary,
            is_active: true,
            connection_status: ConnectionStatus::Connected,
            failback: Default::default(),
            limits: Limits {
                outbound_per_minute: 1000,
                ..Limits::default()
            },
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut sealed = Vec::new();
        for (purpose, s) in cfg.secret_slots() {
            sealed.push(sealer.seal(&id, purpose, s).await?);
        }
        store.create(&cfg.with_secrets(sealed)?).await?;
    }
    // DynamoDB through a proxy that serializes TransactWriteItems: moto_server is not
    // thread-safe for concurrent transactions (it answers 500 and the SDK retries with
    // back-off), which DynamoDB is. Serialized, moto adds its per-request time to the batch.
    let proxy = transaction_serializing_moto_proxy().await;
    let sender = sender_via(&stack, &proxy, Settings::default());
    let deadline = || OffsetDateTime::now_utc() + Duration::from_secs(30);

    // Warm every tenant's config (cold start: one config read and KMS calls per tenant).
    let warm: Vec<_> = (0..TENANTS)
        .map(|t| record(&format!("w{t}"), &format!("tenant{t}"), "warm"))
        .collect();
    let out = sender.handle_batch(event(warm), deadline()).await;
    assert_eq!(out.count("sent"), TENANTS);

    let mut one = Vec::new();
    let mut batch = Vec::new();
    let mut spread = Vec::new();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    stack.counter.reset();
    for round in 0..ROUNDS {
        let start = Instant::now();
        let out = sender
            .handle_batch(
                event(vec![record(
                    &format!("o{round}"),
                    "tenant0",
                    &format!("one-{round}"),
                )]),
                deadline(),
            )
            .await;
        one.push(start.elapsed());
        assert_eq!(out.count("sent"), 1);

        let records = (0..TENANTS)
            .map(|t| {
                record(
                    &format!("b{round}-{t}"),
                    &format!("tenant{t}"),
                    &format!("batch-{round}"),
                )
            })
            .collect();
        sim.clear_requests();
        let start = Instant::now();
        let wall_start = OffsetDateTime::now_utc();
        let out = sender.handle_batch(event(records), deadline()).await;
        batch.push(start.elapsed());
        let wall_end = OffsetDateTime::now_utc();
        let arrivals: Vec<_> = sim
            .requests_to("/send/message")
            .iter()
            .map(|r| r.received_at)
            .collect();
        let first = *arrivals.iter().min().unwrap();
        let last = *arrivals.iter().max().unwrap();
        spread.push(Duration::try_from(last - first).unwrap_or_default());
        before.push(Duration::try_from(first - wall_start).unwrap_or_default());
        after.push(Duration::try_from(wall_end - last).unwrap_or_default());
        assert_eq!(out.count("sent"), TENANTS);
    }
    let messages = ROUNDS * (1 + TENANTS);
    let c = &stack.counter;
    let (one_med, batch_med) = (median(one.clone()), median(batch.clone()));
    println!("simulator latency per send      : 200 ms");
    println!(
        "one send (1 record), median      : {:>6.1} ms  (min {:.1}, max {:.1})",
        ms(one_med),
        ms(*one.iter().min().unwrap()),
        ms(*one.iter().max().unwrap())
    );
    println!(
        "10 records / 10 tenants, median  : {:>6.1} ms  (min {:.1}, max {:.1})",
        ms(batch_med),
        ms(*batch.iter().min().unwrap()),
        ms(*batch.iter().max().unwrap())
    );
    println!(
        "first to last send arrival, med. : {:>6.1} ms  (the 10 sends start together)",
        ms(median(spread.clone()))
    );
    println!(
        "batch start to first send, med.  : {:>6.1} ms  (cached configs, the lock transaction)",
        ms(median(before.clone()))
    );
    println!(
        "last send arrival to end, med.   : {:>6.1} ms  (200 ms latency, the outcome writes)",
        ms(median(after.clone()))
    );
    println!(
        "ratio batch / one send           : {:>6.2}  (budget < 2.00)",
        batch_med.as_secs_f64() / one_med.as_secs_f64()
    );
    println!("steady state over {messages} messages:");
    println!("  KMS calls                      : {}", c.count("KMS"));
    println!(
        "  config reads (GetItem)         : {}",
        c.count_op("DynamoDB", "GetItem")
    );
    println!(
        "  TransactWriteItems per message : {:.2}",
        c.count_op("DynamoDB", "TransactWriteItems") as f64 / messages as f64
    );
    println!(
        "  UpdateItem per message         : {:.2}",
        c.count_op("DynamoDB", "UpdateItem") as f64 / messages as f64
    );
    println!(
        "  DynamoDB requests per message  : {:.2}",
        c.count("DynamoDB") as f64 / messages as f64
    );

    // The DynamoDB work of the same messages alone, no sends, through the same proxy: what
    // moto_server spends on it (one Python thread), which the batch cannot overlap with the
    // sends: the locks come before them and the outcome writes after.
    let delivery = sender.delivery().clone();
    let (mut lock_one, mut lock_ten, mut write_one, mut write_ten) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let msgs: Vec<OutboundMessage> = (0..TENANTS)
            .map(|t| {
                OutboundMessage::parse(
                    record("c", &format!("tenant{t}"), &format!("calibrate-{round}"))
                        .body
                        .as_deref()
                        .unwrap(),
                )
                .unwrap()
            })
            .collect();
        let single = OutboundMessage::parse(
            record("c", "tenant0", &format!("calibrate-one-{round}"))
                .body
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let start = Instant::now();
        let one = delivery
            .begin(
                &single,
                "c",
                "bench",
                deadline(),
                &RateWindow::at(&single.tenant_id, 1000, now),
                now,
            )
            .await?;
        lock_one.push(start.elapsed());
        let Begin::Acquired(one) = one else {
            anyhow::bail!("{one:?}")
        };
        let start = Instant::now();
        mark_sent(&delivery, one, single.tenant_id.clone()).await;
        write_one.push(start.elapsed());

        let reqs: Vec<BeginRequest> = msgs
            .iter()
            .map(|m| BeginRequest {
                msg: m,
                sqs_message_id: "c",
                owner: "bench",
                window: RateWindow::at(&m.tenant_id, 1000, now),
            })
            .collect();
        let start = Instant::now();
        let begun = delivery.begin_many(&reqs, deadline(), now).await;
        lock_ten.push(start.elapsed());
        let mut writes = tokio::task::JoinSet::new();
        let start = Instant::now();
        for (b, m) in begun.into_iter().zip(&msgs) {
            let Ok(Begin::Acquired(lock)) = b else {
                anyhow::bail!("{b:?}")
            };
            writes.spawn(mark_sent(&delivery, lock, m.tenant_id.clone()));
        }
        writes.join_all().await;
        write_ten.push(start.elapsed());
    }
    println!("DynamoDB work alone (moto_server via the proxy), medians:");
    println!(
        "  lock 1 record / 10 records     : {:>6.1} ms / {:>6.1} ms  (one TransactWriteItems each)",
        ms(median(lock_one)),
        ms(median(lock_ten))
    );
    println!(
        "  outcome write 1 / 10 concurrent: {:>6.1} ms / {:>6.1} ms  (UpdateItem)",
        ms(median(write_one)),
        ms(median(write_ten))
    );

    // The same two measurements with the delivery and rate tables emptied before each one
    // (outside the timing). moto_server 5.2.5 deep-copies a table once per item of a
    // TransactWriteItems, so its transactions slow down as the table grows (34 ms for 20 items
    // on an empty table, 632 ms at 1,000 items); DynamoDB's do not depend on table size. Small
    // tables take that artefact out of the ratio; the figures above keep it in.
    let tables = [
        stack.env()["MESSAGES_TABLE"].clone(),
        stack.env()["RATE_LIMITS_TABLE"].clone(),
    ];
    let (mut one_small, mut batch_small) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        empty_tables(&stack.dynamodb, &tables).await?;
        let start = Instant::now();
        let out = sender
            .handle_batch(
                event(vec![record(
                    &format!("so{round}"),
                    "tenant0",
                    &format!("small-one-{round}"),
                )]),
                deadline(),
            )
            .await;
        one_small.push(start.elapsed());
        assert_eq!(out.count("sent"), 1);
        empty_tables(&stack.dynamodb, &tables).await?;
        let records = (0..TENANTS)
            .map(|t| {
                record(
                    &format!("sb{round}-{t}"),
                    &format!("tenant{t}"),
                    &format!("small-batch-{round}"),
                )
            })
            .collect();
        let start = Instant::now();
        let out = sender.handle_batch(event(records), deadline()).await;
        batch_small.push(start.elapsed());
        assert_eq!(out.count("sent"), TENANTS);
    }
    let (one_med, batch_med) = (median(one_small), median(batch_small));
    println!("with the delivery and rate tables emptied before each measurement, medians:");
    println!(
        "  one send / 10 records          : {:>6.1} ms / {:>6.1} ms",
        ms(one_med),
        ms(batch_med)
    );
    println!(
        "  ratio batch / one send         : {:>6.2}  (budget < 2.00)",
        batch_med.as_secs_f64() / one_med.as_secs_f64()
    );
    Ok(())
}

/// Deletes every item of `tables` (benchmark housekeeping, outside any timing).
async fn empty_tables(
    dynamodb: &aws_sdk_dynamodb::Client,
    tables: &[String],
) -> anyhow::Result<()> {
    for table in tables {
        loop {
            let page = dynamodb
                .scan()
                .table_name(table)
                .projection_expression("pk")
                .send()
                .await?;
            let items = page.items.unwrap_or_default();
            if items.is_empty() {
                break;
            }
            for item in items {
                dynamodb
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(item))
                    .send()
                    .await?;
            }
        }
    }
    Ok(())
}

fn mark_sent(
    delivery: &std::sync::Arc<dyn DeliveryWriter>,
    lock: Lock,
    tenant: TenantId,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let delivery = delivery.clone();
    async move {
        let ok = delivery
            .mark_sent(
                &lock,
                &tenant,
                &format!("bench-{}", lock.pk),
                "http://127.0.0.1:1",
                EndpointRole::Primary,
                None,
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
        assert!(ok);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

//! Handler time of the webhook ingress, excluding the SQS round trip: the warm path
//! (config from the cache) with a sink that returns at once. Bodies of 1 KiB and 64 KiB.
//!
//! Run: `cargo bench -p webhook-ingress --bench ingress`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lambda_http::Body;
use time::OffsetDateTime;
use wagate::Secret;
use wagate::delivery::DeliveryError;
use wagate::delivery::ReceiptOutcome;
use wagate::delivery::store::ReceiptRecorder;
use wagate::inbound::InboundEvent;
use wagate::inbound::signature::sign_sha256;
use wagate::secrets::{Purpose, SealedSecret, SecretSealer, SecretsError};
use wagate::tenant::cache::ConfigCache;
use wagate::tenant::store::{StoreError, TenantConfigReader};
use wagate::tenant::*;
use webhook_ingress::{App, EventSink, RateLimiter, SinkError, accept};

struct OneTenant(SealedConfig);

#[async_trait]
impl TenantConfigReader for OneTenant {
    async fn get(&self, _: &TenantId) -> Result<Option<SealedConfig>, StoreError> {
        Ok(Some(self.0.clone()))
    }
}

struct PlainSealer;

#[async_trait]
impl SecretSealer for PlainSealer {
    async fn seal(&self, _: &str, _: Purpose, s: &Secret) -> Result<SealedSecret, SecretsError> {
        Ok(SealedSecret {
            ciphertext: s.expose().into(),
            fingerprint: "****".into(),
        })
    }
    async fn open(&self, _: &str, _: Purpose, s: &SealedSecret) -> Result<Secret, SecretsError> {
        Ok(Secret::new(s.ciphertext.clone()))
    }
}

struct NoReceipts;

#[async_trait]
impl ReceiptRecorder for NoReceipts {
    async fn apply_receipt(
        &self,
        _: &TenantId,
        _: &str,
        _: &str,
        _: OffsetDateTime,
    ) -> Result<ReceiptOutcome, DeliveryError> {
        Ok(ReceiptOutcome::Ignored)
    }
}

struct NullSink;

#[async_trait]
impl EventSink for NullSink {
    async fn send(&self, _: &InboundEvent, _: &str, body: String) -> Result<String, SinkError> {
        Ok(body.len().to_string())
    }
}

fn config() -> SealedConfig {
    let now = OffsetDateTime::now_utc();
    let sealed = |s: &str| SealedSecret {
        ciphertext: s.into(),
        fingerprint: "****".into(),
    };
    TenantConfig {
        tenant_id: "bench".parse().unwrap(),
        provider: ProviderKind::Gowa,
        primary: Endpoint {
            base_url: "https://wa.example.com".into(),
            credentials: Credentials::None,
            device_id: None,
            region: None,
            provider: None,
            webhook_source_cidrs: Vec::new(),
            webhook_wiring: Default::default(),
        },
        backup: None,
        webhook_secrets: vec![
            WebhookSecret {
                id: "old".into(),
                secret: sealed("rotating-out"),
                expires_at: Some(now + time::Duration::hours(1)),
            },
            WebhookSecret {
                id: "new".into(),
                secret: sealed("secret"),
                expires_at: None,
            },
        ],
        active_endpoint: EndpointRole::Primary,
        is_active: true,
        connection_status: ConnectionStatus::Connected,
        failback: Default::default(),
        limits: Limits {
            // Above any real setting, so the bench measures the limiter without tripping it.
            inbound_per_second: u32::MAX,
            ..Limits::default()
        },
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// A GOWA message webhook of about `size` bytes (Go-style compact JSON).
fn body_of(size: usize) -> Vec<u8> {
    let head =
        r#"{"device_id":"6281234567890@s.whatsapp.net","event":"message","payload":{"body":""#;
    let tail = r#"","chat_id":"6289876543210@s.whatsapp.net","from":"6289876543210@s.whatsapp.net","from_name":"Budi","id":"A1B2C3D4E5F60718293A4B5C6D7E8F90","is_from_me":false,"timestamp":"2026-08-22T10:15:30Z"},"session_id":"tenant-42"}"#;
    let fill = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "a".repeat(fill)).into_bytes()
}

fn request(body: &[u8], sig: &str) -> lambda_http::Request {
    let mut req = lambda_http::Request::new(Body::Binary(body.to_vec()));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = "/webhooks/whatsapp/bench".parse().unwrap();
    req.headers_mut()
        .insert("x-hub-signature-256", sig.parse().unwrap());
    req
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sealed = config();
    let app = App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(OneTenant(sealed.clone())),
            Arc::new(PlainSealer),
            webhook_ingress::cache_settings(Duration::from_secs(3600)),
        )),
        sink: Arc::new(NullSink),
        limiter: RateLimiter::default(),
        receipts: Arc::new(NoReceipts),
        replay_window: wagate::inbound::verify::DEFAULT_REPLAY_WINDOW,
        event_seen: None,
    };
    let opened = rt
        .block_on(wagate::tenant::cache::open_config(&PlainSealer, sealed))
        .unwrap();

    let mut g = c.benchmark_group("ingress");
    for size in [1024usize, 64 * 1024] {
        let body = body_of(size);
        let sig = sign_sha256(b"secret", &body);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("accept", size), &body, |b, body| {
            b.iter(|| {
                black_box(
                    accept(
                        &opened,
                        Some(&sig),
                        black_box(body),
                        None,
                        OffsetDateTime::now_utc(),
                    )
                    .unwrap(),
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("handler", size), &body, |b, body| {
            b.iter(|| {
                let resp = rt.block_on(webhook_ingress::handle(&app, request(body, &sig)));
                assert_eq!(resp.status(), 200);
                black_box(resp)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);

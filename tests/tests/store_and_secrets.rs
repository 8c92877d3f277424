//! The DynamoDB store, KMS sealing and the warm-path cache against moto_server.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use wagate::Secret;
use wagate::secrets::{KmsSealer, Purpose, SecretSealer, SecretsError};
use wagate::tenant::cache::{CacheSettings, ConfigCache, open_config};
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::{StoreError, TenantConfigReader, TenantConfigStore};
use wagate::tenant::*;
use wagate_tests::Stack;

const PASSWORD: &str = "gowa-basic-password-7f3a";
const WEBHOOK_SECRET: &str = "webhook-secret-9c1e5b";

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn plain_config(tenant: &str, base_url: &str, backup: Option<&str>) -> TenantConfig<Secret> {
    TenantConfig {
        tenant_id: tenant.parse().unwrap(),
        provider: ProviderKind::Gowa,
        primary: Endpoint {
            base_url: base_url.into(),
            credentials: Credentials::Basic {
                username: "admin".into(),
                password: Secret::new(PASSWORD),
            },
            device_id: Some("dev-1".into()),
            region: Some("eu-west-1".into()),
            provider: None,
            webhook_source_cidrs: Vec::new(),
            webhook_wiring: Default::default(),
        },
        backup: backup.map(|b| Endpoint {
            base_url: b.into(),
            credentials: Credentials::None,
            device_id: None,
            region: None,
            provider: None,
            webhook_source_cidrs: Vec::new(),
            webhook_wiring: Default::default(),
        }),
        webhook_secrets: vec![WebhookSecret {
            id: "s1".into(),
            secret: Secret::new(WEBHOOK_SECRET),
            expires_at: None,
        }],
        active_endpoint: EndpointRole::Primary,
        is_active: true,
        connection_status: ConnectionStatus::Unknown,
        failback: Default::default(),
        limits: Limits::default(),
        version: 1,
        created_at: now(),
        updated_at: now(),
    }
}

async fn seal(sealer: &KmsSealer, cfg: TenantConfig<Secret>) -> SealedConfig {
    let mut out = Vec::new();
    for (purpose, s) in cfg.secret_slots() {
        out.push(
            sealer
                .seal(cfg.tenant_id.as_str(), purpose, s)
                .await
                .unwrap(),
        );
    }
    cfg.with_secrets(out).unwrap()
}

struct Fixture {
    stack: Stack,
    store: DynamoTenantStore,
    sealer: KmsSealer,
}

async fn fixture() -> Fixture {
    let stack = Stack::new().await;
    let store = DynamoTenantStore::new(stack.dynamodb.clone(), stack.tenants_table());
    let sealer = KmsSealer::new(stack.kms.clone(), stack.kms_key_id());
    Fixture {
        stack,
        store,
        sealer,
    }
}

#[tokio::test]
async fn create_then_get_round_trips_the_config() {
    let f = fixture().await;
    let sealed = seal(
        &f.sealer,
        plain_config("acme", "https://wa1.example.com", None),
    )
    .await;
    f.store.create(&sealed).await.unwrap();
    let got = f.store.get(&sealed.tenant_id).await.unwrap().unwrap();
    assert_eq!(got, sealed);
}

#[tokio::test]
async fn create_fails_when_the_tenant_exists_and_keeps_the_first() {
    let f = fixture().await;
    let first = seal(
        &f.sealer,
        plain_config("acme", "https://wa1.example.com", None),
    )
    .await;
    f.store.create(&first).await.unwrap();
    let second = seal(
        &f.sealer,
        plain_config("acme", "https://other.example.com", None),
    )
    .await;
    assert!(matches!(
        f.store.create(&second).await,
        Err(StoreError::AlreadyExists)
    ));
    let got = f.store.get(&first.tenant_id).await.unwrap().unwrap();
    assert_eq!(got.primary.base_url, "https://wa1.example.com");
}

#[tokio::test]
async fn update_with_a_stale_version_is_a_conflict_not_an_overwrite() {
    let f = fixture().await;
    let v1 = seal(
        &f.sealer,
        plain_config("acme", "https://wa1.example.com", None),
    )
    .await;
    f.store.create(&v1).await.unwrap();

    let mut v2 = v1.clone();
    v2.version = 2;
    v2.primary.base_url = "https://wa2.example.com".into();
    f.store.update(&v2, 1).await.unwrap();

    // A writer still holding version 1 loses.
    let mut stale = v1.clone();
    stale.version = 2;
    stale.primary.base_url = "https://stale.example.com".into();
    assert!(matches!(
        f.store.update(&stale, 1).await,
        Err(StoreError::Conflict)
    ));
    let got = f.store.get(&v1.tenant_id).await.unwrap().unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(got.primary.base_url, "https://wa2.example.com");
}

#[tokio::test]
async fn update_and_delete_of_a_missing_tenant_are_not_found() {
    let f = fixture().await;
    let cfg = seal(
        &f.sealer,
        plain_config("ghost", "https://wa1.example.com", None),
    )
    .await;
    assert!(matches!(
        f.store.update(&cfg, 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        f.store.delete(&cfg.tenant_id, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(f.stack.scan_tenants().await.is_empty());
}

#[tokio::test]
async fn delete_honours_the_expected_version() {
    let f = fixture().await;
    let cfg = seal(
        &f.sealer,
        plain_config("acme", "https://wa1.example.com", None),
    )
    .await;
    f.store.create(&cfg).await.unwrap();
    assert!(matches!(
        f.store.delete(&cfg.tenant_id, Some(7)).await,
        Err(StoreError::Conflict)
    ));
    assert!(f.store.get(&cfg.tenant_id).await.unwrap().is_some());
    f.store.delete(&cfg.tenant_id, Some(1)).await.unwrap();
    assert!(f.store.get(&cfg.tenant_id).await.unwrap().is_none());
}

#[tokio::test]
async fn list_pages_through_every_tenant_once() {
    let f = fixture().await;
    for i in 0..7 {
        let cfg = seal(
            &f.sealer,
            plain_config(&format!("tenant-{i}"), "https://wa1.example.com", None),
        )
        .await;
        f.store.create(&cfg).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = f.store.list(cursor.as_deref(), 3).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|c| c.tenant_id.to_string()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    seen.sort();
    let expected: Vec<String> = (0..7).map(|i| format!("tenant-{i}")).collect();
    assert_eq!(seen, expected);
    assert!(pages >= 3);
    assert!(matches!(
        f.store.list(Some("not a cursor!"), 3).await,
        Err(StoreError::InvalidCursor)
    ));
}

#[tokio::test]
async fn tenants_by_endpoint_finds_primary_and_backup_users_of_a_server() {
    let f = fixture().await;
    let shared = "https://shared.example.com";
    for (t, primary, backup) in [
        ("a", shared, None),
        ("b", shared, Some("https://b-backup.example.com")),
        ("c", "https://c.example.com", Some(shared)),
        ("d", "https://d.example.com", None),
    ] {
        let cfg = seal(&f.sealer, plain_config(t, primary, backup)).await;
        f.store.create(&cfg).await.unwrap();
    }
    let mut on_shared: Vec<String> = f
        .store
        .by_endpoint(shared)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.tenant_id.to_string())
        .collect();
    on_shared.sort();
    assert_eq!(on_shared, ["a", "b", "c"]);
    assert!(
        f.store
            .by_endpoint("https://nobody.example.com")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn stored_items_hold_no_plaintext_secret() {
    let f = fixture().await;
    let cfg = seal(
        &f.sealer,
        plain_config("acme", "https://wa1.example.com", None),
    )
    .await;
    f.store.create(&cfg).await.unwrap();
    let items = f.stack.scan_tenants().await;
    assert_eq!(items.len(), 1);
    let dump = format!("{:?}", items[0]);
    assert!(!dump.contains(PASSWORD), "password in the item");
    assert!(!dump.contains(WEBHOOK_SECRET), "webhook secret in the item");
    assert!(dump.contains("ciphertext"));
    assert_eq!(
        items[0].get("primaryEndpointKey"),
        Some(&AttributeValue::S("https://wa1.example.com".into()))
    );
}

#[tokio::test]
async fn sealed_secrets_open_to_the_original_values() {
    let f = fixture().await;
    let cfg = seal(
        &f.sealer,
        plain_config("acme", "https://wa1.example.com", None),
    )
    .await;
    let opened = open_config(&f.sealer, cfg).await.unwrap();
    assert_eq!(
        opened.primary.credentials.secret().unwrap().expose(),
        PASSWORD
    );
    assert_eq!(opened.webhook_secrets[0].secret.expose(), WEBHOOK_SECRET);
}

#[tokio::test]
async fn ciphertext_copied_into_another_tenants_item_fails_to_open() {
    let f = fixture().await;
    let victim = seal(
        &f.sealer,
        plain_config("victim", "https://wa1.example.com", None),
    )
    .await;
    let mut thief = seal(
        &f.sealer,
        plain_config("thief", "https://wa2.example.com", None),
    )
    .await;
    // Copy the victim's sealed webhook secret into the thief's item, in the same slot.
    thief.webhook_secrets[0].secret = victim.webhook_secrets[0].secret.clone();
    f.store.create(&thief).await.unwrap();
    let stored = f.store.get(&thief.tenant_id).await.unwrap().unwrap();
    let err = open_config(&f.sealer, stored).await.unwrap_err();
    assert!(
        matches!(err, SecretsError::Refused { ref tenant_id, purpose: "webhook-secret", .. } if tenant_id == "thief"),
        "{err:?}"
    );
    // A refusal by KMS, not an outage: retrying will not open it.
    assert!(err.is_unusable(), "{err:?}");
    // And the error says nothing of the secret.
    assert!(!format!("{err} {err:?}").contains(WEBHOOK_SECRET));
}

#[tokio::test]
async fn ciphertext_used_for_another_purpose_fails_to_open() {
    let f = fixture().await;
    let sealed = f
        .sealer
        .seal("acme", Purpose::WebhookSecret, &Secret::new(WEBHOOK_SECRET))
        .await
        .unwrap();
    assert!(
        f.sealer
            .open("acme", Purpose::ServerCredential, &sealed)
            .await
            .is_err()
    );
    assert_eq!(
        f.sealer
            .open("acme", Purpose::WebhookSecret, &sealed)
            .await
            .unwrap()
            .expose(),
        WEBHOOK_SECRET
    );
}

#[tokio::test]
async fn warm_cache_read_makes_no_dynamodb_and_no_kms_call() {
    let f = fixture().await;
    let cfg = seal(
        &f.sealer,
        plain_config(
            "acme",
            "https://wa1.example.com",
            Some("https://wa2.example.com"),
        ),
    )
    .await;
    f.store.create(&cfg).await.unwrap();
    let cache = ConfigCache::new(
        Arc::new(f.store.clone()),
        Arc::new(f.sealer.clone()),
        CacheSettings::with_ttl(Duration::from_secs(60)),
    );
    let id: TenantId = "acme".parse().unwrap();

    f.stack.counter.reset();
    let cold = cache.get(&id).await.unwrap().unwrap();
    // Cold: one read, one decrypt per secret (primary credential + webhook secret).
    assert_eq!(f.stack.counter.count_op("DynamoDB", "GetItem"), 1);
    assert_eq!(f.stack.counter.count_op("KMS", "Decrypt"), 2);

    f.stack.counter.reset();
    for _ in 0..100 {
        let warm = cache.get(&id).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&cold, &warm));
    }
    assert_eq!(
        f.stack.counter.count("DynamoDB"),
        0,
        "{:?}",
        f.stack.counter.calls()
    );
    assert_eq!(
        f.stack.counter.count("KMS"),
        0,
        "{:?}",
        f.stack.counter.calls()
    );
    assert_eq!(f.stack.counter.total(), 0);
}

#[tokio::test]
async fn unknown_tenant_is_cached_too() {
    let f = fixture().await;
    let cache = ConfigCache::new(
        Arc::new(f.store.clone()),
        Arc::new(f.sealer.clone()),
        CacheSettings::with_ttl(Duration::from_secs(60)),
    );
    let id: TenantId = "nobody".parse().unwrap();
    f.stack.counter.reset();
    for _ in 0..20 {
        assert!(cache.get(&id).await.unwrap().is_none());
    }
    assert_eq!(f.stack.counter.count("DynamoDB"), 1);
}

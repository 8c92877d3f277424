//! Credentials per server kind (issue 16): each kind takes only its own credential type
//! (gowa none|basic, waha none|apiKey, evolution apiKey, meta meta) and the deviceId its
//! server needs; anything else is 400 naming the field, with nothing stored, sealed or
//! audited. Accepted secrets are sealed (KMS on moto_server for the round trip, the fake
//! sealer for the fast checks) and never shown again.

use http::StatusCode;
use serde_json::{Value, json};
use wagate::secrets::Purpose;
use wagate_tests::api::{FakeApi, Reply, api_on_fakes};

const TOKEN: &str = "EAAG-meta-access-token-7f3a91";
const APP_SECRET: &str = "meta-app-secret-2b8e44";
const VERIFY_TOKEN: &str = "meta-verify-token-c0ffee";
const API_KEY: &str = "waha-api-key-91d0aa";
const WEBHOOK_SECRET: &str = "webhook-secret-a8c3e0";

fn body(provider: &str, credentials: Value, device_id: Option<&str>) -> Value {
    let mut primary = json!({"baseUrl": "http://127.0.0.1:3000", "credentials": credentials});
    if let Some(d) = device_id {
        primary["deviceId"] = json!(d);
    }
    if provider == "evolution" {
        primary["webhookSourceCidrs"] = json!(["10.0.0.0/8"]);
    }
    json!({
        "provider": provider,
        "primary": primary,
        "webhookSecrets": [{"id": "s1", "secret": WEBHOOK_SECRET}],
    })
}

fn meta_credentials() -> Value {
    json!({"type": "meta", "token": TOKEN, "appSecret": APP_SECRET, "verifyToken": VERIFY_TOKEN})
}

async fn assert_refused_and_nothing_stored(api: &FakeApi, r: &Reply, code: &str, field: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json()["error"], code, "{}", r.text);
    if !field.is_empty() {
        let json = r.json();
        let fields: Vec<&str> = json["fields"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(fields.contains(&field), "{field} not named: {}", r.text);
    }
    assert!(
        api.stores.tenants.items().is_empty(),
        "something was stored"
    );
    assert!(api.stores.audit.all().is_empty(), "something was audited");
    assert_eq!(api.sealer.seals(), 0, "a secret was sealed");
}

#[tokio::test]
async fn each_kind_refuses_every_credential_type_but_its_own() {
    let basic = json!({"type": "basic", "username": "u", "password": "p-123456"});
    let api_key = json!({"type": "apiKey", "key": API_KEY});
    let none = json!({"type": "none"});
    for (provider, creds, device) in [
        ("gowa", api_key.clone(), None),
        ("gowa", meta_credentials(), None),
        ("waha", basic.clone(), None),
        ("waha", meta_credentials(), None),
        ("evolution", none.clone(), Some("acme")),
        ("evolution", basic.clone(), Some("acme")),
        ("evolution", meta_credentials(), Some("acme")),
        ("meta", api_key.clone(), Some("106540352242922")),
        ("meta", basic.clone(), Some("106540352242922")),
        ("meta", none.clone(), Some("106540352242922")),
    ] {
        let api = api_on_fakes().await;
        let r = api.create(&body(provider, creds.clone(), device)).await;
        assert_refused_and_nothing_stored(&api, &r, "invalid_config", "primary.credentials.type")
            .await;
        assert!(
            r.text.contains(provider),
            "{provider} {creds}: the error names the kind: {}",
            r.text
        );
        for secret in [API_KEY, TOKEN, APP_SECRET, VERIFY_TOKEN, "p-123456"] {
            assert!(!r.text.contains(secret), "a secret echoed: {}", r.text);
        }
    }
}

#[tokio::test]
async fn evolution_and_meta_require_their_device_id() {
    for (provider, creds) in [
        ("evolution", json!({"type": "apiKey", "key": API_KEY})),
        ("meta", meta_credentials()),
    ] {
        let api = api_on_fakes().await;
        let r = api.create(&body(provider, creds, None)).await;
        assert_refused_and_nothing_stored(&api, &r, "invalid_config", "primary.deviceId").await;
    }
}

#[tokio::test]
async fn evolution_requires_a_webhook_source_allowlist() {
    let api = api_on_fakes().await;
    let mut b = body(
        "evolution",
        json!({"type": "apiKey", "key": API_KEY}),
        Some("acme"),
    );
    b["primary"]
        .as_object_mut()
        .unwrap()
        .remove("webhookSourceCidrs");
    let r = api.create(&b).await;
    assert_refused_and_nothing_stored(&api, &r, "invalid_config", "primary.webhookSourceCidrs")
        .await;
}

#[tokio::test]
async fn a_meta_phone_number_id_must_be_digits() {
    let api = api_on_fakes().await;
    let r = api
        .create(&body("meta", meta_credentials(), Some("my-phone")))
        .await;
    assert_refused_and_nothing_stored(&api, &r, "invalid_config", "primary.deviceId").await;
}

#[tokio::test]
async fn meta_credentials_name_each_missing_secret() {
    let api = api_on_fakes().await;
    let r = api
        .create(&body(
            "meta",
            json!({"type": "meta", "token": TOKEN}),
            Some("106540352242922"),
        ))
        .await;
    assert_refused_and_nothing_stored(&api, &r, "invalid_config", "primary.credentials.appSecret")
        .await;
    assert!(
        r.text.contains("primary.credentials.verifyToken"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_field_of_another_credential_type_is_400_invalid_body() {
    let api = api_on_fakes().await;
    let mut creds = meta_credentials();
    creds["key"] = json!(API_KEY);
    let r = api
        .create(&body("meta", creds, Some("106540352242922")))
        .await;
    assert_refused_and_nothing_stored(&api, &r, "invalid_body", "").await;
}

#[tokio::test]
async fn a_meta_tenant_is_stored_with_three_sealed_secrets_shown_as_fingerprints() {
    let api = api_on_fakes().await;
    let r = api
        .create(&body("meta", meta_credentials(), Some("106540352242922")))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let c = &r.json()["primary"]["credentials"];
    assert_eq!(c["type"], "meta");
    assert!(
        c["fingerprint"]
            .as_str()
            .is_some_and(|f| f.ends_with(&TOKEN[TOKEN.len() - 4..])),
        "{}",
        r.text
    );
    assert!(
        c["verifyTokenFingerprint"]
            .as_str()
            .is_some_and(|f| f.ends_with(&VERIFY_TOKEN[VERIFY_TOKEN.len() - 4..])),
        "{}",
        r.text
    );
    assert!(
        c["appSecretFingerprint"]
            .as_str()
            .is_some_and(|f| f.ends_with(&APP_SECRET[APP_SECRET.len() - 4..])),
        "{}",
        r.text
    );
    for secret in [TOKEN, APP_SECRET, VERIFY_TOKEN, WEBHOOK_SECRET] {
        assert!(
            !r.text.contains(secret),
            "a secret in the answer: {}",
            r.text
        );
    }
    // token + app secret + verify token + the webhook secret.
    assert_eq!(api.sealer.seals(), 4);
    assert_eq!(r.json()["provider"], "meta");
    assert_eq!(r.json()["primary"]["deviceId"], "106540352242922");
}

#[tokio::test]
async fn waha_takes_an_api_key_and_evolution_an_api_key_with_its_instance() {
    for (provider, device) in [("waha", None), ("evolution", Some("acme"))] {
        let api = api_on_fakes().await;
        let r = api
            .create(&body(
                provider,
                json!({"type": "apiKey", "key": API_KEY}),
                device,
            ))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{provider}: {}", r.text);
        assert_eq!(r.json()["primary"]["credentials"]["type"], "apiKey");
        assert!(!r.text.contains(API_KEY));
        assert_eq!(api.sealer.seals(), 2, "{provider}");
    }
}

#[test]
fn meta_secrets_are_sealed_for_their_purposes() {
    use wagate::tenant::Credentials;
    let c = Credentials::Meta {
        token: "t",
        app_secret: "a",
        verify_token: "v",
    };
    let purposes: Vec<(Purpose, &&str)> = c.secrets();
    assert_eq!(
        purposes,
        [
            (Purpose::ServerCredential, &"t"),
            (Purpose::WebhookSecret, &"a"),
            (Purpose::WebhookSecret, &"v"),
        ]
    );
}

/// On moto_server: the Meta tenant's three secrets are KMS ciphertext in DynamoDB (no
/// plaintext in the item), and open back, each under its own purpose.
#[tokio::test]
async fn meta_credentials_round_trip_through_kms_on_moto() {
    use wagate::secrets::kms::KmsSealer;
    use wagate::tenant::Credentials;
    use wagate::tenant::dynamo::DynamoTenantStore;
    use wagate::tenant::store::TenantConfigReader;

    let api = wagate_tests::api::api().await;
    let mut b = body("meta", meta_credentials(), Some("106540352242922"));
    b["primary"]["baseUrl"] = json!("http://127.0.0.1:3000");
    let r = api.create(&b).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let tenant = r.json()["tenantId"].as_str().unwrap().to_string();
    let items = api.stored().await;
    let raw = format!("{items:?}");
    for secret in [TOKEN, APP_SECRET, VERIFY_TOKEN] {
        assert!(!raw.contains(secret), "plaintext stored");
    }
    let store = DynamoTenantStore::new(api.stack.dynamodb.clone(), api.stack.tenants_table());
    let sealed = store
        .get(&tenant.parse().unwrap())
        .await
        .unwrap()
        .expect("stored");
    let sealer = KmsSealer::new(api.stack.kms.clone(), api.stack.kms_key_id());
    let opened = wagate::tenant::cache::open_config(&sealer, sealed)
        .await
        .unwrap();
    match &opened.primary.credentials {
        Credentials::Meta {
            token,
            app_secret,
            verify_token,
        } => {
            assert_eq!(token.expose(), TOKEN);
            assert_eq!(app_secret.expose(), APP_SECRET);
            assert_eq!(verify_token.expose(), VERIFY_TOKEN);
        }
        other => panic!("not meta credentials: {other:?}"),
    }
}

/// Rotating a credential to a type the stored endpoint's kind does not take conflicts with
/// the stored config: 409, nothing sealed, stored or audited beyond the create.
#[tokio::test]
async fn rotating_to_another_kinds_credential_is_409_and_changes_nothing() {
    let api = api_on_fakes().await;
    let r = api
        .create(&body(
            "gowa",
            json!({"type": "basic", "username": "u", "password": "p-123456"}),
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (seals, audits) = (api.sealer.seals(), api.stores.audit.all().len());
    let r = api
        .call(
            wagate_tests::ApiEvent::new(
                "POST",
                &format!("{}/rotate-credential", wagate_tests::api::PATH),
            )
            .bearer(&api.admin())
            .json(&json!({"credentials": meta_credentials()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "state_conflict");
    assert_eq!(r.json()["fields"][0]["field"], "primary.credentials.type");
    assert_eq!(api.sealer.seals(), seals, "nothing sealed");
    assert_eq!(api.stores.audit.all().len(), audits, "nothing audited");
    for secret in [TOKEN, APP_SECRET, VERIFY_TOKEN] {
        assert!(!r.text.contains(secret));
    }
}

/// A backup of another kind than the primary (what the dashboard's per-endpoint kind sends):
/// each field that kind needs, left out, is 400 naming the backup's field; nothing is stored,
/// sealed or audited.
#[tokio::test]
async fn a_backup_of_another_kind_names_each_missing_field_of_its_kind() {
    let evolution = |creds: Value, device: Option<&str>, cidrs: bool| {
        let mut e = json!({"provider": "evolution", "baseUrl": "http://127.0.0.1:3002", "credentials": creds});
        if let Some(d) = device {
            e["deviceId"] = json!(d);
        }
        if cidrs {
            e["webhookSourceCidrs"] = json!(["10.0.0.0/8"]);
        }
        e
    };
    let meta = |creds: Value, device: Option<&str>| {
        let mut e =
            json!({"provider": "meta", "baseUrl": "http://127.0.0.1:3003", "credentials": creds});
        if let Some(d) = device {
            e["deviceId"] = json!(d);
        }
        e
    };
    let cases = [
        (
            json!({"provider": "waha", "baseUrl": "http://127.0.0.1:3001", "credentials": {"type": "apiKey"}, "deviceId": "default"}),
            "backup.credentials.key",
        ),
        (
            evolution(json!({"type": "apiKey"}), Some("toko"), true),
            "backup.credentials.key",
        ),
        (
            evolution(json!({"type": "apiKey", "key": API_KEY}), None, true),
            "backup.deviceId",
        ),
        (
            evolution(
                json!({"type": "apiKey", "key": API_KEY}),
                Some("toko"),
                false,
            ),
            "backup.webhookSourceCidrs",
        ),
        (
            meta(
                json!({"type": "meta", "appSecret": APP_SECRET, "verifyToken": VERIFY_TOKEN}),
                Some("106540352242922"),
            ),
            "backup.credentials.token",
        ),
        (
            meta(
                json!({"type": "meta", "token": TOKEN, "verifyToken": VERIFY_TOKEN}),
                Some("106540352242922"),
            ),
            "backup.credentials.appSecret",
        ),
        (
            meta(
                json!({"type": "meta", "token": TOKEN, "appSecret": APP_SECRET}),
                Some("106540352242922"),
            ),
            "backup.credentials.verifyToken",
        ),
        (meta(meta_credentials(), None), "backup.deviceId"),
    ];
    for (backup, field) in cases {
        let api = api_on_fakes().await;
        let mut b = body("gowa", json!({"type": "none"}), Some("dev-1"));
        b["backup"] = backup.clone();
        let r = api.create(&b).await;
        assert_refused_and_nothing_stored(&api, &r, "invalid_config", field).await;
        for secret in [API_KEY, TOKEN, APP_SECRET, VERIFY_TOKEN] {
            assert!(
                !r.text.contains(secret),
                "{backup}: a secret echoed: {}",
                r.text
            );
        }
    }
}

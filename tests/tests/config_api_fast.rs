//! The config API's handler logic on in-memory stores and sealer (the fast tier: no
//! moto_server, no AWS call; `wagate_tests::api::api_on_fakes`): authorization, bad input,
//! version checks, methods, and the registry, placement and migration refusals. Every refusal
//! asserts its exact status and code and that nothing was stored, sealed or audited. What
//! only DynamoDB can show (conditions as it evaluates them, transactions, indexes) stays in
//! config_api.rs, fleet.rs and store_and_secrets.rs on moto_server.

use http::StatusCode;
use serde_json::{Value, json};
use wagate_tests::ApiEvent;
use wagate_tests::api::{FakeApi, PATH, Reply, api_on_fakes};

const PASSWORD: &str = "gowa-password-5d2f81";
const WEBHOOK_SECRET: &str = "webhook-secret-a8c3e0";

/// As config_api.rs's body, with a loopback backup (no host name to look up).
fn valid_body() -> Value {
    json!({
        "provider": "gowa",
        "primary": {
            "baseUrl": "http://127.0.0.1:3000/",
            "credentials": {"type": "basic", "username": "admin", "password": PASSWORD},
            "deviceId": "dev-1",
            "region": "eu-west-1"
        },
        "backup": {
            "baseUrl": "http://127.0.0.1:3001",
            "credentials": {"type": "basic", "username": "backup", "password": "backup-api-key-0000-1111-2222"}
        },
        "webhookSecrets": [{"id": "s1", "secret": WEBHOOK_SECRET}],
        "isActive": true
    })
}

/// Asserts the status, the error code, and that nothing was stored, sealed or audited.
async fn assert_refused_and_nothing_stored(
    api: &FakeApi,
    r: &Reply,
    status: StatusCode,
    code: &str,
) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json()["error"], code, "{}", r.text);
    assert!(r.json()["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        api.stores.tenants.items().is_empty(),
        "something was stored"
    );
    assert!(api.stores.audit.all().is_empty(), "something was audited");
    assert_eq!(
        api.sealer.seals(),
        0,
        "a secret was sealed for a refused request"
    );
}

// ---------- moved from config_api.rs: authorization, bad input, versions, methods ----------

#[tokio::test]
async fn another_tenants_token_is_403_and_nothing_stored() {
    let api = api_on_fakes().await;
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer(&api.tenant("other"))
                .json(&valid_body()),
        )
        .await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn another_tenants_token_cannot_read_update_or_delete() {
    let api = api_on_fakes().await;
    api.create(&valid_body()).await;
    let other = api.tenant("other");
    for ev in [
        ApiEvent::new("GET", PATH),
        ApiEvent::new("PUT", PATH)
            .header("If-Match", "1")
            .json(&valid_body()),
        ApiEvent::new("DELETE", PATH),
    ] {
        let r = api.call(ev.bearer(&other)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(!r.text.contains("127.0.0.1"), "leaked config: {}", r.text);
    }
    let items = api.stores.tenants.items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].config.version, 1);
}

#[tokio::test]
async fn tenant_token_cannot_list_tenants() {
    let api = api_on_fakes().await;
    let r = api
        .call(ApiEvent::new("GET", "/tenants").bearer(&api.tenant("acme")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"], "forbidden");
}

#[tokio::test]
async fn malformed_json_is_400_and_nothing_stored() {
    let api = api_on_fakes().await;
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer(&api.admin())
                .raw_json(r#"{"provider": "gowa", "primary": "#),
        )
        .await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_body").await;
}

#[tokio::test]
async fn a_body_flagged_base64_that_is_not_is_400_and_nothing_stored() {
    // API Gateway never sends this, but the function's entry point must not panic on it
    // (lambda_http's own conversion does): 400, not a 502 from a crashed invocation.
    let api = api_on_fakes().await;
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer(&api.admin())
                .header("content-type", "application/json")
                .base64_body_verbatim("{not base64!}"),
        )
        .await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert!(r.text.contains("base64"), "{}", r.text);
}

#[tokio::test]
async fn a_base64_encoded_body_is_decoded_and_saved() {
    let api = api_on_fakes().await;
    let body = serde_json::to_vec(&valid_body()).unwrap();
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer(&api.admin())
                .raw_json(body)
                .base64_encoded(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(api.stores.tenants.items().len(), 1);
}

#[tokio::test]
async fn missing_field_is_400_naming_it_and_nothing_stored() {
    let api = api_on_fakes().await;
    let mut body = valid_body();
    body.as_object_mut().unwrap().remove("primary");
    let r = api.create(&body).await;
    assert!(
        r.json()["message"].as_str().unwrap().contains("primary"),
        "{}",
        r.text
    );
    assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_body").await;
}

#[tokio::test]
async fn missing_password_is_400_naming_the_field() {
    let api = api_on_fakes().await;
    let mut body = valid_body();
    body["primary"]["credentials"] = json!({"type": "basic", "username": "admin"});
    let r = api.create(&body).await;
    assert_eq!(
        r.json()["fields"][0]["field"],
        "primary.credentials.password",
        "{}",
        r.text
    );
    assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_config").await;
}

#[tokio::test]
async fn invalid_url_is_400_naming_the_field() {
    let api = api_on_fakes().await;
    let mut body = valid_body();
    body["primary"]["baseUrl"] = json!("not a url");
    let r = api.create(&body).await;
    assert_eq!(
        r.json()["fields"][0]["field"],
        "primary.baseUrl",
        "{}",
        r.text
    );
    assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_config").await;
}

#[tokio::test]
async fn non_http_scheme_is_400() {
    let api = api_on_fakes().await;
    let mut body = valid_body();
    body["backup"]["baseUrl"] = json!("file:///etc/passwd");
    let r = api.create(&body).await;
    assert_eq!(
        r.json()["fields"][0]["field"],
        "backup.baseUrl",
        "{}",
        r.text
    );
    assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_config").await;
}

#[tokio::test]
async fn ssrf_targets_are_400_and_nothing_stored() {
    for target in [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8:3000",
        "http://[::ffff:127.0.0.1]:3000",
        "http://127.0.0.2:3000",
        "http://100.64.1.1",
    ] {
        let api = api_on_fakes().await;
        let mut body = valid_body();
        body["primary"]["baseUrl"] = json!(target);
        let r = api.create(&body).await;
        assert_eq!(
            r.json()["fields"][0]["field"],
            "primary.baseUrl",
            "{target}: {}",
            r.text
        );
        assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_config")
            .await;
    }
}

#[tokio::test]
async fn unknown_provider_is_400_naming_it() {
    let api = api_on_fakes().await;
    let mut body = valid_body();
    body["provider"] = json!("telegram");
    let r = api.create(&body).await;
    assert_eq!(r.json()["fields"][0]["field"], "provider", "{}", r.text);
    assert!(r.text.contains("telegram"));
    assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_config").await;
}

#[tokio::test]
async fn unknown_field_is_400() {
    let api = api_on_fakes().await;
    let mut body = valid_body();
    body["primary"]["baseURL"] = json!("https://typo.example.com");
    let r = api.create(&body).await;
    assert!(r.text.contains("baseURL"), "{}", r.text);
    assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_body").await;
}

#[tokio::test]
async fn body_over_64_kib_is_413_and_nothing_stored() {
    let api = api_on_fakes().await;
    let mut body = valid_body();
    body["primary"]["deviceId"] = json!("x".repeat(70 * 1024));
    let r = api.create(&body).await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
        .await;
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let api = api_on_fakes().await;
    let r = api
        .call(
            ApiEvent::new("POST", PATH)
                .bearer(&api.admin())
                .json(&valid_body())
                .header("content-type", "text/plain"),
        )
        .await;
    assert_refused_and_nothing_stored(
        &api,
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn invalid_tenant_id_in_the_path_is_400() {
    let api = api_on_fakes().await;
    let r = api
        .call(
            ApiEvent::new("POST", "/tenants/bad%20id/whatsapp-config")
                .bearer(&api.admin())
                .json(&valid_body()),
        )
        .await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::BAD_REQUEST, "invalid_body").await;
}

#[tokio::test]
async fn stale_version_is_409_and_the_config_is_unchanged() {
    let api = api_on_fakes().await;
    api.create(&valid_body()).await;
    let mut body = valid_body();
    body["isActive"] = json!(false);
    let ok = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"1\"")
                .json(&body),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let seals = api.sealer.seals();
    let mut stale = valid_body();
    stale["primary"]["deviceId"] = json!("dev-stale");
    let r = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"1\"")
                .json(&stale),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "version_conflict");
    assert_eq!(
        api.sealer.seals(),
        seals,
        "a secret was sealed for a stale update"
    );
    let items = api.stores.tenants.items();
    assert_eq!(items[0].config.version, 2);
    assert_eq!(items[0].config.primary.device_id.as_deref(), Some("dev-1"));
}

#[tokio::test]
async fn update_without_a_version_is_428_and_nothing_changes() {
    let api = api_on_fakes().await;
    api.create(&valid_body()).await;
    let mut body = valid_body();
    body["isActive"] = json!(false);
    let r = api
        .call(ApiEvent::new("PUT", PATH).bearer(&api.admin()).json(&body))
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(r.json()["error"], "version_required");
    assert!(api.stores.tenants.items()[0].config.is_active);
}

#[tokio::test]
async fn update_of_a_missing_tenant_is_404() {
    let api = api_on_fakes().await;
    let r = api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&api.admin())
                .header("If-Match", "\"1\"")
                .json(&valid_body()),
        )
        .await;
    assert_refused_and_nothing_stored(&api, &r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn unsupported_method_is_405_with_allow() {
    let api = api_on_fakes().await;
    let r = api
        .call(
            ApiEvent::new("PATCH", PATH)
                .bearer(&api.admin())
                .json(&valid_body()),
        )
        .await;
    assert_eq!(r.headers["allow"], "GET, POST, PUT, DELETE");
    assert_refused_and_nothing_stored(
        &api,
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

// ---------- the registry, placement and migrations: refusals ----------

fn server(id: &str, port: u16) -> Value {
    json!({"serverId": id, "baseUrl": format!("http://127.0.0.1:{port}"), "provider": "gowa",
           "region": "eu-west-1", "capacity": 10})
}

async fn register(api: &FakeApi, body: &Value) -> Reply {
    api.call(
        ApiEvent::new("POST", "/admin/servers")
            .bearer(&api.admin())
            .json(body),
    )
    .await
}

async fn servers(api: &FakeApi) -> Vec<config_api::fleet::Server> {
    use config_api::store::ServerRegistry as _;
    api.stores.servers.all().await.unwrap()
}

#[tokio::test]
async fn a_server_id_or_base_url_registered_twice_is_409_and_the_first_stays() {
    let api = api_on_fakes().await;
    assert_eq!(
        register(&api, &server("s1", 3000)).await.status,
        StatusCode::CREATED
    );
    let audited = api.stores.audit.all().len();
    for again in [server("s1", 3999), server("s2", 3000)] {
        let r = register(&api, &again).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.json()["error"], "already_exists");
    }
    let stored = servers(&api).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].base_url, "http://127.0.0.1:3000");
    assert_eq!(
        api.stores.audit.all().len(),
        audited,
        "a refusal was audited"
    );
}

#[tokio::test]
async fn a_server_tenants_use_cannot_be_deregistered() {
    let api = api_on_fakes().await;
    register(&api, &server("s1", 3000)).await;
    assert_eq!(api.create(&valid_body()).await.status, StatusCode::CREATED);
    let audited = api.stores.audit.all().len();
    let r = api
        .call(ApiEvent::new("DELETE", "/admin/servers/s1").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "server_in_use");
    assert!(r.json()["message"].as_str().unwrap().contains("1 tenant"));
    assert_eq!(servers(&api).await.len(), 1);
    assert_eq!(api.stores.audit.all().len(), audited);
}

#[tokio::test]
async fn an_unknown_server_is_404_on_update_and_deregister() {
    let api = api_on_fakes().await;
    for ev in [
        ApiEvent::new("PUT", "/admin/servers/nope").json(&json!({"capacity": 5, "version": 1})),
        ApiEvent::new("DELETE", "/admin/servers/nope"),
    ] {
        let r = api.call(ev.bearer(&api.admin())).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(r.json()["error"], "not_found");
    }
    assert!(servers(&api).await.is_empty());
    assert!(api.stores.audit.all().is_empty());
}

#[tokio::test]
async fn placement_without_a_server_in_the_region_is_409_no_server_available() {
    let api = api_on_fakes().await;
    register(&api, &server("s1", 3000)).await;
    let r = api
        .call(
            ApiEvent::new("POST", "/admin/placement")
                .bearer(&api.admin())
                .json(&json!({"region": "us-east-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "no_server_available");
    assert!(r.text.contains("us-east-1"), "{}", r.text);
}

#[tokio::test]
async fn a_migration_between_unknown_servers_is_404_and_records_no_job() {
    use config_api::store::MigrationJobs as _;
    let api = api_on_fakes().await;
    register(&api, &server("s1", 3000)).await;
    let r = api
        .call(
            ApiEvent::new("POST", "/admin/migrations")
                .bearer(&api.admin())
                .json(&json!({"jobId": "j1", "from": "s1", "to": "nope"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.json()["error"], "not_found");
    assert!(api.stores.jobs.get("j1").await.unwrap().is_none());
    let r = api
        .call(ApiEvent::new("GET", "/admin/migrations/j1").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "not_found");
}

#[tokio::test]
async fn a_job_id_resumed_with_other_servers_is_409_job_mismatch() {
    let api = api_on_fakes().await;
    for (id, port) in [("s1", 3000), ("s2", 3002), ("s3", 3003)] {
        register(&api, &server(id, port)).await;
    }
    let migrate = |to: &str| {
        ApiEvent::new("POST", "/admin/migrations")
            .bearer(&api.admin())
            .json(&json!({"jobId": "j1", "from": "s1", "to": to}))
    };
    let first = api.call(migrate("s2")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let r = api.call(migrate("s3")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "job_mismatch");
}

#[tokio::test]
async fn a_store_outage_is_503_and_names_no_internals() {
    let api = api_on_fakes().await;
    api.create(&valid_body()).await;
    api.stores.tenants.set_unavailable(true);
    let r = api
        .call(ApiEvent::new("GET", PATH).bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.json()["error"], "dependency_unavailable");
    assert!(!r.text.contains(PASSWORD));
}

// ---------- the status route's secret check: once per config version ----------

async fn status(api: &FakeApi) -> Reply {
    api.call(ApiEvent::new("GET", "/tenants/acme/status").bearer(&api.admin()))
        .await
}

#[tokio::test]
async fn status_checks_the_stored_secrets_once_per_config_version() {
    // Without a backup: a standby's readiness is read live and opens its credential on each
    // read (see standby_readiness_is_unknown_while_kms_is_unavailable).
    let api = api_on_fakes().await;
    let mut body = valid_body();
    body.as_object_mut().unwrap().remove("backup");
    let r = api.create(&body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // A KMS outage reports nothing and is not remembered.
    api.sealer.set_unavailable(true);
    let r = status(&api).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json().get("unusableSecrets").is_none(), "{}", r.text);
    api.sealer.set_unavailable(false);

    // The first definitive check opens each stored secret (the password, the webhook
    // secret)…
    let before = api.sealer.opens();
    let r = status(&api).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(api.sealer.opens() - before, 2);
    // …and polling the same version opens none.
    let before = api.sealer.opens();
    for _ in 0..3 {
        assert_eq!(status(&api).await.status, StatusCode::OK);
    }
    assert_eq!(
        api.sealer.opens(),
        before,
        "status polling opened secrets again"
    );

    // A new version (here a rotated webhook secret) is checked again.
    let r = api
        .call(ApiEvent::new("POST", &format!("{PATH}/rotate-webhook-secret")).bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let before = api.sealer.opens();
    assert_eq!(status(&api).await.status, StatusCode::OK);
    assert!(api.sealer.opens() > before, "a new version was not checked");
}

#[tokio::test]
async fn standby_readiness_is_unknown_while_kms_is_unavailable() {
    let api = api_on_fakes().await;
    let r = api.create(&valid_body()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    api.sealer.set_unavailable(true);
    let r = status(&api).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let standby = &r.json()["standby"];
    assert_eq!(standby["role"], "backup", "{}", r.text);
    assert_eq!(standby["ready"], false, "{}", r.text);
    assert_eq!(standby["reasons"], json!(["unverified"]), "{}", r.text);
    assert!(r.json().get("unusableSecrets").is_none(), "{}", r.text);
}

//! Test support for wagate's workspace-level tests: a fresh set of resources per test on the
//! shared moto_server (created from template.yaml by the devstack), SDK clients that count
//! every request they put on the wire, a local JWT issuer, API Gateway v2 events, and a log
//! capture.
//!
//! The tests need moto_server: `scripts/test.sh` starts it and exports `AWS_ENDPOINT_URL`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use wagate_devstack::Provisioned;

pub mod api;
pub mod apigw;
pub mod layering;
pub mod moto_proxy;
pub mod runtime_stub;
pub mod soak;
pub mod spec;
pub mod tls_front;
pub mod watch;

/// Contract checking of what wagate sends to a WhatsApp server: every request a simulator
/// recorded, against that server's OpenAPI document (`tests/fixtures/contracts/`).
///
/// - [`sim_contract::checked`] wraps a simulator so that its requests are checked when it is
///   dropped at the end of a test (the suites' simulator constructors use it, so every test
///   that makes wagate talk to a simulator is checked);
/// - [`sim_contract::assert_conforms`] checks now, e.g. at the end of a test that keeps a plain
///   `SimHandle`.
pub mod sim_contract {
    pub use gowa_sim::contract::{
        CheckOptions, Checked, Contract, Rule, Violation, assert_conforms, checked, violations,
    };
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The moto_server URL; the tests refuse to run against anything else.
pub fn moto_endpoint() -> String {
    let url = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
        "these tests need moto_server on 127.0.0.1: run them with scripts/test.sh \
         (AWS_ENDPOINT_URL is {url:?})"
    );
    url
}

/// SDK config pointing at moto_server with dummy credentials.
pub async fn sdk_config() -> SdkConfig {
    sdk_config_in("us-east-1").await
}

/// [`sdk_config`] in another region: moto_server keeps each region's resources apart, so a
/// heavy test there neither slows nor is slowed by the others (its `TransactWriteItems`
/// copies every table of the region).
pub async fn sdk_config_in(region: &'static str) -> SdkConfig {
    let endpoint = moto_endpoint();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "wagate-tests",
        ))
        .load()
        .await
}

/// Counts every request an SDK client transmits (retries included), by service and
/// operation. Attach it to a client to prove a path makes no call.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    calls: Arc<Mutex<Vec<(String, String)>>>,
}

impl CallCounter {
    /// Calls to `service` (e.g. "DynamoDB", "KMS", "SQS"), any operation.
    pub fn count(&self, service: &str) -> usize {
        self.lock().iter().filter(|(s, _)| s == service).count()
    }

    /// Calls of one operation (e.g. "Decrypt").
    pub fn count_op(&self, service: &str, op: &str) -> usize {
        self.lock()
            .iter()
            .filter(|(s, o)| s == service && o == op)
            .count()
    }

    pub fn total(&self) -> usize {
        self.lock().len()
    }

    pub fn reset(&self) {
        self.lock().clear();
    }

    pub fn calls(&self) -> Vec<(String, String)> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, op) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_else(|| ("?".into(), "?".into()));
        self.lock().push((service, op));
        Ok(())
    }
}

/// One test's own resources on moto_server, and counted clients for them.
pub struct Stack {
    pub sdk: SdkConfig,
    pub provisioned: Provisioned,
    pub counter: CallCounter,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Stack {
    /// Provisions template.yaml's resources under a fresh stack name.
    pub async fn new() -> Stack {
        Stack::new_in("us-east-1").await
    }

    /// [`Stack::new`] in its own region ([`sdk_config_in`]).
    pub async fn new_in(region: &'static str) -> Stack {
        let sdk = sdk_config_in(region).await;
        let name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let provisioned =
            wagate_devstack::provision(&sdk, &workspace_root().join("template.yaml"), &name)
                .await
                .expect("provision the template's resources on moto_server");
        let counter = CallCounter::default();
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        Stack {
            sdk,
            provisioned,
            counter,
            dynamodb,
            kms,
            sqs,
        }
    }

    pub fn env(&self) -> BTreeMap<String, String> {
        self.provisioned.env()
    }

    pub fn tenants_table(&self) -> String {
        self.env()["TENANTS_TABLE"].clone()
    }

    pub fn kms_key_id(&self) -> String {
        self.env()["KMS_KEY_ID"].clone()
    }

    /// The health check's per-endpoint history table (`HEALTH_HISTORY_TABLE`).
    pub fn health_history_table(&self) -> String {
        self.env()["HEALTH_HISTORY_TABLE"].clone()
    }

    /// The audit table (`AUDIT_TABLE`), whose `BySwitchStream` index lists automatic switches.
    pub fn audit_table(&self) -> String {
        self.env()["AUDIT_TABLE"].clone()
    }

    /// A delivery record `tenant#key` in state `state` (what the outbound sender writes),
    /// through an uncounted client; it expires in an hour.
    pub async fn put_delivery(&self, tenant: &str, key: &str, state: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .put_item()
            .table_name(self.env()["MESSAGES_TABLE"].clone())
            .item("pk", AttributeValue::S(format!("{tenant}#{key}")))
            .item("state", AttributeValue::S(state.into()))
            .item("attempts", AttributeValue::N("1".into()))
            .item("expiresAt", AttributeValue::N(expires.to_string()))
            .send()
            .await
            .expect("put a delivery record");
    }

    /// Every item of the tenants table, raw, through an uncounted client.
    pub async fn scan_tenants(
        &self,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        let out = client
            .scan()
            .table_name(self.tenants_table())
            .send()
            .await
            .expect("scan tenants");
        out.items.unwrap_or_default()
    }
}

/// Builds an API Gateway HTTP API (payload v2) event and turns it into the request
/// `lambda_http` hands a handler, the same conversion it does in Lambda.
pub struct ApiEvent {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Option<Vec<u8>>,
    base64: bool,
    /// The event's `body` string exactly as given (with `isBase64Encoded: true`), valid
    /// base64 or not.
    encoded_body: Option<String>,
    source_ip: String,
    /// Leave `requestContext.domainName` out (a front door that does not report the API's
    /// own URL).
    no_domain: bool,
    function_url: bool,
}

impl ApiEvent {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: BTreeMap::from([("user-agent".into(), "wagate-tests".into())]),
            body: None,
            base64: false,
            encoded_body: None,
            source_ip: "203.0.113.10".into(),
            no_domain: false,
            function_url: false,
        }
    }

    /// The event without `requestContext.domainName`: the API cannot tell its own URL.
    pub fn without_domain(mut self) -> Self {
        self.no_domain = true;
        self
    }

    /// The same request as a Lambda function URL delivers it (payload v2 with the URL's
    /// request context: `<url-id>.lambda-url.<region>.on.aws`, account `anonymous` for
    /// `AuthType: NONE`, no authorizer, `null` path parameters and stage variables).
    pub fn via_function_url(mut self) -> Self {
        self.function_url = true;
        self
    }

    /// The caller's address as API Gateway reports it (`requestContext.http.sourceIp`).
    pub fn source_ip(mut self, ip: &str) -> Self {
        self.source_ip = ip.into();
        self
    }

    /// A raw body with no content type (what a webhook sender may post).
    pub fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn query(mut self, q: &str) -> Self {
        self.query = q.into();
        self
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(self, body: &serde_json::Value) -> Self {
        self.raw_json(serde_json::to_vec(body).expect("json"))
    }

    /// Raw bytes with `Content-Type: application/json`.
    pub fn raw_json(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.headers
            .insert("content-type".into(), "application/json".into());
        self.body = Some(body.into());
        self
    }

    /// Sends the body base64-encoded, as API Gateway does for binary payloads.
    pub fn base64_encoded(mut self) -> Self {
        self.base64 = true;
        self
    }

    /// A body flagged `isBase64Encoded` whose event text is `encoded` verbatim (e.g. text
    /// that is not base64 at all, which API Gateway itself never sends).
    pub fn base64_body_verbatim(mut self, encoded: &str) -> Self {
        self.base64 = true;
        self.encoded_body = Some(encoded.into());
        self
    }

    /// The v2 event as the function receives it (what `handle_event` takes).
    pub fn event(&self) -> aws_lambda_events::apigw::ApiGatewayV2httpRequest {
        serde_json::from_value(self.event_json()).expect("a v2 event")
    }

    /// The v2 event as API Gateway sends it.
    pub fn event_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        let body = self.encoded_body.clone().or_else(|| {
            self.body.as_ref().map(|b| {
                if self.base64 {
                    base64::engine::general_purpose::STANDARD.encode(b)
                } else {
                    String::from_utf8(b.clone()).expect("text body (use base64_encoded for bytes)")
                }
            })
        });
        if self.function_url {
            return serde_json::json!({
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": self.path,
                "rawQueryString": self.query,
                "headers": self.headers,
                "queryStringParameters": null,
                "requestContext": {
                    "accountId": "anonymous",
                    "apiId": "wagatelocalurl0000000000000000000",
                    "authentication": null,
                    "domainName": "wagatelocalurl0000000000000000000.lambda-url.us-east-1.on.aws",
                    "domainPrefix": "wagatelocalurl0000000000000000000",
                    "http": {
                        "method": self.method,
                        "path": self.path,
                        "protocol": "HTTP/1.1",
                        "sourceIp": self.source_ip,
                        "userAgent": "wagate-tests"
                    },
                    "requestId": "test-request",
                    "routeKey": "$default",
                    "stage": "$default",
                    "time": "28/Nov/2026:12:00:00 +0000",
                    "timeEpoch": 1795867200000u64
                },
                "body": body,
                "pathParameters": null,
                "isBase64Encoded": self.base64,
                "stageVariables": null
            });
        }
        let mut event = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": self.headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "wagatelocal",
                "domainName": "wagatelocal.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "wagatelocal",
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": self.source_ip,
                    "userAgent": "wagate-tests"
                },
                "requestId": "test-request",
                "routeKey": "$default",
                "stage": "$default",
                "time": "28/Nov/2026:12:00:00 +0000",
                "timeEpoch": 1795867200000u64
            },
            "body": body,
            "isBase64Encoded": self.base64
        });
        if self.no_domain
            && let Some(ctx) = event["requestContext"].as_object_mut()
        {
            ctx.remove("domainName");
            ctx.remove("domainPrefix");
        }
        event
    }

    pub fn request(&self) -> lambda_http::Request {
        lambda_http::request::from_str(&self.event_json().to_string())
            .expect("lambda_http accepts the v2 event")
    }
}

/// Captures what `tracing` writes on this thread while the guard lives (use a
/// current-thread runtime, the `#[tokio::test]` default).
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct BufWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for BufWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Everything at TRACE and up, as JSON lines like production.
    pub fn start() -> LogCapture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = BufWriter(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(move || writer.clone())
            .finish();
        LogCapture {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// What the functions write in production at `filter` (e.g. `info`, their default): the
    /// functions' own subscriber ([`wagate::runtime::telemetry::subscriber`]), for tests that
    /// count log bytes.
    pub fn production(filter: &str) -> LogCapture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = BufWriter(buf.clone());
        let subscriber = wagate::runtime::telemetry::subscriber(
            tracing_subscriber::EnvFilter::new(filter),
            move || writer.clone(),
        );
        LogCapture {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Bytes captured so far.
    pub fn len(&self) -> usize {
        self.buf.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Receives and deletes every message on `queue_url` (through an uncounted client).
/// Deleting matters for FIFO queues: a message group stays locked while any of its
/// messages is in flight.
pub async fn drain_queue(sdk: &SdkConfig, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let client = aws_sdk_sqs::Client::new(sdk);
    let mut out = Vec::new();
    loop {
        let resp = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .visibility_timeout(600)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive from moto");
        let batch = resp.messages.unwrap_or_default();
        if batch.is_empty() {
            return out;
        }
        for m in &batch {
            if let Some(handle) = m.receipt_handle() {
                client
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete from moto");
            }
        }
        out.extend(batch);
    }
}

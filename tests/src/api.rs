//! The config API in-process over moto_server, with a local JWT issuer.

use std::sync::Arc;

use config_api::App;
use config_api::auth::{AuthConfig, Authenticator, KeySource};
use config_api::store::Tables;
use config_api::store::memory::MemoryStores;
use http::StatusCode;
use serde_json::Value;
use wagate::egress::{EgressPolicy, HostResolver, HttpClient, HttpTimeouts, SystemResolver};
use wagate::secrets::KmsSealer;
use wagate::testing::MemorySealer;
use wagate_devstack::{LocalIssuer, TokenSpec};

use crate::{ApiEvent, Stack};

/// The tenant config path of `acme`.
pub const PATH: &str = "/tenants/acme/whatsapp-config";

pub struct Api {
    pub stack: Stack,
    pub app: App,
    pub issuer: LocalIssuer,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

pub async fn api() -> Api {
    api_with_resolver(Arc::new(SystemResolver)).await
}

/// The API with host names looked up in `resolver` (e.g. a [`wagate::egress::StaticResolver`]
/// mapping a test name to a blocked address, with no `/etc/hosts` edit).
pub async fn api_with_resolver(resolver: Arc<dyn HostResolver>) -> Api {
    let stack = Stack::new().await;
    let issuer = LocalIssuer::generate();
    // Loopback is admitted the way an operator admits it locally: through the allowlist.
    let egress = EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.1/32").unwrap());
    let http =
        HttpClient::with_resolver(egress.clone(), HttpTimeouts::default(), resolver).unwrap();
    let auth = Authenticator::new(
        AuthConfig {
            issuer: "wagate-local".into(),
            audience: "wagate-config-api".into(),
            keys: KeySource::Inline(issuer.jwks_json()),
        },
        http.clone(),
    )
    .await
    .unwrap();
    let env = stack.env();
    let tables = Tables {
        tenants: stack.tenants_table(),
        audit: env["AUDIT_TABLE"].clone(),
        endpoints: env["ENDPOINTS_TABLE"].clone(),
        history: env
            .get("HEALTH_HISTORY_TABLE")
            .cloned()
            .expect("template.yaml defines HEALTH_HISTORY_TABLE for the config API"),
        messages: env["MESSAGES_TABLE"].clone(),
        servers: env["SERVERS_TABLE"].clone(),
        jobs: env["MIGRATIONS_TABLE"].clone(),
    };
    let app = App::new(
        config_api::store::dynamo::stores(stack.dynamodb.clone(), &tables),
        Arc::new(KmsSealer::new(stack.kms.clone(), stack.kms_key_id())),
        auth,
        http,
        egress,
        // Unset, as in a stack deployed with the default: the API's own URL.
        wagate::runtime::config::PublicWebhookBase::default(),
    );
    Api { stack, app, issuer }
}

impl Api {
    pub fn admin(&self) -> String {
        self.issuer.token(&TokenSpec::admin())
    }

    pub fn tenant(&self, t: &str) -> String {
        self.issuer.token(&TokenSpec::tenant(t))
    }

    pub async fn call(&self, ev: ApiEvent) -> Reply {
        call(&self.app, ev).await
    }

    pub async fn create(&self, body: &Value) -> Reply {
        self.call(ApiEvent::new("POST", PATH).bearer(&self.admin()).json(body))
            .await
    }

    pub async fn stored(
        &self,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.stack.scan_tenants().await
    }
}

/// One request through the config API's entry point (`config_api::handle_event`, what the
/// function's `main.rs` runs), as API Gateway would send it.
pub async fn call(app: &App, ev: ApiEvent) -> Reply {
    let resp = config_api::handle_event(app, ev.event(), Default::default()).await;
    let status = http::StatusCode::from_u16(resp.status_code as u16).expect("a valid status");
    let text = match resp.body {
        None | Some(lambda_http::Body::Empty) => String::new(),
        Some(lambda_http::Body::Text(t)) => t,
        Some(lambda_http::Body::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
        Some(_) => String::new(),
    };
    Reply {
        status,
        headers: resp.headers,
        text,
    }
}

/// The config API on in-memory stores and sealer (`config_api::store::memory`,
/// `wagate::testing`): no moto_server, no AWS call; for tests whose subject is the handlers'
/// logic, not DynamoDB's semantics.
pub struct FakeApi {
    pub app: App,
    pub stores: MemoryStores,
    pub sealer: Arc<MemorySealer>,
    pub issuer: LocalIssuer,
}

/// A [`FakeApi`]; loopback is admitted as in [`api`].
pub async fn api_on_fakes() -> FakeApi {
    let issuer = LocalIssuer::generate();
    let egress = EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.1/32").unwrap());
    let http = HttpClient::with_resolver(
        egress.clone(),
        HttpTimeouts::default(),
        Arc::new(SystemResolver),
    )
    .unwrap();
    let auth = Authenticator::new(
        AuthConfig {
            issuer: "wagate-local".into(),
            audience: "wagate-config-api".into(),
            keys: KeySource::Inline(issuer.jwks_json()),
        },
        http.clone(),
    )
    .await
    .unwrap();
    let stores = MemoryStores::new();
    let sealer = Arc::new(MemorySealer::new());
    let app = App::new(
        stores.stores(),
        sealer.clone(),
        auth,
        http,
        egress,
        wagate::runtime::config::PublicWebhookBase::default(),
    );
    FakeApi {
        app,
        stores,
        sealer,
        issuer,
    }
}

impl FakeApi {
    pub fn admin(&self) -> String {
        self.issuer.token(&TokenSpec::admin())
    }

    pub fn tenant(&self, t: &str) -> String {
        self.issuer.token(&TokenSpec::tenant(t))
    }

    pub async fn call(&self, ev: ApiEvent) -> Reply {
        call(&self.app, ev).await
    }

    pub async fn create(&self, body: &Value) -> Reply {
        self.call(ApiEvent::new("POST", PATH).bearer(&self.admin()).json(body))
            .await
    }
}

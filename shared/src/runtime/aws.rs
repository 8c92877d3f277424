//! AWS SDK configuration. `AWS_ENDPOINT_URL` (moto_server locally) is honoured by the SDK
//! itself, so local runs and AWS take the same code path.
//!
//! The SDK's HTTP client is wagate's own ([`SdkHttp`]): hyper with hyper-rustls, the crates
//! the SDK's default client is built from, but over the process's one TLS configuration
//! ([`super::tls::client_config`]), so the system certificate store is loaded once per
//! process, and with one connection pool that [`SdkHttp::prime`] can fill during init:
//! the first request of each service then reuses a connection whose TLS handshake is done.

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;

use super::tls::{self, TlsError};

/// The SDK's connect timeout (its own default, set explicitly so the pool and the SDK agree).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// `WAGATE_PRIME_TIMEOUT_MS`: how long init waits for the primed connections (default 1000;
/// `0` turns priming off).
pub const PRIME_TIMEOUT_ENV: &str = "WAGATE_PRIME_TIMEOUT_MS";
const DEFAULT_PRIME_TIMEOUT: Duration = Duration::from_millis(1000);

/// An AWS service whose endpoint a function calls on its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    DynamoDb,
    Kms,
    Sqs,
}

impl Service {
    fn id(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::Kms => "kms",
            Service::Sqs => "sqs",
        }
    }
}

/// Loads the SDK configuration from the environment (region, credentials, endpoint) over the
/// process's TLS configuration, then primes a connection to each of `services`' `https` endpoints
/// ([`SdkHttp::prime`], bounded by `WAGATE_PRIME_TIMEOUT_MS`; a failed priming never fails
/// init). Fails when the TLS configuration cannot be built (`WAGATE_EXTRA_CA_FILE`
/// unreadable) or `WAGATE_PRIME_TIMEOUT_MS` is not a number.
pub async fn load(services: &[Service]) -> Result<SdkConfig, LoadError> {
    let timeout = prime_timeout(std::env::var(PRIME_TIMEOUT_ENV).ok())?;
    let http = SdkHttp::new(tls::client_config()?);
    let sdk = load_with(http.clone()).await;
    // Only TLS connections are worth opening early (plain http, moto_server locally, costs
    // one TCP connect, and moto closes every connection after one answer anyway).
    let tls_endpoints: Vec<_> = endpoints(&sdk, services)
        .into_iter()
        .filter(|u| u.scheme_str() == Some("https"))
        .collect();
    if !timeout.is_zero() && !tls_endpoints.is_empty() {
        http.prime(&tls_endpoints, timeout).await;
    }
    Ok(sdk)
}

/// The SDK configuration from the environment over `http`, without priming.
pub async fn load_with(http: SdkHttp) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(SharedHttpClient::new(http))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// Why the SDK configuration could not be loaded (an init error).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("{PRIME_TIMEOUT_ENV}={0:?} is not a whole number of milliseconds")]
    PrimeTimeout(String),
}

/// `WAGATE_PRIME_TIMEOUT_MS`'s value: unset or empty is the default.
fn prime_timeout(value: Option<String>) -> Result<Duration, LoadError> {
    match value {
        Some(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| LoadError::PrimeTimeout(v)),
        _ => Ok(DEFAULT_PRIME_TIMEOUT),
    }
}

/// The endpoints `services` will call, as the SDK resolves them for the standard partition:
/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, else
/// `https://<service>.<region>.amazonaws.com`. One per distinct scheme and authority.
pub fn endpoints(sdk: &SdkConfig, services: &[Service]) -> Vec<http::Uri> {
    let region = sdk.region().map(|r| r.to_string());
    let mut out: Vec<http::Uri> = Vec::new();
    for service in services {
        let specific = std::env::var(format!(
            "AWS_ENDPOINT_URL_{}",
            service.id().to_ascii_uppercase()
        ))
        .ok();
        let url = match (specific, sdk.endpoint_url(), &region) {
            (Some(url), _, _) => url,
            (None, Some(url), _) => url.to_string(),
            (None, None, Some(region)) => {
                format!("https://{}.{region}.amazonaws.com", service.id())
            }
            (None, None, None) => continue,
        };
        let Ok(uri) = url.parse::<http::Uri>() else {
            continue;
        };
        let same = |u: &http::Uri| u.scheme() == uri.scheme() && u.authority() == uri.authority();
        if !out.iter().any(same) {
            out.push(uri);
        }
    }
    out
}

type Pool = Client<HttpsConnector<TcpConnector>, SdkBody>;

/// The SDK's HTTP client: one hyper connection pool over the shared TLS configuration.
#[derive(Debug, Clone)]
pub struct SdkHttp {
    pool: Pool,
}

impl SdkHttp {
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let pool = Client::builder(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Self { pool }
    }

    /// Opens one connection to each of `endpoints` in parallel (TCP and, for `https`, the TLS
    /// handshake) with a `GET /` whose answer is read and dropped, so the connection stays
    /// in the pool for the SDK's first request. Waits at most `timeout`; a failure or a
    /// timeout is an INFO line, never an error. Returns how many endpoints answered.
    pub async fn prime(&self, endpoints: &[http::Uri], timeout: Duration) -> usize {
        let tasks = endpoints.iter().cloned().map(|uri| {
            let pool = self.pool.clone();
            async move {
                let request = http::Request::get(uri.clone())
                    .body(SdkBody::empty())
                    .expect("a GET of a parsed URI");
                let answer = async {
                    let response = pool.request(request).await?;
                    response.into_body().collect().await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                };
                match tokio::time::timeout(timeout, answer).await {
                    Ok(Ok(())) => {
                        tracing::debug!(endpoint = %uri, "connection primed");
                        true
                    }
                    Ok(Err(e)) => {
                        tracing::info!(endpoint = %uri, error = %e, "connection not primed");
                        false
                    }
                    Err(_) => {
                        tracing::info!(
                            endpoint = %uri,
                            timeout_ms = timeout.as_millis() as u64,
                            "connection not primed: timed out"
                        );
                        false
                    }
                }
            }
        });
        futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .filter(|primed| *primed)
            .count()
    }
}

impl HttpClient for SdkHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(SdkConnector {
            pool: self.pool.clone(),
            read_timeout: settings.read_timeout(),
        })
    }
}

/// One service client's view of the pool; the read timeout bounds the wait for the answer's
/// head, as the SDK's own connector does.
#[derive(Debug)]
struct SdkConnector {
    pool: Pool,
    read_timeout: Option<Duration>,
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let pool = self.pool.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let sent = pool.request(request);
            let response = match read_timeout {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(r) => r,
                    Err(e) => return Err(ConnectorError::timeout(e.into())),
                },
                None => sent.await,
            }
            .map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Connection-level failures (refused, reset, closed, TLS) are I/O errors, which the SDK
/// retries; a connect timeout is a timeout.
fn classify(e: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = std::error::Error::source(&e)
        .map(|s| s.to_string().contains("timed out"))
        .unwrap_or(false);
    if timed_out {
        ConnectorError::timeout(e.into())
    } else {
        ConnectorError::io(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::Region;

    #[test]
    fn each_service_primes_its_regional_endpoint() {
        let sdk = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .build();
        let got: Vec<String> = endpoints(&sdk, &[Service::DynamoDb, Service::Kms, Service::Sqs])
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "https://dynamodb.eu-west-1.amazonaws.com/",
                "https://kms.eu-west-1.amazonaws.com/",
                "https://sqs.eu-west-1.amazonaws.com/",
            ]
        );
    }

    #[test]
    fn prime_timeout_is_milliseconds_defaults_when_unset_and_refuses_words() {
        assert_eq!(prime_timeout(None).unwrap(), DEFAULT_PRIME_TIMEOUT);
        assert_eq!(
            prime_timeout(Some(" ".into())).unwrap(),
            DEFAULT_PRIME_TIMEOUT
        );
        assert_eq!(prime_timeout(Some("0".into())).unwrap(), Duration::ZERO);
        assert_eq!(
            prime_timeout(Some("250".into())).unwrap(),
            Duration::from_millis(250)
        );
        let err = prime_timeout(Some("1s".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"WAGATE_PRIME_TIMEOUT_MS="1s" is not a whole number of milliseconds"#
        );
    }

    #[test]
    fn one_endpoint_override_is_primed_once() {
        let sdk = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .endpoint_url("https://127.0.0.1:4443")
            .build();
        let got = endpoints(&sdk, &[Service::DynamoDb, Service::Kms, Service::Sqs]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].to_string(), "https://127.0.0.1:4443/");
    }
}

//! The one outbound HTTP client: timeouts, rustls over the process's one TLS configuration
//! ([`crate::runtime::tls::client_config`], shared with the AWS SDK), no redirects, and the
//! egress guard of
//! [`super::EgressPolicy`] applied twice: IP literals in the URL before the request (a custom
//! resolver is never asked about them), and every address a host name resolves to, at connect
//! time, in the client's DNS resolver.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use super::{
    EgressError, EgressPolicy, HostResolver, HttpTimeouts, SystemResolver, admitted_addresses,
};

/// A DNS resolver that drops refused addresses and fails when none is left.
#[derive(Debug, Clone)]
struct GuardedResolver {
    policy: Arc<EgressPolicy>,
    resolver: Arc<dyn HostResolver>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let resolver = self.resolver.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved = resolver.lookup(&host).await?;
            let admitted = admitted_addresses(&policy, &host, resolved)?;
            if admitted.is_empty() {
                return Err(format!("{host} resolved to no address").into());
            }
            let addrs: Addrs = Box::new(admitted.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Why the outbound client could not be built (an init error).
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error(transparent)]
    Tls(#[from] crate::runtime::tls::TlsError),
    #[error("HTTP client setup failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// The shared outbound client. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Arc<EgressPolicy>,
    timeouts: HttpTimeouts,
    resolver: Arc<dyn HostResolver>,
}

impl HttpClient {
    pub fn new(policy: EgressPolicy, timeouts: HttpTimeouts) -> Result<Self, ClientBuildError> {
        Self::with_resolver(policy, timeouts, Arc::new(SystemResolver))
    }

    /// A client whose host names are looked up by `resolver` (at connect time and by
    /// [`Self::check_host`]).
    pub fn with_resolver(
        policy: EgressPolicy,
        timeouts: HttpTimeouts,
        resolver: Arc<dyn HostResolver>,
    ) -> Result<Self, ClientBuildError> {
        let tls = crate::runtime::tls::client_config()?;
        Ok(Self::with_tls(policy, timeouts, resolver, &tls)?)
    }

    /// A client over the TLS configuration `tls` (the process's, or a test's own).
    pub fn with_tls(
        policy: EgressPolicy,
        timeouts: HttpTimeouts,
        resolver: Arc<dyn HostResolver>,
        tls: &rustls::ClientConfig,
    ) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_nodelay(true)
            .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
                resolver: resolver.clone(),
            }))
            .build()?;
        Ok(Self {
            inner,
            policy,
            timeouts,
            resolver,
        })
    }

    /// The save-time check of a server URL: [`EgressPolicy::check_url`], then, for a host
    /// name, a lookup: refused when every address it resolves to is refused. A name that
    /// does not resolve (or not within the connect timeout) passes: the guard in the
    /// client's resolver checks every address again at connect time, which is the real
    /// defence (DNS can change after a save).
    pub async fn check_host(&self, url: &Url) -> Result<(), EgressError> {
        self.policy.check_url(url)?;
        let Some(Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        let name = name.trim_end_matches('.');
        match tokio::time::timeout(self.timeouts.connect, self.resolver.lookup(name)).await {
            Ok(Ok(addrs)) => admitted_addresses(&self.policy, name, addrs).map(|_| ()),
            Ok(Err(e)) => {
                tracing::info!(host = name, error = %e, "server host name does not resolve (yet)");
                Ok(())
            }
            Err(_) => {
                tracing::info!(host = name, "server host name lookup timed out");
                Ok(())
            }
        }
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    pub fn timeouts(&self) -> HttpTimeouts {
        self.timeouts
    }

    /// A request builder for `url`, after the literal-address check. Every outbound
    /// request goes through here.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: Url,
    ) -> Result<reqwest::RequestBuilder, EgressError> {
        self.policy.check_url(&url)?;
        Ok(self.inner.request(method, url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::{StaticResolver, egress_refusal};

    #[tokio::test]
    async fn resolver_refuses_a_name_that_resolves_to_loopback() {
        let client = HttpClient::new(EgressPolicy::default(), HttpTimeouts::default()).unwrap();
        // "localhost" is caught before DNS; a name the resolver must check is needed, and
        // "localtest.me"-style public names need a network. The resolver is exercised
        // directly instead.
        let resolver = GuardedResolver {
            policy: client.policy.clone(),
            resolver: Arc::new(SystemResolver),
        };
        let err = resolver
            .resolve("localhost".parse::<Name>().unwrap())
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    fn table() -> StaticResolver {
        let r = StaticResolver::new();
        r.set("internal.test", &["127.0.0.2".parse().unwrap()]);
        r.set(
            "private.test",
            &["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
        );
        r.set(
            "mixed.test",
            &[
                "10.0.0.5".parse().unwrap(),
                "93.184.216.34".parse().unwrap(),
            ],
        );
        r
    }

    fn client(allow: &str) -> HttpClient {
        HttpClient::with_resolver(
            EgressPolicy::new(EgressPolicy::parse_allowlist(allow).unwrap()),
            HttpTimeouts::default(),
            Arc::new(table()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn check_host_refuses_a_name_whose_every_address_is_blocked() {
        let c = client("127.0.0.1/32");
        for url in ["http://internal.test:3000", "https://PRIVATE.test./x"] {
            let err = c.check_host(&Url::parse(url).unwrap()).await.unwrap_err();
            assert!(
                matches!(&err, EgressError::HostBlocked { host, .. } if host.ends_with(".test")),
                "{url}: {err:?}"
            );
            assert!(
                err.to_string().contains("WAGATE_EGRESS_ALLOW_CIDRS"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn check_host_admits_public_allowlisted_and_unresolvable_names() {
        let c = client("127.0.0.0/8");
        for url in [
            "https://mixed.test",
            "http://internal.test:3000",
            "https://does-not-resolve.test",
            "https://93.184.216.34",
        ] {
            c.check_host(&Url::parse(url).unwrap())
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        // Literals are still checked without DNS.
        assert!(
            client("")
                .check_host(&Url::parse("http://10.1.1.1").unwrap())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_request_the_resolver_refuses_names_the_egress_guard() {
        let c = client("");
        let err = c
            .request(
                reqwest::Method::GET,
                Url::parse("http://internal.test:9/health").unwrap(),
            )
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let refused = egress_refusal(&err).expect("the guard's refusal is in the error chain");
        assert!(
            matches!(refused, EgressError::HostBlocked { ref host, .. } if host == "internal.test"),
            "{refused:?}"
        );
    }
}

//! A local TLS front for moto_server (issue 18): it terminates TLS on a free loopback port
//! with a certificate from a test CA made at run time, forwards each request to moto over
//! plain HTTP, and keeps the client's connection open between requests (moto itself answers
//! `Connection: close`, which would hide connection reuse). It counts completed TLS
//! handshakes, so a test can tell a reused connection from a new one.
//!
//! Used by `tests/tests/tls_priming.rs` and by the cold-start benchmark
//! (`COLDSTART_TLS=1 target/debug/examples/coldstart`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use hyper_util_server::rt::{TokioExecutor, TokioIo};
use hyper_util_server::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA and a server certificate it signed for `127.0.0.1` and `localhost`.
pub struct TestCa {
    /// The CA certificate, PEM (what `WAGATE_EXTRA_CA_FILE` names).
    pub ca_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: Vec<u8>,
}

impl TestCa {
    pub fn generate() -> TestCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wagate test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let leaf_params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        let leaf_key = KeyPair::generate().expect("server key");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("server certificate");
        TestCa {
            ca_pem: ca.pem(),
            leaf: leaf.der().clone(),
            leaf_key: leaf_key.serialize_der(),
        }
    }

    /// Writes the CA certificate to a fresh file under the temp directory and returns its path.
    pub fn write_ca_file(&self) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "wagate-test-ca-{}-{}.pem",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, &self.ca_pem).expect("write the test CA");
        path
    }

    fn server_config(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone())),
            )
            .expect("server certificate and key")
    }
}

/// The running front. Stops when dropped.
pub struct TlsFront {
    pub addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    client: reqwest::Client,
    requests: Arc<AtomicUsize>,
}

impl TlsFront {
    /// Starts a front for `upstream` (e.g. `http://127.0.0.1:4574`) on a free loopback port.
    pub async fn start(ca: &TestCa, upstream: &str) -> TlsFront {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("local address");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server_config()));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let up = Upstream {
            base: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("upstream client"),
            requests: requests.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(up);
        let counted = handshakes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let service = TowerToHyperService::new(app);
                    let _ =
                        hyper_util_server::server::conn::auto::Builder::new(TokioExecutor::new())
                            .http1_only()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                });
            }
        });
        TlsFront {
            addr,
            handshakes,
            requests,
            task,
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// TLS handshakes completed so far (one per client connection).
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Requests forwarded so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "transfer-encoding", "upgrade"];

async fn forward(State(up): State<Upstream>, request: Request) -> Response {
    up.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return status(400);
    };
    let mut out = up
        .client
        .request(parts.method, format!("{}{path}", up.base))
        .body(body);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" {
            out = out.header(name, value);
        }
    }
    let Ok(answer) = out.send().await else {
        return status(502);
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "content-length" {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response
        .body(Body::from(bytes))
        .unwrap_or_else(|_| status(502))
}

fn status(code: u16) -> Response {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .expect("a bare status")
}

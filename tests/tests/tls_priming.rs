//! Issue 18: one TLS configuration per process, shared by the AWS SDK and the outbound HTTP
//! client, and connections primed during init. Against moto_server behind a local TLS front
//! (tests/src/tls_front.rs) whose test CA is made at run time and trusted only through the
//! configuration under test (`wagate::runtime::tls::build`, what `WAGATE_EXTRA_CA_FILE` feeds).

use std::sync::Arc;
use std::time::Duration;

use wagate::egress::{EgressPolicy, HttpClient, HttpTimeouts, SystemResolver};
use wagate::runtime::aws::{SdkHttp, load_with};
use wagate::runtime::tls;
use wagate_tests::tls_front::{TestCa, TlsFront};

struct Front {
    front: TlsFront,
    tls: Arc<rustls::ClientConfig>,
    ca_file: std::path::PathBuf,
}

impl Drop for Front {
    fn drop(&mut self) {
        std::fs::remove_file(&self.ca_file).ok();
    }
}

async fn front() -> Front {
    let ca = TestCa::generate();
    let front = TlsFront::start(&ca, &wagate_tests::moto_endpoint()).await;
    let ca_file = ca.write_ca_file();
    let tls = Arc::new(tls::build(Some(&ca_file)).expect("system store plus the test CA"));
    Front {
        front,
        tls,
        ca_file,
    }
}

async fn dynamodb(http: SdkHttp, endpoint: &str) -> aws_sdk_dynamodb::Client {
    let sdk = load_with(http).await;
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .build(),
    )
}

#[tokio::test]
async fn the_sdk_and_the_http_client_trust_what_the_one_configuration_trusts() {
    let f = front().await;

    // The SDK over the configuration that holds the test CA reaches moto through the front.
    let db = dynamodb(SdkHttp::new(f.tls.clone()), &f.front.url()).await;
    db.list_tables()
        .send()
        .await
        .expect("ListTables through the TLS front");

    // The outbound client over the same configuration: the TLS handshake succeeds (any HTTP
    // answer from moto proves it), with the egress guard still in place.
    let http = HttpClient::with_tls(
        EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.0/8").unwrap()),
        HttpTimeouts::default(),
        Arc::new(SystemResolver),
        &f.tls,
    )
    .unwrap();
    let url = url::Url::parse(&format!("{}/", f.front.url())).unwrap();
    http.request(http::Method::GET, url)
        .unwrap()
        .send()
        .await
        .expect("an HTTPS answer through the TLS front");
    assert_eq!(f.front.requests(), 2);

    // A configuration without the test CA (the system store only) is refused at the
    // handshake, by both: the trust really comes from the configuration passed in.
    let system_only = Arc::new(tls::build(None).unwrap());
    let db = dynamodb(SdkHttp::new(system_only.clone()), &f.front.url()).await;
    assert!(db.list_tables().send().await.is_err());
    let http = HttpClient::with_tls(
        EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.0/8").unwrap()),
        HttpTimeouts::default(),
        Arc::new(SystemResolver),
        &system_only,
    )
    .unwrap();
    let url = url::Url::parse(&format!("{}/", f.front.url())).unwrap();
    assert!(
        http.request(http::Method::GET, url)
            .unwrap()
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        f.front.requests(),
        2,
        "no request passed an untrusted handshake"
    );
}

#[tokio::test]
async fn the_egress_guard_still_refuses_loopback_without_an_allowlist() {
    let f = front().await;
    let http = HttpClient::with_tls(
        EgressPolicy::default(),
        HttpTimeouts::default(),
        Arc::new(SystemResolver),
        &f.tls,
    )
    .unwrap();
    let url = url::Url::parse(&format!("{}/", f.front.url())).unwrap();
    assert!(http.request(http::Method::GET, url).is_err());
    assert_eq!(f.front.handshakes(), 0);
    assert_eq!(f.front.requests(), 0);
}

#[tokio::test]
async fn a_primed_connection_carries_the_first_requests() {
    let f = front().await;
    let http = SdkHttp::new(f.tls.clone());
    let endpoint: http::Uri = f.front.url().parse().unwrap();

    let primed = http.prime(&[endpoint], Duration::from_secs(10)).await;
    assert_eq!(primed, 1);
    assert_eq!(f.front.handshakes(), 1);

    let db = dynamodb(http, &f.front.url()).await;
    for _ in 0..3 {
        db.list_tables().send().await.expect("ListTables");
    }
    assert_eq!(
        f.front.handshakes(),
        1,
        "the first request (and the next) reuse the primed connection"
    );
    assert_eq!(
        f.front.requests(),
        4,
        "the priming GET and three ListTables"
    );
}

#[tokio::test]
async fn without_priming_the_first_request_opens_its_own_connection() {
    let f = front().await;
    let db = dynamodb(SdkHttp::new(f.tls.clone()), &f.front.url()).await;
    assert_eq!(
        f.front.handshakes(),
        0,
        "loading the configuration connects nowhere"
    );
    db.list_tables().send().await.expect("ListTables");
    db.list_tables().send().await.expect("ListTables");
    assert_eq!(f.front.handshakes(), 1);
    assert_eq!(f.front.requests(), 2);
}

/// An endpoint that accepts TCP but never answers the TLS handshake: priming gives up at its
/// timeout (on tokio's paused clock, so the figure is exact whatever the machine's speed)
/// and reports nothing primed; an endpoint that refuses connections fails at once. Neither
/// is an error.
#[tokio::test(start_paused = true)]
async fn priming_an_endpoint_that_never_answers_gives_up_at_its_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let tls = Arc::new(tls::build(None).unwrap());
    let http = SdkHttp::new(tls);
    let endpoints: Vec<http::Uri> = [silent_addr, refused]
        .iter()
        .map(|a| format!("https://{a}").parse().unwrap())
        .collect();

    let started = tokio::time::Instant::now();
    let primed = http.prime(&endpoints, Duration::from_millis(800)).await;
    let waited = started.elapsed();

    assert_eq!(primed, 0);
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_millis(900),
        "priming waits for its timeout and no longer: {waited:?} (paused clock)"
    );
}

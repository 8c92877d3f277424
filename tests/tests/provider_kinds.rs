//! The WAHA, Evolution and Meta clients against the simulator of each kind, over HTTP through
//! the egress-guarded client, every request checked against the kind's published spec
//! (`sim_contract::checked`): each send type, reply-to, each error class the kind can
//! produce (the simulator's fault injection), health and device status.

use gowa_sim::{
    DeviceState, Faults, Kind, MessagingHealth, ProviderErrorFault, SendErrorFault,
    SendErrorStatus, SimConfig,
};
use serde_json::Value;
use wagate::Secret;
use wagate::egress::{EgressPolicy, HttpClient, HttpTimeouts};
use wagate::provider::{
    Content, ErrorClass, ProviderError, Providers, SendRequest, Target, WhatsAppProvider,
};
use wagate::tenant::{Credentials, ProviderKind};
use wagate_tests::sim_contract::{Checked, checked};

const KEY: &str = "kind-api-key-5e1f0c";
const TO: &str = "+6289876543210";

fn providers() -> Providers {
    let egress = EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.1/32").unwrap());
    Providers::new(HttpClient::new(egress, HttpTimeouts::default()).unwrap())
}

fn kind_of(k: Kind) -> ProviderKind {
    match k {
        Kind::Gowa => ProviderKind::Gowa,
        Kind::Waha => ProviderKind::Waha,
        Kind::Evolution => ProviderKind::Evolution,
        Kind::Meta => ProviderKind::Meta,
    }
}

async fn sim(kind: Kind) -> Checked {
    checked(
        gowa_sim::start(SimConfig::for_kind(kind).api_key(KEY))
            .await
            .unwrap(),
    )
}

fn credentials(kind: Kind, key: &str) -> Credentials<Secret> {
    match kind {
        Kind::Meta => Credentials::Meta {
            token: Secret::new(key.to_string()),
            app_secret: Secret::new("app-secret".to_string()),
            verify_token: Secret::new("verify".to_string()),
        },
        _ => Credentials::ApiKey {
            key: Secret::new(key.to_string()),
        },
    }
}

fn device(kind: Kind) -> &'static str {
    match kind {
        Kind::Gowa => gowa_sim::DEFAULT_DEVICE_ID,
        Kind::Waha => gowa_sim::DEFAULT_WAHA_SESSION,
        Kind::Evolution => gowa_sim::DEFAULT_EVOLUTION_INSTANCE,
        Kind::Meta => gowa_sim::DEFAULT_META_PHONE_NUMBER_ID,
    }
}

const KINDS: [Kind; 3] = [Kind::Waha, Kind::Evolution, Kind::Meta];

struct Under {
    sim: Checked,
    providers: Providers,
    base: String,
    creds: Credentials<Secret>,
    kind: Kind,
}

impl Under {
    async fn new(kind: Kind) -> Self {
        let sim = sim(kind).await;
        let base = sim.base_url();
        Under {
            sim,
            providers: providers(),
            base,
            creds: credentials(kind, KEY),
            kind,
        }
    }

    fn client(&self) -> &dyn WhatsAppProvider {
        self.providers.get(kind_of(self.kind)).unwrap()
    }

    fn target(&self) -> Target<'_> {
        Target {
            base_url: &self.base,
            credentials: &self.creds,
            device_id: Some(device(self.kind)),
        }
    }

    async fn send(
        &self,
        content: Content,
        reply_to: Option<String>,
    ) -> Result<String, ProviderError> {
        self.client()
            .send(
                self.target(),
                &SendRequest {
                    to: TO.into(),
                    content,
                    reply_to,
                },
            )
            .await
            .map(|r| r.provider_message_id)
    }

    async fn text(&self) -> Result<String, ProviderError> {
        self.send(
            Content::Text {
                body: "hello".into(),
            },
            None,
        )
        .await
    }

    /// The JSON bodies of the sends the simulator received, oldest first.
    fn sent_bodies(&self) -> Vec<Value> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST" && (r.path.contains("send") || r.path.ends_with("/messages"))
            })
            .filter_map(|r| r.json)
            .collect()
    }
}

fn image() -> Content {
    Content::Image {
        url: "https://cdn.example.com/room.jpg".into(),
        caption: Some("Your room".into()),
    }
}

fn document() -> Content {
    Content::Document {
        url: "https://cdn.example.com/invoice.pdf".into(),
        filename: Some("invoice-42.pdf".into()),
        caption: Some("Invoice".into()),
    }
}

#[tokio::test]
async fn every_kind_sends_text_image_and_document_by_url() {
    for kind in KINDS {
        let u = Under::new(kind).await;
        let ids = [
            u.text().await.unwrap(),
            u.send(image(), None).await.unwrap(),
            u.send(document(), None).await.unwrap(),
        ];
        assert!(ids.iter().all(|i| !i.is_empty()), "{kind:?} {ids:?}");
        let b = u.sent_bodies();
        assert_eq!(b.len(), 3, "{kind:?}: {b:?}");
        match kind {
            Kind::Waha => {
                assert_eq!(b[0]["chatId"], "6289876543210@c.us");
                assert_eq!(b[0]["session"], "default");
                assert_eq!(b[0]["text"], "hello");
                assert_eq!(b[1]["file"]["url"], "https://cdn.example.com/room.jpg");
                assert_eq!(b[1]["file"]["mimetype"], "image/jpeg");
                assert_eq!(b[1]["caption"], "Your room");
                assert_eq!(b[2]["file"]["filename"], "invoice-42.pdf");
                assert_eq!(b[2]["file"]["mimetype"], "application/pdf");
                assert_eq!(b[2]["caption"], "Invoice");
            }
            Kind::Evolution => {
                assert_eq!(b[0]["number"], "6289876543210");
                assert_eq!(b[0]["text"], "hello");
                assert_eq!(b[1]["mediatype"], "image");
                assert_eq!(b[1]["media"], "https://cdn.example.com/room.jpg");
                assert_eq!(b[1]["caption"], "Your room");
                assert_eq!(b[2]["mediatype"], "document");
                assert_eq!(b[2]["fileName"], "invoice-42.pdf");
            }
            Kind::Meta => {
                assert!(ids.iter().all(|i| i.starts_with("wamid.")), "{ids:?}");
                assert_eq!(b[0]["to"], "6289876543210");
                assert_eq!(b[0]["type"], "text");
                assert_eq!(b[0]["text"]["body"], "hello");
                assert_eq!(b[1]["image"]["link"], "https://cdn.example.com/room.jpg");
                assert_eq!(b[1]["image"]["caption"], "Your room");
                assert_eq!(b[2]["document"]["filename"], "invoice-42.pdf");
                assert_eq!(b[2]["document"]["caption"], "Invoice");
            }
            Kind::Gowa => unreachable!(),
        }
        // Credentials travel in the kind's own header.
        let first = &u.sim.requests()[0];
        let header = match kind {
            Kind::Waha => "x-api-key",
            Kind::Evolution => "apikey",
            _ => "authorization",
        };
        assert!(first.header(header).is_some(), "{kind:?}: no {header}");
        assert!(first.authorized, "{kind:?}: the simulator refused the key");
    }
}

#[tokio::test]
async fn replies_quote_the_message_in_each_kinds_form() {
    for kind in KINDS {
        let u = Under::new(kind).await;
        let first = u.text().await.unwrap();
        u.send(Content::Text { body: "re".into() }, Some(first.clone()))
            .await
            .unwrap();
        let b = u.sent_bodies();
        match kind {
            Kind::Waha => assert_eq!(b[1]["reply_to"], first.as_str()),
            Kind::Evolution => assert_eq!(b[1]["quoted"]["key"]["id"], first.as_str()),
            Kind::Meta => assert_eq!(b[1]["context"]["message_id"], first.as_str()),
            Kind::Gowa => unreachable!(),
        }
    }
}

#[tokio::test]
async fn a_reply_to_an_id_of_another_kind_goes_unquoted() {
    // After a failover across kinds, a GOWA id means nothing to WAHA or Meta: the message
    // goes out as a plain one rather than failing.
    for kind in [Kind::Waha, Kind::Meta] {
        let u = Under::new(kind).await;
        u.send(
            Content::Text { body: "re".into() },
            Some("3EB0C0FFEE".into()),
        )
        .await
        .unwrap();
        let b = u.sent_bodies();
        assert!(
            b[0].get("reply_to").is_none() && b[0].get("context").is_none(),
            "{b:?}"
        );
    }
}

async fn class_of(u: &Under) -> ErrorClass {
    u.text().await.expect_err("the send should fail").class()
}

#[tokio::test]
async fn a_wrong_key_is_bad_credentials_on_every_kind() {
    for kind in KINDS {
        let mut u = Under::new(kind).await;
        u.creds = credentials(kind, "not-the-key");
        assert_eq!(class_of(&u).await, ErrorClass::BadCredentials, "{kind:?}");
        u.creds = credentials(kind, KEY);
        u.sim.set_faults(Faults {
            credentials_expired: true,
            ..Default::default()
        });
        assert_eq!(
            class_of(&u).await,
            ErrorClass::BadCredentials,
            "{kind:?} expired"
        );
    }
}

#[tokio::test]
async fn http_failures_map_alike_on_every_kind() {
    for kind in KINDS {
        let u = Under::new(kind).await;
        for (status, class) in [
            (SendErrorStatus::TooManyRequests, ErrorClass::RateLimited),
            (SendErrorStatus::ServiceUnavailable, ErrorClass::Retryable),
            (SendErrorStatus::BadGateway, ErrorClass::Retryable),
            (SendErrorStatus::GatewayTimeout, ErrorClass::Ambiguous),
        ] {
            u.sim.set_faults(Faults {
                send_error: Some(SendErrorFault::next(1, status)),
                gateway_timeout_ms: Some(0),
                ..Default::default()
            });
            assert_eq!(class_of(&u).await, class, "{kind:?} {status:?}");
        }
        u.sim.set_faults(Faults::default());
        u.text().await.expect("the fault was for one send only");
    }
}

#[tokio::test]
async fn each_kinds_own_error_codes_map_to_their_classes() {
    let cases: &[(Kind, &str, ErrorClass)] = &[
        (Kind::Waha, "463", ErrorClass::RateLimited),
        (Kind::Waha, "475", ErrorClass::RateLimited),
        (Kind::Evolution, "rate_overlimit", ErrorClass::RateLimited),
        (Kind::Evolution, "connection_closed", ErrorClass::LoggedOut),
        (Kind::Meta, "130429", ErrorClass::RateLimited),
        (Kind::Meta, "131056", ErrorClass::RateLimited),
        (Kind::Meta, "80007", ErrorClass::RateLimited),
        (Kind::Meta, "4", ErrorClass::RateLimited),
        (Kind::Meta, "131048", ErrorClass::RateLimited),
        (Kind::Meta, "131047", ErrorClass::Permanent),
        (Kind::Meta, "131026", ErrorClass::Permanent),
        (Kind::Meta, "131051", ErrorClass::Permanent),
        (Kind::Meta, "100", ErrorClass::Permanent),
        (Kind::Meta, "190", ErrorClass::BadCredentials),
        (Kind::Meta, "131005", ErrorClass::BadCredentials),
        (Kind::Meta, "133010", ErrorClass::LoggedOut),
        (Kind::Meta, "131000", ErrorClass::Retryable),
        (Kind::Meta, "131016", ErrorClass::Retryable),
    ];
    for kind in KINDS {
        let u = Under::new(kind).await;
        for (_, code, class) in cases.iter().filter(|(k, _, _)| *k == kind) {
            u.sim.set_faults(Faults {
                provider_error: Some(ProviderErrorFault::next(1, *code)),
                ..Default::default()
            });
            let err = u.text().await.expect_err(code);
            assert_eq!(err.class(), *class, "{kind:?} {code}: {err}");
            if kind == Kind::Meta && *class == ErrorClass::Permanent {
                assert!(
                    matches!(&err, ProviderError::Permanent { code: c, .. } if c == code),
                    "{err:?}"
                );
            }
            assert!(!err.to_string().contains(KEY), "the key in an error");
        }
    }
}

#[tokio::test]
async fn a_device_that_cannot_send_is_logged_out() {
    for kind in [Kind::Waha, Kind::Evolution, Kind::Meta] {
        let u = Under::new(kind).await;
        let state = if kind == Kind::Meta {
            DeviceState::Disconnected
        } else {
            DeviceState::Connected
        };
        assert!(u.sim.set_device_state(device(kind), state));
        assert_eq!(class_of(&u).await, ErrorClass::LoggedOut, "{kind:?}");
        let s = u.client().device_status(u.target()).await;
        if kind != Kind::Meta {
            let s = s.unwrap();
            assert!(!s.logged_in, "{kind:?} {s:?}");
        }
    }
}

#[tokio::test]
async fn an_unknown_session_or_instance_is_device_not_found() {
    for kind in [Kind::Waha, Kind::Evolution] {
        let u = Under::new(kind).await;
        let target = Target {
            device_id: Some("nobody"),
            ..u.target()
        };
        let err = u
            .client()
            .send(
                target,
                &SendRequest {
                    to: TO.into(),
                    content: Content::Text { body: "x".into() },
                    reply_to: None,
                },
            )
            .await
            .unwrap_err();
        assert!(err.is_device_not_found(), "{kind:?}: {err:?}");
        let slot = u.client().slot_status(target).await.unwrap_err();
        assert!(slot.is_device_not_found(), "{kind:?}: {slot:?}");
    }
}

#[tokio::test]
async fn a_number_not_on_whatsapp_is_permanent_on_evolution() {
    let u = Under::new(Kind::Evolution).await;
    u.sim.set_faults(Faults {
        not_on_whatsapp: vec!["6289876543210".into()],
        ..Default::default()
    });
    let err = u.text().await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Permanent { code, .. } if code == "NOT_ON_WHATSAPP"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_down_server_is_retryable_and_certainly_not_sent() {
    for kind in KINDS {
        let u = Under::new(kind).await;
        u.sim.set_down(true).await.unwrap();
        let err = u.text().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Retryable, "{kind:?}");
        assert!(err.certainly_not_sent());
        assert!(u.client().health(u.target()).await.is_err());
    }
}

#[tokio::test]
async fn health_and_device_status_map_to_wagates_statuses() {
    for kind in KINDS {
        let u = Under::new(kind).await;
        u.client().health(u.target()).await.unwrap();
        let s = u.client().device_status(u.target()).await.unwrap();
        assert!(s.connected && s.logged_in, "{kind:?} {s:?}");
        let all = u.client().devices(u.target()).await.unwrap();
        assert!(
            all.iter()
                .any(|d| d.device_id == device(kind) && d.logged_in),
            "{all:?}"
        );
        if kind != Kind::Meta {
            u.sim.set_faults(Faults {
                health_unhealthy: true,
                ..Default::default()
            });
            let err = u.client().health(u.target()).await.unwrap_err();
            assert_eq!(err.class(), ErrorClass::Retryable, "{kind:?}");
        }
    }
}

#[tokio::test]
async fn a_blocked_meta_number_is_not_logged_in_and_a_limited_one_still_sends() {
    let u = Under::new(Kind::Meta).await;
    assert!(
        u.sim
            .set_device_health(device(Kind::Meta), MessagingHealth::Limited)
    );
    assert!(
        u.client()
            .device_status(u.target())
            .await
            .unwrap()
            .logged_in
    );
    assert!(
        u.sim
            .set_device_health(device(Kind::Meta), MessagingHealth::Blocked)
    );
    let s = u.client().device_status(u.target()).await.unwrap();
    assert!(s.connected && !s.logged_in, "{s:?}");
}

#[tokio::test]
async fn waha_and_evolution_link_a_device_by_qr_and_pairing_code() {
    for kind in [Kind::Waha, Kind::Evolution] {
        let u = Under::new(kind).await;
        // Logged out, waiting for a scan (WAHA SCAN_QR_CODE, Evolution close).
        let waiting = if kind == Kind::Waha {
            DeviceState::Connected
        } else {
            DeviceState::Disconnected
        };
        assert!(u.sim.set_device_state(device(kind), waiting));
        let qr = u.client().login_qr(u.target()).await.unwrap();
        assert!(qr.png.starts_with(b"\x89PNG"), "{kind:?}");
        // Evolution gives a pairing code only on the connect that starts a login (its
        // `connecting` state answers the same QR again): start from `close` again.
        assert!(u.sim.set_device_state(device(kind), waiting));
        let code = u
            .client()
            .login_code(u.target(), "6281234567890")
            .await
            .unwrap();
        assert!(!code.is_empty(), "{kind:?}");
        u.sim.scan(device(kind), None).unwrap();
        assert!(
            u.client()
                .device_status(u.target())
                .await
                .unwrap()
                .logged_in
        );
    }
}

#[tokio::test]
async fn meta_has_no_qr_login() {
    let u = Under::new(Kind::Meta).await;
    let err = u.client().login_qr(u.target()).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Permanent { code, .. } if code == "UNSUPPORTED"));
    assert!(u.sim.requests().is_empty(), "nothing was asked of Meta");
}

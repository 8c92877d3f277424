//! What every kind shares: the request log, the control API, and the latency, hang, hold and
//! down/up faults; and the binary's `--kind`.

mod common;

use std::time::Duration;

use common::{client, control, kind_sim, status_and_json};
use gowa_sim::{DeviceState, Faults, Kind, SimHandle};
use serde_json::{Value, json};

const KEY: &str = "kind-key-0123";

/// A request every kind answers 2xx with the key: its health or status route.
fn probe(sim: &SimHandle) -> reqwest::RequestBuilder {
    let base = sim.base_url();
    let c = client();
    match sim.kind() {
        Kind::Gowa => c.get(format!("{base}/app/status")),
        Kind::Waha => c
            .get(format!("{base}/api/sessions/default"))
            .header("X-Api-Key", KEY),
        Kind::Evolution => c
            .get(format!("{base}/instance/connectionState/demo"))
            .header("apikey", KEY),
        Kind::Meta => c
            .get(format!(
                "{base}/v23.0/{}?fields=health_status",
                gowa_sim::DEFAULT_META_PHONE_NUMBER_ID
            ))
            .bearer_auth(KEY),
    }
}

async fn sims() -> Vec<SimHandle> {
    let mut sims = Vec::new();
    for kind in Kind::ALL {
        sims.push(kind_sim(kind, (kind != Kind::Gowa).then_some(KEY)).await);
    }
    sims
}

#[tokio::test]
async fn every_kind_records_requests_with_kind_device_and_status() {
    for sim in sims().await {
        let response = probe(&sim).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{}: {}",
            sim.kind(),
            response.status()
        );
        let log = sim.requests();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].kind, sim.kind());
        assert_eq!(log[0].status, Some(response.status().as_u16()));
        assert!(log[0].authorized);
        let expected_device = match sim.kind() {
            Kind::Gowa => None,
            Kind::Waha => Some("default"),
            Kind::Evolution => Some("demo"),
            Kind::Meta => Some(gowa_sim::DEFAULT_META_PHONE_NUMBER_ID),
        };
        assert_eq!(
            log[0].device_id.as_deref(),
            expected_device,
            "{}",
            sim.kind()
        );
        let (status, body) = status_and_json(
            client()
                .get(format!("{}/_sim/status", control(&sim)))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["kind"], sim.kind().as_str());
    }
}

#[tokio::test]
async fn every_kind_goes_down_and_up_hangs_and_holds() {
    for sim in sims().await {
        sim.set_down(true).await.unwrap();
        assert!(
            probe(&sim).send().await.is_err(),
            "{}: refused while down",
            sim.kind()
        );
        sim.set_down(false).await.unwrap();
        assert!(probe(&sim).send().await.unwrap().status().is_success());

        sim.set_faults(Faults {
            hang: true,
            ..Faults::default()
        });
        let hung = probe(&sim).timeout(Duration::from_millis(200)).send().await;
        assert!(hung.unwrap_err().is_timeout(), "{}: hang", sim.kind());

        sim.set_faults(Faults {
            hold: true,
            ..Faults::default()
        });
        let held = tokio::spawn(probe(&sim).send());
        // The held request is logged on arrival, then answered once the hold is lifted.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sim.requests().iter().filter(|r| r.status.is_none()).count() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the held request arrives"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!held.is_finished());
        sim.set_faults(Faults::default());
        assert!(held.await.unwrap().unwrap().status().is_success());
    }
}

#[tokio::test]
async fn reset_restores_devices_webhooks_and_faults_of_every_kind() {
    for sim in sims().await {
        let id = sim.devices()[0].id.clone();
        assert!(sim.set_device_state(&id, DeviceState::Disconnected));
        sim.set_device_webhook(
            &id,
            Some(gowa_sim::DeviceWebhook {
                url: "http://127.0.0.1:9/h".into(),
                ..Default::default()
            }),
        );
        sim.set_faults(Faults {
            health_unhealthy: true,
            ..Faults::default()
        });
        let response = client()
            .post(format!("{}/_sim/reset", control(&sim)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(
            sim.devices()[0].state,
            DeviceState::LoggedIn,
            "{}",
            sim.kind()
        );
        assert!(sim.devices()[0].webhook.is_none());
        assert_eq!(sim.faults(), Faults::default());
        assert!(sim.requests().is_empty());
    }
}

#[tokio::test]
async fn the_control_api_sets_states_health_and_scans() {
    let sim = kind_sim(Kind::Waha, Some(KEY)).await;
    let put = |body: Value| {
        client()
            .put(format!("{}/_sim/devices/default", control(&sim)))
            .json(&body)
            .send()
    };
    let (status, body) = status_and_json(put(json!({"state": "failed"})).await.unwrap()).await;
    assert_eq!((status, body["state"].clone()), (200, json!("failed")));
    let (status, _) = status_and_json(put(json!({"mood": "happy"})).await.unwrap()).await;
    assert_eq!(status, 400, "unknown fields are refused");
    let missing = client()
        .post(format!("{}/_sim/devices/ghost/scan", control(&sim)))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let scanned = client()
        .post(format!("{}/_sim/devices/default/scan", control(&sim)))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(scanned).await;
    assert_eq!((status, body["state"].clone()), (200, json!("logged_in")));
    let bad = client()
        .put(format!("{}/_sim/faults", control(&sim)))
        .json(&json!({"provider_error": {"code": "131056"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "a Meta code is not a WAHA error");

    let meta = kind_sim(Kind::Meta, Some(KEY)).await;
    let health = client()
        .put(format!(
            "{}/_sim/devices/{}",
            control(&meta),
            gowa_sim::DEFAULT_META_PHONE_NUMBER_ID
        ))
        .json(&json!({"health": "LIMITED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let no_scan = client()
        .post(format!(
            "{}/_sim/devices/{}/scan",
            control(&meta),
            gowa_sim::DEFAULT_META_PHONE_NUMBER_ID
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(no_scan.status(), 409);
}

/// A port free at the moment of asking (the binary binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_binary_runs_each_kind_with_its_credentials() {
    for (kind, probe_path, auth) in [
        (
            "waha",
            "/api/sessions/default",
            ("X-Api-Key", "bin-key".to_owned()),
        ),
        (
            "evolution",
            "/instance/connectionState/demo",
            ("apikey", "bin-key".to_owned()),
        ),
        (
            "meta",
            "/v23.0/106540352242922",
            ("Authorization", "Bearer bin-key".to_owned()),
        ),
    ] {
        let (api, ctl) = (free_port(), free_port());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gowa-sim"))
            .args([
                "--kind",
                kind,
                "--api-key",
                "bin-key",
                "--listen",
                &format!("127.0.0.1:{api}"),
                "--control-listen",
                &format!("127.0.0.1:{ctl}"),
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let _child = KillOnDrop(child);
        let url = format!("http://127.0.0.1:{api}{probe_path}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let answer = loop {
            match client().get(&url).header(auth.0, &auth.1).send().await {
                Ok(answer) => break answer,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("{kind} binary never answered: {err}"),
            }
        };
        assert_eq!(answer.status(), 200, "{kind}");
        let unauthorized = client().get(&url).send().await.unwrap();
        assert_eq!(unauthorized.status(), 401, "{kind} requires its key");
        let status: Value = client()
            .get(format!("http://127.0.0.1:{ctl}/_sim/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["kind"], kind);
    }
}

/// Kills the spawned simulator when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn each_kind_retries_its_own_way() {
    // WAHA: 15 attempts; Evolution: 10, but none after a 4xx; Meta: 8; GOWA: 5.
    for (kind, answers, attempts) in [
        (Kind::Waha, vec![500u16; 20], 15usize),
        (Kind::Evolution, vec![500; 20], 10),
        (Kind::Evolution, vec![400; 20], 1),
        (Kind::Meta, vec![503; 20], 8),
        (Kind::Gowa, vec![500; 20], 5),
    ] {
        let sim = kind_sim(kind, None).await;
        let receiver = common::Receiver::start(&answers).await;
        let policy = gowa_sim::RetryPolicy::for_kind(kind).scaled(1000);
        let report = sim
            .deliver_webhook(
                gowa_sim::WebhookDelivery::json(&receiver.url, "k", json!({"a": "b"}))
                    .as_kind(kind)
                    .with_retry(gowa_sim::RetryPolicy {
                        attempt_timeout_ms: 10_000,
                        deadline_ms: 60_000,
                        ..policy
                    }),
            )
            .await
            .unwrap();
        assert!(!report.delivered);
        assert_eq!(report.attempts.len(), attempts, "{kind} {:?}", answers[0]);
        assert_eq!(receiver.hits().len(), attempts);
    }
}

#[tokio::test]
async fn the_control_api_delivers_a_webhook_the_way_a_kind_sends_it() {
    let sim = kind_sim(Kind::Gowa, None).await;
    let receiver = common::Receiver::start(&[]).await;
    for (kind, secret) in [
        ("waha", "waha-key"),
        ("meta", "app-secret"),
        ("evolution", "jwt-key"),
    ] {
        let response = client()
            .post(format!("{}/_sim/webhooks", control(&sim)))
            .json(&json!({"url": receiver.url, "secret": secret, "kind": kind,
                          "headers": {"X-Extra": "1"}, "body": {"json": {"text": "Café 7/8"}}}))
            .send()
            .await
            .unwrap();
        let (status, report) = status_and_json(response).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["delivered"], true);
    }
    let hits = receiver.wait_for(3).await;
    let (waha, meta, evolution) = (&hits[0], &hits[1], &hits[2]);
    assert_eq!(
        common::header(waha, "x-webhook-hmac").unwrap(),
        common::python_hmac("sha512", "waha-key", &waha.body)
    );
    assert_eq!(common::text_of(waha), r#"{"text":"Café 7/8"}"#);
    assert_eq!(common::text_of(meta), r#"{"text":"Caf\u00e9 7\/8"}"#);
    assert_eq!(
        common::header(meta, "x-hub-signature-256").unwrap(),
        format!(
            "sha256={}",
            common::python_hmac("sha256", "app-secret", &meta.body)
        )
    );
    let jwt = common::header(evolution, "authorization").unwrap();
    let claims = common::python_jwt_claims(jwt.strip_prefix("Bearer ").unwrap(), "jwt-key");
    assert_eq!(claims["app"], "evolution");
    assert!(
        hits.iter()
            .all(|h| common::header(h, "x-extra").as_deref() == Some("1"))
    );
}

#[tokio::test]
async fn evolution_by_events_appends_the_event_name_to_the_url() {
    let sim = kind_sim(Kind::Evolution, None).await;
    let receiver = common::Receiver::start(&[]).await;
    // Receiver serves /webhooks/whatsapp/tenant-42: byEvents makes it .../messages-update.
    let base = receiver.url.trim_end_matches("/tenant-42").to_owned();
    let response = client()
        .post(format!("{}/webhook/set/demo", sim.base_url()))
        .json(&json!({"webhook": {"enabled": true, "url": base, "byEvents": true, "events": ["MESSAGES_UPDATE"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    client()
        .post(format!("{}/message/sendText/demo", sim.base_url()))
        .json(&json!({"number": "6289685028129", "text": "hi"}))
        .send()
        .await
        .unwrap();
    let events = common::wait_events(&sim, 1).await;
    assert_eq!(
        events[0].deliveries[0].url,
        format!("{base}/messages-update")
    );
}

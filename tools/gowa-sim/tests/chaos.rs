//! The chaos mix: each fault kind answers as it should, the log tells accepted sends apart,
//! and a seed replays the same sequence.

mod common;

use std::time::Duration;

use common::{PHONE, client, default_sim, send_text};
use gowa_sim::{Chaos, Faults, SimHandle};

fn chaos(sim: &SimHandle, chaos: Chaos) {
    sim.set_faults(Faults {
        chaos: Some(chaos),
        ..Faults::default()
    });
}

/// Sends `text` with a short client timeout: the status, or the client's error kind.
async fn try_send(sim: &SimHandle, text: &str) -> Result<u16, String> {
    let answer = client()
        .post(format!("{}/send/message", sim.base_url()))
        .timeout(Duration::from_millis(800))
        .json(&serde_json::json!({ "phone": PHONE, "message": text }))
        .send()
        .await;
    match answer {
        Ok(response) => Ok(response.status().as_u16()),
        Err(err) if err.is_timeout() => Err("timeout".into()),
        Err(err) => Err(format!("connection: {err}")),
    }
}

#[tokio::test]
async fn every_send_answers_the_drawn_fault_with_its_status() {
    let sim = default_sim().await;
    for (mix, status) in [
        (
            Chaos {
                server_error: 1.0,
                ..Chaos::default()
            },
            500,
        ),
        (
            Chaos {
                too_many_requests: 1.0,
                ..Chaos::default()
            },
            429,
        ),
        (
            Chaos {
                logged_out: 1.0,
                ..Chaos::default()
            },
            401,
        ),
        (
            Chaos {
                slow: 1.0,
                slow_ms: 50,
                ..Chaos::default()
            },
            200,
        ),
    ] {
        chaos(&sim, mix.clone());
        assert_eq!(
            send_text(&sim, PHONE, "hi").await.status(),
            status,
            "{mix:?}"
        );
        let logged = sim.requests_to("/send/message");
        assert_eq!(logged.last().and_then(|r| r.status), Some(status));
    }
    let (sends, counts) = sim.chaos_counts();
    assert_eq!(sends, 4);
    for name in ["server_error", "too_many_requests", "logged_out", "slow"] {
        assert_eq!(counts.get(name), Some(&1), "{counts:?}");
    }
}

#[tokio::test]
async fn reset_closes_the_connection_before_the_request_is_logged() {
    let sim = default_sim().await;
    chaos(
        &sim,
        Chaos {
            reset: 1.0,
            ..Chaos::default()
        },
    );

    let answer = try_send(&sim, "never read").await;

    assert!(
        matches!(&answer, Err(e) if e.starts_with("connection")),
        "{answer:?}"
    );
    assert!(sim.requests_to("/send/message").is_empty(), "nothing read");
    // Other routes are not sends: no fault.
    let health = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn accept_then_hang_logs_the_send_accepted_and_never_answers() {
    let sim = default_sim().await;
    chaos(
        &sim,
        Chaos {
            accept_then_hang: 1.0,
            ..Chaos::default()
        },
    );

    let answer = try_send(&sim, "taken").await;

    assert_eq!(answer, Err("timeout".to_owned()));
    let logged = sim.requests_to("/send/message");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].status, Some(200), "the server took the send");
    assert_eq!(logged[0].json.as_ref().unwrap()["message"], "taken");
}

#[tokio::test]
async fn the_same_seed_replays_the_same_faults() {
    let mix = Chaos {
        seed: 42,
        server_error: 0.25,
        too_many_requests: 0.25,
        logged_out: 0.25,
        ..Chaos::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = default_sim().await;
        chaos(&sim, mix.clone());
        let mut statuses = Vec::new();
        for i in 0..30 {
            statuses.push(
                send_text(&sim, PHONE, &format!("m{i}"))
                    .await
                    .status()
                    .as_u16(),
            );
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    for status in [200, 500, 429, 401] {
        assert!(runs[0].contains(&status), "{status} in {:?}", runs[0]);
    }
}

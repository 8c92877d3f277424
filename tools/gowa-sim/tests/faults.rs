//! Injected faults: errors, latency, hangs, an unhealthy server and a closed port.

mod common;

use std::time::{Duration, Instant};

use common::{PHONE, assert_send_success, client, default_sim, send_text, status_and_json};
use gowa_sim::{Faults, MSG_REACHOUT_TIMELOCK, SendErrorFault, SendErrorStatus};
use serde_json::json;

fn send_error(fault: SendErrorFault) -> Faults {
    Faults {
        send_error: Some(fault),
        ..Faults::default()
    }
}

#[tokio::test]
async fn rate_limit_fault_answers_429_wa_reachout_timelock() {
    let sim = default_sim().await;
    sim.set_faults(send_error(SendErrorFault::always(
        SendErrorStatus::TooManyRequests,
    )));

    let (status, body) = status_and_json(send_text(&sim, PHONE, "hi").await).await;

    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!({"code": "WA_REACHOUT_TIMELOCK", "message": MSG_REACHOUT_TIMELOCK})
    );
}

#[tokio::test]
async fn count_limited_fault_fails_the_next_sends_then_they_succeed() {
    let sim = default_sim().await;
    sim.set_faults(send_error(SendErrorFault::next(
        2,
        SendErrorStatus::InternalServerError,
    )));

    let first = send_text(&sim, PHONE, "1").await.status().as_u16();
    let second = send_text(&sim, PHONE, "2").await.status().as_u16();
    let (third, body) = status_and_json(send_text(&sim, PHONE, "3").await).await;

    assert_eq!((first, second, third), (500, 500, 200));
    assert_send_success(&body, "Message");
    assert!(sim.faults().send_error.is_none(), "the fault is used up");
}

#[tokio::test]
async fn injected_500_is_gowas_internal_server_error_envelope() {
    let sim = default_sim().await;
    sim.set_faults(send_error(SendErrorFault::always(
        SendErrorStatus::InternalServerError,
    )));

    let (status, body) = status_and_json(send_text(&sim, PHONE, "hi").await).await;

    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"code": "INTERNAL_SERVER_ERROR", "message": "server returned error 500"})
    );
}

#[tokio::test]
async fn injected_502_is_a_reverse_proxy_html_page() {
    let sim = default_sim().await;
    sim.set_faults(send_error(SendErrorFault::always(
        SendErrorStatus::BadGateway,
    )));

    let response = send_text(&sim, PHONE, "hi").await;

    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert!(response.text().await.unwrap().contains("502 Bad Gateway"));
}

#[tokio::test]
async fn send_faults_leave_other_routes_alone() {
    let sim = default_sim().await;
    sim.set_faults(send_error(SendErrorFault::always(
        SendErrorStatus::ServiceUnavailable,
    )));

    let response = client()
        .get(format!("{}/app/status", sim.base_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn slow_504_comes_after_the_configured_delay() {
    let sim = default_sim().await;
    sim.set_faults(Faults {
        send_error: Some(SendErrorFault::always(SendErrorStatus::GatewayTimeout)),
        gateway_timeout_ms: Some(400),
        ..Faults::default()
    });

    let started = Instant::now();
    let (status, body) = status_and_json(send_text(&sim, PHONE, "hi").await).await;

    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(status, 504);
    assert_eq!(
        body,
        json!({"code": "GATEWAY_TIMEOUT", "message": "Request timed out waiting for WhatsApp server response"})
    );
}

#[tokio::test]
async fn latency_is_added_before_every_route_including_health() {
    let sim = default_sim().await;
    sim.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });

    let started = Instant::now();
    let response = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_held_request_is_logged_and_answered_only_once_the_hold_is_lifted() {
    let sim = default_sim().await;
    sim.set_faults(Faults {
        hold: true,
        ..Faults::default()
    });
    let url = format!("{}/health", sim.base_url());
    let pending = tokio::spawn(async move { client().get(url).send().await.unwrap().status() });
    // Logged on arrival, and not answered while held (however long this takes to see).
    while sim.requests_to("/health").is_empty() {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        sim.requests_to("/health")[0].status,
        None,
        "answered while held"
    );
    assert!(!pending.is_finished());

    sim.set_faults(Faults::default());

    assert_eq!(pending.await.unwrap(), 200);
    assert_eq!(sim.requests_to("/health")[0].status, Some(200));
    // A request after the hold is lifted is not held.
    let response = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn unhealthy_fault_makes_health_503() {
    let sim = default_sim().await;
    sim.set_faults(Faults {
        health_unhealthy: true,
        ..Faults::default()
    });

    let response = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "Service Unavailable");
}

#[tokio::test]
async fn hang_makes_the_client_time_out_and_stays_unanswered() {
    let sim = default_sim().await;
    sim.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });

    let error = client()
        .post(format!("{}/send/message", sim.base_url()))
        .json(&json!({"phone": PHONE, "message": "hi"}))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("the simulator never answers");

    assert!(error.is_timeout(), "{error:?}");
    let recorded = sim.requests_to("/send/message");
    assert_eq!(recorded.len(), 1, "the request was received");
    assert_eq!(recorded[0].status, None);
}

#[tokio::test]
async fn down_refuses_connections_then_comes_back_on_the_same_port() {
    let sim = default_sim().await;
    let pooled = client();
    let url = format!("{}/health", sim.base_url());
    assert_eq!(pooled.get(&url).send().await.unwrap().status(), 200);

    sim.set_down(true).await.unwrap();

    let refused = tokio::net::TcpStream::connect(sim.api_addr()).await;
    assert_eq!(
        refused.expect_err("port is closed").kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    let error = pooled
        .get(&url)
        .send()
        .await
        .expect_err("even a pooled keep-alive connection is gone");
    assert!(error.is_connect(), "{error:?}");
    assert!(sim.is_down().await);

    sim.set_down(false).await.unwrap();

    assert_eq!(pooled.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(sim.base_url(), url.trim_end_matches("/health"));
}

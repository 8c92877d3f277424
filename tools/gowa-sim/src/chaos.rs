//! The chaos mix ([`crate::Faults::chaos`]): every send request draws at most one fault from a
//! seeded RNG, with a probability per fault kind, so a soak run can be replayed.
//!
//! Two layers around the kind's API: [`draw`] (outermost, before the request log) draws the
//! fault and carries out `reset` (the connection is closed with a TCP RST before the request
//! is read: it is not in the log), and [`act`] (inside the log) carries out the others, each
//! logged with the status it answered. `accept_then_hang` lets the send through (the server
//! takes it, the log shows its 2xx status) and then never answers, as a server that took the
//! message and lost the connection: the client's timeout, not a refusal.
//!
//! A send is `POST` to a send route: GOWA `/send/*`, WAHA `/api/send*`, Evolution
//! `/message/send*`, Meta `/{version}/{phone-number-id}/messages`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::envelope::{GowaError, MSG_INTERNAL};
use crate::kind::Kind;
use crate::state::SimState;

/// Per-send probabilities (each `0.0..=1.0`; their sum is capped at 1 in the order below) of
/// the faults a soak mixes, drawn from an RNG seeded with `seed`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Chaos {
    /// Seed of the RNG; setting a chaos with another seed (or anew) restarts the sequence.
    pub seed: u64,
    /// 500 (GOWA's `INTERNAL_SERVER_ERROR` envelope; the other kinds a JSON 500).
    pub server_error: f64,
    /// The connection is reset (RST) before the request is read; nothing is logged.
    pub reset: f64,
    /// The send is taken (logged with its 2xx status), then never answered.
    pub accept_then_hang: f64,
    /// 429 (GOWA's `WA_REACHOUT_TIMELOCK`; the other kinds a plain 429).
    pub too_many_requests: f64,
    /// The device answers as logged out (GOWA's 401 `AUTHENTICATION_ERROR`; the other kinds
    /// a 401), for this send only.
    pub logged_out: f64,
    /// The answer comes `slow_ms` late (then the send goes through).
    pub slow: f64,
    /// Delay of a slow answer.
    pub slow_ms: u64,
}

/// One drawn fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChaosFault {
    ServerError,
    Reset,
    AcceptThenHang,
    TooManyRequests,
    LoggedOut,
    Slow,
}

impl ChaosFault {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerError => "server_error",
            Self::Reset => "reset",
            Self::AcceptThenHang => "accept_then_hang",
            Self::TooManyRequests => "too_many_requests",
            Self::LoggedOut => "logged_out",
            Self::Slow => "slow",
        }
    }
}

impl Chaos {
    /// The fault for one uniform draw `u` in `0..1`.
    pub fn pick(&self, u: f64) -> Option<ChaosFault> {
        let mut edge = 0.0;
        for (p, fault) in [
            (self.server_error, ChaosFault::ServerError),
            (self.reset, ChaosFault::Reset),
            (self.accept_then_hang, ChaosFault::AcceptThenHang),
            (self.too_many_requests, ChaosFault::TooManyRequests),
            (self.logged_out, ChaosFault::LoggedOut),
            (self.slow, ChaosFault::Slow),
        ] {
            edge += p.clamp(0.0, 1.0);
            if u < edge {
                return Some(fault);
            }
        }
        None
    }
}

/// The RNG and what it drew, per simulator.
#[derive(Debug, Default)]
pub(crate) struct ChaosDice {
    inner: Mutex<DiceInner>,
}

#[derive(Debug, Default)]
struct DiceInner {
    /// The chaos the RNG was seeded for.
    seeded_for: Option<Chaos>,
    rng: Option<StdRng>,
    counts: BTreeMap<ChaosFault, u64>,
    sends: u64,
}

impl ChaosDice {
    fn draw(&self, chaos: &Chaos) -> Option<ChaosFault> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.seeded_for.as_ref() != Some(chaos) || inner.rng.is_none() {
            inner.seeded_for = Some(chaos.clone());
            inner.rng = Some(StdRng::seed_from_u64(chaos.seed));
        }
        let u: f64 = inner.rng.as_mut().map(|r| r.random()).unwrap_or(1.0);
        let fault = chaos.pick(u);
        inner.sends += 1;
        if let Some(fault) = fault {
            *inner.counts.entry(fault).or_default() += 1;
        }
        fault
    }

    /// Sends seen while a chaos was set, and the faults drawn, by name.
    pub fn counts(&self) -> (u64, BTreeMap<String, u64>) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (
            inner.sends,
            inner
                .counts
                .iter()
                .map(|(f, n)| (f.as_str().to_owned(), *n))
                .collect(),
        )
    }

    pub fn clear(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = DiceInner::default();
    }
}

/// Closes the connection a request came on (set by the accept loop on every request).
#[derive(Clone, Debug)]
pub(crate) struct ConnectionKill(pub Arc<Notify>);

/// The fault drawn for a request, for [`act`].
#[derive(Clone, Copy, Debug)]
struct Drawn(ChaosFault);

/// The request's sequence number in the log (set by the recording layer).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogSeq(pub u64);

fn is_send(kind: Kind, method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    match kind {
        Kind::Gowa => path.starts_with("/send/"),
        Kind::Waha => path.starts_with("/api/send"),
        Kind::Evolution => path.starts_with("/message/send"),
        Kind::Meta => path.ends_with("/messages"),
    }
}

/// Outermost layer: draws the request's fault; a `reset` closes the connection here.
pub(crate) async fn draw(
    State(state): State<Arc<SimState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let faults = state.faults();
    if let Some(chaos) = &faults.chaos
        && is_send(state.kind(), request.method(), request.uri().path())
        && let Some(fault) = state.chaos.draw(chaos)
    {
        if fault == ChaosFault::Reset {
            if let Some(kill) = request.extensions().get::<ConnectionKill>() {
                kill.0.notify_one();
            }
            // The connection task drops this request with the connection.
            std::future::pending::<()>().await;
        }
        request.extensions_mut().insert(Drawn(fault));
    }
    next.run(request).await
}

/// Inside the log: answers the drawn fault.
pub(crate) async fn act(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(Drawn(fault)) = request.extensions().get::<Drawn>().copied() else {
        return next.run(request).await;
    };
    let kind = state.kind();
    match fault {
        ChaosFault::ServerError => match kind {
            Kind::Gowa => GowaError::Internal(MSG_INTERNAL.to_owned()).into_response(),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({"error": "internal", "message": "injected"})),
            )
                .into_response(),
        },
        ChaosFault::TooManyRequests => match kind {
            Kind::Gowa => GowaError::ReachoutTimelock.into_response(),
            _ => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response(),
        },
        ChaosFault::LoggedOut => match kind {
            Kind::Gowa => GowaError::NotLoggedIn.into_response(),
            _ => (StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
        },
        ChaosFault::Slow => {
            let delay = state.faults().chaos.map(|c| c.slow_ms).unwrap_or_default();
            tokio::time::sleep(Duration::from_millis(delay)).await;
            next.run(request).await
        }
        ChaosFault::AcceptThenHang => {
            let seq = request.extensions().get::<LogSeq>().copied();
            let response = next.run(request).await;
            if !response.status().is_success() {
                return response;
            }
            if let Some(LogSeq(seq)) = seq {
                state.record_status(seq, response.status().as_u16());
            }
            tracing::info!(seq = ?seq, "chaos: send accepted, never answered");
            std::future::pending::<Response>().await
        }
        // Carried out by `draw`.
        ChaosFault::Reset => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_split_the_unit_interval_in_order() {
        let chaos = Chaos {
            server_error: 0.1,
            reset: 0.1,
            slow: 0.2,
            ..Chaos::default()
        };
        assert_eq!(chaos.pick(0.05), Some(ChaosFault::ServerError));
        assert_eq!(chaos.pick(0.15), Some(ChaosFault::Reset));
        assert_eq!(chaos.pick(0.25), Some(ChaosFault::Slow));
        assert_eq!(chaos.pick(0.45), None);
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let chaos = Chaos {
            seed: 7,
            server_error: 0.3,
            too_many_requests: 0.3,
            ..Chaos::default()
        };
        let draws = |dice: &ChaosDice| (0..50).map(|_| dice.draw(&chaos)).collect::<Vec<_>>();
        let (a, b) = (ChaosDice::default(), ChaosDice::default());
        let first = draws(&a);
        assert_eq!(first, draws(&b));
        assert!(first.iter().any(Option::is_some) && first.iter().any(Option::is_none));
    }
}

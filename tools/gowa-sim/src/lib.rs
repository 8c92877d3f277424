//! A simulator of the WhatsApp API servers wagate talks to: GOWA (go-whatsapp-web-multidevice,
//! the default), WAHA, Evolution API v2 and Meta's WhatsApp Cloud API ([`Kind`]).
//!
//! For GOWA it serves the parts of GOWA's REST API that wagate uses (`/health`, `/app/status`,
//! `/devices`, `/send/message`, `/send/image`, `/send/file`) on 127.0.0.1, with GOWA's
//! envelopes and error bodies, records every request, injects faults, and signs and delivers
//! webhooks byte for byte like GOWA. Like GOWA, it forwards events to the configured webhooks
//! (each device's own, or the global one): WhatsApp's receipts (`message.ack`, delivered then
//! read, after configurable delays) for every message it accepted, and incoming messages on
//! request ([`SimHandle::deliver_incoming`]). The other kinds do the same in their own shapes:
//! their auth, sends, session status, device linking, webhook configuration, signed receipts
//! and incoming messages (see the README). Tests start it in-process with [`start`]; the
//! `gowa-sim` binary runs it with a control API on a second port. With the `contract` feature,
//! [`contract`] checks every recorded request against the server's OpenAPI document.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use gowa_sim::{SimConfig, start};
//!
//! let sim = start(SimConfig::default()).await?;
//! let client = reqwest::Client::new();
//! let answer = client
//!     .post(format!("{}/send/message", sim.base_url()))
//!     .json(&serde_json::json!({"phone": "6289685028129", "message": "hi"}))
//!     .send()
//!     .await?;
//! assert!(answer.status().is_success());
//! assert_eq!(sim.requests_to("/send/message").len(), 1);
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod body;
pub mod chaos;
mod config;
#[cfg(feature = "contract")]
pub mod contract;
mod control;
mod devices;
mod envelope;
mod events;
mod evolution;
mod faults;
mod gomarshal;
mod kind;
mod linking;
mod meta;
mod meta_errors;
mod outgoing;
mod recording;
mod send;
mod server;
mod state;
mod waha;
mod webhook;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

pub use chaos::{Chaos, ChaosFault};
pub use config::{
    DEFAULT_DEVICE_ID, DEFAULT_DEVICE_JID, DEFAULT_EVOLUTION_INSTANCE, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_META_JID, DEFAULT_META_PHONE_NUMBER_ID, DEFAULT_META_WABA_ID, DEFAULT_WAHA_SESSION,
    DEFAULT_WEBHOOK_SECRET, DeviceSpec, DeviceState, DeviceWebhook, META_API_VERSION, Receipts,
    SimConfig, WebhookConfig,
};
pub use envelope::{
    MSG_ALREADY_LOGGED_IN, MSG_DEVICE_EXISTS, MSG_DEVICE_ID_REQUIRED, MSG_DEVICE_NOT_FOUND,
    MSG_GATEWAY_TIMEOUT, MSG_INTERNAL, MSG_INVALID_JID, MSG_NOT_CONNECTED, MSG_NOT_LOGGED_IN,
    MSG_REACHOUT_TIMELOCK,
};
pub use events::{
    DELIVERED_DESCRIPTION, EventRecord, IncomingError, IncomingMessage, READ_DESCRIPTION,
    SentMessage,
};
pub use faults::{
    DeliveryFailureFault, DeviceWebhookFault, Faults, GOWA_REQUEST_TIMEOUT, ProviderErrorFault,
    QrImageFault, SendErrorFault, SendErrorStatus,
};
pub use gomarshal::go_marshal;
pub use kind::Kind;
pub use linking::{HandshakeReport, ScanError};
pub use meta_errors::ERROR_CODES_HREF as META_ERROR_CODES_HREF;
pub use outgoing::{EVOLUTION_VERSION, WAHA_VERSION};
pub use state::{MessagingHealth, RecordedFile, RecordedRequest};
pub use webhook::{
    DeliveryAttempt, DeliveryReport, RetryPolicy, WebhookBody, WebhookDelivery, evolution_jwt,
    meta_json, sign, sign_waha,
};

use server::Serving;
use state::SimState;

/// Whether `code` is one of `kind`'s simulated error answers (the `provider_error` fault).
pub fn check_provider_error(kind: Kind, code: &str) -> Result<(), String> {
    let known: Vec<String> = match kind {
        Kind::Gowa => Vec::new(),
        Kind::Waha => waha::PROVIDER_ERRORS
            .iter()
            .map(|c| (*c).to_owned())
            .collect(),
        Kind::Evolution => evolution::PROVIDER_ERRORS
            .iter()
            .map(|c| (*c).to_owned())
            .collect(),
        Kind::Meta => meta_errors::CATALOG
            .iter()
            .map(|e| e.code.to_string())
            .collect(),
    };
    if known.iter().any(|k| k == code.trim()) {
        Ok(())
    } else if kind == Kind::Gowa {
        Err("a gowa simulator has no provider errors: use send_error".to_owned())
    } else {
        Err(format!(
            "{kind} has no simulated error {code:?}; known: {}",
            known.join(", ")
        ))
    }
}

/// Starts a simulator on `127.0.0.1:<free port>`, without a control port (the handle is the
/// control).
pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
    start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), None).await
}

/// Starts a simulator with the GOWA API on `api` and, if given, the control API on `control`.
/// Both must be loopback addresses; port 0 picks a free port.
pub async fn start_on(
    config: SimConfig,
    api: SocketAddr,
    control: Option<SocketAddr>,
) -> anyhow::Result<SimHandle> {
    server::ensure_loopback(api)?;
    if let Some(control) = control {
        server::ensure_loopback(control)?;
    }
    let api_listener = TcpListener::bind(api)
        .await
        .with_context(|| format!("binding the GOWA API on {api}"))?;
    let api_addr = api_listener.local_addr()?;
    let control_listener = match control {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the control API on {addr}"))?,
        ),
        None => None,
    };

    let kind = config.kind;
    let state = Arc::new(SimState::new(
        config,
        format!("http://{api_addr}"),
        webhook::http_client()?,
    ));
    let api_router = match kind {
        Kind::Gowa => api::router(state.clone()),
        Kind::Waha => waha::router(state.clone()),
        Kind::Evolution => evolution::router(state.clone()),
        Kind::Meta => meta::router(state.clone()),
    };
    let reset_state = state.clone();
    let reset_on_close: server::ResetOnClose = Arc::new(move || {
        reset_state
            .faults()
            .chaos
            .as_ref()
            .is_some_and(|c| c.reset > 0.0)
    });
    let core = Arc::new(SimCore {
        api: Mutex::new(Some(Serving::start_with(
            api_listener,
            api_router.clone(),
            "gowa-api",
            Some(reset_on_close.clone()),
        ))),
        reset_on_close,
        state,
        api_addr,
        api_router,
    });

    let (control, control_addr) = match control_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let serving = Serving::start(listener, control::router(core.clone()), "control");
            (Some(serving), Some(addr))
        }
        None => (None, None),
    };
    tracing::info!(
        %kind,
        api = %api_addr,
        control = control_addr.map(|a| a.to_string()).unwrap_or_default(),
        "gowa-sim listening"
    );
    Ok(SimHandle {
        core,
        control,
        control_addr,
    })
}

/// What the handle and the control API share.
pub(crate) struct SimCore {
    state: Arc<SimState>,
    api_addr: SocketAddr,
    api_router: Router,
    /// The serving GOWA API; `None` while down.
    api: Mutex<Option<Serving>>,
    /// Whether a new API connection closes with a reset (the chaos `reset` fault).
    reset_on_close: server::ResetOnClose,
}

impl SimCore {
    fn base_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    async fn is_down(&self) -> bool {
        self.api.lock().await.is_none()
    }

    async fn set_down(&self, down: bool) -> anyhow::Result<()> {
        let mut api = self.api.lock().await;
        self.state.set_down_flag(down);
        if down {
            if let Some(serving) = api.take() {
                serving.stop().await;
                tracing::info!(api = %self.api_addr, "GOWA API down");
            }
        } else if api.is_none() {
            let listener = server::bind(self.api_addr).await?;
            *api = Some(Serving::start_with(
                listener,
                self.api_router.clone(),
                "gowa-api",
                Some(self.reset_on_close.clone()),
            ));
            tracing::info!(api = %self.api_addr, "GOWA API up again");
        }
        Ok(())
    }

    async fn deliver_webhook(&self, delivery: WebhookDelivery) -> anyhow::Result<DeliveryReport> {
        webhook::deliver(&self.state.http, delivery).await
    }

    async fn deliver_incoming(
        &self,
        message: IncomingMessage,
    ) -> Result<EventRecord, IncomingError> {
        events::deliver_incoming(&self.state, message).await
    }

    fn set_device_state(&self, device_id: &str, state: DeviceState) -> bool {
        let changed = self.state.set_device_state(device_id, state);
        if changed {
            events::schedule_status_change(&self.state, device_id);
        }
        changed
    }
}

/// A read handle on a simulator's request log that outlives borrowing the [`SimHandle`].
#[derive(Clone)]
pub struct RequestLog(Arc<SimCore>);

impl RequestLog {
    /// Every request received on the API port, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.0.state.requests()
    }
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog")
            .field("base_url", &self.0.base_url())
            .finish()
    }
}

/// A running simulator. Dropping it stops the servers; [`SimHandle::shutdown`] also waits.
pub struct SimHandle {
    core: Arc<SimCore>,
    control: Option<Serving>,
    control_addr: Option<SocketAddr>,
}

impl SimHandle {
    /// Base URL of the GOWA API, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        self.core.base_url()
    }

    /// The GOWA API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.core.api_addr
    }

    /// Base URL of the control API, when started with one.
    pub fn control_url(&self) -> Option<String> {
        self.control_addr.map(|addr| format!("http://{addr}"))
    }

    /// Every request received on the GOWA port, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.core.state.requests()
    }

    /// A handle on the request log (e.g. for a check when a test ends).
    pub fn log(&self) -> RequestLog {
        RequestLog(self.core.clone())
    }

    /// The recorded requests whose path is exactly `path` (e.g. `/send/message`).
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.core.state.requests_to(path)
    }

    /// Clears the request log.
    pub fn clear_requests(&self) {
        self.core.state.clear_requests();
    }

    /// The faults in force (a count-limited send error shows its remaining count).
    pub fn faults(&self) -> Faults {
        self.core.state.faults()
    }

    /// Sends seen while a chaos mix was set, and the faults it drew, by name
    /// ([`ChaosFault::as_str`]); cleared by [`SimHandle::reset`].
    pub fn chaos_counts(&self) -> (u64, std::collections::BTreeMap<String, u64>) {
        self.core.state.chaos.counts()
    }

    /// Replaces the faults; `Faults::default()` heals the server.
    pub fn set_faults(&self, faults: Faults) {
        self.core.state.set_faults(faults);
    }

    /// Changes a device's state (WAHA and Evolution send their status-change event). Returns
    /// false when no device has that id.
    pub fn set_device_state(&self, device_id: &str, state: DeviceState) -> bool {
        self.core.set_device_state(device_id, state)
    }

    /// The kind of server simulated.
    pub fn kind(&self) -> Kind {
        self.core.state.kind()
    }

    /// The configuration the simulator started with.
    pub fn config(&self) -> SimConfig {
        self.core.state.config().clone()
    }

    /// Completes a device link as if a phone scanned the QR code or entered the pairing code:
    /// the device is logged in (WAHA `WORKING`, Evolution `open`), as `jid` when given. Fails
    /// for an unknown device, and for Meta (numbers are registered, not linked).
    pub fn scan(&self, device_id: &str, jid: Option<&str>) -> Result<(), ScanError> {
        linking::scan(&self.core.state, device_id, jid)
    }

    /// Meta: a phone number's messaging health (`health_status.can_send_message`). False
    /// when no device has that id.
    pub fn set_device_health(&self, device_id: &str, health: MessagingHealth) -> bool {
        self.core
            .state
            .update_device(device_id, |d| d.extra.health = health)
            .is_some()
    }

    /// Meta: the `GET` verification handshake Meta's console runs against a callback URL
    /// (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`), and whether the challenge
    /// came back.
    pub async fn verify_callback(
        &self,
        url: &str,
        verify_token: &str,
        challenge: Option<&str>,
    ) -> anyhow::Result<HandshakeReport> {
        linking::verify_callback(&self.core.state.http, url, verify_token, challenge).await
    }

    /// The devices and their current states.
    pub fn devices(&self) -> Vec<DeviceSpec> {
        self.core
            .state
            .devices()
            .into_iter()
            .map(|d| d.spec)
            .collect()
    }

    /// Clears the log and the faults and restores the initial devices. Does not change
    /// whether the API is down.
    pub fn reset(&self) {
        self.core.state.reset();
    }

    /// `true` closes the GOWA port: the listener and every open connection, so new
    /// connections are refused. `false` binds the same port again. The control API and the
    /// handle keep working meanwhile.
    pub async fn set_down(&self, down: bool) -> anyhow::Result<()> {
        self.core.set_down(down).await
    }

    /// Whether the GOWA port is closed by [`SimHandle::set_down`].
    pub async fn is_down(&self) -> bool {
        self.core.is_down().await
    }

    /// Signs and delivers a webhook like GOWA, and reports every attempt.
    pub async fn deliver_webhook(&self, req: WebhookDelivery) -> anyhow::Result<DeliveryReport> {
        self.core.deliver_webhook(req).await
    }

    /// Delivers a message from a contact to the device's webhook (signed like GOWA's
    /// `message` event) and returns the record of the delivery.
    pub async fn deliver_incoming(
        &self,
        message: IncomingMessage,
    ) -> Result<EventRecord, IncomingError> {
        self.core.deliver_incoming(message).await
    }

    /// Every event the server emitted (receipts, incoming messages), oldest first.
    pub fn events(&self) -> Vec<EventRecord> {
        self.core.state.events()
    }

    /// The receipt timings in force.
    pub fn receipts(&self) -> Receipts {
        self.core.state.receipts()
    }

    /// Changes the receipt timings of messages accepted from now on.
    pub fn set_receipts(&self, receipts: Receipts) {
        self.core.state.set_receipts(receipts);
    }

    /// Replaces the global webhook.
    pub fn set_webhook(&self, webhook: WebhookConfig) {
        self.core.state.set_webhook(webhook);
    }

    /// Sets (or with `None` clears) a device's own webhook; false when no device has that id.
    pub fn set_device_webhook(&self, device_id: &str, webhook: Option<DeviceWebhook>) -> bool {
        self.core.state.set_device_webhook(device_id, webhook)
    }

    /// Stops both servers and pending receipts, and waits until the ports are closed.
    pub async fn shutdown(mut self) {
        self.core.state.abort_tasks();
        if let Some(control) = self.control.take() {
            control.stop().await;
        }
        let _ = self.core.set_down(true).await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.core.state.abort_tasks();
        if let Some(control) = &self.control {
            control.abort();
        }
        if let Ok(api) = self.core.api.try_lock() {
            if let Some(serving) = api.as_ref() {
                serving.abort();
            }
        }
    }
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.base_url())
            .field("control_url", &self.control_url())
            .finish()
    }
}

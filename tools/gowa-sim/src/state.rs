//! Shared, mutable simulator state: devices, faults and the request log.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use tokio::task::JoinSet;

use crate::config::{DeviceSpec, DeviceState, DeviceWebhook, Receipts, SimConfig, WebhookConfig};
use crate::events::{EventRecord, SentMessage};
use crate::faults::{Faults, SendErrorStatus};
use crate::kind::Kind;

/// Messages kept for quoting in incoming replies (`quoted_body`), newest last.
const SENT_KEPT: usize = 1_000;
/// Event records kept for `GET /_sim/events`, newest last.
const EVENTS_KEPT: usize = 1_000;

/// One request received on the API port, as recorded by the simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Arrival order, from 1; never reused, not even after the log is cleared.
    pub seq: u64,
    /// The kind of server that received it.
    #[serde(default)]
    pub kind: Kind,
    /// When the request arrived (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query, e.g. `/send/message`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// The account slot the request names: GOWA's `X-Device-Id` header, WAHA's session (path
    /// or body `session`), Evolution's instance (path), Meta's phone number id (path).
    pub device_id: Option<String>,
    /// Username of the basic-auth credentials, if any were sent. The password is never kept.
    pub basic_auth_user: Option<String>,
    /// Whether the request got past the kind's authentication (always true for the routes that
    /// need none and for an open server).
    pub authorized: bool,
    /// Every header, names lowercase, values of credential headers redacted (`authorization`
    /// keeps its scheme: `Basic ***`, `Bearer ***`; `x-api-key`, `apikey` become `***`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The `Content-Type` header, if sent.
    pub content_type: Option<String>,
    /// The body, when it was JSON.
    pub json: Option<Value>,
    /// The text fields, when the body was multipart or URL-encoded (first value per name).
    pub form: Option<BTreeMap<String, String>>,
    /// The file parts of a multipart body.
    pub files: Vec<RecordedFile>,
    /// Body length in bytes.
    pub body_size: usize,
    /// Why the body could not be read as its `Content-Type` says (invalid JSON, broken
    /// multipart), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_error: Option<String>,
    /// The status answered; `None` while unanswered (for example with the `hang` fault).
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// A header's recorded value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A file part of a multipart request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFile {
    /// Form field name, e.g. `image`.
    pub name: String,
    /// File name given by the client.
    pub filename: Option<String>,
    /// The part's `Content-Type`.
    pub content_type: Option<String>,
    /// Size in bytes.
    pub size: usize,
}

/// A registered device and when it was "created".
#[derive(Clone, Debug)]
pub(crate) struct Device {
    pub spec: DeviceSpec,
    pub created_at: OffsetDateTime,
    pub extra: DeviceExtra,
}

impl Device {
    pub fn new(spec: DeviceSpec, created_at: OffsetDateTime) -> Self {
        let extra = DeviceExtra {
            instance_id: uuid_like(&spec.id),
            ..DeviceExtra::default()
        };
        Self {
            spec,
            created_at,
            extra,
        }
    }

    /// Changes the state, noting it in the status history; a logged-in device has no link in
    /// progress.
    pub fn set_state(&mut self, state: DeviceState) {
        self.spec.state = state;
        if state == DeviceState::LoggedIn {
            self.extra.link = None;
        }
        let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        self.extra
            .statuses
            .push((state.waha_status().to_owned(), now_ms));
        if self.extra.statuses.len() > 10 {
            self.extra.statuses.remove(0);
        }
    }

    /// The account's number (the JID's user part without a device suffix).
    pub fn number(&self) -> String {
        self.spec
            .jid
            .split('@')
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// What the other kinds keep per account slot beyond the GOWA device.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeviceExtra {
    /// Meta: the phone number's messaging health (`health_status.can_send_message`).
    pub health: MessagingHealth,
    /// A device link in progress (QR shown, pairing code issued), until a scan completes it.
    pub link: Option<PendingLink>,
    /// WAHA: the session's `config` as last set (echoed by `GET /api/sessions/{session}`).
    pub waha_config: Option<Value>,
    /// WAHA: every webhook of the session's config (the first is also `spec.webhook`).
    pub waha_webhooks: Vec<DeviceWebhook>,
    /// Evolution: the webhook as last set (`enabled`, `byEvents`, `base64`, `events`), echoed by
    /// `GET /webhook/find/{instance}`.
    pub evolution_webhook: Option<Value>,
    /// Evolution: the instance id (`X-Instance-ID`, `instanceId`).
    pub instance_id: String,
    /// WAHA: the last session statuses with their times (ms), newest last.
    pub statuses: Vec<(String, i64)>,
}

/// Meta's messaging health of a phone number (`can_send_message`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessagingHealth {
    /// Messages can be sent.
    #[default]
    Available,
    /// Sending is limited (e.g. a messaging limit is reached).
    Limited,
    /// Sending is blocked (e.g. the account is restricted).
    Blocked,
}

impl MessagingHealth {
    /// The wire name (`AVAILABLE`, `LIMITED`, `BLOCKED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Limited => "LIMITED",
            Self::Blocked => "BLOCKED",
        }
    }
}

/// A QR code shown or a pairing code issued, waiting for the phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingLink {
    /// The QR payload (`2@…` like WhatsApp's).
    pub qr: String,
    /// The pairing code, when one was requested for a number.
    pub pairing_code: Option<String>,
    /// The number the pairing code was requested for.
    pub phone: Option<String>,
    /// GOWA: the QR picture's file name under `/statics/images/qrcode/`.
    pub image: String,
    /// When the QR code stops being valid (GOWA's `qr_duration` after it was issued).
    pub expires_at: OffsetDateTime,
}

/// A stable UUID-shaped id derived from `seed` (Evolution instance ids).
fn uuid_like(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(seed.as_bytes());
    let hex = hex::encode(&digest[..16]);
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// State shared by the API, the control API and the handle.
#[derive(Debug)]
pub(crate) struct SimState {
    config: SimConfig,
    /// `http://127.0.0.1:<port>` of the API port.
    base_url: String,
    initial_devices: Vec<Device>,
    inner: Mutex<Inner>,
    /// Whether the `hold` fault is in force; held requests wait for it to turn false.
    held: tokio::sync::watch::Sender<bool>,
    /// The client events (receipts, incoming messages) are delivered with.
    pub http: reqwest::Client,
    /// Whether the GOWA port is closed: a stopped server forwards no events.
    down: AtomicBool,
    /// Scheduled receipts; aborted by `reset` and at shutdown.
    tasks: Mutex<JoinSet<()>>,
    /// The `chaos` fault's RNG and counts.
    pub chaos: crate::chaos::ChaosDice,
}

#[derive(Debug)]
struct Inner {
    devices: Vec<Device>,
    faults: Faults,
    log: Vec<RecordedRequest>,
    next_seq: u64,
    webhook: WebhookConfig,
    receipts: Receipts,
    sent: VecDeque<SentMessage>,
    events: VecDeque<EventRecord>,
    next_event_seq: u64,
}

impl SimState {
    pub fn new(config: SimConfig, base_url: String, http: reqwest::Client) -> Self {
        // Whole seconds, one apart, oldest first: GOWA lists devices by created_at, so the
        // configured order is kept.
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let count = config.devices.len() as u64;
        let initial_devices: Vec<Device> = config
            .devices
            .iter()
            .enumerate()
            .map(|(i, spec)| Device::new(spec.clone(), now - Duration::from_secs(count - i as u64)))
            .collect();
        Self {
            inner: Mutex::new(Inner {
                devices: initial_devices.clone(),
                faults: Faults::default(),
                log: Vec::new(),
                next_seq: 1,
                webhook: config.webhook.clone(),
                receipts: config.receipts,
                sent: VecDeque::new(),
                events: VecDeque::new(),
                next_event_seq: 1,
            }),
            initial_devices,
            config,
            base_url,
            held: tokio::sync::watch::Sender::new(false),
            http,
            down: AtomicBool::new(false),
            tasks: Mutex::new(JoinSet::new()),
            chaos: Default::default(),
        }
    }

    /// Waits while the `hold` fault is in force.
    pub async fn wait_while_held(&self) {
        let mut held = self.held.subscribe();
        // `wait_for` looks at the current value first: a hold lifted already does not wait.
        let _ = held.wait_for(|h| !*h).await;
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The API's base URL (Evolution's `server_url`).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a request to the log, giving it the next sequence number.
    pub fn record(&self, mut request: RecordedRequest) -> u64 {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        request.seq = seq;
        inner.log.push(request);
        seq
    }

    /// Sets the answered status of a logged request (ignored if the log was cleared since).
    pub fn record_status(&self, seq: u64, status: u16) {
        let mut inner = self.lock();
        if let Ok(i) = inner.log.binary_search_by_key(&seq, |r| r.seq) {
            inner.log[i].status = Some(status);
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().log.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.lock()
            .log
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        let hold = faults.hold;
        self.lock().faults = faults;
        self.held.send_replace(hold);
    }

    /// Decides whether this send fails: consumes one use of a count-limited fault and rolls
    /// the fault's rate.
    pub fn take_send_error(&self) -> Option<SendErrorStatus> {
        let mut inner = self.lock();
        let fault = inner.faults.send_error.as_mut()?;
        let status = fault.status;
        let rate = fault.rate.clamp(0.0, 1.0);
        if let Some(count) = fault.count.as_mut() {
            if *count == 0 {
                inner.faults.send_error = None;
                return None;
            }
            *count -= 1;
            if *count == 0 {
                inner.faults.send_error = None;
            }
        }
        let fails = rate >= 1.0 || (rate > 0.0 && rand::random::<f64>() < rate);
        fails.then_some(status)
    }

    pub fn devices(&self) -> Vec<Device> {
        self.lock().devices.clone()
    }

    pub fn device(&self, id: &str) -> Option<Device> {
        self.lock()
            .devices
            .iter()
            .find(|d| d.spec.id == id)
            .cloned()
    }

    /// The only device, when exactly one is registered (GOWA's `DefaultDevice`).
    pub fn only_device(&self) -> Option<Device> {
        let inner = self.lock();
        match inner.devices.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        }
    }

    /// Changes a device's state; false when no device has that id.
    pub fn set_device_state(&self, id: &str, state: DeviceState) -> bool {
        self.update_device(id, |device| device.set_state(state))
            .is_some()
    }

    /// Sets or clears a device's own webhook; false when no device has that id.
    pub fn set_device_webhook(&self, id: &str, webhook: Option<DeviceWebhook>) -> bool {
        self.update_device(id, |device| {
            device.extra.waha_webhooks = webhook.iter().cloned().collect();
            device.spec.webhook = webhook;
        })
        .is_some()
    }

    /// Runs `change` on a device; `None` when no device has that id.
    pub fn update_device<R>(&self, id: &str, change: impl FnOnce(&mut Device) -> R) -> Option<R> {
        let mut inner = self.lock();
        inner
            .devices
            .iter_mut()
            .find(|d| d.spec.id == id)
            .map(change)
    }

    /// Registers a new device (WAHA `POST /api/sessions`); false when the id is taken.
    pub fn add_device(&self, spec: DeviceSpec) -> bool {
        let mut inner = self.lock();
        if inner.devices.iter().any(|d| d.spec.id == spec.id) {
            return false;
        }
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        inner.devices.push(Device::new(spec, now));
        true
    }

    /// Removes a device (WAHA `DELETE /api/sessions/{session}`); false when unknown.
    pub fn remove_device(&self, id: &str) -> bool {
        let mut inner = self.lock();
        let before = inner.devices.len();
        inner.devices.retain(|d| d.spec.id != id);
        inner.devices.len() != before
    }

    /// Decides whether this send answers the kind's own error: consumes one use of a
    /// count-limited fault.
    pub fn take_provider_error(&self) -> Option<String> {
        let mut inner = self.lock();
        let fault = inner.faults.provider_error.as_mut()?;
        let code = fault.code.clone();
        if let Some(count) = fault.count.as_mut() {
            if *count == 0 {
                inner.faults.provider_error = None;
                return None;
            }
            *count -= 1;
            if *count == 0 {
                inner.faults.provider_error = None;
            }
        }
        Some(code)
    }

    /// Decides whether this accepted send will be reported failed; `Some(code)` (the code may
    /// be empty: the kind's default) when so.
    pub fn take_delivery_failure(&self) -> Option<String> {
        let mut inner = self.lock();
        let fault = inner.faults.delivery_failure.as_mut()?;
        let code = fault.code.clone().unwrap_or_default();
        if let Some(count) = fault.count.as_mut() {
            if *count == 0 {
                inner.faults.delivery_failure = None;
                return None;
            }
            *count -= 1;
            if *count == 0 {
                inner.faults.delivery_failure = None;
            }
        }
        Some(code)
    }

    /// Whether `number` (digits, optional `+` or JID) is marked not on WhatsApp.
    pub fn not_on_whatsapp(&self, number: &str) -> bool {
        let digits: String = number
            .split('@')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        self.lock()
            .faults
            .not_on_whatsapp
            .iter()
            .any(|n| n.trim_start_matches('+') == digits)
    }

    pub fn kind(&self) -> Kind {
        self.config.kind
    }

    pub fn webhook(&self) -> WebhookConfig {
        self.lock().webhook.clone()
    }

    pub fn set_webhook(&self, webhook: WebhookConfig) {
        self.lock().webhook = webhook;
    }

    pub fn receipts(&self) -> Receipts {
        self.lock().receipts
    }

    pub fn set_receipts(&self, receipts: Receipts) {
        self.lock().receipts = receipts;
    }

    /// Notes a message the server accepted (for `quoted_body` of replies to it).
    pub fn note_sent(&self, sent: SentMessage) {
        let mut inner = self.lock();
        if inner.sent.len() == SENT_KEPT {
            inner.sent.pop_front();
        }
        inner.sent.push_back(sent);
    }

    /// A message the server accepted, by its id.
    pub fn sent_message(&self, id: &str) -> Option<SentMessage> {
        self.lock().sent.iter().rev().find(|m| m.id == id).cloned()
    }

    /// Appends an event record, giving it the next sequence number.
    pub fn record_event(&self, mut record: EventRecord) -> EventRecord {
        let mut inner = self.lock();
        record.seq = inner.next_event_seq;
        inner.next_event_seq += 1;
        if inner.events.len() == EVENTS_KEPT {
            inner.events.pop_front();
        }
        inner.events.push_back(record.clone());
        record
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.lock().events.iter().cloned().collect()
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    pub fn set_down_flag(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Runs `task` in the background until it ends, `reset` or shutdown.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Aborts every scheduled task (pending receipts).
    pub fn abort_tasks(&self) {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .abort_all();
    }

    /// Clears the request and event logs and the faults, restores the initial devices,
    /// webhook and receipt timings, and drops pending receipts.
    pub fn reset(&self) {
        self.abort_tasks();
        let mut inner = self.lock();
        inner.log.clear();
        inner.faults = Faults::default();
        inner.devices = self.initial_devices.clone();
        self.held.send_replace(false);
        inner.webhook = self.config.webhook.clone();
        inner.receipts = self.config.receipts;
        inner.sent.clear();
        inner.events.clear();
        self.chaos.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::SendErrorFault;

    fn state() -> SimState {
        SimState::new(
            SimConfig::default(),
            "http://127.0.0.1:1".into(),
            reqwest::Client::new(),
        )
    }

    #[test]
    fn count_limited_send_error_covers_exactly_n_sends() {
        let state = state();
        state.set_faults(Faults {
            send_error: Some(SendErrorFault::next(
                2,
                SendErrorStatus::InternalServerError,
            )),
            ..Faults::default()
        });
        assert_eq!(
            state.take_send_error(),
            Some(SendErrorStatus::InternalServerError)
        );
        assert_eq!(
            state.take_send_error(),
            Some(SendErrorStatus::InternalServerError)
        );
        assert_eq!(state.take_send_error(), None);
        assert!(state.faults().send_error.is_none());
    }

    #[test]
    fn zero_rate_never_fails_but_still_uses_the_count() {
        let state = state();
        let mut fault = SendErrorFault::next(1, SendErrorStatus::TooManyRequests);
        fault.rate = 0.0;
        state.set_faults(Faults {
            send_error: Some(fault),
            ..Faults::default()
        });
        assert_eq!(state.take_send_error(), None);
        assert!(state.faults().send_error.is_none());
    }

    #[test]
    fn reset_restores_devices_and_clears_faults() {
        let state = state();
        assert!(state.set_device_state("demo", DeviceState::Connected));
        state.set_faults(Faults {
            hang: true,
            ..Faults::default()
        });
        state.reset();
        assert_eq!(
            state.device("demo").unwrap().spec.state,
            DeviceState::LoggedIn
        );
        assert_eq!(state.faults(), Faults::default());
    }

    #[test]
    fn unknown_device_state_change_is_reported() {
        assert!(!state().set_device_state("nope", DeviceState::Connected));
    }
}

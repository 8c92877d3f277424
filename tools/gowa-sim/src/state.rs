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

/// Messages kept for quoting in incoming replies (`quoted_body`), newest last.
const SENT_KEPT: usize = 1_000;
/// Event records kept for `GET /_sim/events`, newest last.
const EVENTS_KEPT: usize = 1_000;

/// One request received on the GOWA port, as recorded by the simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Arrival order, from 1; never reused, not even after the log is cleared.
    pub seq: u64,
    /// When the request arrived (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query, e.g. `/send/message`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// The `X-Device-Id` header, if sent.
    pub device_id: Option<String>,
    /// Username of the basic-auth credentials, if any were sent. The password is never kept.
    pub basic_auth_user: Option<String>,
    /// Whether the request got past basic auth (always true for `/health` and an open server).
    pub authorized: bool,
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
    /// The status answered; `None` while unanswered (for example with the `hang` fault).
    pub status: Option<u16>,
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
}

/// State shared by the API, the control API and the handle.
#[derive(Debug)]
pub(crate) struct SimState {
    config: SimConfig,
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
    pub fn new(config: SimConfig, http: reqwest::Client) -> Self {
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
            .map(|(i, spec)| Device {
                spec: spec.clone(),
                created_at: now - Duration::from_secs(count - i as u64),
            })
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
            held: tokio::sync::watch::Sender::new(false),
            http,
            down: AtomicBool::new(false),
            tasks: Mutex::new(JoinSet::new()),
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
        let mut inner = self.lock();
        match inner.devices.iter_mut().find(|d| d.spec.id == id) {
            Some(device) => {
                device.spec.state = state;
                true
            }
            None => false,
        }
    }

    /// Sets or clears a device's own webhook; false when no device has that id.
    pub fn set_device_webhook(&self, id: &str, webhook: Option<DeviceWebhook>) -> bool {
        let mut inner = self.lock();
        match inner.devices.iter_mut().find(|d| d.spec.id == id) {
            Some(device) => {
                device.spec.webhook = webhook;
                true
            }
            None => false,
        }
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::SendErrorFault;

    fn state() -> SimState {
        SimState::new(SimConfig::default(), reqwest::Client::new())
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

//! What a simulator starts with: basic-auth credentials and the registered devices.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::kind::Kind;
use crate::webhook::RetryPolicy;

/// Id of the device a simulator registers when none is given.
pub const DEFAULT_DEVICE_ID: &str = "demo";
/// JID of the device a simulator registers when none is given.
pub const DEFAULT_DEVICE_JID: &str = "6281234567890@s.whatsapp.net";
/// WAHA's default session name (`default`, the only one WAHA Core runs).
pub const DEFAULT_WAHA_SESSION: &str = "default";
/// The Evolution instance a simulator registers when none is given.
pub const DEFAULT_EVOLUTION_INSTANCE: &str = "demo";
/// The Meta phone number id a simulator registers when none is given (the id in the examples
/// of Meta's spec).
pub const DEFAULT_META_PHONE_NUMBER_ID: &str = "106540352242922";
/// The business number behind [`DEFAULT_META_PHONE_NUMBER_ID`] (Meta's spec examples).
pub const DEFAULT_META_JID: &str = "15550783881@s.whatsapp.net";
/// The WhatsApp Business Account id in Meta webhooks (`entry[].id`, Meta's spec examples).
pub const DEFAULT_META_WABA_ID: &str = "102290129340398";
/// The Graph API version the simulator reports (`facebook-api-version`); any `vN.M` is served.
pub const META_API_VERSION: &str = "v23.0";

/// Body size above which the API answers 413, like GOWA's `BodyLimit` (its default maximum
/// video size, 100 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 100_000_000;

/// Connection lifecycle of a device (GOWA device, WAHA session, Evolution instance, Meta
/// phone number), serialised like GOWA's `domainDevice.DeviceState`. Each kind shows it in its
/// own words (see [`DeviceState::waha_status`], [`DeviceState::evolution_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// No socket to WhatsApp; sends answer 401 "you are not connect to services server".
    /// WAHA `STOPPED`, Evolution `close`, Meta: not registered.
    Disconnected,
    /// Socket being opened; treated as not connected. WAHA `STARTING`, Evolution `connecting`.
    Connecting,
    /// Socket open but no session (logged out, waiting for a QR scan or pairing code); sends
    /// answer 401 "you are not logged in". WAHA `SCAN_QR_CODE`, Evolution `close`.
    Connected,
    /// Connected and logged in: sends succeed. WAHA `WORKING`, Evolution `open`, Meta:
    /// registered.
    LoggedIn,
    /// The session broke (WAHA `FAILED`: restart it, then log out); GOWA and Evolution show it
    /// as disconnected / `close`.
    Failed,
}

impl DeviceState {
    /// Whether GOWA reports `is_connected: true` for this state.
    pub fn is_connected(self) -> bool {
        matches!(self, Self::Connected | Self::LoggedIn)
    }

    /// WAHA's session status for this state.
    pub fn waha_status(self) -> &'static str {
        match self {
            Self::Disconnected => "STOPPED",
            Self::Connecting => "STARTING",
            Self::Connected => "SCAN_QR_CODE",
            Self::LoggedIn => "WORKING",
            Self::Failed => "FAILED",
        }
    }

    /// Evolution's connection state (`instance.state`) for this state.
    pub fn evolution_state(self) -> &'static str {
        match self {
            Self::LoggedIn => "open",
            Self::Connecting => "connecting",
            Self::Disconnected | Self::Connected | Self::Failed => "close",
        }
    }

    /// Whether GOWA reports `is_logged_in: true` for this state.
    pub fn is_logged_in(self) -> bool {
        self == Self::LoggedIn
    }

    /// The wire name (`"logged_in"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::LoggedIn => "logged_in",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disconnected" => Ok(Self::Disconnected),
            "connecting" => Ok(Self::Connecting),
            "connected" => Ok(Self::Connected),
            "logged_in" => Ok(Self::LoggedIn),
            "failed" => Ok(Self::Failed),
            other => Err(format!(
                "unknown device state {other:?} (expected disconnected, connecting, connected, logged_in or failed)"
            )),
        }
    }
}

/// GOWA's global webhook (`--webhook`, `--webhook-secret`, `--webhook-events`): where every
/// event of a device without a webhook of its own goes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Target URLs (GOWA's `WHATSAPP_WEBHOOK`, comma separated there); empty sends nothing.
    pub urls: Vec<String>,
    /// HMAC key; GOWA's default is the literal `secret`. Never serialised.
    #[serde(skip_serializing)]
    pub secret: String,
    /// Event names to forward (`message`, `message.ack`, ...); empty forwards every event.
    pub events: Vec<String>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: DEFAULT_WEBHOOK_SECRET.to_owned(),
            events: Vec::new(),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("urls", &self.urls)
            .field("secret", &"***")
            .field("events", &self.events)
            .finish()
    }
}

/// GOWA's default webhook secret.
pub const DEFAULT_WEBHOOK_SECRET: &str = "secret";

/// A device's own webhook (GOWA's `webhook_url` / `webhook_secret` / `webhook_events` of
/// `POST /devices` and `PATCH /devices/{id}/webhook`): when set, the device's events go
/// here instead of the global webhook, signed with its own secret (the global one when
/// empty), filtered by its own event list.
///
/// The other kinds keep their per-session webhook here too: WAHA's `config.webhooks[]` entry
/// (`secret` = `hmac.key`, `headers` = `customHeaders`), Evolution's `webhook/set` (`secret` =
/// the `jwt_key` header, which becomes a signed `Authorization: Bearer` JWT; `headers` = the
/// other headers). Meta's callback is app-wide: the global [`WebhookConfig`] (its secret is the
/// app secret).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceWebhook {
    pub url: String,
    /// Never serialised (the control API lists devices without it).
    #[serde(default, skip_serializing)]
    pub secret: String,
    /// Event names to forward; empty forwards every event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Extra headers sent with every delivery (WAHA `customHeaders`, Evolution `headers`).
    /// Never serialised: they may hold tokens.
    #[serde(default, skip_serializing)]
    pub headers: BTreeMap<String, String>,
}

impl fmt::Debug for DeviceWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceWebhook")
            .field("url", &self.url)
            .field("secret", &if self.secret.is_empty() { "" } else { "***" })
            .field("events", &self.events)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// When WhatsApp's receipts for a message the simulator accepted arrive, as GOWA forwards
/// them (`message.ack` webhooks): `delivered` this long after the send, then `read` this
/// long after `delivered`. `None` leaves that receipt (and, for `delivered`, both) out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Receipts {
    pub delivered_ms: Option<u64>,
    pub read_ms: Option<u64>,
}

impl Default for Receipts {
    /// Delivered after 1 s, read 2 s later.
    fn default() -> Self {
        Self {
            delivered_ms: Some(1_000),
            read_ms: Some(2_000),
        }
    }
}

impl Receipts {
    /// No receipts at all.
    pub fn off() -> Self {
        Self {
            delivered_ms: None,
            read_ms: None,
        }
    }
}

/// One device (a WhatsApp account) registered on the simulated server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// The device id chosen with `X-Device-Id` (GOWA's session id from `POST /devices`).
    pub id: String,
    /// WhatsApp JID of the account, e.g. `6281234567890@s.whatsapp.net`; may be empty.
    pub jid: String,
    /// Current connection state.
    pub state: DeviceState,
    /// The device's own webhook, if any (else the global one applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<DeviceWebhook>,
}

impl DeviceSpec {
    /// A device with the given id, JID and state.
    pub fn new(id: impl Into<String>, jid: impl Into<String>, state: DeviceState) -> Self {
        Self {
            id: id.into(),
            jid: jid.into(),
            state,
            webhook: None,
        }
    }

    /// The same device with its own webhook.
    pub fn with_webhook(mut self, url: impl Into<String>, secret: impl Into<String>) -> Self {
        self.webhook = Some(DeviceWebhook {
            url: url.into(),
            secret: secret.into(),
            events: Vec::new(),
            headers: BTreeMap::new(),
        });
        self
    }

    /// A logged-in device, ready to send.
    pub fn logged_in(id: impl Into<String>, jid: impl Into<String>) -> Self {
        Self::new(id, jid, DeviceState::LoggedIn)
    }

    /// The device registered when none is configured: `demo`, logged in.
    pub fn default_device() -> Self {
        Self::logged_in(DEFAULT_DEVICE_ID, DEFAULT_DEVICE_JID)
    }

    /// The device a simulator of `kind` registers when none is configured, logged in: GOWA
    /// device `demo`, WAHA session `default`, Evolution instance `demo`, Meta phone number
    /// `106540352242922` (registered).
    pub fn default_for(kind: Kind) -> Self {
        match kind {
            Kind::Gowa => Self::default_device(),
            Kind::Waha => Self::logged_in(DEFAULT_WAHA_SESSION, DEFAULT_DEVICE_JID),
            Kind::Evolution => Self::logged_in(DEFAULT_EVOLUTION_INSTANCE, DEFAULT_DEVICE_JID),
            Kind::Meta => Self::logged_in(DEFAULT_META_PHONE_NUMBER_ID, DEFAULT_META_JID),
        }
    }
}

/// Parses the command-line form
/// `id=demo,jid=6281234567890@s.whatsapp.net,state=logged_in[,webhook_url=URL,webhook_secret=S]`.
/// `id` is required; `jid` defaults to empty and `state` to `logged_in`; `webhook_secret`
/// needs `webhook_url`.
impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = None;
        let mut jid = String::new();
        let mut state = DeviceState::LoggedIn;
        let mut webhook_url = None;
        let mut webhook_secret = String::new();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {pair:?}"))?;
            match key.trim() {
                "id" => id = Some(value.trim().to_owned()),
                "jid" => jid = value.trim().to_owned(),
                "state" => state = value.trim().parse()?,
                "webhook_url" => webhook_url = Some(value.trim().to_owned()),
                "webhook_secret" => webhook_secret = value.trim().to_owned(),
                other => {
                    return Err(format!(
                        "unknown device key {other:?} (id, jid, state, webhook_url, webhook_secret)"
                    ));
                }
            }
        }
        let webhook = match webhook_url {
            Some(url) if !url.is_empty() => Some(DeviceWebhook {
                url,
                secret: webhook_secret,
                events: Vec::new(),
                headers: BTreeMap::new(),
            }),
            _ if !webhook_secret.is_empty() => {
                return Err("webhook_secret needs webhook_url".to_owned());
            }
            _ => None,
        };
        match id {
            Some(id) if !id.is_empty() => Ok(Self {
                id,
                jid,
                state,
                webhook,
            }),
            _ => Err("a device needs id=<device id>".to_owned()),
        }
    }
}

/// Configuration of one simulator.
#[derive(Clone)]
pub struct SimConfig {
    /// The server the simulator speaks (GOWA by default).
    pub kind: Kind,
    /// GOWA: `(user, password)` required on every route but `/health`; `None` leaves the API
    /// open.
    pub basic_auth: Option<(String, String)>,
    /// The server's API credential for the other kinds: WAHA's `X-Api-Key`, Evolution's global
    /// `apikey` (`AUTHENTICATION_API_KEY`), Meta's access token (`Authorization: Bearer`).
    /// `None` leaves the API open (no real server of these kinds runs without one).
    pub api_key: Option<String>,
    /// Evolution: each instance's own token (`apikey` accepted on that instance's routes, and
    /// sent in the body of its webhooks), by instance name. Instances without one get
    /// `<instance>-token`.
    pub device_keys: BTreeMap<String, String>,
    /// Meta: the WhatsApp Business Account id of `entry[].id` in webhooks.
    pub waba_id: String,
    /// Registered devices, listed by `GET /devices` in this order.
    pub devices: Vec<DeviceSpec>,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// The global webhook (none by default, as GOWA without `--webhook`).
    pub webhook: WebhookConfig,
    /// Receipts after each accepted send.
    pub receipts: Receipts,
    /// How event webhooks (receipts, incoming messages) are retried; GOWA's by default.
    pub webhook_retry: RetryPolicy,
}

impl Default for SimConfig {
    /// A GOWA simulator: no basic auth, one logged-in device ([`DeviceSpec::default_device`]),
    /// no webhook, [`Receipts::default`], GOWA's webhook retries.
    fn default() -> Self {
        Self {
            kind: Kind::Gowa,
            basic_auth: None,
            api_key: None,
            device_keys: BTreeMap::new(),
            waba_id: DEFAULT_META_WABA_ID.to_owned(),
            devices: vec![DeviceSpec::default_device()],
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            webhook: WebhookConfig::default(),
            receipts: Receipts::default(),
            webhook_retry: RetryPolicy::default(),
        }
    }
}

impl SimConfig {
    /// A configuration with the given devices and no basic auth.
    pub fn with_devices(devices: Vec<DeviceSpec>) -> Self {
        Self {
            devices,
            ..Self::default()
        }
    }

    /// The same configuration with basic auth required.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic_auth = Some((user.into(), password.into()));
        self
    }

    /// A simulator of `kind` with its default device ([`DeviceSpec::default_for`]), no
    /// credentials required and the kind's own webhook retry policy.
    pub fn for_kind(kind: Kind) -> Self {
        Self {
            kind,
            devices: vec![DeviceSpec::default_for(kind)],
            webhook_retry: RetryPolicy::for_kind(kind),
            ..Self::default()
        }
    }

    /// The same configuration requiring `key` (WAHA `X-Api-Key`, Evolution global `apikey`,
    /// Meta bearer token).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Evolution: the token of one instance (accepted as its `apikey`, sent in its webhooks).
    pub fn device_key(mut self, device_id: impl Into<String>, key: impl Into<String>) -> Self {
        self.device_keys.insert(device_id.into(), key.into());
        self
    }

    /// Evolution: the token of `device_id` (its configured one, else `<instance>-token`).
    pub fn device_key_of(&self, device_id: &str) -> String {
        self.device_keys
            .get(device_id)
            .cloned()
            .unwrap_or_else(|| format!("{device_id}-token"))
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = self
            .basic_auth
            .as_ref()
            .map(|(user, _)| (user.as_str(), "***"));
        f.debug_struct("SimConfig")
            .field("kind", &self.kind)
            .field("basic_auth", &auth)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("device_keys", &self.device_keys.keys().collect::<Vec<_>>())
            .field("waba_id", &self.waba_id)
            .field("devices", &self.devices)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("webhook", &self.webhook)
            .field("receipts", &self.receipts)
            .field("webhook_retry", &self.webhook_retry)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_device_flag() {
        let spec: DeviceSpec = "id=shop-1,jid=6281111@s.whatsapp.net,state=connected"
            .parse()
            .unwrap();
        assert_eq!(
            spec,
            DeviceSpec::new("shop-1", "6281111@s.whatsapp.net", DeviceState::Connected)
        );
    }

    #[test]
    fn device_flag_without_id_is_rejected() {
        assert!("jid=1@s.whatsapp.net".parse::<DeviceSpec>().is_err());
        assert!("id=x,colour=red".parse::<DeviceSpec>().is_err());
        assert!("id=x,state=asleep".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let config = SimConfig::default().basic_auth("admin", "hunter2");
        let printed = format!("{config:?}");
        assert!(printed.contains("admin"));
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn debug_output_never_shows_api_keys_or_instance_tokens() {
        let config = SimConfig::for_kind(Kind::Evolution)
            .api_key("global-hunter2")
            .device_key("demo", "instance-hunter2");
        let printed = format!("{config:?}");
        assert!(printed.contains("demo"));
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn each_kind_has_its_own_default_device() {
        assert_eq!(SimConfig::for_kind(Kind::Waha).devices[0].id, "default");
        assert_eq!(SimConfig::for_kind(Kind::Evolution).devices[0].id, "demo");
        assert_eq!(
            SimConfig::for_kind(Kind::Meta).devices[0].id,
            DEFAULT_META_PHONE_NUMBER_ID
        );
        assert_eq!(SimConfig::default().kind, Kind::Gowa);
    }

    #[test]
    fn device_flag_takes_a_webhook_of_its_own() {
        let spec: DeviceSpec =
            "id=d1,jid=1@s.whatsapp.net,webhook_url=http://127.0.0.1:9/h,webhook_secret=s3"
                .parse()
                .unwrap();
        let webhook = spec.webhook.expect("webhook");
        assert_eq!(webhook.url, "http://127.0.0.1:9/h");
        assert_eq!(webhook.secret, "s3");
        assert!("id=d1,webhook_secret=s3".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn webhook_secrets_are_neither_serialised_nor_printed() {
        let spec = DeviceSpec::default_device().with_webhook("http://127.0.0.1:9/h", "hunter2");
        assert!(!serde_json::to_string(&spec).unwrap().contains("hunter2"));
        assert!(!format!("{spec:?}").contains("hunter2"));
        let global = WebhookConfig {
            secret: "hunter2".into(),
            ..WebhookConfig::default()
        };
        assert!(!serde_json::to_string(&global).unwrap().contains("hunter2"));
        assert!(!format!("{global:?}").contains("hunter2"));
    }

    #[test]
    fn device_state_uses_gowa_snake_case_names() {
        let json = serde_json::to_string(&DeviceState::LoggedIn).unwrap();
        assert_eq!(json, "\"logged_in\"");
    }
}

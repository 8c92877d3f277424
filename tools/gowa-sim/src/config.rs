//! What a simulator starts with: basic-auth credentials and the registered devices.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Id of the device a simulator registers when none is given.
pub const DEFAULT_DEVICE_ID: &str = "demo";
/// JID of the device a simulator registers when none is given.
pub const DEFAULT_DEVICE_JID: &str = "6281234567890@s.whatsapp.net";

/// Body size above which the API answers 413, like GOWA's `BodyLimit` (its default maximum
/// video size, 100 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 100_000_000;

/// Connection lifecycle of a device, serialised like GOWA's `domainDevice.DeviceState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// No socket to WhatsApp; sends answer 401 "you are not connect to services server".
    Disconnected,
    /// Socket being opened; treated as not connected.
    Connecting,
    /// Socket open but no session (logged out); sends answer 401 "you are not logged in".
    Connected,
    /// Connected and logged in: sends succeed.
    LoggedIn,
}

impl DeviceState {
    /// Whether GOWA reports `is_connected: true` for this state.
    pub fn is_connected(self) -> bool {
        matches!(self, Self::Connected | Self::LoggedIn)
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
            other => Err(format!(
                "unknown device state {other:?} (expected disconnected, connecting, connected or logged_in)"
            )),
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
}

impl DeviceSpec {
    /// A device with the given id, JID and state.
    pub fn new(id: impl Into<String>, jid: impl Into<String>, state: DeviceState) -> Self {
        Self {
            id: id.into(),
            jid: jid.into(),
            state,
        }
    }

    /// A logged-in device, ready to send.
    pub fn logged_in(id: impl Into<String>, jid: impl Into<String>) -> Self {
        Self::new(id, jid, DeviceState::LoggedIn)
    }

    /// The device registered when none is configured: `demo`, logged in.
    pub fn default_device() -> Self {
        Self::logged_in(DEFAULT_DEVICE_ID, DEFAULT_DEVICE_JID)
    }
}

/// Parses the command-line form `id=demo,jid=6281234567890@s.whatsapp.net,state=logged_in`.
/// `id` is required; `jid` defaults to empty and `state` to `logged_in`.
impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = None;
        let mut jid = String::new();
        let mut state = DeviceState::LoggedIn;
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {pair:?}"))?;
            match key.trim() {
                "id" => id = Some(value.trim().to_owned()),
                "jid" => jid = value.trim().to_owned(),
                "state" => state = value.trim().parse()?,
                other => return Err(format!("unknown device key {other:?} (id, jid, state)")),
            }
        }
        match id {
            Some(id) if !id.is_empty() => Ok(Self { id, jid, state }),
            _ => Err("a device needs id=<device id>".to_owned()),
        }
    }
}

/// Configuration of one simulator.
#[derive(Clone)]
pub struct SimConfig {
    /// `(user, password)` required on every route but `/health`; `None` leaves the API open.
    pub basic_auth: Option<(String, String)>,
    /// Registered devices, listed by `GET /devices` in this order.
    pub devices: Vec<DeviceSpec>,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
}

impl Default for SimConfig {
    /// No basic auth and one logged-in device, [`DeviceSpec::default_device`].
    fn default() -> Self {
        Self {
            basic_auth: None,
            devices: vec![DeviceSpec::default_device()],
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
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
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = self
            .basic_auth
            .as_ref()
            .map(|(user, _)| (user.as_str(), "***"));
        f.debug_struct("SimConfig")
            .field("basic_auth", &auth)
            .field("devices", &self.devices)
            .field("max_body_bytes", &self.max_body_bytes)
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
    fn device_state_uses_gowa_snake_case_names() {
        let json = serde_json::to_string(&DeviceState::LoggedIn).unwrap();
        assert_eq!(json, "\"logged_in\"");
    }
}

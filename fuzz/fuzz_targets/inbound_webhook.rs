//! Fuzz target `inbound_webhook`: a webhook as the ingress takes it, through
//! `webhook_ingress::accept` (signature over the raw bytes, JSON, normalisation to an
//! `InboundEvent`, the queue body), for every provider kind whose webhooks `accept` takes with
//! the one `X-Hub-Signature-256` header and the tenant's webhook secrets ([`FUZZED`]: GOWA).
//! WAHA's, Evolution's and Meta's schemes (other headers, the app secret, timestamps) are
//! tested in tests/tests/inbound_kinds.rs, not fuzzed here yet.
//!
//! Input: `[kind, mode, ...]`. `kind` picks the provider kind ([`FUZZED`]), `mode` how
//! the body is signed (see [`Mode`]); with [`Mode::Raw`] the next byte is a length `n` and the
//! `n` bytes after it are the header value as sent; the rest is the body.
//!
//! Properties (a panic is a finding):
//! - a body signed with a current secret of the tenant is accepted when it is JSON (and refused
//!   `invalid_json` when not); one signed with an expired secret, another tenant's secret, or
//!   not signed, is refused with a signature error;
//! - whatever is accepted names a secret of the tenant that is current, and the header's MAC is
//!   that secret's HMAC of the body (a verified signature verifies again with that secret alone);
//! - the queue body is valid for `schemas/inbound-event.schema.json` (every required field, a
//!   `message` with its id, sender and chat), reads back as the same event, names the tenant
//!   and the provider kind, and its deduplication id (64 hex digits) does not depend on when
//!   the webhook arrived (a provider's retry is deduplicated).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

// ---- the project's API under test: every wagate path this target names is here ----
use wagate::Secret;
use wagate::inbound::signature::{parse_sha256_header, sign_sha256, verify_sha256};
use wagate::inbound::{EventType, InboundEvent};
use wagate::tenant::{
    ConnectionStatus, Credentials, Endpoint, EndpointRole, Limits, OpenedConfig, ProviderKind,
    TenantConfig, WebhookSecret,
};
use webhook_ingress::{IngressError, accept};
// ---- end of the project's API ----

/// The schema the platform reads inbound events against (checked in, compiled once).
const INBOUND_SCHEMA: &str = include_str!("../../schemas/inbound-event.schema.json");

const TENANT: &str = "acme";
/// GOWA's default webhook secret, so the checked-in samples' real signatures verify (seeds).
const CURRENT: &str = "secret";
/// A secret being rotated out: current until an hour after `now`.
const ROTATING: &str = "rotating-secret-7f3a";
/// A secret that expired a second before `now`.
const EXPIRED: &str = "expired-secret-19bd";
/// Another tenant's secret.
const FOREIGN: &str = "other-tenants-secret-c0de";

/// How the fuzz input asks the body to be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// With the tenant's current secret.
    Current,
    /// With the secret being rotated out (still current).
    Rotating,
    /// With a secret that has expired.
    Expired,
    /// With another tenant's secret.
    Foreign,
    /// No signature header.
    Missing,
    /// The header value is taken from the input, as sent.
    Raw,
    /// The current secret's MAC, spelled with uppercase hex.
    Uppercase,
}

impl Mode {
    fn of(b: u8) -> Mode {
        match b % 7 {
            0 => Mode::Current,
            1 => Mode::Rotating,
            2 => Mode::Expired,
            3 => Mode::Foreign,
            4 => Mode::Missing,
            5 => Mode::Raw,
            _ => Mode::Uppercase,
        }
    }
}

/// How a provider kind signs its webhooks: one arm per kind. The match is exhaustive, so a new
/// `ProviderKind` does not build until its arm is here (with its own signing function).
fn sign(kind: ProviderKind, secret: &str, body: &[u8]) -> String {
    match kind {
        ProviderKind::Gowa => sign_sha256(secret.as_bytes(), body),
        ProviderKind::Waha | ProviderKind::Evolution | ProviderKind::Meta => {
            unreachable!("not in FUZZED")
        }
    }
}

/// The kinds this target fuzzes (see the module documentation).
const FUZZED: &[ProviderKind] = &[ProviderKind::Gowa];

/// The MAC a header value carries, for a kind (the same per-kind arm as [`sign`]).
fn header_mac(kind: ProviderKind, header: &str) -> Option<Vec<u8>> {
    match kind {
        ProviderKind::Gowa => parse_sha256_header(header).ok().map(|m| m.to_vec()),
        ProviderKind::Waha | ProviderKind::Evolution | ProviderKind::Meta => {
            unreachable!("not in FUZZED")
        }
    }
}

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-11-30 12:00 UTC)
}

/// The tenant of provider kind `kind`, holding three secrets: current, rotating, expired.
fn tenant(kind: ProviderKind) -> OpenedConfig {
    let secret = |id: &str, value: &str, expires_at| WebhookSecret {
        id: id.into(),
        secret: Secret::new(value),
        expires_at,
    };
    TenantConfig {
        tenant_id: TENANT.parse().expect("a valid tenant id"),
        provider: kind,
        primary: Endpoint {
            base_url: "https://wa.example.com".into(),
            credentials: Credentials::None,
            device_id: Some("dev-1".into()),
            region: None,
            provider: None,
            webhook_source_cidrs: Vec::new(),
            webhook_wiring: Default::default(),
        },
        backup: None,
        webhook_secrets: vec![
            secret("rotating", ROTATING, Some(now() + Duration::hours(1))),
            secret("current", CURRENT, None),
            secret("expired", EXPIRED, Some(now() - Duration::seconds(1))),
        ],
        active_endpoint: EndpointRole::Primary,
        is_active: true,
        connection_status: ConnectionStatus::Connected,
        failback: Default::default(),
        limits: Limits::default(),
        version: 1,
        created_at: now(),
        updated_at: now(),
    }
}

fn tenants() -> &'static Vec<OpenedConfig> {
    static T: OnceLock<Vec<OpenedConfig>> = OnceLock::new();
    T.get_or_init(|| FUZZED.iter().map(|k| tenant(*k)).collect())
}

fn schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(INBOUND_SCHEMA).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let [kind, mode, rest @ ..] = data else {
        return;
    };
    let index = usize::from(*kind) % FUZZED.len();
    let kind = FUZZED[index];
    let cfg = &tenants()[index];
    let mode = Mode::of(*mode);
    let (header, body): (Option<String>, &[u8]) = match mode {
        Mode::Raw => {
            let [n, rest @ ..] = rest else {
                return;
            };
            let n = usize::from(*n).min(rest.len());
            // A header value that is not text never reaches `accept` (`to_str` fails first).
            let header = std::str::from_utf8(&rest[..n]).ok().map(str::to_string);
            (header, &rest[n..])
        }
        Mode::Missing => (None, rest),
        Mode::Current => (Some(sign(kind, CURRENT, rest)), rest),
        Mode::Rotating => (Some(sign(kind, ROTATING, rest)), rest),
        Mode::Expired => (Some(sign(kind, EXPIRED, rest)), rest),
        Mode::Foreign => (Some(sign(kind, FOREIGN, rest)), rest),
        Mode::Uppercase => {
            let h = sign(kind, CURRENT, rest);
            let (prefix, hex) = h.split_at(h.find('=').map_or(0, |i| i + 1));
            (Some(format!("{prefix}{}", hex.to_ascii_uppercase())), rest)
        }
    };
    let result = accept(cfg, header.as_deref(), body, None, now());

    let is_json = serde_json::from_slice::<Value>(body).is_ok();
    match mode {
        Mode::Current | Mode::Rotating | Mode::Uppercase => match &result {
            Ok(_) => assert!(is_json, "a body that is not JSON was accepted"),
            Err(IngressError::NotJson) => assert!(!is_json, "a JSON body was refused as not JSON"),
            Err(IngressError::EventTooLarge) => {}
            Err(e) => panic!("a body signed with a current secret ({mode:?}) was refused: {e:?}"),
        },
        Mode::Expired | Mode::Foreign | Mode::Missing => assert!(
            matches!(result, Err(IngressError::Signature(_))),
            "a body signed {mode:?} was not refused for its signature: {result:?}"
        ),
        Mode::Raw => {}
    }

    let Ok(accepted) = result else {
        return;
    };
    // The secret that verified it is the tenant's, current, and the header's MAC is its HMAC.
    let header = header.expect("an accepted webhook had a signature");
    let used = cfg
        .webhook_secrets
        .iter()
        .find(|s| s.id == accepted.secret_id)
        .expect("the accepted webhook names one of the tenant's secrets");
    assert!(
        used.is_current(now()),
        "verified with a secret that is not current"
    );
    let expected = sign(kind, used.secret.expose(), body);
    assert_eq!(
        header_mac(kind, &header),
        header_mac(kind, &expected),
        "the header's MAC is not the HMAC of the body under the secret that verified it"
    );
    assert_eq!(
        verify_sha256(Some(&header), body, std::slice::from_ref(used), now()),
        Ok(used.id.as_str()),
        "a verified signature does not verify again with the same secret"
    );

    // The queue body: schema-valid, reads back as the same event.
    let queued: Value = serde_json::from_str(&accepted.body).expect("the queue body is JSON");
    let errors: Vec<String> = schema()
        .iter_errors(&queued)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "queue body breaks the InboundEvent schema: {errors:?}"
    );
    let back: InboundEvent =
        serde_json::from_str(&accepted.body).expect("the queue body reads as an InboundEvent");
    assert_eq!(
        back, accepted.event,
        "the queue body does not read back as the event"
    );
    let ev = &accepted.event;
    assert_eq!(ev.tenant_id, TENANT);
    assert_eq!(ev.provider, kind);
    assert!(!ev.dedup_key.is_empty());
    if ev.event_type == EventType::Message {
        assert!(
            ev.provider_event_id
                .as_deref()
                .is_some_and(|id| !id.is_empty())
                && ev.sender.is_some()
                && ev.chat.is_some(),
            "a message without its id, sender or chat"
        );
    }
    let dedup = ev.deduplication_id();
    assert!(dedup.len() == 64 && dedup.bytes().all(|b| b.is_ascii_hexdigit()));
    // A retry a minute later (the secret still current) is the same event for deduplication.
    let later = accept(cfg, Some(&header), body, None, now() + Duration::minutes(1))
        .expect("the same webhook a minute later is accepted too");
    assert_eq!(
        later.event.deduplication_id(),
        dedup,
        "a retry deduplicates differently"
    );
});

//! Fuzz target `tenant_config`: a create body as the config API takes it: read as the API reads
//! every body (`config_api::parse_json`: JSON object, no `null`, `5.0` as `5`, unknown fields
//! refused), built into a config (`dto::build_config`) and validated (`TenantConfig::validate`,
//! the structural checks of `POST /tenants/{tenantId}/whatsapp-config`; the host-name lookup
//! that follows is DNS, not fuzzed).
//!
//! Input: the request body (sent as `application/json`).
//!
//! Properties (a panic is a finding):
//! - an accepted config, stored (the DynamoDB item of `wagate::tenant::dynamo::to_item`) and read back
//!   (`from_item`), is the same config and validates again;
//! - an accepted config, shown by the API (its `ConfigView`) and sent again unchanged as a `PUT`
//!   body (secrets left out: kept), is accepted again and is the same config (normalised base
//!   URLs, CIDRs, ids and limits are fixed points: a read-modify-write that changes nothing
//!   changes nothing);
//! - nothing but a fingerprint depends on a secret's value: with other secrets of the same
//!   lengths the verdict, every refusal's text and the view are the same (no secret leaks into
//!   an error or an answer).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

// ---- the project's API under test: every wagate / config-api path this target names is here ----
use config_api::dto::{ConfigInput, ConfigView, SecretSlot, build_config};
use config_api::{MAX_BODY_BYTES, parse_json};
use wagate::egress::EgressPolicy;
use wagate::secrets::SealedSecret;
use wagate::tenant::dynamo::{from_item, to_item};
use wagate::tenant::{SealedConfig, TenantConfig, TenantId};
// ---- end of the project's API ----

fn tenant() -> TenantId {
    "acme".parse().expect("a valid tenant id")
}

fn created_at() -> OffsetDateTime {
    time::macros::datetime!(2026-11-30 12:00 UTC)
}

/// The local stack's egress rules: loopback admitted, nothing else.
fn egress() -> &'static EgressPolicy {
    static P: OnceLock<EgressPolicy> = OnceLock::new();
    P.get_or_init(|| {
        EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.1/32").expect("a CIDR"))
    })
}

/// The body as a request to the config API.
fn request(body: &[u8]) -> lambda_http::Request {
    let mut req = lambda_http::Request::new(lambda_http::Body::from(body.to_vec()));
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    req
}

/// Seals like the API does, with a stand-in for KMS: a new secret becomes a ciphertext that is
/// not its value, a kept one stays as it was.
fn seal(cfg: TenantConfig<SecretSlot>) -> SealedConfig {
    let values: Vec<SealedSecret> = cfg
        .secret_slots()
        .iter()
        .enumerate()
        .map(|(i, (purpose, slot))| match slot {
            SecretSlot::New(s) => SealedSecret {
                ciphertext: format!("sealed-{}-{i}", purpose.as_str()),
                fingerprint: s.fingerprint(),
            },
            SecretSlot::Keep(k) => k.clone(),
        })
        .collect();
    cfg.with_secrets(values)
        .expect("one value per secret slot, by construction")
}

/// The body with every secret value (`password`, `key`, `token` and `secret` strings) replaced
/// by another of the same length, character by character of the same UTF-8 width (characters
/// JSON escapes are kept). Validation looks at a secret's length only, so the API must answer
/// both bodies alike, fingerprints aside. `None` when the body gives no secret.
fn other_secrets(body: &[u8]) -> Option<Vec<u8>> {
    fn swap(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '"' | '\\' | '\u{0}'..='\u{1f}' => c,
                c => match (c.len_utf8(), c) {
                    (1, 'Q') => 'R',
                    (1, _) => 'Q',
                    (2, 'é') => 'ü',
                    (2, _) => 'é',
                    (3, '€') => '✓',
                    (3, _) => '€',
                    (_, '😀') => '🙂',
                    _ => '😀',
                },
            })
            .collect()
    }
    fn walk(v: &mut Value, found: &mut bool) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    match (k.as_str(), &mut *v) {
                        ("password" | "key" | "token" | "secret", Value::String(s)) => {
                            *s = swap(s);
                            *found = true;
                        }
                        _ => walk(v, found),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let mut found = false;
    walk(&mut v, &mut found);
    found.then(|| v.to_string().into_bytes())
}

/// What the API makes of a create body: the refusal's text, or the stored config and the view
/// it answers.
enum Outcome {
    Refused(String),
    /// A body the create handler refuses before building it (`version` set): not compared.
    NotACreate,
    Accepted(SealedConfig, Value),
}

fn create(body: &[u8]) -> Outcome {
    let input = match parse_json::<ConfigInput>(&request(body), MAX_BODY_BYTES) {
        Ok(i) => i,
        Err(e) => return Outcome::Refused(format!("{e} {e:?}")),
    };
    // The create handler refuses a body `version` before building (the server sets it).
    if input.version.is_some() {
        return Outcome::NotACreate;
    }
    let built = match build_config(tenant(), input, None, created_at()) {
        Ok(c) => c,
        Err(errs) => return Outcome::Refused(format!("{errs} {errs:?}")),
    };
    if let Err(errs) = built.validate(egress()) {
        return Outcome::Refused(format!("{errs} {errs:?}"));
    }
    let sealed = seal(built);
    let view = serde_json::to_value(ConfigView::from(&sealed)).expect("the view is JSON");
    Outcome::Accepted(sealed, view)
}

/// The parts of an outcome that may not depend on a secret's value: all but fingerprints.
fn without_fingerprints(o: &Outcome) -> String {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("fingerprint");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    match o {
        Outcome::Refused(text) => format!("refused: {text}"),
        Outcome::NotACreate => "not a create".into(),
        Outcome::Accepted(_, view) => {
            let mut v = view.clone();
            strip(&mut v);
            format!("accepted: {v}")
        }
    }
}

/// The `PUT` body that sends a config back exactly as the API showed it: every field of the
/// view a caller can write, secrets left out (kept).
fn resubmission(view: &Value) -> Value {
    fn endpoint(e: &Value) -> Value {
        let mut out = Map::new();
        out.insert("baseUrl".into(), e["baseUrl"].clone());
        let mut creds = Map::new();
        creds.insert("type".into(), e["credentials"]["type"].clone());
        if let Some(u) = e["credentials"].get("username") {
            creds.insert("username".into(), u.clone());
        }
        out.insert("credentials".into(), Value::Object(creds));
        for field in ["deviceId", "region", "webhookSourceCidrs"] {
            if let Some(v) = e.get(field) {
                out.insert(field.into(), v.clone());
            }
        }
        Value::Object(out)
    }
    let mut body = json!({
        "provider": view["provider"],
        "primary": endpoint(&view["primary"]),
        "webhookSecrets": view["webhookSecrets"]
            .as_array()
            .expect("webhookSecrets is a list")
            .iter()
            .map(|w| {
                let mut s = Map::new();
                s.insert("id".into(), w["id"].clone());
                if let Some(at) = w.get("expiresAt") {
                    s.insert("expiresAt".into(), at.clone());
                }
                Value::Object(s)
            })
            .collect::<Vec<_>>(),
        "activeEndpoint": view["activeEndpoint"],
        "isActive": view["isActive"],
        "failback": view["failback"],
        "limits": view["limits"],
        "version": view["version"],
    });
    if let Some(b) = view.get("backup") {
        body["backup"] = endpoint(b);
    }
    body
}

fuzz_target!(|data: &[u8]| {
    // Nothing but a fingerprint depends on a secret's value: refusals, the view and the
    // verdict are the same with other secrets of the same lengths (compared on the body as
    // JSON writes it back, so error positions cannot differ).
    if let Some(swapped) = other_secrets(data) {
        let canonical = serde_json::from_slice::<Value>(data)
            .expect("other_secrets read it")
            .to_string();
        let a = without_fingerprints(&create(canonical.as_bytes()));
        let b = without_fingerprints(&create(&swapped));
        assert_eq!(a, b, "the answer depends on a secret's value");
    }

    let Outcome::Accepted(sealed, view) = create(data) else {
        return;
    };
    // Accepted: stored and read back, it is the same config and validates again.
    let item = to_item(&sealed).expect("an accepted config is storable");
    let stored = from_item(item).expect("a stored config reads back");
    assert_eq!(stored, sealed, "the stored config reads back changed");
    if let Err(errs) = stored.validate(egress()) {
        panic!("a stored config no longer validates: {errs}");
    }

    // Shown by the API and sent back unchanged, it is accepted again, unchanged.
    let again = resubmission(&view);
    let input = parse_json::<ConfigInput>(&request(again.to_string().as_bytes()), MAX_BODY_BYTES)
        .unwrap_or_else(|e| panic!("the API's own view, sent back, is not a body: {e:?}\n{again}"));
    let later = created_at() + time::Duration::minutes(5);
    let rebuilt = build_config(tenant(), input, Some(&stored), later)
        .unwrap_or_else(|e| panic!("the API's own view, sent back, is refused: {e}\n{again}"));
    if let Err(errs) = rebuilt.validate(egress()) {
        panic!("the API's own view, sent back, no longer validates: {errs}\n{again}");
    }
    let mut resealed = seal(rebuilt);
    assert_eq!(resealed.version, stored.version + 1);
    assert_eq!(resealed.updated_at, later);
    resealed.version = stored.version;
    resealed.updated_at = stored.updated_at;
    assert_eq!(
        resealed, stored,
        "sending the config back unchanged changed it\n{again}"
    );
});

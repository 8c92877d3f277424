//! Fuzz target `outbound_message`: a queue body as the outbound sender reads it, through
//! `OutboundMessage::parse` (the one way the sender reads a body).
//!
//! Input: the body (SQS bodies are text: input that is not UTF-8 is skipped).
//!
//! Properties (a panic is a finding):
//! - the parser and the checked-in contract (`schemas/outbound-message.schema.json`) agree:
//!   a JSON body within the size limit is accepted by both or refused by both, but for the one
//!   refusal a schema cannot express (a URL of the right shape that does not parse as a URL,
//!   which the schema's description states);
//! - an accepted message validates, writes back to JSON that parses to the same message, and
//!   its SQS group and deduplication ids are its tenant and idempotency key;
//! - a refused body that still names a key for its failure record names a valid tenant and a
//!   valid idempotency key (never a key the parser itself would refuse).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

// ---- the project's API under test: every wagate path this target names is here ----
use wagate::outbound::{MAX_BODY_BYTES, OutboundError, OutboundMessage};
// ---- end of the project's API ----

/// The producers' contract (checked in, compiled once).
const OUTBOUND_SCHEMA: &str = include_str!("../../schemas/outbound-message.schema.json");

fn schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(OUTBOUND_SCHEMA).expect("the schema is JSON");
        jsonschema::draft202012::new(&schema).expect("the schema compiles")
    })
}

/// A valid key for a failure record: what the parser accepts in a message.
fn key_is_valid(tenant: &str, key: &str) -> bool {
    let probe = serde_json::json!({
        "tenantId": tenant,
        "idempotencyKey": key,
        "to": "6281234567890",
        "content": {"type": "text", "body": "x"},
    });
    OutboundMessage::parse(&probe.to_string()).is_ok()
}

/// The one refusal the schema cannot express: a URL of the schema's shape that is no URL at all
/// (WHATWG: a forbidden host character, a bad port, an IPv6 literal that does not parse, a
/// name IDNA refuses). The schema says so in its description; only the sender refuses it.
fn unparseable_url_only(json: &Value, error: &OutboundError) -> bool {
    let OutboundError::Invalid(errs) = error else {
        return false;
    };
    let url = json["content"]["url"].as_str().unwrap_or("");
    !errs.0.is_empty()
        && errs.0.iter().all(|e| e.field == "content.url")
        && url::Url::parse(url).map_or(true, |u| u.host().is_none())
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = OutboundMessage::parse(body);

    // Agreement with the contract, on the body as JSON writes it back (one spelling per
    // value; a body with a duplicate key is refused by the parser and read last-wins by a
    // schema validator, so the raw text is not compared).
    if body.len() <= MAX_BODY_BYTES
        && let Ok(json) = serde_json::from_str::<Value>(body)
    {
        let canonical = json.to_string();
        let by_parser = OutboundMessage::parse(&canonical);
        if let Ok(raw) = &parsed {
            assert_eq!(
                by_parser.as_ref().ok(),
                Some(raw),
                "the body written back reads otherwise"
            );
        }
        let by_schema = schema().is_valid(&json);
        let agree = match &by_parser {
            Ok(_) => by_schema,
            Err(r) => !by_schema || unparseable_url_only(&json, &r.error),
        };
        assert!(
            agree,
            "parser and schema disagree on {canonical}: parser {:?}, schema errors {:?}",
            by_parser.as_ref().err().map(|r| &r.error),
            schema()
                .iter_errors(&json)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect::<Vec<_>>()
        );
    }

    match parsed {
        Ok(msg) => {
            assert_eq!(
                msg.validate(),
                Ok(()),
                "an accepted message does not validate"
            );
            let written = serde_json::to_string(&msg).expect("a message writes to JSON");
            let again = OutboundMessage::parse(&written).expect("a written message parses again");
            assert_eq!(again, msg, "a message does not survive a write and a read");
            assert_eq!(msg.message_group_id(), msg.tenant_id.as_str());
            assert_eq!(msg.deduplication_id(), msg.idempotency_key);
        }
        Err(rejected) => {
            if let OutboundError::TooLarge(n) = rejected.error {
                assert!(n > MAX_BODY_BYTES);
            }
            if let Some((tenant, key)) = &rejected.key {
                assert!(
                    key_is_valid(tenant.as_str(), key),
                    "a refused body's failure record would be keyed {tenant}#{key:?}, which the parser refuses"
                );
            }
        }
    }
});

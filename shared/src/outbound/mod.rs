//! Outbound: the contract producers put on the outbound queue (this file), where a message
//! goes ([`routing`]: failover rules and circuit breakers) and how fast ([`ratelimit`]: the
//! tenant's per-minute windows). All pure; the sender function drives them.
//!
//! [`OutboundMessage`] is what producers put on the outbound FIFO
//! queue (JSON Schema: `schemas/outbound-message.schema.json`; message group = `tenantId`,
//! deduplication id = `idempotencyKey`).
//!
//! [`OutboundMessage::parse`] is the one way the sender reads a queue body: shape (unknown
//! fields refused, as the schema's `additionalProperties: false`) and then every field rule,
//! each problem naming its field. A body that fails still gives up its `tenantId` and
//! `idempotencyKey` when it has them, so the failure can be recorded under the message's key.

pub mod ratelimit;
pub mod routing;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::provider::SendRequest;
use crate::tenant::{TenantId, ValidationErrors};

/// Longest idempotency key (the SQS FIFO deduplication id limit).
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
/// Longest text body WhatsApp accepts.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Longest media caption.
pub const MAX_CAPTION_CHARS: usize = 1024;
/// Longest media URL.
pub const MAX_URL_CHARS: usize = 2048;
/// Largest queue body the sender reads (SQS's own maximum is 256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What to send, as producers write it: the provider's [`Content`](crate::provider::Content) itself (one shape from the
/// queue to the server; unknown fields are refused, as the schema says).
pub use crate::provider::Content as MessageContent;

/// One message to send, as a producer puts it on the outbound queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundMessage {
    pub tenant_id: TenantId,
    /// The producer's key for this message: the same key is sent at most once per tenant.
    pub idempotency_key: String,
    /// Phone number in international format (digits, optional leading `+`) or a JID
    /// (`…@s.whatsapp.net`, `…@g.us`, `…@lid`, `…@newsletter`).
    pub to: String,
    pub content: MessageContent,
    /// Provider message id this message replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// Why a queue body is not a valid [`OutboundMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("body is {0} bytes, more than {MAX_BODY_BYTES}")]
    TooLarge(usize),
    #[error("body is not an OutboundMessage: {0}")]
    Shape(String),
    #[error("invalid message: {0}")]
    Invalid(ValidationErrors),
}

impl OutboundError {
    /// A short machine-readable code for records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            OutboundError::TooLarge(_) => "too_large",
            OutboundError::Shape(_) => "malformed",
            OutboundError::Invalid(_) => "invalid",
        }
    }
}

/// A body that did not parse, with whatever identified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub error: OutboundError,
    /// `tenantId` and `idempotencyKey`, when both were present and well-formed.
    pub key: Option<(TenantId, String)>,
}

impl OutboundMessage {
    /// Parses and validates a queue body.
    pub fn parse(body: &str) -> Result<OutboundMessage, Rejected> {
        if body.len() > MAX_BODY_BYTES {
            return Err(Rejected {
                error: OutboundError::TooLarge(body.len()),
                key: None,
            });
        }
        match serde_json::from_str::<OutboundMessage>(body) {
            Ok(msg) => match msg.validate() {
                Ok(()) => Ok(msg),
                Err(errs) => Err(Rejected {
                    key: valid_idempotency_key(&msg.idempotency_key)
                        .then(|| (msg.tenant_id.clone(), msg.idempotency_key.clone())),
                    error: OutboundError::Invalid(errs),
                }),
            },
            Err(e) => Err(Rejected {
                // The serde message may quote input; keep it short.
                error: OutboundError::Shape(e.to_string().chars().take(200).collect()),
                key: loose_key(body),
            }),
        }
    }

    /// Every field rule; each problem names its field.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if !valid_idempotency_key(&self.idempotency_key) {
            errs.push(
                "idempotencyKey",
                format!(
                    "must be 1-{MAX_IDEMPOTENCY_KEY} characters of A-Z a-z 0-9 and - _ . : @ + = # /"
                ),
            );
        }
        if !valid_recipient(&self.to) {
            errs.push(
                "to",
                "must be a phone number in international format (5-15 digits, optional '+') or a WhatsApp JID",
            );
        }
        match &self.content {
            MessageContent::Text { body } => {
                if is_blank(body) {
                    errs.push("content.body", "must not be blank");
                }
                if body.chars().count() > MAX_TEXT_CHARS {
                    errs.push(
                        "content.body",
                        format!("must be at most {MAX_TEXT_CHARS} characters"),
                    );
                }
            }
            MessageContent::Image { url, caption } => {
                check_url(&mut errs, url);
                check_caption(&mut errs, caption.as_deref());
            }
            MessageContent::Document {
                url,
                filename,
                caption,
            } => {
                check_url(&mut errs, url);
                check_caption(&mut errs, caption.as_deref());
                if let Some(f) = filename
                    && (is_blank(f)
                        || f.chars().count() > 255
                        || f.contains(['/', '\\'])
                        || f.chars().any(char::is_control))
                {
                    errs.push(
                        "content.filename",
                        "must be 1-255 characters without '/', '\\' or control characters",
                    );
                }
            }
        }
        if let Some(r) = &self.reply_to
            && !(1..=128).contains(&r.len())
        {
            errs.push("replyTo", "must be 1-128 characters");
        }
        if let Some(r) = &self.reply_to
            && !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        {
            errs.push("replyTo", "must be characters of A-Z a-z 0-9 and . _ : -");
        }
        errs.into_result()
    }

    /// The SQS FIFO message group: the tenant (per-tenant order).
    pub fn message_group_id(&self) -> &str {
        self.tenant_id.as_str()
    }

    /// The SQS FIFO deduplication id: the idempotency key.
    pub fn deduplication_id(&self) -> &str {
        &self.idempotency_key
    }

    /// The provider request.
    pub fn send_request(&self) -> SendRequest {
        SendRequest {
            to: self.to.clone(),
            content: self.content.clone(),
            reply_to: self.reply_to.clone(),
        }
    }
}

fn valid_idempotency_key(k: &str) -> bool {
    (1..=MAX_IDEMPOTENCY_KEY).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@+=#/".contains(&b))
}

fn valid_recipient(to: &str) -> bool {
    if let Some((user, server)) = to.split_once('@') {
        return matches!(server, "s.whatsapp.net" | "g.us" | "lid" | "newsletter")
            && (1..=64).contains(&user.len())
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    }
    // International format: no leading 0 (a local number like 0812… is refused).
    let digits = to.strip_prefix('+').unwrap_or(to);
    (5..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// White space as the schema's patterns (ECMA-262 `\s`) and Rust (`char::is_whitespace`) both
/// count it: the ECMA set plus U+0085, which only Rust counts (the schema refuses it by name).
fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// Empty or nothing but white space ([`is_space`]).
fn is_blank(s: &str) -> bool {
    s.chars().all(is_space)
}

/// The URL's spelling as the schema states it (`^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+\S*$`),
/// before the URL parser, which forgives what the schema does not: surrounding and inner
/// white space, and `http:///host` for `http://host`.
fn url_spelled_right(url: &str) -> bool {
    let Some(rest) = crate::tenant::validation::after_http_scheme(url) else {
        return false;
    };
    rest.chars()
        .next()
        .is_some_and(|c| !matches!(c, '/' | '?' | '#'))
        && !url.chars().any(is_space)
}

fn check_url(errs: &mut ValidationErrors, url: &str) {
    let ok = url.len() <= MAX_URL_CHARS
        && url_spelled_right(url)
        && Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
    if !ok {
        errs.push(
            "content.url",
            format!("must be an http(s) URL of at most {MAX_URL_CHARS} characters"),
        );
    }
}

fn check_caption(errs: &mut ValidationErrors, caption: Option<&str>) {
    if caption.is_some_and(|c| c.chars().count() > MAX_CAPTION_CHARS) {
        errs.push(
            "content.caption",
            format!("must be at most {MAX_CAPTION_CHARS} characters"),
        );
    }
}

/// `tenantId` and `idempotencyKey` of a body that is JSON but not a valid message.
fn loose_key(body: &str) -> Option<(TenantId, String)> {
    let v: Value = serde_json::from_str(body).ok()?;
    let tenant = v.get("tenantId")?.as_str()?.parse::<TenantId>().ok()?;
    let key = v.get("idempotencyKey")?.as_str()?;
    valid_idempotency_key(key).then(|| (tenant, key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(to: &str) -> String {
        format!(
            r#"{{"tenantId":"acme","idempotencyKey":"order-1","to":"{to}","content":{{"type":"text","body":"hi"}}}}"#
        )
    }

    #[test]
    fn parses_a_text_message_and_maps_it_to_a_send_request() {
        let m = OutboundMessage::parse(&text("+6281234567890")).unwrap();
        assert_eq!(m.message_group_id(), "acme");
        assert_eq!(m.deduplication_id(), "order-1");
        assert_eq!(
            m.send_request().content,
            MessageContent::Text { body: "hi".into() }
        );
    }

    #[test]
    fn accepts_jids_and_refuses_local_numbers_and_junk() {
        for ok in ["6281234567890", "120363402106123456@g.us", "123@lid"] {
            assert!(OutboundMessage::parse(&text(ok)).is_ok(), "{ok}");
        }
        for bad in ["081234", "0812345678", "12 34 56", "a@example.com", "+"] {
            let r = OutboundMessage::parse(&text(bad)).unwrap_err();
            let OutboundError::Invalid(errs) = r.error else {
                panic!("{bad}: {:?}", r.error)
            };
            assert_eq!(errs.0[0].field, "to", "{bad}");
            assert_eq!(r.key.unwrap().1, "order-1");
        }
    }

    #[test]
    fn unknown_fields_are_refused_but_the_key_is_kept() {
        let body = r#"{"tenantId":"acme","idempotencyKey":"k1","to":"6281234567890","content":{"type":"text","body":"x","bold":true}}"#;
        let r = OutboundMessage::parse(body).unwrap_err();
        assert_eq!(r.error.code(), "malformed");
        assert_eq!(r.key, Some(("acme".parse().unwrap(), "k1".into())));
    }

    #[test]
    fn not_json_has_no_key() {
        let r = OutboundMessage::parse("{not json").unwrap_err();
        assert_eq!(r.error.code(), "malformed");
        assert!(r.key.is_none());
    }

    fn text_body(body: &str) -> String {
        serde_json::json!({"tenantId": "acme", "idempotencyKey": "k1", "to": "6281234567890",
            "content": {"type": "text", "body": body}})
        .to_string()
    }

    fn image(url: &str) -> String {
        serde_json::json!({"tenantId": "acme", "idempotencyKey": "k1", "to": "6281234567890",
            "content": {"type": "image", "url": url}})
        .to_string()
    }

    /// Found by the `outbound_message` fuzz target (fuzz/): the parser accepted URLs the
    /// schema refuses (`https://cdn.example.com/menu` with white space around or inside it,
    /// `http:///host`), which it would have sent to the server as written.
    #[test]
    fn urls_are_refused_as_the_schema_refuses_them() {
        for bad in [
            " https://cdn.example.com/menu.jpg",
            "https://cdn.example.com/menu.jpg ",
            "https://cdn.example.com/the menu.jpg",
            "https://cdn.exa\tmple.com/menu.jpg",
            "https://cdn.example.com/\u{feff}menu.jpg",
            "http:///cdn.example.com/menu.jpg",
            "https://cdn.example.conth's menu",
        ] {
            let r = OutboundMessage::parse(&image(bad)).unwrap_err();
            let OutboundError::Invalid(errs) = r.error else {
                panic!("{bad:?}: {:?}", r.error)
            };
            assert_eq!(errs.0[0].field, "content.url", "{bad:?}");
        }
        for good in [
            "HTTPS://cdn.example.com/menu.jpg?w=1#x",
            "http://user@cdn.example.com",
        ] {
            OutboundMessage::parse(&image(good)).unwrap_or_else(|e| panic!("{good}: {e:?}"));
        }
    }

    /// Found by the `outbound_message` fuzz target: a text of only U+FEFF (white space to the
    /// schema, not to `str::trim`) was sent as an invisible message.
    #[test]
    fn a_text_of_white_space_in_either_sense_is_blank() {
        for blank in ["", " ", "\u{feff}", "\u{85}", "\u{3000}\u{feff}\n"] {
            let r = OutboundMessage::parse(&text_body(blank)).unwrap_err();
            assert_eq!(r.error.code(), "invalid", "{blank:?}");
        }
        OutboundMessage::parse(&text_body("\u{feff}hi")).unwrap();
    }

    #[test]
    fn every_invalid_field_is_named() {
        let body = r#"{"tenantId":"acme","idempotencyKey":"has space","to":"6281234567890","content":{"type":"document","url":"ftp://x/y","filename":"a/b"},"replyTo":"x y"}"#;
        let r = OutboundMessage::parse(body).unwrap_err();
        let OutboundError::Invalid(errs) = r.error else {
            panic!()
        };
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "idempotencyKey",
                "content.url",
                "content.filename",
                "replyTo"
            ]
        );
        assert!(r.key.is_none(), "an invalid key never becomes a record key");
    }
}

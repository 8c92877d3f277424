//! What the WAHA, Evolution and Meta clients share over the guarded HTTP client: URLs built
//! from percent-encoded path segments, one call that reads a bounded answer, a MIME type for
//! a file sent by URL, and the recipient spellings each kind wants.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use url::Url;

use super::ProviderError;
pub(super) use super::gowa::{Call, PNG_SIGNATURE, transport_error};
use crate::egress::HttpClient;

/// Most bytes of an answer a client reads (a QR picture in base64 fits; a send answer is small).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A server's answer: its status, `Retry-After` (seconds) and body.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as `T`, or a retryable "unexpected answer" (a read) / ambiguous (a send).
    pub fn parse<T: for<'de> serde::Deserialize<'de>>(
        &self,
        call: Call,
    ) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|_| unexpected(call))
    }
}

/// A 2xx answer whose body is not what the kind documents.
pub(super) fn unexpected(call: Call) -> ProviderError {
    let reason = "the server's answer is not the documented shape".to_string();
    match call {
        Call::Send => ProviderError::Ambiguous { reason },
        Call::Read => ProviderError::Retryable {
            reason,
            before_sent: false,
        },
    }
}

/// `base` + `/seg/seg…`, each segment percent-encoded (a session or instance name never
/// escapes its segment).
pub(super) fn url(base: &str, segments: &[&str]) -> Result<Url, ProviderError> {
    url_with(base, segments, &[])
}

/// [`url`] with query parameters.
pub(super) fn url_with(
    base: &str,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<Url, ProviderError> {
    let bad = || ProviderError::Permanent {
        code: "INVALID_BASE_URL".into(),
        message: "the endpoint base URL is not a valid URL".into(),
    };
    let mut u = Url::parse(base.trim_end_matches('/')).map_err(|_| bad())?;
    {
        let mut path = u.path_segments_mut().map_err(|_| bad())?;
        path.pop_if_empty();
        path.extend(segments);
    }
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    Ok(u)
}

/// Sends `rb` and reads its answer (at most [`MAX_ANSWER_BYTES`]).
pub(super) async fn call(rb: reqwest::RequestBuilder, call: Call) -> Result<Answer, ProviderError> {
    let mut resp = rb.send().await.map_err(|e| transport_error(&e, call))?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&e, call))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(unexpected(call));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// A request through the guarded client.
pub(super) fn request(
    http: &HttpClient,
    method: Method,
    url: Url,
) -> Result<reqwest::RequestBuilder, ProviderError> {
    Ok(http.request(method, url)?)
}

/// The class of a status every kind answers alike: 401/403 bad credentials, 429 rate
/// limited, 504 on a send ambiguous, other 5xx retryable; `None` for the rest (the kind
/// decides).
pub(super) fn common_class(a: &Answer, call: Call, message: &str) -> Option<ProviderError> {
    Some(match a.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::BadCredentials {
            status: a.status.as_u16(),
        },
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited {
            message: message.to_string(),
            retry_after: a.retry_after,
        },
        StatusCode::GATEWAY_TIMEOUT if call == Call::Send => ProviderError::Ambiguous {
            reason: format!("server answered 504: {message}"),
        },
        s if s.is_server_error() && matches!(s.as_u16(), 502..=504) => ProviderError::Retryable {
            reason: format!("server answered {}: {message}", s.as_u16()),
            before_sent: false,
        },
        _ => return None,
    })
}

/// Bounds a message taken from a server we do not control.
pub(super) fn bounded(message: &str) -> String {
    message.chars().take(300).collect()
}

/// The MIME type of a file sent by URL, from the URL path's extension (WAHA requires one).
pub(super) fn mime_from_url(url: &str, fallback: &'static str) -> &'static str {
    let path = Url::parse(url)
        .map(|u| u.path().to_ascii_lowercase())
        .unwrap_or_default();
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "zip" => "application/zip",
        _ => fallback,
    }
}

/// The digits of a phone number (`+62 812-…` → `62812…`), or of a user JID's user part
/// (`628…@s.whatsapp.net`, `628…@c.us`); `None` for a group or anything else.
pub(super) fn phone_digits(to: &str) -> Option<String> {
    let user = match to.split_once('@') {
        Some((user, "s.whatsapp.net" | "c.us")) => user,
        Some(_) => return None,
        None => to,
    };
    let digits: String = user
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
        .collect();
    (digits.len() >= 5 && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// A recipient this kind cannot address (permanent: the message is wrong for it).
pub(super) fn bad_recipient(kind: &str) -> ProviderError {
    ProviderError::Permanent {
        code: "INVALID_RECIPIENT".into(),
        message: format!("the recipient is not a phone number or user JID {kind} can send to"),
    }
}

/// The answer when the server says success, else the kind's error for it (`error_from`).
pub(super) async fn successful(
    rb: reqwest::RequestBuilder,
    call: Call,
    error_from: fn(&Answer, Call) -> ProviderError,
) -> Result<Answer, ProviderError> {
    let a = self::call(rb, call).await?;
    if a.status.is_success() {
        Ok(a)
    } else {
        Err(error_from(&a, call))
    }
}

/// The endpoint's `deviceId`, which this kind requires (`what` names it: the Evolution
/// instance name, the Meta phone number id).
pub(super) fn required_device<'a>(
    target: &super::Target<'a>,
    what: &str,
) -> Result<&'a str, ProviderError> {
    target
        .device_id
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ProviderError::Permanent {
            code: "DEVICE_ID_REQUIRED".into(),
            message: format!("the endpoint has no deviceId: set the {what}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_digits_accepts_numbers_and_user_jids_only() {
        assert_eq!(
            phone_digits("+62 812-3456-7890").as_deref(),
            Some("6281234567890")
        );
        assert_eq!(
            phone_digits("6281234567890@s.whatsapp.net").as_deref(),
            Some("6281234567890")
        );
        assert_eq!(
            phone_digits("6281234567890@c.us").as_deref(),
            Some("6281234567890")
        );
        assert_eq!(phone_digits("120363@g.us"), None);
        assert_eq!(phone_digits("abc"), None);
        assert_eq!(phone_digits("1234"), None);
    }

    #[test]
    fn url_encodes_each_segment() {
        let u = url("http://h:1/base/", &["api", "a/b c"]).unwrap();
        assert_eq!(u.as_str(), "http://h:1/base/api/a%2Fb%20c");
    }

    #[test]
    fn mime_from_url_reads_the_extension_not_the_query() {
        assert_eq!(
            mime_from_url("https://x/a.PDF?sig=1.png", "x/y"),
            "application/pdf"
        );
        assert_eq!(mime_from_url("https://x/a", "image/jpeg"), "image/jpeg");
    }
}

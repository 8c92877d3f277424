//! Reading a request: a JSON body (an object, no `null`s, integers written either way, serde
//! messages without the values they quote), `If-Match`, paging and query parameters.

use http::header;
use lambda_http::{Request, RequestExt};

use crate::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Default and largest page of a listing.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

/// A JSON body of at most `max` bytes with `Content-Type: application/json`.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    req: &Request,
    max: usize,
) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > max {
        return Err(ApiError::TooLarge(max));
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    // serde reads a struct from a JSON array too (fields by position): `[]` or `["x"]`
    // would become a request. Every body of this API is an object.
    if bytes.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(redact_serde_error(&e)))?;
    integral_numbers(&mut value);
    // A field is either left out or has a value: `null` is refused rather than read as
    // "absent" (one meaning per request, and the one the OpenAPI document states).
    if let Some(path) = null_path(&value, String::new()) {
        return Err(ApiError::BadRequest(format!(
            "{path} is null; leave the field out instead"
        )));
    }
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(redact_serde_error(&e)))
}

/// JSON (and JSON Schema's `integer`) makes no difference between `5` and `5.0`: a number
/// with no fraction that fits a 64-bit integer is read as that integer.
fn integral_numbers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *v = serde_json::Value::from(f as u64);
                } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                    *v = serde_json::Value::from(f as i64);
                }
            }
        }
        serde_json::Value::Object(m) => m.values_mut().for_each(integral_numbers),
        serde_json::Value::Array(a) => a.iter_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Where the first `null` in a JSON value is (`backup.deviceId`, `items[2]`).
fn null_path(v: &serde_json::Value, at: String) -> Option<String> {
    match v {
        serde_json::Value::Null => Some(if at.is_empty() { "the body".into() } else { at }),
        serde_json::Value::Object(m) => m.iter().find_map(|(k, v)| {
            null_path(
                v,
                if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                },
            )
        }),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| null_path(v, format!("{at}[{i}]"))),
        _ => None,
    }
}

/// serde_json quotes the offending string value in some messages
/// (`invalid type: string "…", expected …`); that value may be a secret put in the wrong
/// field, so it is cut out.
fn redact_serde_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg.as_str();
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i + 8]);
        let after = &rest[i + 8..];
        match after.find("\", ").or_else(|| after.rfind('"')) {
            Some(end) => {
                out.push_str("***");
                rest = &after[end..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The version from `If-Match: "N"` (or `W/"N"`, or a bare `N`), if sent: the entity tag
/// the API answered in `ETag`, 1 to 19 digits.
pub fn if_match(req: &Request) -> Result<Option<u64>, ApiError> {
    let Some(v) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad =
        || ApiError::BadRequest("If-Match must be the version's entity tag, e.g. \"3\"".into());
    let s = v.to_str().map_err(|_| bad())?;
    let s = s.strip_prefix("W/").unwrap_or(s);
    // The quoted entity tag, or (leniently) the bare version number.
    let digits = match s.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or_else(bad)?,
        None => s,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse::<u64>().map(Some).map_err(|_| bad())
}

/// The version the caller based its change on: `If-Match` and/or a body `version` (they
/// must agree).
pub fn expected_version(req: &Request, body: Option<u64>) -> Result<Option<u64>, ApiError> {
    match (if_match(req)?, body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::VersionsDisagree(h, b)),
        (Some(v), _) | (None, Some(v)) => Ok(Some(v)),
        (None, None) => Ok(None),
    }
}

/// Whether the request has a body at all.
pub fn has_body(req: &Request) -> bool {
    !req.body().as_ref().is_empty()
}

/// `?limit=` (1 to [`MAX_PAGE`], default [`DEFAULT_PAGE`]) and `?cursor=`.
pub fn page_params(req: &Request) -> Result<(u32, Option<String>), ApiError> {
    let params = req.query_string_parameters();
    let limit = match params.first("limit") {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1 to {MAX_PAGE}")))?,
    };
    Ok((limit, params.first("cursor").map(str::to_string)))
}

/// A path segment with its `%XX` escapes decoded (`+` stays `+`: this is a path, not a
/// form). Invalid UTF-8 after decoding becomes U+FFFD, which no id accepts.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_errors_lose_the_quoted_value() {
        let e = serde_json::from_str::<u64>("\"hunter2-secret\"").unwrap_err();
        let m = redact_serde_error(&e);
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("invalid type"), "{m}");
    }
}

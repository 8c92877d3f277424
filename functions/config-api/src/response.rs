//! Writing an answer: JSON with `Cache-Control: no-store`, an `ETag` of a version, 204.

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::error::ApiError;

/// A JSON response.
pub fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `value` as a JSON response.
pub fn to_json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, ApiError> {
    Ok(json(
        status,
        serde_json::to_string(value).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

/// Adds `ETag: "<version>"`.
pub fn with_etag(mut resp: Response<Body>, version: u64) -> Response<Body> {
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
}

/// 204, no body.
pub fn no_content() -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

//! The API Gateway HTTP API (payload v2) event at a function's edge, read and answered without
//! `lambda_http::run`: its conversion panics on a body flagged base64 that is not, which would
//! answer 502 where the caller deserves a 400. [`request`] decodes the body itself and says
//! when it cannot; [`response`] is the v2 answer.

use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request, Response};

/// The event's body is flagged base64 but is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body is flagged base64-encoded but is not valid base64")]
pub struct BadEncoding;

/// The request `lambda_http` would hand a handler, with the body decoded here: `Err` when the
/// body is flagged base64 and is not (the request then carries no body).
pub fn request(mut event: ApiGatewayV2httpRequest) -> (Request, Result<(), BadEncoding>) {
    let body = decode_body(event.body.take(), event.is_base64_encoded);
    event.is_base64_encoded = false;
    let mut req: Request = LambdaRequest::ApiGatewayV2(event).into();
    let body = body.map(|b| {
        if !b.is_empty() {
            *req.body_mut() = match String::from_utf8(b) {
                Ok(text) => Body::Text(text),
                Err(e) => Body::Binary(e.into_bytes()),
            };
        }
    });
    (req, body)
}

/// The body's bytes: base64-decoded when API Gateway says it encoded them.
pub fn decode_body(body: Option<String>, base64: bool) -> Result<Vec<u8>, BadEncoding> {
    use base64::Engine as _;
    match body {
        None => Ok(Vec::new()),
        Some(b) if base64 => base64::engine::general_purpose::STANDARD
            .decode(b.as_bytes())
            .map_err(|_| BadEncoding),
        Some(b) => Ok(b.into_bytes()),
    }
}

/// The response as API Gateway's HTTP API reads it from the function.
pub fn response(resp: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = resp.into_parts();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    out.is_base64_encoded = matches!(body, Body::Binary(_));
    out.body = match body {
        Body::Empty => None,
        b => Some(b),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: Option<&str>, base64: bool) -> ApiGatewayV2httpRequest {
        serde_json::from_value(serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/p",
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/p", "sourceIp": "203.0.113.1"}},
            "body": body,
            "isBase64Encoded": base64
        }))
        .unwrap()
    }

    fn text(req: &Request) -> Option<&str> {
        match req.body() {
            Body::Text(t) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn a_plain_body_is_kept_as_text() {
        let (req, ok) = request(event(Some(r#"{"a":1}"#), false));
        assert_eq!(ok, Ok(()));
        assert_eq!(text(&req), Some(r#"{"a":1}"#));
        assert_eq!(req.uri().path(), "/p");
    }

    #[test]
    fn a_base64_body_is_decoded_to_text_or_bytes() {
        let (req, ok) = request(event(Some("eyJhIjoxfQ=="), true));
        assert_eq!(ok, Ok(()));
        assert_eq!(text(&req), Some(r#"{"a":1}"#));
        let (req, ok) = request(event(Some("/w=="), true));
        assert_eq!(ok, Ok(()));
        assert!(matches!(req.body(), Body::Binary(b) if b == &[0xff]));
    }

    #[test]
    fn a_body_flagged_base64_that_is_not_is_an_error_and_no_body() {
        let (req, ok) = request(event(Some("not base64 at all!"), true));
        assert_eq!(ok, Err(BadEncoding));
        assert!(matches!(req.body(), Body::Empty));
    }

    #[test]
    fn responses_say_when_their_body_is_binary() {
        let r = response(Response::new(Body::Text("x".into())));
        assert!(!r.is_base64_encoded);
        let r = response(Response::new(Body::Binary(vec![1])));
        assert!(r.is_base64_encoded);
        let r = response(Response::new(Body::Empty));
        assert!(r.body.is_none());
    }
}

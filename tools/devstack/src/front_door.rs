//! The ingress's two front doors, locally: the event the HTTP API route
//! (`POST /webhooks/whatsapp/{tenantId}`) or the function URL (`WebhookFrontDoor: FunctionUrl`)
//! hands the webhook-ingress function for one signed webhook, for `wagate-dev webhook`, which
//! invokes the function with it through cargo-lambda's invoke API.

use serde_json::{Value as Json, json};

/// Which front door delivers the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FrontDoor {
    /// The HTTP API's route: payload v2, route key and path parameters of the route.
    HttpApi,
    /// The function URL: payload v2 with the URL's request context (`<url-id>.lambda-url…`,
    /// account `anonymous`, route `$default`, no path parameters).
    FunctionUrl,
}

/// The event `door` delivers for a POST of `body` to tenant `tenant`'s webhook, signed
/// `signature` (`X-Hub-Signature-256`), from `source_ip`.
pub fn webhook_event(
    door: FrontDoor,
    tenant: &str,
    body: &str,
    signature: &str,
    source_ip: &str,
) -> Json {
    let path = format!("/webhooks/whatsapp/{tenant}");
    let (host, api, account, route) = match door {
        FrontDoor::HttpApi => (
            "wagatelocal.execute-api.us-east-1.amazonaws.com",
            "wagatelocal",
            "123456789012",
            "POST /webhooks/whatsapp/{tenantId}",
        ),
        FrontDoor::FunctionUrl => (
            "wagatelocalurl.lambda-url.us-east-1.on.aws",
            "wagatelocalurl",
            "anonymous",
            "$default",
        ),
    };
    let path_parameters = match door {
        FrontDoor::HttpApi => json!({ "tenantId": tenant }),
        FrontDoor::FunctionUrl => Json::Null,
    };
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": host,
            "user-agent": "wagate-dev",
            "x-hub-signature-256": signature,
            "x-forwarded-for": source_ip,
        },
        "requestContext": {
            "accountId": account,
            "apiId": api,
            "domainName": host,
            "domainPrefix": api,
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "wagate-dev"
            },
            "requestId": uuid_like(body),
            "routeKey": route,
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000u64
        },
        "pathParameters": path_parameters,
        "body": body,
        "isBase64Encoded": false
    })
}

/// A request id that differs per body (no randomness needed locally).
fn uuid_like(body: &str) -> String {
    format!("local-{:x}", body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_doors_carry_the_path_the_signature_and_the_source_address() {
        for door in [FrontDoor::HttpApi, FrontDoor::FunctionUrl] {
            let ev = webhook_event(door, "demo", "{}", "sha256=ab", "198.51.100.7");
            assert_eq!(ev["rawPath"], "/webhooks/whatsapp/demo", "{door:?}");
            assert_eq!(ev["headers"]["x-hub-signature-256"], "sha256=ab");
            assert_eq!(ev["requestContext"]["http"]["sourceIp"], "198.51.100.7");
            assert_eq!(ev["requestContext"]["http"]["method"], "POST");
        }
        let url = webhook_event(FrontDoor::FunctionUrl, "demo", "{}", "s", "198.51.100.7");
        assert!(
            url["requestContext"]["domainName"]
                .as_str()
                .unwrap()
                .contains(".lambda-url.")
        );
        assert_eq!(url["routeKey"], "$default");
        assert!(url["pathParameters"].is_null());
    }
}

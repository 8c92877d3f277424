//! The committed sample events (events/*.json, for `cargo lambda invoke --data-file`) parse as
//! the Lambda event types the functions receive.

use std::path::PathBuf;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;

fn read(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn config_api_event_is_an_http_api_v2_get_of_the_demo_tenant() {
    let event: ApiGatewayV2httpRequest =
        serde_json::from_str(&read("config-api-get-whatsapp-config.json")).expect("parses");

    assert_eq!(event.request_context.http.method.as_str(), "GET");
    assert_eq!(
        event.raw_path.as_deref(),
        Some("/tenants/demo/whatsapp-config")
    );
    assert_eq!(
        event.path_parameters.get("tenantId").map(String::as_str),
        Some("demo")
    );
    let authorization = event
        .headers
        .get("authorization")
        .expect("authorization header");
    assert!(authorization.to_str().unwrap().starts_with("Bearer "));
}

#[test]
fn health_check_event_is_a_scheduled_eventbridge_event() {
    let event: EventBridgeEvent =
        serde_json::from_str(&read("health-check-schedule.json")).expect("parses");

    assert_eq!(event.detail_type, "Scheduled Event");
    assert_eq!(event.source, "aws.events");
}

#[test]
fn outbound_sender_event_is_one_fifo_sqs_record() {
    let event: SqsEvent = serde_json::from_str(&read("outbound-sender-sqs.json")).expect("parses");

    assert_eq!(event.records.len(), 1);
    let record = &event.records[0];
    assert_eq!(
        record.attributes.get("MessageGroupId").map(String::as_str),
        Some("demo")
    );
    let body: serde_json::Value =
        serde_json::from_str(record.body.as_deref().expect("body")).expect("JSON body");
    assert_eq!(body["tenantId"], "demo");
    assert!(body["idempotencyKey"].is_string());
}

//! The checked-in OutboundMessage schema and its examples: every example is valid for the
//! schema and for the sender's parser, and bodies either refuses are refused by both.

use serde_json::{Value, json};
use wagate::outbound::OutboundMessage;
use wagate_tests::workspace_root;

fn validator() -> jsonschema::Validator {
    let path = workspace_root().join("schemas/outbound-message.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).expect("the schema compiles")
}

fn examples() -> Vec<(String, Value)> {
    let dir = workspace_root().join("schemas/examples/outbound-message");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_example_is_valid_for_the_schema_and_the_parser() {
    let v = validator();
    let examples = examples();
    let names: Vec<&str> = examples.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "document.json",
            "image.json",
            "text-reply-to-group.json",
            "text.json"
        ]
    );
    for (name, example) in &examples {
        let errors: Vec<String> = v.iter_errors(example).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let parsed = OutboundMessage::parse(&example.to_string())
            .unwrap_or_else(|e| panic!("{name}: {:?}", e.error));
        assert_eq!(
            &serde_json::to_value(&parsed).unwrap(),
            example,
            "{name} round-trips"
        );
    }
}

#[test]
fn schema_and_parser_refuse_the_same_bad_bodies() {
    let v = validator();
    let good = json!({"tenantId": "acme", "idempotencyKey": "k1", "to": "6289685028129",
        "content": {"type": "text", "body": "hi"}});
    let bad = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let cases = [
        ("local number", bad(&|b| b["to"] = json!("0812345678"))),
        (
            "e-mail as recipient",
            bad(&|b| b["to"] = json!("a@example.com")),
        ),
        ("blank text", bad(&|b| b["content"]["body"] = json!("   "))),
        ("unknown field", bad(&|b| b["priority"] = json!("high"))),
        (
            "unknown content field",
            bad(&|b| b["content"]["bold"] = json!(true)),
        ),
        (
            "unknown content type",
            bad(&|b| b["content"] = json!({"type": "sticker", "url": "https://x.example/s.webp"})),
        ),
        (
            "key with a space",
            bad(&|b| b["idempotencyKey"] = json!("a b")),
        ),
        (
            "key too long",
            bad(&|b| b["idempotencyKey"] = json!("k".repeat(129))),
        ),
        (
            "missing to",
            bad(&|b| {
                b.as_object_mut().unwrap().remove("to");
            }),
        ),
        (
            "ftp image",
            bad(&|b| b["content"] = json!({"type": "image", "url": "ftp://x.example/a.jpg"})),
        ),
        (
            "filename with a slash",
            bad(
                &|b| b["content"] = json!({"type": "document", "url": "https://x.example/a.pdf", "filename": "../a.pdf"}),
            ),
        ),
        (
            "text too long",
            bad(&|b| b["content"]["body"] = json!("x".repeat(4097))),
        ),
    ];
    assert!(v.is_valid(&good) && OutboundMessage::parse(&good.to_string()).is_ok());
    for (what, body) in cases {
        assert!(!v.is_valid(&body), "schema accepted: {what}");
        assert!(
            OutboundMessage::parse(&body.to_string()).is_err(),
            "parser accepted: {what}"
        );
    }
}

//! The config API's OpenAPI document (functions/config-api/openapi.yaml) as the tests read
//! it: loading, `$ref` resolution, and checking a real reply against what the document
//! says for its route and status.

use serde_json::{Value, json};

use crate::api::Reply;
use crate::workspace_root;

/// The parsed document.
pub fn spec() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("functions/config-api/openapi.yaml"))
        .expect("openapi.yaml");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
}

/// Follows one local `$ref` (or returns `v`).
pub fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// Validates a reply against the schema the spec documents for its route and status.
pub fn check(doc: &Value, method: &str, template: &str, r: &Reply) {
    let op = &doc["paths"][template][method.to_lowercase()];
    assert!(op.is_object(), "{method} {template} is not in the spec");
    let status = r.status.as_u16().to_string();
    let resp = op["responses"].get(&status).unwrap_or_else(|| {
        panic!(
            "{method} {template} answered undocumented {status}: {}",
            r.text
        )
    });
    let resp = resolve(doc, resp);
    // A documented non-JSON body (the dashboard's HTML, JS, CSS): the type must be one listed.
    if let Some(content) = resp["content"].as_object()
        && !content.contains_key("application/json")
    {
        let ct = r
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        assert!(
            content.contains_key(mime) && !r.text.is_empty(),
            "{method} {template} {status}: content-type {ct:?} is not one of {:?}",
            content.keys().collect::<Vec<_>>()
        );
        return;
    }
    let Some(schema) = resp.pointer("/content/application~1json/schema") else {
        assert!(
            r.text.is_empty(),
            "{method} {template} {status}: undocumented body"
        );
        return;
    };
    let root = json!({
        "$ref": "#/$defs/target",
        "$defs": {"target": schema},
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&root).expect("schema compiles");
    let body: Value = serde_json::from_str(&r.text).expect("JSON body");
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status} does not match the spec: {errors:?}\n{body:#}"
    );
}
